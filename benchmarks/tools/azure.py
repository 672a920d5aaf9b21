"""The ``azure`` backend on Azurite against azure-storage-blob, raw adlfs, obstore and urllib.

Every tool gets the same container names, blob names and local files from the spec.  Peers
run with their own defaults; the SDK's big transfers use ``max_concurrency=8``, as a user
moving a large file would set.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.spec import Spec
from benchmarks.tools import Registry, Run
from benchmarks.tools.common import (
    expect_listed,
    gather_bounded,
    http_get_to,
    pooled,
    read,
    write,
)
from benchmarks.tools.stores import (
    EXPIRY,
    OBSTORE,
    delete_set,
    download_pairs,
    register_shared,
    sign_keys,
    upload_pairs,
)

REGISTRY = Registry()
BATCH_LIMIT = 256
"""Blobs per Blob Batch request (the service's limit)."""
BIG_CONCURRENCY = 8


# -- clients, each warmed with one request -------------------------------------------

def container_client(spec: Spec, container: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(spec.store.server["connection_string"])
    return service.get_container_client(container)


def _container(spec: Spec, container: str) -> Any:
    client = container_client(spec, container)
    client.get_container_properties()
    return client


def make_adapter(spec: Spec, container: str, engine: str = "fsspec") -> Any:
    from perceptra_storage import get_storage_adapter

    server = spec.store.server
    adapter = get_storage_adapter(
        "azure", {"container_name": container, "account_url": server["account_url"],
                  "engine": engine},
        {"account_key": server["account_key"]})
    adapter.file_exists("warm-up")
    return adapter


def _adlfs(spec: Spec, container: str) -> Any:
    from adlfs import AzureBlobFileSystem

    fs = AzureBlobFileSystem(connection_string=spec.store.server["connection_string"],
                             skip_instance_cache=True)
    fs.exists(f"{container}/warm-up")
    return fs


def _obstore(spec: Spec, container: str) -> Any:
    import obstore
    from obstore.store import AzureStore

    server = spec.store.server
    store = AzureStore(container, account_name=server["account_name"],
                       account_key=server["account_key"], endpoint=server["account_url"],
                       client_options={"allow_http": True})
    obstore.list(store, "warm-up").collect()
    return store


def _sas_url(spec: Spec, container: str, blob: str) -> str:
    """A read-only SAS URL for ``blob``, signed with the account key."""
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    server = spec.store.server
    token = generate_blob_sas(server["account_name"], container, blob,
                              account_key=server["account_key"],
                              permission=BlobSasPermissions(read=True),
                              expiry=datetime.now(UTC) + timedelta(seconds=EXPIRY))
    return f"{server['account_url']}/{container}/{blob}?{token}"


def bulk_put(spec: Spec, container: str, items: list[tuple[str, bytes]]) -> None:
    """Untimed set-up writes: obstore async when installed (least client CPU), else the
    SDK on 32 threads."""
    if importlib.util.find_spec("obstore") is not None:
        import obstore

        store = _obstore(spec, container)
        gather_bounded(lambda item: obstore.put_async(store, item[0], item[1]), items)
        return
    client = container_client(spec, container)
    pooled(lambda item: client.upload_blob(item[0], item[1], overwrite=True), items)


def _delete_blobs(client: Any, names: list[str]) -> None:
    for start in range(0, len(names), BATCH_LIMIT):
        client.delete_blobs(*names[start:start + BATCH_LIMIT])


# -- 500 x 16 KiB upload -------------------------------------------------------------------


@REGISTRY.tool("small_upload", "azure_blob_loop")
def _upload_sdk(spec: Spec) -> Run:
    client, pairs = _container(spec, spec.store.scratch), upload_pairs(spec)

    def run() -> None:
        for source, key in pairs:
            client.upload_blob(key, read(source), overwrite=True)
    return run


@REGISTRY.tool("small_upload", "adlfs_batch")
def _upload_adlfs(spec: Spec) -> Run:
    container, pairs = spec.store.scratch, upload_pairs(spec)
    fs = _adlfs(spec, container)
    sources = [source for source, _ in pairs]
    targets = [f"{container}/{key}" for _, key in pairs]
    return lambda: fs.put(sources, targets)


# -- 500 x 16 KiB download -----------------------------------------------------------------


@REGISTRY.tool("small_download", "azure_blob_loop")
def _download_sdk(spec: Spec) -> Run:
    client, pairs = _container(spec, spec.store.data), download_pairs(spec)

    def run() -> None:
        for key, target in pairs:
            write(target, client.download_blob(key).readall())
    return run


@REGISTRY.tool("small_download", "adlfs_batch")
def _download_adlfs(spec: Spec) -> Run:
    container, pairs = spec.store.data, download_pairs(spec)
    fs = _adlfs(spec, container)
    sources = [f"{container}/{key}" for key, _ in pairs]
    targets = [target for _, target in pairs]
    return lambda: fs.get(sources, targets)


@REGISTRY.tool("small_download", "urllib")
def _download_http(spec: Spec) -> Run:
    pairs = download_pairs(spec)
    urls = [_sas_url(spec, spec.store.data, key) for key, _ in pairs]

    def run() -> None:
        for (_, target), url in zip(pairs, urls, strict=True):
            http_get_to(url, target)
    return run


# -- one big blob ----------------------------------------------------------------------

@REGISTRY.tool("big_upload", "perceptra")
def _big_upload(spec: Spec) -> Run:
    adapter, key = make_adapter(spec, spec.store.scratch), spec.scratch_keys(1)[0]
    return lambda: adapter.upload_file(Path(spec.big_source()), key)


@REGISTRY.tool("big_upload", "perceptra_obstore", needs=OBSTORE)
def _big_upload_engine(spec: Spec) -> Run:
    """The adapter's upload on engine='obstore'."""
    adapter, key = make_adapter(spec, spec.store.scratch, "obstore"), spec.scratch_keys(1)[0]
    return lambda: adapter.upload_file(Path(spec.big_source()), key)


@REGISTRY.tool("big_upload", "azure_upload_blob")
def _big_upload_sdk(spec: Spec) -> Run:
    client, key = _container(spec, spec.store.scratch), spec.scratch_keys(1)[0]

    def run() -> None:
        with open(spec.big_source(), "rb") as source:
            client.upload_blob(key, source, overwrite=True, max_concurrency=BIG_CONCURRENCY)
    return run


@REGISTRY.tool("big_upload", "adlfs_put_file")
def _big_upload_adlfs(spec: Spec) -> Run:
    container, key = spec.store.scratch, spec.scratch_keys(1)[0]
    fs = _adlfs(spec, container)
    return lambda: fs.put_file(spec.big_source(), f"{container}/{key}")


@REGISTRY.tool("big_upload", "obstore", needs=OBSTORE)
def _big_upload_obstore(spec: Spec) -> Run:
    import obstore

    store, key = _obstore(spec, spec.store.scratch), spec.scratch_keys(1)[0]
    return lambda: obstore.put(store, key, Path(spec.big_source()))


def _big_target(spec: Spec) -> str:
    return os.path.join(spec.out_dir(), "big")


@REGISTRY.tool("big_download", "perceptra")
def _big_download(spec: Spec) -> Run:
    adapter, target = make_adapter(spec, spec.store.data), _big_target(spec)
    return lambda: adapter.download_file("big", target)


@REGISTRY.tool("big_download", "perceptra_obstore", needs=OBSTORE)
def _big_download_engine(spec: Spec) -> Run:
    """The adapter's download on engine='obstore'."""
    adapter, target = make_adapter(spec, spec.store.data, "obstore"), _big_target(spec)
    return lambda: adapter.download_file("big", target)


@REGISTRY.tool("big_download", "azure_download_blob")
def _big_download_sdk(spec: Spec) -> Run:
    client, target = _container(spec, spec.store.data), _big_target(spec)

    def run() -> None:
        with open(target, "wb") as out:
            client.download_blob("big", max_concurrency=BIG_CONCURRENCY).readinto(out)
    return run


@REGISTRY.tool("big_download", "adlfs_get_file")
def _big_download_adlfs(spec: Spec) -> Run:
    container, target = spec.store.data, _big_target(spec)
    fs = _adlfs(spec, container)
    return lambda: fs.get_file(f"{container}/big", target)


@REGISTRY.tool("big_download", "obstore", needs=OBSTORE)
def _big_download_obstore(spec: Spec) -> Run:
    import obstore

    store, target = _obstore(spec, spec.store.data), _big_target(spec)

    def run() -> None:
        with open(target, "wb") as out:
            for chunk in obstore.get(store, "big").stream():
                out.write(chunk)
    return run


@REGISTRY.tool("big_download", "urllib")
def _big_download_http(spec: Spec) -> Run:
    target, url = _big_target(spec), _sas_url(spec, spec.store.data, "big")
    return lambda: http_get_to(url, target)


# -- listing -------------------------------------------------------------------------------

@REGISTRY.tool("list", "azure_list_blobs")
def _list_sdk(spec: Spec) -> Run:
    client, count = _container(spec, spec.store.listing), spec.sizes.list_count
    return lambda: expect_listed(count, sum(1 for _ in client.list_blobs()))


@REGISTRY.tool("list", "adlfs_find")
def _list_adlfs(spec: Spec) -> Run:
    container, count = spec.store.listing, spec.sizes.list_count
    fs = _adlfs(spec, container)
    return lambda: expect_listed(count, len(fs.find(container, detail=True)))


# -- presigned URLs ------------------------------------------------------------------------

@REGISTRY.tool("presign", "azure_generate_blob_sas")
def _presign_sdk(spec: Spec) -> Run:
    container, keys = spec.store.data, sign_keys(spec)
    _sas_url(spec, container, "warm-up")

    def run() -> None:
        for key in keys:
            _sas_url(spec, container, key)
    return run


@REGISTRY.tool("presign", "adlfs_url")
def _presign_adlfs(spec: Spec) -> Run:
    container, keys = spec.store.data, sign_keys(spec)
    fs = _adlfs(spec, container)
    fs.url(f"{container}/warm-up", expires=EXPIRY)

    def run() -> None:
        for key in keys:
            fs.url(f"{container}/{key}", expires=EXPIRY)
    return run


# -- deleting ------------------------------------------------------------------------------

def _delete_set(spec: Spec) -> list[str]:
    return delete_set(spec, bulk_put)


@REGISTRY.tool("delete", "azure_delete_blobs")
def _delete_sdk(spec: Spec) -> Run:
    client, keys = _container(spec, spec.store.scratch), _delete_set(spec)
    return lambda: _delete_blobs(client, keys)


@REGISTRY.tool("delete", "adlfs_rm")
def _delete_adlfs(spec: Spec) -> Run:
    container, keys = spec.store.scratch, _delete_set(spec)
    fs = _adlfs(spec, container)
    return lambda: fs.rm([f"{container}/{key}" for key in keys])


register_shared(REGISTRY, make_adapter, _obstore, bulk_put)
