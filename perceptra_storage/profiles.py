"""Named storage profiles: one name per tenant or project, used from Python, URLs and the shell.

A profile is a backend name, its ``config`` and optional ``credentials``, the same
three things :func:`~perceptra_storage.get_storage_adapter` takes. Profiles come
from two places:

* a TOML file of named top-level tables, read with :mod:`tomllib`::

      [tenant-a]
      backend = "s3"
      config = { bucket_name = "tenant-a-data", region = "eu-west-1" }
      credentials = { access_key_id = "${TENANT_A_KEY_ID}",
                      secret_access_key = "${TENANT_A_SECRET}" }

  found at ``$PERCEPTRA_STORAGE_PROFILES`` when that is set, else at
  ``profiles.toml`` in the user's configuration directory
  (``~/.config/perceptra-storage/`` on Linux; the platform's own place elsewhere,
  located by ``platformdirs`` when it is installed);
* :func:`register_profile`, for programs that keep their settings in code (Django
  settings, tests).

No secret needs to be written in the file: a string value may contain ``${VAR}``,
replaced by the environment variable when the profile is used (so listing
profiles works without every tenant's secrets in the environment); a profile
without ``credentials`` uses the backend's standard chain (AWS profile, managed
identity...). Problems are :class:`StorageValidationError` naming the file, the
profile and the field, and never a value.

Which call to use: :func:`open_profile` shares one adapter per profile within a
process (adapters are thread-safe and rebuild their connections after ``fork``,
so sharing saves a client setup per call; the shared adapter is replaced when the
profile's resolved settings change). ``get_storage_adapter(profile=...)`` builds
a new adapter each time, for code that wants its own (to ``close`` it, say).
"""

from __future__ import annotations

import copy
import os
import re
import sys
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Optional, Union

from .base import StorageAdapter
from .errors import StorageAdapterError, StorageError, StorageValidationError, redact
from .validation import validate_options

__all__ = [
    "PROFILES_ENV",
    "Profile",
    "default_profiles_path",
    "get_profile",
    "load_profiles",
    "open_profile",
    "register_profile",
]

PROFILES_ENV = "PERCEPTRA_STORAGE_PROFILES"
"""Environment variable naming the profiles file; overrides the default location."""

CODE_SOURCE = "<registered in code>"
"""The :attr:`Profile.source` of profiles given to :func:`register_profile`."""

