"""The contract: what every adapter offers, and the value types it returns.

:class:`BaseStorageAdapter` keeps exactly the abstract methods of the 0.1 API
(``_validate_config`` and the eight operations), so adapters written against it
still work. What came later (``iter_files``, ``open``, ``copy_file``, context
manager) is concrete here, built on those eight; the generic fsspec adapter
overrides each with a faster path.

The exceptions are re-exported from here because 0.1 defined them in this module.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    BinaryIO,
    ClassVar,
    Optional,
    Protocol,
    Self,
    TypeVar,
    Union,
    overload,
)

from .batch import PrimitiveOperations, run_batch
from .errors import (
    StorageAdapterError,
    StorageConnectionError,
    StorageError,
    StorageNotFoundError,
    StorageOperationError,
    StoragePermissionError,
    StorageTimeoutError,
    StorageValidationError,
    typed_error,
)
from .transfer import BatchResult, Progress, ProgressArg, source_size
from .validation import validate_headers, validate_key

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from .aio import AsyncStorage
    from .batch import Operations
    from .fsspec_protocol import PerceptraFileSystem

__all__ = [
    "BaseStorageAdapter",
    "BatchResult",
    "CorsRule",
    "PresignedPost",
    "PresignedUrl",
    "Source",
    "StorageAdapter",
    "StorageAdapterError",
    "StorageConnectionError",
    "StorageError",
    "StorageNotFoundError",
    "StorageObject",
    "StorageOperationError",
    "StoragePermissionError",
    "StorageTimeoutError",
    "StorageValidationError",
]

logger = logging.getLogger("perceptra_storage")

Source = Union[BinaryIO, IO[bytes], bytes, bytearray, memoryview, "os.PathLike[str]"]
"""What ``upload_file`` accepts: a binary file object, bytes-like data, or a local path as
``os.PathLike`` (``pathlib.Path``). A plain ``str`` is refused, since text content and a
path cannot be told apart."""


class Writable(Protocol):
    """A destination ``download_file`` can stream into: anything with ``write(bytes)``."""

    def write(self, data: bytes, /) -> Any: ...


_Writer = TypeVar("_Writer", bound=Writable)


@dataclass
class StorageObject:
    """One stored object, as ``get_file_metadata`` and the listings describe it."""

    key: str
    """Key relative to the adapter's root (its bucket/container/base_path and prefix)."""
    size: int
    """Size in bytes."""
    last_modified: datetime
    """Time of the last write, timezone-aware UTC."""
    etag: Optional[str] = None
    """Opaque version tag, without quotes; changes when the content changes."""
    content_type: Optional[str] = None
    """MIME type; None in listings, which do not fetch it (one request per object)."""
    metadata: Optional[dict[str, str]] = None
    """User metadata; None in listings, which do not fetch it."""
    cache_control: Optional[str] = None
    """``Cache-Control`` stored with the object; None when absent (and in listings)."""
    content_disposition: Optional[str] = None
    """``Content-Disposition`` stored with the object (a download name); None when absent."""
    content_encoding: Optional[str] = None
    """``Content-Encoding`` stored with the object (e.g. gzip); None when absent."""


@dataclass
class PresignedUrl:
    """A URL that grants temporary access without the adapter's credentials."""

    url: str
    """The URL to give to a client."""
    expires_at: datetime
    """When the grant ends, timezone-aware UTC: the requested expiry, or the end of the
    temporary credentials that signed the URL when that comes first (S3 STS session
    credentials that botocore refreshes; an Azure user-delegation key)."""
    method: str = "GET"
    """The HTTP method the URL is signed for."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers the client must send with the request (Azure PUT: ``x-ms-blob-type``)."""
    scoped: bool = True
    """False when the URL grants more than this key and method (a shared SAS token
    passed through as given, or a local file URL that is no credential at all)."""
    expiry_enforced: bool = True
    """False when nothing enforces ``expires_at`` (local ``file://`` URLs)."""
    headers_signed: bool = True
    """False when the service does not check ``headers``: an Azure SAS signs none, so a
    client may send another Content-Type; S3 SigV4 and local signed URLs refuse one."""


