"""Code and data from perceptra-storage 0.1.4 keep working after the upgrade.

Each test states one thing a 0.1.4 user relied on (issue 13), checked against this
package; the deliberate differences are pinned at the end, so changing one is a
decision and not an accident. The 0.1.4 on-disk layout is written here by hand,
byte for byte as that version's local adapter wrote it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import perceptra_storage
from perceptra_storage import (
    LocalStorageAdapter,
    StorageAdapterError,
    StorageConnectionError,
    StorageNotFoundError,
    StorageValidationError,
    get_adapter_info,
    get_storage_adapter,
    register_adapter,
)

SDK_MODULES = ("boto3", "botocore", "aiobotocore", "s3fs", "adlfs", "azure")
OLD_CLASSES = ("S3StorageAdapter", "AzureStorageAdapter", "MinIOStorageAdapter",
               "LocalStorageAdapter")
STORES = ("auto", "xattr", "portable")
REPO = Path(__file__).resolve().parent.parent


# --- imports -----------------------------------------------------------------------------


def test_old_adapter_class_imports_work_without_importing_an_sdk() -> None:
    code = textwrap.dedent(f"""
        import sys
        import perceptra_storage
        loaded = [m for m in {SDK_MODULES!r} if m in sys.modules]
        assert not loaded, loaded
        from perceptra_storage import (S3StorageAdapter, AzureStorageAdapter,
                                       MinIOStorageAdapter, LocalStorageAdapter)
        from perceptra_storage import *
        assert S3StorageAdapter.backend_name == 's3'
        assert MinIOStorageAdapter.backend_name == 'minio'
        assert AzureStorageAdapter.backend_name == 'azure'
        loaded = [m for m in {SDK_MODULES!r} if m in sys.modules]
        assert not loaded, loaded
        print('ok')
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_old_adapter_class_imports_work_on_a_core_only_install(tmp_path: Path) -> None:
    """Only fsspec and this package importable: the names still import, and building
    one of those adapters names the missing extra."""
    import fsspec

    site = tmp_path / "site"
    site.mkdir()
    (site / "fsspec").symlink_to(Path(fsspec.__file__).parent)
    (site / "perceptra_storage").symlink_to(Path(perceptra_storage.__file__).parent)
    code = textwrap.dedent("""
        import sys
        sys.path[:] = [p for p in sys.path if 'site-packages' not in p]
        sys.path.insert(0, sys.argv[1])
        from perceptra_storage import (S3StorageAdapter, AzureStorageAdapter,
                                       MinIOStorageAdapter, LocalStorageAdapter,
                                       StorageAdapterError)
        try:
            S3StorageAdapter({'bucket_name': 'b'})
        except StorageAdapterError as exc:
            print(exc)
    """)
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(site)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pip install 'perceptra-storage[s3]'" in result.stdout


def test_old_adapter_classes_are_the_ones_the_factory_builds(tmp_path: Path) -> None:
    configs = {"local": {"base_path": str(tmp_path / "store")}, "s3": {"bucket_name": "bucket"},
               "minio": {"bucket_name": "bucket", "endpoint_url": "localhost:9000"},
               "azure": {"container_name": "box", "account_name": "acct"}}
    for name in OLD_CLASSES:
        assert name in perceptra_storage.__all__ and name in dir(perceptra_storage)
        cls = getattr(perceptra_storage, name)
        assert type(get_storage_adapter(cls.backend_name, configs[cls.backend_name])) is cls
    with pytest.raises(AttributeError, match="NoSuchAdapter"):
        perceptra_storage.NoSuchAdapter  # noqa: B018 - the lookup is the test


# --- registry ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["s3", "minio", "azure", "local", "memory"])
def test_adapter_info_has_the_old_keys_beside_ours(backend: str) -> None:
    info = get_adapter_info(backend.upper())
    cls = type(get_storage_adapter("memory")) if backend == "memory" else \
        getattr(perceptra_storage, {"s3": "S3StorageAdapter", "minio": "MinIOStorageAdapter",
                                    "azure": "AzureStorageAdapter",
                                    "local": "LocalStorageAdapter"}[backend])
    assert info["backend"] == backend
    assert info["class_name"] == cls.__name__
    assert info["module"] == cls.__module__
    assert info["docstring"] == cls.__doc__ and info["docstring"]
    assert {"name", "class", "extra", "installed", "config", "credentials"} <= set(info)


