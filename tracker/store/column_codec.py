"""Binary encodings of the column cache's fields (what readers get back: :mod:`.column_views`).

A field's values are stored in the smallest form that gives them back exactly:
ids and counts as 64-bit integers (``array``), booleans as one byte each,
``is_premium`` as one byte of 0/1/2 (null), low-cardinality text (language,
source) as integer codes into a table of the distinct values, timestamps as
uint32 seconds (0 = null), and free text (names) as a JSON array. A timestamp
column whose values do not all round-trip (a hand-edited ``2026-13-45...`` or a
date before 1970) is stored as JSON text instead, so nothing is ever altered.

Timestamps go both ways here (:func:`seconds_of`, :func:`texts_of`): the
writer keeps them as seconds too.
"""

from __future__ import annotations

import functools
import sys
from array import array
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from enum import Enum
from itertools import repeat
from operator import add, floordiv, itemgetter, mod
from typing import Any, TypeAlias

import orjson

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY = 86_400
#: Day numbers from 1970-01-02 up to the last day uint32 seconds reach (2106).
_MAX_DAY = (2**32 - 1) // _DAY - 1
#: Where a null sits in a text timestamp column while it is converted.
_NULL_TEXT = "\x00" * 11 + "00:00:00Z"


class Kind(Enum):
    """How one column is stored."""

    INT = "i64"  # array('q')
    COUNT = "u64"  # array('Q')
    BOOL = "bool"  # one byte each, 0/1
    TRI = "tri"  # one byte each: 0 false, 1 true, 2 null
    CODE = "code"  # a JSON table of distinct values + array('I') of indexes
    TIME = "ts"  # array('I') of seconds since 1970, 0 = null
    JSON = "json"  # a JSON array


#: The preferred kind of each record field (unknown fields: JSON).
FIELD_KINDS: dict[str, Kind] = {
    "id": Kind.INT,
    "messages": Kind.COUNT,
    "is_bot": Kind.BOOL,
    "blocked": Kind.BOOL,
    "is_premium": Kind.TRI,
    "language_code": Kind.CODE,
    "source": Kind.CODE,
    "first_seen": Kind.TIME,
    "last_seen": Kind.TIME,
    "blocked_at": Kind.TIME,
}

#: A piece of a column's stored form, written as it is (no copy).
Part: TypeAlias = "bytes | bytearray | memoryview | array[int]"

LITTLE_ENDIAN = sys.byteorder == "little"
#: What the bytes of a flag column stand for: 0, 1 (and 2 for a flag that may be unknown).
BOOLS = (False, True)
TRI = (False, True, None)
_TRI_CODE = {False: 0, True: 1, None: 2}


# ---------------------------------------------------------------- timestamps


class _DayNumbers(dict[str, int]):
    """``"YYYY-MM-DDT"`` -> days since 1970, filled on first sight (raises for a date we cannot store)."""

    def __missing__(self, prefix: str) -> int:
        when = datetime.strptime(prefix, "%Y-%m-%dT").replace(tzinfo=UTC)
        day = (when - _EPOCH).days
        if not 1 <= day <= _MAX_DAY or when.strftime("%Y-%m-%dT") != prefix:
            raise ValueError(f"{prefix!r} cannot be stored as uint32 seconds")
        self[prefix] = day
        return day


class _DayPrefixes(dict[int, str]):
    """Days since 1970 -> ``"YYYY-MM-DDT"``, filled on first sight."""

    def __missing__(self, day: int) -> str:
        text = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
        self[day] = text
        return text


def _times_of_day() -> list[str]:
    """``"HH:MM:SSZ"`` for every second of a day, in order (joined from parts: ~10 ms)."""
    two = [f"{i:02d}" for i in range(60)]
    minutes = [f"{m}:{s}Z" for m in two for s in two]
    return [f"{h}:{ms}" for h in two[:24] for ms in minutes]


class _Tables:
    """The lookup tables, made on first use (a reader of the column cache needs only ``second_of_day``)."""

    @functools.cached_property
    def second_of_day(self) -> list[str]:
        return _times_of_day()

    @functools.cached_property
    def seconds_of_minute(self) -> dict[str, int]:
        """``"HH:MM"`` -> seconds since midnight."""
        return {f"{h:02d}:{m:02d}": (h * 60 + m) * 60 for h in range(24) for m in range(60)}

    @functools.cached_property
    def second_numbers(self) -> dict[str, int]:
        """``"SS"`` -> its number."""
        return {f"{s:02d}": s for s in range(60)}


_TABLES = _Tables()
_DAY_NUMBERS = _DayNumbers({_NULL_TEXT[:11]: 0})
#: Day 0 (1970-01-01, never stored: 0 is null) reads as the null text, which _NULL_OF maps to None.
_DAY_PREFIXES = _DayPrefixes({0: _NULL_TEXT[:11]})
_NULL_OF: dict[str | None, str | None] = {_NULL_TEXT: None}
_TEXT_OF_NULL: dict[str | None, str | None] = {None: _NULL_TEXT}
_HEAD, _HOUR_MINUTE, _SECOND = itemgetter(slice(0, 11)), itemgetter(slice(11, 16)), itemgetter(slice(17, 19))


