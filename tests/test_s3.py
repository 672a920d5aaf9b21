"""The ``s3`` backend's entry point: the whole contract, then what only it has (config
translation, the SigV4 signer, URL shapes, connection failures, multipart uploads).
Runs against moto's S3 server over HTTP."""

from __future__ import annotations

import http.server
import io
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import fsspec
import pytest
from fsspec.asyn import sync

from perceptra_storage import (
    StorageConnectionError,
    StorageError,
    StorageNotFoundError,
    StorageOperationError,
    StoragePermissionError,
    StorageTimeoutError,
    StorageValidationError,
    get_storage_adapter,
)
from perceptra_storage.backends._s3fs import PART_SIZE
from perceptra_storage.backends.s3 import S3StorageAdapter
from tests.cases_s3 import ENGINES, fetch, new_bucket, s3_client, s3_config, s3_credentials
from tests.conftest import started_backend
from tests.contract import Contract
from tests.servers.common import S3Server, free_port
from tests.servers.faultproxy import FaultProxy


class TestS3Contract(Contract):
    """The whole contract on the s3 backend."""

    case = "s3"

MiB = 2**20


@pytest.fixture
def bucket(moto_server: S3Server) -> Iterator[str]:
    name, remove = new_bucket(moto_server)
    yield name
    remove()


@pytest.fixture
def s3(moto_server: S3Server, bucket: str) -> S3StorageAdapter:
    adapter = get_storage_adapter("s3", s3_config(moto_server, bucket),
                                  s3_credentials(moto_server))
    assert isinstance(adapter, S3StorageAdapter)
    return adapter


# --- config translation ---------------------------------------------------------------


def test_config_is_translated_without_touching_the_callers_dicts() -> None:
    config = {"bucket_name": "my-bucket", "region": "eu-west-1", "prefix": "/tenant/a/",
              "endpoint_url": "https://s3.example.com:9000/"}
    credentials = {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t-value",
                   "session_token": "tok3n-value"}
    before = (dict(config), dict(credentials))
    adapter = get_storage_adapter("s3", config, credentials)
    assert (config, credentials) == before
    options = adapter.native_storage_options
    assert options["endpoint_url"] == "https://s3.example.com:9000"
    assert (options["key"], options["secret"], options["token"]) == (
        "AKIAEXAMPLE", "s3cr3t-value", "tok3n-value")
    assert options["client_kwargs"] == {"region_name": "eu-west-1"}
    assert options["config_kwargs"]["signature_version"] == "s3v4"
    assert options["config_kwargs"]["s3"] == {"addressing_style": "path"}
    assert options["use_listings_cache"] is False
    twin = get_storage_adapter("s3", config, credentials)
    assert twin.filesystem is not adapter.filesystem
    assert adapter.native_url("k.csv") == "s3://my-bucket/tenant/a/k.csv"
    assert "s3cr3t" not in repr(adapter) and "tok3n" not in repr(adapter)


def test_no_credentials_leave_the_aws_chain_to_botocore() -> None:
    options = get_storage_adapter("s3", {"bucket_name": "b-1"}).native_storage_options
    assert not {"key", "secret", "token", "anon"} & set(options)
    assert "s3" not in options["config_kwargs"]  # AWS itself: botocore picks the style


def test_unknown_field_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(StorageValidationError) as info:
        get_storage_adapter("s3", {"bucket": "my-bucket"})
    message = str(info.value)
    assert "'bucket'" in message and "bucket_name" in message and "endpoint_url" in message
    with pytest.raises(StorageValidationError, match="access_key_id"):
        get_storage_adapter("s3", {"bucket_name": "b-1"}, {"aws_access_key_id": "x"})


@pytest.mark.parametrize("name", ["ab", "x" * 64, "My-Bucket", "under_score", "-start",
                                  "end-", "a..b", "192.168.1.10", "sp ace", "dot."])
def test_invalid_bucket_names_are_refused_at_construction(name: str) -> None:
    with pytest.raises(StorageValidationError, match="bucket_name"):
        get_storage_adapter("s3", {"bucket_name": name})


@pytest.mark.parametrize("name", ["abc", "x" * 63, "my.bucket-1", "0day", "a-b.c-d"])
def test_valid_bucket_names_are_accepted(name: str) -> None:
    assert get_storage_adapter("s3", {"bucket_name": name}).get_public_url("k")


