"""Amazon S3 and S3-compatible stores (R2, Wasabi, Ceph, MinIO) through s3fs.

The module translates ``config`` and ``credentials`` into s3fs options: SigV4,
the region, path-style addressing on custom endpoints, short connect timeouts
and a bounded retry budget (botocore's default retries can stall a dead
endpoint for a minute).  s3fs has no SigV4 presigner and no metadata in
``info``, so a small botocore client, built once per adapter, signs URLs and
probes the bucket, and ``_head`` asks for the object's headers itself.
"""

import functools
import ipaddress
import os
import re
import threading
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Optional, Required, TypedDict
from urllib.parse import quote, urlsplit

from ..adapter import FsspecStorageAdapter, Resilience, ResilienceConfig
from ..base import PresignedUrl
from ..errors import StorageOperationError, StorageValidationError, redact

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["S3Config", "S3Credentials", "S3StorageAdapter"]

PART_SIZE = 5 * 2**20
"""Part size of a local file's multipart upload (larger for files over 10,000 parts):
S3's minimum, so a 20 MiB file already goes up in concurrent parts, and memory stays
small (each part in flight is held about twice: read buffer and request body)."""
PART_CONCURRENCY = 4
"""Parts of one local file in flight at once (memory: this times the part size)."""
STREAM_PART_SIZE = 5 * 2**20
"""Buffer, and part size, of a file-object upload: S3's minimum, so a stream's memory stays
small; a stream of unknown size can therefore reach 10,000 x 5 MiB (48.8 GiB)."""
READ_BLOCK = 5 * 2**20
"""Read-ahead of a file opened for reading (s3fs's default is 50 MiB)."""
MAX_PARTS = 10_000
PROBE_TIMEOUT = 5
"""Connect and read timeout of ``test_connection``'s single, unretried request."""
_PAGE = 1000
"""Objects handed to the listing iterator at a time (one ListObjectsV2 page)."""

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_SIGNED_CALLS = {"GET": "get_object", "PUT": "put_object", "HEAD": "head_object",
                 "DELETE": "delete_object"}


class S3Config(ResilienceConfig, total=False):
    """``config`` of the ``s3`` backend."""

    bucket_name: Required[str]
    """The bucket that holds the objects."""
    region: str
    """AWS region of the bucket, e.g. 'us-west-2'; default: the AWS chain (AWS_REGION, profile)."""
    endpoint_url: str
    """URL of an S3-compatible service (R2, Wasabi, Ceph...), e.g. 'https://s3.example.com'."""
    prefix: str
    """Key prefix this adapter is confined to, e.g. one tenant."""
    public_base_url: str
    """URL that serves the bucket publicly (a CDN); get_public_url builds on it."""


class S3Credentials(TypedDict, total=False):
    """``credentials`` of the ``s3`` backend; none at all means the standard AWS chain."""

    access_key_id: str
    """Access key ID; needs secret_access_key."""
    secret_access_key: str
    """Secret access key of access_key_id."""
    session_token: str
    """Session token of temporary credentials (STS), with the key pair."""


class Target(NamedTuple):
    """Where and as whom an adapter connects, once the config is checked."""

    bucket: str
    endpoint: Optional[str]
    region: Optional[str]
    key: Optional[str]
    secret: Optional[str]
    token: Optional[str]


