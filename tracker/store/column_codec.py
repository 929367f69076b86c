"""Binary encodings of the column cache's fields, and the timestamp column readers get.

A field's values are stored in the smallest form that gives them back exactly:
ids and counts as 64-bit integers (``array``), booleans as one byte each,
``is_premium`` as one byte of 0/1/2 (null), low-cardinality text (language,
source) as integer codes into a table of the distinct values, timestamps as
uint32 seconds (0 = null), and free text (names) as a JSON array. A timestamp
column whose values do not all round-trip (a hand-edited ``2026-13-45...`` or a
date before 1970) is stored as JSON text instead, so nothing is ever altered.

Timestamps are the costly field to turn back into text (~0.35 s per million),
so readers get a :class:`TimeColumn`: a read-only sequence of the usual
``YYYY-MM-DDTHH:MM:SSZ`` strings made on first use, which also exposes the raw
seconds so ``stats`` can count and compare without making a single string.
"""

from __future__ import annotations

import functools
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from enum import Enum
from itertools import repeat
from operator import add, floordiv, itemgetter, mod
from typing import Any, TypeAlias, overload

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

_LITTLE = sys.byteorder == "little"
_BOOLS = (False, True)
_TRI = (False, True, None)
_TRI_CODE = {False: 0, True: 1, None: 2}
#: Up to this many distinct values, one ``bytes.count`` per value beats a ``Counter`` over every user.
_COUNT_BY_BYTE_MAX = 32


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


def seconds_of_one(value: str | None) -> int:
    return seconds_of([value])[0]


class EncodedColumn(Sequence[Any]):
    """A column that reads like a list of its values but is kept in its stored form until one is asked for.

    Making a Python object per user is most of the cost of reading the
    column cache (and of counting over it): ``stats`` counts on the stored
    form (:class:`TimeColumn` seconds, :class:`CodeColumn` codes,
    :class:`FlagColumn` bytes); everyone else gets the values, made once on
    first use. Supports what applying a journal needs: item assignment,
    ``append`` and :meth:`without`. Subclasses say how the stored form turns
    into values (:meth:`_decode`) and keep it current on a change
    (:meth:`_store`, :meth:`_add`).
    """

    def __init__(self) -> None:
        self._values: list[Any] | None = None

    def values(self) -> list[Any]:
        """The values as a plain list (made once)."""
        if self._values is None:
            self._values = self._decode()
        return self._values

    def _decode(self) -> list[Any]:
        raise NotImplementedError

    def _store(self, index: int, value: Any) -> None:
        raise NotImplementedError

    def _add(self, value: Any) -> None:
        raise NotImplementedError

    def _kept(self, positions: set[int]) -> EncodedColumn:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        return self.values()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values())

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        """As ``list.index`` (C-level; ``Sequence``'s own is a Python loop)."""
        return self.values().index(value, start, len(self) if stop is None else stop)

    def count(self, value: Any) -> int:
        """As ``list.count``."""
        return self.values().count(value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and self.values() == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.values()!r})"

    def __setitem__(self, index: int, value: Any) -> None:
        self._store(index, value)
        if self._values is not None:
            self._values[index] = value

    def append(self, value: Any) -> None:
        self._add(value)
        if self._values is not None:
            self._values.append(value)

    def without(self, positions: set[int]) -> EncodedColumn:
        """A copy without the values at ``positions``."""
        return self._kept(positions)


class TimeColumn(EncodedColumn):
    """A timestamp column: reads as ``YYYY-MM-DDTHH:MM:SSZ`` strings (or None), kept as uint32 seconds.

    :attr:`seconds` is the stored form (0 = null) for code that can count
    without making a string per user (``tracker.stats``).
    """

    def __init__(self, seconds: array[int]) -> None:
        super().__init__()
        self.seconds = seconds

    def texts(self) -> list[str | None]:
        """The values as a plain list of strings (made once)."""
        return self.values()

    def _decode(self) -> list[Any]:
        return texts_of(self.seconds)

    def __len__(self) -> int:
        return len(self.seconds)

    def __getitem__(self, index: int | slice) -> Any:
        if self._values is not None:
            return self._values[index]
        if isinstance(index, slice):  # a slice of a column not made yet: only that slice's strings
            return texts_of(self.seconds[index])
        return texts_of([self.seconds[index]])[0]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TimeColumn):
            return self.seconds == other.seconds
        return super().__eq__(other)

    def _store(self, index: int, value: Any) -> None:
        self.seconds[index] = seconds_of_one(value)

    def _add(self, value: Any) -> None:
        self.seconds.append(seconds_of_one(value))

    def _kept(self, positions: set[int]) -> TimeColumn:
        return TimeColumn(array("I", (v for i, v in enumerate(self.seconds) if i not in positions)))


class NumberColumn(EncodedColumn):
    """Ids or counts: reads as ints, kept as the 64-bit ``array`` they were stored as (:attr:`numbers`)."""

    def __init__(self, numbers: array[int]) -> None:
        super().__init__()
        self.numbers = numbers

    def _decode(self) -> list[Any]:
        return self.numbers.tolist()

    def __len__(self) -> int:
        return len(self.numbers)

    def _store(self, index: int, value: Any) -> None:
        if type(value) is not int:  # an array would take a bool as 0/1
            raise TypeError(f"{value!r} is not an int")
        self.numbers[index] = value

    def _add(self, value: Any) -> None:
        if type(value) is not int:
            raise TypeError(f"{value!r} is not an int")
        self.numbers.append(value)

    def _kept(self, positions: set[int]) -> NumberColumn:
        return NumberColumn(array(self.numbers.typecode, (v for i, v in enumerate(self.numbers)
                                                          if i not in positions)))


