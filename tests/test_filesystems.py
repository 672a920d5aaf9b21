"""The network backends' filesystem classes, as fsspec objects of their own.

Their behaviour (retries, transport guards, bulk deletes) lives in
``PerceptraS3FileSystem`` and ``PerceptraBlobFileSystem``, so it must survive the
ways fsspec moves a filesystem: pickling (Dask) and rebuilding from its
``storage_options``.  Bulk deletes fall back to one request per key only when
the store has no bulk delete, never on an auth or connection error.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from perceptra_storage import (
    StorageConnectionError,
    StorageOperationError,
    StoragePermissionError,
    StorageValidationError,
    get_storage_adapter,
)
from perceptra_storage.adapter import Resilience
from tests.conftest import NETWORK_BACKENDS, Backend, Faulty

ON_EACH = pytest.mark.parametrize("backend", NETWORK_BACKENDS, indirect=True)
TUNED = {"connect_timeout": 3, "read_timeout": 4, "max_attempts": 2, "retry_backoff": 0.2}
MODULES = {"s3": "_s3fs", "minio": "_s3fs", "azure": "_adlfs"}


def _tuned(backend: Backend) -> Any:
    assert backend.via is not None
    host, port = backend.server or ("", 0)
    return backend.via(f"http://{host}:{port}", TUNED)


@ON_EACH
def test_the_filesystem_pickles_by_its_module_path_with_its_settings(backend: Backend) -> None:
    adapter = _tuned(backend)
    fs = adapter.filesystem
    cls = type(fs)
    assert cls.__module__ == f"perceptra_storage.backends.{MODULES[backend.name]}"
    assert getattr(__import__(cls.__module__, fromlist=["x"]), cls.__qualname__) is cls
    clone = pickle.loads(pickle.dumps(fs))
    assert type(clone) is cls
    assert clone.resilience == fs.resilience == Resilience(**TUNED)
    adapter.upload_file(b"payload", "p/k.txt", metadata={"owner": "ana"})
    info = clone.object_info(adapter._path("p/k.txt"))
    assert (info.get("metadata") or info.get("Metadata")) == {"owner": "ana"}


@ON_EACH
def test_storage_options_rebuild_the_same_filesystem(backend: Backend) -> None:
    adapter = _tuned(backend)
    fs = adapter.filesystem
    rebuilt = type(fs)(**fs.storage_options)
    assert rebuilt.resilience == Resilience(**TUNED)
    adapter.upload_file(b"payload", "r/k.txt")
    assert rebuilt.cat_file(adapter._path("r/k.txt")) == b"payload"


def test_a_bulk_delete_refused_as_a_whole_fails_every_key_without_retrying_each(
        faulty: Faulty) -> None:
    writer = faulty.backend.make()
    keys = ["d/a.txt", "d/b.txt", "d/c.txt"]
    for key in keys:
        writer.upload_file(b"x", key)
    faulty.proxy.set("status", status=403, times=1)
    denied = faulty.make(max_attempts=1).delete_files(  # type: ignore[call-arg]
        keys, missing_ok=True)
    assert sorted(denied.failed) == keys
    assert all(isinstance(error, StoragePermissionError) for error in denied.failed.values())
    assert all(writer.file_exists(key) for key in keys)


def test_a_store_without_bulk_delete_gets_one_request_per_key(faulty: Faulty) -> None:
    writer = faulty.backend.make()
    keys = ["d/a.txt", "d/b.txt", "d/c.txt"]
    for key in keys:
        writer.upload_file(b"x", key)
    faulty.proxy.set("status", status=501, times=1)
    done = faulty.make(max_attempts=1).delete_files(  # type: ignore[call-arg]
        keys, missing_ok=True)
    assert done.ok, done.failed
    assert writer.list_files("d/") == []


@pytest.mark.parametrize("credentials", [
    {"tenant_id": "t", "client_id": "c", "client_secret": "s"}, None],
    ids=["service principal", "DefaultAzureCredential"])
def test_an_azure_secret_in_the_environment_does_not_replace_a_token_credential(
        monkeypatch: pytest.MonkeyPatch, credentials: Any) -> None:
    pytest.importorskip("adlfs")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                       "DefaultEndpointsProtocol=https;AccountName=other;AccountKey=a2V5;"
                       "EndpointSuffix=core.windows.net")
    adapter: Any = get_storage_adapter("azure", {"container_name": "box",
                                                 "account_name": "acct"}, credentials)
    with pytest.raises(StorageValidationError, match="from the environment"):
        adapter.filesystem  # noqa: B018 - building it is the check


@ON_EACH
def test_a_redirect_to_another_host_is_refused_once_as_an_operation_error(
        backend: Backend) -> None:
    import http.server
    import threading

    hits: list[str] = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(307)
            self.send_header("Location", f"http://localhost:9{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_HEAD = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert backend.via is not None
        adapter = backend.via(f"http://127.0.0.1:{server.server_port}",
                              {"max_attempts": 3, "retry_backoff": 0.01})
        with pytest.raises(StorageOperationError) as caught:
            adapter.download_file("k")
    finally:
        server.shutdown()
    assert not isinstance(caught.value, StorageConnectionError)
    assert len(hits) == 1
