"""File objects and local files around transfers.

:class:`GuardedFile` is what ``adapter.open`` returns: the filesystem's file
object with its errors typed and a failed write discarded. :func:`staged` writes
a download beside its destination and renames it over it only when complete.
:func:`upload_source` sorts what ``upload_file`` was given into bytes, a local
path or a binary reader, once, and :class:`UploadPlan` holds the rest of what an
upload decides before sending, for every upload route.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import shutil
import stat
import tempfile
import time
import typing
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Optional, Union

from .errors import (
    StorageNotFoundError,
    StorageOperationError,
    StorageTimeoutError,
    StorageValidationError,
    translate_errors,
)

if TYPE_CHECKING:
    from .adapter import FsspecStorageAdapter
    from .transfer import Progress

Options = Callable[[str], dict[str, Any]]
"""Write options for an fsspec call named by its argument (``pipe_file``, ``put_file``,
``open``): content type, metadata, part sizes."""

__all__ = [
    "GuardedFile",
    "UploadPlan",
    "abandon",
    "check_writable",
    "copy_into",
    "expect_digest",
    "file_name",
    "hashed",
    "sha256_of",
    "sibling",
    "staged",
    "temporary_name",
    "upload_source",
    "write_all",
    "write_stream",
]

BINARY = getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
"""Flags every bare descriptor here takes: no newline translation (Windows), not
inherited by child processes (POSIX)."""
OPEN_READ = os.O_RDONLY | BINARY
OPEN_TRUNCATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | BINARY

COPY_CHUNK = 8 * 1024 * 1024
"""Read size when hashing or copying a whole object."""
_STREAM_CHUNK = 1024 * 1024
"""Read size when copying a file object into a new object: small, so the target's own
write buffer (a multipart part on object stores) bounds the memory, not this copy."""


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


def upload_source(file_obj: Any, backend: str,
                  key: str) -> tuple[Union[bytes, str, IO[bytes]], int]:
    """bytes for bytes-like data, a str path for a local file (given as ``os.PathLike``),
    or a binary reader; with the size of the caller's source where it is known without
    reading it (0 for a reader), from the one ``stat`` that checks a path.

    A plain ``str`` is refused: it could be a path or text content, and treating text
    that a web request supplied as a path would upload whatever server file it names.
    """
    if isinstance(file_obj, (bytes, bytearray, memoryview)):
        data = bytes(file_obj)
        return data, len(data)
    if isinstance(file_obj, str):
        raise StorageValidationError(
            "upload source is a str, which could be a path or text: pass a local file "
            "as pathlib.Path(...), text as str.encode(), or a binary file object",
            backend=backend, key=key)
    if isinstance(file_obj, os.PathLike):
        path = os.fspath(file_obj)
        try:
            info = os.stat(path) if isinstance(path, str) else None
        except (OSError, ValueError):
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            raise StorageValidationError(
                f"upload source {str(path)!r} is not an existing local file",
                backend=backend, key=key)
        return typing.cast(str, path), info.st_size
    if isinstance(file_obj, io.TextIOBase) or "b" not in getattr(file_obj, "mode", "b"):
        raise StorageValidationError(
            f"file object for {key!r} is open in text mode; open it with 'rb'",
            backend=backend, key=key)
    if not callable(getattr(file_obj, "read", None)):
        raise StorageValidationError(
            f"cannot upload a {type(file_obj).__name__}; give bytes, a "
            "pathlib.Path or a binary file object", backend=backend, key=key)
    return file_obj, 0


def staged(destination: str, key: str, backend: str) -> _Staged:
    """A temporary path beside ``destination``, the target of a ``with`` block, renamed
    over it if the block succeeds and produced a file; removed otherwise. (One ``stat``
    before, two when the destination is new, and one after on success: a small local
    download is a handful of system calls in all.)"""
    return _Staged(destination, key, backend)


class _Staged:
    """The context of :func:`staged`. A class rather than a generator-based context
    manager, whose generator and wrapper cost about 6,000 instructions a download
    (callgrind), a twentieth of a small local one."""

    __slots__ = ("backend", "key", "target", "temp")

    def __init__(self, destination: str, key: str, backend: str) -> None:
        target = os.path.abspath(destination)
        try:
            found: Optional[int] = os.stat(target).st_mode
        except (OSError, ValueError):  # what os.path.isdir answers False for
            found = None
        if found is not None and stat.S_ISDIR(found):
            raise StorageValidationError(
                f"destination {destination!r} is a directory; give a file path",
                backend=backend, key=key)
        if found is None:  # an existing destination proves its folder exists
            folder = os.path.dirname(target)
            if not os.path.isdir(folder):
                os.makedirs(folder, exist_ok=True)
        self.target, self.key, self.backend = target, key, backend
        self.temp = sibling(target, f".{file_name(target)}.{temporary_name()}.part")

    def __enter__(self) -> str:
        return self.temp

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Any) -> None:
        temp, renamed = self.temp, False
        try:
            if exc_type is None:
                try:
                    produced = stat.S_ISREG(os.lstat(temp).st_mode)
                except FileNotFoundError:
                    produced = False
                if not produced:
                    raise StorageNotFoundError("not a file", backend=self.backend,
                                               key=self.key)
                os.replace(temp, self.target)
                renamed = True
        finally:
            if not renamed and os.path.isdir(temp):
                shutil.rmtree(temp, ignore_errors=True)
            elif not renamed and os.path.lexists(temp):
                os.unlink(temp)


if os.altsep is None:
    def sibling(path: str, name: str) -> str:
        """The path of ``name`` in the folder of the file at ``path``. On POSIX by
        slicing at the last '/': ``os.path.dirname`` and ``join`` cost about 2 us a
        pair, as much as one of a small local write's system calls."""
        return path[:path.rfind("/") + 1] + name

    def file_name(path: str) -> str:
        """The last component of ``path`` (``os.path.basename``, by the same slicing)."""
        return path[path.rfind("/") + 1:]
