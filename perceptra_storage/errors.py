"""Exceptions, and the one place where backend errors become them.

The exception tree::

    StorageError
    ├── StorageAdapterError                  no adapter could be built (unknown backend,
    │                                        missing extra, bad registration)
    ├── StorageValidationError (ValueError)  bad key, config, credentials or argument;
    │                                        raised before any bytes move
    │   └── StorageConfigError               (also a StorageAdapterError) the factory
    │                                        refused a backend name, class or config
    ├── StorageConnectionError (ConnectionError)
    │   └── StorageTimeoutError (TimeoutError)
    └── StorageOperationError                the store answered, and refused or failed
        ├── StorageNotFoundError (FileNotFoundError)
        └── StoragePermissionError (PermissionError)

Each class also inherits the builtin it means, so code written for files
(``except FileNotFoundError``) and for fsspec works unchanged.

Every public operation of the generic adapter runs inside :func:`translate_errors`.
It walks one ordered rule table (fsspec's timeout, built-in OS errors, then
botocore, then azure.core, then aiohttp; each SDK's rules only when that SDK is
installed) and raises the first match, keeping the original exception as
``__cause__``. Anything unmatched becomes :class:`StorageOperationError`.

An error carries its reason and its context (``backend``, ``operation``,
``key``) as separate fields; its message is built from them, so code that
raises one gives only the reason and :func:`translate_errors` adds the context.
Reasons built from SDK errors are scrubbed of anything that looks like a
credential (:mod:`redaction`).
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Optional, Union
from urllib.parse import parse_qs, urlsplit

from .redaction import redact

__all__ = [
    "StorageAdapterError",
    "StorageConfigError",
    "StorageConnectionError",
    "StorageError",
    "StorageNotFoundError",
    "StorageOperationError",
    "StoragePermissionError",
    "StorageTimeoutError",
    "StorageValidationError",
    "build_error",
    "chain",
    "classify",
    "match",
    "redact",
    "response_of",
    "translate_errors",
    "typed_error",
]


class StorageError(Exception):
    """Base of every error this package raises.

    ``StorageError("reason")`` works as with any exception; ``backend``,
    ``operation`` and ``key`` are optional context that the adapter fills in,
    and the message names each one that is known.
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
        self.reason = message
        self.backend = backend
        self.operation = operation
        self.key = key

    @property
    def message(self) -> str:
        """``backend: operation 'key': reason``, with the parts that are known."""
        reason = self.reason
        if self.backend and reason.startswith(f"{self.backend}: "):
            # A reason written the 0.1 way, naming its backend itself (custom adapters).
            reason = reason[len(self.backend) + 2:]
        where = " ".join(part for part in (
            self.operation, None if self.key is None else repr(self.key)) if part)
        if self.backend:
            where = f"{self.backend}: {where}" if where else self.backend
        return f"{where}: {reason}" if where else reason

    def __str__(self) -> str:
        return self.message


class StorageAdapterError(StorageError):
    """No adapter could be built: unknown backend, missing extra, bad registration."""


class StorageValidationError(StorageError, ValueError):
    """A key, config field, credential or argument is invalid; nothing was sent."""


class StorageConfigError(StorageAdapterError, StorageValidationError):
    """The registry refused to build or register an adapter: a bad backend name or
    adapter class, or a config/credentials field. Both parents, because 0.1 code
    catches StorageAdapterError around ``get_storage_adapter`` and ours catches
    StorageValidationError (``ValueError``)."""


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


_CUT = "connection cut mid-transfer"

# A rule maps an exception to (our class, short reason) or None when it does not apply.
_Rule = Callable[[BaseException], Optional[tuple[type[StorageError], str]]]


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from (cause, else context), without loops."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


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


def response_of(exc: BaseException) -> tuple[Optional[int], str]:
    """HTTP status and error code of an SDK exception that carries a response."""
    if obstore_error(exc):
        return obstore_response(exc)
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore's ClientError
        meta = response.get("ResponseMetadata", {})
        return meta.get("HTTPStatusCode"), str(response.get("Error", {}).get("Code", ""))
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    code = getattr(exc, "error_code", None) or ""
    return (status if isinstance(status, int) else None), str(code)


_EXPIRED = ("credentials expired; renew them, or give credentials that renew themselves "
            "(the AWS chain, a profile, credentials['refresh']; on Azure "
            "DefaultAzureCredential or a service principal)")
