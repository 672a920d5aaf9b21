"""The memory backend's entry point: the whole contract, then what only it has (private
and named stores inside one process)."""

from __future__ import annotations

import pickle
import time
import uuid

import pytest

from perceptra_storage import (
    MemoryStorageAdapter,
    StorageConnectionError,
    StorageNotFoundError,
    StoragePermissionError,
    StorageValidationError,
    get_storage_adapter,
)
from tests.contract import Contract


class TestMemoryContract(Contract):
    """The whole contract on the memory backend."""

    case = "memory"


def test_private_stores_are_isolated() -> None:
    first = get_storage_adapter("memory")
    second = get_storage_adapter("memory")
    first.upload_file(b"mine", "k")
    assert not second.file_exists("k")


def test_named_stores_are_shared_like_a_bucket() -> None:
    writer = get_storage_adapter("memory", {"store_name": "shared-test"})
    reader = get_storage_adapter("memory", {"store_name": "shared-test", "prefix": "t"})
    writer.upload_file(b"tenant data", "t/file.txt")
    assert reader.download_file("file.txt") == b"tenant data"
    clone = pickle.loads(pickle.dumps(reader))
    writer.upload_file(b"later", "t/after.txt")
    assert clone.download_file("after.txt") == b"later"


def test_unpickled_private_store_is_an_independent_copy() -> None:
    original = get_storage_adapter("memory")
    original.upload_file(b"v1", "k")
    copy = pickle.loads(pickle.dumps(original))
    copy.upload_file(b"v2", "k")
    assert original.download_file("k") == b"v1"
    assert copy.download_file("k") == b"v2"


# -- an object store at any size ----------------------------------------------------------


def _upload_cost(count: int) -> float:
    """Seconds per 1-byte upload into a store already holding ``count`` objects."""
    storage = get_storage_adapter("memory")
    storage.upload_files({f"fill/{n:06d}": b"" for n in range(count)})
    start = time.perf_counter()
    for n in range(200):
        storage.upload_file(b"x", f"new/{n}")
    return (time.perf_counter() - start) / 200


def test_a_write_does_not_scan_the_store() -> None:
    """The same upload costs the same with 100 or 5,000 objects stored (it scanned the
    store before: 41 us with 100, 2.4 ms with 20,000); 3x leaves room for a loaded
    machine."""
    small, large = min(_upload_cost(100) for _ in range(3)), _upload_cost(5_000)
    assert large < 3 * small + 20e-6, (small, large)


def test_listings_are_sorted_lazy_and_see_later_writes() -> None:
    storage = get_storage_adapter("memory")
    keys = [f"k/{n:03d}" for n in range(300)]
    for key in reversed(keys):
        storage.upload_file(b"x", key)
    assert [o.key for o in storage.list_files("k/", max_results=5)] == keys[:5]
    listing = storage.iter_files("k/")
    assert next(listing).key == "k/000"
    storage.delete_file("k/001")  # deleted while the listing runs: not listed
    storage.upload_file(b"y", "k/0005")
    assert next(listing).key == "k/002"
    assert [o.key for o in storage.iter_files("k/00")][:3] == ["k/000", "k/0005", "k/002"]
    storage.upload_file(b"z", "k/001")
    assert [o.key for o in storage.list_files("k/00", max_results=3)] == \
        ["k/000", "k/0005", "k/001"]


def test_every_write_gets_a_new_etag_and_a_later_time() -> None:
    storage = get_storage_adapter("memory")
    seen = []
    for _ in range(50):
        storage.upload_file(b"same bytes", "k")
        info = storage.get_file_metadata("k")
        seen.append((info.etag, info.last_modified))
    etags, times = zip(*seen, strict=True)
    assert len(set(etags)) == 50
    assert list(times) == sorted(times) and len(set(times)) == 50
    storage.copy_file("k", "copy")
    assert storage.get_file_metadata("copy").etag not in etags
    assert storage.get_file_metadata("copy").last_modified > times[-1]


