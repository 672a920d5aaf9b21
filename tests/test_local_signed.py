"""The local backend with ``signing_key``: the contract's URL, browser and secrecy tests
with its signed HTTP URLs served by ``perceptra_storage.server``, then what only that
server has (status codes, ranges, CORS, verification, the ``serve`` command)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from perceptra_storage import (
    LocalStorageAdapter,
    StorageOperationError,
    StoragePermissionError,
    StorageValidationError,
    get_storage_adapter,
)
from tests.cases_local_signed import serve
from tests.contract.browser import BrowserTests, http, tampered
from tests.contract.security import SecurityTests
from tests.contract.urls import UrlTests


class TestLocalSignedContract(UrlTests, BrowserTests, SecurityTests):
    """The contract's URL, browser and secrecy tests on a local store whose URLs are
    signed and served over HTTP; the rest of the contract is the plain local backend's
    (tests/test_local.py), which stores and reads the same way."""

    case = "local-signed"


ORIGIN = "http://127.0.0.1:9"


@pytest.fixture
def signed(tmp_path: Path) -> Iterator[LocalStorageAdapter]:
    """A signing local adapter and its server, which allows CORS for ORIGIN only."""
    config, stop = serve({"base_path": str(tmp_path / "store")}, origins=(ORIGIN,))
    adapter = get_storage_adapter("local", config)
    assert isinstance(adapter, LocalStorageAdapter)
    yield adapter
    stop()


def test_status_codes(signed: LocalStorageAdapter) -> None:
    put = signed.generate_presigned_url("a/b c é.txt", method="PUT", expiration=60)
    assert put.url.startswith(signed.config["base_url"]) and put.expiry_enforced
    assert http(put.url, "PUT", b"body")[0] == 201
    assert signed.download_file("a/b c é.txt") == b"body"
    get = signed.generate_presigned_url("a/b c é.txt")
    assert http(get.url)[0] == 200
    assert http(get.url, "PUT", b"x")[0] == 403  # signed for GET
    assert http(get.url, "DELETE")[0] == 403
    missing = signed.generate_presigned_url("a/none.txt")
    assert http(missing.url)[0] == 404
    delete = signed.generate_presigned_url("a/b c é.txt", method="DELETE")
    assert http(delete.url, "DELETE")[0] == 204
    assert http(delete.url, "DELETE")[0] == 404
    assert not signed.file_exists("a/b c é.txt")


def test_tampered_and_expired_urls_are_refused(signed: LocalStorageAdapter) -> None:
    signed.upload_file(b"secret", "k.txt")
    signed.upload_file(b"other", "other.txt")
    url = signed.generate_presigned_url("k.txt").url
    assert http(url.replace("/k.txt", "/other.txt"))[0] == 403
    assert http(url[:-1] + ("0" if url[-1] != "0" else "1"))[0] == 403
    expires = url.split("X-Ps-Expires=")[1].split("&")[0]
    assert http(tampered(url, expires, str(int(expires) + 3600)))[0] == 403
    assert http(tampered(url, "GET", "DELETE"), "DELETE")[0] == 403
    assert http(url.split("?")[0])[0] == 403
    short = signed.generate_presigned_url("k.txt", expiration=1)
    time.sleep(1.1)
    status, _, body = http(short.url)
    assert status == 403 and b"expired" in body
    with pytest.raises(StoragePermissionError, match="expired"):
        signed.verify_presigned_url(short.url)
    assert signed.download_file("k.txt") == b"secret"


def test_verify_presigned_url(signed: LocalStorageAdapter) -> None:
    put = signed.generate_presigned_url("v.txt", method="PUT", content_type="text/plain",
                                        metadata={"original-name": "v.txt"})
    assert put.headers == {"Content-Type": "text/plain", "x-ps-meta-original-name": "v.txt"}
    verified = signed.verify_presigned_url(put.url, "PUT", put.headers)
    assert verified.key == "v.txt" and verified.method == "PUT"
    with pytest.raises(StoragePermissionError, match="signature"):
        signed.verify_presigned_url(put.url, "PUT", {**put.headers, "Content-Type": "text/html"})
    with pytest.raises(StoragePermissionError, match="not PUT"):
        signed.verify_presigned_url(signed.generate_presigned_url("v.txt").url, "PUT")
    with pytest.raises(StoragePermissionError, match="base_url"):
        signed.verify_presigned_url("http://elsewhere.example/v.txt?X-Ps-Method=GET")
    unsigned = get_storage_adapter("local", {"base_path": signed.config["base_path"]})
    with pytest.raises(StorageOperationError, match="signing_key"):
        unsigned.verify_presigned_url(put.url, "PUT")  # type: ignore[attr-defined]


def test_ranges_and_streaming(signed: LocalStorageAdapter) -> None:
    data = bytes(range(256)) * 1024  # 256 KiB: several chunks
    signed.upload_file(data, "r.bin")
    url = signed.generate_presigned_url("r.bin").url
    status, headers, body = http(url, headers={"Range": "bytes=10-19"})
    assert (status, body, headers["content-range"]) == (206, data[10:20],
                                                        f"bytes 10-19/{len(data)}")
    assert http(url, headers={"Range": "bytes=-5"})[2] == data[-5:]
    assert http(url, headers={"Range": "bytes=262000-"})[2] == data[262000:]
    assert http(url, headers={"Range": f"bytes={len(data)}-"})[0] == 416
    status, headers, body = http(url)
    assert status == 200 and body == data and headers["accept-ranges"] == "bytes"
    head = signed.generate_presigned_url("r.bin", method="HEAD").url
    status, headers, body = http(head, "HEAD")
    assert (status, body, headers["content-length"]) == (200, b"", str(len(data)))


def test_short_body_stores_nothing(signed: LocalStorageAdapter) -> None:
    import http.client
    from urllib.parse import urlsplit

    put = signed.generate_presigned_url("short.bin", method="PUT")
    parts = urlsplit(put.url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=5)
    connection.putrequest("PUT", f"{parts.path}?{parts.query}")
    connection.putheader("Content-Length", "100")
    connection.endheaders(b"only ten b")
    connection.sock.shutdown(1)  # the client gives up mid-body
    assert connection.getresponse().status == 400
    connection.close()
    assert not signed.file_exists("short.bin")


def test_cors_preflight(signed: LocalStorageAdapter) -> None:
    url = signed.generate_presigned_url("c.txt", method="PUT").url
    status, headers, _ = http(url, "OPTIONS", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type"})
    assert status == 204
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "PUT" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "content-type"
    assert http(url, "OPTIONS", headers={"Origin": "http://evil.example",
                                         "Access-Control-Request-Method": "PUT"})[0] == 403
    status, headers, _ = http(url, "PUT", b"x", {"Origin": ORIGIN})
    assert status == 201 and headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in http(
        url, "PUT", b"x", {"Origin": "http://evil.example"})[1]


def test_signing_config_is_checked_and_secret(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    base = str(tmp_path / "s")
    with pytest.raises(StorageValidationError, match="go together"):
        get_storage_adapter("local", {"base_path": base, "signing_key": "k" * 40})
    with pytest.raises(StorageValidationError, match="at least 32"):
        get_storage_adapter("local", {"base_path": base, "signing_key": "short",
                                      "base_url": "http://127.0.0.1:1"})
    with pytest.raises(StorageValidationError, match="base_url"):
        get_storage_adapter("local", {"base_path": base, "signing_key": "k" * 40,
                                      "base_url": "127.0.0.1:1"})
    secret = "s3cr3t-" * 6
    adapter = get_storage_adapter("local", {"base_path": base, "signing_key": secret,
                                            "base_url": "http://127.0.0.1:1"})
    caplog.set_level(logging.DEBUG, logger="perceptra_storage")
    with pytest.raises(StoragePermissionError) as info:
        adapter.verify_presigned_url(  # type: ignore[attr-defined]
            adapter.generate_presigned_url("k").url + "0")
    assert secret not in repr(adapter) and secret not in str(info.value)
    assert secret not in caplog.text


def test_without_signing_key_urls_stay_file_uris(tmp_path: Path) -> None:
    adapter = get_storage_adapter("local", {"base_path": str(tmp_path / "f")})
    adapter.upload_file(b"x", "f.txt")
    assert adapter.generate_presigned_url("f.txt").url.startswith("file://")
    with pytest.raises(StorageOperationError):
        adapter.generate_presigned_url("f.txt", method="PUT")


def test_serve_command(tmp_path: Path) -> None:
    """``perceptra-storage serve`` serves a profile's signed URLs; its signing key comes
    from the environment and never reaches the output."""
    import socket

    with socket.socket() as probe:  # a free port, so base_url can name it up front
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        '[dev]\nbackend = "local"\n'
        f'config = {{ base_path = "{(tmp_path / "served").as_posix()}", '
        f'signing_key = "${{DEV_SIGNING_KEY}}", base_url = "http://127.0.0.1:{port}" }}\n')
    secret = "k" * 40
    env = {**os.environ, "PERCEPTRA_STORAGE_PROFILES": str(profiles),
           "DEV_SIGNING_KEY": secret}
    process = subprocess.Popen(
        [sys.executable, "-m", "perceptra_storage", "serve", "dev", "--port", str(port),
         "--json", "--allow-origin", ORIGIN],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert json.loads(line)["url"] == f"http://127.0.0.1:{port}"
        adapter = get_storage_adapter("local", {"base_path": str(tmp_path / "served"),
                                                "signing_key": secret,
                                                "base_url": f"http://127.0.0.1:{port}"})
        put = adapter.generate_presigned_url("cli.txt", method="PUT")
        assert http(put.url, "PUT", b"via cli", {"Origin": ORIGIN})[0] == 201
        assert http(adapter.generate_presigned_url("cli.txt").url)[2] == b"via cli"
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=10)
    assert secret not in line and secret not in errors
