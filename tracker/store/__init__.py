"""UserStore: the TinyDB JSON file of users, kept in memory and made durable.

This package is the only code that knows the files. The store file is a plain
TinyDB JSON database (``TinyDB(path).table("users").get(doc_id=USER_ID)`` works),
but TinyDB's own write path rewrites the whole file in place on every write:
about half a second per update at 100k users, and a crash mid-write leaves a
torn file. So records live in memory (as columns: :mod:`.table`) and reach the
disk two ways:

* **Journal** (``<store>.journal``, :mod:`.journal`, :mod:`.journal_file`):
  every ~0.2 s a background thread appends the records changed since the last
  round as JSON lines closed by a commit line, in one ``write()``. A SIGKILL
  loses at most that round.
* **Snapshot** (the store file itself, :mod:`.format`): when the journal has
  grown, a second thread writes the whole store to a temp file in the same
  folder, fsyncs it, ``os.replace``s it over the store and fsyncs the folder,
  then drops the journal lines the snapshot covers. ``close()`` always leaves
  the store file current (a snapshot, unless nothing changed since the last
  one) and no journal, so a plain TinyDB sees everything.

The snapshot is *fuzzy*: it is serialised in chunks while ``seen()`` keeps
running, so it may mix states from different moments. That is safe because a
generation marker is written to the journal before the first chunk: every
change after the marker is journaled under the new generation, and replaying
those full-record lines on top of the snapshot yields the latest state.

The writer also keeps the audience history (:mod:`.history`: per-day, week and
month aggregates and cohort retention, O(1) per update) under the same lock; its
documents go through the journal (``"h"`` entries) and into the store file as
TinyDB tables of their own at each snapshot, plus a small side file for readers
(:mod:`.history_cache`).

One process writes (:mod:`.lock`); readers (:class:`StoreReader`) take no lock
and pair the store file with its journal by generation (:mod:`.reader`). The
disk side of the writer is :mod:`.writer`; every file is checked as it is read
(:mod:`.validate`); what a failed close could not save goes to :mod:`.rescue`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracker.store.errors import (
    StoreCorruptError,
    StoreError,
    StoreFileKindError,
    StoreLockedError,
    StoreNotFoundError,
)

if TYPE_CHECKING:
    from tracker.store.columns import COLUMN_ORDER, columns_path
    from tracker.store.format import SCHEMA
    from tracker.store.history_cache import history_path
    from tracker.store.persister import Tuning
    from tracker.store.reader import StoreReader, load_columns
    from tracker.store.user_store import UserStore

__all__ = [
    "COLUMN_ORDER",
    "SCHEMA",
    "StoreCorruptError",
    "StoreError",
    "StoreFileKindError",
    "StoreLockedError",
    "StoreNotFoundError",
    "StoreReader",
    "Tuning",
    "UserStore",
    "columns_path",
    "history_path",
    "load_columns",
]

#: Public name -> the module that defines it, imported on first use: a reader
#: (``tracker stats``) never pays for the writer's modules (threads, history,
#: locking), which is most of the CLI's start-up time after Click's.
_LAZY = {
    "COLUMN_ORDER": "tracker.store.columns",
    "columns_path": "tracker.store.columns",
    "SCHEMA": "tracker.store.format",
    "history_path": "tracker.store.history_cache",
    "Tuning": "tracker.store.persister",
    "StoreReader": "tracker.store.reader",
    "load_columns": "tracker.store.reader",
    "UserStore": "tracker.store.user_store",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    __import__(module_name)
    value = getattr(__import__("sys").modules[module_name], name)
    globals()[name] = value
    return value
