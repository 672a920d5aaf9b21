"""One set of test servers for every process of a parallel (pytest-xdist) run.

Under ``pytest -n N`` each worker is a separate process with its own session
fixtures; left alone, each would start its own moto, Ceph RGW and Azurite (four
RGWs on a 2-core machine cost more than the parallelism saves). Instead the
controller process, which outlives every worker, starts each server once, in a
thread of its own that keeps it alive until the run ends, and publishes how to reach
it as a small JSON file in a directory private to the run. A worker's session
fixture waits for that file and rebuilds the server's description from it.

A server that cannot start is published as such, with its reason, so every test
that needs it fails under CI and is skipped locally, as in a serial run.
Hand-written rather than taken from a "shared session fixture" plugin: those let
the first worker start the resource, but a server started by a worker dies with
that worker (``start_process`` ties children to their parent), which may finish
while others still use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .common import AzuriteServer, S3Server, ServerUnavailable

WAIT = 300.0
"""How long a worker waits for the controller to publish a server: RGW's start
allows 180 s for a first-time install of the Ceph packages."""


def _start_moto() -> S3Server:
    from .moto_s3 import start_moto

    return start_moto()


def _start_rgw() -> S3Server:
    from .ceph_rgw import start_rgw

    return start_rgw()


def _start_azurite() -> AzuriteServer:
    from .azurite import start_azurite

    return start_azurite()


STARTERS: dict[str, Callable[[], Any]] = {
    "moto": _start_moto, "rgw": _start_rgw, "azurite": _start_azurite}
"""Every server of the suite, by the name the session fixtures ask for."""


def _published(server: S3Server | AzuriteServer) -> dict[str, Any]:
    """The server's description without its callables (stop and reset stay with the
    process that started it)."""
    return {f.name: getattr(server, f.name) for f in dataclasses.fields(server)
            if f.name not in ("stop", "reset")}


def _write(path: Path, content: dict[str, Any]) -> None:
    """Publish atomically: a reader sees the whole file or none."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(content))
    partial.chmod(0o600)  # the description holds the server's (throw-away) keys
    os.replace(partial, path)


class SharedServers:
    """The controller's side: starts every server at once, each in a thread that stays
    alive until ``stop`` (children die with the thread that started them)."""

    def __init__(self) -> None:
        _snapshot_logger_iteration()
        self.directory = Path(tempfile.mkdtemp(prefix="perceptra-servers-"))
        self._done = threading.Event()
        self._threads = [threading.Thread(target=self._serve, args=(name,), daemon=True,
                                          name=f"server-{name}") for name in STARTERS]
        for thread in self._threads:
            thread.start()

    def _serve(self, name: str) -> None:
        path = self.directory / f"{name}.json"
        try:
            server = STARTERS[name]()
        except ServerUnavailable as exc:
            _write(path, {"unavailable": str(exc)})
            return
        except Exception as exc:  # any other failure reaches the tests as an error
            _write(path, {"error": f"{type(exc).__name__}: {exc}"})
            return
        try:
            _write(path, _published(server))
            self._done.wait()
        finally:
            server.stop()

    def stop(self) -> None:
        """Stop every server (after the last worker has finished) and remove the files."""
        self._done.set()
        for thread in self._threads:
            thread.join(timeout=120)
        shutil.rmtree(self.directory, ignore_errors=True)


class _SnapshotValues(dict):  # type: ignore[type-arg]
    """A dict whose ``values()`` is a copy taken at the call (one C-level loop under the
    GIL, so no other thread adds a key halfway through it)."""

    def values(self) -> list[Any]:  # type: ignore[override]
        return list(super().values())


def _snapshot_logger_iteration() -> None:
    """Let pytest walk the logger registry while the server threads add to it.

    Each time pytest's log capture starts (collection, the test loop) it iterates
    ``logging.Logger.manager.loggerDict.values()`` without a lock; the servers started
    here import moto, boto and azure in their threads, which create loggers, and one CI
    run died with an INTERNALERROR "dictionary changed size during iteration". Giving
    the registry a ``values()`` that returns a copy closes that race in the controller;
    logging itself only reads and writes the dict by key.
    """
    import logging

    manager = logging.Logger.manager
    if not isinstance(manager.loggerDict, _SnapshotValues):
        manager.loggerDict = _SnapshotValues(manager.loggerDict)


def _refuse_reset() -> None:
    raise RuntimeError("a server shared by parallel workers is never reset: that would "
                       "wipe the stores of the tests running in the other workers")


KINDS: dict[str, type[S3Server] | type[AzuriteServer]] = {
    "moto": S3Server, "rgw": S3Server, "azurite": AzuriteServer}


def start_server(workerinput: dict[str, Any] | None, name: str) -> Any:
    """Server ``name`` for this pytest process: the run's shared one in a parallel
    worker (``workerinput`` from the controller), else a new one; either way the
    caller calls its ``stop`` when the session ends (a no-op on a shared one)."""
    if workerinput is not None and SERVERS_KEY in workerinput:
        return shared_server(workerinput[SERVERS_KEY], name)
    return STARTERS[name]()


SERVERS_KEY = "perceptra_servers"
"""The key of ``workerinput`` that holds the controller's publication directory."""


def shared_server(directory: str, name: str) -> Any:
    """A worker's view of server ``name``, once the controller has published it.

    Raises ServerUnavailable with the controller's reason when it could not start.
    """
    path = Path(directory) / f"{name}.json"
    deadline = time.monotonic() + WAIT
    while not path.exists():
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"the controller did not publish {name} within {WAIT:g} s")
        time.sleep(0.1)
    content = json.loads(path.read_text())
    if "unavailable" in content:
        raise ServerUnavailable(content["unavailable"])
    if "error" in content:
        raise RuntimeError(f"{name} failed to start in the controller: {content['error']}")
    return KINDS[name](**content, stop=lambda: None, reset=_refuse_reset)


@contextlib.contextmanager
def one_at_a_time(workerinput: dict[str, Any] | None, name: str) -> Iterator[None]:
    """Hold the run-wide lock ``name`` while the block runs: in a parallel run, blocks
    holding the same name never overlap across workers (a serial run needs no lock)."""
    if workerinput is None or SERVERS_KEY not in workerinput:
        yield
        return
    with open(Path(workerinput[SERVERS_KEY]) / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield
