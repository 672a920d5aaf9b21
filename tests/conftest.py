"""Backends under test, each over a real store, and the fixtures that reach them.

``backend`` is parametrized over every entry of ``BACKENDS``; a backend joins
the contract suite by adding one factory there.  Servers are started once per
session on loopback; when one cannot start, the test is skipped locally and
fails under CI (CI=true), so CI never passes on a silently skipped backend.
"""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from perceptra_storage import BaseStorageAdapter, get_storage_adapter
from tests.servers.faultproxy import FaultProxy

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class Backend:
    """One backend under test: how to build adapters over the same store."""

    name: str
    factory: Callable[[Optional[str]], BaseStorageAdapter]
    presign_methods: frozenset[str] = frozenset()
    """Methods whose presigned URL a plain HTTP client can use on this backend."""
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

    def make(self, prefix: Optional[str] = None) -> BaseStorageAdapter:
        """A new adapter on this test's store, optionally scoped to ``prefix``."""
        return self.factory(prefix)


def unavailable(reason: str) -> None:
    """Skip outside CI; fail under CI, where every backend must run."""
    if IN_CI:
        pytest.fail(f"backend server unavailable under CI: {reason}")
    pytest.skip(reason)


def _with_prefix(config: dict[str, Any], prefix: Optional[str]) -> dict[str, Any]:
    return {**config, "prefix": prefix} if prefix else dict(config)


def _local(tmp_path: Path, metadata_store: str = "auto") -> Backend:
    config = {"base_path": str(tmp_path / "store"), "metadata_store": metadata_store}
    return Backend("local", lambda p: get_storage_adapter("local", _with_prefix(config, p)),
                   presign_methods=frozenset({"GET"}))


def _memory(tmp_path: Path) -> Backend:
    config = {"store_name": f"test-{uuid.uuid4().hex}"}
    return Backend("memory", lambda p: get_storage_adapter("memory", _with_prefix(config, p)))


BackendFactory = Callable[[pytest.FixtureRequest, Path], Backend]

BACKENDS: dict[str, BackendFactory] = {
    "local": lambda request, tmp_path: _local(tmp_path),
    # Properties in hidden bookkeeping files, as where there are no extended attributes.
    "local-portable": lambda request, tmp_path: _local(tmp_path, "portable"),
    "memory": lambda request, tmp_path: _memory(tmp_path),
}

# Server-backed backends: each module holds its session fixtures (servers) and a
# BACKENDS dict of factories that reach them through ``request.getfixturevalue``.
CASE_MODULES = ["tests.cases_s3", "tests.cases_azure"]
pytest_plugins = CASE_MODULES
pytest.register_assert_rewrite(*CASE_MODULES)
for _module in CASE_MODULES:
    BACKENDS.update(importlib.import_module(_module).BACKENDS)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    case = BACKENDS[request.param](request, tmp_path)
    yield case
    for step in case.cleanup:
        step()


SHARED_ACROSS_PROCESSES = sorted(name for name in BACKENDS if name != "memory")
"""Backends whose store other processes reach (memory lives in one process)."""


@pytest.fixture(params=SHARED_ACROSS_PROCESSES)
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    case = BACKENDS[request.param](request, tmp_path)
    yield case
    for step in case.cleanup:
        step()


NETWORK_BACKENDS = sorted(name for name in BACKENDS
                          if name not in ("local", "local-portable", "memory"))
"""Backends reached over HTTP: the ones with network faults to survive."""


@dataclass
class Faulty:
    """A network backend reached through a fault-injecting proxy."""

    backend: Backend
    proxy: FaultProxy

    def make(self, **config: Any) -> BaseStorageAdapter:
        """A fresh adapter (no pooled connections) whose traffic crosses the proxy."""
        assert self.backend.via is not None
        return self.backend.via(f"http://{self.proxy.address}", config)


@pytest.fixture(params=NETWORK_BACKENDS)
def faulty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Faulty]:
    case = BACKENDS[request.param](request, tmp_path)
    assert case.server is not None
    proxy = FaultProxy(*case.server)
    yield Faulty(case, proxy)
    proxy.close()
    for step in case.cleanup:
        step()


@pytest.fixture
def storage(backend: Backend) -> BaseStorageAdapter:
    """An adapter on an empty store of the backend under test."""
    return backend.make()
