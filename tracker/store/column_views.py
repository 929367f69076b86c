"""The column cache's columns as readers get them: values kept in their stored form until asked for.

Making a Python object per user is most of the cost of reading the column
cache, and of counting over it. So :func:`decode` turns a stored column into
an :class:`EncodedColumn` that reads like a list of its values (made once, on
first use) while ``tracker.stats`` counts on the stored form itself: timestamps
as uint32 seconds (:class:`TimeColumn`: ~0.35 s per million to turn back into
text), languages and sources as codes into a table (:class:`CodeColumn`), flags
as bytes (:class:`FlagColumn`), ids and counts as 64-bit arrays
(:class:`NumberColumn`). The stored forms themselves are :mod:`.column_codec`'s.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from typing import Any, overload

import orjson

from tracker.store.column_codec import BOOLS, LITTLE_ENDIAN, TRI, Kind, only_below, seconds_of, texts_of

#: Up to this many distinct values, one ``bytes.count`` per value beats a ``Counter`` over every user.
_COUNT_BY_BYTE_MAX = 32


class EncodedColumn(Sequence[Any]):
    """A column that reads like a list of its values but is kept in its stored form until one is asked for.

    Making a Python object per user is most of the cost of reading the
    column cache (and of counting over it): ``stats`` counts on the stored
    form (:class:`TimeColumn` seconds, :class:`CodeColumn` codes,
    :class:`FlagColumn` bytes, :class:`NumberColumn` numbers); everyone else
    gets the values, made once on first use. Applying a journal changes many
    rows at once (:meth:`assign`, :meth:`extend`: one conversion per batch),
    all or nothing: a value the stored form cannot hold raises and changes
    nothing. Subclasses say how the stored form turns into values
    (:meth:`_decode`), how values turn into it (:meth:`_encode`), where it is
    (:meth:`_stored`) and how rows are dropped (:meth:`without`).
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

    def _encode(self, values: list[Any]) -> Sequence[int]:
        """``values`` in the stored form; raises (ValueError, TypeError, ...) for one it cannot hold."""
        raise NotImplementedError

    def _stored(self) -> MutableSequence[int]:
        raise NotImplementedError

    def without(self, positions: set[int]) -> EncodedColumn:
        """A copy without the values at ``positions``."""
        raise NotImplementedError

    def assign(self, positions: list[int], values: list[Any]) -> None:
        """``self[p] = v`` for each pair, all or nothing."""
        stored, encoded = self._stored(), self._encode(values)
        for position, value in zip(positions, encoded, strict=True):
            stored[position] = value
        if self._values is not None:
            for position, value in zip(positions, values, strict=True):
                self._values[position] = value

    def extend(self, values: list[Any]) -> None:
        """Append ``values``, all or nothing."""
        encoded = self._encode(values)
        self._stored().extend(encoded)
        if self._values is not None:
            self._values.extend(values)

    def __setitem__(self, index: int, value: Any) -> None:
        self.assign([index], [value])

    def append(self, value: Any) -> None:
        self.extend([value])

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        return self.values()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values())

    def __len__(self) -> int:
        return len(self._stored())

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


def _kept(stored: Iterable[int], positions: set[int]) -> Iterator[int]:
    return (value for i, value in enumerate(stored) if i not in positions)


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

    def _encode(self, values: list[Any]) -> Sequence[int]:
        return seconds_of(values)

    def _stored(self) -> MutableSequence[int]:
        return self.seconds

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

    def without(self, positions: set[int]) -> TimeColumn:
        return TimeColumn(array("I", _kept(self.seconds, positions)))


