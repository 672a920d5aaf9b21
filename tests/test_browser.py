"""A real browser uploads and downloads with signed grants, cross-origin.

Headless Chromium (Debian's, through its WebDriver) opens a page served from one
loopback origin; the page's scripts PUT with ``fetch`` to presigned URLs, POST an
HTML form to a POST policy and GET presigned downloads on another origin: Ceph's
RADOS Gateway (minio backend), Azurite (azure) and the local signed-URL server.
Each succeeds with CORS allowed for the page's origin; a tampered URL, an expired
one, a wrong Content-Type and a file over ``max_size`` are refused with the store
unchanged.

One test drives the three stores, then the README example ("Browser uploads": its
signing view and its JavaScript), with one browser: starting Chromium costs seconds,
and one test runs in one pytest-xdist worker (several tests could land on two and
start two browsers). The three stores are started together, so that the URLs made
to expire all wait out the same second.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import pytest

import perceptra_storage
from perceptra_storage import PresignedUrl, StorageAdapter, StorageOperationError
from tests.conftest import Backend, started_backend, unavailable
from tests.contract.browser import cors_turn
from tests.servers.common import ServerUnavailable
from tests.test_readme import BLOCKS, README

CASES = ("minio", "azure", "local-signed")

PAGE = b"""<!doctype html><html><body>
<iframe name="sink" id="sink"></iframe>
<script>
async function putFile(url, headers, text, type) {
  try {
    const r = await fetch(url, {method: 'PUT', headers, body: new Blob([text], {type})});
    return r.status;
  } catch (e) { return 'blocked: ' + e; }
}
async function getFile(url) {
  try {
    const r = await fetch(url);
    return [r.status, await r.text(), r.headers.get('content-disposition')];
  } catch (e) { return ['blocked: ' + e, '', null]; }
}
function postForm(url, fields, text, type, waitForPage, done) {
  const form = document.createElement('form');
  form.method = 'POST'; form.action = url; form.enctype = 'multipart/form-data';
  form.target = 'sink';
  for (const [name, value] of Object.entries(fields)) {
    const input = document.createElement('input');
    input.type = 'hidden'; input.name = name; input.value = value; form.append(input);
  }
  const file = document.createElement('input');
  file.type = 'file'; file.name = 'file'; form.append(file);
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], 'upload.txt', {type}));
  file.files = transfer.files;
  // A refusal loads the store's error page into the frame; a 204 success loads
  // nothing, so a success is not waited for here (the test polls the store).
  const sink = document.getElementById('sink');
  sink.onload = () => done('loaded');
  setTimeout(() => done('no page'), 10000);
  document.body.append(form);
  form.submit();
  if (!waitForPage) { sink.onload = null; done('sent'); }
}
</script></body></html>"""


VIEW: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
"""The app's ``POST /uploads`` view, set by the test: the README's ``upload_grant``."""


class _Page(BaseHTTPRequestHandler):
    """The app's origin: the test page, and the README's signing view."""

    def do_GET(self) -> None:
        self._answer("text/html; charset=utf-8", PAGE)

    def do_POST(self) -> None:
        asked = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        grant = VIEW["uploads"](asked)
        self._answer("application/json", json.dumps(grant).encode())

    def _answer(self, content_type: str, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Not into the test output."""


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """The test page's origin: its own loopback port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    VIEW.clear()


@pytest.fixture(scope="module")
def browser(page_origin: str) -> Iterator[Any]:
    """One headless Chromium on the test page (installed from Debian on first use when
    the tests run as root; a missing browser fails the run under CI)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        from tests.servers.chromium import ensure_chromium

        binary, driver_path = ensure_chromium()
    except (ServerUnavailable, ImportError) as exc:
        unavailable(f"headless Chromium: {exc}")
        raise
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root otherwise
    # The driver's path is given, so Selenium never looks for (or downloads) one.
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.set_script_timeout(30)
        driver.get(f"{page_origin}/")
        yield driver
    finally:
        driver.quit()


def _run(browser: Any, function: str, *args: Any) -> Any:
    """Call one of the page's functions and return its result."""
    if function == "postForm":
        return browser.execute_async_script("postForm(...arguments)", *args)
    return browser.execute_async_script(
        f"const done = arguments[arguments.length - 1];"
        f"{function}(...Array.from(arguments).slice(0, -1)).then(done);", *args)


def _refused(result: Any) -> bool:
    """A request the store refused: 403, or a failure the page cannot read (a store may
    leave CORS headers off its error answers, so the browser hides the status); the
    test also checks that the store did not change."""
    return result == 403 or str(result).startswith("blocked")


def _broken(url: str) -> str:
    """``url`` with the last character of its signature changed."""
    for name in ("X-Amz-Signature=", "sig=", "X-Ps-Signature="):
        if name in url:
            start = url.index(name) + len(name)
            end = url.find("&", start)
            end = len(url) if end < 0 else end
            value = url[start:end]
            swapped = value[:-1] + ("A" if value[-1] != "A" else "B")
            if name == "X-Ps-Signature=":
                swapped = value[:-1] + ("0" if value[-1] != "0" else "1")
            return url[:start] + swapped + url[end:]
    raise AssertionError(f"no signature in {url}")