@pytest.mark.parametrize("credentials, field", [
    ({"access_key_id": "AKIA"}, "secret_access_key"),
    ({"secret_access_key": "s3cr3t-only"}, "access_key_id"),
    ({"session_token": "tok3n-only"}, "session_token"),
])
def test_incomplete_credentials_name_the_missing_field(credentials: dict[str, str],
                                                       field: str) -> None:
    with pytest.raises(StorageValidationError, match=field) as info:
        get_storage_adapter("s3", {"bucket_name": "b-1"}, credentials)
    assert "s3cr3t" not in str(info.value) and "tok3n" not in str(info.value)


@pytest.mark.parametrize("endpoint", ["s3.example.com", "ftp://s3.example.com",
                                      "https://s3.example.com/some/path", "https://:9000",
                                      "https://host:notaport", "https://user:pw@host"])
def test_bad_endpoint_is_refused(endpoint: str) -> None:
    with pytest.raises(StorageValidationError, match="endpoint_url") as info:
        get_storage_adapter("s3", {"bucket_name": "b-1", "endpoint_url": endpoint})
    assert ":pw@" not in str(info.value)


def test_construction_never_touches_the_network() -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    adapter = get_storage_adapter("s3", {"bucket_name": "b-1", "endpoint_url": unreachable})
    assert adapter.get_public_url("k") == f"{unreachable}/b-1/k"


# --- URLs --------------------------------------------------------------------------------


def test_public_url_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    def url(config: dict[str, Any], key: str = "dir/a b+c.txt") -> str | None:
        return get_storage_adapter("s3", config).get_public_url(key)

    assert url({"bucket_name": "my-bucket", "region": "us-west-2"}) == \
        "https://my-bucket.s3.us-west-2.amazonaws.com/dir/a%20b%2Bc.txt"
    assert url({"bucket_name": "my-bucket", "region": "us-west-2", "prefix": "t/1"}) == \
        "https://my-bucket.s3.us-west-2.amazonaws.com/t/1/dir/a%20b%2Bc.txt"
    assert url({"bucket_name": "my.dotted.bucket", "region": "eu-central-1"}, "k") == \
        "https://s3.eu-central-1.amazonaws.com/my.dotted.bucket/k"
    assert url({"bucket_name": "r2-bucket", "endpoint_url": "https://acct.r2.example.com"},
               "k") == "https://acct.r2.example.com/r2-bucket/k"
    assert url({"bucket_name": "my-bucket", "prefix": "p",
                "public_base_url": "https://cdn.example.com/assets/"}, "x/y.png") == \
        "https://cdn.example.com/assets/p/x/y.png"
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    assert url({"bucket_name": "my-bucket"}, "k") == "https://my-bucket.s3.amazonaws.com/k"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert url({"bucket_name": "my-bucket"}, "k") == \
        "https://my-bucket.s3.ap-south-1.amazonaws.com/k"
    with pytest.raises(StorageValidationError, match="public_base_url"):
        get_storage_adapter("s3", {"bucket_name": "b-1", "public_base_url": "cdn.example.com"})


def test_presigned_urls_for_every_method_work_with_plain_http(s3: S3StorageAdapter) -> None:
    put = s3.generate_presigned_url("up/new.bin", expiration=300, method="PUT")
    assert (put.method, put.headers, put.scoped, put.expiry_enforced) == ("PUT", {}, True, True)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in put.url and "X-Amz-Expires=300" in put.url
    assert fetch(put.url, "PUT", b"uploaded with urllib")[0] == 200
    assert s3.download_file("up/new.bin") == b"uploaded with urllib"

    get = s3.generate_presigned_url("up/new.bin", expiration=300)
    assert fetch(get.url) == (200, b"uploaded with urllib")
    head = s3.generate_presigned_url("up/new.bin", method="head")
    assert fetch(head.url, "HEAD")[0] == 200
    delete = s3.generate_presigned_url("up/new.bin", method="DELETE")
    assert fetch(delete.url, "DELETE")[0] == 204
    assert not s3.file_exists("up/new.bin")


def test_presigned_url_expiry_is_the_signed_one(s3: S3StorageAdapter) -> None:
    from datetime import UTC, datetime, timedelta

    signed = s3.generate_presigned_url("k", expiration=7 * 24 * 3600)
    query = parse_qs(urlsplit(signed.url).query)
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert signed.expires_at == signed_at + timedelta(days=7)
    assert query["X-Amz-Expires"] == ["604800"]


