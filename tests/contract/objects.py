"""Objects: write, read, overwrite, copy, delete and test for one key; what a key names."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perceptra_storage import (
    StorageAdapter,
    StorageError,
    StorageNotFoundError,
    StorageValidationError,
)
from tests.conftest import Backend

from .base import KEYS, ContractBase

PAYLOADS = st.one_of(st.just(b""), st.binary(min_size=1, max_size=1),
                     st.binary(max_size=4096),
                     st.integers(1, 3 * 1024 * 1024).map(lambda n: b"\xa5" * n))
"""Empty, one byte, small, and up to 3 MiB."""


class _PathLike:
    """An ``os.PathLike`` that is not a ``pathlib`` path."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __fspath__(self) -> str:
        return self._path


class ObjectTests(ContractBase):
    """Single-object operations and the key space they work on."""

    def test_upload_bytes_returns_key_and_downloads_same(self, storage: StorageAdapter) -> None:
        assert storage.upload_file(b"hello world", "docs/a.txt") == "docs/a.txt"
        assert storage.download_file("docs/a.txt") == b"hello world"

    @pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "fileobj", "path",
                                      "pathlike"])
    def test_upload_accepts_every_source_kind(self, storage: StorageAdapter, tmp_path: Path,
                                              kind: str) -> None:
        data = bytes(range(256)) * 40
        local = tmp_path / "source.bin"
        local.write_bytes(data)
        source: Any = {
            "bytes": data, "bytearray": bytearray(data), "memoryview": memoryview(data),
            "fileobj": io.BytesIO(data), "path": _PathLike(str(local)), "pathlike": local,
        }[kind]
        storage.upload_file(source, f"kinds/{kind}.bin")
        assert storage.download_file(f"kinds/{kind}.bin") == data

    def test_upload_from_open_binary_file(
            self, storage: StorageAdapter, tmp_path: Path) -> None:
        local = tmp_path / "data.csv"
        local.write_bytes(b"a,b\n1,2\n")
        with open(local, "rb") as f:
            storage.upload_file(f, "datasets/data.csv", content_type="text/csv")
        assert storage.download_file("datasets/data.csv") == b"a,b\n1,2\n"

    def test_upload_overwrites(self, storage: StorageAdapter) -> None:
        storage.upload_file(b"v1", "k")
        storage.upload_file(b"version two", "k")
        assert storage.download_file("k") == b"version two"
        assert storage.get_file_metadata("k").size == len(b"version two")

    def test_text_mode_file_is_refused_and_nothing_stored(self, storage: StorageAdapter,
                                                          tmp_path: Path) -> None:
        local = tmp_path / "t.txt"
        local.write_text("text")
        with open(local) as f, pytest.raises(StorageValidationError, match="text mode"):
            storage.upload_file(f, "t.txt")
        with pytest.raises(StorageValidationError):
            storage.upload_file(io.StringIO("text"), "t.txt")
        assert not storage.file_exists("t.txt")

    def test_str_source_is_refused_before_any_io(self, storage: StorageAdapter,
                                                 tmp_path: Path) -> None:
        """A str could be a path or text from a user: refused by its type, whatever it
        names (an existing file, or nothing), on every upload route that takes content."""
        local = tmp_path / "secret.txt"
        local.write_bytes(b"server file")
        for text in (str(local), str(tmp_path / "missing"), "plain text"):
            with pytest.raises(StorageValidationError, match=r"pathlib\.Path") as info:
                storage.upload_file(text, "k")  # type: ignore[arg-type]
            assert info.value.key == "k" and info.value.operation == "upload"
        result = storage.upload_files([(str(local), "batch/a"), (b"ok", "batch/b")])
        assert result.succeeded == ["batch/b"]
        assert isinstance(result.failed["batch/a"], StorageValidationError)
        storage.fs.put_file(str(local), "routes/put.txt")  # fsspec's put_file takes paths
        assert [o.key for o in storage.list_files()] == ["batch/b", "routes/put.txt"]

    def test_a_name_can_be_an_object_and_a_folder_where_the_store_allows(
            self, backend: Backend, storage: StorageAdapter) -> None:
        """Object stores keep ``a`` and ``a/b`` side by side; a directory tree cannot."""
        storage.upload_file(b"child", "a/b")
        if backend.directories:
            with pytest.raises(StorageError):
                storage.upload_file(b"parent", "a")
            assert [o.key for o in storage.list_files()] == ["a/b"]
            return
        storage.upload_file(b"parent", "a")
        storage.upload_file(b"grandchild", "a/b/c")
        assert [o.key for o in storage.list_files()] == ["a", "a/b", "a/b/c"]
        assert storage.download_file("a") == b"parent"
        assert storage.download_file("a/b") == b"child"
        storage.delete_file("a")
        assert storage.download_file("a/b") == b"child"

    def test_missing_source_path_is_a_validation_error(self, storage: StorageAdapter,
                                                       tmp_path: Path) -> None:
        with pytest.raises(StorageValidationError, match="not an existing local file"):
            storage.upload_file(tmp_path / "nope.bin", "k")
        with pytest.raises(StorageValidationError):
            storage.upload_file(12345, "k")  # type: ignore[arg-type]
        assert storage.list_files() == []

    def test_download_to_path_streams_and_returns_path(self, storage: StorageAdapter,
                                                       tmp_path: Path) -> None:
        data = b"z" * (3 * 1024 * 1024 + 7)
        storage.upload_file(data, "big/file.bin")
        target = tmp_path / "out" / "file.bin"
        assert storage.download_file("big/file.bin", target) == str(target)
        assert target.read_bytes() == data
        assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]

    def test_download_missing_to_path_keeps_existing_file(self, storage: StorageAdapter,
                                                          tmp_path: Path) -> None:
        target = tmp_path / "downloads" / "existing.bin"
        target.parent.mkdir()
        target.write_bytes(b"mine")
        with pytest.raises(StorageNotFoundError):
            storage.download_file("missing.bin", str(target))
        assert target.read_bytes() == b"mine"
        assert sorted(p.name for p in target.parent.iterdir()) == ["existing.bin"]

    def test_download_to_a_folder_is_refused_and_over_a_file_replaces_it(
            self, storage: StorageAdapter, tmp_path: Path) -> None:
        folder = tmp_path / "downloads"
        folder.mkdir()
        storage.upload_file(b"new", "d.bin")
        with pytest.raises(StorageValidationError, match="directory"):
            storage.download_file("d.bin", folder)
        assert list(folder.iterdir()) == []
        (folder / "d.bin").write_bytes(b"old")
        assert storage.download_file("d.bin", folder / "d.bin") == str(folder / "d.bin")
        assert (folder / "d.bin").read_bytes() == b"new"
        assert [p.name for p in folder.iterdir()] == ["d.bin"]

    def test_download_to_binary_file_object(self, storage: StorageAdapter) -> None:
        storage.upload_file(b"stream me", "s.bin")
        sink = io.BytesIO()
        assert storage.download_file("s.bin", sink) is sink
        assert sink.getvalue() == b"stream me"
        with pytest.raises(StorageValidationError):
            storage.download_file("s.bin", io.StringIO())

    def test_empty_stream_keeps_content_type_and_metadata(
            self, storage: StorageAdapter) -> None:
        storage.upload_file(io.BytesIO(b""), "empty.json", metadata={"k": "v"})
        info = storage.get_file_metadata("empty.json")
        assert (info.size, info.content_type, info.metadata) == (0, "application/json", {"k": "v"})

    def test_empty_object_round_trips(self, storage: StorageAdapter) -> None:
        storage.upload_file(b"", "empty")
        assert storage.download_file("empty") == b""
        assert storage.get_file_metadata("empty").size == 0
        assert [o.key for o in storage.list_files()] == ["empty"]

    def test_missing_key_errors_are_typed_and_carry_context(self, backend: Backend,
                                                            storage: StorageAdapter) -> None:
        for call, operation in [(lambda: storage.download_file("no/such.txt"), "download"),
                                (lambda: storage.get_file_metadata("no/such.txt"), "stat"),
                                (lambda: storage.delete_file("no/such.txt"), "delete")]:
            with pytest.raises(StorageNotFoundError) as info:
                call()
            error = info.value
            assert isinstance(error, FileNotFoundError) and isinstance(error, StorageError)
            assert (error.backend, error.operation, error.key) == (backend.name, operation,
                                                                   "no/such.txt")
            assert backend.name in str(error) and "no/such.txt" in str(error)

    def test_directory_is_not_a_file(self, storage: StorageAdapter) -> None:
        storage.upload_file(b"x", "folder/inner.txt")
        assert storage.file_exists("folder") is False
        for call in (lambda: storage.download_file("folder"),
                     lambda: storage.get_file_metadata("folder"),
                     lambda: storage.delete_file("folder")):
            with pytest.raises(StorageNotFoundError):
                call()
        assert storage.download_file("folder/inner.txt") == b"x"

    def test_delete_then_exists(self, storage: StorageAdapter) -> None:
        storage.upload_file(b"x", "d/k")
        assert storage.file_exists("d/k") is True
        assert storage.delete_file("d/k") is True
        assert storage.file_exists("d/k") is False
        with pytest.raises(StorageNotFoundError):
            storage.delete_file("d/k")

    def test_copy_keeps_content_type_and_metadata(self, storage: StorageAdapter) -> None:
        storage.upload_file(b"{}", "src.json", content_type="application/json",
                            metadata={"owner": "ana"})
        assert storage.copy_file("src.json", "copies/dst.bin") == "copies/dst.bin"
        info = storage.get_file_metadata("copies/dst.bin")
        assert storage.download_file("copies/dst.bin") == b"{}"
        assert (info.content_type, info.metadata) == ("application/json", {"owner": "ana"})
        with pytest.raises(StorageNotFoundError):
            storage.copy_file("nope", "x")

    def test_move_keeps_content_type_and_metadata(self, storage: StorageAdapter) -> None:
        storage.upload_file(b"payload", "in/a.csv", content_type="text/csv",
                            metadata={"owner": "ops"})
        storage.upload_file(b"old", "out/b.csv")
        assert storage.move_file("in/a.csv", "out/b.csv") == "out/b.csv"
        assert not storage.file_exists("in/a.csv")
        assert storage.download_file("out/b.csv") == b"payload"
        info = storage.get_file_metadata("out/b.csv")
        assert (info.content_type, info.metadata) == ("text/csv", {"owner": "ops"})
        assert [o.key for o in storage.list_files()] == ["out/b.csv"]

    def test_bad_moves_change_nothing(self, storage: StorageAdapter) -> None:
        storage.upload_file(b"x", "k")
        with pytest.raises(StorageNotFoundError) as missing:
            storage.move_file("absent", "elsewhere")
        assert missing.value.operation == "move" and "absent" in str(missing.value)
        with pytest.raises(StorageValidationError, match="same key"):
            storage.move_file("k", "k")
        with pytest.raises(StorageValidationError):
            storage.move_file("k", "../escape")
        assert storage.download_file("k") == b"x" and not storage.file_exists("elsewhere")

    def test_deleting_the_last_key_under_a_folder_frees_the_name(
            self, storage: StorageAdapter) -> None:
        storage.upload_file(b"inner", "p/q")
        storage.delete_file("p/q")
        storage.upload_file(b"now a file", "p")
        assert storage.download_file("p") == b"now a file"
        assert [o.key for o in storage.list_files()] == ["p"]

    @pytest.mark.parametrize("key", ["ünïcødé/ключ.txt", "with space/a b.txt", "plus+sign",
                                     "amp&and", "per%cent", "per%2Fslash", "emoji/🚀🔥.bin",
                                     "q?a=b#frag", "semi;colon,comma", "漢字/かな"])
    def test_unusual_keys_round_trip(self, storage: StorageAdapter, key: str) -> None:
        storage.upload_file(key.encode(), key)
        assert storage.download_file(key) == key.encode()
        assert storage.get_file_metadata(key).key == key
        assert [o.key for o in storage.list_files()] == [key]
        storage.delete_file(key)
        assert storage.list_files() == []

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(key=KEYS, payload=PAYLOADS)
    def test_property_round_trip(
            self, storage: StorageAdapter, key: str, payload: bytes) -> None:
        storage.upload_file(payload, key)
        try:
            assert storage.download_file(key) == payload
            assert key in [o.key for o in storage.list_files(prefix=key)]
        finally:
            storage.delete_file(key)
