"""A Django storage over any backend or profile: ``FileField``, ``ImageField``,
``default_storage`` and ``collectstatic`` on S3, Azure, MinIO, local disk or memory.

Configured through Django's ``STORAGES`` setting; ``OPTIONS`` become the keyword
arguments of :class:`PerceptraStorage`::

    STORAGES = {
        "default": {
            "BACKEND": "perceptra_storage.contrib.django.PerceptraStorage",
            "OPTIONS": {"profile": "media", "location": "uploads"},
        },
    }

The storage translates Django's names into keys (under ``location``) and each
Storage method into one adapter call, so every backend behaves as the contract
says, and Django's own checks (``save()``'s name validation, ``SuspiciousFileOperation``)
run before any of ours. Which adapter serves a call is chosen per call when
``profile`` is a callable (per-tenant storage, see :func:`active_profile` and
:class:`ProfileMiddleware`); adapters are built once per profile and shared by
every thread.

Nothing here puts a credential into a repr, a message or Django's debug page:
the methods that reach an adapter are marked with Django's
``sensitive_variables``, which hides the local variables of their frames and of
every frame they call into; migrations refuse to serialise a storage that holds
credentials (give a profile name instead).
"""

from __future__ import annotations

import copy
import functools
import io
import mimetypes
import pathlib
import posixpath
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Optional, TypeVar, Union, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.files.base import File
from django.core.files.storage import Storage
from django.core.files.utils import validate_file_name
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.deconstruct import deconstructible
from django.utils.encoding import filepath_to_uri
from django.utils.module_loading import import_string
from django.utils.text import get_valid_filename
from django.views.decorators.debug import sensitive_variables

from ..errors import StorageError, StorageValidationError
from ..validation import (
    validate_content_type,
    validate_expiration,
    validate_key,
    validate_metadata,
    validate_root_prefix,
)

if TYPE_CHECKING:
    from ..base import StorageAdapter, StorageObject
    from ..fsspec_protocol import PerceptraFileSystem

__all__ = [
    "NoActiveProfile",
    "PROFILES_SETTING",
    "PROFILE_FOR_REQUEST_SETTING",
    "PerceptraFile",
    "PerceptraManifestStorage",
    "PerceptraStorage",
    "ProfileMiddleware",
    "active_profile",
    "use_profile",
]

PROFILES_SETTING = "PERCEPTRA_STORAGE_PROFILES"
"""Django setting: profiles defined in settings, ``{name: {"backend", "config",
"credentials"}}``; looked up before the profiles file and :func:`register_profile`."""

PROFILE_FOR_REQUEST_SETTING = "PERCEPTRA_STORAGE_PROFILE_FOR_REQUEST"
"""Django setting read by :class:`ProfileMiddleware`: a callable (or its dotted path)
that takes the request and returns its profile name, or None for none."""

OPTIONS = ("profile", "backend", "config", "credentials", "location", "file_overwrite",
           "querystring_auth", "querystring_expire", "base_url", "content_type", "metadata")
"""What ``STORAGES[...]["OPTIONS"]`` may hold."""

_SPOOL_BYTES = 8 * 1024 * 1024
"""A file opened for writing stays in memory up to this size, then spills to disk."""

ProfileChoice = Union[str, Callable[[], str]]
"""A profile name, or a callable returning the name to use for the current call."""

_F = TypeVar("_F", bound=Callable[..., Any])