class CodeColumn(EncodedColumn):
    """A low-cardinality column (language, source): reads as its values, kept as codes into a table.

    :meth:`counts` counts users per value from the codes alone.
    """

    def __init__(self, names: list[Any], codes: array[int]) -> None:
        super().__init__()
        self.names = names
        self.codes = codes

    def _decode(self) -> list[Any]:
        return list(map(self.names.__getitem__, self.codes))

    def __len__(self) -> int:
        return len(self.codes)

    def counts(self) -> dict[Any, int]:
        """Value -> how many users hold it (values nobody holds left out)."""
        codes = self.codes
        if codes.typecode == "B" and len(self.names) <= _COUNT_BY_BYTE_MAX:
            data = codes.tobytes()  # one C-level count per value: no Python object per user
            found = {name: data.count(code) for code, name in enumerate(self.names)}
        else:
            found = {self.names[code]: n for code, n in Counter(codes).items()}
        return {name: n for name, n in found.items() if n}

    def _code(self, value: Any) -> int:
        """The code of ``value``, added to the table if new (codes widened if they no longer fit)."""
        try:
            return self.names.index(value)
        except ValueError:
            self.names.append(value)
        if len(self.names) > 1 << (8 * self.codes.itemsize) and self.codes.typecode != "I":
            self.codes = array("I", self.codes)
        return len(self.names) - 1

    def _store(self, index: int, value: Any) -> None:
        self.codes[index] = self._code(value)

    def _add(self, value: Any) -> None:
        self.codes.append(self._code(value))

    def _kept(self, positions: set[int]) -> CodeColumn:
        kept = (v for i, v in enumerate(self.codes) if i not in positions)
        return CodeColumn(list(self.names), array(self.codes.typecode, kept))


class FlagColumn(EncodedColumn):
    """A column of flags (``blocked``, ``is_premium``): reads as its values, kept as one byte each.

    Byte ``b`` stands for ``meaning[b]`` (``(False, True)``, or ``(False,
    True, None)`` for a flag that may be unknown); :meth:`count` is C-level.
    """

    def __init__(self, data: bytearray, meaning: tuple[bool | None, ...]) -> None:
        super().__init__()
        self.data = data
        self.meaning = meaning

    def _decode(self) -> list[Any]:
        return list(map(self.meaning.__getitem__, self.data))

    def __len__(self) -> int:
        return len(self.data)

    def count(self, value: Any) -> int:
        """How many users hold exactly ``value`` (``True``, ``False`` or ``None``): one C-level pass."""
        for byte, meant in enumerate(self.meaning):
            if meant is value:
                return self.data.count(byte)
        return 0

    def _byte(self, value: Any) -> int:
        for byte, meant in enumerate(self.meaning):
            if meant is value:
                return byte
        raise ValueError(f"{value!r} is not a flag value")

    def _store(self, index: int, value: Any) -> None:
        self.data[index] = self._byte(value)

    def _add(self, value: Any) -> None:
        self.data.append(self._byte(value))

    def _kept(self, positions: set[int]) -> FlagColumn:
        return FlagColumn(bytearray(v for i, v in enumerate(self.data) if i not in positions), self.meaning)


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
            self._bytes.extend(map(_BOOLS.index, values))
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


def _only(data: bytes, allowed: int) -> bool:
    """Whether every byte of ``data`` is below ``allowed`` (a C-level pass, no int per byte)."""
    return not data.translate(None, bytes(range(allowed)))


def decode(kind: Kind, table: bytes, data: bytes, count: int) -> list[Any] | EncodedColumn:
    """One stored column back as values; ``ValueError`` when it is malformed.

    Numbers, flags, codes and timestamps come as an :class:`EncodedColumn`
    (their values made on first use), JSON as a list.
    """
    if kind is Kind.JSON:
        values = orjson.loads(data)
        if type(values) is not list:
            raise ValueError("column is not a list")
        return values
    if kind is Kind.BOOL or kind is Kind.TRI:
        meaning = _BOOLS if kind is Kind.BOOL else _TRI
        if len(data) != count or not _only(data, len(meaning)):
            raise ValueError("malformed flags")
        return FlagColumn(bytearray(data), meaning)
    if kind is Kind.CODE:
        names = orjson.loads(table)
        if type(names) is not list or not count:
            return _codes(names, data, count)
        typecode = "B" if len(names) <= 256 else "H" if len(names) <= 65536 else "I"
        codes = array(typecode)
        codes.frombytes(data)
        if len(codes) != count or (typecode == "B" and not _only(data, len(names))):
            raise ValueError("malformed codes")
        if typecode != "B" and max(codes) >= len(names):
            raise ValueError("malformed codes")
        return CodeColumn(names, codes)
    numbers = array("q" if kind is Kind.INT else "Q" if kind is Kind.COUNT else "I")
    numbers.frombytes(data)
    if len(numbers) != count:
        raise ValueError("column has the wrong length")
    if kind is Kind.TIME:
        return TimeColumn(numbers)
    # Counts fit in 63 bits: the top byte of each little-endian uint64 is below 0x80.
    if kind is Kind.COUNT and not _only(data[7::8] if _LITTLE else data[0::8], 0x80):
        raise ValueError("count out of range")
    return NumberColumn(numbers)


def _codes(names: Any, data: bytes, count: int) -> list[Any]:
    if type(names) is not list or data or count:
        raise ValueError("malformed codes")
    return []
