"""The user record: its fields, timestamps and how a "user" becomes one.

A record is a plain ``dict`` (that is what TinyDB stores and what keeps unknown
fields intact). A sighting reaches the store as a :class:`Profile`, built by
:func:`make_profile` (the handlers do it in ``tracker.profiles``). This module
imports neither pyrogram nor tinydb.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

Record = dict[str, Any]

#: The profile fields copied from a Telegram user on every sighting.
PROFILE_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "username",
    "language_code",
    "is_bot",
    "is_premium",
)

#: Every field a record has, in the order they are written.
RECORD_FIELDS: tuple[str, ...] = (
    "id",
    *PROFILE_FIELDS,
    "first_seen",
    "last_seen",
    "messages",
    "source",
    "blocked",
    "blocked_at",
)

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_ts(at: datetime) -> str:
    """``at`` (timezone-aware) as UTC ``YYYY-MM-DDTHH:MM:SSZ``, sortable as text."""
    if at.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return at.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_ts(text: str) -> datetime:
    """The inverse of :func:`format_ts`: an aware UTC datetime."""
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


class TimestampCache:
    """Formats aware datetimes, reusing the string while the second is the same.

    ``strftime`` costs about a microsecond and the bot sees many updates per
    second; comparing against the cached second's bounds is much cheaper.
    """

    __slots__ = ("_end", "_start", "_text")

    def __init__(self) -> None:
        self._start = self._end = datetime.min.replace(tzinfo=UTC)
        self._text = ""

    def __call__(self, at: datetime) -> str:
        # Aware datetimes with the same tzinfo compare by wall clock, which is
        # wrong across a DST fold; in UTC it is exact, so only UTC hits the cache.
        if at.tzinfo is not UTC:
            return format_ts(at)
        if not self._start <= at < self._end:
            self._text = format_ts(at)
            self._start = at.replace(microsecond=0)
            self._end = self._start + _ONE_SECOND
        return self._text


_ONE_SECOND = timedelta(seconds=1)


class Profile(NamedTuple):
    """What Telegram says about one user at one sighting, normalised.

    The one shape a sighting has at the store's door: the handlers build it
    from a pyrogram ``User`` or a raw TL ``User`` (:func:`make_profile`), so the
    store never duck-types Telegram objects. A tuple, because one is built per
    update and tuples are the cheapest typed value Python has.
    """

    id: int
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False
    is_premium: bool | None = None


def make_profile(
    user_id: int,
    first_name: object = None,
    last_name: object = None,
    username: object = None,
    language_code: object = None,
    is_bot: object = False,
    is_premium: object = None,
) -> Profile:
    """A :class:`Profile` from loosely typed values, normalised as the store keeps them.

    Empty ``username``/``language_code`` mean "not set" (None); text is made
    UTF-8 encodable (:func:`encodable_text`); a non-int id is a ``TypeError``.
    """
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise TypeError(f"user id must be an int, got {user_id!r}")
    return Profile(
        user_id,
        _clean(first_name),
        _clean(last_name),
        _clean(username) or None,
        _clean(language_code) or None,
        bool(is_bot),
        None if is_premium is None else bool(is_premium),
    )


def _clean(value: object) -> str | None:
    if value is None:
        return None
    return encodable_text(value if type(value) is str else str(value))


def encodable_text(value: str) -> str:
    """``value`` with lone surrogates (which UTF-8 cannot carry) replaced by U+FFFD.

    Pyrogram never produces them, but a caller passing plain mappings might,
    and one such name must not make the whole store unsaveable.
    """
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def complete_record(record: Record) -> Record:
    """Fill fields missing from an older or hand-edited record, keeping extras."""
    for name in RECORD_FIELDS:
        if name not in record:
            record[name] = 0 if name == "messages" else False if name in ("is_bot", "blocked") else None
    return record
