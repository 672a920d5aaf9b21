"""One API for files in S3, Azure Blob Storage, MinIO/S3-compatible stores and local disk."""

import logging

from .backends.local import LocalStorageAdapter
from .backends.memory import MemoryStorageAdapter
from .base import BaseStorageAdapter, PresignedUrl, StorageAdapter, StorageObject
from .errors import (
    StorageAdapterError,
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

__version__ = "0.2.0"

__all__ = [
    "BaseStorageAdapter",
    "BatchResult",
    "LocalStorageAdapter",
    "MemoryStorageAdapter",
    "PresignedUrl",
    "Profile",
    "StorageAdapter",
    "StorageAdapterError",
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
