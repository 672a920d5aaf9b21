"""``adapter.aio``: the contract as coroutines, for asyncio applications.

The same adapter (config, credentials, profile, root, key checks, error table,
retries, timeouts), the same method names, arguments, results and errors, awaited:

``await adapter.aio.upload_file(data, "k")``, ``async for obj in adapter.aio.iter_files()``,
``async with adapter.aio.open("k", "wb") as f: await f.write(...)``.

Three views, picked by ``adapter.aio`` (``BaseStorageAdapter.aio``):

:class:`AsyncStorage`
    Any adapter, custom ones included: each call runs the blocking method in a worker
    thread (:func:`asyncio.to_thread`), so the event loop never waits on it.
:class:`_FilesystemThreads`
    The local and memory backends: the same, and a cancelled upload or download is
    told to stop at its next chunk and rolls back (no object written, no partial file).
:class:`_NativeStorage`
    Backends on an async fsspec filesystem (s3, minio, azure): the filesystem's own
    coroutines run on the caller's event loop, no thread and no second loop. s3fs and
    adlfs bind their HTTP sessions to the loop they were first used on, so the view
    keeps one filesystem per running loop (several loops in several threads each get
    their own; a forked child starts afresh) and closes its sessions when that loop
    ends (``asyncio.run``, uvicorn), on :meth:`AsyncStorage.aclose`, or, for an
    adapter dropped without either, on their own loop when it is collected.

Uploads plan with the adapter's own ``_plan_upload`` (checks, content type, metadata,
checksum, progress total), so the views differ from the blocking route only in how
the bytes are sent. Downloads retry a cut body as the blocking route does, all
attempts within one ``operation_timeout``.

Cancellation. A blocking call in a thread cannot be interrupted: a cancelled task first
waits for its thread to stop (at the next chunk where the call can roll back, else at
its end), then the cancellation goes on, so nothing keeps running unseen. Native calls
stop at their next ``await``; an unfinished multipart upload is aborted (the
filesystem's ``_put_file``/``_pipe_file``, the part writer of ``open(key, "wb")``), a
download's temporary file removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import os
import shutil
import tempfile
import threading
import time
import typing
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from itertools import islice
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Optional, Self, TypeVar, Union

from .base import (
    BaseStorageAdapter,
    CorsRule,
    PresignedPost,
    PresignedUrl,
    Source,
    StorageObject,
    Writable,
    _download_items,
    _pair_items,
    _refuse_same_key,
    _source_kept,
    _upload_items,
)
from .batch import FilesystemOperations, PrimitiveOperations, _gathered, _Run
from .errors import (
    StorageError,
    StorageNotFoundError,
    StorageTimeoutError,
    StorageValidationError,
    classify,
    translate_errors,
)
from .files import COPY_CHUNK, UploadPlan, check_writable, expect_digest, staged
from .info import stored_digest, to_object
from .resilience import run_inline
from .transfer import BatchResult, Progress, ProgressArg, check_concurrency, collect, source_size
from .validation import (
    validate_headers,
    validate_positive,
    validate_prefix,
)

if TYPE_CHECKING:
    from .adapter import FsspecStorageAdapter

__all__ = ["AsyncFile", "AsyncStorage"]

_T = TypeVar("_T")
_Writer = TypeVar("_Writer", bound=Writable)

_PAGE = 256
"""Listing entries pulled from a blocking listing per thread hop."""
_READ_AHEAD = 1024 * 1024
"""Smallest ranged request of a file opened for reading on an object store."""


class _Stopped(Exception):
    """Raised inside a blocking call whose awaiting task was cancelled, at its next
    chunk, so that the call's own failure handling rolls it back."""


async def _in_thread(call: Callable[[], _T], stop: Optional[threading.Event] = None) -> _T:
    """``call()`` in a worker thread. If the awaiting task is cancelled, ``stop`` is set
    (the call checks it between chunks) and the thread is waited for before the
    cancellation goes on: its clean-up is done when the caller resumes."""
    future = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if stop is not None:
            stop.set()
        while not future.done():
            # A second cancellation must not leave the thread's clean-up half done.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: the cancellation is what the caller sees
        raise


class _Watch:
    """A progress callable for a blocking transfer: forwards to the caller's progress
    (``total`` as the sync call would report it) and raises :class:`_Stopped` at the
    next chunk once :attr:`stop` is set."""

    def __init__(self, progress: ProgressArg, total: Optional[int], key: str) -> None:
        self.stop = threading.Event()
        self._sink = Progress(progress, total, "B", key)
        self._done = 0

    def __call__(self, done: int, total: Optional[int]) -> None:
        if self.stop.is_set():
            raise _Stopped("the awaiting task was cancelled")
        self._sink.advance(done - self._done)
        self._done = done

    def close(self) -> None:
        self._sink.close()


# -- async file objects ----------------------------------------------------------------


class AsyncFile:
    """What ``adapter.aio.open`` gives: ``await f.read(n)`` / ``await f.write(data)``;
    as an ``async with`` block, a write is stored when the block ends and discarded
    (nothing stored, the previous version kept) if it raises or is cancelled."""

    mode: str

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all the rest for -1); b"" at the end."""
        raise io.UnsupportedOperation("read")

    async def write(self, data: Union[bytes, bytearray, memoryview]) -> int:
        """Append ``data``; returns its length."""
        raise io.UnsupportedOperation("write")

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the read position (reads only)."""
        raise io.UnsupportedOperation("seek")

    def tell(self) -> int:
        raise io.UnsupportedOperation("tell")

    async def close(self) -> None:
        """Finish: a write is stored now."""

    async def discard(self) -> None:
        """Drop an unfinished write; nothing is stored."""
        await self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: Optional[type[BaseException]],
                        exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        if exc_type is not None and self.mode == "wb":
            await self.discard()
        else:
            await self.close()


