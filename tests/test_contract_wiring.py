"""The contract suite's wiring: every entry of the backend table runs the whole
contract through exactly one collected entry-point class, so a backend added to the
table without its class (or given two) cannot go unnoticed. A variant that stores
exactly as another entry does runs only the part of the contract where it differs
(``PARTIAL``), also through exactly one class per route."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.conftest import BACKENDS
from tests.contract import Contract, ContractBase, needs
from tests.contract.browser import BrowserTests
from tests.contract.security import SecurityTests
from tests.contract.urls import UrlTests

PARTIAL = {"local-signed": {"sync": {UrlTests, BrowserTests, SecurityTests},
                            "aio": {BrowserTests}}}
"""Variants whose objects are another entry's (local-signed is the local backend's
directory store) and whose own behaviour is their URLs: the mixins each route runs."""


def _entry_points(root: type = Contract) -> list[type]:
    for module in sorted(Path(__file__).parent.glob("test_*.py")):
        importlib.import_module(f"tests.{module.stem}")
    found, todo = [], [root]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if "case" in cls.__dict__ and cls not in found:
            found.append(cls)
    return found


def test_every_backend_has_exactly_one_collected_entry_point() -> None:
    """One sync entry point per backend, and one driving it through ``aio``."""
    classes = _entry_points()
    partial = [cls for cls in _entry_points(ContractBase) if not issubclass(cls, Contract)]
    for through in ("sync", "aio"):
        expected = set(BACKENDS) - set(PARTIAL)
        assert sorted(cls.case for cls in classes if cls.through == through) == \
            sorted(expected), through
        assert sorted(cls.case for cls in partial if cls.through == through) == \
            sorted(PARTIAL), through
    for cls in partial:
        assert PARTIAL[cls.case][cls.through] <= set(cls.__mro__), cls
    assert all(cls.__name__.startswith("Test") and cls.__module__.startswith("tests.test_")
               for cls in classes + partial), classes + partial


def test_a_test_needing_a_capability_is_left_out_where_it_is_missing() -> None:
    without = next(k for k, case in BACKENDS.items() if not case.network)
    entry = next(cls for cls in _entry_points() if cls.case == without)
    twin = next(cls for cls in _entry_points() if cls.case == without and cls.through == "aio")
    assert twin.test_dask_workers_read_and_write_through_the_adapter is None  # sync_only
    assert callable(twin.test_upload_overwrites)
    assert entry.test_refused_connection_is_reported_within_seconds is None
    assert callable(entry.test_upload_overwrites)
    with pytest.raises(TypeError, match="unknown capabilities"):
        needs("teleports")
