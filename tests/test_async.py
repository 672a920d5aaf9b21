"""``adapter.aio`` beyond the contract (which runs through it in test_async_contract.py):
its signatures against the sync API, cancellation on every backend, several event loops
and threads, fork, custom adapters, and a web app under 50 concurrent clients."""

from __future__ import annotations

import asyncio
import gc
import inspect
import multiprocessing
import os
import re
import threading
import time
import typing
import warnings
from pathlib import Path
from typing import Any, Optional

import pytest

from perceptra_storage import (
    BaseStorageAdapter,
    StorageNotFoundError,
    StorageObject,
    StorageValidationError,
    get_storage_adapter,
)
from perceptra_storage.adapter import FsspecStorageAdapter
from perceptra_storage.aio import AsyncStorage, _FilesystemThreads, _NativeStorage
from perceptra_storage.base import PresignedUrl
from tests.conftest import Backend

MiB = 2**20

NOT_AWAITED = {"url", "native_url", "close"}
"""Public methods of the sync adapter that the async view does not mirror: URLs for
the fsspec route (computed, and used by tools that call synchronously), and ``close``
(the view's is ``aclose``). Properties (``fs``, ``storage_options``...) stay sync."""

VIEWS = (AsyncStorage, _FilesystemThreads, _NativeStorage)


def _public_methods() -> list[str]:
    return sorted(name for name, member in inspect.getmembers(FsspecStorageAdapter)
                  if not name.startswith("_") and name not in NOT_AWAITED and
                  inspect.isfunction(member))


def _parameters(function: Any) -> list[tuple[str, Any, Any, Any]]:
    signature = inspect.signature(function)
    return [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()]


@pytest.mark.parametrize("name", _public_methods())
def test_async_view_has_the_sync_signatures(name: str) -> None:
    """Same names, parameters, defaults and annotations (overloads included), so the two
    APIs cannot drift apart: a keyword added to a sync method fails here until the view
    has it too."""
    sync = getattr(FsspecStorageAdapter, name)
    sync_overloads = [_parameters(each) for each in typing.get_overloads(sync)]
    for view in VIEWS:
        method = getattr(view, name)
        assert _parameters(method) == _parameters(sync), (view.__name__, name)
        if name == "open":
            continue  # an awaitable async context manager, not a coroutine function
        assert inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method), name
        own = [_parameters(each) for each in typing.get_overloads(method)]
        assert own == sync_overloads or (not own and view in (_FilesystemThreads,)) or \
            (not own and not sync_overloads), (view.__name__, name)


def test_every_built_in_backend_gets_the_fitting_view(backend: Backend) -> None:
    storage = backend.make()
    assert storage.aio is storage.aio
    kind = _NativeStorage if backend.network else _FilesystemThreads
    assert type(storage.aio) is kind
    assert backend.name in repr(storage.aio)
    for secret in backend.secrets:
        assert secret not in repr(storage.aio)


# -- cancellation ---------------------------------------------------------------------


def _connections_to(port: int) -> int:
    """TCP connections this process holds to ``port`` on loopback (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count


class _CancelAtFirstChunk:
    """A progress callback that cancels ``task`` once the first bytes moved. Called on
    the loop (native filesystems) it only asks; called from a worker thread it also
    waits until the task has seen the cancellation, so the transfer is surely mid-way."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self.task: Optional[asyncio.Task[Any]] = None
        self.asked = threading.Event()
        self.calls = 0

    def __call__(self, done: int, total: Optional[int]) -> None:
        self.calls += 1
        if self.asked.is_set() or not done:
            return
        self.asked.set()
        assert self.task is not None
        self._loop.call_soon_threadsafe(self.task.cancel)
        if threading.get_ident() != self._loop_thread:
            time.sleep(0.2)  # the loop delivers the cancellation meanwhile


async def _cancelled(start: Any) -> _CancelAtFirstChunk:
    """Start a transfer with a cancelling progress callback; await its cancellation."""
    cancel = _CancelAtFirstChunk(asyncio.get_running_loop())
    cancel.task = asyncio.create_task(start(cancel))
    with pytest.raises(asyncio.CancelledError):
        await cancel.task
    assert cancel.asked.is_set()
    return cancel


def _left_open(messages: list[str]) -> list[str]:
    """The "unclosed ..." warnings of sessions, connectors and sockets left open.

    Not those of a socket whose transport was already closing: aiohttp closes the
    connection of a cancelled request with ``transport.close()``, which keeps the socket
    until the unsent rest of the request body (seen: 37,388 bytes) is written, and when
    ``asyncio.run`` ends the loop first, the transport is collected in that state (about
    1 run in 10 against Azurite).  Such a socket was closed, not forgotten."""
    closing = {match.group(1) for message in messages
               if (match := re.search(r"transport <\w+ closing fd=(\d+)>", message))}
    return [message for message in messages if "nclosed" in message
            and not ((match := re.search(r"\bfd=(\d+)", message))
                     and match.group(1) in closing)]


