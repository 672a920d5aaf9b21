"""What ``upload_file(..., checksum=True)`` costs over a plain upload.

Why: ``checksum=True`` used to read the whole object back to hash it (twice the
traffic); it now sends the source's checksum with the upload so that the store
verifies what it received (S3 ``x-amz-checksum-sha256``, Azure per-request MD5)
and reads back only where it cannot.  The goal is an upload with a checksum
within 1.1x the wall time of a plain one.

Starts moto's S3 server, Ceph's RADOS Gateway (when installed) and Azurite
through the test suite's ``tests/servers``, then times, per backend and size,
``rounds`` interleaved uploads of each kind: plain, checksum (the store checks),
and checksum with read-back (the former behaviour, forced by telling the
adapter its filesystem cannot ask the store).  Prints medians as a Markdown
table; ``--write`` appends it to ``benchmarks/RESULTS.md``.

Usage: ``.venv/bin/python benchmarks/checksum_upload.py [--rounds 7] [--write]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repo importable
    sys.path.insert(0, str(ROOT))

SIZES = {"1 MiB bytes": 2**20, "8 MiB bytes": 8 * 2**20}
KINDS = ("plain", "checksum", "checksum (read back)")


def _adapters() -> list[tuple[str, Any, Callable[[], None]]]:
    """(name, adapter, stop) for each server that starts here."""
    import boto3
    from azure.storage.blob import BlobServiceClient

    from perceptra_storage import get_storage_adapter
    from tests.servers.azurite import start_azurite
    from tests.servers.common import ServerUnavailable
    from tests.servers.moto_s3 import start_moto

    found: list[tuple[str, Any, Callable[[], None]]] = []
    starters: list[tuple[str, Callable[[], Any]]] = [("s3 (moto)", start_moto)]
    try:
        from tests.servers.ceph_rgw import start_rgw

        starters.append(("minio (Ceph RGW)", start_rgw))
    except ImportError:
        pass
    for name, start in starters:
        try:
            server = start()
        except ServerUnavailable as exc:
            print(f"{name}: not measured ({exc})", file=sys.stderr)
            continue
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=server.endpoint_url, region_name=server.region,
                     aws_access_key_id=server.access_key,
                     aws_secret_access_key=server.secret_key).create_bucket(Bucket=bucket)
        adapter = get_storage_adapter(
            "s3", {"bucket_name": bucket, "endpoint_url": server.endpoint_url,
                   "region": server.region},
            {"access_key_id": server.access_key, "secret_access_key": server.secret_key})
        found.append((name, adapter, server.stop))
    azurite = start_azurite()
    container = f"bench{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(
        container)
    adapter = get_storage_adapter("azure", {"container_name": container,
                                            "account_url": azurite.account_url},
                                  {"account_key": azurite.account_key})
    found.append(("azure (Azurite)", adapter, azurite.stop))
    return found


def _upload(adapter: Any, kind: str, data: bytes) -> float:
    fs = adapter.filesystem
    if kind == "checksum (read back)":
        type(fs).verifies_uploads = False  # the former path: hash what the store holds
    try:
        start = time.perf_counter()
        adapter.upload_file(data, f"bench/{uuid.uuid4().hex}", checksum=kind != "plain")
        return time.perf_counter() - start
    finally:
        type(fs).verifies_uploads = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--write", action="store_true",
                        help="append the table to benchmarks/RESULTS.md")
    options = parser.parse_args()
    rows = []
    for name, adapter, stop in _adapters():
        try:
            for label, size in SIZES.items():
                data = os.urandom(size)
                for kind in KINDS:  # warm: connection pool, first multipart, code paths
                    _upload(adapter, kind, data)
                times: dict[str, list[float]] = {kind: [] for kind in KINDS}
                for round_number in range(options.rounds):
                    order = KINDS[round_number % 3:] + KINDS[:round_number % 3]
                    for kind in order:
                        times[kind].append(_upload(adapter, kind, data))
                plain = statistics.median(times["plain"])
                cells = [f"{statistics.median(times[kind]) * 1000:.0f} ms" for kind in KINDS]
                ratios = [statistics.median(times[kind]) / plain for kind in KINDS[1:]]
                rows.append(f"| {name} | {label} | {' | '.join(cells)} | "
                            f"{ratios[0]:.2f}x | {ratios[1]:.2f}x |")
        finally:
            stop()
    table = "\n".join([
        "| store | upload | plain | checksum=True | checksum=True, read back (before) | "
        "checksum / plain | read back / plain |",
        "|---|---|---|---|---|---|---|", *rows])
    heading = (f"## Upload with checksum=True ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
               "<!-- kept by benchmarks/run.py -->\n\n"
               f"Command: `benchmarks/checksum_upload.py --rounds {options.rounds}`; medians of "
               f"{options.rounds} interleaved rounds after a warm-up upload of each kind, one "
               f"adapter per store on loopback; {os.cpu_count()} cores, Python "
               f"{platform.python_version()}. Goal: checksum / plain <= 1.1x.\n")
    print(heading)
    print(table)
    if options.write:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a", encoding="utf-8") as results:
            results.write(f"\n{heading}\n{table}\n")


if __name__ == "__main__":
    main()
