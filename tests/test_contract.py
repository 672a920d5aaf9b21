"""The contract of DESIGN.md, run unchanged on every backend in ``conftest.BACKENDS``."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perceptra_storage import (
    BaseStorageAdapter,
    PresignedUrl,
    StorageConnectionError,
    StorageError,
    StorageNotFoundError,
    StorageOperationError,
    StoragePermissionError,
    StorageTimeoutError,
    StorageValidationError,
)

from .conftest import Backend, Faulty

INVALID_KEYS = [
    "", "/abs", "a//b", "a/", "./a", "a/./b", "a/../b", "..", "a/%2e%2e/b", "a\\b",
    "nul\x00", "tab\tkey", "bell\x07", "del\x7f", "x" * 1025, "é" * 513, 42, None, b"bytes",
]

# --- upload and download ----------------------------------------------------------------


def test_upload_bytes_returns_key_and_downloads_same(storage: BaseStorageAdapter) -> None:
    assert storage.upload_file(b"hello world", "docs/a.txt") == "docs/a.txt"
    assert storage.download_file("docs/a.txt") == b"hello world"


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "fileobj", "path",
                                  "pathlike"])
def test_upload_accepts_every_source_kind(storage: BaseStorageAdapter, tmp_path: Path,
                                          kind: str) -> None:
    data = bytes(range(256)) * 40
    local = tmp_path / "source.bin"
    local.write_bytes(data)
    source: Any = {
        "bytes": data, "bytearray": bytearray(data), "memoryview": memoryview(data),
        "fileobj": io.BytesIO(data), "path": str(local), "pathlike": local,
    }[kind]
    storage.upload_file(source, f"kinds/{kind}.bin")
    assert storage.download_file(f"kinds/{kind}.bin") == data


def test_upload_from_open_binary_file(storage: BaseStorageAdapter, tmp_path: Path) -> None:
    local = tmp_path / "data.csv"
    local.write_bytes(b"a,b\n1,2\n")
    with open(local, "rb") as f:
        storage.upload_file(f, "datasets/data.csv", content_type="text/csv")
    assert storage.download_file("datasets/data.csv") == b"a,b\n1,2\n"


def test_upload_overwrites(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"v1", "k")
    storage.upload_file(b"version two", "k")
    assert storage.download_file("k") == b"version two"
    assert storage.get_file_metadata("k").size == len(b"version two")


def test_text_mode_file_is_refused_and_nothing_stored(storage: BaseStorageAdapter,
                                                      tmp_path: Path) -> None:
    local = tmp_path / "t.txt"
    local.write_text("text")
    with open(local) as f, pytest.raises(StorageValidationError, match="text mode"):
        storage.upload_file(f, "t.txt")
    with pytest.raises(StorageValidationError):
        storage.upload_file(io.StringIO("text"), "t.txt")
    assert not storage.file_exists("t.txt")


def test_missing_source_path_is_a_validation_error(storage: BaseStorageAdapter,
                                                   tmp_path: Path) -> None:
    with pytest.raises(StorageValidationError, match="not an existing local file"):
        storage.upload_file(str(tmp_path / "nope.bin"), "k")
    with pytest.raises(StorageValidationError):
        storage.upload_file(12345, "k")  # type: ignore[arg-type]
    assert storage.list_files() == []


class _FailingReader(io.RawIOBase):
    """Gives some bytes, then fails: a network source dropping mid-upload."""

    def __init__(self, good: bytes) -> None:
        self._good = good
        self.mode = "rb"

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._good:
            chunk, self._good = self._good, b""
            return chunk
        raise OSError("source went away")


def test_failed_upload_keeps_previous_version_and_leaves_nothing(
        storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"original", "keep.bin", metadata={"v": "1"})
    with pytest.raises(StorageError) as info:
        storage.upload_file(_FailingReader(b"partial new bytes"), "keep.bin")
    assert isinstance(info.value.__cause__, OSError)
    assert storage.download_file("keep.bin") == b"original"
    assert storage.get_file_metadata("keep.bin").metadata == {"v": "1"}
    with pytest.raises(StorageError):
        storage.upload_file(_FailingReader(b"partial"), "fresh.bin")
    assert not storage.file_exists("fresh.bin")
    assert [o.key for o in storage.list_files()] == ["keep.bin"]


def test_download_to_path_streams_and_returns_path(storage: BaseStorageAdapter,
                                                   tmp_path: Path) -> None:
    data = b"z" * (3 * 1024 * 1024 + 7)
    storage.upload_file(data, "big/file.bin")
    target = tmp_path / "out" / "file.bin"
    assert storage.download_file("big/file.bin", target) == str(target)
    assert target.read_bytes() == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_download_missing_to_path_keeps_existing_file(storage: BaseStorageAdapter,
                                                      tmp_path: Path) -> None:
    target = tmp_path / "downloads" / "existing.bin"
    target.parent.mkdir()
    target.write_bytes(b"mine")
    with pytest.raises(StorageNotFoundError):
        storage.download_file("missing.bin", str(target))
    assert target.read_bytes() == b"mine"
    assert sorted(p.name for p in target.parent.iterdir()) == ["existing.bin"]


def test_download_to_binary_file_object(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"stream me", "s.bin")
    sink = io.BytesIO()
    assert storage.download_file("s.bin", sink) is sink
    assert sink.getvalue() == b"stream me"
    with pytest.raises(StorageValidationError):
        storage.download_file("s.bin", io.StringIO())


def test_empty_stream_keeps_content_type_and_metadata(storage: BaseStorageAdapter) -> None:
    storage.upload_file(io.BytesIO(b""), "empty.json", metadata={"k": "v"})
    info = storage.get_file_metadata("empty.json")
    assert (info.size, info.content_type, info.metadata) == (0, "application/json", {"k": "v"})


def test_empty_object_round_trips(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"", "empty")
    assert storage.download_file("empty") == b""
    assert storage.get_file_metadata("empty").size == 0
    assert [o.key for o in storage.list_files()] == ["empty"]


# --- errors -----------------------------------------------------------------------------


def test_missing_key_errors_are_typed_and_carry_context(backend: Backend,
                                                        storage: BaseStorageAdapter) -> None:
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


def test_directory_is_not_a_file(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"x", "folder/inner.txt")
    assert storage.file_exists("folder") is False
    for call in (lambda: storage.download_file("folder"),
                 lambda: storage.get_file_metadata("folder"),
                 lambda: storage.delete_file("folder")):
        with pytest.raises(StorageNotFoundError):
            call()
    assert storage.download_file("folder/inner.txt") == b"x"


@pytest.mark.parametrize("key", INVALID_KEYS, ids=repr)
def test_invalid_keys_are_refused_before_any_io(storage: BaseStorageAdapter, key: Any) -> None:
    calls = [
        lambda: storage.upload_file(b"data", key),
        lambda: storage.download_file(key),
        lambda: storage.delete_file(key),
        lambda: storage.file_exists(key),
        lambda: storage.get_file_metadata(key),
        lambda: storage.generate_presigned_url(key),
    ]
    for call in calls:
        with pytest.raises(StorageValidationError) as info:
            call()
        assert isinstance(info.value, ValueError)
    assert storage.list_files() == []


@pytest.mark.parametrize("prefix", ["/x", "a//b", "../", "a/../b", "a\\b", "n\x00"], ids=repr)
def test_invalid_list_prefix_is_refused(storage: BaseStorageAdapter, prefix: str) -> None:
    with pytest.raises(StorageValidationError):
        storage.list_files(prefix)


# --- metadata ---------------------------------------------------------------------------


def test_metadata_fields(storage: BaseStorageAdapter) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    storage.upload_file(b"1,2\n", "m/data.csv", metadata={"owner": "ana", "run_id": "42"})
    info = storage.get_file_metadata("m/data.csv")
    assert info.key == "m/data.csv" and info.size == 4
    assert info.last_modified.tzinfo is not None
    assert info.last_modified.utcoffset() == timedelta(0)
    assert before <= info.last_modified <= datetime.now(UTC) + timedelta(seconds=5)
    assert info.etag and '"' not in info.etag
    assert info.content_type == "text/csv"
    assert info.metadata == {"owner": "ana", "run_id": "42"}


def test_etag_changes_with_content(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"one", "e.bin")
    first = storage.get_file_metadata("e.bin").etag
    storage.upload_file(b"two!", "e.bin")
    assert storage.get_file_metadata("e.bin").etag != first


@pytest.mark.parametrize("key, expected", [
    ("a.json", "application/json"), ("b.png", "image/png"), ("c.csv", "text/csv"),
    ("noext", "application/octet-stream"), ("d.parquet", "application/octet-stream"),
])
def test_default_content_type_from_extension(storage: BaseStorageAdapter, key: str,
                                             expected: str) -> None:
    storage.upload_file(b"x", key)
    assert storage.get_file_metadata(key).content_type == expected


def test_explicit_content_type_wins(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"{}", "x.txt", content_type="application/json; charset=utf-8")
    assert storage.get_file_metadata("x.txt").content_type == "application/json; charset=utf-8"


@pytest.mark.parametrize("metadata", [
    {"Owner": "upper-case name"}, {"my-key": "hyphen"}, {"1st": "digit first"},
    {"k": "é non-ascii"}, {"k": " padded "}, {"k": 5}, {"is_directory": "true"},
    {"k": "line\nbreak"}, {"big": "x" * 3000},
], ids=repr)
def test_unportable_metadata_is_refused_before_upload(storage: BaseStorageAdapter,
                                                      metadata: Any) -> None:
    with pytest.raises(StorageValidationError):
        storage.upload_file(b"x", "meta.bin", metadata=metadata)
    assert not storage.file_exists("meta.bin")


def test_bad_content_type_is_refused(storage: BaseStorageAdapter) -> None:
    with pytest.raises(StorageValidationError, match="content_type"):
        storage.upload_file(b"x", "ct.bin", content_type="not a type\r\nX-Evil: 1")
    assert not storage.file_exists("ct.bin")


# --- delete and exists -------------------------------------------------------------------


def test_delete_then_exists(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"x", "d/k")
    assert storage.file_exists("d/k") is True
    assert storage.delete_file("d/k") is True
    assert storage.file_exists("d/k") is False
    with pytest.raises(StorageNotFoundError):
        storage.delete_file("d/k")


# --- listing ----------------------------------------------------------------------------

LISTED = ["a-b", "a/b", "a/c/d.txt", "a0", "data/file.csv", "data/file2.csv",
          "data/fig.png", "data/other/x", ".hidden", "notes.meta", "z"]


def _in_threads(work: Any, count: int) -> None:
    """Run ``work(n)`` for n in range(count), each in its own thread, and wait for all."""
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _seed(storage: BaseStorageAdapter) -> None:
    for key in reversed(LISTED):
        storage.upload_file(key.encode(), key)


def test_list_is_recursive_sorted_and_shows_dot_and_meta_files(
        storage: BaseStorageAdapter) -> None:
    _seed(storage)
    objects = storage.list_files()
    assert [o.key for o in objects] == sorted(LISTED)
    assert all(o.size == len(o.key) for o in objects)
    assert all(o.last_modified.tzinfo is not None for o in objects)


@pytest.mark.parametrize("prefix, expected", [
    ("data/", ["data/fig.png", "data/file.csv", "data/file2.csv", "data/other/x"]),
    ("data/fi", ["data/fig.png", "data/file.csv", "data/file2.csv"]),
    ("data/file", ["data/file.csv", "data/file2.csv"]),
    ("a", ["a-b", "a/b", "a/c/d.txt", "a0"]),
    ("a/", ["a/b", "a/c/d.txt"]),
    ("a/c/d.txt", ["a/c/d.txt"]),
    ("nothing", []),
    ("no/such/dir/", []),
])
def test_list_prefix_is_a_string_prefix(storage: BaseStorageAdapter, prefix: str,
                                        expected: list[str]) -> None:
    _seed(storage)
    assert [o.key for o in storage.list_files(prefix=prefix)] == expected


def test_list_max_results_and_unbounded_iterator(storage: BaseStorageAdapter) -> None:
    _seed(storage)
    assert [o.key for o in storage.list_files(max_results=3)] == sorted(LISTED)[:3]
    assert storage.list_files(max_results=0) == []
    iterator = storage.iter_files()
    assert next(iterator).key == sorted(LISTED)[0]
    assert [o.key for o in storage.iter_files("data/")] == \
        [k for k in sorted(LISTED) if k.startswith("data/")]
    with pytest.raises(StorageValidationError):
        storage.list_files(max_results=-1)


def test_listing_does_not_fetch_per_object_properties(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"x", "l.csv", metadata={"a": "b"})
    (listed,) = storage.list_files()
    assert listed.content_type is None and listed.metadata is None
    assert listed.etag == storage.get_file_metadata("l.csv").etag


# --- prefix scoping ---------------------------------------------------------------------


def test_prefix_scopes_an_adapter_to_a_subtree(backend: Backend) -> None:
    root = backend.make()
    tenant_a = backend.make("tenants/a")
    tenant_b = backend.make("/tenants/b/")
    tenant_a.upload_file(b"A", "report.csv", metadata={"t": "a"})
    tenant_b.upload_file(b"B", "report.csv")
    assert tenant_a.download_file("report.csv") == b"A"
    assert tenant_b.download_file("report.csv") == b"B"
    assert [o.key for o in tenant_a.list_files()] == ["report.csv"]
    assert tenant_a.get_file_metadata("report.csv").key == "report.csv"
    assert [o.key for o in root.list_files()] == ["tenants/a/report.csv",
                                                  "tenants/b/report.csv"]
    tenant_a.delete_file("report.csv")
    assert tenant_b.file_exists("report.csv")
    with pytest.raises(StorageValidationError):
        tenant_a.download_file("../b/report.csv")


def test_bad_prefix_config_is_refused(backend: Backend) -> None:
    for prefix in ("a/../b", "a//b", "x\x00"):
        with pytest.raises(StorageValidationError, match="prefix"):
            backend.make(prefix)


# --- presigned and public URLs ---------------------------------------------------------


@pytest.mark.parametrize("expiration", [0, -1, 604801, 1.5, "60", True])
def test_presign_expiration_out_of_range(storage: BaseStorageAdapter, expiration: Any) -> None:
    with pytest.raises(StorageValidationError, match="expiration"):
        storage.generate_presigned_url("k", expiration=expiration)


@pytest.mark.parametrize("method", ["POST", "PATCH", "get me", 1])
def test_presign_unknown_method(storage: BaseStorageAdapter, method: Any) -> None:
    with pytest.raises(StorageValidationError, match="method"):
        storage.generate_presigned_url("k", method=method)


def test_presigned_get_works_with_plain_http_or_is_refused_clearly(
        backend: Backend, storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"shared bytes", "share/me.txt")
    if "GET" not in backend.presign_methods:
        with pytest.raises(StorageOperationError) as info:
            storage.generate_presigned_url("share/me.txt")
        assert backend.name in str(info.value)
        return
    signed = storage.generate_presigned_url("share/me.txt", expiration=600)
    assert isinstance(signed, PresignedUrl) and signed.method == "GET"
    assert signed.expires_at.tzinfo is not None
    remaining = signed.expires_at - datetime.now(UTC)
    assert timedelta(seconds=590) < remaining <= timedelta(seconds=600)
    request = urllib.request.Request(signed.url, headers=signed.headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.read() == b"shared bytes"


def test_public_url_is_none_or_a_url(storage: BaseStorageAdapter) -> None:
    url = storage.get_public_url("pub/x.txt")
    assert url is None or "pub/x.txt" in url
    with pytest.raises(StorageValidationError):
        storage.get_public_url("../x")


# --- life cycle -------------------------------------------------------------------------


def test_context_manager_closes_and_adapter_stays_usable(backend: Backend) -> None:
    with backend.make() as adapter:
        adapter.upload_file(b"in", "ctx.txt")
    assert adapter.download_file("ctx.txt") == b"in"


def test_test_connection(storage: BaseStorageAdapter) -> None:
    assert storage.test_connection() is True
    assert storage.test_connection(timeout=2) is True
    with pytest.raises(StorageValidationError, match="timeout"):
        storage.test_connection(timeout=0)


def test_pickled_adapter_reads_the_same_objects(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"shipped to a worker", "p/k.bin")
    clone = pickle.loads(pickle.dumps(storage))
    assert clone.download_file("p/k.bin") == b"shipped to a worker"
    assert [o.key for o in clone.list_files()] == ["p/k.bin"]


def test_adapters_are_thread_safe(storage: BaseStorageAdapter) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                key = f"threads/{n}/{i}"
                payload = f"{n}-{i}".encode() * (i + 1)
                storage.upload_file(payload, key)
                assert storage.download_file(key) == payload
                assert storage.file_exists(key)
        except BaseException as exc:
            errors.append(exc)

    _in_threads(work, 8)
    assert errors == []
    assert len(storage.list_files(prefix="threads/")) == 80


def test_concurrent_readers_never_see_a_torn_object(storage: BaseStorageAdapter) -> None:
    size = 2 * 1024 * 1024
    versions = [bytes([n]) * size for n in range(1, 6)]
    storage.upload_file(versions[0], "torn.bin")
    stop = threading.Event()
    seen: list[bytes] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(storage.download_file("torn.bin"))

    reader = threading.Thread(target=read)
    reader.start()
    for version in versions[1:]:
        storage.upload_file(version, "torn.bin")
    stop.set()
    reader.join()
    assert seen and all(data in versions for data in seen)


def test_repr_and_errors_hold_no_secrets(backend: Backend, storage: BaseStorageAdapter) -> None:
    text = repr(storage)
    assert backend.name in text
    with pytest.raises(StorageError) as info:
        storage.download_file("missing/for/secret/check")
    for secret in backend.secrets:
        assert secret not in text and secret not in str(info.value)


def test_one_debug_record_per_operation_and_nothing_louder(
        backend: Backend, storage: BaseStorageAdapter, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="perceptra_storage"):
        storage.upload_file(b"log me", "logs/k.txt")
        storage.download_file("logs/k.txt")
        with pytest.raises(StorageNotFoundError):
            storage.download_file("logs/missing.txt")
        assert len(storage.list_files("logs/", max_results=1)) == 1
    ours = [r for r in caplog.records if r.name.startswith("perceptra_storage")]
    assert [r.levelno for r in ours] == [logging.DEBUG] * 4
    messages = [r.getMessage() for r in ours]
    assert "upload" in messages[0] and "logs/k.txt" in messages[0] and "ms" in messages[0]
    assert "download" in messages[2] and "failed" in messages[2]
    assert all(backend.name in m for m in messages)
    for secret in backend.secrets:
        assert all(secret not in m for m in messages)


# --- file objects, copy, fsspec interop ---------------------------------------------------


def test_open_read_and_write(storage: BaseStorageAdapter) -> None:
    with storage.open("o/file.txt", "wb") as f:
        f.write(b"line one\n")
        f.write(b"line two\n")
    with storage.open("o/file.txt", "rb") as f:
        assert f.read(4) == b"line"
        f.seek(5)
        assert f.read() == b"one\nline two\n"
    with pytest.raises(StorageNotFoundError):
        storage.open("o/missing.txt")
    with pytest.raises(StorageValidationError):
        storage.open("o/file.txt", "r")


def test_open_write_that_fails_keeps_previous_version(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"old", "o/keep.txt")
    with pytest.raises(RuntimeError), storage.open("o/keep.txt", "wb") as f:
        f.write(b"new but unfinished")
        raise RuntimeError("writer crashed")
    assert storage.download_file("o/keep.txt") == b"old"
    assert [o.key for o in storage.list_files()] == ["o/keep.txt"]


def test_copy_keeps_content_type_and_metadata(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"{}", "src.json", content_type="application/json",
                        metadata={"owner": "ana"})
    assert storage.copy_file("src.json", "copies/dst.bin") == "copies/dst.bin"
    info = storage.get_file_metadata("copies/dst.bin")
    assert storage.download_file("copies/dst.bin") == b"{}"
    assert (info.content_type, info.metadata) == ("application/json", {"owner": "ana"})
    with pytest.raises(StorageNotFoundError):
        storage.copy_file("nope", "x")


def test_fsspec_url_and_storage_options_reach_the_same_object(
        storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"via fsspec", "interop/x.bin")
    url = storage.url("interop/x.bin")  # type: ignore[attr-defined]
    with fsspec.open(url, "rb", **storage.storage_options) as f:  # type: ignore[attr-defined]
        assert f.read() == b"via fsspec"
    assert storage.fs.cat_file("interop/x.bin") == b"via fsspec"  # type: ignore[attr-defined]


# --- properties -------------------------------------------------------------------------

_SEGMENT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\"),
    min_size=1, max_size=20,
).filter(lambda s: s not in (".", "..") and "%2e" not in s.lower()
         and not s.startswith(".~ps."))
_KEYS = st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join).filter(
    lambda k: len(k.encode()) <= 1024)
_PAYLOADS = st.one_of(st.just(b""), st.binary(min_size=1, max_size=1),
                      st.binary(max_size=4096),
                      st.integers(1, 3 * 1024 * 1024).map(lambda n: b"\xa5" * n))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=_KEYS, payload=_PAYLOADS)
def test_property_round_trip(storage: BaseStorageAdapter, key: str, payload: bytes) -> None:
    storage.upload_file(payload, key)
    try:
        assert storage.download_file(key) == payload
        assert key in [o.key for o in storage.list_files(prefix=key)]
    finally:
        storage.delete_file(key)


_BAD_KEYS = st.one_of(
    st.sampled_from(INVALID_KEYS),
    _KEYS.map(lambda k: k + "/"), _KEYS.map(lambda k: "/" + k),
    st.tuples(_KEYS, st.sampled_from(["..", ".", "", "%2E%2E"]), _KEYS).map("/".join),
    st.tuples(_KEYS, st.characters(min_codepoint=0, max_codepoint=31)).map("".join),
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=_BAD_KEYS)
def test_property_invalid_keys_store_nothing(storage: BaseStorageAdapter, key: Any) -> None:
    with pytest.raises(StorageValidationError):
        storage.upload_file(b"payload", key)
    assert storage.list_files() == []


def test_upload_does_not_hold_the_whole_file_in_memory(storage: BaseStorageAdapter,
                                                       tmp_path: Path) -> None:
    import tracemalloc

    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(48):
            f.write(b"\x01" * 1024 * 1024)
    # The memory backend keeps the object itself in memory (and a growing buffer
    # may briefly hold it twice); every other backend must stream.
    allowance = 2 * 48 * 1024 * 1024 if storage.backend_name == "memory" else 0
    tracemalloc.start()
    try:
        start = time.perf_counter()
        with open(big, "rb") as f:
            storage.upload_file(f, "big.bin")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 60
    assert peak < allowance + 40 * 1024 * 1024
    assert storage.get_file_metadata("big.bin").size == 48 * 1024 * 1024


def test_deleting_the_last_key_under_a_folder_frees_the_name(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"inner", "p/q")
    storage.delete_file("p/q")
    storage.upload_file(b"now a file", "p")
    assert storage.download_file("p") == b"now a file"
    assert [o.key for o in storage.list_files()] == ["p"]


# --- batch operations -----------------------------------------------------------------------


def test_batch_upload_download_delete_200_files(storage: BaseStorageAdapter,
                                                tmp_path: Path) -> None:
    payloads = {f"batch/{n // 50}/file-{n:03d}.bin": os.urandom(64 + n) for n in range(200)}
    sources = tmp_path / "sources"
    sources.mkdir()
    as_paths = []
    for n, (key, data) in enumerate(payloads.items()):
        if n % 2:
            (sources / f"{n}.bin").write_bytes(data)
            as_paths.append((str(sources / f"{n}.bin"), key))
    as_bytes = {key: data for n, (key, data) in enumerate(payloads.items()) if not n % 2}
    seen: list[tuple[int, Any]] = []
    first = storage.upload_files(as_paths, concurrency=8,
                                 progress=lambda done, total: seen.append((done, total)))
    second = storage.upload_files(as_bytes)
    assert first.ok and second.ok and not first.failed
    assert len(first.succeeded) == 100 and len(second.succeeded) == 100
    assert seen[-1][0] == seen[-1][1] == sum(len(payloads[k]) for _, k in as_paths)
    assert [o.key for o in storage.list_files("batch/")] == sorted(payloads)

    target = tmp_path / "downloaded"
    result = storage.download_files(list(payloads), target, concurrency=16)
    assert result.ok and result.succeeded == list(payloads)
    for key, data in payloads.items():
        assert (target / key).read_bytes() == data

    deleted = storage.delete_files(list(payloads), progress=True)
    assert deleted.ok and len(deleted.succeeded) == 200
    assert storage.list_files("batch/") == []


def test_batch_reports_failures_and_completes_the_rest(storage: BaseStorageAdapter,
                                                       tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(b"good")
    result = storage.upload_files([(str(good), "ok/1.txt"),
                                   (str(tmp_path / "missing.txt"), "ok/2.txt"),
                                   (b"bytes", "../escape"),
                                   (b"more", "ok/3.txt")])
    assert result.succeeded == ["ok/1.txt", "ok/3.txt"]
    assert set(result.failed) == {"ok/2.txt", "../escape"}
    assert all(isinstance(e, StorageValidationError) for e in result.failed.values())
    with pytest.raises(StorageValidationError, match="1 more failed"):
        result.raise_for_errors()

    downloaded = storage.download_files(["ok/1.txt", "ok/nope.txt", "a//b"], tmp_path / "out")
    assert downloaded.succeeded == ["ok/1.txt"]
    assert isinstance(downloaded.failed["ok/nope.txt"], StorageNotFoundError)
    assert isinstance(downloaded.failed["a//b"], StorageValidationError)
    assert sorted(p.name for p in (tmp_path / "out" / "ok").iterdir()) == ["1.txt"]

    deleted = storage.delete_files(["ok/1.txt", "ok/nope.txt"])
    assert deleted.succeeded == ["ok/1.txt"]
    assert isinstance(deleted.failed["ok/nope.txt"], StorageNotFoundError)
    assert deleted.failed["ok/nope.txt"].key == "ok/nope.txt"
    assert [o.key for o in storage.list_files()] == ["ok/3.txt"]


def test_batch_copy_and_move(storage: BaseStorageAdapter) -> None:
    storage.upload_files({"src/a.json": b"{}", "src/b.txt": b"b"})
    copied = storage.copy_files({"src/a.json": "dst/a.json", "src/missing": "dst/m"})
    assert copied.succeeded == ["dst/a.json"] and list(copied.failed) == ["dst/m"]
    assert storage.get_file_metadata("dst/a.json").content_type == "application/json"
    moved = storage.move_files([("src/b.txt", "moved/b.txt")])
    assert moved.ok
    assert [o.key for o in storage.list_files()] == ["dst/a.json", "moved/b.txt", "src/a.json"]


def test_single_transfer_progress_counts_bytes(storage: BaseStorageAdapter,
                                               tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    local = tmp_path / "p.bin"
    local.write_bytes(data)
    ups: list[tuple[int, Any]] = []
    storage.upload_file(str(local), "p.bin",  # type: ignore[call-arg]
                        progress=lambda done, total: ups.append((done, total)))
    assert ups and ups[-1] == (len(data), len(data))
    downs: list[int] = []
    storage.download_file("p.bin", tmp_path / "back.bin",  # type: ignore[call-arg]
                          progress=lambda done, total: downs.append(done))
    assert downs and downs[-1] == len(data)
    assert (tmp_path / "back.bin").read_bytes() == data


# --- data-science interop ----------------------------------------------------------------


def test_pandas_csv_and_parquet_via_url_and_open(storage: BaseStorageAdapter) -> None:
    import pandas as pd

    frame = pd.DataFrame({"id": range(50), "name": [f"row {n}" for n in range(50)]})
    options = storage.storage_options  # type: ignore[attr-defined]
    frame.to_csv(storage.url("pd/t.csv"), index=False,  # type: ignore[attr-defined]
                 storage_options=options)
    back = pd.read_csv(storage.url("pd/t.csv"), storage_options=options)  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(back, frame)
    frame.to_parquet(storage.url("pd/t.parquet"),  # type: ignore[attr-defined]
                     storage_options=options)
    with storage.open("pd/t.parquet") as f:
        pd.testing.assert_frame_equal(pd.read_parquet(f), frame)
    with storage.open("pd/written.parquet", "wb") as f:
        frame.to_parquet(f)
    pd.testing.assert_frame_equal(
        pd.read_parquet(storage.url("pd/written.parquet"),  # type: ignore[attr-defined]
                        storage_options=options), frame)
    assert {o.key for o in storage.list_files("pd/")} == {"pd/t.csv", "pd/t.parquet",
                                                          "pd/written.parquet"}


def test_pyarrow_dataset_and_polars(storage: BaseStorageAdapter) -> None:
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds

    for part in range(3):
        frame = pd.DataFrame({"part": [part] * 10, "value": range(part * 10, part * 10 + 10)})
        with storage.open(f"tables/events/part-{part}.parquet", "wb") as f:
            frame.to_parquet(f)
    storage.upload_file(b"not a table", "tables/other.txt")
    dataset = ds.dataset("tables/events", filesystem=storage.fs,  # type: ignore[attr-defined]
                         format="parquet")
    table = dataset.to_table()
    assert table.num_rows == 30 and sorted(table.column("value").to_pylist()) == list(range(30))
    with storage.open("tables/events/part-1.parquet") as f:
        assert pl.read_parquet(f)["value"].to_list() == list(range(10, 20))


def test_dask_workers_read_and_write_through_the_adapter(shared_backend: Backend) -> None:
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client, LocalCluster

    storage = shared_backend.make("dask")
    frame = pd.DataFrame({"k": range(40), "v": [n * 2 for n in range(40)]})
    for part in range(4):
        with storage.open(f"ds/part-{part}.parquet", "wb") as f:
            frame.iloc[part * 10:(part + 1) * 10].to_parquet(f, index=False)

    def upload_on_worker(adapter: BaseStorageAdapter, key: str) -> int:
        import os as worker_os

        adapter.upload_file(f"from pid {worker_os.getpid()}".encode(), key)
        return worker_os.getpid()

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        loaded = dd.read_parquet(storage.url("ds"),  # type: ignore[attr-defined]
                                 storage_options=storage.storage_options  # type: ignore[attr-defined]
                                 ).compute(scheduler=client)
        assert sorted(loaded["v"].tolist()) == frame["v"].tolist()
        pid = client.submit(upload_on_worker, storage, "from-worker.txt").result(timeout=60)
    assert pid != os.getpid()
    assert storage.download_file("from-worker.txt") == f"from pid {pid}".encode()


def test_forked_child_uses_the_parents_adapter(shared_backend: Backend) -> None:
    import multiprocessing

    storage = shared_backend.make()
    storage.upload_file(b"before fork", "fork/parent.txt")
    assert storage.list_files("fork/")

    def child(adapter: BaseStorageAdapter, queue: Any) -> None:
        try:
            adapter.upload_file(b"from child", "fork/child.txt")
            queue.put((adapter.download_file("fork/parent.txt"),
                       [o.key for o in adapter.list_files("fork/")]))
        except BaseException as exc:
            queue.put(repr(exc))

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(storage, queue))
    process.start()
    try:
        outcome = queue.get(timeout=60)
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
    assert outcome == (b"before fork", ["fork/child.txt", "fork/parent.txt"])
    assert storage.download_file("fork/child.txt") == b"from child"


# --- integrity -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bytes", "path", "stream"])
def test_checksum_round_trip(storage: BaseStorageAdapter, tmp_path: Path, kind: str) -> None:
    data = os.urandom(300_000)
    local = tmp_path / "c.bin"
    local.write_bytes(data)
    source: Any = {"bytes": data, "path": str(local), "stream": io.BytesIO(data)}[kind]
    storage.upload_file(source, "c/obj.bin", metadata={"m": "1"},  # type: ignore[call-arg]
                        checksum=True)
    assert storage.get_file_metadata("c/obj.bin").metadata == {"m": "1"}
    assert storage.download_file("c/obj.bin", checksum=True) == data  # type: ignore[call-arg]
    out = tmp_path / "out.bin"
    storage.download_file("c/obj.bin", out, checksum=True)  # type: ignore[call-arg]
    assert out.read_bytes() == data
    sink = io.BytesIO()
    storage.download_file("c/obj.bin", sink, checksum=True)  # type: ignore[call-arg]
    assert sink.getvalue() == data


def test_checksum_mismatch_and_missing_are_errors(storage: BaseStorageAdapter,
                                                  tmp_path: Path) -> None:
    storage.upload_file(b"plain", "c/plain.bin")
    with pytest.raises(StorageOperationError, match="no stored checksum"):
        storage.download_file("c/plain.bin", checksum=True)  # type: ignore[call-arg]
    storage.upload_file(b"original", "c/tampered.bin", checksum=True)  # type: ignore[call-arg]
    original_sum = hashlib.sha256(b"original").hexdigest()
    # Someone rewrites the bytes behind our back but keeps the stored checksum.
    options = storage._write_options(  # type: ignore[attr-defined]
        "pipe_file", "application/octet-stream", {"perceptra_sha256": original_sum})
    storage.fs.pipe_file("c/tampered.bin", b"changed", **options)  # type: ignore[attr-defined]
    assert storage.get_file_metadata("c/tampered.bin").size == len(b"changed")
    target = tmp_path / "t.bin"
    target.write_bytes(b"keep me")
    with pytest.raises(StorageOperationError, match="checksum mismatch"):
        storage.download_file("c/tampered.bin", target, checksum=True)  # type: ignore[call-arg]
    assert target.read_bytes() == b"keep me"
    with pytest.raises(StorageValidationError, match="reserved"):
        storage.upload_file(b"x", "c/x", metadata={"perceptra_sha256": "0" * 64})


def test_listing_crosses_result_pages_in_key_order(storage: BaseStorageAdapter) -> None:
    keys = [f"many/{n % 7}/{n:05d}" for n in range(1050)]  # past one 1000-key S3 page
    assert storage.upload_files({key: b"" for key in keys}, concurrency=32).ok
    lazy = storage.iter_files("many/")
    assert next(lazy).key == min(keys)
    assert [o.key for o in storage.iter_files("many/")] == sorted(keys)
    assert len(storage.list_files("many/", max_results=1020)) == 1020


def test_large_transfers_use_bounded_memory(shared_backend: Backend, tmp_path: Path) -> None:
    """96 MiB up from a path and down to a path, measured with tracemalloc after the
    SDK has loaded: memory is O(part) (a few parts in flight), not O(object)."""
    import tracemalloc

    storage = shared_backend.make()
    size = 96 * 1024 * 1024
    source = tmp_path / "large.bin"
    with open(source, "wb") as f:
        for n in range(96):
            f.write(bytes([n]) * (1024 * 1024))
    storage.upload_file(b"warm up", "warm.bin")
    storage.download_file("warm.bin")
    peaks = {}
    for step in ("upload", "download"):
        tracemalloc.start()
        try:
            if step == "upload":
                storage.upload_file(str(source), "large.bin")
            else:
                storage.download_file("large.bin", tmp_path / "back.bin")
            peaks[step] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    print(f"{shared_backend.name}: peak upload {peaks['upload'] / 2**20:.1f} MiB, "
          f"download {peaks['download'] / 2**20:.1f} MiB")
    assert (tmp_path / "back.bin").stat().st_size == size
    assert peaks["upload"] < 56 * 1024 * 1024
    assert peaks["download"] < 40 * 1024 * 1024


def test_batch_delete_with_missing_ok(storage: BaseStorageAdapter) -> None:
    storage.upload_files({"gone/a": b"a", "gone/b": b"b", "kept": b"k"})
    result = storage.delete_files(["gone/a", "gone/missing", "gone/b"],  # type: ignore[call-arg]
                                  missing_ok=True)
    assert result.ok and result.succeeded == ["gone/a", "gone/missing", "gone/b"]
    assert [o.key for o in storage.list_files()] == ["kept"]
    invalid = storage.delete_files(["../x"], missing_ok=True)  # type: ignore[call-arg]
    assert isinstance(invalid.failed["../x"], StorageValidationError)


def test_batch_delete_spans_bulk_requests_and_reports_each_key(
        storage: BaseStorageAdapter) -> None:
    # 300 keys: more than one Azure batch (256), with characters a batch body must quote.
    keys = [f"bulk/{n:03d} ü+&%.bin" for n in range(300)]
    assert storage.upload_files({key: b"x" for key in keys}).ok
    result = storage.delete_files([*keys[:150], "bulk/missing", "../bad", *keys[150:]])
    assert result.succeeded == keys
    assert set(result.failed) == {"bulk/missing", "../bad"}
    assert isinstance(result.failed["bulk/missing"], StorageNotFoundError)
    assert isinstance(result.failed["../bad"], StorageValidationError)
    assert storage.list_files("bulk/") == []
    again = storage.delete_files(keys[:3], missing_ok=True)  # type: ignore[call-arg]
    assert again.ok and again.succeeded == keys[:3]


# --- reliability: network faults (a fault proxy between adapter and server) ----------------

FAST = {"read_timeout": 2, "max_attempts": 2, "retry_backoff": 0.1}
"""Timeouts short enough for the fault tests; the defaults are checked separately."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_refused_connection_is_reported_within_seconds(faulty: Faulty) -> None:
    from tests.servers.common import free_port

    adapter = faulty.backend.via(f"http://127.0.0.1:{free_port()}", {})  # type: ignore[misc]
    start = time.monotonic()
    with pytest.raises(StorageConnectionError) as info:
        adapter.download_file("k")
    assert time.monotonic() - start <= 5
    assert info.value.backend == faulty.backend.name


