"""Run the benchmarks: ``make bench`` (full run, rewrites RESULTS.md) or ``--quick``.

One backend after another, it starts its own store (local folders on tmpfs and on disk,
moto and Azurite through the test suite's fixtures), seeds it once, then runs every
(workload, tool) of that backend in a fresh child process (``benchmarks/measure.py``),
interleaved in a new shuffled order each round.  ``--quick`` runs each once at small
sizes, all of a backend's in one child (23 s instead of 88 for 117 fresh interpreters),
prints the report and writes nothing, so CI proves the harness works without asserting
figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script (make bench): make the repo importable
    sys.path.insert(0, str(ROOT))

from benchmarks import audit, servers  # noqa: E402
from benchmarks.report import RunInfo, render  # noqa: E402
from benchmarks.spec import FULL, QUICK, Sample, Sizes, Spec  # noqa: E402
from benchmarks.stats import Key, summarise  # noqa: E402
from benchmarks.targets import TARGETS, judge  # noqa: E402
from benchmarks.tools import available  # noqa: E402

BACKENDS = ("local-tmpfs", "local-disk", "s3", "azure")
ADAPTER_MODULES = {"s3": "perceptra_storage.backends.s3",
                   "azure": "perceptra_storage.backends.azure"}
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
STALL_LIMIT = 2
"""Consecutive timed-out measurements after which a backend's phase gives up."""
ONLY_ON_TMPFS = {("local-disk", "small_upload"), ("local-disk", "small_download")}
"""The per-file overhead is measured on tmpfs; on disk the same calls hit the page cache
and would repeat it at the cost of run time."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one round at small sizes; print the report, write nothing")
    parser.add_argument("--rounds", type=int, help="rounds of every measurement (default 5; "
                        "1 with --quick)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated subset of {', '.join(BACKENDS)}")
    parser.add_argument("--workloads", help="comma-separated workloads to run (default: all)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the shuffled orders")
    parser.add_argument("--disk-dir", default="/var/tmp",
                        help="a directory on disk for the local-disk backend")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds one measurement may take before it counts as failed")
    parser.add_argument("--output", type=Path,
                        help=f"report file (default {RESULTS.relative_to(ROOT)} for a full "
                        "run; none with --quick or --workloads)")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backends: {', '.join(unknown)}")
    args.workloads = {name.strip() for name in (args.workloads or "").split(",")
                      if name.strip()}
    if args.output is None and not args.quick and not args.workloads:
        args.output = RESULTS
    return args


def backend_missing(backend: str) -> str:
    """Why ``backend`` cannot be measured in this tree, or '' if it can."""
    module = ADAPTER_MODULES.get(backend)
    if module is None:
        return ""
    try:
        importlib.import_module(module)
    except Exception as exc:  # a module being written may not import yet
        return f"{module} does not import ({type(exc).__name__}: {exc})"
    return ""


def start(backend: str, sizes: Sizes, tmpfs: str, disk: str) -> servers.Started:
    if backend == "local-tmpfs":
        return servers.start_local(backend, tmpfs, tmpfs, sizes)
    if backend == "local-disk":
        return servers.start_local(backend, disk, disk, sizes)
    if backend == "s3":
        return servers.start_s3(tmpfs, sizes)
    return servers.start_azure(tmpfs, sizes)


KEPT = "<!-- kept by benchmarks/run.py -->"
"""Marks a section of RESULTS.md written by another benchmark (``django_url.py``, the A/B
of ``ab_commits.py``...): a full run rewrites the file and carries such sections over."""


def kept_sections(path: Path) -> str:
    """The ``## `` sections of the report at ``path`` that hold the ``KEPT`` marker."""
    if not path.exists():
        return ""
    sections = re.split(r"(?m)^(?=## )", path.read_text())
    return "".join("\n" + section.rstrip() + "\n" for section in sections
                   if section.startswith("## ") and KEPT in section)


def run_child(spec: Spec, timeout: float, module: str = "benchmarks.measure") -> str:
    """Run one child process; return its last stdout line (its JSON answer)."""
    return run_children([spec], timeout, module, batch=False)[0]


def run_children(specs: list[Spec], timeout: float, module: str = "benchmarks.measure",
                 batch: bool = True) -> list[str]:
    """Run ``specs`` in one child process (as a JSON list when ``batch``); return its
    JSON answer lines, one per spec, a failed answer for each one it did not give.

    An answer printed before the process died is kept: obstore's runtime has been seen
    to abort (SIGABRT) during interpreter exit, after the measurement was complete."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argument = [spec.to_json() for spec in specs] if batch else specs[0].to_json()

    def failed(why: str) -> str:
        return json.dumps({"wall": 0, "client_cpu": 0, "server_cpu": None, "rss_growth": 0,
                           "ok": False, "error": why})

    try:
        done = subprocess.run([sys.executable, "-m", module, json.dumps(argument)],
                              cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout * len(specs))
    except subprocess.TimeoutExpired:
        return [failed(f"timed out after {timeout:g} s")] * len(specs)
    answers = [line for line in done.stdout.strip().splitlines() if line.startswith("{")]
    answers = answers[-len(specs):]
    if done.returncode != 0 or len(answers) < len(specs) or \
            any('"ok": false' in answer for answer in answers):
        sys.stderr.write(done.stderr[-3000:])
    if len(answers) < len(specs):
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        answers += [failed(f"exit {done.returncode}: {tail[0]}")] * (len(specs) - len(answers))
    elif done.returncode != 0:  # the answers were printed; the crash came at exit
        print(f"(child exited {done.returncode} after answering)", file=sys.stderr)
    return answers


@dataclass
class Phase:
    """One backend's part of the run: its samples, request audit and what was skipped."""

    samples: dict[Key, list[Sample]] = field(default_factory=dict)
    audit: tuple[bool, str] | None = None
    skipped: dict[str, str] = field(default_factory=dict)


