"""What every test server shares: the error for "cannot start", ports, readiness."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
"""Azurite's published development key: the only credential kept in this repository."""


class ServerUnavailable(RuntimeError):
    """A test server could not start; the message says why and how to enable it."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for_http(url: str, timeout: float, process: Optional[subprocess.Popen[bytes]] = None,
                  log: Optional[Path] = None) -> None:
    """Return once ``url`` answers any HTTP status; raise ServerUnavailable otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerUnavailable(f"server exited with {process.returncode} before "
                                    f"answering {url}:\n{log_tail(log) if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise ServerUnavailable(f"no answer from {url} within {timeout:g} s:\n"
                            f"{log_tail(log) if log else ''}")


def stop_process(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    """Terminate a server process (its whole process group), killing it if it lingers."""
    import os
    import signal

    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


@dataclass
class S3Server:
    """A running S3-compatible server."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    stop: Callable[[], None]
    reset: Callable[[], None]


@dataclass
class AzuriteServer:
    """A running Azurite blob service."""

    account_name: str
    account_key: str
    account_url: str
    connection_string: str
    stop: Callable[[], None]
    reset: Callable[[], None]
