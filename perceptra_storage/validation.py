"""Checks that run before any I/O: keys, prefixes, config dicts, metadata, URL arguments.

They are the same for every backend, so a key or a metadata dict that works on
one backend works on all of them, and one that cannot work anywhere is refused
with :class:`StorageValidationError` before a byte is sent.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Optional
from urllib.parse import quote, unquote

from .errors import StorageValidationError

MAX_KEY_BYTES = 1024
"""S3's and Azure's limit on a key (Azure counts characters; bytes is the stricter rule)."""

MAX_METADATA_BYTES = 2048
"""S3's limit on user metadata (names plus values); Azure allows 8 KiB."""

MAX_EXPIRATION = 7 * 24 * 3600
"""SigV4 presigned URLs cannot live longer than seven days; we use one limit everywhere."""

SIGNABLE_METHODS = frozenset({"GET", "PUT", "HEAD", "DELETE"})

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PLAIN_KEY = re.compile(r"(?:[\w-][\w.-]*/)*[\w-][\w.-]*\Z", re.ASCII)
"""Keys that pass every rule of ``validate_key`` but the length: ASCII letters, digits,
``_.-`` in non-empty segments that start with no '.' (so none is '.' or '..') and no
'%' (so none decodes to one)."""
_METADATA_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
_METADATA_NAME_HYPHENS = re.compile(r"[a-z_][a-z0-9_]*(-[a-z0-9_]+)*\Z")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*\Z")
OBJECT_HEADERS = ("cache_control", "content_disposition", "content_encoding")
"""Standard HTTP headers an upload may store with an object (beside its content type),
and that ``get_file_metadata`` reports: the field names of ``StorageObject``."""
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*\Z")
_CONTENT_TYPE = re.compile(
    r"[A-Za-z0-9][\w.+-]*/[\w.+-]+(\s*;\s*[\w.+-]+=(\"[^\"\r\n]*\"|[\w.+-]+))*\Z")
CHECKSUM_FIELD = "perceptra_sha256"
"""Metadata name under which ``checksum=True`` uploads store the SHA-256 of the content."""
RESERVED_METADATA = frozenset({"is_directory", "hdi_isfolder", CHECKSUM_FIELD})
"""Names kept for bookkeeping (adlfs, Data Lake, our checksums): not the user's to set,
and never shown in ``metadata``."""

# The builtin table only: system mime.types files differ between machines, and the
# same key must get the same content type on every machine and backend.
_MIME = mimetypes.MimeTypes()


def _fail(
    message: str, backend: Optional[str], key: Optional[str] = None
) -> StorageValidationError:
    return StorageValidationError(message, backend=backend, key=key)


def _check_segments(text: str, what: str, backend: Optional[str], allow_trailing: bool) -> None:
    if not isinstance(text, str):
        raise _fail(f"{what} must be a str, not {type(text).__name__}", backend)
    if _CONTROL.search(text):
        raise _fail(f"{what} {text!r} contains a NUL or control character", backend, text)
    if "\\" in text:
        raise _fail(f"{what} {text!r} contains a backslash; use '/' between segments",
                    backend, text)
    if text.startswith("/"):
        raise _fail(f"{what} {text!r} starts with '/'; keys are relative to the root",
                    backend, text)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        size = -1  # a lone surrogate: refused below, after the length rule
    if size > MAX_KEY_BYTES or \
            (size < 0 and len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES):
        raise _fail(f"{what} is longer than {MAX_KEY_BYTES} UTF-8 bytes", backend, text[:64])
    if size < 0:
        raise _fail(f"{what} {text!r} is not valid Unicode (lone surrogate)", backend)
    segments = text.split("/")
    if allow_trailing and segments and segments[-1] == "":
        segments = segments[:-1]
    for segment in segments:
        if segment == "":
            raise _fail(f"{what} {text!r} has an empty segment ('//' or a trailing '/')",
                        backend, text)
        # Only a segment of dots, or one that decodes to dots, can climb: most skip unquote.
        if segment[0] in ".%" and unquote(segment) in (".", ".."):
            raise _fail(f"{what} {text!r} has a '.' or '..' segment", backend, text)


def validate_key(key: Any, backend: Optional[str] = None) -> str:
    """Return ``key`` if it is a valid object key, else raise StorageValidationError.

    A valid key is a non-empty str of '/'-separated segments, no segment empty,
    '.' or '..' (also when percent-encoded), no leading '/', no backslash, no
    control character, at most 1024 UTF-8 bytes. So no key can name anything
    outside the adapter's root, on any backend.
    """
    if isinstance(key, str) and len(key) <= MAX_KEY_BYTES and _PLAIN_KEY.match(key):
        return key  # the usual key, in one match instead of the rules one by one
    if isinstance(key, str) and key == "":
        raise _fail("key is empty", backend, key)
    _check_segments(key, "key", backend, allow_trailing=False)
    return typing.cast(str, key)


