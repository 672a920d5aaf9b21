"""Summaries of a run's samples: medians with min-max, and the server-bound mark.

A row is one tool on one workload of one backend.  It is *server-bound* when the server
spent at least 80% of the wall time on CPU, or when its wall time is within 1.2x of the
raw-HTTP floor (``urllib``) of the same workload: the emulator, not the client, sets its
pace, so such rows are judged by client CPU and memory rather than wall time.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.spec import Sample

FLOOR = "urllib"
SERVER_SHARE = 0.8
FLOOR_MARGIN = 1.2


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))


@dataclass
class Row:
    backend: str
    workload: str
    tool: str
    runs: int
    failures: list[str]
    wall: Spread | None = None
    client_cpu: Spread | None = None
    server_cpu: Spread | None = None
    rss_growth: Spread | None = None
    server_bound: bool = False
    bound_why: str = ""

    @property
    def server_share(self) -> float | None:
        if self.server_cpu is None or self.wall is None or not self.wall.median:
            return None
        return self.server_cpu.median / self.wall.median


Key = tuple[str, str, str]
"""(backend, workload, tool)"""


def summarise(samples: dict[Key, list[Sample]]) -> dict[Key, Row]:
    """One :class:`Row` per measured tool, server-bound marks included."""
    rows: dict[Key, Row] = {}
    for (backend, workload, tool), found in samples.items():
        good = [s for s in found if s.ok]
        row = Row(backend, workload, tool, runs=len(good),
                  failures=[s.error for s in found if not s.ok])
        if good:
            row.wall = Spread.of([s.wall for s in good])
            row.client_cpu = Spread.of([s.client_cpu for s in good])
            row.rss_growth = Spread.of([s.rss_growth for s in good])
            servers = [s.server_cpu for s in good if s.server_cpu is not None]
            row.server_cpu = Spread.of(servers) if len(servers) == len(good) else None
        rows[(backend, workload, tool)] = row
    for row in rows.values():
        _mark(row, rows.get((row.backend, row.workload, FLOOR)))
    return rows


def _mark(row: Row, floor: Row | None) -> None:
    share = row.server_share
    if share is not None and share >= SERVER_SHARE:
        row.server_bound, row.bound_why = True, f"server CPU {share:.0%} of wall"
    elif floor is not None and floor.wall is not None and row.wall is not None and \
            row.wall.median <= FLOOR_MARGIN * floor.wall.median:
        row.server_bound = True
        row.bound_why = f"wall {row.wall.median / floor.wall.median:.2f}x the urllib floor"
