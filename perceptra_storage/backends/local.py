"""Local filesystem backend: a directory treated as a bucket.

Writes are atomic: bytes go to a hidden temporary file in the target's
directory, which is renamed over the target once complete, so readers see the
old file or the new one, never half of one, and a failed write leaves the old
file in place.  Content type and metadata are kept in one extended attribute
of the file itself (no sidecar files that could shadow a user's key).  Every
path is resolved and must stay under ``base_path``, symlinks included.
"""

import errno
import io
import json
import os
import re
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Optional, Required, TypedDict, Union

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from ..adapter import FsspecStorageAdapter
from ..base import PresignedUrl
from ..errors import (
    StorageNotFoundError,
    StorageOperationError,
    StoragePermissionError,
    StorageValidationError,
)
from ..validation import default_content_type

__all__ = ["LocalConfig", "LocalStorageAdapter"]

_TEMP_NAME = re.compile(r"\.~ps\.[0-9a-f]{32}\.tmp\Z")
_XATTR = "user.perceptra_storage.meta"
_NO_XATTR = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA)
_CHUNK = 8 * 1024 * 1024
PROTOCOL = "perceptra-local"


class LocalConfig(TypedDict, total=False):
    """``config`` of the ``local`` backend."""

    base_path: Required[Union[str, os.PathLike[str]]]
    """Directory that holds the objects (the "bucket")."""
    create_dirs: bool
    """Create ``base_path`` (and ``prefix`` under it) on first use; default True."""
    prefix: str
    """Sub-directory of ``base_path`` that this adapter is confined to, e.g. one tenant."""


class LocalStorageAdapter(FsspecStorageAdapter):
    """Objects as files under ``base_path``; keys are relative paths."""

    backend_name = "local"
    batch_in_threads = False
    config_schema = LocalConfig

    def _check_config(self) -> None:
        self._base_path = os.path.abspath(str(os.fspath(self.config["base_path"])))

    def _root(self) -> str:
        return self._base_path

    def _make_filesystem(self) -> AbstractFileSystem:
        base = self._base()
        if self.config.get("create_dirs", True):
            os.makedirs(base, exist_ok=True)
        elif not os.path.isdir(self._base_path):
            raise StorageNotFoundError(
                f"local: base_path {self._base_path!r} does not exist and create_dirs is False")
        return _AtomicLocalFileSystem(confine=os.path.realpath(self._base_path),
                                      keep=os.path.realpath(base), skip_instance_cache=True)

    def _check_key(self, key: Any) -> str:
        key = super()._check_key(key)
        if any(_TEMP_NAME.match(part) for part in key.split("/")):
            raise StorageValidationError(
                f"local: key {key!r} has the form of an internal temporary file", key=key)
        if not self._stays_inside(key):
            raise StoragePermissionError(
                f"local: key {key!r} resolves outside the adapter's directory (symlink)",
                key=key)
        return str(key)

    def _stays_inside(self, key: str) -> bool:
        """Whether ``key`` resolves inside the adapter's directory. Only the key's own
        components can be symlinks that lead out (the root was resolved once), so they
        are checked one ``lstat`` each, and fully resolved only when one is a link:
        a third of the cost of ``realpath`` on every operation."""
        keep = self.filesystem.keep
        path = keep
        for part in key.split("/"):
            path = f"{path}/{part}"
            try:
                if stat.S_ISLNK(os.lstat(path).st_mode):
                    return os.path.realpath(f"{keep}/{key}").startswith(keep + os.sep)
            except (FileNotFoundError, NotADirectoryError):
                return True  # nothing exists below a missing entry
        return True

    def _is_internal(self, key: str) -> bool:
        return bool(_TEMP_NAME.match(key.rpartition("/")[2]))

    def _head(self, path: str) -> dict[str, Any]:
        info = dict(self.filesystem.info(path))
        if info.get("type") == "file":
            info.update(_read_properties(path))
        return info

    def _probe(self) -> None:
        self.filesystem  # noqa: B018 - builds it, creating base_path when create_dirs
        if not os.path.isdir(self._base()):
            raise StorageNotFoundError(f"local: directory {self._base()!r} does not exist")

    def _public_url(self, key: str) -> Optional[str]:
        """A ``file://`` URI: usable by programs on this machine, by no one else."""
        return Path(self._path(key)).as_uri()

    def _sign(self, path: str, key: str, expiration: int, method: str) -> PresignedUrl:
        """Local files have no signer: GET gets the plain ``file://`` URI, flagged as
        unscoped and without an enforced expiry; other methods are refused."""
        if method != "GET":
            raise StorageOperationError(
                f"local: a file:// URL cannot carry a {method} grant; use the adapter "
                "directly or an S3/Azure backend for client uploads")
        return PresignedUrl(
            url=Path(path).as_uri(),
            expires_at=datetime.now(UTC) + timedelta(seconds=expiration),
            method="GET", scoped=False, expiry_enforced=False)


def _read_properties(path: str) -> dict[str, Any]:
    """Content type and metadata stored with the file; defaults when absent."""
    try:
        stored = json.loads(os.getxattr(path, _XATTR))
    except OSError as exc:
        if exc.errno not in _NO_XATTR:
            raise
        stored = {}
    return {"content_type": stored.get("content_type") or default_content_type(path),
            "metadata": dict(stored.get("metadata") or {})}


def _parent_is_a_file() -> StorageOperationError:
    return StorageOperationError(
        "local: a parent of this key is a file; a local file cannot also be a directory")


