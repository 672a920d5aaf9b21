"""The ``perceptra-storage`` command: files in any profile's store, from the shell.

Paths are local paths or ``PROFILE:KEY`` (like rclone's ``remote:path``); a name
before the colon is a profile from :mod:`perceptra_storage.profiles`, so the shell,
Python and ``perceptra://`` URLs all reach the same stores. Write ``./a:b`` for a
local file whose name holds a colon.

Written with :mod:`argparse`: the standard library keeps the core install at
fsspec alone (click or typer would be a dependency of every install for one
command), and argparse gives everything the command needs: sub-commands, shared
options through parent parsers, usage errors with exit code 2.

Every command prints one line per item (or, with ``--json``, one JSON object per
line and a final ``{"summary": true, ...}`` object). Many-file commands run
``--concurrency`` transfers at once through the adapters' batch methods where one
fits (uploads, same-store copies, deletes) and a thread pool over the one-file
methods otherwise. Errors are one line on stderr naming the profile, operation
and key, scrubbed of secrets; ``--debug`` adds the traceback.

``sync`` compares by what it stored itself: each copy records the source's
modification time (``sync_mtime_ns``) and, with ``--checksum``, its SHA-256
(``sync_sha256``) in the destination object's metadata. An object's own
LastModified (the upload time) and ETag (not an MD5 for multipart uploads) are
never compared, so a file edited in place is copied again once its mtime or
(with ``--checksum``) its content differs.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from .base import BatchResult, StorageAdapter, StorageObject
from .errors import (
    StorageAdapterError,
    StorageConnectionError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    StorageTimeoutError,
    StorageValidationError,
    redact,
    translate_errors,
)

__all__ = ["main"]

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_DENIED, EXIT_CONNECTION = range(6)

EXIT_CODES = """\
exit codes:
  0  success
  1  some items failed (the others were done; when every item failed the same
     way, that failure's code below)
  2  usage or configuration error (bad arguments, profile, key or config)
  3  not found (key, prefix, bucket or container)
  4  permission denied (credentials missing, wrong or not allowed)
  5  connection failed or timed out
"""

MTIME_FIELD = "sync_mtime_ns"
"""Metadata name under which ``sync`` stores the source's modification time (ns)."""
SHA256_FIELD = "sync_sha256"
"""Metadata name under which ``sync --checksum`` stores the source's SHA-256."""

_CHUNK = 1024 * 1024
_PROFILE_PATH = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]+):(.*)\Z", re.S)


class _Failed(Exception):
    """A command stopped with this exit code; the message was already printed."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def exit_code(error: BaseException) -> int:
    """The documented exit code for a typed error."""
    if isinstance(error, (StorageValidationError, StorageAdapterError)):
        return EXIT_USAGE
    if isinstance(error, StorageNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, StoragePermissionError):
        return EXIT_DENIED
    if isinstance(error, StorageConnectionError):
        return EXIT_CONNECTION
    return EXIT_SOME_FAILED


# -- output ---------------------------------------------------------------------------


class Output:
    """Where a command's results go: text or NDJSON on stdout, errors on stderr."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json: bool = args.json
        self.quiet: bool = args.quiet
        self.debug: bool = args.debug
        self.secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def item(self, record: dict[str, Any], text: Optional[str]) -> None:
        """One result: a JSON line, or ``text`` unless quiet (None prints nothing)."""
        with self._lock:
            if self.json:
                sys.stdout.write(json.dumps(record, default=_json_value) + "\n")
            elif text is not None and not self.quiet:
                sys.stdout.write(text + "\n")

    def summary(self, command: str, code: int, text: Optional[str], **fields: Any) -> int:
        """The final object (``--json``) or line (stderr, so stdout stays data)."""
        if self.json:
            self.item({"summary": True, "command": command, "exit_code": code, **fields}, None)
        elif text and not self.quiet:
            sys.stderr.write(text + "\n")
        return code

    def error(self, where: str, error: BaseException) -> None:
        """One line on stderr; the traceback too with ``--debug``."""
        message = " ".join(str(error).split()) or type(error).__name__
        line = redact(f"perceptra-storage: {where}: {type(error).__name__}: {message}",
                      self.secrets)
        with self._lock:
            if self.debug:
                traceback.print_exception(error, file=sys.stderr)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def progress(self, total: Optional[int], unit: str, what: str) -> Any:
        """A tqdm bar on stderr when it is a terminal (and not quiet), else None."""
        if self.quiet or not sys.stderr.isatty():
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return tqdm(total=total, unit=unit, unit_scale=unit == "B", desc=what, leave=False,
                    file=sys.stderr)

    @property
    def batch_progress(self) -> Optional[bool]:
        """The ``progress`` argument of the adapters' batch methods."""
        if self.quiet or not sys.stderr.isatty():
            return None
        try:
            import tqdm  # noqa: F401
        except ImportError:
            return None
        return True


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _error_record(error: BaseException) -> dict[str, Any]:
    return {"type": type(error).__name__, "message": " ".join(str(error).split()),
            "exit_code": exit_code(error)}


