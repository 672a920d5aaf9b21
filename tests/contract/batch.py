"""Batch operations: many keys in one call, each key's outcome reported."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from perceptra_storage import (
    StorageAdapter,
    StorageNotFoundError,
    StorageValidationError,
)
from tests.conftest import Backend

from .base import ContractBase


class BatchTests(ContractBase):
    """``upload_files``, ``download_files``, ``delete_files``, ``copy_files``, ``move_files``."""

    def test_batch_upload_download_delete_200_files(self, storage: StorageAdapter,
                                                    tmp_path: Path) -> None:
        payloads = {f"batch/{n // 50}/file-{n:03d}.bin": os.urandom(64 + n) for n in range(200)}
        sources = tmp_path / "sources"
        sources.mkdir()
        as_paths = []
        for n, (key, data) in enumerate(payloads.items()):
            if n % 2:
                (sources / f"{n}.bin").write_bytes(data)
                as_paths.append((sources / f"{n}.bin", key))
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

    def test_batch_reports_failures_and_completes_the_rest(self, storage: StorageAdapter,
                                                           tmp_path: Path) -> None:
        good = tmp_path / "good.txt"
        good.write_bytes(b"good")
        result = storage.upload_files([(good, "ok/1.txt"),
                                       (tmp_path / "missing.txt", "ok/2.txt"),
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

    def test_batch_copy_and_move(self, storage: StorageAdapter) -> None:
        storage.upload_files({"src/a.json": b"{}", "src/b.txt": b"b"})
        copied = storage.copy_files({"src/a.json": "dst/a.json", "src/missing": "dst/m"})
        assert copied.succeeded == ["dst/a.json"] and list(copied.failed) == ["dst/m"]
        assert storage.get_file_metadata("dst/a.json").content_type == "application/json"
        moved = storage.move_files([("src/b.txt", "moved/b.txt")])
        assert moved.ok
        assert [o.key for o in storage.list_files()] == ["dst/a.json", "moved/b.txt", "src/a.json"]

    def test_batch_delete_with_missing_ok(self, storage: StorageAdapter) -> None:
        storage.upload_files({"gone/a": b"a", "gone/b": b"b", "kept": b"k"})
        result = storage.delete_files(["gone/a", "gone/missing", "gone/b"],
                                      missing_ok=True)
        assert result.ok and result.succeeded == ["gone/a", "gone/missing", "gone/b"]
        assert [o.key for o in storage.list_files()] == ["kept"]
        invalid = storage.delete_files(["../x"], missing_ok=True)
        assert isinstance(invalid.failed["../x"], StorageValidationError)

    def test_batch_delete_spans_bulk_requests_and_reports_each_key(
            self, backend: Backend, storage: StorageAdapter) -> None:
        # 300 keys: more than one Azure batch (256), with characters a batch body must quote.
        keys = [f"bulk/{n:03d} ü+&%.bin" for n in range(300)]
        backend.seed({key: b"x" for key in keys})
        result = storage.delete_files([*keys[:150], "bulk/missing", "../bad", *keys[150:]])
        assert result.succeeded == keys
        assert set(result.failed) == {"bulk/missing", "../bad"}
        assert isinstance(result.failed["bulk/missing"], StorageNotFoundError)
        assert isinstance(result.failed["../bad"], StorageValidationError)
        assert storage.list_files("bulk/") == []
        again = storage.delete_files(keys[:3], missing_ok=True)
        assert again.ok and again.succeeded == keys[:3]
