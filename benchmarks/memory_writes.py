"""What a write to the memory backend costs as the store grows (issue 19).

The memory backend stands in for an object store in users' tests, so a write must
not cost more with more objects stored. For each store size this fills a store
with that many objects, then times 1-byte uploads (median of ``--rounds`` rounds of
``--writes`` uploads each) and one full listing after them. Run it with the
package to measure on the path: ``python benchmarks/memory_writes.py``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from perceptra_storage import get_storage_adapter

SIZES = (100, 1_000, 20_000, 100_000)


def measure(stored: int, writes: int, rounds: int) -> tuple[float, float]:
    """Microseconds per 1-byte upload into a store holding ``stored`` objects, and
    milliseconds of the listing of every object that follows those uploads."""
    storage = get_storage_adapter("memory")
    for n in range(stored):
        storage.upload_file(b"", f"fill/{n:07d}")
    per_write = []
    for round_ in range(rounds):
        start = time.perf_counter()
        for n in range(writes):
            storage.upload_file(b"x", f"new/{round_}/{n:05d}")
        per_write.append((time.perf_counter() - start) / writes * 1e6)
    start = time.perf_counter()
    listed = sum(1 for _ in storage.iter_files())
    listing_ms = (time.perf_counter() - start) * 1e3
    assert listed == stored + writes * rounds
    return statistics.median(per_write), listing_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args()
    print(f"# memory backend writes: Python {platform.python_version()}, "
          f"{platform.machine()}, median of {args.rounds} x {args.writes} uploads")
    print("| objects stored | us per 1-byte upload | ms to list everything after |")
    print("|---|---|---|")
    for stored in args.sizes:
        per_write, listing_ms = measure(stored, args.writes, args.rounds)
        print(f"| {stored:,} | {per_write:.1f} | {listing_ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
