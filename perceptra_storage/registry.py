"""Backend names to adapter classes: built-ins, registered classes, entry points.

Built-in backends are dotted paths imported on first use, so importing this
package never imports an SDK.  Third-party packages add backends through the
``perceptra_storage.backends`` entry-point group (``name = "module:Class"``);
code adds them at run time with :func:`register_adapter`.  Names are
case-insensitive.
"""

from __future__ import annotations

import importlib
import itertools
import threading
import typing
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, Optional, overload

from .base import BaseStorageAdapter, StorageAdapter
from .errors import StorageAdapterError, StorageConfigError, StorageValidationError

if TYPE_CHECKING:
    from .backends.azure import AzureStorageAdapter
    from .backends.local import LocalStorageAdapter
    from .backends.memory import MemoryStorageAdapter
    from .backends.minio import MinIOStorageAdapter
    from .backends.s3 import S3StorageAdapter

__all__ = [
    "ENTRY_POINT_GROUP",
    "get_adapter_info",
    "get_storage_adapter",
    "list_available_backends",
    "register_adapter",
]

ENTRY_POINT_GROUP = "perceptra_storage.backends"

_BUILTIN = {
    "local": "perceptra_storage.backends.local:LocalStorageAdapter",
    "memory": "perceptra_storage.backends.memory:MemoryStorageAdapter",
    "s3": "perceptra_storage.backends.s3:S3StorageAdapter",
    "minio": "perceptra_storage.backends.minio:MinIOStorageAdapter",
    "azure": "perceptra_storage.backends.azure:AzureStorageAdapter",
}

_registered: dict[str, type[BaseStorageAdapter]] = {}
_lock = threading.Lock()


def _normalise(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise StorageConfigError(f"backend name must be a non-empty str, not {name!r}")
    return name.strip().lower()


def _entry_points() -> dict[str, str]:
    return {ep.name.lower(): ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _known() -> dict[str, str]:
    """Every name that can be asked for, mapped to where its class lives."""
    known = {**_entry_points(), **_BUILTIN}
    known.update({name: f"{cls.__module__}:{cls.__qualname__}"
                  for name, cls in _registered.items()})
    return known


def _load(target: str, name: str) -> type[BaseStorageAdapter]:
    module_name, _, attribute = target.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise StorageAdapterError(f"backend {name!r}: cannot load {target}: {exc}",
                                  backend=name) from exc
    if not (isinstance(value, type) and issubclass(value, BaseStorageAdapter)):
        raise StorageAdapterError(f"backend {name!r}: {target} is not a BaseStorageAdapter "
                                  "subclass", backend=name)
    return value


def _adapter_class(backend: Any) -> type[BaseStorageAdapter]:
    name = _normalise(backend)
    with _lock:
        registered = _registered.get(name)
    if registered is not None:
        return registered
    target = _BUILTIN.get(name) or _entry_points().get(name)
    if target is None:
        available = ", ".join(sorted(_known()))
        # "Unknown storage backend" is 0.1's wording, which callers may match on.
        raise StorageConfigError(f"Unknown storage backend {backend!r}; available "
                                 f"backends: {available}", backend=name)
    return _load(target, name)


def register_adapter(name: str, adapter_class: type[BaseStorageAdapter]) -> None:
    """Make ``adapter_class`` available as backend ``name`` (replacing any previous one)."""
    key = _normalise(name)
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, BaseStorageAdapter)):
        raise StorageConfigError(
            f"cannot register {adapter_class!r} as backend {key!r}: an adapter class must "
            "inherit from BaseStorageAdapter", backend=key)
    with _lock:
        _registered[key] = adapter_class


# Each built-in name is typed as its own adapter class; any other str (a name read
# from config, a registered or entry-point backend) as the API all of them share.
@overload
def get_storage_adapter(backend: Literal["s3"], config: Optional[Mapping[str, Any]] = None,
                        credentials: Optional[Mapping[str, Any]] = None) -> S3StorageAdapter: ...


@overload
def get_storage_adapter(backend: Literal["minio"], config: Optional[Mapping[str, Any]] = None,
                        credentials: Optional[Mapping[str, Any]] = None
                        ) -> MinIOStorageAdapter: ...


@overload
def get_storage_adapter(backend: Literal["azure"], config: Optional[Mapping[str, Any]] = None,
                        credentials: Optional[Mapping[str, Any]] = None
                        ) -> AzureStorageAdapter: ...


@overload
def get_storage_adapter(backend: Literal["local"], config: Optional[Mapping[str, Any]] = None,
                        credentials: Optional[Mapping[str, Any]] = None
                        ) -> LocalStorageAdapter: ...


