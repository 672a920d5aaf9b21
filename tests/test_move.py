"""``move_file`` on every backend: the object arrives with its content type and
metadata, the source is gone, and bad moves are refused with typed errors before
anything changes."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from perceptra_storage import (
    BaseStorageAdapter,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    StorageValidationError,
)
from tests.conftest import Backend


def test_move_keeps_content_type_and_metadata(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"payload", "in/a.csv", content_type="text/csv",
                        metadata={"owner": "ops"})
    storage.upload_file(b"old", "out/b.csv")
    assert storage.move_file("in/a.csv", "out/b.csv") == "out/b.csv"
    assert not storage.file_exists("in/a.csv")
    assert storage.download_file("out/b.csv") == b"payload"
    info = storage.get_file_metadata("out/b.csv")
    assert info.content_type == "text/csv" and info.metadata == {"owner": "ops"}
    assert [o.key for o in storage.list_files()] == ["out/b.csv"]


def test_bad_moves_change_nothing(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"x", "k")
    with pytest.raises(StorageNotFoundError) as missing:
        storage.move_file("absent", "elsewhere")
    assert missing.value.operation == "move" and "absent" in str(missing.value)
    with pytest.raises(StorageValidationError, match="same key"):
        storage.move_file("k", "k")
    with pytest.raises(StorageValidationError):
        storage.move_file("k", "../escape")
    assert storage.download_file("k") == b"x" and not storage.file_exists("elsewhere")


def test_local_move_is_one_rename(tmp_path: Path) -> None:
    from perceptra_storage import get_storage_adapter

    adapter = get_storage_adapter("local", {"base_path": str(tmp_path)})
    adapter.upload_file(b"data", "deep/down/f.bin", metadata={"tag": "t"})
    inode = os.stat(tmp_path / "deep" / "down" / "f.bin").st_ino
    adapter.move_file("deep/down/f.bin", "new/place/g.bin")
    assert os.stat(tmp_path / "new" / "place" / "g.bin").st_ino == inode
    assert not (tmp_path / "deep").exists()  # folders left empty go, as on object stores
    assert adapter.get_file_metadata("new/place/g.bin").metadata == {"tag": "t"}
    adapter.upload_file(b"", "folder/inside")
    with pytest.raises(StorageError) as caught:
        adapter.move_file("new/place/g.bin", "folder")
    assert caught.value.operation == "move" and "folder" in str(caught.value)
    assert adapter.file_exists("new/place/g.bin") and adapter.file_exists("folder/inside")


def test_a_failed_delete_keeps_both_objects(request: pytest.FixtureRequest,
                                            tmp_path: Path) -> None:
    """Ceph RGW enforces bucket policies on the owner too: with DeleteObject denied,
    the copy is made, the delete is refused (403), and neither object is lost."""
    from tests.cases_s3 import BACKENDS, s3_client

    case: Backend = BACKENDS["minio"](request, tmp_path)
    try:
        storage = case.make()
        bucket = storage.config["bucket_name"]
        storage.upload_file(b"keep me", "src.txt")
        s3_client(request.getfixturevalue("rgw_server")).put_bucket_policy(
            Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Sid": f"deny{uuid.uuid4().hex[:6]}", "Effect": "Deny", "Principal": "*",
                "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
        with pytest.raises(StoragePermissionError) as caught:
            storage.move_file("src.txt", "dst.txt")
        assert "the source was kept" in str(caught.value)
        assert caught.value.operation == "move"
        assert storage.download_file("src.txt") == b"keep me"
        assert storage.download_file("dst.txt") == b"keep me"
        s3_client(request.getfixturevalue("rgw_server")).delete_bucket_policy(Bucket=bucket)
    finally:
        for step in case.cleanup:
            step()
