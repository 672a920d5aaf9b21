"""Local filesystem backend: a directory treated as a bucket.

Writes are atomic: bytes go to a hidden temporary file in the target's
directory, which is renamed over the target once complete, so readers see the
old file or the new one, never half of one, and a failed write leaves the old
file in place.  Every path is resolved and must stay under ``base_path``,
symlinks included (a write's last name is not followed: its rename replaces a
symlink there, never what it points to).

Content type and metadata (the "properties") are stored, by ``metadata_store``:

* ``'xattr'``: in one extended attribute of the file itself (Linux; not on
  Windows, nor on macOS's Python, nor on every filesystem);
* ``'portable'``: in a hidden bookkeeping file beside it, one per file name
  (``.~ps.<digest>.meta``), which records the identity (inode, size, modification
  time) of the file each entry describes, so an entry only ever applies to the
  file it was written for: a file replaced by another program, or a crash
  between the two renames of a write, shows default properties, never stale ones;
* ``'auto'`` (default): extended attributes where the platform and filesystem
  have them, the portable files otherwise (decided per write).

Names with a component starting with ``.~ps.`` are the backend's own (temporary
and bookkeeping files): listings never show them and no key may contain one.
Directories written by 0.1's local adapter keep working: its ``<name>.meta``
JSON sidecars supply the properties of ``<name>`` until it is next written, and
are not listed as objects.
"""

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import stat
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Optional, Required, TypedDict, Union
from urllib.parse import urlsplit

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from ..adapter import FsspecStorageAdapter
from ..base import PresignedUrl
from ..errors import (
    StorageConnectionError,
    StorageNotFoundError,
    StorageOperationError,
    StoragePermissionError,
    StorageValidationError,
)
from ..files import (
    BINARY,
    OPEN_READ,
    OPEN_TRUNCATE,
    file_name,
    sibling,
    temporary_name,
    write_all,
)
from ..presign import NO_OPTIONS, SignOptions
from ..signing import Verified, sign_url, split_url, verify
from ..validation import OBJECT_HEADERS, default_content_type

__all__ = ["LocalConfig", "LocalStorageAdapter"]

RESERVED = ".~ps."
"""Name components starting with this are the backend's own files."""
_XATTR = "user.perceptra_storage.meta"
_NO_XATTR = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA)
_CHUNK = 8 * 1024 * 1024
_LEGACY_SUFFIX = ".meta"
_LEGACY_MAX = 64 * 1024
"""0.1 sidecars hold a content type and a few metadata pairs; a bigger ``.meta``
file is the user's own and is not parsed."""
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | BINARY
_WRITE_BUFFER = 1024 * 1024
"""Bytes a streaming write collects before one ``os.write``."""
_KERNEL_COPY = sys.platform.startswith("linux") and hasattr(os, "sendfile")
"""``sendfile`` copies file to file only on Linux: macOS's wants a socket as the
target, and Windows has none."""
_IN_FLIGHT = 4
"""Entries of other writes a portable properties file keeps: concurrent writers of one
key each find theirs, whichever rename lands last."""
METADATA_STORES = ("auto", "xattr", "portable")
PROTOCOL = "perceptra-local"

_Properties = dict[str, Any]


class LocalConfig(TypedDict, total=False):
    """``config`` of the ``local`` backend."""

    base_path: Required[Union[str, os.PathLike[str]]]
    """Directory that holds the objects (the "bucket")."""
    create_dirs: bool
    """Create ``base_path`` (and ``prefix`` under it) when the adapter is built; default
    True. When False, a missing ``base_path`` fails construction with
    StorageConnectionError."""
    prefix: str
    """Sub-directory of ``base_path`` that this adapter is confined to, e.g. one tenant."""
    metadata_store: Literal["auto", "xattr", "portable"]
    """Where content type and metadata are kept: 'auto' (default) uses extended
    attributes where the platform and filesystem support them, else 'portable';
    'xattr' forces extended attributes (writing a content type or metadata fails where
    there are none); 'portable' forces hidden '.~ps.' bookkeeping files beside the
    objects (Linux, macOS and Windows). Key components starting with '.~ps.' are
    reserved in every mode."""
    fsync: bool
    """Flush each write to the storage device (``fsync`` of its temporary file) before
    it is renamed into place; default True. Writes are atomic either way (readers see
    the old file or the new one, never part of one). With False a write returns once
    the kernel holds it, and a power loss or kernel crash soon after may lose the latest
    writes or leave a just-renamed file empty. On tmpfs it changes nothing; on the
    benchmark machine's ext4 disk, 500 uploads of 16 KiB took 2.1-2.9 times as long with
    it as without (benchmarks/RESULTS.md)."""
    signing_key: str
    """Secret (at least 32 characters) that signs HTTP URLs served by
    ``perceptra-storage serve`` or ``perceptra_storage.server.make_app``; without it,
    presigned URLs are plain file:// URIs (GET only)."""
    base_url: str
    """Where that server is reached, e.g. 'http://127.0.0.1:8000' (with signing_key)."""


