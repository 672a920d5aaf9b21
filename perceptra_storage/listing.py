"""Listings: each file under a prefix as ``(key, info)``, in key order, lazily.

Four ways, by what the filesystem offers: result pages pulled one at a time from
its event loop (S3, Azure: the filesystem's ``_object_pages``), an ordered iterator
of its own (memory: ``object_entries``), one flat ``find`` (``flat_namespace``
without either), or a sorted depth-first walk of directories (local disk). One
filter (:meth:`Listing._listed`) decides what a listing shows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Optional

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["Listing"]


class Listing:
    """The listing half of :class:`~perceptra_storage.adapter.FsspecStorageAdapter`,
    over its filesystem and paths."""

    flat_namespace: ClassVar[bool] = False
    """True for object stores whose filesystem has no ``_object_pages``: list with one
    flat ``find`` instead of a directory walk."""

    if TYPE_CHECKING:
        @property
        def filesystem(self) -> AbstractFileSystem: ...

        def _base(self) -> str: ...

        def _path(self, key: str) -> str: ...

        def _key_of(self, path: str, start: Optional[int] = None) -> str: ...

        def _key_start(self) -> int: ...

    def _is_internal(self, key: str) -> bool:
        """True for the backend's own bookkeeping files, which listings hide."""
        return False

    def _listed(self, key: str, info: Mapping[str, Any], prefix: str) -> bool:
        """Whether a listing shows the entry: a file (not a folder marker ending in
        '/') under ``prefix`` that is not the backend's own bookkeeping."""
        return info.get("type") == "file" and key.startswith(prefix) and \
            not key.endswith("/") and not self._is_internal(key)

    def _iter_entries(self, prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """``(key, info)`` of each file under ``prefix``, sorted by key."""
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else self._base()
        fs: Any = self.filesystem
        if hasattr(fs, "_object_pages"):
            yield from self._paged_entries(fs._object_pages(self._path(prefix)), prefix)
        elif hasattr(fs, "object_entries"):
            yield from self._scanned_entries(fs.object_entries(self._path(prefix)), prefix)
        elif self.flat_namespace:
            yield from self._find_entries(start, prefix)
        else:
            yield from self._walk_entries(start, prefix)

    def _paged_entries(self, pages: AsyncIterator[list[dict[str, Any]]],
                       prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Pull one page at a time from the filesystem's event loop."""
        from fsspec.asyn import sync

        fs = self.filesystem
        start = self._key_start()
        while (page := sync(fs.loop, _next_page, pages)) is not None:
            for info in page:
                key = self._key_of(info["name"], start)
                if self._listed(key, info, prefix):
                    yield key, info

    def _scanned_entries(self, entries: Iterator[dict[str, Any]],
                         prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Entries from a filesystem that lists a string prefix in order by itself."""
        start = self._key_start()
        for info in entries:
            key = self._key_of(info["name"], start)
            if self._listed(key, info, prefix):
                yield key, info

    def _find_entries(self, start: str, prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        try:
            found = self.filesystem.find(start, detail=True)
        except FileNotFoundError:
            return
        offset = self._key_start()
        for name in sorted(found, key=lambda n: n.strip("/")):
            info = found[name]
            key = self._key_of(name, offset)
            if self._listed(key, info, prefix):
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
        offset = self._key_start()
        for info in ordered:
            key = self._key_of(info["name"], offset)
            if info["type"] == "directory":
                if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                    yield from self._walk_entries(info["name"], prefix)
            elif self._listed(key, info, prefix):
                yield key, info


async def _next_page(pages: AsyncIterator[list[dict[str, Any]]]) -> Optional[list[dict[str, Any]]]:
    try:
        return await pages.__anext__()
    except StopAsyncIteration:
        return None