@dataclass
class PresignedPost:
    """An upload policy for an HTML form or ``fetch`` with ``FormData``: POST ``fields``
    (in order) and then the file, as the last field named ``file``, to ``url``."""

    url: str
    """Where the form posts to."""
    fields: dict[str, str]
    """Form fields to send before the file (key, policy, signature, content type...)."""
    expires_at: datetime
    """When the policy ends, timezone-aware UTC (as ``PresignedUrl.expires_at``, no later
    than the temporary credentials that signed it)."""
    max_size: Optional[int] = None
    """Largest file in bytes the policy accepts; None for no limit beyond the store's."""


@dataclass
class CorsRule:
    """One cross-origin rule of a bucket (S3) or blob service (Azure)."""

    origins: list[str]
    """Origins allowed, e.g. ['https://app.example.com'] (or ['*'])."""
    methods: list[str]
    """HTTP methods allowed, e.g. ['GET', 'PUT', 'POST']."""
    headers: list[str] = field(default_factory=lambda: ["*"])
    """Request headers a browser may send (preflight ``Access-Control-Request-Headers``)."""
    expose_headers: list[str] = field(default_factory=lambda: ["ETag"])
    """Response headers page scripts may read."""
    max_age: int = 3600
    """Seconds a browser may cache the preflight answer."""


