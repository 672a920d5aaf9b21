"""moto's ThreadedMotoServer in a child process: requests cross real HTTP.

A child process (not moto's in-process mock) keeps the test process's botocore
unpatched and gives the server its own interpreter and GIL.
"""

from __future__ import annotations

import importlib.util
import secrets
import sys
import tempfile
import urllib.request
from pathlib import Path

from .common import (
    S3Server,
    ServerUnavailable,
    free_port,
    start_process,
    stop_process,
    wait_for_http,
)

_CHILD = """
import sys, threading
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
threading.Event().wait()
"""


def start_moto() -> S3Server:
    """Start moto's S3 server on a free loopback port and wait until it answers.

    moto is looked up, not imported: importing it hooks the test process's botocore.
    """
    if any(importlib.util.find_spec(name) is None for name in ("moto", "flask", "flask_cors")):
        raise ServerUnavailable("moto[server] is not installed; run `make test`, which "
                                "installs the dev extras")
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])
    process = start_process([sys.executable, "-c", _CHILD, str(port)], log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{endpoint}/moto-api/", 60, process, log)
    except ServerUnavailable:
        stop_process(process)
        log.unlink(missing_ok=True)
        raise

    def reset() -> None:
        request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def stop() -> None:
        stop_process(process)
        log.unlink(missing_ok=True)

    return S3Server(endpoint_url=endpoint, access_key=f"AKIA{secrets.token_hex(8).upper()}",
                    secret_key=secrets.token_urlsafe(30), region="us-east-1",
                    stop=stop, reset=reset)
