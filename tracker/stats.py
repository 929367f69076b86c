"""Statistics over user records: a pure function from records to a dict.

:func:`compute_stats` is what ``cli.py stats`` prints and what the bot's
``/stats`` answers with; :func:`render_stats` is the human version of it.
Nothing here does I/O, reads a clock or imports pyrogram/tinydb.

Speed: the store may hold a million records, and ``stats`` is run as a whole
process by people who expect an answer at once. Timestamps are
``YYYY-MM-DDTHH:MM:SSZ`` strings that sort as text, so every time window is
turned into a UTC boundary string once and records are compared as strings,
never parsed. Over records (the bot's in-memory store) one loop takes every
field of a record while it is in cache; over columns (``store.load_columns``,
what ``cli.py stats`` reads) every count is a C-level pass (``filter``,
``Counter``, ``min``/``max``). Odd values (hand-edited stores) fall back to a
slower, tolerant loop.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tracker.models import format_ts, parse_ts

#: Days covered by ``new_per_day`` (today included).
CHART_DAYS = 30

#: Languages/sources shown in the human table (the JSON has all of them).
TOP_N = 5

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
)

UNKNOWN_LANGUAGE = "unknown"

_BARS = " ▁▂▃▄▅▆▇█"


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # ZoneInfo resolves nonexistent/ambiguous local midnights (DST) through
    # fold=0, which is what a wall clock shows: good enough for day buckets.
    return datetime.combine(day, time(0), tzinfo=tz)


def day_boundaries(now: datetime, tz: ZoneInfo, days: int = CHART_DAYS) -> tuple[list[date], list[str]]:
    """The last ``days`` local dates (oldest first) and their UTC start strings.

    The second list has one more item: the start of tomorrow, so that day ``i``
    is ``bounds[i] <= first_seen < bounds[i + 1]``.
    """
    today = now.astimezone(tz).date()
    dates = [today - timedelta(days=days - 1 - i) for i in range(days)]
    bounds = [format_ts(_local_midnight(d, tz)) for d in dates]
    bounds.append(format_ts(_local_midnight(today + timedelta(days=1), tz)))
    return dates, bounds


def compute_stats(records: Iterable[Mapping[str, Any]], *, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """Aggregate user records into the ``stats --json`` document.

    ``now`` must be timezone-aware; ``tz`` says what "today" and the days of
    ``new_per_day`` mean. Activity windows (24h/7d/30d) are measured back from
    ``now`` on ``last_seen``; "today" and the chart use ``first_seen``.
    ``reachable_users`` are the users that have not blocked the bot.
    Languages map a missing code to ``"unknown"``; sources leave out users
    without a deep-link payload. Both are ordered by count, then name.
    """
    dates, bounds, cutoffs = _windows(now, tz)
    if iter(records) is records:
        # A one-shot iterator: keep the references so the tolerant pass can rerun.
        records = list(records)
    try:
        agg = _scan(records, bounds[0], cutoffs)
    except (KeyError, TypeError):
        agg = _scan_tolerant(records, bounds[0], cutoffs)
    return _result(agg, dates, bounds)


#: The fields :func:`compute_stats_from_columns` needs.
STATS_FIELDS: tuple[str, ...] = ("first_seen", "last_seen", "language_code", "source", "blocked", "messages")


def compute_stats_from_columns(
    columns: Mapping[str, Sequence[Any]], *, now: datetime, tz: ZoneInfo
) -> dict[str, Any]:
    """:func:`compute_stats` over one sequence per field (see ``store.load_columns``).

    Column by column every count is a C-level pass (``filter``, ``Counter``,
    ``min``/``max``): a million users take a fraction of a second. Columns with
    odd values (hand-edited stores) go through the tolerant record scan.
    """
    dates, bounds, cutoffs = _windows(now, tz)
    try:
        if (set(map(type, columns["first_seen"])) | set(map(type, columns["last_seen"]))) - {str}:
            raise TypeError("non-text timestamps")  # str comparisons below would not raise
        agg = _scan_columns(columns, bounds[0], cutoffs)
    except TypeError:
        values_per_user = zip(*(columns[f] for f in STATS_FIELDS), strict=True)
        rows = [dict(zip(STATS_FIELDS, values, strict=True)) for values in values_per_user]
        agg = _scan_tolerant(rows, bounds[0], cutoffs)
    return _result(agg, dates, bounds)


def _windows(now: datetime, tz: ZoneInfo) -> tuple[list[date], list[str], tuple[str, str, str]]:
    """The chart's dates and day bounds, and the 24h/7d/30d cutoffs, as UTC strings."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    dates, bounds = day_boundaries(now, tz)
    cutoffs = (
        format_ts(now - timedelta(hours=24)),
        format_ts(now - timedelta(days=7)),
        format_ts(now - timedelta(days=30)),
    )
    return dates, bounds, cutoffs