else:  # Windows: two separators and drive letters, which os.path knows
    def sibling(path: str, name: str) -> str:
        """The path of ``name`` in the folder of the file at ``path``."""
        return os.path.join(os.path.dirname(path), name)

    def file_name(path: str) -> str:
        """The last component of ``path``."""
        return os.path.basename(path)


def temporary_name() -> str:
    """128 random bits in hex, for a temporary file's name. From ``random`` rather than
    ``os.urandom`` (a system call per file): the name must only differ from every other
    writer's, which the exclusive create enforces anyway, and ``random`` is reseeded
    in a forked child."""
    return f"{random.getrandbits(128):032x}"


def write_all(fd: int, data: Any) -> None:
    """``os.write`` all of the bytes-like ``data`` to the descriptor ``fd`` (one call may
    write less than asked). The local backend and the obstore engine write small files
    on bare descriptors: a Python file object costs three more system calls to open."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


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


def hashed(source: Union[bytes, str, IO[bytes]]) -> tuple[str, Union[bytes, str, IO[bytes]]]:
    """The SHA-256 of an upload source, and the source to send: a file object of up
    to COPY_CHUNK bytes becomes bytes (sent in one request, which the store can
    verify); a larger one is spooled to disk so that it can be read twice."""
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest(), source
    if isinstance(source, str):
        with open(source, "rb") as local:
            return sha256_of(local), source
    head = source.read(COPY_CHUNK + 1)
    if len(head) <= COPY_CHUNK:
        return hashlib.sha256(head).hexdigest(), bytes(head)
    spool = tempfile.SpooledTemporaryFile(max_size=COPY_CHUNK)  # noqa: SIM115 - returned
    spool.write(head)
    shutil.copyfileobj(source, spool, COPY_CHUNK)
    spool.seek(0)
    digest = sha256_of(spool)
    spool.seek(0)
    return digest, spool


class UploadPlan(typing.NamedTuple):
    """An upload with everything decided before a byte moves: the checked key and its
    path, the source sorted by :func:`upload_source` (hashed and, for a file object,
    spooled when a checksum is asked), the write options (content type, metadata),
    the SHA-256 to store and verify, and the byte total progress counts toward.

    ``FsspecStorageAdapter._plan_upload`` makes it; the blocking adapter,
    ``adapter.aio`` and the batch engine then differ only in how they send it
    (:meth:`request` is the filesystem call they make). Immutable as a named tuple
    rather than a frozen dataclass, whose ``__init__`` (an ``object.__setattr__`` per
    field) cost about 5,500 instructions an upload (callgrind), over 3% of a small
    local one."""

    key: str
    path: str
    source: Union[bytes, str, IO[bytes]]
    options: Options
    digest: Optional[str]
    """The source's SHA-256 (hex) when the upload was asked for a checksum."""
    total: int
    """Size of the caller's source when cheaply known (0 for a file object)."""

    def request(self, fs: Any, progress: Progress
                ) -> Optional[tuple[str, tuple[Any, ...], dict[str, Any], int]]:
        """The fsspec call that stores a bytes or local-path source on ``fs``: method
        name (without the async ``_``), args, kwargs (with ``checksum=`` where
        :meth:`asks` says so), and the bytes to count as sent once it returned
        (fsspec reports no progress for ``pipe_file``). None for a file object,
        which each route copies its own way."""
        checksum = {"checksum": self.digest} if self.asks(fs) else {}
        if isinstance(self.source, bytes):
            return ("pipe_file", (self.path, self.source),
                    {**self.options("pipe_file"), **checksum}, len(self.source))
        if isinstance(self.source, str):
            return ("put_file", (self.source, self.path),
                    {"callback": progress.fsspec_callback(), **self.options("put_file"),
                     **checksum}, 0)
        return None

    def asks(self, fs: Any) -> bool:
        """Whether the store itself is asked to verify the upload (``verifies_uploads``)."""
        return self.digest is not None and bool(getattr(fs, "verifies_uploads", False))

    def verified(self, fs: Any, answer: Any) -> bool:
        """Whether the answer of :meth:`request`'s call says the store verified the bytes
        (otherwise an upload with a checksum is read back and hashed)."""
        return self.asks(fs) and answer is True


