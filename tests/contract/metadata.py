"""Object properties: size, time, etag, content type and user metadata, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from perceptra_storage import (
    StorageAdapter,
    StorageValidationError,
)

from .base import ContractBase


class MetadataTests(ContractBase):
    """What ``get_file_metadata`` reports, and metadata that cannot be stored portably."""

    def test_metadata_fields(self, storage: StorageAdapter) -> None:
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

    def test_etag_changes_with_content(self, storage: StorageAdapter) -> None:
        storage.upload_file(b"one", "e.bin")
        first = storage.get_file_metadata("e.bin").etag
        storage.upload_file(b"two!", "e.bin")
        assert storage.get_file_metadata("e.bin").etag != first

    @pytest.mark.parametrize("key, expected", [
        ("a.json", "application/json"), ("b.png", "image/png"), ("c.csv", "text/csv"),
        ("noext", "application/octet-stream"), ("d.parquet", "application/octet-stream"),
    ])
    def test_default_content_type_from_extension(self, storage: StorageAdapter, key: str,
                                                 expected: str) -> None:
        storage.upload_file(b"x", key)
        assert storage.get_file_metadata(key).content_type == expected

    def test_explicit_content_type_wins(self, storage: StorageAdapter) -> None:
        storage.upload_file(b"{}", "x.txt", content_type="application/json; charset=utf-8")
        assert storage.get_file_metadata("x.txt").content_type == "application/json; charset=utf-8"

    @pytest.mark.parametrize("metadata", [
        {"Owner": "upper-case name"}, {"my--key": "double hyphen"}, {"1st": "digit first"},
        {"k": "é non-ascii"}, {"k": " padded "}, {"k": 5}, {"is_directory": "true"},
        {"k": "line\nbreak"}, {"big": "x" * 3000},
    ], ids=repr)
    def test_unportable_metadata_is_refused_before_upload(self, storage: StorageAdapter,
                                                          metadata: Any) -> None:
        with pytest.raises(StorageValidationError):
            storage.upload_file(b"x", "meta.bin", metadata=metadata)
        assert not storage.file_exists("meta.bin")

    def test_bad_content_type_is_refused(self, storage: StorageAdapter) -> None:
        with pytest.raises(StorageValidationError, match="content_type"):
            storage.upload_file(b"x", "ct.bin", content_type="not a type\r\nX-Evil: 1")
        assert not storage.file_exists("ct.bin")