_BOTO_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired"}
_BOTO_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NotFound", "404", "NoSuchUpload"}
_BOTO_DENIED = {
    "AccessDenied", "403", "401", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled",
    "AccountProblem", "InvalidSecurity", "Forbidden", "RequestTimeTooSkewed",
}


_REGION_CODES = {"AuthorizationHeaderMalformed", "PermanentRedirect",
                 "IllegalLocationConstraintException", "301"}


def _wrong_region(response: dict[str, Any], status: Optional[int], code: str) -> Optional[str]:
    """The reason for an S3 answer that says the bucket lives in another region (a 301,
    or a 400 ``AuthorizationHeaderMalformed`` naming the region it expected), else
    None.  botocore follows such an answer once by itself; it reaches us when even
    that failed (a custom endpoint, a HEAD without a body)."""
    if code not in _REGION_CODES and status != 301:
        return None
    error = response.get("Error", {})
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = error.get("Region") or headers.get("x-amz-bucket-region")
    if not region:
        found = re.search(r"expecting '([a-z0-9-]+)'", str(error.get("Message", "")))
        region = found.group(1) if found else None
    if region:
        return (f"wrong region ({code or status}): the bucket is in {region!r}; "
                f"set config region={region!r}")
    if code == "AuthorizationHeaderMalformed":
        return None  # malformed for another reason: a credentials problem, not a region
    return (f"wrong region ({code or status}): the bucket is in another region; set "
            "config region to the bucket's region")


