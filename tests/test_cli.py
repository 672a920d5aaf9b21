"""The ``perceptra-storage`` command against the real stores.

Each test writes a profiles file (``PERCEPTRA_STORAGE_PROFILES``) whose ``store``
profile reaches the test's own bucket or container on moto (s3), Ceph RGW (minio),
Azurite (azure) or a local folder; secrets come from environment variables, as
users are told to keep them. Memory lives in one process, so it is not here.

Most commands run in this process through ``cli.main`` (``Cli.run``), set up as a
fresh process of the command would be: a new process of a network command costs about
a second of CPU (the SDK imports; more with coverage's hook), and these tests run about
two hundred commands. The
process itself is tested where it is the point: the console script and
``python -m perceptra_storage`` (``--help``), the README's shell pipeline (every
command against moto, through pipes), and the progress bar on a real terminal.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import pytest

from perceptra_storage import BaseStorageAdapter, StorageObject
from tests.conftest import ROUTED, ROUTED_SHARED, Backend, started_entry

backend = pytest.fixture(params=ROUTED, name="backend")(started_entry)
shared_backend = pytest.fixture(params=ROUTED_SHARED, name="shared_backend")(started_entry)
"""The command line on every route entry, the obstore engine's included."""

CLI = Path(sys.executable).with_name("perceptra-storage")
STORAGE_OBJECT_FIELDS = {f.name for f in fields(StorageObject)}


def _toml_table(values: dict[str, Any], env: dict[str, str], prefix: str) -> str:
    """An inline TOML table; string values of credentials go through ``${VAR}``."""
    parts = []
    for index, (name, value) in enumerate(sorted(values.items())):
        if prefix and isinstance(value, str):
            variable = f"PS_CLI_{prefix}_{index}"
            env[variable] = value
            value = "${" + variable + "}"
        parts.append(f"{name} = {json.dumps(value)}")
    return "{ " + ", ".join(parts) + " }"


def _feed(write_end: int, data: bytes) -> None:
    """Write ``data`` into a pipe and close it (in a thread: a pipe holds only 64 KiB)."""
    with contextlib.suppress(BrokenPipeError), open(write_end, "wb", buffering=0) as pipe:
        pipe.write(data)


