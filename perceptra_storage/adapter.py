"""The generic adapter: the whole contract, written once over any fsspec filesystem.

A backend subclasses :class:`FsspecStorageAdapter` and supplies only what is its
own: the schemas of its ``config`` and ``credentials`` dicts, the filesystem
those translate into (:meth:`_make_filesystem`), the root path inside it
(:meth:`_root`), the keyword arguments that carry a content type and metadata
on a write (:meth:`_write_options`), and, where it can, a URL signer
(:meth:`_sign`).  Key checks, uploads, downloads, listings, error translation
and logging live here, so every backend behaves the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import io
import os
import random
import shutil
import tempfile
import threading
import time
import typing
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from itertools import islice
from typing import IO, TYPE_CHECKING, Any, ClassVar, Optional, TypedDict, Union
from urllib.parse import quote

from .base import (
    BaseStorageAdapter,
    PresignedUrl,
    Source,
    StorageObject,
    _refuse_same_key,
    _source_kept,
)
from .errors import (
    StorageAdapterError,
    StorageError,
    StorageNotFoundError,
    StorageOperationError,
    StorageTimeoutError,
    StorageValidationError,
    build_error,
    classify,
    guard_sdk_logs,
    interrupted,
    transient,
    translate_errors,
)
from .transfer import (
    BatchResult,
    Progress,
    ProgressArg,
    check_concurrency,
    collect,
    source_size,
)
from .validation import (
    CHECKSUM_FIELD,
    RESERVED_METADATA,
    validate_content_type,
    validate_expiration,
    validate_key,
    validate_metadata,
    validate_method,
    validate_options,
    validate_positive,
    validate_prefix,
    validate_root_prefix,
)

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["FsspecStorageAdapter", "NoCredentials", "Resilience", "ResilienceConfig"]

_T = typing.TypeVar("_T")
_COPY_CHUNK = 8 * 1024 * 1024
_STREAM_CHUNK = 1024 * 1024
"""Read size when copying a file object into a new object: small, so the target's own
write buffer (a multipart part on object stores) bounds the memory, not this copy."""


class NoCredentials(TypedDict):
    """Backends that take no credentials accept only an empty dict (or None)."""


class ResilienceConfig(TypedDict, total=False):
    """The timeout and retry fields every network backend's config takes."""

    connect_timeout: float
    """Seconds to open a connection before the attempt fails (default 5)."""
    read_timeout: float
    """Seconds to wait for the next bytes of a response before the attempt fails (default 10)."""
    max_attempts: int
    """Tries per request, the first included, on transient failures (default 3)."""
    retry_backoff: float
    """Seconds before the first retry, doubling for each next one, jittered (default 0.5)."""
    operation_timeout: float
    """Overall limit in seconds on each request or transfer, retries included (default none)."""