def _scan_columns(
    columns: Mapping[str, Sequence[Any]], chart_start: str, cutoffs: tuple[str, str, str]
) -> _Scan:
    first_seen, last_seen = columns["first_seen"], columns["last_seen"]
    total = len(first_seen)
    if total == 0:
        return 0, 0, 0, (0, 0, 0), None, None, [], {}, {}
    c24, c7, c30 = cutoffs
    within_30d = list(filter(c30.__le__, last_seen))
    within_7d = list(filter(c7.__le__, within_30d))
    active = (sum(map(c24.__le__, within_7d)), len(within_7d), len(within_30d))
    return (
        total,
        sum(1 for flag in columns["blocked"] if flag is True),
        sum(columns["messages"]),
        active,
        min(first_seen),
        max(last_seen),
        list(filter(chart_start.__le__, first_seen)),
        dict(Counter(columns["language_code"])),
        dict(Counter(columns["source"])),
    )


def _result(agg: _Scan, dates: list[date], bounds: list[str]) -> dict[str, Any]:
    total, blocked, messages, active, first_min, last_max, recent_first, languages, sources = agg
    # Only the last 30 days' first sightings are sorted, then cut at the day bounds.
    per_day = _bucket(sorted(recent_first), bounds)
    language_counts = {UNKNOWN_LANGUAGE if code is None else code: n for code, n in languages.items()}
    sources.pop(None, None)
    return {
        "total_users": total,
        "new_today": per_day[-1],
        "active_24h": active[0],
        "active_7d": active[1],
        "active_30d": active[2],
        "blocked_users": blocked,
        "reachable_users": total - blocked,
        "messages_total": messages,
        "first_seen": first_min,
        "last_seen": last_max,
        "languages": _ordered(language_counts),
        "sources": _ordered(sources),
        "new_per_day": [{"date": d.isoformat(), "users": n} for d, n in zip(dates, per_day, strict=True)],
    }


def _bucket(sorted_values: list[str], bounds: list[str]) -> list[int]:
    """Counts of sorted values per half-open interval ``[bounds[i], bounds[i+1])``."""
    edges = [bisect_left(sorted_values, b) for b in bounds]
    return [edges[i + 1] - edges[i] for i in range(len(bounds) - 1)]


_Scan = tuple[
    int, int, int, tuple[int, int, int], "str | None", "str | None", list[str], dict[Any, int], dict[Any, int]
]


def _scan(rows: Iterable[Mapping[str, Any]], chart_start: str, cutoffs: tuple[str, str, str]) -> _Scan:
    """One pass over complete records; raises KeyError/TypeError on odd ones.

    Records are scattered across the heap, so fetching each record once and
    taking every field while it is in cache beats one C-level pass per field.
    """
    c24, c7, c30 = cutoffs
    total = blocked = messages = a24 = a7 = a30 = 0
    first_min = "\uffff"
    last_max = ""
    recent: list[str] = []
    keep_recent = recent.append
    languages: dict[Any, int] = {}
    sources: dict[Any, int] = {}
    lang_get = languages.get
    src_get = sources.get
    for rec in rows:
        total += 1
        fs = rec["first_seen"]
        ls = rec["last_seen"]
        if fs < first_min:
            first_min = fs
        if ls > last_max:
            last_max = ls
        if fs >= chart_start:
            keep_recent(fs)
        if ls >= c30:
            a30 += 1
            if ls >= c7:
                a7 += 1
                if ls >= c24:
                    a24 += 1
        code = rec["language_code"]
        languages[code] = lang_get(code, 0) + 1
        src = rec["source"]
        if src is not None:
            sources[src] = src_get(src, 0) + 1
        if rec["blocked"] is True:
            blocked += 1
        messages += rec["messages"]
    if total == 0:
        return 0, 0, 0, (0, 0, 0), None, None, [], {}, {}
    return total, blocked, messages, (a24, a7, a30), first_min, last_max, recent, languages, sources


