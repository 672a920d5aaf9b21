"""``url()`` of a Django storage: PerceptraStorage against django-storages' S3Storage.

Both storages point at the same bucket of moto's ThreadedMotoServer (started the way
the test suite starts it, in a child process) with the same keys, region, path-style
addressing and SigV4. Each round times ``--calls`` calls of ``url()`` per target,
presigned (``querystring_auth=True``) and public (``querystring_auth=False``), the
targets in a new shuffled order every round; the figure is the median round. One URL
of each target is fetched over HTTP first, to show that both point at the stored
bytes; then the server is stopped, so the timed calls cannot be helped (or slowed) by
a request: one that tried would fail.

Run: ``.venv/bin/python benchmarks/django_url.py [--calls 10000] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NAMES = [f"photos/2026/{i:04d}/holiday picture {i}.jpg" for i in range(100)]
"""Names cycled through by every target (a space in each, as users' uploads have)."""


def _configure_django() -> None:
    from django.conf import settings

    settings.configure(USE_TZ=True, SECRET_KEY="benchmark-only",
                       INSTALLED_APPS=["django.contrib.contenttypes"])
    import django

    django.setup()


def _time(call: Callable[[str], str], calls: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``calls`` calls (CPU: this process, which a loaded machine
    inflates less than wall time)."""
    names = NAMES
    count = len(names)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(calls):
        call(names[i % count])
    return time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    _configure_django()
    import boto3
    from storages.backends.s3 import S3Storage

    from perceptra_storage.contrib.django import PerceptraStorage
    from tests.servers.moto_s3 import start_moto

    server = start_moto()
    try:
        client = boto3.client("s3", endpoint_url=server.endpoint_url, region_name=server.region,
                              aws_access_key_id=server.access_key,
                              aws_secret_access_key=server.secret_key)
        client.create_bucket(Bucket="django-url")
        # Public URLs are for a bucket that serves its objects to anyone.
        client.put_bucket_policy(Bucket="django-url", Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::django-url/*"}]}))
        for name in NAMES[:1]:
            client.put_object(Bucket="django-url", Key=f"media/{name}", Body=b"picture")

        def ours(querystring_auth: bool) -> Any:
            return PerceptraStorage(
                backend="s3", location="media", querystring_auth=querystring_auth,
                config={"bucket_name": "django-url", "endpoint_url": server.endpoint_url,
                        "region": server.region},
                credentials={"access_key_id": server.access_key,
                             "secret_access_key": server.secret_key})

        def theirs(querystring_auth: bool) -> Any:
            return S3Storage(
                bucket_name="django-url", location="media", endpoint_url=server.endpoint_url,
                region_name=server.region, access_key=server.access_key,
                secret_key=server.secret_key, addressing_style="path",
                signature_version="s3v4", querystring_auth=querystring_auth)

        targets = {
            ("presigned", "perceptra"): ours(True).url,
            ("presigned", "django-storages"): theirs(True).url,
            ("public", "perceptra"): ours(False).url,
            ("public", "django-storages"): theirs(False).url,
        }
        for (kind, who), url in targets.items():
            status, body = _fetch(url(NAMES[0]))
            print(f"{kind:9} {who:15} fetch -> {status}, {body!r}; e.g. {url(NAMES[0])[:110]}",
                  file=sys.stderr)
            assert (status, body) == (200, b"picture"), (kind, who)
            _time(url, 200)  # warm: clients built, code paths taken once
    finally:
        server.stop()

    order = list(targets)
    times: dict[tuple[str, str], list[tuple[float, float]]] = {target: [] for target in targets}
    shuffle = random.Random(args.seed)
    for _ in range(args.rounds):
        shuffle.shuffle(order)
        for target in order:
            times[target].append(_time(targets[target], args.calls))

    print(f"# Django url(): {args.calls:,} calls per round, {args.rounds} rounds, "
          f"median (min-max) seconds")
    print(f"- {_machine()}")
    print(f"- Command: benchmarks/django_url.py {' '.join(argv)}".rstrip())
    print(f"- Packages: {_packages()}")
    print()
    print("| url() | measure | perceptra | django-storages | ratio |")
    print("|---|---|---|---|---|")
    for kind in ("presigned", "public"):
        for column, measure in ((0, "wall"), (1, "CPU")):
            mine = [pair[column] for pair in times[(kind, "perceptra")]]
            peer = [pair[column] for pair in times[(kind, "django-storages")]]
            print(f"| {kind} | {measure} | {_spread(mine)} | {_spread(peer)} | "
                  f"{statistics.median(mine) / statistics.median(peer):.2f}x |")
    return 0


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f})"


def _machine() -> str:
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) \
        if os.path.exists("/proc/loadavg") else "n/a"
    return (f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, load average {load}")


def _packages() -> str:
    return ", ".join(f"{name} {version(name)}" for name in
                     ("django", "django-storages", "boto3", "botocore", "s3fs", "moto"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
