"""The contract suite through ``adapter.aio``: adapters whose methods await the view.

:class:`ThroughAio` looks like a sync adapter to the contract tests, but each of its
contract methods awaits the same method of ``adapter.aio`` on an event loop running in
a thread of the test's own (:class:`LoopThread`), so every contract test that calls it
exercises the async path, its errors and its results. What is not part of the async
API (``url``, ``fs``, ``filesystem``...) is the adapter's own.

The loop is ended at the end of the test as ``asyncio.run`` ends one (its async
generators closed first), so each test also checks that the view closes its sessions
on the loop that opened them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import threading
from collections.abc import Awaitable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Optional, TypeVar

from perceptra_storage import BaseStorageAdapter
from perceptra_storage.aio import AsyncFile
from tests.conftest import Backend

T = TypeVar("T")

AWAITED = frozenset({
    "test_connection", "upload_file", "download_file", "delete_file", "file_exists",
    "get_file_metadata", "list_files", "generate_presigned_url", "get_public_url",
    "copy_file", "move_file", "upload_files", "download_files", "delete_files",
    "copy_files", "move_files", "generate_presigned_post", "set_cors", "get_cors",
})
"""Methods the shim awaits on ``adapter.aio`` (``iter_files`` and ``open`` too, below)."""


class LoopThread:
    """An event loop running in a thread of its own, ended like ``asyncio.run`` ends one."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="aio-contract-loop")
        self._thread.start()
        self.pid = os.getpid()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.run(self.loop.shutdown_asyncgens())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


_FALLBACK: dict[int, LoopThread] = {}
"""A loop per process for shims that arrive by pickle or fork, without a test's loop."""


def _process_loop() -> LoopThread:
    pid = os.getpid()
    if pid not in _FALLBACK:
        _FALLBACK[pid] = LoopThread()
    return _FALLBACK[pid]


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


class ThroughAio:
    """A sync-looking adapter whose contract methods run ``adapter.aio``'s coroutines."""

    def __init__(self, adapter: BaseStorageAdapter, runner: Optional[LoopThread] = None) -> None:
        self._adapter = adapter
        self._runner = runner

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        runner = self._runner
        if runner is None or runner.pid != os.getpid():
            runner = self._runner = _process_loop()  # a forked child or an unpickled copy
        return runner.run(coroutine)

    def __getattr__(self, name: str) -> Any:
        if name in AWAITED:
            method = getattr(self._adapter.aio, name)
            return lambda *args, **kwargs: self._run(method(*args, **kwargs))
        return getattr(self._adapter, name)

    def iter_files(self, prefix: str = "") -> Iterator[Any]:
        listing = self._adapter.aio.iter_files(prefix)
        try:
            while True:
                try:
                    yield self._run(_awaited(listing.__anext__()))
                except StopAsyncIteration:
                    return
        finally:
            runner = self._runner
            if runner is not None and not runner.loop.is_closed():
                self._run(_awaited(listing.aclose()))  # type: ignore[attr-defined]

    def open(self, key: str, mode: str = "rb", **options: Any) -> SyncFile:
        return SyncFile(self, self._run(_awaited(self._adapter.aio.open(key, mode, **options))))

    def close(self) -> None:
        self._run(self._adapter.aio.aclose())
        self._adapter.close()

    def __enter__(self) -> ThroughAio:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._run(self._adapter.aio.__aexit__(*exc_info))

    def __repr__(self) -> str:
        return repr(self._adapter.aio)

    def __reduce__(self) -> tuple[Any, ...]:
        return ThroughAio, (self._adapter,)


class SyncFile(io.RawIOBase):
    """An :class:`AsyncFile` driven from blocking code."""

    def __init__(self, shim: ThroughAio, file: AsyncFile) -> None:
        super().__init__()
        self._shim = shim
        self._file = file

    def readable(self) -> bool:
        return self._file.mode == "rb"

    def writable(self) -> bool:
        return self._file.mode == "wb"

    def seekable(self) -> bool:
        return self._file.mode == "rb"

    def read(self, size: Optional[int] = -1) -> bytes:
        return self._shim._run(self._file.read(-1 if size is None else size))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def write(self, data: Any) -> int:
        return self._shim._run(self._file.write(data))

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        if not self.closed:
            try:
                self._shim._run(self._file.close())
            finally:
                super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.closed:
            return
        try:
            self._shim._run(self._file.__aexit__(exc_type, exc, tb))
        finally:
            super().close()


@contextmanager
def through_aio(backend: Backend) -> Iterator[Backend]:
    """``backend`` whose adapters (``make`` and ``via``) are driven through ``aio`` on a
    loop of this test's own, ended afterwards."""
    runner = LoopThread()
    via = backend.via
    wrapped = dataclasses.replace(
        backend,
        factory=lambda prefix: ThroughAio(backend.factory(prefix), runner),  # type: ignore[arg-type,return-value]
        via=None if via is None else
        (lambda endpoint, extra: ThroughAio(via(endpoint, extra), runner)),  # type: ignore[arg-type,return-value]
    )
    try:
        yield wrapped
    finally:
        runner.close()