class BaseStorageAdapter(ABC):
    """What every storage adapter implements.

    Subclasses implement ``_validate_config`` and the eight operations; the
    constructor copies ``config`` and ``credentials`` (the caller's dicts are
    never changed) and then calls ``_validate_config``.
    """

    backend_name: ClassVar[str] = "custom"
    """The name the adapter is registered under; used in messages and logs."""
    batch_in_threads: ClassVar[bool] = True
    """Run batch items on a thread pool (network-bound stores); False runs them one
    after another in the caller's thread, faster where each item is a few syscalls."""

    def __init__(
        self, config: Optional[Mapping[str, Any]] = None,
        credentials: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.config: dict[str, Any] = copy.deepcopy(dict(config or {}))
        self.credentials: dict[str, Any] = copy.deepcopy(dict(credentials or {}))
        self._validate_config()

    @abstractmethod
    def _validate_config(self) -> None:
        """Check ``self.config`` and ``self.credentials``; raise StorageValidationError."""

    @abstractmethod
    def test_connection(self, timeout: float = 10) -> bool:
        """Return True if the storage is reachable and usable; raise otherwise."""

    @abstractmethod
    def upload_file(
        self,
        file_obj: Source,
        key: str,
        content_type: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
    ) -> str:
        """Store ``file_obj`` under ``key`` (replacing any object there); return the key."""

    @abstractmethod
    def download_file(self, key: str, destination: Optional[Any] = None) -> Any:
        """Return the object's bytes, or write them to ``destination`` and return it."""

    @abstractmethod
    def delete_file(self, key: str) -> bool:
        """Delete the object; raise StorageNotFoundError if there is none."""

    @abstractmethod
    def file_exists(self, key: str) -> bool:
        """True if an object (not a directory) is stored under ``key``."""

    @abstractmethod
    def get_file_metadata(self, key: str) -> StorageObject:
        """Size, time, etag, content type and user metadata of one object."""

    @abstractmethod
    def list_files(self, prefix: str = "", max_results: int = 1000) -> list[StorageObject]:
        """Objects whose key starts with ``prefix``, sorted by key, at most ``max_results``."""

    @abstractmethod
    def generate_presigned_url(
        self, key: str, expiration: int = 3600, method: str = "GET"
    ) -> PresignedUrl:
        """A URL that lets a client without credentials use ``key`` for a while."""

    def get_public_url(self, key: str) -> Optional[str]:
        """A permanent URL for ``key`` if the backend has one; None otherwise."""
        return None

    # -- additions built on the primitives above; the generic adapter overrides them --

    def iter_files(self, prefix: str = "") -> Iterator[StorageObject]:
        """Every object under ``prefix``, sorted by key, without a result limit."""
        yield from self.list_files(prefix, max_results=sys.maxsize)

    def open(self, key: str, mode: str = "rb", *, content_type: Optional[str] = None,
             metadata: Optional[dict[str, str]] = None, cache_control: Optional[str] = None,
             content_disposition: Optional[str] = None,
             content_encoding: Optional[str] = None) -> IO[bytes]:
        """A binary file object for ``key``; writes are stored when it is closed, with
        the content type, metadata and object headers given."""
        given = {"content_type": content_type, "metadata": metadata,
                 "cache_control": cache_control, "content_disposition": content_disposition,
                 "content_encoding": content_encoding}
        options = {name: value for name, value in given.items() if value is not None}
        if mode == "rb":
            return io.BytesIO(self.download_file(key))
        if mode == "wb":
            return _UploadOnClose(self, validate_key(key, self.backend_name), options)
        raise StorageValidationError(f"mode must be 'rb' or 'wb', "
                                     f"not {mode!r}", backend=self.backend_name, key=key)

    def copy_file(self, source_key: str, destination_key: str) -> str:
        """Copy one object, with its content type and metadata, to another key."""
        info = self.get_file_metadata(source_key)
        headers = {name: value for name, value in (
            ("cache_control", info.cache_control),
            ("content_disposition", info.content_disposition),
            ("content_encoding", info.content_encoding)) if value is not None}
        self.upload_file(self.download_file(source_key), destination_key,
                         content_type=info.content_type, metadata=info.metadata,
                         **headers)
        return destination_key

    # -- the perceptra:// route: fsspec, pandas, pyarrow, polars, Dask (fsspec_protocol.py) --

    def url(self, key: str) -> str:
        """A ``perceptra://`` URL for ``key``; open it with :attr:`storage_options`
        (``pd.read_csv(adapter.url(k), storage_options=adapter.storage_options)``).
        A folder (``'tables/'``, or ``''`` for the root) gives the folder's URL, for
        datasets and globs.

        The URL reaches this adapter's own behaviour (key checks, prefix, timeouts,
        retries, typed errors) through ``fsspec_protocol.PerceptraFileSystem``.
        """
        from .fsspec_protocol import url_for

        with self._operation("url", key if isinstance(key, str) else None):
            if key == "" or (isinstance(key, str) and key.endswith("/")):
                return url_for(f"{validate_key(key[:-1], self.backend_name)}/" if key else "")
            return url_for(validate_key(key, self.backend_name))

    @property
    def storage_options(self) -> dict[str, Any]:
        """Options that rebuild this adapter for :meth:`url` in pandas, pyarrow, polars
        and on Dask workers: ``backend``, ``config`` and ``credentials`` (copies; they
        hold the credentials, like the dicts given to the constructor). An adapter the
        registry cannot rebuild by its name (a custom class registered under another
        name, a private in-memory store) is passed as itself, ``adapter``, which
        pickles to other processes."""
        if not self._rebuilt_by_name():
            return {"adapter": self}
        return {"backend": self.backend_name, "config": copy.deepcopy(self.config),
                "credentials": copy.deepcopy(self.credentials)}

    def _rebuilt_by_name(self) -> bool:
        """Whether ``get_storage_adapter(backend_name, config, credentials)`` builds an
        adapter on the same storage as this one."""
        from .registry import _adapter_class

        try:
            return _adapter_class(self.backend_name) is type(self)
        except StorageAdapterError:
            return False

    @property
    def fs(self) -> PerceptraFileSystem:
        """This adapter as an fsspec filesystem whose paths are keys (rooted at the
        adapter's root, prefix included): the same class :meth:`url` reaches."""
        from .fsspec_protocol import PerceptraFileSystem

        return PerceptraFileSystem(adapter=self)

    def move_file(self, source_key: str, destination_key: str) -> str:
        """Move one object to another key: copy (content type and metadata kept), then
        delete the source. If the delete fails its typed error is raised and both
        objects stay, so nothing is lost; a failed copy leaves the source alone."""
        source_key = validate_key(source_key, self.backend_name)
        destination_key = validate_key(destination_key, self.backend_name)
        _refuse_same_key(source_key, destination_key, self.backend_name)
        self.copy_file(source_key, destination_key)
        try:
            self.delete_file(source_key)
        except StorageError as exc:
            raise _source_kept(exc, destination_key) from exc
        return destination_key

    # -- batch operations: the batch engine (batch.py) over the one-item methods; the
    # generic adapter runs the same items on its filesystem's event loop instead.

    def upload_files(
        self,
        items: Union[Mapping[str, Source], Iterable[tuple[Source, str]]],
        *,
        concurrency: int = 16,
        progress: ProgressArg = None,
        cache_control: Optional[str] = None,
        content_disposition: Optional[str] = None,
        content_encoding: Optional[str] = None,
    ) -> BatchResult:
        """Upload many sources: ``{key: source}`` or ``[(source, key), ...]``.

        Every item is attempted; the result lists what succeeded and, per key,
        the typed error of what did not. ``progress`` counts bytes. The object
        headers, when given, are stored with every item.
        """
        pairs = _upload_items(items)
        headers = validate_headers({"cache_control": cache_control,
                                    "content_disposition": content_disposition,
                                    "content_encoding": content_encoding}, self.backend_name)
        # A stat per file, only for a progress display that shows the total.
        total = sum(source_size(source) for _, source in pairs) if progress else 0
        return self._run_batch("upload", pairs, concurrency,
                               Progress(progress, total, "B", "upload"), headers)

    def download_files(
        self,
        keys: Iterable[str],
        destination_dir: Union[str, os.PathLike[str]],
        *,
        concurrency: int = 16,
        progress: ProgressArg = None,
    ) -> BatchResult:
        """Download keys into ``destination_dir``, keeping the key layout
        (``a/b.csv`` lands in ``destination_dir/a/b.csv``). ``progress`` counts bytes."""
        return self._run_batch("download", _download_items(keys, destination_dir), concurrency,
                               Progress(progress, None, "B", "download"))

    def delete_files(self, keys: Iterable[str], *, concurrency: int = 16,
                     progress: ProgressArg = None, missing_ok: bool = False) -> BatchResult:
        """Delete keys; a missing key is reported as failed (StorageNotFoundError),
        unless ``missing_ok``, which also saves the existence check (one request per
        key instead of two on object stores)."""
        pairs = [(key, bool(missing_ok)) for key in keys]
        return self._run_batch("delete", pairs, concurrency,
                               Progress(progress, len(pairs), "it", "delete"))

    def copy_files(
        self,
        pairs: Union[Mapping[str, str], Iterable[tuple[str, str]]],
        *,
        concurrency: int = 16,
        progress: ProgressArg = None,
    ) -> BatchResult:
        """Copy ``{source: destination}`` or ``[(source, destination), ...]``;
        the result is keyed by destination."""
        return self._pairs_batch("copy", pairs, concurrency, progress)

    def move_files(
        self,
        pairs: Union[Mapping[str, str], Iterable[tuple[str, str]]],
        *,
        concurrency: int = 16,
        progress: ProgressArg = None,
    ) -> BatchResult:
        """Copy then delete each source; a failed copy leaves its source in place."""
        return self._pairs_batch("move", pairs, concurrency, progress)

    def _pairs_batch(self, kind: str, pairs: Union[Mapping[str, str], Iterable[tuple[str, str]]],
                     concurrency: int, progress: ProgressArg) -> BatchResult:
        items = _pair_items(pairs)
        return self._run_batch(kind, items, concurrency,
                               Progress(progress, len(items), "it", kind))

    def _run_batch(self, kind: str, items: list[tuple[Any, Any]], concurrency: int,
                   progress: Progress,
                   upload_options: Optional[dict[str, str]] = None) -> BatchResult:
        """Run every item through the batch engine; results in input order.
        ``upload_options`` (object headers) go with every upload."""
        operations = self._batch_operations()
        operations.upload_options = dict(upload_options or {})
        return run_batch(operations, kind, items, concurrency, progress,
                         threads=self.batch_in_threads)

    def _batch_operations(self) -> Operations:
        """How the batch engine does one item: here through the public one-item methods."""
        return PrimitiveOperations(self)

    @property
    def aio(self) -> AsyncStorage:
        """The async view of this adapter: every method as a coroutine with the same
        arguments, results and errors (see :mod:`perceptra_storage.aio`). This base
        runs the blocking methods in worker threads, so any custom adapter has one."""
        from .aio import AsyncStorage

        return AsyncStorage(self)

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections; the adapter rebuilds them if used again."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend={self.backend_name!r} " \
               f"config_keys={sorted(self.config)}>"

    def _operation(self, operation: str, key: Optional[str] = None) -> _Operation:
        """Run one public operation: translate its errors and log it at DEBUG, once."""
        return _Operation(self, operation, key)

    def _secret_values(self) -> tuple[str, ...]:
        """Credential values that messages must never contain."""
        return tuple(str(v) for v in self.credentials.values() if isinstance(v, str) and v)


class _Operation:
    """The context of :meth:`BaseStorageAdapter._operation`. A class rather than two
    nested generator-based context managers, which took about 4.6 us per call (a small
    local write is about 40 us); the credential values that messages must not contain
    are read only when an error is being typed."""

    __slots__ = ("adapter", "key", "operation", "start")

    def __init__(self, adapter: BaseStorageAdapter, operation: str,
                 key: Optional[str]) -> None:
        self.adapter = adapter
        self.operation = operation
        self.key = key
        self.start = time.perf_counter()

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        adapter, operation, key = self.adapter, self.operation, self.key
        if exc is None:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s %s %r ok in %.1f ms", adapter.backend_name, operation, key,
                             (time.perf_counter() - self.start) * 1000)
            return
        if not isinstance(exc, Exception):
            return  # KeyboardInterrupt, GeneratorExit...: not the store's error
        typed = typed_error(exc, adapter.backend_name, operation, key, adapter._secret_values)
        logger.debug("%s %s %r failed after %.1f ms: %s", adapter.backend_name, operation,
                     key, (time.perf_counter() - self.start) * 1000, type(typed).__name__)
        if typed is not exc:
            raise typed from exc


