"""What browsers need: object headers, metadata names with hyphens, presigned URLs with
pinned headers and response overrides, POST upload policies and CORS rules, each over
plain HTTP (no SDK), and the clear refusal where a backend has no such thing."""

from __future__ import annotations

import gzip
import io
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

from perceptra_storage import (
    CorsRule,
    PresignedPost,
    StorageAdapter,
    StorageOperationError,
    StorageValidationError,
)
from perceptra_storage.validation import attachment
from tests.conftest import Backend
from tests.servers.shared import one_at_a_time

from .base import ContractBase, needs


@contextmanager
def cors_turn(backend: Backend, request: pytest.FixtureRequest) -> Iterator[None]:
    """Where CORS rules are the whole account's (``cors_shared``: Azure's blob service,
    and the run shares one Azurite), hold the run-wide turn while the block sets and
    relies on them: a test in another worker would replace them meanwhile."""
    if not backend.cors_shared:
        yield
        return
    with one_at_a_time(getattr(request.config, "workerinput", None), "cors"):
        yield


def http(url: str, method: str = "GET", data: Optional[bytes] = None,
         headers: Optional[dict[str, str]] = None) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP request: status, response headers (lower-case names), body."""
    sent = dict(headers or {})
    if data is not None and not any(name.lower() == "content-type" for name in sent):
        sent["Content-Type"] = "application/octet-stream"  # not urllib's form default
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, \
                response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def tampered(url: str, old: str, new: str) -> str:
    """``url`` with the query value ``old`` replaced by ``new`` (signature kept)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    assert any(value == old for _, value in pairs), pairs
    query = urlencode([(name, new if value == old else value) for name, value in pairs],
                      quote_via=quote)
    return urlunsplit(parts._replace(query=query))