_FIELDS = frozenset({"backend", "config", "credentials"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, repr=False)
class Profile:
    """One named profile: what :func:`~perceptra_storage.get_storage_adapter` needs.

    ``config`` and ``credentials`` are read-only copies. Profiles from
    :func:`load_profiles` hold values as written (``${VAR}`` included); those from
    :func:`get_profile` have the variables replaced. The repr shows credential
    field names only, never their values.
    """

    name: str
    """The profile's name: the TOML table name, or the name given in code."""
    backend: str
    """The backend name, as for ``get_storage_adapter`` (``s3``, ``azure``, ...)."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The backend's ``config`` dict."""
    credentials: Mapping[str, Any] = field(default_factory=dict)
    """The backend's ``credentials`` dict; empty for the backend's standard chain."""
    source: str = CODE_SOURCE
    """The file the profile was read from, or ``<registered in code>``."""

    def __repr__(self) -> str:
        config = redact(repr(dict(self.config)))
        return (f"Profile(name={self.name!r}, backend={self.backend!r}, config={config}, "
                f"credentials=<{', '.join(sorted(self.credentials)) or 'none'}>, "
                f"source={self.source!r})")

    def resolved(self) -> Profile:
        """This profile with every ``${VAR}`` replaced from the environment.

        A variable that is not set raises StorageValidationError naming the file,
        profile, field and variable.
        """
        return Profile(self.name, self.backend,
                       _frozen(_expand(self.config, self.source, self.name, "config")),
                       _frozen(_expand(self.credentials, self.source, self.name,
                                       "credentials")), self.source)

    def open(self) -> StorageAdapter:
        """A new adapter for this profile (variables resolved; errors name the profile)."""
        from .registry import get_storage_adapter

        profile = self.resolved()
        try:
            return get_storage_adapter(profile.backend, dict(profile.config),
                                       dict(profile.credentials))
        except StorageValidationError as exc:
            raise _error(profile.source, profile.name, exc.message) from None


_lock = threading.Lock()
_registered: dict[str, Profile] = {}
_file_cache: dict[str, tuple[tuple[int, int, int], dict[str, Profile]]] = {}
_adapters: dict[str, tuple[Profile, StorageAdapter]] = {}


def register_profile(
    name: str,
    backend: str,
    config: Optional[Mapping[str, Any]] = None,
    credentials: Optional[Mapping[str, Any]] = None,
) -> Profile:
    """Define profile ``name`` in code (replacing an earlier registration of that name).

    The dicts are copied, never changed; ``${VAR}`` works as in the file. The
    backend, field names and types are checked now, like a file's; a name that
    the profiles file also defines is refused when the profiles are loaded.
    """
    profile = _checked(CODE_SOURCE, name, {"backend": backend, "config": config or {},
                                           "credentials": credentials or {}})
    with _lock:
        _registered[profile.name] = profile
    return profile


def default_profiles_path() -> Path:
    """Where profiles are read from: ``$PERCEPTRA_STORAGE_PROFILES``, else the user's
    configuration directory (platformdirs' answer when installed, else the same rule
    written out: XDG on Linux, Application Support on macOS, APPDATA on Windows)."""
    given = os.environ.get(PROFILES_ENV)
    if given:
        return Path(given).expanduser()
    try:
        import platformdirs
    except ImportError:
        home = Path.home()
        if sys.platform == "win32":
            folder = Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
        elif sys.platform == "darwin":
            folder = home / "Library" / "Application Support"
        else:
            folder = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        return folder / "perceptra-storage" / "profiles.toml"
    return Path(platformdirs.user_config_dir("perceptra-storage", appauthor=False)) / \
        "profiles.toml"


def load_profiles(path: Union[str, os.PathLike[str], None] = None) -> dict[str, Profile]:
    """Every profile by name: the file's (``path``, else :func:`default_profiles_path`)
    and those registered in code, with values as written (``${VAR}`` unresolved).

    A missing file at the default location means no file profiles; a missing file
    that was named (``path`` or the environment variable) is an error. The file is
    parsed again only when it changes.
    """
    named = path is not None or bool(os.environ.get(PROFILES_ENV))
    where = Path(path).expanduser() if path is not None else default_profiles_path()
    from_file = _read_file(where, required=named)
    with _lock:
        registered = dict(_registered)
    clashes = sorted(set(from_file) & set(registered))
    if clashes:
        raise _error(str(where), clashes[0], "defined both in the file and by "
                     "register_profile; rename one of them")
    return {**registered, **from_file}


def get_profile(name: str) -> Profile:
    """Profile ``name``, with its ``${VAR}`` values taken from the environment."""
    profiles = load_profiles()
    if not isinstance(name, str) or name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise StorageValidationError(
            f"no storage profile named {name!r} (in {default_profiles_path()} or registered "
            f"in code); known profiles: {known}", operation="profile")
    return profiles[name].resolved()


def open_profile(name: str) -> StorageAdapter:
    """The adapter of profile ``name``, shared within the process.

    The same adapter is returned while the profile's resolved backend, config and
    credentials stay the same; an edit of the file or of a variable builds a new
    one on the next call. Construction never touches the network.
    """
    profile = get_profile(name)
    with _lock:
        cached = _adapters.get(profile.name)
        if cached is not None and cached[0] == profile:
            return cached[1]
    adapter = profile.open()
    with _lock:
        _adapters[profile.name] = (profile, adapter)
    return adapter


# -- reading and checking ------------------------------------------------------------


def _error(source: str, profile: str, message: str) -> StorageValidationError:
    return StorageValidationError(f"{source}: profile {profile!r}: {message}",
                                  operation="profile")


def _frozen(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(copy.deepcopy(dict(values)))


def _read_file(path: Path, required: bool) -> dict[str, Profile]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        if required:
            raise StorageValidationError(f"profiles file {str(path)!r} does not exist",
                                         operation="profile") from None
        return {}
    except OSError as exc:
        raise StorageValidationError(f"profiles file {str(path)!r}: {exc.strerror}",
                                     operation="profile") from None
    stamp = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
    with _lock:
        cached = _file_cache.get(str(path))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        # The parser's message carries the line and column; it never quotes values.
        raise StorageValidationError(f"{path}: invalid TOML: {exc}",
                                     operation="profile") from None
    except OSError as exc:
        raise StorageValidationError(f"profiles file {str(path)!r}: {exc.strerror}",
                                     operation="profile") from None
    profiles = {}
    for name, table in document.items():
        if not isinstance(table, dict):
            raise _error(str(path), name, "must be a table ([name] with backend, config, "
                         f"credentials), not a {type(table).__name__}")
        profiles[name] = _checked(str(path), name, table)
    with _lock:
        _file_cache[str(path)] = (stamp, profiles)
    return profiles


def _checked(source: str, name: Any, table: Mapping[str, Any]) -> Profile:
    """A Profile from one table, after checking its shape, backend and field names and
    types against the backend's schemas (values are never echoed)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise StorageValidationError(
            f"{source}: profile name {name!r} must start with a letter or digit and hold "
            "only letters, digits, '.', '_' and '-'", operation="profile")
    unknown = sorted(set(table) - _FIELDS)
    if unknown:
        raise _error(source, name, f"unknown field(s) {', '.join(map(repr, unknown))}; "
                     "a profile has backend, config and credentials")
    backend = table.get("backend")
    if not isinstance(backend, str) or not backend.strip():
        raise _error(source, name, "field 'backend' must be a non-empty string")
    parts = {}
    for what in ("config", "credentials"):
        value = table.get(what, {})
        if not isinstance(value, Mapping):
            raise _error(source, name, f"field {what!r} must be a table, "
                         f"not {type(value).__name__}")
        parts[what] = value
    from .registry import _adapter_class

    try:
        cls = _adapter_class(backend)
    except StorageAdapterError as exc:
        raise _error(source, name, f"field 'backend': {exc.message}") from None
    for what, value in parts.items():
        schema = getattr(cls, f"{what}_schema", None)
        if schema is None:
            continue
        try:
            validate_options(value, schema, cls.backend_name, what)
        except StorageError as exc:
            raise _error(source, name, exc.message) from None
        _expand(value, source, name, what, resolve=False)  # placeholder syntax, early
    return Profile(name, backend.strip().lower(), _frozen(parts["config"]),
                   _frozen(parts["credentials"]), source)


def _expand(values: Mapping[str, Any], source: str, name: str, what: str,
            resolve: bool = True) -> dict[str, Any]:
    """``values`` with each ``${VAR}`` in a string replaced from the environment;
    with ``resolve=False`` only the placeholders' syntax is checked."""
    result = {}
    for key, value in values.items():
        if isinstance(value, str) and "${" in value:
            value = _substitute(value, source, name, f"{what}.{key}", resolve)
        result[key] = value
    return result


def _substitute(text: str, source: str, name: str, field_name: str, resolve: bool) -> str:
    def value_of(match: re.Match[str]) -> str:
        variable = match.group(1)
        if not _VARIABLE_NAME.match(variable):
            raise _error(source, name, f"field {field_name!r}: ${{{variable}}} is not a "
                         "valid environment variable name")
        found = os.environ.get(variable)
        if found is None and resolve:
            raise _error(source, name, f"field {field_name!r} needs environment variable "
                         f"{variable}, which is not set")
        return found or ""

    replaced = _VARIABLE.sub(value_of, text)
    if not resolve and "${" in replaced:
        raise _error(source, name, f"field {field_name!r}: '${{' without a closing '}}'")
    return replaced
