"""The ``s3`` backend over moto's S3 server and ``minio`` over Ceph's RADOS Gateway.

Each server starts once per session on loopback (once per run under pytest-xdist,
shared by the workers: ``tests/servers/shared.py``).  Every test gets a fresh
bucket of its own (created with boto3 here, emptied and deleted afterwards),
so tests never see each other's objects and no server reset is needed.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import pytest

from perceptra_storage import BaseStorageAdapter, get_storage_adapter
from tests.conftest import Backend, Case, unavailable, untraced
from tests.servers.common import S3Server, ServerUnavailable
from tests.servers.shared import start_server

SIGNED_METHODS = frozenset({"GET", "PUT", "HEAD", "DELETE"})


def _start(request: pytest.FixtureRequest, name: str) -> S3Server:
    try:
        server: S3Server = start_server(getattr(request.config, "workerinput", None), name)
    except ServerUnavailable as exc:
        kind = "moto" if name == "moto" else "Ceph RGW"
        unavailable(f"{kind} S3 server: {exc}")
        raise
    return server


@pytest.fixture(scope="session")
def moto_server(request: pytest.FixtureRequest) -> Iterator[S3Server]:
    """moto's S3 server in a child process: AWS-shaped, checks no signatures."""
    server = _start(request, "moto")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rgw_server(request: pytest.FixtureRequest) -> Iterator[S3Server]:
    """Ceph's RADOS Gateway: a production S3 server that enforces SigV4 and expiry."""
    server = _start(request, "rgw")
    yield server
    server.stop()


_CLIENTS: dict[str, Any] = {}


