"""Statistics over user records: one scan from columns to a :class:`Stats` value.

:func:`scan` is the one scanner: it takes one list per field (what
``StoreReader.columns`` returns, and what :func:`columns_of` makes of
in-memory records) and returns a frozen :class:`Stats`; ``Stats.to_json()`` is
the ``stats --json`` document (DESIGN.md). :func:`compute_stats` is the entry
point for record iterables (the bot's ``/stats``, ``Tracking.stats()``, the
profile counter). The human version is :mod:`tracker.stats_render` (not
imported here: ``stats --json`` does without it). Nothing here does I/O, reads
a clock or imports pyrogram/tinydb.

Speed: the store may hold a million records and ``stats`` is run as a whole
process by people who expect an answer at once. Timestamps are
``YYYY-MM-DDTHH:MM:SSZ`` strings that sort as text, so every time window is
turned into a UTC boundary string once and compared as strings, never parsed;
every count is a C-level pass over one column (``filter``, ``Counter``,
``min``/``max``). Values of the wrong type (hand-edited stores) are cleaned
column by column first, only when a column holds any.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from operator import itemgetter
from typing import Any, NamedTuple, Protocol, TypeGuard
from zoneinfo import ZoneInfo

from tracker.models import format_ts

#: Days covered by ``new_per_day`` (today included).
CHART_DAYS = 30

#: Languages/sources shown in the human table (the JSON has all of them).

#: The keys of the ``stats --json`` document, in print order (DESIGN.md).
STATS_KEYS: tuple[str, ...] = (
    "total_users",
    "new_today",
    "active_24h",
    "active_7d",
    "active_30d",
    "blocked_users",
    "reachable_users",
    "messages_total",
    "first_seen",
    "last_seen",
    "languages",
    "sources",
    "new_per_day",
    "active_today",
)

#: The fields :func:`scan` reads.
STATS_FIELDS: tuple[str, ...] = ("first_seen", "last_seen", "language_code", "source", "blocked", "messages")

UNKNOWN_LANGUAGE = "unknown"



class DayCount(NamedTuple):
    """New users on one local day."""

    day: date
    users: int


class Stats(NamedTuple):
    """The figures of ``stats`` (see DESIGN.md for what each means).

    A NamedTuple rather than a frozen dataclass: as immutable and typed, and
    ~1 ms less to define, which ``tracker stats`` pays on every start.
    """

    total_users: int
    new_today: int
    active_24h: int
    active_7d: int
    active_30d: int
    blocked_users: int
    messages_total: int
    first_seen: str | None
    last_seen: str | None
    #: Language code (``"unknown"`` for none) -> users, most first.
    languages: Mapping[str, int]
    #: Deep-link payload -> users, most first; users without one are left out.
    sources: Mapping[str, int]
    new_per_day: tuple[DayCount, ...]
    #: Users whose last_seen is today in the zone.
    active_today: int = 0

    @property
    def reachable_users(self) -> int:
        """Users who have not blocked the bot."""
        return self.total_users - self.blocked_users

    def to_json(self) -> dict[str, Any]:
        """The ``stats --json`` document, keys in :data:`STATS_KEYS` order."""
        return {
            "total_users": self.total_users,
            "new_today": self.new_today,
            "active_24h": self.active_24h,
            "active_7d": self.active_7d,
            "active_30d": self.active_30d,
            "blocked_users": self.blocked_users,
            "reachable_users": self.reachable_users,
            "messages_total": self.messages_total,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "languages": dict(self.languages),
            "sources": dict(self.sources),
            "new_per_day": [{"date": d.day.isoformat(), "users": d.users} for d in self.new_per_day],
            "active_today": self.active_today,
        }


def compute_stats(records: Iterable[Mapping[str, Any]], *, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The ``stats --json`` document of user records (the bot's ``/stats``, ``Tracking.stats()``).

    ``now`` must be timezone-aware; ``tz`` says what "today" and the days of
    ``new_per_day`` mean. Activity windows (24h/7d/30d) are measured back from
    ``now`` on ``last_seen``; "today" and the chart use ``first_seen``.
    """
    return scan(columns_of(records), now=now, tz=tz).to_json()