@pytest.mark.parametrize("operation", ["get", "put", "exists"])
def test_no_response_is_a_timeout_within_seconds(faulty: Faulty, operation: str) -> None:
    faulty.backend.make().upload_file(b"present", "k")
    faulty.proxy.set("stall")
    adapter = faulty.make(**FAST)
    call = {"get": lambda: adapter.download_file("k"),
            "put": lambda: adapter.upload_file(b"x" * 100_000, "k"),
            "exists": lambda: adapter.file_exists("k")}[operation]
    start = time.monotonic()
    with pytest.raises(StorageTimeoutError):
        call()
    assert time.monotonic() - start <= 10
    faulty.proxy.set("pass")
    # A stalled server may still have stored the PUT; either version, never a part.
    assert faulty.backend.make().download_file("k") in (b"present", b"x" * 100_000)


def test_operation_timeout_bounds_a_whole_transfer(faulty: Faulty) -> None:
    faulty.proxy.set("stall")
    adapter = faulty.make(read_timeout=30, operation_timeout=2)
    start = time.monotonic()
    with pytest.raises(StorageTimeoutError, match="operation_timeout"):
        adapter.download_file("k")
    assert time.monotonic() - start <= 5


def test_download_cut_once_is_retried_to_identical_bytes(faulty: Faulty,
                                                         tmp_path: Path) -> None:
    data = os.urandom(8 * 1024 * 1024)
    faulty.backend.make().upload_file(data, "big.bin")
    clean = faulty.make(**FAST)
    assert _sha(clean.download_file("big.bin")) == _sha(data)
    healthy = faulty.proxy.connections
    for destination in (None, tmp_path / "out.bin"):
        before = faulty.proxy.connections
        faulty.proxy.set("cut", nbytes=1_000_000, times=1)
        result = faulty.make(**FAST).download_file("big.bin", destination)
        got = result if destination is None else destination.read_bytes()
        assert _sha(got) == _sha(data)
        # One extra connection at most: the cut one, then a healthy attempt.
        assert faulty.proxy.connections - before <= healthy + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_download_never_returns_short_bytes(faulty: Faulty, tmp_path: Path) -> None:
    data = os.urandom(8 * 1024 * 1024)
    faulty.backend.make().upload_file(data, "big.bin")
    faulty.proxy.set("cut", nbytes=1_000_000)
    adapter = faulty.make(**FAST)
    with pytest.raises(StorageConnectionError):
        adapter.download_file("big.bin")
    target = tmp_path / "keep.bin"
    target.write_bytes(b"mine")
    with pytest.raises(StorageConnectionError):
        adapter.download_file("big.bin", target)
    assert target.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.bin"]