class LocalStorageAdapter(FsspecStorageAdapter):
    """Objects as files under ``base_path``; keys are relative paths."""

    backend_name = "local"
    batch_in_threads = False
    config_schema = LocalConfig
    metadata_hyphens = True

    def _check_config(self) -> None:
        """Check the fields, then create (or require) ``base_path`` as 0.1 did at
        construction: a local directory is not the network, and a wrong path should
        fail here rather than at the first upload."""
        self._metadata_store = str(self.config.get("metadata_store") or "auto")
        if self._metadata_store not in METADATA_STORES:
            raise StorageValidationError(
                f"local: config field 'metadata_store' must be one of "
                f"{', '.join(map(repr, METADATA_STORES))}, not {self._metadata_store!r}",
                backend="local")
        if any(part.startswith(RESERVED) for part in self.prefix.split("/")):
            raise StorageValidationError(
                f"local: config field 'prefix' has a component starting with {RESERVED!r}, "
                "which is reserved for the backend's own files", backend="local")
        self._base_path = os.path.abspath(str(os.fspath(self.config["base_path"])))
        base = self._base()
        if self.config.get("create_dirs", True):
            try:
                os.makedirs(base, exist_ok=True)
            except OSError as exc:
                raise StorageConnectionError(
                    f"local: cannot create base_path {self._base_path!r}: "
                    f"{exc.strerror or exc}", backend="local") from exc
        if not os.path.isdir(self._base_path):
            # Construction errors name the configured path (the developer's own value,
            # met when the adapter is built); operations' errors never show it.
            problem = ("is not a directory" if os.path.lexists(self._base_path) else
                       "does not exist and create_dirs is False")
            raise StorageConnectionError(f"local: base_path {self._base_path!r} {problem}",
                                         backend="local")
        self._confine = os.path.realpath(self._base_path)
        self._keep = os.path.realpath(base)
        self._check_signing()

    def _check_signing(self) -> None:
        """``signing_key`` and ``base_url`` come together; the key is long enough to
        resist guessing and the URL is http(s) without query."""
        secret, base = self.config.get("signing_key"), self.config.get("base_url")
        if (secret is None) != (base is None):
            raise StorageValidationError(
                "local: config fields 'signing_key' and 'base_url' go together (signed "
                "HTTP URLs need both)", backend="local")
        if secret is not None and len(secret) < MIN_SIGNING_KEY:
            raise StorageValidationError(
                f"local: config field 'signing_key' must be at least {MIN_SIGNING_KEY} "
                "characters (e.g. secrets.token_urlsafe(32))", backend="local")
        if base is not None:
            parts = urlsplit(base)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
                    or parts.fragment:
                raise StorageValidationError(
                    "local: config field 'base_url' must be an http(s) URL such as "
                    "'http://127.0.0.1:8000'", backend="local")

    def _secret_values(self) -> tuple[str, ...]:
        secret = self.config.get("signing_key")
        return (*super()._secret_values(), *([str(secret)] if secret else []))

    def _root(self) -> str:
        return self._base_path

    def _make_filesystem(self) -> AbstractFileSystem:
        return _AtomicLocalFileSystem(confine=self._confine, keep=self._keep,
                                      metadata_store=self._metadata_store,
                                      fsync=self.config.get("fsync", True) is not False,
                                      skip_instance_cache=True)

    def _check_key(self, key: Any, replaced: bool = False) -> str:
        key = super()._check_key(key)
        if RESERVED in key and any(part.startswith(RESERVED) for part in key.split("/")):
            raise StorageValidationError(
                f"local: key {key!r} has a component starting with {RESERVED!r}, which is "
                "reserved for the backend's temporary and bookkeeping files", key=key)
        if not self._stays_inside(key, replaced):
            raise StoragePermissionError(
                f"local: key {key!r} resolves outside the adapter's directory (symlink)",
                key=key)
        return str(key)

    def _stays_inside(self, key: str, replaced: bool = False) -> bool:
        """Whether ``key`` resolves inside the adapter's directory. Only the key's own
        components can be symlinks that lead out (the root was resolved once), so they
        are checked one ``lstat`` each, and fully resolved only when one is a link:
        a third of the cost of ``realpath`` on every operation. Creates nothing.

        With ``replaced`` (the key is a write's target) the last component is not looked
        at: every write here ends by renaming its new file over that name, and a rename
        replaces a symlink itself, never what it points to, so only the folders above
        it can lead a write outside. That saves a write one ``lstat`` of a name that is
        usually missing (a system call and a raised exception)."""
        parts = key.split("/")
        if replaced:
            del parts[-1]
        path = self._keep
        for part in parts:
            path = f"{path}{os.sep}{part}"  # validated parts: no '/', '.', '..' or ''
            try:
                if stat.S_ISLNK(os.lstat(path).st_mode):
                    full = os.path.realpath(os.path.join(self._keep, *parts))
                    # A write's folder may be the adapter's directory itself.
                    return full.startswith(self._keep + os.sep) or \
                        (replaced and full == self._keep)
            except (FileNotFoundError, NotADirectoryError):
                return True  # nothing exists below a missing entry
        return True

    def _is_internal(self, key: str) -> bool:
        return key.rpartition("/")[2].startswith(RESERVED)

    def _head(self, path: str) -> dict[str, Any]:
        fs = self.filesystem
        info = dict(fs.info(path))
        if info.get("type") == "file":
            info.update(fs.properties(path))
        return info

    def _probe(self) -> None:
        if not os.path.isdir(self._base()):
            raise StorageNotFoundError("local: the directory of base_path (and prefix) "
                                       "does not exist")

    def verify_presigned_url(self, url: str, method: str = "GET",
                             headers: Optional[dict[str, str]] = None) -> Verified:
        """Check a request for ``url`` (a URL of :meth:`generate_presigned_url`) made
        with ``method`` and ``headers``: the signature in constant time, the method,
        the expiry and every pinned header. Returns what it may do (key, pinned
        headers, response overrides); raises StoragePermissionError saying why not,
        or StorageOperationError when this adapter has no ``signing_key``."""
        secret = self.config.get("signing_key")
        with self._operation("verify"):
            if not secret:
                raise StorageOperationError(
                    "local: no signing_key configured, so no URL can be verified")
            key, query = split_url(str(url), str(self.config["base_url"]))
            verified = verify(str(secret), str(method), key, query, headers or {})
            self._check_key(verified.key)
            return verified

    def _public_url(self, key: str) -> Optional[str]:
        """A ``file://`` URI of a stored file, usable by programs on this machine (by
        no one else); None when no file is stored under ``key``, as in 0.1."""
        if not self.file_exists(key):
            return None
        return Path(self._path(key)).as_uri()

    def _sign(self, path: str, key: str, expiration: int, method: str,
              options: SignOptions) -> PresignedUrl:
        """With ``signing_key``: an HTTP URL on ``base_url`` signed with HMAC-SHA256
        (see signing.py), for the server of ``server.py``. Without: local files have no
        signer, so GET of a stored file gets the plain ``file://`` URI, flagged as
        unscoped and without an enforced expiry; a missing key raises
        StorageNotFoundError (as in 0.1); other methods and options are refused."""
        secret = self.config.get("signing_key")
        if secret:
            expires = int(time.time()) + expiration
            url, headers = sign_url(str(secret), str(self.config["base_url"]), key, method,
                                    expires, options)
            return PresignedUrl(url=url, method=method, headers=headers,
                                expires_at=datetime.fromtimestamp(expires, tz=UTC))
        if options != NO_OPTIONS:
            raise StorageOperationError(
                "local: a file:// URL cannot carry content_type, metadata or header "
                "options; configure signing_key and base_url for signed HTTP URLs")
        if method != "GET":
            raise StorageOperationError(
                f"local: a file:// URL cannot carry a {method} grant; use the adapter "
                "directly or an S3/Azure backend for client uploads")
        self._file_info(key)
        return PresignedUrl(
            url=Path(path).as_uri(),
            expires_at=datetime.now(UTC) + timedelta(seconds=expiration),
            method="GET", scoped=False, expiry_enforced=False)


