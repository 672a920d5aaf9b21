"""The memory backend's entry point: the whole contract, then what only it has (private
and named stores inside one process)."""

from __future__ import annotations

import pickle

from perceptra_storage import get_storage_adapter
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
