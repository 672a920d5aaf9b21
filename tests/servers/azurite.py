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
"""Azurite's sweep costs the square of the garbage since the last one: at this interval a
pass over what a two-worker run deletes takes milliseconds, not the minute that ten
minutes' worth took (and that timed out every Azure request meanwhile)."""
AZURITE_ENV = {"AZURITE_GC_INTERVAL_MS": str(GC_INTERVAL_MS)}


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


def azurite_command(*options: str) -> list[str]:
    """The command that starts the pinned Azurite's blob service with ``options``."""
    ensure_azurite()
    node = shutil.which("node")
    if node is None:
        raise ServerUnavailable("node is not installed; install Node.js 18+ to run the Azure "
                                "tests against Azurite")
    return [node, str(LAUNCHER), "--inMemoryPersistence", "--disableTelemetry",
            "--skipApiVersionCheck", "--loose", "--silent", *options]


def start_azurite() -> AzuriteServer:
    """Start an in-memory Azurite blob service and wait until it answers.

    Telemetry is off: Azurite otherwise reports to Microsoft, and tests reach only loopback.
    Its workspace is the working directory, a temp dir: Azurite refuses ``--location``
    together with ``--inMemoryPersistence``.
    """
    command = azurite_command()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
    log = workdir / "azurite.log"
    process = start_process([*command, "--blobHost", "127.0.0.1", "--blobPort", str(port)],
                            log, cwd=workdir, env=AZURITE_ENV)
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

    command = azurite_command("--oauth", "basic")
    key_file, cert_file = self_signed(folder)
    port = free_port()
    log = folder / "azurite-oauth.log"
    process = start_process(
        [*command, "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--cert", str(cert_file), "--key", str(key_file)],
        log, cwd=folder, env=AZURITE_ENV)
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