def write_stream(fs: Any, path: str, source: IO[bytes], options: Options,
                 sink: Optional[Progress] = None) -> None:
    """Copy a file object into a new object of ``fs``; a failure stores nothing, also
    when the final commit fails (an unfinished multipart upload is aborted). An
    empty stream is stored with ``pipe_file``: s3fs commits an empty write with a
    bare touch that drops the content type and metadata."""
    first = source.read(_STREAM_CHUNK)
    if not first:
        fs.pipe_file(path, b"", **options("pipe_file"))
        return
    target = fs.open(path, "wb", **options("open"))
    try:
        chunk = first
        while chunk:
            target.write(chunk)
            if sink is not None:
                sink.advance(len(chunk))
            chunk = source.read(_STREAM_CHUNK)
        target.close()
    except BaseException:
        abandon(target)
        raise


def check_writable(destination: Any) -> None:
    """A download destination that is not a path must be a binary writer."""
    if not callable(getattr(destination, "write", None)) or \
            isinstance(destination, io.TextIOBase):
        raise StorageValidationError(
            f"destination must be a path or a binary file object, not "
            f"{type(destination).__name__}")


def copy_into(source: IO[bytes], destination: Any, sink: Progress,
              deadline: Optional[float] = None) -> str:
    """Copy ``source`` into the writer ``destination`` in chunks; the SHA-256 of
    what was copied. Past ``deadline`` (``time.monotonic()``) no further chunk is
    read: each read is one request, bounded by the SDK's timeouts, so the whole
    copy ends within about one chunk's time of it."""
    hasher = hashlib.sha256()
    while chunk := source.read(COPY_CHUNK):
        destination.write(chunk)
        hasher.update(chunk)
        sink.advance(len(chunk))
        if deadline is not None and time.monotonic() > deadline:
            raise StorageTimeoutError("not done within operation_timeout")
    return hasher.hexdigest()


class ChunkedWriter:
    """The buffering half of an async writer that stores an object in pieces as the
    data comes (``adapter.aio.open(key, 'wb')`` on s3/minio/azure): :meth:`write` hands
    :meth:`_send` one piece of ``piece_size`` bytes at a time, so memory holds at most
    one piece; the backend's subclass sends pieces, commits what is left and aborts."""

    piece_size: int

    def __init__(self) -> None:
        self._buffer = bytearray()

    async def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= self.piece_size:
            piece = bytes(self._buffer[:self.piece_size])
            del self._buffer[:self.piece_size]
            await self._send(piece)

    async def _send(self, body: bytes) -> None:
        raise NotImplementedError
