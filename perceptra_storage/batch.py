"""The batch engine: many uploads, downloads, deletes, copies or moves in one call.

Every item is attempted and recorded, in input order, as done or with the typed
error that stopped it (:class:`BatchResult`). Each batch kind is one coroutine
per item, of an :class:`Operations` object:

- :class:`FilesystemOperations` on an async fsspec filesystem (s3fs, adlfs):
  the filesystem's own coroutines, all items on its event loop, at most
  ``concurrency`` at once; deletes go in the store's bulk requests.
- :class:`PrimitiveOperations` for every other adapter, custom ones included:
  the adapter's public one-item methods. Their coroutines never wait on the
  event loop, so they run without one, on ``concurrency`` threads (or one after
  another where ``batch_in_threads`` is False).
"""

from __future__ import annotations

import asyncio
import os
import typing
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any, Optional, Protocol

from .errors import StorageError, StorageNotFoundError, classify, translate_errors
from .files import staged, write_stream
from .resilience import run_inline
from .transfer import BatchResult, Progress, check_concurrency, collect, source_size
from .validation import validate_key

if TYPE_CHECKING:
    from .adapter import FsspecStorageAdapter
    from .base import BaseStorageAdapter

__all__ = ["FilesystemOperations", "Operations", "PrimitiveOperations", "run_batch"]


class Operations(Protocol):
    """One coroutine per batch kind, each doing one item (with the same checks as
    the one-item methods) and advancing ``progress``. ``key`` is the item's key
    (for copies and moves the destination); ``arg`` is the upload source, the
    download's destination path, delete's ``missing_ok`` or the source key."""

    backend: str
    secrets: tuple[str, ...]
    loop: Optional[asyncio.AbstractEventLoop]
    """The event loop the coroutines must run on; None when they never suspend."""
    upload_options: dict[str, str]
    """Object headers (``cache_control``...) stored with every upload of the batch."""

    async def upload(self, key: Any, arg: Any, progress: Progress) -> None: ...

    async def download(self, key: Any, arg: Any, progress: Progress) -> None: ...

    async def delete(self, key: Any, arg: Any, progress: Progress) -> None: ...

    async def copy(self, key: Any, arg: Any, progress: Progress) -> None: ...

    async def move(self, key: Any, arg: Any, progress: Progress) -> None: ...


class _Run:
    """One batch in flight: its items and what became of each."""

    def __init__(self, operations: Operations, kind: str, items: list[tuple[Any, Any]],
                 progress: Progress) -> None:
        self.operations = operations
        self.kind = kind
        self.items = items
        self.progress = progress
        self.outcomes: dict[int, Optional[StorageError]] = {}

    def record(self, index: int, error: Optional[BaseException]) -> None:
        """Item ``index`` is done (``error`` None) or failed with ``error``, typed through
        the error table with the item's context."""
        if error is None:
            self.outcomes[index] = None
            return
        key = self.items[index][0]
        try:
            with translate_errors(self.operations.backend, self.kind,
                                  key if isinstance(key, str) else None,
                                  secrets=self.operations.secrets):
                raise error
        except StorageError as typed:
            self.outcomes[index] = typed

    async def item(self, index: int, gate: Optional[asyncio.Semaphore] = None) -> None:
        """Run item ``index`` through the kind's coroutine and record its outcome."""
        key, arg = self.items[index]
        work: Callable[[Any, Any, Progress], Awaitable[None]] = \
            getattr(self.operations, self.kind)
        try:
            if gate is None:
                await work(key, arg, self.progress)
            else:
                async with gate:
                    await work(key, arg, self.progress)
        except Exception as exc:
            self.record(index, exc)
        else:
            self.record(index, None)


def run_batch(operations: Operations, kind: str, items: list[tuple[Any, Any]],
              concurrency: Any, progress: Progress, *, threads: bool = True) -> BatchResult:
    """Run every item of one batch and collect the outcomes in input order.

    With an event loop (``operations.loop``) the items run there as coroutines, at
    most ``concurrency`` at once; otherwise on ``concurrency`` threads, or one after
    another in this thread when ``threads`` is False.
    """
    workers = check_concurrency(concurrency, operations.backend)
    run = _Run(operations, kind, items, progress)
    try:
        if operations.loop is not None:
            from fsspec.asyn import sync

            sync(operations.loop, _gathered, run, workers)
        elif threads and len(items) > 1:
            with ThreadPoolExecutor(max_workers=workers,
                                    thread_name_prefix="perceptra-batch") as pool:
                for index in range(len(items)):
                    pool.submit(run_inline, run.item(index))
        else:
            for index in range(len(items)):
                run_inline(run.item(index))
    finally:
        progress.close()
    return collect(items, run.outcomes)


async def _gathered(run: _Run, workers: int) -> None:
    gate = asyncio.Semaphore(workers)
    bulk = getattr(run.operations, "delete_in_bulk", None)
    if run.kind == "delete" and bulk is not None:
        await bulk(run, gate)
        return
    await asyncio.gather(*(run.item(index, gate) for index in range(len(run.items))))