@dataclass(frozen=True)
class Resilience:
    """Timeouts and retries of a network backend; each field is also a ``config`` field of
    the same name on s3, minio and azure.  The defaults report a dead endpoint within
    seconds and a server that stopped answering within about ``max_attempts`` x
    ``read_timeout``."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    max_attempts: int = 3
    retry_backoff: float = 0.5
    operation_timeout: Optional[float] = None

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): exponential from
        ``retry_backoff``, jittered over its upper half so that clients that failed
        together do not retry together."""
        ceiling = self.retry_backoff * 2.0 ** (attempt - 1)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def retry_async(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Await ``call`` up to ``max_attempts`` times while it fails transiently."""
        attempt = 1
        while True:
            try:
                return await call(*args, **kwargs)
            except Exception as exc:
                if attempt >= self.max_attempts or not transient(exc):
                    raise
            await asyncio.sleep(self.delay(attempt))
            attempt += 1

    def retry(self, call: Callable[[], _T], when: Callable[[BaseException], bool]) -> _T:
        """Run ``call`` up to ``max_attempts`` times while it fails with ``when(error)``."""
        attempt = 1
        while True:
            try:
                return call()
            except Exception as exc:
                if attempt >= self.max_attempts or not when(exc):
                    raise
            time.sleep(self.delay(attempt))
            attempt += 1

    @classmethod
    def from_config(cls, config: Mapping[str, Any], backend: str) -> Resilience:
        """The fields given in ``config`` (already type-checked by the schema), range-checked;
        the defaults for the rest."""
        given = {item.name: config[item.name] for item in fields(cls)
                 if config.get(item.name) is not None}
        for name, value in given.items():
            validate_positive(value, f"config field {name!r}", backend)
        if given.get("max_attempts", 1) < 1 or given.get("max_attempts", 1) > 20:
            raise StorageValidationError(
                f"{backend}: config field 'max_attempts' must be from 1 to 20",
                backend=backend)
        return cls(**given)


class FsspecStorageAdapter(BaseStorageAdapter):
    """A storage adapter over one fsspec filesystem, rooted at a path inside it.

    The filesystem is built on first use (construction never touches the
    network), rebuilt after ``fork`` and after :meth:`close`, and never shared
    between adapters.  The adapter pickles without it; the receiving process
    builds its own.
    """

    config_schema: ClassVar[type] = NoCredentials
    """TypedDict of the accepted ``config`` fields; anything else is refused."""
    credentials_schema: ClassVar[type] = NoCredentials
    """TypedDict of the accepted ``credentials`` fields."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Modules the backend needs; checked at construction."""
    extra: ClassVar[Optional[str]] = None
    """The ``pip install perceptra-storage[extra]`` that provides :attr:`requires`."""
    find_accepts_prefix: ClassVar[bool] = False
    """True when ``fs.find`` filters on a name ``prefix`` server-side (s3fs, adlfs)."""
    flat_namespace: ClassVar[bool] = False
    """True for object stores: list with one flat ``find`` instead of a directory walk."""

    def __init__(
        self,
        config: Optional[Mapping[str, Any]] = None,
        credentials: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self._lock = threading.Lock()
        self._fs: Optional[AbstractFileSystem] = None
        self._fs_pid = 0
        super().__init__(config, credentials)

    # -- construction ---------------------------------------------------------------

    @classmethod
    def missing_modules(cls) -> list[str]:
        """The modules in :attr:`requires` that are not installed."""
        return [name for name in cls.requires if not _importable(name)]

    def _validate_config(self) -> None:
        missing = self.missing_modules()
        if missing:
            raise StorageAdapterError(
                f"{self.backend_name}: backend needs {', '.join(missing)}, which is not "
                f"installed; run: pip install 'perceptra-storage[{self.extra}]'",
                backend=self.backend_name)
        validate_options(self.config, self.config_schema, self.backend_name, "config")
        validate_options(self.credentials, self.credentials_schema, self.backend_name,
                         "credentials")
        self.prefix = validate_root_prefix(self.config.get("prefix"), self.backend_name)
        self.resilience = Resilience.from_config(self.config, self.backend_name)
        self._check_config()

    def _check_config(self) -> None:
        """Backend-specific checks beyond the schema (value ranges, exclusive fields)."""

    def _make_filesystem(self) -> AbstractFileSystem:
        """Build this backend's filesystem from ``self.config`` and ``self.credentials``."""
        raise NotImplementedError

    def _root(self) -> str:
        """The path inside the filesystem that key '' maps to, without ``prefix``."""
        raise NotImplementedError

    def _write_options(self, how: str, content_type: str,
                       metadata: dict[str, str]) -> dict[str, Any]:
        """Keyword arguments that store ``content_type`` and ``metadata`` on a write.

        ``how`` is the fsspec call they are for: ``pipe_file``, ``put_file`` or ``open``.
        """
        return {"content_type": content_type, "metadata": metadata}

    def _read_options(self, how: str) -> dict[str, Any]:
        """Keyword arguments for a read: ``how`` is ``cat_file``, ``get_file`` or ``open``. Backends
        use them to bound a download's memory (part size, parts in flight, read-ahead)."""
        return {}

    def _sign(self, path: str, key: str, expiration: int, method: str) -> PresignedUrl:
        """A signed URL for ``path``; backends that cannot sign explain why."""
        raise StorageOperationError(
            f"{self.backend_name}: this backend cannot sign URLs", backend=self.backend_name,
            operation="presign", key=key)

    sdk_resumes_cut_reads: ClassVar[bool] = False
    """Whether the SDK itself retries a download whose connection was cut mid-body
    (azure-storage-blob does); otherwise the adapter retries it."""

    def _cut_read(self, error: BaseException) -> bool:
        """Whether a failed download should be tried again by the adapter."""
        return not self.sdk_resumes_cut_reads and interrupted(error)

    BULK_DELETE: ClassVar[int] = 0
    """Keys one bulk-delete request may carry (S3 1,000, Azure 256); 0 where the
    filesystem has no such request and batch deletes go key by key."""

    async def _remove_many(self, fs: Any, paths: list[str]) -> dict[str, BaseException]:
        """Delete ``paths`` in one request (at most ``BULK_DELETE``) and return the
        error of each path that was not deleted; a path already gone counts as
        deleted. Raise when the request as a whole failed."""
        raise NotImplementedError

    def _probe(self) -> None:
        """Raise unless the root is reachable; :meth:`test_connection` bounds its time."""
        fs = self.filesystem
        root = self._root()
        if not fs.isdir(root):
            raise StorageNotFoundError(f"{self.backend_name}: root {root!r} does not exist")

    # -- the filesystem ---------------------------------------------------------------

    @property
    def filesystem(self) -> AbstractFileSystem:
        """The backend's own filesystem (not rooted), built on first use."""
        with self._lock:
            if self._fs is None or self._fs_pid != os.getpid():
                with translate_errors(self.backend_name, "connect",
                                      secrets=self._secret_values()):
                    self._fs = self._make_filesystem()
                self._secret_holder = guard_sdk_logs(self._secret_values())
                self._fs_pid = os.getpid()
            return self._fs

    @property
    def fs(self) -> AbstractFileSystem:
        """An fsspec filesystem rooted at this adapter's root (prefix included).

        Paths given to it are keys; hand it to any fsspec-aware library.
        """
        from fsspec.implementations.dirfs import DirFileSystem

        fs = self.filesystem
        return DirFileSystem(path=self._base() or fs.root_marker, fs=fs,
                             skip_instance_cache=True)

    def url(self, key: str) -> str:
        """An fsspec URL for ``key``; open it with :attr:`storage_options`."""
        key = validate_key(key, self.backend_name)
        protocol = self.filesystem.protocol
        name = protocol if isinstance(protocol, str) else protocol[0]
        return f"{name}://{self._path(key)}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """Options that rebuild this filesystem in pandas, pyarrow, Dask (``url`` + these)."""
        return dict(self.filesystem.storage_options)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``filesystem.<method>(...)``, given at most ``operation_timeout`` seconds on an
        async filesystem, whose event loop then cancels it: the SDKs bound each request,
        not a transfer that keeps trickling or a wait they never arm a timer for."""
        fs = self.filesystem
        limit = self.resilience.operation_timeout
        if not (limit and getattr(fs, "async_impl", False)):
            return getattr(fs, method)(*args, **kwargs)
        from fsspec.exceptions import FSTimeoutError

        try:
            return getattr(fs, method)(*args, timeout=limit, **kwargs)
        except FSTimeoutError as exc:
            raise StorageTimeoutError(
                f"{self.backend_name}: not done within operation_timeout={limit:g} s") from exc

    def close(self) -> None:
        with self._lock:
            self._fs = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock")
        state["_fs"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- paths ---------------------------------------------------------------------

    def _base(self) -> str:
        root = self._root().rstrip("/")
        return f"{root}/{self.prefix}" if self.prefix else root

    def _path(self, key: str) -> str:
        """The filesystem path of a validated key."""
        return f"{self._base()}/{key}"

    def _key_of(self, path: str) -> str:
        base = self._base().strip("/")
        return path.strip("/")[len(base) + 1:] if base else path.strip("/")

    def _check_key(self, key: Any) -> str:
        """Validate a key by the common rules and any the backend adds."""
        return validate_key(key, self.backend_name)

    def _is_internal(self, key: str) -> bool:
        """True for the backend's own bookkeeping files, which listings hide."""
        return False

    # -- metadata ------------------------------------------------------------------

    def _head(self, path: str) -> dict[str, Any]:
        """The fsspec ``info`` of one path, with content type and metadata when known."""
        return dict(self.filesystem.info(path))

    def _to_object(self, key: str, info: Mapping[str, Any], full: bool) -> StorageObject:
        """A :class:`StorageObject` from the ``info`` dict of any of our filesystems."""
        modified = _first(info, "LastModified", "last_modified", "mtime", "modified",
                          "created")
        etag = _first(info, "ETag", "etag")
        obj = StorageObject(
            key=key,
            size=int(info.get("size") or 0),
            last_modified=_utc(modified),
            etag=str(etag).strip('"') if etag is not None else None,
        )
        if full:
            settings = info.get("content_settings")
            content_type = _first(info, "ContentType", "content_type") or (
                settings.get("content_type") if isinstance(settings, Mapping) else
                getattr(settings, "content_type", None))
            obj.content_type = content_type or "application/octet-stream"
            metadata = _first(info, "Metadata", "metadata") or {}
            obj.metadata = {str(k).lower(): str(v) for k, v in metadata.items()
                            if str(k).lower() not in RESERVED_METADATA}
        return obj

    def _file_info(self, key: str) -> dict[str, Any]:
        """``_head`` of a key that must be a file: directories count as missing."""
        info = self._head(self._path(key))
        if info.get("type") != "file":
            raise StorageNotFoundError(f"{self.backend_name}: {key!r} is a directory, "
                                       "not a file")
        return info

    # -- the contract --------------------------------------------------------------

    def test_connection(self, timeout: float = 10) -> bool:
        """True when the root is reachable; raises a typed error within ``timeout`` s."""
        seconds = validate_positive(timeout, "timeout", self.backend_name)
        with self._operation("test_connection"):
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perceptra-probe")
            try:
                pool.submit(self._probe).result(timeout=seconds)
            except FutureTimeout:
                raise StorageTimeoutError(
                    f"{self.backend_name}: no answer within {seconds:g} s") from None
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        return True

    def upload_file(
        self,
        file_obj: Source,
        key: str,
        content_type: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
        *,
        progress: ProgressArg = None,
        checksum: bool = False,
    ) -> str:
        """Store ``file_obj`` under ``key``; ``progress`` counts bytes (see transfer.py).

        ``checksum=True`` stores the SHA-256 of what was sent with the object and
        reads the object back to check it (twice the traffic); downloads with
        ``checksum=True`` check against it.
        """
        with self._operation("upload", key if isinstance(key, str) else None):
            key, source, options, digest = self._plan_upload(
                file_obj, key, content_type, metadata, checksum)
            sink = Progress(progress, source_size(source), "B", key)
            try:
                path = self._path(key)
                if isinstance(source, bytes):
                    self._call("pipe_file", path, source, **options("pipe_file"))
                    sink.advance(len(source))
                elif isinstance(source, str):
                    self._call("put_file", source, path, callback=sink.fsspec_callback(),
                               **options("put_file"))
                else:
                    self._write_stream(path, source, options, sink)
            finally:
                sink.close()
            if digest is not None:
                with self.filesystem.open(path, "rb", **self._read_options("open")) as stored:
                    _expect_digest(_sha256(stored), digest, key, "stored object")
        return key

    def _plan_upload(
        self, file_obj: Any, key: Any, content_type: Any, metadata: Any, checksum: bool = False
    ) -> tuple[str, Union[bytes, str, IO[bytes]], Callable[[str], dict[str, Any]],
               Optional[str]]:
        """Validate everything an upload needs before a byte moves; with ``checksum``,
        hash the source (a file object is spooled so it can be read twice)."""
        key = self._check_key(key)
        ctype = validate_content_type(content_type, key, self.backend_name)
        meta = validate_metadata(metadata, self.backend_name)
        source = _classify_source(file_obj, self.backend_name, key)
        digest = None
        if checksum:
            if isinstance(source, bytes):
                digest = hashlib.sha256(source).hexdigest()
            elif isinstance(source, str):
                with open(source, "rb") as local:
                    digest = _sha256(local)
            else:
                spool = tempfile.SpooledTemporaryFile(max_size=_COPY_CHUNK)  # noqa: SIM115
                shutil.copyfileobj(source, spool, _COPY_CHUNK)
                spool.seek(0)
                digest = _sha256(spool)
                spool.seek(0)
                source = typing.cast(IO[bytes], spool)
            meta[CHECKSUM_FIELD] = digest
        return key, source, lambda how: self._write_options(how, ctype, meta), digest

    def _write_stream(self, path: str, source: IO[bytes],
                      options: Callable[[str], dict[str, Any]],
                      sink: Optional[Progress] = None) -> None:
        """Copy a file object into a new object; a failure stores nothing, also when
        the final commit fails (an unfinished multipart upload is aborted). An empty
        stream is stored with ``pipe_file``: s3fs commits an empty write with a bare
        touch that drops the content type and metadata."""
        first = source.read(_STREAM_CHUNK)
        if not first:
            self.filesystem.pipe_file(path, b"", **options("pipe_file"))
            return
        target = self.filesystem.open(path, "wb", **options("open"))
        try:
            chunk = first
            while chunk:
                target.write(chunk)
                if sink is not None:
                    sink.advance(len(chunk))
                chunk = source.read(_STREAM_CHUNK)
            target.close()
        except BaseException:
            _abandon(target)
            raise

    def download_file(self, key: str, destination: Optional[Any] = None, *,
                      progress: ProgressArg = None, checksum: bool = False) -> Any:
        """The object's bytes; or, with ``destination``, stream it there.

        A path destination is written to a temporary file beside it and renamed at
        the end, so it is never left half-written; a writable binary file object
        is written in chunks. Returns the bytes, or the destination (a path as
        str). ``progress`` counts bytes. ``checksum=True`` checks the bytes against
        the SHA-256 stored by an upload with ``checksum=True``; a mismatch raises
        StorageOperationError (and a path destination is left untouched).
        """
        with self._operation("download", key if isinstance(key, str) else None):
            key = self._check_key(key)
            path = self._path(key)
            expected = self._stored_digest(key) if checksum else None
            sink = Progress(progress, None, "B", key)
            try:
                if destination is None:
                    data: bytes = self.resilience.retry(
                        lambda: self._call("cat_file", path, **self._read_options("cat_file")),
                        self._cut_read)
                    sink.advance(len(data))
                    if expected is not None:
                        _expect_digest(hashlib.sha256(data).hexdigest(), expected, key,
                                       "downloaded bytes")
                    return data
                if isinstance(destination, (str, os.PathLike)):
                    with _staged(os.fspath(destination), key, self.backend_name) as temp:
                        self.resilience.retry(lambda: self._call(
                            "get_file", path, temp, callback=sink.fsspec_callback(),
                            **self._read_options("get_file")), self._cut_read)
                        if expected is not None:
                            with open(temp, "rb") as written:
                                _expect_digest(_sha256(written), expected, key,
                                               "downloaded file")
                    return str(os.fspath(destination))
                if not callable(getattr(destination, "write", None)) or \
                        isinstance(destination, io.TextIOBase):
                    raise StorageValidationError(
                        f"{self.backend_name}: destination must be a path or a binary file "
                        f"object, not {type(destination).__name__}")
                hasher = hashlib.sha256()
                with self.filesystem.open(path, "rb", **self._read_options("open")) as source:
                    while chunk := source.read(_COPY_CHUNK):
                        destination.write(chunk)
                        hasher.update(chunk)
                        sink.advance(len(chunk))
                if expected is not None:
                    _expect_digest(hasher.hexdigest(), expected, key, "downloaded stream")
                return destination
            finally:
                sink.close()

    def _run_batch(self, kind: str, items: list[tuple[str, Any]], concurrency: int,
                   progress: Progress) -> BatchResult:
        """On an async filesystem (s3fs, adlfs) run all items as coroutines on its
        event loop, at most ``concurrency`` at once; otherwise use the thread pool."""
        fs = self.filesystem
        if not getattr(fs, "async_impl", False):
            return super()._run_batch(kind, items, concurrency, progress)
        from fsspec.asyn import sync

        gate_size = check_concurrency(concurrency, self.backend_name)
        outcomes: dict[int, Optional[StorageError]] = {}

        async def one(gate: asyncio.Semaphore, index: int, key: Any, arg: Any) -> None:
            async with gate:
                try:
                    with translate_errors(self.backend_name, kind,
                                          key if isinstance(key, str) else None,
                                          secrets=self._secret_values()):
                        await self._batch_item_async(fs, kind, key, arg, progress)
                    outcomes[index] = None
                except StorageError as exc:
                    outcomes[index] = exc

        async def run_all() -> None:
            gate = asyncio.Semaphore(gate_size)
            if kind == "delete" and self.BULK_DELETE:
                await self._delete_in_bulk(fs, items, gate, outcomes, progress)
                return
            await asyncio.gather(*(one(gate, index, key, arg)
                                   for index, (key, arg) in enumerate(items)))

        try:
            sync(fs.loop, run_all)
        finally:
            progress.close()
        return collect(items, outcomes)

    async def _batch_item_async(self, fs: Any, kind: str, key: Any, arg: Any,
                                progress: Progress) -> None:
        """One batch item through the filesystem's coroutines (same checks as the
        one-item methods)."""
        if kind == "upload":
            key, source, options, _ = self._plan_upload(arg, key, None, None)
            path = self._path(key)
            if isinstance(source, bytes):
                await fs._pipe_file(path, source, **options("pipe_file"))
                progress.advance(len(source))
            elif isinstance(source, str):
                await fs._put_file(source, path, callback=progress.fsspec_callback(),
                                   **options("put_file"))
            else:
                await asyncio.to_thread(self._write_stream, path, source, options,
                                        progress)
            return
        key = self._check_key(key)
        path = self._path(key)
        if kind == "download":
            with _staged(arg, key, self.backend_name) as temp:
                await fs._get_file(path, temp, callback=progress.fsspec_callback(),
                                   **self._read_options("get_file"))
            return
        if kind == "delete":
            if not arg:
                await self._require_file_async(fs, key, path)
            try:
                await fs._rm_file(path)
            except Exception as exc:
                if not (arg and issubclass(classify(exc)[0], StorageNotFoundError)):
                    raise
            progress.advance(1)
            return
        source_key = self._check_key(arg)
        source_path = self._path(source_key)
        await self._require_file_async(fs, source_key, source_path)
        await fs._cp_file(source_path, path)
        if kind == "move":
            await fs._rm_file(source_path)
        progress.advance(1)

    async def _delete_in_bulk(self, fs: Any, items: list[tuple[str, Any]],
                              gate: asyncio.Semaphore,
                              outcomes: dict[int, Optional[StorageError]],
                              progress: Progress) -> None:
        """A batch delete in ``BULK_DELETE``-sized requests. Each key is checked first
        (and, unless ``missing_ok``, proven to exist, concurrently); the survivors go
        in bulk, and every key the store refused is reported with its own typed
        error. A chunk whose bulk request fails as a whole (a store or token without
        bulk delete) is retried key by key, so each key still gets its own answer."""
        secrets = self._secret_values()
        targets: dict[str, list[int]] = {}

        async def check(index: int, key: Any, missing_ok: bool) -> None:
            async with gate:
                try:
                    with translate_errors(self.backend_name, "delete",
                                          key if isinstance(key, str) else None,
                                          secrets=secrets):
                        path = self._path(self._check_key(key))
                        if not missing_ok:
                            await self._require_file_async(fs, key, path)
                    targets.setdefault(path, []).append(index)
                except StorageError as exc:
                    outcomes[index] = exc

        async def one_by_one(path: str) -> Optional[BaseException]:
            try:
                await fs._rm_file(path)
            except Exception as exc:
                return None if issubclass(classify(exc)[0], StorageNotFoundError) else exc
            return None

        async def remove(chunk: list[str]) -> None:
            async with gate:
                try:
                    failures = await self._remove_many(fs, chunk)
                except Exception:
                    answers = await asyncio.gather(*(one_by_one(path) for path in chunk))
                    failures = {path: error for path, error in zip(chunk, answers, strict=True)
                                if error is not None}
            for path in chunk:
                for index in targets[path]:
                    error = failures.get(path)
                    outcomes[index] = None if error is None else build_error(
                        error, self.backend_name, "delete", items[index][0], secrets)
                progress.advance(len(targets[path]))

        await asyncio.gather(*(check(index, key, bool(missing_ok))
                               for index, (key, missing_ok) in enumerate(items)))
        paths, size = list(targets), self.BULK_DELETE
        await asyncio.gather(*(remove(paths[start:start + size])
                               for start in range(0, len(paths), size)))

    async def _require_file_async(self, fs: Any, key: str, path: str) -> None:
        info = await fs._info(path)
        if info.get("type") != "file":
            raise StorageNotFoundError(f"{self.backend_name}: {key!r} is a directory, "
                                       "not a file")

    def _stored_digest(self, key: str) -> str:
        info = self._file_info(key)
        metadata = _first(info, "Metadata", "metadata") or {}
        digest = {str(k).lower(): v for k, v in metadata.items()}.get(CHECKSUM_FIELD)
        if not digest:
            raise StorageOperationError(
                f"{self.backend_name}: {key!r} has no stored checksum; upload it with "
                "checksum=True to verify downloads")
        return str(digest)

    def delete_file(self, key: str) -> bool:
        with self._operation("delete", key if isinstance(key, str) else None):
            key = self._check_key(key)
            self._file_info(key)
            self._call("rm_file", self._path(key))
        return True

    def file_exists(self, key: str) -> bool:
        with self._operation("exists", key if isinstance(key, str) else None):
            key = self._check_key(key)
            try:
                return self._head(self._path(key)).get("type") == "file"
            except FileNotFoundError:
                return False

    def get_file_metadata(self, key: str) -> StorageObject:
        with self._operation("stat", key if isinstance(key, str) else None):
            key = self._check_key(key)
            return self._to_object(key, self._file_info(key), full=True)

    def list_files(self, prefix: str = "", max_results: int = 1000) -> list[StorageObject]:
        if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 0:
            raise StorageValidationError(
                f"{self.backend_name}: max_results must be an int >= 0, not {max_results!r}",
                backend=self.backend_name, operation="list")
        with self._operation("list", prefix if isinstance(prefix, str) else None):
            return list(islice(self._objects(prefix), max_results))

    def iter_files(self, prefix: str = "") -> Iterator[StorageObject]:
        """Every file whose key starts with ``prefix`` (a plain string prefix), by key.

        Lazy: directories (or result pages) are read as the iterator advances, so
        listings of millions of objects run in bounded memory. One log record for
        the whole listing, when it is exhausted.
        """
        with self._operation("list", prefix if isinstance(prefix, str) else None):
            yield from self._objects(prefix)

    def _objects(self, prefix: str) -> Iterator[StorageObject]:
        prefix = validate_prefix(prefix, self.backend_name)
        for key, info in self._iter_entries(prefix):
            yield self._to_object(key, info, full=False)

    def _iter_entries(self, prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """``(key, info)`` of each file under ``prefix``, sorted by key."""
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else self._base()
        pages = self._pages(prefix) if self.flat_namespace else None
        if pages is not None:
            yield from self._paged_entries(pages, prefix)
        elif self.flat_namespace:
            yield from self._find_entries(start, prefix)
        else:
            yield from self._walk_entries(start, prefix)

    def _pages(self, prefix: str) -> Optional[AsyncIterator[list[dict[str, Any]]]]:
        """Info dicts (``name`` is the full path) of the objects whose key starts with
        ``prefix``, one listing page at a time, in key order; stores that list this way
        override it so listings stay lazy. None: one ``find`` gets everything."""
        return None

    def _paged_entries(self, pages: AsyncIterator[list[dict[str, Any]]],
                       prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Pull one page at a time from the filesystem's event loop."""
        from fsspec.asyn import sync

        fs = self.filesystem
        while (page := sync(fs.loop, _next_page, pages)) is not None:
            for info in page:
                key = self._key_of(info["name"])
                if info.get("type") == "file" and key.startswith(prefix) and \
                        not self._is_internal(key):
                    yield key, info

    def _find_entries(self, start: str, prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        options: dict[str, Any] = {}
        if prefix and self.find_accepts_prefix:
            # The whole prefix from the root: the store filters just as well, and adlfs
            # answers a find from a path that is itself an object with that object alone.
            start, options["prefix"] = self._base(), prefix
        try:
            found = self.filesystem.find(start, detail=True, **options)
        except FileNotFoundError:
            return
        for name in sorted(found, key=lambda n: n.strip("/")):
            info = found[name]
            key = self._key_of(name)
            if info.get("type") == "file" and key.startswith(prefix) and \
                    not key.endswith("/") and not self._is_internal(key):
                yield key, info

    def _walk_entries(self, start: str, prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Depth-first, each directory sorted with '/' after a folder's name, so the
        keys come out in global lexicographic order without holding the tree."""
        try:
            listing = self.filesystem.ls(start, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return
        ordered = sorted(listing, key=lambda i: i["name"].rstrip("/") +
                         ("/" if i["type"] == "directory" else ""))
        for info in ordered:
            key = self._key_of(info["name"])
            if info["type"] == "directory":
                if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                    yield from self._walk_entries(info["name"], prefix)
            elif info["type"] == "file" and key.startswith(prefix) and \
                    not self._is_internal(key):
                yield key, info

    def generate_presigned_url(
        self, key: str, expiration: int = 3600, method: str = "GET"
    ) -> PresignedUrl:
        with self._operation("presign", key if isinstance(key, str) else None):
            key = self._check_key(key)
            seconds = validate_expiration(expiration, self.backend_name)
            verb = validate_method(method, self.backend_name)
            return self._sign(self._path(key), key, seconds, verb)

    def get_public_url(self, key: str) -> Optional[str]:
        """``public_base_url`` + the key's path in the bucket, when configured."""
        key = self._check_key(key)
        base = self.config.get("public_base_url")
        if not base:
            return None
        inner = f"{self.prefix}/{key}" if self.prefix else key
        return f"{str(base).rstrip('/')}/{quote(inner)}"

    # -- additions with fast paths -------------------------------------------------

    def open(self, key: str, mode: str = "rb") -> IO[bytes]:
        """A binary file object for ``key``: ``rb`` reads lazily (seekable), ``wb``
        stores the object when closed, and stores nothing if the ``with`` block fails."""
        with self._operation("open", key if isinstance(key, str) else None):
            key = self._check_key(key)
            if mode not in ("rb", "wb"):
                raise StorageValidationError(
                    f"{self.backend_name}: mode must be 'rb' or 'wb', not {mode!r}")
            path = self._path(key)
            if mode == "rb":
                self._file_info(key)
                raw = self.filesystem.open(path, "rb", **self._read_options("open"))
            else:
                options = self._write_options(
                    "open", validate_content_type(None, key, self.backend_name), {})
                raw = self.filesystem.open(path, "wb", **options)
        return typing.cast(IO[bytes], _GuardedFile(raw, self, key, mode))

    def copy_file(self, source_key: str, destination_key: str) -> str:
        """Copy inside the store, keeping content type and metadata."""
        with self._operation("copy", source_key if isinstance(source_key, str) else None):
            source_key = self._check_key(source_key)
            destination_key = self._check_key(destination_key)
            self._file_info(source_key)
            self._call("cp_file", self._path(source_key), self._path(destination_key))
        return destination_key

    def move_file(self, source_key: str, destination_key: str) -> str:
        """Move one object: on a local disk one atomic rename (through the filesystem's
        ``mv``); on object stores a server-side copy, then a delete of the source. If
        that delete fails, its typed error is raised and both objects stay."""
        from fsspec.implementations.local import LocalFileSystem

        with self._operation("move", source_key if isinstance(source_key, str) else None):
            source_key = self._check_key(source_key)
            destination_key = self._check_key(destination_key)
            _refuse_same_key(source_key, destination_key, self.backend_name)
            self._file_info(source_key)
            source, destination = self._path(source_key), self._path(destination_key)
            if isinstance(self.filesystem, LocalFileSystem):
                self._call("mv", source, destination)
                return destination_key
            self._call("cp_file", source, destination)
        try:
            with self._operation("move", source_key):
                self._call("rm_file", source)
        except StorageError as exc:
            raise _source_kept(exc, destination_key) from exc
        return destination_key

    def __repr__(self) -> str:
        where = self._base()
        return f"<{type(self).__name__} backend={self.backend_name!r} root={where!r}>"


class _GuardedFile(io.RawIOBase):
    """A filesystem's file object whose errors come out as StorageErrors.

    Written objects are committed by ``close``; leaving a ``with`` block by an
    exception discards the write, so the stored object stays as it was.
    """

    def __init__(self, raw: Any, adapter: FsspecStorageAdapter, key: str, mode: str) -> None:
        super().__init__()
        self._raw = raw
        self._adapter = adapter
        self._key = key
        self.mode = mode

    def _guard(self, operation: str) -> Any:
        return translate_errors(self._adapter.backend_name, operation, self._key,
                                secrets=self._adapter._secret_values())

    def readable(self) -> bool:
        return self.mode == "rb"

    def writable(self) -> bool:
        return self.mode == "wb"

    def seekable(self) -> bool:
        return self.mode == "rb"

    def read(self, size: Optional[int] = -1) -> bytes:
        with self._guard("read"):
            return bytes(self._raw.read(-1 if size is None else size))

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)

    def write(self, data: Any) -> int:
        """Buffer or send ``data``; when that fails, the whole write is discarded, so
        a later ``close`` (or the garbage collector's) cannot commit part of it."""
        with self._guard("write"):
            try:
                self._raw.write(data)
            except BaseException:
                self.discard()
                raise
        return len(memoryview(data).cast("B"))

    def seek(self, offset: int, whence: int = 0) -> int:
        with self._guard("read"):
            return int(self._raw.seek(offset, whence))

    def tell(self) -> int:
        return int(self._raw.tell())

    @property
    def size(self) -> Optional[int]:
        return getattr(self._raw, "size", None)

    def close(self) -> None:
        if self.closed:
            return
        try:
            with self._guard("write" if self.mode == "wb" else "read"):
                try:
                    self._raw.close()
                except BaseException:
                    if self.mode == "wb":
                        _abandon(self._raw)  # a failed commit leaves no upload behind
                    raise
        finally:
            super().close()

    def discard(self) -> None:
        """Drop a pending write; the stored object (if any) is untouched."""
        if not self.closed:
            _abandon(self._raw)
            super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self.mode == "wb":
            self.discard()
        else:
            self.close()


def _abandon(file: Any) -> None:
    """Throw away an unfinished write without committing it."""
    discard = getattr(file, "discard", None)
    if callable(discard):
        discard()
    with contextlib.suppress(AttributeError):
        file.closed = True


def _classify_source(file_obj: Any, backend: str, key: str) -> Union[bytes, str, IO[bytes]]:
    """bytes for bytes-like data, a str path for a local file, or a binary reader."""
    if isinstance(file_obj, (bytes, bytearray, memoryview)):
        return bytes(file_obj)
    if isinstance(file_obj, (str, os.PathLike)):
        path = os.fspath(file_obj)
        if not isinstance(path, str) or not os.path.isfile(path):
            raise StorageValidationError(
                f"{backend}: upload source {str(path)!r} is not an existing local file",
                backend=backend, key=key)
        return path
    if isinstance(file_obj, io.TextIOBase) or "b" not in getattr(file_obj, "mode", "b"):
        raise StorageValidationError(
            f"{backend}: file object for {key!r} is open in text mode; open it with 'rb'",
            backend=backend, key=key)
    if not callable(getattr(file_obj, "read", None)):
        raise StorageValidationError(
            f"{backend}: cannot upload a {type(file_obj).__name__}; give bytes, a path "
            "or a binary file object", backend=backend, key=key)
    return file_obj  # type: ignore[no-any-return]


def _importable(module: str) -> bool:
    """Whether ``module`` is installed; a dotted name whose parent is missing is not
    (``find_spec`` raises for it rather than answering None)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _first(info: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if info.get(name) is not None:
            return info[name]
    return None


def _utc(value: Any) -> datetime:
    """A timezone-aware UTC datetime from an fsspec time field (datetime or epoch)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else \
            value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return datetime.fromtimestamp(0, tz=UTC)


@contextlib.contextmanager
def _staged(destination: str, key: str, backend: str) -> Iterator[str]:
    """A temporary path beside ``destination``, renamed over it if the block
    succeeds and produced a file; removed otherwise."""
    target = os.path.abspath(destination)
    if os.path.isdir(target):
        raise StorageValidationError(
            f"{backend}: destination {destination!r} is a directory; give a file path")
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex}.part")
    try:
        yield temp
        if not os.path.isfile(temp):
            raise StorageNotFoundError(f"{backend}: {key!r} is not a file")
        os.replace(temp, target)
    finally:
        if os.path.isdir(temp):
            shutil.rmtree(temp, ignore_errors=True)
        elif os.path.lexists(temp):
            os.unlink(temp)


def _sha256(stream: IO[bytes]) -> str:
    hasher = hashlib.sha256()
    while chunk := stream.read(_COPY_CHUNK):
        hasher.update(chunk)
    return hasher.hexdigest()


def _expect_digest(actual: str, expected: str, key: str, what: str) -> None:
    if actual != expected:
        raise StorageOperationError(
            f"checksum mismatch for {key!r}: the {what} hash to sha256 {actual[:16]}..., "
            f"expected {expected[:16]}...", key=key)


async def _next_page(pages: AsyncIterator[list[dict[str, Any]]]) -> Optional[list[dict[str, Any]]]:
    try:
        return await pages.__anext__()
    except StopAsyncIteration:
        return None
