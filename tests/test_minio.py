"""The ``minio`` backend's entry point: the whole contract, then what only it has
(MinIO-style config, and everything a real SigV4-checking server refuses).  Runs
against Ceph's RADOS Gateway over HTTP."""

from __future__ import annotations

import functools
import io
import pickle
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from perceptra_storage import (
    StorageConnectionError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    StorageValidationError,
    get_storage_adapter,
)
from perceptra_storage.backends._s3fs import PART_SIZE
from perceptra_storage.backends.minio import MinIOStorageAdapter
from tests.cases_s3 import (
    ENGINES,
    fetch,
    minio_config,
    minio_credentials,
    new_bucket,
    s3_client,
)
from tests.contract import Contract
from tests.servers.common import S3Server, free_port


class TestMinioContract(Contract):
    """The whole contract on the minio backend."""

    case = "minio"

MiB = 2**20


@pytest.fixture
def bucket(rgw_server: S3Server) -> Iterator[str]:
    name, remove = new_bucket(rgw_server)
    yield name
    remove()


@pytest.fixture
def minio(rgw_server: S3Server, bucket: str) -> MinIOStorageAdapter:
    adapter = get_storage_adapter("minio", minio_config(rgw_server, bucket),
                                  minio_credentials(rgw_server))
    assert isinstance(adapter, MinIOStorageAdapter)
    return adapter


def _endpoint(config: dict[str, Any]) -> str:
    adapter = get_storage_adapter("minio", {"bucket_name": "b-1", **config})
    return str(adapter.native_storage_options["endpoint_url"])


# --- config translation ---------------------------------------------------------------


def test_seed_config_translates_to_s3_options() -> None:
    config = {"bucket_name": "my-bucket", "endpoint_url": "play.min.io:9000", "secure": True,
              "region": "us-east-1"}
    credentials = {"access_key": "MINIOKEY", "secret_key": "m1n10-s3cr3t"}
    before = (dict(config), dict(credentials))
    adapter = get_storage_adapter("minio", config, credentials)
    assert (config, credentials) == before
    options = adapter.native_storage_options
    assert options["endpoint_url"] == "https://play.min.io:9000"
    assert (options["key"], options["secret"]) == ("MINIOKEY", "m1n10-s3cr3t")
    assert options["config_kwargs"]["s3"] == {"addressing_style": "path"}
    assert adapter.get_public_url("a b.txt") == "https://play.min.io:9000/my-bucket/a%20b.txt"
    assert "m1n10" not in repr(adapter)


@pytest.mark.parametrize("config, endpoint", [
    ({"endpoint_url": "minio.local:9000"}, "https://minio.local:9000"),
    ({"endpoint_url": "minio.local:9000", "secure": False}, "http://minio.local:9000"),
    ({"endpoint_url": "10.0.0.5:9000", "secure": True}, "https://10.0.0.5:9000"),
    ({"endpoint_url": "minio.local"}, "https://minio.local"),
    ({"endpoint_url": "http://minio.local:9000"}, "http://minio.local:9000"),
    ({"endpoint_url": "https://minio.local:9000/"}, "https://minio.local:9000"),
    ({"endpoint_url": "http://minio.local:9000", "secure": False}, "http://minio.local:9000"),
    ({"endpoint_url": "[::1]:9000", "secure": False}, "http://[::1]:9000"),
])
def test_endpoint_and_secure(config: dict[str, Any], endpoint: str) -> None:
    assert _endpoint(config) == endpoint


@pytest.mark.parametrize("config", [
    {"endpoint_url": "http://minio.local:9000", "secure": True},
    {"endpoint_url": "https://minio.local:9000", "secure": False},
])
def test_scheme_that_contradicts_secure_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(StorageValidationError, match="secure"):
        _endpoint(config)


