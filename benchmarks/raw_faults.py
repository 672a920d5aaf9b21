"""What raw s3fs and adlfs do when the network fails, beside perceptra-storage over them.

Why: the adapter's timeouts, retries, write rollback and redirect refusal exist because
the raw libraries, with their defaults, hang, return short data, commit half-written
objects or follow a redirect to another host.  This script measures each claim on
loopback instead of asserting it: it starts moto's S3 server and Azurite (through the
test suite's ``tests/servers``), puts ``tests/servers/faultproxy.py`` or a tiny redirecting
``http.server`` in front of them, and runs every (tool, scenario) in a fresh child process
(``--one``), so a hang can be killed and no connection pool outlives its measurement.
Raw calls are capped at 30 s, the adapter's at 60 s (its defaults give up after three
10 s read timeouts); a call still running at its cap is reported as such.

Usage: ``.venv/bin/python benchmarks/raw_faults.py`` prints a Markdown table and writes
``benchmarks/FAULTS.md``; every cell comes from a measurement of that run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import importlib.metadata
import json
import os
import platform
import random
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repo importable
    sys.path.insert(0, str(ROOT))

OUTPUT = ROOT / "benchmarks" / "FAULTS.md"
TOOLS = {"s3fs": "raw s3fs", "adlfs": "raw adlfs", "ours-s3": "perceptra-storage s3",
         "ours-azure": "perceptra-storage azure"}
RAW_CAP, OURS_CAP = 30.0, 60.0
"""Seconds one call may run before it is reported as still waiting and killed."""
SMALL, BIG, WRITTEN = 100 * 1024, 8 * 2**20, 12 * 2**20
"""Sizes: the stalled GET/PUT object, the cut GET object, the abandoned ``open`` write."""
CUT_AT = 1_000_000
VERSIONS = ("s3fs", "adlfs", "aiobotocore", "botocore", "azure-storage-blob", "azure-core",
            "aiohttp", "fsspec", "moto")
JOB_ENV = "RAW_FAULTS_JOB"
RESULT_MARK = "RAW_FAULTS_RESULT "


@dataclass(frozen=True)
class Scenario:
    """One row: where the client connects (``via``), the proxy fault, and the call."""

    name: str
    title: str
    via: str
    """"refused" (a free port), "proxy" (FaultProxy), "direct" or "redirect"."""
    call: str
    """"get_small", "get_big", "put_small" or "open_abort"."""
    fault: dict[str, Any] = field(default_factory=dict)
    """Arguments of ``FaultProxy.set``."""


SCENARIOS = (
    Scenario("refused", "1. Connection refused (nothing listens): GET", "refused", "get_small"),
    Scenario("stall-get", "2. Server stops answering a GET (100 KB)", "proxy", "get_small",
             {"mode": "stall"}),
    Scenario("stall-put", "3. Server stops answering a PUT of 100 KB", "proxy", "put_small",
             {"mode": "stall"}),
    Scenario("cut-always", "4. 8 MiB GET cut after 1,000,000 bytes, every connection",
             "proxy", "get_big", {"mode": "cut", "nbytes": CUT_AT}),
    Scenario("cut-once", "5. 8 MiB GET cut after 1,000,000 bytes, first connection only",
             "proxy", "get_big", {"mode": "cut", "nbytes": CUT_AT, "times": 1}),
    Scenario("abort-write", "6. Exception inside `with open(key, 'wb')` after 12 MiB written",
             "direct", "open_abort"),
    Scenario("redirect-get", "7a. 307 redirect to another host: GET", "redirect", "get_small"),
    Scenario("redirect-put", "7b. 307 redirect to another host: PUT of 100 KB", "redirect",
             "put_small"),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


class UserAbort(RuntimeError):
    """The caller's own error, raised inside the ``with`` block of scenario 6."""


# -- child: one call of one tool ------------------------------------------------------


def _raw_s3fs(job: dict[str, Any]) -> tuple[Any, str]:
    import s3fs

    fs = s3fs.S3FileSystem(key=job["access_key"], secret=job["secret_key"],
                           endpoint_url=f"http://{job['address']}",
                           client_kwargs={"region_name": job["region"]},
                           skip_instance_cache=True)
    return fs, f"{job['bucket']}/"


