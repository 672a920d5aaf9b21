"""The local backend's entry point: the whole contract, then what only it has (files on
disk, symlinks, extended attributes)."""

from __future__ import annotations

import asyncio
import builtins
import os
import pickle
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from perceptra_storage import (
    LocalStorageAdapter,
    StorageConnectionError,
    StorageOperationError,
    StoragePermissionError,
    StorageValidationError,
    get_adapter_info,
    get_storage_adapter,
)
from perceptra_storage.backends.local import _bookkeeping_path
from tests.contract import Contract


class TestLocalContract(Contract):
    """The whole contract on the local backend."""

    case = "local"


class TestLocalPortableContract(Contract):
    """The whole contract again with ``metadata_store='portable'``: the extended
    attribute path disabled, properties in hidden bookkeeping files."""

    case = "local-portable"


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
        local.upload_file(b"overwrite", "escape/secret.txt")
    assert [o.key for o in local.list_files()] == ["in/alias.txt", "in/real.txt"]
    assert local.download_file("in/alias.txt") == b"inside"
    # A write's last component is renamed over: the link goes, its target stays.
    local.upload_file(b"overwrite", "secret-link")
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert not (base / "secret-link").is_symlink()
    assert local.download_file("secret-link") == b"overwrite"


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
    for who, key in ((adapter, "t1/dir/deep/loot.txt"), (tenant, "dir/deep/t/new.txt"),
                     (tenant, "sibling/new.txt")):
        with pytest.raises(StoragePermissionError, match="outside"):
            who.upload_file(b"planted", key)
        with pytest.raises(StoragePermissionError, match="outside"):
            who.download_file(key)
    with pytest.raises(StoragePermissionError, match="outside"):
        adapter.download_file("loot.txt")
    adapter.upload_file(b"planted", "loot.txt")  # replaces the link, not its target
    assert sorted(p.name for p in evil.rglob("*")) == ["loot.txt", "t"]
    assert list((store / "t10").iterdir()) == []
    assert (evil / "loot.txt").read_bytes() == b"evil"


def test_every_write_replaces_a_symlinked_last_component_never_its_target(
        tmp_path: Path) -> None:
    # Writes do not look where a key's last component leads (one lstat less per
    # write): each route renames its file over the name, which replaces the link.
    # A linked folder above it is still refused before anything is written.
    store, outside = tmp_path / "store", tmp_path / "outside"
    outside.mkdir()
    adapter = get_storage_adapter("local", {"base_path": str(store),
                                            "metadata_store": "portable"})
    source = tmp_path / "source.txt"
    source.write_bytes(b"from a path")
    adapter.upload_file(b"kept", "src.txt", metadata={"owner": "ana"})

    def pipe(key: str) -> None:
        adapter.upload_file(b"bytes", key, metadata={"via": "pipe"})

    def put(key: str) -> None:
        adapter.upload_file(source, key)

    def stream(key: str) -> None:
        with adapter.open(key, "wb") as file:
            file.write(b"streamed")

    def copy(key: str) -> None:
        adapter.copy_file("src.txt", key)

    def move(key: str) -> None:
        adapter.upload_file(b"kept", "moving.txt", metadata={"owner": "ana"})
        adapter.move_file("moving.txt", key)

    def async_stream(key: str) -> None:
        async def run() -> None:
            async with adapter.aio.open(key, "wb") as file:
                await file.write(b"streamed")
        asyncio.run(run())

    for index, write in enumerate((pipe, put, stream, copy, move, async_stream)):
        (outside / f"{index}.txt").write_bytes(b"outside")
        os.symlink(outside / f"{index}.txt", store / f"{index}.txt")
        os.symlink(outside, store / f"dir{index}")
        write(f"{index}.txt")
        assert not (store / f"{index}.txt").is_symlink(), write.__name__
        assert adapter.download_file(f"{index}.txt") != b"outside", write.__name__
        with pytest.raises(StoragePermissionError, match="outside"):
            write(f"dir{index}/{index}.txt")
    assert sorted(os.listdir(outside)) == [f"{index}.txt" for index in range(6)]
    assert {path.read_bytes() for path in outside.iterdir()} == {b"outside"}
    os.symlink(store, store / "top")  # a folder that is a link to the directory itself
    pipe("top/via-link.txt")
    assert (store / "via-link.txt").read_bytes() == b"bytes"
    assert adapter.get_file_metadata("3.txt").metadata == {"owner": "ana"}
    assert adapter.get_file_metadata("0.txt").metadata == {"via": "pipe"}


