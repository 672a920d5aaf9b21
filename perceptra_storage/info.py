"""What an fsspec ``info`` dict says about an object, whichever filesystem made it.

s3fs, adlfs, the local and the memory filesystem name the same facts
differently (``LastModified``/``last_modified``/``mtime``, ``ETag``/``etag``,
``ContentType``/``content_settings``); this reads them all into a
:class:`StorageObject`, and finds the checksum an upload stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .base import StorageObject
from .errors import StorageOperationError
from .validation import CHECKSUM_FIELD, RESERVED_METADATA

__all__ = ["stored_digest", "to_object"]


def to_object(key: str, info: Mapping[str, Any], full: bool) -> StorageObject:
    """A :class:`StorageObject` from the ``info`` dict of any of our filesystems; with
    ``full``, content type and user metadata too (listings leave them None)."""
    # A listing makes one of these per object: the spellings of s3fs and obstore's
    # engine (an int size, an aware UTC datetime) are read first and used as they
    # are; every other spelling and type goes through _first and _utc.
    modified = info.get("LastModified")
    if modified is None:
        modified = _first(info, "last_modified", "mtime", "modified", "created")
    etag = info.get("ETag")
    if etag is None:
        etag = info.get("etag")
    size = info.get("size")
    obj = StorageObject(
        key,
        size if type(size) is int else int(size or 0),
        modified if type(modified) is datetime and modified.tzinfo is UTC else _utc(modified),
        None if etag is None else str(etag).strip('"'),
    )
    if full:
        settings = info.get("content_settings")
        content_type = _first(info, "ContentType", "content_type") or (
            settings.get("content_type") if isinstance(settings, Mapping) else
            getattr(settings, "content_type", None))
        obj.content_type = content_type or "application/octet-stream"
        obj.metadata = {str(k).lower(): str(v) for k, v in _metadata(info).items()
                        if str(k).lower() not in RESERVED_METADATA}
        for name, spelled in _HEADERS.items():
            value = _first(info, spelled, name) or (
                settings.get(name) if isinstance(settings, Mapping) else
                getattr(settings, name, None))
            setattr(obj, name, str(value) if value else None)
    return obj


_HEADERS = {"cache_control": "CacheControl", "content_disposition": "ContentDisposition",
            "content_encoding": "ContentEncoding"}
"""The object headers of ``StorageObject``, and how boto3 spells them."""


def stored_digest(info: Mapping[str, Any]) -> str:
    """The SHA-256 an upload with ``checksum=True`` stored with the object."""
    digest = {str(k).lower(): v for k, v in _metadata(info).items()}.get(CHECKSUM_FIELD)
    if not digest:
        raise StorageOperationError(
            "no stored checksum; upload it with checksum=True to verify downloads")
    return str(digest)


def _metadata(info: Mapping[str, Any]) -> Mapping[str, Any]:
    found = _first(info, "Metadata", "metadata")
    return found if isinstance(found, Mapping) else {}


def _first(info: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if info.get(name) is not None:
            return info[name]
    return None


def _utc(value: Any) -> datetime:
    """A timezone-aware UTC datetime from an fsspec time field (datetime or epoch)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return datetime.fromtimestamp(0, tz=UTC)
