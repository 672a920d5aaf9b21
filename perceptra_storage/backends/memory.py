"""In-memory backend: the whole contract, no disk and no server.

For notebooks and for testing code that uses this package, so it behaves like an
object store at any size: a write costs the same with ten objects stored or a
million (no scan of the store), listings are lazy and sorted, ``a`` and ``a/b``
can both be objects (as on S3 and Azure), every write gets a new etag, and
``last_modified`` never goes backwards within a store.  :attr:`MemoryStorageAdapter.faults`
makes chosen operations fail or run slowly, to test how code copes with a store
that does.

Each adapter has its own store unless ``store_name`` names one to share (like a
bucket); a private store travels with the adapter when it is pickled, as an
independent copy, and a named one rejoins the store of that name in the
receiving process.  Nothing here is reachable from outside the process, so there
are no public or presigned URLs; ``url()`` and ``storage_options`` work inside
the process (pandas, Dask's threaded scheduler) through ``perceptra://``; the
filesystem's own ``perceptra-memory`` protocol is ``native_url()``.
"""

from __future__ import annotations

import copy
import errno
import fnmatch
import io
import threading
import time
import typing
import uuid
import weakref
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Optional, TypedDict, Union

import fsspec
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

from ..adapter import FsspecStorageAdapter
from ..base import PresignedUrl, _Operation
from ..errors import StorageConnectionError, StorageOperationError, StorageValidationError
from ..presign import SignOptions
from ..validation import OBJECT_HEADERS

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["Fault", "Faults", "MemoryConfig", "MemoryStorageAdapter"]

PROTOCOL = "perceptra-memory"


class MemoryConfig(TypedDict, total=False):
    """``config`` of the ``memory`` backend."""

    store_name: str
    """Share objects with every adapter of this process given the same name (like a
    bucket); without it the adapter has a private store."""
    prefix: str
    """Key prefix this adapter is confined to."""


# -- fault injection ----------------------------------------------------------------------

OPERATIONS = frozenset({"upload", "download", "delete", "exists", "stat", "list", "copy",
                        "move", "open", "test_connection"})
"""The operations a fault can hit: the adapter's operations that reach the store (their
names are the ``operation`` of the errors they raise)."""

ErrorSpec = Union[type[BaseException], BaseException, None]


class Fault:
    """One rule of :class:`Faults`: which calls it hits, what it does to them, and how
    often it has.  A context manager: leaving the ``with`` block removes it."""

    def __init__(self, faults: Faults, error: ErrorSpec, operations: Optional[frozenset[str]],
                 key: Optional[str], times: Optional[int], delay: float) -> None:
        self._faults = faults
        self.error = error
        """The exception class or instance raised; None for a delay alone."""
        self.operations = operations
        """Operations hit; None for all of :data:`OPERATIONS`."""
        self.key = key
        """``fnmatch`` pattern of the keys hit (a listing's key is its prefix); None
        for any call, with or without a key."""
        self.remaining = times
        """Calls still to hit; None for every matching call until removed."""
        self.delay = delay
        """Seconds each hit call waits first."""
        self.fired = 0
        """Calls hit so far."""

    def matches(self, operation: str, key: Optional[str]) -> bool:
        if self.remaining == 0:
            return False
        if self.operations is not None and operation not in self.operations:
            return False
        return self.key is None or (key is not None and fnmatch.fnmatchcase(key, self.key))

    def exception(self) -> BaseException:
        """A fresh exception to raise for one hit (never the same object twice, so
        tracebacks and context do not pile up on it)."""
        if isinstance(self.error, BaseException):
            return copy.copy(self.error)
        assert self.error is not None
        return self.error("injected fault (adapter.faults)")

    def remove(self) -> None:
        """Stop injecting this fault."""
        self._faults._remove(self)

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        error = getattr(self.error, "__name__", None) or type(self.error).__name__
        return (f"<Fault error={error} operations={sorted(self.operations or ['*'])} "
                f"key={self.key!r} remaining={self.remaining} delay={self.delay} "
                f"fired={self.fired}>")


