"""The benchmark harness still works: ``benchmarks/run.py --quick`` runs every workload
of every tool once, at small sizes, on every benchmark backend (no figure is asserted;
``make bench`` measures).

It runs as one test of the suite rather than after it, so that a parallel run
overlaps its single-threaded child processes with the other worker's tests instead of
leaving a core idle for about a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.run import BACKENDS

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_run_measures_every_backend() -> None:
    # Coverage's subprocess hook would follow every measuring child (slowing each and
    # counting benchmark code as the package's): the harness runs as `make bench` does.
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("COV_CORE_", "COVERAGE_"))}
    result = subprocess.run([sys.executable, "benchmarks/run.py", "--quick"], cwd=ROOT,
                            env=env, capture_output=True, timeout=900, check=False)
    report, log = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, log[-3000:]
    assert "; 0 failed measurements" in log
    # A backend whose server did not start is left out of the report, not failed.
    for backend in BACKENDS:
        assert f"\n| {backend} | " in report, f"{backend} was not measured:\n{log[-3000:]}"
