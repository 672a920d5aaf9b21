"""``perceptra-storage cp -r`` of many small files, up and back, against the adapter's own
batch call and a plain SDK loop (boto3's ``upload_file``/``download_file``, which go
through s3transfer, on s3; azure-storage-blob's ``upload_blob``/``download_blob`` on
azure), on moto and Azurite started by the test suite's fixtures.

Every tool runs in a fresh child process, so interpreter start and imports count the
same for all; client CPU is the child's user+system time. The question it answers: does
the command add little to the adapter's batch methods (goal: within 1.2x), and is it
faster than the loop people write by hand? Peers outside Python: ``aws s3 cp --recursive``
(s3) and ``rclone copy`` (s3 and azure), both from Debian, installed by
``benchmarks/install_peers.sh`` when missing (``--no-peers`` leaves them out). They are
configured only through the child's environment (credentials never on a command line) and
run with 16 transfers at once, like the adapter's batch call.

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

CLI = Path(sys.executable).with_name("perceptra-storage")
BASELINE = "adapter batch (upload_files/download_files)"
# The Debian binaries by full path: a pyenv shim named `aws` earlier on PATH fails when run.
AWS = "/usr/bin/aws"
RCLONE = "/usr/bin/rclone"
CONCURRENCY = 16  # the adapter's batch default; every tool gets the same
RCLONE_AZURE_NOTE = (
    "rclone on azure authenticates with a container SAS URL, not account + key + endpoint: "
    "rclone 1.60's azureblob builds https://ACCOUNT.ENDPOINT (endpoint is a DNS suffix), so "
    "it cannot name Azurite's http://127.0.0.1:PORT/ACCOUNT; the SAS URL is used as given")

ADAPTER = """
import os, sys
from pathlib import Path
from perceptra_storage import open_profile
direction, local, prefix = sys.argv[1:4]
adapter = open_profile("bench")
if direction == "up":
    items = {}
    for folder, _, names in os.walk(local):
        for name in names:
            path = os.path.join(folder, name)
            items[prefix + "/" + os.path.relpath(path, local).replace(os.sep, "/")] = Path(path)
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


class ToolFailed(RuntimeError):
    """A peer tool exited non-zero; the message is its stderr tail with secrets removed."""


Command = tuple[list[str], dict[str, str | None]]
"""argv and the environment changes of one child (secrets go here, never into argv);
``None`` removes a variable."""


