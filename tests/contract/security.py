"""Security: hostile keys and prefixes are refused before any I/O; no secret is ever shown."""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perceptra_storage import (
    StorageAdapter,
    StorageError,
    StorageValidationError,
)
from tests.conftest import Backend

from .base import KEYS, ContractBase

REFUSED_KEYS = [
    "", "/abs", "a//b", "a/", "./a", "a/./b", "a/../b", "..", "a/%2e%2e/b", "a\\b",
    "nul\x00", "tab\tkey", "bell\x07", "del\x7f", "x" * 1025, "é" * 513, 42, None, b"bytes",
    "../x", "a/../../x", "/etc/passwd", "C:\\x", "a\\..\\x", "%2e%2e/x", "a/%2E%2E/x",
    "a/%2e%2e", "\x1b[2Jx", "a\r\nb", "x\u0085y", "//x",
]
"""Keys no operation accepts: empty, absolute, empty or dot segments (also
percent-encoded), backslashes, control characters, over 1024 bytes, not a string."""

BAD_KEYS = st.one_of(
    st.sampled_from(REFUSED_KEYS),
    KEYS.map(lambda k: k + "/"), KEYS.map(lambda k: "/" + k),
    st.tuples(KEYS, st.sampled_from(["..", ".", "", "%2E%2E"]), KEYS).map("/".join),
    st.tuples(KEYS, st.characters(min_codepoint=0, max_codepoint=31)).map("".join),
)


class SecurityTests(ContractBase):
    """Input that could escape the store, and credentials that must stay hidden."""

    @pytest.fixture
    def debug_everywhere(
            self, caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
        """Every logger that exists (ours, botocore, aiobotocore, s3fs, adlfs, azure,
        urllib3, aiohttp...) at DEBUG, as a user chasing a bug would set them."""
        every = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
        levels = [(logger, logger.level) for logger in every]
        with caplog.at_level(logging.DEBUG):
            for logger in every:
                logger.setLevel(logging.DEBUG)
            try:
                yield caplog
            finally:
                for logger, level in levels:
                    logger.setLevel(level)

    def test_invalid_keys_are_refused_before_any_io(self, storage: StorageAdapter) -> None:
        """Every operation refuses every key of REFUSED_KEYS, on one store (a store per
        key cost a bucket each, 31 per backend, for no request)."""
        calls: dict[str, Callable[[Any], Any]] = {
            "upload_file": lambda key: storage.upload_file(b"data", key),
            "download_file": storage.download_file,
            "delete_file": storage.delete_file,
            "file_exists": storage.file_exists,
            "get_file_metadata": storage.get_file_metadata,
            "generate_presigned_url": storage.generate_presigned_url,
            "open": lambda key: storage.open(key, "wb"),
        }
        accepted = []
        for key in REFUSED_KEYS:
            for name, call in calls.items():
                try:
                    call(key)
                except StorageValidationError as error:
                    if not isinstance(error, ValueError):
                        accepted.append(f"{name}({key!r}): not a ValueError")
                else:
                    accepted.append(f"{name}({key!r})")
        assert not accepted, f"invalid keys not refused: {accepted}"
        assert storage.list_files() == []

    @pytest.mark.parametrize("prefix", ["/x", "a//b", "../", "a/../b", "a\\b", "n\x00"], ids=repr)
    def test_invalid_list_prefix_is_refused(self, storage: StorageAdapter, prefix: str) -> None:
        with pytest.raises(StorageValidationError):
            storage.list_files(prefix)

    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(key=BAD_KEYS)
    def test_property_invalid_keys_store_nothing(
            self, storage: StorageAdapter, key: Any) -> None:
        with pytest.raises(StorageValidationError):
            storage.upload_file(b"payload", key)
        assert storage.list_files() == []

    def test_debug_logging_everywhere_leaks_no_secret(
            self, backend: Backend, storage: StorageAdapter,
            debug_everywhere: pytest.LogCaptureFixture) -> None:
        """No credential or URL signature in the adapter's repr, its errors (with their
        causes), or any record of any logger at DEBUG, as a user chasing a bug sets them."""
        seen: list[str] = [repr(storage), str(storage)]
        assert backend.name in repr(storage)
        storage.upload_file(b"secret check", "sec/a.txt", metadata={"m": "1"})
        storage.upload_file(io.BytesIO(os.urandom(6 * 1024 * 1024)), "sec/big.bin")
        storage.download_file("sec/a.txt")
        storage.get_file_metadata("sec/a.txt")
        storage.list_files("sec/")
        storage.file_exists("sec/none")
        storage.copy_file("sec/a.txt", "sec/b.txt")
        signatures = []
        if backend.presign_methods:
            url = storage.generate_presigned_url("sec/a.txt").url
            query = parse_qs(urlsplit(url).query)
            signatures = query.get("sig", []) + query.get("X-Amz-Signature", []) + \
                query.get("X-Ps-Signature", [])
            assert signatures or url.startswith("file:")
        for call in (lambda: storage.download_file("sec/missing"),
                     lambda: storage.delete_file("sec/missing")):
            with pytest.raises(StorageError) as info:
                call()
            error: Optional[BaseException] = info.value
            while error is not None:
                seen += [str(error), repr(error)]
                error = error.__cause__ or error.__context__
        storage.delete_files(["sec/a.txt", "sec/b.txt", "sec/big.bin"])
        records = debug_everywhere.records
        seen += [record.getMessage() for record in records]
        seen += [repr(record.args) for record in records if record.args]
        text = "\n".join(seen)
        for secret in (*backend.secrets, *signatures):
            assert secret not in text
        assert len(records) > 5

    def test_errors_never_show_where_the_store_lives(self, storage: StorageAdapter,
                                                     tmp_path: Path) -> None:
        """Not-found, permission and validation errors name the backend, operation and
        key, never the root (a local ``base_path``, the memory store's path, a bucket
        or container) nor any absolute path: a web app may show them to its users.
        The cause chain keeps the SDK's or OS's error for debugging."""
        storage.upload_file(b"x", "present.txt")
        root = storage._base()  # type: ignore[attr-defined]
        calls = [
            lambda: storage.download_file("no/such.txt"),
            lambda: storage.download_file("no/such.txt", tmp_path / "out.bin"),
            lambda: storage.download_file("no/such.txt", io.BytesIO()),
            lambda: storage.get_file_metadata("no/such.txt"),
            lambda: storage.delete_file("no/such.txt"),
            lambda: storage.copy_file("no/such.txt", "copy.txt"),
            lambda: storage.move_file("no/such.txt", "moved.txt"),
            lambda: storage.open("no/such.txt"),
            lambda: storage.download_file("present.txt/child"),
            lambda: storage.upload_file(b"x", "../escape"),
            lambda: storage.upload_file("text", "k"),  # type: ignore[arg-type]
            lambda: storage.upload_file(b"x", "k", metadata={"Bad Name": "v"}),
            lambda: storage.list_files("a//b"),
        ]
        for call in calls:
            with pytest.raises(StorageError) as info:
                call()
            for text in (str(info.value), repr(info.value)):
                assert root not in text and str(tmp_path) not in text, text
                assert not re.search(r"""(?:^|['"\s:(])/[\w.-]+/""", text), text