class PrimitiveOperations:
    """Batch items through an adapter's public one-item methods (blocking calls; the
    coroutines never suspend)."""

    def __init__(self, adapter: BaseStorageAdapter) -> None:
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.adapter = adapter
        self.backend = adapter.backend_name
        self.secrets = adapter._secret_values()
        self.upload_options: dict[str, str] = {}

    async def upload(self, key: Any, arg: Any, progress: Progress) -> None:
        self.adapter.upload_file(arg, validate_key(key, self.backend),
                                 **self.upload_options)  # type: ignore[arg-type]
        if progress.active:  # a stat per file only for someone who listens
            progress.advance(source_size(arg))

    async def download(self, key: Any, arg: Any, progress: Progress) -> None:
        self.adapter.download_file(validate_key(key, self.backend), arg)
        if progress.active:
            progress.advance(os.path.getsize(arg))

    async def delete(self, key: Any, arg: Any, progress: Progress) -> None:
        try:
            self.adapter.delete_file(validate_key(key, self.backend))
        except StorageNotFoundError:
            if not arg:
                raise
        progress.advance(1)

    async def copy(self, key: Any, arg: Any, progress: Progress) -> None:
        self.adapter.copy_file(arg, validate_key(key, self.backend))
        progress.advance(1)

    async def move(self, key: Any, arg: Any, progress: Progress) -> None:
        self.adapter.copy_file(arg, validate_key(key, self.backend))
        self.adapter.delete_file(arg)
        progress.advance(1)


class FilesystemOperations:
    """Batch items through an async fsspec filesystem's coroutines, on its loop."""

    def __init__(self, adapter: FsspecStorageAdapter, fs: Any) -> None:
        self.adapter = adapter
        self.fs = fs
        self.loop: Optional[asyncio.AbstractEventLoop] = fs.loop
        self.backend = adapter.backend_name
        self.secrets = adapter._secret_values()
        self.upload_options: dict[str, str] = {}

    async def _file(self, key: Any) -> str:
        """The path of ``key``, which must be an existing file."""
        key = self.adapter._check_key(key)
        path = self.adapter._path(key)
        self.adapter._require_file(key, await self.fs._info(path))
        return path

    async def upload(self, key: Any, arg: Any, progress: Progress) -> None:
        plan = self.adapter._plan_upload(arg, key, None, None, headers=self.upload_options)
        call = plan.request(self.fs, progress)
        if call is None:  # a file object: read in a thread, written through the fs
            await asyncio.to_thread(write_stream, self.fs, plan.path,
                                    typing.cast(IO[bytes], plan.source), plan.options, progress)
        else:
            method, args, kwargs, sent = call
            await getattr(self.fs, f"_{method}")(*args, **kwargs)
            progress.advance(sent)

    async def download(self, key: Any, arg: Any, progress: Progress) -> None:
        key = self.adapter._check_key(key)
        with staged(arg, key, self.backend) as temp:
            await self.fs._get_file(self.adapter._path(key), temp,
                                    callback=progress.fsspec_callback())

    async def delete(self, key: Any, arg: Any, progress: Progress) -> None:
        if arg:
            path = self.adapter._path(self.adapter._check_key(key))
            await self._remove_gone_ok(path)
        else:
            # Proven to exist first; a 404 from the delete itself then means it is gone.
            await self._remove_gone_ok(await self._file(key))
        progress.advance(1)

    async def copy(self, key: Any, arg: Any, progress: Progress,
                   move: bool = False) -> None:
        destination = self.adapter._path(self.adapter._check_key(key, replaced=True))
        source = await self._file(arg)
        await self.fs._cp_file(source, destination)
        if move:
            await self.fs._rm_file(source)
        progress.advance(1)

    async def move(self, key: Any, arg: Any, progress: Progress) -> None:
        await self.copy(key, arg, progress, move=True)

    async def _remove_gone_ok(self, path: str) -> None:
        """Delete ``path``; one already gone counts as deleted."""
        try:
            await self.fs._rm_file(path)
        except Exception as exc:
            if not issubclass(classify(exc)[0], StorageNotFoundError):
                raise

    async def delete_in_bulk(self, run: _Run, gate: asyncio.Semaphore) -> None:
        """A batch delete in bulk requests of the filesystem's ``bulk_delete_limit``
        keys, where it has them (``_remove_many``). Each key is checked first (and,
        unless ``missing_ok``, proven to exist, concurrently); the survivors go in
        bulk and every key the store refused gets its own typed error. Only a
        filesystem without bulk delete (``NotImplementedError``) sends one request
        per key; any other failure of a bulk request is the answer for each of its
        keys, not retried key by key."""
        size: int = getattr(self.fs, "bulk_delete_limit", 0)
        if not size:
            await asyncio.gather(*(run.item(index, gate) for index in range(len(run.items))))
            return
        targets: dict[str, list[int]] = {}

        async def check(index: int) -> None:
            key, missing_ok = run.items[index]
            try:
                async with gate:
                    path = await self._file(key) if not missing_ok else \
                        self.adapter._path(self.adapter._check_key(key))
            except Exception as exc:
                run.record(index, exc)
            else:
                targets.setdefault(path, []).append(index)

        async def remove(chunk: list[str]) -> None:
            async with gate:
                failures = await self._remove_chunk(chunk)
            for path in chunk:
                for index in targets[path]:
                    run.record(index, failures.get(path))
                run.progress.advance(len(targets[path]))

        await asyncio.gather(*(check(index) for index in range(len(run.items))))
        paths = list(targets)
        await asyncio.gather(*(remove(paths[start:start + size])
                               for start in range(0, len(paths), size)))

    async def _remove_chunk(self, chunk: list[str]) -> dict[str, BaseException]:
        """The error of each path in ``chunk`` that was not deleted."""
        try:
            return dict(await self.fs._remove_many(chunk))
        except NotImplementedError:
            answers = await asyncio.gather(*(self._remove_gone_ok(path) for path in chunk),
                                           return_exceptions=True)
            return {path: answer for path, answer in zip(chunk, answers, strict=True)
                    if isinstance(answer, BaseException)}
        except Exception as exc:
            return dict.fromkeys(chunk, exc)

