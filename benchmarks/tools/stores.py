"""The small-object tools that are the same on every object store: our adapter
(batch call and per-call loop) and obstore (sync loop and 32 in flight).

Each backend module calls :func:`register_shared` with its own way of building an
adapter and an obstore store for a bucket or container; everything else is shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from benchmarks.spec import Spec
from benchmarks.tools import Registry, Run
from benchmarks.tools.common import check, gather_bounded, read, write

OBSTORE = ("obstore",)

Builder = Callable[[Spec, str], Any]
"""Builds a client (adapter or obstore store) for a spec and a bucket/container."""


def upload_pairs(spec: Spec) -> list[tuple[str, str]]:
    """(local file, key) for the small upload workload."""
    return list(zip(spec.small_sources(), spec.scratch_keys(spec.sizes.small_count),
                    strict=True))


def download_pairs(spec: Spec) -> list[tuple[str, str]]:
    """(key, local file) for the small download workload."""
    out = spec.out_dir()
    return [(key, os.path.join(out, key.rpartition("/")[2])) for key in spec.small_keys()]


def register_shared(registry: Registry, make_adapter: Builder, make_store: Builder) -> None:
    """Register the adapter and obstore tools of the two small-object workloads."""

    @registry.tool("small_upload", "perceptra_batch")
    def _upload_batch(spec: Spec) -> Run:
        adapter, pairs = make_adapter(spec, spec.store.scratch), upload_pairs(spec)
        return lambda: check(adapter.upload_files(pairs))

    @registry.tool("small_upload", "perceptra_loop")
    def _upload_loop(spec: Spec) -> Run:
        adapter, pairs = make_adapter(spec, spec.store.scratch), upload_pairs(spec)

        def run() -> None:
            for source, key in pairs:
                adapter.upload_file(source, key)
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
