"""One measurement in a fresh process: ``python -m benchmarks.measure '<spec json>'``.
(``--quick`` passes a JSON list of specs instead, measured one after another in the
same process, one answer line each: it proves every workload runs, and 117 fresh
interpreters importing the SDKs cost more than the measurements.)

The child imports only the tool it runs, builds and warms its client (one request, so
connection set-up and lazy client construction are not timed), then times the single
workload call.  Around that call it reads its own CPU time and the server's (from
/proc/<pid>/stat), and resets the kernel's peak-RSS mark so the memory figure is the
growth caused by the call alone.  It prints one JSON :class:`Sample` on the last line.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
import traceback
from dataclasses import asdict

from benchmarks.spec import Sample, Spec
from benchmarks.tools import factory_for

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def server_cpu(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads), or None."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def client_cpu() -> float:
    """CPU seconds of this process (every thread) plus its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def current_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def reset_peak_rss() -> bool:
    """Reset VmHWM (Linux >= 4.0) so the next peak reading covers only what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(spec: Spec) -> Sample:
    """Prepare the tool, then time its workload once."""
    run = factory_for(spec.store.backend, spec.workload, spec.tool)(spec)
    gc.collect()
    before_rss = current_rss()
    if not reset_peak_rss():
        before_rss = peak_rss()
    server_before = server_cpu(spec.store.server_pid)
    cpu_before = client_cpu()
    start = time.perf_counter()
    run()
    wall = time.perf_counter() - start
    cpu = client_cpu() - cpu_before
    server_after = server_cpu(spec.store.server_pid)
    growth = max(0, peak_rss() - before_rss)
    server = None if server_before is None or server_after is None else \
        server_after - server_before
    return Sample(wall=wall, client_cpu=cpu, server_cpu=server, rss_growth=growth)


def main() -> None:
    given = json.loads(sys.argv[1])
    for raw in given if isinstance(given, list) else [given]:
        try:
            sample = measure(Spec.from_json(raw))
        except Exception as exc:  # reported, not raised: one failing tool must not end a run
            traceback.print_exc()
            sample = Sample(wall=0.0, client_cpu=0.0, server_cpu=None, rss_growth=0.0,
                            ok=False, error=f"{type(exc).__name__}: {str(exc)[:300]}")
        print(json.dumps(asdict(sample)), flush=True)  # before interpreter teardown


if __name__ == "__main__":
    main()
