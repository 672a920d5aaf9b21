"""File objects and local files around transfers.

:class:`GuardedFile` is what ``adapter.open`` returns: the filesystem's file
object with its errors typed and a failed write discarded. :func:`staged` writes
a download beside its destination and renames it over it only when complete.
:func:`upload_source` sorts what ``upload_file`` was given into bytes, a local
path or a binary reader, once, for every upload route.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Optional, Union

from .errors import (
    StorageNotFoundError,
    StorageOperationError,
    StorageValidationError,
    translate_errors,
)

if TYPE_CHECKING:
    from .adapter import FsspecStorageAdapter

__all__ = ["GuardedFile", "abandon", "expect_digest", "sha256_of", "staged", "upload_source"]

COPY_CHUNK = 8 * 1024 * 1024
"""Read size when hashing or copying a whole object."""


class GuardedFile(io.RawIOBase):
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
                        abandon(self._raw)  # a failed commit leaves no upload behind
                    raise
        finally:
            super().close()

    def discard(self) -> None:
        """Drop a pending write; the stored object (if any) is untouched."""
        if not self.closed:
            abandon(self._raw)
            super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self.mode == "wb":
            self.discard()
        else:
            self.close()


def abandon(file: Any) -> None:
    """Throw away an unfinished write without committing it."""
    discard = getattr(file, "discard", None)
    if callable(discard):
        discard()
    with contextlib.suppress(AttributeError):
        file.closed = True


def upload_source(file_obj: Any, backend: str, key: str) -> Union[bytes, str, IO[bytes]]:
    """bytes for bytes-like data, a str path for a local file, or a binary reader."""
    if isinstance(file_obj, (bytes, bytearray, memoryview)):
        return bytes(file_obj)
    if isinstance(file_obj, (str, os.PathLike)):
        path = os.fspath(file_obj)
        if not isinstance(path, str) or not os.path.isfile(path):
            raise StorageValidationError(
                f"upload source {str(path)!r} is not an existing local file",
                backend=backend, key=key)
        return path
    if isinstance(file_obj, io.TextIOBase) or "b" not in getattr(file_obj, "mode", "b"):
        raise StorageValidationError(
            f"file object for {key!r} is open in text mode; open it with 'rb'",
            backend=backend, key=key)
    if not callable(getattr(file_obj, "read", None)):
        raise StorageValidationError(
            f"cannot upload a {type(file_obj).__name__}; give bytes, a path "
            "or a binary file object", backend=backend, key=key)
    return file_obj  # type: ignore[no-any-return]


@contextlib.contextmanager
def staged(destination: str, key: str, backend: str) -> Iterator[str]:
    """A temporary path beside ``destination``, renamed over it if the block
    succeeds and produced a file; removed otherwise."""
    target = os.path.abspath(destination)
    if os.path.isdir(target):
        raise StorageValidationError(
            f"destination {destination!r} is a directory; give a file path",
            backend=backend, key=key)
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex}.part")
    try:
        yield temp
        if not os.path.isfile(temp):
            raise StorageNotFoundError("not a file", backend=backend, key=key)
        os.replace(temp, target)
    finally:
        if os.path.isdir(temp):
            shutil.rmtree(temp, ignore_errors=True)
        elif os.path.lexists(temp):
            os.unlink(temp)


def sha256_of(stream: IO[bytes]) -> str:
    hasher = hashlib.sha256()
    while chunk := stream.read(COPY_CHUNK):
        hasher.update(chunk)
    return hasher.hexdigest()


def expect_digest(actual: str, expected: str, key: str, what: str) -> None:
    if actual != expected:
        raise StorageOperationError(
            f"checksum mismatch: the {what} hash to sha256 {actual[:16]}..., "
            f"expected {expected[:16]}...", key=key)


