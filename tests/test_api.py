"""The public surface: names, the 0.1 compatibility imports, the registry, core-only installs."""

from __future__ import annotations

import inspect
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import perceptra_storage
import perceptra_storage.base as base_module
from perceptra_storage import (
    BaseStorageAdapter,
    PresignedUrl,
    StorageAdapterError,
    StorageConnectionError,
    StorageError,
    StorageNotFoundError,
    StorageObject,
    StorageOperationError,
    StoragePermissionError,
    StorageTimeoutError,
    StorageValidationError,
    get_adapter_info,
    get_storage_adapter,
    list_available_backends,
    register_adapter,
)

PROMISED = {
    "get_storage_adapter", "register_adapter", "BaseStorageAdapter", "StorageError",
    "StorageConnectionError", "StorageOperationError", "StorageNotFoundError",
    "StoragePermissionError", "StorageObject", "PresignedUrl", "StorageAdapterError",
    "StorageValidationError", "list_available_backends", "get_adapter_info",
    "LocalStorageAdapter", "MemoryStorageAdapter", "__version__",
}


def test_all_is_complete_and_exact() -> None:
    # dir(), not vars(): the S3, MinIO and Azure classes load on first access.
    public = {name for name in dir(perceptra_storage) if not name.startswith("_")
              and not inspect.ismodule(getattr(perceptra_storage, name))}
    assert set(perceptra_storage.__all__) == public | {"__version__"}
    assert set(perceptra_storage.__all__) >= PROMISED
    assert len(perceptra_storage.__all__) == len(set(perceptra_storage.__all__))


def test_version_matches_package_metadata() -> None:
    from importlib.metadata import version

    assert perceptra_storage.__version__ == version("perceptra-storage")


def test_py_typed_is_shipped() -> None:
    assert (Path(perceptra_storage.__file__).parent / "py.typed").exists()


def test_seed_imports_from_base_still_work() -> None:
    for name in ("BaseStorageAdapter", "StorageObject", "PresignedUrl", "StorageError",
                 "StorageConnectionError", "StorageOperationError", "StorageNotFoundError",
                 "StoragePermissionError"):
        assert getattr(base_module, name) is getattr(perceptra_storage, name)


@pytest.mark.parametrize("cls, builtin", [
    (StorageNotFoundError, FileNotFoundError), (StoragePermissionError, PermissionError),
    (StorageConnectionError, ConnectionError), (StorageTimeoutError, TimeoutError),
    (StorageValidationError, ValueError),
])
def test_exceptions_inherit_the_builtin_they_mean(cls: type[StorageError],
                                                  builtin: type[Exception]) -> None:
    assert issubclass(cls, builtin) and issubclass(cls, StorageError)


def test_exceptions_are_simple_to_raise_and_pickle() -> None:
    error = StorageNotFoundError("File not found")
    assert str(error) == "File not found" and error.backend is None
    assert isinstance(error, StorageOperationError)
    rich = StoragePermissionError("denied", backend="s3", operation="upload", key="k")
    clone = pickle.loads(pickle.dumps(rich))
    # The message is built from the fields: raisers give only the reason.
    assert (str(clone), clone.reason, clone.backend, clone.operation, clone.key) == \
        ("s3: upload 'k': denied", "denied", "s3", "upload", "k")


def test_backend_names_are_case_insensitive(tmp_path: Path) -> None:
    adapter = get_storage_adapter("  LoCaL ", {"base_path": str(tmp_path)})
    assert adapter.backend_name == "local"


def test_unknown_backend_lists_the_available_ones() -> None:
    with pytest.raises(StorageAdapterError) as info:
        get_storage_adapter("dropbox", {})
    for name in ("local", "memory", "s3", "minio", "azure"):
        assert name in str(info.value)


class _Minimal(BaseStorageAdapter):
    """Implements only what the 0.1 contract requires."""

    def _validate_config(self) -> None:
        if "root" not in self.config:
            raise StorageValidationError("config field 'root' is required")
        self.store: dict[str, bytes] = {}

    def test_connection(self, timeout: float = 10) -> bool:
        return True

    def upload_file(self, file_obj: Any, key: str, content_type: Any = None,
                    metadata: Any = None) -> str:
        self.store[key] = file_obj if isinstance(file_obj, bytes) else file_obj.read()
        return key

    def download_file(self, key: str, destination: Any = None) -> bytes:
        if key not in self.store:
            raise StorageNotFoundError("File not found")
        return self.store[key]

    def delete_file(self, key: str) -> bool:
        return self.store.pop(key, None) is not None

    def file_exists(self, key: str) -> bool:
        return key in self.store

    def get_file_metadata(self, key: str) -> StorageObject:
        raise NotImplementedError

    def list_files(self, prefix: str = "", max_results: int = 1000) -> list[StorageObject]:
        return []

    def generate_presigned_url(self, key: str, expiration: int = 3600,
                               method: str = "GET") -> PresignedUrl:
        raise NotImplementedError


