"""``perceptra://``: any storage adapter as an fsspec filesystem, for pandas & co.

pandas, pyarrow, polars and Dask open ``perceptra://`` URLs through
:class:`PerceptraFileSystem`, registered under fsspec's ``fsspec.specs`` entry
point (no import needed first). Every call goes through a storage adapter, so
these libraries get what the adapter guarantees: key checks and prefix
confinement, timeouts, retries, typed errors (``StorageError`` subclasses are
``OSError`` subclasses, so the libraries report them normally), content types
and metadata.

URL shapes
    ``perceptra://PROFILE/KEY``
        The adapter of the named profile
        (:func:`perceptra_storage.profiles.open_profile`); no ``storage_options``.
    ``perceptra:///KEY`` (empty profile) with ``storage_options``
        The adapter built from ``backend``, ``config`` and ``credentials`` (what
        ``adapter.storage_options`` gives, with ``adapter.url(key)``),
        or, for an adapter that cannot be rebuilt from those (a custom class not
        registered under its name, a private in-memory store), the ``adapter``
        object itself.

Paths inside the filesystem are keys relative to the adapter's root (bucket,
container or base_path, plus its ``prefix``); a URL naming another profile than
the filesystem's own is refused, so one profile's filesystem never reads another's.

Design: the class is written on the adapter's public operations only
(``upload_file``, ``download_file``, ``get_file_metadata``, ``iter_files``,
``copy_file``, ``delete_files``, ``open``...), so it works for ANY adapter,
custom ones included. Where the adapter is the generic fsspec adapter, one-level
listings (``ls``) use its own rooted filesystem instead of a recursive listing,
inside the adapter's error translation. Directories are what object stores have:
a prefix exists while a key lies under it; ``mkdir``/``makedirs`` store nothing and
``rmdir`` removes nothing, on every backend alike (local included).

Built adapters are cached per process, per profile (by ``open_profile``) and per
option set (here), so each pandas call does not rebuild clients. Nothing is
registered over s3fs's, adlfs's or any other library's protocol.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Optional

from fsspec.spec import AbstractFileSystem
from fsspec.utils import tokenize

from .base import BaseStorageAdapter, StorageObject
from .errors import StorageNotFoundError, StorageValidationError
from .info import to_object
from .validation import validate_key

__all__ = ["PROTOCOL", "PerceptraFileSystem", "url_for"]

PROTOCOL = "perceptra"
_SCHEME = f"{PROTOCOL}://"
_SPOOL = 8 * 2**20
"""Bytes a write with content type or metadata keeps in memory before spilling to a
temporary file (the upload happens once, when the file is closed)."""
_CACHE_SIZE = 32
"""Adapters built from storage_options kept per process (least recently used go)."""
_FSSPEC_OPTIONS = frozenset({"skip_instance_cache", "use_listings_cache", "listings_expiry_time",
                             "max_paths", "asynchronous", "loop"})
"""Options fsspec itself may pass to every filesystem; accepted and ignored."""

_built: OrderedDict[str, BaseStorageAdapter] = OrderedDict()
_built_lock = threading.Lock()


def url_for(key: str, profile: str = "") -> str:
    """The ``perceptra://`` URL of ``key`` (already validated) in ``profile``, or with
    an empty profile for an adapter given by ``storage_options``."""
    return f"{_SCHEME}{profile}/{key}"


def _split(url: str) -> tuple[str, str]:
    """``(profile, path)`` of a ``perceptra://`` URL."""
    profile, _, path = url[len(_SCHEME):].partition("/")
    return profile, path


def _strip(path: Any) -> Any:
    """A URL or path to a path in the filesystem: the scheme and profile go, trailing
    slashes go (fsspec's convention for directories) and so do leading ones (the root:
    Dask writes ``/folder/_metadata``; stripping all of them keeps this idempotent, as
    fsspec strips a path more than once); nothing else is normalised, so ``..``,
    backslashes and empty segments inside a path reach the key checks and are
    refused."""
    if isinstance(path, (list, tuple)):
        return [_strip(item) for item in path]
    path = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(path, str):
        return path
    if path.startswith(_SCHEME):
        path = _split(path)[1]
    return path.strip("/")