@pytest.mark.parametrize("config, field", [
    ({"bucket_name": "b-1"}, "endpoint_url"),
    ({"bucket_name": "b-1", "endpoint_url": "host:port"}, "endpoint_url"),
    ({"bucket_name": "b-1", "endpoint_url": "host:9000/path"}, "endpoint_url"),
    ({"bucket_name": "b-1", "endpoint_url": "host:9000", "secure": "yes"}, "secure"),
    ({"bucket_name": "Bad_Bucket", "endpoint_url": "host:9000"}, "bucket_name"),
    ({"bucket": "b-1", "endpoint_url": "host:9000"}, "bucket_name"),
])
def test_bad_config_names_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(StorageValidationError, match=field):
        get_storage_adapter("minio", config)


def test_region_defaults_to_us_east_1() -> None:
    adapter = get_storage_adapter("minio", {"bucket_name": "b-1", "endpoint_url": "h:9000"})
    assert adapter.native_storage_options["client_kwargs"] == {"region_name": "us-east-1"}


@pytest.mark.parametrize("credentials, field", [
    ({"access_key": "KEY"}, "secret_key"),
    ({"secret_key": "m1n10-s3cr3t"}, "access_key"),
    ({"access_key_id": "KEY", "secret_access_key": "m1n10-s3cr3t"},
     "access_key, profile, refresh, secret_key"),
])
def test_bad_credentials_name_the_field(credentials: dict[str, str], field: str) -> None:
    with pytest.raises(StorageValidationError, match=field) as info:
        get_storage_adapter("minio", {"bucket_name": "b-1", "endpoint_url": "h:9000"},
                            credentials)
    assert "m1n10" not in str(info.value)


# --- presigned URLs against a server that checks them ----------------------------------------


def test_presigned_urls_for_every_method_work_with_plain_http(
        minio: MinIOStorageAdapter) -> None:
    put = minio.generate_presigned_url("up/new.bin", expiration=300, method="PUT")
    assert put.headers == {}
    assert fetch(put.url, "PUT", b"put through urllib")[0] == 200
    assert minio.download_file("up/new.bin") == b"put through urllib"
    assert fetch(minio.generate_presigned_url("up/new.bin").url) == (200, b"put through urllib")
    assert fetch(minio.generate_presigned_url("up/new.bin", method="HEAD").url, "HEAD")[0] == 200
    delete = minio.generate_presigned_url("up/new.bin", method="DELETE")
    assert fetch(delete.url, "DELETE")[0] == 204
    assert not minio.file_exists("up/new.bin")


def test_tampered_expired_misused_and_wrongly_signed_urls_are_refused(
        minio: MinIOStorageAdapter, rgw_server: S3Server, bucket: str) -> None:
    minio.upload_file(b"secret bytes", "private/a.txt")
    minio.upload_file(b"other bytes", "private/b.txt")
    good = minio.generate_presigned_url("private/a.txt", expiration=60).url
    assert fetch(good) == (200, b"secret bytes")

    position = good.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    flipped = "0" if good[position] != "0" else "1"
    tampered = good[:position] + flipped + good[position + 1:]
    assert fetch(tampered)[0] == 403

    assert fetch(good.replace("private/a.txt", "private/b.txt"))[0] == 403
    put = minio.generate_presigned_url("private/a.txt", method="PUT").url
    assert fetch(put.replace("private/a.txt", "private/c.txt"), "PUT", b"x")[0] == 403
    assert fetch(good, "DELETE")[0] == 403  # signed for GET, used for DELETE

    wrong = get_storage_adapter("minio", minio_config(rgw_server, bucket),
                                {"access_key": rgw_server.access_key,
                                 "secret_key": "not-the-secret"})
    assert fetch(wrong.generate_presigned_url("private/a.txt").url)[0] == 403

    short = minio.generate_presigned_url("private/a.txt", expiration=1)
    time.sleep(max(0.0, short.expires_at.timestamp() - time.time()) + 1.5)
    assert fetch(short.url)[0] == 403
    assert minio.download_file("private/a.txt") == b"secret bytes"
    assert not minio.file_exists("private/c.txt")


# --- failures are typed, and carry no secret ------------------------------------------------