def validate_prefix(prefix: Any, backend: Optional[str] = None) -> str:
    """Return a listing prefix: like a key, but may be empty, partial, or end with '/'."""
    if prefix is None or prefix == "":
        return ""
    _check_segments(prefix, "prefix", backend, allow_trailing=True)
    last = prefix.rsplit("/", 1)[-1]
    if last in (".", ".."):
        raise _fail(f"prefix {prefix!r} ends in a '.' or '..' segment", backend, prefix)
    return typing.cast(str, prefix)


def validate_root_prefix(prefix: Any, backend: str) -> str:
    """The ``prefix`` config field, normalised to '' or 'a/b' (no surrounding '/')."""
    if prefix is None or prefix == "":
        return ""
    if not isinstance(prefix, str):
        raise _fail(f"config field 'prefix' must be a str, not {type(prefix).__name__}",
                    backend)
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    try:
        validate_key(stripped, backend)
    except StorageValidationError as exc:
        raise _fail(f"config field 'prefix' is invalid: {exc.reason}",
                    backend) from None
    return stripped


def _type_ok(value: Any, expected: Any) -> bool:
    origin = typing.get_origin(expected)
    if origin is typing.Union or origin is types.UnionType:
        return any(_type_ok(value, arg) for arg in typing.get_args(expected))
    if expected is Any:
        return True
    if expected is type(None):
        return value is None
    if origin in (dict, Mapping) or expected in (dict, Mapping):
        return isinstance(value, Mapping)
    if origin is os.PathLike or expected is os.PathLike:
        return isinstance(value, os.PathLike)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True


def _type_name(expected: Any) -> str:
    args = typing.get_args(expected)
    if typing.get_origin(expected) is typing.Union or (args and "|" in str(expected)):
        return " or ".join(_type_name(arg) for arg in args)
    return getattr(expected, "__name__", str(expected))


def schema_fields(schema: type) -> dict[str, tuple[Any, bool]]:
    """``{field: (type, required)}`` of a TypedDict schema."""
    hints = typing.get_type_hints(schema, include_extras=True)
    required: frozenset[str] = getattr(schema, "__required_keys__", frozenset())
    fields = {}
    for name, hint in hints.items():
        # ``Required[...]`` written under ``from __future__ import annotations`` is a
        # string when the class is built, so ``__required_keys__`` misses it.
        origin = typing.get_origin(hint)
        if origin in (typing.Required, typing.NotRequired):
            fields[name] = (typing.get_args(hint)[0], origin is typing.Required)
        else:
            fields[name] = (hint, name in required)
    return fields


def validate_options(
    options: Mapping[str, Any], schema: type, backend: str, what: str
) -> None:
    """Refuse unknown fields (listing the valid ones), missing required ones, wrong types.

    A typo such as ``bucket`` for ``bucket_name`` must fail loudly rather than
    fall back to a default; values are never echoed, as they may be secrets.
    """
    if not isinstance(options, Mapping):
        raise _fail(f"{what} must be a dict, not {type(options).__name__}", backend)
    fields = schema_fields(schema)
    unknown = sorted(str(name) for name in options if name not in fields)
    if unknown:
        valid = ", ".join(sorted(fields)) or "(none)"
        raise _fail(f"unknown {what} field(s) {', '.join(map(repr, unknown))}; "
                    f"valid {what} fields are: {valid}", backend)
    for name, (hint, required) in fields.items():
        if name not in options or options[name] is None:
            if required:
                raise _fail(f"{what} field {name!r} is required", backend)
            continue
        if not _type_ok(options[name], hint):
            raise _fail(f"{what} field {name!r} must be {_type_name(hint)}, "
                        f"not {type(options[name]).__name__}", backend)
        if isinstance(options[name], str) and hint is not Any and not options[name].strip():
            raise _fail(f"{what} field {name!r} is empty", backend)


