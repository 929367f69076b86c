"""Typed Click parameters of the CLI: spans, zones, users and sources.

Numbers are read with ASCII-only patterns: ``str.isdigit()`` and ``\\d`` also
accept superscripts and other scripts' digits (``²``, ``٣``) that ``int()``
then rejects or reads unexpectedly.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import click

# Every command's options are built from these types when the CLI starts, even
# for ``--help``: what converting a value needs (zoneinfo) is imported on use.
if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

__all__ = ["MAX_SPAN", "NO_SOURCE", "Duration", "SourceName", "TimeZone", "UserRef", "UserRefType"]

#: What ``--source`` takes for "users who came without a deep-link payload" (None in the store).
NO_SOURCE = "none"

#: Longest ``--active-within`` span: beyond this "now minus the span" leaves the calendar.
MAX_SPAN = timedelta(days=365 * 200)

_ASCII_INT = re.compile(r"-?[0-9]+", re.ASCII)
_USERNAME = re.compile(r"@?[A-Za-z][A-Za-z0-9_]{0,63}", re.ASCII)

#: Telegram ids are signed 64-bit.
_ID_LIMIT = 1 << 63


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A span like ``90s``, ``30m``, ``24h``, ``7d`` or ``2w``."""

    name = "duration"
    _units: ClassVar[dict[str, str]] = {
        "s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"
    }
    _pattern = re.compile(r"([0-9]{1,12})\s*([smhdw])", re.ASCII)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = self._pattern.fullmatch(str(value).strip().lower())
        if not match:
            self.fail(f"{value!r} is not a duration like 7d, 24h, 30m, 2w", param, ctx)
        try:
            span = timedelta(**{self._units[match.group(2)]: int(match.group(1))})
        except OverflowError:
            span = MAX_SPAN + timedelta(days=1)
        if span > MAX_SPAN:
            self.fail(f"{value!r} is too long a span (at most {MAX_SPAN.days // 365} years)", param, ctx)
        return span


class TimeZone(click.ParamType):  # type: ignore[type-arg]
    """An IANA time zone name such as ``Europe/Berlin``."""

    name = "zone"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> ZoneInfo:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if isinstance(value, ZoneInfo):
            return value
        try:
            return ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(f"unknown time zone {value!r} (use a name like Europe/Berlin or UTC)", param, ctx)


class UserRef(NamedTuple):
    """A user named on the command line: by id or by @username (exactly one is set)."""

    user_id: int | None
    username: str | None

    def __str__(self) -> str:
        return str(self.user_id) if self.user_id is not None else f"@{self.username}"


class UserRefType(click.ParamType):  # type: ignore[type-arg]
    """``ID`` (ASCII digits, 64-bit) or ``@username``."""

    name = "user"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> UserRef:
        if isinstance(value, UserRef):
            return value
        text = str(value).strip()
        if _ASCII_INT.fullmatch(text):
            user_id = int(text)
            if -_ID_LIMIT <= user_id < _ID_LIMIT:
                return UserRef(user_id, None)
            self.fail(f"{text[:30]!r} is too large for a Telegram user id", param, ctx)
        if _USERNAME.fullmatch(text):
            return UserRef(None, text.lstrip("@"))
        self.fail(f"{text[:40]!r} is neither a user id nor an @username", param, ctx)


class SourceName(click.ParamType):  # type: ignore[type-arg]
    """A deep-link payload, or ``none`` for users who came without one (None)."""

    name = "source"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str | None:
        if value is None or value == NO_SOURCE:
            return None
        return str(value)