def _exercise(browser: Any, backend: Backend, storage: StorageAdapter,
              expired: PresignedUrl) -> None:
    """Every browser flow on one store (CORS already allowed for the page)."""
    # fetch PUT to a presigned URL; then the refusals, each leaving the store unchanged
    put = storage.generate_presigned_url("in/ok.txt", method="PUT", expiration=300,
                                         content_type="text/plain")
    assert _run(browser, "putFile", put.url, put.headers, "from the browser",
                "text/plain") in (200, 201)
    assert storage.download_file("in/ok.txt") == b"from the browser"
    assert storage.get_file_metadata("in/ok.txt").content_type == "text/plain"

    tampered = storage.generate_presigned_url("in/t.txt", method="PUT",
                                              content_type="text/plain")
    assert _refused(_run(browser, "putFile", _broken(tampered.url), tampered.headers, "x",
                         "text/plain"))
    if backend.pinned_headers_enforced:
        wrong = storage.generate_presigned_url("in/w.txt", method="PUT",
                                               content_type="text/plain")
        headers = {**wrong.headers, "Content-Type": "text/html"}
        assert _refused(_run(browser, "putFile", wrong.url, headers, "<b>x</b>", "text/html"))
        assert not storage.file_exists("in/w.txt")
    assert time.time() > expired.expires_at.timestamp()
    assert _refused(_run(browser, "putFile", expired.url, expired.headers, "x", "text/plain"))
    assert not storage.file_exists("in/t.txt") and not storage.file_exists("in/e.txt")

    # presigned GET, cross-origin, with a download name
    get = storage.generate_presigned_url("in/ok.txt", download_name="résumé.txt")
    status, body, disposition = _run(browser, "getFile", get.url)
    assert (status, body) == (200, "from the browser")
    assert disposition is not None and "filename*=UTF-8''r%C3%A9sum%C3%A9.txt" in disposition
    assert _refused(_run(browser, "getFile", _broken(get.url))[0])

    # an HTML form POST to a POST policy
    if not backend.post_policies:
        with pytest.raises(StorageOperationError):
            storage.generate_presigned_post("in/form.txt", max_size=10)
        return
    post = storage.generate_presigned_post("in/form.txt", max_size=10, content_type="text/plain")
    assert _run(browser, "postForm", post.url, post.fields, "x" * 11, "text/plain",
                True) == "loaded"  # the store's error page
    assert not storage.file_exists("in/form.txt")
    _run(browser, "postForm", post.url, post.fields, "form", "text/plain", False)
    deadline = time.monotonic() + 10
    while not storage.file_exists("in/form.txt") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert storage.download_file("in/form.txt") == b"form"


def test_browser_uploads_and_downloads(browser: Any, page_origin: str,
                                       request: pytest.FixtureRequest, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Every flow on each store, then the README's example; a failure names the store
    (and the others still run)."""
    with ExitStack() as stack:
        stores: dict[str, tuple[Backend, StorageAdapter, PresignedUrl]] = {}
        for case in CASES:
            (tmp_path / case).mkdir()
            backend = stack.enter_context(started_backend(case, request, tmp_path / case))
            storage: StorageAdapter = backend.make()
            expired = storage.generate_presigned_url("in/e.txt", method="PUT", expiration=1,
                                                     content_type="text/plain")
            stores[case] = (backend, storage, expired)
        latest = max(expired.expires_at.timestamp() for _, _, expired in stores.values())
        time.sleep(max(0.0, latest - time.time()) + 1.05)  # past every expiry, once
        failures: dict[str, str] = {}
        for case, (backend, storage, expired) in stores.items():
            try:
                with cors_turn(backend, request):
                    if backend.cors:
                        storage.set_cors([page_origin], methods=["GET", "PUT", "POST", "HEAD"],
                                         expose_headers=["ETag", "Content-Disposition"])
                    _exercise(browser, backend, storage, expired)
            except Exception as exc:  # each store reported, not only the first failing
                failures[case] = f"{type(exc).__name__}: {exc}"
        try:
            _readme_example(browser, stores["local-signed"][1], monkeypatch)
        except Exception as exc:
            failures["README example"] = f"{type(exc).__name__}: {exc}"
        assert not failures, failures


def _readme_block(marker: str) -> str:
    """The README's Python block holding ``marker``."""
    return next(block for block in BLOCKS if marker in block)


def _readme_example(browser: Any, storage: StorageAdapter,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """README "Browser uploads" as written: its view signs (on the test's local signed
    store, standing in for the one it configures) and its JavaScript uploads a file
    from the page; its download link saves the file under its non-ASCII name."""
    monkeypatch.setattr(perceptra_storage, "get_storage_adapter",
                        lambda *args, **kwargs: storage)
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(_readme_block("def upload_grant"), "README.md", "exec"), namespace)
    VIEW["uploads"] = lambda asked: namespace["upload_grant"]("u42", asked["name"],
                                                              asked["type"])
    javascript = re.findall(r"```javascript\n(.*?)```", README, flags=re.S)[0]
    browser.execute_script("window.eval(arguments[0])", javascript)
    key: Optional[str] = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "upload(new File(['%PDF from the page'], 'résumé.pdf', {type: 'application/pdf'}))"
        ".then(done, e => done('failed: ' + e));")
    assert key is not None and key.startswith("uploads/u42/"), key
    assert storage.download_file(key) == b"%PDF from the page"
    assert storage.get_file_metadata(key).content_type == "application/pdf"
    status, body, disposition = _run(browser, "getFile", namespace["download_link"](key))
    assert (status, body) == (200, "%PDF from the page")
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in disposition
