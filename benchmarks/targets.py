"""The issue's targets, each a ratio between rows of the same run, and their verdicts.

Wall-time targets whose rows are server-bound (see ``stats.py``) are judged by client
CPU instead, as the issue asks; the verdict line says so and still shows the wall ratio.
A target that is not met names the layer: where the raw fsspec call underneath the adapter
(s3fs / adlfs / LocalFileSystem) was measured in the same run, its own ratio to the same
peer shows how much of the gap is below the adapter and how much is the adapter's.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.spec import MIB
from benchmarks.stats import Key, Row, Spread

BEST_PEER = "best peer"


@dataclass(frozen=True)
class Target:
    text: str
    backend: str
    workload: str
    subject: str
    metric: str
    """``wall``, ``client_cpu`` or ``rss_growth``."""
    limit: float
    peer: str = ""
    """Tool compared against, :data:`BEST_PEER`, or empty for an absolute limit."""
    speedup: bool = False
    """True when the target is 'peer / subject >= limit' (x times faster)."""


RAW = {
    ("s3", "small_upload"): "s3fs_batch", ("s3", "small_download"): "s3fs_batch",
    ("s3", "big_upload"): "s3fs_put_file", ("s3", "big_download"): "s3fs_get_file",
    ("s3", "list"): "s3fs_find", ("s3", "delete"): "s3fs_rm",
    ("azure", "small_upload"): "adlfs_batch", ("azure", "small_download"): "adlfs_batch",
    ("azure", "big_upload"): "adlfs_put_file", ("azure", "big_download"): "adlfs_get_file",
    ("azure", "list"): "adlfs_find", ("azure", "delete"): "adlfs_rm",
    **{(backend, workload): "fsspec" for backend in ("local-tmpfs", "local-disk")
       for workload in ("small_upload", "small_download", "big_upload", "big_download",
                        "delete")},
    ("local-tmpfs", "list"): "fsspec_find", ("local-disk", "list"): "fsspec_find",
}
"""The raw fsspec call the adapter runs on, per workload, where a peer row measures it
(for local: fsspec's plain LocalFileSystem, beneath the backend's atomic-write subclass)."""


def _remote(backend: str, raw: str, loop: str, faster: float, download: float,
            listing: str, list_limit: float, signer: str, sign_limit: float, bulk: str,
            delete_limit: float) -> list[Target]:
    return [
        Target("small batch upload: wall <= 1.25x obstore async", backend, "small_upload",
               "perceptra_batch", "wall", 1.25, "obstore_async32"),
        Target(f"small batch upload: >= {faster:g}x faster than the {loop}", backend,
               "small_upload", "perceptra_batch", "wall", faster, loop, speedup=True),
        Target(f"small batch download: wall <= {download:g}x obstore async", backend,
               "small_download", "perceptra_batch", "wall", download, "obstore_async32"),
        Target(f"client CPU per small upload <= 1.1x raw {raw}", backend, "small_upload",
               "perceptra_batch", "client_cpu", 1.1, raw),
        Target(f"client CPU per small download <= 1.1x raw {raw}", backend,
               "small_download", "perceptra_batch", "client_cpu", 1.1, raw),
        Target("256 MiB download to a file: peak RSS growth <= 32 MiB", backend,
               "big_download", "perceptra", "rss_growth", 32 * MIB),
        Target("256 MiB download to a file: wall <= 1.5x raw urllib GET", backend,
               "big_download", "perceptra", "wall", 1.5, "urllib"),
        Target("256 MiB upload from a file: peak RSS growth <= 64 MiB", backend,
               "big_upload", "perceptra", "rss_growth", 64 * MIB),
        Target("256 MiB upload from a file: wall <= 1.2x the best peer", backend,
               "big_upload", "perceptra", "wall", 1.2, BEST_PEER),
        Target(f"listing 5,000: wall <= {list_limit:g}x {listing}", backend, "list",
               "perceptra", "wall", list_limit, listing),
        Target(f"500 presigned URLs: wall <= {sign_limit:g}x {signer}", backend, "presign",
               "perceptra", "wall", sign_limit, signer),
        Target(f"deleting 500: wall <= {delete_limit:g}x {bulk}", backend, "delete",
               "perceptra", "wall", delete_limit, bulk),
    ]


def _engine(backend: str, signer: str) -> list[Target]:
    """engine='obstore' (issue 18): the adapter on obstore against raw obstore (and,
    for presigning, against the SDK's signer: the engine signs as engine='fsspec')."""
    return [
        Target("engine=obstore small batch upload: client CPU <= 1.25x obstore async",
               backend, "small_upload", "perceptra_obstore_batch", "client_cpu", 1.25,
               "obstore_async32"),
        Target("engine=obstore small batch download: client CPU <= 1.25x obstore async",
               backend, "small_download", "perceptra_obstore_batch", "client_cpu", 1.25,
               "obstore_async32"),
        *[Target(f"engine=obstore 256 MiB {what}: {metric.replace('_', ' ')} <= 1.2x raw "
                 "obstore", backend, workload, "perceptra_obstore", metric, 1.2, "obstore")
          for workload, what in (("big_upload", "upload"), ("big_download", "download"))
          for metric in ("wall", "client_cpu")],
        Target("engine=obstore 256 MiB upload: peak RSS growth <= 64 MiB", backend,
               "big_upload", "perceptra_obstore", "rss_growth", 64 * MIB),
        Target("engine=obstore 256 MiB download: peak RSS growth <= 32 MiB", backend,
               "big_download", "perceptra_obstore", "rss_growth", 32 * MIB),
        Target("engine=obstore listing 5,000: wall <= 1.05x raw obstore", backend, "list",
               "perceptra_obstore", "wall", 1.05, "obstore"),
        Target(f"engine=obstore 500 presigned URLs: wall <= 1.2x {signer}", backend,
               "presign", "perceptra_obstore", "wall", 1.2, signer),
    ]


def _local(backend: str, small: bool) -> list[Target]:
    found = []
    if small:
        # Uploads with fsync off (the goal) and on (the default, reported beside
        # it); a download flushes nothing, so it has one row per tool.
        for workload, tool, what in (
                ("small_upload", "perceptra_batch_nofsync", "fsync off"),
                ("small_upload", "perceptra_batch", "fsync on"),
                ("small_upload", "perceptra_loop_nofsync", "fsync off"),
                ("small_upload", "perceptra_loop", "fsync on"),
                ("small_download", "perceptra_batch", "no fsync either way"),
                ("small_download", "perceptra_loop", "no fsync either way")):
            found.append(Target(f"{workload.replace('_', ' ')} ({tool}, {what}): wall <= 2x "
                                "plain open/read/write", backend, workload, tool,
                                "wall", 2.0, "plain_open"))
    for workload, what in (("big_upload", "upload from"), ("big_download", "download to")):
        found += [
            Target(f"256 MiB {what} a file: wall <= 1.1x shutil.copyfile", backend, workload,
                   "perceptra", "wall", 1.1, "shutil_copyfile"),
            Target(f"256 MiB {what} a file: peak RSS growth <= 8 MiB", backend, workload,
                   "perceptra", "rss_growth", 8 * MIB),
            # The path macOS and Windows take: no xattr, no sendfile (issue 13).
            Target(f"256 MiB {what} a file, portable path: wall <= 1.1x shutil.copyfile",
                   backend, workload, "perceptra_portable", "wall", 1.1, "shutil_copyfile"),
            Target(f"256 MiB {what} a file, portable path: peak RSS growth <= 8 MiB",
                   backend, workload, "perceptra_portable", "rss_growth", 8 * MIB),
        ]
    found.append(Target("listing 5,000: wall <= fsspec find", backend, "list", "perceptra",
                        "wall", 1.0, "fsspec_find"))
    return found


TARGETS: list[Target] = [
    *_local("local-tmpfs", small=True),
    *_local("local-disk", small=False),
    *_remote("s3", "s3fs_batch", "boto3_loop", 1.5, 1.2, "boto3_paginator", 1.05,
             "boto3_generate_presigned_url", 1.2, "boto3_delete_objects", 2.0),
    *_remote("azure", "adlfs_batch", "azure_blob_loop", 2.5, 1.3, "azure_list_blobs", 1.1,
             "azure_generate_blob_sas", 2.0, "azure_delete_blobs", 1.1),
    *_engine("s3", "boto3_generate_presigned_url"),
    *_engine("azure", "azure_generate_blob_sas"),
]
"""Every target of the issue, per backend measured."""


@dataclass
class Verdict:
    target: Target
    measured: str
    met: bool | None
    """None when a row is missing (backend or tool not run)."""
    reason: str


def _value(row: Row, metric: str) -> Spread | None:
    spread: Spread | None = getattr(row, metric)
    return spread


def _fmt(metric: str, value: float) -> str:
    return f"{value / MIB:.1f} MiB" if metric == "rss_growth" else f"{value:.3f} s"


def _best_peer(rows: dict[Key, Row], target: Target) -> str:
    peers = [row for (backend, workload, tool), row in rows.items()
             if backend == target.backend and workload == target.workload and row.wall
             and not tool.startswith("perceptra") and tool != "urllib"]
    return min(peers, key=lambda row: row.wall.median if row.wall else 0.0).tool if peers \
        else ""


def judge(target: Target, rows: dict[Key, Row]) -> Verdict:
    """Compare the target's rows by medians (an absolute memory limit: the worst round)."""
    subject = rows.get((target.backend, target.workload, target.subject))
    if subject is None or subject.wall is None:
        return Verdict(target, "-", None, f"{target.subject} not measured in this run")
    if not target.peer:
        spread = _value(subject, target.metric)
        assert spread is not None
        met = spread.high <= target.limit
        reason = (f"{target.subject} peak growth {_fmt(target.metric, spread.high)} at worst "
                  f"(median {_fmt(target.metric, spread.median)})")
        raw = rows.get((target.backend, target.workload,
                        RAW.get((target.backend, target.workload), "")))
        if not met and raw is not None and raw.rss_growth is not None:
            reason += (f"; raw {raw.tool} alone grows {_fmt(target.metric, raw.rss_growth.high)}"
                       " at worst")
        return Verdict(target, _fmt(target.metric, spread.high), met, reason)
    peer_name = _best_peer(rows, target) if target.peer == BEST_PEER else target.peer
    peer = rows.get((target.backend, target.workload, peer_name))
    if peer is None or peer.wall is None:
        return Verdict(target, "-", None, f"{peer_name or 'peer'} not measured in this run")
    metric, note = target.metric, ""
    if metric == "wall" and (subject.server_bound or peer.server_bound):
        bound = subject if subject.server_bound else peer
        metric = "client_cpu"
        note = (f"server-bound ({bound.tool}: {bound.bound_why}), judged by client CPU; "
                f"wall ratio {_ratio(subject, peer, 'wall', target.speedup):.2f}x; ")
    ratio = _ratio(subject, peer, metric, target.speedup)
    met = ratio >= target.limit if target.speedup else ratio <= target.limit
    mine, theirs = _value(subject, metric), _value(peer, metric)
    assert mine is not None and theirs is not None
    reason = (f"{note}{metric.replace('_', ' ')}: {target.subject} {_fmt(metric, mine.median)}"
              f" vs {peer_name} {_fmt(metric, theirs.median)}")
    if not met:
        reason += _layer(target, rows, peer, metric) + _waiting(subject, peer, metric)
    label = "faster" if target.speedup else "of peer"
    return Verdict(target, f"{ratio:.2f}x {label}" + (" (CPU)" if note else ""), met, reason)


def _ratio(subject: Row, peer: Row, metric: str, speedup: bool) -> float:
    mine, theirs = _value(subject, metric), _value(peer, metric)
    if mine is None or theirs is None or not mine.median or not theirs.median:
        return float("nan")
    return theirs.median / mine.median if speedup else mine.median / theirs.median


def _waiting(subject: Row, peer: Row, metric: str) -> str:
    """When a wall-clock gap is not CPU: how much of the subject's wall it spent waiting
    (on the local disk, an fsync), and how its CPU compares with the peer's."""
    wall, cpu, peer_cpu = subject.wall, subject.client_cpu, peer.client_cpu
    if metric != "wall" or wall is None or cpu is None or peer_cpu is None \
            or wall.median - cpu.median < 0.25 * wall.median or not peer_cpu.median:
        return ""
    return (f"; {wall.median - cpu.median:.3f} s of its {wall.median:.3f} s wall is waiting, "
            f"not CPU (its client CPU is {cpu.median / peer_cpu.median:.2f}x the peer's)")


def _layer(target: Target, rows: dict[Key, Row], peer: Row, metric: str) -> str:
    """Where the gap is: the raw fsspec call's own ratio to the same peer."""
    raw_name = RAW.get((target.backend, target.workload))
    raw = rows.get((target.backend, target.workload, raw_name or ""))
    subject = rows[(target.backend, target.workload, target.subject)]
    if raw is None or raw_name == peer.tool or _value(raw, metric) is None:
        return "; the gap is in the adapter's own path (no raw fsspec row to split it)"
    below = _ratio(raw, peer, metric, target.speedup)
    over_raw = _ratio(subject, raw, metric, False)
    return (f"; raw {raw_name} alone is {below:.2f}x, the adapter adds {over_raw:.2f}x on "
            f"top of it")
