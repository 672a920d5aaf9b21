"""The ``perceptra://`` route: pandas, pyarrow, polars and Dask reach the adapter itself.

``adapter.url(key)`` with ``adapter.storage_options``, and ``perceptra://PROFILE/KEY``
with no options, open :class:`PerceptraFileSystem`, so these libraries get the
adapter's key checks, typed errors, timeouts, content types and metadata, on
every backend.
"""

from __future__ import annotations

import json
import pickle
import time
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest

from perceptra_storage import (
    BaseStorageAdapter,
    StorageNotFoundError,
    StorageTimeoutError,
    StorageValidationError,
)
from perceptra_storage.fsspec_protocol import PerceptraFileSystem
from perceptra_storage.profiles import PROFILES_ENV
from tests.conftest import ROUTED, ROUTED_SHARED, Backend, Faulty, started_entry

backend = pytest.fixture(params=ROUTED, name="backend")(started_entry)
shared_backend = pytest.fixture(params=ROUTED_SHARED, name="shared_backend")(started_entry)
"""``perceptra://`` URLs on every route entry, the obstore engine's included."""

FAST = {"read_timeout": 2, "max_attempts": 2, "retry_backoff": 0.1}

ROUTE_HOSTILE_KEYS = ["../x", "a/../../x", "C:\\x", "a\\..\\x", "%2e%2e/x", "a/%2E%2E/x",
                      "a/%2e%2e", "\x1b[2Jx", "a\r\nb", "x\u0085y", "é" * 513, "a//b"]
"""The contract's hostile keys as they reach a filesystem path (its '/etc/passwd' and
'//x' are root-relative paths here, fsspec's convention, and 'a/' the folder 'a')."""


def _frame(rows: int = 20) -> Any:
    import pandas as pd

    return pd.DataFrame({"id": range(rows), "name": [f"row {n}" for n in range(rows)]})


