"""Which HTTP requests one small upload or download makes through the adapter.

Run in a fresh process (``python -m benchmarks.audit '<spec json>'``): every request that
s3fs (aiobotocore) and adlfs (azure.core) send goes through ``aiohttp.ClientSession``,
so wrapping its ``_request`` records the method and whether a ``Range`` header was sent.
The target is one request per call: a PUT for an upload, a GET without Range for a
download, never a HEAD.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.spec import Spec
from benchmarks.tools import MODULES

CALLS = ("upload bytes", "upload path", "download to bytes", "download to path")
RAW_CALLS = ("raw fsspec cat_file", "raw fsspec get_file")
"""The same downloads through the adapter's own filesystem, to tell whose requests they are."""


def record_requests() -> list[str]:
    """Start recording ``METHOD`` (``GET+Range`` with a Range header) of each request."""
    import aiohttp

    seen: list[str] = []
    original = aiohttp.ClientSession._request

    async def counting(self: Any, method: str, url: Any, **kwargs: Any) -> Any:
        headers = kwargs.get("headers") or {}
        ranged = any(str(name).lower() == "range" for name in headers)
        seen.append(f"{method.upper()}{'+Range' if ranged else ''}")
        return await original(self, method, url, **kwargs)

    aiohttp.ClientSession._request = counting  # type: ignore[method-assign]
    return seen


def audit(spec: Spec) -> dict[str, list[str]]:
    """Requests made by each single-object call on a warm adapter, and by the raw
    fsspec downloads underneath it."""
    import importlib

    module = importlib.import_module(f"benchmarks.tools.{MODULES[spec.store.backend]}")
    adapter = module.make_adapter(spec, spec.store.scratch)
    source = spec.small_sources()[0]
    key = spec.scratch_keys(1)[0]
    target = f"{spec.out_dir()}/audit"
    with open(source, "rb") as data:
        payload = data.read()
    seen = record_requests()
    calls = {
        "upload bytes": lambda: adapter.upload_file(payload, key),
        "upload path": lambda: adapter.upload_file(Path(source), key),
        "download to bytes": lambda: adapter.download_file(key),
        "download to path": lambda: adapter.download_file(key, target),
        "raw fsspec cat_file": lambda: adapter.fs.cat_file(key),
        "raw fsspec get_file": lambda: adapter.fs.get_file(key, target),
    }
    found: dict[str, list[str]] = {}
    for name in (*CALLS, *RAW_CALLS):
        seen.clear()
        calls[name]()
        found[name] = list(seen)
    adapter.delete_file(key)
    return found


def verdict(found: dict[str, list[str]]) -> tuple[bool, str]:
    """Met when every call made exactly one request of the expected kind."""
    expected = {"upload bytes": "PUT", "upload path": "PUT", "download to bytes": "GET",
                "download to path": "GET"}
    bad = {name: requests for name, requests in found.items()
           if name in expected and requests != [expected[name]]}
    summary = "; ".join(f"{name}: {' '.join(requests) or 'none'}"
                        for name, requests in found.items())
    return not bad, summary


if __name__ == "__main__":
    print(json.dumps(audit(Spec.from_json(json.loads(sys.argv[1])))), flush=True)
