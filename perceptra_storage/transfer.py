"""Batch results and progress reporting, shared by every adapter.

A batch never stops at the first failure: each item either succeeds or is
recorded with the typed error it raised, and :class:`BatchResult` reports both.
Progress goes to a tqdm bar (``progress=True``; the ``progress`` extra, which
picks the notebook widget when it runs in Jupyter) or to any callable taking
``(done, total)``, where ``total`` may be None while unknown.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from .errors import (
    StorageAdapterError,
    StorageError,
    StorageOperationError,
    StorageValidationError,
)

__all__ = [
    "BatchResult",
    "Progress",
    "ProgressArg",
    "check_concurrency",
    "collect",
    "source_size",
]

ProgressArg = Union[bool, Callable[[int, Optional[int]], Any], None]
"""``True`` for a tqdm bar, a ``callback(done, total)``, or None/False for nothing."""


@dataclass
class BatchResult:
    """What a batch operation did, item by item (keys in the order given)."""

    succeeded: list[str] = field(default_factory=list)
    """Keys (for uploads and copies: destination keys) that were done."""
    failed: dict[str, StorageError] = field(default_factory=dict)
    """Keys that were not done, each with the typed error that stopped it."""

    @property
    def ok(self) -> bool:
        """True when every item succeeded."""
        return not self.failed

    def raise_for_errors(self) -> None:
        """Raise the first failure, if any; when others failed too, a new error of its type
        whose message counts them (the errors in :attr:`failed` stay as they were,
        so calling this again says the same)."""
        if not self.failed:
            return
        first = next(iter(self.failed.values()))
        others = len(self.failed) - 1
        if not others:
            raise first
        # A new error of the same type, not copy.copy: once tblib's pickling support is
        # installed (importing dask.distributed does it) a shallow copy shares the
        # original's __dict__, and the count would pile up on the stored error.
        summary = type(first)(f"{first.reason} (and {others} more failed)",
                              backend=first.backend, operation=first.operation, key=first.key)
        raise summary from first

    def __bool__(self) -> bool:
        return self.ok


class Progress:
    """Thread-safe progress sink in one unit (bytes or items)."""

    def __init__(self, progress: ProgressArg, total: Optional[int], unit: str,
                 description: str) -> None:
        self._lock = threading.Lock()
        self._done = 0
        self._total = total
        self._callback: Optional[Callable[[int, Optional[int]], Any]] = None
        self._bar: Any = None
        if progress is True:
            try:
                from tqdm.auto import tqdm
            except ImportError as exc:
                raise StorageAdapterError(
                    "progress=True needs tqdm; run: pip install 'perceptra-storage[progress]'"
                ) from exc
            self._bar = tqdm(total=total, unit=unit, unit_scale=unit == "B",
                             desc=description, leave=False)
        elif callable(progress):
            self._callback = progress

    @property
    def active(self) -> bool:
        return self._bar is not None or self._callback is not None

    def advance(self, amount: int) -> None:
        if not amount or not self.active:
            return
        with self._lock:
            self._done += amount
            done, total = self._done, self._total
            if self._bar is not None:
                self._bar.update(amount)
        if self._callback is not None:
            self._callback(done, total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def fsspec_callback(self) -> Any:
        """An fsspec ``Callback`` that forwards byte counts here (for put_file/get_file);
        fsspec's shared no-op one when nothing listens."""
        forward, silent = _fsspec_callbacks()
        return forward(self) if self.active else silent


@functools.cache
def _fsspec_callbacks() -> tuple[type, Any]:
    """The fsspec ``Callback`` subclass of :meth:`Progress.fsspec_callback` and fsspec's
    shared no-op callback, found once (fsspec is imported only when a transfer first
    reports to it)."""
    from fsspec.callbacks import DEFAULT_CALLBACK, Callback

    class _Forward(Callback):  # type: ignore[misc]
        def __init__(self, sink: Progress) -> None:
            super().__init__()
            self.sink = sink

        def relative_update(self, inc: int = 1) -> None:
            self.sink.advance(int(inc))

        def absolute_update(self, value: int) -> None:
            previous: Any = getattr(self, "value", 0) or 0
            self.value = value
            self.sink.advance(int(value) - int(previous))

    return _Forward, DEFAULT_CALLBACK


def source_size(source: Any) -> int:
    """Bytes in an upload source when cheaply known (0 for file objects)."""
    if isinstance(source, (bytes, bytearray)):
        return len(source)
    if isinstance(source, memoryview):
        return source.nbytes
    if isinstance(source, os.PathLike):  # a plain str is refused by the upload, unread
        try:
            return os.path.getsize(source)
        except OSError:
            return 0
    return 0


def check_concurrency(concurrency: Any, backend: str) -> int:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise StorageValidationError(
            f"{backend}: concurrency must be an int >= 1, not {concurrency!r}", backend=backend)
    return int(concurrency)


def collect(items: list[tuple[str, Any]],
            outcomes: Mapping[int, Optional[StorageError]]) -> BatchResult:
    """A BatchResult in input order from per-index outcomes (None = success)."""
    result = BatchResult()
    for index, (key, _) in enumerate(items):
        name = key if isinstance(key, str) else repr(key)
        error = outcomes[index] if index in outcomes else StorageOperationError(
            "the batch stopped before this item ran", key=name)
        if error is None:
            result.succeeded.append(name)
        else:
            result.failed[name] = error
    return result
