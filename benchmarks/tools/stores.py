"""The tools that are the same on every object store: our adapter and obstore on the
small-object workloads (batch call and per-call loop; sync loop and 32 in flight), on
listing, presigning and deleting.

Each backend module calls :func:`register_shared` with its own way of building an
adapter and an obstore store for a bucket or container; everything else is shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.spec import Spec
from benchmarks.tools import Registry, Run
from benchmarks.tools.common import check, expect_listed, gather_bounded, read, write

OBSTORE = ("obstore",)
EXPIRY = 3600
"""Lifetime of the presigned URLs, in seconds."""

Builder = Callable[..., Any]
"""Builds a client (adapter or obstore store) for a spec and a bucket/container; the
adapter builder also takes the ``engine`` config field."""
Seeder = Callable[[Spec, str, list[tuple[str, bytes]]], None]
"""Stores (key, bytes) pairs in a bucket/container without timing it."""


def upload_pairs(spec: Spec) -> list[tuple[str, str]]:
    """(local file, key) for the small upload workload."""
    return list(zip(spec.small_sources(), spec.scratch_keys(spec.sizes.small_count),
                    strict=True))


def download_pairs(spec: Spec) -> list[tuple[str, str]]:
    """(key, local file) for the small download workload."""
    out = spec.out_dir()
    return [(key, os.path.join(out, key.rpartition("/")[2])) for key in spec.small_keys()]


def sign_keys(spec: Spec) -> list[str]:
    """The keys of the presign workload (existing small objects, cycled)."""
    return [f"small/k{i % spec.sizes.small_count:04d}" for i in range(spec.sizes.presign_count)]


def delete_set(spec: Spec, seed: Seeder) -> list[str]:
    """Create the objects a delete measurement removes (untimed) and return their keys."""
    keys = spec.scratch_keys(spec.sizes.delete_count)
    seed(spec, spec.store.scratch, [(key, b"x" * 64) for key in keys])
    return keys


def register_shared(registry: Registry, make_adapter: Builder, make_store: Builder,
                    seed: Seeder) -> None:
    """Register the adapter and obstore tools of every object-store workload but the
    big-object ones."""

    @registry.tool("small_upload", "perceptra_batch")
    def _upload_batch(spec: Spec) -> Run:
        adapter, pairs = make_adapter(spec, spec.store.scratch), upload_pairs(spec)
        as_paths = [(Path(source), key) for source, key in pairs]
        return lambda: check(adapter.upload_files(as_paths))

    @registry.tool("small_upload", "perceptra_obstore_batch", needs=OBSTORE)
    def _upload_batch_engine(spec: Spec) -> Run:
        """The batch upload on engine='obstore'."""
        adapter = make_adapter(spec, spec.store.scratch, "obstore")
        as_paths = [(Path(source), key) for source, key in upload_pairs(spec)]
        return lambda: check(adapter.upload_files(as_paths))

    @registry.tool("small_upload", "perceptra_loop")
    def _upload_loop(spec: Spec) -> Run:
        adapter, pairs = make_adapter(spec, spec.store.scratch), upload_pairs(spec)

        def run() -> None:
            for source, key in pairs:
                adapter.upload_file(Path(source), key)
        return run

    @registry.tool("small_upload", "obstore_loop", needs=OBSTORE)
    def _upload_obstore(spec: Spec) -> Run:
        import obstore

        store, pairs = make_store(spec, spec.store.scratch), upload_pairs(spec)

        def run() -> None:
            for source, key in pairs:
                obstore.put(store, key, read(source))
        return run

    @registry.tool("small_upload", "obstore_async32", needs=OBSTORE)
    def _upload_obstore_async(spec: Spec) -> Run:
        import obstore

        store, pairs = make_store(spec, spec.store.scratch), upload_pairs(spec)

        async def one(pair: tuple[str, str]) -> None:
            await obstore.put_async(store, pair[1], read(pair[0]))
        return lambda: gather_bounded(one, pairs)

    @registry.tool("small_download", "perceptra_batch")
    def _download_batch(spec: Spec) -> Run:
        adapter = make_adapter(spec, spec.store.data)
        keys, out = spec.small_keys(), spec.out_dir()
        return lambda: check(adapter.download_files(keys, out))

    @registry.tool("small_download", "perceptra_obstore_batch", needs=OBSTORE)
    def _download_batch_engine(spec: Spec) -> Run:
        """The batch download on engine='obstore'."""
        adapter = make_adapter(spec, spec.store.data, "obstore")
        keys, out = spec.small_keys(), spec.out_dir()
        return lambda: check(adapter.download_files(keys, out))

    @registry.tool("small_download", "perceptra_loop")
    def _download_loop(spec: Spec) -> Run:
        adapter, pairs = make_adapter(spec, spec.store.data), download_pairs(spec)

        def run() -> None:
            for key, target in pairs:
                adapter.download_file(key, target)
        return run

    @registry.tool("small_download", "obstore_loop", needs=OBSTORE)
    def _download_obstore(spec: Spec) -> Run:
        import obstore

        store, pairs = make_store(spec, spec.store.data), download_pairs(spec)

        def run() -> None:
            for key, target in pairs:
                write(target, obstore.get(store, key).bytes().to_bytes())
        return run

    @registry.tool("small_download", "obstore_async32", needs=OBSTORE)
    def _download_obstore_async(spec: Spec) -> Run:
        import obstore

        store, pairs = make_store(spec, spec.store.data), download_pairs(spec)

        async def one(pair: tuple[str, str]) -> None:
            result = await obstore.get_async(store, pair[0])
            write(pair[1], (await result.bytes_async()).to_bytes())
        return lambda: gather_bounded(one, pairs)

    @registry.tool("list", "perceptra")
    def _list(spec: Spec) -> Run:
        adapter, count = make_adapter(spec, spec.store.listing), spec.sizes.list_count
        return lambda: expect_listed(count, len(adapter.list_files(max_results=count)))

    @registry.tool("list", "perceptra_obstore", needs=OBSTORE)
    def _list_engine(spec: Spec) -> Run:
        """The listing on engine='obstore'."""
        adapter = make_adapter(spec, spec.store.listing, "obstore")
        count = spec.sizes.list_count
        return lambda: expect_listed(count, len(adapter.list_files(max_results=count)))

    @registry.tool("list", "obstore", needs=OBSTORE)
    def _list_obstore(spec: Spec) -> Run:
        import obstore

        store, count = make_store(spec, spec.store.listing), spec.sizes.list_count
        return lambda: expect_listed(count, len(obstore.list(store).collect()))

    @registry.tool("presign", "perceptra")
    def _presign(spec: Spec) -> Run:
        adapter, keys = make_adapter(spec, spec.store.data), sign_keys(spec)
        adapter.generate_presigned_url("warm-up", EXPIRY)

        def run() -> None:
            for key in keys:
                adapter.generate_presigned_url(key, EXPIRY)
        return run

    @registry.tool("presign", "perceptra_obstore", needs=OBSTORE)
    def _presign_engine(spec: Spec) -> Run:
        """Presigning on engine='obstore' (the same signers as engine='fsspec')."""
        adapter, keys = make_adapter(spec, spec.store.data, "obstore"), sign_keys(spec)
        adapter.generate_presigned_url("warm-up", EXPIRY)

        def run() -> None:
            for key in keys:
                adapter.generate_presigned_url(key, EXPIRY)
        return run

    @registry.tool("presign", "obstore_sign", needs=OBSTORE)
    def _presign_obstore(spec: Spec) -> Run:
        import obstore

        store, keys = make_store(spec, spec.store.data), sign_keys(spec)
        obstore.sign(store, "GET", "warm-up", timedelta(seconds=EXPIRY))
        return lambda: obstore.sign(store, "GET", keys, timedelta(seconds=EXPIRY))

    @registry.tool("delete", "perceptra")
    def _delete(spec: Spec) -> Run:
        adapter, keys = make_adapter(spec, spec.store.scratch), delete_set(spec, seed)
        # missing_ok: the peers' bulk calls do not report a key that is already gone
        # either; without it each key is first proven to exist (one HEAD per key).
        return lambda: check(adapter.delete_files(keys, missing_ok=True))

    @registry.tool("delete", "obstore", needs=OBSTORE)
    def _delete_obstore(spec: Spec) -> Run:
        import obstore

        store, keys = make_store(spec, spec.store.scratch), delete_set(spec, seed)
        return lambda: obstore.delete(store, keys)
