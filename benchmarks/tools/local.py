"""The local backend (on tmpfs and on disk) against plain ``open`` and ``shutil``.

``store.data`` holds the small files and the big one, ``store.listing`` the listing set,
and ``store.scratch`` receives each measurement's writes under its own tag.  Sources and
destinations sit in ``store.workdir`` on the same device, so both sides copy within it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from benchmarks.spec import Spec
from benchmarks.tools import Registry, Run
from benchmarks.tools.common import check, expect_listed, read, write

REGISTRY = Registry()


def make_adapter(root: str, portable: bool = False, fsync: bool = True) -> Any:
    """The adapter over ``root``; ``portable``: on the path macOS and Windows take
    (properties in bookkeeping files, copies by ``shutil.copyfile``, no ``sendfile``);
    ``fsync``: the config field (default True: each write flushed before its rename)."""
    from perceptra_storage import get_storage_adapter
    from perceptra_storage.backends import local

    if portable:
        local._KERNEL_COPY = False  # this measurement's own process: as where it is absent
    config = {"base_path": root, "metadata_store": "portable" if portable else "auto",
              "fsync": fsync}
    adapter = get_storage_adapter("local", config)
    adapter.file_exists("warm-up")
    return adapter


# -- 500 x 16 KiB -----------------------------------------------------------------------

# Uploads with both settings of ``fsync`` (``_nofsync``: fsync=False); downloads write
# only the caller's file, which no setting flushes, so they have one row each.

def _upload_pairs(spec: Spec) -> list[tuple[Path, str]]:
    return list(zip(map(Path, spec.small_sources()),
                    spec.scratch_keys(spec.sizes.small_count), strict=True))


def _upload_batch(spec: Spec, fsync: bool) -> Run:
    adapter, pairs = make_adapter(spec.store.scratch, fsync=fsync), _upload_pairs(spec)
    return lambda: check(adapter.upload_files(pairs))


def _upload_loop(spec: Spec, fsync: bool) -> Run:
    adapter, pairs = make_adapter(spec.store.scratch, fsync=fsync), _upload_pairs(spec)

    def run() -> None:
        for source, key in pairs:
            adapter.upload_file(source, key)
    return run


for _fsync, _suffix in ((True, ""), (False, "_nofsync")):
    REGISTRY.tool("small_upload", f"perceptra_batch{_suffix}")(
        lambda spec, fsync=_fsync: _upload_batch(spec, fsync))
    REGISTRY.tool("small_upload", f"perceptra_loop{_suffix}")(
        lambda spec, fsync=_fsync: _upload_loop(spec, fsync))


@REGISTRY.tool("small_upload", "plain_open")
def _upload_plain(spec: Spec) -> Run:
    targets = [os.path.join(spec.store.scratch, key)
               for key in spec.scratch_keys(spec.sizes.small_count)]
    pairs = list(zip(spec.small_sources(), targets, strict=True))

    def run() -> None:
        os.makedirs(os.path.dirname(targets[0]), exist_ok=True)
        for source, target in pairs:
            write(target, read(source))
    return run


def _download_pairs(spec: Spec) -> list[tuple[str, str]]:
    out = spec.out_dir()
    return [(key, os.path.join(out, key.rpartition("/")[2])) for key in spec.small_keys()]


@REGISTRY.tool("small_download", "perceptra_batch")
def _download_batch(spec: Spec) -> Run:
    adapter = make_adapter(spec.store.data)
    keys, out = spec.small_keys(), spec.out_dir()
    return lambda: check(adapter.download_files(keys, out))


@REGISTRY.tool("small_download", "perceptra_loop")
def _download_loop(spec: Spec) -> Run:
    adapter = make_adapter(spec.store.data)
    pairs = _download_pairs(spec)

    def run() -> None:
        for key, target in pairs:
            adapter.download_file(key, target)
    return run


@REGISTRY.tool("small_download", "plain_open")
def _download_plain(spec: Spec) -> Run:
    pairs = [(os.path.join(spec.store.data, key), target)
             for key, target in _download_pairs(spec)]

    def run() -> None:
        for source, target in pairs:
            write(target, read(source))
    return run


def _fsspec() -> Any:
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem(auto_mkdir=True, skip_instance_cache=True)


@REGISTRY.tool("small_upload", "fsspec")
def _upload_fsspec(spec: Spec) -> Run:
    fs = _fsspec()
    targets = [os.path.join(spec.store.scratch, key)
               for key in spec.scratch_keys(spec.sizes.small_count)]
    return lambda: fs.put(spec.small_sources(), targets)


@REGISTRY.tool("small_download", "fsspec")
def _download_fsspec(spec: Spec) -> Run:
    fs, pairs = _fsspec(), _download_pairs(spec)
    sources = [os.path.join(spec.store.data, key) for key, _ in pairs]
    return lambda: fs.get(sources, [target for _, target in pairs])


# -- one big file ------------------------------------------------------------------------

@REGISTRY.tool("big_upload", "perceptra")
def _big_upload(spec: Spec) -> Run:
    adapter = make_adapter(spec.store.scratch)
    key = spec.scratch_keys(1)[0]
    return lambda: adapter.upload_file(Path(spec.big_source()), key)


@REGISTRY.tool("big_upload", "perceptra_portable")
def _big_upload_portable(spec: Spec) -> Run:
    adapter = make_adapter(spec.store.scratch, portable=True)
    key = spec.scratch_keys(1)[0]
    return lambda: adapter.upload_file(Path(spec.big_source()), key)


@REGISTRY.tool("big_upload", "shutil_copyfile")
def _big_upload_shutil(spec: Spec) -> Run:
    target = os.path.join(spec.store.scratch, spec.scratch_keys(1)[0])

    def run() -> None:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(spec.big_source(), target)
    return run


@REGISTRY.tool("big_upload", "fsspec")
def _big_upload_fsspec(spec: Spec) -> Run:
    fs, target = _fsspec(), os.path.join(spec.store.scratch, spec.scratch_keys(1)[0])
    return lambda: fs.put_file(spec.big_source(), target)


@REGISTRY.tool("big_download", "perceptra")
def _big_download(spec: Spec) -> Run:
    adapter = make_adapter(spec.store.data)
    target = os.path.join(spec.out_dir(), "big")
    return lambda: adapter.download_file("big", target)


@REGISTRY.tool("big_download", "perceptra_portable")
def _big_download_portable(spec: Spec) -> Run:
    adapter = make_adapter(spec.store.data, portable=True)
    target = os.path.join(spec.out_dir(), "big")
    return lambda: adapter.download_file("big", target)


@REGISTRY.tool("big_download", "shutil_copyfile")
def _big_download_shutil(spec: Spec) -> Run:
    source = os.path.join(spec.store.data, "big")
    target = os.path.join(spec.out_dir(), "big")
    return lambda: shutil.copyfile(source, target)


@REGISTRY.tool("big_download", "fsspec")
def _big_download_fsspec(spec: Spec) -> Run:
    fs, source = _fsspec(), os.path.join(spec.store.data, "big")
    target = os.path.join(spec.out_dir(), "big")
    return lambda: fs.get_file(source, target)


# -- listing, deleting -------------------------------------------------------------------

@REGISTRY.tool("list", "perceptra")
def _list(spec: Spec) -> Run:
    adapter = make_adapter(spec.store.listing)
    count = spec.sizes.list_count
    return lambda: expect_listed(count, len(adapter.list_files(max_results=count)))


@REGISTRY.tool("list", "fsspec_find")
def _list_find(spec: Spec) -> Run:
    fs, count = _fsspec(), spec.sizes.list_count
    return lambda: expect_listed(count, len(fs.find(spec.store.listing, detail=True)))


def _delete_set(spec: Spec) -> list[str]:
    """Create the files this measurement deletes (untimed)."""
    keys = spec.scratch_keys(spec.sizes.delete_count)
    os.makedirs(os.path.join(spec.store.scratch, spec.tag), exist_ok=True)
    for key in keys:
        write(os.path.join(spec.store.scratch, key), b"x" * 64)
    return keys


@REGISTRY.tool("delete", "perceptra")
def _delete(spec: Spec) -> Run:
    adapter = make_adapter(spec.store.scratch)
    keys = _delete_set(spec)
    return lambda: check(adapter.delete_files(keys))


@REGISTRY.tool("delete", "os_remove")
def _delete_plain(spec: Spec) -> Run:
    paths = [os.path.join(spec.store.scratch, key) for key in _delete_set(spec)]

    def run() -> None:
        for path in paths:
            os.remove(path)
    return run


@REGISTRY.tool("delete", "fsspec")
def _delete_fsspec(spec: Spec) -> Run:
    fs = _fsspec()
    paths = [os.path.join(spec.store.scratch, key) for key in _delete_set(spec)]
    return lambda: fs.rm(paths)
