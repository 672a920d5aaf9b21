"""Objects carry exactly what the user set, as the service's own SDK sees them.

Every write route of the adapter (bytes, a path, a stream, ``open('wb')``, empty
objects, copies, batches, plain fsspec calls on ``adapter.fs``) is read back with
boto3 or azure-storage-blob, and content type and metadata are compared exactly:
no bookkeeping entries (adlfs's ``is_directory``) and nothing lost.  The reverse
direction, objects written with the SDK, reads back exactly through the adapter.
Runs on the network backends, each test on a fresh bucket or container.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from perceptra_storage import BaseStorageAdapter
from tests.cases_s3 import s3_client
from tests.conftest import NETWORK_BACKENDS, Backend

MiB = 2**20

pytestmark = pytest.mark.parametrize("backend", NETWORK_BACKENDS, indirect=True)

# Names without '_': Ceph's RADOS Gateway hands '_' in a metadata name back as '-' to
# every client, boto3 included; the adapter maps it back (tested in the other direction).
USER_METADATA = {"owner": "ana", "stage": "raw data", "n": "7"}


class Native:
    """The service's own SDK on the store of ``storage``."""

    def __init__(self, backend: Backend, request: pytest.FixtureRequest,
                 storage: BaseStorageAdapter) -> None:
        self.kind = backend.name
        config: dict[str, Any] = storage.config
        if self.kind == "azure":
            from azure.storage.blob import BlobServiceClient

            server = request.getfixturevalue("azurite_server")
            service = BlobServiceClient.from_connection_string(server.connection_string)
            self.container = service.get_container_client(config["container_name"])
        else:
            server = request.getfixturevalue("moto_server" if self.kind == "s3" else "rgw_server")
            self.client = s3_client(server)
            self.bucket = config["bucket_name"]

    def head(self, key: str) -> tuple[str, dict[str, str]]:
        """Content type and user metadata, as the SDK reads them."""
        if self.kind == "azure":
            props = self.container.get_blob_client(key).get_blob_properties()
            return props.content_settings.content_type, dict(props.metadata)
        head = self.client.head_object(Bucket=self.bucket, Key=key)
        return head["ContentType"], dict(head.get("Metadata", {}))

    def put(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> None:
        if self.kind == "azure":
            from azure.storage.blob import ContentSettings

            self.container.upload_blob(key, data, metadata=metadata,
                                       content_settings=ContentSettings(content_type=content_type))
        else:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                   ContentType=content_type, Metadata=metadata)


@pytest.fixture
def native(backend: Backend, request: pytest.FixtureRequest,
           storage: BaseStorageAdapter) -> Native:
    return Native(backend, request, storage)


def test_bytes_path_and_stream_uploads_carry_exactly_the_users_fields(
        storage: BaseStorageAdapter, native: Native, tmp_path: Path) -> None:
    local = tmp_path / "table.json"
    local.write_bytes(b"{}")
    storage.upload_file(b"a,b\n1,2\n", "w/bytes.csv", content_type="text/csv",
                        metadata=USER_METADATA)
    storage.upload_file(local, "w/path.json", metadata={"source": "disk"})
    storage.upload_file(io.BytesIO(b"x" * 100), "w/stream.bin",
                        content_type="application/x-test", metadata=USER_METADATA)
    storage.upload_file(b"no fields", "w/plain.txt")
    assert native.head("w/bytes.csv") == ("text/csv", USER_METADATA)
    assert native.head("w/path.json") == ("application/json", {"source": "disk"})
    assert native.head("w/stream.bin") == ("application/x-test", USER_METADATA)
    assert native.head("w/plain.txt") == ("text/plain", {})


def test_a_multipart_stream_carries_exactly_the_users_fields(
        storage: BaseStorageAdapter, native: Native) -> None:
    storage.upload_file(io.BytesIO(b"\x01" * 12 * MiB), "w/big.bin", metadata=USER_METADATA)
    assert native.head("w/big.bin") == ("application/octet-stream", USER_METADATA)


