"""The writer's users in memory: one array per field, a row per user (a struct of arrays).

A record as a ``dict`` costs ~600 bytes before its strings, and a million of
them are a million objects the cyclic GC walks. Here a user is a row number:
an index from Telegram id to row, ``array`` columns for the numbers and the
timestamps (uint32 seconds, as in the column cache), one tuple of the six
profile values, and a hash of that tuple so ``seen()`` can tell "same profile"
without touching the stored strings (each a cache miss in a large store).
About 430 bytes a user in all, where the dicts took ~1 KB.

Timestamps are kept as seconds since 1970 (0 = null). The few that do not fit
(a hand-edited ``2026-13-45T…`` or a date before 1970-01-02) are marked
:data:`ODD` and kept as text beside the arrays, so nothing is ever altered.

Rows are never reused: a forgotten user's row is emptied (its data dropped at
once) and left as a hole until the next open. So a snapshot that walks the
rows that existed when it started writes each user at most once.

Not thread-safe by itself: the store calls it under its own lock.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import compress, repeat
from operator import itemgetter
from typing import Any, NamedTuple

from tracker.models import PROFILE_FIELDS, RECORD_FIELDS, Record, encodable_text, format_ts
from tracker.store.column_codec import day_prefixes, second_of_day_texts, seconds_of, texts_of
from tracker.store.journal import Effect

#: A timestamp kept as text in :attr:`UserTable.odd_times` (uint32 seconds never reach it).
ODD = 2**32 - 1
#: The timestamp columns, by their number in :attr:`UserTable.odd_times` keys.
FIRST_SEEN, LAST_SEEN, BLOCKED_AT = 0, 1, 2
#: Seconds in a (UTC) day.
DAY = 86_400
_ONE_SECOND = timedelta(seconds=1)
_PROFILE = itemgetter(*PROFILE_FIELDS)
_OWN_FIELDS = frozenset(RECORD_FIELDS)
_FIELD = {name: itemgetter(name) for name in RECORD_FIELDS}
#: The timestamp fields, in the order of FIRST_SEEN, LAST_SEEN, BLOCKED_AT.
_TIME_FIELDS = ("first_seen", "last_seen", "blocked_at")
#: Timestamp field -> its column number.
TIME_COLUMN = {name: column for column, name in enumerate(_TIME_FIELDS)}
_PROFILE_POSITION = {name: position for position, name in enumerate(PROFILE_FIELDS)}




def seconds_or_odd(text: str | None) -> int:
    """``text`` as uint32 seconds: 0 for None, :data:`ODD` when it does not fit."""
    if text is None:
        return 0
    try:
        return seconds_of([text])[0]
    except (ValueError, KeyError):
        return ODD


class Stamps:
    """Aware datetimes as ``(text, seconds)``, cached while the second is the same (see TimestampCache)."""

    __slots__ = ("_end", "_stamp", "_start")

    def __init__(self) -> None:
        self._start = self._end = datetime.min.replace(tzinfo=UTC)
        self._stamp = ("", 0)

    def __call__(self, at: datetime) -> tuple[str, int]:
        # Aware datetimes in another zone compare by wall clock (wrong across a
        # DST fold), so only UTC ones hit the cache.
        if at.tzinfo is UTC and self._start <= at < self._end:
            return self._stamp
        text = format_ts(at)  # raises for a naive datetime, before anything changes
        stamp = (text, seconds_or_odd(text))
        if at.tzinfo is UTC:
            self._start = at.replace(microsecond=0)
            self._end = self._start + _ONE_SECOND
            self._stamp = stamp
        return stamp


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
        seconds = self._time_columns[column][row]
        if seconds == 0:
            return None
        if seconds == ODD:
            return self.odd_times[row, column]
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

    def touch_values(self, user_ids: Iterable[int]) -> TouchValues:
        """The ``last_seen`` and ``messages`` of the known users among ``user_ids``, copied.

        Safe without the store's lock (see ``records.Copied``): each id is looked
        up once, and rows are never reused.
        """
        found = [(user_id, row) for user_id in user_ids if (row := self.rows.get(user_id)) is not None]
        ids = [user_id for user_id, _ in found]
        rows = [row for _, row in found]
        seconds = array("I", map(self.last_seen.__getitem__, rows))
        odd = {}
        if ODD in seconds:
            odd = {position: self.odd_times[row, LAST_SEEN]
                   for position, row in enumerate(rows) if seconds[position] == ODD}
        return TouchValues(ids, seconds, list(map(self.messages.__getitem__, rows)), odd)

    def find_username(self, name: str) -> Record | None:
        """The first record whose username is ``name`` (case-insensitive, ``@`` optional)."""
        wanted = name.lstrip("@").lower()
        if not wanted:
            return None
        for row, profile in enumerate(self.profiles):
            if profile is not None and profile[2] and profile[2].lower() == wanted:
                return self.record(self.ids[row], row)
        return None


class TouchValues(NamedTuple):
    """Copied ``(id, last_seen, messages)`` columns of touched users (see :meth:`UserTable.touch_values`)."""

    ids: list[int]
    seconds: array[int]
    messages: list[int]
    #: position -> the text of an ODD last_seen
    odd: dict[int, str]

    def entries(self) -> list[tuple[int, str, int]]:
        """The journal's touches; a user never seen (null ``last_seen``) has none to write."""
        texts = texts_of(self.seconds)
        for position, text in self.odd.items():
            texts[position] = text
        touches = zip(self.ids, texts, self.messages, strict=True)
        if 0 in self.seconds:
            return [touch for touch in touches if touch[1] is not None]  # type: ignore[misc]
        return list(touches)  # type: ignore[arg-type]