class _StripProtocol:
    """fsspec's ``_strip_protocol``: on the class (fsspec parses URLs with it before a
    filesystem exists) it strips; on an instance it also refuses a URL that names
    another profile than the one the filesystem was opened for."""

    def __get__(self, instance: Optional[PerceptraFileSystem], owner: type) -> Any:
        if instance is None:
            return _strip
        return instance._strip_own


def _cache_key(backend: str, config: Mapping[str, Any], credentials: Mapping[str, Any]) -> str:
    """A digest of the options (never the options themselves, which hold secrets)."""
    text = json.dumps([backend.strip().lower(), config, credentials], sort_keys=True,
                      default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _adapter_from_options(backend: Any, config: Any, credentials: Any) -> BaseStorageAdapter:
    from .registry import get_storage_adapter

    if not isinstance(backend, str):
        raise StorageValidationError(
            f"perceptra://: storage option 'backend' must be a backend name, not {backend!r}")
    for name, value in (("config", config), ("credentials", credentials)):
        if value is not None and not isinstance(value, Mapping):
            raise StorageValidationError(
                f"perceptra://: storage option {name!r} must be a dict, not "
                f"{type(value).__name__}", backend=backend)
    token = _cache_key(backend, config or {}, credentials or {})
    with _built_lock:
        cached = _built.get(token)
        if cached is not None:
            _built.move_to_end(token)
            return cached
    built = _adapter(get_storage_adapter(backend, config, credentials))
    with _built_lock:
        built = _built.setdefault(token, built)
        while len(_built) > _CACHE_SIZE:
            _built.popitem(last=False)
    return built


def _adapter_from_profile(name: str) -> BaseStorageAdapter:
    from .profiles import open_profile

    return _adapter(open_profile(name))


def _adapter(built: object) -> BaseStorageAdapter:
    """What the registry built: typed there as the ``StorageAdapter`` protocol, always a
    :class:`BaseStorageAdapter` (the registry refuses other classes), which is all
    this filesystem uses."""
    if not isinstance(built, BaseStorageAdapter):
        raise StorageValidationError(f"perceptra://: {type(built).__name__} is not a "
                                     "storage adapter")
    return built


class PerceptraFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """A storage adapter as an fsspec filesystem whose paths are keys.

    Give exactly one of ``profile`` (taken from the URL by fsspec), ``backend``
    (with ``config`` and ``credentials``) or ``adapter``.
    """

    protocol = PROTOCOL
    root_marker = ""
    cachable = False
    """fsspec would cache one instance per thread; the adapters are cached instead."""

    _strip_protocol = _StripProtocol()

    def __init__(self, profile: Optional[str] = None, backend: Optional[str] = None,
                 config: Optional[Mapping[str, Any]] = None,
                 credentials: Optional[Mapping[str, Any]] = None,
                 adapter: Optional[BaseStorageAdapter] = None, **options: Any) -> None:
        unknown = sorted(set(options) - _FSSPEC_OPTIONS)
        if unknown:
            raise StorageValidationError(
                f"perceptra://: unknown storage options {unknown}; give profile (in the URL), "
                "backend with config and credentials, or adapter")
        given = [name for name, value in (("profile", profile), ("backend", backend),
                                          ("adapter", adapter)) if value]
        if len(given) != 1:
            raise StorageValidationError(
                "perceptra://: give a profile (perceptra://PROFILE/KEY) or storage_options "
                f"with backend (and config, credentials) or adapter, not {given or 'none'}")
        if (config is not None or credentials is not None) and backend is None:
            raise StorageValidationError(
                "perceptra://: config and credentials need the backend storage option")
        super().__init__()
        self.profile = profile or ""
        if adapter is not None:
            if not isinstance(adapter, BaseStorageAdapter):
                raise StorageValidationError(
                    f"perceptra://: storage option 'adapter' must be a storage adapter, not "
                    f"{type(adapter).__name__}")
            self.adapter = adapter
        elif backend is not None:
            self.adapter = _adapter_from_options(backend, config, credentials)
        else:
            self.adapter = _adapter_from_profile(self.profile)

    # -- identity and paths ----------------------------------------------------------

    @property
    def _fs_token(self) -> str:
        """fsspec compares filesystems by their options' token; an ``adapter`` option
        tokenizes by its repr, which two adapters with other credentials may share."""
        return str(tokenize(self._fs_token_, id(self.adapter)))

    @classmethod
    def _get_kwargs_from_urls(cls, path: str) -> dict[str, Any]:
        profile = _split(path)[0] if isinstance(path, str) and path.startswith(_SCHEME) else ""
        return {"profile": profile} if profile else {}

    def _strip_own(self, path: Any) -> Any:
        if isinstance(path, (list, tuple)):
            return [self._strip_own(item) for item in path]
        if isinstance(path, str) and path.startswith(_SCHEME):
            named = _split(path)[0]
            if named != self.profile:
                mine = f"profile {self.profile!r}" if self.profile else \
                    "the adapter given by storage_options"
                raise StorageValidationError(
                    f"perceptra://: URL names profile {named!r}, but this filesystem is {mine}",
                    backend=self.adapter.backend_name)
        return _strip(path)

    def unstrip_protocol(self, name: str) -> str:
        return url_for(_strip(name), self.profile)

    @property
    def _backend(self) -> str:
        return self.adapter.backend_name

    def _key(self, path: Any) -> str:
        """The adapter key of a file path (checked by the adapter's own rules too)."""
        return validate_key(self._strip_own(path), self._backend)

    def _folder(self, path: Any) -> str:
        """A directory path: '' (the root) or a valid key."""
        path = self._strip_own(path)
        return "" if path == "" else validate_key(path, self._backend)

    def _file_info(self, obj: StorageObject) -> dict[str, Any]:
        return {"name": obj.key, "size": obj.size, "type": "file",
                "mtime": obj.last_modified.timestamp(), "last_modified": obj.last_modified,
                "etag": obj.etag, "content_type": obj.content_type, "metadata": obj.metadata}

    @staticmethod
    def _dir_info(name: str) -> dict[str, Any]:
        return {"name": name, "size": 0, "type": "directory"}

    def _has_children(self, folder: str) -> bool:
        return next(iter(self.adapter.iter_files(f"{folder}/" if folder else "")), None) \
            is not None

    # -- metadata and listings -------------------------------------------------------

    def info(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        """A file's full properties (content type and metadata included), else a
        directory when keys lie under the path, else StorageNotFoundError."""
        folder = self._folder(path)
        if folder == "":
            return self._dir_info("")
        try:
            return self._file_info(self.adapter.get_file_metadata(folder))
        except StorageNotFoundError:
            if self._has_children(folder):
                return self._dir_info(folder)
            raise

    def exists(self, path: Any, **kwargs: Any) -> bool:
        """Only a missing path is False: refused keys, denied access and timeouts raise
        (fsspec's default would report them all as missing)."""
        try:
            self.info(path)
        except FileNotFoundError:
            return False
        return True

    def ls(self, path: Any, detail: bool = True, **kwargs: Any) -> Any:
        folder = self._folder(path)
        entries = self._listing(folder)
        if not entries:
            try:
                entries = [self._file_info(self.adapter.get_file_metadata(folder))] \
                    if folder else []
            except StorageNotFoundError:
                if folder:
                    raise
        return entries if detail else [entry["name"] for entry in entries]

    def _listing(self, folder: str) -> list[dict[str, Any]]:
        """The entries right under ``folder``: through the adapter's own filesystem
        (one delimited listing) when it has one, else from its recursive listing."""
        from .adapter import FsspecStorageAdapter

        if isinstance(self.adapter, FsspecStorageAdapter):
            return self._fast_listing(self.adapter, folder)
        prefix = f"{folder}/" if folder else ""
        files: dict[str, dict[str, Any]] = {}
        folders: dict[str, dict[str, Any]] = {}
        for obj in self.adapter.iter_files(prefix):
            head, nested, _ = obj.key[len(prefix):].partition("/")
            if nested:
                folders.setdefault(prefix + head, self._dir_info(prefix + head))
            else:
                files[obj.key] = self._file_info(obj)
        return sorted([*folders.values(), *files.values()], key=lambda entry: entry["name"])

    def _fast_listing(self, adapter: Any, folder: str) -> list[dict[str, Any]]:
        with adapter._operation("list", folder or None):
            key = adapter._check_key(folder) if folder else ""
            try:
                found = adapter.filesystem.ls(adapter._path(key) if key else adapter._base(),
                                              detail=True)
            except (FileNotFoundError, NotADirectoryError):
                return []
            entries: dict[str, dict[str, Any]] = {}
            inside = f"{key}/" if key else ""
            offset = adapter._key_start()
            for info in found:
                name = adapter._key_of(info["name"], offset)
                if not name.startswith(inside) or name == key:
                    continue  # the folder itself (or its marker object)
                if info.get("type") == "directory" and not adapter._is_internal(name):
                    entries[name] = self._dir_info(name)
                elif adapter._listed(name, info, inside):  # the adapter's own listing filter
                    entries[name] = self._file_info(to_object(name, info, full=False))
            return sorted(entries.values(), key=lambda entry: entry["name"])

    def find(self, path: Any, maxdepth: Optional[int] = None, withdirs: bool = False,
             detail: bool = False, **kwargs: Any) -> Any:
        """Every file under ``path`` (and with ``withdirs`` every directory), sorted, from
        one recursive listing of the adapter; a file path finds that file."""
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        folder = self._folder(path)
        prefix = f"{folder}/" if folder else ""
        found: dict[str, dict[str, Any]] = {}
        for obj in self.adapter.iter_files(prefix):
            parts = obj.key[len(prefix):].split("/")
            if withdirs:
                for depth in range(1, min(len(parts), (maxdepth or len(parts)) + 1)):
                    name = prefix + "/".join(parts[:depth])
                    found.setdefault(name, self._dir_info(name))
            if maxdepth is None or len(parts) <= maxdepth:
                found[obj.key] = self._file_info(obj)
        if found and withdirs and folder:
            found[folder] = self._dir_info(folder)
        if not found and folder:
            with contextlib.suppress(StorageNotFoundError):
                found[folder] = self._file_info(self.adapter.get_file_metadata(folder))
        ordered = {name: found[name] for name in sorted(found)}
        return ordered if detail else list(ordered)

    # -- directories: prefixes, as on object stores --------------------------------------

    def mkdir(self, path: Any, create_parents: bool = True, **kwargs: Any) -> None:
        """Nothing to store: a directory exists while a key lies under it."""
        self._folder(path)

    def makedirs(self, path: Any, exist_ok: bool = False) -> None:
        self._folder(path)

    def rmdir(self, path: Any) -> None:
        """Nothing to remove: an empty directory does not exist."""
        folder = self._folder(path)
        if self._has_children(folder):
            raise OSError(f"perceptra://: directory {folder!r} is not empty")

    # -- reading -----------------------------------------------------------------------

    def cat_file(self, path: Any, start: Optional[int] = None, end: Optional[int] = None,
                 **kwargs: Any) -> bytes:
        if start is None and end is None:
            data: bytes = self.adapter.download_file(self._key(path))
            return data
        with self._open(path, "rb") as file:
            size = file.seek(0, io.SEEK_END)
            begin = max(0, size + start if start and start < 0 else start or 0)
            stop = size if end is None else max(0, size + end if end < 0 else min(end, size))
            file.seek(begin)
            return bytes(file.read(max(0, stop - begin)))

    def get_file(self, rpath: Any, lpath: Any, callback: Any = None, outfile: Any = None,
                 **kwargs: Any) -> None:
        """Download one key (atomically, through the adapter); a directory becomes a
        local folder."""
        key = self._key(rpath)
        target = outfile if outfile is not None else os.fspath(lpath)
        if outfile is None and os.path.isdir(target) and self._has_children(key):
            return
        try:
            self.adapter.download_file(key, target)
        except StorageNotFoundError:
            if outfile is None and self._has_children(key):
                os.makedirs(target, exist_ok=True)
                return
            raise
        if callback is not None and isinstance(target, str):
            size = os.path.getsize(target)
            callback.set_size(size)
            callback.relative_update(size)

    # -- writing -----------------------------------------------------------------------

    def pipe_file(self, path: Any, value: bytes, mode: str = "overwrite",
                  content_type: Optional[str] = None,
                  metadata: Optional[dict[str, str]] = None, **kwargs: Any) -> None:
        """Store ``value``; ``mode="create"`` refuses an existing key (checked first, so
        two concurrent creators can both succeed; the stores offer no atomic test)."""
        key = self._key(path)
        _refuse_options(kwargs, key, self._backend)
        if mode == "create" and self.adapter.file_exists(key):
            raise FileExistsError(f"perceptra://: {key!r} already exists")
        self.adapter.upload_file(bytes(value), key, content_type=content_type,
                                 metadata=metadata)

    def put_file(self, lpath: Any, rpath: Any, callback: Any = None, mode: str = "overwrite",
                 content_type: Optional[str] = None,
                 metadata: Optional[dict[str, str]] = None, **kwargs: Any) -> None:
        """Upload one local file (streamed by the adapter); a local folder stores
        nothing, as a directory on an object store is only its keys."""
        local = os.fspath(lpath)
        key = self._key(rpath)
        _refuse_options(kwargs, key, self._backend)
        if os.path.isdir(local):
            return
        if mode == "create" and self.adapter.file_exists(key):
            raise FileExistsError(f"perceptra://: {key!r} already exists")
        size = os.path.getsize(local)
        if callback is not None:
            callback.set_size(size)
        self.adapter.upload_file(Path(local), key, content_type=content_type,
                                 metadata=metadata)
        if callback is not None:
            callback.relative_update(size)

    def touch(self, path: Any, truncate: bool = True, **kwargs: Any) -> None:
        """An empty object (a store cannot update a time without rewriting the object)."""
        if truncate or not self.exists(path):
            self.pipe_file(path, b"", **kwargs)

    def cp_file(self, path1: Any, path2: Any, **kwargs: Any) -> None:
        """Copy inside the store (content type and metadata kept); a directory source
        copies nothing itself, its keys are copied one by one by ``copy``."""
        source = self._key(path1)
        destination = self._key(path2)
        try:
            self.adapter.copy_file(source, destination)
        except StorageNotFoundError:
            if not self._has_children(source):
                raise

    def rm_file(self, path: Any) -> None:
        self.adapter.delete_file(self._key(path))

    def rm(self, path: Any, recursive: bool = False, maxdepth: Optional[int] = None) -> None:
        """Delete the files the paths (or globs) name, concurrently through the adapter's
        batch delete; directories in the list are pseudo-directories and go with their
        last key."""
        paths = [name for name in self.expand_path(path, recursive=recursive, maxdepth=maxdepth)
                 if name]
        parents = {name.rsplit("/", depth)[0] for name in paths
                   for depth in range(1, name.count("/") + 1)}
        result = self.adapter.delete_files([name for name in paths if name not in parents])
        for key, error in result.failed.items():
            if not (isinstance(error, StorageNotFoundError) and self._has_children(key)):
                raise error

    def sign(self, path: Any, expiration: int = 100, **kwargs: Any) -> str:
        return self.adapter.generate_presigned_url(self._key(path), expiration=expiration).url

    def created(self, path: Any) -> Any:
        raise NotImplementedError("object stores keep no creation time; use modified()")

    def modified(self, path: Any) -> Any:
        return self.info(path)["last_modified"]

    def ukey(self, path: Any) -> str:
        info = self.info(path)
        return str(info.get("etag") or tokenize(info))

    # -- file objects -------------------------------------------------------------------

    def open(self, path: Any, mode: str = "rb", block_size: Any = None,
             cache_options: Any = None, compression: Any = None, **kwargs: Any) -> Any:
        """fsspec's ``open``, except that text-mode writes also store nothing when the
        ``with`` block fails (fsspec's plain text wrapper would commit them)."""
        if "b" in mode:
            return super().open(path, mode, block_size=block_size, cache_options=cache_options,
                                compression=compression, **kwargs)
        text = {name: kwargs.pop(name) for name in ("encoding", "errors", "newline")
                if name in kwargs}
        binary = super().open(path, mode.replace("t", "") + "b", block_size=block_size,
                              cache_options=cache_options, compression=compression, **kwargs)
        return _TextFile(binary, **text)

    def _open(self, path: Any, mode: str = "rb", block_size: Any = None,
              autocommit: bool = True, cache_options: Any = None,
              content_type: Optional[str] = None, metadata: Optional[dict[str, str]] = None,
              **kwargs: Any) -> IO[bytes]:
        """``rb`` reads lazily through the adapter; ``wb``/``xb`` store the object when
        closed and nothing when the ``with`` block fails. Appending is refused: objects
        are written whole."""
        key = self._key(path)
        if not autocommit:
            raise NotImplementedError("perceptra://: transactions are not supported")
        if mode == "rb":
            return self.adapter.open(key, "rb")
        if mode not in ("wb", "xb"):
            raise StorageValidationError(
                f"perceptra://: mode must be 'rb', 'wb' or 'xb', not {mode!r}",
                backend=self._backend, key=key)
        if mode == "xb" and self.adapter.file_exists(key):
            raise FileExistsError(f"perceptra://: {key!r} already exists")
        from .adapter import FsspecStorageAdapter

        if isinstance(self.adapter, FsspecStorageAdapter) and content_type is None and \
                metadata is None:
            return self.adapter.open(key, "wb")  # streams (multipart) as it is written
        return _SpooledUpload(self.adapter, key, content_type, metadata)


def _refuse_options(options: Mapping[str, Any], key: str, backend: str) -> None:
    """A write option this filesystem does not know is an error, not silently dropped
    (an s3fs user's ``ContentType=`` would otherwise store the default type)."""
    if options:
        raise StorageValidationError(
            f"perceptra://: unknown write options {sorted(options)}; the object's properties "
            "are content_type and metadata", backend=backend, key=key)


class _SpooledUpload(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """A write that goes up with ``upload_file`` when closed (any adapter, with content
    type and metadata); ``discard`` or a failed ``with`` block uploads nothing."""

    def __init__(self, adapter: BaseStorageAdapter, key: str, content_type: Optional[str],
                 metadata: Optional[dict[str, str]]) -> None:
        super().__init__(max_size=_SPOOL)
        self._upload: Optional[tuple[BaseStorageAdapter, str, Optional[str],
                                     Optional[dict[str, str]]]] = (
            adapter, key, content_type, metadata)

    def close(self) -> None:
        upload, self._upload = self._upload, None
        try:
            if upload is not None and not self.closed:
                adapter, key, content_type, metadata = upload
                self.seek(0)
                adapter.upload_file(self, key, content_type=content_type, metadata=metadata)
        finally:
            super().close()

    def discard(self) -> None:
        self._upload = None
        super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()


class _TextFile(io.TextIOWrapper):
    """A text wrapper whose failed ``with`` block discards the write underneath."""

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        discard = getattr(self.buffer, "discard", None)
        if exc_type is not None and self.writable() and callable(discard):
            discard()
        else:
            self.close()