@pytest.mark.parametrize("config, credentials", [
    ({"bucket_name": "my-bucket", "region": "eu-west-1"}, {}),
    ({"bucket_name": "my.dotted.bucket", "region": "us-east-1"}, {}),
    ({"bucket_name": "b-1", "endpoint_url": "http://127.0.0.1:9000", "region": "us-east-1"},
     {"session_token": "FwoGZXIvYXdzE+/token=="}),
    ({"bucket_name": "b-1", "endpoint_url": "https://s3.example.com:443", "prefix": "t/a"}, {}),
])
def test_fast_signer_urls_equal_botocores(config: dict[str, Any],
                                          credentials: dict[str, str]) -> None:
    """The signer of _sigv4.py against botocore's own, for the same time: the same URL,
    signature included, for awkward keys and every method (no request is made)."""
    from datetime import UTC, datetime
    from urllib.parse import parse_qsl, urlsplit

    adapter = get_storage_adapter("s3", config, {"access_key_id": "AKIAEXAMPLEKEY",
                                                 "secret_access_key": "wJalr/K7+MDENG",
                                                 **credentials})
    client = adapter._signing_client()
    for key in ("plain.txt", "a b/ü é+%&=?#~!$'()*,;:@.bin", "deep/er/x"):
        for method, call in (("GET", "get_object"), ("PUT", "put_object"),
                             ("HEAD", "head_object"), ("DELETE", "delete_object")):
            name = f"{adapter.prefix}/{key}" if adapter.prefix else key
            theirs = client.generate_presigned_url(call, Params={"Bucket": config["bucket_name"],
                                                                 "Key": name},
                                                   ExpiresIn=900, HttpMethod=method)
            parts = urlsplit(theirs)
            stamp = dict(parse_qsl(parts.query))["X-Amz-Date"]
            signer = adapter._query_signer()
            assert signer is not None
            ours, _ = signer.sign(name, method, 900, datetime.strptime(
                stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
            mine = urlsplit(ours)
            assert (mine.scheme, mine.netloc, mine.path) == \
                (parts.scheme, parts.netloc, parts.path)
            assert dict(parse_qsl(mine.query)) == dict(parse_qsl(parts.query))


# --- test_connection ----------------------------------------------------------------------


def test_connection_missing_bucket_is_not_found(moto_server: S3Server) -> None:
    adapter = get_storage_adapter("s3", s3_config(moto_server, "no-such-bucket-here"),
                                  s3_credentials(moto_server))
    start = time.monotonic()
    with pytest.raises(StorageNotFoundError) as info:
        adapter.test_connection(timeout=5)
    assert time.monotonic() - start < 7
    assert info.value.operation == "test_connection"
    assert moto_server.secret_key not in str(info.value)


def test_connection_to_a_closed_port_fails_fast(moto_server: S3Server) -> None:
    config = {"bucket_name": "b-1", "endpoint_url": f"http://127.0.0.1:{free_port()}"}
    adapter = get_storage_adapter("s3", config, s3_credentials(moto_server))
    start = time.monotonic()
    with pytest.raises(StorageConnectionError) as info:
        adapter.test_connection(timeout=5)
    assert time.monotonic() - start < 3
    assert not isinstance(info.value.__cause__, StorageError)  # translated, with the cause
    start = time.monotonic()
    with pytest.raises(StorageConnectionError) as info:
        adapter.download_file("k")
    assert time.monotonic() - start < 10
    assert moto_server.secret_key not in str(info.value)


def test_connection_to_a_silent_server_times_out(moto_server: S3Server) -> None:
    host, port = moto_server.endpoint_url.rsplit("/", 1)[1].split(":")
    proxy = FaultProxy(host, int(port))
    try:
        proxy.set("blackhole")
        config = {"bucket_name": "b-1", "endpoint_url": f"http://{proxy.address}"}
        adapter = get_storage_adapter("s3", config, s3_credentials(moto_server))
        start = time.monotonic()
        with pytest.raises(StorageTimeoutError):
            adapter.test_connection(timeout=2)
        assert time.monotonic() - start < 4
    finally:
        proxy.close()


def test_aws_credential_chain_is_used_without_credentials(
        moto_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_server.secret_key)
    adapter = get_storage_adapter("s3", s3_config(moto_server, bucket))
    assert adapter.test_connection(timeout=5)
    adapter.upload_file(b"chain", "c.txt")
    assert adapter.download_file("c.txt") == b"chain"
    assert "X-Amz-Credential=" + moto_server.access_key in \
        adapter.generate_presigned_url("c.txt").url


def test_no_credentials_anywhere_is_a_permission_error(
        moto_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    adapter = get_storage_adapter("s3", s3_config(moto_server, bucket))
    with pytest.raises(StoragePermissionError, match="credentials"):
        adapter.test_connection(timeout=5)
    with pytest.raises(StoragePermissionError):
        adapter.upload_file(b"x", "k")


# --- multipart uploads --------------------------------------------------------------------


def _uploads(moto_server: S3Server, bucket: str) -> list[dict[str, Any]]:
    return list(s3_client(moto_server).list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_large_file_goes_up_in_concurrent_parts(s3: S3StorageAdapter, moto_server: S3Server,
                                                bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "big.bin"
    with open(local, "wb") as f:
        for n in range(100):
            f.write(bytes([n]) * MiB)
    in_flight: list[int] = []

    def progress(done: int, total: Any) -> None:
        if done < total and len(in_flight) < 1:
            in_flight.append(len(_uploads(moto_server, bucket)))

    s3.upload_file(local, "big/100mib.bin", progress=progress)
    assert in_flight == [1]  # a multipart upload was open while parts went up
    parts = -(-100 * MiB // PART_SIZE)
    info = s3.get_file_metadata("big/100mib.bin")
    assert info.size == 100 * MiB and info.etag and info.etag.endswith(f"-{parts}")
    assert _uploads(moto_server, bucket) == []
    with s3.open("big/100mib.bin") as f:
        f.seek(99 * MiB)
        assert f.read(4) == bytes([99]) * 4


class _BreaksAfter(io.RawIOBase):
    """A source that gives ``good`` bytes and then fails, recording whether a
    multipart upload was open at that moment."""

    def __init__(self, good: int, check: Any) -> None:
        self._left = good
        self._check = check
        self.open_uploads: list[int] = []
        self.mode = "rb"

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            self.open_uploads.append(self._check())
            raise OSError("source connection dropped")
        chunk = b"\x07" * min(self._left, MiB if size is None or size < 0 else size)
        self._left -= len(chunk)
        return chunk


def test_failed_stream_upload_aborts_its_multipart_upload(
        s3: S3StorageAdapter, moto_server: S3Server, bucket: str) -> None:
    source = _BreaksAfter(12 * MiB, lambda: len(_uploads(moto_server, bucket)))
    with pytest.raises(StorageError) as info:
        s3.upload_file(source, "broken/stream.bin")
    assert isinstance(info.value.__cause__, OSError)
    assert source.open_uploads == [1]
    assert _uploads(moto_server, bucket) == []
    assert not s3.file_exists("broken/stream.bin")


def test_failed_file_upload_aborts_its_multipart_upload(
        s3: S3StorageAdapter, moto_server: S3Server, bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "twenty.bin"
    local.write_bytes(b"\x01" * 20 * MiB)
    seen: list[int] = []

    def cancel(done: int, total: Any) -> None:
        seen.append(len(_uploads(moto_server, bucket)))
        raise RuntimeError("cancelled by the user")

    with pytest.raises(StorageError, match="cancelled"):
        s3.upload_file(local, "broken/file.bin", progress=cancel)
    assert seen and seen[0] == 1
    deadline = time.monotonic() + 5
    while _uploads(moto_server, bucket) and time.monotonic() < deadline:
        time.sleep(0.1)  # parts still in flight when the abort was sent
    assert _uploads(moto_server, bucket) == []
    assert not s3.file_exists("broken/file.bin")


def test_failed_open_write_aborts_its_multipart_upload(
        s3: S3StorageAdapter, moto_server: S3Server, bucket: str) -> None:
    with pytest.raises(RuntimeError), s3.open("broken/open.bin", "wb") as f:
        for _ in range(12):
            f.write(b"\x02" * MiB)
        assert len(_uploads(moto_server, bucket)) == 1
        raise RuntimeError("writer crashed")
    assert _uploads(moto_server, bucket) == []
    assert not s3.file_exists("broken/open.bin")


def test_twenty_mib_file_is_multipart_and_reachable_through_fsspec(
        s3: S3StorageAdapter, tmp_path: Path) -> None:
    local = tmp_path / "twenty.bin"
    data = bytes(range(256)) * (20 * MiB // 256)
    local.write_bytes(data)
    s3.upload_file(local, "twenty.bin", metadata={"kind": "blob"})
    info = s3.get_file_metadata("twenty.bin")
    parts = -(-20 * 2**20 // PART_SIZE)
    assert info.etag and info.etag.endswith(f"-{parts}") and info.metadata == {"kind": "blob"}
    with fsspec.open(s3.url("twenty.bin"), "rb", **s3.storage_options) as f:
        assert f.read() == data


def test_parts_grow_when_a_file_would_need_more_than_the_part_limit(
        s3: S3StorageAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import perceptra_storage.backends._s3fs as module

    monkeypatch.setattr(module, "MAX_PARTS", 2)  # as if 20 MiB were past 10,000 parts
    local = tmp_path / "twenty.bin"
    local.write_bytes(b"\x03" * 20 * MiB)
    s3.upload_file(local, "grown.bin")
    etag = s3.get_file_metadata("grown.bin").etag
    assert etag and etag.endswith("-2")


def test_checksums_default_to_when_required_on_custom_endpoints() -> None:
    """botocore >= 1.36 checksums every upload; S3-compatible servers that predate them
    refuse those, so a custom endpoint gets them only where an operation needs one."""
    custom = get_storage_adapter("s3", {"bucket_name": "bkt", "endpoint_url": "http://127.0.0.1:1"})
    options = custom._botocore_config()  # type: ignore[attr-defined]
    assert options["request_checksum_calculation"] == "when_required"
    assert options["response_checksum_validation"] == "when_required"
    aws = get_storage_adapter("s3", {"bucket_name": "bkt", "region": "us-east-1"})
    assert "request_checksum_calculation" not in aws._botocore_config()  # type: ignore[attr-defined]
    chosen = get_storage_adapter("s3", {"bucket_name": "bkt", "endpoint_url": "http://127.0.0.1:1",
                                        "request_checksum_calculation": "when_supported"})
    assert chosen._botocore_config()[  # type: ignore[attr-defined]
        "request_checksum_calculation"] == "when_supported"
    with pytest.raises(StorageValidationError, match="request_checksum_calculation"):
        get_storage_adapter("s3", {"bucket_name": "bkt", "request_checksum_calculation": "always"})


def test_presigned_put_signs_exactly_the_pinned_headers(s3: S3StorageAdapter) -> None:
    signed = s3.generate_presigned_url("p/x.txt", method="PUT", content_type="text/plain",
                                       metadata={"original-name": "x"},
                                       cache_control="no-cache")
    query = parse_qs(urlsplit(signed.url).query)
    assert query["X-Amz-SignedHeaders"] == [
        "cache-control;content-type;host;x-amz-meta-original-name"]
    assert signed.headers == {"Content-Type": "text/plain", "Cache-Control": "no-cache",
                              "x-amz-meta-original-name": "x"}
    assert not any("checksum" in name.lower() for name in query)


# --- a bucket in another region -----------------------------------------------------------


class _WrongRegion(http.server.BaseHTTPRequestHandler):
    """Answers as S3 does when a request is signed for the wrong region: 301 with the
    bucket's region in a header to a HEAD, 400 AuthorizationHeaderMalformed naming the
    expected region to the rest."""

    def do_HEAD(self) -> None:
        self.send_response(301)
        self.send_header("x-amz-bucket-region", "eu-west-1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        body = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>"
                b"<Code>AuthorizationHeaderMalformed</Code><Message>The authorization header "
                b"is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'"
                b"</Message><Region>eu-west-1</Region></Error>")
        self.send_response(400)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def test_wrong_region_names_the_right_one(moto_server: S3Server) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WrongRegion)
    threading.Thread(target=server.serve_forever, name="wrong-region", daemon=True).start()
    try:
        config = {"bucket_name": "b-1", "region": "us-east-1",
                  "endpoint_url": f"http://127.0.0.1:{server.server_port}", "max_attempts": 1}
        adapter = get_storage_adapter("s3", config, s3_credentials(moto_server))
        for call in (lambda: adapter.download_file("k"), lambda: adapter.file_exists("k"),
                     lambda: adapter.upload_file(b"x", "k"),
                     lambda: adapter.test_connection(timeout=5)):
            with pytest.raises(StorageError, match="region='eu-west-1'") as info:
                call()
            assert not isinstance(info.value, StorageConnectionError)
    finally:
        server.shutdown()
        server.server_close()


# --- credentials: shared-file profiles, refresh functions, expiry ---------------------------


def aws_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: S3Server,
              keys_profile: str, config: str) -> None:
    """AWS shared credentials and config files of this test only, with the server's keys
    under ``keys_profile``, and no AWS variables of the machine in the way."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "credentials").write_text(
        f"[{keys_profile}]\naws_access_key_id = {server.access_key}\n"
        f"aws_secret_access_key = {server.secret_key}\n")
    (tmp_path / "config").write_text(config)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))


@ENGINES
def test_a_profile_gives_keys_and_region(
        moto_server: S3Server, bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, engine: str) -> None:
    aws_files(monkeypatch, tmp_path, moto_server, "analytics",
              "[profile analytics]\nregion = eu-west-2\n")
    adapter = get_storage_adapter("s3", {"bucket_name": bucket, "engine": engine,
                                         "endpoint_url": moto_server.endpoint_url},
                                  {"profile": "analytics"})
    adapter.upload_file(b"by profile", "p.txt")
    assert adapter.download_file("p.txt") == b"by profile"
    url = adapter.generate_presigned_url("p.txt").url
    assert moto_server.access_key in url and "eu-west-2" in url
    assert fetch(url) == (200, b"by profile")
    options = adapter.native_storage_options
    assert options["profile"] == "analytics" and "aws_profile" not in options
    assert moto_server.secret_key not in repr(adapter)
    assert moto_server.secret_key in adapter._secret_values()  # masked in logs and errors
    assert "analytics" not in adapter._secret_values()
    public = get_storage_adapter("s3", {"bucket_name": "plain-bucket"},
                                 {"profile": "analytics"})
    assert public.get_public_url("k") == "https://plain-bucket.s3.eu-west-2.amazonaws.com/k"


@ENGINES
def test_refresh_function_answers_are_checked(moto_server: S3Server, bucket: str,
                                              engine: str) -> None:
    """What a refresh function returns is checked when it is called: expired or
    incomplete credentials are a permission error saying what is wrong."""
    answers: list[Any] = [
        {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t-value-1",
         "expires_at": datetime.now(UTC) - timedelta(minutes=1)},
        {"access_key_id": "AKIAEXAMPLE", "expires_at": "2099-01-01T00:00:00Z"},
        "not a dict",
    ]
    for answer, reason in zip(answers, ("have expired", "secret_access_key", "not a dict"),
                              strict=True):
        adapter = get_storage_adapter("s3", {**s3_config(moto_server, bucket),
                                             "engine": engine},
                                      {"refresh": lambda answer=answer: answer})
        with pytest.raises(StoragePermissionError, match=reason) as info:
            adapter.upload_file(b"x", "k")
        assert "s3cr3t-value-1" not in str(info.value)

    def vault_down() -> dict[str, Any]:
        raise LookupError("vault down")

    # A function that raises: its error, typed by the one table, on every kind of call
    # (obstore keeps only the text of what its credential provider raised).
    adapter = get_storage_adapter("s3", {**s3_config(moto_server, bucket), "engine": engine},
                                  {"refresh": vault_down})
    for call in (lambda: adapter.upload_file(b"x", "k"), lambda: adapter.download_file("k"),
                 lambda: adapter.file_exists("k"), lambda: list(adapter.list_files())):
        with pytest.raises(StorageError, match="LookupError: vault down") as failed:
            call()
        assert type(failed.value) is StorageOperationError
    with pytest.raises(StorageValidationError, match="refresh"):
        get_storage_adapter("s3", s3_config(moto_server, bucket), {"refresh": "not callable"})


# --- presigned URLs end with the temporary credentials that sign them ----------------------


def _assumed_role(moto_server: S3Server, seconds: int) -> dict[str, Any]:
    """Session credentials from moto's STS (AssumeRole over HTTP), as a refresh function
    returns them."""
    import botocore.session

    sts = botocore.session.get_session().create_client(
        "sts", region_name="us-east-1", endpoint_url=moto_server.endpoint_url,
        aws_access_key_id=moto_server.access_key,
        aws_secret_access_key=moto_server.secret_key)
    answer = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/uploader",
                             RoleSessionName="web", DurationSeconds=seconds)["Credentials"]
    return {"access_key_id": answer["AccessKeyId"], "secret_access_key": answer["SecretAccessKey"],
            "session_token": answer["SessionToken"], "expires_at": answer["Expiration"]}


@ENGINES
def test_presigned_urls_end_with_the_sts_credentials_that_sign_them(
        moto_server: S3Server, bucket: str, engine: str) -> None:
    """A URL cannot outlive the session credentials that signed it: ``expires_at`` is the
    earlier of the two, for URLs with options and POST policies too."""
    issued: list[dict[str, Any]] = []

    def refresh() -> dict[str, Any]:
        issued.append(_assumed_role(moto_server, 1800))
        return issued[-1]

    adapter = get_storage_adapter("s3", {**s3_config(moto_server, bucket), "engine": engine},
                                  {"refresh": refresh})
    adapter.upload_file(b"by role", "r.txt")
    ends = issued[-1]["expires_at"].astimezone(UTC)
    assert timedelta(minutes=25) < ends - datetime.now(UTC) <= timedelta(minutes=30, seconds=5)
    for signed in (adapter.generate_presigned_url("r.txt", expiration=7200),
                   adapter.generate_presigned_url("r.txt", expiration=7200,
                                                  download_name="r.txt"),
                   adapter.generate_presigned_post("r.txt", expiration=7200)):
        assert signed.expires_at == issued[-1]["expires_at"].astimezone(UTC)
    url = adapter.generate_presigned_url("r.txt", expiration=7200).url
    assert parse_qs(urlsplit(url).query)["X-Amz-Security-Token"] == \
        [issued[-1]["session_token"]]
    assert fetch(url) == (200, b"by role")
    short = adapter.generate_presigned_url("r.txt", expiration=60)
    assert short.expires_at < ends - timedelta(minutes=20)  # the requested one, earlier


@ENGINES
def test_presigned_urls_of_a_role_profile_end_with_its_session(
        moto_server: S3Server, bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, engine: str) -> None:
    """A profile that assumes a role (botocore's own STS call, to moto): the URL's
    ``expires_at`` is the role session's end (``duration_seconds``)."""
    aws_files(monkeypatch, tmp_path, moto_server, "base",
              "[profile uploader]\nrole_arn = arn:aws:iam::123456789012:role/uploader\n"
              "source_profile = base\nduration_seconds = 1800\nregion = us-east-1\n"
              "[profile base]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_server.endpoint_url)
    adapter = get_storage_adapter("s3", {**s3_config(moto_server, bucket), "engine": engine},
                                  {"profile": "uploader"})
    before = datetime.now(UTC)
    signed = adapter.generate_presigned_url("k.txt", method="PUT", expiration=7200)
    assert before + timedelta(minutes=25) < signed.expires_at <= \
        datetime.now(UTC) + timedelta(minutes=30, seconds=5)
    assert "X-Amz-Security-Token=" in signed.url
    assert fetch(signed.url, "PUT", b"by profile")[0] == 200
    assert adapter.download_file("k.txt") == b"by profile"


class TestS3ObstoreContract(Contract):
    """The whole contract on the s3 backend's obstore engine (``engine='obstore'``)."""

    case = "s3-obstore"


@pytest.mark.parametrize("case", ["s3", "minio"])
def test_a_completed_multipart_upload_is_recognised_by_its_parts(
        case: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """When the answer to a CompleteMultipartUpload is lost, its retry meets NoSuchUpload;
    the writer then checks the stored object's ETag against the parts it sent (S3's
    multipart ETag, as moto and Ceph RGW compute it) and succeeds only on a match."""
    with started_backend(case, request, tmp_path) as backend:
        adapter = backend.make()
        fs = adapter.filesystem
        writer = fs._open_writer(f"{adapter.config['bucket_name']}/mp.bin")
        sync(fs.loop, writer.write, os.urandom(2 * PART_SIZE + 1))
        sync(fs.loop, writer.commit)
        assert len(writer._parts) == 3
        assert sync(fs.loop, writer._completed) is True
        writer._parts = writer._parts[:2]
        assert sync(fs.loop, writer._completed) is False
