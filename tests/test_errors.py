"""The one translation table: SDK exceptions in, typed StorageErrors out, no secrets."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
from botocore import exceptions as bce

from perceptra_storage import get_storage_adapter
from perceptra_storage.errors import (
    StorageConnectionError,
    StorageError,
    StorageNotFoundError,
    StorageOperationError,
    StoragePermissionError,
    StorageTimeoutError,
    StorageValidationError,
    build_error,
    redact,
    translate_errors,
)


def _client_error(code: str, status: int) -> bce.ClientError:
    return bce.ClientError({"Error": {"Code": code, "Message": "m"},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize("exc, expected", [
    (FileNotFoundError(2, "nope"), StorageNotFoundError),
    (IsADirectoryError(21, "dir"), StorageNotFoundError),
    (PermissionError(13, "denied"), StoragePermissionError),
    (TimeoutError("slow"), StorageTimeoutError),
    (ConnectionResetError("reset"), StorageConnectionError),
    (OSError(5, "io"), StorageOperationError),
    (RuntimeError("boom"), StorageOperationError),
    (_client_error("NoSuchKey", 404), StorageNotFoundError),
    (_client_error("NoSuchBucket", 404), StorageNotFoundError),
    (_client_error("AccessDenied", 403), StoragePermissionError),
    (_client_error("SignatureDoesNotMatch", 403), StoragePermissionError),
    (_client_error("InvalidAccessKeyId", 403), StoragePermissionError),
    (_client_error("SlowDown", 503), StorageOperationError),
    (_client_error("", 404), StorageNotFoundError),
    (bce.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), StorageConnectionError),
    (bce.ConnectTimeoutError(endpoint_url="http://10.255.255.1"), StorageTimeoutError),
    (bce.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), StorageTimeoutError),
    (bce.NoCredentialsError(), StoragePermissionError),
])
def test_table_maps_each_sdk_error(exc: BaseException, expected: type[StorageError]) -> None:
    error = build_error(exc, "s3", "download", "k")
    assert type(error) is expected
    assert error.backend == "s3" and error.operation == "download" and error.key == "k"


@pytest.mark.parametrize("code", ["ExpiredToken", "ExpiredTokenException",
                                  "TokenRefreshRequired"])
def test_expired_static_credentials_say_so(code: str) -> None:
    error = build_error(_client_error(code, 400), "s3", "upload", "k")
    assert type(error) is StoragePermissionError
    assert "credentials expired" in str(error) and code in str(error)


def test_azure_errors_by_status() -> None:
    from azure.core import exceptions as ace

    assert isinstance(build_error(ace.ResourceNotFoundError("gone"), "azure", "stat", "k"),
                      StorageNotFoundError)
    assert isinstance(build_error(ace.ClientAuthenticationError("no"), "azure", "stat", "k"),
                      StoragePermissionError)
    assert isinstance(build_error(ace.ServiceRequestError("dns"), "azure", "stat", "k"),
                      StorageConnectionError)
    denied = ace.HttpResponseError("denied")
    denied.status_code = 403
    assert isinstance(build_error(denied, "azure", "stat", "k"), StoragePermissionError)


def test_translate_keeps_cause_and_passes_our_errors_through() -> None:
    original = FileNotFoundError("/root/x")
    with pytest.raises(StorageNotFoundError) as info, translate_errors("local", "stat", "x"):
        raise original
    assert info.value.__cause__ is original
    with pytest.raises(StorageValidationError) as ours, translate_errors("local", "upload", "k"):
        raise StorageValidationError("bad")
    assert (ours.value.backend, ours.value.operation, ours.value.key) == ("local", "upload", "k")
    assert ours.value.reason == "bad" and str(ours.value) == "local: upload 'k': bad"


def test_messages_never_hold_secrets() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    leaky = RuntimeError(
        f"GET https://b.s3.amazonaws.com/k?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA "
        f"AccountKey=Zm9vYmFy== sig=Q%2Bxyz password: hunter22 key {secret} "
        "https://user:pa55@host/")
    with pytest.raises(StorageError) as info, \
            translate_errors("s3", "download", "k", secrets=[secret]):
        raise leaky
    text = str(info.value)
    for needle in (secret, "abcdef0123", "Zm9vYmFy", "Q%2Bxyz", "hunter22", "pa55"):
        assert needle not in text
    assert "s3: download 'k'" in text


def test_redact_leaves_plain_text_alone() -> None:
    assert redact("no such key 'data/file.csv'") == "no such key 'data/file.csv'"


def test_errors_pickle_with_context() -> None:
    error = build_error(_client_error("NoSuchKey", 404), "s3", "download", "k")
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is StorageNotFoundError and clone.key == "k" and str(clone) == str(error)


def test_sdk_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    from perceptra_storage.redaction import guard_sdk_logs

    class Owner:
        """Stands for an adapter: its secrets are masked while it lives."""

    secret = "an-account-key-value-0123456789"
    holder = Owner()
    guard_sdk_logs(holder, [secret])
    child = logging.getLogger("botocore.endpoint.perceptra_test")
    guard_sdk_logs(Owner(), [])
    with caplog.at_level(logging.DEBUG):
        child.debug("sending %s to https://h/k?X-Amz-Signature=%s", secret, "feedbeef")
        logging.getLogger("urllib3.connectionpool").debug("GET /c/b?sig=%s HTTP/1.1", "Zm9v")
    text = caplog.text
    assert secret not in text and "feedbeef" not in text and "Zm9v" not in text
    assert "sending *** to" in text
    del holder
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        child.debug("sending %s", secret)
    assert secret in caplog.text  # gone with its owner: nothing left to mask


def test_operation_timeout_is_a_rule_of_the_table() -> None:
    from fsspec.exceptions import FSTimeoutError

    error = build_error(FSTimeoutError(), "s3", "download", "k")
    assert isinstance(error, StorageTimeoutError) and "operation_timeout" in str(error)


def test_cut_reads_are_known_by_exception_type() -> None:
    import aiohttp
    from azure.core import exceptions as ace

    from perceptra_storage.resilience import cut_read, transient

    cut = [aiohttp.ClientPayloadError("Response payload is not completed"),
           bce.ResponseStreamingError(error=ConnectionResetError("reset")),
           bce.IncompleteReadError(actual_bytes=10, expected_bytes=20),
           ace.IncompleteReadError("peer closed")]
    for exc in cut:
        assert cut_read(exc) and transient(exc), exc
        assert isinstance(build_error(exc, "s3", "download", "k"), StorageConnectionError)
    wrapped = RuntimeError("read failed")
    wrapped.__cause__ = cut[0]
    assert cut_read(wrapped)
    # Same words, other types: a timeout or a refused connection is no cut read.
    for exc in (bce.ReadTimeoutError(endpoint_url="http://h"),
                ConnectionRefusedError("connection cut mid-transfer")):
        assert not cut_read(exc) and transient(exc)


def test_get_public_url_runs_inside_the_translation(tmp_path: Path) -> None:
    adapter = get_storage_adapter("local", {"base_path": str(tmp_path)})
    with pytest.raises(StorageValidationError) as info:
        adapter.get_public_url("../outside")
    assert (info.value.backend, info.value.operation) == ("local", "public_url")
