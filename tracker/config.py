"""Settings: ``config.ini`` plus ``TRACKER_<KEY>`` environment overrides.

``load(path)`` returns a frozen :class:`Settings`. Every key may come from the
environment (``TRACKER_STORE``, ``TRACKER_BOT_TOKEN``, ...), which wins over the
file, so a container needs no config file at all. Every value is checked here,
templates included (rendered once with sample values), so nothing read from the
configuration can fail later at run time. Every problem is a :class:`ConfigError`
whose one-line message names the file and the key.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Re-exported: callers and tests use them as tracker.config's (their home is config_checks).
from tracker.config_checks import check_template as check_template
from tracker.config_checks import parse_proxy as parse_proxy
from tracker.config_checks import sample_values
from tracker.config_checks import template_fields as template_fields

# The CLI imports this module for ``tracker --help`` too (for its types): what
# only loading or using settings needs (the INI parser, zoneinfo, URL parsing,
# string.Formatter) is imported by the functions that use it.
if TYPE_CHECKING:
    import configparser
    from zoneinfo import ZoneInfo

DEFAULT_CONFIG = "config.ini"
CONFIG_ENV = "TRACKER_CONFIG"
ENV_PREFIX = "TRACKER_"

#: Placeholders that bio/description templates may use.
BIO_PLACEHOLDERS = frozenset({"users", "reachable", "active_30d", "new_today"})
#: Placeholders that the /start reply may use.
WELCOME_PLACEHOLDERS = frozenset({"first_name"})

#: Every key, the section it lives in, and its default. The environment variable
#: of a key is ``TRACKER_<KEY>``.
KEYS: Mapping[str, tuple[str, str]] = {
    "api_id": ("pyrogram", ""),
    "api_hash": ("pyrogram", ""),
    "bot_token": ("pyrogram", ""),
    "store": ("tracker", "data/users.json"),
    "session": ("tracker", "tracker"),
    "admins": ("tracker", ""),
    "public_stats": ("tracker", "false"),
    "timezone": ("tracker", "UTC"),
    "bio_template": ("tracker", "👥 Users: {users}"),
    "description_template": ("tracker", ""),
    "bio_interval": ("tracker", "3600"),
    "welcome": ("tracker", "Hi {first_name}!"),
    "plugins": ("tracker", ""),
    "proxy": ("tracker", ""),
    "log_level": ("tracker", "INFO"),
}

#: Keys whose values must never be logged or shown in an error.
SECRET_KEYS = ("api_hash", "bot_token")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Bounds: every number read from the configuration has one, so a typo such as
# ``bio_interval = 100000000000000000`` is an error here, not an overflow later.
API_ID_MAX = 2**31 - 1  # Telegram's api_id is a 32-bit int
USER_ID_MAX = 2**63 - 1  # ids are 64-bit in MTProto
BIO_INTERVAL_MAX = 31 * 24 * 3600  # a month; profile updates rarer than that are pointless
WELCOME_MAX = 4096

_INTEGER = re.compile(r"-?[0-9]{1,20}")  # ASCII digits only: str.isdigit() accepts "²"


class ConfigError(Exception):
    """The configuration is missing, unreadable or holds a bad value."""


@dataclass(frozen=True)
class Settings:
    """Everything the bot and the CLI read from the configuration (attributes named after the keys)."""

    config_path: Path
    api_id: int | None
    api_hash: str | None
    bot_token: str | None
    store: Path
    session: str
    admins: tuple[str, ...]
    public_stats: bool
    timezone: str
    bio_template: str
    description_template: str | None
    bio_interval: int
    welcome: str
    #: Folder of the owner's Pyrogram smart plugins (absolute), or None.
    plugins: Path | None = None
    #: What ``pyrogram.Client(proxy=...)`` takes: scheme, hostname, port[, username, password].
    proxy: dict[str, Any] | None = field(default=None, hash=False)
    log_level: str = "INFO"

    @property
    def is_bot(self) -> bool:
        """True in bot mode (a bot token is set), False in user-account mode."""
        return bool(self.bot_token)

    @property
    def data_dir(self) -> Path:
        """The folder of the store: sessions and the control socket live here too."""
        return self.store.parent

    @property
    def tz(self) -> ZoneInfo:
        """The configured time zone (validated by :func:`load`)."""
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)

    def admin_ids(self) -> frozenset[int]:
        """Admins given as numeric user ids."""
        return frozenset(int(a) for a in self.admins if _INTEGER.fullmatch(a))

    def admin_usernames(self) -> frozenset[str]:
        """Admins given as ``@username`` (lower-case, without the ``@``)."""
        return frozenset(a.lstrip("@").lower() for a in self.admins if not _INTEGER.fullmatch(a))

    def secrets(self) -> tuple[str, ...]:
        """The secret values in these settings (api_hash, bot_token, proxy password): never log them."""
        found = [self.api_hash, self.bot_token]
        if self.proxy:
            found.append(self.proxy.get("password"))
        return tuple(s for s in found if s)

    def require_credentials(self) -> tuple[int, str]:
        """Return ``(api_id, api_hash)`` or raise a ConfigError that says how to set them."""
        if self.api_id is None or not self.api_hash:
            raise ConfigError(
                f"missing Telegram API credentials: set api_id and api_hash in "
                f"[pyrogram] of {self.config_path} (or the environment variables "
                f"TRACKER_API_ID and TRACKER_API_HASH); get them at "
                f"https://my.telegram.org -> API development tools"
            )
        return self.api_id, self.api_hash


def env_name(key: str) -> str:
    """The environment variable that overrides ``key``: ``TRACKER_<KEY>``."""
    return ENV_PREFIX + key.upper()


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the config path: explicit argument, then $TRACKER_CONFIG, then ./config.ini."""
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load(path: str | os.PathLike[str] | None = None, *, require_file: bool = False) -> Settings:
    """Read settings from ``path`` (see :func:`config_path`) and the environment.

    A missing ./config.ini is allowed (all defaults, values from the
    environment); a missing file named by ``path`` or $TRACKER_CONFIG, or any
    missing file with ``require_file``, is an error. Relative paths, from the
    file or the environment, resolve against the config file's folder (the
    current folder when there is no file).
    """
    cfg_path = config_path(path)
    explicit = path is not None or bool(os.environ.get(CONFIG_ENV))
    parser = _read_file(cfg_path, required=require_file or explicit)
    reader = _Reader(parser, cfg_path)
    base = cfg_path.resolve().parent

    bio_template = reader.template("bio_template", BIO_PLACEHOLDERS)
    description = reader.template("description_template", BIO_PLACEHOLDERS) or None
    return Settings(
        config_path=cfg_path,
        api_id=_api_id(reader),
        api_hash=reader.get("api_hash") or None,
        bot_token=reader.get("bot_token") or None,
        store=_path(reader, "store", base),
        session=_session(reader),
        admins=_admins(reader),
        public_stats=reader.boolean("public_stats"),
        timezone=_timezone(reader),
        bio_template=bio_template,
        description_template=description,
        bio_interval=reader.bounded_int("bio_interval", 0, BIO_INTERVAL_MAX, unit="seconds"),
        welcome=_welcome(reader),
        plugins=_plugins(reader, base),
        proxy=_proxy(reader),
        log_level=_log_level(reader),
    )