def _raw_adlfs(job: dict[str, Any]) -> tuple[Any, str]:
    import adlfs

    account = job["account_name"]
    connection = (f"DefaultEndpointsProtocol=http;AccountName={account};"
                  f"AccountKey={job['account_key']};"
                  f"BlobEndpoint=http://{job['address']}/{account};")
    fs = adlfs.AzureBlobFileSystem(account_name=account, connection_string=connection,
                                   skip_instance_cache=True)
    return fs, f"{job['bucket']}/"


def _ours(job: dict[str, Any]) -> Any:
    from perceptra_storage import get_storage_adapter

    if job["tool"] == "ours-s3":
        return get_storage_adapter(
            "s3", {"bucket_name": job["bucket"], "endpoint_url": f"http://{job['address']}",
                   "region": job["region"]},
            {"access_key_id": job["access_key"], "secret_access_key": job["secret_key"]})
    return get_storage_adapter(
        "azure", {"container_name": job["bucket"],
                  "account_url": f"http://{job['address']}/{job['account_name']}"},
        {"account_key": job["account_key"]})


def _prepare_call(job: dict[str, Any]) -> Callable[[], Any]:
    """Build the client (no network yet) and return the one call the scenario makes."""
    call, key = job["call"], job["key"]
    payload = random.Random(7).randbytes(WRITTEN if call == "open_abort" else SMALL)
    read: Callable[[], Any]
    write: Callable[[bytes], Any]
    opener: Callable[[], Any]
    if job["tool"] in ("s3fs", "adlfs"):
        fs, root = _raw_s3fs(job) if job["tool"] == "s3fs" else _raw_adlfs(job)
        path = root + key
        read, write, opener = ((lambda: fs.cat_file(path)),
                               (lambda data: fs.pipe_file(path, data)),
                               (lambda: fs.open(path, "wb")))
    else:
        adapter = _ours(job)
        read, write, opener = ((lambda: adapter.download_file(key)),
                               (lambda data: adapter.upload_file(data, key)),
                               (lambda: adapter.open(key, "wb")))
    if call.startswith("get"):
        return read
    if call == "put_small":
        return lambda: write(payload)

    def abandon_write() -> None:
        with opener() as out:
            out.write(payload)
            raise UserAbort("the caller's code failed after writing")

    return abandon_write


def _chain(error: BaseException) -> list[list[str]]:
    """[class, message] of the error and each cause or context below it."""
    links: list[list[str]] = []
    seen: set[int] = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen and len(links) < 8:
        seen.add(id(current))
        links.append([type(current).__name__, " ".join(str(current).split())[:300]])
        current = current.__cause__ or (None if current.__suppress_context__
                                        else current.__context__)
    return links


def run_one(tool: str, scenario: str) -> None:
    """Child: make the call in a thread, print one result line, and exit at the cap
    without waiting for a call that still runs."""
    job = json.loads(os.environ[JOB_ENV])
    cap = RAW_CAP if tool in ("s3fs", "adlfs") else OURS_CAP
    call = _prepare_call({**job, "tool": tool, "call": BY_NAME[scenario].call})
    result: dict[str, Any] = {}

    def target() -> None:
        start = time.monotonic()
        try:
            value = call()
        except BaseException as exc:  # every outcome, however odd, is a measurement
            result.update(error=type(exc).__name__, chain=_chain(exc))
        else:
            if isinstance(value, (bytes, bytearray)):
                result.update(size=len(value), sha256=hashlib.sha256(value).hexdigest())
        result["elapsed"] = time.monotonic() - start

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(cap)
    if worker.is_alive():
        result = {"killed": True, "elapsed": cap}
    print(RESULT_MARK + json.dumps(result), flush=True)
    os._exit(0)


