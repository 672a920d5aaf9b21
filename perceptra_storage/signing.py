"""Signed URLs for the local backend: HMAC-SHA256 over what a request may do.

With ``signing_key`` (and ``base_url``) in its config, the local backend's
``generate_presigned_url`` gives ``{base_url}/{key}?X-Ps-Method=...&X-Ps-Expires=...
&X-Ps-SignedHeaders=...&X-Ps-Signature=...``. The signature covers the method, the
key, the expiry (Unix seconds), every pinned request header (name and value) and
every response override, so changing any of them, or the key, breaks it.
:func:`verify` checks one request against it in constant time; ``server.py`` serves
such URLs from the adapter.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from .errors import StoragePermissionError
from .presign import SignOptions

__all__ = ["META_PREFIX", "OVERRIDES", "Verified", "sign_url", "verify"]

META_PREFIX = "x-ps-meta-"
"""Request headers that carry user metadata on a PUT to a local signed URL."""
OVERRIDES = {"response-content-type": "Content-Type",
             "response-cache-control": "Cache-Control",
             "response-content-disposition": "Content-Disposition"}
"""Query parameters that override a GET's response headers (signed), as in S3."""
_AUTH = ("X-Ps-Method", "X-Ps-Expires", "X-Ps-SignedHeaders", "X-Ps-Signature")


@dataclass
class Verified:
    """What a verified request may do."""

    key: str
    method: str
    expires: int
    headers: dict[str, str] = field(default_factory=dict)
    """Pinned request headers, lower-case names (the request carried exactly these)."""
    overrides: dict[str, str] = field(default_factory=dict)
    """Response headers to send instead of the stored ones (GET, HEAD)."""


def _string_to_sign(method: str, key: str, expires: int, headers: Mapping[str, str],
                    overrides: Mapping[str, str]) -> bytes:
    lines = [method, key, str(expires)]
    lines += [f"h:{name}:{value}" for name, value in sorted(headers.items())]
    lines += [f"r:{name}:{value}" for name, value in sorted(overrides.items())]
    return "\n".join(lines).encode()


def _mac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def pinned_headers(method: str, options: SignOptions) -> dict[str, str]:
    """The request headers a PUT must carry, lower-case names."""
    if method != "PUT":
        return {}
    headers = {name.lower(): value for name, value in options.standard_headers().items()}
    headers.update({f"{META_PREFIX}{name}": value for name, value in options.metadata.items()})
    return headers


def sign_url(secret: str, base_url: str, key: str, method: str, expires: int,
             options: SignOptions) -> tuple[str, dict[str, str]]:
    """The signed URL for ``key``, and the headers the client must send."""
    headers = pinned_headers(method, options)
    overrides = {} if method not in ("GET", "HEAD") else {
        param: value for param, value in (
            ("response-content-type", options.content_type),
            ("response-cache-control", options.cache_control),
            ("response-content-disposition", options.content_disposition))
        if value is not None}
    signature = _mac(secret, _string_to_sign(method, key, expires, headers, overrides))
    query = {**overrides, "X-Ps-Method": method, "X-Ps-Expires": str(expires),
             "X-Ps-SignedHeaders": ";".join(sorted(headers)), "X-Ps-Signature": signature}
    url = f"{base_url.rstrip('/')}/{quote(key)}?{urlencode(query, quote_via=quote)}"
    return url, {_http_name(name): value for name, value in headers.items()}


def _http_name(name: str) -> str:
    """``content-type`` -> ``Content-Type``; metadata headers stay lower-case."""
    return name if name.startswith(META_PREFIX) else "-".join(
        part.capitalize() for part in name.split("-"))


def _deny(reason: str, key: Optional[str]) -> StoragePermissionError:
    return StoragePermissionError(f"signed URL refused: {reason}", backend="local",
                                  operation="verify", key=key)


def verify(secret: str, method: str, key: str, query: str, headers: Mapping[str, str],
           now: Optional[float] = None) -> Verified:
    """Check one request (its method, its key as decoded from the URL path, its raw
    query string and its headers) against its signature; StoragePermissionError
    (HTTP 403) says why not: tampered, expired, wrong method, a pinned header that
    differs."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    missing = [name for name in _AUTH if name not in params]
    if missing:
        raise _deny(f"not signed (no {', '.join(missing)})", key)
    try:
        expires = int(params["X-Ps-Expires"])
    except ValueError:
        raise _deny("malformed expiry", key) from None
    names = [name for name in params["X-Ps-SignedHeaders"].split(";") if name]
    lower = {name.lower(): value for name, value in headers.items()}
    pinned = {name: lower.get(name, "") for name in names}
    overrides = {name: params[name] for name in OVERRIDES if name in params}
    signed_method = params["X-Ps-Method"]
    expected = _mac(secret, _string_to_sign(signed_method, key, expires, pinned, overrides))
    if not hmac.compare_digest(expected, params["X-Ps-Signature"]):
        raise _deny("the signature does not match (tampered URL, or a pinned header "
                    "was sent with another value or left out)", key)
    if signed_method != method.upper():
        raise _deny(f"signed for {signed_method}, not {method.upper()}", key)
    if (time.time() if now is None else now) >= expires:
        raise _deny("expired", key)
    return Verified(key=key, method=signed_method, expires=expires, headers=pinned,
                    overrides={OVERRIDES[name]: value for name, value in overrides.items()})


def split_url(url: str, base_url: str) -> tuple[str, str]:
    """The key (decoded) and raw query of a full signed URL under ``base_url``."""
    parts, base = urlsplit(url), urlsplit(base_url)
    prefix = base.path.rstrip("/") + "/"
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or \
            not parts.path.startswith(prefix):
        raise _deny("the URL is not under this adapter's base_url", None)
    return unquote(parts.path[len(prefix):]), parts.query