def compute_stats_from_columns(
    columns: Mapping[str, Sequence[Any]], *, now: datetime, tz: ZoneInfo
) -> dict[str, Any]:
    """:func:`compute_stats` over one sequence per field (``StoreReader.columns(STATS_FIELDS)``)."""
    return scan(columns, now=now, tz=tz).to_json()


def columns_of(records: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The :data:`STATS_FIELDS` columns of ``records`` (a missing field reads as None)."""
    records = records if isinstance(records, list) else list(records)
    columns: dict[str, list[Any]] = {}
    for name in STATS_FIELDS:
        try:
            columns[name] = list(map(itemgetter(name), records))
        except (KeyError, TypeError):  # partial records (plain dicts from a caller)
            columns[name] = [rec.get(name) for rec in records]
    return columns


class SecondsColumn(Protocol):
    """A timestamp column that also holds its values as uint32 seconds, 0 for null
    (the column cache's ``TimeColumn``): counted without making a string per user."""

    seconds: array[int]


class _TimeDomain(NamedTuple):
    """``first_seen``/``last_seen`` and the boundaries, all as text or all as seconds (comparable alike)."""

    first: Sequence[Any]
    last: Sequence[Any]
    bounds: list[Any]
    cuts: list[Any]  # 30d, 7d, 24h
    nonzero: bool  # seconds: 0 is null, left out of min()

    def text(self, value: Any) -> str | None:
        if not self.nonzero or value is None:
            return value  # type: ignore[no-any-return]
        return format_ts(_EPOCH + timedelta(seconds=value)) if value else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _has_seconds(column: Any) -> TypeGuard[SecondsColumn]:
    return isinstance(getattr(column, "seconds", None), array)


def _time_domain(
    first: Sequence[Any], last: Sequence[Any], bounds: list[datetime], cuts: list[datetime]
) -> _TimeDomain:
    """The timestamps as text (sortable), or as seconds when the columns hold them (no string per user)."""
    if _has_seconds(first) and _has_seconds(last):
        return _TimeDomain(first.seconds, last.seconds, [*map(_seconds, bounds)], [*map(_seconds, cuts)],
                           nonzero=True)
    return _TimeDomain(_texts(first), _texts(last), [*map(format_ts, bounds)], [*map(format_ts, cuts)],
                       nonzero=False)


def _seconds(at: datetime) -> int:
    """``at`` as whole seconds since 1970 (as its text form would read back; 0 is null, so at least 1)."""
    return max(1, (at - _EPOCH) // timedelta(seconds=1))


def scan(columns: Mapping[str, Sequence[Any]], *, now: datetime, tz: ZoneInfo) -> Stats:
    """The one scanner: :class:`Stats` of the users in ``columns`` (one list per :data:`STATS_FIELDS`)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    dates, starts = _day_starts(now, tz)
    spans = (timedelta(days=30), timedelta(days=7), timedelta(hours=24))
    times = _time_domain(columns["first_seen"], columns["last_seen"], starts, [now - span for span in spans])
    # From here on every comparison is within one domain (text, or seconds with 0 for null).
    # A pass over a whole column costs ~40 ns a user, so there are as few as the figures need.
    first_seen, last_seen, bounds, (c30, c7, c24) = times.first, times.last, times.bounds, times.cuts
    within_30d = list(filter(c30.__le__, last_seen))
    within_7d = list(filter(c7.__le__, within_30d))
    # Anyone seen in the last 30 days was seen last; only without such a user is the whole column needed.
    latest = max(within_30d or last_seen, default=None)
    # Only the last 30 days' first sightings are sorted, then cut at the day bounds.
    per_day = _bucket(sorted(filter(bounds[0].__le__, first_seen)), bounds)
    blocked = _count_true(columns["blocked"])
    total = len(columns["first_seen"])
    earliest = min(first_seen, default=None)
    if times.nonzero and earliest == 0:  # some first_seen is null: the earliest of the others
        earliest = min(filter(None, first_seen), default=None)
    return Stats(
        total_users=total,
        new_today=per_day[-1],
        active_24h=sum(map(c24.__le__, within_7d)),
        active_7d=len(within_7d),
        active_30d=len(within_30d),
        blocked_users=blocked,
        messages_total=_sum_counts(columns["messages"]),
        first_seen=times.text(earliest),
        last_seen=times.text(latest),
        languages=_ordered(_count_names(columns["language_code"], none_as=UNKNOWN_LANGUAGE)),
        sources=_ordered(_count_names(columns["source"], none_as=None)),
        new_per_day=tuple(DayCount(d, n) for d, n in zip(dates, per_day, strict=True)),
        active_today=sum(1 for t in within_7d if bounds[-2] <= t < bounds[-1]),
    )


def _texts(values: Sequence[Any]) -> list[str]:
    """The str values of a timestamp column (others are odd: left out)."""
    if set(map(type, values)) <= {str}:
        return values if isinstance(values, list) else list(values)
    return [v for v in values if isinstance(v, str)]


def _sum_counts(values: Sequence[Any]) -> int:
    numbers = getattr(values, "numbers", None)
    if isinstance(numbers, array):  # the column cache's counts: unsigned 63-bit ints, summed in C
        return sum(numbers)
    if set(map(type, values)) <= {int}:
        return sum(values)
    return sum(v for v in values if isinstance(v, int) and not isinstance(v, bool))


def _count_true(flags: Sequence[Any]) -> int:
    """How many flags are ``True`` (exactly: a hand-edited ``1`` is not)."""
    if isinstance(getattr(flags, "data", None), bytearray):  # the column cache's flags: counted in C
        return flags.count(True)
    return sum(1 for flag in flags if flag is True)


def _count_names(values: Sequence[Any], *, none_as: str | None) -> dict[str, int]:
    """Users per name; a missing, empty or non-text name counts under ``none_as`` (None: not counted)."""
    counted = getattr(values, "counts", None)  # the column cache's codes count themselves
    try:
        counts: Mapping[Any, int] = counted() if callable(counted) else Counter(values)
    except TypeError:  # an unhashable value (a list in a hand-edited store)
        counts = Counter(v if isinstance(v, str) else None for v in values)
    named: dict[str, int] = {}
    unnamed = 0
    for name, n in counts.items():
        if isinstance(name, str) and name:
            named[name] = n
        else:
            unnamed += n
    if unnamed and none_as is not None:
        named[none_as] = named.get(none_as, 0) + unnamed
    return named


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # ZoneInfo resolves nonexistent/ambiguous local midnights (DST) through
    # fold=0, which is what a wall clock shows: good enough for day buckets.
    return datetime.combine(day, time(0), tzinfo=tz)


def day_boundaries(now: datetime, tz: ZoneInfo, days: int = CHART_DAYS) -> tuple[list[date], list[str]]:
    """The last ``days`` local dates (oldest first) and their UTC start strings.

    The second list has one more item: the start of tomorrow, so that day ``i``
    is ``bounds[i] <= first_seen < bounds[i + 1]``.
    """
    dates, starts = _day_starts(now, tz, days)
    return dates, [*map(format_ts, starts)]


def _day_starts(now: datetime, tz: ZoneInfo, days: int = CHART_DAYS) -> tuple[list[date], list[datetime]]:
    """:func:`day_boundaries` with the starts as datetimes."""
    today = now.astimezone(tz).date()
    dates = [today - timedelta(days=days - 1 - i) for i in range(days)]
    return dates, [_local_midnight(d, tz) for d in [*dates, today + timedelta(days=1)]]


def _bucket(sorted_values: list[Any], bounds: list[Any]) -> list[int]:
    """Counts of sorted values per half-open interval ``[bounds[i], bounds[i+1])``."""
    edges = [bisect_left(sorted_values, b) for b in bounds]
    return [edges[i + 1] - edges[i] for i in range(len(bounds) - 1)]


def _ordered(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
