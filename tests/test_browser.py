"""A real browser uploads and downloads with signed grants, cross-origin.

Headless Chromium (Debian's, through its WebDriver) opens a page served from one
loopback origin; the page's scripts PUT with ``fetch`` to presigned URLs, POST an
HTML form to a POST policy and GET presigned downloads on another origin: Ceph's
RADOS Gateway (minio backend), Azurite (azure) and the local signed-URL server.
Each succeeds with CORS allowed for the page's origin; a tampered URL, an expired
one, a wrong Content-Type and a file over ``max_size`` are refused with the store
unchanged. One browser for the whole module (starting Chromium costs seconds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from perceptra_storage import StorageAdapter, StorageOperationError
from tests.conftest import started_backend, unavailable
from tests.servers.common import ServerUnavailable

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
function postForm(url, fields, text, type, done) {
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
  // A refusal loads an error page into the frame; a 204 success loads nothing.
  document.getElementById('sink').onload = () => done('loaded');
  setTimeout(() => done('no page'), 2000);
  document.body.append(form);
  form.submit();
}
</script></body></html>"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

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


@pytest.fixture(scope="module")
def browser(page_origin: str) -> Iterator[Any]:
    """One headless Chromium for the module, on the test page."""
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
    import os

    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root otherwise
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_script_timeout(30)
    driver.get(f"{page_origin}/")
    yield driver
    driver.quit()


def _run(browser: Any, function: str, *args: Any) -> Any:
    """Call one of the page's async functions and return its result."""
    if function == "postForm":
        return browser.execute_async_script(
            "postForm(...arguments)", *args)
    return browser.execute_async_script(
        f"const done = arguments[arguments.length - 1];"
        f"{function}(...Array.from(arguments).slice(0, -1)).then(done);", *args)


def _refused(result: Any) -> bool:
    """A request the store refused: 403, or a failure the page cannot read (a store may
    leave CORS headers off its error answers, so the browser hides the status); the
    tests also check that the store did not change."""
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


@pytest.mark.parametrize("case", ["minio", "azure", "local-signed"])
def test_browser_uploads_and_downloads(case: str, browser: Any, page_origin: str,
                                       request: pytest.FixtureRequest,
                                       tmp_path: Path) -> None:
    with started_backend(case, request, tmp_path) as backend:
        storage: StorageAdapter = backend.make()
        if backend.cors:
            storage.set_cors([page_origin], methods=["GET", "PUT", "POST", "HEAD"],
                             expose_headers=["ETag", "Content-Disposition"])

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
        expired = storage.generate_presigned_url("in/e.txt", method="PUT", expiration=1,
                                                 content_type="text/plain")
        if backend.pinned_headers_enforced:
            wrong = storage.generate_presigned_url("in/w.txt", method="PUT",
                                                   content_type="text/plain")
            headers = {**wrong.headers, "Content-Type": "text/html"}
            assert _refused(_run(browser, "putFile", wrong.url, headers, "<b>x</b>",
                                 "text/html"))
            assert not storage.file_exists("in/w.txt")
        time.sleep(max(0.0, (expired.expires_at.timestamp() - time.time())) + 1.1)
        assert _refused(_run(browser, "putFile", expired.url, expired.headers, "x",
                             "text/plain"))
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
        post = storage.generate_presigned_post("in/form.txt", max_size=10,
                                               content_type="text/plain")
        assert _run(browser, "postForm", post.url, post.fields, "x" * 11,
                    "text/plain") == "loaded"  # the store's error page
        assert not storage.file_exists("in/form.txt")
        _run(browser, "postForm", post.url, post.fields, "form", "text/plain")
        deadline = time.monotonic() + 10
        while not storage.file_exists("in/form.txt") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert storage.download_file("in/form.txt") == b"form"
