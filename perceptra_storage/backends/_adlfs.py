"""Azure Blob behaviour as an adlfs filesystem: what every route to a container gets.

:class:`PerceptraBlobFileSystem` is adlfs with this package's SDK client (the
configured timeouts and retries, no redirects, 4 MiB blocks), paths taken
verbatim, folder markers hidden, blobs that carry only the metadata the user
set, and the filesystem interface the generic adapter calls (``object_info``,
``probe``, ``_remove_many``, ``_object_pages``; see ``adapter.py``).  Its
constructor takes only plain values, so ``storage_options`` rebuild the same
filesystem in pandas or on a Dask worker, and it pickles by its module path.
The module imports adlfs; the ``azure`` backend imports it when it builds a
filesystem.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import uuid
import weakref
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Optional

from adlfs import AzureBlobFileSystem
from adlfs.spec import AzureBlobFile, make_callback
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobBlock, BlobProperties, ContentSettings, CorsRule
from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry
from fsspec.asyn import sync_wrapper

from ..errors import StorageValidationError
from ..files import ChunkedWriter
from ..resilience import Resilience, recovered
from ..validation import default_content_type

__all__ = ["PerceptraBlobFileSystem"]

BLOCK = 4 * 2**20
"""Block size of uploads and ranged downloads (the SDK sends 64 MiB in one request
by default, read into memory first)."""
CONCURRENCY = 8
"""Blocks of one transfer in flight at once."""


class PerceptraBlobFileSystem(AzureBlobFileSystem):  # type: ignore[misc]
    """adlfs with our SDK client, verbatim paths and no bookkeeping metadata.

    ``resilience`` holds :class:`Resilience` fields (timeouts, attempts, back-off)
    as plain values. adlfs builds its client with the SDK's defaults, which
    retry an unreachable endpoint for about a minute and wait 300 s for a server
    that stopped answering; this one uses the configured budget.
    """

    bulk_delete_limit: ClassVar[int] = 256
    """Sub-requests one Blob Batch request may carry."""
    resumes_cut_reads: ClassVar[bool] = True
    """azure-storage-blob retries a download whose connection was cut mid-body."""

    def __init__(self, *args: Any, resilience: Optional[Mapping[str, Any]] = None,
                 **kwargs: Any) -> None:
        self.resilience = Resilience(**(resilience or {}))
        wants_token = not any(kwargs.get(name) for name in
                              ("connection_string", "account_key", "sas_token")) and \
            (kwargs.get("client_id") is not None or kwargs.get("anon") is False)
        kwargs.setdefault("blocksize", BLOCK)
        kwargs.setdefault("max_concurrency", CONCURRENCY)
        super().__init__(*args, **kwargs)
        # adlfs passes these keywords to each download_blob (and to uploads, which this
        # class makes itself): the SDK would otherwise gunzip a blob stored with
        # Content-Encoding gzip, so a download would not return the bytes stored.
        self._timeout_kwargs["decompress"] = False
        if self.asynchronous:
            _detach_finalizers(self)
        if wants_token and (self.credential is None or self.connection_string is not None):
            raise StorageValidationError(
                "adlfs took AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_KEY "
                "or AZURE_STORAGE_SAS_TOKEN from the environment over the configured token "
                "credential; unset them or configure that credential instead",
                backend="azure")

    def do_connect(self) -> None:
        """The async SDK client of this account, with the configured timeouts and
        retries, and transfers in BLOCK-sized requests."""
        policy = self.resilience
        retries = policy.max_attempts - 1
        tuning: dict[str, Any] = {
            "retry_policy": _Retry(policy, retry_total=retries, retry_connect=retries,
                                   retry_read=retries, retry_status=retries),
            "connection_timeout": policy.connect_timeout,
            "read_timeout": policy.read_timeout,
            # The SDK follows 3xx answers to any host (resending the body); an endpoint
            # has no business redirecting, so the 3xx is raised as an error instead.
            "permit_redirects": False,
            "max_single_put_size": BLOCK, "max_block_size": BLOCK,
            "max_single_get_size": BLOCK, "max_chunk_get_size": BLOCK,
        }
        if self.connection_string is not None:
            self.service_client = BlobServiceClient.from_connection_string(
                self.connection_string, **tuning)
            return
        host = getattr(self, "account_host", f"{self.account_name}.blob.core.windows.net")
        url = f"https://{host}"
        credential = self.credential or self.account_key
        if credential is None and self.sas_token:
            url += "?" + self.sas_token.lstrip("?")
        self.service_client = BlobServiceClient(url, credential=credential, **tuning)

    async def _release(self) -> None:
        """Close the SDK client of an asynchronous instance (``adapter.aio``, one per
        event loop) on its own loop."""
        await self.service_client.close()
        close = getattr(self.credential, "close", None)
        if close is not None:
            await close()

    # -- paths: verbatim, folder markers hidden ------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        """A path without a protocol is taken verbatim: adlfs parses every path as a
        URL, so a key with '#', '?', '[' or ':' in the wrong place loses characters or
        raises (``a?b#c`` would name blob ``a#c?b``) and ``?versionid=`` is cut off
        any key.  URLs with a protocol still go through adlfs's parsing."""
        if isinstance(path, str) and "://" not in path:
            return path.lstrip("/")
        return super()._strip_protocol(path)

    def split_path(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, str) and "://" not in path:
            container, _, blob = path.lstrip("/").partition("/")
            return container, blob, None
        return super().split_path(path, *args, **kwargs)

    async def _details(self, contents: Any, *args: Any, **kwargs: Any) -> Any:
        """Without folder marker blobs ('name/'), which adlfs would list as files
        named without their slash."""
        contents = [item for item in contents if not (
            isinstance(item, BlobProperties) and item.name.endswith("/"))]
        return await super()._details(contents, *args, **kwargs)

    # -- writes: only the user's metadata ------------------------------------------------
    # adlfs tags every blob it writes with ``is_directory: false``, which every other
    # tool reading the container then sees; blobs written here carry only what the
    # caller set. Folder markers (``is_directory: true``) are still recognised.

    verifies_uploads: ClassVar[bool] = True
    """``pipe_file``/``put_file`` take ``checksum=``: with one, every request of the
    upload carries the MD5 of its body (``validate_content``), which the service
    checks before it stores the block or blob, and they return True."""

    async def _pipe_file(self, path: str, value: Any, overwrite: bool = True,
                         max_concurrency: Optional[int] = None,
                         checksum: Optional[str] = None, **kwargs: Any) -> Any:
        if kwargs.pop("mode", "") == "create":
            overwrite = False
        container, blob, _ = self.split_path(path)
        async with self.service_client.get_blob_client(container, blob) as client:
            answer = await client.upload_blob(
                value, overwrite=overwrite, max_concurrency=max_concurrency or
                self.max_concurrency, validate_content=checksum is not None,
                **_blob_options(path, kwargs))
        return True if checksum is not None else answer

    pipe_file = sync_wrapper(_pipe_file)  # adlfs's own wrapper would call its _pipe_file

    async def _put_file(self, lpath: str, rpath: str, delimiter: str = "/",
                        overwrite: bool = True,
                        callback: Any = None, max_concurrency: Optional[int] = None,
                        checksum: Optional[str] = None, **kwargs: Any) -> Any:
        if os.path.isdir(lpath):
            return await self._mkdir(rpath)
        if kwargs.pop("mode", "") == "create":
            overwrite = False
        container, blob, _ = self.split_path(rpath)
        with open(lpath, "rb") as source:
            async with self.service_client.get_blob_client(container, blob) as client:
                answer = await client.upload_blob(
                    source, overwrite=overwrite,
                    raw_response_hook=make_callback("upload_stream_current", callback),
                    max_concurrency=max_concurrency or self.max_concurrency,
                    validate_content=checksum is not None, **_blob_options(rpath, kwargs))
        return True if checksum is not None else answer

    put_file = sync_wrapper(_put_file)

    def _open_writer(self, path: str, **kwargs: Any) -> _BlockWriter:
        """A writer that stages what is written to ``path`` as it comes, in BLOCK-sized
        blocks, committed as the blob by ``commit``, for an asynchronous instance
        (``adapter.aio``'s ``open(key, "wb")``): adlfs's own file for writing calls the
        blocking methods."""
        container, blob, _ = self.split_path(path)
        return _BlockWriter(self.service_client.get_blob_client(container, blob),
                            _blob_options(path, kwargs))

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if "r" in mode:
            file = super()._open(path, mode, *args, **kwargs)
            # adlfs builds its AzureBlobFile itself; the subclass changes only the reads.
            file.__class__ = _BlobReader
            if getattr(file, "cache", None) is not None:  # it bound the old method
                file.cache.fetcher = file._fetch_range
            return file
        options = _blob_options(path, kwargs)
        metadata = options.pop("metadata")
        file = super()._open(path, mode, *args, **options)
        file.metadata = metadata  # adlfs would put is_directory into an empty one
        return file

    # -- the interface the generic adapter calls ------------------------------------------

    async def _object_info(self, path: str) -> dict[str, Any]:
        """One Get Blob Properties request; a folder marker is a directory. A missing
        blob raises the SDK's ResourceNotFoundError (the error table types it)."""
        container, blob, _ = self.split_path(path)
        async with self.service_client.get_blob_client(container, blob) as client:
            props = await client.get_blob_properties()
        metadata = dict(props.metadata or {})
        settings = props.content_settings
        return {"name": f"{container}/{blob}",
                "type": "directory" if _is_marker(metadata) else "file",
                "size": props.size, "etag": props.etag, "last_modified": props.last_modified,
                "content_type": settings.content_type, "metadata": metadata,
                **{name: getattr(settings, name, None) for name in _HEADERS}}

    object_info = sync_wrapper(_object_info)

    async def _probe(self, path: str) -> None:
        """List at most one blob under ``path``, once, without retries: proves the
        container exists and the credentials may read it (a container SAS can list
        but not read container properties)."""
        container, _, prefix = path.strip("/").partition("/")
        async with self.service_client.get_container_client(container) as client:
            async for _ in client.list_blobs(name_starts_with=f"{prefix}/" if prefix else "",
                                             results_per_page=1, retry_total=0):
                break

    probe = sync_wrapper(_probe)

    async def _user_delegation_key(self, expires: datetime) -> Any:
        """A user-delegation key valid from now until ``expires``, obtained with the
        token credential (for SAS URLs signed without an account key)."""
        return await self.service_client.get_user_delegation_key(datetime.now(UTC), expires)

    user_delegation_key = sync_wrapper(_user_delegation_key)

    async def _cors(self, rules: Optional[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """Replace the blob service's CORS rules with ``rules`` (dicts of the SDK's
        ``CorsRule`` keywords; [] removes them), or read them (None)."""
        if rules is not None:
            await self.service_client.set_service_properties(
                cors=[CorsRule(**rule) for rule in rules])
            return rules
        properties = await self.service_client.get_service_properties()
        return [{name: _listed_values(getattr(rule, name)) if name != "max_age_in_seconds"
                 else int(getattr(rule, name) or 0) for name in _CORS_FIELDS}
                for rule in properties.get("cors") or []]

    cors = sync_wrapper(_cors)

    async def _remove_many(self, paths: list[str]) -> dict[str, BaseException]:
        """Blob Batch deletes of ``paths`` (bulk_delete_limit per request and
        container). Each sub-response that failed, other than 404 (a blob already
        gone), comes back as the SDK's error by path. NotImplementedError when the
        service has no Blob Batch."""
        by_container: dict[str, list[str]] = {}
        for path in paths:
            by_container.setdefault(self.split_path(path)[0], []).append(path)
        failed: dict[str, BaseException] = {}
        for container, chunk_paths in by_container.items():
            async with self.service_client.get_container_client(container) as client:
                for start in range(0, len(chunk_paths), self.bulk_delete_limit):
                    chunk = chunk_paths[start:start + self.bulk_delete_limit]
                    try:
                        replies = await client.delete_blobs(
                            *(self.split_path(path)[1] for path in chunk),
                            raise_on_any_failure=False)
                        statuses = [reply async for reply in replies]
                    except HttpResponseError as exc:
                        if exc.status_code == 501:
                            raise NotImplementedError(
                                f"{client.url} has no Blob Batch") from exc
                        raise
                    failed.update({path: HttpResponseError(response=reply)
                                   for path, reply in zip(chunk, statuses, strict=True)
                                   if reply.status_code >= 300 and reply.status_code != 404})
        return failed

    async def _object_pages(self, path: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Info dicts of the blobs whose path starts with ``path`` (a plain string
        prefix), one List Blobs page at a time, flat, in name order, with metadata
        so folder markers are told from files without a request per blob."""
        container, _, start = path.partition("/")
        async with self.service_client.get_container_client(container) as client:
            listing = client.list_blobs(name_starts_with=start, include=["metadata"])
            async for page in listing.by_page():
                yield [_listed(container, blob) async for blob in page
                       if not blob.name.endswith("/")]


class _BlockWriter(ChunkedWriter):
    """A blob written in blocks as the data comes (see ``_open_writer``): memory holds
    at most one block; up to one block in all is stored with one Put Blob on commit,
    more as staged blocks committed by one Put Block List. Until then the blob (and
    any previous version) is unchanged; blocks of an abandoned write stay uncommitted,
    invisible, until the name's next commit or the service's clean-up (README,
    Reliability). Block ids are random, so two writers of one name never mix blocks."""

    piece_size = BLOCK

    def __init__(self, client: Any, options: dict[str, Any]) -> None:
        super().__init__()
        self._client = client
        self._options = options
        self._blocks: list[BlobBlock] = []
        self._open = True

    async def _send(self, body: bytes) -> None:
        block_id = uuid.uuid4().hex
        await self._client.stage_block(block_id, body, length=len(body))
        self._blocks.append(BlobBlock(block_id))

    async def commit(self) -> None:
        """Store the blob: what is buffered as the last block (or the whole blob)."""
        try:
            if not self._blocks:
                await self._client.upload_blob(bytes(self._buffer), overwrite=True,
                                               **self._options)
            else:
                if self._buffer:
                    await self._send(bytes(self._buffer))
                await self._client.commit_block_list(self._blocks, **self._options)
        finally:
            await self.abort()

    async def abort(self) -> None:
        """Drop the write (nothing to undo: staged blocks are never visible)."""
        self._buffer = bytearray()
        if self._open:
            self._open = False
            await self._client.close()


class _BlobReader(AzureBlobFile):  # type: ignore[misc]
    """adlfs's file for reading, except that ranges come back as stored: the SDK
    decompresses a blob stored with Content-Encoding gzip unless told not to."""

    async def _async_fetch_range(self, start: int, end: Optional[int] = None,
                                 **kwargs: Any) -> bytes:
        length = None if end is None else min(end, self.size) - start
        async with self.container_client:
            stream = await self.container_client.download_blob(
                blob=self.blob, offset=start, length=length, version_id=self.version_id,
                max_concurrency=self.fs.max_concurrency or 1, decompress=False)
            return bytes(await stream.readall())

    _fetch_range = sync_wrapper(_async_fetch_range)


def _detach_finalizers(fs: PerceptraBlobFileSystem) -> None:
    """Drop the finalizers adlfs registers to close an instance's clients through
    ``sync(fs.loop, ...)``. An asynchronous instance (``adapter.aio``, one per event
    loop) has no such loop: they would fail at interpreter exit with a traceback, and
    they hold the instance alive until then. ``_release`` closes it on its own loop."""
    registry = getattr(weakref.finalize, "_registry", {})
    for finalizer in list(registry):
        target = finalizer.peek()
        if target is not None and target[0] is fs:
            finalizer.detach()


class _Retry(ExponentialRetry):
    """The SDK's retry policy with the adapter's jittered doubling as back-off, and
    the adapter's one DEBUG record when a request succeeded after retries."""

    def __init__(self, policy: Resilience, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._policy = policy

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        return self._policy.delay(max(1, int(settings["count"])))

    async def send(self, request: Any) -> Any:  # type: ignore[override] # the async policy
        response = await super().send(request)  # type: ignore[no-untyped-call, unused-ignore]
        history = response.context.get("history") or []
        if history:
            last = history[-1].error
            recovered(len(history), type(last).__name__ if last else
                      f"HTTP {getattr(history[-1].http_response, 'status_code', '?')}")
        return response


class _CutDownloadRecord(logging.Filter):
    """azure-core logs ``Incomplete download.`` at WARNING whenever a response body is
    cut, then raises IncompleteReadError, which the storage SDK retries from where
    the body stopped (or the adapter raises as a typed error).  An app that has not
    configured logging gets that WARNING on stderr from Python's last-resort
    handler for a fault already handled; the record is kept, at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and record.msg == "Incomplete download.":
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


logging.getLogger("azure.core.pipeline.transport._aiohttp").addFilter(_CutDownloadRecord())


_END = object()


async def _parallel_chunks(uploader: Any, pending: Any, running: Any,
                           following: Any) -> list[Any]:
    """azure-storage-blob's loop over the chunks of a parallel upload, except that when
    a chunk fails, or the upload is cancelled (``adapter.aio``, ``operation_timeout``),
    the chunks still in flight are cancelled and awaited. The SDK's own loop raised the
    first failure and left the others running unawaited: a cancelled upload kept
    sending, and each chunk that failed afterwards printed "Task exception was never
    retrieved" for a fault the adapter had already reported or recovered from.
    The results, as the SDK's, in completion order (its callers sort them)."""
    results: list[Any] = []
    running = set(running)
    try:
        while running:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            errors = [task.exception() for task in done if not task.cancelled()]
            for error in errors:  # every one retrieved, the first raised
                if error is not None:
                    raise error
            results.extend(task.result() for task in done)
            for _ in done:
                chunk = await following(pending)
                if chunk is _END:
                    break
                running.add(asyncio.ensure_future(uploader(chunk)))
        return results
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


async def _next_chunk(pending: Any) -> Any:
    return next(pending, _END)


async def _next_async_chunk(pending: Any) -> Any:
    try:
        return await pending.__anext__()
    except StopAsyncIteration:
        return _END


def _install_chunk_loops() -> None:
    """Put :func:`_parallel_chunks` in place of the SDK's two chunk loops (module
    functions its upload helpers look up when they run); an SDK without them keeps
    its own."""
    from azure.storage.blob._shared import uploads_async

    for name, following in (("_parallel_uploads", _next_chunk),
                            ("_async_parallel_uploads", _next_async_chunk)):
        if hasattr(uploads_async, name):
            setattr(uploads_async, name,
                    functools.partial(_parallel_chunks, following=following))


_install_chunk_loops()


_HEADERS = ("cache_control", "content_disposition", "content_encoding")
"""Object headers, as plain keywords and as ``ContentSettings`` fields."""
_CORS_FIELDS = ("allowed_origins", "allowed_methods", "allowed_headers", "exposed_headers",
                "max_age_in_seconds")


def _listed_values(value: Any) -> list[str]:
    """The SDK keeps a CORS rule's lists as comma-joined strings."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [str(item) for item in value or []]


def _blob_options(path: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """SDK upload keywords from plain ``content_type``, ``metadata`` and object headers
    (``cache_control``...), or adlfs's ``content_settings``; without a content type,
    the key's extension gives it, as on every other route."""
    options = dict(kwargs)
    content_type = options.pop("content_type", None)
    headers = {name: options.pop(name) for name in _HEADERS if options.get(name) is not None}
    for name in _HEADERS:
        options.pop(name, None)
    settings = options.pop("content_settings", None)
    if settings is None:
        settings = ContentSettings(content_type=content_type or default_content_type(path),
                                   **headers)
    elif isinstance(settings, Mapping):
        settings = ContentSettings(**settings)
    options["content_settings"] = settings
    options["metadata"] = dict(options.get("metadata") or {})
    return options


def _is_marker(metadata: Optional[Mapping[str, str]]) -> bool:
    """adlfs and Data Lake tag the blobs that stand for folders."""
    flags = {name.lower(): value.lower() for name, value in (metadata or {}).items()}
    return "true" in (flags.get("is_directory"), flags.get("hdi_isfolder"))


def _listed(container: str, blob: Any) -> dict[str, Any]:
    """The info dict of one listed blob (a folder marker is a directory)."""
    return {"name": f"{container}/{blob.name}",
            "type": "directory" if _is_marker(blob.metadata) else "file",
            "size": blob.size, "etag": blob.etag, "last_modified": blob.last_modified}
