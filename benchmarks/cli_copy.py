"""``perceptra-storage cp -r`` of many small files, up and back, against the adapter's own
batch call and a plain SDK loop (boto3's ``upload_file``/``download_file``, which go
through s3transfer, on s3; azure-storage-blob's ``upload_blob``/``download_blob`` on
azure), on moto and Azurite started by the test suite's fixtures.

Every tool runs in a fresh child process, so interpreter start and imports count the
same for all; client CPU is the child's user+system time. The question it answers: does
the command add little to the adapter's batch methods (goal: within 1.2x), and is it
faster than the loop people write by hand? ``aws``/``rclone`` are compared only when the
project installs them from Debian, which it does not today.

    .venv/bin/python benchmarks/cli_copy.py --files 500 --size 16384
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

CLI = Path(sys.executable).with_name("perceptra-storage")
BASELINE = "adapter batch (upload_files/download_files)"

ADAPTER = """
import os, sys
from perceptra_storage import open_profile
direction, local, prefix = sys.argv[1:4]
adapter = open_profile("bench")
if direction == "up":
    items = {}
    for folder, _, names in os.walk(local):
        for name in names:
            path = os.path.join(folder, name)
            items[prefix + "/" + os.path.relpath(path, local).replace(os.sep, "/")] = path
    result = adapter.upload_files(items, concurrency=16)
else:
    keys = [obj.key for obj in adapter.iter_files(prefix + "/")]
    result = adapter.download_files(keys, local, concurrency=16)
assert result.ok, result.failed
"""

BOTO3 = """
import os, sys
import boto3
direction, local, prefix, endpoint, key_id, secret, bucket = sys.argv[1:8]
client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=key_id, aws_secret_access_key=secret)
if direction == "up":
    for folder, _, names in os.walk(local):
        for name in names:
            path = os.path.join(folder, name)
            client.upload_file(path, bucket,
                               prefix + "/" + os.path.relpath(path, local).replace(os.sep, "/"))
else:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                   Prefix=prefix + "/"):
        for item in page.get("Contents", []):
            target = os.path.join(local, *item["Key"].split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            client.download_file(bucket, item["Key"], target)
"""

AZURE = """
import os, sys
from azure.storage.blob import ContainerClient
direction, local, prefix, connection, container = sys.argv[1:6]
client = ContainerClient.from_connection_string(connection, container)
if direction == "up":
    for folder, _, names in os.walk(local):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as data:
                client.upload_blob(prefix + "/" + os.path.relpath(path, local).replace(
                    os.sep, "/"), data, overwrite=True)
else:
    for blob in client.list_blobs(name_starts_with=prefix + "/"):
        target = os.path.join(local, *blob.name.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as out:
            client.download_blob(blob.name).readinto(out)
"""


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the child's CPU seconds (user + system) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, timeout=900, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        raise RuntimeError(f"{command[:3]} failed: {result.stderr.decode()[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def tools(backend: str, server: Any, where: str) -> dict[str, Callable[[str, str, str],
                                                                        list[str]]]:
    """Command lines per tool: (direction, local folder, prefix) -> argv."""
    def sdk(d: str, local: str, p: str) -> list[str]:
        if backend == "s3":
            return [sys.executable, "-c", BOTO3, d, local, p, server.endpoint_url,
                    server.access_key, server.secret_key, where]
        return [sys.executable, "-c", AZURE, d, local, p, server.connection_string, where]

    return {
        "perceptra-storage cp -r": lambda d, local, p: (
            [str(CLI), "cp", "-r", "--quiet", local, f"bench:{p}"] if d == "up" else
            [str(CLI), "cp", "-r", "--quiet", f"bench:{p}", local]),
        BASELINE: lambda d, local, p: [
            sys.executable, "-c", ADAPTER, d, local, p],
        "SDK loop (boto3 upload_file/download_file)" if backend == "s3" else
        "SDK loop (upload_blob/download_blob)": sdk,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--backends", default="s3,azure")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cli-bench-"))
    source = work / "source"
    for index in range(args.files):
        path = source / f"d{index % 10}" / f"f{index:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(args.size))
    rows = []
    try:
        for backend in args.backends.split(","):
            rows += run_backend(backend, args, work, source)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.files} files x {args.size} B, {args.rounds} round(s) of single runs; "
          "ratios against the adapter's batch call in the same direction\n")
    print("| backend | direction | tool | wall s | client CPU s | wall / adapter | "
          "CPU / adapter |")
    print("|---|---|---|---:|---:|---:|---:|")
    for row in rows:
        print("| {backend} | {direction} | {tool} | {wall:.2f} | {cpu:.2f} | {wall_ratio:.2f}x"
              " | {cpu_ratio:.2f}x |".format(**row))


def run_backend(backend: str, args: argparse.Namespace, work: Path,
                source: Path) -> list[dict[str, object]]:
    import tests.conftest  # noqa: F401 - loads the case modules in their own order
    from tests.cases_azure import new_container
    from tests.cases_s3 import new_bucket

    server: Any
    if backend == "s3":
        from tests.servers.moto_s3 import start_moto

        server = start_moto()
        where, remove = new_bucket(server)
        profile = {"backend": "s3", "config": {"bucket_name": where,
                                               "endpoint_url": server.endpoint_url,
                                               "region": server.region},
                   "credentials": {"access_key_id": server.access_key,
                                   "secret_access_key": server.secret_key}}
    else:
        from tests.servers.azurite import start_azurite

        server = start_azurite()
        where, remove = new_container(server)
        profile = {"backend": "azure", "config": {"container_name": where,
                                                  "account_url": server.account_url},
                   "credentials": {"account_key": server.account_key}}
    lines = ["[bench]", f"backend = {json.dumps(profile['backend'])}"]
    for part in ("config", "credentials"):
        table = ", ".join(f"{k} = {json.dumps(v)}" for k, v in profile[part].items())
        lines.append(f"{part} = {{ {table} }}")
    (work / f"{backend}.toml").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PERCEPTRA_STORAGE_PROFILES": str(work / f"{backend}.toml")}
    rows: list[dict[str, object]] = []
    try:
        commands = tools(backend, server, where)
        measure(commands[BASELINE]("up", str(source), "seed"), env)  # what downloads read
        for _ in range(args.rounds):
            for direction in ("up", "down"):
                measured = {}
                for name, build in commands.items():
                    if direction == "up":
                        local, prefix = str(source), f"up-{uuid.uuid4().hex[:8]}"
                    else:
                        local, prefix = str(work / f"down-{uuid.uuid4().hex[:8]}"), "seed"
                    measured[name] = measure(build(direction, local, prefix), env)
                    if direction == "down":
                        got = sum(len(files) for _, _, files in os.walk(local))
                        assert got == args.files, (name, got)
                        shutil.rmtree(local)
                base = measured[BASELINE]
                for name, (wall, cpu) in measured.items():
                    rows.append({"backend": backend, "direction": direction, "tool": name,
                                 "wall": wall, "cpu": cpu, "wall_ratio": wall / base[0],
                                 "cpu_ratio": cpu / base[1] if base[1] else 0.0})
    finally:
        remove()
        server.stop()
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
