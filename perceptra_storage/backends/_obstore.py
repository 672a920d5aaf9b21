"""The ``obstore`` engine: S3 and Azure through obstore's Rust client, as an fsspec
filesystem under the same generic adapter.

:class:`ObstoreFileSystem` subclasses obstore's own fsspec layer
(``obstore.fsspec.FsspecStore``) and fills in what the adapter needs and that layer
lacks: content type, metadata and object headers on writes (obstore's put
``attributes``) and reads (a HEAD through ``get(head=True)``, whose answer carries
them), two- and one-sided read ranges, paged flat listings, bulk delete, writes of
unknown length in bounded memory, and one retry policy (ours, :class:`Resilience`:
obstore itself makes one attempt per request).  Its constructor takes only plain
values, so ``storage_options`` rebuild the same filesystem in pandas, on a Dask
worker or in another event loop, and it pickles by its module path; obstore's
stores are built per filesystem and bucket (never obstore's global ``register()``,
which would replace s3fs for the whole process) and again in a forked child.

A write that obstore sends as an S3 multipart upload and that fails or is cancelled
leaves that upload's parts stored (obstore aborts nothing once its future is
dropped).  :meth:`ObstoreFileSystem._aborting` therefore lists the key's unfinished
uploads before such a write and aborts those the failed write added, through
botocore (the ``s3`` extra, which signs URLs for these backends too); README says
which permissions that needs.

A ``profile`` or ``refresh`` credential reaches obstore as its ``credential_provider``
(:class:`_BotocoreCredentials`): botocore resolves and renews those credentials, as on
the fsspec engine, and the multipart clean-up signs with the same ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import operator
import os
import tempfile
import threading
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Optional
from xml.etree import ElementTree

import obstore
from fsspec.asyn import sync_wrapper
from fsspec.spec import AbstractBufferedFile
from obstore.fsspec import FsspecStore

from ..errors import StorageOperationError
from ..files import OPEN_READ, OPEN_TRUNCATE, write_all
from ..resilience import Resilience
from ..validation import default_content_type
from ._sigv4 import QuerySigner

__all__ = ["ObstoreFileSystem"]

MULTIPART_OVER = 100 * 2**20
"""Largest upload sent as one PUT: larger ones go up in PART_SIZE parts, concurrently."""
PART_SIZE = 5 * 2**20
"""Part size of a multipart upload, and what a file opened for writing keeps in memory
before it spools to a temporary file.  S3's smallest part: obstore holds about
PART_CONCURRENCY + 4 parts at once (those in flight, the one filling, its file read),
measured 45 MiB of peak RSS growth for a 256 MiB upload here, 65-94 MiB with 8 MiB."""
PART_CONCURRENCY = 4
"""Parts of one upload in flight at once."""
MAX_PARTS = 10_000
"""S3's limit on the parts of one upload: larger objects get larger parts."""
READ_CHUNK = 2**20
"""Bytes a download hands to Python at a time.  obstore gathers each chunk from the
body's smaller pieces and its peak memory grows with the chunk (256 MiB downloaded:
about 11 MiB of RSS growth with 1 MiB chunks, 50 MiB with 8 MiB), for the same wall
and CPU."""
PAGE = 1000
"""Objects handed to a paged listing at a time."""

_RUNTIME_PID: Optional[int] = None
"""The process that started obstore's runtime (see ``_construct_store``)."""

_PROVIDER_FAILED = "External AWS credential provider"
"""What obstore's error says when the S3 store's credential provider raised."""

_by_name = operator.itemgetter("name")
"""Sort key of info dicts (a C call per entry, where a lambda was a Python frame)."""

_HEADERS = {"cache_control": "Cache-Control", "content_disposition": "Content-Disposition",
            "content_encoding": "Content-Encoding"}
"""Object headers by their plain keyword and obstore's attribute name."""


_pid = os.getpid()
"""This process's id, renewed in a forked child (as ``adapter._pid``): the one process
id this module compares, so that finding a built store costs no ``getpid`` call."""


def _renew_pid() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_renew_pid)