def test_a_file_and_a_folder_share_a_name_through_every_route() -> None:
    storage = get_storage_adapter("memory")
    storage.upload_file(b"folder/child", "a/b")
    storage.upload_file(b"file", "a")
    fs = storage.filesystem
    assert fs.info("/store/a")["type"] == "file"
    assert {(e["name"], e["type"]) for e in fs.ls("/store")} == \
        {("/store/a", "file"), ("/store/a", "directory")}
    assert storage.fs.cat_file("a/b") == b"folder/child"


# -- fault injection: how users test their own code ----------------------------------------


def save_report(storage: MemoryStorageAdapter, data: bytes, key: str,
                attempts: int = 3) -> str:
    """A user's own retry loop, the code under test: transient failures are tried again,
    anything else is raised at once."""
    for attempt in range(1, attempts + 1):
        try:
            return storage.upload_file(data, key)
        except StorageConnectionError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def test_a_retry_loop_survives_transient_faults() -> None:
    storage = get_storage_adapter("memory", {"store_name": f"app-{uuid.uuid4().hex}"})
    fault = storage.faults.fail_next(2, StorageConnectionError)
    assert save_report(storage, b"q1", "reports/q1.csv") == "reports/q1.csv"
    assert fault.fired == 2 and storage.faults.active == []
    assert storage.download_file("reports/q1.csv") == b"q1"


def test_a_retry_loop_gives_up_and_raises_the_typed_error() -> None:
    storage = get_storage_adapter("memory")
    with storage.faults.fail(StorageConnectionError, operation="upload", key="reports/*",
                             times=None) as fault:
        with pytest.raises(StorageConnectionError) as info:
            save_report(storage, b"q1", "reports/q1.csv")
        storage.upload_file(b"elsewhere", "other/k")  # another key: not hit
    assert fault.fired == 3 and storage.faults.active == []
    error = info.value
    assert (error.backend, error.operation, error.key) == ("memory", "upload", "reports/q1.csv")
    assert "injected fault" in str(error)
    assert not storage.file_exists("reports/q1.csv")


def test_a_retry_loop_does_not_retry_a_permanent_error() -> None:
    storage = get_storage_adapter("memory")
    fault = storage.faults.fail(StoragePermissionError, operation="upload", times=None)
    with pytest.raises(StoragePermissionError):
        save_report(storage, b"q1", "reports/q1.csv")
    assert fault.fired == 1
    fault.remove()
    assert save_report(storage, b"q1", "reports/q1.csv")


def test_faults_reach_adapters_the_code_under_test_builds_itself() -> None:
    name = f"shared-{uuid.uuid4().hex}"
    test_side = get_storage_adapter("memory", {"store_name": name})
    test_side.faults.fail(ConnectionResetError("peer reset"), operation="download")
    app_side = get_storage_adapter("memory", {"store_name": name})
    app_side.upload_file(b"x", "k")
    with pytest.raises(StorageConnectionError) as info:  # the rule table typed it
        app_side.download_file("k")
    assert isinstance(info.value.__cause__, ConnectionResetError)
    assert app_side.download_file("k") == b"x"


def test_faults_hit_batch_items_one_by_one() -> None:
    storage = get_storage_adapter("memory")
    storage.faults.fail(StorageNotFoundError, operation="delete", key="b")
    storage.upload_files({"a": b"1", "b": b"2", "c": b"3"})
    result = storage.delete_files(["a", "b", "c"])
    assert result.succeeded == ["a", "c"] and isinstance(result.failed["b"],
                                                          StorageNotFoundError)


def test_slow_operations_and_timeouts_in_user_code() -> None:
    storage = get_storage_adapter("memory")
    storage.upload_file(b"x", "k")
    storage.faults.delay(0.05, operation="download", times=2)
    start = time.perf_counter()
    storage.download_file("k")
    storage.download_file("k")
    slow = time.perf_counter() - start
    start = time.perf_counter()
    storage.download_file("k")
    assert slow >= 0.1 > time.perf_counter() - start


def test_fault_arguments_are_checked() -> None:
    faults = get_storage_adapter("memory").faults
    for call in (lambda: faults.fail(operation="uplaod"), lambda: faults.fail(times=0),
                 lambda: faults.fail("boom"), lambda: faults.delay(-1),  # type: ignore[arg-type]
                 lambda: faults.fail(key=3)):  # type: ignore[arg-type]
        with pytest.raises(StorageValidationError):
            call()
    assert faults.active == []