def test_create_dirs_false_needs_an_existing_base_path(tmp_path: Path) -> None:
    with pytest.raises(StorageConnectionError, match="absent"):
        get_storage_adapter("local", {"base_path": str(tmp_path / "absent"),
                                      "create_dirs": False})
    assert not (tmp_path / "absent").exists()
    created = get_storage_adapter("local", {"base_path": str(tmp_path / "made"),
                                            "prefix": "t/1"})
    assert (tmp_path / "made" / "t" / "1").is_dir()
    assert created.test_connection() is True


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


# --- where content type and metadata live: metadata_store -----------------------------------


def _store(tmp_path: Path, mode: str, **config: Any) -> LocalStorageAdapter:
    adapter = get_storage_adapter("local", {"base_path": str(tmp_path / "store"),
                                            "metadata_store": mode, **config})
    assert isinstance(adapter, LocalStorageAdapter)
    return adapter


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".~ps."))


def test_metadata_store_is_documented_and_checked(tmp_path: Path) -> None:
    field = get_adapter_info("local")["config"]["metadata_store"]
    assert field["required"] is False
    for word in ("'auto'", "'xattr'", "'portable'", "default", ".~ps."):
        assert word in field["doc"] + field["type"]
    with pytest.raises(StorageValidationError, match="metadata_store"):
        get_storage_adapter("local", {"base_path": str(tmp_path), "metadata_store": "sidecar"})


def test_portable_store_keeps_properties_out_of_sight(tmp_path: Path) -> None:
    adapter = _store(tmp_path, "portable")
    base = tmp_path / "store"
    adapter.upload_file(b"<p>", "site/index.html", content_type="text/x-custom",
                        metadata={"owner": "ana"})
    info = adapter.get_file_metadata("site/index.html")
    assert (info.content_type, info.metadata) == ("text/x-custom", {"owner": "ana"})
    assert _visible(base / "site") == ["index.html"]
    assert len(os.listdir(base / "site")) == 2  # the object and its bookkeeping file
    assert [o.key for o in adapter.list_files()] == ["site/index.html"]
    assert adapter.fs.ls("site", detail=False) == ["site/index.html"]  # type: ignore[attr-defined]
    assert adapter.fs.find("") == ["site/index.html"]  # type: ignore[attr-defined]
    if hasattr(os, "listxattr"):
        assert os.listxattr(base / "site" / "index.html") == []


def test_no_key_can_address_the_bookkeeping(tmp_path: Path) -> None:
    adapter = _store(tmp_path, "portable")
    adapter.upload_file(b"x", "k", metadata={"a": "b"})
    (hidden,) = [p.name for p in (tmp_path / "store").iterdir() if p.name != "k"]
    for key in (hidden, f"d/{hidden}", ".~ps.anything", "a/.~ps./b"):
        for call in (adapter.download_file, adapter.get_file_metadata, adapter.delete_file,
                     adapter.file_exists, lambda k: adapter.upload_file(b"y", k)):
            with pytest.raises(StorageValidationError, match="reserved"):
                call(key)
    with pytest.raises(StorageValidationError, match="reserved"):
        _store(tmp_path, "auto", prefix="t/.~ps.x")


