"""The audience history's TinyDB tables: their shapes, doc ids, and validation.

Persistence (TinyDB tables of their own; doc ids are integer strings):

- ``history``: doc ``"1"`` = ``{"since": "YYYY-MM-DD", "since_at": TIMESTAMP,
  "timezone": ZONE}`` (``since``: the first local day recorded with this feature).
- ``history_day``, ``history_week``, ``history_month``: doc id = the period's first
  day as ``YYYYMMDD``; doc = ``{"period": "YYYY-MM-DD", "new", "active", "messages",
  "commands": {"/start": n, ...}, "buttons", "blocks", "unblocks"}``.
- ``retention_day``, ``retention_week``, ``retention_month``: one doc per (cohort,
  k) cell, doc id = ``YYYYMMDD * 1000 + k`` of the cohort's first day; doc =
  ``{"cohort": "YYYY-MM-DD", "after": k, "active": n}``: how many users first seen
  in the cohort were active ``k`` periods after it (``k == 0``: the cohort's size).
  Cells are small and separate so that the journal carries only the cells that
  changed, not a whole cohort's row every second; absent cells are zero.

:func:`load_tables` checks stored tables against these shapes (a hand-edited or
damaged file must give one clear line, not a traceback in the writer).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

from tracker.periods import Grain

#: Distinct command names counted per period; the rest go under :data:`OTHER_COMMANDS`.
MAX_COMMANDS: Final = 50
OTHER_COMMANDS: Final = "other"

INFO_TABLE: Final = "history"
INFO_DOC_ID: Final = "1"

#: Every table of the history, in a stable order.
TABLES: Final = (
    INFO_TABLE,
    *(g.history_table for g in Grain),
    *(g.retention_table for g in Grain),
)

#: The plain counters of a history document (``commands`` is the one object).
COUNTERS: Final = ("new", "active", "messages", "buttons", "blocks", "unblocks")

Document = dict[str, Any]
Tables = dict[str, dict[str, Document]]


def period_doc_id(start: date) -> str:
    """The doc id of the period starting on ``start``: ``YYYYMMDD``."""
    return f"{start.year:04d}{start.month:02d}{start.day:02d}"


def cell_id(cohort: date, after: int) -> int:
    """The doc id (as a number) of the retention cell ``after`` periods past ``cohort``."""
    return int(period_doc_id(cohort)) * 1000 + after


def cell_doc(cell: int, active: int) -> Document:
    """The retention document of cell id ``cell``."""
    cohort = date(cell // 10**7, cell // 10**5 % 100, cell // 1000 % 100)
    return {"cohort": cohort.isoformat(), "after": cell % 1000, "active": active}


def empty_period(start: date) -> Document:
    """A history document with every counter at zero."""
    return {
        "period": start.isoformat(),
        "new": 0,
        "active": 0,
        "messages": 0,
        "commands": {},
        "buttons": 0,
        "blocks": 0,
        "unblocks": 0,
    }


def add_command(commands: dict[str, int], name: str, times: int = 1) -> None:
    """Count ``name`` ``times`` in a period's commands, under "other" once the period holds enough names."""
    if name not in commands and len(commands) - (OTHER_COMMANDS in commands) >= MAX_COMMANDS:
        name = OTHER_COMMANDS
    commands[name] = commands.get(name, 0) + times


def copy_doc(doc: Document) -> Document:
    """A copy of a history or info document that shares nothing mutable with it."""
    copy = dict(doc)
    if "commands" in copy:
        copy["commands"] = dict(copy["commands"])
    return copy


class LoadedTables(NamedTuple):
    """Stored history tables, checked: what a keeper continues from."""

    info: Document
    #: history table name -> doc id -> document
    history: Tables
    #: grain -> cell id -> active
    cells: dict[Grain, dict[int, int]]

    def timezone(self, default: ZoneInfo) -> ZoneInfo:
        """The recorded zone (periods already recorded are in it), else ``default``."""
        name = self.info.get("timezone")
        if not name:
            return default
        try:
            return ZoneInfo(name)
        except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"table {INFO_TABLE!r}: unknown timezone {name!r}") from exc


def load_tables(tables: Mapping[str, Mapping[str, Any]]) -> LoadedTables:
    """Check stored tables (missing ones: empty); ValueError (one line) on a wrong shape."""
    loaded = LoadedTables(_check_info(tables.get(INFO_TABLE, {})), {}, {})
    for grain in Grain:
        loaded.history[grain.history_table] = {
            doc_id: _check_period(grain.history_table, doc_id, doc)
            for doc_id, doc in _docs(tables, grain.history_table)
        }
        loaded.cells[grain] = {
            int(doc_id): _check_cell(grain.retention_table, doc_id, doc)
            for doc_id, doc in _docs(tables, grain.retention_table)
        }
    loaded.timezone(ZoneInfo("UTC"))  # an unknown zone is a wrong shape too: say so now
    return loaded


def _docs(tables: Mapping[str, Any], name: str) -> Iterator[tuple[str, Any]]:
    docs = tables.get(name, {})
    if not isinstance(docs, Mapping):
        raise ValueError(f"table {name!r} is not an object of documents")
    for doc_id, doc in docs.items():
        if not isinstance(doc_id, str) or not doc_id.isdigit() or not isinstance(doc, Mapping):
            raise ValueError(f"table {name!r}: document {doc_id!r} is not a document with an integer id")
        yield doc_id, doc


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _period_date(table: str, doc_id: str, text: Any) -> date:
    try:
        day = date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"table {table!r}: document {doc_id}: {text!r} is not a YYYY-MM-DD date") from None
    return day


def _check_info(docs: Any) -> Document:
    if not isinstance(docs, Mapping):
        raise ValueError(f"table {INFO_TABLE!r} is not an object of documents")
    doc = docs.get(INFO_DOC_ID)
    if doc is None:
        return {}
    if not isinstance(doc, Mapping) or not all(
        isinstance(doc.get(k), str) for k in ("since", "since_at", "timezone")
    ):
        raise ValueError(f"table {INFO_TABLE!r}: document 1 needs text 'since', 'since_at' and 'timezone'")
    _period_date(INFO_TABLE, INFO_DOC_ID, doc["since"])
    return dict(doc)


def _check_period(table: str, doc_id: str, doc: Mapping[str, Any]) -> Document:
    start = _period_date(table, doc_id, doc.get("period"))
    if period_doc_id(start) != doc_id:
        raise ValueError(f"table {table!r}: document {doc_id} holds period {doc.get('period')!r}")
    checked = empty_period(start)
    for key in COUNTERS:
        value = doc.get(key, 0)
        if not _count(value):
            raise ValueError(f"table {table!r}: document {doc_id}: {key!r} is not a count")
        checked[key] = value
    commands = doc.get("commands", {})
    if not isinstance(commands, Mapping) or not all(
        isinstance(k, str) and _count(v) for k, v in commands.items()
    ):
        raise ValueError(f"table {table!r}: document {doc_id}: 'commands' is not an object of counts")
    checked["commands"] = dict(commands)
    return checked


def _check_cell(table: str, doc_id: str, doc: Mapping[str, Any]) -> int:
    cohort = _period_date(table, doc_id, doc.get("cohort"))
    after: Any = doc.get("after")
    active: Any = doc.get("active")
    if not (_count(after) and _count(active)) or after > 999 or str(cell_id(cohort, after)) != doc_id:
        raise ValueError(f"table {table!r}: document {doc_id} is not a retention cell")
    return int(active)