def test_register_custom_adapter_and_use_base_defaults() -> None:
    register_adapter("Minimal-Test", _Minimal)
    config = {"root": "x"}
    adapter = get_storage_adapter("minimal-test", config)
    adapter.config["root"] = "changed"
    assert config == {"root": "x"}
    with adapter.open("k", "wb") as f:
        f.write(b"written through the base class")
    with adapter.open("k") as f:
        assert f.read() == b"written through the base class"
    with pytest.raises(RuntimeError), adapter.open("k", "wb") as f:
        f.write(b"lost")
        raise RuntimeError
    assert adapter.download_file("k") == b"written through the base class"
    with pytest.raises(StorageValidationError, match="root"):
        get_storage_adapter("minimal-test", {})


@pytest.mark.parametrize("bad", [dict, object, "perceptra_storage.LocalStorageAdapter", None])
def test_register_refuses_non_adapters(bad: Any) -> None:
    with pytest.raises(StorageAdapterError, match="BaseStorageAdapter"):
        register_adapter("bad", bad)


def test_entry_point_backends_are_discovered(tmp_path: Path) -> None:
    dist = tmp_path / "thirdparty_backend-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-backend\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[perceptra_storage.backends]\nthirdparty = thirdparty_mod:ThirdParty\n")
    (tmp_path / "thirdparty_mod.py").write_text(textwrap.dedent("""
        from perceptra_storage import MemoryStorageAdapter

        class ThirdParty(MemoryStorageAdapter):
            backend_name = "thirdparty"
    """))
    code = ("from perceptra_storage import get_storage_adapter, list_available_backends\n"
            "a = get_storage_adapter('ThirdParty', {})\n"
            "a.upload_file(b'x', 'k')\n"
            "print(type(a).__name__, a.download_file('k'), "
            "'thirdparty' in list_available_backends())")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "ThirdParty b'x' True"


def test_adapter_info_describes_fields() -> None:
    info = get_adapter_info("LOCAL")
    assert info["name"] == "local" and info["installed"] is True
    assert info["config"]["base_path"]["required"] is True
    assert info["config"]["create_dirs"] == {"type": "bool", "required": False,
                                             "doc": info["config"]["create_dirs"]["doc"]}
    assert "create" in info["config"]["create_dirs"]["doc"].lower()
    assert info["credentials"] == {}
    assert {"local", "memory"} <= set(list_available_backends())


@pytest.mark.parametrize("config, field", [
    ({}, "base_path"),
    ({"base_path": 5}, "base_path"),
    ({"base_path": "/tmp/x", "base": "/tmp"}, "base"),
    ({"base_path": "/tmp/x", "create_dirs": "yes"}, "create_dirs"),
    ({"base_path": ""}, "base_path"),
])
def test_bad_config_names_the_field_and_backend(config: dict[str, Any], field: str) -> None:
    with pytest.raises(StorageValidationError) as info:
        get_storage_adapter("local", config)
    assert field in str(info.value) and "local" in str(info.value)


def test_unknown_config_key_lists_valid_ones() -> None:
    with pytest.raises(StorageValidationError) as info:
        get_storage_adapter("local", {"base_pth": "/tmp/x"})
    assert "base_pth" in str(info.value)
    assert "base_path, base_url, create_dirs, fsync, metadata_store, prefix, signing_key" in \
        str(info.value)


def test_credentials_refused_where_none_are_taken(tmp_path: Path) -> None:
    with pytest.raises(StorageValidationError, match="credentials") as info:
        get_storage_adapter("local", {"base_path": str(tmp_path)}, {"password": "hunter22"})
    assert "hunter22" not in str(info.value)


def test_construction_never_mutates_callers_dicts(tmp_path: Path) -> None:
    config = {"base_path": str(tmp_path), "prefix": "/t/"}
    snapshot = dict(config)
    adapter = get_storage_adapter("local", config)
    adapter.upload_file(b"x", "k")
    assert config == snapshot