def _region_rules() -> list[_Rule]:
    """S3's answer that the bucket is in another region, looked for below s3fs's
    translation (a bare OSError, or a PermissionError for
    IllegalLocationConstraintException), so it comes before the OS rules."""
    try:
        from botocore import exceptions as bce
    except ImportError:
        return []

    def wrong_region(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
        for error in chain(exc):
            if isinstance(error, bce.ClientError):
                reason = _wrong_region(error.response, *response_of(error))
                return (StorageOperationError, reason) if reason else None
        return None

    return [wrong_region]


def _botocore_rules() -> list[_Rule]:
    try:
        from botocore import exceptions as bce
    except ImportError:
        return []

    def client_error(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
        if not isinstance(exc, bce.ClientError):
            return None
        status, code = response_of(exc)
        if code in _BOTO_EXPIRED:
            return StoragePermissionError, f"{_EXPIRED} ({code})"
        return _answered(code in _BOTO_NOT_FOUND, code in _BOTO_DENIED, code, status)

    return [
        client_error,
        # A refresh source (credentials['refresh'], a profile's role) failed to give
        # usable credentials.
        _isinstance_rule(bce.CredentialRetrievalError, StoragePermissionError,
                         "could not obtain credentials"),
        _isinstance_rule(bce.ProfileNotFound, StorageValidationError,
                         "the AWS profile is not in the shared config files"),
        _connect_timeout(bce.ConnectTimeoutError),
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
        status, code = response_of(exc)
        if status is None and exc.__cause__ is not None:
            # No answer at all: the storage SDK re-raises a transport failure (a cut
            # download) as a bare HttpResponseError; the cause says what happened.
            return None
        if status == 403 and _azure_expired(exc):
            return StoragePermissionError, f"{_EXPIRED} ({code or status})"
        return _answered(isinstance(exc, ace.ResourceNotFoundError),
                         isinstance(exc, ace.ClientAuthenticationError), code, status)

    return [
        http_error,
        _isinstance_rule(ace.ClientAuthenticationError, StoragePermissionError,
                         "authentication failed"),
        _connect_timeout(ace.ServiceRequestTimeoutError),
        _isinstance_rule(ace.ServiceResponseTimeoutError, StorageTimeoutError,
                         "response timed out"),
        _isinstance_rule(ace.ServiceRequestError, StorageConnectionError,
                         "endpoint unreachable"),
        _isinstance_rule(ace.ServiceResponseError, StorageConnectionError,
                         "connection failed while reading the response"),
    ]


_AZURE_EXPIRY_SIGNS = ("expired", "specified time frame", "lifetime validation failed")
"""How Azure's 403 AuthenticationFailed says that a SAS or token expired (its
AuthenticationErrorDetail: "Signature not valid in the specified time frame", "Signed
expiry time ... must be after ...", "Lifetime validation failed. The token is expired.")."""


def _azure_expired(exc: BaseException) -> bool:
    """Whether a 403 answers a request whose credentials had expired: the service says
    so, or the request carried a SAS token whose end (``se``) is past (Azurite, like
    some Azure answers, gives only AuthorizationFailure)."""
    text = str(exc).lower()
    if any(sign in text for sign in _AZURE_EXPIRY_SIGNS):
        return True
    url = getattr(getattr(getattr(exc, "response", None), "request", None), "url", None)
    ends = parse_qs(urlsplit(url).query).get("se") if isinstance(url, str) else None
    if not ends:
        return False
    try:
        end = datetime.fromisoformat(ends[0].replace("Z", "+00:00"))
    except ValueError:
        return False
    return (end if end.tzinfo else end.replace(tzinfo=UTC)) <= datetime.now(UTC)


def _aiohttp_rules() -> list[_Rule]:
    try:
        import aiohttp
    except ImportError:
        return []
    return [
        _isinstance_rule(aiohttp.ServerTimeoutError, StorageTimeoutError, "timed out"),
        _isinstance_rule(aiohttp.ClientConnectionError, StorageConnectionError,
                         "connection failed"),
        _isinstance_rule(aiohttp.ClientResponseError, StorageOperationError, "refused"),
    ]


_OBSTORE_STATUS = re.compile(r"non-2xx status code: (\d{3})")
_OBSTORE_CODE = re.compile(r"<Code>(\w+)</Code>")
_OBSTORE_HOST = re.compile(r"Error performing \w+ [a-z]+://([^/\s?]+)")
_OBSTORE_CONNECT_STAGE = re.compile(r"kind: Connect|ConnectError|Error\(\s*Connect,")
"""An obstore error raised while connecting, in the three forms seen with a silent port:
reqwest's (kind: Connect), hyper's connector's (ConnectError ... TimedOut), and, one
attempt in forty on a loaded machine, hyper's connect stage timing out with no
ConnectError (Error(Connect, TimedOut), spread over lines)."""


def obstore_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of obstore's exceptions (the ``fast`` extra's engine)."""
    return type(exc).__module__.startswith("obstore")


def obstore_response(exc: BaseException) -> tuple[Optional[int], str]:
    """HTTP status and error code of an obstore error that carries an answer: obstore
    raises one class for every failure and says what happened only in its message
    (``Server returned non-2xx status code: 503 ...`` with the XML body's code)."""
    text = str(exc)
    status = _OBSTORE_STATUS.search(text)
    code = _OBSTORE_CODE.search(text)
    return (int(status.group(1)) if status else None), (code.group(1) if code else "")


def obstore_cut(exc: BaseException) -> bool:
    """Whether obstore says a response body was cut while it arrived (reqwest's body
    error, ``kind: Interrupted`` or a body decode error)."""
    if not obstore_error(exc):
        return False
    text = str(exc)
    return "response body error" in text or ("kind: Decode" in text and "kind: Body" in text)


def _obstore_rules() -> list[_Rule]:
    """obstore's errors: its typed ones (not found, denied), then, for its one generic
    class, what the message's debug text says below the HTTP client (reqwest, hyper,
    rustls): a refused port, a name that does not resolve, a connection attempt that
    got no answer (``ConnectTimeout``, or ``TimedOut`` while connecting: the forms of
    ``_OBSTORE_CONNECT_STAGE``),
    TLS, a read that timed out, a server's answer by status."""
    try:
        from obstore import exceptions as oe
    except ImportError:
        return []

    def rule(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
        if not obstore_error(exc):
            return None
        if isinstance(exc, (oe.PermissionDeniedError, oe.UnauthenticatedError)):
            return StoragePermissionError, "permission denied"
        if isinstance(exc, oe.NotFoundError):
            return StorageNotFoundError, "not found"
        if isinstance(exc, oe.AlreadyExistsError):
            return StorageOperationError, "already exists"
        if isinstance(exc, oe.PreconditionError):
            return StorageOperationError, "precondition failed"
        text = str(exc)
        found = _OBSTORE_HOST.search(text)
        at = f" {found.group(1)}" if found else ""
        status, code = obstore_response(exc)
        if status is not None:
            return _answered(False, code in _BOTO_DENIED, code, status)
        if "ConnectionRefused" in text:
            return StorageConnectionError, (
                f"connection refused{' by' + at if at else ''}: nothing listens there; "
                "check the endpoint's host and port, and that the service is running")
        if "failed to lookup address" in text or "dns error" in text:
            return StorageConnectionError, (
                f"unknown host{at}: the name does not resolve (DNS); check the endpoint "
                "or account name, and the machine's name resolution")
        if _OBSTORE_CONNECT_STAGE.search(text) and (
                "TimedOut" in text or "timed out" in text or "ConnectTimeout" in text):
            return StorageTimeoutError, (
                f"no answer from{at or ' the endpoint'} within connect_timeout: the host "
                "or port may be wrong, or a firewall drops the packets")
        lowered = text.lower()
        if "certificate" in lowered and ("invalid" in lowered or "unknown" in lowered or
                                         "verif" in lowered):
            return StorageConnectionError, (
                f"TLS certificate of{at or ' the endpoint'} not trusted; use a certificate "
                "signed by a trusted CA, or add its CA to the trust store (SSL_CERT_FILE)")
        if "tls" in lowered or "ssl" in lowered or "handshake" in lowered or \
                "InvalidContentType" in text or "CorruptMessage" in text:
            return StorageConnectionError, (
                f"TLS handshake with{at or ' the endpoint'} failed; check that the endpoint "
                "speaks HTTPS on that port (or use http://) and supports TLS 1.2 or later")
        if obstore_cut(exc):
            return StorageConnectionError, _CUT
        if "TimedOut" in text or "timed out" in lowered or "kind: Timeout" in text:
            return StorageTimeoutError, "timed out"
        if "error sending request" in text or "kind: Connect" in text or \
                "kind: Request" in text:
            return StorageConnectionError, "connection failed"
        return None

    return [rule]


def _fsspec_rules() -> list[_Rule]:
    # fsspec raises FSTimeoutError (a TimeoutError) when a call given ``timeout=``
    # (the adapter's operation_timeout) was cancelled on its event loop.
    from fsspec.exceptions import FSTimeoutError

    return [_isinstance_rule(FSTimeoutError, StorageTimeoutError,
                             "not done within operation_timeout")]


def _cut_rule() -> _Rule:
    """A response body cut mid-transfer, by the exception types the HTTP stacks
    raise for it (:func:`resilience.cut_read_types`), before the SDKs' broader
    rules would call it a failed connection or a failed response."""
    from .resilience import cut_read_types

    kinds = cut_read_types()

    def rule(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
        return (StorageConnectionError, _CUT) if isinstance(exc, kinds) else None

    return rule


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


def _host_of(error: BaseException) -> str:
    """``host:port`` of aiohttp's connector errors (which carry the connection key),
    or of the URL in botocore's; empty when the error names neither."""
    key = getattr(error, "_conn_key", None)
    if key is not None and getattr(key, "host", None):
        return f"{key.host}:{key.port}"
    url = str(getattr(error, "kwargs", {}).get("endpoint_url", ""))
    found = re.match(r"[a-z]+://([^/?#]+)", url)
    return found.group(1) if found else ""


def _network_cause(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
    """Why no connection came about, from the socket or TLS error at the bottom of
    the SDK's chain: the SDKs raise one class (botocore's EndpointConnectionError,
    azure.core's ServiceRequestError) for an unknown host, a refused port and a
    TLS failure alike, whose fixes differ.  Each reason says what to check."""
    where = ""
    for error in chain(exc):
        where = where or _host_of(error)
        at = f" {where}" if where else ""
        if isinstance(error, socket.gaierror):
            return StorageConnectionError, (
                f"unknown host{at}: the name does not resolve (DNS); check the endpoint "
                "or account name, and the machine's name resolution")
        if isinstance(error, ssl.SSLCertVerificationError):
            return StorageConnectionError, (
                f"TLS certificate of{at or ' the endpoint'} not trusted "
                f"({_ssl_reason(error)}); use a certificate signed by a "
                "trusted CA, or add its CA to the trust store (AWS_CA_BUNDLE, SSL_CERT_FILE)")
        if isinstance(error, ssl.SSLError):
            return StorageConnectionError, (
                f"TLS handshake with{at or ' the endpoint'} failed ({_ssl_reason(error)}); "
                "check that the endpoint speaks HTTPS on that port (or use http://) and "
                "supports TLS 1.2 or later")
        if isinstance(error, ConnectionRefusedError):
            return StorageConnectionError, (
                f"connection refused{' by' + at if at else ''}: nothing listens there; "
                "check the endpoint's host and port, and that the service is running")
    return None


def _ssl_reason(error: BaseException) -> str:
    """The short reason of an ssl error (aiohttp's wrappers subclass ssl's classes
    without their attributes, so the one they wrap is asked too)."""
    for candidate in (error, getattr(error, "_certificate_error", None),
                      getattr(error, "_os_error", None)):
        reason = getattr(candidate, "verify_message", None) or getattr(candidate, "reason", None)
        if reason:
            return str(reason)
    return _detail(error)


def _connect_timeout(timeout: type[BaseException]) -> _Rule:
    """A connection attempt that got no answer at all (not even a refusal)."""
    def rule(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
        if not isinstance(exc, timeout):
            return None
        at = _host_of(exc)
        return StorageTimeoutError, (
            f"no answer from {at or 'the endpoint'} within connect_timeout: the host "
            "or port may be wrong, or a firewall drops the packets")

    return rule


class RedirectRefused(Exception):
    """Our HTTP transport refused an endpoint's redirect to another host."""


def _redirect_refused(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
    # The SDK's HTTP layer re-raises what its transport raised (aiobotocore: as an
    # HTTPClientError, a connection error by its type), so the refusal is also looked
    # for in what the exception was raised from.
    if any(isinstance(error, RedirectRefused) for error in (exc, exc.__cause__,
                                                               exc.__context__)):
        return StorageOperationError, "redirect to another host refused"
    return None


@lru_cache(maxsize=1)
def _rules() -> tuple[_Rule, ...]:
    """The ordered table, most specific first; generic OSError comes last because
    aiohttp's connection errors are OSErrors too.  ``_network_cause`` looks below the
    SDKs' wrappers, so it comes before their rules and the built-in OS ones."""
    return (
        _redirect_refused,
        *_fsspec_rules(),
        *_obstore_rules(),
        _cut_rule(),
        _network_cause,
        *_region_rules(),
        *_os_rules(),
        *_botocore_rules(),
        *_azure_rules(),
        *_aiohttp_rules(),
        _isinstance_rule(OSError, StorageOperationError, "failed"),
    )


def match(exc: BaseException) -> Optional[tuple[type[StorageError], str]]:
    """The first rule of the table that matches ``exc`` itself."""
    for rule in _rules():
        found = rule(exc)
        if found:
            return found
    return None


def classify(exc: BaseException) -> tuple[type[StorageError], str]:
    """Our exception class and a short reason for any exception a backend raised."""
    if isinstance(exc, StorageError):
        return type(exc), exc.reason
    found = match(exc)
    if found:
        return found
    if exc.__cause__ is not None:
        # A wrapper the table does not know (adlfs raises RuntimeError("Failed to upload
        # block") from the SDK's error): what it wraps says what happened.
        return classify(exc.__cause__)
    return StorageOperationError, "failed"


_PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                PermissionError)


def _detail(exc: BaseException) -> str:
    """What the message says of ``exc``. An OS error about a file says only its
    ``strerror``: the path it names is where the store keeps its files (a server path a
    web app might show its users); the error itself stays as ``__cause__``."""
    if isinstance(exc, OSError) and exc.filename is not None:
        text = exc.strerror or type(exc).__name__
    elif isinstance(exc, _PATH_ERRORS) and exc.errno is None:
        # fsspec's filesystems raise these with the path as their only argument.
        text = type(exc).__name__
    else:
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
    detail = _detail(exc)
    # A wrapper around one of our own refusals adds nothing but its class name.
    said = reason if detail.endswith(reason) else f"{reason}: {type(exc).__name__}: {detail}"
    return error_class(redact(said, secrets), backend=backend, operation=operation, key=key)


def typed_error(
    exc: Exception,
    backend: str,
    operation: str,
    key: Optional[str] = None,
    secrets: Union[Iterable[str], Callable[[], Iterable[str]]] = (),
) -> StorageError:
    """``exc`` as the StorageError a public call raises: our own errors are returned
    themselves, gaining any context they lack; any other is translated through the rule
    table. ``secrets`` may be a function, called only when a message is built."""
    if isinstance(exc, StorageError):
        exc.backend = exc.backend or backend
        exc.operation = exc.operation or operation
        exc.key = exc.key if exc.key is not None else key
        return exc
    return build_error(exc, backend, operation, key,
                       secrets() if callable(secrets) else secrets)


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
    except Exception as exc:
        error = typed_error(exc, backend, operation, key, secrets)
        if error is exc:
            raise
        raise error from exc
