"""Exceptions, and the one place where backend errors become them.

The exception tree::

    StorageError
    ├── StorageAdapterError                  no adapter could be built (unknown backend,
    │                                        missing extra, bad registration)
    ├── StorageValidationError (ValueError)  bad key, config, credentials or argument;
    │                                        raised before any bytes move
    ├── StorageConnectionError (ConnectionError)
    │   └── StorageTimeoutError (TimeoutError)
    └── StorageOperationError                the store answered, and refused or failed
        ├── StorageNotFoundError (FileNotFoundError)
        └── StoragePermissionError (PermissionError)

Each class also inherits the builtin it means, so code written for files
(``except FileNotFoundError``) and for fsspec works unchanged.

Every public operation of the generic adapter runs inside :func:`translate_errors`.
It walks one ordered rule table (built-in OS errors, then botocore, then
azure.core, then aiohttp; each SDK's rules only when that SDK is installed) and
raises the first match, keeping the original exception as ``__cause__``.
Anything unmatched becomes :class:`StorageOperationError`.  Messages name the
backend, the operation and the key, and are scrubbed of anything that looks
like a credential before they are built; :func:`guard_sdk_logs` does the same
for the SDKs' own log records.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Optional

__all__ = [
    "StorageAdapterError",
    "StorageConnectionError",
    "StorageError",
    "StorageNotFoundError",
    "StorageOperationError",
    "StoragePermissionError",
    "StorageTimeoutError",
    "StorageValidationError",
    "classify",
    "guard_sdk_logs",
    "interrupted",
    "redact",
    "transient",
    "translate_errors",
]


class StorageError(Exception):
    """Base of every error this package raises.

    ``StorageError("message")`` works as with any exception; ``backend``,
    ``operation`` and ``key`` are optional context that the adapter fills in.
    """

    def __init__(
        self,
        message: str = "",
        *,
        backend: Optional[str] = None,
        operation: Optional[str] = None,
        key: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.backend = backend
        self.operation = operation
        self.key = key

    def __str__(self) -> str:
        return self.message


class StorageAdapterError(StorageError):
    """No adapter could be built: unknown backend, missing extra, bad registration."""


class StorageValidationError(StorageError, ValueError):
    """A key, config field, credential or argument is invalid; nothing was sent."""


class StorageConnectionError(StorageError, ConnectionError):
    """The backend could not be reached, or the connection failed mid-transfer."""


class StorageTimeoutError(StorageConnectionError, TimeoutError):
    """The backend did not answer within the allowed time."""


class StorageOperationError(StorageError):
    """The backend answered but the operation failed."""


class StorageNotFoundError(StorageOperationError, FileNotFoundError):
    """The key (or the bucket/container behind it) does not exist."""


class StoragePermissionError(StorageOperationError, PermissionError):
    """The credentials are missing, wrong, expired or not allowed to do this."""


# Values that must never reach a message: signatures, keys, tokens, passwords.
_SECRET_PATTERNS = [
    re.compile(r"(?i)((?:sig|signature|x-amz-signature|x-amz-security-token|"
               r"x-amz-credential)=)[^&\s'\"]+"),
    re.compile(r"(?i)((?:accountkey|sharedaccesssignature|password|secret|signature|"
               r"secret_access_key|aws_secret_access_key|client_secret|"
               r"session_token|aws_session_token|account_key|sas_token)\s*[=:]\s*['\"]?)"
               r"[^;&\s'\",}]+"),
    re.compile(r"(?i)(authorization\s*[=:]\s*['\"]?)[^'\"\n]+"),
    re.compile(r"(//[^/:@\s]+:)[^@/\s]+(@)"),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with known secret values and credential-shaped fields masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***" + (m.group(2) if m.re.groups > 1 else ""),
                           text)
    return text


_CUT = "connection cut mid-transfer"

# A rule maps an exception to (our class, short reason) or None when it does not apply.
_Rule = Callable[[BaseException], Optional[tuple[type[StorageError], str]]]


def _isinstance_rule(kind: type[BaseException], error: type[StorageError], reason: str) -> _Rule:
    def rule(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
        return (error, reason) if isinstance(exc, kind) else None

    return rule


def _by_status(status: Optional[int]) -> Optional[tuple[type[StorageError], str]]:
    if status == 404:
        return StorageNotFoundError, "not found"
    if status in (401, 403):
        return StoragePermissionError, "permission denied"
    if status in (408, 504):
        return StorageTimeoutError, "timed out"
    return None


def _answered(not_found: bool, denied: bool, code: str,
              status: Optional[int]) -> tuple[type[StorageError], str]:
    """Classify an error response the server sent: by the SDK's verdict, else by status."""
    label = code or str(status)
    if not_found:
        return StorageNotFoundError, f"not found ({label})"
    if denied:
        return StoragePermissionError, f"permission denied ({label})"
    found = _by_status(status)
    if found:
        return found[0], f"{found[1]} ({label})"
    return StorageOperationError, f"refused ({label})"


