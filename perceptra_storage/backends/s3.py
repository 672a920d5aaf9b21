"""Amazon S3 and S3-compatible stores (R2, Wasabi, Ceph, MinIO) through s3fs.

The module translates ``config`` and ``credentials`` into the options of
:class:`~perceptra_storage.backends._s3fs.PerceptraS3FileSystem` (SigV4, the
region, path-style addressing on custom endpoints, the timeouts and retries),
which holds everything that talks to the service, and signs URLs.  s3fs's own
``sign`` makes GET URLs only, so a botocore client of the adapter's own, which
never sends a request, signs GET, PUT, HEAD and DELETE (a synchronous client
signs in half the CPU time of a call through the filesystem's event loop).
"""

import base64
import dataclasses
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Literal,
    NamedTuple,
    Optional,
    Required,
    TypedDict,
)
from urllib.parse import quote, urlsplit

from ..adapter import EngineConfig, FsspecStorageAdapter, ResilienceConfig, check_engine
from ..base import CorsRule, PresignedPost, PresignedUrl
from ..errors import StorageValidationError, redact
from ..presign import NO_OPTIONS, PostOptions, SignOptions
from ._sigv4 import PROBE, QuerySigner

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["S3Config", "S3Credentials", "S3StorageAdapter"]

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_CHECKSUM_FIELDS = ("request_checksum_calculation", "response_checksum_validation")
_CHECKSUM_MODES = ("when_supported", "when_required")
_SIGNED_CALLS = {"GET": "get_object", "PUT": "put_object", "HEAD": "head_object",
                 "DELETE": "delete_object"}


class S3Config(ResilienceConfig, EngineConfig, total=False):
    """``config`` of the ``s3`` backend."""

    bucket_name: Required[str]
    """The bucket that holds the objects."""
    region: str
    """AWS region of the bucket, e.g. 'us-west-2'; default: the AWS chain (AWS_REGION, profile)."""
    endpoint_url: str
    """URL of an S3-compatible service (R2, Wasabi, Ceph...), e.g. 'https://s3.example.com'."""
    prefix: str
    """Key prefix this adapter is confined to, e.g. one tenant."""
    public_base_url: str
    """URL that serves the bucket publicly (a CDN); get_public_url builds on it."""
    request_checksum_calculation: Literal["when_supported", "when_required"]
    """botocore's checksums on uploads; default 'when_supported' (CRC32) on AWS and
    'when_required' with endpoint_url, since some S3-compatible servers refuse them."""
    response_checksum_validation: Literal["when_supported", "when_required"]
    """botocore's checks of response checksums; defaults as request_checksum_calculation."""


class S3Credentials(TypedDict, total=False):
    """``credentials`` of the ``s3`` backend: a key pair, a shared-file ``profile`` or a
    ``refresh`` callable; none at all means the standard AWS chain."""

    access_key_id: str
    """Access key ID; needs secret_access_key."""
    secret_access_key: str
    """Secret access key of access_key_id."""
    session_token: str
    """Session token of temporary credentials (STS), with the key pair."""
    profile: str
    """A named profile of the AWS shared config and credentials files (boto3's
    ``profile_name``; the files are found as boto3 finds them, AWS_CONFIG_FILE and
    AWS_SHARED_CREDENTIALS_FILE included); the profile's region applies unless
    config gives one."""
    refresh: Callable[[], Mapping[str, Any]]
    """A function returning fresh temporary credentials as a dict: access_key_id,
    secret_access_key, session_token (optional) and expires_at (a datetime or ISO 8601
    text). Called when first needed and again before they expire (botocore's refreshable
    credentials), so a long-running process never uses expired keys. Defined at module
    level, so that adapters still pickle."""


class Target(NamedTuple):
    """Where and as whom an adapter connects, once the config is checked."""

    bucket: str
    endpoint: Optional[str]
    region: Optional[str]
    access_key_id: Optional[str]
    secret_access_key: Optional[str]
    session_token: Optional[str]
    profile: Optional[str] = None
    refresh: Optional[Callable[[], Mapping[str, Any]]] = None