def test_wrong_secret_is_a_permission_error(rgw_server: S3Server, bucket: str) -> None:
    adapter = get_storage_adapter("minio", minio_config(rgw_server, bucket),
                                  {"access_key": rgw_server.access_key,
                                   "secret_key": "wrong-secret-value"})
    calls = [lambda: adapter.test_connection(timeout=5),
             lambda: adapter.upload_file(b"x", "k"),
             lambda: adapter.download_file("k"),
             lambda: adapter.list_files()]
    for call in calls:
        start = time.monotonic()
        with pytest.raises(StoragePermissionError) as info:
            call()
        assert time.monotonic() - start < 7
        text = str(info.value)
        assert "wrong-secret-value" not in text and "Signature=" not in text
        assert info.value.backend == "minio"


def test_unknown_access_key_is_a_permission_error(rgw_server: S3Server, bucket: str) -> None:
    adapter = get_storage_adapter("minio", minio_config(rgw_server, bucket),
                                  {"access_key": "NOSUCHKEY", "secret_key": "whatever-1"})
    with pytest.raises(StoragePermissionError):
        adapter.test_connection(timeout=5)


def test_missing_bucket_is_not_found(rgw_server: S3Server) -> None:
    adapter = get_storage_adapter("minio", minio_config(rgw_server, "never-created"),
                                  minio_credentials(rgw_server))
    with pytest.raises(StorageNotFoundError) as info:
        adapter.test_connection(timeout=5)
    assert rgw_server.secret_key not in str(info.value)
    with pytest.raises(StorageNotFoundError):
        adapter.download_file("k")


def test_stopped_server_is_a_connection_error(rgw_server: S3Server) -> None:
    config = {"bucket_name": "b-1", "endpoint_url": f"127.0.0.1:{free_port()}", "secure": False}
    adapter = get_storage_adapter("minio", config, minio_credentials(rgw_server))
    for call in (lambda: adapter.test_connection(timeout=5),
                 lambda: adapter.upload_file(b"x", "k")):
        start = time.monotonic()
        with pytest.raises(StorageConnectionError) as info:
            call()
        assert time.monotonic() - start < 7
        assert rgw_server.secret_key not in str(info.value)


def test_aws_environment_credentials_are_used_and_checked(
        rgw_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rgw_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rgw_server.secret_key)
    adapter = get_storage_adapter("minio", minio_config(rgw_server, bucket))
    assert adapter.test_connection(timeout=5)
    adapter.upload_file(b"from the chain", "chain.txt")
    assert fetch(adapter.generate_presigned_url("chain.txt").url) == (200, b"from the chain")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(StoragePermissionError):
        get_storage_adapter("minio", minio_config(rgw_server, bucket)).test_connection(timeout=5)


# --- what a real server keeps -------------------------------------------------------------


def test_metadata_names_with_underscores_survive(minio: MinIOStorageAdapter) -> None:
    minio.upload_file(b"x", "m.bin", metadata={"run_id": "7", "a_b_c": "d"})
    assert minio.get_file_metadata("m.bin").metadata == {"run_id": "7", "a_b_c": "d"}


