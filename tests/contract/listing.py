"""Listing: order, string prefixes, limits, result pages, and adapters scoped to a prefix."""

from __future__ import annotations

import pytest

from perceptra_storage import (
    StorageAdapter,
    StorageValidationError,
)
from tests.conftest import Backend

from .base import ContractBase, sync_only

LISTED = ("a-b", "a/b", "a/c/d.txt", "a0", "data/file.csv", "data/file2.csv",
          "data/fig.png", "data/other/x", ".hidden", "notes.meta", "z")
PREFIX_NEIGHBOURS = ("foo/a", "foo.bar/b", "foobar", "fo", "fop")
"""Keys a directory-minded prefix match would get wrong ("foo" vs "foo.bar/")."""
PREFIX_CASES = (
    ("data/", ["data/fig.png", "data/file.csv", "data/file2.csv", "data/other/x"]),
    ("data/fi", ["data/fig.png", "data/file.csv", "data/file2.csv"]),
    ("data/file", ["data/file.csv", "data/file2.csv"]),
    ("a", ["a-b", "a/b", "a/c/d.txt", "a0"]),
    ("a/", ["a/b", "a/c/d.txt"]),
    ("a/c/d.txt", ["a/c/d.txt"]),
    ("nothing", []),
    ("no/such/dir/", []),
    # "foo" takes "foo.bar/b" and "foobar" (not "fo" or "fop"); "foo/" only foo/'s keys.
    ("foo", ["foo.bar/b", "foo/a", "foobar"]),
    ("foo/", ["foo/a"]),
    ("foo.", ["foo.bar/b"]),
)
"""Each prefix, and the keys of LISTED + PREFIX_NEIGHBOURS it lists, in order."""


def _seed(storage: StorageAdapter, keys: tuple[str, ...] = LISTED) -> None:
    """Each key with its own name as content, written in reverse order (so a listing
    in insertion order would fail the sorted-order checks)."""
    for key in reversed(keys):
        storage.upload_file(key.encode(), key)


class ListingTests(ContractBase):
    """``list_files``/``iter_files`` and the ``prefix`` config that scopes an adapter."""

    def test_list_is_recursive_sorted_and_shows_dot_and_meta_files(
            self, storage: StorageAdapter) -> None:
        _seed(storage)
        objects = storage.list_files()
        assert [o.key for o in objects] == sorted(LISTED)
        assert all(o.size == len(o.key) for o in objects)
        assert all(o.last_modified.tzinfo is not None for o in objects)

    def test_list_prefix_is_a_string_prefix(self, storage: StorageAdapter) -> None:
        """A prefix is a string prefix, not a directory.  One store, seeded once, is
        listed by every prefix (a store per prefix cost a bucket and 16 writes each)."""
        _seed(storage, (*LISTED, *PREFIX_NEIGHBOURS))
        wrong = {prefix: listed for prefix, expected in PREFIX_CASES
                 if (listed := [o.key for o in storage.list_files(prefix=prefix)]) != expected}
        assert not wrong, f"prefix -> keys listed, where PREFIX_CASES says otherwise: {wrong}"

    def test_list_max_results_and_unbounded_iterator(self, storage: StorageAdapter) -> None:
        _seed(storage)
        assert [o.key for o in storage.list_files(max_results=3)] == sorted(LISTED)[:3]
        assert storage.list_files(max_results=0) == []
        iterator = storage.iter_files()
        assert next(iterator).key == sorted(LISTED)[0]
        assert [o.key for o in storage.iter_files("data/")] == \
            [k for k in sorted(LISTED) if k.startswith("data/")]
        with pytest.raises(StorageValidationError):
            storage.list_files(max_results=-1)

    def test_listing_does_not_fetch_per_object_properties(
            self, storage: StorageAdapter) -> None:
        storage.upload_file(b"x", "l.csv", metadata={"a": "b"})
        (listed,) = storage.list_files()
        assert listed.content_type is None and listed.metadata is None
        assert listed.etag == storage.get_file_metadata("l.csv").etag

    def test_listing_crosses_result_pages_in_key_order(self, backend: Backend,
                                                       storage: StorageAdapter) -> None:
        keys = [f"many/{n % 7}/{n:05d}" for n in range(1050)]  # past one 1000-key S3 page
        backend.seed({key: b"" for key in keys})
        lazy = storage.iter_files("many/")
        assert next(lazy).key == min(keys)
        assert [o.key for o in storage.iter_files("many/")] == sorted(keys)
        assert len(storage.list_files("many/", max_results=1020)) == 1020

    def test_prefix_scopes_an_adapter_to_a_subtree(self, backend: Backend) -> None:
        root = backend.make()
        tenant_a = backend.make("tenants/a")
        tenant_b = backend.make("/tenants/b/")
        tenant_a.upload_file(b"A", "report.csv", metadata={"t": "a"})
        tenant_b.upload_file(b"B", "report.csv")
        assert tenant_a.download_file("report.csv") == b"A"
        assert tenant_b.download_file("report.csv") == b"B"
        assert [o.key for o in tenant_a.list_files()] == ["report.csv"]
        assert tenant_a.get_file_metadata("report.csv").key == "report.csv"
        assert [o.key for o in root.list_files()] == ["tenants/a/report.csv",
                                                      "tenants/b/report.csv"]
        tenant_a.delete_file("report.csv")
        assert tenant_b.file_exists("report.csv")
        with pytest.raises(StorageValidationError):
            tenant_a.download_file("../b/report.csv")

    @sync_only("construction refuses the config; no operation runs")
    def test_bad_prefix_config_is_refused(self, backend: Backend) -> None:
        for prefix in ("a/../b", "a//b", "x\x00"):
            with pytest.raises(StorageValidationError, match="prefix"):
                backend.make(prefix)
