"""Did a change make the adapter slower?  Client CPU of the adapter at an older commit
against the working tree, measured interleaved on one seeded store, next to the raw peer.

``make bench`` compares the adapter with its peers in one run, but comparing two of its
runs on different days compares machines as much as code (on 2026-11-30 every tool,
plain ``open`` included, cost about twice the CPU of the 2026-11-25 run).  Here the old
and the new adapter take turns in each round, in a shuffled order, in fresh processes, so
both see the same machine::

    python benchmarks/ab_commits.py --old ff6923e --backend s3 --rounds 5

(``--backend local-tmpfs``: the local small-file rows against plain ``open``, no server.)

The old commit's ``perceptra_storage`` is exported with ``git archive`` next to this
checkout's ``benchmarks`` (the harness and the peers are the same on both sides).
Prints one line per workload: the peer's median client CPU and each side's ratio to it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from benchmarks import run, servers  # noqa: E402
from benchmarks.spec import FULL, Spec  # noqa: E402

ENGINE_ROWS = [("small_download", "perceptra_obstore_batch", "obstore_async32"),
               ("small_upload", "perceptra_obstore_batch", "obstore_async32"),
               ("list", "perceptra_obstore", "obstore")]
"""The obstore engine's rows (issue 18), on both object stores."""
PLAN = {
    "s3": [("big_download", "perceptra", "urllib"),
           ("small_download", "perceptra_batch", "s3fs_batch"),
           ("small_upload", "perceptra_batch", "s3fs_batch"),
           ("presign", "perceptra", "boto3_generate_presigned_url"),
           *ENGINE_ROWS],
    "azure": [("small_download", "perceptra_batch", "adlfs_batch"),
              ("small_upload", "perceptra_batch", "adlfs_batch"),
              ("presign", "perceptra", "azure_generate_blob_sas"),
              *ENGINE_ROWS],
    "local-tmpfs": [("small_download", "perceptra_loop", "plain_open"),
                    ("small_upload", "perceptra_loop_nofsync", "plain_open")],
}
"""Per backend: (workload, adapter tool, raw peer) - the rows whose ratios a change of
the adapter's internals could move."""


def export_old(commit: str, into: Path) -> Path:
    """A tree holding ``perceptra_storage`` at ``commit`` and this checkout's harness."""
    archive = subprocess.run(["git", "archive", commit, "perceptra_storage"], cwd=ROOT,
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    shutil.copytree(ROOT / "benchmarks", into / "benchmarks")
    return into


def client_cpu(root: Path, spec: Spec) -> float:
    """One measurement in a fresh process importing ``perceptra_storage`` from ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.measure",
                           json.dumps(spec.to_json())],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if not answer["ok"]:
        raise RuntimeError(f"{spec.tool} on {root}: {answer['error']}")
    return float(answer["client_cpu"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the commit to compare with")
    parser.add_argument("--backend", choices=sorted(PLAN), required=True)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="perceptra-ab-", dir="/dev/shm"))
    old = export_old(args.old, work / "old")
    sides = {f"{args.old}": old, "working tree": ROOT}
    servers.make_sources(str(work), FULL, 7)
    started = run.start(args.backend, FULL, str(work), str(work))
    cpu: dict[tuple[str, str, str], list[float]] = {}
    try:
        for round_no in range(args.rounds):
            jobs = [(workload, tool, side) for workload, ours, peer in PLAN[args.backend]
                    for tool, side in [(ours, name) for name in sides]
                    + [(peer, "working tree")]]
            random.Random(round_no).shuffle(jobs)
            for workload, tool, side in jobs:
                spec = Spec(store=started.store, workload=workload, tool=tool, sizes=FULL,
                            tag=f"ab{round_no}-{workload}-{tool}-{side.replace(' ', '_')}")
                cpu.setdefault((workload, tool, side), []).append(
                    client_cpu(sides[side], spec))
            if round_no + 1 < args.rounds:  # after the last, nothing: on Azurite it starts a server
                started.new_round()
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        started.stop()
        shutil.rmtree(work, ignore_errors=True)
    for workload, ours, peer in PLAN[args.backend]:
        base = statistics.median(cpu[(workload, peer, "working tree")])
        cells = [f"{side} {statistics.median(cpu[(workload, ours, side)]) / base:.2f}x"
                 for side in sides]
        print(f"{args.backend} {workload}: {peer} {base:.3f} s client CPU; "
              f"{ours}: " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