def test_cancelled_upload_leaves_the_previous_version_and_nothing_pending(
        backend: Backend, tmp_path: Path) -> None:
    storage = backend.make()
    storage.upload_file(b"previous version", "c/k.bin", metadata={"v": "1"})
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(24 * MiB))  # several parts, several local chunks
    port = backend.server[1] if backend.server else None
    before = _connections_to(port) if port else 0

    async def main() -> None:
        await _cancelled(lambda cancel: storage.aio.upload_file(big, "c/k.bin",
                                                               progress=cancel))
        with open(big, "rb") as stream:  # a file object: sent through a temporary file
            await _cancelled(lambda cancel: storage.aio.upload_file(stream, "c/new.bin",
                                                                   progress=cancel))
        # The view still works on this loop after the cancellations.
        assert await storage.aio.download_file("c/k.bin") == b"previous version"

    gc.collect()  # earlier tests' garbage in this worker is not this test's to judge
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        asyncio.run(main())
        gc.collect()
    assert not _left_open([str(w.message) for w in caught])
    assert storage.download_file("c/k.bin") == b"previous version"
    assert storage.get_file_metadata("c/k.bin").metadata == {"v": "1"}
    assert [o.key for o in storage.list_files()] == ["c/k.bin"]
    if backend.discards_failed_uploads:
        assert backend.pending_uploads() == 0
    if port:  # the loop's sessions were closed when asyncio.run ended it
        assert _connections_to(port) <= before


def test_cancelled_download_leaves_no_partial_file(backend: Backend, tmp_path: Path) -> None:
    storage = backend.make()
    payload = os.urandom(24 * MiB)
    storage.upload_file(payload, "c/big.bin")
    target = tmp_path / "out" / "big.bin"
    target.parent.mkdir()
    target.write_bytes(b"mine")

    async def main() -> None:
        await _cancelled(lambda cancel: storage.aio.download_file("c/big.bin", target,
                                                                 progress=cancel))
        await _cancelled(lambda cancel: storage.aio.download_file(
            "c/big.bin", tmp_path / "out" / "fresh.bin", progress=cancel))
        assert await storage.aio.download_file("c/big.bin") == payload

    asyncio.run(main())
    assert target.read_bytes() == b"mine"
    assert sorted(p.name for p in target.parent.iterdir()) == ["big.bin"]


