"""Timeouts and retries: the one retry policy of the package.

Which failures another attempt may fix (:func:`transient`), whether a download
was cut while its body was arriving (:func:`cut_read`), how long to wait
between attempts, and the one retry loop (:meth:`Resilience.retry_async`, which
:meth:`Resilience.retry` also drives for blocking calls). The SDKs underneath
make a single attempt per request (see the backends), so failures are retried
here once, not by two stacked policies.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, fields
from typing import Any, Optional, TypedDict, TypeVar

from .errors import (
    StorageConnectionError,
    StorageError,
    StorageTimeoutError,
    StorageValidationError,
    chain,
    match,
    obstore_cut,
    response_of,
)
from .validation import validate_positive

__all__ = [
    "Resilience",
    "ResilienceConfig",
    "cut_read",
    "cut_read_types",
    "recovered",
    "run_inline",
    "transient",
    "within",
]

_T = TypeVar("_T")

logger = logging.getLogger(__name__)

# Error codes that mean "slow down" or "try again" whatever the status says.
_RETRY_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                          "TooManyRequests", "ServerBusy", "RequestTimeout", "InternalError",
                          "ServiceUnavailable", "OperationTimedOut"})


class ResilienceConfig(TypedDict, total=False):
    """The timeout and retry fields every network backend's config takes."""

    connect_timeout: float
    """Seconds to open a connection before the attempt fails (default 5)."""
    read_timeout: float
    """Seconds to wait for the next bytes of a response before the attempt fails (default 10)."""
    max_attempts: int
    """Tries per request, the first included, on transient failures (default 3)."""
    retry_backoff: float
    """Seconds before the first retry, doubling for each next one, jittered (default 0.5)."""
    operation_timeout: float
    """Overall limit in seconds on each request or transfer, retries included (default none)."""


@functools.cache
def cut_read_types() -> tuple[type[BaseException], ...]:
    """The exception types the installed HTTP stacks raise when the connection ends
    before a response body is complete: aiohttp's ``ClientPayloadError`` (a chunked
    or sized body cut short), botocore's ``ResponseStreamingError`` (aiobotocore
    wraps a connection lost mid-body in it) and ``IncompleteReadError`` (fewer
    bytes than Content-Length), azure.core's ``IncompleteReadError``."""
    found: list[type[BaseException]] = []
    try:
        import aiohttp

        found.append(aiohttp.ClientPayloadError)
    except ImportError:
        pass
    try:
        from botocore import exceptions as bce

        found += [bce.ResponseStreamingError, bce.IncompleteReadError]
    except ImportError:
        pass
    try:
        from azure.core import exceptions as ace

        found.append(ace.IncompleteReadError)
    except ImportError:
        pass
    return tuple(found)


def cut_read(exc: BaseException) -> bool:
    """Whether the connection was cut while a response body was arriving, which the
    SDKs report but do not retry (the request itself had succeeded)."""
    kinds = cut_read_types()
    return any(isinstance(error, kinds) or obstore_cut(error) for error in chain(exc))


def transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: the connection failed, timed out or was
    cut, or the server failed or asked to slow down (5xx, 408, 429, throttling codes).
    An answer such as 403 or 404, and anything we refused ourselves, is permanent:
    another attempt would only repeat it."""
    for error in chain(exc):
        if isinstance(error, StorageError):
            return isinstance(error, StorageConnectionError)
        status, code = response_of(error)
        if status is not None or code:
            return code in _RETRY_CODES or status in (408, 429) or (status or 0) >= 500
        found = match(error)
        if found and issubclass(found[0], StorageConnectionError):
            return True
    return False


@dataclass(frozen=True)
class Resilience:
    """Timeouts and retries of a network backend; each field is also a ``config`` field of
    the same name on s3, minio and azure.  The defaults report a dead endpoint within
    seconds and a server that stopped answering within about ``max_attempts`` x
    ``read_timeout``."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    max_attempts: int = 3
    retry_backoff: float = 0.5
    operation_timeout: Optional[float] = None

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): exponential from
        ``retry_backoff``, jittered over its upper half so that clients that failed
        together do not retry together."""
        ceiling = self.retry_backoff * 2.0 ** (attempt - 1)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def deadline(self) -> Optional[float]:
        """The ``time.monotonic()`` by which a call starting now must be done, under
        ``operation_timeout``; None without one."""
        limit = self.operation_timeout
        return None if not limit else time.monotonic() + limit

    async def _attempts(self, call: Callable[[], Awaitable[_T]],
                        when: Callable[[BaseException], bool],
                        pause: Callable[[float], Awaitable[None]],
                        deadline: Optional[float] = None, what: str = "",
                        failed: Optional[Exception] = None) -> _T:
        """The retry loop: ``call`` up to ``max_attempts`` times while it fails with
        ``when(error)``, with ``pause(delay)`` between attempts, and no pause that
        would end past ``deadline``; ``failed``: the first attempt was made already and
        failed so (transiently).  A recovery logs one DEBUG record (and nothing
        else: a fault we recovered from is not the user's news)."""
        attempt = 1
        last: Optional[BaseException] = failed
        if failed is not None:
            await pause(self._wait(attempt, failed, deadline))
            attempt = 2
        while True:
            try:
                result = await call()
            except Exception as exc:
                if attempt >= self.max_attempts or not when(exc):
                    raise
                wait = self._wait(attempt, exc, deadline)
                last = exc
            else:
                if last is not None:
                    recovered(attempt - 1, type(last).__name__, what)
                return result
            await pause(wait)
            attempt += 1

    def _wait(self, attempt: int, error: Exception, deadline: Optional[float]) -> float:
        """The pause after failed attempt ``attempt``; a timeout (caused by ``error``)
        when it would end past ``deadline``."""
        wait = self.delay(attempt)
        if deadline is not None and time.monotonic() + wait >= deadline:
            raise StorageTimeoutError("not done within operation_timeout") from error
        return wait

    async def retry_async(self, call: Callable[..., Awaitable[_T]], *args: Any,
                          what: str = "", **kwargs: Any) -> _T:
        """Await ``call(*args, **kwargs)`` while it fails transiently.  ``what`` names the
        call in the DEBUG record of a recovery; by default a first argument that is a
        string (the SDK method's name).  The first attempt is awaited directly, as in
        :meth:`retry`: nearly every call succeeds at once, and the loop's extra
        coroutine and closure were a measurable part of a small object's client CPU on
        the obstore engine."""
        try:
            return await call(*args, **kwargs)
        except Exception as exc:
            if self.max_attempts <= 1 or not transient(exc):
                raise
            failed = exc
        what = what or (args[0] if args and isinstance(args[0], str) else "")
        return await self._attempts(lambda: call(*args, **kwargs), transient, asyncio.sleep,
                                    what=what, failed=failed)

    def retry(self, call: Callable[[], _T],
              when: Callable[[BaseException], bool] = transient,
              deadline: Optional[float] = None) -> _T:
        """Run the blocking ``call`` while it fails with ``when(error)``, sleeping in
        this thread between attempts; no attempt starts after ``deadline``
        (``time.monotonic()``), which ``call`` itself is expected to honour. The first
        attempt is a plain call: most succeed, and the loop's coroutines cost more than
        a small local read."""
        try:
            return call()
        except Exception as exc:
            if self.max_attempts <= 1 or not when(exc):
                raise
            failed = exc

        async def once() -> _T:
            return call()

        async def pause(seconds: float) -> None:
            time.sleep(seconds)

        return run_inline(self._attempts(once, when, pause, deadline, failed=failed))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], backend: str) -> Resilience:
        """The fields given in ``config`` (already type-checked by the schema), range-checked;
        the defaults for the rest."""
        given = {item.name: config[item.name] for item in fields(cls)
                 if config.get(item.name) is not None}
        for name, value in given.items():
            validate_positive(value, f"config field {name!r}", backend)
        if given.get("max_attempts", 1) < 1 or given.get("max_attempts", 1) > 20:
            raise StorageValidationError("config field 'max_attempts' must be from 1 to 20",
                                         backend=backend)
        return cls(**given)


def recovered(retries: int, failure: str, what: str = "") -> None:
    """The one record of a call (``what``, when known) that succeeded after
    ``retries`` retries, the last after ``failure``: DEBUG, under
    ``perceptra_storage``, so an app that has not configured logging prints nothing
    for a fault it never has to handle."""
    logger.debug("recovered after %d retries (last failure: %s)%s", retries, failure,
                 f" in {what}" if what else "")


def within(seconds: float, call: Callable[[], Any]) -> None:
    """Run ``call`` in a worker thread and wait at most ``seconds`` for it; the thread
    is abandoned on timeout (a blocking SDK call cannot be interrupted)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perceptra-probe")
    try:
        pool.submit(call).result(timeout=seconds)
    except FutureTimeout:
        raise StorageTimeoutError(f"no answer within {seconds:g} s") from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def run_inline(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine that never suspends (every await in it is on a coroutine that
    returns without waiting for a future) to its end, in this thread and without an
    event loop: the one retry loop then also serves blocking calls, including from
    threads where a loop is already running."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("a blocking retry suspended on a future")
