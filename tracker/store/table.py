"""The writer's users in memory: one array per field, a row per user (a struct of arrays).

A record as a ``dict`` costs ~600 bytes before its strings, and a million of
them are a million objects the cyclic GC walks. Here a user is a row number:
an index from Telegram id to row, ``array`` columns for the numbers and the
timestamps (uint32 seconds, as in the column cache), one tuple of the six
profile values, and a hash of that tuple so ``seen()`` can tell "same profile"
without touching the stored strings (each a cache miss in a large store). Two
different profiles with equal 64-bit hashes (odds of 1 in 2**64 per update)
would keep the old name until the user's next change.
About 400 bytes a user in all, where the dicts took ~1 KB.

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
from collections.abc import Iterable, Iterator, Sequence
from itertools import compress
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
        "hashes",
        "ids",
        "last_seen",
        "messages",
        "odd_times",
        "profiles",
        "rows",
        "sources",
        "time_of_day",
    )

    def __init__(self) -> None:
        #: Telegram id -> row.
        self.rows: dict[int, int] = {}
        self.ids = array("q")
        #: ``(first_name, last_name, username, language_code, is_bot, is_premium)``; None: a forgotten row.
        self.profiles: list[tuple[Any, ...] | None] = []
        #: ``hash()`` of the profile tuple last seen (not persisted: str hashes differ per process).
        self.hashes = array("q")
        self.first_seen = array("I")
        self.last_seen = array("I")
        self.blocked_at = array("I")
        self.messages = array("Q")
        self.blocked = bytearray()
        self.sources: list[str | None] = []
        #: row -> fields a hand-edited record carries beyond the store's own (kept as they are).
        self.extras: dict[int, dict[str, Any]] = {}
        #: (row, FIRST_SEEN | LAST_SEEN | BLOCKED_AT) -> text of a timestamp marked ODD.
        self.odd_times: dict[tuple[int, int], str] = {}
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
        return len(self.ids)

    # ------------------------------------------------------------ writing rows

    def add(self, user_id: int, profile: tuple[Any, ...], digest: int, seconds: int, text: str) -> int:
        """A new user first seen at ``seconds`` (``text`` when ODD); returns the row."""
        row = len(self.ids)
        self.rows[user_id] = row
        self.ids.append(user_id)
        self.profiles.append(self.shared_profile(profile))
        self.hashes.append(digest)
        self.first_seen.append(seconds)
        self.last_seen.append(seconds)
        self.blocked_at.append(0)
        self.messages.append(0)
        self.blocked.append(0)
        self.sources.append(None)
        if seconds == ODD:
            self.odd_times[row, FIRST_SEEN] = self.odd_times[row, LAST_SEEN] = text
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
        self._time_columns[column][row] = seconds
        if seconds == ODD:
            assert text is not None
            self.odd_times[row, column] = text
        else:
            self.odd_times.pop((row, column), None)

    def time_of(self, row: int, column: int) -> str | None:
        """One timestamp as the store's text (None when null)."""
        times = self._time_columns[column]
        seconds = times[row]
        if seconds == ODD:
            text = self.odd_times.get((row, column))
            if text is not None:
                return text
            # Changed meanwhile (the journal reads without the lock): take the new value;
            # the change marked the user pending, so the next batch has it right anyway.
            seconds = times[row]
            if seconds == ODD:
                return self.odd_times.get((row, column))
        if seconds == 0:
            return None
        return self.day_prefix[seconds // DAY] + self.time_of_day[seconds % DAY]

    def set_profile(self, row: int, profile: tuple[Any, ...], digest: int) -> None:
        """A new profile for a known user (``digest``: ``hash(profile)`` as given, before it is made safe)."""
        self.profiles[row] = self.shared_profile(profile)
        self.hashes[row] = digest

    def see_as_text(
        self, row: int, profile: tuple[Any, ...], digest: int, seconds: int, text: str
    ) -> tuple[str, str | None, bool]:
        """A sighting of a row with a null or odd timestamp, or at an odd time, compared as text.

        What ``UserStore.seen`` does in its fast path, for the rare rows it
        cannot do with seconds. Returns ``(first_seen, previous last_seen,
        whether the whole record changed)``.
        """
        changed = False
        last_seen = self.time_of(row, LAST_SEEN)
        if last_seen is None or text >= last_seen:
            if self.hashes[row] != digest:
                self.set_profile(row, profile, digest)
                changed = True
            self.set_time(row, LAST_SEEN, seconds, text)
            if self.first_seen[row] == 0:
                self.set_time(row, FIRST_SEEN, seconds, text)
                changed = True
        # A null first_seen left (a record seen late, before its last_seen): counted as first seen now.
        return self.time_of(row, FIRST_SEEN) or text, last_seen, changed

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
        start = len(self.ids)
        ids = list(map(_FIELD["id"], records))
        self.rows.update(zip(ids, range(start, start + len(ids)), strict=True))
        self.ids.extend(ids)
        share = self._shared.setdefault  # C-level, None included (it maps to itself)
        codes = list(map(_FIELD["language_code"], records))
        languages = list(map(share, codes, codes))
        profiles = list(zip(*(map(_FIELD[name], records) for name in PROFILE_FIELDS[:3]), languages,
                            map(_FIELD["is_bot"], records), map(_FIELD["is_premium"], records), strict=True))
        self.profiles.extend(profiles)
        self.hashes.extend(map(hash, profiles))
        for column, (name, times) in enumerate(zip(_TIME_FIELDS, self._time_columns, strict=True)):
            texts = list(map(_FIELD[name], records))
            try:
                times.extend(seconds_of(texts))
            except (ValueError, KeyError):  # an odd one: keep it as text (rare: value by value)
                for row, text in enumerate(texts, start):
                    seconds = seconds_or_odd(text)
                    times.append(seconds)
                    if seconds == ODD and text is not None:
                        self.odd_times[row, column] = text
        self.messages.extend(map(_FIELD["messages"], records))
        self.blocked.extend(map(_FIELD["blocked"], records))
        sources = list(map(_FIELD["source"], records))
        self.sources.extend(map(share, sources, sources))
        if max(map(len, records)) > len(_OWN_FIELDS):  # hand-made records with fields of their own
            for row, record in enumerate(records, start):
                if len(record) > len(_OWN_FIELDS):
                    self.extras[row] = {k: v for k, v in record.items() if k not in _OWN_FIELDS}

    @property
    def _time_columns(self) -> tuple[array[int], array[int], array[int]]:
        return (self.first_seen, self.last_seen, self.blocked_at)

    def _fill(self, row: int, record: Record, times: list[tuple[int, str | None]]) -> None:
        profile = _PROFILE(record)
        if profile[3] is not None:
            profile = (*profile[:3], self.share(profile[3]), *profile[4:])
        self.profiles[row] = profile
        self.hashes[row] = hash(profile)
        for column, (seconds, text) in enumerate(times):
            self.set_time(row, column, seconds, text)
        self.messages[row] = record["messages"]
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
            self.messages[row] = messages

    def remove(self, user_id: int) -> bool:
        """Forget ``user_id``: its row is emptied now (a hole until the next open); True if known."""
        row = self.rows.pop(user_id, None)
        if row is None:
            return False
        self.ids[row] = 0
        self.profiles[row] = None
        self.hashes[row] = 0
        for times in (self.first_seen, self.last_seen, self.blocked_at):
            times[row] = 0
        self.messages[row] = 0
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
            "messages": self.messages[row],
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
        return self.chunk(start, len(self.ids) if stop is None else stop).records()

    def chunk(self, start: int, stop: int) -> Chunk:
        """Copies of the live rows in ``range(start, stop)``: cheap to take under the store's lock."""
        profiles = self.profiles[start:stop]
        rows = range(start, start + len(profiles))
        columns: list[Sequence[Any]] = [
            self.ids[start:stop], self.first_seen[start:stop], self.last_seen[start:stop],
            self.blocked_at[start:stop], self.messages[start:stop], self.blocked[start:stop],
            self.sources[start:stop],
        ]
        if None in profiles:  # forgotten rows: holes to leave out
            live = [profile is not None for profile in profiles]
            rows = list(compress(rows, live))  # type: ignore[assignment]
            profiles = list(compress(profiles, live))
            columns = [list(compress(column, live)) for column in columns]
        ids, first_seen, last_seen, blocked_at, messages, blocked, sources = columns
        odd: dict[tuple[int, int], str] = {}
        extras: dict[int, dict[str, Any]] = {}
        if self.odd_times or self.extras:  # rare (hand-edited records): find them by position
            for position, row in enumerate(rows):
                for column in (FIRST_SEEN, LAST_SEEN, BLOCKED_AT):
                    text = self.odd_times.get((row, column))
                    if text is not None:
                        odd[position, column] = text
                if row in self.extras:
                    extras[position] = dict(self.extras[row])
        return Chunk(
            ids=list(ids), profiles=profiles,  # type: ignore[arg-type]  # no holes left
            times=(array("I", first_seen), array("I", last_seen), array("I", blocked_at)),
            odd=odd, messages=list(messages), blocked=bytes(blocked), sources=list(sources), extras=extras,
        )

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    def find_username(self, name: str) -> Record | None:
        """The first record whose username is ``name`` (case-insensitive, ``@`` optional)."""
        wanted = name.lstrip("@").lower()
        if not wanted:
            return None
        for row, profile in enumerate(self.profiles):
            if profile is not None and profile[2] and profile[2].lower() == wanted:
                return self.record(self.ids[row], row)
        return None


def _times(texts: list[str | None]) -> list[tuple[int, str | None]]:
    """A column of timestamp texts as ``(seconds, text)``; one C-level pass unless some are odd."""
    try:
        return list(zip(seconds_of(texts), texts, strict=True))
    except (ValueError, KeyError):
        return [(seconds_or_odd(text), text) for text in texts]