def test_cancelled_open_write_stores_nothing(backend: Backend) -> None:
    """A write cancelled after parts went up (the stream is sent as it comes, not held
    until the end) stores nothing and leaves no unfinished multipart upload."""
    storage = backend.make()
    storage.upload_file(b"previous", "c/w.bin")
    sent_before_close: list[int] = []

    async def main() -> None:
        written = asyncio.Event()

        async def write() -> None:
            async with storage.aio.open("c/w.bin", "wb") as f:
                for _ in range(12):
                    await f.write(os.urandom(MiB))
                if backend.multipart_uploads and backend.discards_failed_uploads:
                    sent_before_close.append(await asyncio.to_thread(backend.pending_uploads))
                written.set()
                await asyncio.sleep(30)

        task = asyncio.create_task(write())
        waiter = asyncio.create_task(written.wait())
        await asyncio.wait([task, waiter], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()  # the write failed: its error, not a wait
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert storage.download_file("c/w.bin") == b"previous"
    assert [o.key for o in storage.list_files()] == ["c/w.bin"]
    assert all(pending >= 1 for pending in sent_before_close)
    if backend.discards_failed_uploads:
        assert backend.pending_uploads() == 0


# -- loops, threads, fork ----------------------------------------------------------------


@pytest.mark.parametrize("case", ["s3"])
def test_one_adapter_on_several_loops_in_several_threads(
        case: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Each thread runs its own loop (as some servers do); the adapter serves all of them
    at once, each with the filesystem of its own loop; and after those loops ended, a new
    one on this thread works too (as in a notebook, whose loop is already running)."""
    from tests.conftest import started_backend

    with started_backend(case, request, tmp_path) as backend:
        storage = backend.make()
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            async def main() -> None:
                keys = [f"t{n}/{i}" for i in range(10)]
                await asyncio.gather(*(storage.aio.upload_file(k.encode(), k) for k in keys))
                got = await asyncio.gather(*(storage.aio.download_file(k) for k in keys))
                assert got == [k.encode() for k in keys]
                assert [o.key async for o in storage.aio.iter_files(f"t{n}/")] == sorted(keys)
            try:
                asyncio.run(main())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(storage.list_files()) == 40

        async def again() -> list[StorageObject]:
            return await storage.aio.list_files("t0/")

        assert len(asyncio.run(again())) == 10


def _child(storage: BaseStorageAdapter, queue: Any) -> None:
    async def main() -> bytes:
        await storage.aio.upload_file(b"from the child", "fork/child.txt")
        return await storage.aio.download_file("fork/parent.txt")

    try:
        queue.put(asyncio.run(main()))
    except BaseException as exc:
        queue.put(repr(exc))


def test_forked_child_uses_the_view_its_parent_used(shared_backend: Backend) -> None:
    storage = shared_backend.make()

    async def parent() -> None:
        await storage.aio.upload_file(b"from the parent", "fork/parent.txt")

    asyncio.run(parent())
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_child, args=(storage, queue))
    process.start()
    try:
        outcome = queue.get(timeout=60)
    finally:
        process.join(timeout=10)
    assert outcome == b"from the parent"
    assert storage.download_file("fork/child.txt") == b"from the child"


def test_errors_are_the_sync_ones(backend: Backend) -> None:
    storage = backend.make()

    async def main() -> None:
        with pytest.raises(StorageNotFoundError) as missing:
            await storage.aio.download_file("no/such.txt")
        assert (missing.value.backend, missing.value.operation, missing.value.key) == \
            (backend.name, "download", "no/such.txt")
        with pytest.raises(StorageValidationError):
            await storage.aio.upload_file(b"x", "../escape")
        with pytest.raises(StorageValidationError):
            async with storage.aio.open("k", "r"):
                pass
        assert await storage.aio.file_exists("nothing") is False

    asyncio.run(main())


# -- custom adapters -----------------------------------------------------------------------


class _DictAdapter(BaseStorageAdapter):
    """A custom adapter written the 0.1 way: the eight methods, nothing else."""

    def _validate_config(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.threads: set[int] = set()

    def test_connection(self, timeout: float = 10) -> bool:
        return True

    def upload_file(self, file_obj: Any, key: str, content_type: Optional[str] = None,
                    metadata: Optional[dict[str, str]] = None) -> str:
        self.threads.add(threading.get_ident())
        self.objects[key] = bytes(file_obj)
        return key

    def download_file(self, key: str, destination: Optional[Any] = None) -> Any:
        if key not in self.objects:
            raise StorageNotFoundError("missing", key=key)
        return self.objects[key]

    def delete_file(self, key: str) -> bool:
        del self.objects[key]
        return True

    def file_exists(self, key: str) -> bool:
        return key in self.objects

    def get_file_metadata(self, key: str) -> StorageObject:
        raise NotImplementedError

    def list_files(self, prefix: str = "", max_results: int = 1000) -> list[StorageObject]:
        from datetime import UTC, datetime

        return [StorageObject(k, len(v), datetime.now(UTC)) for k, v in
                sorted(self.objects.items()) if k.startswith(prefix)][:max_results]

    def generate_presigned_url(self, key: str, expiration: int = 3600,
                               method: str = "GET") -> PresignedUrl:
        raise NotImplementedError


def test_a_custom_adapter_gets_a_thread_backed_view() -> None:
    custom = _DictAdapter()

    async def main() -> None:
        assert await custom.aio.upload_file(b"one", "a") == "a"
        result = await custom.aio.upload_files({"b": b"two", "c": b"three"}, concurrency=2)
        assert result.ok and result.succeeded == ["b", "c"]
        assert await custom.aio.download_file("b") == b"two"
        assert [o.key async for o in custom.aio.iter_files()] == ["a", "b", "c"]
        async with custom.aio.open("d", "wb") as f:
            await f.write(b"four")
        with pytest.raises(StorageNotFoundError):
            await custom.aio.download_file("zz")

    asyncio.run(main())
    assert custom.objects["d"] == b"four"
    assert threading.get_ident() not in custom.threads


def test_batches_on_the_loop_report_each_item(storage: Any, tmp_path: Path) -> None:
    async def main() -> None:
        result = await storage.aio.upload_files({f"b/{n}": bytes([n]) * n for n in range(30)},
                                                concurrency=4)
        assert result.ok and len(result.succeeded) == 30
        down = await storage.aio.download_files(["b/3", "b/none"], tmp_path / "d")
        assert down.succeeded == ["b/3"] and isinstance(down.failed["b/none"],
                                                         StorageNotFoundError)
        gone = await storage.aio.delete_files([f"b/{n}" for n in range(30)])
        assert gone.ok

    asyncio.run(main())
    assert (tmp_path / "d" / "b" / "3").read_bytes() == b"\x03" * 3
    assert storage.list_files() == []


def test_get_storage_adapter_result_has_a_view() -> None:
    adapter = get_storage_adapter("memory")
    assert isinstance(adapter.aio, AsyncStorage)