class Faults:
    """Failures and delays injected into a memory store's operations, for testing how
    code that uses this package copes with a store that fails: retry loops, fallbacks,
    timeouts, error pages.

    Every adapter on the store sees them (with ``store_name``, also the adapters the
    code under test builds itself).  A hit call raises its error before it touches
    the store, through the same translation as any backend's errors, so it carries
    ``backend``, ``operation`` and ``key`` like a real failure; an error class of this
    package is raised as ``cls("injected fault (adapter.faults)")``, another exception
    (``ConnectionResetError()``, ``TimeoutError``) as the typed error the rule table
    makes of it.  Rules are checked in the order they were added: every matching
    delay waits, and the first matching failure raises.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []

    def fail(self, error: Union[type[BaseException], BaseException] = StorageConnectionError,
             *, operation: Union[str, Iterable[str], None] = None, key: Optional[str] = None,
             times: Optional[int] = 1, delay: float = 0.0) -> Fault:
        """Make the next ``times`` matching calls (every one, with ``times=None``) raise
        ``error``, after waiting ``delay`` seconds. ``operation`` is one of
        :data:`OPERATIONS` or several; ``key`` an ``fnmatch`` pattern (``'reports/*'``)."""
        if not (isinstance(error, BaseException) or
                (isinstance(error, type) and issubclass(error, BaseException))):
            raise StorageValidationError(
                f"faults: error must be an exception class or instance, not {error!r}",
                backend="memory")
        return self._add(error, operation, key, times, delay)

    def fail_next(self, count: int = 1,
                  error: Union[type[BaseException], BaseException] = StorageConnectionError
                  ) -> Fault:
        """Make the next ``count`` calls of any operation raise ``error``."""
        return self.fail(error, times=count)

    def delay(self, seconds: float, *, operation: Union[str, Iterable[str], None] = None,
              key: Optional[str] = None, times: Optional[int] = None) -> Fault:
        """Make matching calls wait ``seconds`` before they run (every one until removed,
        or the next ``times``): a slow store, for timeouts and progress in your code."""
        return self._add(None, operation, key, times, seconds)

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._rules.clear()

    @property
    def active(self) -> list[Fault]:
        """The faults still in place, in the order they were added."""
        with self._lock:
            return list(self._rules)

    def _add(self, error: ErrorSpec, operation: Union[str, Iterable[str], None],
             key: Optional[str], times: Optional[int], delay: float) -> Fault:
        operations = None if operation is None else \
            frozenset([operation] if isinstance(operation, str) else operation)
        unknown = sorted((operations or set()) - OPERATIONS)
        if unknown:
            raise StorageValidationError(
                f"faults: unknown operation(s) {', '.join(map(repr, unknown))}; known: "
                f"{', '.join(sorted(OPERATIONS))}", backend="memory")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int)
                                  or times < 1):
            raise StorageValidationError(f"faults: times must be an int >= 1 or None, not "
                                         f"{times!r}", backend="memory")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            raise StorageValidationError(f"faults: delay must be seconds >= 0, not {delay!r}",
                                         backend="memory")
        if key is not None and not isinstance(key, str):
            raise StorageValidationError(f"faults: key must be a str pattern, not {key!r}",
                                         backend="memory")
        rule = Fault(self, error, operations, key, times, float(delay))
        with self._lock:
            self._rules.append(rule)
        return rule

    def _remove(self, rule: Fault) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def apply(self, operation: str, key: Optional[str]) -> None:
        """Wait and raise as the faults say for one call of ``operation`` on ``key``."""
        if not self._rules or operation not in OPERATIONS:
            return
        wait = 0.0
        failure: Optional[Fault] = None
        with self._lock:
            for rule in self._rules:
                if (rule.error is not None and failure is not None) or \
                        not rule.matches(operation, key):
                    continue
                rule.fired += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                wait += rule.delay
                if rule.error is not None:
                    failure = rule
            self._rules = [rule for rule in self._rules if rule.remaining != 0]
        if wait:
            time.sleep(wait)
        if failure is not None:
            raise failure.exception()


# -- the store ------------------------------------------------------------------------------


class _Store(dict[str, Any]):
    """One store's objects by path, with what an object store keeps beside them: an
    index of the paths in order, the clock of ``last_modified`` and the faults.

    A write is one dict assignment plus, for a new path, one append: the index is
    brought up to date when a listing needs it (by one merge of the new paths into
    the sorted ones), so writes never pay for the store's size.  Only ``store[path]
    = blob`` adds paths (all that fsspec's memory filesystem uses); deleted paths are
    dropped from the index at its next update and skipped by listings until then.
    Weakly registered by id, so ``perceptra-memory://`` URLs find it.
    """

    def __init__(self, objects: Optional[dict[str, Any]] = None) -> None:
        super().__init__(objects or {})
        self._lock = threading.Lock()
        self._sorted: list[str] = sorted(self)
        self._added: list[str] = []
        self._last = datetime.fromtimestamp(0, tz=UTC)
        self.faults = Faults()

    def __setitem__(self, path: str, blob: Any) -> None:
        with self._lock:
            if path not in self:
                self._added.append(path)
            super().__setitem__(path, blob)

    def __reduce__(self) -> Any:
        """Pickled as its objects alone (locks and faults belong to this process)."""
        return _Store, (dict(self),)

    def tick(self) -> datetime:
        """The time of a write: now, but always later than the store's previous write,
        so ``last_modified`` orders writes even if the clock steps back."""
        with self._lock:
            now = datetime.now(UTC)
            self._last = now if now > self._last else self._last + timedelta(microseconds=1)
            return self._last

    def _index(self) -> list[str]:
        """Every path in order (a list that is replaced, never changed, so a listing
        in progress keeps its snapshot)."""
        with self._lock:
            if self._added or len(self._sorted) > len(self):
                added = set(self._added)
                merged = [path for path in self._sorted if path in self and path not in added]
                merged += [path for path in added if path in self]
                merged.sort()  # two sorted runs: a linear merge for Timsort
                self._sorted = merged
                self._added = []
            return self._sorted

    def paths(self, prefix: str) -> Iterator[str]:
        """Stored paths that start with ``prefix``, in order, lazily."""
        index = self._index()
        for position in range(bisect_left(index, prefix), len(index)):
            path = index[position]
            if not path.startswith(prefix):
                return
            if path in self:
                yield path

    def has_prefix(self, prefix: str) -> bool:
        return next(self.paths(prefix), None) is not None


_STORES: weakref.WeakValueDictionary[str, _Store] = weakref.WeakValueDictionary()
_NAMED: dict[str, _Store] = {}
_NAMED_LOCK = threading.Lock()


class _FaultyOperation(_Operation):
    """An operation of the memory backend: the store's injected faults apply first,
    typed and logged like any failure of the call."""

    def __enter__(self) -> None:
        adapter = typing.cast("MemoryStorageAdapter", self.adapter)
        try:
            adapter._store.faults.apply(self.operation, self.key)
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise


class MemoryStorageAdapter(FsspecStorageAdapter):
    """Objects in a dict owned by the adapter (or shared by name)."""

    backend_name = "memory"
    batch_in_threads = False
    config_schema = MemoryConfig
    metadata_hyphens = True

    def _check_config(self) -> None:
        self._attach(_Store())

    def _attach(self, store: _Store) -> None:
        """Use the named store if there is one (created from ``store`` if new)."""
        name = self.config.get("store_name")
        if name is not None:
            with _NAMED_LOCK:
                store = _NAMED.setdefault(name, store)
        self._store = store
        self._store_id = f"named-{name}" if name is not None else uuid.uuid4().hex
        _STORES[self._store_id] = store

    @property
    def faults(self) -> Faults:
        """Failures and delays to inject into this store's operations (see
        :class:`Faults`); shared by every adapter on the store."""
        return self._store.faults

    def _operation(self, operation: str, key: Optional[str] = None) -> _Operation:
        return _FaultyOperation(self, operation, key)

    def _make_filesystem(self) -> AbstractFileSystem:
        return _MemoryFileSystem(store_id=self._store_id, skip_instance_cache=True)

    def _root(self) -> str:
        return "/store"

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._attach(self._store)

    def native_url(self, key: str) -> str:
        with self._operation("url", key if isinstance(key, str) else None):
            return f"{PROTOCOL}://{self._path(self._check_key(key)).lstrip('/')}"

    @property
    def native_storage_options(self) -> dict[str, Any]:
        return {"store_id": self._store_id}

    def _rebuilt_by_name(self) -> bool:
        """Only a named store is reached again from the config; a private one is passed
        as the adapter itself."""
        return "store_name" in self.config and super()._rebuilt_by_name()

    def _probe(self) -> None:
        self.filesystem  # noqa: B018 - fails if the store is gone

    def _sign(self, path: str, key: str, expiration: int, method: str,
              options: SignOptions) -> PresignedUrl:
        raise StorageOperationError(
            "memory: objects live inside this Python process, so no URL can reach them; "
            "use adapter.open() or adapter.download_file()")


def _missing(path: str) -> FileNotFoundError:
    """A not-found error whose message is not the path (errors show ``strerror``)."""
    return FileNotFoundError(errno.ENOENT, "no such object", path)


class _Blob(MemoryFile):  # type: ignore[misc]
    """A stored object: its bytes plus what a cloud store keeps with them."""

    content_type: Optional[str] = None
    metadata: Optional[dict[str, str]] = None
    headers: Optional[dict[str, str]] = None
    """Object headers (``cache_control``...) given with the write."""
    etag = ""


class _PendingBlob(_Blob):
    """A write in progress: stored on ``close``, dropped by ``discard``.

    Once stored it forgets its filesystem, so a pickled store holds only data."""

    def __init__(self, fs: _MemoryFileSystem, path: str, data: Optional[bytes],
                 content_type: Optional[str], metadata: Optional[dict[str, str]],
                 headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(fs, path, data)
        self.content_type = content_type
        self.metadata = dict(metadata or {})
        self.headers = dict(headers or {})
        self._done = False

    def close(self) -> None:
        if not self._done:
            self._done = True
            # A new tag for every write, as Azure does (S3's MD5 tag repeats for equal
            # content, which code under test must not rely on either).
            self.etag = uuid.uuid4().hex
            store = self.fs.store  # type: ignore[has-type]
            self.modified = store.tick()
            store[self.path] = self
            self.fs = None
            self.seek(0)

    def discard(self) -> None:
        self._done = True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


class _MemoryFileSystem(MemoryFileSystem):  # type: ignore[misc]
    """fsspec's memory filesystem over one adapter's store, committing writes on
    close (fsspec's own stores them at open, visible half-written), giving each
    reader its own cursor, and answering from the store's index instead of scanning
    the store (fsspec's ``info`` and ``ls`` look at every path)."""

    protocol = PROTOCOL

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, str):
            path = path.removeprefix(f"{PROTOCOL}://")
        return super()._strip_protocol(path)

    def __init__(self, store_id: str, **kwargs: Any) -> None:
        super().__init__(global_store=False, **kwargs)
        store = _STORES.get(store_id)
        if store is None:
            raise FileNotFoundError(f"no in-memory store {store_id!r} in this process")
        self.store = store

    def _open(self, path: str, mode: str = "rb", block_size: Any = None,
              autocommit: bool = True, cache_options: Any = None, **kwargs: Any) -> Any:
        """Reads get a copy with their own cursor; a write is stored when closed.
        A path may be an object and a folder at once, as on S3 and Azure."""
        path = self._strip_protocol(path)
        if mode == "rb":
            if path not in self.store:
                raise _missing(path)
            return io.BytesIO(self.store[path].getvalue())
        if mode != "wb":
            raise ValueError(f"unsupported mode {mode!r}")
        pending = _PendingBlob(self, path, kwargs.get("data"), kwargs.get("content_type"),
                               kwargs.get("metadata"),
                               {name: str(kwargs[name]) for name in OBJECT_HEADERS
                                if kwargs.get(name)})
        if kwargs.get("data") is not None:
            pending.close()
        return pending

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Nothing to create: as on the object stores this backend stands in for, a
        folder exists while a key lies under it (fsspec's memory filesystem would keep
        an empty one, created by ``put_file``, after its last key is deleted)."""

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Nothing to create; see :meth:`makedirs`."""

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite",
                  **kwargs: Any) -> None:
        self._open(path, "wb", data=bytes(value), **kwargs)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        path1 = self._strip_protocol(path1)
        if path1 not in self.store:
            raise _missing(path1)
        blob = self.store[path1]
        self._open(path2, "wb", data=blob.getvalue(), content_type=blob.content_type,
                   metadata=blob.metadata, **(blob.headers or {}))

    def cat_file(self, path: str, start: Optional[int] = None, end: Optional[int] = None,
                 **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        blob = self.store.get(path)
        if blob is None:
            raise _missing(path)
        return bytes(blob.getbuffer()[start:end])

    def _rm(self, path: str) -> None:
        path = self._strip_protocol(path)
        if self.store.pop(path, None) is None:
            raise _missing(path)

    def _describe(self, info: dict[str, Any]) -> dict[str, Any]:
        blob = self.store.get(info["name"]) if info.get("type") == "file" else None
        if blob is not None:
            info.update(last_modified=blob.modified, etag=blob.etag,
                        content_type=blob.content_type, metadata=dict(blob.metadata or {}),
                        **(blob.headers or {}))
        return info

    def _file(self, path: str) -> Optional[dict[str, Any]]:
        blob = self.store.get(path)
        if blob is None:
            return None
        return self._describe({"name": path, "size": blob.size, "type": "file",
                               "created": blob.created})

    def object_info(self, path: str) -> dict[str, Any]:
        """The object at ``path`` (one dict lookup); not found when there is none, also
        when ``path`` is a folder (as a HEAD request on an object store)."""
        path = self._strip_protocol(path)
        found = self._file(path)
        if found is None:
            raise _missing(path)
        return found

    def object_entries(self, path: str) -> Iterator[dict[str, Any]]:
        """Info dicts of the objects whose path starts with ``path`` (a plain string
        prefix), in order, lazily, from the store's index."""
        for name in self.store.paths(self._strip_protocol(path) if path else ""):
            found = self._file(name)
            if found is not None:
                yield found

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """The object at ``path`` if there is one, else the folder of the keys under it."""
        path = self._strip_protocol(path)
        found = self._file(path)
        if found is not None:
            return found
        if path == "" or self.store.has_prefix(f"{path}/"):
            return {"name": path, "size": 0, "type": "directory"}
        raise _missing(path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        path = self._strip_protocol(path)
        start = f"{path}/" if path else "/"
        # A name can be an object and a folder at once: both are listed.
        entries: dict[tuple[str, str], dict[str, Any]] = {}
        for name in self.store.paths(start):
            child, nested, _ = name[len(start):].partition("/")
            full = start + child
            if nested:
                entries.setdefault((full, "directory"),
                                   {"name": full, "size": 0, "type": "directory"})
            else:
                found = self._file(full)
                if found is not None:
                    entries[(full, "file")] = found
        if not entries:
            found = self._file(path)
            if found is None:
                raise _missing(path)
            entries[(path, "file")] = found
        listed = [entries[name] for name in sorted(entries)]
        return listed if detail else [entry["name"] for entry in listed]

    def find(self, path: str, maxdepth: Any = None, withdirs: bool = False,
             detail: bool = False, **kwargs: Any) -> Any:
        found = super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail,
                             **kwargs)
        if detail:
            return {name: self._describe(info) for name, info in found.items()}
        return found


fsspec.register_implementation(PROTOCOL, _MemoryFileSystem, clobber=True)
