"""In-memory backend: the whole contract, no disk and no server.

For notebooks and for testing code that uses this package.  Each adapter has
its own store unless ``store_name`` names one to share (like a bucket); a
private store travels with the adapter when it is pickled, as an independent
copy, and a named one rejoins the store of that name in the receiving
process.  Nothing here is reachable from outside the process, so there are no
public or presigned URLs; ``url()`` and ``storage_options`` work inside the
process (pandas, Dask's threaded scheduler) through ``perceptra://``; the
filesystem's own ``perceptra-memory`` protocol is ``native_url()``.
"""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Optional, TypedDict

import fsspec
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

from ..adapter import FsspecStorageAdapter
from ..base import PresignedUrl
from ..errors import StorageOperationError
from ..presign import SignOptions
from ..validation import OBJECT_HEADERS

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["MemoryConfig", "MemoryStorageAdapter"]

PROTOCOL = "perceptra-memory"


class MemoryConfig(TypedDict, total=False):
    """``config`` of the ``memory`` backend."""

    store_name: str
    """Share objects with every adapter of this process given the same name (like a
    bucket); without it the adapter has a private store."""
    prefix: str
    """Key prefix this adapter is confined to."""


class _Store(dict[str, Any]):
    """One adapter's objects, by path; weakly registered so URLs can find it."""


_STORES: weakref.WeakValueDictionary[str, _Store] = weakref.WeakValueDictionary()
_NAMED: dict[str, _Store] = {}
_NAMED_LOCK = threading.Lock()


class MemoryStorageAdapter(FsspecStorageAdapter):
    """Objects in a dict owned by the adapter."""

    backend_name = "memory"
    batch_in_threads = False
    config_schema = MemoryConfig
    flat_namespace = True
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
            self.etag = hashlib.md5(self.getbuffer(), usedforsecurity=False).hexdigest()
            self.modified = datetime.now(UTC)
            self.fs.store[self.path] = self  # type: ignore[has-type]
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
    close (fsspec's own stores them at open, visible half-written) and giving
    each reader its own cursor."""

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
        path = self._strip_protocol(path)
        if mode == "rb":
            if path not in self.store:
                raise FileNotFoundError(path)
            return io.BytesIO(self.store[path].getvalue())
        if mode != "wb":
            raise ValueError(f"unsupported mode {mode!r}")
        if self.isdir(path):
            raise IsADirectoryError(path)
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
            raise FileNotFoundError(path1)
        blob = self.store[path1]
        self._open(path2, "wb", data=blob.getvalue(), content_type=blob.content_type,
                   metadata=blob.metadata, **(blob.headers or {}))

    def _describe(self, info: dict[str, Any]) -> dict[str, Any]:
        blob = self.store.get(info["name"]) if info.get("type") == "file" else None
        if blob is not None:
            info.update(last_modified=blob.modified, etag=blob.etag,
                        content_type=blob.content_type, metadata=dict(blob.metadata or {}),
                        **(blob.headers or {}))
        return info

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._describe(dict(super().info(path, **kwargs)))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        found = super().ls(path, detail=detail, **kwargs)
        return [self._describe(info) for info in found] if detail else found

    def find(self, path: str, maxdepth: Any = None, withdirs: bool = False,
             detail: bool = False, **kwargs: Any) -> Any:
        found = super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail,
                             **kwargs)
        if detail:
            return {name: self._describe(info) for name, info in found.items()}
        return found


fsspec.register_implementation(PROTOCOL, _MemoryFileSystem, clobber=True)