@dataclass
class Cli:
    """The command with a profiles file: ``store`` (the backend under test) and
    ``disk`` (a local folder, for copies across backends)."""

    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = field(
        default_factory=dict)
    secrets: tuple[str, ...] = ()

    def add(self, name: str, backend: str, config: dict[str, Any],
            credentials: Optional[dict[str, Any]] = None) -> None:
        self.profiles[name] = (backend, config, credentials or {})
        lines = []
        for profile, (kind, conf, creds) in self.profiles.items():
            lines += [f"[{profile}]", f"backend = {json.dumps(kind)}",
                      f"config = {_toml_table(conf, self.env, '')}"]
            if creds:
                lines.append(f"credentials = {_toml_table(creds, self.env, profile.upper())}")
        path = self.tmp / "profiles.toml"
        path.write_text("\n".join(lines) + "\n")
        self.env["PERCEPTRA_STORAGE_PROFILES"] = str(path)

    def run(self, *args: str, stdin: bytes = b"", code: Optional[int] = 0,
            cwd: Optional[Path] = None, public: tuple[str, ...] = (), process: bool = False
            ) -> subprocess.CompletedProcess[bytes]:
        """Run the command (in this process, or the console script in a new one with
        ``process``); no secret (except the ``public`` ones) may be printed."""
        if process:
            result = subprocess.run([str(CLI), *args], input=stdin, capture_output=True,
                                    env={**os.environ, **self.env}, cwd=cwd or self.tmp,
                                    timeout=180, check=False)
        else:
            result = self._in_process(list(args), stdin, cwd or self.tmp)
        for secret in set(self.secrets) - set(public):
            assert secret.encode() not in result.stdout + result.stderr
        if code is not None:
            assert result.returncode == code, (args, result.returncode,
                                               result.stderr.decode())
        if result.returncode and b"Traceback" not in result.stderr:
            assert len(result.stderr.decode().strip().splitlines()) >= 1
        return result

    def _in_process(self, args: list[str], stdin: bytes, cwd: Path
                    ) -> subprocess.CompletedProcess[bytes]:
        """``cli.main(args)`` here, with what a new process of the command would have.

        The environment and working directory are the test's; stdin is a pipe, as
        the shell gives (uploads from it cannot seek); stdout and stderr are text
        streams over bytes, like a process's, and not terminals. What the command
        keeps for the life of its process is made fresh for each run and put back
        afterwards: the profile caches (a process parses the file and builds the
        adapters once; here each run must read the file as it now is, and a profile
        another test registered in code must not show), and the logging that
        ``--debug`` sets up (the root logger's handlers, which pytest's own would
        otherwise keep ``basicConfig`` from adding, and the levels)."""
        from perceptra_storage import cli, profiles

        stdout, stderr = io.BytesIO(), io.BytesIO()
        read_end, write_end = os.pipe()
        feeder = threading.Thread(target=_feed, args=(write_end, stdin))
        feeder.start()
        package_logger = logging.getLogger("perceptra_storage")
        levels = logging.root.level, package_logger.level
        try:
            with pytest.MonkeyPatch.context() as patch, \
                    open(read_end, encoding="utf-8") as stdin_stream:
                for name, value in self.env.items():
                    patch.setenv(name, value)
                patch.chdir(cwd)
                patch.setattr(sys, "stdin", stdin_stream)
                # Buffered as a process's are when not a terminal: stdout in blocks,
                # stderr by line; both are flushed at the end, as at exit.
                patch.setattr(sys, "stdout", io.TextIOWrapper(stdout, encoding="utf-8"))
                patch.setattr(sys, "stderr", io.TextIOWrapper(
                    stderr, encoding="utf-8", errors="backslashreplace", line_buffering=True))
                for cache in ("_registered", "_file_cache", "_adapters"):
                    patch.setattr(profiles, cache, {})
                patch.setattr(logging.root, "handlers", [])
                try:
                    returncode = cli.main(args)
                except SystemExit as stop:  # argparse: usage errors, --help, --version
                    returncode = stop.code if isinstance(stop.code, int) else \
                        int(stop.code is not None)
                sys.stdout.flush()
                sys.stderr.flush()
                # Read inside: the wrappers close the buffers when they are dropped.
                out, err = stdout.getvalue(), stderr.getvalue()
        finally:
            logging.root.setLevel(levels[0])
            package_logger.setLevel(levels[1])
            feeder.join()
        return subprocess.CompletedProcess(["perceptra-storage", *args], returncode, out, err)

    def json(self, *args: str, code: Optional[int] = 0) -> list[dict[str, Any]]:
        """The NDJSON lines of ``args --json``; the last is the summary."""
        out = self.run(*args, "--json", code=code).stdout.decode()
        records = [json.loads(line) for line in out.splitlines()]
        assert records and records[-1]["summary"] is True
        assert all(not r.get("summary") for r in records[:-1])
        return records


def _tree(root: Path) -> dict[str, bytes]:
    files = {"a.txt": b"alpha\n", "sub/b.csv": b"id\n1\n", "sub/deeper/c.bin": b"\x00\x01" * 500}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


@pytest.fixture
def cli(shared_backend: Backend, tmp_path: Path) -> Iterator[tuple[Cli, BaseStorageAdapter]]:
    """The command, with profile ``store`` on the test's store, and an adapter there."""
    assert CLI.exists(), "install the package (make lint) so the console script exists"
    adapter = shared_backend.make()
    tool = Cli(tmp_path, secrets=shared_backend.secrets)
    tool.add("store", shared_backend.name, dict(adapter.config), dict(adapter.credentials))
    tool.add("disk", "local", {"base_path": str(tmp_path / "disk")})
    yield tool, adapter


def test_help_lists_commands_and_exit_codes(tmp_path: Path) -> None:
    tool = Cli(tmp_path)
    text = tool.run("--help", process=True).stdout.decode()
    assert tool.run("--help").stdout.decode() == text  # in this process, the same
    for word in ("ls", "stat", "cat", "cp", "mv", "rm", "url", "test", "profiles", "sync",
                 "0  success", "1  some items failed", "2  usage", "3  not found",
                 "4  permission denied", "5  connection"):
        assert word in text
    assert "--concurrency" in tool.run("sync", "--help").stdout.decode()
    as_module = subprocess.run([sys.executable, "-m", "perceptra_storage", "--help"],
                               capture_output=True, timeout=60, check=True)
    assert as_module.stdout.decode() == text
    assert tool.run("cp", code=2).stderr.startswith(b"usage:")
    assert tool.run("frobnicate", code=2).returncode == 2