def test_server_errors_are_retried_and_refusals_are_not(faulty: Faulty) -> None:
    faulty.backend.make().upload_file(b"payload", "k")
    faulty.proxy.set("status", status=503, times=1)
    assert faulty.make(**FAST).download_file("k") == b"payload"
    for status, error in ((503, StorageError), (403, StoragePermissionError)):
        faulty.proxy.set("status", status=status)
        before = faulty.proxy.connections
        with pytest.raises(error):
            faulty.make(**FAST).download_file("k")
        used = faulty.proxy.connections - before
        assert used == (FAST["max_attempts"] if status == 503 else 1), (status, used)


def test_file_exists_is_honest_about_403(faulty: Faulty) -> None:
    faulty.proxy.set("status", status=403)
    with pytest.raises(StoragePermissionError):
        faulty.make(**FAST).file_exists("anything")


def test_reset_during_part_two_leaves_no_object_and_no_upload(faulty: Faulty) -> None:
    faulty.backend.make().upload_file(b"previous version", "mp.bin")
    adapter = faulty.make(**FAST)
    with pytest.raises(StorageConnectionError), adapter.open("mp.bin", "wb") as f:
        f.write(os.urandom(6 * 1024 * 1024))  # part 1 goes up here
        faulty.proxy.set("reset", nbytes=64 * 1024, direction="up", sever=True)
        f.write(os.urandom(6 * 1024 * 1024))
        f.write(os.urandom(1024))
    faulty.proxy.set("pass")
    assert faulty.backend.make().download_file("mp.bin") == b"previous version"
    assert faulty.backend.pending_uploads() == 0


