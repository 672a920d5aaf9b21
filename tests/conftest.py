"""Backends under test, each over a real store, and the fixtures that reach them.

``BACKENDS`` is the backend table: one ``Case`` per backend (or variant of one),
holding what the backend can do and how to reach a fresh store.  The contract
suite (``tests/contract``) selects and adapts its tests by those capability
fields, never by a backend's name; ``tests/contract/__init__.py`` says how to
add a backend or a variant.

The fixtures ``backend``, ``storage``, ``shared_backend`` and ``faulty`` are
parametrized over the table, for plain test functions that should run on every
backend (or every one with the capability).  Servers are started once per session
on loopback; when one cannot start, the test is skipped locally and fails under CI
(CI=true), so CI never passes on a silently skipped backend.

Parallel runs.  ``make test`` runs the suite in pytest-xdist workers (``-n``); a
plain ``pytest`` stays serial.  Under ``-n`` the controller process starts moto,
Ceph RGW and Azurite once and every worker reaches the same servers
(``tests/servers/shared.py``), so tests of one run share those servers at the same
time.  A test stays correct in parallel when it:

- gets its store from the fixtures (``backend``, ``storage``, ``shared_backend``,
  ``faulty``, a contract class's ``backend``, ``bucket``/``container`` in the backend
  modules): a fresh bucket, container, directory or memory store of its own, named
  with a random suffix.  A test that must create a bucket itself gives it a unique
  name (``uuid``) and removes it; it never lists or empties the whole server, and never
  resets or stops a session server;
- binds no fixed port (``free_port()``, or bind to port 0 and read it back) and
  writes no fixed path outside its ``tmp_path`` (no ``/tmp/name``, no ``~``: point
  ``HOME``/``XDG_CONFIG_HOME`` at ``tmp_path`` with ``monkeypatch``);
- changes process-global state (environment, module attributes, ``os``) only through
  ``monkeypatch``, which undoes it before the worker's next test;
- keeps time limits as the only timing assumption, with room for a loaded machine:
  a worker shares two cores with the others and the servers.

A test that sends work to Dask asks for ``dask_client``: one cluster per test process,
started once (the processes take turns starting theirs, instead of clusters importing
pandas at once on two cores), whose workers read profiles from ``dask_profiles``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from perceptra_storage import BaseStorageAdapter, get_storage_adapter
from tests.servers.faultproxy import FaultProxy
from tests.servers.shared import SERVERS_KEY, SharedServers, one_at_a_time

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass(kw_only=True)
class Capabilities:
    """What a backend can do, known before any server starts (tests are selected by
    these at collection time).  The defaults describe a plain object store on disk."""

    presign_methods: frozenset[str] = frozenset()
    """Methods whose presigned URL a plain HTTP client can use on this backend."""
    network: bool = False
    """Reached over HTTP through a server: has network faults to survive, and a fault
    proxy can sit between adapter and server (``Backend.server``, ``Backend.via``)."""
    shared_across_processes: bool = True
    """Other processes (forked children, Dask workers) reach the same store."""
    holds_objects_in_memory: bool = False
    """The store keeps every object in this process's memory, so memory bounds on
    transfers allow for the object itself."""
    multipart_uploads: bool = False
    """Large uploads go up in parts (S3 multipart uploads, Azure blocks)."""
    discards_failed_uploads: bool = True
    """A failed upload leaves nothing pending in the store (``Backend.pending_uploads``).
    Azure cannot drop staged blocks safely; they stay invisible until the name's next
    commit or the service's clean-up (README, Reliability)."""
    checks_upload_checksums: bool = False
    """The store itself checks what a ``checksum=True`` upload sent against the checksum
    sent with it, and says so, so the adapter does not read the upload back (Azure's
    per-request MD5; moto and Ceph RGW do not confirm ``x-amz-checksum-sha256``)."""
    directories: bool = False
    """Keys are paths in a real directory tree: a name cannot be a file and a folder at
    once, and empty directories exist (object stores have neither)."""
    metadata_hyphens: bool = False
    """Metadata names may hold '-' (``original-name``): the store keeps '-' and '_' apart."""
    pinned_headers_enforced: bool = False
    """A presigned PUT sent with another Content-Type than it was signed for is refused
    (SigV4 on a server that checks signatures, local HMAC; not moto, not an Azure SAS)."""
    signatures_checked: bool = False
    """The server refuses a presigned URL whose query was changed (moto checks none)."""
    response_overrides: bool = False
    """Presigned GETs carry response overrides (download name, content type)."""
    post_policies: bool = False
    """``generate_presigned_post`` gives S3 POST upload policies."""
    post_policies_enforced: bool = False
    """The server checks a POST policy's conditions (size, content type, signature)."""
    cors: bool = False
    """``set_cors``/``get_cors`` manage the store's cross-origin rules."""
    resolves_in_python: bool = True
    """Host names are resolved through Python's ``socket.getaddrinfo`` (a test can fake
    a failing name without a query leaving the machine); obstore's Rust client
    resolves them itself."""
    refuses_redirects: bool = True
    """A redirect to another host is refused; obstore's HTTP client follows it (README,
    Choosing an engine), so the engine's entries document that instead."""
    survives_fork: bool = True
    """A forked child can use the parent's adapter; obstore's runtime cannot run in a
    forked child, where the engine raises StorageOperationError instead of hanging."""
    cors_shared: bool = False
    """The CORS rules are the whole account's (Azure's blob service), not the test's own
    store's: tests that set them take turns across parallel workers (``cors_turn``)."""

    def capabilities(self) -> dict[str, Any]:
        """The capability fields alone, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(Capabilities)}


@dataclass
class Backend(Capabilities):
    """One backend under test: how to build adapters over the same store, and what
    the backend can do (the ``Capabilities`` fields of its table entry)."""

    name: str
    """The backend's registered name, as its adapters and errors report it."""
    factory: Callable[[Optional[str]], BaseStorageAdapter]
    secrets: tuple[str, ...] = ()
    """Credential values that must never appear in reprs, messages or logs."""
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    server: Optional[tuple[str, int]] = None
    """Host and port of the store's server; None for backends without a network."""
    via: Optional[Callable[[str, dict[str, Any]], BaseStorageAdapter]] = None
    """An adapter on the same store whose endpoint is the given ``http://host:port``
    (a fault proxy), with extra ``config`` (timeouts, retries)."""
    pending_uploads: Callable[[], int] = lambda: 0
    """Unfinished multipart uploads (or uncommitted blobs) left in the store."""
    seeder: Optional[Callable[[], BaseStorageAdapter]] = None
    """An adapter on the same store whose client writes many objects cheaply (the
    obstore engine, on the network backends), for :meth:`seed`; None: :meth:`make`'s."""

    def make(self, prefix: Optional[str] = None) -> BaseStorageAdapter:
        """A new adapter on this test's store, optionally scoped to ``prefix``."""
        return self.factory(prefix)

    def seed(self, objects: dict[str, bytes]) -> None:
        """Store ``objects`` as the set-up of a test about something else (listing many
        keys, deleting them): through the obstore engine on the network backends, whose
        client costs a fraction of the SDKs' CPU per object (a 1,050-key listing test
        spent 11-16 s writing its keys through s3fs and adlfs, 3-5 s on the engine)."""
        writer = self.factory(None) if self.seeder is None else self.seeder()
        result = writer.upload_files(objects, concurrency=32)
        assert result.ok, result.failed