def test_unknown_backend_says_so_in_the_old_words() -> None:
    for call in (lambda: get_storage_adapter("dropbox", {}),
                 lambda: get_adapter_info("dropbox")):
        with pytest.raises(StorageAdapterError) as info:
            call()
        message = str(info.value)
        assert "Unknown storage backend" in message and "dropbox" in message
        assert "local" in message and "s3" in message  # the available ones are listed


@pytest.mark.parametrize("bad", [dict, object, 42])
def test_registering_a_non_adapter_is_a_value_error(bad: Any) -> None:
    with pytest.raises(ValueError, match="must inherit from BaseStorageAdapter") as info:
        register_adapter("not-an-adapter", bad)
    assert isinstance(info.value, StorageAdapterError)


@pytest.mark.parametrize("backend", ["s3", "minio", "azure", "local"])
def test_missing_required_config_is_caught_by_old_and_new_handlers(backend: str) -> None:
    with pytest.raises(StorageAdapterError) as info:
        get_storage_adapter(backend, {})
    assert isinstance(info.value, StorageValidationError)
    assert isinstance(info.value, ValueError)
    assert "is required" in str(info.value) and backend in str(info.value)


# --- local backend at construction --------------------------------------------------------------


def test_local_creates_base_path_when_built(tmp_path: Path) -> None:
    base = tmp_path / "a" / "b" / "store"
    LocalStorageAdapter({"base_path": str(base)})
    assert base.is_dir()


def test_local_refuses_a_missing_base_path_when_told_not_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(StorageConnectionError, match="does not exist"):
        LocalStorageAdapter({"base_path": str(tmp_path / "absent"), "create_dirs": False})
    assert not (tmp_path / "absent").exists()
    (tmp_path / "present").mkdir()
    LocalStorageAdapter({"base_path": str(tmp_path / "present"), "create_dirs": False})


@pytest.mark.parametrize("create_dirs", [True, False])
def test_local_refuses_a_base_path_that_is_a_file(tmp_path: Path, create_dirs: bool) -> None:
    (tmp_path / "file").write_bytes(b"not a directory")
    with pytest.raises(StorageConnectionError, match="file"):
        LocalStorageAdapter({"base_path": str(tmp_path / "file"), "create_dirs": create_dirs})
    assert (tmp_path / "file").read_bytes() == b"not a directory"


def test_local_key_checks_do_not_recreate_a_removed_base_path(tmp_path: Path) -> None:
    adapter = LocalStorageAdapter({"base_path": str(tmp_path / "store")})
    (tmp_path / "store").rmdir()
    assert adapter.file_exists("k") is False
    with pytest.raises(StorageNotFoundError):
        adapter.download_file("k")
    assert not (tmp_path / "store").exists()


def test_local_urls_of_missing_keys(tmp_path: Path) -> None:
    adapter = LocalStorageAdapter({"base_path": str(tmp_path)})
    with pytest.raises(StorageNotFoundError):
        adapter.generate_presigned_url("missing.txt")
    assert adapter.get_public_url("missing.txt") is None
    adapter.upload_file(b"here", "present.txt")
    assert adapter.get_public_url("present.txt") == (tmp_path / "present.txt").as_uri()
    assert adapter.generate_presigned_url("present.txt").url == \
        (tmp_path / "present.txt").as_uri()


# --- directories written by 0.1.4 -----------------------------------------------------------


def write_like_0_1(base: Path, key: str, data: bytes, content_type: str | None = None,
                   metadata: dict[str, str] | None = None) -> None:
    """What 0.1.4's LocalStorageAdapter.upload_file left on disk: the file, and when a
    content type or metadata was given, ``<file>.meta`` holding the metadata dict
    with ``content_type`` added to it."""
    path = base / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if metadata or content_type:
        sidecar = dict(metadata or {})
        if content_type:
            sidecar["content_type"] = content_type
        path.with_suffix(path.suffix + ".meta").write_text(json.dumps(sidecar))


