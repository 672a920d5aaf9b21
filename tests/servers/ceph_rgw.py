"""Ceph RADOS Gateway fixture: a real S3 server on loopback that enforces SigV4.

moto accepts any signature, so presigned-URL and credential tests need a server that checks
them. ``ceph_rgw.sh`` runs one ceph-mon, one in-memory ceph-osd and radosgw under a temp dir;
this module picks ports and keys, drives the script and wraps the result in an ``S3Server``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from tests.servers.common import S3Server, ServerUnavailable, free_port, log_tail

SCRIPT = Path(__file__).with_name("ceph_rgw.sh")
START_TIMEOUT = 180.0  # covers a first-time apt install of the Ceph packages (~15 s here)
STOP_TIMEOUT = 60.0
# RGW checks SigV4 for whichever region the client signs with; us-east-1 also keeps boto3
# from sending a LocationConstraint on create_bucket.
REGION = "us-east-1"
EXIT_NOT_INSTALLED = 3
ENABLE_HINT = (
    "run the tests as root (the script then installs Ceph itself) or install the packages: "
    "apt-get install radosgw ceph-mon ceph-osd ceph-common"
)


def _free_port_pair() -> int:
    """Return a port P with P and P + 1 free: ceph-mon listens on msgr v2 (P) and v1 (P + 1)."""
    for _ in range(100):
        port = free_port()
        if port >= 65535:
            continue
        with socket.socket() as low, socket.socket() as high:
            try:
                low.bind(("127.0.0.1", port))
                high.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise ServerUnavailable("could not find two consecutive free TCP ports for ceph-mon")


def _logs_tail(run_dir: Path) -> str:
    """Last lines of every log the script wrote, daemons' stderr (*.out) first, for errors."""
    logs = sorted((run_dir / "log").glob("*"), key=lambda path: (path.suffix != ".out", path.name))
    return "\n".join(f"--- {log.name}\n{log_tail(log, 15)}" for log in logs if log.stat().st_size)


def _run_script(action: str, run_dir: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run ``ceph_rgw.sh ACTION DIR`` in its own process group; on timeout end the whole group.

    Returns the exit code (negative signal number if killed) and the combined stdout/stderr.
    """
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), action, str(run_dir)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        output += f"\n(ceph_rgw.sh {action} timed out after {timeout:g} s)"
    return proc.returncode, output


def _empty_account(client: BaseClient) -> None:
    """Delete every bucket of the test user with all object versions and pending uploads."""
    for bucket in client.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=name):
            for upload in page.get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
        for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
            doomed = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if doomed:
                result = client.delete_objects(
                    Bucket=name, Delete={"Objects": doomed, "Quiet": True}
                )
                if result.get("Errors"):
                    raise RuntimeError(f"reset failed in {name}: {result['Errors'][:3]}")
        client.delete_bucket(Bucket=name)


def start_rgw() -> S3Server:
    """Start a private radosgw with fresh random keys; raise ServerUnavailable if it cannot."""
    mon_port = _free_port_pair()
    rgw_port = free_port()
    while rgw_port in (mon_port, mon_port + 1):
        rgw_port = free_port()
    access_key = secrets.token_hex(10).upper()
    secret_key = secrets.token_hex(20)
    run_dir = Path(tempfile.mkdtemp(prefix="perceptra-rgw-"))
    env = {
        **os.environ,
        "RGW_PORT": str(rgw_port),
        "MON_PORT": str(mon_port),
        "S3_ACCESS_KEY": access_key,
        "S3_SECRET_KEY": secret_key,
    }

    code, output = _run_script("up", run_dir, env, START_TIMEOUT)
    if code != 0:
        details = f"{output.strip()}\n{_logs_tail(run_dir)}".strip()
        _run_script("down", run_dir, env, STOP_TIMEOUT)
        if code == EXIT_NOT_INSTALLED:
            raise ServerUnavailable(f"Ceph RADOS Gateway is not installed: {ENABLE_HINT}")
        raise ServerUnavailable(f"ceph_rgw.sh up failed (exit {code}):\n{details}")

    endpoint_url = f"http://127.0.0.1:{rgw_port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    lock = threading.Lock()
    stopped = False

    def stop() -> None:
        """Stop radosgw, OSD and mon in order and delete the temp dir; safe to call twice."""
        nonlocal stopped
        with lock:
            if stopped:
                return
            stopped = True
            atexit.unregister(stop)
            code, output = _run_script("down", run_dir, env, STOP_TIMEOUT)
            if code != 0:
                raise RuntimeError(f"ceph_rgw.sh down failed (exit {code}):\n{output}")

    def reset() -> None:
        """Remove all buckets and objects so the next test starts from an empty account."""
        _empty_account(client)

    atexit.register(stop)
    return S3Server(
        endpoint_url=endpoint_url,
        access_key=access_key,
        secret_key=secret_key,
        region=REGION,
        stop=stop,
        reset=reset,
    )