def _local_source(lpath: str) -> tuple[Any, int]:
    """What a put sends for the local file ``lpath``, and its size: the bytes of a file
    up to READ_CHUNK, else a ``Path`` that obstore reads itself in parts.  For a small
    file, building the ``Path`` and having obstore open and read it on its blocking
    threads cost more client CPU than reading it here.  Read on a bare descriptor: a
    Python file object adds system calls (``ioctl``, two ``lseek``, a second
    ``fstat``) that were a sizeable part of a small upload's Python time."""
    fd = os.open(lpath, OPEN_READ)
    try:
        size = os.fstat(fd).st_size
        if size > READ_CHUNK:
            return Path(lpath), size
        data = os.read(fd, size + 1)
        while more := os.read(fd, READ_CHUNK):  # a short read, or a file still growing
            data += more
    finally:
        os.close(fd)
    return data, len(data)


class ObstoreFileSystem(FsspecStore):
    """obstore's fsspec filesystem with the adapter's interface (see ``adapter.py``).

    ``kind`` is ``"s3"`` or ``"azure"``; ``store`` holds obstore's store configuration
    (``S3Config``/``AzureConfig`` keys, plain strings), ``client`` its client options
    (timeouts, ``allow_http``) as seconds and flags, ``resilience`` the fields of
    :class:`Resilience`.  On S3, ``aws_profile`` (a profile of the AWS shared files)
    and ``refresh_credentials`` (a function returning fresh temporary credentials)
    replace the keys in ``store``, as on :class:`~._s3fs.PerceptraS3FileSystem`; a
    pickled filesystem carries the function by reference, as that one does.
    """

    bulk_delete_limit: ClassVar[int] = 1000
    """Keys one bulk delete carries (S3's DeleteObjects; obstore batches Azure's)."""
    verifies_uploads: ClassVar[bool] = False
    """obstore cannot send the caller's SHA-256 with a put: the adapter reads back."""
    resumes_cut_reads: ClassVar[bool] = False
    cachable = False

    def __init__(self, *, kind: str, store: Mapping[str, Any],
                 client: Optional[Mapping[str, Any]] = None,
                 resilience: Optional[Mapping[str, Any]] = None,
                 dashed_metadata_names: bool = False,
                 aws_profile: Optional[str] = None,
                 refresh_credentials: Optional[Callable[[], Mapping[str, Any]]] = None,
                 asynchronous: bool = False, loop: Any = None,
                 skip_instance_cache: bool = True) -> None:
        self.kind = kind
        self.resilience = Resilience(**(resilience or {}))
        self.dashed_metadata_names = dashed_metadata_names
        self._store_options = dict(store)
        self._client = dict(client or {})
        self._stores: dict[str, Any] = {}
        self._pid = _pid
        self._s3_client: Any = None
        self._profile, self._refresh = aws_profile, refresh_credentials
        self._aws: Optional[_BotocoreCredentials] = None
        self._provided = kind == "s3" and bool(aws_profile or refresh_credentials is not None)
        super().__init__("s3" if kind == "s3" else "az", asynchronous=asynchronous,
                         loop=loop)
        # obstore's constructor caches stores in an lru_cache around a bound method: a
        # reference cycle, which kept a closed adapter's connections open until the
        # garbage collector ran. The class's method (self._stores) replaces it.
        del self._construct_store

    # -- stores ----------------------------------------------------------------------

    def _construct_store(self, bucket: str) -> Any:
        """The obstore store of ``bucket``, built on first use in this process.  A
        forked child cannot use obstore at all once the parent has (its runtime's
        threads are not forked, and a call would wait for them forever): it gets a
        clear error instead."""
        global _RUNTIME_PID
        if _RUNTIME_PID == _pid == self._pid:  # the common case: no system call
            store = self._stores.get(bucket)
            if store is not None:
                return store
        if _RUNTIME_PID is None:
            _RUNTIME_PID = _pid
        elif _pid != _RUNTIME_PID:
            raise StorageOperationError(
                "the obstore engine cannot run in a process forked after it was used "
                "(its Rust runtime's threads are not forked); start processes with "
                "multiprocessing's 'spawn' or 'forkserver' method, or use engine 'fsspec'")
        if self._pid != _pid:
            self._stores, self._pid, self._s3_client = {}, _pid, None
            self._aws = None
        store = self._stores.get(bucket)
        if store is None:
            store = self._stores[bucket] = self._new_store(bucket)
        return store

    def _split_path(self, path: str) -> tuple[str, str]:
        """``(bucket, key)`` of ``path``.  The adapter's paths are plain ``bucket/key``,
        split here directly; only a first segment with a ':' (a URL such as
        ``s3://bucket/key``, the only form in which urlparse finds a scheme) goes to
        obstore's parser, which cost more than the rest of a small read's Python."""
        bucket, _, key = path.partition("/")
        if ":" in bucket:
            return super()._split_path(path)
        return bucket, key

    def _new_store(self, bucket: str) -> Any:
        client: Any = {
            "connect_timeout": timedelta(seconds=self.resilience.connect_timeout),
            "read_timeout": timedelta(seconds=self.resilience.read_timeout),
            # obstore's default limit on a whole request (30 s) would cut large parts
            # on slow links; stalls are caught by read_timeout, long calls by
            # operation_timeout.
            "timeout": timedelta(hours=24),
            **self._client,
        }
        # One attempt per request: failures are retried by our policy, once.
        retry: Any = {"max_retries": 0, "retry_timeout": timedelta(seconds=1)}
        if self.kind == "s3":
            from obstore.store import S3Store

            config: Any = self._store_options
            provider: Any = self._credentials()  # obstore's S3CredentialProvider protocol
            return S3Store(bucket, config=config, client_options=client,
                           retry_config=retry, credential_provider=provider)
        from obstore.store import AzureStore

        azure: Any = self._store_options
        return AzureStore(bucket, config=azure, client_options=client,
                          retry_config=retry)

    async def _retry(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        if self._provided:
            return await self.resilience.retry_async(self._sourced, call, *args, **kwargs)
        return await self.resilience.retry_async(call, *args, **kwargs)

    async def _sourced(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """Await ``call``; when the store's credential provider failed, raise what it
        raised (see :meth:`_credential_failure`)."""
        try:
            return await call(*args, **kwargs)
        except Exception as exc:
            failure = self._credential_failure(exc)
            if failure is exc:
                raise
            raise failure  # noqa: B904 - its own cause kept; obstore's error its context

    def _credential_failure(self, exc: BaseException) -> BaseException:
        """What the profile or refresh function raised, for obstore's error that says
        its credential provider failed (obstore keeps only that exception's text): so it
        is typed, and retried or not, as on the fsspec engine, where botocore raises it
        as it is.  Any other error is ``exc`` itself."""
        provider = self._aws
        failure = provider.failure if provider is not None else None
        if failure is None or _PROVIDER_FAILED not in str(exc):
            return exc
        return failure

    async def _release(self) -> None:
        """Drop this instance's stores (their connection pools close with them)."""
        self.release_connections()

    def release_connections(self) -> None:
        """Drop this instance's stores, whose connection pools close with them (the
        adapter's ``close``); the next call builds new ones.  No method keeps a store
        in a local variable, so a traceback someone keeps holds no pool open."""
        self._stores = {}

    # -- writes ----------------------------------------------------------------------

    def _attributes(self, path: str, options: Mapping[str, Any]) -> dict[str, str]:
        """obstore's put attributes for the plain write keywords: the content type
        (default from the key's extension), user metadata, object headers."""
        attributes = {"Content-Type": options.get("content_type") or default_content_type(path)}
        for plain, name in _HEADERS.items():
            if options.get(plain) is not None:
                attributes[name] = str(options[plain])
        for name, value in (options.get("metadata") or {}).items():
            attributes[str(name)] = str(value)
        return attributes

    async def _store_object(self, path: str, body: Any, size: int,
                            options: Mapping[str, Any]) -> None:
        bucket, key = self._split_path(path)
        multipart = size > MULTIPART_OVER
        put_mode: Any = "create" if options.get("mode") == "create" else None

        async def send() -> None:
            source = body
            if isinstance(source, io.IOBase):
                source.seek(0)  # a retry sends the body again from its start
            await obstore.put_async(
                self._construct_store(bucket), key, source,
                attributes=self._attributes(path, options), mode=put_mode,
                use_multipart=multipart,
                chunk_size=max(PART_SIZE, -(-size // MAX_PARTS)),
                max_concurrency=PART_CONCURRENCY)

        if multipart and self.kind == "s3":
            await self._aborting(bucket, key, self._retry(send))
        else:
            await self._retry(send)

    store_object = sync_wrapper(_store_object)

    async def _pipe_file(self, path: str, value: Any, mode: str = "overwrite",
                         **kwargs: Any) -> None:
        data = bytes(value)
        await self._store_object(path, data, len(data), {**kwargs, "mode": mode})

    async def _put_file(self, lpath: str, rpath: str, mode: str = "overwrite",
                        callback: Any = None, **kwargs: Any) -> None:
        """Upload a local file: one up to READ_CHUNK is read here and sent as bytes (as
        a caller of obstore with the bytes in hand would), a larger one goes as a
        ``Path`` that obstore reads itself in parts (see :func:`_local_source`)."""
        source, size = _local_source(lpath)
        if callback is not None:
            callback.set_size(size)
        await self._store_object(rpath, source, size, {**kwargs, "mode": mode})
        if callback is not None:
            callback.relative_update(size)

    async def _aborting(self, bucket: str, key: str, write: Any) -> None:
        """Await an S3 write that may go up as a multipart upload; when it fails or is
        cancelled, abort the unfinished uploads of ``key`` it started (those not
        there before it), which obstore leaves behind."""
        before = await asyncio.to_thread(self._open_uploads, bucket, key)
        try:
            await write
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self._abort_new, bucket, key, before))
            raise

    def _credentials(self) -> Optional[_BotocoreCredentials]:
        """The credential provider of this filesystem's S3 stores when a profile or a
        refresh function gives the credentials (None: the keys in ``store``, or
        obstore's own reading of the environment).  One per filesystem and process, so
        that every bucket's store and the botocore client share one set of
        credentials and the refresh function is not called once per store."""
        if self._aws is None and self._provided:
            self._aws = _BotocoreCredentials(self._profile, self._refresh)
        return self._aws

    def _botocore(self) -> Any:
        """A botocore client with this filesystem's endpoint and credentials (its keys,
        or the profile's or refresh function's through the stores' provider), for what
        obstore does not offer (CORS rules; multipart clean-up without static keys)."""
        if self._s3_client is None:
            import botocore.session
            from botocore.config import Config

            options = self._store_options
            provider = self._credentials()
            if provider is None:
                session = botocore.session.Session()
            else:
                provider.resolved()  # the client then signs with the stores' credentials
                session = provider.session
            self._s3_client = session.create_client(
                "s3", region_name=options.get("region"), endpoint_url=options.get("endpoint"),
                aws_access_key_id=options.get("access_key_id"),
                aws_secret_access_key=options.get("secret_access_key"),
                aws_session_token=options.get("session_token"),
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                              connect_timeout=self.resilience.connect_timeout,
                              read_timeout=self.resilience.read_timeout,
                              retries={"total_max_attempts": self.resilience.max_attempts}))
        return self._s3_client

    def _signer(self, bucket: str) -> Optional[QuerySigner]:
        """A SigV4 signer of this bucket's URLs for static keys (``_sigv4.py``), so that
        the clean-up of multipart uploads needs no botocore client (which costs about
        35 MiB and a model parse); None without static keys (botocore's chain then)."""
        options = self._store_options
        if not options.get("access_key_id"):
            return None
        return QuerySigner.for_bucket(
            options.get("endpoint"), bucket, str(options.get("region") or "us-east-1"),
            str(options["access_key_id"]), str(options["secret_access_key"]),
            options.get("session_token"))

    def _signed(self, bucket: str, name: str, method: str,
                query: dict[str, str]) -> bytes:
        """One signed request (``_signer``) with our timeouts; the answer's body."""
        signer = self._signer(bucket)
        assert signer is not None
        url, _ = signer.sign(name, method, 300, query=query)
        request = urllib.request.Request(url, method=method)
        timeout = self.resilience.connect_timeout + self.resilience.read_timeout
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # our own URL
            return bytes(answer.read())

    def _open_uploads(self, bucket: str, key: str) -> set[str]:
        """The ids of ``key``'s unfinished multipart uploads (ListMultipartUploads)."""
        if self._signer(bucket) is None:
            answer = self._botocore().list_multipart_uploads(Bucket=bucket, Prefix=key)
            return {upload["UploadId"] for upload in answer.get("Uploads", [])
                    if upload.get("Key") == key}
        body = self._signed(bucket, "", "GET", {"uploads": "", "prefix": key})
        found: set[str] = set()
        for upload in ElementTree.fromstring(body):
            fields = {child.tag.rpartition("}")[2]: child.text for child in upload}
            if upload.tag.endswith("Upload") and fields.get("Key") == key:
                found.add(str(fields.get("UploadId")))
        return found

    def _abort_new(self, bucket: str, key: str, before: set[str]) -> None:
        with contextlib.suppress(Exception):
            for upload_id in self._open_uploads(bucket, key) - before:
                with contextlib.suppress(Exception):
                    if self._signer(bucket) is None:
                        self._botocore().abort_multipart_upload(
                            Bucket=bucket, Key=key, UploadId=upload_id)
                    else:
                        self._signed(bucket, key, "DELETE", {"uploadId": upload_id})

    def cors(self, bucket: str, rules: Optional[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """Replace the bucket's CORS rules (boto3's ``CORSRules``; [] deletes them) or
        read them (None), through botocore: obstore has no bucket configuration."""
        client = self._botocore()
        if rules is None:
            try:
                return list(client.get_bucket_cors(Bucket=bucket).get("CORSRules", []))
            except client.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "NoSuchCORSConfiguration":
                    return []
                raise
        if rules:
            client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
        else:
            client.delete_bucket_cors(Bucket=bucket)
        return rules

    def _open(self, path: str, mode: str = "rb", block_size: Any = None,
              autocommit: Any = True, cache_options: Any = None, **kwargs: Any) -> Any:
        """``rb``: a buffered reader of retried ranged reads.  ``wb``: a file that keeps
        up to PART_SIZE in memory (then a temporary file) and stores the object when
        closed with the write options given, or nothing when discarded."""
        if mode == "rb":
            return _Reader(self, path)
        if mode != "wb":
            raise ValueError(f"mode must be 'rb' or 'wb', not {mode!r}")
        return _SpooledWriter(self, path, kwargs)

    # -- reads -----------------------------------------------------------------------

    async def _cat_file(self, path: str, start: Optional[int] = None,
                        end: Optional[int] = None, **kwargs: Any) -> bytes:
        bucket, key = self._split_path(path)
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = (await self._object_info(path))["size"]
            start = None if start is None else max(size + start, 0) if start < 0 else start
            end = None if end is None else max(size + end, 0) if end < 0 else end
        options: Any = {}
        if start is not None or end is not None:
            first = start or 0
            if end is not None and end <= first:
                return b""
            options["range"] = (first, end) if end is not None else {"offset": first}

        async def read() -> bytes:
            try:
                answer = await obstore.get_async(self._construct_store(bucket), key,
                                                options=options or None)
                return bytes(await answer.bytes_async())
            except Exception as exc:
                if "range" in options and "Range" in str(exc) and "416" in str(exc):
                    return b""  # a range past the end reads nothing, as fsspec's do
                raise

        return await self._retry(read)  # type: ignore[no-any-return]

    async def _get_file(self, rpath: str, lpath: str, callback: Any = None,
                        **kwargs: Any) -> None:
        bucket, key = self._split_path(rpath)

        async def fetch() -> None:
            answer = await obstore.get_async(self._construct_store(bucket), key)
            # The size from the answer's byte range: ``meta`` would build a dict and a
            # datetime per download only for it.
            first, end = answer.range
            size = end - first
            if callback is not None:
                callback.set_size(size)
            # A bare descriptor (see write_all).
            local = os.open(lpath, OPEN_TRUNCATE, 0o666)
            try:
                if size <= READ_CHUNK:
                    # One read: ending a stream costs another round through the event
                    # loop, most of a small download's client CPU over raw obstore.
                    body = memoryview(await answer.bytes_async())
                    write_all(local, body)
                    if callback is not None:
                        callback.relative_update(body.nbytes)
                    return
                async for chunk in answer.stream(min_chunk_size=READ_CHUNK):
                    write_all(local, memoryview(chunk))
                    if callback is not None:
                        callback.relative_update(len(chunk))
            finally:
                os.close(local)

        await self._retry(fetch)

    async def _object_info(self, path: str) -> dict[str, Any]:
        """One HEAD request: size, ETag, time, content type, object headers and user
        metadata (obstore's ``attributes``; with ``dashed_metadata_names``, '-' in a
        name read back as '_', see ``_s3fs.py``)."""
        bucket, key = self._split_path(path)
        if not key:
            raise FileNotFoundError(path)
        answer = await self._retry(lambda: obstore.get_async(
            self._construct_store(bucket), key, options={"head": True}))
        meta, attributes = answer.meta, dict(answer.attributes)
        info: dict[str, Any] = {
            "name": f"{bucket}/{meta['path']}", "type": "file", "size": meta["size"],
            "ETag": meta.get("e_tag"), "LastModified": meta.get("last_modified"),
            "ContentType": attributes.pop("Content-Type", None)}
        for plain, name in _HEADERS.items():
            info[plain] = attributes.pop(name, None)
        for standard in ("Content-Language", "Storage-Class"):
            attributes.pop(standard, None)
        info["Metadata"] = {name.replace("-", "_") if self.dashed_metadata_names else name:
                            value for name, value in attributes.items()}
        return info

    object_info = sync_wrapper(_object_info)

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        bucket, key = self._split_path(path)
        if key:
            try:
                return await self._object_info(path)
            except FileNotFoundError:
                pass
        async for _ in self._object_pages(f"{path.rstrip('/')}/"):
            return {"name": path.rstrip("/"), "type": "directory", "size": 0}
        if not key:
            return {"name": bucket, "type": "directory", "size": 0}
        raise FileNotFoundError(path)

    async def _probe(self, path: str) -> None:
        """One listing request under ``path`` (obstore has no HeadBucket), not retried."""
        bucket, key = self._split_path(path)
        await self._sourced(lambda: obstore.list_with_delimiter_async(
            self._construct_store(bucket), f"{key}/" if key else None))

    probe = sync_wrapper(_probe)

    async def _object_pages(self, path: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Info dicts of the objects whose path starts with ``path`` (a plain string
        prefix), PAGE at a time, in key order; folder markers are left out.  obstore's
        ``list`` takes a path prefix (whole segments), so the listing starts at the
        prefix's folder and keeps the names that start with it.  A listing is a stream
        of requests that obstore does not retry, and a generator the adapter's retry
        cannot wrap whole: each chunk is fetched under the retry instead, and a
        transient failure restarts the stream after the last name it listed
        (``offset``)."""
        bucket, _, start = path.partition("/")
        folder = start.rpartition("/")[0]
        pending: list[dict[str, Any]] = []
        last: Optional[str] = None
        stream: Any = None

        async def next_chunk() -> Optional[list[dict[str, Any]]]:
            nonlocal stream
            if stream is None:
                stream = obstore.list(self._construct_store(bucket), folder or None,
                                      offset=last, chunk_size=PAGE)
            try:
                return await stream.__anext__()  # type: ignore[no-any-return]
            except StopAsyncIteration:
                return None
            except BaseException:
                stream = None  # the next attempt starts a new one after ``last``
                raise

        while (chunk := await self._retry(next_chunk, what="list")) is not None:
            for meta in chunk:
                name = meta["path"]
                last = name if last is None or name > last else last
                if not name.startswith(start) or name.endswith("/"):
                    continue
                pending.append({"name": f"{bucket}/{name}", "type": "file",
                                "size": meta["size"], "ETag": meta.get("e_tag"),
                                "LastModified": meta.get("last_modified")})
            if len(pending) >= PAGE:
                pending.sort(key=_by_name)
                yield pending
                pending = []
        if pending:
            pending.sort(key=_by_name)
            yield pending

    async def _ls(self, path: str, detail: bool = False, **kwargs: Any) -> Any:
        bucket, key = self._split_path(path)
        answer = await self._retry(lambda: obstore.list_with_delimiter_async(
            self._construct_store(bucket), key.rstrip("/") or None))
        entries = [{"name": f"{bucket}/{meta['path']}", "size": meta["size"], "type": "file",
                    "ETag": meta.get("e_tag"), "LastModified": meta.get("last_modified")}
                   for meta in answer["objects"]]
        entries += [{"name": f"{bucket}/{prefix}", "size": 0, "type": "directory"}
                    for prefix in answer["common_prefixes"]]
        if not entries and key:
            raise FileNotFoundError(path)
        entries.sort(key=_by_name)
        return entries if detail else [info["name"] for info in entries]

    # -- deletes and copies ----------------------------------------------------------

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        bucket, key = self._split_path(path)
        await self._retry(lambda: obstore.delete_async(self._construct_store(bucket), key))

    async def _remove_many(self, paths: list[str]) -> dict[str, BaseException]:
        """One bulk delete per bucket (obstore sends DeleteObjects on S3, a batch on
        Azure); a key already gone counts as deleted.  obstore raises the first key's
        error for the whole request (an Azure batch answers 404 for a missing blob
        where S3 reports none), so a failed request is redone key by key, which says
        which keys failed and why."""
        by_bucket: dict[str, list[str]] = {}
        for path in paths:
            bucket, key = self._split_path(path)
            by_bucket.setdefault(bucket, []).append(key)
        failed: dict[str, BaseException] = {}
        for bucket, keys in by_bucket.items():
            try:
                await self._retry(lambda names=keys, where=bucket: obstore.delete_async(
                    self._construct_store(where), names))
                continue
            except Exception:  # each key is tried again below
                pass
            for key in keys:
                try:
                    await self._rm_file(f"{bucket}/{key}")
                except FileNotFoundError:  # obstore's not-found errors are these
                    continue
                except Exception as exc:
                    failed[f"{bucket}/{key}"] = exc
        return failed

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """A server-side copy within a bucket (content type and metadata kept); across
        buckets, which obstore cannot copy, a download and an upload with them."""
        source_bucket, source = self._split_path(path1)
        target_bucket, target = self._split_path(path2)
        if source_bucket == target_bucket:
            await self._retry(obstore.copy_async, self._construct_store(source_bucket),
                              source, target)
            return
        info = await self._object_info(path1)
        data = await self._cat_file(path1)
        await self._pipe_file(path2, data, content_type=info["ContentType"],
                              metadata=info["Metadata"],
                              **{plain: info[plain] for plain in _HEADERS})

    def __reduce__(self) -> Any:
        return _rebuild, (type(self), dict(self.storage_options))


def _rebuild(cls: type[ObstoreFileSystem], options: dict[str, Any]) -> ObstoreFileSystem:
    """Unpickle a filesystem: a new one from its plain options (its stores are built
    again on first use)."""
    return cls(**options)


class _BotocoreCredentials:
    """obstore's ``credential_provider`` for a shared-file profile or a refresh
    function: botocore resolves the credentials as boto3 does (the profile's keys, a
    role it assumes, SSO) and renews those that expire, calling a refresh function
    through the fsspec engine's provider (``_s3fs.refreshing_provider``), which checks
    what it returns.  obstore turns an exception raised here into its own
    ``UnauthenticatedError`` text; ``failure`` keeps the exception itself, which the
    filesystem raises instead (``ObstoreFileSystem._credential_failure``).

    obstore keeps each answer until less than ``refresh_threshold`` of its lifetime is
    left and then calls again: botocore's own advisory window, so that call is the one
    in which botocore renews them (a refresh function whose keys expire in an hour is
    called again 15 minutes before, on either engine)."""

    refresh_threshold = timedelta(minutes=15)

    def __init__(self, profile: Optional[str],
                 refresh: Optional[Callable[[], Mapping[str, Any]]]) -> None:
        from ._s3fs import botocore_session

        self.session = botocore_session(profile, refresh)
        self._lock = threading.Lock()
        self.failure: Optional[BaseException] = None
        """What the last call raised, until one succeeds."""

    def resolved(self) -> Any:
        """botocore's credentials, resolved on first use (the session keeps them); the
        lock keeps obstore's threads from calling a refresh function at once."""
        with self._lock:
            credentials = self.session.get_credentials()
        if credentials is None:
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError()
        return credentials

    def __call__(self) -> dict[str, Any]:
        try:
            answer = self._current()
        except Exception as exc:
            self.failure = exc
            raise
        self.failure = None
        return answer

    def _current(self) -> dict[str, Any]:
        """The current keys and when they expire (None: never).  botocore keeps that
        time in an attribute without a public accessor (RefreshableCredentials.
        _expiry_time); it is read on both sides of the keys, so that keys renewed
        meanwhile (the multipart clean-up's client shares them) are not paired with
        another set's expiry."""
        credentials = self.resolved()
        while True:
            ends = getattr(credentials, "_expiry_time", None)
            frozen = credentials.get_frozen_credentials()
            if getattr(credentials, "_expiry_time", None) == ends:
                break
        if isinstance(ends, datetime):
            # obstore takes an aware datetime in UTC itself, not botocore's tzutc/tzlocal.
            ends = ends.astimezone(UTC) if ends.tzinfo else ends.replace(tzinfo=UTC)
        return {"access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key,
                "token": frozen.token,
                "expires_at": ends if isinstance(ends, datetime) else None}


class _Reader(AbstractBufferedFile):  # type: ignore[misc]
    """A file opened for reading: fsspec's buffered file over ranged reads through
    :meth:`ObstoreFileSystem._cat_file`, which the retry policy and the error rules
    cover.  obstore's own reader (a Rust file object) raised a cut, a reset or a 503
    in mid-file as a bare OSError, never retried: the soak saw reads fail that the
    fsspec engine recovers."""

    def __init__(self, fs: ObstoreFileSystem, path: str) -> None:
        super().__init__(fs, path, mode="rb", block_size=PART_SIZE, cache_type="readahead")

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.cat_file(self.path, start=start, end=end)  # type: ignore[no-any-return]

    def close(self) -> None:
        if hasattr(self, "cache"):  # opening failed (a missing object): nothing to close
            super().close()


class _SpooledWriter(io.RawIOBase):
    """A file opened for writing: what is written stays in memory up to PART_SIZE, then
    in a temporary file; ``close`` stores it in one put (a multipart upload when large),
    ``discard`` drops it.  Memory stays bounded whatever is written."""

    def __init__(self, fs: ObstoreFileSystem, path: str, options: dict[str, Any]) -> None:
        super().__init__()
        self._fs, self.path, self._options = fs, path, options
        self._spool = tempfile.SpooledTemporaryFile(max_size=PART_SIZE)  # noqa: SIM115
        self.mode = "wb"

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._spool.write(data)

    def tell(self) -> int:
        return self._spool.tell()

    def close(self) -> None:
        if self.closed:
            return
        try:
            size = self._spool.tell()
            self._spool.seek(0)
            body: Any = self._spool.read() if size <= PART_SIZE else self._spool
            self._fs.store_object(self.path, body, size, self._options)
        finally:
            self._spool.close()
            super().close()

    def discard(self) -> None:
        self._spool.close()
        super().close()

