"""``tracker.open_db(path)``: TinyDB's own query API over the live store, read-only.

A bot owner's code can ask the store anything TinyDB can::

    from tinydb import Query
    db = tracker.open_db("data/users.json")
    db.table("users").search(Query().language_code == "fa")

The store file alone is not the current state while the bot runs (the last
second's changes are in the journal beside it), so this is a TinyDB
:class:`~tinydb.storages.Storage` of its own, shaped like tinydb's
``storages.py``: ``read()`` returns the whole document as the store is *now*
(journal applied), ``write()`` refuses. Every query reads afresh, and the
tables of this database keep no query cache (TinyDB's cache would otherwise
answer a repeated query with the state of its first run), so a handle kept
open stays live.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from tracker.store import StoreError, StoreReader


class ReadOnlyStoreError(StoreError):
    """A write through :func:`open_db`: the bot is the store's only writer."""


class LiveStoreStorage(Storage):
    """A read-only TinyDB storage over the live store: each read sees it as it is then."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        # Raises StoreNotFoundError for a missing store: a typo must never leave an
        # empty one behind.
        self._reader = StoreReader(self.path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        """The document now (journal applied): every table, re-read at each call."""
        return self._reader.document()

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """Refused: the running bot is the store's one writer."""
        raise ReadOnlyStoreError(
            f"{self.path}: open_db() is read-only; change users through the bot or the CLI (forget)"
        )


class LiveTable(Table):
    """A table without a query cache: the store changes underneath it."""

    def __init__(self, storage: Storage, name: str, cache_size: int = 0, persist_empty: bool = False) -> None:
        # cache_size and persist_empty are ignored on purpose: a cache would go
        # stale, and persisting an empty table would be a write.
        super().__init__(storage, name, cache_size=0)


class LiveTinyDB(TinyDB):
    """A TinyDB whose tables are :class:`LiveTable`."""

    table_class = LiveTable


def open_db(path: str | os.PathLike[str]) -> TinyDB:
    """A read-only ``tinydb.TinyDB`` over the live store at ``path``.

    Queries see the store as it is when they run (journal applied, at most about a
    second behind the bot); writes raise :class:`ReadOnlyStoreError`; a missing
    store raises :class:`~tracker.store.StoreNotFoundError` (nothing is created).
    """
    return LiveTinyDB(path, storage=LiveStoreStorage)