@pytest.mark.parametrize("mode", ["auto", "xattr", "portable"])
def test_properties_follow_the_object(tmp_path: Path, mode: str) -> None:
    adapter = _store(tmp_path, mode)
    base = tmp_path / "store"
    adapter.upload_file(b"v1", "a/k.bin", content_type="image/png", metadata={"v": "1"})
    adapter.upload_file(b"v2", "a/k.bin", metadata={"v": "2"})  # overwrite
    info = adapter.get_file_metadata("a/k.bin")
    assert (info.content_type, info.metadata) == ("application/octet-stream", {"v": "2"})
    adapter.upload_file(b"v3", "a/k.bin")
    assert adapter.get_file_metadata("a/k.bin").metadata == {}
    adapter.upload_file(b"v4", "a/k.bin", content_type="image/png", metadata={"v": "4"})
    adapter.copy_file("a/k.bin", "b/copy.bin")
    copied = adapter.get_file_metadata("b/copy.bin")
    assert (copied.content_type, copied.metadata) == ("image/png", {"v": "4"})
    assert adapter.move_files({"b/copy.bin": "c/moved.bin"}).ok
    moved = adapter.get_file_metadata("c/moved.bin")
    assert (moved.content_type, moved.metadata) == ("image/png", {"v": "4"})
    adapter.fs.mv("c/moved.bin", "d/renamed.bin")  # type: ignore[attr-defined]
    assert adapter.get_file_metadata("d/renamed.bin").metadata == {"v": "4"}
    adapter.delete_file("d/renamed.bin")
    adapter.delete_file("a/k.bin")
    assert os.listdir(base) == []  # no bookkeeping left behind, folders pruned
    adapter.upload_file(b"fresh", "a/k.bin")  # a new object under the same name
    assert adapter.get_file_metadata("a/k.bin").metadata == {}


def test_portable_properties_move_with_their_directory(tmp_path: Path) -> None:
    adapter = _store(tmp_path, "portable")
    adapter.upload_file(b"x", "old/sub/k.csv", content_type="text/x-mine", metadata={"a": "b"})
    adapter.fs.mv("old", "new", recursive=True)  # type: ignore[attr-defined]
    info = adapter.get_file_metadata("new/sub/k.csv")
    assert (info.content_type, info.metadata) == ("text/x-mine", {"a": "b"})
    assert [o.key for o in adapter.list_files()] == ["new/sub/k.csv"]


def test_portable_entries_apply_only_to_the_file_they_were_written_for(tmp_path: Path) -> None:
    adapter = _store(tmp_path, "portable")
    target = tmp_path / "store" / "k.txt"
    adapter.upload_file(b"ours", "k.txt", content_type="text/x-ours", metadata={"a": "1"})
    replacement = tmp_path / "store" / "elsewhere.tmp"
    replacement.write_bytes(b"another program's file")
    os.replace(replacement, target)
    info = adapter.get_file_metadata("k.txt")
    assert (info.content_type, info.metadata) == ("text/plain", {})


