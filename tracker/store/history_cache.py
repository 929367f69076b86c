"""The history side file: the audience-history tables beside the store, small and quick to read.

The history tables live in the store file (plain TinyDB reads them there), but
``history`` and ``stats`` must not parse a million users to get a few kilobytes
of aggregates. So at each snapshot the writer also leaves ``<store>.history``:
one header line (the generation, the store id and the identity of the store
file it was written with) and one line holding the tables. Like the column
cache it is a cache, not a source of truth: not fsynced, tied to the exact store
file, and readers fall back to the store file whenever it is missing, torn or
stale. Shaped like tinydb's ``Storage``: ``read`` and ``write``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tracker.files import atomic_write
from tracker.store.format import file_identity
from tracker.store.side_file import SideFile, StaleSideFileError, side_path

HistoryTables = dict[str, dict[str, Any]]

_END = b'"end"\n'


class StaleHistoryError(StaleSideFileError):
    """The side file cannot be trusted for this store (missing, torn, stale, malformed)."""


def history_path(store_path: Path) -> Path:
    """Where the history side file of the store at ``store_path`` lives."""
    return side_path(store_path, HistoryCache.suffix)


class HistoryCache(SideFile):
    """``read``/``write`` the history side file of one store."""

    suffix = ".history"
    what = "history file"
    stale_error = StaleHistoryError

    def write(self, tables: HistoryTables, gen: int, store_id: str | None) -> None:
        """Write the side file for the snapshot of generation ``gen`` just written."""
        try:
            header = {"gen": gen, "store_id": store_id, "store": file_identity(self.store_path)}
            with atomic_write(self.path, durable=False) as out:
                out.write(orjson.dumps(header) + b"\n" + orjson.dumps(tables) + b"\n" + _END)
        except (OSError, TypeError) as exc:
            self.write_failed(exc)

    def read(self) -> tuple[tuple[HistoryTables, str | None], int]:
        """``((tables, store id), generation)``; :class:`StaleHistoryError` if they cannot be trusted."""
        with self.open_for_reading() as fh:
            data = fh.read()
        with self.trusted():
            return self._parse(data)

    def _parse(self, data: bytes) -> tuple[tuple[HistoryTables, str | None], int]:
        if not data.endswith(_END):
            raise ValueError("torn history file")
        header_line, tables_line, _end = data.split(b"\n", 2)
        header = orjson.loads(header_line)
        if header["store"] != file_identity(self.store_path):
            raise ValueError("history file does not match the store file")
        tables = orjson.loads(tables_line)
        gen, store_id = header["gen"], header.get("store_id")
        if (
            type(gen) is not int
            or not (store_id is None or type(store_id) is str)
            or type(tables) is not dict
            or not all(type(docs) is dict for docs in tables.values())
        ):
            raise ValueError("malformed history file")
        return (tables, store_id), gen
