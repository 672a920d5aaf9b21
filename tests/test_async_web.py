"""The README's FastAPI app, served by uvicorn on loopback, under 50 concurrent clients.

The app is the README's block as written (only its bucket and endpoint point at the
test's moto server). The clients run in a child process, so that their work does not
compete with the server's event loop for this process's GIL. The loop's lag is measured
in the server's own loop while they upload and download through it: how late each 1 ms
sleep wakes (wall), and how much CPU the loop thread spent between two wake-ups. On a
shared 2-vCPU machine under load both carry the machine's scheduling (a descheduled
vCPU still counts as running), so the bounds are on the median wall lag and on the p99
of the loop's CPU per turn, and the full figures are printed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import perceptra_storage
from tests.cases_s3 import new_bucket
from tests.servers.common import S3Server
from tests.test_readme import BLOCKS

CLIENTS = 50

CLIENT = r'''
import asyncio, hashlib, json, os, random, sys

import aiohttp

base = sys.argv[1]

async def one(session, n):
    rng = random.Random(n)
    data = os.urandom(rng.choice([1, 4096, 64 * 1024, 300 * 1024, 2 * 1024 * 1024]))
    key = f"uploads/{n}/{hashlib.md5(data).hexdigest()}.bin"
    async with session.put(f"{base}/files/{key}", data=data) as answer:
        assert answer.status == 200, await answer.text()
    async with session.get(f"{base}/files/{key}") as answer:
        assert answer.status == 200
        back = await answer.read()
    async with session.get(f"{base}/files/uploads/{n}/missing") as answer:
        missing = answer.status
    return {"key": key, "size": len(data), "same": back == data, "missing": missing}

async def main():
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        results = await asyncio.gather(*(one(session, n) for n in range(int(sys.argv[2]))))
    print(json.dumps(results))

asyncio.run(main())
'''


def _readme_app() -> str:
    (block,) = [b for b in BLOCKS if "FastAPI()" in b]
    return block


def test_readme_fastapi_app_under_50_concurrent_clients(
        moto_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    bucket, remove = new_bucket(moto_server)
    real = perceptra_storage.get_storage_adapter

    def substituted(backend: str, config: Any = None, credentials: Any = None) -> Any:
        return real(backend, {**config, "bucket_name": bucket,
                              "endpoint_url": moto_server.endpoint_url}, credentials)

    monkeypatch.setattr(perceptra_storage, "get_storage_adapter", substituted)
    namespace: dict[str, Any] = {"__name__": "readme_app"}
    exec(compile(_readme_app(), "README.md FastAPI block", "exec"), namespace)
    storage = namespace["storage"]

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(namespace["app"], log_level="warning",
                                           lifespan="off"))
    lags: list[float] = []
    busy: list[float] = []
    measuring = threading.Event()

    async def serve() -> None:
        async def monitor() -> None:
            while True:
                start, computed = time.perf_counter(), time.thread_time()
                await asyncio.sleep(0.001)
                if measuring.is_set():
                    lags.append(time.perf_counter() - start - 0.001)
                    busy.append(time.thread_time() - computed)

        watcher = asyncio.create_task(monitor())
        try:
            await server.serve(sockets=[listener])
        finally:
            watcher.cancel()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.01)
        measuring.set()
        clients = subprocess.run(
            [sys.executable, "-c", CLIENT, f"http://127.0.0.1:{port}", str(CLIENTS)],
            capture_output=True, text=True, timeout=300)
        measuring.clear()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    try:
        assert clients.returncode == 0, clients.stderr[-3000:]
        results = json.loads(clients.stdout)
        assert len(results) == CLIENTS
        assert all(r["same"] for r in results) and {r["missing"] for r in results} == {404}
        stored = {o.key: o.size for o in storage.list_files("uploads/")}
        assert stored == {r["key"]: r["size"] for r in results}
        def ms(values: list[float], share: float) -> float:
            return sorted(values)[min(len(values) - 1, int(share * len(values)))] * 1000

        print(f"loop lag over {len(lags)} turns: wall median {ms(lags, 0.5):.2f} ms, "
              f"p99 {ms(lags, 0.99):.1f} ms, max {max(lags) * 1000:.1f} ms; loop thread "
              f"CPU per turn median {ms(busy, 0.5):.2f} ms, p99 {ms(busy, 0.99):.1f} ms, "
              f"max {max(busy) * 1000:.1f} ms")
        # A call blocking the loop (a synchronous request, a whole-file read) would hold
        # every turn it lands in for a round trip or more.
        assert ms(lags, 0.5) < 5, "the loop is late by 5 ms or more half of the time"
        assert ms(busy, 0.99) < 50, "the loop computes for 50 ms or more between turns"
    finally:
        remove()