# -- parent: servers, endpoints, checks -------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    """The redirect target: records each request and answers it with made-up success."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = len(self.rfile.read(length)) if length else 0
        self.seen.append({"method": self.command, "path": self.path.split("?")[0],
                          "authorization": "Authorization" in self.headers,
                          "body": received})
        body = b"not the object: the redirect target answered\n"
        status = 201 if self.command == "PUT" else 200
        self.send_response(status)
        self.send_header("ETag", '"0"')
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) if self.command == "GET" else 0))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are recorded, not logged."""


class _Redirector(http.server.BaseHTTPRequestHandler):
    """Answers every request with 307 to the same path on the recorder."""

    protocol_version = "HTTP/1.1"
    target: str
    hits: list[str]

    def _answer(self) -> None:
        self.hits.append(self.command)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(307)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def _serve(handler: type[http.server.BaseHTTPRequestHandler]
           ) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextlib.contextmanager
def redirect_pair() -> Iterator[tuple[str, list[str], list[dict[str, Any]]]]:
    """A redirecting server's address, the methods it answered with 307, and the requests
    its target (the other host) recorded."""
    hits: list[str] = []
    seen: list[dict[str, Any]] = []
    recorder = _serve(type("Recorder", (_Recorder,), {"seen": seen}))
    target = f"http://127.0.0.1:{recorder.server_address[1]}"
    redirector = _serve(type("Redirector", (_Redirector,), {"target": target, "hits": hits}))
    try:
        yield f"127.0.0.1:{redirector.server_address[1]}", hits, seen
    finally:
        for server in (redirector, recorder):
            server.shutdown()
            server.server_close()


@dataclass
class Stores:
    """The running servers, the bucket and container, and direct clients to check them."""

    s3: Any
    azure: Any
    bucket: str
    s3_client: Any
    container: Any
    big_sha256: str


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return str(parts.hostname), int(parts.port or 80)


def start_stores() -> Stores:
    """moto and Azurite, each with the seeded objects ``small.bin`` and ``big.bin``."""
    import boto3
    from azure.storage.blob import ContainerClient
    from botocore.config import Config

    from tests.servers.azurite import start_azurite
    from tests.servers.moto_s3 import start_moto

    rng = random.Random(11)
    small, big = rng.randbytes(SMALL), rng.randbytes(BIG)
    s3 = start_moto()
    try:
        azure = start_azurite()
    except BaseException:
        s3.stop()
        raise
    name = "faults"
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region,
                          aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key,
                          config=Config(s3={"addressing_style": "path"}))
    client.create_bucket(Bucket=name)
    container = ContainerClient.from_connection_string(azure.connection_string, name)
    container.create_container()
    for key, data in (("small.bin", small), ("big.bin", big)):
        client.put_object(Bucket=name, Key=key, Body=data)
        container.upload_blob(key, data)
    return Stores(s3, azure, name, client, container, hashlib.sha256(big).hexdigest())


def stored(stores: Stores, tool: str, key: str) -> tuple[Optional[int], int]:
    """Size of the object at ``key`` (None if there is none) and the unfinished uploads
    of it: S3 multipart uploads, or Azure blobs that exist only as uncommitted blocks."""
    if tool in ("s3fs", "ours-s3"):
        try:
            size: Optional[int] = stores.s3_client.head_object(
                Bucket=stores.bucket, Key=key)["ContentLength"]
        except stores.s3_client.exceptions.ClientError:
            size = None
        uploads = stores.s3_client.list_multipart_uploads(Bucket=stores.bucket, Prefix=key)
        return size, len(uploads.get("Uploads", []))
    blobs = list(stores.container.list_blobs(name_starts_with=key,
                                             include=["uncommittedblobs"]))
    committed = {blob.name: blob.size for blob in stores.container.list_blobs(
        name_starts_with=key)}
    return committed.get(key), len({blob.name for blob in blobs} - set(committed))


@dataclass
class Measurement:
    scenario: Scenario
    tool: str
    result: dict[str, Any]
    connections: Optional[int] = None
    """TCP connections the proxy accepted (the client's attempts), in proxy scenarios."""
    saved: Optional[tuple[Optional[int], int]] = None
    """Size of the written object (None: no object) and unfinished uploads, scenario 6."""
    redirects: Optional[list[str]] = None
    """Methods of the requests the redirecting server answered with 307."""
    redirected: Optional[list[dict[str, Any]]] = None
    """Requests that reached the redirect target."""
    stderr: str = ""


def _job(stores: Stores, tool: str, address: str, key: str) -> dict[str, Any]:
    azure = tool in ("adlfs", "ours-azure")
    return {"address": address, "bucket": stores.bucket, "key": key,
            "region": stores.s3.region, "access_key": stores.s3.access_key,
            "secret_key": stores.s3.secret_key, "account_name": stores.azure.account_name,
            "account_key": stores.azure.account_key if azure else ""}


def measure(stores: Stores, scenario: Scenario, tool: str) -> Measurement:
    """Set up the scenario's endpoint, run the child, and check the aftermath."""
    from tests.servers.common import free_port
    from tests.servers.faultproxy import FaultProxy

    server_url = (stores.azure.account_url if tool in ("adlfs", "ours-azure")
                  else stores.s3.endpoint_url)
    host, port = _address(server_url)
    key = ("small.bin" if scenario.call == "get_small" else "big.bin"
           if scenario.call == "get_big" else f"written/{scenario.name}/{tool}.bin")
    with contextlib.ExitStack() as stack:
        proxy: Optional[FaultProxy] = None
        hits: Optional[list[str]] = None
        seen: Optional[list[dict[str, Any]]] = None
        if scenario.via == "refused":
            address = f"127.0.0.1:{free_port()}"
        elif scenario.via == "proxy":
            proxy = FaultProxy(host, port)
            stack.callback(proxy.close)
            proxy.set(**scenario.fault)
            address = proxy.address
        elif scenario.via == "redirect":
            address, hits, seen = stack.enter_context(redirect_pair())
        else:
            address = f"{host}:{port}"
        cap = RAW_CAP if tool in ("s3fs", "adlfs") else OURS_CAP
        env = {**os.environ, JOB_ENV: json.dumps(_job(stores, tool, address, key)),
               "PYTHONPATH": str(ROOT), "AWS_EC2_METADATA_DISABLED": "true"}
        try:
            done = subprocess.run([sys.executable, __file__, "--one", tool, scenario.name],
                                  env=env, cwd=ROOT, capture_output=True, text=True,
                                  timeout=cap + 30)
            lines = [line for line in done.stdout.splitlines()
                     if line.startswith(RESULT_MARK)]
            result = (json.loads(lines[-1][len(RESULT_MARK):]) if lines
                      else {"crashed": done.returncode})
            stderr = done.stderr
        except subprocess.TimeoutExpired:
            result, stderr = {"killed": True, "elapsed": cap}, ""
        measurement = Measurement(scenario, tool, result, stderr=stderr[-2000:])
        if proxy is not None:
            measurement.connections = proxy.connections
        if hits is not None and seen is not None:
            measurement.redirects, measurement.redirected = list(hits), list(seen)
    if scenario.call == "open_abort":
        measurement.saved = stored(stores, tool, key)
    return measurement


# -- report -----------------------------------------------------------------------------


def outcome(m: Measurement, big_sha256: str) -> str:
    """The cell: what the caller got, how long it took, and what the check found."""
    r = m.result
    if r.get("killed"):
        return f"still waiting at {r['elapsed']:.0f} s (killed)"
    if "crashed" in r:
        return f"child exited with {r['crashed']} and no result"
    if "error" in r:
        text = " ← ".join(f"`{link[0]}`" for link in r["chain"])
    elif "size" in r:
        text = f"returned {r['size']:,} bytes"
        if m.scenario.call == "get_big":
            text += (", SHA-256 matches" if r["sha256"] == big_sha256
                     else ", SHA-256 differs")
    else:
        text = "returned without error"
    text += f", {r['elapsed']:.1f} s"
    if m.connections is not None:
        text += f", {m.connections} connection{'s' if m.connections != 1 else ''}"
    if m.saved is not None:
        size, pending = m.saved
        text += "; no object saved" if size is None else f"; object saved with {size:,} bytes"
        text += f"; {pending} unfinished upload{'s' if pending != 1 else ''} left"
    if m.redirects is not None:
        text += f"; 307 sent to {len(m.redirects)} request{'s' if len(m.redirects) != 1 else ''}"
    if m.redirected is not None:
        if not m.redirected:
            text += "; other host got no request"
        else:
            got = ", ".join(f"{hit['method']} ({'with' if hit['authorization'] else 'no'} "
                            f"Authorization header, {hit['body']:,} body bytes)"
                            for hit in m.redirected)
            text += f"; other host got {got}"
    return text


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def render(measurements: list[Measurement], stores: Stores, header: list[str]) -> str:
    """FAULTS.md: the header, the table, then each measurement's exception chain."""
    cells = {(m.scenario.name, m.tool): outcome(m, stores.big_sha256) for m in measurements}
    lines = [*header, "", "| Scenario | " + " | ".join(TOOLS.values()) + " |",
             "|---" * (len(TOOLS) + 1) + "|"]
    for scenario in (BY_NAME[name] for name in dict.fromkeys(m.scenario.name
                                                             for m in measurements)):
        row = [cells[(scenario.name, tool)].replace("|", "\\|") for tool in TOOLS]
        lines.append(f"| {scenario.title} | " + " | ".join(row) + " |")
    lines += ["", "## Exception chains", "",
              "Outermost first; each next one is the `__cause__` (or unsuppressed "
              "`__context__`) of the one before.", ""]
    secrets = (stores.s3.secret_key, stores.s3.access_key)
    for m in measurements:
        chain = m.result.get("chain")
        if not chain:
            continue
        lines.append(f"- **{m.scenario.title}, {TOOLS[m.tool]}**")
        lines += [f"  - `{name}`: {_redact(message, secrets) or '(no message)'}"
                  for name, message in chain]
    return "\n".join(lines) + "\n"


def header_lines(argv: list[str], jobs: int, elapsed: Optional[float] = None) -> list[str]:
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in VERSIONS)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "perceptra_storage"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    command = shlex.join([".venv/bin/python", "benchmarks/raw_faults.py", *argv])
    lines = [
        "# Network faults: raw s3fs and adlfs beside perceptra-storage",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Command: `{command}`",
        f"- Versions: {versions}; Python {platform.python_version()}; "
        f"perceptra-storage at {commit}" + (" with uncommitted changes" if dirty else ""),
        f"- Servers on loopback: moto's S3 server and Azurite (`tests/servers`), behind "
        f"`tests/servers/faultproxy.py` where a fault is injected. Each cell is one call "
        f"in a fresh child process, {jobs} at a time; its seconds are that call's wall time. "
        f"Raw calls are capped at {RAW_CAP:.0f} s, the adapter's at {OURS_CAP:.0f} s.",
        "- Raw clients use their defaults (s3fs: key, secret, endpoint_url, region; adlfs: "
        "a connection string); the adapter uses its defaults (no timeout or retry fields).",
        "- A failed call shows the exception the caller got, then what it was raised from "
        "(`A` ← `B`: A's `__cause__` or context is B); the messages are under the table.",
        "- \"connections\": TCP connections the fault proxy accepted during the call. "
        "\"other host got\": requests that reached the redirect target, a second "
        "loopback server that answers every request with made-up success.",
    ]
    if elapsed is not None:
        lines.append(f"- Whole run, servers included: {elapsed:.0f} s")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, metavar=("TOOL", "SCENARIO"),
                        help="child mode: make one call and print its result")
    parser.add_argument("--jobs", type=int, default=4,
                        help="measurements run at once (default 4; most of them wait)")
    parser.add_argument("--scenarios", default=",".join(BY_NAME),
                        help=f"comma-separated subset of {', '.join(BY_NAME)}")
    parser.add_argument("--output", type=Path, default=OUTPUT,
                        help=f"report file (default {OUTPUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    if args.one:
        tool, scenario = args.one
        if tool not in TOOLS or scenario not in BY_NAME:
            parser.error(f"unknown tool or scenario: {tool} {scenario}")
        run_one(tool, scenario)
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if not chosen or set(chosen) - set(BY_NAME):
        parser.error(f"--scenarios takes names from {', '.join(BY_NAME)}")
    started = time.monotonic()
    stores = start_stores()
    try:
        pairs = [(scenario, tool) for scenario in SCENARIOS if scenario.name in chosen
                 for tool in TOOLS]
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            measurements = list(pool.map(lambda pair: measure(stores, *pair), pairs))
    finally:
        stores.container.close()
        stores.s3.stop()
        stores.azure.stop()
    for m in measurements:
        if "crashed" in m.result:
            print(f"{m.scenario.name}/{m.tool} crashed:\n{m.stderr}", file=sys.stderr)
    report = render(measurements, stores,
                    header_lines(argv, args.jobs, time.monotonic() - started))
    print(report)
    args.output.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