def measure(command: Command, env: dict[str, str], secrets: list[str]) -> tuple[float, float]:
    """Wall seconds and the child's CPU seconds (user + system) of one run."""
    argv, extra = command
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    child = {**env, **extra}
    result = subprocess.run(argv, env={k: v for k, v in child.items() if v is not None},
                            capture_output=True, timeout=900, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        message = (result.stderr or result.stdout).decode(errors="replace")[-1500:]
        for secret in secrets:
            message = message.replace(secret, "***")
        raise ToolFailed(f"{Path(argv[0]).name} exit {result.returncode}: {message.strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def ensure_peers() -> None:
    """Install aws/rclone from Debian through the project's script, or stop with its reason."""
    if os.access(AWS, os.X_OK) and os.access(RCLONE, os.X_OK):
        return
    script = ROOT / "benchmarks" / "install_peers.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if result.returncode:
        sys.exit(f"cli_copy.py: cannot install the peer tools (exit {result.returncode}):\n"
                 f"{result.stderr.strip()}\nrun as root, install them, or pass --no-peers")


def peers(backend: str, server: Any, where: str, work: Path,
          secrets: list[str]) -> dict[str, Callable[[str, str, str], Command]]:
    """aws/rclone command lines; remotes and credentials come from the child's environment.
    Secrets made here (the SAS token) are added to ``secrets`` so failures never print them."""
    empty = work / "empty.conf"  # no user config file may change what is measured
    empty.touch()
    rclone_flags = ["--transfers", str(CONCURRENCY), "--checkers", str(CONCURRENCY),
                    "--config", str(empty), "-q"]
    if backend == "s3":
        aws_config = work / "aws.conf"
        aws_config.write_text(f"[default]\ns3 =\n  max_concurrent_requests = {CONCURRENCY}\n")
        aws_env: dict[str, str | None] = {
            "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_DEFAULT_REGION": server.region, "AWS_CONFIG_FILE": str(aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty)}
        rclone_env: dict[str, str | None] = {
            "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": server.access_key,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": server.secret_key,
            "RCLONE_CONFIG_BENCH_ENDPOINT": server.endpoint_url,
            "RCLONE_CONFIG_BENCH_REGION": server.region,
            "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
            "RCLONE_CONFIG_BENCH_NO_CHECK_BUCKET": "true",
            # rclone 1.60's AWS SDK refuses any AWS_CA_BUNDLE ("unsupported transport"), and
            # this machine sets one; the endpoint is plain http, so no bundle is needed.
            "AWS_CA_BUNDLE": None}

        def aws(d: str, local: str, p: str) -> Command:
            remote = f"s3://{where}/{p}/"
            return ([AWS, "s3", "cp", "--recursive", "--only-show-errors", "--no-progress",
                     "--endpoint-url", server.endpoint_url,
                     *((local, remote) if d == "up" else (remote, local))], aws_env)

        def rclone_s3(d: str, local: str, p: str) -> Command:
            remote = f"bench:{where}/{p}"
            return ([RCLONE, "copy", *rclone_flags,
                     *((local, remote) if d == "up" else (remote, local))], rclone_env)

        return {"aws s3 cp --recursive": aws, "rclone copy": rclone_s3}

    # rclone 1.60's azureblob (the old azure-storage-blob-go SDK) builds the service URL as
    # https://ACCOUNT.ENDPOINT, so `endpoint` is a DNS suffix and cannot name Azurite's
    # path-style http://127.0.0.1:PORT/ACCOUNT; `use_emulator` only knows port 10000. A
    # container SAS URL is used as given, so that is how it reaches this Azurite.
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    sas = generate_container_sas(
        server.account_name, where, account_key=server.account_key,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True,
                                           create=True, add=True),
        expiry=datetime.now(UTC) + timedelta(hours=2))
    secrets.append(sas)
    azure_env: dict[str, str | None] = {
        "RCLONE_CONFIG_BENCH_TYPE": "azureblob",
        "RCLONE_CONFIG_BENCH_SAS_URL": f"{server.account_url}/{where}?{sas}"}

    def rclone_azure(d: str, local: str, p: str) -> Command:
        remote = f"bench:{where}/{p}"
        return ([RCLONE, "copy", *rclone_flags,
                 *((local, remote) if d == "up" else (remote, local))], azure_env)

    return {"rclone copy": rclone_azure}


def tools(backend: str, server: Any, where: str) -> dict[str, Callable[[str, str, str],
                                                                        Command]]:
    """Command lines per tool: (direction, local folder, prefix) -> (argv, extra env)."""
    def sdk(d: str, local: str, p: str) -> Command:
        if backend == "s3":
            return ([sys.executable, "-c", BOTO3, d, local, p, server.endpoint_url,
                     server.access_key, server.secret_key, where], {})
        return ([sys.executable, "-c", AZURE, d, local, p, server.connection_string, where], {})

    return {
        "perceptra-storage cp -r": lambda d, local, p: (
            [str(CLI), "cp", "-r", "--quiet", local, f"bench:{p}"] if d == "up" else
            [str(CLI), "cp", "-r", "--quiet", f"bench:{p}", local], {}),
        BASELINE: lambda d, local, p: ([sys.executable, "-c", ADAPTER, d, local, p], {}),
        "SDK loop (boto3 upload_file/download_file)" if backend == "s3" else
        "SDK loop (upload_blob/download_blob)": sdk,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--backends", default="s3,azure")
    parser.add_argument("--no-peers", dest="peers", action="store_false",
                        help="leave out aws and rclone (nothing is installed)")
    args = parser.parse_args(argv)
    if args.peers:
        ensure_peers()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="cli-bench-"))
    source = work / "source"
    for index in range(args.files):
        path = source / f"d{index % 10}" / f"f{index:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(args.size))
    rows: list[dict[str, object]] = []
    failures: list[str] = []
    try:
        for backend in args.backends.split(","):
            rows += run_backend(backend, args, work, source, failures)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n{args.files} files x {args.size} B, {args.rounds} round(s) of single runs; "
          "ratios against the adapter's batch call in the same direction\n")
    print("| backend | direction | tool | wall s | client CPU s | wall / adapter | "
          "CPU / adapter |")
    print("|---|---|---|---:|---:|---:|---:|")
    for row in rows:
        print("| {backend} | {direction} | {tool} | {wall:.2f} | {cpu:.2f} | {wall_ratio:.2f}x"
              " | {cpu_ratio:.2f}x |".format(**row))
    for failure in failures:
        print(f"\nnot measured: {failure}")
    if args.peers and "azure" in args.backends.split(","):
        print(f"\nnote: {RCLONE_AZURE_NOTE}")


def run_backend(backend: str, args: argparse.Namespace, work: Path, source: Path,
                failures: list[str]) -> list[dict[str, object]]:
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
    secrets = [getattr(server, name) for name in ("access_key", "secret_key", "account_key")
               if hasattr(server, name)]
    rows: list[dict[str, object]] = []
    try:
        commands = tools(backend, server, where)
        if args.peers:
            commands.update(peers(backend, server, where, work, secrets))
        measure(commands[BASELINE]("up", str(source), "seed"), env, secrets)  # downloads read it
        for _ in range(args.rounds):
            for direction in ("up", "down"):
                measured = {}
                for name, build in commands.items():
                    if direction == "up":
                        local, prefix = str(source), f"up-{uuid.uuid4().hex[:8]}"
                    else:
                        local, prefix = str(work / f"down-{uuid.uuid4().hex[:8]}"), "seed"
                    try:
                        measured[name] = measure(build(direction, local, prefix), env, secrets)
                    except ToolFailed as failed:
                        if name == BASELINE:
                            raise
                        # A peer that cannot talk to this server is reported, not faked.
                        failures.append(f"{backend} {direction} {name}: {failed}")
                        if direction == "down":
                            shutil.rmtree(local, ignore_errors=True)
                        continue
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