class _ThreadFile(AsyncFile):
    """A blocking file object driven from worker threads."""

    def __init__(self, raw: IO[bytes], mode: str) -> None:
        self._raw = raw
        self.mode = mode
        self._closed = False

    async def read(self, size: int = -1) -> bytes:
        return await _in_thread(lambda: self._raw.read(size))

    async def write(self, data: Union[bytes, bytearray, memoryview]) -> int:
        payload = bytes(data)
        await _in_thread(lambda: self._raw.write(payload))
        return len(payload)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await _in_thread(self._raw.close)

    async def discard(self) -> None:
        if not self._closed:
            self._closed = True
            failed = RuntimeError("discarded")
            # The file's own exit on failure drops the write (GuardedFile, the base
            # class's upload-on-close buffer).
            await _in_thread(lambda: self._raw.__exit__(RuntimeError, failed, None))


class _RangeReader(AsyncFile):
    """An object read by ranged requests on an async filesystem, seekable."""

    def __init__(self, view: _NativeStorage, fs: Any, path: str, key: str, size: int) -> None:
        self.mode = "rb"
        self._view, self._fs, self._path, self._key = view, fs, path, key
        self._size = size
        self._position = 0
        self._buffer = b""
        self._buffer_at = 0

    async def read(self, size: int = -1) -> bytes:
        with self._view._guard("read", self._key):
            end = self._size if size is None or size < 0 else \
                min(self._size, self._position + size)
            if self._position >= end:
                return b""
            if not self._buffer_at <= self._position <= end <= \
                    self._buffer_at + len(self._buffer):
                fetch_end = min(self._size, max(end, self._position + _READ_AHEAD))
                start = self._position
                self._buffer = await self._view._retried(
                    lambda: self._fs._cat_file(self._path, start=start, end=fetch_end))
                self._buffer_at = self._position
            offset = self._position - self._buffer_at
            data = self._buffer[offset:offset + end - self._position]
            self._position += len(data)
            return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise StorageValidationError("cannot seek before the start", key=self._key)
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position