def _response_of(exc: BaseException) -> tuple[Optional[int], str]:
    """HTTP status and error code of an SDK exception that carries a response."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore's ClientError
        meta = response.get("ResponseMetadata", {})
        return meta.get("HTTPStatusCode"), str(response.get("Error", {}).get("Code", ""))
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    code = getattr(exc, "error_code", None) or ""
    return (status if isinstance(status, int) else None), str(code)


_BOTO_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NotFound", "404", "NoSuchUpload"}
_BOTO_DENIED = {
    "AccessDenied", "403", "401", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled",
    "AccountProblem", "InvalidSecurity", "Forbidden", "RequestTimeTooSkewed",
}


def _botocore_rules() -> list[_Rule]:
    try:
        from botocore import exceptions as bce
    except ImportError:
        return []

    def client_error(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
        if not isinstance(exc, bce.ClientError):
            return None
        status, code = _response_of(exc)
        return _answered(code in _BOTO_NOT_FOUND, code in _BOTO_DENIED, code, status)

    def ours_inside(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
        # aiobotocore wraps whatever its HTTP session raises, our refusals included.
        inner = getattr(exc, "kwargs", {}).get("error")
        if isinstance(exc, bce.HTTPClientError) and isinstance(inner, StorageError):
            return type(inner), inner.message
        return None

    return [
        client_error,
        ours_inside,
        _isinstance_rule(bce.ConnectTimeoutError, StorageTimeoutError, "connect timed out"),
        _isinstance_rule(bce.ReadTimeoutError, StorageTimeoutError, "read timed out"),
        _isinstance_rule(bce.EndpointConnectionError, StorageConnectionError,
                         "endpoint unreachable"),
        _isinstance_rule(bce.ConnectionClosedError, StorageConnectionError, "connection closed"),
        # An OSError through requests, so the generic OSError rule would call it a failure.
        _isinstance_rule(bce.SSLError, StorageConnectionError, "TLS handshake failed"),
        _isinstance_rule(bce.HTTPClientError, StorageConnectionError, "HTTP connection failed"),
        _isinstance_rule(bce.NoCredentialsError, StoragePermissionError,
                         "no credentials found"),
        _isinstance_rule(bce.PartialCredentialsError, StoragePermissionError,
                         "incomplete credentials"),
        _isinstance_rule(bce.ParamValidationError, StorageValidationError,
                         "invalid request parameters"),
    ]


def _azure_rules() -> list[_Rule]:
    try:
        from azure.core import exceptions as ace
    except ImportError:
        return []

    def http_error(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
        if not isinstance(exc, ace.HttpResponseError):
            return None
        status, code = _response_of(exc)
        if status is None and exc.__cause__ is not None:
            # No answer at all: the storage SDK re-raises a transport failure (a cut
            # download) as a bare HttpResponseError; the cause says what happened.
            return None
        return _answered(isinstance(exc, ace.ResourceNotFoundError),
                         isinstance(exc, ace.ClientAuthenticationError), code, status)

    return [
        _isinstance_rule(ace.IncompleteReadError, StorageConnectionError, _CUT),
        http_error,
        _isinstance_rule(ace.ClientAuthenticationError, StoragePermissionError,
                         "authentication failed"),
        _isinstance_rule(ace.ServiceRequestTimeoutError, StorageTimeoutError,
                         "request timed out"),
        _isinstance_rule(ace.ServiceResponseTimeoutError, StorageTimeoutError,
                         "response timed out"),
        _isinstance_rule(ace.ServiceRequestError, StorageConnectionError,
                         "endpoint unreachable"),
        _isinstance_rule(ace.ServiceResponseError, StorageConnectionError,
                         "connection failed while reading the response"),
    ]


def _aiohttp_rules() -> list[_Rule]:
    try:
        import aiohttp
    except ImportError:
        return []
    return [
        _isinstance_rule(aiohttp.ServerTimeoutError, StorageTimeoutError, "timed out"),
        _isinstance_rule(aiohttp.ClientPayloadError, StorageConnectionError, _CUT),
        _isinstance_rule(aiohttp.ClientConnectionError, StorageConnectionError,
                         "connection failed"),
        _isinstance_rule(aiohttp.ClientResponseError, StorageOperationError, "refused"),
    ]


def _os_rules() -> list[_Rule]:
    return [
        _isinstance_rule(FileNotFoundError, StorageNotFoundError, "not found"),
        _isinstance_rule(IsADirectoryError, StorageNotFoundError,
                         "not found (it is a directory, not a file)"),
        _isinstance_rule(NotADirectoryError, StorageOperationError,
                         "a parent of this key is a file"),
        _isinstance_rule(PermissionError, StoragePermissionError, "permission denied"),
        _isinstance_rule(TimeoutError, StorageTimeoutError, "timed out"),
        _isinstance_rule(ConnectionError, StorageConnectionError, "connection failed"),
    ]


@lru_cache(maxsize=1)
def _rules() -> tuple[_Rule, ...]:
    """The ordered table, most specific first; generic OSError comes last because
    aiohttp's connection errors are OSErrors too."""
    return (
        *_os_rules(),
        *_botocore_rules(),
        *_azure_rules(),
        *_aiohttp_rules(),
        _isinstance_rule(OSError, StorageOperationError, "failed"),
    )


