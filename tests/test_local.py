"""The local backend's entry point: the whole contract, then what only it has (files on
disk, symlinks, extended attributes)."""

from __future__ import annotations

import builtins
import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from perceptra_storage import (
    LocalStorageAdapter,
    StorageNotFoundError,
    StorageOperationError,
    StoragePermissionError,
    StorageValidationError,
    get_storage_adapter,
)
from tests.contract import Contract


class TestLocalContract(Contract):
    """The whole contract on the local backend."""

    case = "local"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path / "base"


@pytest.fixture
def local(base: Path) -> LocalStorageAdapter:
    adapter = get_storage_adapter("local", {"base_path": base})
    assert isinstance(adapter, LocalStorageAdapter)
    return adapter


def test_objects_are_plain_files_and_no_sidecars(local: LocalStorageAdapter, base: Path) -> None:
    local.upload_file(b"a,b\n", "d/data.csv", content_type="text/plain",
                      metadata={"owner": "ana"})
    assert (base / "d" / "data.csv").read_bytes() == b"a,b\n"
    assert sorted(os.listdir(base / "d")) == ["data.csv"]
    info = local.get_file_metadata("d/data.csv")
    assert (info.content_type, info.metadata) == ("text/plain", {"owner": "ana"})


def test_files_written_by_other_programs_are_objects(local: LocalStorageAdapter,
                                                     base: Path) -> None:
    (base / "ext").mkdir(parents=True)
    (base / "ext" / "report.json").write_bytes(b"{}")
    info = local.get_file_metadata("ext/report.json")
    assert (info.size, info.content_type, info.metadata) == (2, "application/json", {})
    assert [o.key for o in local.list_files()] == ["ext/report.json"]


def test_temporary_names_are_hidden_and_refused(local: LocalStorageAdapter, base: Path) -> None:
    local.upload_file(b"x", "k")
    (base / ".~ps.0123456789abcdef0123456789abcdef.tmp").write_bytes(b"in flight")
    assert [o.key for o in local.list_files()] == ["k"]
    with pytest.raises(StorageValidationError, match="temporary"):
        local.upload_file(b"x", "a/.~ps.0123456789abcdef0123456789abcdef.tmp")


def test_symlinks_cannot_reach_outside(local: LocalStorageAdapter, base: Path,
                                       tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    local.upload_file(b"inside", "in/real.txt")
    os.symlink(outside, base / "escape")
    os.symlink(outside / "secret.txt", base / "secret-link")
    os.symlink(base / "in" / "real.txt", base / "in" / "alias.txt")
    for key in ("escape/secret.txt", "secret-link"):
        with pytest.raises(StoragePermissionError, match="outside"):
            local.download_file(key)
        with pytest.raises(StoragePermissionError):
            local.upload_file(b"overwrite", key)
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert [o.key for o in local.list_files()] == ["in/alias.txt", "in/real.txt"]
    assert local.download_file("in/alias.txt") == b"inside"


def test_a_sibling_whose_name_extends_the_root_is_outside(tmp_path: Path) -> None:
    # /x/store_evil starts with the string /x/store: a prefix test on strings would let
    # a link into it pass. Links at the top of a key, in its middle, and into a tenant's
    # sibling prefix are all refused, and nothing is written through them.
    store, evil = tmp_path / "store", tmp_path / "store_evil"
    (evil / "t").mkdir(parents=True)
    (evil / "loot.txt").write_bytes(b"evil")
    adapter = get_storage_adapter("local", {"base_path": str(store)})
    tenant = get_storage_adapter("local", {"base_path": str(store), "prefix": "t1"})
    adapter.upload_file(b"x", "t1/dir/ok.txt")
    os.symlink(evil / "loot.txt", store / "loot.txt")
    os.symlink(evil, store / "t1" / "dir" / "deep")
    os.symlink(store / "t10", store / "t1" / "sibling")
    (store / "t10").mkdir()
    for who, key in ((adapter, "loot.txt"), (adapter, "t1/dir/deep/loot.txt"),
                     (tenant, "dir/deep/t/new.txt"), (tenant, "sibling/new.txt")):
        with pytest.raises(StoragePermissionError, match="outside"):
            who.upload_file(b"planted", key)
        with pytest.raises(StoragePermissionError, match="outside"):
            who.download_file(key)
    assert sorted(p.name for p in evil.rglob("*")) == ["loot.txt", "t"]
    assert list((store / "t10").iterdir()) == []
    assert (evil / "loot.txt").read_bytes() == b"evil"


def test_create_dirs_false_needs_an_existing_base_path(tmp_path: Path) -> None:
    adapter = get_storage_adapter("local", {"base_path": str(tmp_path / "absent"),
                                            "create_dirs": False})
    with pytest.raises(StorageNotFoundError, match="absent"):
        adapter.test_connection()
    assert not (tmp_path / "absent").exists()
    created = get_storage_adapter("local", {"base_path": str(tmp_path / "made"),
                                            "prefix": "t/1"})
    assert created.test_connection() is True
    assert (tmp_path / "made" / "t" / "1").is_dir()


def test_a_name_cannot_be_file_and_folder(local: LocalStorageAdapter) -> None:
    local.upload_file(b"x", "a/b")
    with pytest.raises(StorageOperationError, match="directory"):
        local.upload_file(b"y", "a")
    local.upload_file(b"z", "file")
    with pytest.raises(StorageOperationError, match="parent of this key is a file"):
        local.upload_file(b"w", "file/child")
    assert local.download_file("file") == b"z"


def test_listing_never_opens_files(local: LocalStorageAdapter,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(20):
        local.upload_file(b"x" * n, f"many/{n:02d}.bin")

    def no_open(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"listing opened {args[0]!r}")

    monkeypatch.setattr(builtins, "open", no_open)
    monkeypatch.setattr(os, "getxattr", no_open)
    assert len(local.list_files("many/")) == 20


def test_urls_are_honest_file_uris(local: LocalStorageAdapter, base: Path) -> None:
    local.upload_file(b"page", "site/index 1.html")
    public = local.get_public_url("site/index 1.html")
    assert public == (base / "site" / "index 1.html").as_uri()
    signed = local.generate_presigned_url("site/index 1.html")
    assert (signed.scoped, signed.expiry_enforced) == (False, False)
    with urllib.request.urlopen(signed.url) as response:
        assert response.read() == b"page"
    for method in ("PUT", "DELETE", "HEAD"):
        with pytest.raises(StorageOperationError, match="file:// URL"):
            local.generate_presigned_url("site/index 1.html", method=method)


def test_failed_write_leaves_no_temporary_file(local: LocalStorageAdapter, base: Path) -> None:
    local.upload_file(b"v1", "w.bin")
    with pytest.raises(RuntimeError), local.open("w.bin", "wb") as f:
        f.write(b"partial")
        raise RuntimeError
    assert os.listdir(base) == ["w.bin"]
    assert (base / "w.bin").read_bytes() == b"v1"
