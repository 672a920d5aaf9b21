"""S3 behaviour as an s3fs filesystem: what every route to an S3 bucket gets.

:class:`PerceptraS3FileSystem` is s3fs with this package's transport and
operations: one retry policy (ours, :class:`~perceptra_storage.resilience.Resilience`),
no redirects, no ``Expect: 100-continue``, content type and metadata from
plain ``content_type=``/``metadata=`` keywords, bounded part sizes, and the
filesystem interface the generic adapter calls (``object_info``, ``probe``,
``_remove_many``, ``_object_pages``; see ``adapter.py``).  Its constructor
takes only plain values, so ``storage_options`` rebuild the same filesystem in
pandas or on a Dask worker, and it pickles by its module path.  The module
imports s3fs; the ``s3`` backend imports it when it builds a filesystem.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, Optional

import botocore.loaders
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import AioSession
from botocore.exceptions import ClientError
from fsspec.asyn import sync_wrapper
from s3fs import S3FileSystem
from s3fs.core import S3File

from ..errors import RedirectRefused
from ..resilience import Resilience
from ..validation import default_content_type

__all__ = ["PerceptraS3FileSystem"]

PART_SIZE = 5 * 2**20
"""Part size of a local file's multipart upload (larger for files over MAX_PARTS
parts): S3's minimum, so a 20 MiB file already goes up in concurrent parts, and
memory stays small (each part in flight is held about twice: read buffer and body)."""
PART_CONCURRENCY = 4
"""Parts of one local file in flight at once (memory: this times the part size)."""
BLOCK_SIZE = 5 * 2**20
"""Part size of a file opened for writing (a stream of unknown size can therefore
reach 10,000 x 5 MiB, 48.8 GiB) and read-ahead of one opened for reading (s3fs's
default is 50 MiB for both)."""
MAX_PARTS = 10_000
PAGE = 1000
"""Objects handed to a paged listing at a time (one ListObjectsV2 page)."""


class PerceptraS3FileSystem(S3FileSystem):  # type: ignore[misc]
    """s3fs with one retry policy, a guarded transport and the adapter's interface.

    ``resilience`` holds :class:`Resilience` fields (timeouts, attempts, back-off)
    as plain values.  s3fs retries each call 5 times around botocore's own
    retries, so a dead endpoint cost 5 x botocore's attempts; here botocore makes
    one attempt, s3fs's loop runs once, and every call goes through
    :meth:`Resilience.retry_async` (transient errors only, jittered back-off).
    """

    retries = 1
    default_block_size = BLOCK_SIZE
    bulk_delete_limit: ClassVar[int] = 1000
    """Keys one DeleteObjects request may carry."""

    def __init__(self, *args: Any, resilience: Optional[Mapping[str, Any]] = None,
                 dashed_metadata_names: bool = False, **kwargs: Any) -> None:
        self.resilience = Resilience(**(resilience or {}))
        self.dashed_metadata_names = dashed_metadata_names
        config = dict(kwargs.pop("config_kwargs", None) or {})
        config.setdefault("connect_timeout", self.resilience.connect_timeout)
        config.setdefault("read_timeout", self.resilience.read_timeout)
        config.update(retries={"total_max_attempts": 1}, http_session_cls=NoRedirectSession)
        if kwargs.get("session") is None:
            kwargs["session"] = new_session()
        super().__init__(*args, config_kwargs=config, **kwargs)

    # -- transport ---------------------------------------------------------------------

    async def _call_s3(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.resilience.retry_async(super()._call_s3, method, *args, **kwargs)

    call_s3 = sync_wrapper(_call_s3)  # s3fs's own wrapper would call its _call_s3

    async def set_session(self, *args: Any, **kwargs: Any) -> Any:
        client = await super().set_session(*args, **kwargs)
        client.meta.events.register("before-send.s3", _no_expect_continue,
                                    unique_id="perceptra-no-expect-continue")
        return client

    # -- writes: content type, metadata and part sizes from plain keywords ----------------

    async def _pipe_file(self, path: str, data: Any, *args: Any, **kwargs: Any) -> Any:
        return await super()._pipe_file(path, data, *args, **_object_options(path, kwargs))

    async def _put_file(self, lpath: str, rpath: str, *args: Any,
                        chunksize: Optional[int] = None,
                        max_concurrency: int = PART_CONCURRENCY, **kwargs: Any) -> Any:
        """A local file in PART_SIZE parts, grown when that would need more than
        S3's MAX_PARTS parts."""
        if chunksize is None and os.path.isfile(lpath):
            chunksize = max(PART_SIZE, -(-os.path.getsize(lpath) // MAX_PARTS))
        return await super()._put_file(lpath, rpath, *args, chunksize=chunksize,
                                       max_concurrency=max_concurrency,
                                       **_object_options(rpath, kwargs))

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if "r" in mode:
            return super()._open(path, mode, *args, **kwargs)
        file = super()._open(path, mode, *args, **_object_options(path, kwargs))
        if "w" in mode:
            # s3fs builds its S3File itself; the subclass changes only the empty commit.
            file.__class__ = _S3File
        return file

    # -- reads: one GET, no HEAD to size it and no concurrent ranges held in memory -------

    async def _cat_file(self, path: str, *args: Any, max_concurrency: int = 1,
                        **kwargs: Any) -> Any:
        return await super()._cat_file(path, *args, max_concurrency=max_concurrency,
                                       **kwargs)

    async def _get_file(self, rpath: str, lpath: str, *args: Any, max_concurrency: int = 1,
                        **kwargs: Any) -> Any:
        return await super()._get_file(rpath, lpath, *args, max_concurrency=max_concurrency,
                                       **kwargs)

    # -- the interface the generic adapter calls ------------------------------------------

    async def _object_info(self, path: str) -> dict[str, Any]:
        """One HEAD request, with the user metadata and object headers that s3fs's
        ``info`` drops.

        With ``dashed_metadata_names`` (the ``minio`` backend: servers that pass
        headers through CGI-style names, as Ceph's RADOS Gateway does, report '_' in a
        metadata name as '-'), '-' is mapped back to '_': names written there never
        hold '-' (the adapter refuses them).
        """
        bucket, key, _ = self.split_path(path)
        head = await self._call_s3("head_object", Bucket=bucket, Key=key)
        metadata = {str(k).replace("-", "_") if self.dashed_metadata_names else str(k): v
                    for k, v in head.get("Metadata", {}).items()}
        return {"name": f"{bucket}/{key}", "type": "file", "size": head.get("ContentLength", 0),
                "ETag": head.get("ETag"), "LastModified": head.get("LastModified"),
                "ContentType": head.get("ContentType"), "Metadata": metadata,
                **{name: head.get(name) for name in _HEADER_PARAMS.values()}}

    object_info = sync_wrapper(_object_info)

    async def _cors(self, bucket: str, rules: Optional[list[dict[str, Any]]]
                    ) -> list[dict[str, Any]]:
        """Replace the bucket's CORS rules with ``rules`` (boto3's ``CORSRules``; an
        empty list deletes them), or read them (None; [] when the bucket has none)."""
        if rules is None:
            try:
                answer = await self._call_s3("get_bucket_cors", Bucket=bucket)
            except Exception as exc:
                if _error_code(exc) == "NoSuchCORSConfiguration":
                    return []
                raise
            return list(answer.get("CORSRules", []))
        if rules:
            await self._call_s3("put_bucket_cors", Bucket=bucket,
                                CORSConfiguration={"CORSRules": rules})
        else:
            await self._call_s3("delete_bucket_cors", Bucket=bucket)
        return rules

    cors = sync_wrapper(_cors)

    async def _probe(self, path: str) -> None:
        """One HeadBucket request for the bucket of ``path``, not retried."""
        await super()._call_s3("head_bucket", Bucket=self.split_path(path)[0])

    probe = sync_wrapper(_probe)

    async def _remove_many(self, paths: list[str]) -> dict[str, BaseException]:
        """DeleteObjects for ``paths`` (one request per bucket and bulk_delete_limit
        keys). Its per-key ``Errors``, which s3fs drops, come back as botocore errors
        by path; a key already gone counts as deleted. NotImplementedError when the
        store has no DeleteObjects."""
        by_bucket: dict[str, list[str]] = {}
        for path in paths:
            bucket, key, _ = self.split_path(path)
            by_bucket.setdefault(bucket, []).append(key)
        failed: dict[str, BaseException] = {}
        for bucket, keys in by_bucket.items():
            for start in range(0, len(keys), self.bulk_delete_limit):
                chunk = [{"Key": key} for key in keys[start:start + self.bulk_delete_limit]]
                try:
                    answer = await self._call_s3("delete_objects", Bucket=bucket,
                                                 Delete={"Objects": chunk, "Quiet": True})
                except Exception as exc:
                    if _not_implemented(exc):
                        raise NotImplementedError(
                            f"{self.endpoint_url or 'S3'} has no DeleteObjects") from exc
                    raise
                failed.update({f"{bucket}/{error.get('Key', '')}": ClientError(
                    {"Error": {"Code": error.get("Code", ""),
                               "Message": error.get("Message", "")}}, "DeleteObjects")
                    for error in answer.get("Errors", [])})
        return failed

    async def _object_pages(self, path: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Info dicts of the objects whose path starts with ``path`` (a plain string
        prefix: ``bucket/data/fi`` matches ``bucket/data/file.csv``), PAGE at a time,
        flat, in key order; folder markers (keys ending in '/') are left out."""
        bucket, _, start = path.partition("/")
        page: list[dict[str, Any]] = []
        async for info in self._iterdir(bucket, delimiter="", prefix=start):
            if not info["Key"].endswith("/"):
                page.append(info)
            if len(page) == PAGE:
                yield page
                page = []
        if page:
            yield page


class _S3File(S3File):  # type: ignore[misc]
    """s3fs's file for writing, except that an empty file keeps its content type and
    metadata: s3fs commits one with a bare ``touch`` that sends neither."""

    buffer: Any

    def commit(self) -> None:
        if self.tell() == 0 and self.buffer is not None and "x" not in self.mode:
            self._abort_mpu()
            self._call_s3("put_object", Key=self.key, Bucket=self.bucket, Body=b"")
            self.buffer = None
            return
        super().commit()


_HEADER_PARAMS = {"cache_control": "CacheControl", "content_disposition": "ContentDisposition",
                  "content_encoding": "ContentEncoding"}
"""Object headers by their plain keyword and boto3's parameter name."""


def _object_options(path: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with ``content_type``, ``metadata`` and the object headers
    (``cache_control``...) as boto3's ``ContentType``, ``Metadata``, ``CacheControl``...;
    without a content type, it comes from the key's extension, as on every other route."""
    options = dict(kwargs)
    content_type = options.pop("content_type", None)
    metadata = options.pop("metadata", None)
    options.setdefault("ContentType", content_type or default_content_type(path))
    if metadata:
        options.setdefault("Metadata", dict(metadata))
    for plain, param in _HEADER_PARAMS.items():
        value = options.pop(plain, None)
        if value is not None:
            options.setdefault(param, value)
    return options


def _error_code(error: Optional[BaseException]) -> Optional[str]:
    """The S3 error code of ``error``, also through s3fs's translation of it."""
    while error is not None:
        if isinstance(error, ClientError):
            return str(error.response.get("Error", {}).get("Code", ""))
        error = error.__cause__
    return None


def _not_implemented(error: BaseException) -> bool:
    """Whether the store said it has no such operation (501 / NotImplemented), also
    through s3fs's translation of the botocore error."""
    while error is not None:
        if isinstance(error, ClientError):
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return bool(status == 501 or error.response.get("Error", {}).get("Code") ==
                        "NotImplemented")
        error = error.__cause__  # type: ignore[assignment]
    return False


class NoRedirectSession(AIOHTTPSession):  # type: ignore[misc]
    """aiobotocore's HTTP session, except that it never follows a redirect.

    aiohttp follows 3xx answers by default, to any host, resending the body: an
    endpoint (or anything posing as one) could send our uploads elsewhere.  With
    redirects off, botocore sees a same-host 3xx itself and raises it as an error.
    """

    async def _get_session(self, proxy_url: Any) -> Any:
        return _NoRedirects(await super()._get_session(proxy_url))


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
                raise RedirectRefused(
                    f"the endpoint answered {response.status}, a redirect to another host "
                    f"({target.host}:{target.port}); redirects are not followed, check "
                    "endpoint_url")
        return response


def _no_expect_continue(request: Any, **kwargs: Any) -> None:
    """Send bodies without ``Expect: 100-continue``: aiohttp arms no timeout while it
    waits for the ``100 Continue``, so a server that never answers held a PUT for
    minutes whatever ``read_timeout`` said."""
    request.headers.pop("Expect", None)


@functools.lru_cache(maxsize=1)
def data_loader() -> Any:
    """One botocore data loader for the process: it caches the parsed S3 service model,
    which a fresh session otherwise reads and parses again (100-400 ms on each new
    filesystem's first request: a Django app's every request)."""
    return botocore.loaders.create_loader()


def new_session() -> AioSession:
    """A new aiobotocore session (so each filesystem resolves the AWS chain itself)
    sharing the process's data loader."""
    session = AioSession()
    session.register_component("data_loader", data_loader())
    return session
