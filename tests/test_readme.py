"""Every Python example in README.md runs, in order, as a reader would paste it.

Only what a real cloud or the reader's own application would supply is
substituted: the S3 quick start talks to the moto server instead of AWS, the
local example's ``/var/perceptra/storage`` becomes a temporary directory. The
Django settings are also run in a Django project by tests/test_django.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import perceptra_storage

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_the_two_commands() -> None:
    first = re.search(r"```bash\n(.*?)```", README, flags=re.S)
    assert first is not None and README.index(first.group(0)) < README.index("## ")
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines()]
    assert commands == ["make demo", "make test"]


def test_demo_prints_the_quick_start_steps() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")],
                            capture_output=True, text=True, timeout=120, check=True)
    steps = [line for line in result.stdout.splitlines() if re.match(r"\d+\. ", line)]
    assert len(steps) == 9 and result.stdout.strip().endswith("quick start finished")


def test_every_python_example_runs(request: pytest.FixtureRequest, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    moto = request.getfixturevalue("moto_server")
    import boto3

    boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-west-2",
                 aws_access_key_id=moto.access_key, aws_secret_access_key=moto.secret_key
                 ).create_bucket(Bucket="my-bucket",
                                 CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    real = perceptra_storage.get_storage_adapter
    local_root = tmp_path / "var-perceptra-storage"

    def substituted(backend: str, config: Any = None, credentials: Any = None) -> Any:
        config = dict(config or {})
        if backend == "s3":
            config["endpoint_url"] = moto.endpoint_url
        if backend == "local" and config.get("base_path") == "/var/perceptra/storage":
            config["base_path"] = str(local_root)
        return real(backend, config, credentials)

    monkeypatch.setattr(perceptra_storage, "get_storage_adapter", substituted)
    work = tmp_path / "work"
    (work / "local").mkdir(parents=True)
    (work / "data.csv").write_text("id,name\n1,alpha\n")
    (work / "local" / "file1.txt").write_text("one")
    (work / "local" / "file2.txt").write_text("two")
    monkeypatch.chdir(work)
    # The reader's own AWS shared files, holding the profile the S3 section names.
    (tmp_path / "aws-credentials").write_text(
        f"[analytics]\naws_access_key_id = {moto.access_key}\n"
        f"aws_secret_access_key = {moto.secret_key}\n")
    (tmp_path / "aws-config").write_text("[profile analytics]\nregion = us-west-2\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))

    namespace: dict[str, Any] = {"__name__": "readme"}
    assert len(BLOCKS) >= 12
    for number, block in enumerate(BLOCKS, 1):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"README python block {number} failed: {type(exc).__name__}: {exc}\n"
                        f"{block}")
    out = capsys.readouterr().out
    assert "datasets/data.csv: 16 bytes" in out
    assert "Temporary URL: http" in out and "X-Amz-Signature=" in out
    assert "File not found" in out
    assert "memory: upload 'reports/q2.csv': injected fault (adapter.faults)" in out
    assert "Uploaded local/file2.txt -> remote/file2.txt" in out
    assert "True ['raw/a.csv', 'raw/b.csv']" in out
    assert "['raw/a.csv'] {'raw/missing.csv': 'StorageNotFoundError'}" in out
    assert (work / "downloads" / "raw" / "a.csv").read_bytes() == b"a\n1\n"
    assert os.path.exists(work / "storage" / "data.csv")
