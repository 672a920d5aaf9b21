"""The batch engine against the network backends' real servers, through the fault proxy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Optional

import pytest

from perceptra_storage import (
    BaseStorageAdapter,
    PresignedUrl,
    StorageNotFoundError,
    StorageObject,
    StoragePermissionError,
    StorageValidationError,
)
from tests.conftest import Faulty

FAST = {"read_timeout": 2, "max_attempts": 2, "retry_backoff": 0.1}
"""Timeouts short enough for fault tests; two attempts, so a retry would show."""


def test_bulk_delete_refused_is_reported_per_key_without_retrying_each(faulty: Faulty) -> None:
    # A 403 on the bulk request is an answer for every key in it, not a sign that the
    # store lacks bulk delete: no request per key follows, no retry either.
    keys = ["gone/a.bin", "gone/b.bin", "gone/c.bin"]
    assert faulty.backend.make().upload_files({key: b"x" for key in keys}).ok
    adapter = faulty.make(**FAST)
    faulty.proxy.set("status", status=403)
    before = faulty.proxy.connections
    result = adapter.delete_files(keys, missing_ok=True)
    used = faulty.proxy.connections - before
    assert result.succeeded == [] and list(result.failed) == keys
    for key, error in result.failed.items():
        assert isinstance(error, StoragePermissionError), (key, error)
        assert (error.backend, error.operation, error.key) == (faulty.backend.name, "delete", key)
    assert used == 1, used
    faulty.proxy.set("pass")
    assert [o.key for o in faulty.backend.make().list_files("gone/")] == keys


class _Dict(BaseStorageAdapter):
    """A 0.1-style adapter: only the eight primitives, no filesystem."""

    def _validate_config(self) -> None:
        self.store: dict[str, bytes] = {}

    def test_connection(self, timeout: float = 10) -> bool:
        return True

    def upload_file(self, file_obj: Any, key: str, content_type: Any = None,
                    metadata: Any = None) -> str:
        self.store[key] = file_obj if isinstance(file_obj, bytes) else file_obj.read()
        return key

    def download_file(self, key: str, destination: Any = None) -> Any:
        if key not in self.store:
            raise StorageNotFoundError("no such key")
        if destination is None:
            return self.store[key]
        Path(destination).write_bytes(self.store[key])
        return str(destination)

    def delete_file(self, key: str) -> bool:
        if self.store.pop(key, None) is None:
            raise StorageNotFoundError("no such key")
        return True

    def file_exists(self, key: str) -> bool:
        return key in self.store

    def get_file_metadata(self, key: str) -> StorageObject:
        if key not in self.store:
            raise StorageNotFoundError("no such key")
        return StorageObject(key, len(self.store[key]), datetime.now(UTC))

    def list_files(self, prefix: str = "", max_results: int = 1000) -> list[StorageObject]:
        return [self.get_file_metadata(k) for k in sorted(self.store) if k.startswith(prefix)]

    def generate_presigned_url(self, key: str, expiration: int = 3600,
                               method: str = "GET") -> PresignedUrl:
        raise NotImplementedError


class _InOrder(_Dict):
    batch_in_threads = False


@pytest.mark.parametrize("kind", [_Dict, _InOrder])
def test_custom_adapters_get_every_batch_kind_through_their_primitives(
        tmp_path: Path, kind: type[_Dict]) -> None:
    adapter = kind()
    seen: list[tuple[int, Optional[int]]] = []
    uploaded = adapter.upload_files({"a": b"1", "b": b"22", "../x": b"3"},
                                    progress=lambda done, total: seen.append((done, total)))
    assert uploaded.succeeded == ["a", "b"] and list(uploaded.failed) == ["../x"]
    assert isinstance(uploaded.failed["../x"], StorageValidationError)
    assert max(seen) == (3, 4)  # bytes of the two valid sources, of all three
    assert adapter.copy_files({"a": "c"}).succeeded == ["c"]
    assert adapter.move_files([("b", "d")]).succeeded == ["d"] and "b" not in adapter.store
    downloaded = adapter.download_files(["c", "missing"], tmp_path)
    assert downloaded.succeeded == ["c"] and (tmp_path / "c").read_bytes() == b"1"
    assert isinstance(downloaded.failed["missing"], StorageNotFoundError)
    deleted = adapter.delete_files(["a", "missing", "c"])
    assert deleted.succeeded == ["a", "c"]
    error = deleted.failed["missing"]
    assert (error.backend, error.operation, error.key) == ("custom", "delete", "missing")
    assert adapter.delete_files(["missing"], missing_ok=True).ok


def test_raise_for_errors_says_the_same_each_time() -> None:
    # Dask's workers install tblib's exception pickling, under which a shallow copy of an
    # error shares its __dict__: the summary must be a new error all the same.
    from tblib import pickling_support

    pickling_support.install()
    result = _Dict().delete_files(["x", "y", "z"])
    messages = []
    for _ in range(3):
        with pytest.raises(StorageNotFoundError) as info:
            result.raise_for_errors()
        messages.append(str(info.value))
    assert messages[0].endswith("(and 2 more failed)") and len(set(messages)) == 1
    assert "more failed" not in str(result.failed["x"])