@pytest.fixture(params=STORES)
def old_dir(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, LocalStorageAdapter]:
    base = tmp_path / "old"
    write_like_0_1(base, "reports/q1.csv", b"a,b\n", "text/csv", {"owner": "ana"})
    write_like_0_1(base, "reports/raw.bin", b"\x00\x01", metadata={"source": "cam-1"})
    write_like_0_1(base, "reports/plain.txt", b"no sidecar")
    (base / "reports" / "notes.meta").write_bytes(b"a user's file named .meta")
    (base / "reports" / "plain.txt.meta").write_bytes(b"\x89 not json")
    adapter = LocalStorageAdapter({"base_path": str(base), "metadata_store": request.param})
    return base, adapter


def test_old_sidecars_supply_content_type_and_metadata(
        old_dir: tuple[Path, LocalStorageAdapter]) -> None:
    _, adapter = old_dir
    q1 = adapter.get_file_metadata("reports/q1.csv")
    assert (q1.content_type, q1.metadata, q1.size) == ("text/csv", {"owner": "ana"}, 4)
    raw = adapter.get_file_metadata("reports/raw.bin")
    assert (raw.content_type, raw.metadata) == ("application/octet-stream",
                                               {"source": "cam-1"})
    plain = adapter.get_file_metadata("reports/plain.txt")
    assert (plain.content_type, plain.metadata) == ("text/plain", {})
    assert adapter.download_file("reports/q1.csv") == b"a,b\n"


def test_old_sidecars_are_not_listed_but_other_meta_files_are(
        old_dir: tuple[Path, LocalStorageAdapter]) -> None:
    _, adapter = old_dir
    assert [o.key for o in adapter.list_files("reports/")] == [
        "reports/notes.meta", "reports/plain.txt", "reports/plain.txt.meta",
        "reports/q1.csv", "reports/raw.bin"]
    assert adapter.download_file("reports/notes.meta") == b"a user's file named .meta"
    assert adapter.download_file("reports/plain.txt.meta") == b"\x89 not json"
    assert adapter.get_file_metadata("reports/notes.meta").size == 25


def test_only_small_json_objects_of_strings_count_as_old_sidecars(tmp_path: Path) -> None:
    base = tmp_path / "old"
    for name, sidecar in (("big", json.dumps({"note": "x" * 70_000})),
                          ("nested", json.dumps({"content_type": "text/csv", "n": 1})),
                          ("listed", json.dumps(["content_type"]))):
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(b"data")
        (base / f"{name}.meta").write_text(sidecar)
    adapter = LocalStorageAdapter({"base_path": str(base)})
    assert [o.key for o in adapter.list_files()] == [
        "big", "big.meta", "listed", "listed.meta", "nested", "nested.meta"]
    assert adapter.get_file_metadata("nested").content_type == "application/octet-stream"
    adapter.upload_file(b"new", "nested")
    assert (base / "nested.meta").exists()  # a user's file: never removed


def test_writing_a_key_replaces_its_old_sidecar(
        old_dir: tuple[Path, LocalStorageAdapter]) -> None:
    base, adapter = old_dir
    adapter.upload_file(b"x,y\n", "reports/q1.csv")
    q1 = adapter.get_file_metadata("reports/q1.csv")
    assert (q1.content_type, q1.metadata) == ("text/csv", {})  # the default for .csv
    assert not (base / "reports" / "q1.csv.meta").exists()
    adapter.upload_file(b"x,y\n", "reports/raw.bin", content_type="image/png",
                        metadata={"source": "cam-2"})
    raw = adapter.get_file_metadata("reports/raw.bin")
    assert (raw.content_type, raw.metadata) == ("image/png", {"source": "cam-2"})
    with adapter.open("reports/raw.bin", "wb") as f:
        f.write(b"rewritten")
    assert adapter.get_file_metadata("reports/raw.bin").metadata == {}
    # The user's .meta file that is no sidecar is never touched.
    adapter.upload_file(b"new", "reports/plain.txt")
    assert (base / "reports" / "plain.txt.meta").read_bytes() == b"\x89 not json"


