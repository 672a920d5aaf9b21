"""The ``s3`` backend on moto against boto3, raw s3fs, obstore and plain urllib.

Every tool gets the same bucket names, keys and local files from the spec.  Peers run
with their own defaults except where the issue names a setting (32 in flight).  boto3's
``download_file`` is not among the big-download peers: it fetches in 8 MiB ranged GETs,
and moto spends time proportional to the whole object on each ranged GET, so on moto it
measures moto (about 10 s for 256 MiB in a trial, against about 1 s for one plain GET).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from benchmarks.spec import Spec
from benchmarks.tools import Registry, Run
from benchmarks.tools.common import (
    IN_FLIGHT,
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


# -- clients, each warmed with one request -------------------------------------------

def boto3_client(spec: Spec) -> Any:
    import boto3
    from botocore.config import Config

    server = spec.store.server
    return boto3.client(
        "s3", endpoint_url=server["endpoint"], region_name=server["region"],
        aws_access_key_id=server["access_key"], aws_secret_access_key=server["secret_key"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      max_pool_connections=IN_FLIGHT))


def _boto3(spec: Spec, bucket: str) -> Any:
    client = boto3_client(spec)
    client.head_bucket(Bucket=bucket)
    return client


def make_adapter(spec: Spec, bucket: str, engine: str = "fsspec") -> Any:
    from perceptra_storage import get_storage_adapter

    server = spec.store.server
    adapter = get_storage_adapter(
        "s3", {"bucket_name": bucket, "endpoint_url": server["endpoint"],
               "region": server["region"], "engine": engine},
        {"access_key_id": server["access_key"], "secret_access_key": server["secret_key"]})
    adapter.file_exists("warm-up")
    return adapter


def _s3fs(spec: Spec, bucket: str) -> Any:
    import s3fs

    server = spec.store.server
    fs = s3fs.S3FileSystem(key=server["access_key"], secret=server["secret_key"],
                           endpoint_url=server["endpoint"],
                           client_kwargs={"region_name": server["region"]},
                           skip_instance_cache=True, use_listings_cache=False)
    fs.exists(f"{bucket}/warm-up")
    return fs


def _obstore(spec: Spec, bucket: str) -> Any:
    import obstore
    from obstore.store import S3Store

    server = spec.store.server
    store = S3Store(bucket, endpoint=server["endpoint"], region=server["region"],
                    access_key_id=server["access_key"],
                    secret_access_key=server["secret_key"],
                    virtual_hosted_style_request=False,
                    client_options={"allow_http": True})
    obstore.list(store, "warm-up").collect()
    return store


def _presign(spec: Spec, bucket: str, keys: list[str]) -> list[str]:
    """GET URLs for the raw-HTTP floor, signed by boto3 before the timed call."""
    client = boto3_client(spec)
    return [client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                          ExpiresIn=EXPIRY) for key in keys]


def bulk_put(spec: Spec, bucket: str, items: list[tuple[str, bytes]]) -> None:
    """Untimed set-up writes: obstore async when installed (least client CPU), else boto3
    on 32 threads."""
    if importlib.util.find_spec("obstore") is not None:
        import obstore

        store = _obstore(spec, bucket)
        gather_bounded(lambda item: obstore.put_async(store, item[0], item[1]), items)
        return
    client = boto3_client(spec)
    pooled(lambda item: client.put_object(Bucket=bucket, Key=item[0], Body=item[1]), items)


# -- 500 x 16 KiB upload -------------------------------------------------------------------


@REGISTRY.tool("small_upload", "boto3_loop")
def _upload_boto3(spec: Spec) -> Run:
    bucket, pairs = spec.store.scratch, upload_pairs(spec)
    client = _boto3(spec, bucket)

    def run() -> None:
        for source, key in pairs:
            client.put_object(Bucket=bucket, Key=key, Body=read(source))
    return run


@REGISTRY.tool("small_upload", "boto3_pool32")
def _upload_boto3_pool(spec: Spec) -> Run:
    bucket, pairs = spec.store.scratch, upload_pairs(spec)
    client = _boto3(spec, bucket)

    def one(pair: tuple[str, str]) -> None:
        client.put_object(Bucket=bucket, Key=pair[1], Body=read(pair[0]))
    return lambda: pooled(one, pairs)


@REGISTRY.tool("small_upload", "s3fs_batch")
def _upload_s3fs(spec: Spec) -> Run:
    bucket, pairs = spec.store.scratch, upload_pairs(spec)
    fs = _s3fs(spec, bucket)
    sources = [source for source, _ in pairs]
    targets = [f"{bucket}/{key}" for _, key in pairs]
    return lambda: fs.put(sources, targets)


# -- 500 x 16 KiB download -----------------------------------------------------------------


@REGISTRY.tool("small_download", "boto3_loop")
def _download_boto3(spec: Spec) -> Run:
    bucket, pairs = spec.store.data, download_pairs(spec)
    client = _boto3(spec, bucket)

    def run() -> None:
        for key, target in pairs:
            write(target, client.get_object(Bucket=bucket, Key=key)["Body"].read())
    return run


@REGISTRY.tool("small_download", "boto3_pool32")
def _download_boto3_pool(spec: Spec) -> Run:
    bucket, pairs = spec.store.data, download_pairs(spec)
    client = _boto3(spec, bucket)

    def one(pair: tuple[str, str]) -> None:
        write(pair[1], client.get_object(Bucket=bucket, Key=pair[0])["Body"].read())
    return lambda: pooled(one, pairs)


@REGISTRY.tool("small_download", "s3fs_batch")
def _download_s3fs(spec: Spec) -> Run:
    bucket, pairs = spec.store.data, download_pairs(spec)
    fs = _s3fs(spec, bucket)
    sources = [f"{bucket}/{key}" for key, _ in pairs]
    targets = [target for _, target in pairs]
    return lambda: fs.get(sources, targets)


@REGISTRY.tool("small_download", "urllib")
def _download_http(spec: Spec) -> Run:
    pairs = download_pairs(spec)
    urls = _presign(spec, spec.store.data, [key for key, _ in pairs])

    def run() -> None:
        for (_, target), url in zip(pairs, urls, strict=True):
            http_get_to(url, target)
    return run


# -- one big object --------------------------------------------------------------------

@REGISTRY.tool("big_upload", "perceptra")
def _big_upload(spec: Spec) -> Run:
    adapter, key = make_adapter(spec, spec.store.scratch), spec.scratch_keys(1)[0]
    return lambda: adapter.upload_file(Path(spec.big_source()), key)


@REGISTRY.tool("big_upload", "perceptra_obstore", needs=OBSTORE)
def _big_upload_engine(spec: Spec) -> Run:
    """The adapter's upload on engine='obstore'."""
    adapter, key = make_adapter(spec, spec.store.scratch, "obstore"), spec.scratch_keys(1)[0]
    return lambda: adapter.upload_file(Path(spec.big_source()), key)


