"""A soak: eight threads of mixed operations through a proxy that injects random faults.

Each thread owns a few keys and tracks, in a ledger, what each key may hold: the
digest of every write that may have landed (an acknowledged write is the only
possibility; a failed one may or may not have), ``None`` for absent.  Reads
must return one of those, and afterwards every key must hold one of them: no
torn object, no bytes that were never written whole.  Every call either
succeeds with the right bytes or raises a typed ``StorageError``; none outlives
its deadline; nothing is printed to stderr or logged at WARNING; no multipart
upload, partial download, connection or thread is left behind.

``PERCEPTRA_SOAK_SECONDS`` sets the length of each backend's run (default 10: nine
entries run it in `make test`, and at 20 s they took 200 s of the suite's serial time),
``PERCEPTRA_SOAK_SEED`` replays a run; the seed is in every failure message.
"""

from __future__ import annotations

import gc
import hashlib
import io
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from perceptra_storage import BaseStorageAdapter, StorageError, StorageNotFoundError
from tests.conftest import Faulty

from .base import ContractBase, needs

SECONDS = float(os.environ.get("PERCEPTRA_SOAK_SECONDS", "10"))
THREADS = 8
KEYS_PER_THREAD = 4
CONFIG = {"connect_timeout": 1, "read_timeout": 1, "max_attempts": 4,
          "retry_backoff": 0.05, "operation_timeout": 15}
"""Short timeouts, so faults cost seconds, and a few attempts, so most are survived."""
DEADLINE = 40.0
"""Seconds any one call may take: operation_timeout, plus calls it does not bound
(opened files read chunk by chunk), plus a loaded machine."""
FAULT_RATE = 0.2
"""Share of new connections that get a random fault."""

Digest = Optional[str]
"""sha256 of a key's content; None for an absent key."""


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _size(pick: random.Random) -> int:
    """0 B..8 MiB, mostly small, so that a run has many calls and some multipart ones."""
    roll = pick.random()
    if roll < 0.1:
        return 0
    if roll < 0.7:
        return pick.randint(1, 64 * 1024)
    if roll < 0.95:
        return pick.randint(64 * 1024, 1024 * 1024)
    return pick.randint(5 * 1024 * 1024, 8 * 1024 * 1024)


