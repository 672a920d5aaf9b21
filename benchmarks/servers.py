"""The stores a run measures: local folders, and moto / Azurite started through the test
suite's own fixtures (``tests/servers``), each seeded once with the same data.

The fixtures do not expose the server's process id, which the server-CPU figures need, so
:func:`listening_pid` finds the process that owns the server's listening socket from
``/proc/net/tcp*`` and ``/proc/<pid>/fd``.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from benchmarks.spec import Sizes, Spec, Store, list_keys

DATA, LISTING, SCRATCH = "bench-data", "bench-list", "bench-scratch"
"""Bucket / container / folder names: fixtures, the listing set, per-measurement writes."""
LIST_BODY = b"l" * 100
AZURITE_SWEEP_MS = 3600 * 1000
"""How often a benchmark's Azurite frees deleted blobs: never within a round (see
:func:`start_azure`)."""


@dataclass
class Started:
    """A seeded store, how to give the next round an empty scratch space, and how to stop
    it.  ``next_round`` returns the store the next round measures (``store`` is replaced
    by it)."""

    store: Store
    next_round: Callable[[], Store]
    stop: Callable[[], None]

    def new_round(self) -> None:
        self.store = self.next_round()


def listening_pid(port: int) -> int:
    """The pid of the process listening on TCP ``port`` on loopback, or 0 if not found."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rpartition(":")[2], 16) == port:
                        inodes.add(f"socket:[{inode}]")
        except OSError:
            continue
    for pid in filter(str.isdigit, os.listdir("/proc")):
        fd_dir = f"/proc/{pid}/fd"
        try:
            for fd in os.listdir(fd_dir):
                if os.readlink(f"{fd_dir}/{fd}") in inodes:
                    return int(pid)
        except OSError:
            continue
    return 0


def make_sources(workdir: str, sizes: Sizes, seed: int) -> None:
    """The local files uploads send: the small files and the big one (random bytes)."""
    rng = random.Random(seed)
    os.makedirs(os.path.join(workdir, "src"), exist_ok=True)
    for i in range(sizes.small_count):
        with open(os.path.join(workdir, "src", f"k{i:04d}"), "wb") as out:
            out.write(rng.randbytes(sizes.small_size))
    with open(os.path.join(workdir, "big.bin"), "wb") as out:
        left = sizes.big_size
        while left:
            step = min(left, 8 * 2**20)
            out.write(rng.randbytes(step))
            left -= step


def _small_pairs(workdir: str, sizes: Sizes) -> list[tuple[str, str]]:
    return [(os.path.join(workdir, "src", f"k{i:04d}"), f"small/k{i:04d}")
            for i in range(sizes.small_count)]


def _small_items(workdir: str, sizes: Sizes) -> list[tuple[str, bytes]]:
    items = []
    for source, key in _small_pairs(workdir, sizes):
        with open(source, "rb") as data:
            items.append((key, data.read()))
    return items


def start_local(backend: str, parent: str, workdir: str, sizes: Sizes) -> Started:
    """A local store under ``parent``: data (copies of the sources) and the listing set."""
    root = tempfile.mkdtemp(prefix=f"{backend}-", dir=parent)
    data, listing, scratch = (os.path.join(root, name) for name in (DATA, LISTING, SCRATCH))
    for source, key in _small_pairs(workdir, sizes):
        os.makedirs(os.path.dirname(os.path.join(data, key)), exist_ok=True)
        shutil.copyfile(source, os.path.join(data, key))
    shutil.copyfile(os.path.join(workdir, "big.bin"), os.path.join(data, "big"))
    for key in list_keys(sizes.list_count):
        os.makedirs(os.path.dirname(os.path.join(listing, key)), exist_ok=True)
        with open(os.path.join(listing, key), "wb") as out:
            out.write(LIST_BODY)
    os.makedirs(scratch)
    store = Store(backend=backend, data=data, listing=listing, scratch=scratch,
                  workdir=workdir)

    def purge() -> Store:
        shutil.rmtree(scratch)
        os.makedirs(scratch)
        return store

    return Started(store, purge, lambda: shutil.rmtree(root, ignore_errors=True))