def run_backend(backend: str, args: argparse.Namespace, sizes: Sizes, tmpfs: str,
                disk: str) -> Phase:
    """Start and seed one backend's store, run its rounds, audit it, stop it.

    Backends run one after another, each store living only for its own phase: Azurite
    keeps deleted blobs in memory until its periodic clean-up, which on gigabytes of them
    stops it answering for minutes, so its phase must stay short.  Within a phase every
    (workload, tool) runs once per round, in a new shuffled order each round.
    """
    phase = Phase()
    why = backend_missing(backend)
    if why:
        phase.skipped[backend] = why
        return phase
    try:
        started = start(backend, sizes, tmpfs, disk)
    except Exception as exc:  # a server that cannot start skips its backend
        phase.skipped[backend] = f"store did not start: {type(exc).__name__}: {exc}"
        return phase
    try:
        print(f"{backend}: seeded", file=sys.stderr)
        runnable, missing = available(backend)
        phase.skipped.update({f"{backend}/{tool}": why for tool, why in missing.items()})
        plan = [(workload, tool) for workload, tools in runnable.items() for tool in tools
                if (backend, workload) not in ONLY_ON_TMPFS
                and (not args.workloads or workload in args.workloads)]
        phase.samples = {(backend, workload, tool): [] for workload, tool in plan}
        stalled = 0
        for round_no in range(args.rounds):
            order = list(plan)
            random.Random(f"{args.seed}/{backend}/{round_no}").shuffle(order)
            specs = [Spec(store=started.store, workload=workload, tool=tool, sizes=sizes,
                          tag=f"r{round_no}-{workload}-{tool}") for workload, tool in order]
            # --quick measures nothing it reports, so one child runs the whole round.
            answers = run_children(specs, args.timeout) if args.quick else None
            for index, (workload, tool) in enumerate(order, 1):
                spec = specs[index - 1]
                answer = answers[index - 1] if answers else run_child(spec, args.timeout)
                sample = Sample(**json.loads(answer))
                shutil.rmtree(os.path.join(spec.store.workdir, "out", spec.tag),
                              ignore_errors=True)
                phase.samples[(backend, workload, tool)].append(sample)
                shown = f"{sample.wall:.3f} s" if sample.ok else f"FAILED {sample.error}"
                print(f"[{backend} round {round_no + 1}/{args.rounds} {index}/{len(order)}] "
                      f"{workload} {tool}: {shown}", file=sys.stderr)
                stalled = stalled + 1 if sample.error.startswith("timed out") else 0
                if stalled == STALL_LIMIT:
                    phase.skipped[f"{backend} (rest of the phase)"] = (
                        f"{STALL_LIMIT} measurements in a row timed out: the server stopped "
                        "answering")
                    return phase
            if round_no + 1 < args.rounds:  # after the last, nothing: on Azurite it starts a server
                started.new_round()
        if backend in ADAPTER_MODULES:
            spec = Spec(store=started.store, workload="audit", tool="perceptra", sizes=sizes,
                        tag="audit")
            answer = json.loads(run_child(spec, args.timeout, "benchmarks.audit"))
            phase.audit = (False, f"audit failed: {answer['error']}") if "error" in answer \
                else audit.verdict(answer)
    finally:
        started.stop()
    return phase


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    began, started_at = time.monotonic(), datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = Path("/proc/loadavg").read_text().split()[:3]
    tmpfs = tempfile.mkdtemp(prefix="perceptra-bench-", dir="/dev/shm")
    disk = tempfile.mkdtemp(prefix="perceptra-bench-", dir=args.disk_dir)
    skipped = {f"{backend}/{workload}": "per-file overhead is measured on tmpfs"
               for backend, workload in sorted(ONLY_ON_TMPFS) if backend in args.backends}
    samples: dict[Key, list[Sample]] = {}
    audits: dict[str, tuple[bool, str]] = {}
    measured: list[str] = []
    try:
        servers.make_sources(tmpfs, sizes, args.seed)
        servers.make_sources(disk, sizes, args.seed)
        for backend in args.backends:
            phase = run_backend(backend, args, sizes, tmpfs, disk)
            samples.update(phase.samples)
            skipped.update(phase.skipped)
            if phase.audit is not None:
                audits[backend] = phase.audit
            if phase.samples:
                measured.append(backend)
    finally:
        shutil.rmtree(tmpfs, ignore_errors=True)
        shutil.rmtree(disk, ignore_errors=True)

    rows = summarise(samples)
    verdicts = [judge(target, rows) for target in TARGETS if target.backend in args.backends
                and (not args.workloads or target.workload in args.workloads)]
    info = RunInfo(command=" ".join(["benchmarks/run.py", *map(shlex.quote, argv)]),
                   started=started_at, seconds=time.monotonic() - began, rounds=args.rounds,
                   seed=args.seed, sizes=sizes, backends=measured, skipped=skipped,
                   load=(" ".join(load_start),
                         " ".join(Path("/proc/loadavg").read_text().split()[:3])),
                   audits=audits)
    report = render(info, rows, verdicts)
    if args.output is not None:
        args.output.write_text(report + kept_sections(args.output))
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(report)
    failures = sum(len(row.failures) for row in rows.values())
    print(f"done in {info.seconds:.0f} s; {failures} failed measurements", file=sys.stderr)
    return 1 if failures or not measured else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
