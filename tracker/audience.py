"""Audience queries: ``history``, ``retention``, ``sources`` and ``active_today``.

Pure functions from a store's tables and columns to typed results (each with
``to_json()`` and CSV rows). They read through an :class:`AudienceSource`, which
:class:`tracker.store.StoreReader` satisfies: the history aggregates come from
their own tables, per-user figures from the users' columns, never from parsing
every record.

Stores that ran before the history feature have no aggregates before ``since``
(the first day recorded with it). New users per period and the running total are
still exact there: they come from the users' ``first_seen`` (users in the store
now), added to what the aggregates counted from ``since_at`` on.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import operator
from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import compress, repeat
from typing import Any, ClassVar, Protocol
from zoneinfo import ZoneInfo

from tracker.periods import Grain, local_date, local_midnight_utc
from tracker.store.history import INFO_TABLE, HistoryKeeper

_TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"


class AudienceSource(Protocol):
    """What the queries read (the part of ``StoreReader`` they need)."""

    def table(self, name: str) -> dict[str, Any]: ...

    def columns(self, fields: Sequence[str]) -> dict[str, list[Any]]: ...


CsvRows = tuple[list[str], list[list[Any]]]

HISTORY_KEYS = ("period", "new", "active", "messages", "total", "commands", "buttons")
SOURCES_KEYS = (
    "source",
    "users",
    "active_7d",
    "active_30d",
    "blocked",
    "retained_1d",
    "retained_7d",
    "retained_30d",
)


class JsonResult:
    """``to_json()`` for the frozen result dataclasses below, from their fields.

    The fields in order (only those in ``JSON_KEYS`` when it is set), with
    dates as ISO text, enums as their value, tuples as lists, mappings as dicts
    and nested results as their own JSON: one place decides how a query's
    result looks in ``--json``, ``--csv`` and the HTML report.
    """

    __slots__ = ()
    #: The fields ``to_json`` carries, in order; None: every field.
    JSON_KEYS: ClassVar[tuple[str, ...] | None] = None

    def to_json(self) -> dict[str, Any]:
        keys = self.JSON_KEYS or tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]
        return {key: _json_value(getattr(self, key)) for key in keys}


def _json_value(value: Any) -> Any:
    if isinstance(value, JsonResult):
        return value.to_json()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


def load_keeper(source: AudienceSource, grain: Grain, *, retention: bool, tz: ZoneInfo) -> HistoryKeeper:
    """The aggregates one query needs (one grain), validated. ValueError on a bad shape."""
    names = [INFO_TABLE, grain.retention_table if retention else grain.history_table]
    return HistoryKeeper.from_tables({name: source.table(name) for name in names}, tz)


class _FirstSeen:
    """The users' ``first_seen``, sorted, to count users in a UTC range by bisection."""

    def __init__(self, values: Sequence[Any]) -> None:
        try:
            # Users are stored in arrival order, so this is nearly sorted: timsort's best case.
            self._sorted = sorted(values)
        except TypeError:  # a hand-edited store with a missing first_seen
            self._sorted = sorted(v for v in values if isinstance(v, str))

    def before(self, bound: str) -> int:
        return bisect_left(self._sorted, bound)

    def between(self, lo: str, hi: str) -> int:
        return max(0, self.before(hi) - self.before(lo))


def _bounds(grain: Grain, start: date, tz: ZoneInfo) -> tuple[str, str]:
    return local_midnight_utc(start, tz), local_midnight_utc(grain.next_start(start), tz)


def _pre_feature(first_seen: _FirstSeen, lo: str, hi: str, since_at: str | None) -> int:
    """Users first seen in [lo, hi) before the aggregates began (they counted none of those)."""
    if since_at is None:
        return first_seen.between(lo, hi)
    return first_seen.between(lo, min(hi, since_at)) if lo < since_at else 0


# ---------------------------------------------------------------- history


@dataclass(frozen=True, slots=True)
class PeriodRow(JsonResult):
    """One period of ``history`` (``blocks`` and ``unblocks`` are for the HTML report only)."""

    JSON_KEYS = HISTORY_KEYS

    period: date
    new: int
    active: int
    messages: int
    total: int
    commands: Mapping[str, int]
    buttons: int
    blocks: int
    unblocks: int