def test_core_only_install_imports_and_names_the_missing_extra(tmp_path: Path) -> None:
    """Only fsspec and this package on the path: no s3fs, adlfs, botocore or azure."""
    import fsspec

    site = tmp_path / "site"
    site.mkdir()
    (site / "fsspec").symlink_to(Path(fsspec.__file__).parent)
    (site / "perceptra_storage").symlink_to(Path(perceptra_storage.__file__).parent)
    code = textwrap.dedent("""
        import sys
        sys.path[:] = [p for p in sys.path if 'site-packages' not in p and 'dist-packages' not in p]
        sys.path.insert(0, sys.argv[1])
        import perceptra_storage as ps
        for name in ('s3fs', 'adlfs', 'botocore', 'azure'):
            assert name not in sys.modules
            try:
                __import__(name)
            except ImportError:
                pass
            else:
                raise SystemExit(name + ' is importable: not a core-only environment')
        a = ps.get_storage_adapter('local', {'base_path': sys.argv[2]})
        a.upload_file(b'core', 'k')
        assert a.download_file('k') == b'core'
        print(sorted(ps.list_available_backends()))
        print(ps.get_adapter_info('s3')['installed'])
        for backend in ('s3', 'minio', 'azure'):
            try:
                ps.get_storage_adapter(backend, {'bucket_name': 'b'})
            except ps.StorageAdapterError as e:
                print(e)
    """)
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(site),
                             str(tmp_path / "data")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "['local', 'memory']"
    assert lines[1] == "False"
    assert "pip install 'perceptra-storage[s3]'" in lines[2]
    assert "pip install 'perceptra-storage[minio]'" in lines[3]
    assert "pip install 'perceptra-storage[azure]'" in lines[4]


@pytest.mark.parametrize("backend, field", [
    ("local", "base_path"), ("s3", "bucket_name"), ("minio", "bucket_name"),
    ("azure", "container_name"),
])
def test_every_builtin_backend_enforces_its_required_fields(backend: str, field: str) -> None:
    assert get_adapter_info(backend)["config"][field]["required"] is True
    with pytest.raises(StorageValidationError) as info:
        get_storage_adapter(backend, {})
    assert f"'{field}' is required" in str(info.value) and backend in str(info.value)


NETWORK_CONFIGS = {
    "s3": {"bucket_name": "my-bucket"},
    "minio": {"bucket_name": "my-bucket", "endpoint_url": "localhost:9000"},
    "azure": {"container_name": "box", "account_name": "acct"},
}


@pytest.mark.parametrize("backend", sorted(NETWORK_CONFIGS))
@pytest.mark.parametrize("field, value", [
    ("connect_timeout", 0), ("read_timeout", -1), ("operation_timeout", 0),
    ("retry_backoff", -0.5), ("max_attempts", 0), ("max_attempts", 21),
    ("read_timeout", "10"), ("max_attempts", 2.5),
])
def test_timeouts_and_retries_are_checked_config(backend: str, field: str, value: Any) -> None:
    config = {**NETWORK_CONFIGS[backend], field: value}
    with pytest.raises(StorageValidationError) as info:
        get_storage_adapter(backend, config)
    assert field in str(info.value) and backend in str(info.value)


@pytest.mark.parametrize("backend", sorted(NETWORK_CONFIGS))
def test_resilience_defaults_report_a_dead_endpoint_in_seconds(backend: str) -> None:
    adapter: Any = get_storage_adapter(backend, NETWORK_CONFIGS[backend])
    policy = adapter.resilience
    assert (policy.connect_timeout, policy.read_timeout, policy.max_attempts) == (5, 10, 3)
    assert policy.operation_timeout is None
    assert get_adapter_info(backend)["config"]["max_attempts"]["required"] is False
    tuned: Any = get_storage_adapter(backend, {**NETWORK_CONFIGS[backend], "max_attempts": 1,
                                               "read_timeout": 2.5})
    assert (tuned.resilience.max_attempts, tuned.resilience.read_timeout) == (1, 2.5)
    # Back-off doubles per attempt and is jittered over the upper half of each step.
    delays = [policy.delay(attempt) for attempt in (1, 2, 3) for _ in range(50)]
    assert all(0.25 <= d <= 0.5 for d in delays[:50]) and all(1 <= d <= 2 for d in delays[100:])
    assert len(set(delays)) > 100
