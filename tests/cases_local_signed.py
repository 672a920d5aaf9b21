"""The ``local`` backend with ``signing_key``: its presigned URLs are HTTP URLs served by
``perceptra_storage.server`` (wsgiref, on a free loopback port, one per test: a
thread, started in milliseconds, serving that test's fresh directory)."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from perceptra_storage import get_storage_adapter
from perceptra_storage.server import make_app
from tests.conftest import Backend, Case

ORIGINS: tuple[str, ...] = ("*",)
"""The test server answers CORS for any origin (the browser test's page is on a
random port); tests/test_local_signed.py checks the refusal with its own servers."""


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged into the test output."""


class _ThreadedServer(WSGIServer):
    """wsgiref's server, one thread per request, so a browser's parallel requests
    (preflight and upload) do not queue behind a kept-alive connection."""

    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._handle, args=(request, client_address),
                                  daemon=True)
        thread.start()

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


def serve(config: dict[str, Any], origins: tuple[str, ...] = ORIGINS
          ) -> tuple[dict[str, Any], Any]:
    """Start a server for a local store; returns the config (with ``base_url`` and a
    fresh ``signing_key``) and a function that stops it."""
    server = make_server("127.0.0.1", 0, lambda environ, start: [], server_class=_ThreadedServer,
                         handler_class=_Quiet)
    config = {**config, "signing_key": secrets.token_urlsafe(32),
              "base_url": f"http://127.0.0.1:{server.server_port}"}
    server.set_app(make_app(get_storage_adapter("local", config), allowed_origins=origins))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return config, stop


def _local_signed(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    config, stop = serve({"base_path": str(tmp_path / "store")})

    def make(prefix: Optional[str]) -> Any:
        return get_storage_adapter("local", {**config, "prefix": prefix} if prefix else config)

    return Backend("local", make, secrets=(config["signing_key"],), cleanup=[stop])


BACKENDS = {
    "local-signed": Case(start=_local_signed, generic=False,
                         presign_methods=frozenset({"GET", "PUT", "HEAD", "DELETE"}),
                         directories=True, metadata_hyphens=True,
                         pinned_headers_enforced=True, signatures_checked=True,
                         response_overrides=True),
}