def check_bucket_name(name: str, backend: str) -> str:
    """S3's naming rules, so a typo fails at construction and not as a server error."""
    if not _BUCKET_NAME.match(name) or ".." in name or _is_ip(name):
        raise StorageValidationError(
            f"{backend}: bucket_name {name!r} is not a valid bucket name: use 3-63 "
            "lower-case letters, digits, '.' and '-', starting and ending with a letter or "
            "digit, no '..', not an IP address", backend=backend)
    return name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def check_endpoint(url: str, backend: str, field: str = "endpoint_url") -> str:
    """``scheme://host[:port]`` of an http(s) endpoint; anything else is refused."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or \
            parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise StorageValidationError(
            f"{backend}: config field {field!r} must look like https://host[:port] "
            f"(no path, query or user), not {redact(url)!r}", backend=backend)
    return f"{parts.scheme}://{parts.netloc}"


def key_pair(credentials: Mapping[str, Any], key_field: str, secret_field: str,
             backend: str) -> tuple[Optional[str], Optional[str]]:
    """Both halves of an access key, or neither (the AWS chain)."""
    key, secret = credentials.get(key_field), credentials.get(secret_field)
    for given, missing in ((key_field, secret_field), (secret_field, key_field)):
        if credentials.get(given) and not credentials.get(missing):
            raise StorageValidationError(
                f"{backend}: credentials field {missing!r} is required with {given!r}",
                backend=backend)
    return key, secret


class S3StorageAdapter(FsspecStorageAdapter):
    """Objects in one S3 bucket; keys are object keys (under ``prefix``)."""

    backend_name = "s3"
    config_schema: ClassVar[type] = S3Config
    credentials_schema: ClassVar[type] = S3Credentials
    requires = ("s3fs",)
    extra = "s3"
    flat_namespace = True
    find_accepts_prefix = True
    BULK_DELETE = 1000

    def __init__(self, config: Optional[Mapping[str, Any]] = None,
                 credentials: Optional[Mapping[str, Any]] = None) -> None:
        self._client_lock = threading.Lock()
        self._client: Any = None
        self._client_pid = 0
        super().__init__(config, credentials)

    # -- configuration ---------------------------------------------------------------

    def _check_config(self) -> None:
        self.target = self._resolve()
        base = self.config.get("public_base_url")
        if base is not None:
            check_public_base(base, self.backend_name)

    def _resolve(self) -> Target:
        """This backend's config and credentials as a :class:`Target`."""
        endpoint = self.config.get("endpoint_url")
        key, secret = key_pair(self.credentials, "access_key_id", "secret_access_key",
                               self.backend_name)
        token = self.credentials.get("session_token")
        if token and not key:
            raise StorageValidationError(
                f"{self.backend_name}: credentials field 'session_token' needs "
                "access_key_id and secret_access_key", backend=self.backend_name)
        return Target(bucket=check_bucket_name(self.config["bucket_name"], self.backend_name),
                      endpoint=check_endpoint(endpoint, self.backend_name) if endpoint else None,
                      region=self.config.get("region"), key=key, secret=secret, token=token)

    def _botocore_config(self) -> dict[str, Any]:
        """Settings both clients share: SigV4, and path-style on custom endpoints (where
        bucket subdomains rarely resolve)."""
        options: dict[str, Any] = {"signature_version": "s3v4"}
        if self.target.endpoint:
            options["s3"] = {"addressing_style": "path"}
        return options

    def _root(self) -> str:
        return self.target.bucket

    def _make_filesystem(self) -> "AbstractFileSystem":
        target, tuning = self.target, self.resilience
        options: dict[str, Any] = {
            "endpoint_url": target.endpoint,
            "config_kwargs": {**self._botocore_config(),
                              "connect_timeout": tuning.connect_timeout,
                              "read_timeout": tuning.read_timeout,
                              "retries": {"total_max_attempts": 1},
                              "http_session_cls": _http_session()},
            "skip_instance_cache": True,
            "use_listings_cache": False,
            "session": _sessions()[1],
        }
        if target.region:
            options["client_kwargs"] = {"region_name": target.region}
        if target.key:
            options.update(key=target.key, secret=target.secret, token=target.token)
        fs = _retrying_filesystem()(**options)
        fs.resilience = tuning
        return fs

    @property
    def storage_options(self) -> dict[str, Any]:
        """The filesystem's options without its session object, which stays in this
        process (a Dask worker builds its own)."""
        options = super().storage_options
        options.pop("session", None)
        return options

    # -- the botocore client: signing and probing ------------------------------------

    def _control(self) -> Any:
        """A synchronous botocore client for presigning and the connection probe: one
        attempt, short timeouts.  Built on first use, again after fork; never pickled."""
        with self._client_lock:
            if self._client is None or self._client_pid != os.getpid():
                from botocore.config import Config

                target = self.target
                config = Config(**self._botocore_config(), connect_timeout=PROBE_TIMEOUT,
                                read_timeout=PROBE_TIMEOUT, retries={"total_max_attempts": 1})
                self._client = _sessions()[0].create_client(
                    "s3", region_name=target.region, endpoint_url=target.endpoint,
                    aws_access_key_id=target.key, aws_secret_access_key=target.secret,
                    aws_session_token=target.token, config=config)
                self._client_pid = os.getpid()
            return self._client

    def _probe(self) -> None:
        self._control().head_bucket(Bucket=self.target.bucket)

    def _sign(self, path: str, key: str, expiration: int, method: str) -> PresignedUrl:
        """A SigV4 query-string URL; no headers are signed, so a PUT needs none."""
        bucket, _, name = path.partition("/")
        url = self._control().generate_presigned_url(
            _SIGNED_CALLS[method], Params={"Bucket": bucket, "Key": name},
            ExpiresIn=expiration, HttpMethod=method)
        # The signing time, e.g. X-Amz-Date=20261125T090459Z (fixed width, never escaped).
        start = url.index("X-Amz-Date=") + len("X-Amz-Date=")
        signed_at = datetime.fromisoformat(url[start:start + 16])
        return PresignedUrl(url=url, method=method,
                            expires_at=signed_at + timedelta(seconds=expiration))

    def close(self) -> None:
        super().close()
        with self._client_lock:
            self._client = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_client_lock")
        state["_client"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._client_lock = threading.Lock()

    # -- objects ---------------------------------------------------------------------

    def _write_options(self, how: str, content_type: str,
                       metadata: dict[str, str]) -> dict[str, Any]:
        options: dict[str, Any] = {"ContentType": content_type, "Metadata": metadata}
        if how == "put_file":
            options.update(chunksize=PART_SIZE, max_concurrency=PART_CONCURRENCY)
        elif how == "open":
            options["block_size"] = STREAM_PART_SIZE
        return options

    def _read_options(self, how: str) -> dict[str, Any]:
        """Downloads stream in one GET (s3fs would otherwise fetch 50 MiB ranges, several
        at once, each held whole in memory); reads through ``open`` fetch READ_BLOCK at
        a time. Reading a whole object into memory is one GET too: no HEAD to size it."""
        if how in ("cat_file", "get_file"):
            return {"max_concurrency": 1}
        return {"block_size": READ_BLOCK}

    def _plan_upload(self, *args: Any, **kwargs: Any) -> Any:
        """The generic plan, with a local file's parts grown when PART_SIZE would need
        more than S3's 10,000 parts."""
        key, source, options, *rest = super()._plan_upload(*args, **kwargs)
        if isinstance(source, str) and os.path.getsize(source) > PART_SIZE * MAX_PARTS:
            part = -(-os.path.getsize(source) // MAX_PARTS)
            planned = options

            def options(how: str) -> dict[str, Any]:
                return {**planned(how), "chunksize": part}

        return (key, source, options, *rest)

    def _head(self, path: str) -> dict[str, Any]:
        """One HEAD request (s3fs's ``info`` drops the user metadata).

        Servers that pass headers through CGI-style names (Ceph's RADOS Gateway) turn
        '_' in a metadata name into '-'; valid names never hold '-', so it is mapped back.
        """
        bucket, _, name = path.partition("/")
        head = self._call("call_s3", "head_object", Bucket=bucket, Key=name)
        metadata = {str(k).replace("-", "_"): v for k, v in head.get("Metadata", {}).items()}
        return {"name": path, "type": "file", "size": head.get("ContentLength", 0),
                "ETag": head.get("ETag"), "LastModified": head.get("LastModified"),
                "ContentType": head.get("ContentType"), "Metadata": metadata}

    async def _remove_many(self, fs: Any, paths: list[str]) -> dict[str, BaseException]:
        """One DeleteObjects request. Its per-key ``Errors`` (which s3fs drops) become
        botocore errors, so the one error table types them like any other answer."""
        from botocore.exceptions import ClientError

        bucket = self._root()
        objects = [{"Key": path.partition("/")[2]} for path in paths]
        answer = await fs._call_s3("delete_objects", Bucket=bucket,
                                   Delete={"Objects": objects, "Quiet": True})
        return {f"{bucket}/{error.get('Key', '')}": ClientError(
                    {"Error": {"Code": error.get("Code", ""),
                               "Message": error.get("Message", "")}}, "DeleteObjects")
                for error in answer.get("Errors", [])}

    def _pages(self, prefix: str) -> AsyncIterator[list[dict[str, Any]]]:
        """ListObjectsV2 pages, flat (no delimiter), in the store's key order; folder
        marker objects (keys ending in '/') are left out."""
        fs = self.filesystem
        bucket, _, root = self._base().partition("/")
        start = f"{root}/{prefix}" if root else prefix

        async def pages() -> AsyncIterator[list[dict[str, Any]]]:
            page: list[dict[str, Any]] = []
            async for info in fs._iterdir(bucket, delimiter="", prefix=start):
                if not info["Key"].endswith("/"):
                    page.append(info)
                if len(page) == _PAGE:
                    yield page
                    page = []
            if page:
                yield page

        return pages()

    def _public_url(self, key: str) -> Optional[str]:
        """``public_base_url`` when set; else path-style on a custom endpoint, and AWS's
        virtual-hosted URL (path-style for dotted names, which break its certificate)."""
        url = super()._public_url(key)
        if url is not None:
            return url
        bucket, _, name = self._path(key).partition("/")
        if self.target.endpoint:
            return f"{self.target.endpoint}/{bucket}/{quote(name)}"
        region = self.target.region or _default_region()
        host = f"s3.{region}.amazonaws.com" if region else "s3.amazonaws.com"
        if "." in bucket:
            return f"https://{host}/{bucket}/{quote(name)}"
        return f"https://{bucket}.{host}/{quote(name)}"


def check_public_base(url: Any, backend: str) -> None:
    """``public_base_url`` must be an absolute http(s) URL (a path is allowed)."""
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StorageValidationError(
            f"{backend}: config field 'public_base_url' must be an http(s) URL such as "
            "https://cdn.example.com/assets", backend=backend)


@functools.cache
def _retrying_filesystem() -> type:
    """s3fs's filesystem with one retry policy, ours, instead of two stacked ones.

    s3fs retries each call 5 times (fixed back-off, 5xx not at all) around
    botocore's own retries, so a dead endpoint costs 5 x botocore's attempts.  Here
    botocore makes one attempt per call and s3fs's loop runs once; every call goes
    through :meth:`Resilience.retry_async` (``max_attempts``, jittered back-off,
    transient errors only).  Built on first use, as s3fs is optional; the module's
    ``__getattr__`` gives it a name, so instances pickle.
    """
    from s3fs import S3FileSystem

    class RetryingS3FileSystem(S3FileSystem):  # type: ignore[misc]
        retries = 1
        resilience = Resilience()

        async def _call_s3(self, method: Any, *args: Any, **kwargs: Any) -> Any:
            return await self.resilience.retry_async(super()._call_s3, method, *args,
                                                     **kwargs)

        async def set_session(self, *args: Any, **kwargs: Any) -> Any:
            client = await super().set_session(*args, **kwargs)
            client.meta.events.register("before-send.s3", _no_expect_continue,
                                        unique_id="perceptra-no-expect-continue")
            return client

    RetryingS3FileSystem.__module__ = __name__
    RetryingS3FileSystem.__qualname__ = "RetryingS3FileSystem"
    return RetryingS3FileSystem


@functools.cache
def _http_session() -> type:
    """aiobotocore's HTTP session, except that it never follows a redirect.

    aiohttp follows 3xx answers by default, to any host, resending the body: an
    endpoint (or anything posing as one) could send our uploads elsewhere.  With
    redirects off, botocore sees the 3xx itself and raises it as an error.
    """
    from aiobotocore.httpsession import AIOHTTPSession

    class NoRedirectSession(AIOHTTPSession):  # type: ignore[misc]
        async def _get_session(self, proxy_url: Any) -> Any:
            return _NoRedirects(await super()._get_session(proxy_url))

    NoRedirectSession.__module__ = __name__
    NoRedirectSession.__qualname__ = "NoRedirectSession"
    return NoRedirectSession


class _NoRedirects:
    """An aiohttp session whose requests do not follow redirects, and that refuses a
    redirect to another host outright: botocore would otherwise chase the bucket's
    region with HEAD requests that the same server answers with the same redirect."""

    def __init__(self, session: Any) -> None:
        self._session = session

    async def request(self, method: str, url: Any, **kwargs: Any) -> Any:
        response = await self._session.request(method, url, allow_redirects=False, **kwargs)
        location = response.headers.get("Location")
        if 300 <= response.status < 400 and location:
            target = url.join(type(url)(location))
            if (target.host, target.port) != (url.host, url.port):
                response.release()
                raise StorageOperationError(
                    f"the endpoint answered {response.status}, a redirect to another host "
                    f"({target.host}:{target.port}); redirects are not followed, check "
                    "endpoint_url")
        return response


def _no_expect_continue(request: Any, **kwargs: Any) -> None:
    """Send bodies without ``Expect: 100-continue``: aiohttp arms no timeout while it
    waits for the ``100 Continue``, so a server that never answers held a PUT for
    minutes whatever ``read_timeout`` said."""
    request.headers.pop("Expect", None)


def __getattr__(name: str) -> Any:
    if name == "RetryingS3FileSystem":
        return _retrying_filesystem()
    if name == "NoRedirectSession":
        return _http_session()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _default_region() -> Optional[str]:
    """The region of the AWS chain (AWS_REGION, AWS_DEFAULT_REGION, profile), if any."""
    region = _sessions()[0].get_config_variable("region")
    return str(region) if region else None


@functools.lru_cache(maxsize=1)
def _loader() -> Any:
    """One botocore data loader for the process: it caches the parsed S3 service model,
    which a fresh session otherwise reads and parses again (100-400 ms on each new
    adapter's first request: a Django app's every request)."""
    from botocore.loaders import create_loader

    return create_loader()


def _sessions() -> tuple[Any, Any]:
    """A new botocore and aiobotocore session (so each adapter resolves the AWS chain
    itself) sharing the process's data loader."""
    import botocore.session
    from aiobotocore.session import AioSession

    sessions = botocore.session.Session(), AioSession()
    for session in sessions:
        session.register_component("data_loader", _loader())
    return sessions
