"""Large transfers: progress callbacks and bounded memory."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from perceptra_storage import (
    StorageAdapter,
)
from tests.conftest import Backend

from .base import ContractBase

MiB = 1024 * 1024


class TransferTests(ContractBase):
    """How single large uploads and downloads behave while they run."""

    def test_single_transfer_progress_counts_bytes(self, storage: StorageAdapter,
                                                   tmp_path: Path) -> None:
        data = os.urandom(3 * 1024 * 1024)
        local = tmp_path / "p.bin"
        local.write_bytes(data)
        ups: list[tuple[int, Any]] = []
        storage.upload_file(local, "p.bin",
                            progress=lambda done, total: ups.append((done, total)))
        assert ups and ups[-1] == (len(data), len(data))
        downs: list[int] = []
        storage.download_file("p.bin", tmp_path / "back.bin",
                              progress=lambda done, total: downs.append(done))
        assert downs and downs[-1] == len(data)
        assert (tmp_path / "back.bin").read_bytes() == data

    def test_large_transfers_use_bounded_memory(self, backend: Backend,
                                                storage: StorageAdapter,
                                                tmp_path: Path) -> None:
        """Memory is O(part) (a few parts in flight), not O(object), measured with
        tracemalloc: 48 MiB up from an open file on a fresh adapter, then, once the SDK
        has loaded, 64 MiB up from a path and down to a path.  Each object is larger
        than its allowance (peaks seen: up to 30 MiB streamed, 42 MiB from a path, 24 MiB
        down), so a transfer that held the whole object would fail."""
        import tracemalloc

        def write(path: Path, mib: int) -> Path:
            with open(path, "wb") as f:
                for n in range(mib):
                    f.write(bytes([n]) * MiB)
            return path

        def allowance(size: int) -> int:
            # A store in this process keeps the object itself (and a growing buffer may
            # briefly hold it twice); every other backend must stream.
            return 2 * size if backend.holds_objects_in_memory else 0

        big, large = write(tmp_path / "big.bin", 48), write(tmp_path / "large.bin", 64)
        tracemalloc.start()
        try:
            start = time.perf_counter()
            with open(big, "rb") as f:
                storage.upload_file(f, "big.bin")
            stream_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert time.perf_counter() - start < 60
        assert stream_peak < allowance(48 * MiB) + 40 * MiB
        assert storage.get_file_metadata("big.bin").size == 48 * MiB

        storage.upload_file(b"warm up", "warm.bin")
        storage.download_file("warm.bin")
        peaks = {}
        for step in ("upload", "download"):
            tracemalloc.start()
            try:
                if step == "upload":
                    storage.upload_file(large, "large.bin")
                else:
                    storage.download_file("large.bin", tmp_path / "back.bin")
                peaks[step] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        print(f"{backend.name}: peak upload {stream_peak / MiB:.1f} MiB (stream), "
              f"{peaks['upload'] / MiB:.1f} MiB (path), download {peaks['download'] / MiB:.1f} MiB")
        assert (tmp_path / "back.bin").stat().st_size == 64 * MiB
        assert peaks["upload"] < allowance(64 * MiB) + 56 * MiB
        assert peaks["download"] < allowance(64 * MiB) + 40 * MiB
