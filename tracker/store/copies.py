"""Copies of table rows, taken under the store's lock and serialised after it.

:class:`~tracker.store.table.UserTable` hands these out so the expensive part
of a journal round or a snapshot chunk (timestamps back to text, JSON, the
column cache's columns) runs without the lock that ``seen()`` callers wait on.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Callable, Iterable, Sequence
from itertools import compress, repeat
from operator import add, and_, itemgetter, mul, ne, not_
from typing import TYPE_CHECKING, Any, NamedTuple

from tracker.models import PROFILE_FIELDS, RECORD_FIELDS, Record
from tracker.store.column_codec import texts_of
from tracker.store.stamps import ODD

if TYPE_CHECKING:
    from tracker.store.table import UserTable

#: The timestamp columns, by their number: FIRST_SEEN, LAST_SEEN, BLOCKED_AT.
FIRST_SEEN, LAST_SEEN, BLOCKED_AT = 0, 1, 2
#: Timestamp field -> its column number.
TIME_COLUMN = {"first_seen": FIRST_SEEN, "last_seen": LAST_SEEN, "blocked_at": BLOCKED_AT}
_PROFILE_POSITION = {name: position for position, name in enumerate(PROFILE_FIELDS)}


class TouchValues(NamedTuple):
    """Copied ``(id, last_seen, messages)`` columns of touched users (see :meth:`of`)."""

    ids: list[int]
    seconds: array[int]
    messages: list[int]
    #: position -> the text of an ODD last_seen
    odd: dict[int, str]

    @classmethod
    def of(cls, table: UserTable, rows: Iterable[int], changed: set[int]) -> TouchValues:
        """The ids, ``last_seen`` and ``messages`` of ``rows`` (each once), copied; ``changed`` ids left out.

        ``changed`` holds the ids whose whole record (or erasure) the batch writes.
        Safe without the store's lock (see ``records.Copied``): rows are never
        reused, so a row read meanwhile is its user's or emptied (marked
        FORGOTTEN: left out, its erasure is in this batch or the next).
        """
        from tracker.store.table import FORGOTTEN, HASH_SLOT, ID_SLOT, MESSAGES_SLOT, STRIDE  # (import cycle)

        hot = table.hot
        # Each row once; LAST_SEEN_SLOT is 0, so a row's last_seen is at row * STRIDE.
        last_seen_at = list(map(mul, dict.fromkeys(rows), repeat(STRIDE)))
        ids = list(map(hot.__getitem__, map(add, last_seen_at, repeat(ID_SLOT))))
        hashes = map(hot.__getitem__, map(add, last_seen_at, repeat(HASH_SLOT)))
        keep = list(map(ne, hashes, repeat(FORGOTTEN)))
        if changed:
            keep = list(map(and_, keep, map(not_, map(changed.__contains__, ids))))
        if not all(keep):
            ids = list(compress(ids, keep))
            last_seen_at = list(compress(last_seen_at, keep))
        seconds = array("I", map(hot.__getitem__, last_seen_at))
        odd = {}
        if ODD in seconds:
            for position, row in enumerate(index // STRIDE for index in last_seen_at):
                if seconds[position] == ODD:
                    # Gone: the value changed meanwhile; a null is left out (see entries), and
                    # the change marked the user pending, so the next batch writes it.
                    text = table.odd_times.get((row, LAST_SEEN))
                    if text is None:
                        seconds[position] = 0
                    else:
                        odd[position] = text
        messages = list(map(hot.__getitem__, map(add, last_seen_at, repeat(MESSAGES_SLOT))))
        return cls(ids, seconds, messages, odd)

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

    @classmethod
    def of(cls, table: UserTable, start: int, stop: int) -> Chunk:
        """Copies of ``table``'s live rows in ``range(start, stop)``: cheap to take under the store's lock."""
        from tracker.store.table import ID_SLOT, LAST_SEEN_SLOT, MESSAGES_SLOT  # (import cycle)

        profiles = table.profiles[start:stop]
        rows = range(start, start + len(profiles))
        columns: list[Sequence[Any]] = [
            table.hot_column(ID_SLOT, start, stop), table.first_seen[start:stop],
            table.hot_column(LAST_SEEN_SLOT, start, stop), table.blocked_at[start:stop],
            table.hot_column(MESSAGES_SLOT, start, stop), table.blocked[start:stop],
            table.sources[start:stop],
        ]
        if None in profiles:  # forgotten rows: holes to leave out
            live = [profile is not None for profile in profiles]
            rows = list(compress(rows, live))  # type: ignore[assignment]
            profiles = list(compress(profiles, live))
            columns = [list(compress(column, live)) for column in columns]
        ids, first_seen, last_seen, blocked_at, messages, blocked, sources = columns
        odd: dict[tuple[int, int], str] = {}
        extras: dict[int, dict[str, Any]] = {}
        if table.odd_times or table.extras:  # rare (hand-edited records): find them by position
            for position, row in enumerate(rows):
                for column in (FIRST_SEEN, LAST_SEEN, BLOCKED_AT):
                    text = table.odd_times.get((row, column))
                    if text is not None:
                        odd[position, column] = text
                if row in table.extras:
                    extras[position] = dict(table.extras[row])
        return cls(
            ids=list(ids), profiles=profiles,  # type: ignore[arg-type]  # no holes left
            times=(array("I", first_seen), array("I", last_seen), array("I", blocked_at)),
            odd=odd, messages=list(messages), blocked=bytes(blocked), sources=list(sources), extras=extras,
        )

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