def _hide_locals(function: _F) -> _F:
    """What keeps credentials off Django's error pages (and the reports built like them)
    for the errors of ``function``, which is wrapped in Django's
    ``sensitive_variables()``: the page shows no local variable of its frame, nor of
    the frames it calls in this thread. Frames it cannot mark (generators, coroutines
    on the SDK's event-loop thread, where request headers and signing keys live) are
    cut: a StorageError leaves with its traceback starting here, and the errors it
    chains keep their types and messages but not their frames."""

    @functools.wraps(function)
    def without_sdk_frames(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except StorageError as exc:
            _cut_chained_frames(exc)
            raise exc.with_traceback(None) from exc.__cause__

    return cast(_F, sensitive_variables()(without_sdk_frames))


def _cut_chained_frames(error: BaseException) -> None:
    seen = {id(error)}
    pending = [error.__cause__, error.__context__]
    while pending:
        chained = pending.pop()
        if chained is None or id(chained) in seen:
            continue
        seen.add(id(chained))
        chained.__traceback__ = None
        pending += [chained.__cause__, chained.__context__]


class NoActiveProfile(LookupError):
    """A per-tenant storage was used where no profile is active (outside a request
    handled by :class:`ProfileMiddleware`, or outside :func:`use_profile`)."""


# -- per-tenant profiles ------------------------------------------------------------------

_active: ContextVar[Optional[str]] = ContextVar("perceptra_storage_profile", default=None)


def active_profile() -> str:
    """The profile chosen for the current context: give this function as the storage's
    ``profile`` OPTION to pick the profile per request (or per task) at run time.

    Context variables follow threads and asyncio tasks, so concurrent requests never
    see each other's choice."""
    name = _active.get()
    if name is None:
        raise NoActiveProfile(
            "no storage profile is active here: wrap the code in "
            "perceptra_storage.contrib.django.use_profile(name), or serve it through "
            "ProfileMiddleware")
    return name


@contextmanager
def use_profile(name: Optional[str]) -> Iterator[None]:
    """Make ``name`` the active profile inside the block (None: no profile)."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"a profile name is a str, not {type(name).__name__}")
    token = _active.set(name)
    try:
        yield
    finally:
        _active.reset(token)


class ProfileMiddleware:
    """Sets the active profile of each request from
    ``settings.PERCEPTRA_STORAGE_PROFILE_FOR_REQUEST`` (the application knows its
    tenants; this middleware only carries the answer to the storage). Works under
    WSGI and ASGI. Put it before any middleware that touches tenant files."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        chooser = getattr(settings, PROFILE_FOR_REQUEST_SETTING, None)
        if isinstance(chooser, str):
            chooser = import_string(chooser)
        if not callable(chooser):
            raise ImproperlyConfigured(
                f"ProfileMiddleware needs settings.{PROFILE_FOR_REQUEST_SETTING}: a "
                "function (or its dotted path) that takes the request and returns its "
                "storage profile name")
        self.profile_for: Callable[[Any], Optional[str]] = chooser
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self._serve_async(request)
        with use_profile(self.profile_for(request)):
            return self.get_response(request)

    async def _serve_async(self, request: Any) -> Any:
        with use_profile(self.profile_for(request)):
            return await self.get_response(request)


# -- the storage --------------------------------------------------------------------------


@deconstructible
class _Deconstructible(Storage):  # type: ignore[misc]
    """Records the constructor's arguments, so migrations can rebuild the storage."""


class PerceptraStorage(_Deconstructible):
    """A Django ``Storage`` on one perceptra-storage adapter, or on one per tenant.

    Keyword arguments (``STORAGES[...]["OPTIONS"]``), meant as django-storages'
    S3 options of the same names:

    ``profile``
        A profile name (``settings.PERCEPTRA_STORAGE_PROFILES``, the profiles file,
        or :func:`~perceptra_storage.register_profile`), or a callable returning one,
        called on every storage call (e.g. :func:`active_profile`).
    ``backend``, ``config``, ``credentials``
        Instead of ``profile``: what :func:`~perceptra_storage.get_storage_adapter`
        takes.
    ``location``
        A folder inside the backend's root (after its ``prefix``) that names are under.
    ``file_overwrite``
        False (default, Django's own behaviour): saving under a taken name picks a
        new name. True: the save replaces the stored file.
    ``querystring_auth``
        True (default): ``url()`` is a presigned GET URL. False: the backend's public
        URL (its ``public_base_url``, e.g. a CDN, when configured).
    ``querystring_expire``
        Seconds a presigned URL lives (default 3600).
    ``base_url``
        A URL the storage's files are served under (``MEDIA_URL``, ``STATIC_URL``, a
        CDN), as for Django's ``FileSystemStorage``: ``url()`` then joins the name to
        it, signing nothing (``location`` is not repeated in it).
    ``content_type``
        Content type of saved files when neither the file nor its name gives one
        (default ``application/octet-stream``).
    ``metadata``
        User metadata stored with every saved file (portable names and values, as
        ``upload_file`` takes them).
    """

    querystring_auth = True
    """The default of the ``querystring_auth`` option."""

    @_hide_locals
    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ImproperlyConfigured(
                f"PerceptraStorage: unknown OPTIONS key {unknown[0]!r}"
                f"{f' (and {unknown[1:]})' if unknown[1:] else ''}; valid keys: "
                f"{', '.join(OPTIONS)}")
        profile = options.get("profile")
        backend = options.get("backend")
        if (profile is None) == (backend is None):
            raise ImproperlyConfigured(
                "PerceptraStorage: give OPTIONS 'profile' (a profile name, or a callable "
                "returning one) or 'backend' (with 'config' and 'credentials'), "
                f"{'not both' if profile is not None else 'one of them'}")
        if profile is not None and not ((isinstance(profile, str) and profile) or
                                        callable(profile)):
            raise ImproperlyConfigured("PerceptraStorage: OPTIONS 'profile' must be a "
                                       "profile name or a callable returning one")
        if backend is None and ("config" in options or "credentials" in options):
            raise ImproperlyConfigured("PerceptraStorage: OPTIONS 'config' and "
                                       "'credentials' go with 'backend', not 'profile'")
        if backend is not None and not (isinstance(backend, str) and backend):
            raise ImproperlyConfigured("PerceptraStorage: OPTIONS 'backend' must be a "
                                       "backend name such as 's3'")
        for name in ("config", "credentials"):
            if not isinstance(options.get(name) or {}, Mapping):
                raise ImproperlyConfigured(f"PerceptraStorage: OPTIONS {name!r} must be a "
                                           "dict")
        self._profile: Optional[ProfileChoice] = profile
        self._backend: Optional[str] = backend
        # Copies: the settings' dicts are never changed, nor shared with the adapter.
        self._config = copy.deepcopy(dict(options.get("config") or {}))
        self._credentials = copy.deepcopy(dict(options.get("credentials") or {}))
        self.location: str = _option(lambda: validate_root_prefix(options.get("location"),
                                                             "django"), "location")
        self.file_overwrite = _flag(options, "file_overwrite", False)
        self.querystring_auth = _flag(options, "querystring_auth", self.querystring_auth)
        self.querystring_expire: int = _option(
            lambda: validate_expiration(options.get("querystring_expire", 3600)),
            "querystring_expire")
        base_url = options.get("base_url")
        if base_url is not None and not isinstance(base_url, str):
            raise ImproperlyConfigured("PerceptraStorage: OPTIONS 'base_url' must be a str "
                                       "such as '/media/' or 'https://cdn.example.com/'")
        self.base_url: Optional[str] = base_url if base_url is None or \
            base_url.endswith("/") else f"{base_url}/"
        given_type = options.get("content_type")
        self.default_content_type: Optional[str] = None if given_type is None else _option(
            lambda: validate_content_type(given_type, ""), "content_type")
        self.metadata: dict[str, str] = _option(
            lambda: validate_metadata(options.get("metadata")), "metadata")
        self._lock = threading.Lock()
        self._adapters: dict[str, tuple[StorageAdapter, PerceptraFileSystem]] = {}

    # -- which adapter -------------------------------------------------------------

    def _profile_name(self) -> str:
        """The profile serving this call ('' for a backend given in OPTIONS)."""
        choice = self._profile
        if choice is None:
            return ""
        if isinstance(choice, str):
            return choice
        name = choice()
        if not isinstance(name, str) or not name:
            raise ImproperlyConfigured(
                f"PerceptraStorage: the OPTIONS 'profile' callable returned {name!r}, not "
                "a profile name")
        return name

    def _adapter(self) -> StorageAdapter:
        return self._entry()[0]

    def _entry(self) -> tuple[StorageAdapter, PerceptraFileSystem]:
        """The adapter of this call's profile (and its fsspec view, for folders); built
        on first use, once per profile, then shared by every thread."""
        name = self._profile_name()
        entry = self._adapters.get(name)
        if entry is None:
            with self._lock:
                entry = self._adapters.get(name)
                if entry is None:
                    adapter = self._build(name)
                    entry = self._adapters[name] = (adapter, adapter.fs)
        return entry

    @_hide_locals
    def _build(self, profile: str) -> StorageAdapter:
        from ..profiles import _checked, open_profile
        from ..registry import get_storage_adapter

        try:
            if not profile:
                assert self._backend is not None
                return get_storage_adapter(self._backend, self._config, self._credentials)
            defined = getattr(settings, PROFILES_SETTING, None) or {}
            if profile in defined:
                table = defined[profile]
                if not isinstance(table, Mapping):
                    raise StorageValidationError(
                        f"settings.{PROFILES_SETTING}[{profile!r}] must be a dict with "
                        "backend, config and credentials")
                return _checked(f"settings.{PROFILES_SETTING}", profile, table).open()
            return open_profile(profile)
        except StorageError as exc:
            raise ImproperlyConfigured(f"PerceptraStorage: {exc}") from None

    # -- names and keys --------------------------------------------------------------

    def _key(self, name: Any, folder: bool = False) -> str:
        """The adapter key of a Django name: under ``location``, '/'-separated. A name
        no key can have (absolute, '..', empty segments) is refused here, before any
        I/O; ``folder`` allows '' (the root) and a trailing '/'."""
        text = str(name).replace("\\", "/")
        if folder:
            text = text.rstrip("/")
            if not text:
                return self.location
        key = f"{self.location}/{text}" if self.location else text
        try:
            return validate_key(key)
        except StorageValidationError as exc:
            raise SuspiciousFileOperation(
                f"the name {str(name)!r} cannot be stored: {exc.reason}") from None

    def generate_filename(self, filename: Any) -> str:
        """Django's rules for a new file name (a valid file name under its folder; no
        '..' folder), with '/' as the separator on every platform, as keys have it."""
        text = str(filename).replace("\\", "/")
        folder, base = posixpath.split(text)
        if ".." in folder.split("/"):
            raise SuspiciousFileOperation(f"Detected path traversal attempt in {folder!r}")
        return posixpath.normpath(posixpath.join(folder, self.get_valid_name(base)))

    def get_available_name(self, name: Any, max_length: Optional[int] = None) -> str:
        """``name`` when it is free (or ``file_overwrite`` is on), else the name with
        ``_`` and 7 random characters before the extension, as Django picks; names
        longer than ``max_length`` are shortened in the file's stem."""
        name = str(name).replace("\\", "/")
        validate_file_name(name, allow_relative_path=True)
        folder, base = posixpath.split(name)
        stem, extension = _split_extension(base)
        candidate: str = name
        while (not self.file_overwrite and self.exists(candidate)) or \
                (max_length is not None and len(candidate) > max_length):
            if max_length is not None and len(candidate) > max_length:
                excess = len(candidate) - max_length
                stem = stem[:-excess]
                if not stem:
                    raise SuspiciousFileOperation(
                        f"Storage can not find an available filename for {name!r}: the "
                        "file name would have to be empty to fit max_length")
                candidate = posixpath.join(folder, f"{stem}{extension}")
                continue
            candidate = posixpath.join(folder, f"{stem}_{get_random_string(7)}{extension}")
        validate_file_name(candidate, allow_relative_path=True)
        return candidate

    def get_valid_name(self, name: Any) -> str:
        return str(get_valid_filename(name))

    # -- the Storage API ---------------------------------------------------------------

    @_hide_locals
    def _open(self, name: str, mode: str = "rb") -> PerceptraFile:
        if mode not in _MODES:
            raise ValueError(f"PerceptraStorage opens files with {', '.join(_MODES)}, not "
                             f"{mode!r}")
        key = self._key(name)
        adapter = self._adapter()
        if mode.startswith("r"):
            raw: IO[Any] = adapter.open(key, "rb")
            if "b" not in mode:
                raw = io.TextIOWrapper(raw, encoding="utf-8")
            return PerceptraFile(raw, name, mode)
        upload = _Upload(self, adapter, key, name)
        if "b" in mode:
            return PerceptraFile(upload, name, mode)
        return PerceptraFile(io.TextIOWrapper(upload, encoding="utf-8"), name, mode)

    @_hide_locals
    def _save(self, name: str, content: Any) -> str:
        key = self._key(name)
        adapter = self._adapter()
        source: Any
        if hasattr(content, "temporary_file_path"):
            # An upload Django spooled to disk; a Path, as upload_file refuses a str.
            source = pathlib.Path(content.temporary_file_path())
        else:
            source = _ChunkReader(content)
        adapter.upload_file(source, key, content_type=self._content_type(name, content),
                            metadata=self.metadata)
        return name

    def _content_type(self, name: str, content: Any) -> str:
        """The file's own content type when it has a valid one (an upload's, as the
        browser sent it), else the name's, else the ``content_type`` option."""
        given = getattr(content, "content_type", None)
        if isinstance(given, str) and given:
            try:
                return validate_content_type(given, name)
            except StorageValidationError:
                pass  # a client's malformed header must not fail the save
        guessed = mimetypes.guess_type(name)[0]
        return guessed or self.default_content_type or "application/octet-stream"

    @_hide_locals
    def delete(self, name: str) -> None:
        """Delete the file; a file that is not there is not an error (Django's rule)."""
        if not name:
            raise ValueError("The name must be given to delete().")
        result = self._adapter().delete_files([self._key(name)], missing_ok=True)
        result.raise_for_errors()

    @_hide_locals
    def exists(self, name: str) -> bool:
        """True for a stored file, and for a folder that holds any (a name ending in
        '/' asks for a folder only)."""
        if str(name).endswith("/"):
            return self._has_folder(self._key(name, folder=True))
        key = self._key(name)
        return self._adapter().file_exists(key) or self._has_folder(key)

    def _has_folder(self, key: str) -> bool:
        adapter = self._adapter()
        return next(iter(adapter.iter_files(f"{key}/" if key else "")), None) is not None

    @_hide_locals
    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        """``(folders, files)`` directly inside ``path``, names relative to it, sorted.
        On object stores a folder exists while it holds a file: listing one that holds
        none raises FileNotFoundError, except the storage's root, which is empty."""
        folder = self._key(path, folder=True)
        try:
            entries = self._entry()[1].ls(folder, detail=True)
        except FileNotFoundError:
            if folder == self.location:
                return [], []
            raise
        folders: list[str] = []
        files: list[str] = []
        for entry in entries:
            full = str(entry["name"])
            if folder and full == folder:
                raise NotADirectoryError(f"{path!r} is a file, not a folder")
            inner = full[len(folder) + 1:] if folder else full
            (folders if entry["type"] == "directory" else files).append(inner)
        return folders, files

    @_hide_locals
    def size(self, name: str) -> int:
        return self._stat(name).size

    def _stat(self, name: str) -> StorageObject:
        return self._adapter().get_file_metadata(self._key(name))

    @_hide_locals
    def url(self, name: Optional[str]) -> str:
        """``base_url`` + the name when ``base_url`` is set; else a presigned GET URL
        (``querystring_auth``, the default) or the public URL. Signing happens here,
        with no request to the store."""
        if name is None:
            raise ValueError("url() needs the file's name")
        key = self._key(name)
        if self.base_url is not None:
            return f"{self.base_url}{filepath_to_uri(str(name)).lstrip('/')}"
        adapter = self._adapter()
        if self.querystring_auth:
            return adapter.generate_presigned_url(key, self.querystring_expire).url
        public = adapter.get_public_url(key)
        if public is None:
            raise ValueError(f"{name!r} has no public URL on the {adapter.backend_name} "
                             "backend; set OPTIONS base_url, or querystring_auth=True for "
                             "a signed URL")
        return public

    def get_modified_time(self, name: str) -> datetime:
        """Time of the last write: aware (UTC) with ``USE_TZ``, else naive local time."""
        return _django_time(self._stat(name).last_modified)

    def get_accessed_time(self, name: str) -> datetime:
        """Object stores keep no read times: the time of the last write, as for
        :meth:`get_modified_time`."""
        return self.get_modified_time(name)

    def get_created_time(self, name: str) -> datetime:
        """A stored object is created anew by each write: the time of the last write."""
        return self.get_modified_time(name)

    # -- migrations, copies and reprs ------------------------------------------------

    def deconstruct(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """What migrations write down to rebuild this storage; never credentials."""
        path, args, kwargs = super().deconstruct()
        if kwargs.get("credentials"):
            raise ValueError(
                "PerceptraStorage: a storage built with OPTIONS 'credentials' cannot be "
                "written into a migration (the credentials would land in the file); use "
                "a profile name, or pass FileField a callable storage")
        return path, args, kwargs

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock")
        state["_adapters"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        source = f"backend={self._backend!r}" if self._backend is not None else \
            f"profile={self._profile if isinstance(self._profile, str) else 'per call'!r}"
        return f"<PerceptraStorage {source} location={self.location!r}>"


class PerceptraManifestStorage(ManifestFilesMixin, PerceptraStorage):  # type: ignore[misc]
    """``collectstatic``'s production setup on any backend: file names carry a hash of
    the content and ``staticfiles.json`` maps each name to its hashed one (Django's
    ``ManifestStaticFilesStorage`` behaviour over :class:`PerceptraStorage`).

    ``querystring_auth`` defaults to False here: the mixin writes the URL's last
    segment into the CSS it rewrites, and a signature there would expire."""

    querystring_auth = False


class PerceptraFile(File):  # type: ignore[misc]
    """What ``PerceptraStorage.open`` returns: a Django ``File`` over the adapter's
    file object. Reading streams (seekable, nothing fetched until read); writing
    spools, and stores the file when it is closed, unless the ``with`` block failed."""

    def __init__(self, file: Any, name: str, mode: str) -> None:
        super().__init__(file, name)
        self.mode = mode

    @functools.cached_property
    def size(self) -> int:
        """The stored size (reading: known from opening, else found by seeking to the
        end; writing: the bytes written so far)."""
        raw = self.file.buffer if isinstance(self.file, io.TextIOWrapper) else self.file
        known = getattr(raw, "size", None)
        if known is not None:
            return int(known)
        where = raw.tell()
        end = int(raw.seek(0, io.SEEK_END))
        raw.seek(where)
        return end

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        upload = self.file.buffer if isinstance(self.file, io.TextIOWrapper) else self.file
        if exc_type is not None and isinstance(upload, _Upload):
            upload.discard()
        self.close()


_MODES = ("rb", "r", "rt", "wb", "w", "wt")


class _Upload(io.RawIOBase):
    """A file opened for writing: bytes gather in a spooled temporary file and are
    stored, with the storage's content type and metadata, by ``close``."""

    def __init__(self, storage: PerceptraStorage, adapter: StorageAdapter, key: str,
                 name: str) -> None:
        super().__init__()
        self._storage = storage
        self._adapter = adapter
        self._key = key
        self._name = name
        self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
        self.mode = "wb"

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return int(self._spool.write(data))

    @property
    def size(self) -> int:
        return int(self._spool.tell())

    def discard(self) -> None:
        """Drop what was written; nothing is stored."""
        if not self.closed:
            self._spool.close()
            super().close()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._spool.seek(0)
            self._adapter.upload_file(
                self._spool, self._key,
                content_type=self._storage._content_type(self._name, None),
                metadata=self._storage.metadata)
        finally:
            self._spool.close()
            super().close()


class _ChunkReader(io.RawIOBase):
    """A binary reader over a Django ``File``'s chunks (text chunks, as a
    ``ContentFile`` of a str yields, are encoded as UTF-8), so ``upload_file`` streams
    any Django file without holding it whole."""

    def __init__(self, content: Any) -> None:
        super().__init__()
        self._chunks: Iterator[Union[bytes, str]] = iter(content.chunks())
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
        view = memoryview(buffer).cast("B")
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


# -- helpers --------------------------------------------------------------------------------


def _option(check: Callable[[], Any], name: str) -> Any:
    """Run one OPTIONS check; its failure is ImproperlyConfigured naming the key."""
    try:
        return check()
    except StorageValidationError as exc:
        raise ImproperlyConfigured(f"PerceptraStorage: OPTIONS {name!r}: {exc.reason}") \
            from None


def _flag(options: Mapping[str, Any], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"PerceptraStorage: OPTIONS {name!r} must be True or "
                                   f"False, not {type(value).__name__}")
    return value


def _split_extension(base: str) -> tuple[str, str]:
    """``photo.tar.gz`` -> (``photo``, ``.tar.gz``): every suffix stays together, as
    Django's own ``get_available_name`` keeps them."""
    extension = "".join(pathlib.PurePosixPath(base).suffixes)
    return base.removesuffix(extension), extension


def _django_time(moment: datetime) -> datetime:
    """Aware UTC with ``USE_TZ``; otherwise naive, in the default time zone (Django's
    convention for storages)."""
    if settings.USE_TZ:
        return moment
    return cast(datetime, timezone.make_naive(moment))
