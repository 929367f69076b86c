"""tracker.config.load: defaults, environment overrides, paths, and one clear error per bad value."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tracker.config import BIO_PLACEHOLDERS, ConfigError, Settings, config_path, load

REPO = Path(__file__).resolve().parents[1]
ENV_VARS = ("TRACKER_API_ID", "TRACKER_API_HASH", "TRACKER_BOT_TOKEN", "TRACKER_CONFIG")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.ini"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "conf", "[pyrogram]\n[tracker]\n")
    monkeypatch.chdir(tmp_path)
    settings = load(path)
    assert isinstance(settings, Settings)
    assert (settings.api_id, settings.api_hash, settings.bot_token) == (None, None, None)
    assert settings.is_bot is False
    assert settings.store == tmp_path / "conf" / "data" / "users.json"
    assert settings.data_dir == tmp_path / "conf" / "data"
    assert settings.session == "tracker"
    assert settings.admins == ()
    assert settings.public_stats is False
    assert settings.timezone == "UTC" and str(settings.tz) == "UTC"
    assert settings.bio_template == "👥 Users: {users}"
    assert settings.description_template is None
    assert settings.bio_interval == 3600
    assert settings.welcome == "Hi {first_name}!"
    with pytest.raises(AttributeError):
        settings.session = "other"  # type: ignore[misc]


def test_committed_config_ini_loads_with_the_documented_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.ini"
    shutil.copy(REPO / "config.ini", path)
    settings = load(path)
    assert settings.store == tmp_path / "data" / "users.json"
    assert (settings.api_id, settings.api_hash, settings.bot_token) == (None, None, None)
    assert settings.timezone == "UTC" and settings.bio_interval == 3600
    assert settings.bio_template == "👥 Users: {users}" and settings.welcome == "Hi {first_name}!"


def test_values_from_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[pyrogram]\napi_id = 12345\napi_hash = abcdef0123\nbot_token = 1:AA ; comment\n"
        "[tracker]\nstore = /var/lib/tracker/users.json\nsession = mybot\n"
        "admins = 111, @Boss ,-222\npublic_stats = yes\ntimezone = Europe/Berlin\n"
        "bio_template = {users} users, {active_30d} active\ndescription_template = {reachable} reachable\n"
        "bio_interval = 0\nwelcome = Hello {first_name}\n",
    )
    settings = load(path)
    assert (settings.api_id, settings.api_hash, settings.bot_token) == (12345, "abcdef0123", "1:AA")
    assert settings.is_bot is True
    assert settings.store == Path("/var/lib/tracker/users.json")
    assert settings.session == "mybot"
    assert settings.admins == ("111", "@Boss", "-222")
    assert settings.admin_ids() == frozenset({111, -222})
    assert settings.admin_usernames() == frozenset({"boss"})
    assert settings.public_stats is True
    assert settings.timezone == "Europe/Berlin"
    assert settings.bio_template == "{users} users, {active_30d} active"
    assert settings.description_template == "{reachable} reachable"
    assert settings.bio_interval == 0
    assert settings.welcome == "Hello {first_name}"
    assert settings.require_credentials() == (12345, "abcdef0123")


def test_environment_overrides_the_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[pyrogram]\napi_id = 1\napi_hash = fromfile\nbot_token = file:token\n")
    monkeypatch.setenv("TRACKER_API_ID", " 987654 ")
    monkeypatch.setenv("TRACKER_API_HASH", "fromenv")
    monkeypatch.setenv("TRACKER_BOT_TOKEN", "env:token")
    settings = load(path)
    assert (settings.api_id, settings.api_hash, settings.bot_token) == (987654, "fromenv", "env:token")
    monkeypatch.setenv("TRACKER_BOT_TOKEN", "")  # empty env does not blank the file's value
    assert load(path).bot_token == "file:token"


def test_secrets_from_the_environment_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config.ini here: all defaults
    monkeypatch.setenv("TRACKER_API_ID", "42")
    monkeypatch.setenv("TRACKER_API_HASH", "h")
    settings = load()
    assert settings.require_credentials() == (42, "h")
    assert settings.store == tmp_path / "data" / "users.json"


def test_config_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert config_path() == Path("config.ini")
    env_path = write(tmp_path / "elsewhere", "[tracker]\nsession = from_env_config\n")
    monkeypatch.setenv("TRACKER_CONFIG", str(env_path))
    assert config_path() == env_path
    assert load().session == "from_env_config"
    explicit = write(tmp_path / "explicit", "[tracker]\nsession = explicit\n")
    assert load(explicit).session == "explicit"  # an explicit path beats the environment


def test_relative_store_resolves_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "etc" / "tracker", "[tracker]\nstore = ../state/users.json\n")
    monkeypatch.chdir(tmp_path)
    relative_config = Path("etc/tracker/config.ini")
    store = load(relative_config).store
    assert store.is_absolute()
    assert store.resolve() == (tmp_path / "etc" / "state" / "users.json").resolve()
    assert load(path).store.resolve() == store.resolve()
    home_path = write(tmp_path / "h", "[tracker]\nstore = ~/tracker/users.json\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load(home_path).store == tmp_path / "home" / "tracker" / "users.json"


@pytest.mark.parametrize(
    ("text", "env", "key", "detail"),
    [
        ("[pyrogram]\napi_id = abc\n", {}, "api_id", "abc"),
        ("[pyrogram]\napi_id = 12.5\n", {}, "api_id", "12.5"),
        ("[pyrogram]\n", {"TRACKER_API_ID": "x1"}, "api_id", "x1"),
        ("[tracker]\ntimezone = Mars/Olympus_Mons\n", {}, "timezone", "Mars/Olympus_Mons"),
        ("[tracker]\ntimezone = ../../etc/passwd\n", {}, "timezone", "passwd"),
        ("[tracker]\nbio_interval = -5\n", {}, "bio_interval", "-5"),
        ("[tracker]\nbio_interval = hourly\n", {}, "bio_interval", "hourly"),
        ("[tracker]\nbio_template = Users: {user_count}\n", {}, "bio_template", "{user_count}"),
        ("[tracker]\nbio_template = Users: {users\n", {}, "bio_template", ""),
        ("[tracker]\ndescription_template = {nope}\n", {}, "description_template", "{nope}"),
        ("[tracker]\nwelcome = Hi {last_name}\n", {}, "welcome", "{last_name}"),
        ("[tracker]\nadmins = 123, bob\n", {}, "admins", "bob"),
        ("[tracker]\npublic_stats = maybe\n", {}, "public_stats", "maybe"),
        ("[tracker]\nsession = ../other\n", {}, "session", ""),
        ("[tracker]\nstore =\n", {}, "store", ""),
    ],
)
def test_bad_values_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict[str, str], key: str, detail: str
) -> None:
    path = write(tmp_path, text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert key in message and detail in message and str(path) in message, message
    assert "\n" not in message


def test_unknown_bio_placeholder_lists_the_allowed_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "[tracker]\nbio_template = {users} and {bogus}\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert "{bogus}" in message
    assert all("{" + name + "}" in message for name in BIO_PLACEHOLDERS), message


@pytest.mark.parametrize("problem", ["missing", "folder", "not-ini", "not-utf8"])
def test_unreadable_file(tmp_path: Path, problem: str) -> None:
    path = tmp_path / "config.ini"
    if problem == "folder":
        path.mkdir()
    elif problem == "not-ini":
        path.write_text("api_id = 1\n")  # no section header
    elif problem == "not-utf8":
        path.write_bytes(b"[tracker]\nwelcome = \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message


def test_require_credentials_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[pyrogram]\napi_id = 5\n")
    for settings in (load(path), load(write(tmp_path / "none", "[pyrogram]\n"))):
        with pytest.raises(ConfigError) as info:
            settings.require_credentials()
        message = str(info.value)
        for needle in ("api_id", "api_hash", "TRACKER_API_ID", "TRACKER_API_HASH", "my.telegram.org"):
            assert needle in message, (needle, message)
        assert str(settings.config_path) in message and "\n" not in message
    monkeypatch.setenv("TRACKER_API_HASH", "deadbeef")
    assert load(path).require_credentials() == (5, "deadbeef")
