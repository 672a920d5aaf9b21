"""Integrity: checksums, and writes that fail leave the previous version whole."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from perceptra_storage import (
    StorageAdapter,
    StorageError,
    StorageOperationError,
    StorageValidationError,
)
from tests.conftest import Backend

from .base import ContractBase


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


def _source_breaks(storage: StorageAdapter, key: str) -> None:
    """``upload_file`` from a source that fails after some bytes."""
    with pytest.raises(StorageError) as info:
        storage.upload_file(_FailingReader(b"partial new bytes"), key)
    assert isinstance(info.value.__cause__, OSError)


def _writer_crashes(size: int) -> Callable[[StorageAdapter, str], None]:
    """An ``open(key, "wb")`` block that raises after writing ``size`` bytes."""
    def fail(storage: StorageAdapter, key: str) -> None:
        with pytest.raises(RuntimeError), storage.open(key, "wb") as f:
            f.write(os.urandom(size))
            raise RuntimeError("the writer crashed")

    return fail


WAYS_A_WRITE_FAILS = {
    "upload-source-breaks": _source_breaks,
    "open-write-crashes-1KiB": _writer_crashes(1024),
    "open-write-crashes-12MiB": _writer_crashes(12 * 1024 * 1024),  # past one part
}


class IntegrityTests(ContractBase):
    """Bytes come back as written or not at all."""

    @pytest.mark.parametrize("kind", ["bytes", "path", "stream"])
    def test_checksum_round_trip(
            self, storage: StorageAdapter, tmp_path: Path, kind: str) -> None:
        data = os.urandom(300_000)
        local = tmp_path / "c.bin"
        local.write_bytes(data)
        source: Any = {"bytes": data, "path": local, "stream": io.BytesIO(data)}[kind]
        storage.upload_file(source, "c/obj.bin", metadata={"m": "1"},
                            checksum=True)
        assert storage.get_file_metadata("c/obj.bin").metadata == {"m": "1"}
        assert storage.download_file("c/obj.bin", checksum=True) == data
        out = tmp_path / "out.bin"
        storage.download_file("c/obj.bin", out, checksum=True)
        assert out.read_bytes() == data
        sink = io.BytesIO()
        storage.download_file("c/obj.bin", sink, checksum=True)
        assert sink.getvalue() == data

    def test_checksum_upload_is_read_back_only_where_the_store_does_not_check(
            self, backend: Backend, storage: StorageAdapter, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> None:
        """Where the store checks the bytes it received against the checksum sent with
        them (``checks_upload_checksums``) nothing is read back; elsewhere each upload
        is read back and hashed. Reads are counted on the filesystem's class, which the
        blocking route (``open``) and ``adapter.aio`` (``_cat_file``) both read through."""
        fs_class = type(storage.filesystem)  # type: ignore[attr-defined]
        reads: list[str] = []
        counting = [True]  # only the uploads' reads
        real_open = fs_class._open

        def counting_open(fs: Any, path: str, mode: str = "rb", *args: Any,
                          **kwargs: Any) -> Any:
            if "r" in mode and counting[0]:
                reads.append(path)
            return real_open(fs, path, mode, *args, **kwargs)

        monkeypatch.setattr(fs_class, "_open", counting_open)
        if hasattr(fs_class, "_cat_file"):
            real_cat = fs_class._cat_file

            async def counting_cat(fs: Any, path: str, *args: Any, **kwargs: Any) -> Any:
                if counting[0]:
                    reads.append(path)
                return await real_cat(fs, path, *args, **kwargs)

            monkeypatch.setattr(fs_class, "_cat_file", counting_cat)
        data = os.urandom(5 * 1024 * 1024)  # two Azure blocks: each request carries its MD5
        local = tmp_path / "c.bin"
        local.write_bytes(data[:65536])
        storage.upload_file(data, "c/bytes.bin", checksum=True)
        storage.upload_file(local, "c/path.bin", checksum=True)
        counting[0] = False
        assert not reads if backend.checks_upload_checksums else len(reads) >= 2, reads
        assert storage.download_file("c/bytes.bin", checksum=True) == data
        assert storage.download_file("c/path.bin", checksum=True) == data[:65536]

    def test_checksum_mismatch_and_missing_are_errors(self, storage: StorageAdapter,
                                                      tmp_path: Path) -> None:
        storage.upload_file(b"plain", "c/plain.bin")
        with pytest.raises(StorageOperationError, match="no stored checksum"):
            storage.download_file("c/plain.bin", checksum=True)
        storage.upload_file(b"original", "c/tampered.bin", checksum=True)
        original_sum = hashlib.sha256(b"original").hexdigest()
        # Someone rewrites the bytes behind our back but keeps the stored checksum.
        options = storage._write_options(  # type: ignore[attr-defined]
            "pipe_file", "application/octet-stream", {"perceptra_sha256": original_sum})
        # Behind its back: the backend's own filesystem (adapter.fs is the adapter itself,
        # which refuses the reserved metadata name).
        storage.filesystem.pipe_file(  # type: ignore[attr-defined]
            storage._path("c/tampered.bin"), b"changed", **options)  # type: ignore[attr-defined]
        assert storage.get_file_metadata("c/tampered.bin").size == len(b"changed")
        target = tmp_path / "t.bin"
        target.write_bytes(b"keep me")
        with pytest.raises(StorageOperationError, match="checksum mismatch"):
            storage.download_file("c/tampered.bin", target, checksum=True)
        assert target.read_bytes() == b"keep me"
        with pytest.raises(StorageValidationError, match="reserved"):
            storage.upload_file(b"x", "c/x", metadata={"perceptra_sha256": "0" * 64})

    @pytest.mark.parametrize("way", list(WAYS_A_WRITE_FAILS))
    def test_failed_write_keeps_previous_version_and_leaves_nothing(
            self, backend: Backend, storage: StorageAdapter, way: str) -> None:
        fail = WAYS_A_WRITE_FAILS[way]
        storage.upload_file(b"previous", "w/keep.bin", metadata={"v": "1"})
        fail(storage, "w/keep.bin")
        assert storage.download_file("w/keep.bin") == b"previous"
        assert storage.get_file_metadata("w/keep.bin").metadata == {"v": "1"}
        fail(storage, "w/new.bin")
        assert not storage.file_exists("w/new.bin")
        assert [o.key for o in storage.list_files()] == ["w/keep.bin"]
        # Azure has no call that drops staged blocks without also risking a blob another
        # writer committed meanwhile; they stay invisible (never listed or readable) until
        # the next commit of the name or the service's 7-day clean-up (README, Reliability).
        if backend.discards_failed_uploads:
            assert backend.pending_uploads() == 0
