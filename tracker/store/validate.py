"""What a well-formed record, touch and column look like: one place checks every file.

A line or record that parses but has the wrong shape (a string where a count
belongs, a float id, a timestamp in another format, an extra field nested
deeper than the JSON encoder can write back) would otherwise fail later and
forever: in ``seen()``, in a snapshot, in ``stats``. So each file is checked
when it is read, and the problem is reported in words naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from tracker.models import RECORD_FIELDS, Record

#: Telegram ids fit in 64 bits; orjson writes nothing wider.
_ID_MIN, _ID_MAX = -(2**63), 2**63 - 1
_NONE = type(None)
#: Byte offset -> separator in ``YYYY-MM-DDTHH:MM:SSZ``; the other 14 are digits.
_SEPARATORS = ((4, ord("-")), (7, ord("-")), (10, ord("T")), (13, ord(":")), (16, ord(":")), (19, ord("Z")))


# Every check works on a whole column (one field of many records) with only
# C-level loops (type sets, min/max, bytes counting): a million records are
# checked in about a second, where a Python loop per value took several.


def _ids(values: list[Any]) -> bool:
    return not values or _ID_MIN <= min(values) <= max(values) <= _ID_MAX


def _counts(values: list[Any]) -> bool:
    return not values or 0 <= min(values) <= max(values) <= _ID_MAX


def _timestamps(values: list[Any]) -> bool:
    """Every value null or exactly ``YYYY-MM-DDTHH:MM:SSZ`` (ASCII digits); types already checked."""
    present = [value for value in values if value is not None]
    text = "".join(present)
    count = len(present)
    if len(text) != 20 * count or not text.isascii():
        return False
    data = text.encode("ascii")
    if any(data[offset::20].count(separator) != count for offset, separator in _SEPARATORS):
        return False
    digits = data.translate(None, b"-T:Z")
    return len(digits) == 14 * count and (not digits or digits.isdigit())


class FieldRule(NamedTuple):
    """What a field's values may be: their types, a check of their values, and both in words."""

    kinds: frozenset[type]
    values: Callable[[list[Any]], bool] | None
    want: str

    def accepts(self, column: list[Any]) -> bool:
        return set(map(type, column)) <= self.kinds and (self.values is None or self.values(column))


_TEXT = FieldRule(frozenset({str, _NONE}), None, "text or null")
_BOOL = FieldRule(frozenset({bool}), None, "true or false")
_WHEN = FieldRule(frozenset({str, _NONE}), _timestamps, "a YYYY-MM-DDTHH:MM:SSZ timestamp or null")

#: Field -> the rule its values follow, in :data:`RECORD_FIELDS` order.
FIELD_RULES: dict[str, FieldRule] = {
    "id": FieldRule(frozenset({int}), _ids, "an integer within 64 bits"),
    "first_name": _TEXT,
    "last_name": _TEXT,
    "username": _TEXT,
    "language_code": _TEXT,
    "is_bot": _BOOL,
    "is_premium": FieldRule(frozenset({bool, _NONE}), None, "true, false or null"),
    "first_seen": _WHEN,
    "last_seen": _WHEN,
    "messages": FieldRule(frozenset({int}), _counts, "a whole number"),
    "source": _TEXT,
    "blocked": _BOOL,
    "blocked_at": _WHEN,
}
if tuple(FIELD_RULES) != RECORD_FIELDS:
    raise ImportError("validate.FIELD_RULES is out of step with models.RECORD_FIELDS")
_ROW = itemgetter(*RECORD_FIELDS)
_VALUE_CHECKED = [(position, rule) for position, rule in enumerate(FIELD_RULES.values()) if rule.values]


def is_id(value: Any) -> bool:
    return FIELD_RULES["id"].accepts([value])


def is_count(value: Any) -> bool:
    return FIELD_RULES["messages"].accepts([value])


def is_timestamp(value: Any) -> bool:
    return value is not None and _WHEN.accepts([value])


def show(value: Any) -> str:
    """A short rendering of a bad value for an error message (one line, bounded)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def writable(value: Any) -> bool:
    """Whether the JSON encoder can write ``value`` back (depth, integer width, text)."""
    try:
        orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return False
    return True


def record_problem(record: Any, *, complete: bool) -> str | None:
    """What is wrong with one record, in words, or None. ``complete``: every field must be there."""
    if type(record) is not dict:
        return "is not an object"
    present = 0
    for name, rule in FIELD_RULES.items():
        if name in record:
            present += 1
            if not rule.accepts([record[name]]):
                return f"field {name!r} is {show(record[name])}, not {rule.want}"
        elif complete:
            return f"has no field {name!r}"
    if len(record) > present:  # extra fields: kept as they are, so they must be writable
        for name in record.keys() - FIELD_RULES.keys():
            if not writable(record[name]):
                return f"field {show(name)} cannot be written back (nested too deep or too large)"
    return None


def records_look_right(records: list[Record]) -> bool:
    """Whether all these complete records are well-formed (fast; :func:`record_problem` says why not)."""
    # One tuple of values per record (one visit to each scattered dict), then
    # the distinct type signatures (a handful) and the value-checked columns.
    rows = list(map(_ROW, records))
    signatures = set(map(tuple, map(map, repeat(type), rows)))
    kinds = [rule.kinds for rule in FIELD_RULES.values()]
    for signature in signatures:
        if not all(map(frozenset.__contains__, kinds, signature)):
            return False
    for position, rule in _VALUE_CHECKED:
        if rule.values is not None and not rule.values(list(map(itemgetter(position), rows))):
            return False
    if not records or max(map(len, records)) <= len(FIELD_RULES):  # the norm: no extra fields
        return True
    with_extras = [record for record in records if len(record) > len(FIELD_RULES)]
    return all(record_problem(record, complete=True) is None for record in with_extras)


def touch_problem(touch: Any) -> str | None:
    """What is wrong with a ``[id, last_seen, messages]`` touch, or None."""
    if type(touch) is not list or len(touch) != 3:
        return f"touch {show(touch)} is not [id, last_seen, messages]"
    user_id, last_seen, messages = touch
    if not (is_id(user_id) and is_timestamp(last_seen) and is_count(messages)):
        return f"touch {show(touch)} has a value of the wrong type"
    return None


def column_problem(name: str, values: list[Any]) -> str | None:
    """What is wrong with a column of the column cache, or None."""
    rule = FIELD_RULES.get(name)
    if rule is None:
        return f"unknown column {show(name)}"
    if rule.accepts(values):
        return None
    bad = next(value for value in values if not rule.accepts([value]))
    return f"column {name!r} holds {show(bad)}, not {rule.want}"
