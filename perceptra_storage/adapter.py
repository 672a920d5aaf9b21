"""The generic adapter: the whole contract, written once over any fsspec filesystem.

A backend subclasses :class:`FsspecStorageAdapter` and supplies only what is its
own: the schemas of its ``config`` and ``credentials`` dicts, the filesystem
those translate into (:meth:`_make_filesystem`), the root path inside it
(:meth:`_root`), and, where it can, a URL signer (:meth:`_sign`).  Key checks,
uploads, downloads, error translation and logging live here, so every backend
behaves the same; beside it are the listing half (:mod:`listing`), the batch
engine (:mod:`batch`), timeouts and retries (:mod:`resilience`) and the
file-object helpers (:mod:`files`).

Behaviour that talks to the service lives in the backend's filesystem, so every
route to the storage (this adapter, ``perceptra://``, pandas with
``storage_options``) gets it.  Besides fsspec's own calls, the adapter uses
these when the filesystem has them, and a generic fallback when it does not:

``pipe_file`` / ``put_file`` / ``open(path, "wb")`` with ``content_type=`` and ``metadata=``
    Store the object with that content type (default: from the key's extension)
    and exactly that user metadata (see :meth:`FsspecStorageAdapter._write_options`).
``object_info(path) -> dict``
    One request for the object's ``info`` with ``content_type`` and ``metadata``
    (or ``ContentType``/``Metadata``); raises a not-found error (any the error
    table types as not found) for a missing object.  Fallback: ``info``.
``probe(path) -> None``
    Raise unless ``path`` (root plus prefix) is reachable with these credentials;
    one attempt.  Fallback: ``isdir`` of the root.
``async _object_pages(path) -> AsyncIterator[list[dict]]``
    Info dicts (``name`` is the full path) of the objects whose path starts with
    ``path``, a plain string prefix, one page at a time in key order, no folder
    markers.  Fallback: one ``find`` (``flat_namespace``) or a sorted walk.
``object_entries(path) -> Iterator[dict]``
    The same as ``_object_pages`` for a blocking filesystem: info dicts of the
    objects under a plain string prefix, in key order, lazily.
``async _remove_many(paths) -> dict[str, BaseException]`` and ``bulk_delete_limit: int``
    Delete up to ``bulk_delete_limit`` paths in one request; return the error of
    each path not deleted (a path already gone counts as deleted); raise
    ``NotImplementedError`` when the store has no bulk delete (the batch then
    deletes key by key); any other error of the request as a whole is the answer
    for each of its paths.  Fallback: one ``_rm_file`` per key.
``_open_writer(path, **write_options) -> writer`` (asynchronous instances)
    A writer whose ``async write(data)`` sends the data as it comes (parts of a
    multipart upload, staged blocks) with memory bounded by about one part,
    ``async commit()`` stores the object, ``async abort()`` drops it (aborting an
    unfinished multipart upload): ``adapter.aio.open(key, "wb")``.  Fallback: the
    blocking ``open(path, "wb")``, driven from worker threads.
``release_connections() -> None``
    Close the filesystem's connections now (the adapter's ``close``). Fallback:
    they close when the filesystem is collected.
``resumes_cut_reads: bool``
    True when the SDK itself retries a download cut mid-body; otherwise the
    adapter retries it.
``verifies_uploads: bool``
    True when ``pipe_file`` and ``put_file`` take ``checksum=`` (the source's SHA-256,
    hex) and return True when the store itself verified the bytes it received
    against it; anything else, and filesystems without the flag, get the upload
    read back and hashed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import time
import typing
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from typing import IO, TYPE_CHECKING, Any, ClassVar, Optional, TypedDict, Union
from urllib.parse import quote

from .base import (
    BaseStorageAdapter,
    CorsRule,
    PresignedPost,
    PresignedUrl,
    Source,
    StorageObject,
    Writable,
    _refuse_same_key,
    _source_kept,
)
from .batch import FilesystemOperations, Operations
from .errors import (
    StorageAdapterError,
    StorageError,
    StorageNotFoundError,
    StorageOperationError,
    StorageTimeoutError,
    StorageValidationError,
    classify,
    translate_errors,
)
from .files import (
    GuardedFile,
    UploadPlan,
    check_writable,
    copy_into,
    expect_digest,
    hashed,
    sha256_of,
    staged,
    upload_source,
    write_stream,
)
from .info import stored_digest, to_object
from .listing import Listing
from .presign import PostOptions, SignOptions, cors_rule, post_options, sign_options
from .redaction import guard_sdk_logs
from .resilience import Resilience, ResilienceConfig, cut_read, within
from .transfer import Progress, ProgressArg
from .validation import (
    CHECKSUM_FIELD,
    validate_content_type,
    validate_expiration,
    validate_headers,
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

    from .aio import AsyncStorage

__all__ = ["EngineConfig", "FsspecStorageAdapter", "NoCredentials", "Resilience",
           "ResilienceConfig"]

ENGINES = ("fsspec", "obstore")
"""The transports an object-store backend can run on (``engine`` config field)."""

_Writer = typing.TypeVar("_Writer", bound=Writable)


class NoCredentials(TypedDict):
    """Backends that take no credentials accept only an empty dict (or None)."""


class EngineConfig(TypedDict, total=False):
    """The ``engine`` field of the s3, minio and azure backends' ``config``."""

    engine: typing.Literal["fsspec", "obstore"]
    """The transport under the adapter: 'fsspec' (s3fs or adlfs, the default) or
    'obstore' (obstore's Rust client: less CPU per request; needs
    ``pip install 'perceptra-storage[fast]'``; README, Choosing an engine)."""


