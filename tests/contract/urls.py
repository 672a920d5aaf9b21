"""Presigned and public URLs."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from perceptra_storage import (
    PresignedUrl,
    StorageAdapter,
    StorageOperationError,
    StorageValidationError,
)
from tests.conftest import Backend

from .base import ContractBase


class UrlTests(ContractBase):
    """``generate_presigned_url`` and ``get_public_url``: checked arguments, and URLs a
    plain HTTP client can use."""

    @pytest.mark.parametrize("expiration", [0, -1, 604801, 1.5, "60", True])
    def test_presign_expiration_out_of_range(
            self, storage: StorageAdapter, expiration: Any) -> None:
        with pytest.raises(StorageValidationError, match="expiration"):
            storage.generate_presigned_url("k", expiration=expiration)

    @pytest.mark.parametrize("method", ["POST", "PATCH", "get me", 1])
    def test_presign_unknown_method(self, storage: StorageAdapter, method: Any) -> None:
        with pytest.raises(StorageValidationError, match="method"):
            storage.generate_presigned_url("k", method=method)

    def test_presigned_get_works_with_plain_http_or_is_refused_clearly(
            self, backend: Backend, storage: StorageAdapter) -> None:
        storage.upload_file(b"shared bytes", "share/me.txt")
        if "GET" not in backend.presign_methods:
            with pytest.raises(StorageOperationError) as info:
                storage.generate_presigned_url("share/me.txt")
            assert backend.name in str(info.value)
            return
        signed = storage.generate_presigned_url("share/me.txt", expiration=600)
        assert isinstance(signed, PresignedUrl) and signed.method == "GET"
        assert signed.expires_at.tzinfo is not None
        remaining = signed.expires_at - datetime.now(UTC)
        assert timedelta(seconds=590) < remaining <= timedelta(seconds=600)
        request = urllib.request.Request(signed.url, headers=signed.headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.read() == b"shared bytes"

    def test_public_url_is_none_or_a_url(self, storage: StorageAdapter) -> None:
        url = storage.get_public_url("pub/x.txt")
        assert url is None or "pub/x.txt" in url
        with pytest.raises(StorageValidationError):
            storage.get_public_url("../x")
