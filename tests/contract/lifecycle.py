"""An adapter's life: context manager, connection check, pickling, forking, its log records."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest

from perceptra_storage import (
    StorageAdapter,
    StorageNotFoundError,
    StorageValidationError,
)
from tests.conftest import Backend

from .base import ContractBase, needs


class LifecycleTests(ContractBase):
    """What happens to an adapter around its operations."""

    def test_context_manager_closes_and_adapter_stays_usable(self, backend: Backend) -> None:
        with backend.make() as adapter:
            adapter.upload_file(b"in", "ctx.txt")
        assert adapter.download_file("ctx.txt") == b"in"

    def test_test_connection(self, storage: StorageAdapter) -> None:
        assert storage.test_connection() is True
        assert storage.test_connection(timeout=2) is True
        with pytest.raises(StorageValidationError, match="timeout"):
            storage.test_connection(timeout=0)

    def test_pickled_adapter_reads_the_same_objects(self, storage: StorageAdapter) -> None:
        storage.upload_file(b"shipped to a worker", "p/k.bin")
        clone = pickle.loads(pickle.dumps(storage))
        assert clone.download_file("p/k.bin") == b"shipped to a worker"
        assert [o.key for o in clone.list_files()] == ["p/k.bin"]

    @needs("shared_across_processes")
    def test_forked_child_uses_the_parents_adapter(self, backend: Backend) -> None:
        import multiprocessing

        storage = backend.make()
        storage.upload_file(b"before fork", "fork/parent.txt")
        assert storage.list_files("fork/")

        def child(adapter: StorageAdapter, queue: Any) -> None:
            try:
                adapter.upload_file(b"from child", "fork/child.txt")
                queue.put((adapter.download_file("fork/parent.txt"),
                           [o.key for o in adapter.list_files("fork/")]))
            except BaseException as exc:
                queue.put(repr(exc))

        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        process = context.Process(target=child, args=(storage, queue))
        process.start()
        try:
            outcome = queue.get(timeout=60)
        finally:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        if not backend.survives_fork:
            # obstore's runtime threads do not exist in a forked child: a clear error
            # that names the way out, not a hang.
            assert "StorageOperationError" in outcome and "spawn" in outcome
            return
        assert outcome == (b"before fork", ["fork/child.txt", "fork/parent.txt"])
        assert storage.download_file("fork/child.txt") == b"from child"

    def test_one_debug_record_per_operation_and_nothing_louder(
            self, backend: Backend, storage: StorageAdapter,
            caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.DEBUG, logger="perceptra_storage"):
            storage.upload_file(b"log me", "logs/k.txt")
            storage.download_file("logs/k.txt")
            with pytest.raises(StorageNotFoundError):
                storage.download_file("logs/missing.txt")
            assert len(storage.list_files("logs/", max_results=1)) == 1
        ours = [r for r in caplog.records if r.name.startswith("perceptra_storage")]
        assert [r.levelno for r in ours] == [logging.DEBUG] * 4
        messages = [r.getMessage() for r in ours]
        assert "upload" in messages[0] and "logs/k.txt" in messages[0] and "ms" in messages[0]
        assert "download" in messages[2] and "failed" in messages[2]
        assert all(backend.name in m for m in messages)
        for secret in backend.secrets:
            assert all(secret not in m for m in messages)
