"""What ``move_file`` does beyond the contract (``tests/contract/objects.py``): the local
filesystem's move (properties kept, emptied folders gone), and no loss when the store
refuses the delete after the copy."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from perceptra_storage import (
    StorageError,
    StoragePermissionError,
)
from tests.conftest import started_backend


def test_local_move_keeps_properties_and_drops_empty_folders(tmp_path: Path) -> None:
    from perceptra_storage import get_storage_adapter

    adapter = get_storage_adapter("local", {"base_path": str(tmp_path)})
    adapter.upload_file(b"data", "deep/down/f.bin", metadata={"tag": "t"})
    adapter.move_file("deep/down/f.bin", "new/place/g.bin")
    assert (tmp_path / "new" / "place" / "g.bin").read_bytes() == b"data"
    assert not (tmp_path / "deep").exists()  # folders left empty go, as on object stores
    assert adapter.get_file_metadata("new/place/g.bin").metadata == {"tag": "t"}
    adapter.upload_file(b"", "folder/inside")
    with pytest.raises(StorageError) as caught:
        adapter.move_file("new/place/g.bin", "folder")
    assert caught.value.operation == "move" and "directory" in str(caught.value)
    assert adapter.file_exists("new/place/g.bin") and adapter.file_exists("folder/inside")


def test_a_failed_delete_keeps_both_objects(request: pytest.FixtureRequest,
                                            tmp_path: Path) -> None:
    """Ceph RGW enforces bucket policies on the owner too: with DeleteObject denied,
    the copy is made, the delete is refused (403), and neither object is lost."""
    from tests.cases_s3 import s3_client

    with started_backend("minio", request, tmp_path) as case:
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