# -- locations ------------------------------------------------------------------------


@dataclass
class Location:
    """A command-line path: ``PROFILE:KEY`` (``adapter`` set) or a local path."""

    text: str
    profile: Optional[str] = None
    path: str = ""
    adapter: Optional[StorageAdapter] = None

    @property
    def remote(self) -> bool:
        return self.adapter is not None

    def name(self, ref: str) -> str:
        """How an item here is shown: ``profile:key`` or the local path."""
        return f"{self.profile}:{ref}" if self.remote else ref

    def store(self) -> StorageAdapter:
        assert self.adapter is not None
        return self.adapter


def parse_location(text: str, out: Output, stdio: bool = False) -> Location:
    """``PROFILE:KEY`` opens the profile's (shared) adapter; anything else is local.

    A one-letter name is a Windows drive (``C:\\data``), not a profile."""
    if text == "-" and stdio:
        return Location(text, path="-")
    match = _PROFILE_PATH.match(text)
    if not match:
        return Location(text, path=text)
    from .profiles import get_profile, open_profile

    profile = match.group(1)
    out.secrets += tuple(str(v) for v in get_profile(profile).credentials.values()
                         if isinstance(v, str) and len(v) >= 4)
    return Location(text, profile, match.group(2), open_profile(profile))


def _remote(text: str, out: Output) -> Location:
    location = parse_location(text, out)
    if not location.remote:
        raise StorageValidationError(f"{text!r} is not PROFILE:KEY (a profile name, a colon, "
                                     "then a key or prefix)", operation="parse")
    return location


def _folder(prefix: str) -> str:
    """A prefix given to a recursive command names a folder: ``data`` means ``data/``."""
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _join(base: str, relative: str) -> str:
    return f"{base.rstrip('/')}/{relative}" if base.strip("/") else relative


def _local_join(base: str, relative: str) -> str:
    return os.path.join(base, *relative.split("/"))


@dataclass
class Entry:
    """One file found under a source or destination, by its path relative to it."""

    relative: str
    ref: str
    """The key (remote) or path (local) of the file."""
    size: int
    mtime_ns: int
    obj: Optional[StorageObject] = None


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def list_entries(location: Location) -> dict[str, Entry]:
    """Every file under ``location`` by relative path (a single file: its base name)."""
    if location.remote:
        adapter = location.store()
        folder = _folder(location.path)
        found = {}
        for obj in adapter.iter_files(folder):
            relative = obj.key[len(folder):]
            found[relative] = Entry(relative, obj.key, obj.size, _ns(obj.last_modified), obj)
        return found
    root = location.path
    with translate_errors("local", "list", root):
        if os.path.isfile(root):
            stat = os.stat(root)
            name = os.path.basename(root)
            return {name: Entry(name, root, stat.st_size, stat.st_mtime_ns)}
        if not os.path.isdir(root):
            return {}
        found = {}
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, root).replace(os.sep, "/")
                stat = os.stat(path)
                found[relative] = Entry(relative, path, stat.st_size, stat.st_mtime_ns)
        return found


# -- running many items -----------------------------------------------------------------


@dataclass
class Tally:
    """What a many-item command did."""

    done: int = 0
    failed: int = 0
    bytes: int = 0
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def code(self) -> int:
        if not self.failed:
            return EXIT_OK
        if not self.done and len({exit_code(e) for e in self.errors}) == 1:
            return exit_code(self.errors[0])  # everything failed the same way
        return EXIT_SOME_FAILED


def run_pool(items: Sequence[Any], work: Callable[[Any], None], concurrency: int,
             report: Callable[[Any, Optional[StorageError]], None], bar: Any) -> None:
    """``work`` on each item, ``concurrency`` at a time; ``report`` hears each outcome."""

    def one(item: Any) -> None:
        try:
            work(item)
        except StorageError as exc:
            report(item, exc)
        else:
            report(item, None)
        if bar is not None:
            bar.update(1)

    try:
        if concurrency <= 1 or len(items) <= 1:
            for item in items:
                one(item)
            return
        with ThreadPoolExecutor(max_workers=concurrency,
                                thread_name_prefix="perceptra-cli") as pool:
            for future in [pool.submit(one, item) for item in items]:
                future.result()
    finally:
        if bar is not None:
            bar.close()


