"""PerceptraStorage in a real Django project (tests/django_project), on every backend.

The cases are those Django's own storage tests exercise, in our words: saving and
reading text and bytes, name collisions, listings, existence of files and folders,
deleting what is not there, sizes, times, URLs of awkward names, traversal names,
a model with a FileField and an ImageField, collectstatic through the manifest
mixin, per-tenant storages, and what Django's error pages show.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from perceptra_storage import StorageConnectionError, get_adapter_info, register_profile
from tests.conftest import BACKENDS, ROUTED, Backend, started_backend, started_entry

backend = pytest.fixture(params=ROUTED, name="backend")(started_entry)
"""Django's storage API on every route entry, the obstore engine's included."""

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201a5b5b8a90000000049454e44ae426082")
"""A 1x1 PNG image."""
STORAGE = "perceptra_storage.contrib.django.PerceptraStorage"
MANIFEST = "perceptra_storage.contrib.django.PerceptraManifestStorage"


@pytest.fixture(scope="session")
def django_project() -> None:
    """Django set up once per process with tests/django_project, its tables created."""
    import django
    from django.conf import settings

    if not settings.configured:
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django_project.settings"
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


def _storages(options: dict[str, Any], static: str = STORAGE) -> dict[str, Any]:
    return {"default": {"BACKEND": STORAGE, "OPTIONS": {**options, "location": "media"}},
            "staticfiles": {"BACKEND": static, "OPTIONS": {**options, "location": "static"}}}


@pytest.fixture
def media(backend: Backend, django_project: None) -> Iterator[Any]:
    """``default_storage`` (and ``staticfiles``) on a fresh store of the backend."""
    from django.core.files.storage import default_storage
    from django.test import override_settings

    with override_settings(STORAGES=_storages(backend.make().storage_options)):
        yield default_storage


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            # A file:// URL (the local backend's) answers without an HTTP status.
            return response.status or 200, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# -- the Storage API ----------------------------------------------------------------------


def test_save_open_and_read_text_and_bytes(media: Any, backend: Backend) -> None:
    from django.core.files.base import ContentFile
    from django.core.files.uploadedfile import SimpleUploadedFile

    assert media.save("notes/hello.txt", ContentFile("héllo, text")) == "notes/hello.txt"
    with media.open("notes/hello.txt") as stored:
        assert stored.read() == "héllo, text".encode()
    with media.open("notes/hello.txt", "r") as stored:
        assert stored.read() == "héllo, text"
    assert media.size("notes/hello.txt") == len("héllo, text".encode())

    data = bytes(range(256)) * 40
    assert media.save("raw/data.bin", ContentFile(data)) == "raw/data.bin"
    with media.open("raw/data.bin", "rb") as stored:
        assert stored.size == len(data)
        stored.seek(5000)
        assert stored.read(3) == data[5000:5003]
        stored.seek(0)
        assert b"".join(stored.chunks(chunk_size=4096)) == data

    with media.open("written/by-open.txt", "wb") as target:
        target.write(b"written ")
        target.write(b"in two parts")
    assert media.open("written/by-open.txt").read() == b"written in two parts"
    with media.open("written/text.txt", "w") as target:
        target.write("ça va\n")
    assert media.open("written/text.txt", "r").read() == "ça va\n"
    with pytest.raises(RuntimeError), media.open("written/failed.txt", "wb") as target:
        target.write(b"never stored")
        raise RuntimeError("the block failed")
    assert not media.exists("written/failed.txt")

    adapter = backend.make()
    media.save("types/photo.png", ContentFile(PNG))
    media.save("types/upload.dat", SimpleUploadedFile("upload.dat", b"a,b\n",
                                                      content_type="text/csv"))
    assert adapter.get_file_metadata("media/types/photo.png").content_type == "image/png"
    assert adapter.get_file_metadata("media/types/upload.dat").content_type == "text/csv"
    assert adapter.download_file("media/notes/hello.txt") == "héllo, text".encode()

    with pytest.raises(FileNotFoundError):
        media.open("missing.txt")
    with pytest.raises(FileNotFoundError):
        media.size("missing.txt")


def test_times_are_aware_with_use_tz_and_naive_without(media: Any) -> None:
    from django.core.files.base import ContentFile
    from django.test import override_settings

    before = datetime.now(UTC) - timedelta(seconds=5)
    media.save("t.txt", ContentFile(b"x"))
    for read in (media.get_modified_time, media.get_accessed_time, media.get_created_time):
        moment = read("t.txt")
        assert moment.tzinfo is not None and before <= moment <= before + timedelta(minutes=2)
    with override_settings(USE_TZ=False, TIME_ZONE="UTC"):
        naive = media.get_modified_time("t.txt")
        assert naive.tzinfo is None and naive == moment.replace(tzinfo=None)
    with pytest.raises(FileNotFoundError):
        media.get_modified_time("gone.txt")


def test_name_collisions_with_and_without_file_overwrite(media: Any, backend: Backend) -> None:
    from django.core.files.base import ContentFile

    from perceptra_storage.contrib.django import PerceptraStorage

    first = media.save("docs/report.tar.gz", ContentFile(b"one"))
    second = media.save("docs/report.tar.gz", ContentFile(b"two"))
    assert first == "docs/report.tar.gz" and second != first
    assert second.startswith("docs/report_") and second.endswith(".tar.gz")
    assert media.open(first).read() == b"one" and media.open(second).read() == b"two"
    long = media.get_available_name("docs/" + "n" * 40 + ".txt", max_length=20)
    assert len(long) <= 20 and long.startswith("docs/n") and long.endswith(".txt")

    options = {**backend.make().storage_options, "location": "media"}
    overwriting = PerceptraStorage(**options, file_overwrite=True)
    assert overwriting.save("docs/report.tar.gz", ContentFile(b"three")) == first
    assert media.open(first).read() == b"three"


def test_listdir_exists_and_delete(media: Any) -> None:
    from django.core.files.base import ContentFile

    for name in ("a/b/c.txt", "a/d.txt", "a/e/f.txt", "top.txt"):
        media.save(name, ContentFile(name.encode()))
    assert media.listdir("") == (["a"], ["top.txt"])
    assert media.listdir("a") == (["b", "e"], ["d.txt"]) == media.listdir("a/")
    assert media.listdir("a/b") == ([], ["c.txt"])
    with pytest.raises(FileNotFoundError):
        media.listdir("nowhere")
    with pytest.raises(NotADirectoryError):
        media.listdir("top.txt")

    assert media.exists("a/d.txt") and media.exists("a") and media.exists("a/b/")
    assert not media.exists("a/zz") and not media.exists("a/d.txt/") and not media.exists("t")
    media.delete("a/d.txt")
    assert not media.exists("a/d.txt")
    media.delete("a/d.txt")  # missing: fine, as Django expects
    with pytest.raises(ValueError, match="name must be given"):
        media.delete("")


def test_urls_of_names_with_spaces_and_non_ascii(media: Any, backend: Backend) -> None:
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages
    from django.test import override_settings

    name = media.save("my files/naïve résumé 1.txt", ContentFile(b"cv"))
    quoted = urllib.parse.quote("media/my files/naïve résumé 1.txt")
    if "GET" not in backend.presign_methods:
        with pytest.raises(Exception, match="URL"):
            media.url(name)
        return
    url = media.url(name)
    assert quoted in url
    assert _fetch(url) == (200, b"cv")

    options = backend.make().storage_options
    if "public_base_url" in get_adapter_info(backend.name)["config"]:
        cdn = {**options, "config": {**options["config"],
                                     "public_base_url": "https://cdn.example.com/assets"},
               "querystring_auth": False}
        with override_settings(STORAGES=_storages(cdn)):
            assert storages["default"].url(name) == f"https://cdn.example.com/assets/{quoted}"


def test_traversal_names_are_refused_before_any_io(django_project: None) -> None:
    from django.core.exceptions import SuspiciousFileOperation
    from django.core.files.base import ContentFile

    from perceptra_storage.contrib.django import PerceptraStorage

    # Nothing listens on port 9: any request would fail with a connection error.
    storage = PerceptraStorage(backend="s3", config={
        "bucket_name": "unreachable", "endpoint_url": "http://127.0.0.1:9", "max_attempts": 1},
        credentials={"access_key_id": "AKIAUNUSED", "secret_access_key": "unused"})
    for name in ("../evil.txt", "/etc/passwd", "a/../../b.txt"):
        with pytest.raises(SuspiciousFileOperation):
            storage.save(name, ContentFile(b"x"))
    for call in (storage.exists, storage.url, storage.size, storage.open, storage.delete):
        with pytest.raises(SuspiciousFileOperation):
            call("a/../../etc/passwd")
    with pytest.raises(StorageConnectionError):
        storage.exists("fine.txt")


# -- models, collectstatic --------------------------------------------------------------------


def test_model_with_file_and_image_fields(media: Any) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.django_project.app.models import Document

    document = Document.objects.create(
        title="report",
        attachment=SimpleUploadedFile("report 2026.pdf", b"%PDF-1.4 body",
                                      content_type="application/pdf"),
        picture=SimpleUploadedFile("dot.png", PNG, content_type="image/png"))
    stored = Document.objects.get(pk=document.pk)
    assert stored.attachment.name == f"docs/{datetime.now().year}/report_2026.pdf"
    with stored.attachment.open("rb") as attachment:
        assert attachment.read() == b"%PDF-1.4 body"
    assert stored.attachment.size == len(b"%PDF-1.4 body")
    assert (stored.picture.width, stored.picture.height) == (1, 1)
    assert media.exists(stored.picture.name)
    stored.attachment.delete(save=True)
    assert not media.exists(f"docs/{datetime.now().year}/report_2026.pdf")
    assert Document.objects.get(pk=document.pk).attachment.name == ""


def test_collectstatic_with_the_manifest_mixin(backend: Backend, django_project: None) -> None:
    from django.contrib.staticfiles.storage import staticfiles_storage
    from django.core.management import call_command
    from django.test import override_settings

    options = backend.make().storage_options
    if "GET" not in backend.presign_methods:  # no URL of its own: served under STATIC_URL
        options["base_url"] = "/static/"
    with override_settings(STORAGES=_storages(options, static=MANIFEST)):
        call_command("collectstatic", interactive=False, verbosity=0)
        assert staticfiles_storage.exists("staticfiles.json")
        hashed = staticfiles_storage.stored_name("css/site.css")
        assert hashed != "css/site.css" and staticfiles_storage.exists(hashed)
        image = staticfiles_storage.stored_name("img/dot.png")
        with staticfiles_storage.open(hashed) as css:
            assert image.rpartition("/")[2] in css.read().decode()
        url = staticfiles_storage.url("css/site.css")
        assert url.endswith(urllib.parse.quote(hashed)) and "?" not in url
        call_command("collectstatic", interactive=False, verbosity=0)  # nothing changed
        source = Path(__file__).parent / "django_project" / "static" / "img" / "dot.png"
        assert backend.make().download_file(f"static/{image}") == source.read_bytes()


# -- signed URLs over HTTP -------------------------------------------------------------------------

CHECKS_SIGNATURES = ("minio", "azure")
"""Servers that verify signatures and expiry (Ceph RGW, Azurite); moto accepts any URL."""


def test_signed_urls_work_over_http_and_expire(request: pytest.FixtureRequest,
                                               tmp_path: Path, django_project: None) -> None:
    from django.core.files.base import ContentFile

    from perceptra_storage.contrib.django import PerceptraStorage

    expiring = []
    for case in CHECKS_SIGNATURES:
        with started_backend(case, request, tmp_path / case) as backend:
            options = backend.make().storage_options
            storage = PerceptraStorage(**options, location="media")
            storage.save("private/a b.txt", ContentFile(b"private bytes"))
            assert _fetch(storage.url("private/a b.txt")) == (200, b"private bytes")
            short = PerceptraStorage(**options, location="media", querystring_expire=1)
            expiring.append(short.url("private/a b.txt"))
            tampered = storage.url("private/a b.txt").replace("a%20b", "a%20c")
            assert _fetch(tampered)[0] in (403, 404)
            if backend.name == "minio":  # the last one: its bucket stays until the sleep ends
                time.sleep(2.5)
                assert all(_fetch(url)[0] == 403 for url in expiring)


# -- per-tenant storage ---------------------------------------------------------------------


@pytest.fixture
def two_tenants(request: pytest.FixtureRequest, backend: Backend, tmp_path: Path,
                django_project: None) -> Iterator[tuple[str, str, Any, Any]]:
    """Two profiles on two stores (buckets, containers, folders) of the backend."""
    case = request.node.callspec.params["backend"]
    with started_backend(case, request, tmp_path / "other") as other:
        names = []
        adapters = []
        for store in (backend, other):
            adapter = store.make()
            name = f"tenant-{uuid.uuid4().hex[:12]}"
            register_profile(name, **adapter.storage_options)
            names.append(name)
            adapters.append(adapter)
        yield names[0], names[1], adapters[0], adapters[1]


def test_per_tenant_files_land_in_each_tenants_store(two_tenants: Any) -> None:
    from asgiref.sync import async_to_sync
    from django.core.files.base import ContentFile
    from django.test import AsyncClient, Client

    from perceptra_storage.contrib.django import NoActiveProfile, use_profile
    from tests.django_project.app.models import TenantDocument, tenant_files

    first, second, first_store, second_store = two_tenants
    with use_profile(first):
        mine = TenantDocument.objects.create(attachment=ContentFile(b"A", name="a.txt"))
    with use_profile(second):
        theirs = TenantDocument.objects.create(attachment=ContentFile(b"B", name="b.txt"))
    assert first_store.download_file("tenant-files/docs/a.txt") == b"A"
    assert second_store.download_file("tenant-files/docs/b.txt") == b"B"
    assert not first_store.file_exists("tenant-files/docs/b.txt")
    with use_profile(first), pytest.raises(FileNotFoundError):
        TenantDocument.objects.get(pk=theirs.pk).attachment.open()
    with pytest.raises(NoActiveProfile):
        tenant_files.exists("docs/a.txt")

    client = Client()
    tenant = first.removeprefix("tenant-")
    response = client.get(f"/documents/{mine.pk}/", headers={"X-Tenant": tenant})
    assert response.status_code == 200 and response.content == b"A"
    with pytest.raises(FileNotFoundError):
        client.get(f"/documents/{theirs.pk}/", headers={"X-Tenant": tenant})
    served = async_to_sync(AsyncClient().get)(f"/documents/{mine.pk}/",
                                              headers={"X-Tenant": tenant})  # ASGI
    assert served.status_code == 200 and served.content == b"A"

    seen: dict[str, set[int]] = {first: set(), second: set()}
    failures: list[BaseException] = []

    def work(profile: str, body: bytes) -> None:
        try:
            with use_profile(profile):
                for _ in range(3):
                    seen[profile].add(id(tenant_files._adapter()))
                    assert tenant_files.open(f"docs/{body.decode().lower()}.txt").read() == body
        except BaseException as exc:  # reported below, from the main thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(p, b)) for p, b in
               [(first, b"A"), (second, b"B")] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and all(len(ids) == 1 for ids in seen.values())


# -- configuration, migrations, secrets -----------------------------------------------------------


def test_options_are_checked(tmp_path: Path, django_project: None) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.core.files.storage import storages
    from django.test import override_settings

    from perceptra_storage.contrib.django import PerceptraStorage

    local = {"backend": "local", "config": {"base_path": str(tmp_path)}}
    with pytest.raises(ImproperlyConfigured, match="'bucket_name'"):
        PerceptraStorage(**local, bucket_name="x")
    with override_settings(STORAGES={"default": {"BACKEND": STORAGE, "OPTIONS": {
            **local, "querystring_expires": 60}}}), \
            pytest.raises(ImproperlyConfigured, match="'querystring_expires'"):
        storages["default"]
    for bad, field in [({"profile": "p", **local}, "not both"), ({}, "one of them"),
                       ({**local, "location": "../up"}, "'location'"),
                       ({**local, "querystring_expire": 0}, "'querystring_expire'"),
                       ({**local, "file_overwrite": "yes"}, "'file_overwrite'"),
                       ({**local, "metadata": {"Bad Name": "x"}}, "'metadata'"),
                       ({**local, "content_type": "not a type"}, "'content_type'"),
                       ({"profile": "p", "config": {}}, "'config'")]:
        with pytest.raises(ImproperlyConfigured, match=field):
            PerceptraStorage(**bad)
    config = {"base_path": str(tmp_path)}
    PerceptraStorage(backend="local", config=config, location="m").save(
        "x.txt", io.BytesIO(b"x"))
    assert config == {"base_path": str(tmp_path)}  # the settings' dict is not changed

    with override_settings(PERCEPTRA_STORAGE_PROFILES={
            "settings-profile": {"backend": "local", "config": {"base_path": str(tmp_path)}}}):
        assert PerceptraStorage(profile="settings-profile", location="m").exists("x.txt")
        with pytest.raises(ImproperlyConfigured, match="no-such-profile"):
            PerceptraStorage(profile="no-such-profile").exists("x.txt")


def test_migrations_serialise_profiles_and_refuse_credentials(django_project: None) -> None:
    from django.db.migrations.writer import MigrationWriter

    from perceptra_storage.contrib.django import PerceptraStorage
    from tests.django_project.app.models import TenantDocument

    field = TenantDocument._meta.get_field("attachment")
    text, _ = MigrationWriter.serialize(field)
    assert "perceptra_storage.contrib.django.PerceptraStorage(" in text
    assert "perceptra_storage.contrib.django.active_profile" in text
    keyed = PerceptraStorage(backend="s3", config={"bucket_name": "b"},
                             credentials={"access_key_id": "AKIAEXAMPLE",
                                          "secret_access_key": "hush-hush"})
    with pytest.raises(ValueError, match="credentials") as info:
        MigrationWriter.serialize(keyed)
    assert "hush-hush" not in str(info.value) and "hush-hush" not in repr(keyed)


NETWORK = sorted(name for name, case in BACKENDS.items() if case.network)


def _error_page(storage: Any) -> str:
    """Django's debug page of a storage call that failed, as a view holding only the
    storage would get it (this frame is the page's first)."""
    from django.test import RequestFactory
    from django.views.debug import ExceptionReporter

    try:
        storage.exists("reports/q1.csv")
    except StorageConnectionError:
        reporter = ExceptionReporter(RequestFactory().get("/"), *sys.exc_info())
        return str(reporter.get_traceback_html())
    raise AssertionError("an unreachable endpoint was reached")


@pytest.mark.parametrize("case", NETWORK)
def test_error_pages_show_no_credentials(case: str, request: pytest.FixtureRequest,
                                         tmp_path: Path, django_project: None) -> None:
    from perceptra_storage.contrib.django import PerceptraStorage

    with started_backend(case, request, tmp_path) as backend:
        assert backend.via is not None
        dead = backend.via("http://127.0.0.1:9", {"max_attempts": 1, "connect_timeout": 1})
        storage = PerceptraStorage(**dead.storage_options)
        page = _error_page(storage)
        assert "reports/q1.csv" in page  # the page is about our error
        for secret in backend.secrets:
            assert secret not in page and secret not in repr(storage)


# -- the README's settings, as written ------------------------------------------------------


def test_readme_settings_work_as_written(request: pytest.FixtureRequest, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         django_project: None) -> None:
    """The two settings blocks of README section "Django", run in this project. Only what
    the reader's cloud supplies is substituted: moto's endpoint and a fresh bucket for
    the profile, and the AWS chain's keys (the environment variables)."""
    import re
    import types

    from django.contrib.staticfiles.storage import staticfiles_storage
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.core.management import call_command
    from django.test import override_settings

    from perceptra_storage.contrib.django import use_profile
    from tests.cases_s3 import new_bucket, s3_client

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("\n## Django\n"):]
    section = section[:section.index("\n## ", 1)]
    settings_block, tenant_block = re.findall(r"```python\n(.*?)```", section, flags=re.S)

    moto = request.getfixturevalue("moto_server")
    bucket, remove = new_bucket(moto)
    request.addfinalizer(remove)
    # Static files without signatures: the bucket serves them to anyone (or a CDN does).
    s3_client(moto).put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/static/*"}]}))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto.secret_key)
    written: dict[str, Any] = {}
    exec(compile(settings_block, "README.md Django settings", "exec"), written)
    profiles = written["PERCEPTRA_STORAGE_PROFILES"]
    profiles["media"]["config"].update(bucket_name=bucket, endpoint_url=moto.endpoint_url)
    with override_settings(STORAGES=written["STORAGES"], PERCEPTRA_STORAGE_PROFILES=profiles):
        name = default_storage.save("hello.txt", ContentFile(b"hello from Django"))
        assert _fetch(default_storage.url(name)) == (200, b"hello from Django")
        call_command("collectstatic", interactive=False, verbosity=0)
        url = staticfiles_storage.url("app.js")
        assert "X-Amz-Signature" not in url and _fetch(url)[0] == 200

    tenant: dict[str, Any] = {}
    exec(compile(tenant_block, "README.md Django tenant settings", "exec"), tenant)
    request_of_acme = types.SimpleNamespace(tenant=types.SimpleNamespace(slug="acme"))
    assert tenant["profile_for_request"](request_of_acme) == "tenant-acme"
    with override_settings(STORAGES=tenant["STORAGES"], PERCEPTRA_STORAGE_PROFILES={
            "tenant-acme": {"backend": "local", "config": {"base_path": str(tmp_path)}}}), \
            use_profile("tenant-acme"):
        default_storage.save("acme.txt", ContentFile(b"acme"))
    assert (tmp_path / "acme.txt").read_bytes() == b"acme"