def post_form(post: PresignedPost, content: bytes, content_type: str,
              extra: Optional[dict[str, str]] = None) -> tuple[int, bytes]:
    """POST ``content`` as an HTML form would (multipart/form-data, the file last)."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
             f"{value}\r\n".encode() for name, value in {**post.fields, **(extra or {})}.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="upload.bin"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
                 + content + f"\r\n--{boundary}--\r\n".encode())
    status, _, body = http(post.url, "POST", b"".join(parts),
                           {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return status, body


class BrowserTests(ContractBase):
    """Object headers, hyphenated metadata, presign options, POST policies, CORS."""

    # -- object headers --------------------------------------------------------------

    def test_object_headers_round_trip(self, storage: StorageAdapter) -> None:
        packed = gzip.compress(b"a,b\n1,2\n")
        storage.upload_file(packed, "h/data.csv", content_type="text/csv",
                            cache_control="public, max-age=60",
                            content_disposition='attachment; filename="data.csv"',
                            content_encoding="gzip")
        info = storage.get_file_metadata("h/data.csv")
        assert info.cache_control == "public, max-age=60"
        assert info.content_disposition == 'attachment; filename="data.csv"'
        assert info.content_encoding == "gzip"
        assert info.content_type == "text/csv"
        assert storage.download_file("h/data.csv") == packed  # stored as given, not decoded
        with storage.open("h/data.csv") as file:
            assert file.read() == packed
        sink = io.BytesIO()
        storage.download_file("h/data.csv", sink)
        assert sink.getvalue() == packed
        # An object stored without them reports None for each (listings too).
        storage.upload_file(b"x", "h/plain.bin")
        info = storage.get_file_metadata("h/plain.bin")
        assert (info.cache_control, info.content_disposition, info.content_encoding) == \
            (None, None, None)
        listed = storage.list_files("h/p")[0]
        assert listed.cache_control is None

    def test_object_headers_through_open_batch_and_copy(self, storage: StorageAdapter) -> None:
        with storage.open("h/opened.txt", "wb", content_type="text/plain",
                          metadata={"owner": "ana"}, cache_control="no-store") as file:
            file.write(b"written")
        opened = storage.get_file_metadata("h/opened.txt")
        assert (opened.content_type, opened.metadata, opened.cache_control) == \
            ("text/plain", {"owner": "ana"}, "no-store")
        result = storage.upload_files({"h/b1.txt": b"1", "h/b2.txt": b"2"},
                                      cache_control="max-age=5",
                                      content_disposition="inline")
        assert result.ok
        for key in ("h/b1.txt", "h/b2.txt"):
            info = storage.get_file_metadata(key)
            assert (info.cache_control, info.content_disposition) == ("max-age=5", "inline")
        storage.copy_file("h/opened.txt", "h/copied.txt")
        assert storage.get_file_metadata("h/copied.txt").cache_control == "no-store"

    # -- arguments checked before any request ---------------------------------------

    def test_bad_browser_arguments_are_refused_before_any_request(
            self, storage: StorageAdapter) -> None:
        """Object headers, metadata names, presign options, POST policy terms and CORS
        rules are checked before a byte moves: one store for every bad value (a store per
        value costs a bucket each)."""
        for field, value in [
                ("cache_control", "max-age=1\r\nX-Evil: 1"), ("content_disposition", " inline"),
                ("content_encoding", ""), ("cache_control", 5), ("content_disposition", "é")]:
            with pytest.raises(StorageValidationError, match=field):
                storage.upload_file(b"x", "h/bad.bin", **{field: value})
            with pytest.raises(StorageValidationError, match=field):
                storage.upload_files({"h/bad.bin": b"x"}, **{field: value})
        assert not storage.file_exists("h/bad.bin")
        for name in ["-lead", "trail-", "dou--ble", "Up-per"]:
            with pytest.raises(StorageValidationError, match="metadata name"):
                storage.upload_file(b"x", "m/bad.bin", metadata={name: "v"})
        presign_cases: list[tuple[str, dict[str, Any]]] = [
            ("DELETE", {"content_type": "text/plain"}), ("GET", {"metadata": {"a": "b"}}),
            ("HEAD", {"metadata": {"a": "b"}}), ("GET", {"content_type": "no type"}),
            ("PUT", {"cache_control": "a\nb"}), ("GET", {"download_name": "a/b.txt"}),
            ("GET", {"download_name": "x.txt", "content_disposition": "inline"})]
        for method, options in presign_cases:
            with pytest.raises(StorageValidationError):
                storage.generate_presigned_url("p/x.txt", method=method, **options)
        post_cases: list[dict[str, Any]] = [
            {"max_size": 0}, {"max_size": "10"}, {"content_type": "image/"},
            {"content_type": "*/*"}, {"metadata": {"Bad": "x"}}]
        for terms in post_cases:
            with pytest.raises(StorageValidationError):
                storage.generate_presigned_post("f/x", **terms)
        cors_cases: list[dict[str, Any]] = [
            {"origins": "http://a.example"}, {"origins": ["http://a.example/"]},
            {"origins": ["ftp://a.example"]}, {"origins": ["*"], "methods": ["PATCH"]},
            {"origins": ["*"], "max_age": -1}, {"origins": ["*"], "headers": ["a b"]}]
        for rule in cors_cases:
            with pytest.raises(StorageValidationError):
                storage.set_cors(**rule)
        storage.upload_file(b"x", "h/r.bin")
        with pytest.raises(StorageValidationError, match="cache_control"):
            storage.open("h/r.bin", "rb", cache_control="no-store")

    # -- metadata names with hyphens ---------------------------------------------------

    def test_hyphenated_metadata_names(self, backend: Backend, storage: StorageAdapter) -> None:
        metadata = {"original-name": "photo.png", "run_id": "7", "a-b_c-d": "x"}
        if not backend.metadata_hyphens:
            with pytest.raises(StorageValidationError, match="original-name"):
                storage.upload_file(b"x", "m/h.bin", metadata=metadata)
            assert not storage.file_exists("m/h.bin")
            return
        storage.upload_file(b"x", "m/h.bin", metadata=metadata)
        assert storage.get_file_metadata("m/h.bin").metadata == metadata

    # -- presigned URLs: pinned headers, overrides, refusals -----------------------------

    def test_presigned_put_with_pinned_headers(self, backend: Backend,
                                               storage: StorageAdapter) -> None:
        options = {"content_type": "text/plain", "metadata": {"owner": "ana"},
                   "cache_control": "no-cache", "content_disposition": "inline"}
        if "PUT" not in backend.presign_methods:
            with pytest.raises(StorageOperationError) as info:
                storage.generate_presigned_url("p/up.txt", method="PUT", **options)
            assert backend.name in str(info.value)
            return
        signed = storage.generate_presigned_url("p/up.txt", method="PUT", expiration=600,
                                                **options)
        if backend.pinned_headers_enforced:
            wrong = {**signed.headers}
            for name in list(wrong):
                if name.lower() in ("content-type", "x-ms-blob-content-type"):
                    wrong[name] = "text/html"
            status, _, _ = http(signed.url, "PUT", b"<script>", wrong)
            assert status == 403, status
            assert not storage.file_exists("p/up.txt")
            assert signed.headers_signed
        status, _, body = http(signed.url, "PUT", b"hello", signed.headers)
        assert status in (200, 201), (status, body[:300])
        info = storage.get_file_metadata("p/up.txt")
        assert storage.download_file("p/up.txt") == b"hello"
        assert (info.content_type, info.metadata, info.cache_control,
                info.content_disposition) == ("text/plain", {"owner": "ana"}, "no-cache",
                                              "inline")

    def test_presigned_get_with_download_name_and_type(self, backend: Backend,
                                                       storage: StorageAdapter) -> None:
        storage.upload_file(b"%PDF-1", "p/report.bin")
        name = "résumé 2026 \"final\".pdf"
        if not backend.response_overrides:
            with pytest.raises(StorageOperationError):
                storage.generate_presigned_url("p/report.bin", download_name=name)
            return
        signed = storage.generate_presigned_url("p/report.bin", download_name=name,
                                                content_type="application/pdf",
                                                cache_control="private, max-age=30")
        status, headers, body = http(signed.url, headers=signed.headers)
        assert (status, body) == (200, b"%PDF-1")
        assert headers["content-disposition"] == attachment(name)
        assert "filename*=UTF-8''r%C3%A9sum%C3%A9%202026%20%22final%22.pdf" in \
            headers["content-disposition"]
        assert headers["content-type"] == "application/pdf"
        assert headers["cache-control"] == "private, max-age=30"
        if backend.signatures_checked:
            assert http(tampered(signed.url, "application/pdf", "text/html"))[0] == 403

    # -- POST upload policies -------------------------------------------------------------

    def test_presigned_post_or_clear_refusal(self, backend: Backend,
                                             storage: StorageAdapter) -> None:
        if not backend.post_policies:
            with pytest.raises(StorageOperationError) as info:
                storage.generate_presigned_post("f/up.txt", max_size=10)
            assert backend.name in str(info.value)
            return
        post = storage.generate_presigned_post("f/up.txt", expiration=600, max_size=10,
                                               content_type="text/plain",
                                               metadata={"original-name": "a.txt"}
                                               if backend.metadata_hyphens
                                               else {"owner": "ana"})
        assert isinstance(post, PresignedPost) and post.max_size == 10
        assert post.expires_at.tzinfo is not None
        status, body = post_form(post, b"hello", "text/plain")
        assert status in (200, 201, 204), (status, body[:300])
        info = storage.get_file_metadata("f/up.txt")
        assert storage.download_file("f/up.txt") == b"hello"
        assert info.content_type == "text/plain"
        assert info.metadata == ({"original-name": "a.txt"} if backend.metadata_hyphens
                                 else {"owner": "ana"})

    @needs("post_policies_enforced")
    def test_presigned_post_conditions_are_enforced(self, storage: StorageAdapter) -> None:
        post = storage.generate_presigned_post("f/img", max_size=10, content_type="image/*")
        assert post_form(post, b"x" * 11, "image/png")[0] in (400, 403)
        assert post_form(post, b"x", "text/html", {"Content-Type": "text/html"})[0] in \
            (400, 403)
        assert not storage.file_exists("f/img")
        assert post_form(post, b"png", "image/png", {"Content-Type": "image/png"})[0] in \
            (200, 201, 204)
        assert storage.get_file_metadata("f/img").content_type == "image/png"

    # -- CORS -----------------------------------------------------------------------------

    def test_cors_rules_or_clear_refusal(self, backend: Backend, storage: StorageAdapter,
                                         request: pytest.FixtureRequest) -> None:
        origin = "http://127.0.0.1:8123"
        if not backend.cors:
            with pytest.raises(StorageOperationError) as info:
                storage.set_cors([origin])
            assert backend.name in str(info.value)
            return
        with cors_turn(backend, request):
            storage.set_cors([origin], methods=["GET", "PUT"], headers=["content-type"],
                             max_age=120)
            assert storage.get_cors() == [CorsRule(origins=[origin], methods=["GET", "PUT"],
                                                   headers=["content-type"],
                                                   expose_headers=["ETag"], max_age=120)]
            storage.set_cors([])
            assert storage.get_cors() == []
