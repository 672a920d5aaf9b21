"""What one measurement is: sizes, the store it runs against, and the sample it returns.

The orchestrator (``run.py``) builds a :class:`Spec` per measurement and hands it, as JSON,
to a fresh child process (``measure.py``); the child answers with a :class:`Sample`.
Everything here is plain data so it crosses the process boundary unchanged.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does."""

    small_count: int
    small_size: int
    big_size: int
    list_count: int
    presign_count: int
    delete_count: int

    def describe(self) -> dict[str, str]:
        """Human-readable workload sizes, by workload name, for the report."""
        return {
            "small_upload": f"{self.small_count} x {self.small_size // KIB} KiB",
            "small_download": f"{self.small_count} x {self.small_size // KIB} KiB",
            "big_upload": f"1 x {self.big_size // MIB} MiB from a file",
            "big_download": f"1 x {self.big_size // MIB} MiB to a file",
            "list": f"{self.list_count} keys",
            "presign": f"{self.presign_count} GET URLs",
            "delete": f"{self.delete_count} keys",
        }


FULL = Sizes(small_count=500, small_size=16 * KIB, big_size=256 * MIB, list_count=5000,
             presign_count=500, delete_count=500)
QUICK = Sizes(small_count=20, small_size=16 * KIB, big_size=4 * MIB, list_count=100,
              presign_count=20, delete_count=20)

WORKLOADS = ("small_upload", "small_download", "big_upload", "big_download", "list",
             "presign", "delete")


@dataclass
class Store:
    """Where one backend's data lives and how to reach it.

    ``server`` holds the connection fields of a remote store (endpoint and keys); empty
    for local.  ``data``, ``listing`` and ``scratch`` are bucket/container names on a
    server, directories for local: read-only fixtures, the 5,000-key listing set (its own
    bucket, because emulators list by scanning the whole bucket), and per-measurement
    writes.  ``workdir`` holds the local source files and download destinations.
    """

    backend: str
    data: str
    listing: str
    scratch: str
    workdir: str
    server: dict[str, str] = field(default_factory=dict)
    server_pid: int = 0


@dataclass
class Spec:
    """One measurement: a tool running one workload on one store."""

    store: Store
    workload: str
    tool: str
    sizes: Sizes
    tag: str
    """Unique per measurement: the scratch prefix its writes go under."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Spec:
        return cls(store=Store(**raw["store"]), workload=raw["workload"], tool=raw["tool"],
                   sizes=Sizes(**raw["sizes"]), tag=raw["tag"])

    # -- the names every tool uses, so all tools touch the same data -----------------

    def small_keys(self) -> list[str]:
        """Keys of the pre-loaded 16 KiB objects (read by the download workload)."""
        return [f"small/k{i:04d}" for i in range(self.sizes.small_count)]

    def scratch_keys(self, count: int) -> list[str]:
        """Fresh keys under this measurement's own prefix in the scratch store."""
        return [f"{self.tag}/k{i:04d}" for i in range(count)]

    def small_sources(self) -> list[str]:
        """Local 16 KiB files that the upload workload sends."""
        return [os.path.join(self.store.workdir, "src", f"k{i:04d}")
                for i in range(self.sizes.small_count)]

    def big_source(self) -> str:
        """The local file the big upload sends."""
        return os.path.join(self.store.workdir, "big.bin")

    def out_dir(self) -> str:
        """An empty local directory for this measurement's downloads."""
        path = os.path.join(self.store.workdir, "out", self.tag)
        os.makedirs(path, exist_ok=True)
        return path


def list_keys(count: int) -> list[str]:
    """The listing set: 100 keys per folder, like a dataset laid out in shards."""
    return [f"d{i // 100:03d}/f{i:05d}" for i in range(count)]


@dataclass
class Sample:
    """What the child measured around the timed call (and nothing else)."""

    wall: float
    """Seconds of wall-clock time."""
    client_cpu: float
    """User + system CPU seconds of the measuring process and its children."""
    server_cpu: float | None
    """User + system CPU seconds of the server process over the same interval."""
    rss_growth: float
    """Peak resident set size during the call minus the size before it, in bytes."""
    ok: bool = True
    error: str = ""
