"""Azurite's blob service from npm, pinned in package.json, on a free loopback port."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .common import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    AzuriteServer,
    ServerUnavailable,
    free_port,
    start_process,
    stop_process,
    wait_for_http,
)

HERE = Path(__file__).resolve().parent
BINARY = HERE / "node_modules" / ".bin" / "azurite-blob"


def ensure_azurite() -> Path:
    """Install the pinned Azurite with ``npm ci`` unless it is already there."""
    if BINARY.exists():
        return BINARY
    npm = shutil.which("npm")
    if npm is None:
        raise ServerUnavailable("npm is not installed; install Node.js 18+ to run the Azure "
                                "tests against Azurite")
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not BINARY.exists():
        raise ServerUnavailable(f"npm ci for Azurite failed:\n{result.stdout[-2000:]}"
                                f"\n{result.stderr[-2000:]}")
    return BINARY


def start_azurite() -> AzuriteServer:
    """Start an in-memory Azurite blob service and wait until it answers.

    Telemetry is off: Azurite otherwise reports to Microsoft, and tests reach only loopback.
    Its workspace is the working directory, a temp dir: Azurite refuses ``--location``
    together with ``--inMemoryPersistence``.
    """
    binary = ensure_azurite()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
    log = workdir / "azurite.log"
    process = start_process(
        [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--inMemoryPersistence", "--disableTelemetry",
         "--skipApiVersionCheck", "--loose", "--silent"], log, cwd=workdir)
    account_url = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    try:
        wait_for_http(account_url + "?comp=list", 60, process, log)
    except ServerUnavailable:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    connection_string = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                         f"AccountKey={AZURITE_KEY};BlobEndpoint={account_url};")

    def reset() -> None:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(connection_string)
        for container in service.list_containers():
            service.delete_container(container.name)

    def stop() -> None:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)

    return AzuriteServer(account_name=AZURITE_ACCOUNT, account_key=AZURITE_KEY,
                         account_url=account_url, connection_string=connection_string,
                         stop=stop, reset=reset)
