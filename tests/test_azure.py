"""The ``azure`` backend's entry point: the whole contract, then what only it has (config
and credential forms, the SAS signer, URL shapes, connection failures; SAS grants are
checked against Azurite with urllib)."""

from __future__ import annotations

import copy
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

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
from perceptra_storage.backends.azure import AzureStorageAdapter

from .cases_azure import new_container
from .contract import Contract
from .servers.common import AzuriteServer, free_port


class TestAzureContract(Contract):
    """The whole contract on the azure backend."""

    case = "azure"

pytest.importorskip("adlfs")

KEY = "a2V5"  # base64 of "key": the shape of an account key, no real one


def azure(config: dict[str, Any], credentials: Optional[dict[str, Any]] = None) -> Any:
    return get_storage_adapter("azure", config, credentials)


@pytest.fixture
def container(azurite_server: AzuriteServer) -> Iterator[str]:
    name, delete = new_container(azurite_server)
    yield name
    delete()


@pytest.fixture
def keyed(azurite_server: AzuriteServer, container: str) -> Any:
    return azure({"container_name": container, "account_url": azurite_server.account_url},
                 {"account_key": azurite_server.account_key})


def http(method: str, url: str, data: Optional[bytes] = None,
         headers: Optional[dict[str, str]] = None) -> tuple[int, bytes]:
    """Status and body of one plain HTTP request: no SDK involved."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# --- config and credentials (no server) -------------------------------------------------


@pytest.mark.parametrize("name", ["ab", "a" * 64, "My-container", "a--b", "-ab", "ab-", "a_b",
                                  "a.b", "ab c"])
def test_container_names_azure_refuses_are_refused_at_construction(name: str) -> None:
    with pytest.raises(StorageValidationError, match="container_name"):
        azure({"container_name": name, "account_name": "acct"}, {"account_key": KEY})


@pytest.mark.parametrize("name", ["abc", "a-b-c", "0ab", "a" * 63])
def test_valid_container_names(name: str) -> None:
    assert azure({"container_name": name, "account_name": "acct"}, {"account_key": KEY})


def test_unknown_fields_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(StorageValidationError, match="container_name"):
        azure({"container": "data", "account_name": "acct"})
    with pytest.raises(StorageValidationError, match="account_key"):
        azure({"container_name": "data", "account_name": "acct"}, {"key": KEY})


@pytest.mark.parametrize("credentials, named", [
    ({"account_key": KEY, "sas_token": "sv=1&sig=x"}, "account_key, sas_token"),
    ({"connection_string": "AccountName=a", "client_id": "c"}, "connection_string, client_id"),
])
def test_more_than_one_credential_form_is_refused(credentials: dict[str, str],
                                                  named: str) -> None:
    with pytest.raises(StorageValidationError, match=f"more than one form \\({named}\\)"):
        azure({"container_name": "data", "account_name": "acct"}, credentials)


def test_partial_service_principal_names_the_missing_fields() -> None:
    with pytest.raises(StorageValidationError, match="missing: tenant_id, client_secret"):
        azure({"container_name": "data", "account_name": "acct"}, {"client_id": "app"})


def test_account_name_is_required_unless_derivable() -> None:
    with pytest.raises(StorageValidationError, match="account_name' is required"):
        azure({"container_name": "data"}, {"account_key": KEY})
    with pytest.raises(StorageValidationError, match="not valid"):
        azure({"container_name": "data", "account_name": "Bad_Name"}, {"account_key": KEY})
    with pytest.raises(StorageValidationError, match="does not match"):
        azure({"container_name": "data", "account_name": "other",
               "account_url": "https://acct.blob.core.windows.net"}, {"account_key": KEY})
    for url in ("https://acct.blob.core.windows.net/", "http://127.0.0.1:10000/acct",
                "https://acct.blob.core.chinacloudapi.cn"):
        adapter = azure({"container_name": "data", "account_url": url}, {"account_key": KEY})
        assert "AccountName=acct;" in adapter.native_storage_options["connection_string"]


@pytest.mark.parametrize("url", ["ftp://acct.example.com", "acct.blob.core.windows.net",
                                 "https://acct.blob.core.windows.net?sv=1&sig=x"])
def test_bad_account_url_is_refused(url: str) -> None:
    with pytest.raises(StorageValidationError, match="account_url"):
        azure({"container_name": "data", "account_url": url}, {"account_key": KEY})


def test_tokens_are_refused_over_plain_http() -> None:
    for credentials in (None, {"tenant_id": "t", "client_id": "c", "client_secret": "s"}):
        with pytest.raises(StorageValidationError, match="only over https"):
            azure({"container_name": "data", "account_url": "http://127.0.0.1:1/acct"},
                  credentials)


def test_malformed_connection_string_is_refused_without_echoing_it() -> None:
    with pytest.raises(StorageValidationError, match="malformed") as info:
        azure({"container_name": "data"}, {"connection_string": "not-a-connection-string"})
    assert "not-a-connection-string" not in str(info.value)
    with pytest.raises(StorageValidationError, match="account_url"):
        azure({"container_name": "data", "account_url": "https://acct.blob.core.windows.net"},
              {"connection_string": f"AccountName=acct;AccountKey={KEY}"})


def test_each_credential_form_becomes_adlfs_options() -> None:
    config = {"container_name": "data", "account_name": "acct"}
    keyed = azure(config, {"account_key": KEY}).native_storage_options
    assert keyed["connection_string"] == (f"AccountName=acct;AccountKey={KEY};"
                                          "BlobEndpoint=https://acct.blob.core.windows.net")
    sas = azure(config, {"sas_token": "?sv=1&sig=x"}).native_storage_options
    assert sas["connection_string"] == ("BlobEndpoint=https://acct.blob.core.windows.net;"
                                        "SharedAccessSignature=sv=1&sig=x")
    principal = {"tenant_id": "t", "client_id": "c", "client_secret": "s"}
    options = azure({**config, "account_url": "https://acct.privatelink.example.net"},
                    principal).native_storage_options
    assert {k: options[k] for k in ("account_name", "account_host", *principal)} == \
        {"account_name": "acct", "account_host": "acct.privatelink.example.net", **principal}
    default = azure(config).native_storage_options
    assert default["anon"] is False and "account_host" not in default
    assert not any(k in default for k in ("account_key", "connection_string", "sas_token"))


def test_users_dicts_are_never_mutated() -> None:
    config = {"container_name": "data", "account_name": "acct", "prefix": "/t/a/"}
    credentials = {"sas_token": "?sv=1&sig=x"}
    before = copy.deepcopy((config, credentials))
    adapter = azure(config, credentials)
    adapter.native_storage_options  # noqa: B018 - builds the filesystem
    adapter.generate_presigned_url("k")
    assert (config, credentials) == before


def test_signer_choice_per_credential_form() -> None:
    config = {"container_name": "data", "account_name": "acct"}
    cases = [
        ({"account_key": KEY}, "account key"),
        ({"connection_string": f"AccountName=acct;AccountKey={KEY}"}, "account key"),
        ({"connection_string": "BlobEndpoint=https://acct.blob.core.windows.net;"
                               "SharedAccessSignature=sv=1&sig=x"}, "SAS token"),
        ({"sas_token": "sv=1&sig=x"}, "SAS token"),
        ({"tenant_id": "t", "client_id": "c", "client_secret": "s"}, "user delegation"),
        (None, "user delegation"),
    ]
    for credentials, expected in cases:
        adapter = azure(config, credentials)
        assert isinstance(adapter, AzureStorageAdapter)
        assert adapter._signer() == expected, credentials


def test_connection_string_without_key_or_sas_cannot_sign() -> None:
    adapter = azure({"container_name": "data"},
                    {"connection_string": "BlobEndpoint=https://acct.blob.core.windows.net"})
    with pytest.raises(StorageOperationError, match="neither an AccountKey"):
        adapter.generate_presigned_url("k")


def test_public_url_shapes() -> None:
    default = azure({"container_name": "data", "account_name": "acct", "prefix": "t/a"},
                    {"account_key": KEY})
    assert default.get_public_url("dir/my file#1.csv") == \
        "https://acct.blob.core.windows.net/data/t/a/dir/my%20file%231.csv"
    local = azure({"container_name": "data", "account_url": "http://127.0.0.1:10000/acct/"},
                  {"account_key": KEY})
    assert local.get_public_url("k") == "http://127.0.0.1:10000/acct/data/k"
    cdn = azure({"container_name": "data", "account_name": "acct",
                 "public_base_url": "https://cdn.example.com/"}, {"account_key": KEY})
    assert cdn.get_public_url("a b") == "https://cdn.example.com/a%20b"


def test_user_delegation_keys_are_cached_and_bound_url_lifetimes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """URLs signed through a token credential use a user-delegation key: one key serves
    many URLs until 5 minutes before it ends, and no URL outlives the key.

    Azurite serves Get User Delegation Key only to OAuth bearer tokens over HTTPS (an
    Entra ID token issuer and a trusted certificate this suite does not have), so the
    service's answer is stood in for here: a real SDK ``UserDelegationKey`` granted for
    at most ``granted``; the SAS tokens are the SDK's own, signed with it."""
    import base64

    from azure.storage.blob import UserDelegationKey

    granted = [timedelta(days=1)]
    fetched: list[datetime] = []

    def get_user_delegation_key(method: str, until: datetime) -> Any:
        assert method == "user_delegation_key"
        fetched.append(until)
        now = datetime.now(UTC)
        key = UserDelegationKey()
        key.signed_oid, key.signed_tid = "oid", "tid"
        key.signed_start = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_expiry = min(until, now + granted[0]).strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_service, key.signed_version = "b", "2025-01-05"
        key.value = base64.b64encode(b"k" * 32).decode()
        return key

    adapter = azure({"container_name": "data", "account_name": "acct"},
                    {"tenant_id": "t", "client_id": "c", "client_secret": "s"})
    monkeypatch.setattr(adapter, "_call", get_user_delegation_key)
    start = datetime.now(UTC)
    urls = [adapter.generate_presigned_url("a.txt", expiration=600),
            adapter.generate_presigned_url("b.txt", method="PUT", expiration=3600),
            adapter.generate_presigned_url("c.txt", expiration=6 * 3600)]
    assert len(fetched) == 1 and fetched[0] >= start + timedelta(days=1) - timedelta(seconds=5)
    for signed, seconds in zip(urls, (600, 3600, 6 * 3600), strict=True):
        assert abs(signed.expires_at - start - timedelta(seconds=seconds)) < timedelta(seconds=5)
        query = parse_qs(urlsplit(signed.url).query)
        assert query["skoid"] == ["oid"] and query["sig"]
    week = adapter.generate_presigned_url("d.txt", expiration=7 * 24 * 3600)
    assert len(fetched) == 2  # the cached key ends too soon for a week-long URL

    # A service that grants shorter keys than asked: URLs end with the key.
    granted[0] = timedelta(hours=2)
    short = azure({"container_name": "data", "account_name": "acct"},
                  {"tenant_id": "t", "client_id": "c", "client_secret": "s"})
    monkeypatch.setattr(short, "_call", get_user_delegation_key)
    capped = short.generate_presigned_url("e.txt", expiration=6 * 3600)
    assert capped.expires_at <= datetime.now(UTC) + timedelta(hours=2)  # the key's end
    se = datetime.fromisoformat(parse_qs(urlsplit(capped.url).query)["se"][0]
                                .replace("Z", "+00:00"))
    assert se <= capped.expires_at
    assert len(fetched) == 3
    short.generate_presigned_url("f.txt", expiration=3600)  # within the cached key
    assert len(fetched) == 3
    short.generate_presigned_url("g.txt", expiration=2 * 3600 - 60)  # inside the margin
    assert len(fetched) == 4
    assert week.expires_at > capped.expires_at


