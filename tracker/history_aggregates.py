"""Audience history: exact per-period aggregates, kept in memory as updates arrive.

The writer feeds every recorded interaction to a :class:`HistoryKeeper` as an
:class:`Activity` (and every block/unblock through :meth:`HistoryKeeper.record_block`);
the keeper updates a handful of counters in O(1), with no per-user history and no
scan. Whether this is the user's first interaction in a period follows from their
*previous* ``last_seen``, which the store already holds: the user was not yet
active in the period exactly when that previous sighting is before the period's
start. (An update older than the previous sighting counts its message, command and
button, but never a new active user: the store cannot tell whether the user was
active in that earlier period, and undercounting a late update beats double counting.)

Calendar periods (day, Monday-start week, month) are in the store's time zone and
come from the update's own timestamp, never the wall clock. Timestamps are the
store's UTC text (``YYYY-MM-DDTHH:MM:SSZ``, sortable as text): the keeper caches the
current period's UTC bounds, so the common case is two string comparisons per grain.

Persistence (TinyDB tables of their own; doc ids are integer strings):

- ``history``: doc ``"1"`` = ``{"since": "YYYY-MM-DD", "since_at": TIMESTAMP,
  "timezone": ZONE}`` (``since``: the first local day recorded with this feature).
- ``history_day``, ``history_week``, ``history_month``: doc id = the period's first
  day as ``YYYYMMDD``; doc = ``{"period": "YYYY-MM-DD", "new", "active", "messages",
  "commands": {"/start": n, ...}, "buttons", "blocks", "unblocks"}``.
- ``retention_day``, ``retention_week``, ``retention_month``: one doc per (cohort,
  k) cell, doc id = ``YYYYMMDD * 1000 + k`` of the cohort's first day; doc =
  ``{"cohort": "YYYY-MM-DD", "after": k, "active": n}``: how many users first seen
  in the cohort were active ``k`` periods after it (``k == 0``: the cohort's size).
  Cells are small and separate so that the journal carries only the cells that
  changed, not a whole cohort's row every second; absent cells are zero.

Counts are counts: forgetting a user changes nothing here. This module imports
nothing from the store; the store owns the files and calls :meth:`tables`,
:meth:`take_changes` and :meth:`from_tables`.
"""

from __future__ import annotations

import enum
import re
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

#: Distinct command names counted per period; the rest go under :data:`OTHER_COMMANDS`.
MAX_COMMANDS: Final = 50
OTHER_COMMANDS: Final = "other"
#: Longest command name kept (Telegram allows 32 characters); bounds document size.
MAX_COMMAND_LENGTH: Final = 64

INFO_TABLE: Final = "history"
INFO_DOC_ID: Final = "1"

_TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"
_COMMAND = re.compile(r"/([^\s@/]+)(?:@(\S+))?")


