"""Named profiles: the TOML file, ``${VAR}`` values, registration in code, and errors
that name the file, profile and field (and never a value)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

import perceptra_storage
from perceptra_storage import (
    StorageValidationError,
    get_profile,
    get_storage_adapter,
    load_profiles,
    open_profile,
    register_profile,
)
from perceptra_storage.profiles import PROFILES_ENV, default_profiles_path
from tests.conftest import Backend

SECRET = "s3cr3t-VALUE-never-shown"


def _unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def profiles_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty profiles file that ``PERCEPTRA_STORAGE_PROFILES`` points at."""
    path = tmp_path / "profiles.toml"
    path.write_text("")
    monkeypatch.setenv(PROFILES_ENV, str(path))
    return path


def test_file_profiles_open_working_adapters(tmp_path: Path, profiles_file: Path) -> None:
    profiles_file.write_text(f"""
[disk]
backend = "local"
config = {{ base_path = "{tmp_path / 'disk'}" }}

[scratch]
backend = "MEMORY"
config = {{ store_name = "{_unique('scratch')}", prefix = "p" }}
""")
    profiles = load_profiles()
    assert {"disk", "scratch"} <= set(profiles)
    assert profiles["scratch"].backend == "memory"
    assert profiles["disk"].source == str(profiles_file)
    disk = open_profile("disk")
    disk.upload_file(b"hello", "a/b.txt")
    assert (tmp_path / "disk" / "a" / "b.txt").read_bytes() == b"hello"
    assert open_profile("disk") is disk  # shared within the process
    other = get_storage_adapter(profile="disk")
    assert other is not disk and other.download_file("a/b.txt") == b"hello"
    scratch = open_profile("scratch")
    scratch.upload_file(b"x", "k")
    assert [o.key for o in scratch.list_files()] == ["k"]


def test_editing_the_file_replaces_the_shared_adapter(tmp_path: Path,
                                                      profiles_file: Path) -> None:
    profiles_file.write_text(f'[d]\nbackend = "local"\n'
                             f'config = {{ base_path = "{tmp_path / "one"}" }}\n')
    first = open_profile("d")
    profiles_file.write_text(f'[d]\nbackend = "local"\n'
                             f'config = {{ base_path = "{tmp_path / "two"}", prefix = "x" }}\n')
    second = open_profile("d")
    assert second is not first and second.config["prefix"] == "x"