def test_old_sidecars_follow_copy_move_and_delete(
        old_dir: tuple[Path, LocalStorageAdapter]) -> None:
    base, adapter = old_dir
    adapter.copy_file("reports/q1.csv", "copies/q1.csv")
    copied = adapter.get_file_metadata("copies/q1.csv")
    assert (copied.content_type, copied.metadata) == ("text/csv", {"owner": "ana"})
    assert not (base / "copies" / "q1.csv.meta").exists()
    assert adapter.move_files({"reports/raw.bin": "moved/raw.bin"}).ok
    assert adapter.get_file_metadata("moved/raw.bin").metadata == {"source": "cam-1"}
    assert not (base / "reports" / "raw.bin.meta").exists()
    adapter.delete_file("reports/q1.csv")
    assert not (base / "reports" / "q1.csv.meta").exists()
    assert "reports/q1.csv.meta" not in [o.key for o in adapter.list_files()]


# --- the README's test commands ------------------------------------------------------------------


def test_dev_extra_has_what_the_readme_test_commands_need() -> None:
    import tomllib

    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["dev"]
    assert any(requirement.startswith("pytest-cov") for requirement in dev)
    assert importlib.util.find_spec("pytest_cov") is not None
    for backend in ("s3", "azure", "minio", "local"):
        assert (REPO / "tests" / f"test_{backend}.py").is_file()
    assert "--cov=perceptra_storage" in (REPO / "Makefile").read_text()


def test_readme_coverage_command_writes_an_html_report(tmp_path: Path) -> None:
    """``pytest --cov=perceptra_storage --cov-report=html`` as the README writes it, on
    one memory test: the report is what is checked, not the tests it measures."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--cov=perceptra_storage", "--cov-report=html",
         "-q", "-p", "no:cacheprovider", str(REPO / "tests" / "test_memory.py"),
         "-k", "prefix_scopes_an_adapter"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COVERAGE_FILE": str(tmp_path / ".coverage")})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (tmp_path / "htmlcov" / "index.html").is_file()


# --- deliberate differences (README: "Upgrading from 0.1.x") ----------------------------


def test_download_to_a_destination_returns_the_destination(tmp_path: Path) -> None:
    adapter = LocalStorageAdapter({"base_path": str(tmp_path / "store")})
    adapter.upload_file(b"payload", "k.bin")
    target = tmp_path / "out" / "k.bin"
    target.parent.mkdir()
    assert adapter.download_file("k.bin", target) == str(target)
    assert target.read_bytes() == b"payload"


@pytest.mark.parametrize("store", STORES)
def test_new_metadata_never_creates_visible_sidecars(tmp_path: Path, store: str) -> None:
    adapter = LocalStorageAdapter({"base_path": str(tmp_path), "metadata_store": store})
    adapter.upload_file(b"x", "d/k.txt", content_type="text/html", metadata={"a": "b"})
    assert [p.name for p in (tmp_path / "d").iterdir()
            if not p.name.startswith(".~ps.")] == ["k.txt"]
    assert [o.key for o in adapter.list_files()] == ["d/k.txt"]


def test_deleting_a_missing_key_raises_not_found(tmp_path: Path) -> None:
    adapter = LocalStorageAdapter({"base_path": str(tmp_path)})
    with pytest.raises(StorageNotFoundError):
        adapter.delete_file("missing.txt")


def test_a_str_upload_source_is_refused_with_what_to_use(tmp_path: Path) -> None:
    """0.1.4 took ``upload_file('/path/to/file', key)``; a str can also be text from a
    web form, so it is refused, before anything is read or stored, saying what to pass.
    A str destination of ``download_file`` is still a path."""
    local = tmp_path / "data.csv"
    local.write_bytes(b"a,b\n")
    adapter = LocalStorageAdapter({"base_path": str(tmp_path / "store")})
    with pytest.raises(StorageValidationError, match=r"pathlib\.Path.*encode") as info:
        adapter.upload_file(str(local), "data.csv")
    assert info.value.operation == "upload" and info.value.key == "data.csv"
    assert not adapter.file_exists("data.csv")
    adapter.upload_file(local, "data.csv")
    assert adapter.download_file("data.csv", str(tmp_path / "copy.csv")) == \
        str(tmp_path / "copy.csv")
    assert (tmp_path / "copy.csv").read_bytes() == b"a,b\n"