def _toml(value: Any) -> str:
    """A TOML value: JSON's strings, numbers and booleans are TOML's too."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value) if not isinstance(value, (bool, int, float)) else value)


def _profile(storage: BaseStorageAdapter, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> str:
    """A profiles file (inherited by child processes through the environment) with one
    profile on the same storage as ``storage``; its name."""
    options = storage.storage_options
    name = f"route-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "profiles.toml"
    path.write_text(f"[{name}]\nbackend = {json.dumps(options['backend'])}\n"
                    f"config = {_toml(options['config'])}\n"
                    f"credentials = {_toml(options['credentials'])}\n")
    monkeypatch.setenv(PROFILES_ENV, str(path))
    return name


# --- shapes -------------------------------------------------------------------------------


def test_url_and_options_open_our_filesystem(storage: BaseStorageAdapter) -> None:
    url = storage.url("interop/a b.csv")
    assert url == "perceptra:///interop/a b.csv"
    assert storage.url("tables/") == "perceptra:///tables/" and storage.url("") == "perceptra:///"
    fs, path = fsspec.core.url_to_fs(url, **storage.storage_options)
    assert isinstance(fs, PerceptraFileSystem) and path == "interop/a b.csv"
    assert isinstance(storage.fs, PerceptraFileSystem) and storage.fs.adapter is storage
    assert set(storage.storage_options) in ({"backend", "config", "credentials"}, {"adapter"})
    for key in ("../x", "a//b", ""):
        if key:
            with pytest.raises(StorageValidationError) as info:
                storage.url(key)
            assert info.value.operation == "url"
    assert storage.native_url("k").endswith("k")  # type: ignore[attr-defined]
    assert isinstance(storage.native_storage_options, dict)  # type: ignore[attr-defined]


def test_options_reuse_one_adapter_and_pickled_filesystems_rebuild_it(
        storage: BaseStorageAdapter) -> None:
    first, _ = fsspec.core.url_to_fs(storage.url("k"), **storage.storage_options)
    second, _ = fsspec.core.url_to_fs(storage.url("k"), **storage.storage_options)
    assert first.adapter is second.adapter  # cached: a pandas call does not rebuild it
    storage.upload_file(b"pickled", "k")
    for fs in (first, storage.fs):
        assert pickle.loads(pickle.dumps(fs)).cat_file("k") == b"pickled"


def test_the_url_of_another_profile_is_refused(storage: BaseStorageAdapter) -> None:
    storage.upload_file(b"mine", "k")
    with pytest.raises(StorageValidationError, match="profile"):
        storage.fs.cat_file("perceptra://someone-else/k")
    assert storage.fs.cat_file(storage.url("k")) == b"mine"


def test_bad_storage_options_are_refused() -> None:
    for options in ({}, {"backend": "memory", "adapter": object()}, {"backend": 3},
                    {"backend": "memory", "confg": {}}, {"config": {}}):
        with pytest.raises(StorageValidationError):
            fsspec.core.url_to_fs("perceptra:///k", **options)


# --- the adapter's guarantees through pandas ------------------------------------------------


@pytest.mark.parametrize("key", ROUTE_HOSTILE_KEYS, ids=repr)
def test_hostile_key_through_pandas_is_refused(storage: BaseStorageAdapter, key: str) -> None:
    import pandas as pd

    url, options = f"perceptra:///{key}", storage.storage_options
    with pytest.raises(StorageValidationError):
        pd.read_csv(url, storage_options=options)
    with pytest.raises(StorageValidationError):
        _frame().to_csv(url, storage_options=options)
    with pytest.raises(StorageValidationError):
        storage.fs.ls(key)
    assert storage.list_files() == []


def test_hostile_key_is_refused_before_any_io(faulty: Faulty) -> None:
    import pandas as pd

    faulty.proxy.set("stall")
    adapter = faulty.make(**FAST)
    before = faulty.proxy.connections
    start = time.monotonic()
    for key in ROUTE_HOSTILE_KEYS:
        with pytest.raises(StorageValidationError):
            pd.read_csv(f"perceptra:///{key}", storage_options=adapter.storage_options)
    assert time.monotonic() - start < 2 and faulty.proxy.connections == before


def test_missing_key_through_pandas_is_our_not_found(storage: BaseStorageAdapter) -> None:
    import pandas as pd

    with pytest.raises(StorageNotFoundError) as info:
        pd.read_csv(storage.url("missing/x.csv"), storage_options=storage.storage_options)
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.backend == storage.backend_name


def test_stalled_server_through_pandas_times_out_like_the_adapter(faulty: Faulty) -> None:
    import pandas as pd

    faulty.backend.make().upload_file(b"a,b\n1,2\n", "t.csv")
    faulty.proxy.set("stall")
    adapter = faulty.make(**FAST)
    start = time.monotonic()
    with pytest.raises(StorageTimeoutError):
        pd.read_csv(adapter.url("t.csv"), storage_options=adapter.storage_options)
    assert time.monotonic() - start <= 10
    faulty.proxy.set("pass")
    assert pd.read_csv(adapter.url("t.csv"), storage_options=adapter.storage_options
                       ).to_dict("list") == {"a": [1], "b": [2]}


def test_content_type_and_metadata_written_through_the_route(
        storage: BaseStorageAdapter) -> None:
    fs, _ = fsspec.core.url_to_fs(storage.url("k"), **storage.storage_options)
    fs.pipe_file("props/piped.bin", b"{}", content_type="application/json",
                 metadata={"owner": "ana"})
    with fs.open("props/opened.bin", "wb", content_type="image/png",
                 metadata={"kind": "thumb"}) as f:
        f.write(b"\x89PNG")
    _frame().to_csv(storage.url("props/frame.csv"), index=False,
                    storage_options=storage.storage_options)
    expected = {"props/piped.bin": ("application/json", {"owner": "ana"}),
                "props/opened.bin": ("image/png", {"kind": "thumb"}),
                "props/frame.csv": ("text/csv", {})}
    for key, (content_type, metadata) in expected.items():
        info = storage.get_file_metadata(key)
        assert (info.content_type, info.metadata) == (content_type, metadata)
        assert (fs.info(key)["content_type"], fs.info(key)["metadata"]) == \
            (content_type, metadata)
    assert storage.download_file("props/opened.bin") == b"\x89PNG"


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_failed_with_block_stores_nothing(storage: BaseStorageAdapter, mode: str) -> None:
    storage.upload_file(b"previous", "atomic.txt")
    fs = storage.fs
    for extra in ({}, {"metadata": {"a": "b"}}):
        with pytest.raises(RuntimeError), fs.open("atomic.txt", mode, **extra) as f:
            f.write(b"partial" if "b" in mode else "partial")
            raise RuntimeError("interrupted")
        with pytest.raises(RuntimeError), fs.open("new.txt", mode, **extra) as f:
            f.write(b"partial" if "b" in mode else "partial")
            raise RuntimeError("interrupted")
    assert storage.download_file("atomic.txt") == b"previous"
    assert not storage.file_exists("new.txt")


def test_unusual_keys_travel_through_urls(storage: BaseStorageAdapter) -> None:
    import pandas as pd

    for key in ("ünïcødé/ключ.csv", "with space/a b.csv", "q?a=b#frag.csv", "per%cent.csv"):
        _frame(3).to_csv(storage.url(key), index=False, storage_options=storage.storage_options)
        assert storage.file_exists(key)
        back = pd.read_csv(storage.url(key), storage_options=storage.storage_options)
        assert back["id"].tolist() == [0, 1, 2]


def test_listings_globs_and_pseudo_directories(storage: BaseStorageAdapter) -> None:
    for key in ("d/a.csv", "d/b.csv", "d/sub/c.csv", "d/sub/deep/e.txt", "d.csv", "top.txt"):
        storage.upload_file(b"x", key)
    fs = storage.fs
    assert fs.ls("d", detail=False) == ["d/a.csv", "d/b.csv", "d/sub"]
    assert fs.ls("", detail=False) == ["d", "d.csv", "top.txt"]
    assert fs.isdir("d/sub") and not fs.isfile("d/sub") and fs.isfile("d/a.csv")
    assert fs.info("d/sub")["type"] == "directory"
    assert fs.find("d") == ["d/a.csv", "d/b.csv", "d/sub/c.csv", "d/sub/deep/e.txt"]
    assert fs.find("d", maxdepth=1) == ["d/a.csv", "d/b.csv"]
    assert fs.find("d", withdirs=True, maxdepth=2) == \
        ["d", "d/a.csv", "d/b.csv", "d/sub", "d/sub/c.csv", "d/sub/deep"]
    assert fs.glob("d/*.csv") == ["d/a.csv", "d/b.csv"]
    assert fs.glob("d/**/*.csv") == ["d/a.csv", "d/b.csv", "d/sub/c.csv"]
    assert fs.glob(storage.url("d/*.csv")) == ["d/a.csv", "d/b.csv"]
    assert not fs.exists("d/missing") and not fs.exists("e")
    with pytest.raises(FileNotFoundError):
        fs.ls("e")
    fs.rm("d", recursive=True)
    assert not fs.exists("d") and [o.key for o in storage.list_files()] == ["d.csv", "top.txt"]
    fs.makedirs("empty/folder")  # a folder exists while keys lie under it
    assert not fs.exists("empty")


# --- the libraries --------------------------------------------------------------------------


def test_pandas_pyarrow_polars_with_storage_options(storage: BaseStorageAdapter) -> None:
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds

    options = storage.storage_options
    frame = _frame()
    for part in range(3):
        frame.iloc[part::3].to_parquet(storage.url(f"tables/part-{part}.parquet"),
                                       storage_options=options, index=False)
    pd.testing.assert_frame_equal(
        pd.read_parquet(storage.url("tables/part-0.parquet"), storage_options=options),
        frame.iloc[0::3].reset_index(drop=True))
    fs, path = fsspec.core.url_to_fs(storage.url("tables/"), **options)
    table = ds.dataset(path, filesystem=fs, format="parquet").to_table()
    assert sorted(table.column("id").to_pylist()) == list(range(20))
    with fsspec.open(storage.url("tables/part-1.parquet"), "rb", **options) as f:
        assert pl.read_parquet(f)["id"].to_list() == list(range(1, 20, 3))


def test_profile_urls_need_no_storage_options(storage: BaseStorageAdapter, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds

    if "adapter" in storage.storage_options:
        pytest.skip("a private store has no profile")  # the fixture's stores are named
    name = _profile(storage, tmp_path, monkeypatch)
    frame = _frame()
    frame.to_csv(f"perceptra://{name}/data/x.csv", index=False)
    pd.testing.assert_frame_equal(pd.read_csv(f"perceptra://{name}/data/x.csv"), frame)
    assert storage.get_file_metadata("data/x.csv").content_type == "text/csv"
    for part in range(2):
        frame.iloc[part::2].to_parquet(f"perceptra://{name}/tables/p{part}.parquet")
    fs, path = fsspec.core.url_to_fs(f"perceptra://{name}/tables/")
    assert path == "tables" and fs.unstrip_protocol(path) == f"perceptra://{name}/tables"
    assert ds.dataset(path, filesystem=fs, format="parquet").to_table().num_rows == 20
    with fsspec.open(f"perceptra://{name}/tables/p1.parquet") as f:
        assert pl.read_parquet(f)["id"].to_list() == list(range(1, 20, 2))
    with pytest.raises(StorageValidationError):
        pd.read_csv(f"perceptra://{name}/../x.csv")
    with pytest.raises(StorageNotFoundError):
        pd.read_csv(f"perceptra://{name}/missing.csv")
    with pytest.raises(StorageValidationError, match="no storage profile"):
        pd.read_csv(f"perceptra://no-such-{name}/x.csv")


def test_dask_workers_resolve_profiles_and_options_themselves(
        shared_backend: Backend, dask_client: Any, dask_profiles: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import dask.dataframe as dd

    storage = shared_backend.make("dask")
    name = _profile(storage, dask_profiles.parent, monkeypatch)  # the workers' file
    frame = _frame(40)
    written = dd.from_pandas(frame, npartitions=4)
    written.to_parquet(f"perceptra://{name}/by-profile/", compute_kwargs={
        "scheduler": dask_client})
    by_profile = dd.read_parquet(f"perceptra://{name}/by-profile/*.parquet"
                                 ).compute(scheduler=dask_client)
    written.to_parquet(storage.url("by-options/"), storage_options=storage.storage_options,
                       compute_kwargs={"scheduler": dask_client})
    by_options = dd.read_parquet(storage.url("by-options/"),
                                 storage_options=storage.storage_options
                                 ).compute(scheduler=dask_client)
    for loaded in (by_profile, by_options):
        assert loaded.sort_values("id").to_dict("list") == frame.to_dict("list")
    keys = [o.key for o in storage.list_files()]
    assert sum(k.startswith("by-profile/") and k.endswith(".parquet") for k in keys) == 4
    assert sum(k.startswith("by-options/") and k.endswith(".parquet") for k in keys) == 4