class _AtomicWriter(io.RawIOBase):
    """A write to a hidden temporary file, renamed over the target on close."""

    def __init__(self, target: str, content_type: Optional[str],
                 metadata: Optional[dict[str, str]]) -> None:
        super().__init__()
        if os.path.isdir(target):
            raise StorageOperationError(
                "local: a directory holding other keys has this name; a local directory "
                "cannot also be a file")
        folder = os.path.dirname(target)
        self._target = target
        self._temp = os.path.join(folder, f".~ps.{uuid.uuid4().hex}.tmp")
        self._content_type = content_type or default_content_type(target)
        self._metadata = dict(metadata or {})
        for attempt in (1, 2, 3):
            try:
                self._file = open(self._temp, "xb")  # noqa: SIM115 - closed by close/discard
                break
            except FileNotFoundError:
                if attempt == 3:
                    raise  # a concurrent delete pruned the folder twice in a row
            except NotADirectoryError as exc:
                raise _parent_is_a_file() from exc
            try:  # the folder is created on demand, not checked before every write
                os.makedirs(folder, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise _parent_is_a_file() from exc

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._file.fileno()

    def write(self, data: Any) -> int:
        return self._file.write(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._store_properties()
            os.replace(self._temp, self._target)
        except BaseException:
            self.discard()
            raise
        super().close()

    def _store_properties(self) -> None:
        value = json.dumps({"content_type": self._content_type, "metadata": self._metadata})
        try:
            os.setxattr(self._temp, _XATTR, value.encode())
        except OSError as exc:
            if exc.errno not in _NO_XATTR:
                raise
            if self._metadata or self._content_type != default_content_type(self._target):
                raise StorageOperationError(
                    "local: the filesystem under base_path has no extended attributes, so "
                    "content_type and metadata cannot be stored with the file") from exc

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        if os.path.lexists(self._temp):
            os.unlink(self._temp)
        super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()


class _AtomicLocalFileSystem(LocalFileSystem):  # type: ignore[misc]
    """fsspec's LocalFileSystem with atomic writes, stored properties and
    symlinks followed only while they stay inside ``confine``.

    Registered as the ``perceptra-local`` protocol, so ``adapter.url(key)`` with
    ``adapter.storage_options`` gives pandas and Dask these same writes (plain
    ``file://`` would bypass them, and pandas would not create folders).
    """

    protocol = (PROTOCOL, "file", "local")

    def __init__(self, confine: str, keep: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.confine = confine
        self.keep = keep

    def _open(self, path: str, mode: str = "rb", block_size: Any = None,
              **kwargs: Any) -> Any:
        if mode == "wb":
            return _AtomicWriter(self._strip_protocol(path), kwargs.get("content_type"),
                                 kwargs.get("metadata"))
        return super()._open(path, mode, block_size=block_size)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite",
                  **kwargs: Any) -> None:
        with self._open(path, "wb", **kwargs) as target:
            target.write(value)

    def put_file(self, lpath: str, rpath: str, callback: Any = None, **kwargs: Any) -> None:
        with open(lpath, "rb") as source, self._open(rpath, "wb", **kwargs) as target:
            _copy(source, target, callback)

    def get_file(self, rpath: str, lpath: str, callback: Any = None, **kwargs: Any) -> None:
        """A plain copy out (the caller stages and renames); stored properties stay here."""
        with open(self._strip_protocol(rpath), "rb") as source, open(lpath, "wb") as target:
            _copy(source, target, callback)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        path1 = self._strip_protocol(path1)
        with open(path1, "rb") as source, \
                self._open(path2, "wb", **_read_properties(path1)) as target:
            _copy(source, target, None)

    def mv(self, path1: str, path2: str, recursive: bool = False, **kwargs: Any) -> None:
        """Move one file by one rename (atomic; its stored properties travel with it)
        into a folder made as needed, replacing a file there (``os.replace``, which
        Windows' ``os.rename`` would refuse), and drop the folders it leaves empty."""
        path1, path2 = self._strip_protocol(path1), self._strip_protocol(path2)
        if os.path.isdir(path2):
            raise IsADirectoryError(errno.EISDIR, "destination is a folder", path2)
        os.makedirs(os.path.dirname(path2), exist_ok=True)
        os.replace(path1, path2)
        self._drop_empty_folders(path1)

    def rm_file(self, path: str) -> None:
        """Delete a file and the directories it leaves empty: on an object store a
        "directory" exists only while it holds keys, and the same key names must stay
        usable here (after deleting ``a/b``, ``a`` can be a file)."""
        path = self._strip_protocol(path)
        os.unlink(path)
        self._drop_empty_folders(path)

    def _drop_empty_folders(self, path: str) -> None:
        folder = os.path.realpath(os.path.dirname(path))
        while folder.startswith(self.keep + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = os.path.dirname(folder)

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


def _copy(source: Any, target: Any, callback: Any) -> None:
    """Copy file to file in the kernel (``sendfile``: no bytes through Python, no
    buffer), a chunk at a time so an fsspec callback hears of each; plain reads and
    writes where the kernel cannot."""
    try:
        while sent := os.sendfile(target.fileno(), source.fileno(), None, _CHUNK):
            if callback is not None:
                callback.relative_update(sent)
        return
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS) or source.tell():
            raise
    while chunk := source.read(_CHUNK):
        target.write(chunk)
        if callback is not None:
            callback.relative_update(len(chunk))


fsspec.register_implementation(PROTOCOL, _AtomicLocalFileSystem, clobber=True)