@overload
def get_storage_adapter(backend: Literal["memory"], config: Optional[Mapping[str, Any]] = None,
                        credentials: Optional[Mapping[str, Any]] = None
                        ) -> MemoryStorageAdapter: ...


@overload
def get_storage_adapter(backend: str, config: Optional[Mapping[str, Any]] = None,
                        credentials: Optional[Mapping[str, Any]] = None) -> StorageAdapter: ...


@overload
def get_storage_adapter(*, profile: str) -> StorageAdapter: ...


def get_storage_adapter(
    backend: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    credentials: Optional[Mapping[str, Any]] = None,
    *,
    profile: Optional[str] = None,
) -> StorageAdapter:
    """Build the adapter for ``backend`` from a ``config`` and optional ``credentials``,
    or a new adapter for the named ``profile`` (see :mod:`perceptra_storage.profiles`).

    Never touches the network; bad config raises StorageConfigError naming the
    field (a StorageValidationError, and the StorageAdapterError that 0.1 raised
    here), a missing extra raises StorageAdapterError naming the pip command. Typed
    as :class:`StorageAdapter`: the built-in adapters implement all of it; an adapter
    built only on :class:`BaseStorageAdapter`'s eight methods has the rest from the
    base, without ``progress=``/``checksum=`` (passing them raises TypeError).
    """
    if profile is not None:
        if backend is not None or config is not None or credentials is not None:
            raise StorageValidationError(
                f"give either profile={profile!r} or backend/config/credentials, not both")
        from .profiles import get_profile

        return get_profile(profile).open()
    if backend is None:
        raise StorageValidationError("get_storage_adapter needs a backend name or a profile")
    adapter_class = _adapter_class(backend)
    try:
        return typing.cast(StorageAdapter, adapter_class(config, credentials))
    except StorageValidationError as exc:
        if isinstance(exc, StorageAdapterError):
            raise
        raise StorageConfigError(exc.message, backend=exc.backend, operation=exc.operation,
                                 key=exc.key) from exc


def _installed(cls: type[BaseStorageAdapter]) -> bool:
    missing = getattr(cls, "missing_modules", None)
    return not missing() if callable(missing) else True


def list_available_backends() -> list[str]:
    """Names of the backends whose dependencies are installed, sorted."""
    names = []
    for name in _known():
        try:
            cls = _adapter_class(name)
        except StorageAdapterError:
            continue
        if _installed(cls):
            names.append(name)
    return sorted(names)


def get_adapter_info(backend: str) -> dict[str, Any]:
    """What a backend is and which config and credential fields it takes.

    ``backend``, ``class_name``, ``module`` and ``docstring`` are the keys 0.1 returned;
    ``name``, ``class``, ``extra``, ``installed``, ``config``, ``credentials`` and
    ``description`` are ours.
    """
    from .validation import schema_fields

    cls = _adapter_class(backend)

    def describe(schema: Optional[type]) -> dict[str, dict[str, Any]]:
        if schema is None:
            return {}
        return {field: {"type": _type_text(hint), "required": required,
                        "doc": _field_doc(schema, field)}
                for field, (hint, required) in schema_fields(schema).items()}

    name = _normalise(backend)
    return {
        "backend": name,
        "class_name": cls.__name__,
        "module": cls.__module__,
        "docstring": cls.__doc__,
        "name": name,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "extra": getattr(cls, "extra", None),
        "installed": _installed(cls),
        "config": describe(getattr(cls, "config_schema", None)),
        "credentials": describe(getattr(cls, "credentials_schema", None)),
        "description": (cls.__doc__ or "").strip().split("\n")[0],
    }


def _type_text(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _field_doc(schema: type, field: str) -> str:
    """The one-line docstring written under a TypedDict field, read from its source,
    or from the source of the TypedDict it inherits the field from (a TypedDict keeps
    no record of its bases, so they are looked up by name in its module)."""
    import ast
    import inspect
    import sys
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(schema)))
    except (OSError, TypeError, SyntaxError):
        return ""
    if not tree.body or not isinstance(tree.body[0], ast.ClassDef):
        return ""
    body = tree.body[0].body
    for statement, following in itertools.pairwise(body):
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) \
                and statement.target.id == field and isinstance(following, ast.Expr) \
                and isinstance(following.value, ast.Constant):
            return " ".join(str(following.value.value).split())
    namespace = vars(sys.modules.get(schema.__module__, object))
    for base in tree.body[0].bases:
        parent = namespace.get(base.id) if isinstance(base, ast.Name) else None
        if isinstance(parent, type) and parent is not schema and \
                field in getattr(parent, "__annotations__", {}):
            return _field_doc(parent, field)
    return ""
