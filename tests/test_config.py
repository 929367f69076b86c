"""tracker.config.load: defaults, environment overrides, paths, and one clear error per bad value."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tracker.config import (
    BIO_PLACEHOLDERS,
    KEYS,
    ConfigError,
    Settings,
    config_path,
    load,
    parse_proxy,
    permission_warning,
)

REPO = Path(__file__).resolve().parents[1]


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
        ("[pyrogram]\napi_id = abc\n", {}, "api_id", "value not shown"),
        ("[pyrogram]\napi_id = 12.5\n", {}, "api_id", "value not shown"),
        ("[pyrogram]\n", {"TRACKER_API_ID": "x1"}, "api_id", "TRACKER_API_ID"),
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


# ---------------------------------------------------------------- every key from the environment

# key -> (environment text, the Settings attribute's expected value; a callable gets tmp_path)
ENV_CASES: dict[str, tuple[str, Any]] = {
    "api_id": ("4242", 4242),
    "api_hash": ("envhash", "envhash"),
    "bot_token": ("1:ENV", "1:ENV"),
    "store": ("/srv/tracker/users.json", Path("/srv/tracker/users.json")),
    "session": ("envsession", "envsession"),
    "admins": ("7, @Env", ("7", "@Env")),
    "public_stats": ("yes", True),
    "timezone": ("Asia/Tokyo", "Asia/Tokyo"),
    "bio_template": ("{reachable} here", "{reachable} here"),
    "description_template": ("{new_today} new", "{new_today} new"),
    "bio_interval": ("60", 60),
    "welcome": ("Yo {first_name}", "Yo {first_name}"),
    "proxy": ("socks5://h:1080", {"scheme": "socks5", "hostname": "h", "port": 1080}),
    "log_level": ("debug", "DEBUG"),
}

FILE_VALUES = (
    "[pyrogram]\napi_id = 1\napi_hash = filehash\nbot_token = 1:FILE\n"
    "[tracker]\nstore = /file/users.json\nsession = filesession\nadmins = 9\npublic_stats = no\n"
    "timezone = Europe/Berlin\nbio_template = {users} file\ndescription_template = {users} long\n"
    "bio_interval = 7200\nwelcome = Hi {first_name} file\nproxy = http://file:8080\nlog_level = ERROR\n"
)


def test_every_key_has_a_case() -> None:
    assert set(ENV_CASES) | {"plugins"} == set(KEYS)


@pytest.mark.parametrize("key", sorted(ENV_CASES))
def test_the_environment_wins_over_the_file_for_every_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    path = write(tmp_path, FILE_VALUES)
    before = getattr(load(path), key)
    env_text, expected = ENV_CASES[key]
    monkeypatch.setenv(f"TRACKER_{key.upper()}", env_text)
    after = getattr(load(path), key)
    assert after == expected and after != before


def test_a_container_needs_no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config.ini anywhere
    for key, (text, _) in ENV_CASES.items():
        monkeypatch.setenv(f"TRACKER_{key.upper()}", text)
    settings = load()
    for key, (_, expected) in ENV_CASES.items():
        assert getattr(settings, key) == expected, key
    assert settings.require_credentials() == (4242, "envhash")


def test_relative_paths_from_the_environment_resolve_like_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = write(tmp_path / "etc", "[tracker]\n")
    (tmp_path / "etc" / "mine").mkdir()
    (tmp_path / "cwd" / "mine").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("TRACKER_STORE", "state/users.json")
    monkeypatch.setenv("TRACKER_PLUGINS", "mine")
    settings = load(conf)  # against the config file's folder, not the cwd
    assert settings.store == (tmp_path / "etc" / "state" / "users.json").resolve()
    assert settings.plugins == (tmp_path / "etc" / "mine").resolve()
    settings = load()  # no file: against the cwd
    assert settings.store == (tmp_path / "cwd" / "state" / "users.json").resolve()
    assert settings.plugins == (tmp_path / "cwd" / "mine").resolve()


# ---------------------------------------------------------------- new keys


def test_plugins_folder_resolves_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf" / "my_plugins").mkdir(parents=True)
    path = write(tmp_path / "conf", "[tracker]\nplugins = my_plugins\n")
    monkeypatch.chdir(tmp_path)
    assert load(path).plugins == (tmp_path / "conf" / "my_plugins").resolve()
    assert load(write(tmp_path / "none", "[tracker]\n")).plugins is None
    missing = write(tmp_path / "missing", "[tracker]\nplugins = nowhere\n")
    with pytest.raises(ConfigError, match=r"plugins: no such folder"):
        load(missing)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("socks5://user:pass@host:1080", {"scheme": "socks5", "hostname": "host", "port": 1080,
                                          "username": "user", "password": "pass"}),
        ("SOCKS4://10.0.0.1:9050", {"scheme": "socks4", "hostname": "10.0.0.1", "port": 9050}),
        ("http://u%40x:p%3Ass@proxy.example:3128/", {"scheme": "http", "hostname": "proxy.example",
                                                     "port": 3128, "username": "u@x", "password": "p:ss"}),
    ],
)
def test_proxy_becomes_pyrogram_proxy_dict(tmp_path: Path, url: str, expected: dict[str, Any]) -> None:
    assert load(write(tmp_path, f"[tracker]\nproxy = {url}\n")).proxy == expected
    assert parse_proxy(url) == expected


def test_proxy_dict_is_accepted_by_a_real_pyrogram_client() -> None:
    import asyncio

    import pyrogram

    proxy = parse_proxy("socks5://user:pass@127.0.0.1:1080")

    async def build() -> Any:
        return pyrogram.Client("t", api_id=1, api_hash="x", in_memory=True, proxy=proxy)

    client = asyncio.run(build())
    assert client.proxy  # normalised by kurigram, stored as-is by pyrogram 2.0.106


@pytest.mark.parametrize(
    "url",
    ["ftp://h:21", "socks5://h", "socks5://h:0", "socks5://h:70000", "socks5://h:port",
     "socks5://:1080", "socks5://user:s3cretpw@h:1080/path", "h:1080"],
)
def test_bad_proxy_is_a_config_error_without_the_password(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, f"[tracker]\nproxy = {url}\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert "proxy" in message and str(path) in message and "\n" not in message
    assert "s3cretpw" not in message


def test_log_level(tmp_path: Path) -> None:
    assert load(write(tmp_path, "[tracker]\n")).log_level == "INFO"
    assert load(write(tmp_path, "[tracker]\nlog_level = warning\n")).log_level == "WARNING"
    with pytest.raises(ConfigError, match=r"log_level: must be one of"):
        load(write(tmp_path, "[tracker]\nlog_level = loud\n"))


# ---------------------------------------------------------------- hostile values (issue 8)

HASH = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[tracker]\nbio_template = {users:Q}\n", "bio_template"),
        ("[tracker]\nbio_template = {users:>99999999999}\n", "bio_template"),
        ("[tracker]\nbio_template = {users:>5000}\n", "bio_template"),
        ("[tracker]\nbio_template = {users!z}\n", "bio_template"),
        ("[tracker]\nbio_template = {users.real}\n", "bio_template"),
        ("[tracker]\nbio_template = {users:{users}}\n", "bio_template"),
        ("[tracker]\ndescription_template = {reachable:d}\n", "description_template"),
        ("[tracker]\nwelcome = Hi {first_name:Q}\n", "welcome"),
        ("[tracker]\nwelcome = Hi {first_name:>99999999999}\n", "welcome"),
        ("[tracker]\nwelcome = Hi {first_name[0]}\n", "welcome"),
        ("[tracker]\nwelcome = Hi {}\n", "welcome"),
        ("[tracker]\nbio_interval = 1e17\n", "bio_interval"),
        ("[tracker]\nbio_interval = 100000000000000000\n", "bio_interval"),
        ("[tracker]\nbio_interval = ²\n", "bio_interval"),
        ("[pyrogram]\napi_id = ²\n", "api_id"),
        ("[pyrogram]\napi_id = ١٢٣\n", "api_id"),
        ("[pyrogram]\napi_id = 4294967296\n", "api_id"),
        ("[pyrogram]\napi_id = 0\n", "api_id"),
        ("[tracker]\nadmins = ²\n", "admins"),
        ("[tracker]\nadmins = 1, -²\n", "admins"),
        ("[tracker]\nadmins = 99999999999999999999\n", "admins"),
        ("[tracker]\nadmins = @a b\n", "admins"),
    ],
)
def test_hostile_values_are_config_errors_at_load(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert f": {key}: " in message and str(path) in message and "\n" not in message, message


def test_format_specs_that_render_are_accepted(tmp_path: Path) -> None:
    text = "{users:>12}|{reachable!r}|{new_today:_^9}"
    assert load(write(tmp_path, f"[tracker]\nbio_template = {text}\n")).bio_template == text


@pytest.mark.parametrize("source", ["file", "env"])
def test_a_bad_api_id_is_not_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    if source == "file":
        path = write(tmp_path, f"[pyrogram]\napi_id = {HASH}\n")
    else:
        path = write(tmp_path, "[pyrogram]\n")
        monkeypatch.setenv("TRACKER_API_ID", HASH)
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert "api_id" in message and HASH not in message and HASH[:8] not in message, message


def test_a_config_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.ini"
    path.write_bytes("[pyrogram]\napi_id = 5\n[tracker]\nsession = bom\n".encode("utf-8-sig"))
    settings = load(path)
    assert (settings.api_id, settings.session) == (5, "bom")


@pytest.mark.parametrize(
    ("text", "mode", "warned"),
    [
        ("[pyrogram]\napi_hash = abc\n", 0o644, "everyone"),
        ("[pyrogram]\nbot_token = 1:A\n", 0o640, "its group"),
        ("[tracker]\nproxy = socks5://u:p@h:1\n", 0o604, "everyone"),
        ("[pyrogram]\napi_hash = abc\n", 0o600, None),
        ("[pyrogram]\napi_id = 5\n[tracker]\nproxy = socks5://h:1\n", 0o644, None),
    ],
)
def test_permission_warning(tmp_path: Path, text: str, mode: int, warned: str | None) -> None:
    path = write(tmp_path, text)
    path.chmod(mode)
    warning = permission_warning(load(path))
    if warned is None:
        assert warning is None
    else:
        assert warning is not None and str(path) in warning and warned in warning and "chmod 600" in warning
        assert "abc" not in warning and "1:A" not in warning and "\n" not in warning


def test_no_permission_warning_for_secrets_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[pyrogram]\napi_id = 5\n")
    path.chmod(0o644)
    monkeypatch.setenv("TRACKER_API_HASH", "abc")
    assert permission_warning(load(path)) is None


def test_secrets_lists_what_must_never_be_logged(tmp_path: Path) -> None:
    path = write(tmp_path, "[pyrogram]\napi_id = 5\napi_hash = H1\nbot_token = 1:T\n"
                           "[tracker]\nproxy = socks5://u:PW@h:1\n")
    assert set(load(path).secrets()) == {"H1", "1:T", "PW"}


def test_the_proxy_reaches_the_bots_client(tmp_path: Path) -> None:
    import asyncio

    from tracker.bot import build_app

    path = write(tmp_path, "[pyrogram]\napi_id = 5\napi_hash = h\n[tracker]\nproxy = socks5://u:p@127.0.0.1:1080\n")

    async def build() -> Any:
        tracking = build_app(load(path), in_memory=True).tracking
        tracking.store.close()
        return tracking.client.proxy

    proxy = asyncio.run(build())
    hostname = proxy["hostname"] if isinstance(proxy, dict) else proxy.hostname  # 2.0.106 keeps the dict
    assert hostname == "127.0.0.1"