def start_s3(workdir: str, sizes: Sizes) -> Started:
    """moto's S3 server (tests/servers/moto_s3.py) with the three buckets seeded."""
    from benchmarks.tools.s3 import boto3_client, bulk_put
    from tests.servers.moto_s3 import start_moto

    server = start_moto()
    try:
        store = Store(backend="s3", data=DATA, listing=LISTING, scratch=SCRATCH,
                      workdir=workdir,
                      server={"endpoint": server.endpoint_url, "region": server.region,
                              "access_key": server.access_key,
                              "secret_key": server.secret_key},
                      server_pid=listening_pid(urlsplit(server.endpoint_url).port or 0))
        spec = _seed_spec(store, sizes)
        client = boto3_client(spec)
        for bucket in (DATA, LISTING, SCRATCH):
            client.create_bucket(Bucket=bucket)
        bulk_put(spec, DATA, _small_items(workdir, sizes))
        client.upload_file(os.path.join(workdir, "big.bin"), DATA, "big")
        bulk_put(spec, LISTING, [(key, LIST_BODY) for key in list_keys(sizes.list_count)])
    except BaseException:
        server.stop()
        raise

    def purge() -> Store:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=SCRATCH):
            doomed = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if doomed:
                client.delete_objects(Bucket=SCRATCH, Delete={"Objects": doomed,
                                                              "Quiet": True})
        return store

    return Started(store, purge, server.stop)


def start_azure(workdir: str, sizes: Sizes) -> Started:
    """Azurite (tests/servers/azurite.py) with the three containers seeded; every round
    gets a new one.

    Azurite frees deleted blobs in a periodic sweep whose cost is the square of the blobs
    deleted since the last one.  Emptying a round's scratch container (3,500 small blobs)
    made the next sweep hold Azurite's only thread for over 200 s, so round 2's
    measurements timed out; and a sweep of one delete measurement's 500 blobs would
    stall the measurement it falls in.  So the sweep is put off past any round
    (``AZURITE_SWEEP_MS``), and every round gets a fresh, seeded server: nothing to sweep,
    and no more than one round's writes (about 1.5 GB) held in memory.
    """
    from benchmarks.tools.azure import bulk_put, container_client
    from tests.servers.azurite import start_azurite

    def launch() -> tuple[Store, Callable[[], None]]:
        server = start_azurite(gc_interval_ms=AZURITE_SWEEP_MS)
        try:
            store = Store(backend="azure", data=DATA, listing=LISTING, scratch=SCRATCH,
                          workdir=workdir,
                          server={"account_url": server.account_url,
                                  "account_name": server.account_name,
                                  "account_key": server.account_key,
                                  "connection_string": server.connection_string},
                          server_pid=listening_pid(urlsplit(server.account_url).port or 0))
            spec = _seed_spec(store, sizes)
            for name in (DATA, LISTING, SCRATCH):
                container_client(spec, name).create_container()
            bulk_put(spec, DATA, _small_items(workdir, sizes))
            with open(os.path.join(workdir, "big.bin"), "rb") as big:
                container_client(spec, DATA).upload_blob("big", big, max_concurrency=8)
            bulk_put(spec, LISTING, [(key, LIST_BODY) for key in list_keys(sizes.list_count)])
        except BaseException:
            server.stop()
            raise
        return store, server.stop

    store, stop = launch()
    running = [stop]

    def next_round() -> Store:
        running.pop()()
        fresh, stop = launch()
        running.append(stop)
        return fresh

    return Started(store, next_round, lambda: running.pop()())


def _seed_spec(store: Store, sizes: Sizes) -> Spec:
    """A spec that only carries the store's connection fields to the client helpers."""
    return Spec(store=store, workload="seed", tool="seed", sizes=sizes, tag="seed")
