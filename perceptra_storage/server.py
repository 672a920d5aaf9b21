"""A WSGI application serving the local backend's signed URLs to browsers and HTTP clients.

``make_app(adapter, allowed_origins=[...])`` answers the URLs of a local adapter
configured with ``signing_key`` and ``base_url`` (see :mod:`perceptra_storage.signing`):
GET (with ``Range``), HEAD, PUT (201 Created) and DELETE (204), each only with a
valid, unexpired signature for that method, key and pinned headers (403 otherwise;
404 for a missing object). Bodies stream both ways in bounded memory. CORS
preflights are answered for ``allowed_origins``. Plain WSGI, so it mounts in Django
(``path('files/', WSGIHandler...)`` or any WSGI router) or runs alone under any WSGI
server; ``perceptra-storage serve PROFILE`` runs it with the standard library's
``wsgiref``, which is meant for development.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from email.utils import format_datetime
from typing import IO, TYPE_CHECKING, Any, Optional

from .errors import (
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    StorageValidationError,
)
from .signing import META_PREFIX, verify

if TYPE_CHECKING:
    from .backends.local import LocalStorageAdapter

__all__ = ["make_app"]

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

CHUNK = 64 * 1024
"""Bytes read and sent at a time, both ways."""
_RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")
_METHODS = "GET, HEAD, PUT, DELETE"
_EXPOSED = "ETag, Content-Length, Content-Range, Content-Type, Content-Disposition"
_STATUS = {200: "200 OK", 201: "201 Created", 204: "204 No Content",
           206: "206 Partial Content", 400: "400 Bad Request", 403: "403 Forbidden",
           404: "404 Not Found", 405: "405 Method Not Allowed", 411: "411 Length Required",
           416: "416 Range Not Satisfiable", 500: "500 Internal Server Error"}
_STORED_HEADERS = {"content-type": "content_type", "cache-control": "cache_control",
                   "content-disposition": "content_disposition",
                   "content-encoding": "content_encoding"}


def make_app(adapter: LocalStorageAdapter,
             allowed_origins: Sequence[str] = ()) -> Callable[[Environ, StartResponse],
                                                             Iterable[bytes]]:
    """The WSGI application serving ``adapter``'s signed URLs; pages of
    ``allowed_origins`` (``'*'`` for any) may call it cross-origin."""
    secret = adapter.config.get("signing_key")
    if not secret:
        raise StorageValidationError(
            "local: the server needs config fields 'signing_key' and 'base_url'",
            backend="local")
    return _App(adapter, str(secret), tuple(allowed_origins))


class _Body:
    """The request body as a binary reader of exactly Content-Length bytes; a body
    that ends early raises, so the upload is discarded (local writes are atomic)."""

    mode = "rb"

    def __init__(self, stream: IO[bytes], length: int) -> None:
        self._stream = stream
        self._left = length

    def read(self, size: int = -1) -> bytes:
        want = self._left if size is None or size < 0 else min(size, self._left)
        if want == 0:
            return b""
        data = self._stream.read(want)
        if not data:
            raise StorageValidationError("the request body ended before Content-Length "
                                         "bytes", backend="local")
        self._left -= len(data)
        return bytes(data)


class _App:
    def __init__(self, adapter: LocalStorageAdapter, secret: str,
                 origins: tuple[str, ...]) -> None:
        self.adapter = adapter
        self.secret = secret
        self.origins = origins

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        origin = environ.get("HTTP_ORIGIN")
        cors = self._cors(origin)
        if method == "OPTIONS":
            return self._preflight(environ, cors, start_response)
        try:
            # WSGI gives the decoded path as latin-1 code points; keys are UTF-8.
            path = str(environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8")
            verified = verify(self.secret, method, path.lstrip("/"),
                              str(environ.get("QUERY_STRING", "")), _headers(environ))
            key = verified.key
            if method in ("GET", "HEAD"):
                return self._get(environ, key, verified.overrides, method == "HEAD", cors,
                                 start_response)
            if method == "PUT":
                return self._put(environ, key, cors, start_response)
            if method == "DELETE":
                self.adapter.delete_file(key)
                return _reply(start_response, 204, cors)
            return _reply(start_response, 405, cors, b"method not allowed")
        except StorageNotFoundError:
            return _reply(start_response, 404, cors, b"not found")
        except StoragePermissionError as exc:
            return _reply(start_response, 403, cors, exc.reason.encode())
        except StorageValidationError as exc:
            return _reply(start_response, 400, cors, exc.reason.encode())
        except StorageError as exc:
            return _reply(start_response, 500, cors, exc.reason.encode())

    def _cors(self, origin: Optional[str]) -> list[tuple[str, str]]:
        """CORS response headers for an allowed ``origin``; none for others."""
        if not origin or not ("*" in self.origins or origin in self.origins):
            return []
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin"),
                ("Access-Control-Expose-Headers", _EXPOSED)]

    def _preflight(self, environ: Environ, cors: list[tuple[str, str]],
                   start_response: StartResponse) -> Iterable[bytes]:
        wanted = str(environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "")).upper()
        if not cors or wanted not in _METHODS.split(", "):
            return _reply(start_response, 403, [], b"origin or method not allowed")
        headers = [*cors, ("Access-Control-Allow-Methods", _METHODS),
                   ("Access-Control-Max-Age", "600")]
        asked = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
        if asked:
            headers.append(("Access-Control-Allow-Headers", str(asked)))
        return _reply(start_response, 204, headers)

    def _get(self, environ: Environ, key: str, overrides: dict[str, str], head: bool,
             cors: list[tuple[str, str]], start_response: StartResponse) -> Iterable[bytes]:
        info = self.adapter.get_file_metadata(key)
        headers = [("Accept-Ranges", "bytes"), ("Last-Modified", format_datetime(
            info.last_modified, usegmt=True))]
        if info.etag:
            headers.append(("ETag", f'"{info.etag}"'))
        stored = {"Content-Type": info.content_type, "Cache-Control": info.cache_control,
                  "Content-Disposition": info.content_disposition,
                  "Content-Encoding": info.content_encoding}
        stored.update(overrides)
        headers += [(name, value) for name, value in stored.items() if value]
        start, end, status = 0, info.size - 1, 200
        wanted = environ.get("HTTP_RANGE")
        match = _RANGE.match(str(wanted)) if wanted else None
        if match and (match.group(1) or match.group(2)):
            first, last = match.group(1), match.group(2)
            if first:
                start, end = int(first), min(int(last), info.size - 1) if last else end
            else:
                start = max(0, info.size - int(last))
            if start >= info.size or start > end:
                return _reply(start_response, 416,
                              [*cors, ("Content-Range", f"bytes */{info.size}")])
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end}/{info.size}"))
        length = max(0, end - start + 1)
        start_response(_STATUS[status], [*headers, *cors, ("Content-Length", str(length))])
        if head or length == 0:
            return [b""]
        return self._stream(key, start, length)

    def _stream(self, key: str, start: int, length: int) -> Iterator[bytes]:
        with self.adapter.open(key) as file:
            file.seek(start)
            while length > 0:
                chunk = file.read(min(CHUNK, length))
                if not chunk:
                    return
                length -= len(chunk)
                yield chunk

    def _put(self, environ: Environ, key: str, cors: list[tuple[str, str]],
             start_response: StartResponse) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH")
        if not length or not str(length).isdigit():
            return _reply(start_response, 411, cors, b"Content-Length required")
        sent = _headers(environ)
        options: dict[str, Any] = {field: sent[name] for name, field in _STORED_HEADERS.items()
                                   if sent.get(name)}
        metadata = {name[len(META_PREFIX):]: value for name, value in sent.items()
                    if name.startswith(META_PREFIX)}
        body = typing.cast(IO[bytes], _Body(environ["wsgi.input"], int(length)))
        self.adapter.upload_file(body, key,
                                 metadata=metadata or None, **options)
        etag = self.adapter.get_file_metadata(key).etag or ""
        return _reply(start_response, 201, [*cors, ("ETag", f'"{etag}"')])


def _headers(environ: Environ) -> dict[str, str]:
    """The request's headers, lower-case names (WSGI spells them HTTP_X_Y)."""
    headers = {name[5:].replace("_", "-").lower(): str(value)
               for name, value in environ.items() if name.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    return headers


def _reply(start_response: StartResponse, status: int, headers: list[tuple[str, str]],
           body: bytes = b"") -> list[bytes]:
    start_response(_STATUS[status], [*headers, ("Content-Length", str(len(body))),
                                     *([("Content-Type", "text/plain; charset=utf-8")]
                                       if body else [])])
    return [body]