class Grain(enum.Enum):
    """A calendar period length; ``value`` is the word used in tables and on the CLI."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    @property
    def history_table(self) -> str:
        return f"history_{self.value}"

    @property
    def retention_table(self) -> str:
        return f"retention_{self.value}"

    @property
    def max_after(self) -> int:
        """How many periods after its cohort a cohort's retention is followed.

        Bounds memory and file size (each followed period is one cell per cohort):
        a day cohort is followed for 90 days, a week cohort for two years, a month
        cohort for as long as the doc id allows.
        """
        return _MAX_AFTER[self]

    def start(self, day: date) -> date:
        """The first day of the period holding ``day``."""
        if self is Grain.DAY:
            return day
        if self is Grain.WEEK:
            return day - timedelta(days=day.weekday())
        return day.replace(day=1)

    def next_start(self, start: date) -> date:
        """The first day of the period after the one starting on ``start``."""
        if self is Grain.DAY:
            return start + timedelta(days=1)
        if self is Grain.WEEK:
            return start + timedelta(days=7)
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)

    def index(self, start: date) -> int:
        """A running number of periods, so that ``k = index(b) - index(a)``."""
        if self is Grain.DAY:
            return start.toordinal()
        if self is Grain.WEEK:
            return (start.toordinal() - 1) // 7  # ordinal 1 (0001-01-01) is a Monday
        return start.year * 12 + start.month - 1

    def shift(self, start: date, periods: int) -> date:
        """The first day of the period ``periods`` after (negative: before) ``start``'s."""
        if self is Grain.DAY:
            return start + timedelta(days=periods)
        if self is Grain.WEEK:
            return start + timedelta(days=7 * periods)
        months = start.year * 12 + start.month - 1 + periods
        return date(months // 12, months % 12 + 1, 1)


_MAX_AFTER: Final = {Grain.DAY: 90, Grain.WEEK: 104, Grain.MONTH: 999}

#: Every table the keeper owns, in a stable order.
TABLES: Final = (
    INFO_TABLE,
    *(g.history_table for g in Grain),
    *(g.retention_table for g in Grain),
)


class Activity(NamedTuple):
    """One recorded interaction, as the store saw it.

    ``at``, ``first_seen`` and ``previous_last_seen`` are the store's UTC text
    (``YYYY-MM-DDTHH:MM:SSZ``); ``previous_last_seen`` is the user's ``last_seen``
    *before* this update (None for a new user). ``command`` is a normalised name
    such as ``"/start"`` (see :func:`command_name`) or None.
    """

    at: str
    first_seen: str
    previous_last_seen: str | None
    is_new: bool = False
    message: bool = False
    command: str | None = None
    button: bool = False


def command_name(text: str | None, bot_username: str | None = None) -> str | None:
    """``"/start"`` for ``"/start PAYLOAD"`` or ``"/Start@ThisBot"``; None if not a command.

    With ``bot_username``, a command addressed to another bot (``/cmd@otherbot``)
    is not ours: None.
    """
    if not text or text[0] != "/":
        return None
    match = _COMMAND.match(text)
    if match is None:
        return None
    target = match.group(2)
    if target and bot_username and target.lower() != bot_username.lstrip("@").lower():
        return None
    return "/" + match.group(1)[:MAX_COMMAND_LENGTH].lower()


def local_midnight_utc(day: date, tz: ZoneInfo) -> str:
    """The UTC text of ``day``'s local midnight (fold=0 through DST gaps and repeats)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC).strftime(_TIMESTAMP)


def local_date(timestamp: str, tz: ZoneInfo) -> date:
    """The local calendar day of a store timestamp."""
    return datetime.strptime(timestamp, _TIMESTAMP).replace(tzinfo=UTC).astimezone(tz).date()


def period_doc_id(start: date) -> str:
    return f"{start.year:04d}{start.month:02d}{start.day:02d}"


def cell_doc_id(cohort: date, after: int) -> str:
    return str(int(period_doc_id(cohort)) * 1000 + after)


def empty_period(start: date) -> dict[str, Any]:
    """A history document with every counter at zero."""
    return {
        "period": start.isoformat(),
        "new": 0,
        "active": 0,
        "messages": 0,
        "commands": {},
        "buttons": 0,
        "blocks": 0,
        "unblocks": 0,
    }


_COUNTERS: Final = ("new", "active", "messages", "buttons", "blocks", "unblocks")


class _Current:
    """One grain's current period: UTC bounds as text, its live document, and cohort ids."""

    __slots__ = (
        "cells",
        "changed_cells",
        "cohorts",
        "doc",
        "doc_id",
        "grain",
        "hi",
        "index",
        "lo",
        "max_after",
    )

    def __init__(self, grain: Grain) -> None:
        self.grain = grain
        self.max_after = grain.max_after
        self.lo = self.hi = ""  # an empty range: the first update moves it
        self.index = 0
        self.doc_id = ""
        self.doc: dict[str, Any] = {}
        #: local day ordinal -> (its period's cell id base, its period index); days are few
        self.cohorts: dict[int, tuple[int, int]] = {}
        #: This grain's retention cells, cell id -> active (plain ints: small and fast), and the changed ones
        self.cells: dict[int, int] = {}
        self.changed_cells: set[int] = set()

    def cohort_of(self, day_ordinal: int) -> tuple[int, int]:
        cached = self.cohorts.get(day_ordinal)
        if cached is None:
            start = self.grain.start(date.fromordinal(day_ordinal))
            cached = self.cohorts[day_ordinal] = (int(period_doc_id(start)) * 1000, self.grain.index(start))
        return cached


_MAX_COVERED_DAYS: Final = 20 * 366


class _LocalDays:
    """Local day of a UTC timestamp by bisection over known local midnights (C speed).

    A user's first interaction in a day needs the local day of their
    ``first_seen`` (the cohort); parsing and converting it each time would cost
    more than all the rest of an update. The midnights cover every day seen so
    far and grow on demand.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._first = 0  # ordinal of the day that starts at _bounds[0]
        self._bounds: list[str] = []

    def ordinal(self, timestamp: str) -> int:
        bounds = self._bounds
        i = bisect_right(bounds, timestamp) - 1
        if 0 <= i < len(bounds) - 1:
            return self._first + i
        day = local_date(timestamp, self._tz).toordinal()
        if not bounds or abs(day - self._first) < _MAX_COVERED_DAYS:  # an odd far date: no huge list
            self._cover(day)
        return day

    def _cover(self, day: int) -> None:
        if not self._bounds:
            lo, hi = day, day + 1
        else:
            lo, hi = min(day, self._first), max(day + 1, self._first + len(self._bounds) - 1)
        self._first = lo
        self._bounds = [local_midnight_utc(date.fromordinal(o), self._tz) for o in range(lo, hi + 1)]


class HistoryKeeper:
    """Exact day/week/month aggregates and cohort retention, updated in O(1).

    Not thread-safe by itself: the store calls it under its own lock.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._info: dict[str, Any] = {}
        # The history tables and the info doc; retention cells live on each grain's _Current.
        self._tables: dict[str, dict[str, dict[str, Any]]] = {g.history_table: {} for g in Grain}
        self._changed: dict[str, set[str]] = {name: set() for name in (INFO_TABLE, *self._tables)}
        self._current = tuple(_Current(g) for g in Grain)
        self._by_grain = {current.grain: current for current in self._current}
        self._days = _LocalDays(tz)
        # The current day's bounds and the three current documents, unpacked for the hot path.
        self._day_lo = self._day_hi = ""
        self._docs: tuple[dict[str, Any], ...] = ()
        #: The current documents changed since take_changes (marked once, not per update).
        self._current_dirty = False

    # ------------------------------------------------------------ properties

    @property
    def timezone(self) -> ZoneInfo:
        """The zone the periods are in (the recorded one, for a loaded keeper)."""
        return self._tz

    @property
    def since(self) -> str | None:
        """The first local day (``YYYY-MM-DD``) recorded with this feature, if any."""
        value = self._info.get("since")
        return value if isinstance(value, str) else None

    @property
    def since_at(self) -> str | None:
        """The UTC timestamp of the first update recorded with this feature, if any."""
        value = self._info.get("since_at")
        return value if isinstance(value, str) else None

    def period(self, grain: Grain, start: date) -> Mapping[str, Any] | None:
        """The history document of the period starting on ``start`` (None: nothing recorded)."""
        return self._tables[grain.history_table].get(period_doc_id(start))

    def cell(self, grain: Grain, cohort: date, after: int) -> int:
        """How many of ``cohort``'s users were active ``after`` periods later (as recorded)."""
        return self._by_grain[grain].cells.get(int(cell_doc_id(cohort, after)), 0)

    # ------------------------------------------------------------ updates

    def record(self, activity: Activity) -> None:
        """Count one interaction in its day, week and month (and in retention).

        The hot path of every ``seen()``: written out per counter rather than
        looped, and the common case (the user was already active today, so
        neither this week nor this month gains an active user) ends after a few
        dictionary increments.
        """
        at, first_seen, prev, is_new, message, command, button = activity
        if not self._day_lo <= at < self._day_hi:  # the current week and month hold the current day
            self._move_to(at)
        self._current_dirty = True
        docs = self._docs
        if message:
            for doc in docs:
                doc["messages"] += 1
        if command is not None:
            for doc in docs:
                commands = doc["commands"]
                if command in commands:
                    commands[command] += 1
                else:
                    _count_command(commands, command)
        if button:
            for doc in docs:
                doc["buttons"] += 1
        if is_new:
            for doc in docs:
                doc["new"] += 1
        if is_new or prev is None or prev < self._day_lo:
            self._first_in_periods(first_seen, None if is_new else prev)

    def record_block(self, at: str, blocked: bool) -> None:
        """Count a block (``blocked``) or an unblock; neither is activity."""
        if not self._day_lo <= at < self._day_hi:
            self._move_to(at)
        self._current_dirty = True
        counter = "blocks" if blocked else "unblocks"
        for doc in self._docs:
            doc[counter] += 1

    def _first_in_periods(self, first_seen: str, prev: str | None) -> None:
        """Count a new active user in each period the user was not active in yet."""
        cohort_day = self._days.ordinal(first_seen)
        for current in self._current:
            if prev is not None and prev >= current.lo:
                continue  # already active earlier in this period
            current.doc["active"] += 1
            base, index = current.cohorts.get(cohort_day) or current.cohort_of(cohort_day)
            after = current.index - index
            if 0 <= after <= current.max_after:
                cells = current.cells
                cell_id = base + after
                cells[cell_id] = cells.get(cell_id, 0) + 1
                current.changed_cells.add(cell_id)

    def _move_to(self, at: str) -> None:
        """Point every grain's current period at the one holding ``at``."""
        if not self._info:
            self._info.update(since=local_date(at, self._tz).isoformat(), since_at=at, timezone=self._tz.key)
            self._changed[INFO_TABLE].add(INFO_DOC_ID)
        self._mark_current()
        today: date | None = None
        for current in self._current:
            if current.lo <= at < current.hi:
                continue
            if today is None:
                today = local_date(at, self._tz)
            grain = current.grain
            start = grain.start(today)
            current.index = grain.index(start)
            current.lo = local_midnight_utc(start, self._tz)
            current.hi = local_midnight_utc(grain.next_start(start), self._tz)
            current.doc_id = period_doc_id(start)
            table = self._tables[grain.history_table]
            doc = table.get(current.doc_id)
            if doc is None:
                doc = table[current.doc_id] = empty_period(start)
            current.doc = doc
        self._day_lo, self._day_hi = self._current[0].lo, self._current[0].hi
        self._docs = tuple(current.doc for current in self._current)

    def _mark_current(self) -> None:
        """Note the current documents as changed (before they stop being current)."""
        if self._current_dirty:
            for current in self._current:
                self._changed[current.grain.history_table].add(current.doc_id)
            self._current_dirty = False

    # ------------------------------------------------------------ persistence

    def tables(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every table (name -> doc id -> doc), as copies: what a snapshot writes."""
        result = {
            name: {doc_id: _copy(doc) for doc_id, doc in docs.items()} for name, docs in self._tables.items()
        }
        result[INFO_TABLE] = {INFO_DOC_ID: dict(self._info)} if self._info else {}
        for current in self._current:
            result[current.grain.retention_table] = {
                str(cell_id): _cell_doc(cell_id, active) for cell_id, active in current.cells.items()
            }
        return {name: result[name] for name in TABLES}

    def take_changes(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The documents changed since the last call (whole, copied): a journal entry.

        Replaying them is an upsert by doc id. Tables without changes are left out.
        """
        self._mark_current()
        changes: dict[str, dict[str, dict[str, Any]]] = {}
        for name, doc_ids in self._changed.items():
            if not doc_ids:
                continue
            if name == INFO_TABLE:
                changes[name] = {INFO_DOC_ID: dict(self._info)}
            else:
                docs = self._tables[name]
                changes[name] = {doc_id: _copy(docs[doc_id]) for doc_id in doc_ids}
            doc_ids.clear()
        for current in self._current:
            if current.changed_cells:
                cells = current.cells
                changes[current.grain.retention_table] = {
                    str(cell_id): _cell_doc(cell_id, cells[cell_id]) for cell_id in current.changed_cells
                }
                current.changed_cells.clear()
        return changes

    @classmethod
    def from_tables(cls, tables: Mapping[str, Mapping[str, Any]], tz: ZoneInfo) -> HistoryKeeper:
        """A keeper continuing from stored tables (missing tables: empty).

        ``tz`` is used only when nothing was recorded yet: recorded periods are in
        the recorded zone, so a keeper keeps that zone (see :attr:`timezone`).
        Raises ValueError (one line) when a document has the wrong shape.
        """
        info = _check_info(tables.get(INFO_TABLE, {}))
        if info.get("timezone"):
            try:
                tz = ZoneInfo(info["timezone"])
            except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
                raise ValueError(f"table {INFO_TABLE!r}: unknown timezone {info['timezone']!r}") from exc
        keeper = cls(tz)
        keeper._info = info
        for grain in Grain:
            keeper._tables[grain.history_table] = {
                doc_id: _check_period(grain.history_table, doc_id, doc)
                for doc_id, doc in _docs(tables, grain.history_table)
            }
            keeper._by_grain[grain].cells = {
                int(doc_id): _check_cell(grain.retention_table, doc_id, doc)
                for doc_id, doc in _docs(tables, grain.retention_table)
            }
        return keeper


def _cell_doc(cell_id: int, active: int) -> dict[str, Any]:
    cohort = date(cell_id // 10**7, cell_id // 10**5 % 100, cell_id // 1000 % 100)
    return {"cohort": cohort.isoformat(), "after": cell_id % 1000, "active": active}


def _count_command(commands: dict[str, int], name: str) -> None:
    if name not in commands and len(commands) - (OTHER_COMMANDS in commands) >= MAX_COMMANDS:
        name = OTHER_COMMANDS
    commands[name] = commands.get(name, 0) + 1


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    copy = dict(doc)
    if "commands" in copy:
        copy["commands"] = dict(copy["commands"])
    return copy


# ---------------------------------------------------------------- validation


def _docs(tables: Mapping[str, Any], name: str) -> Iterator[tuple[str, Any]]:
    docs = tables.get(name, {})
    if not isinstance(docs, Mapping):
        raise ValueError(f"table {name!r} is not an object of documents")
    for doc_id, doc in docs.items():
        if not isinstance(doc_id, str) or not doc_id.isdigit() or not isinstance(doc, Mapping):
            raise ValueError(f"table {name!r}: document {doc_id!r} is not a document with an integer id")
        yield doc_id, doc


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _period_date(table: str, doc_id: str, text: Any) -> date:
    try:
        day = date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"table {table!r}: document {doc_id}: {text!r} is not a YYYY-MM-DD date") from None
    return day


def _check_info(docs: Any) -> dict[str, Any]:
    if not isinstance(docs, Mapping):
        raise ValueError(f"table {INFO_TABLE!r} is not an object of documents")
    doc = docs.get(INFO_DOC_ID)
    if doc is None:
        return {}
    if not isinstance(doc, Mapping) or not all(
        isinstance(doc.get(k), str) for k in ("since", "since_at", "timezone")
    ):
        raise ValueError(f"table {INFO_TABLE!r}: document 1 needs text 'since', 'since_at' and 'timezone'")
    _period_date(INFO_TABLE, INFO_DOC_ID, doc["since"])
    return dict(doc)


def _check_period(table: str, doc_id: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    start = _period_date(table, doc_id, doc.get("period"))
    if period_doc_id(start) != doc_id:
        raise ValueError(f"table {table!r}: document {doc_id} holds period {doc.get('period')!r}")
    checked = empty_period(start)
    for key in _COUNTERS:
        value = doc.get(key, 0)
        if not _count(value):
            raise ValueError(f"table {table!r}: document {doc_id}: {key!r} is not a count")
        checked[key] = value
    commands = doc.get("commands", {})
    if not isinstance(commands, Mapping) or not all(
        isinstance(k, str) and _count(v) for k, v in commands.items()
    ):
        raise ValueError(f"table {table!r}: document {doc_id}: 'commands' is not an object of counts")
    checked["commands"] = dict(commands)
    return checked


def _check_cell(table: str, doc_id: str, doc: Mapping[str, Any]) -> int:
    cohort = _period_date(table, doc_id, doc.get("cohort"))
    after: Any = doc.get("after")
    active: Any = doc.get("active")
    if not (_count(after) and _count(active)) or after > 999 or cell_doc_id(cohort, after) != doc_id:
        raise ValueError(f"table {table!r}: document {doc_id} is not a retention cell")
    return int(active)
