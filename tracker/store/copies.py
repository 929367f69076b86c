"""Copies of table rows, taken under the store's lock and serialised after it.

:class:`~tracker.store.table.UserTable` hands these out so the expensive part
of a journal round or a snapshot chunk (timestamps back to text, JSON, the
column cache's columns) runs without the lock that ``seen()`` callers wait on.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Callable, Iterable
from itertools import repeat
from operator import itemgetter
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
#: Rows read per C-level pass when a journal round copies touched users. A pass
#: holds the GIL throughout, and at ten million users each row is a cache miss:
#: one pass over a round's 100,000 touched rows kept ``seen()`` callers waiting
#: ~100 ms; between slices the bot's thread gets its turn.
TOUCH_PASS = 4_096
_PROFILE_POSITION = {name: position for position, name in enumerate(PROFILE_FIELDS)}


class TouchValues(NamedTuple):
    """Copied ``(id, last_seen, messages)`` columns of touched users (see :meth:`of`)."""

    ids: list[int]
    seconds: array[int]
    messages: list[int]
    #: position -> the text of an ODD last_seen
    odd: dict[int, str]

    @classmethod
    def of(cls, table: UserTable, user_ids: Iterable[int]) -> TouchValues:
        """The ``last_seen`` and ``messages`` of ``table``'s known users among ``user_ids``, copied.

        Safe without the store's lock (see ``records.Copied``): each id is looked
        up once, and rows are never reused.
        """
        found = [(user_id, row) for user_id in user_ids if (row := table.rows.get(user_id)) is not None]
        ids = [user_id for user_id, _ in found]
        rows = [row for _, row in found]
        seconds = array("I")
        messages: list[int] = []
        for start in range(0, len(rows), TOUCH_PASS):
            part = rows[start : start + TOUCH_PASS]
            seconds.extend(map(table.last_seen.__getitem__, part))
            messages.extend(map(table.messages.__getitem__, part))
        odd = {}
        if ODD in seconds:
            for position, row in enumerate(rows):
                if seconds[position] == ODD:
                    # Gone: the value changed meanwhile; a null is left out (see entries), and
                    # the change marked the user pending, so the next batch writes it.
                    text = table.odd_times.get((row, LAST_SEEN))
                    if text is None:
                        seconds[position] = 0
                    else:
                        odd[position] = text
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
