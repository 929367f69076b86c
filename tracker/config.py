"""Settings: ``config.ini`` plus environment overrides for secrets.

``load(path)`` returns a frozen :class:`Settings`. Every problem is reported as a
:class:`ConfigError` whose message names the file and the key, so the bot and the
CLI can print it as one line.
"""

from __future__ import annotations

import configparser
import os
import string
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_CONFIG = "config.ini"
CONFIG_ENV = "TRACKER_CONFIG"

#: Placeholders that bio/description templates may use.
BIO_PLACEHOLDERS = frozenset({"users", "reachable", "active_30d", "new_today"})

# Secrets may come from the environment so that config.ini can stay committed.
_ENV_OVERRIDES = {
    "api_id": "TRACKER_API_ID",
    "api_hash": "TRACKER_API_HASH",
    "bot_token": "TRACKER_BOT_TOKEN",
}


class ConfigError(Exception):
    """The configuration is missing, unreadable or holds a bad value."""


@dataclass(frozen=True)
class Settings:
    """Everything the bot and the CLI read from the configuration."""

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
        return ZoneInfo(self.timezone)

    def admin_ids(self) -> frozenset[int]:
        """Admins given as numeric user ids."""
        return frozenset(int(a) for a in self.admins if a.lstrip("-").isdigit())

    def admin_usernames(self) -> frozenset[str]:
        """Admins given as ``@username`` (lower-case, without the ``@``)."""
        return frozenset(
            a.lstrip("@").lower() for a in self.admins if not a.lstrip("-").isdigit()
        )

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


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the config path: explicit argument, then $TRACKER_CONFIG, then ./config.ini."""
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def template_fields(template: str) -> set[str]:
    """The ``{placeholder}`` names used by a str.format template (raises ValueError)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def load(path: str | os.PathLike[str] | None = None, *, require_file: bool = False) -> Settings:
    """Read settings from ``path`` (see :func:`config_path`) and the environment.

    A missing ./config.ini is allowed (all defaults, secrets from the
    environment); a missing file named by ``path`` or $TRACKER_CONFIG, or any
    missing file with ``require_file``, is an error.
    """
    cfg_path = config_path(path)
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    explicit = path is not None or bool(os.environ.get(CONFIG_ENV))
    if cfg_path.exists() or require_file or explicit:
        try:
            with open(cfg_path, encoding="utf-8") as fh:
                parser.read_file(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config {cfg_path}: {exc.strerror or exc}") from None
        except (configparser.Error, UnicodeDecodeError) as exc:
            first_line = str(exc).splitlines()[0]
            raise ConfigError(f"config {cfg_path} is not a valid INI file: {first_line}") from None
    base = cfg_path.resolve().parent
    reader = _Reader(parser, cfg_path)

    api_id_text = reader.secret("api_id")
    api_id: int | None = None
    if api_id_text:
        if not api_id_text.isdigit():
            raise ConfigError(reader.where("api_id", f"must be a number, got {api_id_text!r}"))
        api_id = int(api_id_text)

    timezone = reader.get("tracker", "timezone", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(reader.where("timezone", f"unknown time zone {timezone!r}")) from None

    bio_template = reader.get("tracker", "bio_template", "👥 Users: {users}", strip=False).strip()
    _check_template(reader, "bio_template", bio_template)
    description = reader.get("tracker", "description_template", "", strip=False).strip() or None
    if description is not None:
        _check_template(reader, "description_template", description)

    welcome = reader.get("tracker", "welcome", "Hi {first_name}!", strip=False).strip()
    try:
        unknown = template_fields(welcome) - {"first_name"}
    except ValueError as exc:
        raise ConfigError(reader.where("welcome", f"bad template: {exc}")) from None
    if unknown:
        raise ConfigError(reader.where("welcome", f"unknown placeholder {{{sorted(unknown)[0]}}}"))

    session = reader.get("tracker", "session", "tracker")
    if not session or "/" in session or "\\" in session:
        raise ConfigError(reader.where("session", "must be a plain name, e.g. tracker"))

    admins = tuple(a.strip() for a in reader.get("tracker", "admins", "").split(",") if a.strip())
    for admin in admins:
        if not (admin.lstrip("-").isdigit() or (admin.startswith("@") and len(admin) > 1)):
            raise ConfigError(reader.where("admins", f"{admin!r} is neither a user id nor an @username"))

    store_text = reader.get("tracker", "store", "data/users.json")
    if not store_text:
        raise ConfigError(reader.where("store", "must not be empty"))
    store = Path(store_text).expanduser()

    return Settings(
        config_path=cfg_path,
        api_id=api_id,
        api_hash=reader.secret("api_hash") or None,
        bot_token=reader.secret("bot_token") or None,
        store=store if store.is_absolute() else base / store,
        session=session,
        admins=admins,
        public_stats=reader.boolean("public_stats", False),
        timezone=timezone,
        bio_template=bio_template,
        description_template=description,
        bio_interval=reader.non_negative_int("bio_interval", 3600),
        welcome=welcome,
    )


def _check_template(reader: _Reader, key: str, template: str) -> None:
    try:
        unknown = template_fields(template) - BIO_PLACEHOLDERS
    except ValueError as exc:
        raise ConfigError(reader.where(key, f"bad template: {exc}")) from None
    if unknown:
        allowed = ", ".join("{" + p + "}" for p in sorted(BIO_PLACEHOLDERS))
        raise ConfigError(
            reader.where(key, f"unknown placeholder {{{sorted(unknown)[0]}}} (allowed: {allowed})")
        )


class _Reader:
    """Typed access to the parser, with errors that name the file and the key."""

    def __init__(self, parser: configparser.ConfigParser, path: Path) -> None:
        self._parser = parser
        self._path = path

    def where(self, key: str, problem: str) -> str:
        return f"config {self._path}: {key}: {problem}"

    def get(self, section: str, key: str, default: str, *, strip: bool = True) -> str:
        value = self._parser.get(section, key, fallback=default)
        return value.strip() if strip else value

    def secret(self, key: str) -> str:
        env = os.environ.get(_ENV_OVERRIDES[key], "").strip()
        return env or self.get("pyrogram", key, "")

    def boolean(self, key: str, default: bool) -> bool:
        text = self.get("tracker", key, "").lower()
        if not text:
            return default
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(self.where(key, f"must be true or false, got {text!r}"))

    def non_negative_int(self, key: str, default: int) -> int:
        text = self.get("tracker", key, "")
        if not text:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(self.where(key, f"must be a whole number of seconds, got {text!r}")) from None
        if value < 0:
            raise ConfigError(self.where(key, f"must not be negative, got {value}"))
        return value