def test_endpoints_must_be_http(faulty: Faulty) -> None:
    assert faulty.backend.via is not None
    for endpoint in ("ftp://127.0.0.1:21", "file:///etc", "gopher://x:70"):
        with pytest.raises(StorageValidationError):
            faulty.backend.via(endpoint, {})


def test_redirect_to_another_host_is_not_followed(faulty: Faulty) -> None:
    import http.server

    received: list[str] = []

    class Record(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_PUT = do_HEAD = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    second = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Record)

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{second.server_port}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_HEAD = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    first = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    for server in (first, second):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        adapter = faulty.backend.via(f"http://127.0.0.1:{first.server_port}",  # type: ignore[misc]
                                     FAST)
        with pytest.raises(StorageError):
            adapter.download_file("k")
        with pytest.raises(StorageError):
            adapter.upload_file(b"secret payload", "k")
    finally:
        first.shutdown()
        second.shutdown()
    assert received == []


# --- reliability: atomic writes, concurrency, secrets, hostile keys ------------------------


@pytest.mark.parametrize("size", [1024, 12 * 1024 * 1024], ids=["1KiB", "12MiB"])
def test_exception_inside_open_write_stores_nothing(backend: Backend,
                                                    storage: BaseStorageAdapter,
                                                    size: int) -> None:
    storage.upload_file(b"previous", "w/keep.bin")
    for key in ("w/keep.bin", "w/new.bin"):
        with pytest.raises(RuntimeError), storage.open(key, "wb") as f:
            f.write(os.urandom(size))
            raise RuntimeError("the writer crashed")
    assert storage.download_file("w/keep.bin") == b"previous"
    assert not storage.file_exists("w/new.bin")
    assert [o.key for o in storage.list_files()] == ["w/keep.bin"]
    # Azure has no call that drops staged blocks without also risking a blob another
    # writer committed meanwhile; they stay invisible (never listed or readable) until
    # the next commit of the name or the service's 7-day clean-up (README, Reliability).
    if backend.name != "azure":
        assert backend.pending_uploads() == 0


