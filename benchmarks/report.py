"""The Markdown report of one run: machine, command, targets, request audit, tables.

Every figure printed here comes from the samples of the run being reported.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.spec import MIB, WORKLOADS, Sizes
from benchmarks.stats import Key, Row, Spread
from benchmarks.targets import Verdict

PACKAGES = ("perceptra-storage", "fsspec", "s3fs", "aiobotocore", "boto3", "botocore",
            "adlfs", "azure-storage-blob", "azure-core", "aiohttp", "obstore", "moto")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunInfo:
    """Everything about the run that is not a sample."""

    command: str
    started: str
    seconds: float
    rounds: int
    seed: int
    sizes: Sizes
    backends: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    """Backend or backend/tool -> why it was not measured."""
    load: tuple[str, str] = ("", "")
    """/proc/loadavg at the start and at the end."""
    audits: dict[str, tuple[bool, str]] = field(default_factory=dict)


def machine() -> list[str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    try:
        azurite = json.loads((ROOT / "tests/servers/package.json").read_text())[
            "dependencies"]["azurite"]
        versions.append(f"Azurite {azurite}")
    except (OSError, KeyError, ValueError):
        pass
    return [
        f"- CPU: {os.cpu_count()} cores ({cpu}); memory {memory:.1f} GiB",
        f"- OS: {platform.system()} {platform.release()}; Python {platform.python_version()}",
        f"- Packages: {', '.join(versions)}",
    ]


def _s(spread: Spread | None, scale: float = 1.0, digits: int = 3) -> str:
    if spread is None:
        return "-"
    return (f"{spread.median / scale:.{digits}f} ({spread.low / scale:.{digits}f}-"
            f"{spread.high / scale:.{digits}f})")


def _share(row: Row) -> str:
    share = row.server_share
    return "-" if share is None else f"{share:.0%}"


def _verdict(verdict: Verdict) -> str:
    return {True: "met", False: "**not met**", None: "not measured"}[verdict.met]


def render(info: RunInfo, rows: dict[Key, Row], verdicts: list[Verdict]) -> str:
    out = [
        "# Benchmark results",
        "",
        f"Latest full run: {info.started}, {info.seconds / 60:.1f} minutes, "
        f"{info.rounds} rounds, shuffle seed {info.seed}.",
        "",
        f"Command: `{info.command}`",
        "",
        *machine(),
        f"- Load average (1/5/15 min) at start: {info.load[0]}; at end: {info.load[1]}",
        "",
        "How to read this: every measurement ran in a fresh process with a warmed client "
        "(imports, client construction and one request are not timed); tools were "
        "interleaved in a new shuffled order each round; figures are the median with "
        "min-max over the rounds. Client CPU is user+system time of the measuring process "
        "(all threads, plus children); server CPU is read from /proc/<pid>/stat of the "
        "moto or Azurite process; peak RSS growth is the kernel's high-water mark during "
        "the call (reset just before it) minus the resident size before it. A row is "
        "server-bound when server CPU / wall >= 0.8 or its wall is within 1.2x of the "
        "urllib floor of the same workload: the emulator sets its pace, so its targets "
        "are judged by client CPU and memory, not wall time. moto spends a few ms of CPU "
        "per small request and Azurite about 2 ms, far more than a real service's "
        "client-visible cost, so wall ratios on small objects understate client "
        "differences.",
        "",
        "Workloads: " + "; ".join(f"{name} = {what}"
                                  for name, what in info.sizes.describe().items()) + ".",
        "",
    ]
    if info.skipped:
        out += ["Not measured in this run:", ""]
        out += [f"- {what}: {why}" for what, why in sorted(info.skipped.items())]
        out.append("")
    out += ["## Targets", "",
            "| backend | target | measured | verdict | why (from this run) |",
            "|---|---|---|---|---|"]
    out += [f"| {v.target.backend} | {v.target.text} | {v.measured} | {_verdict(v)} | "
            f"{v.reason} |" for v in verdicts]
    if info.audits:
        out += ["", "## Requests per single small call (adapter, counted at aiohttp)", "",
                "Target: one request per call, a PUT for an upload and a GET without Range "
                "for a download; never a HEAD.", "",
                "| backend | verdict | requests |", "|---|---|---|"]
        out += [f"| {backend} | {'met' if ok else '**not met**'} | {summary} |"
                for backend, (ok, summary) in sorted(info.audits.items())]
    for backend in info.backends:
        out += ["", f"## {backend}", "",
                "| workload | tool | wall s | client CPU s | server CPU s | server/wall | "
                "peak RSS growth MiB | server-bound |",
                "|---|---|---|---|---|---|---|---|"]
        for workload in WORKLOADS:
            found = sorted((row for (b, w, _), row in rows.items()
                            if b == backend and w == workload),
                           key=lambda row: row.wall.median if row.wall else float("inf"))
            for row in found:
                if row.wall is None:
                    out.append(f"| {workload} | {row.tool} | failed: "
                               f"{(row.failures or ['?'])[0]} | | | | | |")
                    continue
                failed = f" ({len(row.failures)} failed)" if row.failures else ""
                out.append(
                    f"| {workload} | {row.tool}{failed} | {_s(row.wall)} | "
                    f"{_s(row.client_cpu)} | {_s(row.server_cpu)} | {_share(row)} | "
                    f"{_s(row.rss_growth, MIB, 1)} | "
                    f"{'yes: ' + row.bound_why if row.server_bound else 'no'} |")
    return "\n".join(out) + "\n"
