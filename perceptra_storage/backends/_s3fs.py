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

import asyncio
import base64
import contextlib
import contextvars
import functools
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Optional

import aiohttp
import botocore.loaders
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import AioSession
from botocore.credentials import CredentialProvider, RefreshableCredentials
from botocore.exceptions import ClientError, CredentialRetrievalError
from fsspec.asyn import sync_wrapper
from s3fs import S3FileSystem
from s3fs.core import S3File

from ..errors import RedirectRefused
from ..files import ChunkedWriter
from ..resilience import Resilience, cut_read
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
_OPEN_UPLOADS: contextvars.ContextVar[Optional[list[tuple[str, str, str]]]] = \
    contextvars.ContextVar("perceptra_open_uploads", default=None)
"""Multipart uploads started (and not yet completed or aborted) by the write in progress
in this context: ``(bucket, key, upload id)``; see :meth:`PerceptraS3FileSystem._aborting`."""
SINGLE_PUT = 100 * 2**20
"""Largest bytes upload with ``checksum=`` sent in one PutObject (s3fs's own limit for
one), whose checksum the server checks against the whole object's SHA-256.  Larger
ones, and local files of over two parts, go up in parts, whose checksums cover each
part and not the object, so the adapter reads those back."""
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
                 dashed_metadata_names: bool = False,
                 aws_profile: Optional[str] = None,
                 refresh_credentials: Optional[Callable[[], Mapping[str, Any]]] = None,
                 **kwargs: Any) -> None:
        """``aws_profile`` names a profile of the AWS shared files (s3fs's own ``profile``
        would also reach every request's parameters); ``refresh_credentials`` is a
        function returning fresh temporary credentials (see :func:`refreshing_provider`);
        ``dashed_metadata_names``: see :meth:`_object_info`."""
        self.resilience = Resilience(**(resilience or {}))
        self.dashed_metadata_names = dashed_metadata_names
        config = dict(kwargs.pop("config_kwargs", None) or {})
        config.setdefault("connect_timeout", self.resilience.connect_timeout)
        config.setdefault("read_timeout", self.resilience.read_timeout)
        config.update(retries={"total_max_attempts": 1}, http_session_cls=NoRedirectSession)
        if kwargs.get("session") is None:
            kwargs["session"] = new_session(aws_profile, refresh_credentials)
        super().__init__(*args, config_kwargs=config, **kwargs)

    # -- transport ---------------------------------------------------------------------

    async def _call_s3(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        answer = await self.resilience.retry_async(super()._call_s3, method, *args, **kwargs)
        uploads = _OPEN_UPLOADS.get()
        if uploads is not None:
            if method == "create_multipart_upload":
                uploads.append((kwargs["Bucket"], kwargs["Key"], answer["UploadId"]))
            elif method in ("complete_multipart_upload", "abort_multipart_upload"):
                done = (kwargs.get("Bucket"), kwargs.get("Key"), kwargs.get("UploadId"))
                uploads[:] = [upload for upload in uploads if upload != done]
        return answer

    async def _aborting(self, write: Awaitable[Any]) -> Any:
        """Await a write, aborting the multipart uploads it started if it is cancelled.

        s3fs aborts an unfinished multipart upload on an ``Exception``; a cancelled task
        (``adapter.aio`` under ``asyncio.timeout``, a client gone from a web server,
        ``operation_timeout``) raises ``CancelledError``, which is not one, and left the
        upload's parts stored and billed. The uploads the write starts are recorded by
        :meth:`_call_s3` in a context variable, which tasks it spawns share."""
        uploads: list[tuple[str, str, str]] = []
        token = _OPEN_UPLOADS.set(uploads)
        try:
            return await write
        except asyncio.CancelledError:
            for bucket, key, upload_id in list(uploads):
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._call_s3(
                        "abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id))
            raise
        finally:
            _OPEN_UPLOADS.reset(token)

    def warm(self) -> None:
        """Load what a new client loads synchronously (botocore's S3 model, endpoints and
        rules, into the process's shared loader): ``adapter.aio`` calls this in a thread,
        so that the first request on an event loop does not parse them on the loop."""
        loader = data_loader()
        for name in ("endpoints", "partitions", "sdk-default-configuration"):
            loader.load_data(name)
        for kind in ("service-2", "endpoint-rule-set-1"):
            loader.load_service_model("s3", kind)

    async def _release(self) -> None:
        """Close the HTTP session of an asynchronous instance (``adapter.aio``, one per
        event loop) on its own loop."""
        creator = getattr(self, "_s3creator", None)
        self._s3 = self._s3creator = self._hooked_client = None
        if creator is not None:
            await creator.__aexit__(None, None, None)

    call_s3 = sync_wrapper(_call_s3)  # s3fs's own wrapper would call its _call_s3

    async def set_session(self, *args: Any, **kwargs: Any) -> Any:
        # s3fs calls set_session before every request; the hook is registered once per
        # client, since registering it again on each call cost ~0.3 ms of CPU per request.
        client = await super().set_session(*args, **kwargs)
        if getattr(self, "_hooked_client", None) is not client:
            client.meta.events.register("before-send.s3", _no_expect_continue,
                                        unique_id="perceptra-no-expect-continue")
            self._hooked_client = client
        return client

    # -- writes: content type, metadata and part sizes from plain keywords ----------------

    verifies_uploads: ClassVar[bool] = True
    """``pipe_file``/``put_file`` take ``checksum=`` (see :meth:`_verified_put`)."""

    async def _pipe_file(self, path: str, data: Any, *args: Any,
                         checksum: Optional[str] = None, **kwargs: Any) -> Any:
        if checksum is not None and len(data) <= SINGLE_PUT:
            return await self._verified_put(path, data, checksum, kwargs)
        return await self._aborting(
            super()._pipe_file(path, data, *args, **_object_options(path, kwargs)))

    async def _put_file(self, lpath: str, rpath: str, *args: Any,
                        chunksize: Optional[int] = None,
                        max_concurrency: int = PART_CONCURRENCY,
                        checksum: Optional[str] = None, **kwargs: Any) -> Any:
        """A local file in PART_SIZE parts, grown when that would need more than
        S3's MAX_PARTS parts."""
        if checksum is not None and os.path.isfile(lpath) and \
                os.path.getsize(lpath) < 2 * PART_SIZE and not args:
            # Bytes, not the open file: a retry must send the body again from its start.
            with open(lpath, "rb") as local:
                body = local.read()
            done = await self._verified_put(rpath, body, checksum, kwargs)
            callback = kwargs.get("callback")
            if callback is not None:
                callback.relative_update(len(body))
            return done
        if chunksize is None and os.path.isfile(lpath):
            chunksize = max(PART_SIZE, -(-os.path.getsize(lpath) // MAX_PARTS))
        return await self._aborting(super()._put_file(
            lpath, rpath, *args, chunksize=chunksize, max_concurrency=max_concurrency,
            **_object_options(rpath, kwargs)))

    async def _verified_put(self, path: str, body: bytes, checksum: str,
                            kwargs: dict[str, Any]) -> bool:
        """One PutObject carrying the SHA-256 of the source (``checksum``, hex) as
        ``x-amz-checksum-sha256``: a server that supports checksums refuses the upload
        (BadDigest) unless the bytes it received hash to it, and stores it.  True when
        the answer confirms the checksum; False from a server that ignored it (the
        caller then checks another way)."""
        bucket, key, _ = self.split_path(path)
        options = _object_options(path, {k: v for k, v in kwargs.items()
                                         if k not in ("callback", "mode")})
        if kwargs.get("mode") == "create":
            options["IfNoneMatch"] = "*"
        encoded = base64.b64encode(bytes.fromhex(checksum)).decode()
        answer = await self._call_s3("put_object", Bucket=bucket, Key=key, Body=body,
                                     ChecksumSHA256=encoded, **options)
        self.invalidate_cache(path)
        return bool(answer.get("ChecksumSHA256") == encoded)

    def _open_writer(self, path: str, **kwargs: Any) -> _PartWriter:
        """A writer that sends what is written to ``path`` as it comes, in PART_SIZE
        parts of a multipart upload, for an asynchronous instance (``adapter.aio``'s
        ``open(key, "wb")``): s3fs's own file for writing calls the blocking methods."""
        bucket, key, _ = self.split_path(path)
        return _PartWriter(self, path, bucket, key, _object_options(path, kwargs))

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if "r" in mode:
            file = super()._open(path, mode, *args, **kwargs)
            # s3fs builds its S3File itself; the subclass changes only the range reads.
            file.__class__ = _S3Reader
            if getattr(file, "cache", None) is not None:  # it bound the old method
                file.cache.fetcher = file._fetch_range
            return file
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


class _S3Reader(S3File):  # type: ignore[misc]
    """s3fs's file for reading, whose range reads are redone when the body is cut: each
    request already goes through the retry policy (``_call_s3``), but the body is read
    after it returns, and s3fs retries nothing here (``retries = 1``).  Only a cut is
    redone here, so a failing request is not retried twice over."""

    def _fetch_range(self, start: int, end: int) -> bytes:
        read = super()._fetch_range
        return self.fs.resilience.retry(  # type: ignore[no-any-return]
            lambda: read(start, end), when=cut_read)


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


class _PartWriter(ChunkedWriter):
    """An object written in parts as the data comes (see ``_open_writer``): memory holds
    at most one part; up to one part in all is stored with one PutObject on commit,
    more as a multipart upload, which :meth:`abort` aborts. Parts of PART_SIZE bound a
    stream of unknown size to MAX_PARTS x PART_SIZE (48.8 GiB), as ``open`` does."""

    piece_size = PART_SIZE

    def __init__(self, fs: PerceptraS3FileSystem, path: str, bucket: str, key: str,
                 options: dict[str, Any]) -> None:
        super().__init__()
        self._fs, self._path, self._bucket, self._key = fs, path, bucket, key
        self._options = options
        self._upload_id: Optional[str] = None
        self._parts: list[dict[str, Any]] = []

    async def _send(self, body: bytes) -> None:
        where = {"Bucket": self._bucket, "Key": self._key}
        if self._upload_id is None:
            answer = await self._fs._call_s3("create_multipart_upload", **where,
                                             **self._options)
            self._upload_id = answer["UploadId"]
        number = len(self._parts) + 1
        answer = await self._fs._call_s3("upload_part", **where, UploadId=self._upload_id,
                                         PartNumber=number, Body=body)
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def commit(self) -> None:
        """Store the object: what is buffered as the last part (or the whole object)."""
        if self._upload_id is None:
            await self._fs._call_s3("put_object", Bucket=self._bucket, Key=self._key,
                                    Body=bytes(self._buffer), **self._options)
        else:
            if self._buffer:
                await self._send(bytes(self._buffer))
            try:
                await self._fs._call_s3("complete_multipart_upload", Bucket=self._bucket,
                                        Key=self._key, UploadId=self._upload_id,
                                        MultipartUpload={"Parts": self._parts})
            except FileNotFoundError:
                # NoSuchUpload: when the answer to a completion that succeeded was lost,
                # its retry finds the upload gone (the soak met it on Ceph RGW). The
                # object is ours if it holds exactly these parts (S3's multipart ETag).
                if not await self._completed():
                    raise
            self._upload_id = None
        self._buffer = bytearray()
        self._fs.invalidate_cache(self._path)

    async def _completed(self) -> bool:
        """Whether the key holds the object these parts make (its ETag is the MD5 of
        the parts' MD5s, with the part count)."""
        digests = b"".join(bytes.fromhex(part["ETag"].strip('"')) for part in self._parts)
        expected = f'"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(self._parts)}"'
        try:
            head = await self._fs._call_s3("head_object", Bucket=self._bucket, Key=self._key)
        except FileNotFoundError:
            return False
        return bool(head.get("ETag") == expected)

    async def abort(self) -> None:
        """Drop the write: its multipart upload, if one was started, is aborted (in a
        task of its own, so that a caller cancelled again meanwhile does not stop it)."""
        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._fs._call_s3(
                    "abort_multipart_upload", Bucket=self._bucket, Key=self._key,
                    UploadId=upload_id))


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
        if session._request_class is aiohttp.ClientRequest:
            session._request_class = _QuietBodyRequest
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


class _QuietBodyRequest(aiohttp.ClientRequest):
    """aiohttp's request, except that a body cut off by the connection does not fail
    the task that writes it.

    aiohttp sends a request body in a task of its own.  When the server answers
    before it has read the whole body (a 503 SlowDown, a 400) and closes, or the
    connection is reset, that task fails writing the rest (``ClientConnectionResetError:
    Cannot write to closing transport``) and often nobody awaits it: asyncio then
    prints "Task exception was never retrieved" and the traceback on stderr.  aiohttp
    has closed the connection by then, so the request itself fails or has its
    answer (retried or raised as a typed error); the writer's failure adds nothing."""

    async def write_bytes(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().write_bytes(*args, **kwargs)
        except aiohttp.ClientConnectionError as exc:
            logging.getLogger(__name__).debug("request body cut off: %r", exc)


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


def new_session(profile: Optional[str] = None,
                refresh: Optional[Callable[[], Mapping[str, Any]]] = None) -> AioSession:
    """A new aiobotocore session (so each filesystem resolves the AWS chain itself, as
    ``profile`` when given) sharing the process's data loader; with ``refresh``, its
    credentials come from that function first (:func:`refreshing_provider`)."""
    return _prepared(AioSession(profile=profile), refresh, asynchronous=True)


def botocore_session(profile: Optional[str] = None,
                     refresh: Optional[Callable[[], Mapping[str, Any]]] = None) -> Any:
    """:func:`new_session` for botocore itself (the URL signer, the obstore engine's
    credentials, AWS-chain lookups)."""
    import botocore.session

    return _prepared(botocore.session.Session(profile=profile), refresh,
                     asynchronous=False)


def _prepared(session: Any, refresh: Optional[Callable[[], Mapping[str, Any]]],
              asynchronous: bool) -> Any:
    """``session`` with the process's data loader and, given ``refresh``, that function
    ahead of the AWS chain's environment variables."""
    session.register_component("data_loader", data_loader())
    if refresh is not None:
        session.get_component("credential_provider").insert_before(
            "env", refreshing_provider(refresh, asynchronous=asynchronous))
    return session


REFRESH_METHOD = "perceptra-refresh"
"""The name of the credential provider built from ``credentials['refresh']``."""


def _metadata(fresh: Any) -> dict[str, Any]:
    """botocore's credential metadata from what a refresh function returned; anything
    unusable is a CredentialRetrievalError (typed as permission denied), an expiry
    already past included."""
    def refuse(why: str) -> CredentialRetrievalError:
        return CredentialRetrievalError(provider=REFRESH_METHOD, error_msg=why)

    if not isinstance(fresh, Mapping):
        raise refuse(f"credentials['refresh'] returned a {type(fresh).__name__}, not a dict")
    missing = [name for name in ("access_key_id", "secret_access_key", "expires_at")
               if not fresh.get(name)]
    if missing:
        raise refuse(f"credentials['refresh'] returned no {', '.join(missing)}")
    expires = fresh["expires_at"]
    if isinstance(expires, str):
        expires = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    if not isinstance(expires, datetime):
        raise refuse("credentials['refresh'] returned expires_at that is not a datetime")
    expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    if expires <= datetime.now(UTC):
        raise refuse("the credentials credentials['refresh'] returned have expired")
    return {"access_key": fresh["access_key_id"], "secret_key": fresh["secret_access_key"],
            "token": fresh.get("session_token"), "expiry_time": expires.isoformat()}


def refreshing_provider(refresh: Callable[[], Mapping[str, Any]], asynchronous: bool) -> Any:
    """A botocore credential provider over a user's refresh function: it loads
    refreshable credentials, which botocore renews by calling the function again
    before they expire (15 minutes ahead, blocking from 10 minutes), so no request is
    signed with expired keys. ``asynchronous`` for aiobotocore (the filesystem), else
    for botocore (the URL signer)."""
    return _AioRefreshProvider(refresh) if asynchronous else _RefreshProvider(refresh)


class _AioRefreshProvider(CredentialProvider):  # type: ignore[misc]
    """aiobotocore's providers are botocore's with an async ``load``."""

    METHOD = REFRESH_METHOD

    def __init__(self, refresh: Callable[[], Mapping[str, Any]]) -> None:
        self._refresh = refresh

    async def _fetch(self) -> dict[str, Any]:
        # The user's function may block (a call to a vault): not on the event loop.
        return _metadata(await asyncio.to_thread(self._refresh))

    async def load(self) -> Any:
        return AioRefreshableCredentials.create_from_metadata(
            await self._fetch(), refresh_using=self._fetch, method=REFRESH_METHOD)


class _RefreshProvider(CredentialProvider):  # type: ignore[misc]
    METHOD = REFRESH_METHOD

    def __init__(self, refresh: Callable[[], Mapping[str, Any]]) -> None:
        self._refresh = refresh

    def _fetch(self) -> dict[str, Any]:
        return _metadata(self._refresh())

    def load(self) -> Any:
        return RefreshableCredentials.create_from_metadata(
            self._fetch(), refresh_using=self._fetch, method=REFRESH_METHOD)
