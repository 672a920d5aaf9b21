"""``adapter.aio`` against the async clients underneath it: 500 x 16 KiB uploads, then
downloads, all at once with ``asyncio.gather``, on moto (s3) and Azurite (azure).

Tools, each on its own fresh client in a fresh event loop (one untimed request first):

- ``perceptra_aio``: ``adapter.aio.upload_file`` / ``download_file``;
- ``s3fs_async`` / ``adlfs_async``: the raw filesystem's ``_pipe_file`` / ``_cat_file``
  (an instance built with ``asynchronous=True``), what ``aio`` runs on;
- ``aiobotocore``: ``put_object`` / ``get_object`` on one client (s3);
- ``azure_blob_aio``: ``azure.storage.blob.aio`` ``upload_blob`` / ``download_blob`` (azure);
- ``obstore_async``: ``obstore.put_async`` / ``get_async`` where obstore is installed.

Rounds interleave the tools in a new shuffled order each round; the figures are medians
over the rounds of wall time and client CPU (``time.process_time``: every thread of this
process). Run: ``.venv/bin/python -m benchmarks.async_batch [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

COUNT, SIZE = 500, 16 * 1024

Measured = tuple[float, float]
Tool = Callable[[dict[str, Any], str, list[str], bytes, str], Awaitable[Measured]]


async def _timed(step: Callable[[], Awaitable[Any]]) -> Measured:
    wall, cpu = time.perf_counter(), time.process_time()
    await step()
    return time.perf_counter() - wall, time.process_time() - cpu


async def _gather(call: Callable[[str], Awaitable[Any]], keys: list[str]) -> None:
    await asyncio.gather(*(call(key) for key in keys))


# -- s3 ----------------------------------------------------------------------------------


def _s3_adapter(server: dict[str, Any], bucket: str) -> Any:
    from perceptra_storage import get_storage_adapter

    return get_storage_adapter(
        "s3", {"bucket_name": bucket, "endpoint_url": server["endpoint"],
               "region": server["region"]},
        {"access_key_id": server["access_key"], "secret_access_key": server["secret_key"]})


async def perceptra_aio(server: dict[str, Any], bucket: str, keys: list[str], data: bytes,
                        step: str) -> Measured:
    adapter = (_s3_adapter if "endpoint" in server else _azure_adapter)(server, bucket)
    async with adapter.aio as storage:
        await storage.file_exists("warm-up")
        if step == "upload":
            return await _timed(lambda: _gather(lambda k: storage.upload_file(data, k), keys))
        return await _timed(lambda: _gather(storage.download_file, keys))


async def s3fs_async(server: dict[str, Any], bucket: str, keys: list[str], data: bytes,
                     step: str) -> Measured:
    from s3fs import S3FileSystem

    fs = S3FileSystem(asynchronous=True, key=server["access_key"], secret=server["secret_key"],
                      endpoint_url=server["endpoint"], skip_instance_cache=True,
                      client_kwargs={"region_name": server["region"]})
    await fs.set_session()
    try:
        await fs._exists(f"{bucket}/warm-up")
        if step == "upload":
            return await _timed(lambda: _gather(
                lambda k: fs._pipe_file(f"{bucket}/{k}", data), keys))
        # One GET per object, as the adapter sends: with its default max_concurrency,
        # s3fs first sends a HEAD to size each object for ranged parallel reads.
        return await _timed(lambda: _gather(
            lambda k: fs._cat_file(f"{bucket}/{k}", max_concurrency=1), keys))
    finally:
        await fs._s3.close()


async def aiobotocore_client(server: dict[str, Any], bucket: str, keys: list[str],
                             data: bytes, step: str) -> Measured:
    from aiobotocore.session import get_session

    async with get_session().create_client(
            "s3", endpoint_url=server["endpoint"], region_name=server["region"],
            aws_access_key_id=server["access_key"],
            aws_secret_access_key=server["secret_key"]) as client:
        await client.list_objects_v2(Bucket=bucket, MaxKeys=1)

        async def get(key: str) -> bytes:
            answer = await client.get_object(Bucket=bucket, Key=key)
            async with answer["Body"] as body:
                return bytes(await body.read())

        if step == "upload":
            return await _timed(lambda: _gather(
                lambda k: client.put_object(Bucket=bucket, Key=k, Body=data), keys))
        return await _timed(lambda: _gather(get, keys))


async def obstore_async(server: dict[str, Any], bucket: str, keys: list[str], data: bytes,
                        step: str) -> Measured:
    import obstore
    from obstore.store import AzureStore, S3Store

    if "endpoint" in server:
        store: Any = S3Store(bucket, endpoint=server["endpoint"], region=server["region"],
                             access_key_id=server["access_key"],
                             secret_access_key=server["secret_key"],
                             virtual_hosted_style_request=False,
                             client_options={"allow_http": True})
    else:
        store = AzureStore(bucket, account_name=server["account_name"],
                           account_key=server["account_key"], endpoint=server["account_url"],
                           client_options={"allow_http": True})
    await obstore.list(store, "warm-up").collect_async()

    async def get(key: str) -> bytes:
        return bytes(await (await obstore.get_async(store, key)).bytes_async())

    if step == "upload":
        return await _timed(lambda: _gather(lambda k: obstore.put_async(store, k, data), keys))
    return await _timed(lambda: _gather(get, keys))


# -- azure -------------------------------------------------------------------------------


def _azure_adapter(server: dict[str, Any], container: str) -> Any:
    from perceptra_storage import get_storage_adapter

    return get_storage_adapter(
        "azure", {"container_name": container, "account_url": server["account_url"]},
        {"account_key": server["account_key"]})


async def adlfs_async(server: dict[str, Any], container: str, keys: list[str], data: bytes,
                      step: str) -> Measured:
    from adlfs import AzureBlobFileSystem

    fs = AzureBlobFileSystem(asynchronous=True, connection_string=server["connection_string"],
                             skip_instance_cache=True)
    try:
        await fs._exists(f"{container}/warm-up")
        if step == "upload":
            return await _timed(lambda: _gather(
                lambda k: fs._pipe_file(f"{container}/{k}", data), keys))
        return await _timed(lambda: _gather(lambda k: fs._cat_file(f"{container}/{k}"), keys))
    finally:
        await fs.service_client.close()


async def azure_blob_aio(server: dict[str, Any], container: str, keys: list[str],
                         data: bytes, step: str) -> Measured:
    from azure.storage.blob.aio import ContainerClient

    async with ContainerClient.from_connection_string(server["connection_string"],
                                                      container) as client:
        await client.get_container_properties()

        async def get(key: str) -> bytes:
            return bytes(await (await client.download_blob(key)).readall())

        if step == "upload":
            return await _timed(lambda: _gather(
                lambda k: client.upload_blob(k, data, overwrite=True), keys))
        return await _timed(lambda: _gather(get, keys))


TOOLS: dict[str, dict[str, Tool]] = {
    "s3": {"perceptra_aio": perceptra_aio, "s3fs_async": s3fs_async,
           "aiobotocore": aiobotocore_client, "obstore_async": obstore_async},
    "azure": {"perceptra_aio": perceptra_aio, "adlfs_async": adlfs_async,
              "azure_blob_aio": azure_blob_aio, "obstore_async": obstore_async},
}
RAW = {"s3": "s3fs_async", "azure": "adlfs_async"}


def _start(backend: str) -> tuple[dict[str, Any], str, Callable[[], None]]:
    """The server, a fresh bucket/container on it, and how to stop it."""
    if backend == "s3":
        import boto3

        from tests.servers.moto_s3 import start_moto

        moto = start_moto()
        server = {"endpoint": moto.endpoint_url, "region": moto.region,
                  "access_key": moto.access_key, "secret_key": moto.secret_key}
        boto3.client("s3", endpoint_url=moto.endpoint_url, region_name=moto.region,
                     aws_access_key_id=moto.access_key,
                     aws_secret_access_key=moto.secret_key).create_bucket(Bucket="bench-aio")
        return server, "bench-aio", moto.stop
    from azure.storage.blob import BlobServiceClient

    from tests.servers.azurite import start_azurite

    azurite = start_azurite()
    server = {"account_url": azurite.account_url, "account_name": azurite.account_name,
              "account_key": azurite.account_key,
              "connection_string": azurite.connection_string}
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(
        "bench-aio")
    return server, "bench-aio", azurite.stop


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="s3,azure")
    args = parser.parse_args(argv)
    data = os.urandom(SIZE)
    print(f"# async batch: {COUNT} x {SIZE // 1024} KiB, asyncio.gather, "
          f"{args.rounds} rounds; Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()}")
    for backend in args.backends.split(","):
        tools = {name: tool for name, tool in TOOLS[backend].items()
                 if name != "obstore_async" or importlib.util.find_spec("obstore")}
        server, bucket, stop = _start(backend)
        samples: dict[tuple[str, str], list[Measured]] = {}
        try:
            for number in range(args.rounds):
                order = list(tools)
                random.Random(number).shuffle(order)
                for name in order:
                    keys = [f"{name}/{number}/{n:04d}.bin" for n in range(COUNT)]
                    for step in ("upload", "download"):
                        measured = asyncio.run(tools[name](server, bucket, keys, data, step))
                        samples.setdefault((name, step), []).append(measured)
        finally:
            stop()
        for step in ("upload", "download"):
            raw = samples[(RAW[backend], step)]
            raw_wall = statistics.median(w for w, _ in raw)
            raw_cpu = statistics.median(c for _, c in raw)
            print(f"\n{backend} {step}: tool | wall s (min-max) | client CPU s | "
                  f"wall / {RAW[backend]} | CPU / {RAW[backend]}")
            for name in tools:
                walls = [w for w, _ in samples[(name, step)]]
                cpus = [c for _, c in samples[(name, step)]]
                print(f"{name} | {statistics.median(walls):.3f} ({min(walls):.3f}-"
                      f"{max(walls):.3f}) | {statistics.median(cpus):.3f} | "
                      f"{statistics.median(walls) / raw_wall:.2f}x | "
                      f"{statistics.median(cpus) / raw_cpu:.2f}x")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