@dataclass
class Tally:
    """What the run did, shared by the threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    operations: Counter[str] = field(default_factory=Counter)
    typed: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    slowest: float = 0.0

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


class Worker:
    """One thread's keys, ledger and random choices."""

    def __init__(self, number: int, seed: int, adapter: BaseStorageAdapter, folder: Path,
                 tally: Tally) -> None:
        self.number = number
        self.pick = random.Random(seed * 1000 + number)
        self.adapter = adapter
        self.folder = folder
        self.tally = tally
        self.keys = [f"t{number}/k{index}" for index in range(KEYS_PER_THREAD)]
        self.may_hold: dict[str, set[Digest]] = {key: {None} for key in self.keys}
        self.content: dict[Digest, bytes] = {None: b""}

    # -- the ledger -------------------------------------------------------------------

    def wrote(self, key: str, data: Optional[bytes], done: bool) -> None:
        """A write of ``data`` (None: a delete) finished (``done``) or failed."""
        value = None if data is None else digest(data)
        if data is not None:
            self.content[value] = data
        self.may_hold[key] = {value} if done else self.may_hold[key] | {value}

    def read(self, key: str, data: Optional[bytes], what: str) -> None:
        """A read of ``key`` returned ``data`` (None: not found)."""
        value = None if data is None else digest(data)
        if value not in self.may_hold[key]:
            self.tally.problem(f"{what} of {key!r} gave {'nothing' if data is None else len(data)}"
                               f" bytes never written whole")
        self.may_hold[key] = {value}

    def known(self, key: str) -> Optional[bytes]:
        """The content of ``key`` if the ledger knows it exactly and it exists."""
        (value,) = self.may_hold[key] if len(self.may_hold[key]) == 1 else (None,)
        return None if value is None else self.content[value]

    # -- the operations -----------------------------------------------------------------

    def upload(self) -> None:
        key = self.pick.choice(self.keys)
        data = self.pick.randbytes(_size(self.pick))
        how = self.pick.choice(["bytes", "path", "stream"])
        source: Any = data
        if how == "path":
            source = self.folder / f"up-{self.number}.bin"
            source.write_bytes(data)
        elif how == "stream":
            source = io.BytesIO(data)
        self.run(f"upload-{how}", lambda: self.adapter.upload_file(source, key),
                 on_done=lambda _: self.wrote(key, data, True),
                 on_fail=lambda _: self.wrote(key, data, False))

    def download(self) -> None:
        key = self.pick.choice(self.keys)
        how = self.pick.choice(["bytes", "path", "stream"])
        target = self.folder / f"down-{self.number}.bin"

        def call() -> bytes:
            if how == "bytes":
                return self.adapter.download_file(key)
            if how == "path":
                self.adapter.download_file(key, target)
                return target.read_bytes()
            sink = io.BytesIO()
            self.adapter.download_file(key, sink)
            return sink.getvalue()

        self.run(f"download-{how}", call, on_done=lambda data: self.read(key, data, "download"),
                 on_missing=lambda: self.read(key, None, "download"))

    def open_read(self) -> None:
        key = self.pick.choice(self.keys)
        expected = self.known(key)
        if not expected:
            return self.download()
        offsets = sorted(self.pick.randrange(len(expected)) for _ in range(3))

        def call() -> None:
            with self.adapter.open(key, "rb") as f:
                for offset in offsets:
                    f.seek(offset)
                    got = f.read(4096)
                    if got != expected[offset:offset + 4096]:
                        self.tally.problem(f"open-read of {key!r} at {offset} gave other bytes")

        self.run("open-read", call)
        return None

    def listing(self) -> None:
        prefix = f"t{self.number}/"

        def call() -> None:
            listed = {item.key: item.size for item in self.adapter.list_files(prefix)}
            for key in self.keys:
                sizes = {len(self.content[v]) for v in self.may_hold[key] if v is not None}
                if key in listed and listed[key] not in sizes:
                    self.tally.problem(f"list shows {key!r} at {listed[key]} bytes, "
                                       f"never written whole")
                if key not in listed and None not in self.may_hold[key]:
                    self.tally.problem(f"list misses {key!r}, which exists")
            for key in set(listed) - set(self.keys):
                self.tally.problem(f"list shows {key!r}, never written")

        self.run("list", call)

    def copy(self) -> None:
        source, target = self.pick.sample(self.keys, 2)
        before = set(self.may_hold[source])

        def done(_: Any) -> None:
            self.may_hold[target] = {v for v in before if v is not None}

        def failed(_: Any) -> None:
            self.may_hold[target] |= {v for v in before if v is not None}

        self.run("copy", lambda: self.adapter.copy_file(source, target), on_done=done,
                 on_fail=failed, on_missing=lambda: self.read(source, None, "copy"))

    def delete(self) -> None:
        key = self.pick.choice(self.keys)
        self.run("delete", lambda: self.adapter.delete_file(key),
                 on_done=lambda _: self.wrote(key, None, True),
                 on_fail=lambda _: self.wrote(key, None, False),
                 on_missing=lambda: self.read(key, None, "delete"))

    def batch(self) -> None:
        kind = self.pick.choice(["upload", "download", "delete", "copy"])
        keys = self.pick.sample(self.keys, 2)
        if kind == "upload":
            payloads = {key: self.pick.randbytes(_size(self.pick) // 8) for key in keys}
            result = self.run("batch-upload", lambda: self.adapter.upload_files(payloads))
            for key, data in payloads.items():
                self.wrote(key, data, result is not None and key in result.succeeded)
            self.check_failures("batch-upload", result)
        elif kind == "download":
            folder = self.folder / f"batch-{self.number}"
            result = self.run("batch-download", lambda: self.adapter.download_files(keys, folder))
            for key in keys:
                if result is not None and key in result.succeeded:
                    self.read(key, (folder / key).read_bytes(), "batch download")
                elif result is not None and isinstance(result.failed.get(key),
                                                       StorageNotFoundError):
                    self.read(key, None, "batch download")
            self.check_failures("batch-download", result)
        elif kind == "delete":
            result = self.run("batch-delete",
                              lambda: self.adapter.delete_files(keys, missing_ok=True))
            for key in keys:
                self.wrote(key, None, result is not None and key in result.succeeded)
            self.check_failures("batch-delete", result)
        else:
            source, target = keys
            before = {v for v in self.may_hold[source] if v is not None}
            result = self.run("batch-copy", lambda: self.adapter.copy_files({source: target}))
            if result is not None and target in result.succeeded:
                self.may_hold[target] = before
            elif result is not None and isinstance(result.failed.get(target),
                                                   StorageNotFoundError):
                self.read(source, None, "batch copy")
            else:
                self.may_hold[target] |= before
            self.check_failures("batch-copy", result)

    def check_failures(self, what: str, result: Any) -> None:
        for key, error in (result.failed.items() if result is not None else ()):
            if not isinstance(error, StorageError):
                self.tally.problem(f"{what} {key!r}: untyped {type(error).__name__}")
            with self.tally.lock:
                self.tally.typed[type(error).__name__] += 1

    def run(self, what: str, call: Callable[[], Any],
            on_done: Callable[[Any], None] = lambda _: None,
            on_fail: Callable[[Any], None] = lambda _: None,
            on_missing: Optional[Callable[[], None]] = None) -> Any:
        """Run one call, time it and sort its outcome."""
        start = time.monotonic()
        result = None
        try:
            result = call()
        except StorageNotFoundError as exc:
            with self.tally.lock:
                self.tally.typed[type(exc).__name__] += 1
            if on_missing is None:
                self.tally.problem(f"{what}: unexpected {exc!r}")
            else:
                on_missing()
        except StorageError as exc:
            with self.tally.lock:
                self.tally.typed[type(exc).__name__] += 1
            on_fail(exc)
        except Exception as exc:  # the soak counts what escapes untyped
            self.tally.problem(f"{what}: untyped {type(exc).__name__}: {exc}")
            on_fail(exc)
        else:
            on_done(result)
        took = time.monotonic() - start
        with self.tally.lock:
            self.tally.operations[what] += 1
            self.tally.slowest = max(self.tally.slowest, took)
        if took > DEADLINE:
            self.tally.problem(f"{what} took {took:.1f} s, past the {DEADLINE:g} s deadline")
        return result

    def loop(self, until: float) -> None:
        steps = [(self.upload, 5), (self.download, 4), (self.open_read, 2), (self.listing, 1),
                 (self.copy, 1), (self.delete, 1), (self.batch, 2)]
        actions = [step for step, weight in steps for _ in range(weight)]
        try:
            while time.monotonic() < until:
                self.pick.choice(actions)()
        except Exception as exc:  # a bug in the soak itself must show
            self.tally.problem(f"thread {self.number} died: {exc!r}")


def _connections_to(port: int) -> int:
    """Open TCP connections of this process to ``port`` (the proxy)."""
    import psutil

    return sum(1 for conn in psutil.Process().net_connections("tcp")
               if conn.raddr and conn.raddr.port == port and conn.status == "ESTABLISHED")


def _our_threads() -> set[str]:
    """Live threads other than the proxy's (which serve the faults, not the adapter)
    and the event loop's default executor (a bounded pool asyncio keeps for name
    lookups and ``to_thread``, idle threads included)."""
    return {f"{t.name}:{t.ident}" for t in threading.enumerate()
            if not t.name.startswith(("faultproxy", "asyncio_"))}


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Name the seed in any failure, so the run can be replayed."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"soak seed {seed} (replay: PERCEPTRA_SOAK_SEED={seed}): "
                             f"{exc}") from None


class _Records(logging.Handler):
    """Every log record of the run, whatever the loggers' levels."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@needs("network")
class SoakTests(ContractBase):
    """Sustained random faults under concurrent mixed load."""

    def test_soak_under_random_faults(self, faulty: Faulty, tmp_path: Path,
                                      capfd: pytest.CaptureFixture[str]) -> None:
        seed = int(os.environ.get("PERCEPTRA_SOAK_SEED", random.randrange(2**31)))
        with _seeded(seed):
            self._soak(faulty, tmp_path, capfd, seed)

    def _soak(self, faulty: Faulty, tmp_path: Path, capfd: pytest.CaptureFixture[str],
              seed: int) -> None:
        adapter = faulty.make(**CONFIG)
        adapter.upload_file(b"warm", "warm-up")  # the event loop and pool exist before counting
        adapter.delete_file("warm-up")
        threads_before = _our_threads()
        gc.collect()  # what earlier tests left to the collector is not this run's noise
        records = _Records()
        root = logging.getLogger()
        ours = logging.getLogger("perceptra_storage")
        level = ours.level
        root.addHandler(records)
        ours.setLevel(logging.DEBUG)
        tally = Tally()
        workers = [Worker(n, seed, adapter, tmp_path / f"w{n}", tally) for n in range(THREADS)]
        for worker in workers:
            worker.folder.mkdir()
        try:
            faulty.proxy.randomize(seed, rate=FAULT_RATE, timeout=CONFIG["read_timeout"])
            until = time.monotonic() + SECONDS
            threads = [threading.Thread(target=w.loop, args=(until,), name=f"soak-{w.number}")
                       for w in workers]
            for thread in threads:
                thread.start()
            pick = random.Random(seed)
            while time.monotonic() < until - 1:
                # Pooled connections would otherwise meet only the faults of their first
                # request: reset them now and then, mid-transfer or idle.
                time.sleep(pick.uniform(0.5, 2.0))
                faulty.proxy.sever()
            for thread in threads:
                thread.join(timeout=max(0.0, until - time.monotonic()) + DEADLINE + 10)
            hung = [t.name for t in threads if t.is_alive()]
            faulty.proxy.set("pass")
            gc.collect()  # "Task exception was never retrieved" is logged at collection
        finally:
            root.removeHandler(records)
            ours.setLevel(level)
        injected = sum(faulty.proxy.injected.values())
        retries = sum(int(r.args[0]) for r in records.records  # type: ignore[index]
                      if r.name == "perceptra_storage.resilience" and r.args)
        summary = (f"soak {faulty.backend.name} seed={seed}: "
                   f"{sum(tally.operations.values())} operations in {SECONDS:g} s "
                   f"{dict(tally.operations)}, {injected} faults injected "
                   f"{dict(faulty.proxy.injected)}, {retries} retries recovered, "
                   f"typed errors {dict(tally.typed)}, slowest call {tally.slowest:.1f} s")
        assert not hung, f"{summary}; threads still running past their deadline: {hung}"
        assert not tally.problems, "\n".join([summary, *tally.problems[:20]])
        assert injected > 0 and sum(tally.operations.values()) > THREADS * 5, summary

        # Every key holds what the ledger allows: no torn object, nothing never written.
        clean = faulty.backend.make()
        stored = {item.key for item in clean.list_files(max_results=100_000)}
        for worker in workers:
            for key in worker.keys:
                data = clean.download_file(key) if key in stored else None
                held = None if data is None else digest(data)
                assert held in worker.may_hold[key], \
                    f"{key!r} holds {len(data or b'')} bytes never written whole"
        assert stored <= {key for w in workers for key in w.keys}, stored
        orphans = pending = 0
        if faulty.backend.discards_failed_uploads:
            # A CreateMultipartUpload whose answer was lost, then retried, leaves the
            # first upload on the server with an id the client never learnt: nothing
            # can abort it but a bucket lifecycle rule (README, Reliability).  Those are
            # counted; any other unfinished upload is a leak.
            orphans = sum(1 for r in records.records
                          if r.getMessage().endswith("in create_multipart_upload"))
            pending = faulty.backend.pending_uploads()
            assert pending <= orphans, \
                f"{summary}; {pending} unfinished multipart uploads left, {orphans} orphaned"
        leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".part")]
        assert not leftovers, f"partial downloads left: {leftovers}"

        # Nothing left running or open once the adapter is closed.
        adapter.close()
        del adapter, workers
        gc.collect()
        give_up = time.monotonic() + 10
        while (_our_threads() - threads_before or _connections_to(faulty.proxy.port)) \
                and time.monotonic() < give_up:
            time.sleep(0.2)
            gc.collect()
        assert not _our_threads() - threads_before, _our_threads() - threads_before
        open_now = _connections_to(faulty.proxy.port)
        assert open_now == 0, f"{open_now} connections still open after close"

        # Recoveries are quiet: at most DEBUG records, nothing on stderr.
        loud = [f"{r.name}: {r.getMessage()}" for r in records.records
                if r.levelno >= logging.WARNING]
        assert not loud, loud[:10]
        printed = capfd.readouterr().err
        assert printed == "", f"stderr: {printed[:2000]}"
        with capfd.disabled():  # the figures of the run, for the README's Reliability section
            print(f"\n{summary}, {pending} multipart uploads orphaned by a lost "
                  f"CreateMultipartUpload answer, 0 lost or torn")