def _upload_items(items: Union[Mapping[str, Source], Iterable[tuple[Source, str]]]
                  ) -> list[tuple[str, Source]]:
    """``upload_files``'s items as ``(key, source)`` pairs."""
    if isinstance(items, Mapping):
        return list(items.items())
    return [(key, source) for source, key in items]


def _download_items(keys: Iterable[str], destination_dir: Union[str, os.PathLike[str]]
                    ) -> list[tuple[str, str]]:
    """``download_files``'s items: each key with its path under ``destination_dir``."""
    folder = os.fspath(destination_dir)
    return [(key, os.path.join(folder, *key.split("/")) if isinstance(key, str) else "")
            for key in keys]


def _pair_items(pairs: Union[Mapping[str, str], Iterable[tuple[str, str]]]
                ) -> list[tuple[str, str]]:
    """Copy or move pairs as ``(destination, source)`` items."""
    return [(destination, source) for source, destination in
            (pairs.items() if isinstance(pairs, Mapping) else pairs)]


def _refuse_same_key(source_key: str, destination_key: str, backend: str) -> None:
    """A move onto itself would copy the object over itself and then delete it."""
    if source_key == destination_key:
        raise StorageValidationError(
            f"{backend}: move {source_key!r}: source and destination are the same key",
            backend=backend, operation="move", key=source_key)


