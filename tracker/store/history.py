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

Calendar periods (day, Monday-start week, month; :mod:`tracker.periods`) are in the
store's time zone and come from the update's own timestamp, never the wall clock.
The keeper caches the current periods' UTC bounds as timestamp text, so a period
test is a string comparison. Updates only bump pending counters (ints and small
dicts); they reach the period documents and retention cells (shapes in
:mod:`tracker.history_tables`) when the period changes or when the store asks
for them. Counts are counts: forgetting a user changes nothing here.

This module imports nothing from the store; the store owns the files and calls
:meth:`~HistoryKeeper.tables`, :meth:`~HistoryKeeper.take_changes` and
:meth:`~HistoryKeeper.from_tables`.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Mapping
from datetime import date
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

from tracker.history_tables import (
    INFO_DOC_ID,
    INFO_TABLE,
    MAX_COMMANDS,
    OTHER_COMMANDS,
    TABLES,
    Document,
    Tables,
    add_command,
    cell_doc,
    cell_id,
    copy_doc,
    empty_period,
    load_tables,
    period_doc_id,
)
from tracker.periods import Grain, LocalDays, local_midnight_utc

__all__ = [
    "INFO_TABLE",
    "MAX_COMMANDS",
    "MAX_COMMAND_LENGTH",
    "OTHER_COMMANDS",
    "TABLES",
    "Activity",
    "Grain",
    "HistoryKeeper",
    "command_name",
]

#: Longest command name kept (Telegram allows 32 characters); bounds document size.
MAX_COMMAND_LENGTH: Final = 64

_COMMAND = re.compile(r"/([^\s@/]+)(?:@(\S+))?")
#: Distinct command names held pending before they are settled into the documents.
_MAX_PENDING_COMMANDS: Final = 2 * MAX_COMMANDS


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


class _Current:
    """One grain's current period (UTC bounds as text, its document) and its retention cells."""

    __slots__ = ("cells", "changed_cells", "doc", "doc_id", "grain", "hi", "index", "lo", "tag")

    def __init__(self, grain: Grain, tag: int) -> None:
        self.grain = grain
        self.tag = tag  # this grain's number in the keeper's pending keys
        self.lo = self.hi = ""  # an empty range: the first update moves it
        self.index = 0
        self.doc_id = ""
        self.doc: Document = {}
        #: Retention cells, cell id -> active (plain ints: small and fast), and the changed ones.
        self.cells: dict[int, int] = {}
        self.changed_cells: set[int] = set()

    def enter(self, day: date, tz: ZoneInfo, table: dict[str, Document]) -> None:
        """Make the period holding ``day`` current (its document from ``table`` or new)."""
        start = self.grain.start(day)
        self.index = self.grain.index(start)
        self.lo = local_midnight_utc(start, tz)
        self.hi = local_midnight_utc(self.grain.next_start(start), tz)
        self.doc_id = period_doc_id(start)
        doc = table.get(self.doc_id)
        if doc is None:
            doc = table[self.doc_id] = empty_period(start)
        self.doc = doc

    def first_key(self, cohort_day: date) -> int:
        """The pending key of a first interaction now by a user of ``cohort_day``'s cohort.

        ``cell id << 2 | tag``: the retention cell and the grain in one int; cell
        id 0 (key == tag) when the cohort is no longer (or not yet) followed.
        """
        start = self.grain.start(cohort_day)
        after = self.index - self.grain.index(start)
        cell = cell_id(start, after) if 0 <= after <= self.grain.max_after else 0
        return cell << 2 | self.tag