# -- stored properties ---------------------------------------------------------------


MIN_SIGNING_KEY = 32
"""Shortest ``signing_key`` accepted: 32 characters of a random token."""


def _defaults(path: str) -> _Properties:
    return {"content_type": default_content_type(path), "metadata": {}}


def _clean(stored: Any, path: str) -> _Properties:
    stored = stored if isinstance(stored, dict) else {}
    return {"content_type": stored.get("content_type") or default_content_type(path),
            "metadata": dict(stored.get("metadata") or {}),
            **{name: str(stored[name]) for name in OBJECT_HEADERS if stored.get(name)}}


def _identity(info: os.stat_result) -> str:
    """What changes whenever a different file, or different content, has this name."""
    return f"{info.st_ino:x}-{info.st_size:x}-{info.st_mtime_ns:x}"


def _bookkeeping_path(path: str) -> str:
    """The portable properties file of the file at ``path``: hidden, beside it, named
    by a digest so that any file name (up to the filesystem's limit) gets one."""
    digest = hashlib.sha256(os.fsencode(file_name(path))).hexdigest()[:32]
    return sibling(path, f"{RESERVED}{digest}.meta")


def _load_entries(bookkeeping: str) -> dict[str, Any]:
    """The entries of a portable properties file; none if it is missing or unreadable
    (a torn file cannot happen, it is replaced atomically; unreadable means foreign)."""
    try:
        with open(bookkeeping, "rb") as file:
            entries = json.loads(file.read()).get("entries")
    except (FileNotFoundError, NotADirectoryError, ValueError, AttributeError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _write_atomically(path: str, data: bytes, fsync: bool = True) -> None:
    temp = sibling(path, f"{RESERVED}{temporary_name()}.tmp")
    fd = os.open(temp, _CREATE, 0o666)
    try:
        try:
            write_all(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _legacy_properties(path: str) -> Optional[_Properties]:
    """The properties in 0.1's sidecar of ``path`` (``<path>.meta``: one JSON object of
    strings, the user metadata plus ``content_type``), or None when there is no such
    sidecar (missing, too big, or not of that shape: then it is a user's own file)."""
    try:
        with open(path + _LEGACY_SUFFIX, "rb") as file:
            raw = file.read(_LEGACY_MAX + 1)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    if len(raw) > _LEGACY_MAX:
        return None
    try:
        stored = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(stored, dict) or not all(isinstance(value, str)
                                               for value in stored.values()):
        return None
    content_type = stored.pop("content_type", None)
    return {"content_type": content_type or default_content_type(path), "metadata": stored}


def _to_store(target: str, options: dict[str, Any]) -> Optional[_Properties]:
    """The properties a write with ``options`` (``content_type``, ``metadata``, object
    headers) stores, or None when they are the defaults, which need no storing."""
    headers = {name: str(options[name]) for name in OBJECT_HEADERS if options.get(name)}
    metadata = dict(options.get("metadata") or {})
    given = options.get("content_type")
    default = default_content_type(target)
    if not headers and not metadata and given in (None, "", default):
        return None
    return {"content_type": given or default, "metadata": metadata, **headers}


def _parent_is_a_file() -> StorageOperationError:
    return StorageOperationError(
        "local: a parent of this key is a file; a local file cannot also be a directory")


class _AtomicWriter(io.RawIOBase):
    """A streaming write (``open(path, 'wb')``): bytes go to a hidden temporary file,
    renamed over the target on close with its properties (see :func:`_commit`); leaving
    a ``with`` block by an exception, or :meth:`discard`, leaves the target as it was.
    Whole-file writes (``pipe_file``, ``put_file``) take :func:`_write_new` directly."""

    def __init__(self, target: str, properties: Optional[_Properties], store: str,
                 fsync: bool = True) -> None:
        super().__init__()
        self._target = target
        self._store = store
        self._fsync = fsync
        self._properties = properties
        self._pending = bytearray()
        try:
            self._temp, self._fd = _begin(target)
        except BaseException:
            super().close()  # nothing was created: no close() may act on it later
            raise

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: Any) -> int:
        """Collect small writes (a CSV written row by row) into one system call per
        ``_WRITE_BUFFER`` bytes; a large one goes straight through."""
        size = memoryview(data).nbytes
        if self._pending or size < _WRITE_BUFFER:
            self._pending += data
            if len(self._pending) < _WRITE_BUFFER:
                return size
            data, self._pending = self._pending, bytearray()
        write_all(self._fd, data)
        return size

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._pending:
                write_all(self._fd, self._pending)
                self._pending = bytearray()
        except BaseException:
            self.discard()
            raise
        fd, self._fd = self._fd, -1
        super().close()
        _commit(fd, self._temp, self._target, self._properties, self._store, self._fsync)

    def discard(self) -> None:
        if self.closed:
            return
        self._pending = bytearray()
        fd, self._fd = self._fd, -1
        super().close()
        _drop(fd, self._temp)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()


def _write_new(target: str, fill: Any, properties: Optional[_Properties], store: str,
               fsync: bool) -> None:
    """Write a whole file atomically: ``fill(fd, temp)`` writes the bytes into the
    temporary file, then :func:`_commit` publishes them. Plain functions on a bare file
    descriptor: a Python file object costs three more system calls to open (fstat,
    isatty, lseek), a sizeable part of a small write on tmpfs."""
    temp, fd = _begin(target)
    try:
        fill(fd, temp)
    except BaseException:
        _drop(fd, temp)
        raise
    _commit(fd, temp, target, properties, store, fsync)


def _begin(target: str) -> tuple[str, int]:
    """A new hidden temporary file beside ``target`` (its folder created on demand,
    not checked before every write), open for writing: its path and descriptor."""
    temp = sibling(target, f"{RESERVED}{temporary_name()}.tmp")
    for attempt in (1, 2, 3):
        try:
            return temp, os.open(temp, _CREATE, 0o666)
        except FileNotFoundError:
            if attempt == 3:
                raise  # a concurrent delete pruned the folder twice in a row
        except NotADirectoryError as exc:
            raise _parent_is_a_file() from exc
        try:
            os.makedirs(os.path.dirname(temp), exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise _parent_is_a_file() from exc
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _commit(fd: int, temp: str, target: str, properties: Optional[_Properties],
            store: str, fsync: bool) -> None:
    """Finish the temporary file ``temp`` (open as ``fd``, closed here): flush it to the
    device when ``fsync`` (the config field), store ``properties`` (None: only the
    defaults, which need no extended attribute or bookkeeping entry, since a file
    without one reads back as them, unless a portable bookkeeping file of ``target``
    exists), rename it over ``target``, so the rename publishes
    the content and its properties at once. On failure it is removed, and the target
    stays as it was."""
    if properties is None and store != "xattr" and \
            os.access(_bookkeeping_path(target), os.F_OK):
        # An entry there may carry the identity this file is about to have (an inode
        # reused at the same size within one tick of a coarse clock: FAT, HFS+); the
        # default entry replaces it, so the new file never shows stale properties.
        properties = _defaults(target)
    try:
        try:
            if fsync:
                os.fsync(fd)
            if properties is not None:
                _store_properties(fd, target, properties, store, fsync)
        finally:
            os.close(fd)
        _publish(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _forget_legacy(target)


def _drop(fd: int, temp: str) -> None:
    """Abandon an unfinished write: close and remove its temporary file."""
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)


def _store_properties(fd: int, target: str, properties: _Properties, store: str,
                      fsync: bool) -> None:
    """Store ``properties`` of the temporary file ``fd`` that will become ``target``:
    on the file itself (extended attribute) or in the portable bookkeeping file."""
    if store != "portable" and _set_xattr(fd, properties):
        return
    if store == "xattr":
        raise StorageOperationError(
            "local: the filesystem under base_path has no extended attributes, so "
            "content_type and metadata cannot be stored with the file; use "
            "metadata_store='auto' or 'portable'")
    bookkeeping = _bookkeeping_path(target)
    # Keep the entry of the file still in place (its readers need it until the
    # rename) and those of other writes in flight (whichever rename lands last,
    # its entry is there); older ones describe files that are gone.
    entries = _load_entries(bookkeeping)
    try:
        current: Optional[str] = _identity(os.stat(target))
    except OSError:
        # Missing; or a symlink the rename will replace (writes do not check where
        # the last component leads), whose target may be anywhere: no entry to keep.
        current = None
    recent = dict(list(entries.items())[-_IN_FLIGHT:])
    if current in entries:
        recent[current] = entries[current]
    recent[_identity(os.fstat(fd))] = properties
    _write_atomically(bookkeeping, json.dumps({"entries": recent}).encode(), fsync)


def _set_xattr(fd: int, properties: _Properties) -> bool:
    """Store the properties as an extended attribute; False where there are none."""
    if not hasattr(os, "setxattr"):
        return False
    try:
        os.setxattr(fd, _XATTR, json.dumps(properties).encode())
    except OSError as exc:
        if exc.errno not in _NO_XATTR:
            raise
        return False
    return True


def _publish(temp: str, target: str) -> None:
    """Rename the finished ``temp`` over ``target``. A directory named like the key is
    found here, when the rename refuses it, rather than by a check before every write."""
    try:
        os.replace(temp, target)
    except OSError as exc:
        # Linux and macOS say EISDIR; Windows says access denied: ask only then.
        if isinstance(exc, IsADirectoryError) or os.path.isdir(target):
            raise StorageOperationError(
                "local: a directory holding other keys has this name; a local directory "
                "cannot also be a file") from exc
        raise


def _forget_legacy(path: str) -> None:
    """Remove 0.1's sidecar of ``path`` (once it is written or deleted its information
    is stale); a ``.meta`` file that is not such a sidecar is the user's and stays."""
    # os.access answers without raising: an exception per write costs more than the
    # system call, and nearly every write finds no sidecar.
    if os.access(path + _LEGACY_SUFFIX, os.F_OK) and _legacy_properties(path) is not None:
        # A concurrent write or delete may have removed it first.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + _LEGACY_SUFFIX)


class _AtomicLocalFileSystem(LocalFileSystem):  # type: ignore[misc]
    """fsspec's LocalFileSystem with atomic writes, stored properties, the backend's
    own files hidden, and symlinks followed only while they stay inside ``confine``.

    Registered as the ``perceptra-local`` protocol, so ``adapter.url(key)`` with
    ``adapter.storage_options`` gives pandas and Dask these same writes (plain
    ``file://`` would bypass them, and pandas would not create folders).
    """

    protocol = (PROTOCOL, "file", "local")

    def __init__(self, confine: str, keep: str, metadata_store: str = "auto",
                 fsync: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.confine = confine
        self.keep = keep
        self.metadata_store = metadata_store
        self.fsync = fsync

    def properties(self, path: str) -> _Properties:
        """Content type and metadata stored with the file; defaults when absent."""
        path = self._strip_protocol(path)
        if self.metadata_store != "portable" and hasattr(os, "getxattr"):
            try:
                return _clean(json.loads(os.getxattr(path, _XATTR)), path)
            except OSError as exc:
                if exc.errno not in _NO_XATTR:
                    raise
        if self.metadata_store != "xattr":
            entries = _load_entries(_bookkeeping_path(path))
            if entries:
                entry = entries.get(_identity(os.stat(path)))
                if entry is not None:
                    return _clean(entry, path)
        return _legacy_properties(path) or _defaults(path)

    def _open(self, path: str, mode: str = "rb", block_size: Any = None,
              **kwargs: Any) -> Any:
        if mode == "wb":
            target = self._strip_protocol(path)
            return _AtomicWriter(target, _to_store(target, kwargs), self.metadata_store,
                                 self.fsync)
        return super()._open(path, mode, block_size=block_size)

    def _strip_protocol(self, path: Any) -> str:
        """fsspec's, after a shortcut for what the adapter passes: an absolute POSIX
        path without a trailing '/', which fsspec's returns unchanged after about 2 us
        of checks (no protocol can start with '/')."""
        if type(path) is str and path[:1] == "/" and path[-1:] != "/" and os.sep == "/":
            return path
        return str(super()._strip_protocol(path))

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite",
                  **kwargs: Any) -> None:
        target = self._strip_protocol(path)
        _write_new(target, lambda fd, _: write_all(fd, value), _to_store(target, kwargs),
                   self.metadata_store, self.fsync)

    def put_file(self, lpath: str, rpath: str, callback: Any = None, **kwargs: Any) -> None:
        target, source = self._strip_protocol(rpath), os.fspath(lpath)
        properties = _to_store(target, kwargs)
        src = os.open(source, OPEN_READ)  # first: a missing source starts no write
        try:
            _write_new(target, lambda fd, temp: _send(src, fd, source, temp, callback),
                       properties, self.metadata_store, self.fsync)
        finally:
            os.close(src)

    def get_file(self, rpath: str, lpath: str, callback: Any = None, **kwargs: Any) -> None:
        """A plain copy out (the caller stages and renames); stored properties stay here."""
        _copy(self._strip_protocol(rpath), os.fspath(lpath), callback)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        path1 = self._strip_protocol(path1)
        self.put_file(path1, path2, **self.properties(path1))

    def mv(self, path1: str, path2: str, recursive: bool = True, **kwargs: Any) -> None:
        """A file moves as copy and delete, so its properties go with it whatever
        stores them; a directory is renamed whole (bookkeeping files included)."""
        if self.isfile(path1):
            self.cp_file(path1, path2)
            self.rm_file(path1)
        else:
            super().mv(path1, path2, recursive=recursive, **kwargs)

    def rm_file(self, path: str) -> None:
        """Delete a file, its properties, and the directories it leaves empty: on an
        object store a "directory" exists only while it holds keys, and the same key
        names must stay usable here (after deleting ``a/b``, ``a`` can be a file)."""
        path = self._strip_protocol(path)
        os.unlink(path)
        # Absent when the properties are in an extended attribute, or none were stored.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_bookkeeping_path(path))
        _forget_legacy(path)
        folder = os.path.realpath(os.path.dirname(path))
        while folder.startswith(self.keep + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = os.path.dirname(folder)

    def ls(self, path: str, detail: bool = False, **kwargs: Any) -> list[Any]:
        """fsspec's listing without the backend's own files and 0.1's sidecars."""
        entries = super().ls(path, detail=True, **kwargs)
        files = {entry["name"] for entry in entries if entry["type"] == "file"}
        kept = [entry for entry in entries if not _hidden(entry["name"], files)]
        return kept if detail else [entry["name"] for entry in kept]

    def info(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = super().info(path, **kwargs)
        if result.get("islink"):
            real = os.path.realpath(result["name"])
            inside = real.startswith(self.confine + os.sep)
            result["type"] = ("directory" if os.path.isdir(real) else
                              "file" if os.path.isfile(real) else "other") if inside \
                else "other"
            if inside and result["type"] == "file":
                result["size"] = os.stat(real).st_size
        result["etag"] = f"{result['ino']:x}-{round(result['mtime'] * 1e6):x}-{result['size']:x}"
        return result


def _hidden(name: str, files: set[str]) -> bool:
    """Whether a listed path is the backend's own file, or 0.1's sidecar of a file
    listed beside it (only those are read, to check their shape)."""
    if name.rpartition("/")[2].startswith(RESERVED):
        return True
    return name.endswith(_LEGACY_SUFFIX) and name[:-len(_LEGACY_SUFFIX)] in files and \
        _legacy_properties(name[:-len(_LEGACY_SUFFIX)]) is not None


def _copy(source: str, target: str, callback: Any) -> None:
    """Copy the file ``source`` over the file ``target`` (created if missing)."""
    src = os.open(source, OPEN_READ)
    try:
        dst = os.open(target, OPEN_TRUNCATE, 0o666)
        try:
            _send(src, dst, source, target, callback)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _send(src: int, dst: int, source: str, target: str, callback: Any) -> None:
    """Copy the open file ``src`` (at ``source``) into the empty open file ``dst`` (at
    ``target``). On Linux in the kernel (``sendfile``: no bytes through Python, no
    buffer), a chunk at a time so an fsspec callback hears of each; elsewhere with
    ``shutil.copyfile`` by name, which uses the platform's own fast copy (``fcopyfile``
    on macOS, a reused buffer on Windows)."""
    if _KERNEL_COPY:
        try:
            while sent := os.sendfile(dst, src, None, _CHUNK):
                if callback is not None:
                    callback.relative_update(sent)
            return
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS) or \
                    os.lseek(src, 0, os.SEEK_CUR):
                raise
    shutil.copyfile(source, target)
    if callback is not None:
        callback.relative_update(os.path.getsize(target))


fsspec.register_implementation(PROTOCOL, _AtomicLocalFileSystem, clobber=True)
