"""Azure Blob Storage backend on adlfs, with a SAS signer.

The config names a container and where the account is; the credentials are one
of an account key, a connection string, a SAS token or a service principal, and
with none of them ``DefaultAzureCredential`` (managed identity, environment,
Azure CLI).  Each form becomes adlfs options made of plain strings, so
``storage_options`` rebuild the same filesystem in pandas or on a Dask worker.
Shared-key and SAS forms travel as a connection string, because adlfs lets one
in the environment (``AZURE_STORAGE_CONNECTION_STRING``) win over anything else.

adlfs builds its SDK client with the SDK's defaults, which retry an unreachable
endpoint for about a minute, wait 300 s for a server that stopped answering, and
read a 64 MiB upload into memory before sending it; the adapter swaps in a client
of the same account with its own timeouts and retries (``Resilience``) and 4 MiB
blocks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, Optional, Required, TypedDict
from urllib.parse import parse_qs, quote, urlsplit

from ..adapter import FsspecStorageAdapter, ResilienceConfig
from ..base import PresignedUrl
from ..errors import StorageOperationError, StorageValidationError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["AzureConfig", "AzureCredentials", "AzureStorageAdapter"]

_CONTAINER = re.compile(r"[a-z0-9](?:-?[a-z0-9])*\Z")
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}\Z")
_BLOCK = 4 * 1024 * 1024
_CONCURRENCY = 8
_PERMISSIONS = {"GET": {"read": True}, "HEAD": {"read": True},
                "PUT": {"create": True, "write": True}, "DELETE": {"delete": True}}
_KINDS = {
    "account key": ("account_key",),
    "connection string": ("connection_string",),
    "SAS token": ("sas_token",),
    "service principal": ("tenant_id", "client_id", "client_secret"),
}


class AzureConfig(ResilienceConfig, total=False):
    """``config`` of the ``azure`` backend."""

    container_name: Required[str]
    """Blob container that holds the objects (3-63 lower-case letters, digits, hyphens)."""
    account_name: str
    """Storage account name; optional when the connection string or account_url names it."""
    prefix: str
    """Key prefix inside the container that this adapter is confined to, e.g. one tenant."""
    account_url: str
    """Blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1 (Azurite), a sovereign
    cloud or a private endpoint; default https://{account_name}.blob.core.windows.net."""
    public_base_url: str
    """Base of get_public_url (a CDN or custom domain) instead of the blob endpoint."""


class AzureCredentials(TypedDict, total=False):
    """``credentials`` of the ``azure`` backend: one form, or none for DefaultAzureCredential."""

    account_key: str
    """Storage account key (shared key); lets the adapter sign SAS URLs itself."""
    connection_string: str
    """Connection string from the portal; names the account and endpoint too."""
    sas_token: str
    """A SAS token ('sv=...&sig=...'); presigned URLs reuse it as given, unscoped."""
    tenant_id: str
    """Service principal: Entra ID tenant (with client_id and client_secret)."""
    client_id: str
    """Service principal: application (client) id."""
    client_secret: str
    """Service principal: client secret."""