@REGISTRY.tool("big_upload", "boto3_upload_file")
def _big_upload_boto3(spec: Spec) -> Run:
    bucket, key = spec.store.scratch, spec.scratch_keys(1)[0]
    client = _boto3(spec, bucket)
    return lambda: client.upload_file(spec.big_source(), bucket, key)


@REGISTRY.tool("big_upload", "s3fs_put_file")
def _big_upload_s3fs(spec: Spec) -> Run:
    bucket, key = spec.store.scratch, spec.scratch_keys(1)[0]
    fs = _s3fs(spec, bucket)
    return lambda: fs.put_file(spec.big_source(), f"{bucket}/{key}")


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


@REGISTRY.tool("big_download", "s3fs_get_file")
def _big_download_s3fs(spec: Spec) -> Run:
    bucket, target = spec.store.data, _big_target(spec)
    fs = _s3fs(spec, bucket)
    return lambda: fs.get_file(f"{bucket}/big", target)


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
    target = _big_target(spec)
    url = _presign(spec, spec.store.data, ["big"])[0]
    return lambda: http_get_to(url, target)


# -- listing -------------------------------------------------------------------------------

@REGISTRY.tool("list", "boto3_paginator")
def _list_boto3(spec: Spec) -> Run:
    bucket, count = spec.store.listing, spec.sizes.list_count
    client = _boto3(spec, bucket)

    def run() -> None:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        expect_listed(count, sum(len(page.get("Contents", [])) for page in pages))
    return run


@REGISTRY.tool("list", "s3fs_find")
def _list_s3fs(spec: Spec) -> Run:
    bucket, count = spec.store.listing, spec.sizes.list_count
    fs = _s3fs(spec, bucket)
    return lambda: expect_listed(count, len(fs.find(bucket, detail=True)))


# -- presigned URLs ------------------------------------------------------------------------

@REGISTRY.tool("presign", "boto3_generate_presigned_url")
def _presign_boto3(spec: Spec) -> Run:
    bucket, keys = spec.store.data, sign_keys(spec)
    client = _boto3(spec, bucket)
    client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "warm-up"})

    def run() -> None:
        for key in keys:
            client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                          ExpiresIn=EXPIRY)
    return run


@REGISTRY.tool("presign", "s3fs_url")
def _presign_s3fs(spec: Spec) -> Run:
    bucket, keys = spec.store.data, sign_keys(spec)
    fs = _s3fs(spec, bucket)
    fs.url(f"{bucket}/warm-up", expires=EXPIRY)

    def run() -> None:
        for key in keys:
            fs.url(f"{bucket}/{key}", expires=EXPIRY)
    return run


# -- deleting ------------------------------------------------------------------------------

def _delete_set(spec: Spec) -> list[str]:
    return delete_set(spec, bulk_put)


@REGISTRY.tool("delete", "boto3_delete_objects")
def _delete_boto3(spec: Spec) -> Run:
    bucket, keys = spec.store.scratch, _delete_set(spec)
    client = _boto3(spec, bucket)

    def run() -> None:
        for start in range(0, len(keys), 1000):
            result = client.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": key} for key in keys[start:start + 1000]], "Quiet": True})
            if result.get("Errors"):
                raise RuntimeError(f"delete_objects failed: {result['Errors'][:2]}")
    return run


@REGISTRY.tool("delete", "s3fs_rm")
def _delete_s3fs(spec: Spec) -> Run:
    bucket, keys = spec.store.scratch, _delete_set(spec)
    fs = _s3fs(spec, bucket)
    return lambda: fs.rm([f"{bucket}/{key}" for key in keys])


register_shared(REGISTRY, make_adapter, _obstore, bulk_put)