def test_multipart_upload_and_aborted_failure(minio: MinIOStorageAdapter, rgw_server: S3Server,
                                              bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "twenty.bin"
    data = bytes(range(256)) * (20 * MiB // 256)
    local.write_bytes(data)
    minio.upload_file(local, "multi/twenty.bin")
    info = minio.get_file_metadata("multi/twenty.bin")
    parts = -(-20 * 2**20 // PART_SIZE)
    assert info.size == len(data) and info.etag and info.etag.endswith(f"-{parts}")
    assert minio.download_file("multi/twenty.bin") == data

    client = s3_client(rgw_server)

    class Dropping(io.RawIOBase):
        mode = "rb"
        sent = 0

        def readable(self) -> bool:
            return True

        def read(self, size: Any = -1) -> bytes:
            if self.sent >= 12 * MiB:
                assert client.list_multipart_uploads(Bucket=bucket).get("Uploads")
                raise OSError("source dropped")
            self.sent += MiB
            return b"\x05" * MiB

    with pytest.raises(StorageError):
        minio.upload_file(Dropping(), "multi/broken.bin")
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert not minio.file_exists("multi/broken.bin")


def test_readme_minio_example_reaches_the_server(rgw_server: S3Server,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's MinIO block as written, with only the server and keys swapped in."""
    import re

    import perceptra_storage

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                if "get_storage_adapter('minio'" in b]
    client = s3_client(rgw_server)
    client.create_bucket(Bucket="my-bucket")
    real = perceptra_storage.get_storage_adapter

    def at_rgw(backend: str, config: Any = None, credentials: Any = None) -> Any:
        assert config["endpoint_url"] == "play.min.io:9000" and config["secure"] is True
        config = {**config, "endpoint_url": rgw_server.endpoint_url.split("://")[1],
                  "secure": False}
        return real(backend, config, minio_credentials(rgw_server))

    monkeypatch.setattr(perceptra_storage, "get_storage_adapter", at_rgw)
    namespace: dict[str, Any] = {}
    try:
        exec(compile("from perceptra_storage import get_storage_adapter\n" + block,
                     "README.md minio block", "exec"), namespace)
        adapter = namespace["adapter"]
        assert adapter.test_connection() is True
        adapter.upload_file(b"from the README", "readme.txt")
        assert fetch(adapter.generate_presigned_url("readme.txt").url) == \
            (200, b"from the README")
        adapter.delete_file("readme.txt")
    finally:
        client.delete_bucket(Bucket="my-bucket")


def test_bulk_delete_reports_the_keys_a_bucket_policy_protects(
        minio: MinIOStorageAdapter, rgw_server: S3Server, bucket: str) -> None:
    # One DeleteObjects request answers per key; s3fs drops those answers, so a denied key
    # would look deleted. An explicit Deny binds the bucket owner too.
    import json

    minio.upload_files({"open/a": b"a", "kept/b": b"b", "open/c": b"c"})
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": {"AWS": ["*"]}, "Action": ["s3:DeleteObject"],
        "Resource": [f"arn:aws:s3:::{bucket}/kept/*"]}]}
    admin = s3_client(rgw_server)
    admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    try:
        result = minio.delete_files(["open/a", "kept/b", "open/c"], missing_ok=True)
    finally:
        admin.delete_bucket_policy(Bucket=bucket)
    assert result.succeeded == ["open/a", "open/c"]
    assert isinstance(result.failed["kept/b"], StoragePermissionError)
    assert "kept/b" in str(result.failed["kept/b"])
    assert [o.key for o in minio.list_files()] == ["kept/b"]


# --- credentials from a shared-file profile, and credentials that renew ---------------------


