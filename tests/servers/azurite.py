"""Azurite's blob service from npm, pinned in package.json, on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .common import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    AzuriteServer,
    ServerUnavailable,
    free_port,
    log_tail,
    start_process,
    stop_process,
    wait_for_http,
)

HERE = Path(__file__).resolve().parent
BINARY = HERE / "node_modules" / ".bin" / "azurite-blob"
LAUNCHER = HERE / "azurite-blob.js"
"""Starts Azurite's blob service with frequent garbage collection (the file says why)."""
GC_INTERVAL_MS = 20_000
"""Azurite's sweep costs the square of the garbage since the last one. At Azurite's own
ten minutes, one pass held it for 77 s in a two-worker run; at this interval a probe's
slowest answer through whole parallel runs stayed near a second."""


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


def _launch(log: Path, cwd: Path, *options: str,
            gc_interval_ms: int = GC_INTERVAL_MS) -> tuple[subprocess.Popen[bytes], int]:
    """Start the pinned Azurite's in-memory blob service on a free loopback port, with
    ``options`` added; returns the process and its port."""
    ensure_azurite()
    node = shutil.which("node")
    if node is None:
        raise ServerUnavailable("node is not installed; install Node.js 18+ to run the Azure "
                                "tests against Azurite")
    port = free_port()
    process = start_process(
        [node, str(LAUNCHER), "--inMemoryPersistence", "--disableTelemetry",
         "--skipApiVersionCheck", "--loose", "--silent",
         "--blobHost", "127.0.0.1", "--blobPort", str(port), *options],
        log, cwd=cwd, env={"AZURITE_GC_INTERVAL_MS": str(gc_interval_ms)})
    return process, port


def start_azurite(gc_interval_ms: int = GC_INTERVAL_MS) -> AzuriteServer:
    """Start an in-memory Azurite blob service and wait until it answers; it frees
    deleted blobs every ``gc_interval_ms``.

    Telemetry is off: Azurite otherwise reports to Microsoft, and tests reach only loopback.
    Its workspace is the working directory, a temp dir: Azurite refuses ``--location``
    together with ``--inMemoryPersistence``.
    """
    workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
    log = workdir / "azurite.log"
    process, port = _launch(log, workdir, gc_interval_ms=gc_interval_ms)
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


def start_azurite_oauth(folder: Path) -> tuple[str, Path, Callable[[], None]]:
    """An Azurite that also takes OAuth bearer tokens (``--oauth basic``: it checks a
    token's audience, issuer and lifetime, not its signature), which it accepts only
    over HTTPS: served with a self-signed certificate made in ``folder``. Returns the
    account URL, the certificate (the one CA to trust) and a function that stops it.

    Only this Azurite serves Get User Delegation Key (the key user-delegation SAS URLs
    are signed with), which the shared one, plain HTTP, cannot."""
    from .tls import self_signed

    key_file, cert_file = self_signed(folder)
    log = folder / "azurite-oauth.log"
    process, port = _launch(log, folder, "--oauth", "basic",
                            "--cert", str(cert_file), "--key", str(key_file))
    deadline = time.monotonic() + 60
    while True:  # TLS with an untrusted certificate: wait for the port, not a page
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise ServerUnavailable(f"Azurite with OAuth did not start:\n{log_tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return (f"https://127.0.0.1:{port}/{AZURITE_ACCOUNT}", cert_file,
            lambda: stop_process(process))