class _StreamWriter(AsyncFile):
    """A write to an object store sent as it comes, through the filesystem's
    ``_open_writer`` (parts of a multipart upload on S3/MinIO, staged blocks on Azure):
    memory holds about one part, and the object is stored on close. A failed write, a
    failed or cancelled block, or :meth:`discard` stores nothing (an unfinished
    multipart upload is aborted) and leaves the previous version."""

    def __init__(self, view: _NativeStorage, writer: Any, key: str) -> None:
        self.mode = "wb"
        self._view, self._writer, self._key = view, writer, key
        self._done = False

    async def write(self, data: Union[bytes, bytearray, memoryview]) -> int:
        if self._done:
            raise StorageValidationError("write to a closed file", key=self._key)
        payload = bytes(data)
        try:
            with self._view._guard("write", self._key):
                await self._view._bounded(self._writer.write(payload))
        except BaseException:
            await self.discard()  # a later close must not commit part of the stream
            raise
        return len(payload)

    async def close(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            with self._view._guard("write", self._key):
                await self._view._bounded(self._writer.commit())
        except BaseException:
            await self._writer.abort()
            raise

    async def discard(self) -> None:
        if not self._done:
            self._done = True
            await self._writer.abort()


class _Opening:
    """``adapter.aio.open(...)``: awaitable (``f = await aio.open(k)``) and an async
    context manager (``async with aio.open(k, "wb") as f``)."""

    def __init__(self, opener: Callable[[], Awaitable[AsyncFile]]) -> None:
        self._opener = opener
        self._file: Optional[AsyncFile] = None

    def __await__(self) -> Generator[Any, None, AsyncFile]:
        return self._opener().__await__()

    async def __aenter__(self) -> AsyncFile:
        self._file = await self._opener()
        return self._file

    async def __aexit__(self, exc_type: Optional[type[BaseException]],
                        exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        assert self._file is not None
        await self._file.__aexit__(exc_type, exc, tb)


# -- the views ---------------------------------------------------------------------------


class AsyncStorage:
    """The async view of one adapter (``adapter.aio``): every method of the sync API as a
    coroutine with the same arguments, results and errors.

    This class runs each blocking method in a worker thread; it is what any adapter,
    a custom one included, gets. The built-in backends get the subclasses below.
    """

    def __init__(self, adapter: BaseStorageAdapter) -> None:
        self._adapter = adapter

    @property
    def adapter(self) -> BaseStorageAdapter:
        """The sync adapter this is the view of."""
        return self._adapter

    @property
    def backend_name(self) -> str:
        return self._adapter.backend_name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._adapter!r}>"

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """The adapter's blocking ``method`` in a worker thread; only keywords that are
        given (not None) are passed, so a custom adapter with the 0.1 signatures works."""
        given = {name: value for name, value in kwargs.items() if value is not None}
        bound = getattr(self._adapter, method)
        return await _in_thread(lambda: bound(*args, **given))

    async def test_connection(self, timeout: float = 10) -> bool:
        return typing.cast(bool, await self._call("test_connection", timeout))

    async def upload_file(
        self,
        file_obj: Source,
        key: str,
        content_type: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
        *,
        progress: ProgressArg = None,
        checksum: bool = False,
        cache_control: Optional[str] = None,
        content_disposition: Optional[str] = None,
        content_encoding: Optional[str] = None,
    ) -> str:
        """Store ``file_obj`` under ``key``; see the sync ``upload_file``."""
        return typing.cast(str, await self._call(
            "upload_file", file_obj, key, content_type, metadata, progress=progress,
            checksum=checksum or None, cache_control=cache_control,
            content_disposition=content_disposition, content_encoding=content_encoding))

    @typing.overload
    async def download_file(self, key: str, destination: None = None, *,
                            progress: ProgressArg = None, checksum: bool = False) -> bytes: ...

    @typing.overload
    async def download_file(self, key: str, destination: Union[str, os.PathLike[str]], *,
                            progress: ProgressArg = None, checksum: bool = False) -> str: ...

    @typing.overload
    async def download_file(self, key: str, destination: _Writer, *,
                            progress: ProgressArg = None, checksum: bool = False) -> _Writer: ...

    async def download_file(self, key: str, destination: Optional[Any] = None, *,
                            progress: ProgressArg = None, checksum: bool = False) -> Any:
        """The object's bytes, or stream it to ``destination``; see the sync method."""
        return await self._call("download_file", key, destination, progress=progress,
                                checksum=checksum or None)

    async def delete_file(self, key: str) -> bool:
        return typing.cast(bool, await self._call("delete_file", key))

    async def file_exists(self, key: str) -> bool:
        return typing.cast(bool, await self._call("file_exists", key))

    async def get_file_metadata(self, key: str) -> StorageObject:
        return typing.cast(StorageObject, await self._call("get_file_metadata", key))

    async def list_files(self, prefix: str = "", max_results: int = 1000) -> list[StorageObject]:
        return typing.cast(list[StorageObject],
                           await self._call("list_files", prefix, max_results))

    async def iter_files(self, prefix: str = "") -> AsyncIterator[StorageObject]:
        """Every file whose key starts with ``prefix``, by key, pulled lazily from the
        blocking listing a page at a time: ``async for obj in aio.iter_files("logs/")``."""
        listing = await _in_thread(lambda: iter(self._adapter.iter_files(prefix)))
        try:
            while page := await _in_thread(lambda: list(islice(listing, _PAGE))):
                for item in page:
                    yield item
        finally:
            close = getattr(listing, "close", None)
            if close is not None:
                await _in_thread(close)

    async def generate_presigned_url(
        self, key: str, expiration: int = 3600, method: str = "GET", *,
        content_type: Optional[str] = None, metadata: Optional[dict[str, str]] = None,
        cache_control: Optional[str] = None, content_disposition: Optional[str] = None,
        download_name: Optional[str] = None,
    ) -> PresignedUrl:
        """See the sync ``generate_presigned_url``."""
        return typing.cast(PresignedUrl, await self._call(
            "generate_presigned_url", key, expiration, method, content_type=content_type,
            metadata=metadata, cache_control=cache_control,
            content_disposition=content_disposition, download_name=download_name))

    async def generate_presigned_post(
        self, key: str, expiration: int = 3600, max_size: Optional[int] = None,
        content_type: Optional[str] = None, metadata: Optional[dict[str, str]] = None,
    ) -> PresignedPost:
        """See the sync ``generate_presigned_post``."""
        return typing.cast(PresignedPost, await self._call(
            "generate_presigned_post", key, expiration, max_size=max_size,
            content_type=content_type, metadata=metadata))

    async def set_cors(
        self, origins: Sequence[str], methods: Sequence[str] = ("GET", "PUT", "POST", "HEAD"),
        headers: Sequence[str] = ("*",), max_age: int = 3600,
        expose_headers: Sequence[str] = ("ETag",),
    ) -> None:
        """See the sync ``set_cors``."""
        await self._call("set_cors", origins, methods, headers, max_age, expose_headers)

    async def get_cors(self) -> list[CorsRule]:
        return typing.cast(list[CorsRule], await self._call("get_cors"))

    async def get_public_url(self, key: str) -> Optional[str]:
        return typing.cast(Optional[str], await self._call("get_public_url", key))

    def open(self, key: str, mode: str = "rb", *, content_type: Optional[str] = None,
             metadata: Optional[dict[str, str]] = None, cache_control: Optional[str] = None,
             content_disposition: Optional[str] = None,
             content_encoding: Optional[str] = None) -> _Opening:
        """An :class:`AsyncFile` for ``key`` (``rb`` or ``wb``); use ``async with``. A
        write is stored with the content type, metadata and object headers given."""
        async def opened() -> AsyncFile:
            raw = await self._call("open", key, mode, content_type=content_type,
                                   metadata=metadata, cache_control=cache_control,
                                   content_disposition=content_disposition,
                                   content_encoding=content_encoding)
            return _ThreadFile(raw, mode)

        return _Opening(opened)

    async def copy_file(self, source_key: str, destination_key: str) -> str:
        return typing.cast(str, await self._call("copy_file", source_key, destination_key))

    async def move_file(self, source_key: str, destination_key: str) -> str:
        return typing.cast(str, await self._call("move_file", source_key, destination_key))

    # -- batches: the batch engine's items as coroutines on the caller's loop ------------

    async def upload_files(
        self,
        items: Union[Mapping[str, Source], Iterable[tuple[Source, str]]],
        *,
        concurrency: int = 16,
        progress: ProgressArg = None,
        cache_control: Optional[str] = None,
        content_disposition: Optional[str] = None,
        content_encoding: Optional[str] = None,
    ) -> BatchResult:
        """Upload many sources, at most ``concurrency`` at once; see the sync method."""
        pairs = _upload_items(items)
        headers = validate_headers({"cache_control": cache_control,
                                    "content_disposition": content_disposition,
                                    "content_encoding": content_encoding}, self.backend_name)
        total = sum(source_size(source) for _, source in pairs)
        return await self._batch("upload", pairs, concurrency,
                                 Progress(progress, total, "B", "upload"), headers)

    async def download_files(
        self,
        keys: Iterable[str],
        destination_dir: Union[str, os.PathLike[str]],
        *,
        concurrency: int = 16,
        progress: ProgressArg = None,
    ) -> BatchResult:
        return await self._batch("download", _download_items(keys, destination_dir),
                                 concurrency, Progress(progress, None, "B", "download"))

    async def delete_files(self, keys: Iterable[str], *, concurrency: int = 16,
                           progress: ProgressArg = None, missing_ok: bool = False) -> BatchResult:
        pairs = [(key, bool(missing_ok)) for key in keys]
        return await self._batch("delete", pairs, concurrency,
                                 Progress(progress, len(pairs), "it", "delete"))

    async def copy_files(
        self,
        pairs: Union[Mapping[str, str], Iterable[tuple[str, str]]],
        *,
        concurrency: int = 16,
        progress: ProgressArg = None,
    ) -> BatchResult:
        items = _pair_items(pairs)
        return await self._batch("copy", items, concurrency,
                                 Progress(progress, len(items), "it", "copy"))

    async def move_files(
        self,
        pairs: Union[Mapping[str, str], Iterable[tuple[str, str]]],
        *,
        concurrency: int = 16,
        progress: ProgressArg = None,
    ) -> BatchResult:
        items = _pair_items(pairs)
        return await self._batch("move", items, concurrency,
                                 Progress(progress, len(items), "it", "move"))

    async def _batch(self, kind: str, items: list[tuple[Any, Any]], concurrency: int,
                     progress: Progress,
                     upload_options: Optional[dict[str, str]] = None) -> BatchResult:
        """Every item through the batch engine, at most ``concurrency`` at once on this
        loop; a cancelled batch starts no more items. Results in input order.
        ``upload_options`` (object headers) go with every upload."""
        try:
            workers = check_concurrency(concurrency, self.backend_name)
            operations = await self._operations()
            operations.upload_options = dict(upload_options or {})
            run = _Run(operations, kind, items, progress)
            await _gathered(run, workers)
        finally:
            progress.close()
        return collect(items, run.outcomes)

    async def _operations(self) -> Any:
        return _ThreadedOperations(PrimitiveOperations(self._adapter))

    # -- life cycle ------------------------------------------------------------------

    async def aclose(self) -> None:
        """Release this loop's connections; the view reconnects if used again."""
        await _in_thread(self._adapter.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: Optional[type[BaseException]],
                        exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        await self.aclose()


class _ThreadedOperations:
    """Batch items through an adapter's blocking one-item methods, each in a thread."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.backend: str = inner.backend
        self.secrets: tuple[str, ...] = inner.secrets
        self.loop = None

    @property
    def upload_options(self) -> dict[str, str]:
        """The object headers every upload stores: the inner operations' own."""
        return typing.cast(dict[str, str], self._inner.upload_options)

    @upload_options.setter
    def upload_options(self, options: dict[str, str]) -> None:
        self._inner.upload_options = options

    def __getattr__(self, kind: str) -> Callable[[Any, Any, Progress], Awaitable[None]]:
        step = getattr(self._inner, kind)

        async def item(key: Any, arg: Any, progress: Progress) -> None:
            await _in_thread(lambda: run_inline(step(key, arg, progress)))

        return item


class _FilesystemThreads(AsyncStorage):
    """The local and memory backends: blocking filesystem calls in worker threads, with
    uploads and downloads that stop at their next chunk when cancelled, and roll back."""

    _adapter: FsspecStorageAdapter

    async def upload_file(
        self,
        file_obj: Source,
        key: str,
        content_type: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
        *,
        progress: ProgressArg = None,
        checksum: bool = False,
        cache_control: Optional[str] = None,
        content_disposition: Optional[str] = None,
        content_encoding: Optional[str] = None,
    ) -> str:
        total = source_size(file_obj)
        if isinstance(file_obj, (bytes, bytearray, memoryview)):
            # Sent as a stream, chunk by chunk, so that a cancellation can stop it.
            file_obj = io.BytesIO(file_obj)
        watch = _Watch(progress, total, key if isinstance(key, str) else "upload")
        try:
            return await _in_thread(lambda: self._adapter.upload_file(
                file_obj, key, content_type, metadata, progress=watch, checksum=checksum,
                cache_control=cache_control, content_disposition=content_disposition,
                content_encoding=content_encoding), watch.stop)
        finally:
            watch.close()

    async def download_file(self, key: str, destination: Optional[Any] = None, *,
                            progress: ProgressArg = None, checksum: bool = False) -> Any:
        watch = _Watch(progress, None, key if isinstance(key, str) else "download")
        try:
            return await _in_thread(lambda: self._adapter.download_file(
                key, destination, progress=watch, checksum=checksum), watch.stop)
        finally:
            watch.close()


class _NativeStorage(AsyncStorage):
    """Backends on an async fsspec filesystem: its coroutines on the caller's loop.

    Mirrors :class:`~perceptra_storage.adapter.FsspecStorageAdapter` step for step (same
    key checks, same logs and error table through ``adapter._operation``, same retries
    of cut downloads, ``operation_timeout`` per filesystem call).
    """

    _adapter: FsspecStorageAdapter

    def __init__(self, adapter: FsspecStorageAdapter) -> None:
        super().__init__(adapter)
        self._loops = _PerLoop(adapter)

    def _guard(self, operation: str, key: Optional[str]) -> Any:
        return translate_errors(self.backend_name, operation, key,
                                secrets=self._adapter._secret_values())

    async def _bounded(self, call: Coroutine[Any, Any, _T],
                       deadline: Optional[float] = None) -> _T:
        """``call`` within ``operation_timeout``, or with ``deadline``
        (``time.monotonic()``, from :meth:`Resilience.deadline` when the public call
        began) only the time left until then, reported as the sync route reports it."""
        limit = self._adapter.resilience.operation_timeout
        if not limit:
            return await call
        if deadline is not None:
            limit = deadline - time.monotonic()
            if limit <= 0:
                call.close()  # never started: closed, so no "never awaited" warning
                raise StorageTimeoutError("not done within operation_timeout")
        timer = asyncio.timeout(limit)
        try:
            async with timer:
                return await call
        except TimeoutError as exc:
            if not timer.expired():
                raise
            from fsspec.exceptions import FSTimeoutError

            raise FSTimeoutError(f"not done within {limit:g} s") from exc

    async def _head(self, fs: Any, path: str, deadline: Optional[float] = None
                    ) -> dict[str, Any]:
        if hasattr(fs, "_object_info"):
            return dict(await self._bounded(fs._object_info(path), deadline))
        return dict(await self._bounded(fs._info(path), deadline))

    async def _file_info(self, fs: Any, key: str, deadline: Optional[float] = None
                         ) -> dict[str, Any]:
        return self._adapter._require_file(
            key, await self._head(fs, self._adapter._path(key), deadline))

    async def _retried(self, call: Callable[[], Coroutine[Any, Any, _T]],
                       deadline: Optional[float] = None) -> _T:
        """A read, tried again when its body was cut (unless the SDK resumes it), all
        attempts within one ``operation_timeout`` (from ``deadline`` when given), as
        the sync route's retry of a cut download."""
        resilience = self._adapter.resilience
        if deadline is None:
            deadline = resilience.deadline()
        return await resilience._attempts(lambda: self._bounded(call(), deadline),
                                          self._adapter._cut_read, asyncio.sleep, deadline)

    # -- the contract ----------------------------------------------------------------

    async def test_connection(self, timeout: float = 10) -> bool:
        seconds = validate_positive(timeout, "timeout", self.backend_name)
        with self._adapter._operation("test_connection"):
            fs = await self._loops.filesystem()
            try:
                async with asyncio.timeout(seconds):
                    if hasattr(fs, "_probe"):
                        await fs._probe(self._adapter._base())
                    elif not await fs._isdir(self._adapter._root()):
                        raise StorageNotFoundError(
                            f"root {self._adapter._root()!r} does not exist")
            except TimeoutError:
                raise StorageTimeoutError(f"no answer within {seconds:g} s") from None
        return True

    async def upload_file(
        self,
        file_obj: Source,
        key: str,
        content_type: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
        *,
        progress: ProgressArg = None,
        checksum: bool = False,
        cache_control: Optional[str] = None,
        content_disposition: Optional[str] = None,
        content_encoding: Optional[str] = None,
    ) -> str:
        adapter = self._adapter
        headers = {"cache_control": cache_control, "content_disposition": content_disposition,
                   "content_encoding": content_encoding}
        with adapter._operation("upload", key if isinstance(key, str) else None):
            if checksum:  # hashing reads the whole source: not on the loop
                plan = await asyncio.to_thread(adapter._plan_upload, file_obj, key,
                                               content_type, metadata, True, headers)
            else:
                plan = adapter._plan_upload(file_obj, key, content_type, metadata,
                                            headers=headers)
            fs = await self._loops.filesystem()
            sink = Progress(progress, plan.total, "B", plan.key)
            try:
                verified = await self._send(fs, plan, sink)
            finally:
                sink.close()
            if plan.digest is not None and not verified:
                expect_digest(await self._remote_sha256(fs, plan.path), plan.digest,
                              plan.key, "stored object")
        return plan.key

    async def _send(self, fs: Any, plan: UploadPlan, sink: Progress) -> bool:
        """Send a planned upload natively (the blocking route's ``_send``, awaited); True
        when the store verified the bytes against ``plan.digest``. Bytes and local files
        go as :meth:`UploadPlan.request` says; a file object is read whole when it is a
        BytesIO (already in memory), else first copied to a temporary file (in a thread:
        reading it may block) and sent from there as a local file."""
        source = plan.source
        if isinstance(source, io.BytesIO):
            plan = plan._replace(source=source.read())
        elif not isinstance(source, (bytes, str)):
            spool = _temporary_path()
            try:
                await _in_thread(lambda: _copy_to(source, spool))
                # One part at a time, as the blocking route streams a file object:
                # memory stays at about one part.
                return await self._sent(fs, plan._replace(source=spool), sink,
                                        max_concurrency=1)
            finally:
                os.unlink(spool)
        return await self._sent(fs, plan, sink)

    async def _sent(self, fs: Any, plan: UploadPlan, sink: Progress, **extra: Any) -> bool:
        call = plan.request(fs, sink)
        assert call is not None  # bytes or a local path
        method, args, kwargs, sent = call
        if method == "put_file":
            kwargs.update(extra)
        answer = await self._bounded(getattr(fs, f"_{method}")(*args, **kwargs))
        sink.advance(sent)
        return plan.verified(fs, answer)

    async def _remote_sha256(self, fs: Any, path: str) -> str:
        """SHA-256 of a stored object, read in COPY_CHUNK ranges (bounded memory)."""
        size = int((await self._head(fs, path)).get("size") or 0)
        hasher = hashlib.sha256()
        for start in range(0, size, COPY_CHUNK):
            hasher.update(await self._bounded(
                fs._cat_file(path, start=start, end=min(size, start + COPY_CHUNK))))
        return hasher.hexdigest()

    @typing.overload
    async def download_file(self, key: str, destination: None = None, *,
                            progress: ProgressArg = None, checksum: bool = False) -> bytes: ...

    @typing.overload
    async def download_file(self, key: str, destination: Union[str, os.PathLike[str]], *,
                            progress: ProgressArg = None, checksum: bool = False) -> str: ...

    @typing.overload
    async def download_file(self, key: str, destination: _Writer, *,
                            progress: ProgressArg = None, checksum: bool = False) -> _Writer: ...

    async def download_file(self, key: str, destination: Optional[Any] = None, *,
                            progress: ProgressArg = None, checksum: bool = False) -> Any:
        adapter = self._adapter
        with adapter._operation("download", key if isinstance(key, str) else None):
            key = adapter._check_key(key)
            path = adapter._path(key)
            deadline = adapter.resilience.deadline()
            fs = await self._loops.filesystem()
            info = await self._file_info(fs, key, deadline) if checksum else None
            expected = stored_digest(info) if info is not None else None
            sink = Progress(progress, None, "B", key)
            try:
                # One range at a time: azure-storage-blob's chunk tasks are not cancelled
                # with a cancelled download and went on writing into its closed file.
                if destination is None:
                    data: bytes = await self._retried(
                        lambda: fs._cat_file(path, max_concurrency=1), deadline)
                    sink.advance(len(data))
                    if expected is not None:
                        expect_digest(hashlib.sha256(data).hexdigest(), expected, key,
                                      "downloaded bytes")
                    return data
                if isinstance(destination, (str, os.PathLike)):
                    with staged(os.fspath(destination), key, self.backend_name) as temp:
                        await self._retried(lambda: fs._get_file(
                            path, temp, callback=sink.fsspec_callback(), max_concurrency=1),
                            deadline)
                        if expected is not None:
                            with open(temp, "rb") as written:
                                digest = await asyncio.to_thread(_sha256_file, written)
                            expect_digest(digest, expected, key, "downloaded file")
                    return str(os.fspath(destination))
                check_writable(destination)
                size = int((info or await self._file_info(fs, key, deadline)).get("size") or 0)
                hasher = hashlib.sha256()
                for start in range(0, size, COPY_CHUNK):
                    chunk = await self._retried(functools.partial(
                        fs._cat_file, path, start=start, end=min(size, start + COPY_CHUNK)),
                        deadline)
                    destination.write(chunk)
                    hasher.update(chunk)
                    sink.advance(len(chunk))
                if expected is not None:
                    expect_digest(hasher.hexdigest(), expected, key, "downloaded stream")
                return destination
            finally:
                sink.close()

    async def delete_file(self, key: str) -> bool:
        adapter = self._adapter
        with adapter._operation("delete", key if isinstance(key, str) else None):
            key = adapter._check_key(key)
            fs = await self._loops.filesystem()
            await self._file_info(fs, key)
            try:
                await self._bounded(fs._rm_file(adapter._path(key)))
            except Exception as exc:
                # As on the sync route: it existed a moment ago (above), so a 404 now
                # means it is gone (the SDK retried a DELETE whose first answer was
                # lost, or another client won).
                if not issubclass(classify(exc)[0], StorageNotFoundError):
                    raise
        return True

    async def file_exists(self, key: str) -> bool:
        adapter = self._adapter
        with adapter._operation("exists", key if isinstance(key, str) else None):
            key = adapter._check_key(key)
            fs = await self._loops.filesystem()
            try:
                return (await self._head(fs, adapter._path(key))).get("type") == "file"
            except Exception as exc:
                if issubclass(classify(exc)[0], StorageNotFoundError):
                    return False
                raise

    async def get_file_metadata(self, key: str) -> StorageObject:
        adapter = self._adapter
        with adapter._operation("stat", key if isinstance(key, str) else None):
            key = adapter._check_key(key)
            fs = await self._loops.filesystem()
            return to_object(key, await self._file_info(fs, key), full=True)

    async def list_files(self, prefix: str = "", max_results: int = 1000) -> list[StorageObject]:
        if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 0:
            raise StorageValidationError(
                f"max_results must be an int >= 0, not {max_results!r}",
                backend=self.backend_name, operation="list")
        found: list[StorageObject] = []
        with self._adapter._operation("list", prefix if isinstance(prefix, str) else None):
            if max_results:
                async for item in self._objects(prefix):
                    found.append(item)
                    if len(found) == max_results:
                        break
        return found

    async def iter_files(self, prefix: str = "") -> AsyncIterator[StorageObject]:
        with self._adapter._operation("list", prefix if isinstance(prefix, str) else None):
            async for item in self._objects(prefix):
                yield item

    async def _objects(self, prefix: str) -> AsyncIterator[StorageObject]:
        adapter = self._adapter
        prefix = validate_prefix(prefix, self.backend_name)
        fs = await self._loops.filesystem()
        if hasattr(fs, "_object_pages"):
            pages = fs._object_pages(adapter._path(prefix))
            start = adapter._key_start()
            try:
                async for page in pages:
                    for info in page:
                        key = adapter._key_of(info["name"], start)
                        if adapter._listed(key, info, prefix):
                            yield to_object(key, info, full=False)
            finally:
                await pages.aclose()
            return
        folder = prefix.rpartition("/")[0]
        try:
            found = await fs._find(adapter._path(folder) if folder else adapter._base(),
                                   detail=True)
        except FileNotFoundError:
            return
        start = adapter._key_start()
        for name in sorted(found, key=lambda n: n.strip("/")):
            key = adapter._key_of(name, start)
            if adapter._listed(key, found[name], prefix):
                yield to_object(key, found[name], full=False)

    async def generate_presigned_url(
        self, key: str, expiration: int = 3600, method: str = "GET", *,
        content_type: Optional[str] = None, metadata: Optional[dict[str, str]] = None,
        cache_control: Optional[str] = None, content_disposition: Optional[str] = None,
        download_name: Optional[str] = None,
    ) -> PresignedUrl:
        options: dict[str, Any] = {
            "content_type": content_type, "metadata": metadata, "cache_control": cache_control,
            "content_disposition": content_disposition, "download_name": download_name}
        if getattr(self._adapter, "signs_offline", False):
            return self._adapter.generate_presigned_url(key, expiration, method, **options)
        # The signer may fetch a key (Azure's user delegation) with a blocking call.
        return await super().generate_presigned_url(key, expiration, method, **options)

    async def generate_presigned_post(
        self, key: str, expiration: int = 3600, max_size: Optional[int] = None,
        content_type: Optional[str] = None, metadata: Optional[dict[str, str]] = None,
    ) -> PresignedPost:
        if getattr(self._adapter, "signs_offline", False):
            return self._adapter.generate_presigned_post(key, expiration, max_size,
                                                         content_type, metadata)
        return await super().generate_presigned_post(key, expiration, max_size,
                                                     content_type, metadata)

    async def get_public_url(self, key: str) -> Optional[str]:
        return self._adapter.get_public_url(key)  # a string built from the config

    def open(self, key: str, mode: str = "rb", *, content_type: Optional[str] = None,
             metadata: Optional[dict[str, str]] = None, cache_control: Optional[str] = None,
             content_disposition: Optional[str] = None,
             content_encoding: Optional[str] = None) -> _Opening:
        adapter = self._adapter
        written: dict[str, Any] = {
            "content_type": content_type, "metadata": metadata, "cache_control": cache_control,
            "content_disposition": content_disposition, "content_encoding": content_encoding}

        async def opened() -> AsyncFile:
            with adapter._operation("open", key if isinstance(key, str) else None):
                checked = adapter._check_key(key, replaced=mode == "wb")
                # Checked now, as the sync open does, not when the write is sent.
                options = adapter._open_options(checked, mode, written)
                fs = await self._loops.filesystem()
                if options is not None:
                    if not hasattr(fs, "_open_writer"):
                        # A third-party filesystem without a part writer: its own
                        # blocking file object (which streams), driven from threads.
                        return _ThreadFile(await self._call("open", checked, mode, **written),
                                           mode)
                    return _StreamWriter(self, fs._open_writer(adapter._path(checked),
                                                               **options), checked)
                size = int((await self._file_info(fs, checked)).get("size") or 0)
                return _RangeReader(self, fs, adapter._path(checked), checked, size)

        return _Opening(opened)

    async def copy_file(self, source_key: str, destination_key: str) -> str:
        adapter = self._adapter
        with adapter._operation("copy", source_key if isinstance(source_key, str) else None):
            source_key = adapter._check_key(source_key)
            destination_key = adapter._check_key(destination_key, replaced=True)
            fs = await self._loops.filesystem()
            await self._file_info(fs, source_key)
            await self._bounded(fs._cp_file(adapter._path(source_key),
                                            adapter._path(destination_key)))
        return destination_key

    async def move_file(self, source_key: str, destination_key: str) -> str:
        adapter = self._adapter
        with adapter._operation("move", source_key if isinstance(source_key, str) else None):
            source_key = adapter._check_key(source_key)
            destination_key = adapter._check_key(destination_key, replaced=True)
            _refuse_same_key(source_key, destination_key, self.backend_name)
            fs = await self._loops.filesystem()
            await self._file_info(fs, source_key)
            source = adapter._path(source_key)
            await self._bounded(fs._cp_file(source, adapter._path(destination_key)))
        try:
            with adapter._operation("move", source_key):
                await self._bounded(fs._rm_file(source))
        except StorageError as exc:
            raise _source_kept(exc, destination_key) from exc
        return destination_key

    async def _operations(self) -> Any:
        return _NativeOperations(self, await self._loops.filesystem())

    async def aclose(self) -> None:
        await self._loops.release()


class _NativeOperations(FilesystemOperations):
    """The batch engine's filesystem items on this loop's filesystem; a file object to
    upload goes through the view's native upload (the engine's own route for it calls
    the blocking filesystem methods, which an asynchronous instance does not serve)."""

    def __init__(self, view: _NativeStorage, fs: Any) -> None:
        super().__init__(view._adapter, fs)
        self._view = view

    async def upload(self, key: Any, arg: Any, progress: Progress) -> None:
        await self._view._send(self.fs, self.adapter._plan_upload(
            arg, key, None, None, headers=self.upload_options), progress)


def _temporary_path() -> str:
    """A new empty temporary file (made on the loop, a few microseconds, so that whoever
    made it also removes it, whatever happens to the thread that fills it)."""
    handle, path = tempfile.mkstemp(prefix="perceptra-aio-", suffix=".part")
    os.close(handle)
    return path


def _copy_to(source: IO[bytes], path: str) -> None:
    with open(path, "wb") as spool:
        shutil.copyfileobj(source, spool, _READ_AHEAD)


def _sha256_file(file: IO[bytes]) -> str:
    hasher = hashlib.sha256()
    while chunk := file.read(COPY_CHUNK):
        hasher.update(chunk)
    return hasher.hexdigest()


# -- one filesystem per running loop ------------------------------------------------------

_ABANDONED: list[Any] = []
"""Filesystems a forked child inherited from its parent's loops: kept referenced, never
used or closed, so that their finalizers do not touch sockets the parent still uses."""


class _PerLoop:
    """One asynchronous filesystem of an adapter per running event loop."""

    def __init__(self, adapter: FsspecStorageAdapter) -> None:
        self._adapter = adapter
        self._lock = threading.Lock()
        self._by_loop: dict[asyncio.AbstractEventLoop, _Entry] = {}
        self._pid = os.getpid()
        # An adapter dropped without aclose() (a per-request adapter, a test's) would
        # leave its sessions to the garbage collector, which closes nothing and reports
        # each as unclosed on stderr: they are closed on their own loops instead. The
        # finalizer holds the filesystems, never the adapter or this object.
        weakref.finalize(self, _close_on_their_loops, self._by_loop, self._pid).atexit = False

    async def filesystem(self) -> Any:
        """This loop's filesystem, built on first use in the loop (after its ``warm()``,
        when it has one, in a thread: what it loads would otherwise block the loop)."""
        loop = asyncio.get_running_loop()
        if loop not in self._by_loop:
            warm = getattr(self._adapter.filesystem, "warm", None)
            if warm is not None:
                await asyncio.to_thread(warm)
        with self._lock:
            if self._pid != os.getpid():
                _ABANDONED.append(dict(self._by_loop))
                self._by_loop.clear()  # in place: the parent's finalizer holds this dict
                self._pid = os.getpid()
            entry = self._by_loop.get(loop)
            if entry is not None:
                return entry.fs
            for other in [each for each in self._by_loop if each.is_closed()]:
                self._by_loop.pop(other).forget()
            with translate_errors(self._adapter.backend_name, "connect",
                                  secrets=self._adapter._secret_values()):
                template = self._adapter.filesystem
                # fsspec leaves skip_instance_cache out of storage_options; without it an
                # instance of another (ended) loop with an equal token would come back.
                options = {**template.storage_options, "asynchronous": True, "loop": loop,
                           "skip_instance_cache": True}
                entry = _Entry(type(template)(**options))
            self._by_loop[loop] = entry
        await entry.watch()
        return entry.fs

    async def release(self) -> None:
        """Close this loop's filesystem, if it has one."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._by_loop.pop(loop, None) if self._pid == os.getpid() else None
        if entry is not None:
            await entry.close()


_CLOSING: set[asyncio.Task[None]] = set()
"""Closings started by :func:`_close_on_their_loops`, referenced until done (a task the
loop alone refers to may be collected before it ran)."""


def _close_on_their_loops(by_loop: dict[asyncio.AbstractEventLoop, _Entry], pid: int) -> None:
    """Close the filesystems of a collected view, each on its own loop (from whichever
    thread the garbage collector ran in); those of loops already closed are forgotten."""
    if pid != os.getpid():
        return  # a forked child's copies: the parent closes its own
    entries = list(by_loop.items())
    by_loop.clear()
    for loop, entry in entries:
        try:
            loop.call_soon_threadsafe(_start_closing, entry)
        except RuntimeError:  # the loop is closed
            entry.forget()


def _start_closing(entry: _Entry) -> None:
    task = asyncio.get_running_loop().create_task(entry.close())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


class _Entry:
    """A loop's filesystem, closed when the loop ends.

    ``asyncio.run`` (and uvicorn, and ``loop.shutdown_asyncgens``) close every async
    generator still suspended on the loop while the loop still runs; one suspended
    generator per filesystem is how its HTTP session gets closed on its own loop rather
    than left for the garbage collector to warn about.
    """

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self._lifetime: Optional[AsyncGenerator[None, None]] = None
        self._closed = False

    async def watch(self) -> None:
        if self._lifetime is None:
            self._lifetime = self._until_loop_ends()
            await self._lifetime.__anext__()

    async def _until_loop_ends(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if not self._closed:
                await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        release = getattr(self.fs, "_release", None)
        if release is not None:
            with contextlib.suppress(Exception):
                await release()

    def forget(self) -> None:
        """The loop closed without closing its generators: end the watcher without
        awaiting anything (there is no loop to await on)."""
        self._closed = True
        if self._lifetime is not None:
            closing = self._lifetime.aclose()
            # The watcher's clean-up awaits nothing once closed is set: one step ends it.
            with contextlib.suppress(StopIteration, RuntimeError):
                closing.send(None)


def view_of(adapter: BaseStorageAdapter) -> AsyncStorage:
    """The async view that fits ``adapter``."""
    from .adapter import FsspecStorageAdapter

    if not isinstance(adapter, FsspecStorageAdapter):
        return AsyncStorage(adapter)
    if getattr(adapter.filesystem, "async_impl", False):
        return _NativeStorage(adapter)
    return _FilesystemThreads(adapter)

