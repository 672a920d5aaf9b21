"""Helpers the remote-store tools share: reading sources, writing results, fan-out."""

from __future__ import annotations

import asyncio
import shutil
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

IN_FLIGHT = 32
"""Concurrency of the peers' thread-pool and async variants (the issue's '32 in flight')."""
COPY_CHUNK = 1024 * 1024


def read(path: str) -> bytes:
    with open(path, "rb") as source:
        return source.read()


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as target:
        target.write(data)


def pooled(work: Callable[[T], object], items: Iterable[T]) -> None:
    """Run ``work`` over ``items`` on 32 threads; re-raise the first failure."""
    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        for _ in pool.map(work, items):
            pass


def gather_bounded(make: Callable[[T], Awaitable[object]], items: Sequence[T]) -> None:
    """Run one coroutine per item, at most 32 at once, on a new event loop."""
    async def main() -> None:
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(item: T) -> None:
            async with gate:
                await make(item)

        await asyncio.gather(*(one(item) for item in items))

    asyncio.run(main())


def http_get_to(url: str, path: str) -> None:
    """The raw-HTTP floor for reads: one plain urllib GET, streamed to ``path``."""
    with urllib.request.urlopen(url) as response, open(path, "wb") as target:
        shutil.copyfileobj(response, target, COPY_CHUNK)


def check(result: object) -> None:
    """Raise if a perceptra batch call reported any failed item."""
    raise_for_errors = getattr(result, "raise_for_errors", None)
    if callable(raise_for_errors):
        raise_for_errors()


def expect_listed(count: int, found: int) -> None:
    """Fail the measurement when a listing did not return every seeded entry."""
    if found != count:
        raise RuntimeError(f"listed {found} entries, expected {count}")