def _scan_tolerant(
    rows: Iterable[Mapping[str, Any]], chart_start: str, cutoffs: tuple[str, str, str]
) -> _Scan:
    """Like :func:`_scan`, skipping missing or mistyped fields (hand-edited stores)."""
    c24, c7, c30 = cutoffs
    total = blocked = messages = a24 = a7 = a30 = 0
    first_min: str | None = None
    last_max: str | None = None
    recent: list[str] = []
    languages: Counter[Any] = Counter()
    sources: Counter[Any] = Counter()
    for rec in rows:
        total += 1
        fs, ls = rec.get("first_seen"), rec.get("last_seen")
        if isinstance(fs, str):
            first_min = fs if first_min is None or fs < first_min else first_min
            if fs >= chart_start:
                recent.append(fs)
        if isinstance(ls, str):
            last_max = ls if last_max is None or ls > last_max else last_max
            a30 += ls >= c30
            a7 += ls >= c7
            a24 += ls >= c24
        code = rec.get("language_code")
        languages[code if isinstance(code, str) and code else None] += 1
        src = rec.get("source")
        if isinstance(src, str) and src:
            sources[src] += 1
        blocked += rec.get("blocked") is True
        count = rec.get("messages")
        if isinstance(count, int) and not isinstance(count, bool):
            messages += count
    active = (a24, a7, a30)
    return total, blocked, messages, active, first_min, last_max, recent, dict(languages), dict(sources)


def _ordered(counts: Mapping[Any, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def sparkline(values: Sequence[int]) -> str:
    """Unicode block bars, one per value, scaled to the largest (0 is a blank)."""
    top = max(values, default=0)
    if top <= 0:
        return _BARS[0] * len(values)
    steps = len(_BARS) - 1
    # Any non-zero day gets at least the lowest bar so it is not mistaken for none.
    return "".join(_BARS[0] if v <= 0 else _BARS[max(1, round(v * steps / top))] for v in values)


def _fmt_ts(text: str | None, tz: ZoneInfo) -> str:
    if text is None:
        return "-"
    try:
        at = parse_ts(text)
    except (TypeError, ValueError):
        return text
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _top(counts: Mapping[str, int], total: int) -> str:
    if not counts:
        return "-"
    shown = list(counts.items())[:TOP_N]
    parts = [f"{name} {n:,} ({n * 100 / total:.0f}%)" if total else f"{name} {n:,}" for name, n in shown]
    rest = len(counts) - len(shown)
    if rest > 0:
        parts.append(f"+{rest} more")
    return ", ".join(parts)


def render_stats(stats: Mapping[str, Any], tz: ZoneInfo) -> str:
    """The human table of :func:`compute_stats`'s result, chart included."""
    total = stats["total_users"]
    lines = [
        f"Users:          {total:,}",
        f"New today:      {stats['new_today']:,}  ({tz.key})",
        f"Active 24h:     {stats['active_24h']:,}",
        f"Active 7d:      {stats['active_7d']:,}",
        f"Active 30d:     {stats['active_30d']:,}",
        f"Blocked:        {stats['blocked_users']:,}",
        f"Reachable:      {stats['reachable_users']:,}",
        f"Messages:       {stats['messages_total']:,}",
        f"First seen:     {_fmt_ts(stats['first_seen'], tz)}",
        f"Last seen:      {_fmt_ts(stats['last_seen'], tz)}",
        f"Languages:      {_top(stats['languages'], total)}",
        f"Sources:        {_top(stats['sources'], total)}",
    ]
    days = stats["new_per_day"]
    if days:
        counts = [d["users"] for d in days]
        lines.append(
            f"New per day:    {sparkline(counts)}  "
            f"{days[0]['date']} .. {days[-1]['date']}, max {max(counts):,}/day"
        )
    return "\n".join(lines)