class Chunk(NamedTuple):
    """Copies of some rows (no holes): taken under the store's lock, made into records and columns after."""

    ids: list[int]
    profiles: list[tuple[Any, ...]]
    #: first_seen, last_seen, blocked_at as uint32 seconds (0 null, ODD: see ``odd``)
    times: tuple[array[int], array[int], array[int]]
    #: (position, FIRST_SEEN | LAST_SEEN | BLOCKED_AT) -> the text of an ODD timestamp
    odd: dict[tuple[int, int], str]
    messages: list[int]
    blocked: bytes
    sources: list[str | None]
    #: position -> a hand-edited record's extra fields
    extras: dict[int, dict[str, Any]]

    @property
    def size(self) -> int:
        """How many rows."""
        return len(self.ids)

    def time_texts(self, column: int) -> list[str | None]:
        """One timestamp column (FIRST_SEEN, LAST_SEEN or BLOCKED_AT) as the store's text (None for null)."""
        texts = texts_of(self.times[column])
        for (position, odd_column), text in self.odd.items():
            if odd_column == column:
                texts[position] = text
        return texts

    def values(self, name: str) -> list[Any]:
        """One field's values in row order (timestamps as text)."""
        if name in _PROFILE_POSITION:
            return list(map(itemgetter(_PROFILE_POSITION[name]), self.profiles))
        if name in TIME_COLUMN:
            return self.time_texts(TIME_COLUMN[name])
        if name == "blocked":
            return list(map(bool, self.blocked))
        plain: dict[str, list[Any]] = {"id": self.ids, "messages": self.messages, "source": self.sources}
        return plain[name]

    def columns(self) -> dict[str, list[Any]]:
        """Every field's values in row order, by name, in :data:`RECORD_FIELDS` order."""
        return {name: self.values(name) for name in RECORD_FIELDS}

    def records(self, columns: dict[str, list[Any]] | None = None) -> list[Record]:
        """The rows as record dicts (the store file's shape), extras included."""
        rows = zip(*(columns or self.columns()).values(), strict=True)
        records = list(map(dict, map(zip, repeat(RECORD_FIELDS), rows)))
        for position, extras in self.extras.items():
            records[position].update(extras)
        return records

    def encoded(self, columns: dict[str, list[Any]] | None = None) -> bytes:
        """The rows as the JSON object ``{"<id>": record, ...}``, exactly as ``orjson.dumps`` writes it.

        Through msgspec structs rather than dicts: a snapshot of a million
        users spends ~1.3 s building and serialising dicts, ~0.3 s this way.
        """
        columns = columns or self.columns()
        row_type, encode = _row_encoder()
        users: dict[int, Any] = dict(zip(self.ids, map(row_type, *columns.values()), strict=True))
        for position, extras in self.extras.items():  # hand-edited records with fields of their own
            record = {name: values[position] for name, values in columns.items()}
            users[self.ids[position]] = {**record, **extras}
        return encode(users)


@functools.cache
def _row_encoder() -> tuple[Callable[..., Any], Callable[[Any], bytes]]:
    """A struct of the record's fields in order, and a JSON encoder (msgspec is imported by writers only)."""
    import msgspec

    row_type = msgspec.defstruct("StoredUser", [(name, Any) for name in RECORD_FIELDS], gc=False)
    return row_type, msgspec.json.Encoder().encode


def _times(texts: list[str | None]) -> list[tuple[int, str | None]]:
    """A column of timestamp texts as ``(seconds, text)``; one C-level pass unless some are odd."""
    try:
        return list(zip(seconds_of(texts), texts, strict=True))
    except (ValueError, KeyError):
        return [(seconds_or_odd(text), text) for text in texts]