def test_every_command_on_a_real_store(cli: tuple[Cli, BaseStorageAdapter],
                                       shared_backend: Backend) -> None:
    tool, adapter = cli
    files = _tree(tool.tmp / "src")

    records = tool.json("cp", "-r", "src", "store:data")
    assert records[-1]["copied"] == 3 and records[-1]["exit_code"] == 0
    assert {r["destination"] for r in records[:-1]} == {f"store:data/{n}" for n in files}
    assert {o.key: adapter.download_file(o.key) for o in adapter.list_files("data/")} == \
        {f"data/{n}": d for n, d in files.items()}

    listed = tool.json("ls", "store:data/")
    assert [set(r) for r in listed[:-1]] == [STORAGE_OBJECT_FIELDS] * 3
    assert [r["key"] for r in listed[:-1]] == sorted(f"data/{n}" for n in files)
    assert listed[-1]["objects"] == 3 and listed[-1]["bytes"] == sum(map(len, files.values()))
    long = tool.run("ls", "--long", "store:data/sub").stdout.decode().splitlines()
    assert len(long) == 2 and long[0].split()[0] == "5" and long[0].endswith("data/sub/b.csv")

    stat = tool.json("stat", "store:data/sub/b.csv")[0]
    assert stat["size"] == 5 and stat["content_type"] == "text/csv"
    assert tool.run("cat", "store:data/a.txt", "store:data/sub/b.csv").stdout == \
        files["a.txt"] + files["sub/b.csv"]
    assert tool.run("cp", "store:data/sub/deeper/c.bin", "-").stdout == files["sub/deeper/c.bin"]
    tool.run("cp", "-", "store:piped/in.bin", stdin=b"from stdin")
    assert adapter.download_file("piped/in.bin") == b"from stdin"

    tool.run("cp", "-r", "store:data", "disk:copied")  # across backends
    assert (tool.tmp / "disk" / "copied" / "sub" / "deeper" / "c.bin").read_bytes() == \
        files["sub/deeper/c.bin"]
    tool.run("cp", "disk:copied/a.txt", "store:single/")
    assert adapter.download_file("single/a.txt") == files["a.txt"]
    tool.run("cp", "store:single/a.txt", "one.txt")
    assert (tool.tmp / "one.txt").read_bytes() == files["a.txt"]

    moved = tool.json("mv", "store:single/a.txt", "store:moved/a.txt")
    assert moved[0]["ok"] and moved[-1]["copied"] == 1
    assert not adapter.file_exists("single/a.txt") and adapter.file_exists("moved/a.txt")
    tool.run("mv", "-r", "store:moved", "disk:moved-here")
    assert not adapter.file_exists("moved/a.txt")
    assert (tool.tmp / "disk" / "moved-here" / "a.txt").read_bytes() == files["a.txt"]

    # A SigV4 URL names the access key ID (never the secret key): that one may show.
    key_id = (adapter.credentials.get("access_key_id") or adapter.credentials.get("access_key"),)
    url = tool.run("url", "--expires", "600", "store:data/a.txt",
                   public=key_id).stdout.decode().splitlines()
    with urllib.request.urlopen(url[0], timeout=10) as response:
        assert response.read() == files["a.txt"]
    if shared_backend.name == "azure":
        put = tool.json("url", "--method", "PUT", "store:data/a.txt")[0]
        assert put["headers"] == {"x-ms-blob-type": "BlockBlob"} and put["method"] == "PUT"
        text = tool.run("url", "--method", "PUT", "store:x").stdout.decode()
        assert "x-ms-blob-type: BlockBlob" in text.splitlines()[1:]

    dry = tool.json("rm", "-r", "--dry-run", "store:data")
    assert dry[-1]["would_delete"] == 3 and len(adapter.list_files("data/")) == 3
    removed = tool.json("rm", "-r", "store:data")
    assert removed[-1]["deleted"] == 3 and adapter.list_files("data/") == []
    tool.run("rm", "store:piped/in.bin")
    assert not adapter.file_exists("piped/in.bin")

    assert tool.run("cp", "-r", "disk:copied", "back").returncode == 0
    assert (tool.tmp / "back" / "sub" / "b.csv").read_bytes() == files["sub/b.csv"]


