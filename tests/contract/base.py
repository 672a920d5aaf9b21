"""What every contract mixin shares: the fixtures an entry-point class gets, the
selection of tests by capability, and small helpers several mixins use."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import strategies as st

from tests.conftest import (
    BACKENDS,
    Backend,
    Capabilities,
    Faulty,
    fault_proxy,
    started_backend,
)

T = TypeVar("T")

CAPABILITIES = frozenset(f.name for f in dataclasses.fields(Capabilities))


def needs(*capabilities: str) -> Callable[[T], T]:
    """Declare that a contract test (or every test of a mixin, when it decorates the
    class) only means something on backends with all of ``capabilities``, fields of
    ``tests.conftest.Capabilities`` that are true.  On other backends the test is not
    collected at all, as it was never parametrized for them before the split."""
    unknown = set(capabilities) - CAPABILITIES
    if unknown:
        raise TypeError(f"unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}")

    def mark(target: T) -> T:
        tests = ([value for name, value in vars(target).items() if name.startswith("test_")]
                 if isinstance(target, type) else [target])
        for test in tests:
            test.needs = (*getattr(test, "needs", ()), *capabilities)
        return target

    return mark


def sync_only(reason: str) -> Callable[[T], T]:
    """A contract test whose calls do not go through ``adapter.aio`` even on an entry
    point that drives the adapter through it (``through = "aio"``): it checks the sync
    route's own tools (fsspec URLs, pandas on a blocking file object, construction), so
    running it twice would only repeat the sync test. ``reason`` says which.  A reason
    that starts with "async gap" names a behaviour the async view does not have yet (open
    in issue 17): the test must move back to both routes when the view gains it."""

    def mark(test: T) -> T:
        test.sync_only = reason  # type: ignore[attr-defined]
        return test

    return mark


class ContractBase:
    """Base of every contract mixin, and of every entry-point class.

    An entry-point class (``class TestS3Contract(Contract): case = "s3"``) names its
    entry of ``tests.conftest.BACKENDS`` in ``case``.  Its ``backend`` fixture then
    overrides the parametrized one of ``tests/conftest.py`` (and with it ``storage``,
    which builds on ``backend``), so each test runs once, on that backend, on a fresh
    store; tests that need a capability the backend lacks are left out of the class.
    """

    case: ClassVar[str]
    through: ClassVar[str] = "sync"
    """``"aio"``: every adapter the tests get is driven through ``adapter.aio`` (see
    ``tests/async_view.py``); tests marked :func:`sync_only` are left out."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        case_id = cls.__dict__.get("case")
        if case_id is None:
            return  # a mixin, not an entry point
        case = BACKENDS[case_id]
        for name in dir(cls):
            test = getattr(cls, name)
            required = getattr(test, "needs", ())
            if name.startswith("test_") and (
                    not all(getattr(case, c) for c in required) or
                    (cls.through == "aio" and getattr(test, "sync_only", None))):
                # pytest collects only callables: this entry point does not get the test.
                setattr(cls, name, None)

    @pytest.fixture
    def backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
        """This class's backend on a fresh, empty store (driven through ``aio`` when the
        class says so)."""
        with started_backend(self.case, request, tmp_path) as started:
            if self.through != "aio":
                yield started
                return
            from tests.async_view import through_aio

            with through_aio(started) as wrapped:
                yield wrapped

    @pytest.fixture
    def faulty(self, backend: Backend) -> Iterator[Faulty]:
        """This class's backend behind a fault-injecting proxy."""
        with fault_proxy(backend) as proxied:
            yield proxied


FAST = {"read_timeout": 2, "max_attempts": 2, "retry_backoff": 0.1}
"""Timeouts short enough for the fault tests; the defaults are checked separately."""


def sha(data: bytes) -> str:
    """Compare big payloads by digest, so a failed assertion does not print megabytes."""
    return hashlib.sha256(data).hexdigest()


def in_threads(work: Callable[[int], None], count: int) -> None:
    """Run ``work(n)`` for n in range(count), each in its own thread, and wait for all."""
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


_SEGMENT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\"),
    min_size=1, max_size=20,
).filter(lambda s: s not in (".", "..") and "%2e" not in s.lower()
         and not s.startswith(".~ps."))
KEYS = st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join).filter(
    lambda k: len(k.encode()) <= 1024)
"""Valid keys: one to four segments of printable characters, at most 1024 bytes."""