def seconds_of(values: Sequence[str | None]) -> array[int]:
    """Timestamps as uint32 seconds (None -> 0); ``ValueError``/``KeyError`` when one cannot be stored.

    ``values`` are checked timestamps (``YYYY-MM-DDTHH:MM:SSZ``, see
    ``validate``): only their fields are read here. Every step is a C-level
    ``map`` over small dict lookups (the date, the hour and minute, the
    second: tables that stay in the CPU cache, unlike one of every second of
    a day): ~0.5 µs a value, so a snapshot and an open can afford it.
    """
    texts: Iterable[Any] = map(_TEXT_OF_NULL.get, values, values) if None in values else values
    texts = list(texts)
    days = map(_DAY_NUMBERS.__getitem__, map(_HEAD, texts))
    minutes = map(_TABLES.seconds_of_minute.__getitem__, map(_HOUR_MINUTE, texts))
    seconds = map(_TABLES.second_numbers.__getitem__, map(_SECOND, texts))
    return array("I", map(add, map(add, map(_DAY.__mul__, days), minutes), seconds))


def texts_of(seconds: Iterable[int]) -> list[str | None]:
    """The inverse of :func:`seconds_of`."""
    values = seconds if isinstance(seconds, array) else array("I", seconds)
    if not any(values):  # a column of nulls (blocked_at, mostly)
        return [None] * len(values)
    days = map(floordiv, values, repeat(_DAY))
    times = map(mod, values, repeat(_DAY))
    texts: list[str | None] = list(map(str.__add__, map(_DAY_PREFIXES.__getitem__, days),
                                       map(_TABLES.second_of_day.__getitem__, times)))
    if 0 in values:  # nulls made the text of second 0: back to None, still in C
        texts = list(map(_NULL_OF.get, texts, texts))
    return texts


def day_prefixes() -> dict[int, str]:
    """Day number (days since 1970) -> ``"YYYY-MM-DDT"``, filled on first sight (one shared dict)."""
    return _DAY_PREFIXES


def second_of_day_texts() -> list[str]:
    """``"HH:MM:SSZ"`` of every second of a day, in order (made once)."""
    return _TABLES.second_of_day



# ------------------------------------------------------------ encode/decode


class ColumnBuilder:
    """Collects one field's values chunk by chunk in its stored form; :meth:`sections` gives the bytes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kind = FIELD_KINDS.get(name, Kind.JSON)
        self._numbers = array("q" if self.kind is Kind.INT else "Q" if self.kind is Kind.COUNT else "I")
        self._bytes = bytearray()
        self._json: list[bytes] = []
        self._codes: dict[Any, int] = {}

    def add(self, values: list[Any]) -> None:
        kind = self.kind
        if kind is Kind.INT or kind is Kind.COUNT:
            self._numbers.extend(values)
        elif kind is Kind.BOOL:
            self._bytes.extend(map(BOOLS.index, values))
        elif kind is Kind.TRI:
            self._bytes.extend(map(_TRI_CODE.__getitem__, values))
        elif kind is Kind.CODE:
            codes = self._codes
            for value in set(values) - codes.keys():  # a handful of new names per chunk
                codes[value] = len(codes)
            self._numbers.extend(map(codes.__getitem__, values))
        elif kind is Kind.TIME:
            try:
                self._numbers.extend(seconds_of(values))
            except (ValueError, KeyError, TypeError):  # not storable as seconds: keep it as text
                self.kind = Kind.JSON
                self._json.append(orjson.dumps(texts_of(self._numbers) + values))
                self._numbers = array("I")
        else:
            self._json.append(orjson.dumps(values))

    def add_seconds(self, seconds: array[int]) -> None:
        """Timestamps already as uint32 seconds (0 = null), none of them odd."""
        if self.kind is Kind.TIME:
            self._numbers.extend(seconds)
        else:  # an earlier chunk held odd text: this column is text now
            self.add(texts_of(seconds))

    def release(self) -> None:
        """Drop the collected values a piece at a time (see ``ColumnCollector.release``)."""
        while self._json:
            self._json.pop()
        self._numbers = array(self._numbers.typecode)
        self._bytes = bytearray()

    def encode(self) -> tuple[Kind, bytes, list[Part]]:
        """``(kind, table, parts)``: the column's stored form (``table`` only for codes), in parts.

        Parts rather than one joined ``bytes``: at ten million users a column is
        ~100 MB, and joining it would hold the GIL (a pause for the bot's
        ``seen()`` callers) and double the snapshot's peak; the file is written
        part by part instead.
        """
        kind = self.kind
        if kind is Kind.JSON:
            parts: list[Part] = [b"["]
            for body in self._json:
                if len(body) > 2:
                    parts += [b"," if len(parts) > 1 else b"", memoryview(body)[1:-1]]
            return kind, b"", [*parts, b"]"]
        if kind is Kind.BOOL or kind is Kind.TRI:
            return kind, b"", [self._bytes]
        if kind is Kind.CODE:
            size = len(self._codes)
            typecode = "B" if size <= 256 else "H" if size <= 65536 else "I"
            # Narrowed a slice at a time: one call over millions of codes would hold the GIL.
            numbers, step = self._numbers, 1 << 16
            narrowed: list[Part] = [array(typecode, numbers[at : at + step])
                                    for at in range(0, len(numbers), step)]
            return kind, orjson.dumps(list(self._codes)), narrowed
        return kind, b"", [self._numbers]


def byte_size(parts: list[Part]) -> int:
    """How many bytes ``parts`` hold (an array's ``len`` counts items, not bytes)."""
    return sum(memoryview(part).nbytes for part in parts)


def only_below(data: bytes, allowed: int) -> bool:
    """Whether every byte of ``data`` is below ``allowed`` (a C-level pass, no int per byte)."""
    return not data.translate(None, bytes(range(allowed)))
