"""The column cache: the store's users as one JSON array per field.

Parsing a million JSON objects takes seconds; the same data as one array per
field parses several times faster, and a reader can skip the fields it does
not need. The writer leaves ``<store>.columns`` beside the store after each
snapshot. It is a cache, not a source of truth: not fsynced, tied to the exact
store file it was made from, and readers fall back to the store file whenever
it is missing, torn or stale. Shaped like tinydb's ``Storage``: ``read`` and
``write``, plus ``apply`` for the journal written since.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from tracker.files import NotRegularFileError, atomic_write, open_regular, unlink_quietly
from tracker.models import RECORD_FIELDS, Record
from tracker.store.errors import file_error
from tracker.store.format import file_identity, no_cyclic_gc
from tracker.store.journal import Effect
from tracker.store.validate import column_problem

log = logging.getLogger(__name__)

Columns = dict[str, list[Any]]

# The fields a whole-store count needs come first, so a reader that wants only
# those stops reading early.
_COUNTED_FIELDS = ("id", "first_seen", "last_seen", "messages", "blocked", "language_code", "source")
COLUMN_ORDER: tuple[str, ...] = (
    *_COUNTED_FIELDS,
    *(name for name in RECORD_FIELDS if name not in _COUNTED_FIELDS),
)
_END = b'"end"\n'


class StaleColumnsError(ValueError):
    """The column file cannot be trusted for this store (missing, torn, stale, malformed)."""


def columns_path(store_path: Path) -> Path:
    """Where the column file of the store at ``store_path`` lives."""
    return store_path.with_name(store_path.name + ".columns")


class ColumnCollector:
    """Builds the columns of a snapshot while its chunks are serialised."""

    def __init__(self) -> None:
        self.columns: Columns = {name: [] for name in COLUMN_ORDER}
        self._getters = [(self.columns[name].extend, itemgetter(name)) for name in COLUMN_ORDER]

    def add(self, records: list[Record]) -> None:
        for extend, get in self._getters:
            extend(map(get, records))


class ColumnCache:
    """``read``/``write`` the column file of one store."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.path = columns_path(store_path)

    def write(self, columns: Columns, gen: int, store_id: str | None) -> None:
        """Write the column file for the snapshot of generation ``gen`` just written."""
        try:
            # The store file's identity ties this file to the snapshot it was made
            # from: a store file replaced or edited since then no longer matches.
            header = {
                "gen": gen,
                "store_id": store_id,
                "count": len(columns["id"]),
                "fields": list(columns),
                "store": file_identity(self.store_path),
            }
            with atomic_write(self.path, durable=False) as out:
                out.write(orjson.dumps(header) + b"\n")
                for values in columns.values():
                    out.write(orjson.dumps(values) + b"\n")
                out.write(_END)
        except (OSError, TypeError) as exc:
            unlink_quietly(self.path)  # better none than a stale one
            log.warning("cannot write column file %s: %s", self.path, exc)

    def read(self, wanted: Collection[str]) -> tuple[tuple[Columns, str | None], int]:
        """``((columns, store id), generation)``; :class:`StaleColumnsError` if they cannot be trusted."""
        try:
            fd = open_regular(self.path, os.O_RDONLY, follow=True)
        except NotRegularFileError as exc:
            raise file_error("read column file", self.path, exc) from None
        except OSError as exc:
            raise StaleColumnsError(f"column file {self.path}: {exc}") from None
        with os.fdopen(fd, "rb") as fh, no_cyclic_gc():
            try:
                return self._parse(fh, set(wanted))
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                raise StaleColumnsError(f"column file {self.path}: {exc}") from None

    def _parse(self, fh: Any, wanted: set[str]) -> tuple[tuple[Columns, str | None], int]:
        # A reader may stop before the last column: the end mark proves the
        # file is whole (it was not fsynced, so a crash can leave it torn).
        fh.seek(-len(_END), os.SEEK_END)
        if fh.read() != _END:
            raise ValueError("torn column file")
        fh.seek(0)
        header = orjson.loads(fh.readline())
        if header["store"] != file_identity(self.store_path):
            raise ValueError("column file does not match the store file")
        count = header["count"]
        columns: Columns = {}
        for name in header["fields"]:
            if wanted <= columns.keys():
                break  # the rest of the file is fields nobody asked for
            line = fh.readline()
            if not line.endswith(b"\n"):
                raise ValueError("torn column file")
            if name in wanted:
                values = orjson.loads(line)
                if not isinstance(values, list) or len(values) != count:
                    raise ValueError("malformed column")
                problem = column_problem(name, values)
                if problem is not None:
                    raise ValueError(problem)
                columns[name] = values
        if not wanted <= columns.keys():
            raise ValueError("column file lacks fields")
        gen, store_id = header["gen"], header.get("store_id")
        if type(gen) is not int or not (store_id is None or type(store_id) is str):
            raise ValueError("malformed header")
        return (columns, store_id), gen


def apply_to_columns(effect: Effect, columns: Columns) -> None:
    """Apply a journal :class:`Effect` to columns (in place), as ``apply_to_records`` does to records."""
    if not effect.records and not effect.touches:
        return
    records = dict(effect.records)
    affected = records.keys() | effect.touches.keys()
    positions = [(i, user_id) for i, user_id in enumerate(columns["id"]) if user_id in affected]
    deleted: set[int] = set()
    for position, user_id in positions:
        if user_id in effect.touches:
            last_seen, messages = effect.touches[user_id]
            if "last_seen" in columns:
                columns["last_seen"][position] = last_seen
            if "messages" in columns:
                columns["messages"][position] = messages
            continue
        record = records.pop(user_id)
        if record is None:
            deleted.add(position)
        else:
            for name, values in columns.items():
                values[position] = record.get(name)
    if deleted:
        for name, values in columns.items():
            columns[name] = [v for i, v in enumerate(values) if i not in deleted]
    for record in records.values():  # users new since the column file
        if record is not None:
            for name, values in columns.items():
                values.append(record.get(name))