@dataclass(kw_only=True)
class Case(Capabilities):
    """One entry of the backend table: the capabilities, and ``start``, which reaches a
    fresh, empty store for one test (starting the session's server on first use)."""

    start: Callable[[pytest.FixtureRequest, Path], Backend]
    generic: bool = True
    """Whether the fixtures parametrized over every backend (``backend``, ``storage``,
    ``shared_backend``) include this entry. False for a variant that stores exactly as
    another entry does (local-signed is the local directory store with signed URLs):
    its own entry points test what differs, the other entry everything else."""
    engine_variant: bool = False
    """An entry on another transport (``engine``) of a generic entry's store: the route
    tests (``ROUTED``) run on it too."""


@contextmanager
def untraced() -> Iterator[None]:
    """Run test scaffolding (creating and emptying buckets through boto3 or the Azure
    SDK) without coverage's tracer in this thread.  Coverage measures only
    perceptra_storage, but on Python 3.11 its tracer still runs for every line of every
    library: a bucket's create-list-delete cycle cost 30 ms of CPU under it against 15
    without, for each of the suite's ~1,700 network tests.  Package code never runs
    here; the tracer is put back as coverage allows (``settrace(gettrace())``)."""
    import sys

    tracer = sys.gettrace()
    sys.settrace(None)
    try:
        yield
    finally:
        sys.settrace(tracer)


