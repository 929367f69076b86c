"""The user record: its fields, timestamps and how a "user" becomes one.

A record is a plain ``dict`` (that is what TinyDB stores and what keeps unknown
fields intact). This module imports neither pyrogram nor tinydb: anything with
the right attributes, or a mapping with the right keys, is a user.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def user_id_of(user: Mapping[str, Any] | object) -> int:
    """The Telegram id of a mapping or an object with an ``id`` attribute."""
    # isinstance(x, dict) is a cheap C check; the Mapping ABC check is not.
    value = user["id"] if isinstance(user, dict | Mapping) else getattr(user, "id")  # noqa: B009
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"user id must be an int, got {value!r}")
    return value


def profile_of(user: Mapping[str, Any] | object) -> dict[str, Any]:
    """The :data:`PROFILE_FIELDS` of a user, normalised.

    Names are stored as Telegram sent them (emoji, RTL, control characters and
    all); an empty ``username`` or ``language_code`` means "not set" and becomes
    ``None``. This runs on every update, hence the unrolled code.
    """
    if isinstance(user, dict | Mapping):
        get = user.get
        first_name, last_name = get("first_name"), get("last_name")
        username, language_code = get("username"), get("language_code")
        is_bot, is_premium = get("is_bot"), get("is_premium")
    else:
        first_name = getattr(user, "first_name", None)
        last_name = getattr(user, "last_name", None)
        username = getattr(user, "username", None)
        language_code = getattr(user, "language_code", None)
        is_bot = getattr(user, "is_bot", None)
        is_premium = getattr(user, "is_premium", None)
    return {
        "first_name": _text(first_name),
        "last_name": _text(last_name),
        "username": _text(username) or None,
        "language_code": _text(language_code) or None,
        "is_bot": bool(is_bot),
        "is_premium": None if is_premium is None else bool(is_premium),
    }


def _text(value: object) -> str | None:
    return value if value is None or type(value) is str else str(value)


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


def encodable(profile: dict[str, Any]) -> dict[str, Any]:
    """``profile`` with every text field made :func:`encodable_text` (in place)."""
    for name in ("first_name", "last_name", "username", "language_code"):
        value = profile[name]
        if value is not None:
            profile[name] = encodable_text(value)
    return profile


def new_record(user_id: int, profile: Mapping[str, Any], seen_at: str) -> Record:
    """A fresh record for a user first seen at ``seen_at`` (already formatted)."""
    record: Record = {"id": user_id}
    record.update(profile)
    record.update(
        first_seen=seen_at,
        last_seen=seen_at,
        messages=0,
        source=None,
        blocked=False,
        blocked_at=None,
    )
    return record


def complete_record(record: Record) -> Record:
    """Fill fields missing from an older or hand-edited record, keeping extras."""
    for name in RECORD_FIELDS:
        if name not in record:
            record[name] = 0 if name == "messages" else False if name in ("is_bot", "blocked") else None
    return record