def test_eight_threads_of_mixed_operations(storage: BaseStorageAdapter) -> None:
    import random as random_module

    rounds = 200
    errors: list[BaseException] = []
    mismatches: list[str] = []

    def work(thread: int) -> None:
        rng = random_module.Random(thread)
        mine: dict[str, bytes] = {}
        try:
            for n in range(rounds):
                choice = rng.random()
                if choice < 0.4 or not mine:
                    key = f"mixed/{thread}/{n % 20}"
                    mine[key] = os.urandom(rng.randint(0, 64 * 1024))
                    storage.upload_file(mine[key], key)
                elif choice < 0.7:
                    key = rng.choice(sorted(mine))
                    if storage.download_file(key) != mine[key]:
                        mismatches.append(key)
                elif choice < 0.85:
                    key = rng.choice(sorted(mine))
                    storage.delete_file(key)
                    del mine[key]
                else:
                    listed = {o.key for o in storage.list_files(f"mixed/{thread}/")}
                    if listed != set(mine):
                        mismatches.append(f"listing of thread {thread}")
        except BaseException as exc:
            errors.append(exc)

    _in_threads(work, 8)
    assert errors == [] and mismatches == []


def test_one_writer_two_readers_see_no_torn_object(storage: BaseStorageAdapter) -> None:
    size = 4 * 1024 * 1024
    versions = {_sha(bytes([n]) * size): n for n in range(1, 256)}
    storage.upload_file(bytes([1]) * size, "torn4.bin")
    stop = threading.Event()
    reads: list[str] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                reads.append(_sha(storage.download_file("torn4.bin")))
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    deadline, version = time.monotonic() + 3, 1
    try:
        while time.monotonic() < deadline:
            version = version % 255 + 1
            storage.upload_file(bytes([version]) * size, "torn4.bin")
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    torn = [digest for digest in reads if digest not in versions]
    assert errors == [] and reads and torn == []


