"""Concurrency: one adapter shared by threads."""

from __future__ import annotations

import os
import threading
import time

from perceptra_storage import (
    StorageAdapter,
)

from .base import ContractBase, in_threads, sha, sync_only

THREADS = ("threads sharing the blocking adapter; coroutines sharing adapter.aio are "
           "test_async.py's gathers and loops in threads, and the 50-client web test")


class ConcurrencyTests(ContractBase):
    """Threads sharing an adapter see only whole objects and their own writes."""

    @sync_only(THREADS)
    def test_eight_threads_of_mixed_operations(self, storage: StorageAdapter) -> None:
        """Eight threads share one adapter, each writing, reading, deleting and listing
        its own keys at random: every read and listing shows that thread's own writes.
        100 operations per thread (800 in all, interleaved by the scheduler) are enough
        to interleave every pair of operations; 200 doubled a 25 s test per network entry."""
        import random as random_module

        rounds = 100
        errors: list[BaseException] = []
        mismatches: list[str] = []
        kept: dict[str, bytes] = {}

        def work(thread: int) -> None:
            rng = random_module.Random(thread)
            mine: dict[str, bytes] = {}
            try:
                for n in range(rounds):
                    choice = rng.random()
                    if choice < 0.4 or not mine:
                        key = f"mixed/{thread}/{n % 20}"
                        mine[key] = os.urandom(rng.randint(0, 64 * 1024))
                        storage.upload_file(mine[key], key)
                        if not storage.file_exists(key):
                            mismatches.append(f"{key} missing after its upload")
                    elif choice < 0.7:
                        key = rng.choice(sorted(mine))
                        if storage.download_file(key) != mine[key]:
                            mismatches.append(key)
                    elif choice < 0.85:
                        key = rng.choice(sorted(mine))
                        storage.delete_file(key)
                        del mine[key]
                    else:
                        listed = {o.key for o in storage.list_files(f"mixed/{thread}/")}
                        if listed != set(mine):
                            mismatches.append(f"listing of thread {thread}")
                kept.update(mine)
            except BaseException as exc:
                errors.append(exc)

        in_threads(work, 8)
        assert errors == [], [repr(error) for error in errors]  # name what went wrong
        assert mismatches == []
        assert [o.key for o in storage.list_files("mixed/")] == sorted(kept)

    @sync_only(THREADS)
    def test_concurrent_readers_never_see_a_torn_object(self, storage: StorageAdapter) -> None:
        """Two threads read an object while a third overwrites it for three seconds:
        every read is one whole version."""
        size = 4 * 1024 * 1024
        versions = {sha(bytes([n]) * size): n for n in range(1, 256)}
        storage.upload_file(bytes([1]) * size, "torn4.bin")
        stop = threading.Event()
        reads: list[str] = []
        errors: list[BaseException] = []

        def read() -> None:
            try:
                while not stop.is_set():
                    reads.append(sha(storage.download_file("torn4.bin")))
            except BaseException as exc:
                errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(2)]
        for reader in readers:
            reader.start()
        deadline, version = time.monotonic() + 3, 1
        try:
            while time.monotonic() < deadline:
                version = version % 255 + 1
                storage.upload_file(bytes([version]) * size, "torn4.bin")
        finally:
            stop.set()
            for reader in readers:
                reader.join()
        torn = [digest for digest in reads if digest not in versions]
        assert errors == [] and reads and torn == []
