"""Azure Blob Storage backend on adlfs, with a SAS signer.

The config names a container and where the account is; the credentials are one
of an account key, a connection string, a SAS token or a service principal, and
with none of them ``DefaultAzureCredential`` (managed identity, environment,
Azure CLI).  Each form becomes options of
:class:`~perceptra_storage.backends._adlfs.PerceptraBlobFileSystem` (which holds
everything that talks to the service) made of plain strings, so
``storage_options`` rebuild the same filesystem in pandas or on a Dask worker.
Shared-key and SAS forms travel as a connection string, because adlfs lets one
in the environment (``AZURE_STORAGE_CONNECTION_STRING``) win over anything else.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, Optional, Required, TypedDict
from urllib.parse import parse_qs, quote, urlsplit

from ..adapter import EngineConfig, FsspecStorageAdapter, ResilienceConfig, check_engine
from ..base import CorsRule, PresignedPost, PresignedUrl
from ..errors import StorageOperationError, StorageValidationError
from ..presign import NO_OPTIONS, PostOptions, SignOptions

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["AzureConfig", "AzureCredentials", "AzureStorageAdapter"]

_CONTAINER = re.compile(r"[a-z0-9](?:-?[a-z0-9])*\Z")
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}\Z")
_PERMISSIONS = {"GET": {"read": True}, "HEAD": {"read": True},
                "PUT": {"create": True, "write": True}, "DELETE": {"delete": True}}
_UNQUOTED = re.compile(r"[\w.~/-]*\Z", re.ASCII)
"""Blob names that ``quote`` returns unchanged: letters, digits, ``_.~-`` and ``/``."""
_KINDS = {
    "account key": ("account_key",),
    "connection string": ("connection_string",),
    "SAS token": ("sas_token",),
    "service principal": ("tenant_id", "client_id", "client_secret"),
}


class AzureConfig(ResilienceConfig, EngineConfig, total=False):
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

    # -- construction ----------------------------------------------------------------

    def _check_config(self) -> None:
        self.engine = check_engine(self.config, self.backend_name)
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
        if self.engine == "obstore":
            return self._obstore_filesystem()
        return self._fsspec_engine_filesystem()

    def _fsspec_engine_filesystem(self) -> AbstractFileSystem:
        from ._adlfs import PerceptraBlobFileSystem

        return PerceptraBlobFileSystem(**self._fs_options(),
                                       resilience=dataclasses.asdict(self.resilience),
                                       skip_instance_cache=True, use_listings_cache=False)

    def _obstore_filesystem(self) -> AbstractFileSystem:
        """The obstore engine's filesystem (``_obstore.py``) for the same account: the
        endpoint (plain http allowed for it, as for Azurite) and the one credential
        form, as obstore's AzureConfig keys; with none, obstore's own chain."""
        from ._obstore import ObstoreFileSystem

        store: dict[str, Any] = {"account_name": self._account, "endpoint": self._endpoint}
        if self._account_key is not None:
            store["account_key"] = self._account_key
        elif self._sas is not None:
            store["sas_key"] = self._sas
        elif self._kind == "service principal":
            store.update({name: self.credentials[name]
                          for name in _KINDS["service principal"]})
        return ObstoreFileSystem(kind="azure", store=store,
                                 client={"allow_http": self._endpoint.startswith("http://")},
                                 resilience=dataclasses.asdict(self.resilience))

    def _service(self, method: str, *args: Any) -> Any:
        """A call on the blob service rather than on blobs (CORS rules, user-delegation
        keys): through the filesystem on the fsspec engine; obstore has no such calls,
        so on its engine through an adlfs filesystem of the same account."""
        if self.engine == "fsspec":
            return self._call(method, *args)
        return getattr(self._native_filesystem(), method)(*args)

    # -- URLs ----------------------------------------------------------------------------

    def _blob_url(self, path: str) -> str:
        """The URL of the blob at ``path``: its container, '/', then its name."""
        container, _, name = path.partition("/")
        # quote() leaves such names as they are; the match takes a quarter of its time.
        if not _UNQUOTED.match(name):
            name = quote(name)
        return f"{self._endpoint}/{container}/{name}"

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

    def _sign(self, path: str, key: str, expiration: int, method: str,
              options: SignOptions) -> PresignedUrl:
        """A SAS for exactly this blob and method, or the configured token as given
        (``scoped=False``: it cannot be narrowed without the key).

        GET and HEAD overrides are signed into the SAS (``rsct``, ``rscc``, ``rscd``).
        A SAS signs no request header, so a PUT's content type, metadata and headers
        are listed in ``headers`` for the client to send (``headers_signed=False``:
        Azure stores whatever the client sends instead)."""
        expires, expiry = _sas_time(int(time.time()) + expiration)
        headers: dict[str, str] = {}
        overrides: dict[str, Any] = {}
        if method == "PUT":
            # Put Blob stores x-ms-blob-* as the blob's properties (a plain
            # Content-Disposition would be ignored).
            headers = {"x-ms-blob-type": "BlockBlob",
                       **{f"x-ms-blob-{name.lower()}": value
                          for name, value in options.standard_headers().items()},
                       **{f"x-ms-meta-{k}": v for k, v in options.metadata.items()}}
        elif method in ("GET", "HEAD") and options is not NO_OPTIONS:
            overrides = {name: value for name, value in (
                ("content_type", options.content_type), ("cache_control", options.cache_control),
                ("content_disposition", options.content_disposition)) if value is not None}
        url = self._blob_url(path)
        signer = self._signer()
        if signer == "none":
            raise StorageOperationError(
                "azure: cannot sign URLs: the connection string has neither an AccountKey "
                "nor a SharedAccessSignature", backend=self.backend_name)
        if signer == "SAS token":
            if overrides:
                raise StorageOperationError(
                    "azure: response overrides (content_type, cache_control, "
                    "content_disposition, download_name) must be signed, and a configured "
                    "SAS token cannot be re-signed; use an account key or a service "
                    "principal", backend=self.backend_name)
            ends = _sas_expiry(str(self._sas))
            return PresignedUrl(url=f"{url}?{self._sas}", expires_at=ends or expires,
                                method=method, headers=headers, scoped=False,
                                expiry_enforced=ends is not None, headers_signed=False)
        if signer == "account key":
            key_argument: dict[str, Any] = {"account_key": self._account_key}
        else:
            delegation = self._delegation_key(expires)
            key_argument = {"user_delegation_key": delegation}
            ends = _parse_time(delegation.signed_expiry)
            if ends < expires:  # no URL outlives the key that signs it
                expires, expiry = _sas_time(int(ends.timestamp()))
        generate_blob_sas, permissions = _sas_helpers()
        container, _, name = path.partition("/")
        token = generate_blob_sas(self._account, container, name,
                                  permission=permissions[method], expiry=expiry,
                                  **key_argument, **overrides)
        return PresignedUrl(url=f"{url}?{token}", expires_at=expires, method=method,
                            headers=headers, headers_signed=False)

    def _delegation_key(self, expires: datetime) -> Any:
        """A user-delegation key valid until at least ``expires`` where the service
        grants it: one is obtained for a day (or longer URLs' lifetime, at most the
        7 days a key may live) and reused until DELEGATION_MARGIN before it ends, not
        fetched per URL (each fetch is a request through the token credential)."""
        cached = self.__dict__.get("_delegation")
        if cached is not None and _parse_time(cached.signed_expiry) - DELEGATION_MARGIN \
                >= expires:
            return cached
        now = datetime.now(UTC)
        until = min(max(expires, now + timedelta(days=1)), now + timedelta(days=7))
        delegation = self._service("user_delegation_key", until)
        self._delegation = delegation
        return delegation

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_delegation", None)
        return state

    def _sign_post(self, path: str, key: str, expiration: int,
                   options: PostOptions) -> PresignedPost:
        raise StorageOperationError(
            "azure has no POST upload policies (no form uploads with a size limit); the "
            "closest is a SAS PUT URL for this one blob with a short expiry: "
            "generate_presigned_url(key, expiration=300, method='PUT', content_type=...), "
            "sent with its PresignedUrl.headers (README: Browser uploads)",
            backend=self.backend_name, operation="presign_post", key=key)

    def _cors(self, rules: Optional[list[CorsRule]]) -> list[CorsRule]:
        """The blob service's CORS rules (Set/Get Blob Service Properties): account-wide,
        shared by every container of the account."""
        if rules is None:
            return [CorsRule(origins=rule["allowed_origins"], methods=rule["allowed_methods"],
                             headers=rule["allowed_headers"],
                             expose_headers=rule["exposed_headers"],
                             max_age=rule["max_age_in_seconds"])
                    for rule in self._service("cors", None)]
        self._service("cors", [{"allowed_origins": rule.origins, "allowed_methods": rule.methods,
                             "allowed_headers": rule.headers,
                             "exposed_headers": rule.expose_headers,
                             "max_age_in_seconds": rule.max_age} for rule in rules])
        return rules


DELEGATION_MARGIN = timedelta(minutes=5)
"""A cached user-delegation key is replaced this long before it ends."""


@functools.cache
def _sas_helpers() -> tuple[Callable[..., str], dict[str, Any]]:
    """The SDK's ``generate_blob_sas`` and the ``BlobSasPermissions`` of each method,
    made once: imported here rather than with the module, which loads without the
    azure extra, and not per URL, where the import statement and the permissions
    took about 3 us of a 40 us signature. The SDK only reads the permissions (``str``)."""
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    return generate_blob_sas, {method: BlobSasPermissions(**flags)
                               for method, flags in _PERMISSIONS.items()}


@functools.lru_cache(maxsize=16)
def _sas_time(seconds: int) -> tuple[datetime, str]:
    """The moment ``seconds`` after the epoch, and as a SAS writes it (``se``: whole
    seconds, UTC): computed once for all the URLs signed in the same second with the
    same lifetime. The SDK would format a datetime itself with ``strftime``, about a
    tenth of a signature's cost; it takes the string as it is. A URL's ``expires_at``
    is thus the ``se`` that Azure enforces, to the second."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment, moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> datetime:
    """A user-delegation key's time (the SDK gives ISO 8601 strings), UTC."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def _sas_expiry(token: str) -> Optional[datetime]:
    """When a SAS token ends (its ``se``); None for one bound to a stored access policy,
    whose end only the server knows."""
    ends = parse_qs(token).get("se")
    if not ends:
        return None
    return datetime.fromisoformat(ends[0].replace("Z", "+00:00")).astimezone(UTC)
