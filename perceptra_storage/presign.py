"""What a signed URL, an upload policy or a CORS rule may carry, checked once for every
backend before anything is signed.

The backends turn these checked values into their own forms (SigV4 signed headers
and ``response-*`` parameters, SAS ``rsct``/``rscd``, S3 POST policy conditions, the
local backend's HMAC); the checks and the refusals are the same everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlsplit

from .base import CorsRule
from .errors import StorageValidationError
from .validation import (
    _CONTENT_TYPE,
    attachment,
    validate_content_type,
    validate_header,
    validate_metadata,
)

__all__ = ["NO_OPTIONS", "PostOptions", "SignOptions", "cors_rule", "post_options",
           "sign_options"]

_TYPE_PREFIX = re.compile(r"[A-Za-z0-9][\w.+-]*/\*\Z")
CORS_METHODS = ("GET", "PUT", "POST", "HEAD", "DELETE")
_HEADER_NAME = re.compile(r"(\*|[A-Za-z0-9!#$%&'*+.^_`|~-]+)\Z")


@dataclass(frozen=True)
class SignOptions:
    """Checked extras of one presigned URL. For PUT: what the object is stored with
    (signed headers where the service signs them). For GET and HEAD: overrides of the
    response's headers (``metadata`` is always empty)."""

    content_type: Optional[str] = None
    cache_control: Optional[str] = None
    content_disposition: Optional[str] = None
    metadata: dict[str, str] = field(default_factory=dict)

    def standard_headers(self) -> dict[str, str]:
        """The standard HTTP headers among the options, by their HTTP names."""
        named = (("Content-Type", self.content_type), ("Cache-Control", self.cache_control),
                 ("Content-Disposition", self.content_disposition))
        return {name: value for name, value in named if value is not None}


NO_OPTIONS = SignOptions()
"""The options of a URL given none, the usual case: one shared value instead of a new
one checked per URL (its ``metadata`` dict is read, never changed, by every backend)."""


@dataclass(frozen=True)
class PostOptions:
    """Checked terms of one upload policy."""

    key: str
    max_size: Optional[int] = None
    content_type: Optional[str] = None
    """An exact type, or None."""
    content_type_prefix: Optional[str] = None
    """A type prefix such as 'image/' (from ``'image/*'``), or None."""
    metadata: dict[str, str] = field(default_factory=dict)


def _refuse(message: str, backend: str) -> StorageValidationError:
    return StorageValidationError(message, backend=backend, operation="presign")


def sign_options(method: str, backend: str, hyphens: bool, *, content_type: Any,
                 metadata: Any, cache_control: Any, content_disposition: Any,
                 download_name: Any) -> SignOptions:
    """The checked options of a presigned URL for ``method``; what the method cannot
    carry is refused by name."""
    if content_type is None and metadata is None and cache_control is None and \
            content_disposition is None and download_name is None:
        return NO_OPTIONS  # nothing to check or refuse, whatever the method
    given = {"content_type": content_type, "metadata": metadata,
             "cache_control": cache_control, "content_disposition": content_disposition,
             "download_name": download_name}
    named = sorted(name for name, value in given.items() if value is not None)
    if method == "DELETE" and named:
        raise _refuse(f"a DELETE URL carries no {', '.join(named)}", backend)
    if method in ("GET", "HEAD") and metadata is not None:
        raise _refuse("metadata is stored by an upload; a GET or HEAD URL cannot set it",
                      backend)
    if download_name is not None:
        if content_disposition is not None:
            raise _refuse("give content_disposition or download_name, not both", backend)
        content_disposition = attachment(download_name, backend)
    return SignOptions(
        content_type=None if content_type is None else
        validate_content_type(content_type, "", backend),
        cache_control=validate_header(cache_control, "cache_control", backend),
        content_disposition=validate_header(content_disposition, "content_disposition",
                                            backend),
        metadata=validate_metadata(metadata, backend, hyphens))


def post_options(backend: str, hyphens: bool, key: str, *, max_size: Any,
                 content_type: Any, metadata: Any) -> PostOptions:
    """The checked terms of an upload policy for ``key``."""
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                 or max_size < 1):
        raise _refuse(f"max_size must be a positive int number of bytes, not {max_size!r}",
                      backend)
    exact = prefix = None
    if content_type is not None:
        if isinstance(content_type, str) and _TYPE_PREFIX.match(content_type):
            prefix = content_type[:-1]
        elif isinstance(content_type, str) and _CONTENT_TYPE.match(content_type):
            exact = content_type
        else:
            raise _refuse(f"content_type must be a MIME type ('image/png') or a type "
                          f"prefix ('image/*'), not {content_type!r}", backend)
    return PostOptions(key=key, max_size=max_size, content_type=exact,
                       content_type_prefix=prefix,
                       metadata=validate_metadata(metadata, backend, hyphens))


def _names(values: Any, what: str, backend: str) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise StorageValidationError(f"{what} must be a list of str, not {values!r}",
                                     backend=backend, operation="cors")
    return [str(value) for value in values]


def cors_rule(origins: Any, methods: Any, headers: Any, max_age: Any, expose_headers: Any,
              backend: str) -> Optional[CorsRule]:
    """One checked CORS rule; None when ``origins`` is empty (no rule: remove CORS)."""
    origin_list = _names(origins, "origins", backend)
    for origin in origin_list:
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc
                              or parts.path or parts.query or parts.fragment):
            raise StorageValidationError(
                f"origin {origin!r} must be '*' or scheme://host[:port], such as "
                "'https://app.example.com' (no path, no trailing '/')",
                backend=backend, operation="cors")
    method_list = [method.upper() for method in _names(methods, "methods", backend)]
    unknown = sorted(set(method_list) - set(CORS_METHODS))
    if unknown or not method_list:
        raise StorageValidationError(
            f"methods must be some of {', '.join(CORS_METHODS)}, not {method_list!r}",
            backend=backend, operation="cors")
    header_list = _names(headers, "headers", backend)
    expose_list = _names(expose_headers, "expose_headers", backend)
    for name in (*header_list, *expose_list):
        if not _HEADER_NAME.match(name):
            raise StorageValidationError(f"{name!r} is not an HTTP header name",
                                         backend=backend, operation="cors")
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
        raise StorageValidationError(f"max_age must be an int >= 0, not {max_age!r}",
                                     backend=backend, operation="cors")
    if not origin_list:
        return None
    return CorsRule(origins=origin_list, methods=method_list, headers=header_list,
                    expose_headers=expose_list, max_age=max_age)