def test_environment_variables_fill_values(tmp_path: Path, profiles_file: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    profiles_file.write_text('[env]\nbackend = "local"\n'
                             'config = { base_path = "${PS_TEST_ROOT}/store" }\n')
    monkeypatch.setenv("PS_TEST_ROOT", str(tmp_path))
    assert load_profiles()["env"].config["base_path"] == "${PS_TEST_ROOT}/store"
    assert get_profile("env").config["base_path"] == f"{tmp_path}/store"
    open_profile("env").upload_file(b"1", "k")
    assert (tmp_path / "store" / "k").exists()


def test_a_missing_variable_names_file_profile_field_and_variable(
        profiles_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profiles_file.write_text(
        '[tenant-a]\nbackend = "s3"\nconfig = { bucket_name = "b" }\n'
        'credentials = { access_key_id = "${PS_TEST_KEY_ID}", '
        'secret_access_key = "${PS_TEST_SECRET}" }\n')
    monkeypatch.setenv("PS_TEST_KEY_ID", SECRET)
    monkeypatch.delenv("PS_TEST_SECRET", raising=False)
    load_profiles()  # listing needs no variable
    with pytest.raises(StorageValidationError) as caught:
        get_profile("tenant-a")
    message = str(caught.value)
    for part in (str(profiles_file), "'tenant-a'", "credentials.secret_access_key",
                 "PS_TEST_SECRET"):
        assert part in message
    assert SECRET not in message
    with pytest.raises(StorageValidationError, match="PS_TEST_SECRET"):
        get_storage_adapter(profile="tenant-a")


def test_register_profile_copies_and_repr_hides_credentials(tmp_path: Path,
                                                            profiles_file: Path) -> None:
    name = _unique("coded")
    config = {"bucket_name": "b", "region": "eu-west-1"}
    credentials = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": SECRET}
    profile = register_profile(name, "s3", config, credentials)
    config["bucket_name"] = "changed"
    credentials.clear()
    assert get_profile(name).config["bucket_name"] == "b"
    assert get_profile(name).credentials["secret_access_key"] == SECRET
    assert profile.source == "<registered in code>"
    text = repr(get_profile(name))
    assert SECRET not in text and "AKIDEXAMPLE" not in text
    assert "secret_access_key" in text and "eu-west-1" in text
    with pytest.raises(AttributeError):
        profile.backend = "azure"  # type: ignore[misc]
    with pytest.raises(TypeError):
        profile.config["bucket_name"] = "x"  # type: ignore[index]


def test_registered_local_profile_opens(tmp_path: Path, profiles_file: Path) -> None:
    name = _unique("reg")
    register_profile(name, "local", {"base_path": str(tmp_path / "r")})
    adapter = get_storage_adapter(profile=name)
    adapter.upload_file(b"z", "z.txt")
    assert open_profile(name).file_exists("z.txt")


def test_registration_checks_fields_now() -> None:
    with pytest.raises(StorageValidationError, match=r"'bad'.*bucket"):
        register_profile("bad", "s3", {"bucket": "typo"})
    with pytest.raises(StorageValidationError, match=r"'bad'.*backend"):
        register_profile("bad", "nosuchstore", {})
    with pytest.raises(StorageValidationError, match="profile name"):
        register_profile("has space", "memory", {})


@pytest.mark.parametrize(("text", "expected"), [
    ('[p]\nbackend = "nosuchstore"\n', ["'p'", "field 'backend'", "nosuchstore", "local"]),
    ('[p]\nbackend = "local"\nconfig = { base_path = "/tmp" }\nregion = "x"\n',
     ["'p'", "unknown field(s) 'region'"]),
    ('[p]\nbackend = "s3"\nconfig = { bucket_name = "b", bucket = "c" }\n',
     ["'p'", "unknown config field(s) 'bucket'"]),
    ('[p]\nbackend = "s3"\nconfig = { bucket_name = 5 }\n',
     ["'p'", "config field 'bucket_name' must be str, not int"]),
    ('[p]\nbackend = "s3"\nconfig = "bucket"\n', ["'p'", "field 'config' must be a table"]),
    ('[p]\nbackend = 3\n', ["'p'", "field 'backend' must be a non-empty string"]),
    ('[p]\nbackend = "s3"\n', ["'p'", "config field 'bucket_name' is required"]),
    ('p = "s3"\n', ["'p'", "must be a table"]),
    ('[p]\nbackend = "local"\nconfig = { base_path = "${UNCLOSED" }\n',
     ["'p'", "config.base_path", "without a closing"]),
    ('[p]\nbackend = "local"\nconfig = { base_path = "/x" }\n\n[p]\nbackend = "memory"\n',
     ["invalid TOML", "line 5"]),
    ('[p]\nbackend = "local"\nconfig = { base_path = "/x" \n', ["invalid TOML", "line 3"]),
])
def test_bad_files_name_file_profile_and_field(profiles_file: Path, text: str,
                                               expected: list[str]) -> None:
    profiles_file.write_text(text)
    with pytest.raises(StorageValidationError) as caught:
        load_profiles()
    message = str(caught.value)
    assert str(profiles_file) in message
    for part in expected:
        assert part in message


def test_a_name_in_both_the_file_and_code_is_refused(tmp_path: Path,
                                                     profiles_file: Path) -> None:
    name = _unique("both")
    register_profile(name, "memory", {"store_name": name})
    profiles_file.write_text(f'[{name}]\nbackend = "local"\n'
                             f'config = {{ base_path = "{tmp_path}" }}\n')
    with pytest.raises(StorageValidationError) as caught:
        load_profiles()
    assert str(profiles_file) in str(caught.value) and repr(name) in str(caught.value)
    profiles_file.write_text("")
    assert load_profiles()[name].backend == "memory"


def test_unknown_profile_and_missing_named_file(tmp_path: Path, profiles_file: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StorageValidationError, match="no storage profile named 'nope'"):
        get_profile("nope")
    monkeypatch.setenv(PROFILES_ENV, str(tmp_path / "absent.toml"))
    with pytest.raises(StorageValidationError, match=r"absent\.toml.*does not exist"):
        load_profiles()
    with pytest.raises(StorageValidationError, match="either profile"):
        get_storage_adapter("local", profile="x")
    with pytest.raises(StorageValidationError, match="backend name or a profile"):
        get_storage_adapter()


def test_default_location_is_the_user_config_dir(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILES_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with_platformdirs = default_profiles_path()
    monkeypatch.setitem(sys.modules, "platformdirs", None)  # as if not installed
    without = default_profiles_path()
    assert without.parts[-2:] == ("perceptra-storage", "profiles.toml")
    if sys.platform.startswith("linux"):
        assert with_platformdirs == without == tmp_path / "xdg" / "perceptra-storage" / \
            "profiles.toml"
    # No file at the default location: no file profiles, no error.
    assert all(p.source == "<registered in code>" for p in load_profiles().values())


def test_the_api_is_exported() -> None:
    for name in ("Profile", "register_profile", "load_profiles", "get_profile",
                 "open_profile"):
        assert name in perceptra_storage.__all__ and hasattr(perceptra_storage, name)


def test_a_profile_reaches_each_real_store(backend: Backend, profiles_file: Path) -> None:
    """A profile holding the test store's config and credentials opens an adapter on the
    same store (the server's objects are seen by the fixture's own adapter)."""
    reference = backend.make()
    name = _unique(backend.name)
    register_profile(name, backend.name, reference.config, reference.credentials)
    adapter = open_profile(name)
    assert adapter.test_connection()
    adapter.upload_file(b"through a profile", "via/profile.txt")
    assert reference.download_file("via/profile.txt") == b"through a profile"
    for secret in backend.secrets:
        assert secret not in repr(get_profile(name))