def _read_file(cfg_path: Path, *, required: bool) -> configparser.ConfigParser:
    import configparser

    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    if not (required or cfg_path.exists()):
        return parser
    try:
        # utf-8-sig: Notepad saves UTF-8 with a byte-order mark, which plain utf-8 keeps.
        with open(cfg_path, encoding="utf-8-sig") as fh:
            parser.read_file(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config {cfg_path}: {exc.strerror or exc}") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(f"config {cfg_path} is not a valid INI file: {first_line}") from None
    return parser


def _api_id(reader: _Reader) -> int | None:
    text = reader.get("api_id")
    if not text:
        return None
    # The value is not echoed: a pasted api_hash in the wrong field is a secret.
    if not _INTEGER.fullmatch(text) or not 1 <= int(text) <= API_ID_MAX:
        raise ConfigError(
            reader.where("api_id", "must be the number shown at my.telegram.org (value not shown)")
        )
    return int(text)


def _timezone(reader: _Reader) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    timezone = reader.get("timezone")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(reader.where("timezone", f"unknown time zone {timezone!r}")) from None
    return timezone


def _welcome(reader: _Reader) -> str:
    welcome = reader.template("welcome", WELCOME_PLACEHOLDERS)
    # The longest first name Telegram allows is 64 characters.
    longest = welcome.format(first_name="W" * 64)
    if len(longest) > WELCOME_MAX:
        raise ConfigError(reader.where("welcome", f"longer than a Telegram message ({WELCOME_MAX})"))
    return welcome


def _session(reader: _Reader) -> str:
    session = reader.get("session")
    if not session or "/" in session or "\\" in session or session in {".", ".."}:
        raise ConfigError(reader.where("session", "must be a plain name, e.g. tracker"))
    return session


def _admins(reader: _Reader) -> tuple[str, ...]:
    admins = tuple(a.strip() for a in reader.get("admins").split(",") if a.strip())
    for admin in admins:
        if _INTEGER.fullmatch(admin):
            if abs(int(admin)) > USER_ID_MAX:
                raise ConfigError(reader.where("admins", f"{admin!r} is out of range for a user id"))
        elif not re.fullmatch(r"@[A-Za-z0-9_]{1,64}", admin):
            raise ConfigError(reader.where("admins", f"{admin!r} is neither a user id nor an @username"))
    return admins


def _path(reader: _Reader, key: str, base: Path) -> Path:
    text = reader.get(key)
    if not text:
        raise ConfigError(reader.where(key, "must not be empty"))
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _plugins(reader: _Reader, base: Path) -> Path | None:
    if not reader.get("plugins"):
        return None
    folder = _path(reader, "plugins", base)
    if not folder.is_dir():
        raise ConfigError(reader.where("plugins", f"no such folder {str(folder)!r}"))
    return folder


def _log_level(reader: _Reader) -> str:
    level = reader.get("log_level").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(reader.where("log_level", f"must be one of {', '.join(LOG_LEVELS)}, got {level!r}"))
    return level


def _proxy(reader: _Reader) -> dict[str, Any] | None:
    try:
        return parse_proxy(reader.get("proxy"))
    except ValueError as exc:
        raise ConfigError(reader.where("proxy", str(exc))) from None


def permission_warning(settings: Settings) -> str | None:
    """A one-line warning when the config file holds secrets and others may read it, else None.

    Called once at start by the bot. Secrets in the environment do not count.
    """
    path = settings.config_path
    try:
        mode = path.stat().st_mode
        parser = _read_file(path, required=True)
    except (OSError, ConfigError):
        return None
    held = [key for key in (*SECRET_KEYS, "proxy") if parser.get(KEYS[key][0], key, fallback="").strip()]
    if "proxy" in held and "@" not in parser.get("tracker", "proxy", fallback=""):
        held.remove("proxy")  # a proxy without credentials is no secret
    if not held or not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    who = "everyone" if mode & stat.S_IROTH else "its group"
    return (
        f"config {path} holds secrets ({', '.join(held)}) and is readable by {who} "
        f"(mode {stat.S_IMODE(mode):04o}): run chmod 600 {path}, or move the secrets "
        f"to the environment ({', '.join(env_name(k) for k in held)})"
    )


class _Reader:
    """Typed access to the keys (environment first, then the file), with errors naming the key."""

    def __init__(self, parser: configparser.ConfigParser, path: Path) -> None:
        self._parser = parser
        self._path = path

    def _from_env(self, key: str) -> str:
        return os.environ.get(env_name(key), "").strip()

    def where(self, key: str, problem: str) -> str:
        origin = f" (from {env_name(key)})" if self._from_env(key) else ""
        return f"config {self._path}: {key}{origin}: {problem}"

    def get(self, key: str, *, strip: bool = True) -> str:
        """The key's text: a non-empty ``TRACKER_<KEY>`` wins over the file."""
        section, default = KEYS[key]
        value = self._from_env(key) or self._parser.get(section, key, fallback=default)
        return value.strip() if strip else value

    def template(self, key: str, placeholders: frozenset[str]) -> str:
        text = self.get(key)
        try:
            check_template(text, placeholders, sample_values(placeholders))
        except ValueError as exc:
            raise ConfigError(self.where(key, str(exc))) from None
        return text

    def boolean(self, key: str) -> bool:
        text = self.get(key).lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(self.where(key, f"must be true or false, got {text!r}"))

    def bounded_int(self, key: str, low: int, high: int, *, unit: str) -> int:
        text = self.get(key)
        if not _INTEGER.fullmatch(text):
            raise ConfigError(self.where(key, f"must be a whole number of {unit}, got {text[:40]!r}"))
        value = int(text)
        if not low <= value <= high:
            raise ConfigError(self.where(key, f"must be from {low} to {high} {unit}, got {value}"))
        return value
