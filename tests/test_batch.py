"""The batch engine against the network backends' real servers, through the fault proxy."""

from __future__ import annotations

from perceptra_storage import StoragePermissionError
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
