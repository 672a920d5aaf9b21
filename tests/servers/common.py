"""What every test server shares: the error for "cannot start", ports, readiness."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
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
    """The last lines of a server's log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for_http(url: str, timeout: float, proc: Optional[subprocess.Popen[bytes]] = None,
                  log: Optional[Path] = None) -> None:
    """Return once ``url`` answers any HTTP status; raise ServerUnavailable otherwise.

    A dead ``proc`` ends the wait at once, with the tail of ``log`` in the message.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerUnavailable(f"server exited with {proc.returncode} before "
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


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: get SIGTERM when the test process dies (Linux only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def start_process(command: list[str], log: Path, cwd: Optional[Path] = None,
                  env: Optional[dict[str, str]] = None) -> subprocess.Popen[bytes]:
    """Start a server in its own process group, its output in ``log``, with ``env`` added
    to this process's environment.

    Its own group lets stop_process end its children too; on Linux it also dies
    with the test process, so a killed pytest leaves no server behind.
    """
    parent = os.getpid()
    guard = (lambda: _die_with_parent(parent)) if sys.platform == "linux" else None
    # Not measured by coverage: a server is not the package under test, and coverage's
    # subprocess patch (pyproject.toml) would otherwise trace moto's every request.
    inherited = {name: value for name, value in os.environ.items()
                 if not name.startswith(("COVERAGE_", "COV_CORE_"))}
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env={**inherited, **(env or {})},
                                start_new_session=True, preexec_fn=guard)


def stop_process(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    """Terminate a server process (its whole process group), killing it if it lingers."""
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