class AzureStorageAdapter(FsspecStorageAdapter):
    """Objects as block blobs in one Azure Storage container."""

    backend_name = "azure"
    config_schema = AzureConfig
    credentials_schema = AzureCredentials
    requires = ("adlfs", "azure.storage.blob")
    extra = "azure"
    flat_namespace = True
    find_accepts_prefix = True
    BULK_DELETE = 256
    sdk_resumes_cut_reads = True

    # -- construction ----------------------------------------------------------------

    def _check_config(self) -> None:
        container = self.config["container_name"]
        if not (3 <= len(container) <= 63 and _CONTAINER.match(container)):
            self._refuse(f"config field 'container_name' {container!r} is not a valid "
                         "container name: 3-63 lower-case letters, digits and single hyphens, "
                         "starting and ending with a letter or digit")
        self._kind = self._credential_kind()
        self._account_key: Optional[str] = self.credentials.get("account_key")
        self._sas: Optional[str] = self.credentials.get("sas_token")
        endpoint: Optional[str]
        account: Optional[str]
        if self._kind == "connection string":
            if self.config.get("account_url"):
                self._refuse("config field 'account_url' cannot be combined with a "
                             "connection string, which names the endpoint itself")
            endpoint, account = self._parse_connection_string()
        else:
            endpoint, account = self._parse_account_url()
        named = self.config.get("account_name")
        if named and account and named != account:
            self._refuse(f"config field 'account_name' {named!r} does not match the "
                         f"account {account!r} of the endpoint")
        if not (named or account):
            self._refuse("config field 'account_name' is required unless a connection string "
                         "or account_url names the account")
        self._account = str(named or account)
        if not _ACCOUNT.match(self._account):
            self._refuse(f"account name {self._account!r} is not valid: 3-24 lower-case "
                         "letters and digits")
        self._endpoint: str = endpoint or f"https://{self._account}.blob.core.windows.net"
        if self._uses_token() and not self._endpoint.startswith("https://"):
            self._refuse("Azure accepts Entra ID tokens (service principal, "
                         "DefaultAzureCredential) only over https; use an https account_url "
                         "or an account key, connection string or SAS token")
        if self._sas:
            self._sas = self._sas.lstrip("?")

    def _refuse(self, message: str) -> NoReturn:
        raise StorageValidationError(f"azure: {message}", backend=self.backend_name)

    def _credential_kind(self) -> Optional[str]:
        """The one credential form given; None means DefaultAzureCredential."""
        given = {kind: [name for name in names if self.credentials.get(name) is not None]
                 for kind, names in _KINDS.items()}
        kinds = [kind for kind, names in given.items() if names]
        if len(kinds) > 1:
            fields = ", ".join(name for kind in kinds for name in given[kind])
            self._refuse(f"credentials give more than one form ({fields}); give one of "
                         "account_key, connection_string, sas_token or tenant_id + client_id "
                         "+ client_secret, or none for DefaultAzureCredential")
        if kinds == ["service principal"] and len(given["service principal"]) < 3:
            missing = [name for name in _KINDS["service principal"]
                       if name not in given["service principal"]]
            self._refuse(f"a service principal needs tenant_id, client_id and client_secret; "
                         f"missing: {', '.join(missing)}")
        return kinds[0] if kinds else None

    def _uses_token(self) -> bool:
        return self._kind in (None, "service principal")

    def _parse_connection_string(self) -> tuple[str, Optional[str]]:
        """Endpoint and account of the connection string; its key or SAS, if any, for
        signing.  The SDK parses it, so every form it accepts works here."""
        from azure.storage.blob import BlobServiceClient

        try:
            client = BlobServiceClient.from_connection_string(
                self.credentials["connection_string"])
        except ValueError:
            self._refuse("credentials field 'connection_string' is malformed")
        endpoint, _, query = client.url.partition("?")
        self._account_key = getattr(client.credential, "account_key", None)
        self._sas = query or None
        return endpoint.rstrip("/"), client.account_name

    def _parse_account_url(self) -> tuple[Optional[str], Optional[str]]:
        """The configured endpoint and the account it names: the first path segment
        (emulator style) or else the first label of the host."""
        url = self.config.get("account_url")
        if not url:
            return None, None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            self._refuse("config field 'account_url' must be an http(s) URL without a query, "
                         "e.g. https://myaccount.blob.core.windows.net (a SAS token belongs in "
                         "credentials['sas_token'])")
        path = parts.path.strip("/")
        account = path.split("/")[0] if path else parts.hostname.split(".")[0]
        return url.rstrip("/"), account

    def _secret_values(self) -> tuple[str, ...]:
        extra = [value for value in (self._account_key, self._sas) if value]
        return (*super()._secret_values(), *extra)

    # -- the filesystem ----------------------------------------------------------------

    def _root(self) -> str:
        return str(self.config["container_name"])

    def _fs_options(self) -> dict[str, Any]:
        """adlfs options for this account: plain strings, so they pickle and rebuild."""
        if self._kind == "connection string":
            return {"connection_string": self.credentials["connection_string"]}
        if self._kind == "account key":
            return {"connection_string": f"AccountName={self._account};AccountKey="
                                         f"{self._account_key};BlobEndpoint={self._endpoint}"}
        if self._kind == "SAS token":
            return {"connection_string": f"BlobEndpoint={self._endpoint};"
                                         f"SharedAccessSignature={self._sas}"}
        options: dict[str, Any] = {"account_name": self._account}
        if self._endpoint != f"https://{self._account}.blob.core.windows.net":
            options["account_host"] = self._endpoint.removeprefix("https://")
        if self._kind == "service principal":
            options.update({name: self.credentials[name]
                            for name in _KINDS["service principal"]})
        else:
            options["anon"] = False
        return options

    def _make_filesystem(self) -> AbstractFileSystem:
        fs = _blob_filesystem()(**self._fs_options(), blocksize=_BLOCK,
                                 max_concurrency=_CONCURRENCY, skip_instance_cache=True,
                                 use_listings_cache=False)
        fs.service_client = self._service_client(fs)
        return fs

    def _service_client(self, fs: Any) -> Any:
        """The async SDK client adlfs will use: this account, the configured timeouts and
        retries, and uploads/downloads in 4 MiB blocks instead of one 64 MiB request."""
        from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry

        policy = self.resilience

        class Retry(ExponentialRetry):
            def get_backoff_time(self, settings: dict[str, Any]) -> float:
                """The adapter's jittered doubling from retry_backoff, not the SDK's formula."""
                return policy.delay(max(1, int(settings["count"])))

        retries = policy.max_attempts - 1
        tuning: dict[str, Any] = {
            "retry_policy": Retry(retry_total=retries, retry_connect=retries,
                                  retry_read=retries, retry_status=retries),
            "connection_timeout": policy.connect_timeout,
            "read_timeout": policy.read_timeout,
            # The SDK follows 3xx answers to any host (resending the body); an endpoint
            # has no business redirecting, so the 3xx is raised as an error instead.
            "permit_redirects": False,
            "max_single_put_size": _BLOCK, "max_block_size": _BLOCK,
            "max_single_get_size": _BLOCK, "max_chunk_get_size": _BLOCK,
        }
        if not self._uses_token():
            return BlobServiceClient.from_connection_string(fs.connection_string, **tuning)
        if fs.credential is None or fs.connection_string is not None:
            raise StorageValidationError(
                "azure: adlfs took AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_KEY "
                "or AZURE_STORAGE_SAS_TOKEN from the environment over the configured token "
                "credential; unset them or configure that credential instead",
                backend=self.backend_name)
        return BlobServiceClient(self._endpoint, credential=fs.credential, **tuning)

    def _write_options(self, how: str, content_type: str,
                       metadata: dict[str, str]) -> dict[str, Any]:
        """adlfs tags every blob it writes ``is_directory=false`` and passes that as the
        SDK's ``metadata`` on pipe_file/put_file, so ours travels as the very headers the
        SDK would send for it; ``open`` takes a metadata dict."""
        options: dict[str, Any] = {"content_settings": {"content_type": content_type}}
        if how == "open":
            options["metadata"] = {"is_directory": "false", **metadata}
        elif metadata:
            options["headers"] = {f"x-ms-meta-{name}": value for name, value in metadata.items()}
        return options

    def _blob_name(self, path: str) -> str:
        return path.partition("/")[2]

    def _head(self, path: str) -> dict[str, Any]:
        """One Get Blob Properties request; a missing blob is FileNotFoundError, and a
        folder marker (``is_directory``/``hdi_isfolder`` metadata) is a directory."""
        from azure.core.exceptions import ResourceNotFoundError
        from fsspec.asyn import sync

        fs = self.filesystem
        container = self._root()

        async def properties() -> Any:
            async with fs.service_client.get_blob_client(container,
                                                         self._blob_name(path)) as blob:
                return await blob.get_blob_properties()

        try:
            props = sync(fs.loop, properties, timeout=self.resilience.operation_timeout)
        except ResourceNotFoundError as exc:
            raise FileNotFoundError(2, "no such blob", path) from exc
        metadata = dict(props.metadata or {})
        return {"name": path, "type": "directory" if _is_marker(metadata) else "file",
                "size": props.size,
                "etag": props.etag, "last_modified": props.last_modified,
                "content_type": props.content_settings.content_type, "metadata": metadata}

    async def _remove_many(self, fs: Any, paths: list[str]) -> dict[str, BaseException]:
        """One Blob Batch request; each sub-response that failed (other than 404, a
        blob already gone) becomes the SDK's own error for the error table."""
        from azure.core.exceptions import HttpResponseError

        names = [self._blob_name(path) for path in paths]
        async with fs.service_client.get_container_client(self._root()) as client:
            replies = await client.delete_blobs(*names, raise_on_any_failure=False)
            statuses = [reply async for reply in replies]
        return {path: HttpResponseError(response=reply)
                for path, reply in zip(paths, statuses, strict=True)
                if reply.status_code >= 300 and reply.status_code != 404}

    def _pages(self, prefix: str) -> AsyncIterator[list[dict[str, Any]]]:
        """List Blobs pages (flat, in name order) with metadata, so folder markers can
        be told from files without a request per blob."""
        fs = self.filesystem
        container = self._root()
        start = f"{self.prefix}/{prefix}" if self.prefix else prefix

        async def pages() -> AsyncIterator[list[dict[str, Any]]]:
            async with fs.service_client.get_container_client(container) as client:
                listing = client.list_blobs(name_starts_with=start, include=["metadata"])
                async for page in listing.by_page():
                    yield [_listed(container, blob) async for blob in page
                           if not blob.name.endswith("/")]

        return pages()

    def _probe(self) -> None:
        """List at most one blob under the root, once, without retries: proves the
        container exists and the credentials may read it (a container SAS can list but
        not read container properties)."""
        from fsspec.asyn import sync

        fs = self.filesystem
        start = f"{self.prefix}/" if self.prefix else ""

        async def list_one() -> None:
            async with fs.service_client.get_container_client(self._root()) as container:
                async for _ in container.list_blobs(name_starts_with=start,
                                                    results_per_page=1, retry_total=0):
                    break

        sync(fs.loop, list_one)

    # -- URLs ----------------------------------------------------------------------------

    def _blob_url(self, path: str) -> str:
        return f"{self._endpoint}/{self._root()}/{quote(self._blob_name(path))}"

    def _public_url(self, key: str) -> Optional[str]:
        """``public_base_url`` + the key when configured, else the blob's own URL."""
        return super()._public_url(key) or self._blob_url(self._path(key))

    def _signer(self) -> str:
        """How presigned URLs are made: ``account key`` (a blob SAS signed here),
        ``user delegation`` (a blob SAS signed with a key the token credential obtains),
        ``SAS token`` (the configured token, passed through) or ``none``."""
        if self._account_key is not None:
            return "account key"
        if self._sas is not None:
            return "SAS token"
        return "user delegation" if self._uses_token() else "none"

    def _sign(self, path: str, key: str, expiration: int, method: str) -> PresignedUrl:
        """A SAS for exactly this blob and method, or the configured token as given
        (``scoped=False``: it cannot be narrowed without the key)."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        expires = datetime.now(UTC) + timedelta(seconds=expiration)
        headers = {"x-ms-blob-type": "BlockBlob"} if method == "PUT" else {}
        url = self._blob_url(path)
        signer = self._signer()
        if signer == "none":
            raise StorageOperationError(
                "azure: cannot sign URLs: the connection string has neither an AccountKey "
                "nor a SharedAccessSignature", backend=self.backend_name)
        if signer == "SAS token":
            ends = _sas_expiry(str(self._sas))
            return PresignedUrl(url=f"{url}?{self._sas}", expires_at=ends or expires,
                                method=method, headers=headers, scoped=False,
                                expiry_enforced=ends is not None)
        key_argument = {"account_key": self._account_key} if signer == "account key" else \
            {"user_delegation_key": self._delegation_key(expires)}
        token = generate_blob_sas(self._account, self._root(), self._blob_name(path),
                                  permission=BlobSasPermissions(**_PERMISSIONS[method]),
                                  expiry=expires, **key_argument)
        return PresignedUrl(url=f"{url}?{token}", expires_at=expires, method=method,
                            headers=headers)

    def _delegation_key(self, expires: datetime) -> Any:
        """A user-delegation key valid until ``expires``, from the token credential."""
        from azure.storage.blob import BlobServiceClient

        fs = self.filesystem
        with BlobServiceClient(self._endpoint, credential=fs.sync_credential) as service:
            return service.get_user_delegation_key(datetime.now(UTC), expires)


@functools.cache
def _blob_filesystem() -> type:
    """adlfs's filesystem, taking a path without a protocol verbatim and hiding folder
    marker blobs.

    adlfs parses every path as a URL, so a key with '#', '?', '[' or ':' in
    the wrong place loses characters or raises (``a?b#c`` would name blob
    ``a#c?b``), and cuts ``?versionid=`` off any key.  The adapter only passes
    ``container/key`` paths; URLs with a protocol still go to adlfs.  Built on
    first use, as adlfs is optional; the module's ``__getattr__`` gives it a
    name, so instances pickle.
    """
    from adlfs import AzureBlobFileSystem
    from azure.storage.blob import BlobProperties

    class BlobFileSystem(AzureBlobFileSystem):  # type: ignore[misc]
        async def _details(self, contents: Any, *args: Any, **kwargs: Any) -> Any:
            """Without folder marker blobs ('name/'), which adlfs would list as files
            named without their slash."""
            contents = [item for item in contents if not (
                isinstance(item, BlobProperties) and item.name.endswith("/"))]
            return await super()._details(contents, *args, **kwargs)

        @classmethod
        def _strip_protocol(cls, path: Any) -> Any:
            if isinstance(path, str) and "://" not in path:
                return path.lstrip("/")
            return super()._strip_protocol(path)

        def split_path(self, path: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(path, str) and "://" not in path:
                container, _, blob = path.lstrip("/").partition("/")
                return container, blob, None
            return super().split_path(path, *args, **kwargs)

    BlobFileSystem.__module__, BlobFileSystem.__qualname__ = __name__, "BlobFileSystem"
    return BlobFileSystem


def __getattr__(name: str) -> Any:
    if name == "BlobFileSystem":
        return _blob_filesystem()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _sas_expiry(token: str) -> Optional[datetime]:
    """When a SAS token ends (its ``se``); None for one bound to a stored access policy,
    whose end only the server knows."""
    ends = parse_qs(token).get("se")
    if not ends:
        return None
    return datetime.fromisoformat(ends[0].replace("Z", "+00:00")).astimezone(UTC)


def _is_marker(metadata: Optional[dict[str, str]]) -> bool:
    """adlfs and Data Lake tag the blobs that stand for folders."""
    flags = {name.lower(): value.lower() for name, value in (metadata or {}).items()}
    return "true" in (flags.get("is_directory"), flags.get("hdi_isfolder"))


def _listed(container: str, blob: Any) -> dict[str, Any]:
    """The info dict of one listed blob (a folder marker is a directory)."""
    return {"name": f"{container}/{blob.name}",
            "type": "directory" if _is_marker(blob.metadata) else "file",
            "size": blob.size, "etag": blob.etag, "last_modified": blob.last_modified}
