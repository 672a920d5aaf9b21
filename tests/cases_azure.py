"""The ``azure`` backend of the contract suite, on Azurite over loopback HTTP.

Azurite starts once per session (once per run under pytest-xdist, shared by the
workers); each test gets a fresh, uniquely named container, created here with the
SDK and deleted after the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import pytest

from perceptra_storage import get_storage_adapter
from tests.conftest import Backend, Case, unavailable, untraced
from tests.servers.common import AzuriteServer, ServerUnavailable
from tests.servers.shared import start_server


@pytest.fixture(scope="session")
def azurite_server(request: pytest.FixtureRequest) -> Iterator[AzuriteServer]:
    try:
        server: AzuriteServer = start_server(getattr(request.config, "workerinput", None),
                                             "azurite")
    except ServerUnavailable as exc:
        unavailable(f"Azurite: {exc}")
    yield server
    server.stop()


def new_container(server: AzuriteServer) -> tuple[str, Any]:
    """A fresh container on ``server`` and a callable that deletes it."""
    from azure.storage.blob import BlobServiceClient

    name = f"t{uuid.uuid4().hex}"
    with untraced():
        service = BlobServiceClient.from_connection_string(server.connection_string)
        service.create_container(name)

    def delete() -> None:
        with untraced():
            service.delete_container(name)
            service.close()

    return name, delete


def _azure(request: pytest.FixtureRequest, tmp_path: Path, engine: Optional[str] = None
           ) -> Backend:
    server: AzuriteServer = request.getfixturevalue("azurite_server")
    container, delete = new_container(server)
    config = {"container_name": container, "account_url": server.account_url,
              **({"engine": engine} if engine else {})}
    credentials = {"account_key": server.account_key}

    def make(prefix: Optional[str]) -> Any:
        return get_storage_adapter("azure", {**config, "prefix": prefix} if prefix else config,
                                   credentials)

    def via(endpoint: str, extra: dict[str, Any]) -> Any:
        return get_storage_adapter("azure", {**config, **extra, "account_url":
                                             f"{endpoint}/{server.account_name}"}, credentials)

    def pending() -> int:
        """Blobs that exist only as uncommitted blocks (an upload that never committed)."""
        from azure.storage.blob import ContainerClient

        with ContainerClient.from_connection_string(server.connection_string,
                                                    container) as client:
            every = {b.name for b in client.list_blobs(include=["uncommittedblobs"])}
            committed = {b.name for b in client.list_blobs()}
        return len(every - committed)

    def seeder() -> Any:
        return get_storage_adapter("azure", {**config, "engine": "obstore"}, credentials)

    parts = urlsplit(server.account_url)
    return Backend("azure", make, secrets=(server.account_key,), cleanup=[delete],
                   server=(str(parts.hostname), int(parts.port or 80)), via=via,
                   pending_uploads=pending, seeder=seeder)


def _azure_obstore(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The azure backend on the obstore engine, on the same Azurite."""
    return _azure(request, tmp_path, "obstore")


_CAPABILITIES: dict[str, Any] = {
    "presign_methods": frozenset({"GET", "PUT", "HEAD", "DELETE"}), "network": True,
    "multipart_uploads": True, "discards_failed_uploads": False, "response_overrides": True,
    "cors": True, "cors_shared": True, "signatures_checked": True}

BACKENDS = {
    "azure": Case(start=_azure, checks_upload_checksums=True, **_CAPABILITIES),
    # obstore sends no per-request MD5: checksum=True uploads are read back instead.
    "azure-obstore": Case(start=_azure_obstore, generic=False, engine_variant=True,
                          resolves_in_python=False, refuses_redirects=False,
                          survives_fork=False, **_CAPABILITIES),
}