def check_bucket_name(name: str, backend: str) -> str:
    """S3's naming rules, so a typo fails at construction and not as a server error."""
    if not _BUCKET_NAME.match(name) or ".." in name or _is_ip(name):
        raise StorageValidationError(
            f"{backend}: bucket_name {name!r} is not a valid bucket name: use 3-63 "
            "lower-case letters, digits, '.' and '-', starting and ending with a letter or "
            "digit, no '..', not an IP address", backend=backend)
    return name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def check_endpoint(url: str, backend: str, field: str = "endpoint_url") -> str:
    """``scheme://host[:port]`` of an http(s) endpoint; anything else is refused."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or \
            parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise StorageValidationError(
            f"{backend}: config field {field!r} must look like https://host[:port] "
            f"(no path, query or user), not {redact(url)!r}", backend=backend)
    return f"{parts.scheme}://{parts.netloc}"


def credential_sources(credentials: Mapping[str, Any], key_field: str,
                       backend: str) -> tuple[Optional[str], Any]:
    """The ``profile`` and ``refresh`` credentials, each of which replaces a key pair."""
    profile, refresh = credentials.get("profile"), credentials.get("refresh")
    given = [name for name in (key_field, "profile", "refresh") if credentials.get(name)]
    if len(given) > 1:
        raise StorageValidationError(
            f"{backend}: credentials give {' and '.join(map(repr, given))}; give one of a "
            f"key pair, 'profile' or 'refresh'", backend=backend)
    if refresh is not None and not callable(refresh):
        raise StorageValidationError(
            f"{backend}: credentials field 'refresh' must be a function returning fresh "
            f"credentials, not {type(refresh).__name__}", backend=backend)
    return profile, refresh


def check_profile(profile: Optional[str], backend: str) -> None:
    """A named profile must be in the AWS shared files (read here, as boto3 finds them),
    so that a typo fails at construction rather than falling back to other keys."""
    if not profile:
        return
    import botocore.session

    if profile not in botocore.session.Session().available_profiles:
        raise StorageValidationError(
            f"{backend}: credentials field 'profile': no profile {profile!r} in the AWS "
            "config or credentials file (AWS_CONFIG_FILE, default ~/.aws/config; "
            "AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials)", backend=backend)


def key_pair(credentials: Mapping[str, Any], key_field: str, secret_field: str,
             backend: str) -> tuple[Optional[str], Optional[str]]:
    """Both halves of an access key, or neither (the AWS chain)."""
    key, secret = credentials.get(key_field), credentials.get(secret_field)
    for given, missing in ((key_field, secret_field), (secret_field, key_field)):
        if credentials.get(given) and not credentials.get(missing):
            raise StorageValidationError(
                f"{backend}: credentials field {missing!r} is required with {given!r}",
                backend=backend)
    return key, secret


class S3StorageAdapter(FsspecStorageAdapter):
    """Objects in one S3 bucket; keys are object keys (under ``prefix``)."""

    backend_name = "s3"
    config_schema: ClassVar[type] = S3Config
    credentials_schema: ClassVar[type] = S3Credentials
    requires = ("s3fs",)
    extra = "s3"
    metadata_hyphens = True
    dashed_metadata_names: ClassVar[bool] = False
    """Whether the server reports '_' in metadata names as '-' (see _s3fs.py)."""
    signs_offline: ClassVar[bool] = True
    """Signing is computation only (no request), so ``aio`` signs on the loop."""

    # -- configuration ---------------------------------------------------------------

    def _check_config(self) -> None:
        self.engine = check_engine(self.config, self.backend_name)
        self.target = self._resolve()
        base = self.config.get("public_base_url")
        if base is not None:
            check_public_base(base, self.backend_name)
        for name in _CHECKSUM_FIELDS:
            value = self.config.get(name)
            if value is not None and value not in _CHECKSUM_MODES:
                raise StorageValidationError(
                    f"{self.backend_name}: config field {name!r} must be one of "
                    f"{', '.join(map(repr, _CHECKSUM_MODES))}, not {value!r}",
                    backend=self.backend_name)

    def _resolve(self) -> Target:
        """This backend's config and credentials as a :class:`Target`."""
        endpoint = self.config.get("endpoint_url")
        key, secret = key_pair(self.credentials, "access_key_id", "secret_access_key",
                               self.backend_name)
        token = self.credentials.get("session_token")
        if token and not key:
            raise StorageValidationError(
                f"{self.backend_name}: credentials field 'session_token' needs "
                "access_key_id and secret_access_key", backend=self.backend_name)
        profile, refresh = credential_sources(self.credentials, "access_key_id",
                                              self.backend_name)
        check_profile(profile, self.backend_name)
        return Target(bucket=check_bucket_name(self.config["bucket_name"], self.backend_name),
                      endpoint=check_endpoint(endpoint, self.backend_name) if endpoint else None,
                      region=self.config.get("region"), access_key_id=key,
                      secret_access_key=secret, session_token=token, profile=profile,
                      refresh=refresh)

    def _botocore_config(self) -> dict[str, Any]:
        """Settings the filesystem and the signer share: SigV4, and path-style on
        custom endpoints (where bucket subdomains rarely resolve)."""
        options: dict[str, Any] = {"signature_version": "s3v4"}
        if self.target.endpoint:
            options["s3"] = {"addressing_style": "path"}
        for name in _CHECKSUM_FIELDS:
            # botocore >= 1.36 adds CRC32 checksums (and aws-chunked bodies) to every
            # upload, which S3-compatible servers that predate them refuse; they get
            # checksums only where an operation requires one, unless configured.
            value = self.config.get(name) or ("when_required" if self.target.endpoint
                                              else None)
            if value is not None:
                options[name] = value
        return options

    def _root(self) -> str:
        return self.target.bucket

    def _make_filesystem(self) -> "AbstractFileSystem":
        if self.engine == "obstore":
            return self._obstore_filesystem()
        return self._fsspec_engine_filesystem()

    def _fsspec_engine_filesystem(self) -> "AbstractFileSystem":
        from ._s3fs import PerceptraS3FileSystem

        target = self.target
        options: dict[str, Any] = {
            "endpoint_url": target.endpoint,
            "config_kwargs": self._botocore_config(),
            "resilience": dataclasses.asdict(self.resilience),
            "dashed_metadata_names": self.dashed_metadata_names,
            "skip_instance_cache": True,
            "use_listings_cache": False,
        }
        if target.region:
            options["client_kwargs"] = {"region_name": target.region}
        if target.access_key_id:
            options.update(key=target.access_key_id, secret=target.secret_access_key,
                           token=target.session_token)
        if target.profile:
            options["aws_profile"] = target.profile
        if target.refresh is not None:
            options["refresh_credentials"] = target.refresh
        return PerceptraS3FileSystem(**options)

    def _obstore_filesystem(self) -> "AbstractFileSystem":
        """The obstore engine's filesystem (``_obstore.py``) for the same target: the
        key pair, the profile or the refresh function (or obstore's own reading of the
        AWS environment without any), the region (default: the AWS chain's or the
        profile's, else us-east-1), path-style addressing and plain http on a custom
        endpoint."""
        from ._obstore import ObstoreFileSystem

        target = self.target
        store: dict[str, Any] = {
            "region": target.region or _default_region(target.profile) or "us-east-1",
            # Uploads carry no checksum header of obstore's own: the adapter checks
            # checksum=True uploads itself, and some S3-compatible servers refuse them.
        }
        client: dict[str, Any] = {}
        if target.endpoint:
            store.update(endpoint=target.endpoint, virtual_hosted_style_request=False)
            client["allow_http"] = target.endpoint.startswith("http://")
        if target.access_key_id:
            store.update(access_key_id=target.access_key_id,
                         secret_access_key=target.secret_access_key)
            if target.session_token:
                store["session_token"] = target.session_token
        sources: dict[str, Any] = {}
        if target.profile:
            sources["aws_profile"] = target.profile
        if target.refresh is not None:
            sources["refresh_credentials"] = target.refresh
        return ObstoreFileSystem(kind="s3", store=store, client=client,
                                 resilience=dataclasses.asdict(self.resilience),
                                 dashed_metadata_names=self.dashed_metadata_names, **sources)

    # -- the signer ------------------------------------------------------------------

    def _signing_client(self) -> Any:
        """A synchronous botocore client that only signs.  Built on first use and
        again after fork (two threads may both build one; either serves); never
        pickled."""
        pid, client = self.__dict__.get("_signer", (0, None))
        if pid != os.getpid():
            from botocore.config import Config

            target = self.target
            from ._s3fs import botocore_session

            client = botocore_session(target.profile, target.refresh).create_client(
                "s3", region_name=target.region, endpoint_url=target.endpoint,
                aws_access_key_id=target.access_key_id,
                aws_secret_access_key=target.secret_access_key,
                aws_session_token=target.session_token, config=Config(**self._botocore_config()))
            self._signer = (os.getpid(), client)
        return client

    def _query_signer(self) -> Optional[QuerySigner]:
        """The fast signer (``_sigv4.py``) for static keys, set up from one URL botocore
        signs for a probe key; None with the AWS chain's credentials, which botocore
        refreshes, so those URLs are signed by its client."""
        if not self.target.access_key_id:
            return None
        signer: Optional[QuerySigner] = self.__dict__.get("_fast_signer")
        if signer is None:
            probe = self._signing_client().generate_presigned_url(
                "get_object", Params={"Bucket": self.target.bucket, "Key": PROBE},
                ExpiresIn=60)
            signer = self._fast_signer = QuerySigner(
                probe, self.target.access_key_id, str(self.target.secret_access_key),
                self.target.session_token)
        return signer

    def _sign(self, path: str, key: str, expiration: int, method: str,
              options: SignOptions) -> PresignedUrl:
        """A SigV4 query-string URL. A PUT's content type, metadata and headers become
        signed headers (the server refuses the request without exactly them, listed
        in ``headers``); a GET's or HEAD's become ``response-*`` parameters. URLs
        without options take the fast signer; those with options, botocore's."""
        bucket, _, name = path.partition("/")
        signer = self._query_signer() if options == NO_OPTIONS else None
        if signer is not None:  # the fast path of plain URLs (_sigv4.py)
            url, signed_at = signer.sign(name, method, expiration)
            return PresignedUrl(url=url, method=method,
                                expires_at=signed_at + timedelta(seconds=expiration))
        params: dict[str, Any] = {"Bucket": bucket, "Key": name}
        headers: dict[str, str] = {}
        if method == "PUT":
            params.update({param: value for param, value in (
                ("ContentType", options.content_type), ("CacheControl", options.cache_control),
                ("ContentDisposition", options.content_disposition)) if value is not None})
            if options.metadata:
                params["Metadata"] = dict(options.metadata)
            headers = {**options.standard_headers(),
                       **{f"x-amz-meta-{k}": v for k, v in options.metadata.items()}}
        elif method in ("GET", "HEAD"):
            params.update({param: value for param, value in (
                ("ResponseContentType", options.content_type),
                ("ResponseCacheControl", options.cache_control),
                ("ResponseContentDisposition", options.content_disposition))
                if value is not None})
        url = self._signing_client().generate_presigned_url(
            _SIGNED_CALLS[method], Params=params, ExpiresIn=expiration, HttpMethod=method)
        # The signing time, e.g. X-Amz-Date=20261125T090459Z (fixed width, never escaped).
        start = url.index("X-Amz-Date=") + len("X-Amz-Date=")
        signed_at = datetime.fromisoformat(url[start:start + 16])
        return PresignedUrl(url=url, method=method, headers=headers,
                            expires_at=self._within_credentials(
                                signed_at + timedelta(seconds=expiration)))

    def _within_credentials(self, expires_at: datetime) -> datetime:
        """``expires_at``, or the end of the temporary credentials that signed the URL
        when that comes first: S3 refuses a URL once its signing credentials expire.

        botocore knows that end for the credentials it refreshes (a ``refresh``
        function, an assumed role or SSO profile, a container or instance role); static
        keys carry none, so their URLs keep the requested expiry. Only URLs signed by
        botocore's client are concerned: the fast signer takes static keys alone."""
        if self.target.access_key_id:
            return expires_at
        signer = self._signing_client()
        # botocore keeps the credentials a client signs with, and their expiry, in
        # attributes without a public accessor (RefreshableCredentials._expiry_time).
        credentials = getattr(getattr(signer, "_request_signer", None), "_credentials", None)
        ends = getattr(credentials, "_expiry_time", None)
        if not isinstance(ends, datetime):
            return expires_at
        ends = ends.astimezone(UTC) if ends.tzinfo else ends.replace(tzinfo=UTC)
        return min(expires_at, ends)

    def _sign_post(self, path: str, key: str, expiration: int,
                   options: PostOptions) -> PresignedPost:
        """An S3 POST policy (botocore's signer): the key exactly, the size range, the
        content type (exact or ``starts-with``) and each metadata value exactly."""
        bucket, _, name = path.partition("/")
        fields: dict[str, str] = {}
        conditions: list[Any] = []
        if options.max_size is not None:
            conditions.append(["content-length-range", 0, options.max_size])
        if options.content_type is not None:
            fields["Content-Type"] = options.content_type
            conditions.append({"Content-Type": options.content_type})
        elif options.content_type_prefix is not None:
            conditions.append(["starts-with", "$Content-Type", options.content_type_prefix])
        for meta_name, value in options.metadata.items():
            fields[f"x-amz-meta-{meta_name}"] = value
            conditions.append({f"x-amz-meta-{meta_name}": value})
        post = self._signing_client().generate_presigned_post(
            bucket, name, Fields=dict(fields), Conditions=conditions, ExpiresIn=expiration)
        policy = json.loads(base64.b64decode(post["fields"]["policy"]))
        ends = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
        return PresignedPost(url=str(post["url"]), fields=dict(post["fields"]),
                             expires_at=self._within_credentials(ends.astimezone(UTC)),
                             max_size=options.max_size)

    def _cors(self, rules: Optional[list[CorsRule]]) -> list[CorsRule]:
        """The bucket's CORS configuration (PutBucketCors / GetBucketCors)."""
        bucket = self.target.bucket
        if rules is None:
            return [CorsRule(origins=list(rule.get("AllowedOrigins", [])),
                             methods=list(rule.get("AllowedMethods", [])),
                             headers=list(rule.get("AllowedHeaders", [])),
                             expose_headers=list(rule.get("ExposeHeaders", [])),
                             max_age=int(rule.get("MaxAgeSeconds", 0)))
                    for rule in self._call("cors", bucket, None)]
        self._call("cors", bucket, [{
            "AllowedOrigins": rule.origins, "AllowedMethods": rule.methods,
            "AllowedHeaders": rule.headers, "ExposeHeaders": rule.expose_headers,
            "MaxAgeSeconds": rule.max_age} for rule in rules])
        return rules

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_signer", None)
        state.pop("_fast_signer", None)
        return state

    def _secret_values(self) -> tuple[str, ...]:
        """The given credentials, and those of a shared-file ``profile`` (read from the
        files once, never from the network), but not the profile's name."""
        if "_profile_secrets" not in self.__dict__:
            self._profile_secrets = _profile_secrets(self.target.profile)
        given = tuple(str(value) for name, value in self.credentials.items()
                      if name != "profile" and isinstance(value, str) and value)
        return (*given, *self._profile_secrets)

    @property
    def native_storage_options(self) -> dict[str, Any]:
        """s3fs's own options: the profile as its ``profile``; with a ``refresh``
        function, a session that renews credentials through it."""
        options = super().native_storage_options
        profile = options.pop("aws_profile", None)
        if profile:
            options["profile"] = profile
        refresh = options.pop("refresh_credentials", None)
        if refresh is not None:
            from ._s3fs import new_session

            options["session"] = new_session(profile, refresh)
        return options

    def _public_url(self, key: str) -> Optional[str]:
        """``public_base_url`` when set; else path-style on a custom endpoint, and AWS's
        virtual-hosted URL (path-style for dotted names, which break its certificate)."""
        url = super()._public_url(key)
        if url is not None:
            return url
        bucket, _, name = self._path(key).partition("/")
        if self.target.endpoint:
            return f"{self.target.endpoint}/{bucket}/{quote(name)}"
        region = self.target.region or _default_region(self.target.profile)
        host = f"s3.{region}.amazonaws.com" if region else "s3.amazonaws.com"
        if "." in bucket:
            return f"https://{host}/{bucket}/{quote(name)}"
        return f"https://{bucket}.{host}/{quote(name)}"


def check_public_base(url: Any, backend: str) -> None:
    """``public_base_url`` must be an absolute http(s) URL (a path is allowed)."""
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StorageValidationError(
            f"{backend}: config field 'public_base_url' must be an http(s) URL such as "
            "https://cdn.example.com/assets", backend=backend)


def _default_region(profile: Optional[str] = None) -> Optional[str]:
    """The region of the AWS chain (AWS_REGION, AWS_DEFAULT_REGION, profile), if any."""
    from ._s3fs import botocore_session

    region = botocore_session(profile).get_config_variable("region")
    return str(region) if region else None


def _profile_secrets(profile: Optional[str]) -> tuple[str, ...]:
    """The key values a shared-file profile holds, to mask wherever secrets are masked."""
    if not profile:
        return ()
    from ._s3fs import botocore_session

    try:
        scoped = botocore_session(profile).get_scoped_config()
    except Exception:
        return ()
    return tuple(str(scoped[name]) for name in ("aws_secret_access_key", "aws_session_token",
                                                "aws_access_key_id") if scoped.get(name))