def s3_client(server: S3Server) -> Any:
    """A boto3 client with the server's keys, for setting up and inspecting buckets
    (one per server: building a client costs more than creating a bucket)."""
    import boto3
    from botocore.config import Config

    if server.endpoint_url not in _CLIENTS:
        _CLIENTS[server.endpoint_url] = boto3.client(
            "s3", endpoint_url=server.endpoint_url, region_name=server.region,
            aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    return _CLIENTS[server.endpoint_url]


def new_bucket(server: S3Server) -> tuple[str, Any]:
    """Create a uniquely named bucket; returns its name and a function that removes it
    with everything in it (objects and unfinished multipart uploads)."""
    name = f"t-{uuid.uuid4().hex[:20]}"
    with untraced():
        client = s3_client(server)
        client.create_bucket(Bucket=name)

    def remove() -> None:
        with untraced():
            for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
                client.abort_multipart_upload(Bucket=name, Key=upload["Key"],
                                              UploadId=upload["UploadId"])
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                doomed = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if doomed:
                    client.delete_objects(Bucket=name,
                                          Delete={"Objects": doomed, "Quiet": True})
            client.delete_bucket(Bucket=name)

    return name, remove


def s3_config(server: S3Server, bucket: str, prefix: Optional[str] = None) -> dict[str, Any]:
    config = {"bucket_name": bucket, "endpoint_url": server.endpoint_url,
              "region": server.region}
    return {**config, "prefix": prefix} if prefix else config


def s3_credentials(server: S3Server) -> dict[str, str]:
    return {"access_key_id": server.access_key, "secret_access_key": server.secret_key}


def minio_config(server: S3Server, bucket: str, prefix: Optional[str] = None) -> dict[str, Any]:
    """The seed's MinIO form: ``host:port`` and ``secure``."""
    host_port = server.endpoint_url.split("://", 1)[1]
    config = {"bucket_name": bucket, "endpoint_url": host_port, "secure": False,
              "region": server.region}
    return {**config, "prefix": prefix} if prefix else config


def minio_credentials(server: S3Server) -> dict[str, str]:
    return {"access_key": server.access_key, "secret_key": server.secret_key}


def fetch(url: str, method: str = "GET", data: Optional[bytes] = None) -> tuple[int, bytes]:
    """One plain HTTP request (no SDK): status and body.  A body goes as octet-stream
    (urllib's default form type makes moto's web framework swallow it)."""
    headers = {"Content-Type": "application/octet-stream"} if data is not None else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _address(server: S3Server) -> tuple[str, int]:
    parts = urlsplit(server.endpoint_url)
    return str(parts.hostname), int(parts.port or 80)


def _pending(server: S3Server, bucket: str) -> Any:
    def count() -> int:
        return len(s3_client(server).list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    return count


def _s3(request: pytest.FixtureRequest, tmp_path: Path, engine: Optional[str] = None
        ) -> Backend:
    server: S3Server = request.getfixturevalue("moto_server")
    bucket, remove = new_bucket(server)
    chosen = {"engine": engine} if engine else {}

    def make(prefix: Optional[str]) -> BaseStorageAdapter:
        return get_storage_adapter("s3", {**s3_config(server, bucket, prefix), **chosen},
                                   s3_credentials(server))

    def via(endpoint: str, extra: dict[str, Any]) -> BaseStorageAdapter:
        return get_storage_adapter("s3", {**s3_config(server, bucket), **chosen, **extra,
                                          "endpoint_url": endpoint}, s3_credentials(server))

    def seeder() -> BaseStorageAdapter:
        return get_storage_adapter("s3", {**s3_config(server, bucket), "engine": "obstore"},
                                   s3_credentials(server))

    return Backend("s3", make, secrets=(server.secret_key, server.access_key),
                   cleanup=[remove], server=_address(server), via=via,
                   pending_uploads=_pending(server, bucket), seeder=seeder)


def _minio(request: pytest.FixtureRequest, tmp_path: Path, engine: Optional[str] = None
           ) -> Backend:
    server: S3Server = request.getfixturevalue("rgw_server")
    bucket, remove = new_bucket(server)
    chosen = {"engine": engine} if engine else {}

    def make(prefix: Optional[str]) -> BaseStorageAdapter:
        return get_storage_adapter("minio", {**minio_config(server, bucket, prefix), **chosen},
                                   minio_credentials(server))

    def via(endpoint: str, extra: dict[str, Any]) -> BaseStorageAdapter:
        config = {**minio_config(server, bucket), **chosen, **extra, "endpoint_url": endpoint}
        config.pop("secure")
        return get_storage_adapter("minio", config, minio_credentials(server))

    def seeder() -> BaseStorageAdapter:
        return get_storage_adapter("minio", {**minio_config(server, bucket), "engine": "obstore"},
                                   minio_credentials(server))

    return Backend("minio", make, secrets=(server.secret_key, server.access_key),
                   cleanup=[remove], server=_address(server), via=via,
                   pending_uploads=_pending(server, bucket), seeder=seeder)


def _s3_obstore(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The s3 backend on the obstore engine, on the same moto server."""
    return _s3(request, tmp_path, "obstore")


def _minio_obstore(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The minio backend on the obstore engine, on the same Ceph RGW."""
    return _minio(request, tmp_path, "obstore")


ENGINES = pytest.mark.parametrize("engine", ["fsspec", "obstore"])
"""For the backend-specific tests that run on both engines (credentials from a profile
or a refresh function sign both engines' requests)."""


_S3_CAPABILITIES: dict[str, Any] = {
    "presign_methods": SIGNED_METHODS, "network": True, "multipart_uploads": True,
    "metadata_hyphens": True, "response_overrides": True, "post_policies": True, "cors": True}
_MINIO_CAPABILITIES: dict[str, Any] = {
    "presign_methods": SIGNED_METHODS, "network": True, "multipart_uploads": True,
    "pinned_headers_enforced": True, "signatures_checked": True, "response_overrides": True,
    "post_policies": True, "post_policies_enforced": True, "cors": True}

BACKENDS = {
    "s3": Case(start=_s3, **_S3_CAPABILITIES),
    "minio": Case(start=_minio, **_MINIO_CAPABILITIES),
    # The obstore engine stores exactly where and as the fsspec one does: its own entry
    # points run the whole contract, and the route tests (conftest.ROUTED) run on it;
    # the other generic fixtures keep to the entries above.
    "s3-obstore": Case(start=_s3_obstore, generic=False, engine_variant=True,
                       resolves_in_python=False, refuses_redirects=False,
                       survives_fork=False, **_S3_CAPABILITIES),
    "minio-obstore": Case(start=_minio_obstore, generic=False, engine_variant=True,
                          resolves_in_python=False, refuses_redirects=False,
                          survives_fork=False, **_MINIO_CAPABILITIES),
}