@pytest.fixture
def debug_everywhere(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger that exists (ours, botocore, aiobotocore, s3fs, adlfs, azure,
    urllib3, aiohttp...) at DEBUG, as a user chasing a bug would set them."""
    every = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    levels = [(logger, logger.level) for logger in every]
    with caplog.at_level(logging.DEBUG):
        for logger in every:
            logger.setLevel(logging.DEBUG)
        try:
            yield caplog
        finally:
            for logger, level in levels:
                logger.setLevel(level)


def test_debug_logging_everywhere_leaks_no_secret(
        backend: Backend, storage: BaseStorageAdapter,
        debug_everywhere: pytest.LogCaptureFixture) -> None:
    seen: list[str] = [repr(storage), str(storage)]
    storage.upload_file(b"secret check", "sec/a.txt", metadata={"m": "1"})
    storage.upload_file(io.BytesIO(os.urandom(6 * 1024 * 1024)), "sec/big.bin")
    storage.download_file("sec/a.txt")
    storage.get_file_metadata("sec/a.txt")
    storage.list_files("sec/")
    storage.file_exists("sec/none")
    storage.copy_file("sec/a.txt", "sec/b.txt")
    signatures = []
    if backend.presign_methods:
        url = storage.generate_presigned_url("sec/a.txt").url
        query = parse_qs(urlsplit(url).query)
        signatures = query.get("sig", []) + query.get("X-Amz-Signature", [])
        assert signatures or url.startswith("file:")
    for call in (lambda: storage.download_file("sec/missing"),
                 lambda: storage.delete_file("sec/missing")):
        with pytest.raises(StorageError) as info:
            call()
        error: Optional[BaseException] = info.value
        while error is not None:
            seen += [str(error), repr(error)]
            error = error.__cause__ or error.__context__
    storage.delete_files(["sec/a.txt", "sec/b.txt", "sec/big.bin"])
    records = debug_everywhere.records
    seen += [record.getMessage() for record in records]
    seen += [repr(record.args) for record in records if record.args]
    text = "\n".join(seen)
    for secret in (*backend.secrets, *signatures):
        assert secret not in text
    assert len(records) > 5


HOSTILE_KEYS = ["../x", "a/../../x", "/etc/passwd", "C:\\x", "a\\..\\x", "%2e%2e/x",
                "a/%2E%2E/x", "a/%2e%2e", "\x1b[2Jx", "a\r\nb", "x\u0085y", "é" * 513,
                "a//b", "a/", "//x"]


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=repr)
def test_hostile_keys_are_refused_before_any_io(storage: BaseStorageAdapter, key: str) -> None:
    for call in (lambda: storage.upload_file(b"data", key), lambda: storage.download_file(key),
                 lambda: storage.file_exists(key), lambda: storage.delete_file(key),
                 lambda: storage.open(key, "wb")):
        with pytest.raises(StorageValidationError):
            call()
    assert storage.list_files() == []


@pytest.mark.parametrize("key", ["ünïcødé/ключ.txt", "with space/a b.txt", "plus+sign",
                                 "amp&and", "per%cent", "per%2Fslash", "emoji/🚀🔥.bin",
                                 "q?a=b#frag", "semi;colon,comma", "漢字/かな"])
def test_unusual_keys_round_trip(storage: BaseStorageAdapter, key: str) -> None:
    storage.upload_file(key.encode(), key)
    assert storage.download_file(key) == key.encode()
    assert storage.get_file_metadata(key).key == key
    assert [o.key for o in storage.list_files()] == [key]
    storage.delete_file(key)
    assert storage.list_files() == []


def test_listing_prefix_foo_versus_foo_dot_bar(storage: BaseStorageAdapter) -> None:
    # A prefix is a string prefix, not a directory: "foo" takes "foo.bar/b" and "foobar",
    # "foo/" only what lies under foo/.
    for key in ("foo/a", "foo.bar/b", "foobar", "fo", "fop"):
        storage.upload_file(b"x", key)
    assert [o.key for o in storage.list_files("foo")] == ["foo.bar/b", "foo/a", "foobar"]
    assert [o.key for o in storage.list_files("foo/")] == ["foo/a"]
    assert [o.key for o in storage.list_files("foo.")] == ["foo.bar/b"]