def test_portable_write_that_fails_at_the_rename_keeps_old_properties(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = _store(tmp_path, "portable")
    adapter.upload_file(b"old", "k.bin", content_type="image/png", metadata={"v": "old"})
    real_replace = os.replace

    def fail_on_the_object(source: Any, target: Any) -> None:
        if os.path.basename(target) == "k.bin":
            raise OSError(5, "injected I/O error")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", fail_on_the_object)
    with pytest.raises(StorageOperationError):
        adapter.upload_file(b"new", "k.bin", content_type="text/x-new", metadata={"v": "new"})
    monkeypatch.undo()
    info = adapter.get_file_metadata("k.bin")
    assert (adapter.download_file("k.bin"), info.content_type, info.metadata) == (
        b"old", "image/png", {"v": "old"})
    assert _visible(tmp_path / "store") == ["k.bin"]
    assert len(os.listdir(tmp_path / "store")) == 2  # no temporary file left either
    adapter.upload_file(b"new", "k.bin", metadata={"v": "new"})
    assert adapter.get_file_metadata("k.bin").metadata == {"v": "new"}


def test_portable_concurrent_writers_each_keep_their_properties(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writer A stores its entry, then B writes and renames before A's rename lands:
    the object is A's, and so must be its properties."""
    adapter = _store(tmp_path, "portable")
    adapter.upload_file(b"old", "k.bin", metadata={"v": "old"})
    fs, path = adapter.filesystem, adapter._path("k.bin")
    first = fs.open(path, "wb", content_type="image/png", metadata={"v": "a"})
    second = fs.open(path, "wb", content_type="text/x-b", metadata={"v": "b"})
    first.write(b"from a")
    second.write(b"from b")
    real_replace = os.replace

    def b_lands_first(source: Any, target: Any) -> None:
        if os.path.basename(target) == "k.bin" and source == first._temp:
            monkeypatch.setattr(os, "replace", real_replace)
            second.close()
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", b_lands_first)
    first.close()
    info = adapter.get_file_metadata("k.bin")
    assert (adapter.download_file("k.bin"), info.content_type, info.metadata) == (
        b"from a", "image/png", {"v": "a"})


def _no_xattrs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem without extended attributes, as tmpfs before Linux 6.6 or FAT."""
    import errno

    def unsupported(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOTSUP, "Operation not supported")

    for name in ("setxattr", "getxattr"):
        monkeypatch.setattr(os, name, unsupported, raising=False)


def test_auto_falls_back_to_portable_without_extended_attributes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_xattrs(monkeypatch)
    adapter = _store(tmp_path, "auto")
    adapter.upload_file(b"x", "k.bin", content_type="image/png", metadata={"a": "b"})
    info = adapter.get_file_metadata("k.bin")
    assert (info.content_type, info.metadata) == ("image/png", {"a": "b"})
    assert [o.key for o in adapter.list_files()] == ["k.bin"]


def test_forced_xattr_without_extended_attributes_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_xattrs(monkeypatch)
    adapter = _store(tmp_path, "xattr")
    adapter.upload_file(b"plain", "k.bin")  # default properties need no storage
    assert adapter.get_file_metadata("k.bin").content_type == "application/octet-stream"
    with pytest.raises(StorageOperationError, match="no extended attributes") as info:
        adapter.upload_file(b"typed", "k.bin", metadata={"a": "b"})
    assert "metadata_store" in str(info.value)
    assert adapter.download_file("k.bin") == b"plain"
    assert os.listdir(tmp_path / "store") == ["k.bin"]


def test_copies_without_sendfile_use_shutil(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from perceptra_storage.backends import local as module

    # As on macOS and Windows (the child-process contract run deletes os.sendfile too).
    monkeypatch.setattr(module, "_KERNEL_COPY", False)
    adapter = _store(tmp_path, "portable")
    data = os.urandom(3 * 1024 * 1024 + 7)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    seen: list[int] = []
    adapter.upload_file(source, "big.bin", progress=lambda done, total: seen.append(done))
    adapter.copy_file("big.bin", "copy.bin")
    out = tmp_path / "out.bin"
    adapter.download_file("copy.bin", out)
    assert out.read_bytes() == data and seen[-1] == len(data)


_MISSING_ELSEWHERE = ("setxattr", "getxattr", "listxattr", "removexattr", "sendfile")


def test_local_contract_passes_without_xattr_and_sendfile(tmp_path: Path) -> None:
    """The whole local contract in a child process whose ``os`` lacks the calls that
    macOS's or Windows' Python lacks, deleted before anything imports ``shutil`` or
    this package, so both take their portable paths there.  The Dask test is left out:
    its worker processes start a fresh interpreter whose ``os`` has those calls again,
    so it would only start a cluster (28.7 s of child time with coverage became 16.7)."""
    repo = Path(__file__).resolve().parent.parent
    selection = [f"{repo / 'tests' / 'test_local.py'}::TestLocalContract"]
    code = (
        "import os, sys\n"
        f"for name in {_MISSING_ELSEWHERE!r}:\n"
        "    if hasattr(os, name):\n"
        "        delattr(os, name)\n"
        "import pytest\n"
        "sys.exit(pytest.main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *selection, "-k", "not dask", "-q", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'child'}"],
        cwd=repo, capture_output=True, text=True, timeout=900)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 100 and "failed" not in summary and "error" not in summary, summary


# --- durability: fsync ----------------------------------------------------------------------


def test_fsync_is_documented_typed_and_checked(tmp_path: Path) -> None:
    field = get_adapter_info("local")["config"]["fsync"]
    assert field["required"] is False and "bool" in field["type"]
    for word in ("default True", "atomic", "power loss"):
        assert word in field["doc"]
    with pytest.raises(StorageValidationError, match="'fsync' must be bool"):
        get_storage_adapter("local", {"base_path": str(tmp_path), "fsync": "no"})
    with pytest.raises(StorageValidationError, match="'fsynk'"):
        get_storage_adapter("local", {"base_path": str(tmp_path), "fsynk": False})


def _count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


@pytest.mark.parametrize("mode", ["auto", "portable"])
def test_fsync_true_by_default_flushes_every_write_before_its_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    adapter = _store(tmp_path, mode)
    calls = _count_fsyncs(monkeypatch)
    adapter.upload_file(b"plain", "a/plain.bin")
    assert len(calls) == 1
    adapter.upload_file(b"typed", "a/typed.bin", metadata={"v": "1"})
    # the object, and in portable mode its bookkeeping file too
    assert len(calls) == (2 if mode == "auto" else 3)


@pytest.mark.parametrize("mode", ["auto", "portable"])
def test_fsync_false_keeps_writes_atomic_and_properties_but_never_flushes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    adapter = _store(tmp_path, mode, fsync=False)
    calls = _count_fsyncs(monkeypatch)
    source = tmp_path / "source.csv"
    source.write_bytes(b"a,b\n")
    adapter.upload_file(b"v1", "d/k.bin", content_type="image/png", metadata={"v": "1"})
    adapter.upload_file(source, "d/from-path.csv", cache_control="no-cache")
    with adapter.open("d/streamed.txt", "wb") as stream:
        stream.write(b"streamed")
    with pytest.raises(RuntimeError), adapter.open("d/k.bin", "wb") as failed:
        failed.write(b"partial")
        raise RuntimeError
    adapter.copy_file("d/k.bin", "e/copy.bin")
    assert calls == []
    info = adapter.get_file_metadata("e/copy.bin")
    assert (adapter.download_file("e/copy.bin"), info.content_type, info.metadata) == (
        b"v1", "image/png", {"v": "1"})
    assert adapter.get_file_metadata("d/from-path.csv").cache_control == "no-cache"
    assert adapter.download_file("d/streamed.txt") == b"streamed"
    assert _visible(tmp_path / "store" / "d") == ["from-path.csv", "k.bin", "streamed.txt"]
    clone = pickle.loads(pickle.dumps(adapter))
    clone.upload_file(b"again", "d/k.bin")
    assert calls == [] and adapter.download_file("d/k.bin") == b"again"


@pytest.mark.parametrize("mode", ["auto", "portable"])
def test_default_properties_store_nothing_beside_the_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """A write with the key's default content type and no metadata needs no extended
    attribute and no bookkeeping entry (a file without one reads back as the defaults),
    also where it replaces a file that had properties."""
    adapter = _store(tmp_path, mode)
    adapter.upload_file(b"typed", "k.json", content_type="text/x-mine", metadata={"a": "b"})
    attributes: list[str] = []
    real = getattr(os, "setxattr", None)
    if real is not None:
        def recording(path: Any, name: str, *args: Any, **kwargs: Any) -> None:
            attributes.append(name)
            real(path, name, *args, **kwargs)

        monkeypatch.setattr(os, "setxattr", recording)
    adapter.upload_file(b"{}", "k.json")
    adapter.upload_file(b"{}", "same.json", content_type="application/json")
    assert attributes == []
    for key in ("k.json", "same.json"):
        info = adapter.get_file_metadata(key)
        assert (info.content_type, info.metadata) == ("application/json", {})
    assert _visible(tmp_path / "store") == ["k.json", "same.json"]
    assert not os.path.exists(_bookkeeping_path(str(tmp_path / "store" / "same.json")))


def test_a_default_write_replaces_a_portable_entry_its_identity_could_match(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a coarse clock (FAT, HFS+) a reused inode of the same size gets the identity of
    a file gone within the same tick: a write of default properties must then write its
    default entry over the old one, not leave it to apply (every identity made equal)."""
    from perceptra_storage.backends import local as module

    monkeypatch.setattr(module, "_identity", lambda info: "same")
    adapter = _store(tmp_path, "portable")
    adapter.upload_file(b"typed", "k.bin", content_type="image/png", metadata={"v": "1"})
    adapter.upload_file(b"plain", "k.bin")
    info = adapter.get_file_metadata("k.bin")
    assert (info.content_type, info.metadata) == ("application/octet-stream", {})
