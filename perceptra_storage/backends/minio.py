"""MinIO and other self-hosted S3-compatible servers, configured the MinIO way.

The config names are MinIO's own: ``endpoint_url`` as ``host:port`` with
``secure`` choosing https or http, and ``access_key``/``secret_key``.  They
translate into the S3 backend's target; everything else (s3fs options, the
SigV4 signer, path-style URLs) is the S3 backend's.
"""

from collections.abc import Callable, Mapping
from typing import Any, Literal, Optional, Required, TypedDict

from ..adapter import EngineConfig, ResilienceConfig
from ..errors import StorageValidationError
from .s3 import (
    S3StorageAdapter,
    Target,
    check_bucket_name,
    check_endpoint,
    check_profile,
    credential_sources,
    key_pair,
)

__all__ = ["MinIOConfig", "MinIOCredentials", "MinIOStorageAdapter"]


class MinIOConfig(ResilienceConfig, EngineConfig, total=False):
    """``config`` of the ``minio`` backend."""

    bucket_name: Required[str]
    """The bucket that holds the objects."""
    endpoint_url: Required[str]
    """The server as 'host:port' (the scheme comes from secure) or a full http(s) URL."""
    secure: bool
    """Use HTTPS (default True); with a full URL it may be left out, or must agree."""
    region: str
    """Region the server signs for; default 'us-east-1', as MinIO's own default."""
    prefix: str
    """Key prefix this adapter is confined to, e.g. one tenant."""
    public_base_url: str
    """URL that serves the bucket publicly (a CDN or reverse proxy); default path-style."""
    request_checksum_calculation: Literal["when_supported", "when_required"]
    """botocore's checksums on uploads; default 'when_required' (some servers refuse
    the CRC32 checksums botocore >= 1.36 adds otherwise)."""
    response_checksum_validation: Literal["when_supported", "when_required"]
    """botocore's checks of response checksums; default 'when_required'."""


class MinIOCredentials(TypedDict, total=False):
    """``credentials`` of the ``minio`` backend; none at all means the standard AWS chain."""

    access_key: str
    """Access key (user name); needs secret_key."""
    secret_key: str
    """Secret key of access_key."""
    profile: str
    """A named profile of the AWS shared config and credentials files, as on s3."""
    refresh: Callable[[], Mapping[str, Any]]
    """A function returning fresh temporary credentials, as on s3."""


class MinIOStorageAdapter(S3StorageAdapter):
    """Objects in one bucket of a MinIO (or other S3-compatible) server, path-style."""

    backend_name = "minio"
    config_schema = MinIOConfig
    credentials_schema = MinIOCredentials
    extra = "minio"
    # Self-hosted S3 servers such as Ceph's RADOS Gateway report '_' in metadata names
    # as '-': names with '-' are refused, and '-' read back is '_'.
    metadata_hyphens = False
    dashed_metadata_names = True

    def _resolve(self) -> Target:
        key, secret = key_pair(self.credentials, "access_key", "secret_key", self.backend_name)
        profile, refresh = credential_sources(self.credentials, "access_key", self.backend_name)
        check_profile(profile, self.backend_name)
        return Target(bucket=check_bucket_name(self.config["bucket_name"], self.backend_name),
                      endpoint=self._endpoint(), region=self.config.get("region") or "us-east-1",
                      access_key_id=key, secret_access_key=secret, session_token=None,
                      profile=profile, refresh=refresh)

    def _endpoint(self) -> str:
        """``http(s)://host:port`` from ``endpoint_url`` and ``secure``."""
        endpoint = str(self.config["endpoint_url"]).strip()
        secure: Optional[Any] = self.config.get("secure")
        if "://" not in endpoint:
            scheme = "https" if secure is None or secure else "http"
            return check_endpoint(f"{scheme}://{endpoint}", self.backend_name)
        url = check_endpoint(endpoint, self.backend_name)
        if secure is not None and url.startswith("https://") != secure:
            raise StorageValidationError(
                f"minio: config field 'secure' is {secure} but 'endpoint_url' says "
                f"{url.split(':')[0]}; give the endpoint as host:port, or drop 'secure'",
                backend=self.backend_name)
        return url