def validate_metadata(metadata: Any, backend: Optional[str] = None,
                      hyphens: bool = False) -> dict[str, str]:
    """Return a copy of ``metadata`` if it round-trips identically on the backend.

    The rule: names are lower-case ASCII identifiers (``[a-z_][a-z0-9_]*``,
    which S3 keeps as sent and Azure accepts as C# identifiers), not reserved by
    an SDK; with ``hyphens`` (backends whose store keeps a name's '-' and '_' apart:
    AWS S3, local, memory) single '-' may also join such parts (``original-name``,
    never first, last or doubled); values are printable ASCII strings without
    surrounding spaces (HTTP headers carry them and trim spaces); names plus values
    fit in 2 KiB (S3).
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise _fail(f"metadata must be a dict, not {type(metadata).__name__}", backend)
    total = 0
    for name, value in metadata.items():
        pattern = _METADATA_NAME_HYPHENS if hyphens else _METADATA_NAME
        if not isinstance(name, str) or not pattern.match(name):
            allowed = "digits, '_' and single '-' between them" if hyphens else \
                "digits and '_' (this backend's store cannot tell '-' from '_')"
            raise _fail(f"metadata name {name!r} is not portable: use lower-case letters, "
                        f"{allowed}, not starting with a digit", backend)
        if name in RESERVED_METADATA:
            raise _fail(f"metadata name {name!r} is reserved by the storage SDKs", backend)
        if not isinstance(value, str):
            raise _fail(f"metadata value for {name!r} must be a str, "
                        f"not {type(value).__name__}", backend)
        if not _METADATA_VALUE.match(value) or value != value.strip():
            raise _fail(f"metadata value for {name!r} must be printable ASCII without "
                        "leading or trailing spaces", backend)
        total += len(name) + len(value)
    if total > MAX_METADATA_BYTES:
        raise _fail(f"metadata is {total} bytes; at most {MAX_METADATA_BYTES} fit on "
                    "every backend", backend)
    return dict(metadata)


def validate_header(value: Any, name: str, backend: Optional[str] = None) -> Optional[str]:
    """An object header value (``cache_control``...): None, or a non-empty printable
    ASCII str without surrounding spaces (what every store and HTTP keep as sent)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or not _HEADER_VALUE.match(value) or \
            value != value.strip():
        raise _fail(f"{name} must be a non-empty printable ASCII str without leading or "
                    f"trailing spaces, not {value!r}", backend)
    return value


def validate_headers(values: Mapping[str, Any], backend: Optional[str] = None) -> dict[str, str]:
    """The given object headers (``OBJECT_HEADERS`` names), checked; None ones left out."""
    return {name: typing.cast(str, validate_header(value, name, backend))
            for name in OBJECT_HEADERS if (value := values.get(name)) is not None}


def attachment(filename: Any, backend: Optional[str] = None) -> str:
    """A ``Content-Disposition`` that saves the download as ``filename``: an ASCII
    ``filename=`` fallback (non-ASCII letters dropped to '_', quotes and backslashes
    removed) and, when the name is not plain ASCII, the exact name as RFC 5987's
    ``filename*=UTF-8''...`` (percent-encoded UTF-8), which every current browser
    prefers."""
    if not isinstance(filename, str) or not filename.strip() or _CONTROL.search(filename) \
            or "/" in filename or "\\" in filename:
        raise _fail(f"download_name must be a file name (no '/', '\\' or control "
                    f"characters), not {filename!r}", backend)
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def default_content_type(key: str) -> str:
    """The content type a key gets when none is given: by extension, else octet-stream.

    The answer depends only on the suffixes of the key's last segment (``.tar.gz``; a
    leading dot starts none) unless the key has a ':' (the table reads a URL scheme
    there), so it is looked up once per suffix chain: the table's own lookup costs more
    than the rest of a small write's checks together."""
    if ":" in key:
        return _guess(key)
    name = key.rpartition("/")[2]
    stem = len(name) - len(name.lstrip("."))
    dot = name.find(".", stem)
    return _guess("x" + name[dot:]) if dot > 0 else "application/octet-stream"


@functools.lru_cache(maxsize=256)
def _guess(name: str) -> str:
    return _MIME.guess_type(name, strict=False)[0] or "application/octet-stream"


def validate_content_type(content_type: Any, key: str, backend: Optional[str] = None) -> str:
    """Return the explicit content type, or the default for ``key`` when None."""
    if content_type is None:
        return default_content_type(key)
    if not isinstance(content_type, str) or not _CONTENT_TYPE.match(content_type):
        raise _fail(f"content_type {content_type!r} is not a valid MIME type "
                    "such as 'text/csv'", backend, key)
    return content_type


def validate_expiration(expiration: Any, backend: Optional[str] = None) -> int:
    """Seconds a signed URL lives: an int from 1 to 7 days."""
    if isinstance(expiration, bool) or not isinstance(expiration, int):
        raise _fail(f"expiration must be an int number of seconds, not "
                    f"{type(expiration).__name__}", backend)
    if not 1 <= expiration <= MAX_EXPIRATION:
        raise _fail(f"expiration must be between 1 and {MAX_EXPIRATION} seconds (7 days), "
                    f"not {expiration}", backend)
    return expiration


def validate_method(method: Any, backend: Optional[str] = None) -> str:
    """An HTTP method a signed URL can carry, upper-cased."""
    verb = method.upper() if isinstance(method, str) else None
    if verb not in SIGNABLE_METHODS:
        raise _fail(f"method must be one of {', '.join(sorted(SIGNABLE_METHODS))}, "
                    f"not {method!r}", backend)
    return verb


def validate_positive(value: Any, name: str, backend: Optional[str] = None) -> float:
    """A strictly positive number (timeouts, sizes)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise _fail(f"{name} must be a positive number, not {value!r}", backend)
    return float(value)