def unavailable(reason: str) -> None:
    """Skip outside CI; fail under CI, where every backend must run."""
    if IN_CI:
        pytest.fail(f"backend server unavailable under CI: {reason}")
    pytest.skip(reason)


def _with_prefix(config: dict[str, Any], prefix: Optional[str]) -> dict[str, Any]:
    return {**config, "prefix": prefix} if prefix else dict(config)


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    config = {"base_path": str(tmp_path / "store")}
    return Backend("local", lambda p: get_storage_adapter("local", _with_prefix(config, p)))


def _local_portable(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Content type and metadata in hidden bookkeeping files, as where the platform or
    filesystem has no extended attributes."""
    config = {"base_path": str(tmp_path / "store"), "metadata_store": "portable"}
    return Backend("local", lambda p: get_storage_adapter("local", _with_prefix(config, p)))


def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    config = {"store_name": f"test-{uuid.uuid4().hex}"}
    return Backend("memory", lambda p: get_storage_adapter("memory", _with_prefix(config, p)))


BACKENDS: dict[str, Case] = {
    "local": Case(start=_local, presign_methods=frozenset({"GET"}), directories=True,
                  metadata_hyphens=True),
    "local-portable": Case(start=_local_portable, presign_methods=frozenset({"GET"}),
                           directories=True, metadata_hyphens=True),
    "memory": Case(start=_memory, shared_across_processes=False,
                   holds_objects_in_memory=True, metadata_hyphens=True),
}

# Server-backed backends: each module holds its session fixtures (servers) and a
# BACKENDS dict of cases whose ``start`` reaches them through ``request.getfixturevalue``.
CASE_MODULES = ["tests.cases_s3", "tests.cases_azure", "tests.cases_local_signed"]
pytest_plugins = CASE_MODULES
pytest.register_assert_rewrite(*CASE_MODULES)
for _module in CASE_MODULES:
    BACKENDS.update(importlib.import_module(_module).BACKENDS)


_SHARED = pytest.StashKey[SharedServers]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """The controller of a parallel run (pytest-xdist's ``-n N``) starts the servers once
    for all its workers, while they start and collect."""
    if session.config.pluginmanager.getplugin("dsession") is not None:
        session.config.stash[_SHARED] = SharedServers()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell each worker where the controller publishes its servers."""
    shared = node.config.stash.get(_SHARED, None)
    if shared is not None:
        node.workerinput[SERVERS_KEY] = str(shared.directory)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the shared servers once every worker has finished."""
    shared = config.stash.get(_SHARED, None)
    if shared is not None:
        shared.stop()


LONG_FIRST = (
    # no server needed: they run while the controller starts moto, RGW and Azurite
    "test_local_contract_passes_without_xattr_and_sendfile",
    "test_readme_coverage_command_writes_an_html_report",
    "test_readme_examples_pass_mypy_strict",
    "test_readme_command_line_examples_run",
    # each 10-60 s on a server
    "test_browser_uploads_and_downloads",
    "test_every_command_on_a_real_store",
    "test_sync_copies_only_what_changed",
    "test_eight_threads_of_mixed_operations",
    "test_soak_under_random_faults",
    "test_listing_crosses_result_pages_in_key_order",
    "test_permission_and_connection_failures",
    "test_dask_workers_read_and_write_through_the_adapter",
    "test_dask_workers_resolve_profiles_and_options_themselves",
    "test_batch_upload_download_delete_200_files",
    "test_batch_delete_spans_bulk_requests_and_reports_each_key",
    "test_large_transfers_use_bounded_memory",
)
"""Tests of 10 s or more (``--durations`` of a CI run), in the order they start."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the longest tests first.  pytest-xdist hands each worker a contiguous share
    of the collection and lets an idle worker steal from the end of another's: a 40 s test
    collected last would run alone at the end of the run, on one core."""
    rank = {name: index for index, name in enumerate(LONG_FIRST)}
    order = {id(item): n for n, item in enumerate(items)}
    items.sort(key=lambda item: (rank.get(getattr(item, "originalname", item.name),
                                          len(rank)), order[id(item)]))


@contextmanager
def started_backend(case_id: str, request: pytest.FixtureRequest,
                    tmp_path: Path) -> Iterator[Backend]:
    """The backend of table entry ``case_id`` on a fresh store, with the entry's
    capabilities, cleaned up afterwards."""
    case = BACKENDS[case_id]
    backend = dataclasses.replace(case.start(request, tmp_path), **case.capabilities())
    try:
        yield backend
    finally:
        for step in backend.cleanup:
            step()


def started_entry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The body of every fixture parametrized over table entries (``request.param``):
    ``backend`` and ``shared_backend`` here, and a route module's overrides of them."""
    with started_backend(request.param, request, tmp_path) as started:
        yield started


GENERIC = sorted(k for k, case in BACKENDS.items() if case.generic)
"""The entries the fixtures parametrized over every backend run on."""
backend = pytest.fixture(params=GENERIC, name="backend")(started_entry)


ROUTED = sorted(k for k, case in BACKENDS.items() if case.generic or case.engine_variant)
"""The entries of the route tests, which reach a store through ``perceptra://`` URLs,
the command line and Django's storage API: the generic ones and the engine variants,
since those routes run on whichever filesystem the profile's engine builds.  A route's
test module takes them by overriding ``backend`` / ``shared_backend`` with
:func:`started_entry`."""


SHARED_ACROSS_PROCESSES = sorted(k for k, case in BACKENDS.items()
                                 if case.shared_across_processes and case.generic)
"""Backends whose store other processes reach (memory lives in one process)."""
ROUTED_SHARED = sorted(k for k in ROUTED if BACKENDS[k].shared_across_processes)
"""The route entries other processes reach (the CLI, Dask workers)."""
shared_backend = pytest.fixture(params=SHARED_ACROSS_PROCESSES,
                                name="shared_backend")(started_entry)


NETWORK_BACKENDS = sorted(k for k, case in BACKENDS.items() if case.network and case.generic)
"""Backends reached over HTTP: the ones with network faults to survive (the generic
entries; an engine variant meets its faults through its own contract entry points)."""


@dataclass
class Faulty:
    """A network backend reached through a fault-injecting proxy."""

    backend: Backend
    proxy: FaultProxy

    def make(self, **config: Any) -> BaseStorageAdapter:
        """A fresh adapter (no pooled connections) whose traffic crosses the proxy."""
        assert self.backend.via is not None
        return self.backend.via(f"http://{self.proxy.address}", config)


@contextmanager
def fault_proxy(backend: Backend) -> Iterator[Faulty]:
    """A fault proxy in front of ``backend``'s server, closed afterwards."""
    assert backend.server is not None, f"{backend.name} has no server to proxy"
    proxy = FaultProxy(*backend.server)
    try:
        yield Faulty(backend, proxy)
    finally:
        proxy.close()


@pytest.fixture(params=NETWORK_BACKENDS)
def faulty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Faulty]:
    with started_backend(request.param, request, tmp_path) as started, \
            fault_proxy(started) as proxied:
        yield proxied


@pytest.fixture(scope="session")
def dask_profiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The profiles file the workers of ``dask_client`` read (PERCEPTRA_PROFILES in
    their environment from the start): a test writes its profiles there, and points
    its own process at it with ``monkeypatch.setenv``."""
    return tmp_path_factory.mktemp("dask-profiles") / "profiles.toml"


@pytest.fixture(scope="session")
def dask_client(request: pytest.FixtureRequest, dask_profiles: Path) -> Iterator[Any]:
    """A client of one Dask cluster (two worker processes) per test process, for tests
    that only send it work: starting a cluster costs seconds of imports in each of its
    processes, once per test when each started its own (9 s a test)."""
    from distributed import Client, LocalCluster

    from perceptra_storage.profiles import PROFILES_ENV

    with one_at_a_time(getattr(request.config, "workerinput", None), "dask"):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, env={PROFILES_ENV: str(dask_profiles)})
    with cluster, Client(cluster) as client:
        yield client


@pytest.fixture
def storage(backend: Backend) -> BaseStorageAdapter:
    """An adapter on an empty store of the backend under test."""
    return backend.make()