def _match(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
    """The first rule of the table that matches ``exc`` itself."""
    for rule in _rules():
        found = rule(exc)
        if found:
            return found
    return None


def classify(exc: BaseException) -> tuple[type[StorageError], str]:
    """Our exception class and a short reason for any exception a backend raised."""
    if isinstance(exc, StorageError):
        return type(exc), exc.message
    found = _match(exc)
    if found:
        return found
    if exc.__cause__ is not None:
        # A wrapper the table does not know (adlfs raises RuntimeError("Failed to upload
        # block") from the SDK's error): what it wraps says what happened.
        return classify(exc.__cause__)
    return StorageOperationError, "failed"


# Error codes that mean "slow down" or "try again" whatever the status says.
_RETRY_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                          "TooManyRequests", "ServerBusy", "RequestTimeout", "InternalError",
                          "ServiceUnavailable", "OperationTimedOut"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from (cause, else context), without loops."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: the connection failed, timed out or was
    cut, or the server failed or asked to slow down (5xx, 408, 429, throttling codes).
    An answer such as 403 or 404, and anything we refused ourselves, is permanent:
    another attempt would only repeat it."""
    for error in _chain(exc):
        if isinstance(error, StorageError):
            return isinstance(error, StorageConnectionError)
        status, code = _response_of(error)
        if status is not None or code:
            return code in _RETRY_CODES or status in (408, 429) or (status or 0) >= 500
        found = _match(error)
        if found and issubclass(found[0], StorageConnectionError):
            return True
    return False


def interrupted(exc: BaseException) -> bool:
    """Whether the connection was cut while a response body was arriving, which the
    SDKs report but do not retry (the request itself had succeeded)."""
    return any((_match(error) or (None, ""))[1] == _CUT for error in _chain(exc))


def _detail(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def build_error(
    exc: BaseException,
    backend: str,
    operation: str,
    key: Optional[str],
    secrets: Iterable[str] = (),
) -> StorageError:
    """The :class:`StorageError` that stands for ``exc``, with context and a safe message."""
    error_class, reason = classify(exc)
    where = f"{backend}: {operation}" + (f" {key!r}" if key is not None else "")
    detail = _detail(exc)
    # A wrapper around one of our own refusals adds nothing but its class name.
    said = reason if detail.endswith(reason) else f"{reason}: {type(exc).__name__}: {detail}"
    message = redact(f"{where}: {said}", secrets)
    return error_class(message, backend=backend, operation=operation, key=key)


@contextmanager
def translate_errors(
    backend: str,
    operation: str,
    key: Optional[str] = None,
    *,
    secrets: Iterable[str] = (),
) -> Iterator[None]:
    """Run a block, letting only :class:`StorageError` out.

    Our own errors pass through, gaining any context they lack; every other
    exception is translated through the rule table and chained as ``__cause__``.
    """
    try:
        yield
    except StorageError as exc:
        exc.backend = exc.backend or backend
        exc.operation = exc.operation or operation
        exc.key = exc.key if exc.key is not None else key
        raise
    except Exception as exc:
        raise build_error(exc, backend, operation, key, secrets) from exc


_SDK_LOGGERS = ("botocore", "aiobotocore", "boto3", "s3transfer", "s3fs", "adlfs", "azure",
                "urllib3", "aiohttp", "fsspec")
_live_secrets: weakref.WeakValueDictionary[int, _SecretSet] = weakref.WeakValueDictionary()


class _SecretSet:
    """The credential values of one adapter; gone when the adapter is."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = tuple(values)


_factory_lock = threading.Lock()
_installed = False


_Factory = Callable[..., logging.LogRecord]


def _redacting_factory(previous: _Factory) -> _Factory:
    """Wrap the record factory so SDK records are masked as they are created, on any
    logger of those SDKs, including ones created after this was installed."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name.split(".")[0] in _SDK_LOGGERS:
            secrets = [value for entry in list(_live_secrets.values())
                       for value in entry.values]
            message = record.getMessage()
            cleaned = redact(message, secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return record

    return make


def guard_sdk_logs(secrets: Iterable[str]) -> Optional[_SecretSet]:
    """Register credential values to mask in the SDKs' log records (signed URLs,
    keys, tokens), installing the masking once per process. Keep the returned
    holder alive as long as the secrets are in use. Costs nothing unless those
    SDK loggers are enabled."""
    global _installed
    values = tuple(secrets)
    holder = _SecretSet(values) if values else None
    if holder is not None:
        _live_secrets[id(holder)] = holder
    with _factory_lock:
        if not _installed:
            logging.setLogRecordFactory(_redacting_factory(logging.getLogRecordFactory()))
            _installed = True
    return holder
