"""The README's examples type-check as a user's code would: ``mypy --strict``, no ignores.

Each README Python block becomes a module of its own (a reader pastes them into
different files), in the order given. Blocks that use ``adapter`` without
building one get it from a backend name known only at run time, so they are
checked against the common type :class:`StorageAdapter`. One more module pins
the promises the README relies on with ``assert_type``: a built-in name gives
its own adapter class, ``download_file`` returns bytes, a path's str or the
destination given, and the batch methods return ``BatchResult``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.test_readme import BLOCKS, ROOT

USES_ADAPTER = "from perceptra_storage import get_storage_adapter\n" \
    "import os\n" \
    "adapter = get_storage_adapter(os.environ.get('BACKEND', 's3'))\n"
"""What a block that continues an earlier one starts from: an adapter of a backend
chosen at run time, typed as the common API."""

APPLICATION_GLUE = {21}
"""Blocks that need the reader's own application (the Django model and secret
store of the profile example); they run in test_readme with stand-ins."""

USER_CLASSES = {15, 17, 20}
"""Blocks that define the reader's own classes or functions without annotations (a
custom adapter written the 0.1 way, a context manager, the Django tenancy hook):
checked for how they use and override the library, with untyped definitions allowed."""

PROMISES = '''
import io
from pathlib import Path
from typing import assert_type

from perceptra_storage import BatchResult, StorageAdapter, get_storage_adapter
from perceptra_storage.backends.azure import AzureStorageAdapter
from perceptra_storage.backends.local import LocalStorageAdapter
from perceptra_storage.backends.memory import MemoryStorageAdapter
from perceptra_storage.backends.minio import MinIOStorageAdapter
from perceptra_storage.backends.s3 import S3StorageAdapter

s3 = get_storage_adapter("s3", {"bucket_name": "b"})
assert_type(s3, S3StorageAdapter)
assert_type(get_storage_adapter("minio", {}), MinIOStorageAdapter)
assert_type(get_storage_adapter("azure", {}), AzureStorageAdapter)
assert_type(get_storage_adapter("local", {}), LocalStorageAdapter)
assert_type(get_storage_adapter("memory"), MemoryStorageAdapter)

name: str = "memory"
adapter = get_storage_adapter(name)
assert_type(adapter, StorageAdapter)
assert_type(get_storage_adapter(profile="team"), StorageAdapter)
for each in (s3, get_storage_adapter("azure"), get_storage_adapter("minio"),
             get_storage_adapter("local"), get_storage_adapter("memory")):
    common: StorageAdapter = each

assert_type(adapter.download_file("k"), bytes)
assert_type(adapter.download_file("k", "out.bin", checksum=True), str)
assert_type(adapter.download_file("k", Path("out.bin")), str)
assert_type(adapter.download_file("k", io.BytesIO(), progress=True), io.BytesIO)
assert_type(s3.download_file("k"), bytes)
assert_type(adapter.upload_file(b"x", "k", progress=lambda done, total: None,
                                checksum=True), str)
assert_type(adapter.upload_files({"k": b"x"}), BatchResult)
assert_type(adapter.delete_files(["k"], missing_ok=True), BatchResult)
assert_type(adapter.copy_files({"a": "b"}), BatchResult)
assert_type(adapter.move_files([("a", "b")]), BatchResult)
assert_type(adapter.download_files(["k"], Path("d")), BatchResult)
with adapter.open("k", "wb") as f:
    f.write(b"x")
with get_storage_adapter("local", {"base_path": "s"}) as local:
    assert_type(local, LocalStorageAdapter)


async def through_aio() -> None:
    aio = adapter.aio
    assert_type(await aio.download_file("k"), bytes)
    assert_type(await aio.download_file("k", Path("out.bin"), checksum=True), str)
    assert_type(await aio.download_file("k", io.BytesIO()), io.BytesIO)
    assert_type(await s3.aio.upload_file(b"x", "k", progress=True), str)
    assert_type(await aio.upload_files({"k": b"x"}, concurrency=4), BatchResult)
    assert_type(await aio.delete_files(["k"], missing_ok=True), BatchResult)
    async with aio.open("k", "wb") as w:
        assert_type(await w.write(b"x"), int)
    async for each in aio.iter_files("p/"):
        assert_type(each.size, int)
'''

CONFIG = """[mypy]
strict = True
python_version = 3.11
warn_unused_ignores = True

# Libraries without type information, as in the project's own mypy settings.
[mypy-pandas.*,pyarrow.*,fsspec.*,s3fs.*,adlfs.*,aiohttp.*,botocore.*,aiobotocore.*,tqdm.*,django.*,storages.*]
ignore_missing_imports = True
"""


def _mypy(folder: Path, files: list[Path], *extra: str) -> subprocess.CompletedProcess[str]:
    (folder / "mypy.ini").write_text(CONFIG)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(folder / "mypy.ini"),
         "--no-incremental", "--cache-dir", os.devnull, *extra, *map(str, files)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT)})


def test_readme_examples_pass_mypy_strict(tmp_path: Path) -> None:
    typed, untyped = tmp_path / "typed", tmp_path / "untyped"
    typed.mkdir()
    untyped.mkdir()
    written: dict[Path, list[Path]] = {typed: [], untyped: []}
    for number, block in enumerate(BLOCKS, 1):
        if number in APPLICATION_GLUE:
            continue
        assert "type: ignore" not in block
        builds = re.search(r"^adapter = ", block, flags=re.M) is not None
        imports = re.search(r"^from perceptra_storage import", block, flags=re.M) is not None
        continues = ("adapter" in block and not builds) or \
            ("get_storage_adapter" in block and not imports)
        folder = untyped if number in USER_CLASSES else typed
        module = folder / f"readme_block_{number:02d}.py"
        module.write_text((USES_ADAPTER if continues else "") + block)
        written[folder].append(module)
    promises = typed / "readme_promises.py"
    promises.write_text(PROMISES)
    written[typed].append(promises)
    assert len(written[typed]) >= 14

    strict = _mypy(typed, written[typed])
    assert strict.returncode == 0 and "Success" in strict.stdout, strict.stdout + strict.stderr
    loose = _mypy(untyped, written[untyped], "--allow-untyped-defs",
                  "--allow-incomplete-defs", "--allow-untyped-calls")
    assert loose.returncode == 0 and "Success" in loose.stdout, loose.stdout + loose.stderr