@dataclass(frozen=True, slots=True)
class HistoryReport(JsonResult):
    """``history``: one row per period overlapping the last N days, oldest first."""

    timezone: str
    by: Grain
    since: date | None
    periods: tuple[PeriodRow, ...]

    def csv_rows(self) -> CsvRows:
        rows = []
        for row in self.periods:
            values = row.to_json()
            values["commands"] = json.dumps(values["commands"], ensure_ascii=False)
            rows.append([values[key] for key in HISTORY_KEYS])
        return list(HISTORY_KEYS), rows


def history(source: AudienceSource, by: Grain, days: int, now: datetime, tz: ZoneInfo) -> HistoryReport:
    """The periods (``by``) overlapping the last ``days`` local days, today included.

    ``tz`` is the configured zone; a store that recorded history in another zone
    answers in that one (its periods are in it).
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    keeper = load_keeper(source, by, retention=False, tz=tz)
    zone = keeper.timezone
    first_seen = _FirstSeen(source.columns(["first_seen"])["first_seen"])
    today = now.astimezone(zone).date()
    start = by.start(today - timedelta(days=days - 1))
    rows = []
    while start <= today:
        lo, hi = _bounds(by, start, zone)
        doc = keeper.period(by, start) or {}
        rows.append(
            PeriodRow(
                period=start,
                new=doc.get("new", 0) + _pre_feature(first_seen, lo, hi, keeper.since_at),
                active=doc.get("active", 0),
                messages=doc.get("messages", 0),
                total=first_seen.before(hi),
                commands=dict(sorted(doc.get("commands", {}).items(), key=lambda kv: (-kv[1], kv[0]))),
                buttons=doc.get("buttons", 0),
                blocks=doc.get("blocks", 0),
                unblocks=doc.get("unblocks", 0),
            )
        )
        start = by.next_start(start)
    since = date.fromisoformat(keeper.since) if keeper.since else None
    return HistoryReport(timezone=zone.key, by=by, since=since, periods=tuple(rows))


# ---------------------------------------------------------------- retention


@dataclass(frozen=True, slots=True)
class Cohort(JsonResult):
    """One cohort of ``retention``: its size and how many were active k periods later."""

    cohort: date
    users: int
    active: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RetentionReport(JsonResult):
    """``retention``: the last N cohorts, oldest first."""

    timezone: str
    by: Grain
    cohorts: tuple[Cohort, ...]

    def csv_rows(self) -> CsvRows:
        width = max((len(c.active) for c in self.cohorts), default=1)
        headers = ["cohort", "users", *(f"active_{k}" for k in range(width))]
        rows: list[list[Any]] = [
            [c.cohort.isoformat(), c.users, *c.active, *([""] * (width - len(c.active)))]
            for c in self.cohorts
        ]
        return headers, rows


def retention(
    source: AudienceSource, by: Grain, periods: int, now: datetime, tz: ZoneInfo
) -> RetentionReport:
    """The last ``periods`` cohorts up to the current one; ``active`` runs to the current period.

    A cohort is followed for at most ``by.max_after`` periods (a day cohort for 90 days).
    """
    if periods < 1:
        raise ValueError("periods must be at least 1")
    keeper = load_keeper(source, by, retention=True, tz=tz)
    zone = keeper.timezone
    first_seen = _FirstSeen(source.columns(["first_seen"])["first_seen"])
    current = by.start(now.astimezone(zone).date())
    cohorts = []
    for back in range(periods - 1, -1, -1):
        start = by.shift(current, -back)
        lo, hi = _bounds(by, start, zone)
        users = keeper.cell(by, start, 0) + _pre_feature(first_seen, lo, hi, keeper.since_at)
        later = [keeper.cell(by, start, k) for k in range(1, min(back, by.max_after) + 1)]
        cohorts.append(Cohort(cohort=start, users=users, active=(users, *later)))
    return RetentionReport(timezone=zone.key, by=by, cohorts=tuple(cohorts))


# ---------------------------------------------------------------- sources

SOURCES_FIELDS = ("source", "first_seen", "last_seen", "blocked")
_RETAINED_DAYS = (1, 7, 30)


@dataclass(frozen=True, slots=True)
class SourceRow(JsonResult):
    """One deep-link source (None: users who came without one)."""

    source: str | None
    users: int
    active_7d: int
    active_30d: int
    blocked: int
    retained_1d: int
    retained_7d: int
    retained_30d: int


@dataclass(frozen=True, slots=True)
class SourcesReport:
    rows: tuple[SourceRow, ...]

    def to_json(self) -> list[dict[str, Any]]:
        return [row.to_json() for row in self.rows]

    def csv_rows(self) -> CsvRows:
        return list(SOURCES_KEYS), [[getattr(row, key) for key in SOURCES_KEYS] for row in self.rows]


def sources(columns: Mapping[str, Sequence[Any]], now: datetime) -> SourcesReport:
    """Per source: users, rolling 7/30-day activity (as ``stats``), blocked, retained ≥1/7/30 days.

    Ordered by users (most first), then source name; users without a source last
    among equals.
    """
    cutoffs = (
        (now - timedelta(days=7)).strftime(_TIMESTAMP),
        (now - timedelta(days=30)).strftime(_TIMESTAMP),
    )
    source, first, last, blocked = (columns[f] for f in SOURCES_FIELDS)
    if {*map(type, first), *map(type, last)} <= {str}:
        counts = _count_by_column(source, first, last, blocked, cutoffs)
    else:  # a hand-edited store with odd timestamps
        counts = _count_by_user(source, first, last, blocked, cutoffs)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0] is None, kv[0] or ""))
    return SourcesReport(tuple(SourceRow(name, *values) for name, values in ordered))


_Counts = dict[Any, list[int]]  # source -> [users, active_7d, active_30d, blocked, retained_1d, _7d, _30d]


def _count_by_column(
    source: Sequence[Any],
    first: Sequence[str],
    last: Sequence[str],
    blocked: Sequence[Any],
    cutoffs: tuple[str, str],
) -> _Counts:
    """The counts as C-level passes over whole columns, except the retained users' loop."""
    per_column = [
        Counter(source),
        Counter(compress(source, map(cutoffs[0].__le__, last))),
        Counter(compress(source, map(cutoffs[1].__le__, last))),
        Counter(compress(source, map(operator.is_, blocked, repeat(True)))),
    ]
    retained: list[Counter[Any]] = [Counter() for _ in _RETAINED_DAYS]
    ordinals: dict[str, int] = {}  # few distinct days: parse each once
    # Only users seen at two different times can have stayed; a span of at least
    # N days is N+1 calendar days apart, or N days apart and no earlier in the day.
    seen_twice = compress(zip(source, first, last, strict=True), map(operator.ne, first, last))
    for name, seen_first, seen_last in seen_twice:
        first_day, last_day = seen_first[:10], seen_last[:10]
        if first_day == last_day:
            continue
        for day in (first_day, last_day):
            if day not in ordinals:
                ordinals[day] = date.fromisoformat(day).toordinal()
        days = ordinals[last_day] - ordinals[first_day]
        later_in_day = seen_last[11:] >= seen_first[11:]
        for i, n in enumerate(_RETAINED_DAYS):
            if days > n or (days == n and later_in_day):
                retained[i][name] += 1
    return {name: [c[name] for c in (*per_column, *retained)] for name in per_column[0]}