class HistoryKeeper:
    """Exact day/week/month aggregates and cohort retention, updated in O(1).

    Not thread-safe by itself: the store calls it under its own lock.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._info: Document = {}
        self._info_changed = False
        self._tables: Tables = {g.history_table: {} for g in Grain}
        #: history table -> doc ids changed since take_changes (current ones: at settling)
        self._changed: dict[str, set[str]] = {name: set() for name in self._tables}
        self._current = tuple(_Current(g, tag) for tag, g in enumerate(Grain))
        self._days = LocalDays(tz)
        # The current day and the current periods' UTC bounds, unpacked for the hot path.
        self._today = date.min
        self._day_lo = self._day_hi = self._week_lo = self._month_lo = ""
        #: The local midnights known to self._days (a cohort day is a position in them) and,
        #: by that position, the cohort's (day, week, month) pending keys for the current periods.
        self._midnights = self._days.midnights
        self._cohort_keys: dict[int, tuple[int, int, int]] = {}
        # Counts since the last settling, the same for every grain's current period.
        self._new = self._messages = self._buttons = self._blocks = self._unblocks = 0
        self._new_today = 0  # new users first seen today: one count for new, active and retention
        self._commands: dict[str, int] = {}
        #: first interactions in a current period: pending key (see _Current.first_key) -> count
        self._firsts: defaultdict[int, int] = defaultdict(int)

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
        self._settle()
        return self._tables[grain.history_table].get(period_doc_id(start))

    def cell(self, grain: Grain, cohort: date, after: int) -> int:
        """How many of ``cohort``'s users were active ``after`` periods later (as recorded)."""
        self._settle()
        return self._current[_TAGS[grain]].cells.get(cell_id(cohort, after), 0)

    # ------------------------------------------------------------ updates

    def record(self, activity: Activity) -> None:
        """Count one interaction in its day, week and month (and in retention).

        The hot path of every ``seen()``: plain int and dict increments, written
        out rather than looped. The common case (the user was already active
        today) ends after the counters; a first interaction of the day adds one
        cached cohort lookup and one increment per period the user enters.
        """
        at, first_seen, prev, is_new, message, command, button = activity
        if not self._day_lo <= at < self._day_hi:  # the current week and month hold the current day
            self._move_to(at)
        if message:
            self._messages += 1
        if command is not None:
            commands = self._commands
            if command in commands:
                commands[command] += 1
            else:
                self._new_command(command)
        if button:
            self._buttons += 1
        if is_new:
            if self._day_lo <= first_seen < self._day_hi:  # the norm: first seen now
                self._new_today += 1  # a first in every period, in today's cohort (see _settle)
                return
            self._new += 1
            prev = ""  # before every period: active in all three
        elif prev is None:
            prev = ""
        elif prev >= self._day_lo:
            return  # already active today, so this week and month too
        cohort_position = bisect_right(self._midnights, first_seen)  # the cohort day, in C
        day_key, week_key, month_key = self._cohort_keys.get(cohort_position) or self._keys_of(first_seen)
        firsts = self._firsts
        firsts[day_key] += 1
        if prev < self._week_lo:
            firsts[week_key] += 1
        if prev < self._month_lo:
            firsts[month_key] += 1

    def record_block(self, at: str, blocked: bool) -> None:
        """Count a block (``blocked``) or an unblock; neither is activity."""
        if not self._day_lo <= at < self._day_hi:
            self._move_to(at)
        if blocked:
            self._blocks += 1
        else:
            self._unblocks += 1

    def _new_command(self, command: str) -> None:
        if len(self._commands) >= _MAX_PENDING_COMMANDS:  # many odd names: keep the pending dict small
            self._settle()
        self._commands[command] = 1

    def _keys_of(self, first_seen: str) -> tuple[int, int, int]:
        """The pending keys of ``first_seen``'s cohort, cached by its position in the midnights."""
        try:
            day = date.fromordinal(self._days.ordinal(first_seen))
        except ValueError:  # a hand-edited first_seen that is no date: active, in no cohort
            day_tag, week_tag, month_tag = (current.tag for current in self._current)
            return day_tag, week_tag, month_tag
        self._follow_midnights()
        day_key, week_key, month_key = (current.first_key(day) for current in self._current)
        position = bisect_right(self._midnights, first_seen)
        if 0 < position < len(self._midnights):  # a covered day (odd far dates are not)
            self._cohort_keys[position] = (day_key, week_key, month_key)
        return day_key, week_key, month_key

    def _follow_midnights(self) -> None:
        """Take the local midnights again if they grew (cached positions in them moved)."""
        if self._days.midnights is not self._midnights:
            self._midnights = self._days.midnights
            self._cohort_keys.clear()

    def _move_to(self, at: str) -> None:
        """Point every grain's current period at the one holding ``at``."""
        self._settle()
        day = date.fromordinal(self._days.ordinal(at))
        self._follow_midnights()
        if not self._info:
            self._info.update(since=day.isoformat(), since_at=at, timezone=self._tz.key)
            self._info_changed = True
        for current in self._current:
            if not current.lo <= at < current.hi:
                current.enter(day, self._tz, self._tables[current.grain.history_table])
        day_period, week, month = self._current
        self._today, self._day_lo, self._day_hi = day, day_period.lo, day_period.hi
        self._week_lo, self._month_lo = week.lo, month.lo
        self._cohort_keys.clear()  # the keys hold each cell's distance from the current periods

    def _settle(self) -> None:
        """Move the pending counts into the current documents and cells, marking them changed."""
        counts = {
            "new": self._new + self._new_today,
            "messages": self._messages,
            "buttons": self._buttons,
            "blocks": self._blocks,
            "unblocks": self._unblocks,
        }
        if not (any(counts.values()) or self._commands or self._firsts):
            return
        if self._new_today:
            for key in (current.first_key(self._today) for current in self._current):
                self._firsts[key] += self._new_today
        for key, times in self._firsts.items():
            current = self._current[key & 3]
            current.doc["active"] += times
            cell = key >> 2
            if cell:
                current.cells[cell] = current.cells.get(cell, 0) + times
                current.changed_cells.add(cell)
        for current in self._current:
            doc = current.doc
            for counter, times in counts.items():
                doc[counter] += times
            for name, times in self._commands.items():
                add_command(doc["commands"], name, times)
            self._changed[current.grain.history_table].add(current.doc_id)
        self._new = self._messages = self._buttons = self._blocks = self._unblocks = self._new_today = 0
        self._commands.clear()
        self._firsts.clear()

    # ------------------------------------------------------------ persistence

    def tables(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every table (name -> doc id -> doc), as copies: what a snapshot writes."""
        self._settle()
        result = {
            name: {doc_id: copy_doc(doc) for doc_id, doc in docs.items()}
            for name, docs in self._tables.items()
        }
        result[INFO_TABLE] = {INFO_DOC_ID: dict(self._info)} if self._info else {}
        for current in self._current:
            result[current.grain.retention_table] = {
                str(cell): cell_doc(cell, active) for cell, active in current.cells.items()
            }
        return {name: result[name] for name in TABLES}

    def take_changes(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The documents changed since the last call (whole, copied): a journal entry.

        Replaying them is an upsert by doc id. Tables without changes are left out.
        """
        self._settle()
        changes: dict[str, dict[str, dict[str, Any]]] = {}
        if self._info_changed:
            changes[INFO_TABLE] = {INFO_DOC_ID: dict(self._info)}
            self._info_changed = False
        for name, doc_ids in self._changed.items():
            if doc_ids:
                docs = self._tables[name]
                changes[name] = {doc_id: copy_doc(docs[doc_id]) for doc_id in doc_ids}
                doc_ids.clear()
        for current in self._current:
            if current.changed_cells:
                cells = current.cells
                changes[current.grain.retention_table] = {
                    str(cell): cell_doc(cell, cells[cell]) for cell in current.changed_cells
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
        loaded = load_tables(tables)
        keeper = cls(loaded.timezone(tz))
        keeper._info = loaded.info
        keeper._tables.update(loaded.history)
        for current in keeper._current:
            current.cells = loaded.cells[current.grain]
        return keeper


_TAGS: Final = {grain: tag for tag, grain in enumerate(Grain)}