def check_engine(config: Mapping[str, Any], backend: str) -> str:
    """The configured engine, refused unless known and, for 'obstore', installed."""
    engine = config.get("engine", "fsspec")
    if engine not in ENGINES:
        raise StorageValidationError(
            f"{backend}: config field 'engine' must be one of "
            f"{', '.join(map(repr, ENGINES))}, not {engine!r}", backend=backend)
    if engine == "obstore" and not _importable("obstore"):
        raise StorageAdapterError(
            "engine 'obstore' needs obstore, which is not installed; run: "
            "pip install 'perceptra-storage[fast]'", backend=backend)
    return str(engine)


class FsspecStorageAdapter(Listing, BaseStorageAdapter):
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
    metadata_hyphens: ClassVar[bool] = False
    """Whether metadata names may contain '-': only where the store keeps '-' and '_'
    apart (Ceph's RADOS Gateway reports both as '-'; Azure allows neither '-')."""

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
                f"backend needs {', '.join(missing)}, which is not "
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

    def _write_options(self, how: str, content_type: str, metadata: dict[str, str],
                       headers: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
        """Keyword arguments that store ``content_type``, ``metadata`` and the object
        ``headers`` (``cache_control``, ``content_disposition``, ``content_encoding``)
        on a write through the fsspec call ``how`` (``pipe_file``, ``put_file`` or
        ``open``).

        Every filesystem of this package takes these plain keywords and translates
        them itself (so plain fsspec writes carry them too); a third-party backend
        whose filesystem spells them otherwise overrides this.
        """
        return {"content_type": content_type, "metadata": metadata, **(headers or {})}

    def _sign(self, path: str, key: str, expiration: int, method: str,
              options: SignOptions) -> PresignedUrl:
        """A signed URL for ``path`` carrying ``options``; backends that cannot sign
        explain why."""
        raise StorageOperationError(
            "this backend cannot sign URLs", backend=self.backend_name,
            operation="presign", key=key)

    def _sign_post(self, path: str, key: str, expiration: int,
                   options: PostOptions) -> PresignedPost:
        """An upload policy for ``path``; backends without POST policies explain why."""
        raise StorageOperationError(
            f"{self.backend_name} has no POST upload policies; use "
            "generate_presigned_url(key, method='PUT', content_type=...) instead",
            backend=self.backend_name, operation="presign_post", key=key)

    def _cors(self, rules: Optional[list[CorsRule]]) -> list[CorsRule]:
        """Set the store's CORS rules (when ``rules`` is a list) or read them (None)."""
        raise StorageOperationError(
            f"{self.backend_name} has no cross-origin (CORS) settings: browsers cannot "
            "reach it directly", backend=self.backend_name, operation="cors")

    def _cut_read(self, error: BaseException) -> bool:
        """Whether a failed download should be tried again by the adapter (not when
        the filesystem's SDK already resumes cut reads)."""
        return not getattr(self.filesystem, "resumes_cut_reads", False) and cut_read(error)

    def _probe(self) -> None:
        """Raise unless the root is reachable; :meth:`test_connection` bounds its time."""
        fs = self.filesystem
        probe = getattr(fs, "probe", None)
        if probe is not None:
            probe(self._base())
            return
        root = self._root()
        if not fs.isdir(root):
            raise StorageNotFoundError(f"root {root!r} does not exist")

    # -- the filesystem ---------------------------------------------------------------

    @property
    def filesystem(self) -> AbstractFileSystem:
        """The backend's own filesystem (not rooted), built on first use."""
        fs = self._fs
        if fs is not None and self._fs_pid == _pid:
            return fs  # built in this process: no lock, no getpid system call
        with self._lock:
            if self._fs is None or self._fs_pid != os.getpid():
                with translate_errors(self.backend_name, "connect",
                                      secrets=self._secret_values()):
                    self._fs = self._make_filesystem()
                guard_sdk_logs(self, self._secret_values())
                self._fs_pid = os.getpid()
            return self._fs

    # url(), storage_options and fs: the perceptra:// route (fsspec_protocol.py) comes
    # from BaseStorageAdapter; the filesystem's own URL stays available as native_*.

    def native_url(self, key: str) -> str:
        """The wrapped library's own URL for ``key`` (``s3://bucket/...``, ``abfs://...``),
        for tools outside fsspec (DuckDB, Spark, polars' native readers) with
        :attr:`native_storage_options`. It bypasses this adapter: no prefix
        confinement, retries or typed errors; prefer :meth:`url` within fsspec."""
        with self._operation("url", key if isinstance(key, str) else None):
            key = self._check_key(key)
            protocol = self._native_filesystem().protocol
            name = protocol if isinstance(protocol, str) else protocol[0]
            return f"{name}://{self._path(key)}"

    @property
    def native_storage_options(self) -> dict[str, Any]:
        """The wrapped filesystem's own options (credentials included), for
        :meth:`native_url`: those of the wrapped library's class (s3fs, adlfs), which
        takes none of ``_OWN_OPTIONS``."""
        options = dict(self._native_filesystem().storage_options)
        for own in _OWN_OPTIONS:
            options.pop(own, None)
        return options

    engine = "fsspec"
    """The transport under the adapter; the s3, minio and azure backends read it from
    their ``engine`` config field."""

    def _native_filesystem(self) -> AbstractFileSystem:
        """The filesystem of the wrapped library that :meth:`native_url` and
        :attr:`native_storage_options` describe: this adapter's own, unless its engine
        is not an fsspec library (``engine='obstore'``, whose options no other tool
        reads): then the one engine 'fsspec' would use, built once, not connected."""
        if self.engine == "fsspec":
            return self.filesystem
        fs: Optional[AbstractFileSystem] = self.__dict__.get("_native_fs")
        if fs is None:
            fs = self._native_fs = self._fsspec_engine_filesystem()
        return fs

    def _fsspec_engine_filesystem(self) -> AbstractFileSystem:
        """The fsspec library's filesystem (s3fs, adlfs) of a backend with engines."""
        raise NotImplementedError(f"{self.backend_name} has no other engine")

    def _call(self, method: str, *args: Any, deadline: Optional[float] = None,
              **kwargs: Any) -> Any:
        """``filesystem.<method>(...)``, given at most ``operation_timeout`` seconds on an
        async filesystem, whose event loop then cancels it: the SDKs bound each request,
        not a transfer that keeps trickling or a wait they never arm a timer for.  With
        ``deadline`` (``time.monotonic()``, from :meth:`Resilience.deadline` when the
        public call began), only the time left until then: one limit for the whole
        call, the adapter's own retries included."""
        fs = self.filesystem
        limit = self.resilience.operation_timeout
        if not (limit and getattr(fs, "async_impl", False)):
            return getattr(fs, method)(*args, **kwargs)
        if deadline is not None:
            limit = deadline - time.monotonic()
            if limit <= 0:
                raise StorageTimeoutError("not done within operation_timeout")
        return getattr(fs, method)(*args, timeout=limit, **kwargs)

    @property
    def aio(self) -> AsyncStorage:
        """The async view (see :mod:`perceptra_storage.aio`): on an async filesystem its
        coroutines run on the caller's event loop; otherwise in worker threads. One view
        per adapter, which keeps one filesystem per running loop."""
        view = self.__dict__.get("_aio")
        if view is None:
            from .aio import view_of

            built = view_of(self)  # outside the lock: it reads self.filesystem
            with self._lock:
                view = self.__dict__.setdefault("_aio", built)
        return typing.cast("AsyncStorage", view)

    def close(self) -> None:
        with self._lock:
            fs, self._fs = self._fs, None
        # A filesystem whose connections outlive its last reference in a cycle or a kept
        # traceback (the obstore engine's stores) drops them now.
        release = getattr(fs, "release_connections", None)
        if release is not None:
            release()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock")
        state.pop("_aio", None)
        state.pop("_native_fs", None)
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

    def _key_of(self, path: str, start: Optional[int] = None) -> str:
        """The key of a filesystem path; ``start``: :meth:`_key_start`, when a listing
        found it once for all its entries."""
        return path.strip("/")[self._key_start() if start is None else start:]

    def _key_start(self) -> int:
        """Where the key starts in a filesystem path stripped of '/' (after the base and
        its '/'): a listing finds it once, not once per entry."""
        base = self._base().strip("/")
        return len(base) + 1 if base else 0

    def _check_key(self, key: Any, replaced: bool = False) -> str:
        """Validate a key by the common rules and any the backend adds. ``replaced``:
        the key is the target of a write, which replaces whatever is stored under it
        (the local backend then does not follow a symlink of that name)."""
        return validate_key(key, self.backend_name)

    # -- metadata ------------------------------------------------------------------

    def _head(self, path: str) -> dict[str, Any]:
        """The fsspec ``info`` of one path, with content type and metadata when known."""
        if hasattr(self.filesystem, "object_info"):
            return dict(self._call("object_info", path))
        return dict(self.filesystem.info(path))

    def _file_info(self, key: str) -> dict[str, Any]:
        """``_head`` of a key that must be a file: directories count as missing."""
        return self._require_file(key, self._head(self._path(key)))

    def _require_file(self, key: str, info: Mapping[str, Any]) -> dict[str, Any]:
        """``info`` of ``key`` if it describes a file; a directory counts as missing."""
        if info.get("type") != "file":
            raise StorageNotFoundError("it is a directory, not a file",
                                       backend=self.backend_name, key=key)
        return dict(info)

    # -- the contract --------------------------------------------------------------

    def test_connection(self, timeout: float = 10) -> bool:
        """True when the root is reachable; raises a typed error within ``timeout`` s."""
        seconds = validate_positive(timeout, "timeout", self.backend_name)
        with self._operation("test_connection"):
            within(seconds, self._probe)
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
        cache_control: Optional[str] = None,
        content_disposition: Optional[str] = None,
        content_encoding: Optional[str] = None,
    ) -> str:
        """Store ``file_obj`` under ``key``; ``progress`` counts bytes (see transfer.py).

        ``checksum=True`` stores the SHA-256 of the source with the object, and has
        the store check the bytes it received against it where the filesystem can
        ask it to (``verifies_uploads``: S3's ``x-amz-checksum-sha256``, Azure's
        per-request MD5); otherwise, or when the store ignored the request, the
        object is read back and hashed (twice the traffic). Downloads with
        ``checksum=True`` check against the stored SHA-256. ``cache_control``,
        ``content_disposition`` and ``content_encoding`` are stored as the object's
        HTTP headers (served with every download, reported by ``get_file_metadata``);
        ``content_encoding`` describes the bytes as given (upload gzip data with
        ``'gzip'``): nothing is compressed or decompressed here.
        """
        with self._operation("upload", key if isinstance(key, str) else None):
            plan = self._plan_upload(
                file_obj, key, content_type, metadata, checksum, headers={
                    "cache_control": cache_control, "content_disposition": content_disposition,
                    "content_encoding": content_encoding})
            sink = Progress(progress, plan.total, "B", plan.key)
            try:
                verified = self._send(plan, sink)
            finally:
                sink.close()
            if plan.digest is not None and not verified:
                with self.filesystem.open(plan.path, "rb") as stored:
                    expect_digest(sha256_of(stored), plan.digest, plan.key, "stored object")
        return plan.key

    def _plan_upload(self, file_obj: Any, key: Any, content_type: Any, metadata: Any,
                     checksum: bool = False,
                     headers: Optional[Mapping[str, Any]] = None) -> UploadPlan:
        """Validate and decide everything an upload needs before a byte moves, for every
        route (this adapter, ``adapter.aio``, the batch engine): key, content type,
        metadata, object ``headers``; with ``checksum``, hash the source (a file object
        is spooled so it can be read twice: blocking work)."""
        key = self._check_key(key, replaced=True)
        ctype = validate_content_type(content_type, key, self.backend_name)
        meta = validate_metadata(metadata, self.backend_name, self.metadata_hyphens)
        stored = validate_headers(headers or {}, self.backend_name)
        # The size of the caller's source: a spooled copy below has none.
        source, total = upload_source(file_obj, self.backend_name, key)
        digest = None
        if checksum:
            digest, source = hashed(source)
            meta[CHECKSUM_FIELD] = digest
        return UploadPlan(key, self._path(key), source,
                          lambda how: self._write_options(how, ctype, meta, stored), digest,
                          total)

    def _send(self, plan: UploadPlan, sink: Progress) -> bool:
        """Send a planned upload through the blocking filesystem; True when the store
        verified the bytes against ``plan.digest``. A file object is copied in chunks
        into the filesystem's writer (a multipart upload on object stores)."""
        call = plan.request(self.filesystem, sink)
        if call is None:
            write_stream(self.filesystem, plan.path, typing.cast(IO[bytes], plan.source),
                         plan.options, sink)
            return False
        method, args, kwargs, sent = call
        answer = self._call(method, *args, **kwargs)
        sink.advance(sent)
        return plan.verified(self.filesystem, answer)

    @typing.overload
    def download_file(self, key: str, destination: None = None, *,
                      progress: ProgressArg = None, checksum: bool = False) -> bytes: ...

    @typing.overload
    def download_file(self, key: str, destination: Union[str, os.PathLike[str]], *,
                      progress: ProgressArg = None, checksum: bool = False) -> str: ...

    @typing.overload
    def download_file(self, key: str, destination: _Writer, *,
                      progress: ProgressArg = None, checksum: bool = False) -> _Writer: ...

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
            deadline = self.resilience.deadline()
            expected = stored_digest(self._file_info(key)) if checksum else None
            sink = Progress(progress, None, "B", key)
            try:
                if destination is None:
                    data: bytes = self.resilience.retry(
                        lambda: self._call("cat_file", path, deadline=deadline),
                        self._cut_read, deadline)
                    sink.advance(len(data))
                    if expected is not None:
                        expect_digest(hashlib.sha256(data).hexdigest(), expected, key,
                                       "downloaded bytes")
                    return data
                if isinstance(destination, (str, os.PathLike)):
                    with staged(os.fspath(destination), key, self.backend_name) as temp:
                        self.resilience.retry(lambda: self._call(
                            "get_file", path, temp, callback=sink.fsspec_callback(),
                            deadline=deadline), self._cut_read, deadline)
                        if expected is not None:
                            with open(temp, "rb") as written:
                                expect_digest(sha256_of(written), expected, key,
                                               "downloaded file")
                    return str(os.fspath(destination))
                check_writable(destination)
                with self.filesystem.open(path, "rb") as source:
                    digest = copy_into(source, destination, sink, deadline)
                if expected is not None:
                    expect_digest(digest, expected, key, "downloaded stream")
                return destination
            finally:
                sink.close()

    def _batch_operations(self) -> Operations:
        """On an async filesystem (s3fs, adlfs), batch items run as its coroutines on
        its event loop; otherwise through the one-item methods, in threads."""
        fs = self.filesystem
        if getattr(fs, "async_impl", False):
            return FilesystemOperations(self, fs)
        return super()._batch_operations()

    def delete_file(self, key: str) -> bool:
        with self._operation("delete", key if isinstance(key, str) else None):
            key = self._check_key(key)
            self._file_info(key)
            try:
                self._call("rm_file", self._path(key))
            except Exception as exc:
                # It existed a moment ago (above), so a 404 now means it is gone: the SDK
                # retried a DELETE whose first answer was lost, or another client won.
                if not issubclass(classify(exc)[0], StorageNotFoundError):
                    raise
        return True

    def file_exists(self, key: str) -> bool:
        with self._operation("exists", key if isinstance(key, str) else None):
            key = self._check_key(key)
            try:
                return self._head(self._path(key)).get("type") == "file"
            except Exception as exc:
                if issubclass(classify(exc)[0], StorageNotFoundError):
                    return False
                raise

    def get_file_metadata(self, key: str) -> StorageObject:
        with self._operation("stat", key if isinstance(key, str) else None):
            key = self._check_key(key)
            return to_object(key, self._file_info(key), full=True)

    def list_files(self, prefix: str = "", max_results: int = 1000) -> list[StorageObject]:
        if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 0:
            raise StorageValidationError(
                f"max_results must be an int >= 0, not {max_results!r}",
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
            yield to_object(key, info, full=False)

    def generate_presigned_url(
        self, key: str, expiration: int = 3600, method: str = "GET", *,
        content_type: Optional[str] = None, metadata: Optional[dict[str, str]] = None,
        cache_control: Optional[str] = None, content_disposition: Optional[str] = None,
        download_name: Optional[str] = None,
    ) -> PresignedUrl:
        """A URL that lets a client without credentials use ``key`` for a while.

        PUT: ``content_type``, ``metadata``, ``cache_control`` and
        ``content_disposition`` (or ``download_name``) are what the object will be
        stored with; they become signed headers where the service signs headers
        (``PresignedUrl.headers`` lists exactly what the client must send, and
        ``headers_signed`` says whether another value is refused). GET and HEAD:
        ``content_type``, ``cache_control`` and ``content_disposition`` override the
        response's headers; ``download_name`` makes the browser save the file under
        that name (non-ASCII names as RFC 5987 ``filename*``). DELETE takes none.
        """
        with self._operation("presign", key if isinstance(key, str) else None):
            key = self._check_key(key)
            seconds = validate_expiration(expiration, self.backend_name)
            verb = validate_method(method, self.backend_name)
            options = sign_options(verb, self.backend_name, self.metadata_hyphens,
                                   content_type=content_type, metadata=metadata,
                                   cache_control=cache_control,
                                   content_disposition=content_disposition,
                                   download_name=download_name)
            return self._sign(self._path(key), key, seconds, verb, options)

    def generate_presigned_post(
        self, key: str, expiration: int = 3600, max_size: Optional[int] = None,
        content_type: Optional[str] = None, metadata: Optional[dict[str, str]] = None,
    ) -> PresignedPost:
        """An upload policy for a browser form (or ``fetch`` with ``FormData``): the
        file may be at most ``max_size`` bytes, must be sent with ``content_type``
        (exact, or any type under a prefix given as ``'image/*'``) and is stored with
        ``metadata``, under ``key`` and nothing else. s3 and minio only; Azure has no
        POST policies (use a PUT URL, see README "Browser uploads")."""
        with self._operation("presign_post", key if isinstance(key, str) else None):
            key = self._check_key(key)
            seconds = validate_expiration(expiration, self.backend_name)
            options = post_options(self.backend_name, self.metadata_hyphens, key,
                                   max_size=max_size, content_type=content_type,
                                   metadata=metadata)
            return self._sign_post(self._path(key), key, seconds, options)

    def set_cors(
        self, origins: Sequence[str], methods: Sequence[str] = ("GET", "PUT", "POST", "HEAD"),
        headers: Sequence[str] = ("*",), max_age: int = 3600,
        expose_headers: Sequence[str] = ("ETag",),
    ) -> None:
        """Let pages of ``origins`` call the store from a browser (S3: the bucket's CORS
        rules; Azure: the account's blob service rules, shared by its containers).
        Replaces the rules there; ``origins=[]`` removes them."""
        with self._operation("cors"):
            rule = cors_rule(origins, methods, headers, max_age, expose_headers,
                             self.backend_name)
            self._cors([rule] if rule is not None else [])

    def get_cors(self) -> list[CorsRule]:
        """The store's CORS rules ([] when there are none)."""
        with self._operation("cors"):
            return self._cors(None)

    def get_public_url(self, key: str) -> Optional[str]:
        """A permanent URL for ``key`` where the backend has one (see
        :meth:`_public_url`); None otherwise."""
        with self._operation("public_url", key if isinstance(key, str) else None):
            return self._public_url(self._check_key(key))

    def _public_url(self, key: str) -> Optional[str]:
        """``public_base_url`` + the key's path in the bucket, when configured."""
        base = self.config.get("public_base_url")
        if not base:
            return None
        inner = f"{self.prefix}/{key}" if self.prefix else key
        return f"{str(base).rstrip('/')}/{quote(inner)}"

    # -- additions with fast paths -------------------------------------------------

    def open(self, key: str, mode: str = "rb", *, content_type: Optional[str] = None,
             metadata: Optional[dict[str, str]] = None, cache_control: Optional[str] = None,
             content_disposition: Optional[str] = None,
             content_encoding: Optional[str] = None) -> IO[bytes]:
        """A binary file object for ``key``: ``rb`` reads lazily (seekable), ``wb``
        stores the object when closed, and stores nothing if the ``with`` block fails;
        a write is stored with the content type, metadata and object headers given
        (as ``upload_file`` stores them)."""
        with self._operation("open", key if isinstance(key, str) else None):
            key = self._check_key(key, replaced=mode == "wb")
            options = self._open_options(key, mode, {
                "content_type": content_type, "metadata": metadata,
                "cache_control": cache_control, "content_disposition": content_disposition,
                "content_encoding": content_encoding})
            path = self._path(key)
            if options is None:
                self._file_info(key)
                raw = self.filesystem.open(path, "rb")
            else:
                raw = self.filesystem.open(path, "wb", **options)
        return typing.cast(IO[bytes], GuardedFile(raw, self, key, mode))

    def _open_options(self, key: str, mode: str,
                      written: Mapping[str, Any]) -> Optional[dict[str, Any]]:
        """Check ``open``'s mode and what a write stores (``written``: content type,
        metadata, object headers) before anything is opened, for this adapter and
        ``adapter.aio``: the write options of a ``wb`` open, None for ``rb`` (which
        refuses any of them)."""
        if mode not in ("rb", "wb"):
            raise StorageValidationError(f"mode must be 'rb' or 'wb', not {mode!r}")
        if mode == "rb":
            given = sorted(name for name, value in written.items() if value is not None)
            if given:
                raise StorageValidationError(
                    f"{', '.join(given)}: only a write (mode 'wb') stores these")
            return None
        return self._write_options(
            "open", validate_content_type(written.get("content_type"), key, self.backend_name),
            validate_metadata(written.get("metadata"), self.backend_name, self.metadata_hyphens),
            validate_headers(written, self.backend_name))

    def copy_file(self, source_key: str, destination_key: str) -> str:
        """Copy inside the store, keeping content type and metadata."""
        with self._operation("copy", source_key if isinstance(source_key, str) else None):
            source_key = self._check_key(source_key)
            destination_key = self._check_key(destination_key, replaced=True)
            self._file_info(source_key)
            self._call("cp_file", self._path(source_key), self._path(destination_key))
        return destination_key

    def move_file(self, source_key: str, destination_key: str) -> str:
        """Move one object: on a local disk through the filesystem's own ``mv`` (which
        carries the stored properties along, wherever the backend keeps them); on object
        stores a server-side copy, then a delete of the source. If that delete fails,
        its typed error is raised and both objects stay."""
        from fsspec.implementations.local import LocalFileSystem

        with self._operation("move", source_key if isinstance(source_key, str) else None):
            source_key = self._check_key(source_key)
            destination_key = self._check_key(destination_key, replaced=True)
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


_pid = os.getpid()
"""This process's id, renewed in a forked child, so :attr:`FsspecStorageAdapter.filesystem`
can tell a filesystem inherited over ``fork`` without asking the kernel on every call."""


def _renew_pid() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_renew_pid)


_OWN_OPTIONS = ("resilience", "dashed_metadata_names")
"""Options of this package's filesystem subclasses that the wrapped library's class
does not take."""


def _importable(module: str) -> bool:
    """Whether ``module`` is installed; a dotted name whose parent is missing is not
    (``find_spec`` raises for it rather than answering None)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