def test_empty_objects_carry_exactly_the_users_fields(
        storage: BaseStorageAdapter, native: Native) -> None:
    storage.upload_file(b"", "e/bytes.txt", metadata=USER_METADATA)
    storage.upload_file(io.BytesIO(b""), "e/stream.csv", metadata={"empty": "yes"})
    with storage.open("e/open.bin", "wb"):
        pass
    assert native.head("e/bytes.txt") == ("text/plain", USER_METADATA)
    assert native.head("e/stream.csv") == ("text/csv", {"empty": "yes"})
    assert native.head("e/open.bin") == ("application/octet-stream", {})


def test_open_for_writing_stores_the_keys_content_type_and_no_metadata(
        storage: BaseStorageAdapter, native: Native) -> None:
    with storage.open("o/notes.txt", "wb") as f:
        f.write(b"line\n" * 10)
    assert native.head("o/notes.txt") == ("text/plain", {})


def test_a_copy_carries_exactly_the_sources_fields(storage: BaseStorageAdapter,
                                                   native: Native) -> None:
    storage.upload_file(b"original", "c/source.csv", metadata=USER_METADATA)
    storage.copy_file("c/source.csv", "c/copy.csv")
    assert native.head("c/copy.csv") == ("text/csv", USER_METADATA)


def test_batch_uploads_carry_exactly_the_keys_content_type(
        storage: BaseStorageAdapter, native: Native, tmp_path: Path) -> None:
    local = tmp_path / "b.html"
    local.write_bytes(b"<p>")
    result = storage.upload_files({"b/a.txt": b"a", "b/b.html": local,
                                   "b/c.bin": io.BytesIO(b"c")})
    assert not result.failed
    assert native.head("b/a.txt") == ("text/plain", {})
    assert native.head("b/b.html") == ("text/html", {})
    assert native.head("b/c.bin") == ("application/octet-stream", {})


def test_plain_fsspec_writes_through_adapter_fs_carry_the_keys_content_type(
        storage: BaseStorageAdapter, native: Native, tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    fs: Any = storage.fs  # type: ignore[attr-defined]
    fs.pipe_file("f/piped.csv", b"a\n1\n")
    local = tmp_path / "put.json"
    local.write_bytes(b"[]")
    fs.put_file(str(local), "f/put.json")
    with fs.open("f/frame.csv", "wb") as handle:
        pandas.DataFrame({"a": [1, 2]}).to_csv(handle, index=False)
    fs.pipe_file("f/tagged.txt", b"t", metadata={"owner": "fs"})
    assert native.head("f/piped.csv") == ("text/csv", {})
    assert native.head("f/put.json") == ("application/json", {})
    assert native.head("f/frame.csv") == ("text/csv", {})
    assert native.head("f/tagged.txt") == ("text/plain", {"owner": "fs"})
    assert storage.download_file("f/frame.csv") == b"a\n1\n2\n"


def test_objects_written_with_the_sdk_read_back_exactly(storage: BaseStorageAdapter,
                                                        native: Native) -> None:
    fields = {"owner": "bob", "run_id": "42", "note": "spaces and: colons"}
    native.put("n/sdk.parquet", b"PAR1", "application/vnd.apache.parquet", fields)
    native.put("n/bare.bin", b"", "application/octet-stream", {})
    info = storage.get_file_metadata("n/sdk.parquet")
    assert (info.content_type, info.metadata, info.size) == \
        ("application/vnd.apache.parquet", fields, 4)
    bare = storage.get_file_metadata("n/bare.bin")
    assert (bare.content_type, bare.metadata, bare.size) == ("application/octet-stream", {}, 0)
    assert [o.key for o in storage.list_files("n/")] == ["n/bare.bin", "n/sdk.parquet"]
    assert storage.file_exists("n/sdk.parquet")
    storage.copy_file("n/sdk.parquet", "n/copied.parquet")
    copied = storage.get_file_metadata("n/copied.parquet")
    assert (copied.content_type, copied.metadata) == ("application/vnd.apache.parquet", fields)