def _source_kept(error: StorageError, destination_key: str) -> StorageError:
    """The error of a delete that failed after a good copy, saying both objects exist."""
    return type(error)(f"{error.reason} (the copy at {destination_key!r} was made; the "
                       "source was kept)", backend=error.backend, operation="move",
                       key=error.key)


class _UploadOnClose(io.BytesIO):
    """Buffer for ``open(key, 'wb')`` on adapters that only have ``upload_file``.

    Stored on a clean close; dropped if the ``with`` block raised, so a failed
    write never replaces what was stored.
    """

    def __init__(self, adapter: BaseStorageAdapter, key: str,
                 options: Optional[dict[str, Any]] = None) -> None:
        super().__init__()
        self._adapter = adapter
        self._key = key
        self._options = options or {}

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            super().close()
            return
        self.close()

    def close(self) -> None:
        if not self.closed:
            self._adapter.upload_file(self.getvalue(), self._key, **self._options)
        super().close()


class StorageAdapter(Protocol):
    """The API every built-in backend offers: what ``get_storage_adapter`` returns for a
    backend name not known until run time.

    A protocol, not a base class: adapters written against the 0.1 contract subclass
    :class:`BaseStorageAdapter` with its narrower ``upload_file``/``download_file``
    signatures, which stay valid overrides there; the built-in adapters
    (:class:`~perceptra_storage.adapter.FsspecStorageAdapter`) satisfy this protocol.
    """

    config: dict[str, Any]
    credentials: dict[str, Any]

    @property
    def backend_name(self) -> str: ...

    def test_connection(self, timeout: float = 10) -> bool: ...

    def upload_file(self, file_obj: Source, key: str, content_type: Optional[str] = None,
                    metadata: Optional[dict[str, str]] = None, *,
                    progress: ProgressArg = None, checksum: bool = False,
                    cache_control: Optional[str] = None,
                    content_disposition: Optional[str] = None,
                    content_encoding: Optional[str] = None) -> str: ...

    @overload
    def download_file(self, key: str, destination: None = None, *,
                      progress: ProgressArg = None, checksum: bool = False) -> bytes: ...

    @overload
    def download_file(self, key: str, destination: Union[str, os.PathLike[str]], *,
                      progress: ProgressArg = None, checksum: bool = False) -> str: ...

    @overload
    def download_file(self, key: str, destination: _Writer, *,
                      progress: ProgressArg = None, checksum: bool = False) -> _Writer: ...

    def delete_file(self, key: str) -> bool: ...

    def file_exists(self, key: str) -> bool: ...

    def get_file_metadata(self, key: str) -> StorageObject: ...

    def list_files(self, prefix: str = "", max_results: int = 1000) -> list[StorageObject]: ...

    def iter_files(self, prefix: str = "") -> Iterator[StorageObject]: ...

    def generate_presigned_url(self, key: str, expiration: int = 3600,
                               method: str = "GET", *, content_type: Optional[str] = None,
                               metadata: Optional[dict[str, str]] = None,
                               cache_control: Optional[str] = None,
                               content_disposition: Optional[str] = None,
                               download_name: Optional[str] = None) -> PresignedUrl: ...

    def generate_presigned_post(self, key: str, expiration: int = 3600,
                                max_size: Optional[int] = None,
                                content_type: Optional[str] = None,
                                metadata: Optional[dict[str, str]] = None) -> PresignedPost: ...

    def set_cors(self, origins: Sequence[str], methods: Sequence[str] = ...,
                 headers: Sequence[str] = ..., max_age: int = 3600,
                 expose_headers: Sequence[str] = ...) -> None: ...

    def get_cors(self) -> list[CorsRule]: ...

    def get_public_url(self, key: str) -> Optional[str]: ...

    def open(self, key: str, mode: str = "rb", *, content_type: Optional[str] = None,
             metadata: Optional[dict[str, str]] = None, cache_control: Optional[str] = None,
             content_disposition: Optional[str] = None,
             content_encoding: Optional[str] = None) -> IO[bytes]: ...

    def copy_file(self, source_key: str, destination_key: str) -> str: ...

    def move_file(self, source_key: str, destination_key: str) -> str: ...

    def url(self, key: str) -> str: ...

    @property
    def storage_options(self) -> dict[str, Any]: ...

    @property
    def fs(self) -> AbstractFileSystem: ...

    def native_url(self, key: str) -> str: ...

    @property
    def native_storage_options(self) -> dict[str, Any]: ...

    def upload_files(self, items: Union[Mapping[str, Source], Iterable[tuple[Source, str]]], *,
                     concurrency: int = 16, progress: ProgressArg = None,
                     cache_control: Optional[str] = None,
                     content_disposition: Optional[str] = None,
                     content_encoding: Optional[str] = None) -> BatchResult: ...

    def download_files(self, keys: Iterable[str], destination_dir: Union[str, os.PathLike[str]],
                       *, concurrency: int = 16, progress: ProgressArg = None) -> BatchResult: ...

    def delete_files(self, keys: Iterable[str], *, concurrency: int = 16,
                     progress: ProgressArg = None, missing_ok: bool = False) -> BatchResult: ...

    def copy_files(self, pairs: Union[Mapping[str, str], Iterable[tuple[str, str]]], *,
                   concurrency: int = 16, progress: ProgressArg = None) -> BatchResult: ...

    def move_files(self, pairs: Union[Mapping[str, str], Iterable[tuple[str, str]]], *,
                   concurrency: int = 16, progress: ProgressArg = None) -> BatchResult: ...

    @property
    def aio(self) -> AsyncStorage: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None: ...
