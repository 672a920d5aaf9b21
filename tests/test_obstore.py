"""What only the obstore engine has: the clean-up of the multipart uploads obstore
leaves behind when a large upload fails or is cancelled (``_obstore._aborting``), on
moto (s3) and Ceph RGW (minio).  The whole contract runs on the engine through its
entries ``s3-obstore`` and ``minio-obstore`` (tests/test_s3.py, tests/test_minio.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from perceptra_storage import (
    StorageConnectionError,
    StorageTimeoutError,
    StorageValidationError,
    get_storage_adapter,
)
from perceptra_storage.backends import _obstore
from perceptra_storage.errors import classify
from tests.conftest import Faulty, fault_proxy, started_backend

ENGINE_CASES = ["s3-obstore", "minio-obstore"]


@pytest.fixture(params=ENGINE_CASES)
def faulty_engine(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Faulty]:
    # Multipart from 6 MiB in 5 MiB parts (S3's smallest), so that a 12 MiB upload is
    # one, instead of the 100 MiB the engine waits for.
    monkeypatch.setattr(_obstore, "MULTIPART_OVER", 6 * 2**20)
    monkeypatch.setattr(_obstore, "PART_SIZE", 5 * 2**20)
    with started_backend(request.param, request, tmp_path) as started, \
            fault_proxy(started) as proxied:
        yield proxied


def test_failed_multipart_upload_leaves_no_upload(faulty_engine: Faulty) -> None:
    """A multipart upload that fails: obstore aborts this one itself (the test passes
    without the adapter's clean-up), and this guards that it stays so."""
    faulty = faulty_engine
    faulty.backend.make().upload_file(b"previous version", "mp.bin")
    adapter = faulty.make(connect_timeout=2, read_timeout=3, max_attempts=1)
    # Every connection is cut after 3 MiB went up: the upload is created (a small
    # request), its 5 MiB parts never arrive.
    faulty.proxy.set("reset", nbytes=3 * 2**20, direction="up", sever=True)
    with pytest.raises(StorageConnectionError):
        adapter.upload_file(os.urandom(12 * 2**20), "mp.bin")
    faulty.proxy.set("pass")
    assert faulty.backend.make().download_file("mp.bin") == b"previous version"
    assert faulty.backend.pending_uploads() == 0


def test_cancelled_multipart_upload_leaves_no_upload(faulty_engine: Faulty) -> None:
    """A cancelled multipart upload, which obstore leaves behind: the adapter's clean-up
    aborts it (this fails without it, on both servers)."""
    faulty = faulty_engine
    adapter = faulty.make(connect_timeout=2, read_timeout=3, max_attempts=1)
    # Each new connection's answer comes a second late: the listing before the write
    # and the upload's creation take a second each, its parts' answers are still
    # awaited when the caller gives up at 2.5 s.
    faulty.proxy.set("delay", seconds=1.0, sever=True)

    async def upload() -> None:
        await asyncio.wait_for(adapter.aio.upload_file(os.urandom(12 * 2**20), "mp.bin"),
                               2.5)

    with pytest.raises((TimeoutError, StorageConnectionError)):
        asyncio.run(upload())
    faulty.proxy.set("pass")
    assert not faulty.backend.make().file_exists("mp.bin")
    assert faulty.backend.pending_uploads() == 0


def test_parts_grow_to_stay_within_the_part_limit(request: pytest.FixtureRequest,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With at most one part, 6 MiB goes up as one part, not as 5 MiB and 1 MiB (S3
    refuses an upload's 10,001st part): a multipart ETag ends in its part count."""
    monkeypatch.setattr(_obstore, "MULTIPART_OVER", 2**20)
    monkeypatch.setattr(_obstore, "PART_SIZE", 5 * 2**20)
    monkeypatch.setattr(_obstore, "MAX_PARTS", 1)
    with started_backend("s3-obstore", request, tmp_path) as started:
        adapter = started.make()
        adapter.upload_file(os.urandom(6 * 2**20), "parts.bin")
        assert str(adapter.get_file_metadata("parts.bin").etag).strip('"').endswith("-1")


@pytest.mark.parametrize(("backend", "config", "credentials"), [
    ("s3", {"bucket_name": "my-bucket", "region": "eu-west-1"},
     {"access_key_id": "AKID", "secret_access_key": "SECRET"}),
    ("azure", {"container_name": "ctr", "account_name": "acct"}, {"account_key": "a2V5"}),
])
def test_native_options_are_the_fsspec_engines(backend: str, config: dict[str, str],
                                                credentials: dict[str, str]) -> None:
    """Tools outside fsspec read s3fs's or adlfs's options whatever the engine."""
    fsspec = get_storage_adapter(backend, config, credentials)
    engine = get_storage_adapter(backend, {**config, "engine": "obstore"}, credentials)
    assert engine.native_url("a/k.csv") == fsspec.native_url("a/k.csv")
    assert engine.native_storage_options == fsspec.native_storage_options


def test_unknown_engine_is_refused_by_field() -> None:
    with pytest.raises(StorageValidationError, match=r"s3: config field 'engine'.*'rust'"):
        get_storage_adapter("s3", {"bucket_name": "my-bucket", "engine": "rust"})


# The three texts obstore gave for one silent port (connect_timeout 0.5 s), the third in
# about one attempt of forty on a loaded machine: each is a connect timeout.
_SILENT_PORT = (
    "HttpError {\n kind: Timeout,\n source: reqwest::Error {\n kind: Request,\n source: "
    "hyper_util::client::legacy::Error(\n Connect,\n ConnectError(\n \"tcp connect error\","
    "\n 127.0.0.1:9,\n Custom {\n kind: TimedOut,\n error: Elapsed(\n (),\n ),\n },\n ),\n ),",
    "HttpError {\n kind: Timeout,\n source: reqwest::Error {\n kind: Request,\n source: "
    "hyper_util::client::legacy::Error(\n            Connect,\n            TimedOut,\n ),",
    "reqwest::Error { kind: Connect, source: TimedOut }",
)


@pytest.mark.parametrize("cause", _SILENT_PORT)
def test_every_form_of_a_silent_port_is_a_connect_timeout(cause: str) -> None:
    from obstore.exceptions import GenericError

    error = GenericError("Generic S3 error: Error performing GET http://127.0.0.1:9/b/k in "
                         f"501ms - HTTP error: error sending request Debug source: {cause}")
    kind, message = classify(error)
    assert kind is StorageTimeoutError
    assert "within connect_timeout" in message and "127.0.0.1:9" in message


@pytest.mark.parametrize(("path", "split"), [
    ("bucket/a/k.csv", ("bucket", "a/k.csv")),
    ("bucket/a:b/c://d", ("bucket", "a:b/c://d")),
    ("bucket", ("bucket", "")),
    ("s3://bucket/a/k.csv", ("bucket", "a/k.csv")),
])
def test_paths_split_as_obstore_splits_them(path: str, split: tuple[str, str]) -> None:
    """The engine's own split of plain paths (no URL parsing) agrees with obstore's."""
    fs = _obstore.ObstoreFileSystem(kind="s3", store={"region": "us-east-1"})
    assert fs._split_path(path) == split
    assert _obstore.FsspecStore._split_path(fs, path) == split
