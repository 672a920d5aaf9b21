"""One API for files in S3, Azure Blob Storage, MinIO/S3-compatible stores and local disk.

The S3, MinIO and Azure adapter classes are importable from here, as in 0.1, but
load on first access (module ``__getattr__``): importing this package never
imports boto, s3fs or adlfs, and a core-only install can still import the names
(building such an adapter then names the missing extra).
"""

import importlib
import logging
import typing

from .aio import AsyncFile, AsyncStorage
from .backends.local import LocalStorageAdapter
from .backends.memory import MemoryStorageAdapter
from .base import (
    BaseStorageAdapter,
    CorsRule,
    PresignedPost,
    PresignedUrl,
    StorageAdapter,
    StorageObject,
)
from .errors import (
    StorageAdapterError,
    StorageConfigError,
    StorageConnectionError,
    StorageError,
    StorageNotFoundError,
    StorageOperationError,
    StoragePermissionError,
    StorageTimeoutError,
    StorageValidationError,
)
from .profiles import Profile, get_profile, load_profiles, open_profile, register_profile
from .registry import (
    get_adapter_info,
    get_storage_adapter,
    list_available_backends,
    register_adapter,
)
from .transfer import BatchResult

if typing.TYPE_CHECKING:
    from .backends.azure import AzureStorageAdapter
    from .backends.minio import MinIOStorageAdapter
    from .backends.s3 import S3StorageAdapter

__version__ = "0.2.0"

_LAZY = {
    "AzureStorageAdapter": ".backends.azure",
    "MinIOStorageAdapter": ".backends.minio",
    "S3StorageAdapter": ".backends.s3",
}
"""Adapter classes loaded on first access, by the module that defines them."""

__all__ = [
    "AsyncFile",
    "AsyncStorage",
    "AzureStorageAdapter",
    "BaseStorageAdapter",
    "BatchResult",
    "CorsRule",
    "LocalStorageAdapter",
    "MemoryStorageAdapter",
    "MinIOStorageAdapter",
    "PresignedPost",
    "PresignedUrl",
    "Profile",
    "S3StorageAdapter",
    "StorageAdapter",
    "StorageAdapterError",
    "StorageConfigError",
    "StorageConnectionError",
    "StorageError",
    "StorageNotFoundError",
    "StorageObject",
    "StorageOperationError",
    "StoragePermissionError",
    "StorageTimeoutError",
    "StorageValidationError",
    "__version__",
    "get_adapter_info",
    "get_profile",
    "get_storage_adapter",
    "list_available_backends",
    "load_profiles",
    "open_profile",
    "register_adapter",
    "register_profile",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> typing.Any:
    """Load a lazily exported adapter class, and keep it for the next access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