class _EntraStandIn:
    """What Entra ID would issue to ``DefaultAzureCredential``: bearer tokens for Azure
    Storage. Unsigned (no identity provider on loopback); Azurite's basic OAuth checks
    their audience, issuer and lifetime, and derives the delegation key from oid/tid."""

    def __init__(self) -> None:
        self.issued = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        import base64
        import json

        from azure.core.credentials import AccessToken

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

        self.issued += 1
        now = int(time.time())
        tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
        claims = {"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{tenant}/",
                  "iat": now - 60, "nbf": now - 60, "exp": now + 3600, "tid": tenant,
                  "oid": "0f0e0d0c-0b0a-0908-0706-050403020100"}
        return AccessToken(f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln",
                           now + 3600)

    async def close(self) -> None:
        """Nothing to release."""


def test_user_delegation_sas_from_azurite_with_a_token(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With a token credential (no account key), URLs are user-delegation SAS: Azurite
    (HTTPS, OAuth) grants the key, the URLs work over plain HTTPS, and one key serves
    them all (fetched once, not per URL)."""
    import ssl

    import aiohttp.connector
    from azure.storage.blob import BlobServiceClient

    from perceptra_storage.backends._adlfs import PerceptraBlobFileSystem
    from tests.servers.azurite import start_azurite_oauth
    from tests.servers.common import AZURITE_ACCOUNT, AZURITE_KEY, ServerUnavailable

    try:
        account_url, cert_file, stop = start_azurite_oauth(tmp_path)
    except ServerUnavailable as exc:
        from tests.conftest import unavailable

        unavailable(str(exc))
        raise
    try:
        trusted = ssl.create_default_context(cafile=str(cert_file))
        # The test's certificate is trusted as a deployment's CA would be: aiohttp (the
        # async SDK's transport) checks certificates against this default context.
        monkeypatch.setattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", trusted)
        entra = _EntraStandIn()
        monkeypatch.setattr(PerceptraBlobFileSystem, "_get_default_azure_credential",
                            lambda self, **kwargs: (entra, None))
        fetched: list[datetime] = []
        real_fetch = PerceptraBlobFileSystem.user_delegation_key

        def counted(self: Any, expires: datetime, **kwargs: Any) -> Any:  # then Azurite
            fetched.append(expires)
            return real_fetch(self, expires, **kwargs)

        monkeypatch.setattr(PerceptraBlobFileSystem, "user_delegation_key", counted)
        service = BlobServiceClient(account_url, credential={
            "account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY},
            connection_verify=str(cert_file))
        service.create_container("tokens")
        adapter = azure({"container_name": "tokens", "account_url": account_url})
        assert adapter._signer() == "user delegation"
        adapter.upload_file(b"by token", "k.txt")
        assert entra.issued >= 1  # the upload went with a bearer token
        start = datetime.now(UTC)
        urls = [adapter.generate_presigned_url("k.txt", expiration=seconds)
                for seconds in (60, 600, 3600)]
        assert len(fetched) == 1 and fetched[0] >= start + timedelta(hours=23)
        for signed, seconds in zip(urls, (60, 600, 3600), strict=True):
            assert abs(signed.expires_at - start - timedelta(seconds=seconds)) < \
                timedelta(seconds=5)
            assert "skoid=" in signed.url
            with urllib.request.urlopen(signed.url, timeout=10, context=trusted) as answer:
                assert answer.read() == b"by token"
        put = adapter.generate_presigned_url("up.txt", method="PUT", content_type="text/plain")
        request = urllib.request.Request(put.url, data=b"from a browser", method="PUT",
                                         headers=put.headers)
        with urllib.request.urlopen(request, timeout=10, context=trusted) as answer:
            assert answer.status == 201
        assert adapter.download_file("up.txt") == b"from a browser"
        assert len(fetched) == 1
        adapter.close()
    finally:
        stop()


# --- SAS grants against Azurite, used with urllib only ----------------------------------


def test_sas_permissions_are_exactly_what_the_method_needs(keyed: Any) -> None:
    keyed.upload_file(b"secret bytes", "sas/read.txt")
    expected = {"GET": "r", "HEAD": "r", "PUT": "cw", "DELETE": "d"}
    for method, permissions in expected.items():
        signed = keyed.generate_presigned_url("sas/read.txt", expiration=300, method=method)
        assert parse_qs(urlsplit(signed.url).query)["sp"] == [permissions]
        assert signed.scoped and signed.expiry_enforced
        assert signed.headers == ({"x-ms-blob-type": "BlockBlob"} if method == "PUT" else {})

    get = keyed.generate_presigned_url("sas/read.txt", expiration=300)
    assert http("GET", get.url) == (200, b"secret bytes")
    assert http("PUT", get.url, b"overwritten", {"x-ms-blob-type": "BlockBlob"})[0] == 403
    assert http("DELETE", get.url)[0] == 403
    head = keyed.generate_presigned_url("sas/read.txt", method="HEAD")
    assert http("HEAD", head.url)[0] == 200
    assert keyed.download_file("sas/read.txt") == b"secret bytes"


def test_presigned_put_creates_a_new_blob_and_delete_removes_it(keyed: Any) -> None:
    put = keyed.generate_presigned_url("sas/new/upload.bin", method="PUT")
    assert http("PUT", put.url, b"from a browser", put.headers)[0] == 201
    assert keyed.download_file("sas/new/upload.bin") == b"from a browser"
    assert http("GET", put.url)[0] == 403
    delete = keyed.generate_presigned_url("sas/new/upload.bin", method="DELETE")
    assert http("DELETE", delete.url)[0] == 202
    assert not keyed.file_exists("sas/new/upload.bin")


def test_tampered_and_expired_sas_are_refused(keyed: Any) -> None:
    keyed.upload_file(b"x", "sas/t.txt")
    signed = keyed.generate_presigned_url("sas/t.txt", expiration=300)
    parts = urlsplit(signed.url)
    query = parse_qs(parts.query)
    query["sig"] = ["B" + query["sig"][0][1:] if query["sig"][0][0] == "A" else
                    "A" + query["sig"][0][1:]]
    assert http("GET", parts._replace(query=urlencode(query, doseq=True)).geturl())[0] == 403
    assert http("GET", signed.url)[0] == 200
    other_key = signed.url.replace("sas/t.txt", "sas/other.txt")
    assert http("GET", other_key)[0] == 403
    expired = keyed.generate_presigned_url("sas/t.txt", expiration=1)
    time.sleep(2.5)
    assert http("GET", expired.url)[0] == 403


def test_sas_token_only_adapter_works_and_passes_its_token_through(
        azurite_server: AzuriteServer, container: str) -> None:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    token = generate_container_sas(azurite_server.account_name, container,
                                   account_key=azurite_server.account_key,
                                   permission=ContainerSasPermissions(read=True, write=True,
                                                                      delete=True, list=True,
                                                                      create=True),
                                   expiry=ends)
    adapter = azure({"container_name": container, "account_url": azurite_server.account_url},
                    {"sas_token": token})
    assert adapter.test_connection(timeout=5)
    adapter.upload_file(b"via sas", "s/k.txt", metadata={"who": "sas"})
    assert adapter.download_file("s/k.txt") == b"via sas"
    assert adapter.get_file_metadata("s/k.txt").metadata == {"who": "sas"}
    assert [o.key for o in adapter.list_files()] == ["s/k.txt"]
    signed = adapter.generate_presigned_url("s/k.txt", expiration=60)
    assert signed.scoped is False and signed.expires_at == ends
    assert http("GET", signed.url) == (200, b"via sas")
    with pytest.raises(StorageNotFoundError) as info:
        adapter.download_file("s/missing.txt")
    sig = parse_qs(token)["sig"][0]
    assert sig not in str(info.value) and sig not in repr(adapter)


def test_connection_string_only_config(azurite_server: AzuriteServer, container: str) -> None:
    adapter = azure({"container_name": container},
                    {"connection_string": azurite_server.connection_string})
    assert adapter.test_connection(timeout=5)
    adapter.upload_file(b"cs", "cs.txt")
    signed = adapter.generate_presigned_url("cs.txt")
    assert signed.url.startswith(f"{azurite_server.account_url}/{container}/cs.txt?")
    assert http("GET", signed.url) == (200, b"cs")
    assert adapter.get_public_url("cs.txt") == f"{azurite_server.account_url}/{container}/cs.txt"


# --- storage details ----------------------------------------------------------------------


def test_metadata_and_content_type_on_every_write_path(keyed: Any, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x07" * (9 * 1024 * 1024))  # several blocks, not one Put Blob
    keyed.upload_file(big, "w/path.bin", content_type="application/x-test",
                      metadata={"run_id": "7"})
    keyed.upload_file(b"bytes", "w/bytes.txt", metadata={"run_id": "8"})
    with open(big, "rb") as source:
        keyed.upload_file(source, "w/stream.bin", metadata={"run_id": "9"})
    expected = {"w/path.bin": ("application/x-test", "7"), "w/bytes.txt": ("text/plain", "8"),
                "w/stream.bin": ("application/octet-stream", "9")}
    for key, (content_type, run_id) in expected.items():
        info = keyed.get_file_metadata(key)
        assert (info.content_type, info.metadata) == (content_type, {"run_id": run_id}), key
    assert keyed.download_file("w/path.bin") == big.read_bytes()


def test_folder_markers_of_other_tools_stay_hidden(azurite_server: AzuriteServer,
                                                   container: str, keyed: Any) -> None:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        client = service.get_container_client(container)
        client.upload_blob("adlfs/", b"", metadata={"is_directory": "true"})
        client.upload_blob("hadoop", b"", metadata={"hdi_isfolder": "true"})
        client.upload_blob("bare/", b"")
    keyed.upload_file(b"x", "bare/inside.txt")
    assert [o.key for o in keyed.list_files()] == ["bare/inside.txt"]
    assert not any(keyed.file_exists(k) for k in ("adlfs", "hadoop", "bare"))


@pytest.mark.parametrize("key", ["a?b#c", "#", "q?", "a:b/c", "[x]/y", "x?versionid=1"])
def test_keys_with_url_characters_name_exactly_that_blob(keyed: Any, key: str) -> None:
    keyed.upload_file(key.encode(), key)
    assert [o.key for o in keyed.list_files()] == [key]
    assert keyed.download_file(key) == key.encode()
    assert keyed.get_public_url(key).endswith("/" + quote(key))


def test_a_file_and_a_folder_of_the_same_name_both_list(keyed: Any) -> None:
    keyed.upload_file(b"1", "p")
    keyed.upload_file(b"2", "p/q")
    assert [o.key for o in keyed.list_files("p/")] == ["p/q"]
    assert [o.key for o in keyed.list_files("p")] == ["p", "p/q"]


# --- failures: typed, fast, no secrets ----------------------------------------------------


def _timed(call: Any) -> tuple[BaseException, float]:
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        call()
    return info.value, time.monotonic() - start


def test_connection_failures_are_typed_and_fast(azurite_server: AzuriteServer,
                                                container: str) -> None:
    url = azurite_server.account_url
    wrong = azure({"container_name": container, "account_url": url},
                  {"account_key": "d3JvbmcgYnV0IHdlbGwgZm9ybWVk"})
    error, seconds = _timed(lambda: wrong.test_connection(timeout=5))
    assert isinstance(error, StoragePermissionError) and seconds < 5
    assert "d3JvbmcgYnV0IHdlbGwgZm9ybWVk" not in str(error)
    missing = azure({"container_name": "no-such-container", "account_url": url},
                    {"account_key": azurite_server.account_key})
    error, seconds = _timed(lambda: missing.test_connection(timeout=5))
    assert isinstance(error, StorageNotFoundError) and seconds < 5
    closed = azure({"container_name": container,
                    "account_url": f"http://127.0.0.1:{free_port()}/devstoreaccount1"},
                   {"account_key": azurite_server.account_key})
    error, seconds = _timed(lambda: closed.test_connection(timeout=5))
    assert isinstance(error, StorageConnectionError) and seconds < 5
    error, seconds = _timed(lambda: closed.download_file("k"))
    assert isinstance(error, StorageConnectionError) and seconds < 15
    error, _ = _timed(lambda: closed.open("k", "wb").close())
    assert isinstance(error, StorageConnectionError)
    assert azurite_server.account_key not in str(error)


def test_silent_server_times_out_within_the_timeout(container: str) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        adapter = azure({"container_name": container,
                         "account_url": f"http://127.0.0.1:{port}/devstoreaccount1"},
                        {"account_key": KEY})
        error, seconds = _timed(lambda: adapter.test_connection(timeout=1))
    assert isinstance(error, StorageTimeoutError) and 0.9 < seconds < 3


def test_wrong_key_on_every_operation_is_a_permission_error(azurite_server: AzuriteServer,
                                                            container: str) -> None:
    wrong = azure({"container_name": container, "account_url": azurite_server.account_url},
                  {"account_key": KEY})
    for call in (lambda: wrong.upload_file(b"x", "k"), lambda: wrong.download_file("k"),
                 lambda: wrong.list_files(), lambda: wrong.file_exists("k"),
                 lambda: wrong.open("k", "wb").close()):
        error, _ = _timed(call)
        assert isinstance(error, StoragePermissionError), error
        assert KEY not in str(error)


def test_an_expired_sas_token_says_the_credentials_expired(
        azurite_server: AzuriteServer, container: str) -> None:
    """A static SAS past its expiry cannot renew itself: a permission error that says so
    (renewing sources, DefaultAzureCredential and service principals, get new tokens
    through azure-core's bearer token policy)."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    now = datetime.now(UTC).replace(microsecond=0)
    token = generate_container_sas(azurite_server.account_name, container,
                                   account_key=azurite_server.account_key,
                                   permission=ContainerSasPermissions(read=True, write=True),
                                   start=now - timedelta(hours=2),
                                   expiry=now - timedelta(hours=1))
    adapter = azure({"container_name": container, "account_url": azurite_server.account_url},
                    {"sas_token": token})
    for call in (lambda: adapter.upload_file(b"x", "k"), lambda: adapter.download_file("k")):
        with pytest.raises(StoragePermissionError, match="credentials expired") as info:
            call()
        assert parse_qs(token)["sig"][0] not in str(info.value)


class TestAzureObstoreContract(Contract):
    """The whole contract on the azure backend's obstore engine, against Azurite."""

    case = "azure-obstore"