def _count_by_user(
    source: Sequence[Any],
    first: Sequence[Any],
    last: Sequence[Any],
    blocked: Sequence[Any],
    cutoffs: tuple[str, str],
) -> _Counts:
    """The tolerant version: users with a missing or odd timestamp count only where they can."""
    counts: _Counts = {}
    parse = datetime.fromisoformat  # accepts the trailing Z
    thresholds = [timedelta(days=n) for n in _RETAINED_DAYS]
    for name, seen_first, seen_last, flag in zip(source, first, last, blocked, strict=True):
        row = counts.setdefault(name, [0] * 7)
        row[0] += 1
        row[3] += flag is True
        if not isinstance(seen_last, str):
            continue
        row[1] += seen_last >= cutoffs[0]
        row[2] += seen_last >= cutoffs[1]
        try:
            span = parse(seen_last) - parse(seen_first)
        except (TypeError, ValueError):
            continue
        for i, threshold in enumerate(thresholds):
            row[4 + i] += span >= threshold
    return counts


# ---------------------------------------------------------------- stats


def active_today(last_seen: Sequence[Any], now: datetime, tz: ZoneInfo) -> int:
    """Users whose ``last_seen`` is today in ``tz`` (``stats --json``'s ``active_today``)."""
    today = now.astimezone(tz).date()
    lo, hi = local_midnight_utc(today, tz), local_midnight_utc(today + timedelta(days=1), tz)
    return sum(1 for value in last_seen if isinstance(value, str) and lo <= value < hi)


__all__ = [
    "AudienceSource",
    "Cohort",
    "Grain",
    "HistoryReport",
    "PeriodRow",
    "RetentionReport",
    "SourceRow",
    "SourcesReport",
    "active_today",
    "history",
    "local_date",
    "retention",
    "sources",
]
