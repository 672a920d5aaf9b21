"""File objects and the data-science stack: fsspec, pandas, pyarrow, polars, Dask."""

from __future__ import annotations

import os
from typing import Any

import fsspec
import pytest

from perceptra_storage import (
    StorageAdapter,
    StorageNotFoundError,
    StorageValidationError,
)
from tests.conftest import Backend

from .base import ContractBase, needs, sync_only


class InteropTests(ContractBase):
    """``open``, ``url``/``storage_options``/``fs``, and the tools that use them."""

    def test_open_read_and_write(self, storage: StorageAdapter) -> None:
        with storage.open("o/file.txt", "wb") as f:
            f.write(b"line one\n")
            f.write(b"line two\n")
        with storage.open("o/file.txt", "rb") as f:
            assert f.read(4) == b"line"
            f.seek(5)
            assert f.read() == b"one\nline two\n"
        with pytest.raises(StorageNotFoundError):
            storage.open("o/missing.txt")
        with pytest.raises(StorageValidationError):
            storage.open("o/file.txt", "r")

    @sync_only("the perceptra:// fsspec route, not aio")
    def test_fsspec_url_and_storage_options_reach_the_same_object(
            self, storage: StorageAdapter) -> None:
        storage.upload_file(b"via fsspec", "interop/x.bin")
        url = storage.url("interop/x.bin")
        with fsspec.open(url, "rb", **storage.storage_options) as f:
            assert f.read() == b"via fsspec"
        assert storage.fs.cat_file("interop/x.bin") == b"via fsspec"

    @sync_only("pandas through the fsspec route and blocking file objects")
    def test_pandas_csv_and_parquet_via_url_and_open(self, storage: StorageAdapter) -> None:
        import pandas as pd

        frame = pd.DataFrame({"id": range(50), "name": [f"row {n}" for n in range(50)]})
        options = storage.storage_options
        frame.to_csv(storage.url("pd/t.csv"), index=False,
                     storage_options=options)
        back = pd.read_csv(storage.url("pd/t.csv"), storage_options=options)
        pd.testing.assert_frame_equal(back, frame)
        frame.to_parquet(storage.url("pd/t.parquet"),
                         storage_options=options)
        with storage.open("pd/t.parquet") as f:
            pd.testing.assert_frame_equal(pd.read_parquet(f), frame)
        with storage.open("pd/written.parquet", "wb") as f:
            frame.to_parquet(f)
        pd.testing.assert_frame_equal(
            pd.read_parquet(storage.url("pd/written.parquet"),
                            storage_options=options), frame)
        assert {o.key for o in storage.list_files("pd/")} == {"pd/t.csv", "pd/t.parquet",
                                                              "pd/written.parquet"}

    @sync_only("pyarrow and polars through the fsspec route and blocking file objects")
    def test_pyarrow_dataset_and_polars(self, storage: StorageAdapter) -> None:
        import pandas as pd
        import polars as pl
        import pyarrow.dataset as ds

        for part in range(3):
            frame = pd.DataFrame({"part": [part] * 10, "value": range(part * 10, part * 10 + 10)})
            with storage.open(f"tables/events/part-{part}.parquet", "wb") as f:
                frame.to_parquet(f)
        storage.upload_file(b"not a table", "tables/other.txt")
        dataset = ds.dataset("tables/events", filesystem=storage.fs,
                             format="parquet")
        table = dataset.to_table()
        assert table.num_rows == 30 and sorted(table.column("value").to_pylist()) == list(range(30))
        with storage.open("tables/events/part-1.parquet") as f:
            assert pl.read_parquet(f)["value"].to_list() == list(range(10, 20))

    @needs("shared_across_processes")
    @sync_only("Dask reads through the fsspec route on its workers")
    def test_dask_workers_read_and_write_through_the_adapter(self, backend: Backend,
                                                             dask_client: Any) -> None:
        import dask.dataframe as dd
        import pandas as pd

        storage = backend.make("dask")
        frame = pd.DataFrame({"k": range(40), "v": [n * 2 for n in range(40)]})
        for part in range(4):
            with storage.open(f"ds/part-{part}.parquet", "wb") as f:
                frame.iloc[part * 10:(part + 1) * 10].to_parquet(f, index=False)

        def upload_on_worker(adapter: StorageAdapter, key: str) -> int:
            import os as worker_os

            adapter.upload_file(f"from pid {worker_os.getpid()}".encode(), key)
            return worker_os.getpid()

        loaded = dd.read_parquet(storage.url("ds"),  # type: ignore[attr-defined]
                                 storage_options=storage.storage_options  # type: ignore[attr-defined]
                                 ).compute(scheduler=dask_client)
        assert sorted(loaded["v"].tolist()) == frame["v"].tolist()
        # pure=False: the same function and arguments on another entry must run again.
        pid = dask_client.submit(upload_on_worker, storage, "from-worker.txt",
                                 pure=False).result(timeout=60)
        assert pid != os.getpid()
        assert storage.download_file("from-worker.txt") == f"from pid {pid}".encode()