def test_test_command_and_profiles_listing(cli: tuple[Cli, BaseStorageAdapter]) -> None:
    tool, _ = cli
    assert tool.run("test", "store").stdout.startswith(b"ok: profile store")
    listed = tool.json("profiles")
    assert [r["name"] for r in listed[:-1]] == ["disk", "store"]
    text = tool.run("profiles").stdout.decode()
    assert "store" in text and "disk" in text  # secrets are checked by tool.run


def test_sync_copies_only_what_changed(cli: tuple[Cli, BaseStorageAdapter]) -> None:
    tool, adapter = cli
    src = tool.tmp / "src"
    _tree(src)
    first = tool.json("sync", "src", "store:mirror")
    assert first[-1]["copied"] == 3
    stored = adapter.get_file_metadata("mirror/a.txt").metadata or {}
    assert stored["sync_mtime_ns"] == str(os.stat(src / "a.txt").st_mtime_ns)
    assert tool.json("sync", "src", "store:mirror")[-1] == {
        "summary": True, "command": "sync", "exit_code": 0, "copied": 0, "skipped": 3,
        "deleted": 0, "failed": 0, "bytes": 0}

    # Same size, mtime put back: invisible by mtime (as documented), caught by --checksum.
    before = os.stat(src / "a.txt")
    (src / "a.txt").write_bytes(b"ALPHA\n")
    os.utime(src / "a.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert tool.json("sync", "src", "store:mirror")[-1]["copied"] == 0
    assert tool.json("sync", "--checksum", "src", "store:mirror")[-1]["copied"] == 3
    assert adapter.download_file("mirror/a.txt") == b"ALPHA\n"
    assert tool.json("sync", "--checksum", "src", "store:mirror")[-1]["copied"] == 0
    (src / "a.txt").write_bytes(b"alpha\n")
    os.utime(src / "a.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    changed = tool.json("sync", "--checksum", "src", "store:mirror")
    assert [r["source"] for r in changed[:-1]] == ["src/a.txt"]

    os.utime(src / "sub" / "b.csv", ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    touched = tool.json("sync", "src", "store:mirror")
    assert [r["destination"] for r in touched[:-1]] == ["store:mirror/sub/b.csv"]

    # --delete, --dry-run, --exclude/--include (the last matching filter wins)
    (src / "sub" / "b.csv").unlink()
    (src / "skip.log").write_text("x")
    (src / "keep.log").write_text("y")
    adapter.upload_file(b"stays", "mirror/other.tmp")
    dry = tool.json("sync", "--delete", "--dry-run", "--exclude", "*.log", "--include",
                    "keep.log", "--exclude", "*.tmp", "src", "store:mirror")
    assert dry[-1]["would_copy"] == 1 and dry[-1]["would_delete"] == 1
    assert adapter.file_exists("mirror/sub/b.csv")
    done = tool.json("sync", "--delete", "--exclude", "*.log", "--include", "keep.log",
                     "--exclude", "*.tmp", "src", "store:mirror")
    assert done[-1]["copied"] == 1 and done[-1]["deleted"] == 1
    assert sorted(o.key for o in adapter.list_files("mirror/")) == [
        "mirror/a.txt", "mirror/keep.log", "mirror/other.tmp", "mirror/sub/deeper/c.bin"]

    # Back down, then across stores: a second run transfers nothing either way.
    assert tool.json("sync", "store:mirror", "down")[-1]["copied"] == 4
    assert (tool.tmp / "down" / "keep.log").read_text() == "y"
    assert tool.json("sync", "store:mirror", "down")[-1]["copied"] == 0
    assert tool.json("sync", "store:mirror", "disk:again")[-1]["copied"] == 4
    # With --checksum, the objects whose hash an earlier --checksum sync stored (and the
    # copy carried along) compare equal; the two uploaded without one are copied once.
    rehashed = tool.json("sync", "--checksum", "store:mirror", "disk:again")
    assert sorted(r["source"] for r in rehashed[:-1]) == ["store:mirror/keep.log",
                                                          "store:mirror/other.tmp"]
    assert tool.json("sync", "--checksum", "store:mirror", "disk:again")[-1]["copied"] == 0


def test_sync_deletes_nothing_when_a_copy_failed(tmp_path: Path) -> None:
    tool = Cli(tmp_path)
    tool.add("disk", "local", {"base_path": str(tmp_path / "disk")})
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "good.txt").write_text("g")
    (tmp_path / "src" / "bad\\name.txt").write_text("b")  # a backslash is no valid key
    (tmp_path / "disk" / "out").mkdir(parents=True)
    (tmp_path / "disk" / "out" / "extra.txt").write_text("e")
    result = tool.run("sync", "--delete", "src", "disk:out", "--json", code=1)
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert records[-1]["copied"] == 1 and records[-1]["failed"] == 1
    assert records[-1]["deleted"] == 0 and (tmp_path / "disk" / "out" / "extra.txt").exists()
    failed = [r for r in records[:-1] if not r.get("ok", True)]
    assert failed[0]["error"]["type"] == "StorageValidationError"
    errors = result.stderr.decode().strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("perceptra-storage: ") for line in errors)
    assert "backslash" in errors[0] and "nothing was deleted" in errors[1]


def test_exit_codes_and_one_line_errors(tmp_path: Path) -> None:
    tool = Cli(tmp_path)
    tool.add("disk", "local", {"base_path": str(tmp_path / "disk")})
    missing = tool.run("stat", "disk:nope.txt", code=3).stderr.decode()
    assert missing.count("\n") == 1 and "disk:nope.txt" in missing and "stat" in missing
    assert "Traceback" not in missing
    assert "Traceback" in tool.run("stat", "disk:nope.txt", "--debug", code=3).stderr.decode()
    assert json.loads(tool.run("stat", "disk:nope", "--json", code=3).stdout)[
        "error"]["type"] == "StorageNotFoundError"
    unknown = tool.run("ls", "nobody:x", code=2).stderr.decode()
    assert "no storage profile named 'nobody'" in unknown and "disk" in unknown
    assert b"../x" in tool.run("cp", "-", "disk:../x", stdin=b"1", code=2).stderr
    assert tool.run("ls", "not-a-profile-path", code=2).returncode == 2
    tool.run("cp", "-r", "absent-folder", "disk:x", code=3)
    (tmp_path / "profiles.toml").write_text("[broken\n")
    assert b"line 1" in tool.run("profiles", code=2).stderr


def test_permission_and_connection_failures(request: pytest.FixtureRequest,
                                            tmp_path: Path) -> None:
    """Exit 4 and 5, and what ``test`` says for each way of not reaching a store."""
    from tests.cases_s3 import minio_config, new_bucket, s3_config

    rgw = request.getfixturevalue("rgw_server")
    moto = request.getfixturevalue("moto_server")
    bucket, remove = new_bucket(rgw)
    request.addfinalizer(remove)
    fast = {"connect_timeout": 2.0, "read_timeout": 5.0, "max_attempts": 1}
    wrong = "wrong-secret-value-1234"
    tool = Cli(tmp_path, secrets=(wrong, rgw.secret_key, moto.secret_key))
    tool.add("denied", "minio", {**minio_config(rgw, bucket), **fast},
             {"access_key": rgw.access_key, "secret_key": wrong})
    keys = {"access_key_id": moto.access_key, "secret_access_key": moto.secret_key}
    tool.add("nobucket", "s3", {**s3_config(moto, "no-such-bucket-here"), **fast}, keys)
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    tool.add("refused", "s3", {**s3_config(moto, "some-bucket"), **fast,
                               "endpoint_url": f"http://127.0.0.1:{closed}"}, keys)
    tool.add("nodns", "s3", {**s3_config(moto, "some-bucket"), **fast,
                             "endpoint_url": "http://no-such-host.invalid:9"}, keys)
    tool.add("notls", "s3", {**s3_config(moto, "some-bucket"), **fast,
                             "endpoint_url": moto.endpoint_url.replace("http:", "https:")}, keys)

    assert "authentication" in tool.run("test", "denied", code=4).stderr.decode()
    assert tool.run("ls", "denied:", code=4).returncode == 4
    assert "does not exist" in tool.run("test", "nobucket", code=3).stderr.decode()
    assert "TCP connection failed" in tool.run("test", "refused", code=5).stderr.decode()
    assert tool.run("cat", "refused:k", code=5).returncode == 5
    assert "name resolution failed" in tool.run("test", "nodns", code=5).stderr.decode()
    assert "TLS handshake failed" in tool.run("test", "notls", code=5).stderr.decode()
    record = tool.json("test", "refused", code=5)[0]
    assert record["ok"] is False and record["reason"].startswith("TCP")


def test_readme_command_line_examples_run(request: pytest.FixtureRequest,
                                          tmp_path: Path) -> None:
    """The README's profiles file and its command-line block, as a reader would run them,
    with only the cloud substituted: tenant-a's bucket lives on moto."""
    import re
    import uuid

    from tests.cases_s3 import s3_client

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    profiles = re.search(r"## Profiles\n.*?```toml\n(.*?)```", readme, re.S)
    commands = re.search(r"## Command line\n.*?```bash\n(.*?)```", readme, re.S)
    assert profiles and commands
    moto = request.getfixturevalue("moto_server")
    bucket = f"tenant-a-{uuid.uuid4().hex[:12]}"
    s3_client(moto).create_bucket(Bucket=bucket, CreateBucketConfiguration={
        "LocationConstraint": "eu-west-1"})
    text = profiles.group(1).replace('"tenant-a-data"', json.dumps(bucket)).replace(
        'region = "eu-west-1" }', f'region = "eu-west-1", endpoint_url = '
                                  f'{json.dumps(moto.endpoint_url)} }}').replace(
        "/tmp/perceptra-scratch", str(tmp_path / "scratch"))
    (tmp_path / "profiles.toml").write_text(text)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "q1.csv").write_text("quarter,total\nq1,42\n")
    env = {**os.environ, "PERCEPTRA_STORAGE_PROFILES": str(tmp_path / "profiles.toml"),
           "TENANT_A_KEY_ID": moto.access_key, "TENANT_A_SECRET": moto.secret_key,
           "PATH": f"{CLI.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # Unmeasured by coverage: measuring the twelve processes cost 1 to 4 s more CPU per
    # run (12.7 and 15.9 s against 11.7 and 11.8 s), and the in-process tests reach every
    # line of the CLI these commands reach (test_cli.py with and without this test left
    # the same lines of cli.py unrun).
    env.pop("COVERAGE_PROCESS_CONFIG", None)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", commands.group(1)],
                            cwd=tmp_path, env=env, capture_output=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "quarter,total" in out and "ok: profile tenant-a" in out
    assert moto.secret_key not in out + result.stderr.decode()
    assert (tmp_path / "scratch" / "archive" / "q1.csv").exists()
    listing = (tmp_path / "listing.ndjson").read_text().splitlines()
    assert json.loads(listing[0])["key"] == "reports/2026/q1.csv"


def test_quiet_concurrency_and_progress_only_on_a_terminal(tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    tool = Cli(tmp_path)
    tool.add("disk", "local", {"base_path": str(tmp_path / "disk")})
    _tree(tmp_path / "src")
    quiet = tool.run("cp", "-r", "--quiet", "--concurrency", "1", "src", "disk:q")
    assert quiet.stdout == b"" and quiet.stderr == b""
    assert len(list((tmp_path / "disk" / "q").rglob("*.*"))) == 3
    assert tool.run("cp", "-r", "--concurrency", "0", "src", "disk:z", code=2).returncode == 2
    piped = tool.run("sync", "src", "disk:p")
    assert b"it/s" not in piped.stderr and b"%|" not in piped.stderr  # not a terminal

    leader, follower = pty.openpty()
    # A terminal of 24 x 80 (a fresh pty is 0 x 0, where tqdm draws an empty bar).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        result = subprocess.run([str(CLI), "sync", "src", "disk:t"], stdout=subprocess.PIPE,
                                stderr=follower, env={**os.environ, **tool.env}, cwd=tmp_path,
                                timeout=120, check=False)
        os.close(follower)
        seen = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(leader, 65536):
                seen += chunk
    finally:
        os.close(leader)
    assert result.returncode == 0
    assert b"/3 [" in seen and b"file/s" in seen  # tqdm drew its bar on the terminal
    assert b"%|" not in result.stdout