class NumberColumn(EncodedColumn):
    """Ids or counts: reads as ints, kept as the 64-bit ``array`` they were stored as (:attr:`numbers`)."""

    def __init__(self, numbers: array[int]) -> None:
        super().__init__()
        self.numbers = numbers

    def _decode(self) -> list[Any]:
        return self.numbers.tolist()

    def _encode(self, values: list[Any]) -> Sequence[int]:
        if not set(map(type, values)) <= {int}:  # an array would take a bool as 0/1
            raise TypeError("not all ints")
        return array(self.numbers.typecode, values)  # OverflowError: out of range

    def _stored(self) -> MutableSequence[int]:
        return self.numbers

    def without(self, positions: set[int]) -> NumberColumn:
        return NumberColumn(array(self.numbers.typecode, _kept(self.numbers, positions)))


class CodeColumn(EncodedColumn):
    """A low-cardinality column (language, source): reads as its values, kept as codes into a table.

    :meth:`counts` counts users per value from the codes alone. A new value
    joins the table (the codes widened when they no longer fit a byte).
    """

    def __init__(self, names: list[Any], codes: array[int]) -> None:
        super().__init__()
        self.names = names
        self.codes = codes

    def _decode(self) -> list[Any]:
        return list(map(self.names.__getitem__, self.codes))

    def counts(self) -> dict[Any, int]:
        """Value -> how many users hold it (values nobody holds left out)."""
        codes = self.codes
        if codes.typecode == "B" and len(self.names) <= _COUNT_BY_BYTE_MAX:
            data = codes.tobytes()  # one C-level count per value: no Python object per user
            found = {name: data.count(code) for code, name in enumerate(self.names)}
        else:
            found = {self.names[code]: n for code, n in Counter(codes).items()}
        return {name: n for name, n in found.items() if n}

    def _encode(self, values: list[Any]) -> Sequence[int]:
        names = self.names
        code_of = {name: code for code, name in enumerate(names)}
        for value in values:  # TypeError: an unhashable value cannot be a code
            if value not in code_of:
                code_of[value] = len(names)
                names.append(value)
        if len(names) > 1 << (8 * self.codes.itemsize) and self.codes.typecode != "I":
            self.codes = array("I", self.codes)
        return list(map(code_of.__getitem__, values))

    def _stored(self) -> MutableSequence[int]:
        return self.codes

    def without(self, positions: set[int]) -> CodeColumn:
        return CodeColumn(list(self.names), array(self.codes.typecode, _kept(self.codes, positions)))


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

    def count(self, value: Any) -> int:
        """How many users hold exactly ``value`` (``True``, ``False`` or ``None``): one C-level pass."""
        for byte, meant in enumerate(self.meaning):
            if meant is value:
                return self.data.count(byte)
        return 0

    def _encode(self, values: list[Any]) -> Sequence[int]:
        # By identity: 1 == True, but a 1 is not a flag.
        byte_of = {id(meant): byte for byte, meant in enumerate(self.meaning)}
        return [byte_of[id(value)] for value in values]  # KeyError: not a flag value

    def _stored(self) -> MutableSequence[int]:
        return self.data

    def without(self, positions: set[int]) -> FlagColumn:
        return FlagColumn(bytearray(_kept(self.data, positions)), self.meaning)


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
        meaning = BOOLS if kind is Kind.BOOL else TRI
        if len(data) != count or not only_below(data, len(meaning)):
            raise ValueError("malformed flags")
        return FlagColumn(bytearray(data), meaning)
    if kind is Kind.CODE:
        names = orjson.loads(table)
        if type(names) is not list or not count:
            return _codes(names, data, count)
        typecode = "B" if len(names) <= 256 else "H" if len(names) <= 65536 else "I"
        codes = array(typecode)
        codes.frombytes(data)
        if len(codes) != count or (typecode == "B" and not only_below(data, len(names))):
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
    if kind is Kind.COUNT and not only_below(data[7::8] if LITTLE_ENDIAN else data[0::8], 0x80):
        raise ValueError("count out of range")
    return NumberColumn(numbers)


def _codes(names: Any, data: bytes, count: int) -> list[Any]:
    if type(names) is not list or data or count:
        raise ValueError("malformed codes")
    return []
