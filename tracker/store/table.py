"""The writer's users in memory: one array per field, a row per user (a struct of arrays).

A record as a ``dict`` costs ~600 bytes before its strings, and a million of
them are a million objects the cyclic GC walks. Here a user is a row number:
an index from Telegram id to row, ``array`` columns for the numbers and the
timestamps (uint32 seconds, as in the column cache), one tuple of the six
profile values, and the hash of the whole ``Profile`` (id and values) so a
sighting can tell "same profile" without touching the stored strings (each a
cache miss in a large store). Two
different profiles with equal 64-bit hashes (odds of 1 in 2**64 per update)
would keep the old name until the user's next change.
About 400 bytes a user in all, where the dicts took ~1 KB.

The fields every sighting reads or writes (``last_seen``, ``messages``, the
profile hash) and the id the journal writes beside them sit side by side in
one array, :data:`STRIDE` slots a row (:data:`LAST_SEEN_SLOT` ...): one cache
miss a sighting where four arrays were four (see ``ingest.py``).

Timestamps are kept as seconds since 1970 (0 = null). The few that do not fit
(a hand-edited ``2026-13-45T…`` or a date before 1970-01-02) are marked
:data:`ODD` and kept as text beside the arrays, so nothing is ever altered.

Rows are never reused: a forgotten user's row is emptied (its data dropped at
once) and left as a hole until the next open. So a snapshot that walks the
rows that existed when it started writes each user at most once.

Not thread-safe by itself: the store changes it under its own lock, and
reads copies of rows for the journal without it (see ``records.Copied``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Any

from tracker.models import PROFILE_FIELDS, RECORD_FIELDS, Record, encodable_text
from tracker.store.column_codec import day_prefixes, second_of_day_texts, seconds_of
from tracker.store.copies import BLOCKED_AT, FIRST_SEEN, LAST_SEEN, TIME_COLUMN, Chunk
from tracker.store.journal import Effect
from tracker.store.stamps import DAY, ODD, seconds_or_odd

_PROFILE = itemgetter(*PROFILE_FIELDS)
_OWN_FIELDS = frozenset(RECORD_FIELDS)
_FIELD = {name: itemgetter(name) for name in RECORD_FIELDS}
#: The timestamp fields, in the order of FIRST_SEEN, LAST_SEEN, BLOCKED_AT.
_TIME_FIELDS = tuple(TIME_COLUMN)
#: Slots a row takes in ``UserTable.hot``, and where each field is: row ``r``'s
#: last_seen is ``hot[r * STRIDE + LAST_SEEN_SLOT]``.
STRIDE = 4
LAST_SEEN_SLOT, MESSAGES_SLOT, HASH_SLOT, ID_SLOT = range(STRIDE)
#: The hash slot of a forgotten row: ``hash()`` never returns -1 (CPython keeps it for
#: errors), while an id can be any 64-bit number, 0 included.
FORGOTTEN = -1


class UserTable:
    """The users of a writer, as columns; row ``r`` of every column is one user.

    The columns are attributes so the store's hot path (``UserStore.seen``)
    reads and writes them without a call per field; everything else goes
    through the methods, which speak whole records (``dict``) at the edges.
    """

    __slots__ = (
        "_shared",
        "blocked",
        "blocked_at",
        "day_prefix",
        "extras",
        "first_seen",
        "hot",
        "irregular",
        "odd_times",
        "profiles",
        "removals",
        "rows",
        "sources",
        "time_of_day",
    )

    def __init__(self) -> None:
        #: Telegram id -> row.
        self.rows: dict[int, int] = {}
        #: Per row, side by side: last_seen (uint32 seconds, as first_seen), messages, the hash
        #: of the last seen ``Profile`` (see profile_hash; not persisted: str hashes differ per
        #: process) and the id (0: a forgotten row).
        self.hot = array("q")
        #: ``(first_name, last_name, username, language_code, is_bot, is_premium)``; None: a forgotten row.
        self.profiles: list[tuple[Any, ...] | None] = []
        self.first_seen = array("I")
        self.blocked_at = array("I")
        self.blocked = bytearray()
        self.sources: list[str | None] = []
        #: row -> fields a hand-edited record carries beyond the store's own (kept as they are).
        self.extras: dict[int, dict[str, Any]] = {}
        #: (row, FIRST_SEEN | LAST_SEEN | BLOCKED_AT) -> text of a timestamp marked ODD.
        self.odd_times: dict[tuple[int, int], str] = {}
        #: Rows whose first_seen or last_seen is null or ODD (hand-edited; compared as text):
        #: a batch of sightings without them needs no look at first_seen (see ingest.py).
        self.irregular: set[int] = set()
        #: How many users were forgotten: a row number looked up before a removal may be stale.
        self.removals = 0
        #: One object per distinct language and source (they repeat across millions of rows).
        self._shared: dict[str | None, str | None] = {None: None}
        #: Seconds -> text is ``day_prefix[s // DAY] + time_of_day[s % DAY]`` (two lookups; see text_of).
        self.day_prefix = day_prefixes()
        self.time_of_day = second_of_day_texts()

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self.rows

    @property
    def row_count(self) -> int:
        """Rows so far, holes included (a snapshot walks ``range(row_count)`` as it was at its start)."""
        return len(self.hot) // STRIDE

    # ------------------------------------------------------------ writing rows

    def add(self, user_id: int, profile: tuple[Any, ...], digest: int, seconds: int, text: str) -> int:
        """A new user first seen at ``seconds`` (``text`` when ODD); returns the row."""
        row = self.row_count
        self.rows[user_id] = row
        self.hot.extend((seconds, 0, digest, user_id))  # in slot order
        self.profiles.append(self.shared_profile(profile))
        self.first_seen.append(seconds)
        self.blocked_at.append(0)
        self.blocked.append(0)
        self.sources.append(None)
        if seconds == ODD:
            self.odd_times[row, FIRST_SEEN] = self.odd_times[row, LAST_SEEN] = text
            self.irregular.add(row)
        return row

    def shared_profile(self, profile: tuple[Any, ...]) -> tuple[Any, ...]:
        """``profile`` with its text made encodable and its language shared."""
        first_name, last_name, username, language_code, is_bot, is_premium = profile
        if language_code is not None:
            language_code = self.share(encodable_text(language_code))
        return (
            None if first_name is None else encodable_text(first_name),
            None if last_name is None else encodable_text(last_name),
            None if username is None else encodable_text(username),
            language_code,
            is_bot,
            is_premium,
        )

    def share(self, text: str) -> str:
        shared = self._shared.setdefault(text, text)
        assert shared is not None  # only None maps to None
        return shared

    def set_time(self, row: int, column: int, seconds: int, text: str | None) -> None:
        """Set one timestamp (``text`` is kept when ``seconds`` is ODD)."""
        times, index = self._time_slot(row, column)
        times[index] = seconds
        if seconds == ODD:
            assert text is not None
            self.odd_times[row, column] = text
        else:
            self.odd_times.pop((row, column), None)
        if column != BLOCKED_AT:
            if seconds in (0, ODD):
                self.irregular.add(row)
            elif row in self.irregular and 0 < self.first_seen[row] < ODD and 0 < self.last_seen(row) < ODD:
                self.irregular.discard(row)

    def time_of(self, row: int, column: int) -> str | None:
        """One timestamp as the store's text (None when null)."""
        times, index = self._time_slot(row, column)
        seconds = times[index]
        if seconds == ODD:
            text = self.odd_times.get((row, column))
            if text is not None:
                return text
            # Changed meanwhile (the journal reads without the lock): take the new value;
            # the change marked the user pending, so the next batch has it right anyway.
            seconds = times[index]
            if seconds == ODD:
                return self.odd_times.get((row, column))
        if seconds == 0:
            return None
        return self.day_prefix[seconds // DAY] + self.time_of_day[seconds % DAY]

    def set_profile(self, row: int, profile: tuple[Any, ...], digest: int) -> None:
        """A new profile for a known user (``digest``: :func:`profile_hash` of it as given, not made safe)."""
        self.profiles[row] = self.shared_profile(profile)
        self.hot[row * STRIDE + HASH_SLOT] = digest

    def put(self, records: Iterable[Record]) -> None:
        """Insert or replace whole, already checked records (a parsed file, a journal, a rescue)."""
        records = list(records)
        rows = self.rows
        known = [record for record in records if record["id"] in rows]
        if known:
            times = [_times(list(map(_FIELD[name], known))) for name in _TIME_FIELDS]
            for position, record in enumerate(known):
                self._fill(rows[record["id"]], record, [column[position] for column in times])
            records = [record for record in records if record["id"] not in rows]
        if records:
            self._append(records)

    def _append(self, records: list[Record]) -> None:
        """New users in bulk: each column extended at C speed (the open of a large store is this)."""
        start = self.row_count
        ids = list(map(_FIELD["id"], records))
        self.rows.update(zip(ids, range(start, start + len(ids)), strict=True))
        share = self._shared.setdefault  # C-level, None included (it maps to itself)
        codes = list(map(_FIELD["language_code"], records))
        languages = list(map(share, codes, codes))
        values = [*(list(map(_FIELD[name], records)) for name in PROFILE_FIELDS[:3]), languages,
                  list(map(_FIELD["is_bot"], records)), list(map(_FIELD["is_premium"], records))]
        self.profiles.extend(zip(*values, strict=True))
        times = [self._seconds_column(start, column, list(map(_FIELD[name], records)))
                 for column, name in enumerate(_TIME_FIELDS)]
        self.first_seen.extend(times[FIRST_SEEN])
        self.blocked_at.extend(times[BLOCKED_AT])
        hot: list[int] = [0] * (STRIDE * len(records))  # interleaved at C speed by slice assignment
        hot[LAST_SEEN_SLOT::STRIDE] = times[LAST_SEEN]
        hot[MESSAGES_SLOT::STRIDE] = map(_FIELD["messages"], records)
        hot[HASH_SLOT::STRIDE] = map(hash, zip(ids, *values, strict=True))  # profile_hash, at C speed
        hot[ID_SLOT::STRIDE] = ids
        self.hot.fromlist(hot)
        for column in (FIRST_SEEN, LAST_SEEN):
            if 0 in times[column] or ODD in times[column]:  # rare: hand-edited records
                rows = enumerate(times[column], start)
                self.irregular.update(row for row, seconds in rows if seconds in (0, ODD))
        self.blocked.extend(map(_FIELD["blocked"], records))
        sources = list(map(_FIELD["source"], records))
        self.sources.extend(map(share, sources, sources))
        if max(map(len, records)) > len(_OWN_FIELDS):  # hand-made records with fields of their own
            for row, record in enumerate(records, start):
                if len(record) > len(_OWN_FIELDS):
                    self.extras[row] = {k: v for k, v in record.items() if k not in _OWN_FIELDS}

    def _seconds_column(self, start: int, column: int, texts: list[str | None]) -> list[int]:
        """New rows' timestamps (from row ``start``) as seconds; the odd ones kept as text."""
        try:
            return list(seconds_of(texts))
        except (ValueError, KeyError):  # an odd one: keep it as text (rare: value by value)
            seconds = list(map(seconds_or_odd, texts))
            for row, (value, text) in enumerate(zip(seconds, texts, strict=True), start):
                if value == ODD and text is not None:
                    self.odd_times[row, column] = text
            return seconds

    def _time_slot(self, row: int, column: int) -> tuple[array[int], int]:
        """Where row ``row``'s FIRST_SEEN, LAST_SEEN or BLOCKED_AT is: an array and an index in it."""
        if column == LAST_SEEN:
            return self.hot, row * STRIDE + LAST_SEEN_SLOT
        return (self.first_seen if column == FIRST_SEEN else self.blocked_at), row

    def last_seen(self, row: int) -> int:
        """Row ``row``'s last_seen as seconds (0: null; ODD: see odd_times)."""
        return self.hot[row * STRIDE + LAST_SEEN_SLOT]

    def _fill(self, row: int, record: Record, times: list[tuple[int, str | None]]) -> None:
        profile = _PROFILE(record)
        if profile[3] is not None:
            profile = (*profile[:3], self.share(profile[3]), *profile[4:])
        self.profiles[row] = profile
        self.hot[row * STRIDE + HASH_SLOT] = profile_hash(record["id"], profile)
        for column, (seconds, text) in enumerate(times):
            self.set_time(row, column, seconds, text)
        self.hot[row * STRIDE + MESSAGES_SLOT] = record["messages"]
        self.blocked[row] = record["blocked"]
        source = record["source"]
        self.sources[row] = None if source is None else self.share(source)
        if len(record) > len(_OWN_FIELDS):
            self.extras[row] = {name: value for name, value in record.items() if name not in _OWN_FIELDS}
        else:
            self.extras.pop(row, None)

    def touch(self, user_id: int, last_seen: str, messages: int) -> None:
        """A journaled touch: new ``last_seen`` and ``messages`` of a known user (unknown: ignored)."""
        row = self.rows.get(user_id)
        if row is not None:
            self.set_time(row, LAST_SEEN, seconds_or_odd(last_seen), last_seen)
            self.hot[row * STRIDE + MESSAGES_SLOT] = messages

    def remove(self, user_id: int) -> bool:
        """Forget ``user_id``: its row is emptied now (a hole until the next open); True if known."""
        row = self.rows.pop(user_id, None)
        if row is None:
            return False
        self.removals += 1
        empty = [0] * STRIDE
        empty[HASH_SLOT] = FORGOTTEN
        self.hot[row * STRIDE : (row + 1) * STRIDE] = array("q", empty)
        self.profiles[row] = None
        self.irregular.discard(row)
        self.first_seen[row] = self.blocked_at[row] = 0
        self.blocked[row] = 0
        self.sources[row] = None
        self.extras.pop(row, None)
        for column in (FIRST_SEEN, LAST_SEEN, BLOCKED_AT):
            self.odd_times.pop((row, column), None)
        return True

    def apply(self, effect: Effect) -> None:
        """Apply a journal's net effect (its records, erasures and touches), as ``apply_to_records`` does."""
        erased = [user_id for user_id, record in effect.records.items() if record is None]
        for user_id in erased:
            self.remove(user_id)
        self.put(record for record in effect.records.values() if record is not None)
        for user_id, (last_seen, messages) in effect.touches.items():
            self.touch(user_id, last_seen, messages)

    # ------------------------------------------------------------ reading rows

    def record(self, user_id: int, row: int) -> Record | None:
        """``user_id``'s row as a fresh record dict (the store file's shape); None for a forgotten row.

        The id is the caller's, not read back from the row: a reader without the
        lock (``records.Copied``) must never see a row being emptied as user 0.
        """
        profile = self.profiles[row]
        if profile is None:
            return None
        first_name, last_name, username, language_code, is_bot, is_premium = profile
        record: Record = {
            "id": user_id,
            "first_name": first_name,
            "last_name": last_name,
            "username": username,
            "language_code": language_code,
            "is_bot": is_bot,
            "is_premium": is_premium,
            "first_seen": self.time_of(row, FIRST_SEEN),
            "last_seen": self.time_of(row, LAST_SEEN),
            "messages": self.hot[row * STRIDE + MESSAGES_SLOT],
            "source": self.sources[row],
            "blocked": bool(self.blocked[row]),
            "blocked_at": self.time_of(row, BLOCKED_AT),
        }
        extras = self.extras.get(row)
        if extras:
            record.update(extras)
        return record

    def get(self, user_id: int) -> Record | None:
        row = self.rows.get(user_id)
        return None if row is None else self.record(user_id, row)

    def records(self, start: int = 0, stop: int | None = None) -> list[Record]:
        """The records of the live rows in ``range(start, stop)``, in row order."""
        return self.chunk(start, self.row_count if stop is None else stop).records()

    def chunk(self, start: int, stop: int) -> Chunk:
        """Copies of the live rows in ``range(start, stop)``: cheap to take under the store's lock."""
        return Chunk.of(self, start, stop)

    def hot_column(self, slot: int, start: int, stop: int) -> array[int]:
        """One field of the hot rows in ``range(start, stop)``."""
        stop = min(stop, self.row_count)  # as a plain slice would clip
        return self.hot[start * STRIDE + slot : stop * STRIDE : STRIDE]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    def find_username(self, name: str) -> Record | None:
        """The first record whose username is ``name`` (case-insensitive, ``@`` optional)."""
        wanted = name.lstrip("@").lower()
        if not wanted:
            return None
        for row, profile in enumerate(self.profiles):
            if profile is not None and profile[2] and profile[2].lower() == wanted:
                return self.record(self.hot[row * STRIDE + ID_SLOT], row)
        return None


def profile_hash(user_id: int, values: tuple[Any, ...]) -> int:
    """What ``UserTable.hashes`` holds: the hash of the ``Profile`` ``(user_id, *values)``."""
    return hash((user_id, *values))


def _times(texts: list[str | None]) -> list[tuple[int, str | None]]:
    """A column of timestamp texts as ``(seconds, text)``; one C-level pass unless some are odd."""
    try:
        return list(zip(seconds_of(texts), texts, strict=True))
    except (ValueError, KeyError):
        return [(seconds_or_odd(text), text) for text in texts]