def _aws_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               profiles: dict[str, tuple[str, str]]) -> None:
    """AWS shared config and credentials files holding ``profiles`` (name: key, secret),
    and no other AWS credentials in the environment."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    credentials = "".join(f"[{name}]\naws_access_key_id = {key}\naws_secret_access_key = "
                          f"{secret}\n" for name, (key, secret) in profiles.items())
    config = "".join(f"[profile {name}]\nregion = us-east-1\n" for name in profiles)
    (tmp_path / "credentials").write_text(credentials)
    (tmp_path / "config").write_text(config)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))


@ENGINES
def test_a_shared_file_profile_signs_every_request(
        rgw_server: S3Server, bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, engine: str) -> None:
    _aws_files(tmp_path, monkeypatch, {"default": ("NOSUCHKEY", "not-the-secret"),
                                       "tenant": (rgw_server.access_key, rgw_server.secret_key),
                                       "stale": (rgw_server.access_key, "revoked-secret")})
    config = {**minio_config(rgw_server, bucket), "engine": engine}
    adapter = get_storage_adapter("minio", config, {"profile": "tenant"})
    with caplog.at_level("DEBUG"):
        adapter.upload_file(b"as tenant", "p.txt")
        assert fetch(adapter.generate_presigned_url("p.txt").url) == (200, b"as tenant")
    stale = get_storage_adapter("minio", config, {"profile": "stale"})
    with pytest.raises(StoragePermissionError) as info:
        stale.download_file("p.txt")
    shown = [repr(adapter), str(adapter.credentials), str(info.value), repr(info.value),
             caplog.text]
    assert not any(secret in text for text in shown
                   for secret in (rgw_server.secret_key, "revoked-secret"))
    with pytest.raises(StorageValidationError, match=r"profile.*'tenant-b'"):
        get_storage_adapter("minio", minio_config(rgw_server, bucket), {"profile": "tenant-b"})
    with pytest.raises(StorageValidationError, match="one of"):
        get_storage_adapter("minio", minio_config(rgw_server, bucket),
                            {"profile": "tenant", **minio_credentials(rgw_server)})


def test_credentials_from_a_refresh_function_renew_before_they_expire(
        rgw_server: S3Server, bucket: str) -> None:
    """A long-running process, on each engine (one wait serves both): the first
    temporary credentials stop working (here the server refuses them at once), and the
    next call after they near their expiry uses the fresh ones the function returns,
    without a new adapter."""
    calls: dict[str, list[datetime]] = {"fsspec": [], "obstore": []}

    def refresh_of(engine: str) -> Any:
        def refresh() -> dict[str, Any]:
            made = calls[engine]
            made.append(datetime.now(UTC))
            secret = "expired-secret" if len(made) == 1 else rgw_server.secret_key
            # botocore renews 15 minutes ahead: the first answer enters that window in 2 s.
            lifetime = timedelta(minutes=15, seconds=2) if len(made) == 1 else \
                timedelta(hours=1)
            return {"access_key_id": rgw_server.access_key, "secret_access_key": secret,
                    "expires_at": made[-1] + lifetime}

        return refresh

    adapters = {engine: get_storage_adapter(
        "minio", {**minio_config(rgw_server, bucket), "engine": engine},
        {"refresh": refresh_of(engine)}) for engine in calls}
    for engine, adapter in adapters.items():
        assert calls[engine] == []  # building the adapter fetches nothing
        with pytest.raises(StoragePermissionError):
            adapter.upload_file(b"x", f"{engine}.txt")
    time.sleep(2.1)
    for engine, adapter in adapters.items():
        adapter.upload_file(b"renewed", f"{engine}.txt")
        assert len(calls[engine]) == 2, engine
        assert adapter.download_file(f"{engine}.txt") == b"renewed"
        assert fetch(adapter.generate_presigned_url(f"{engine}.txt").url) == (200, b"renewed")
        assert "expired-secret" not in repr(adapter)


def _fixed_keys(access_key: str, secret_key: str) -> dict[str, Any]:
    """A refresh function at module level (bound to its keys by functools.partial), as
    the README asks, so that adapters and filesystems using it pickle."""
    return {"access_key_id": access_key, "secret_access_key": secret_key,
            "expires_at": datetime.now(UTC) + timedelta(hours=1)}


def test_refresh_credentials_survive_pickling_and_sign_the_engines_clean_up(
        rgw_server: S3Server, bucket: str) -> None:
    """On the obstore engine, a filesystem rebuilt from its pickle gets its keys from the
    refresh function too, and the multipart clean-up's botocore client (which finds and
    aborts the uploads obstore leaves) signs with them: RGW refuses any other key."""
    refresh = functools.partial(_fixed_keys, rgw_server.access_key, rgw_server.secret_key)
    adapter = get_storage_adapter("minio", {**minio_config(rgw_server, bucket),
                                            "engine": "obstore"}, {"refresh": refresh})
    adapter.upload_file(b"renewable", "k.txt")
    assert pickle.loads(pickle.dumps(adapter)).download_file("k.txt") == b"renewable"
    rebuilt = pickle.loads(pickle.dumps(adapter.filesystem))
    assert rebuilt.cat_file(f"{bucket}/k.txt") == b"renewable"
    admin = s3_client(rgw_server)
    upload = admin.create_multipart_upload(Bucket=bucket, Key="mp.bin")["UploadId"]
    assert adapter.filesystem._open_uploads(bucket, "mp.bin") == {upload}
    adapter.filesystem._abort_new(bucket, "mp.bin", set())
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


class TestMinioObstoreContract(Contract):
    """The whole contract on the minio backend's obstore engine, against Ceph RGW."""

    case = "minio-obstore"