def _sha256_local(path: str) -> str:
    hasher = hashlib.sha256()
    with translate_errors("local", "read", path), open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _sha256_remote(adapter: StorageAdapter, key: str) -> str:
    hasher = hashlib.sha256()
    with adapter.open(key, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def copy_one(source: Location, src: str, destination: Location, dst: str,
             extra: Optional[dict[str, str]] = None, mtime_ns: Optional[int] = None) -> None:
    """Copy one file between any two places. ``extra`` metadata is stored on a remote
    destination; ``mtime_ns`` is set on a local one (both for ``sync``)."""
    if not source.remote and not destination.remote:
        with translate_errors("local", "copy", src):
            os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
            shutil.copy2(src, dst)
    elif not source.remote:
        destination.store().upload_file(Path(src), dst, metadata=extra or None)
    elif not destination.remote:
        source.store().download_file(src, dst)
        if mtime_ns is not None:
            with translate_errors("local", "copy", dst):
                os.utime(dst, ns=(mtime_ns, mtime_ns))
    elif source.adapter is destination.adapter and not extra:
        source.store().copy_file(src, dst)
    else:
        info = source.store().get_file_metadata(src)
        metadata = {**(info.metadata or {}), **(extra or {})}
        with source.store().open(src, "rb") as stream:
            destination.store().upload_file(stream, dst, content_type=info.content_type,
                                             metadata=metadata or None)


def delete_local(path: str) -> None:
    with translate_errors("local", "delete", path):
        os.remove(path)


# -- commands -------------------------------------------------------------------------


def cmd_ls(args: argparse.Namespace, out: Output) -> int:
    location = _remote(args.path, out)
    count = total = 0
    for obj in location.store().iter_files(location.path):
        count += 1
        total += obj.size
        text = obj.key if not args.long else (
            f"{obj.size:>12}  {obj.last_modified.strftime('%Y-%m-%dT%H:%M:%SZ')}  "
            f"{obj.etag or '-':<34}  {obj.key}")
        out.item(asdict(obj), text)
    return out.summary("ls", EXIT_OK, None, objects=count, bytes=total)


def cmd_stat(args: argparse.Namespace, out: Output) -> int:
    location = _remote(args.path, out)
    obj = location.store().get_file_metadata(location.path)
    lines = [f"key:           {obj.key}", f"size:          {obj.size}",
             f"last_modified: {obj.last_modified.isoformat()}", f"etag:          {obj.etag}",
             f"content_type:  {obj.content_type}"]
    lines += [f"metadata.{name}: {value}" for name, value in sorted((obj.metadata or {}).items())]
    out.item(asdict(obj), "\n".join(lines))
    return out.summary("stat", EXIT_OK, None, objects=1)


def cmd_cat(args: argparse.Namespace, out: Output) -> int:
    sink = sys.stdout.buffer
    for text in args.paths:
        location = _remote(text, out)
        with location.store().open(location.path, "rb") as stream:
            shutil.copyfileobj(stream, sink, _CHUNK)
    sink.flush()
    return EXIT_OK


def _plan_copy(source: Location, destination: Location,
               recursive: bool) -> list[tuple[Entry, str]]:
    """(source entry, destination ref) for each file a ``cp``/``mv`` moves."""
    if recursive:
        entries = list_entries(source)
        if not entries:
            raise StorageNotFoundError(f"nothing to copy under {source.text!r}",
                                       operation="list", key=source.path)
        join = _join if destination.remote else _local_join
        return [(entry, join(destination.path, entry.relative))
                for _, entry in sorted(entries.items())]
    if source.remote:
        obj = source.store().get_file_metadata(source.path)
        entry = Entry(source.path.rpartition("/")[2], obj.key, obj.size, _ns(obj.last_modified))
    else:
        with translate_errors("local", "stat", source.path):
            stat = os.stat(source.path)
        if not os.path.isfile(source.path):
            raise StorageValidationError(f"local: {source.path!r} is a folder; use -r",
                                         operation="copy", key=source.path)
        entry = Entry(os.path.basename(source.path), source.path, stat.st_size,
                      stat.st_mtime_ns)
    target = destination.path
    if destination.remote and (not target or target.endswith("/")):
        target += entry.relative
    elif not destination.remote and (target.endswith(os.sep) or os.path.isdir(target)):
        target = os.path.join(target, entry.relative)
    return [(entry, target)]


def _stdio_copy(source: Location, destination: Location, out: Output) -> int:
    """``cp - DST`` (stdin) or ``cp SRC -`` (stdout): one stream, no temporary file."""
    if source.text == "-" and destination.text == "-":
        raise StorageValidationError("cp: source and destination cannot both be '-'")
    if destination.text == "-":
        if source.remote:
            with source.store().open(source.path, "rb") as stream:
                shutil.copyfileobj(stream, sys.stdout.buffer, _CHUNK)
        else:
            with translate_errors("local", "read", source.path), \
                    open(source.path, "rb") as stream:
                shutil.copyfileobj(stream, sys.stdout.buffer, _CHUNK)
        sys.stdout.buffer.flush()
        return EXIT_OK
    if destination.remote:
        destination.store().upload_file(sys.stdin.buffer, destination.path)
    else:
        with translate_errors("local", "write", destination.path), \
                open(destination.path, "wb") as target:
            shutil.copyfileobj(sys.stdin.buffer, target, _CHUNK)
    out.item({"action": "copy", "source": "-", "destination": destination.text, "ok": True},
             f"copy - -> {destination.text}")
    return out.summary("cp", EXIT_OK, None, copied=1, failed=0)


def transfer(plan: list[tuple[Entry, str]], source: Location, destination: Location,
             args: argparse.Namespace, out: Output, action: str,
             extra: Callable[[Entry], Optional[dict[str, str]]] = lambda entry: None,
             ) -> tuple[Tally, list[Entry]]:
    """Copy every planned item, reporting each; returns the tally and what was copied."""
    tally = Tally()
    copied: list[Entry] = []

    def report(entry: Entry, target: str, error: Optional[BaseException]) -> None:
        record = {"action": action, "source": source.name(entry.ref),
                  "destination": destination.name(target), "size": entry.size,
                  "ok": error is None}
        with tally.lock:
            if error is None:
                tally.done += 1
                tally.bytes += entry.size
                copied.append(entry)
            else:
                tally.failed += 1
                tally.errors.append(error)
        if error is not None:
            record["error"] = _error_record(error)
            out.error(f"{action} {source.name(entry.ref)} -> {destination.name(target)}",
                      error)
        out.item(record, f"{action} {source.name(entry.ref)} -> {destination.name(target)}"
                 if error is None else None)

    if source.remote and destination.remote and source.adapter is destination.adapter \
            and not any(extra(entry) for entry, _ in plan):
        result = source.store().copy_files([(e.ref, t) for e, t in plan],
                                           concurrency=args.concurrency,
                                           progress=out.batch_progress)
        _report_batch(result, plan, report)
    elif not source.remote and destination.remote and not any(extra(e) for e, _ in plan):
        result = destination.store().upload_files([(Path(e.ref), t) for e, t in plan],
                                                  concurrency=args.concurrency,
                                                  progress=out.batch_progress)
        _report_batch(result, plan, report)
    else:
        def work(item: tuple[Entry, str]) -> None:
            entry, target = item
            copy_one(source, entry.ref, destination, target, extra(entry), entry.mtime_ns)

        run_pool(plan, work, args.concurrency,
                 lambda item, error: report(item[0], item[1], error),
                 out.progress(len(plan), "file", action))
    return tally, copied


def _report_batch(result: BatchResult, plan: list[tuple[Entry, str]],
                  report: Callable[[Entry, str, Optional[BaseException]], None]) -> None:
    for entry, target in plan:
        report(entry, target, result.failed.get(target))


def cmd_cp(args: argparse.Namespace, out: Output, move: bool = False) -> int:
    command = "mv" if move else "cp"
    source = parse_location(args.source, out, stdio=not move)
    destination = parse_location(args.destination, out, stdio=not move)
    if not move and "-" in (source.text, destination.text):
        return _stdio_copy(source, destination, out)
    plan = _plan_copy(source, destination, args.recursive)
    if move and source.remote and destination.remote and source.adapter is destination.adapter:
        tally = Tally()

        def work(item: tuple[Entry, str]) -> None:
            source.store().move_file(item[0].ref, item[1])

        def report(item: tuple[Entry, str], error: Optional[BaseException]) -> None:
            entry, target = item
            with tally.lock:
                tally.done += error is None
                tally.failed += error is not None
                tally.bytes += entry.size if error is None else 0
                if error is not None:
                    tally.errors.append(error)
                    out.error(f"mv {source.name(entry.ref)} -> {destination.name(target)}",
                              error)
            out.item({"action": "move", "source": source.name(entry.ref),
                      "destination": destination.name(target), "size": entry.size,
                      "ok": error is None, **({"error": _error_record(error)} if error else {})},
                     f"move {source.name(entry.ref)} -> {destination.name(target)}"
                     if error is None else None)

        run_pool(plan, work, args.concurrency, report, out.progress(len(plan), "file", "mv"))
    else:
        tally, copied = transfer(plan, source, destination, args, out,
                                 "move" if move else "copy")
        if move:
            _delete_sources(source, copied, args, out, tally)
    code = tally.code()
    return out.summary(command, code, f"{command}: {tally.done} done, {tally.failed} failed, "
                       f"{tally.bytes} bytes", copied=tally.done, failed=tally.failed,
                       bytes=tally.bytes)


def _delete_sources(source: Location, copied: list[Entry], args: argparse.Namespace,
                    out: Output, tally: Tally) -> None:
    """The second half of a move across stores: delete each source that was copied."""
    failures: list[tuple[str, StorageError]] = []
    if source.remote:
        result = source.store().delete_files([e.ref for e in copied],
                                             concurrency=args.concurrency)
        failures += result.failed.items()
    else:
        for entry in copied:
            try:
                delete_local(entry.ref)
            except StorageError as exc:
                failures.append((entry.ref, exc))
    for ref, error in failures:
        tally.done -= 1
        tally.failed += 1
        tally.errors.append(error)
        out.error(f"mv: copied, but could not delete the source {source.name(ref)}", error)


def cmd_rm(args: argparse.Namespace, out: Output) -> int:
    location = _remote(args.path, out)
    adapter = location.store()
    if args.recursive:
        keys = [obj.key for obj in adapter.iter_files(_folder(location.path))]
        if not keys:
            raise StorageNotFoundError(f"nothing under {args.path!r}", operation="rm",
                                       key=location.path)
    else:
        keys = [adapter.get_file_metadata(location.path).key] if args.dry_run \
            else [location.path]
    if args.dry_run:
        for key in keys:
            out.item({"action": "delete", "key": key, "dry_run": True},
                     f"would delete {location.name(key)}")
        return out.summary("rm", EXIT_OK, f"rm: {len(keys)} would be deleted (dry run)",
                           deleted=0, would_delete=len(keys), failed=0, dry_run=True)
    if not args.recursive:
        adapter.delete_file(location.path)
        result = BatchResult(succeeded=keys)
    else:
        result = adapter.delete_files(keys, concurrency=args.concurrency,
                                      progress=out.batch_progress)
    tally = _report_deletes(result, location, out)
    return out.summary("rm", tally.code(), f"rm: {tally.done} deleted, {tally.failed} failed",
                       deleted=tally.done, failed=tally.failed)


def _report_deletes(result: BatchResult, location: Location, out: Output) -> Tally:
    tally = Tally(done=len(result.succeeded), failed=len(result.failed),
                  errors=list(result.failed.values()))
    for key in result.succeeded:
        out.item({"action": "delete", "key": key, "ok": True}, f"delete {location.name(key)}")
    for key, error in result.failed.items():
        out.item({"action": "delete", "key": key, "ok": False,
                  "error": _error_record(error)}, None)
        out.error(f"rm {location.name(key)}", error)
    return tally


def cmd_url(args: argparse.Namespace, out: Output) -> int:
    location = _remote(args.path, out)
    signed = location.store().generate_presigned_url(location.path, args.expires, args.method)
    text = "\n".join([signed.url, *(f"{name}: {value}" for name, value in
                                    signed.headers.items())])
    out.item(asdict(signed), text)
    return out.summary("url", EXIT_OK, None, urls=1)


def cmd_serve(args: argparse.Namespace, out: Output) -> int:
    """Serve a local profile's signed URLs over HTTP until interrupted (wsgiref: for
    development; mount ``server.make_app`` in a production WSGI server instead)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from .backends.local import LocalStorageAdapter
    from .profiles import open_profile
    from .server import make_app

    adapter = open_profile(args.profile)
    if not isinstance(adapter, LocalStorageAdapter):
        raise StorageValidationError(
            f"serve: profile {args.profile!r} is a {adapter.backend_name} profile; only "
            "local profiles (with signing_key and base_url) are served",
            backend=adapter.backend_name)
    app = make_app(adapter, allowed_origins=args.allow_origin or ())

    class _Quiet(WSGIRequestHandler):
        """One line per request on stderr, without wsgiref's client address lookups."""

        def log_message(self, format: str, *values: Any) -> None:
            if not args.quiet:
                sys.stderr.write(f"serve {args.profile}: {format % values}\n")

    with make_server(args.host, args.port, app, handler_class=_Quiet) as httpd:
        out.item({"profile": args.profile, "url": f"http://{args.host}:{httpd.server_port}"},
                 f"serving {args.profile} on http://{args.host}:{httpd.server_port} "
                 f"(base_url {adapter.config.get('base_url')}); Ctrl-C stops")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
            httpd.serve_forever()
    return EXIT_OK


def diagnose(error: BaseException) -> str:
    """Which step of reaching a store failed, read from the typed error and its causes."""
    import socket
    import ssl

    chain: list[BaseException] = []
    current: Optional[BaseException] = error
    while current is not None and current not in chain:
        chain.append(current)
        nested = getattr(current, "os_error", None)  # aiohttp's connector errors
        current = current.__cause__ or current.__context__ or (
            nested if isinstance(nested, BaseException) else None)
    names = " ".join(type(e).__name__ for e in chain)
    if any(isinstance(e, socket.gaierror) for e in chain) or "DNS" in names:
        return "name resolution failed (check the host name in the endpoint)"
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSL" in names or \
            "Certificate" in names:
        return "TLS handshake failed (wrong scheme or an untrusted certificate)"
    if isinstance(error, StorageTimeoutError):
        return "timed out (the host did not answer in time)"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or \
            isinstance(error, StorageConnectionError):
        return "TCP connection failed (nothing answering at that host and port)"
    if isinstance(error, StoragePermissionError):
        return "authentication or authorization failed (check the credentials)"
    if isinstance(error, StorageNotFoundError):
        return "the bucket, container or folder does not exist"
    return "the store answered with an error"


def cmd_test(args: argparse.Namespace, out: Output) -> int:
    from .profiles import get_profile, open_profile

    profile = get_profile(args.profile)
    out.secrets += tuple(str(v) for v in profile.credentials.values() if isinstance(v, str))
    adapter = open_profile(args.profile)
    start = time.perf_counter()
    try:
        adapter.test_connection(timeout=args.timeout)
    except StorageError as exc:
        reason = diagnose(exc)
        out.error(f"test {args.profile} ({profile.backend}): {reason}", exc)
        code = exit_code(exc)
        out.item({"profile": args.profile, "backend": profile.backend, "ok": False,
                  "reason": reason, "error": _error_record(exc)}, None)
        return out.summary("test", code, None, ok=False)
    seconds = time.perf_counter() - start
    out.item({"profile": args.profile, "backend": profile.backend, "ok": True,
              "seconds": round(seconds, 3)},
             f"ok: profile {args.profile} ({profile.backend}) reachable in {seconds:.2f} s")
    return out.summary("test", EXIT_OK, None, ok=True)


def cmd_profiles(args: argparse.Namespace, out: Output) -> int:
    from .profiles import default_profiles_path, load_profiles

    profiles = load_profiles()
    for name, profile in sorted(profiles.items()):
        record = {"name": name, "backend": profile.backend, "source": profile.source,
                  "config": dict(profile.config), "credentials": sorted(profile.credentials)}
        config = " ".join(f"{k}={v}" for k, v in sorted(profile.config.items()))
        out.item(json.loads(redact(json.dumps(record, default=str))),
                 redact(f"{name:<20} {profile.backend:<8} {config}"))
    return out.summary("profiles", EXIT_OK, None, profiles=len(profiles),
                       file=str(default_profiles_path()))


# -- sync -----------------------------------------------------------------------------


def _included(relative: str, filters: Sequence[tuple[str, str]]) -> bool:
    """Filters apply in the order given; the last one that matches decides."""
    verdict = True
    for kind, pattern in filters:
        if fnmatch.fnmatchcase(relative, pattern):
            verdict = kind == "include"
    return verdict


class _Filter(argparse.Action):
    """``--exclude``/``--include`` into one ordered list, so later ones can override."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Optional[str] = None) -> None:
        filters = list(getattr(namespace, "filters", None) or [])
        filters.append((self.dest, str(values)))
        namespace.filters = filters


def _needs_copy(source: Location, entry: Entry, destination: Location,
                existing: Optional[Entry], checksum: bool) -> tuple[bool, Optional[str]]:
    """Whether ``entry`` must be copied, and the source's SHA-256 if it was computed.

    A size difference decides at once. Otherwise remote destinations are compared
    against the mtime (and hash) that a previous sync stored in their metadata (one
    metadata request per object, as listings carry no metadata); local ones against
    their own mtime and content."""
    if existing is None or existing.size != entry.size:
        return True, None
    digest = None
    if checksum:
        digest = _sha256_local(entry.ref) if not source.remote else \
            _stored_or_computed(source.store(), entry.ref)
    if destination.remote:
        stored = destination.store().get_file_metadata(existing.ref).metadata or {}
        if checksum:
            return stored.get(SHA256_FIELD) != digest, digest
        return stored.get(MTIME_FIELD) != str(entry.mtime_ns), digest
    if checksum:
        return _sha256_local(existing.ref) != digest, digest
    return existing.mtime_ns != entry.mtime_ns, digest


def _stored_or_computed(adapter: StorageAdapter, key: str) -> str:
    stored = (adapter.get_file_metadata(key).metadata or {}).get(SHA256_FIELD)
    return stored or _sha256_remote(adapter, key)


def cmd_sync(args: argparse.Namespace, out: Output) -> int:
    source = parse_location(args.source, out)
    destination = parse_location(args.destination, out)
    filters = getattr(args, "filters", None) or []
    if not source.remote and not os.path.isdir(source.path):
        raise StorageNotFoundError(f"local: {source.path!r} is not a folder",
                                   operation="sync", key=source.path)
    wanted = {rel: e for rel, e in list_entries(source).items() if _included(rel, filters)}
    present = {rel: e for rel, e in list_entries(destination).items() if _included(rel, filters)}
    join = _join if destination.remote else _local_join
    digests: dict[str, Optional[str]] = {}
    plan: list[tuple[Entry, str]] = []
    compare_errors = Tally()

    def compare(relative: str) -> None:
        entry = wanted[relative]
        copy, digests[relative] = _needs_copy(source, entry, destination,
                                              present.get(relative), args.checksum)
        if copy:
            with compare_errors.lock:
                plan.append((entry, join(destination.path, relative)))

    def compared(relative: str, error: Optional[BaseException]) -> None:
        if error is not None:
            with compare_errors.lock:
                compare_errors.failed += 1
                compare_errors.errors.append(error)
            out.error(f"sync: compare {source.name(wanted[relative].ref)}", error)

    run_pool(sorted(wanted), compare, args.concurrency, compared, None)
    plan.sort(key=lambda item: item[0].relative)
    doomed = sorted(rel for rel in present if rel not in wanted) if args.delete else []
    if args.dry_run:
        for entry, target in plan:
            out.item({"action": "copy", "source": source.name(entry.ref),
                      "destination": destination.name(target), "size": entry.size,
                      "dry_run": True},
                     f"would copy {source.name(entry.ref)} -> {destination.name(target)}")
        for rel in doomed:
            out.item({"action": "delete", "key": destination.name(present[rel].ref),
                      "dry_run": True}, f"would delete {destination.name(present[rel].ref)}")
        return out.summary("sync", compare_errors.code(),
                           f"sync: {len(plan)} would be copied, {len(doomed)} deleted "
                           "(dry run)", copied=0, would_copy=len(plan),
                           would_delete=len(doomed), skipped=len(wanted) - len(plan),
                           failed=compare_errors.failed, dry_run=True)

    def extra(entry: Entry) -> Optional[dict[str, str]]:
        if not destination.remote:
            return None
        stored = {MTIME_FIELD: str(entry.mtime_ns)}
        if args.checksum:
            digest = digests.get(entry.relative) or (
                _sha256_local(entry.ref) if not source.remote
                else _stored_or_computed(source.store(), entry.ref))
            stored[SHA256_FIELD] = digest
        return stored

    tally, _ = transfer(plan, source, destination, args, out, "copy", extra)
    tally.failed += compare_errors.failed
    tally.errors += compare_errors.errors
    deleted = 0
    if doomed and tally.failed:
        out.error("sync --delete", StorageError(
            f"{tally.failed} item(s) failed, so nothing was deleted from the destination"))
    elif doomed:
        refs = [present[rel].ref for rel in doomed]
        if destination.remote:
            result = destination.store().delete_files(refs, concurrency=args.concurrency,
                                                      progress=out.batch_progress)
        else:
            result = BatchResult()
            for ref in refs:
                try:
                    delete_local(ref)
                    result.succeeded.append(ref)
                except StorageError as exc:
                    result.failed[ref] = exc
        deletes = _report_deletes(result, destination, out)
        deleted = deletes.done
        tally.failed += deletes.failed
        tally.errors += deletes.errors
    skipped = len(wanted) - len(plan)
    return out.summary("sync", tally.code(),
                       f"sync: {tally.done} copied, {skipped} unchanged, {deleted} deleted, "
                       f"{tally.failed} failed", copied=tally.done, skipped=skipped,
                       deleted=deleted, failed=tally.failed, bytes=tally.bytes)


# -- the parser -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command's parser (also what ``--help`` shows)."""
    common = argparse.ArgumentParser(add_help=False)
    options = common.add_argument_group("output and speed")
    options.add_argument("--json", action="store_true",
                         help="one JSON object per line, then a summary object")
    options.add_argument("-q", "--quiet", action="store_true",
                         help="print only errors (and --json output)")
    options.add_argument("--debug", action="store_true",
                         help="show tracebacks and the library's debug log")
    options.add_argument("--concurrency", type=_positive, default=16, metavar="N",
                         help="transfers at once for many-file commands (default 16)")

    parser = argparse.ArgumentParser(
        prog="perceptra-storage",
        description="Files in S3, Azure Blob, MinIO and local stores, by profile. Paths are "
                    "local paths or PROFILE:KEY (profiles: see `perceptra-storage profiles`).",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[..., int], help_text: str) -> Any:
        sub = commands.add_parser(name, parents=[common], help=help_text,
                                  description=help_text, epilog=EXIT_CODES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(handler=handler)
        return sub

    sub = command("ls", cmd_ls, "list objects under PROFILE:PREFIX (recursive)")
    sub.add_argument("path", metavar="PROFILE:PREFIX")
    sub.add_argument("-l", "--long", action="store_true",
                     help="add size, modified time and etag")
    command("stat", cmd_stat, "show one object's size, time, etag, type and metadata"
            ).add_argument("path", metavar="PROFILE:KEY")
    command("cat", cmd_cat, "write objects to stdout, streamed (raw bytes: --json does "
            "not apply)").add_argument(
        "paths", nargs="+", metavar="PROFILE:KEY")
    for name, handler, verb in (("cp", cmd_cp, "copy"), ("mv", _cmd_mv, "move")):
        sub = command(name, handler, f"{verb} a file, or a folder/prefix with -r, between "
                      "local paths and profiles" + (" ('-' is stdin/stdout)" if name == "cp"
                                                    else ""))
        sub.add_argument("source", metavar="SRC")
        sub.add_argument("destination", metavar="DST")
        sub.add_argument("-r", "--recursive", action="store_true",
                         help="everything under a folder or prefix")
    sub = command("rm", cmd_rm, "delete an object, or everything under a prefix with -r")
    sub.add_argument("path", metavar="PROFILE:KEY")
    sub.add_argument("-r", "--recursive", action="store_true",
                     help="everything under the prefix (as a folder)")
    sub.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    sub = command("url", cmd_url, "print a presigned URL and the headers a client must send")
    sub.add_argument("path", metavar="PROFILE:KEY")
    sub.add_argument("--method", default="GET", choices=["GET", "PUT", "HEAD", "DELETE"])
    sub.add_argument("--expires", type=_positive, default=3600, metavar="SECONDS",
                     help="lifetime in seconds (default 3600, at most 7 days)")
    sub = command("test", cmd_test, "check that a profile's store is reachable and usable")
    sub.add_argument("profile", metavar="PROFILE")
    sub.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    command("profiles", cmd_profiles, "list profiles (never their secrets)")
    sub = command("serve", cmd_serve, "serve a local profile's signed URLs over HTTP "
                  "(development server; needs signing_key and base_url in its config)")
    sub.add_argument("profile", metavar="PROFILE")
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on "
                     "(default 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8000, metavar="N",
                     help="port (default 8000; 0 picks a free one)")
    sub.add_argument("--allow-origin", action="append", metavar="ORIGIN",
                     help="let pages of ORIGIN call it from a browser (CORS); repeatable, "
                          "'*' for any")
    sub = command("sync", cmd_sync, "copy what is missing or different from SRC to DST "
                  "(compared by the mtime and, with --checksum, the SHA-256 that sync stores "
                  "in each object's metadata)")
    sub.add_argument("source", metavar="SRC")
    sub.add_argument("destination", metavar="DST")
    sub.add_argument("--delete", action="store_true",
                     help="delete destination files missing from SRC (only when every copy "
                          "succeeded)")
    sub.add_argument("--dry-run", action="store_true", help="show what would change")
    sub.add_argument("--checksum", action="store_true",
                     help="compare content hashes (catches same-size edits that kept the mtime)")
    sub.add_argument("--exclude", action=_Filter, metavar="PATTERN",
                     help="skip relative paths matching PATTERN (fnmatch); repeatable")
    sub.add_argument("--include", action=_Filter, metavar="PATTERN",
                     help="take them back; the last matching filter wins")
    return parser


def _cmd_mv(args: argparse.Namespace, out: Output) -> int:
    return cmd_cp(args, out, move=True)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


@contextlib.contextmanager
def _broken_pipe() -> Iterator[None]:
    """``perceptra-storage cat x:big | head`` ends quietly, as other tools do."""
    try:
        yield
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        raise _Failed(EXIT_OK) from None


def main(argv: Optional[Iterable[str]] = None) -> int:
    """Run one command; returns its exit code (see ``EXIT_CODES``)."""
    args = build_parser().parse_args(None if argv is None else list(argv))
    out = Output(args)
    if args.debug:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        logging.getLogger("perceptra_storage").setLevel(logging.DEBUG)
    try:
        with _broken_pipe():
            return int(args.handler(args, out))
    except _Failed as stop:
        return stop.code
    except StorageError as exc:
        out.error(_where(args, exc), exc)
        code = exit_code(exc)
        if args.json:
            out.item({"summary": True, "command": args.command, "exit_code": code,
                      "error": _error_record(exc)}, None)
        return code
    except KeyboardInterrupt:
        sys.stderr.write("perceptra-storage: interrupted\n")
        return 130
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        out.error(f"{args.command}: internal error (run with --debug and report it)", exc)
        return EXIT_SOME_FAILED


def _where(args: argparse.Namespace, error: StorageError) -> str:
    """``COMMAND PATHS`` for a one-line error (the message names operation and key)."""
    paths = [str(getattr(args, name)) for name in ("path", "source", "destination", "profile")
             if getattr(args, name, None) is not None]
    paths += list(getattr(args, "paths", None) or [])
    operation = f" ({error.operation} {error.key!r})" if error.operation and error.key else ""
    return f"{args.command} {' '.join(paths)}{operation}".strip()


if __name__ == "__main__":  # pragma: no cover - python -m perceptra_storage.cli
    raise SystemExit(main())
