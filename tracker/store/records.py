"""The writer's pending changes, and how they become one journal batch."""

from __future__ import annotations

from typing import Any, NamedTuple

from tracker.models import Record
from tracker.store.journal import Change, Delete, HistoryChange, MetaChange, Touch, Upsert, encode_batch
from tracker.store.table import TouchValues, UserTable

#: Audience-history documents to journal: table -> doc id -> whole document.
HistoryDocs = dict[str, dict[str, dict[str, Any]]]


class Taken(NamedTuple):
    """Pending changes taken for one journal batch, to put back if the write fails."""

    changed: set[int]
    touched: set[int]
    meta: bool
    history: HistoryDocs

    @property
    def any(self) -> bool:
        return bool(self.changed or self.touched or self.meta or self.history)


class Copied(NamedTuple):
    """The values of one journal batch, copied under the store's lock."""

    upserts: list[Record]
    deletes: list[int]
    touches: TouchValues
    meta: dict[str, Any] | None
    history: HistoryDocs

    def encode(self, crc_start: int) -> bytes:
        """The batch's journal lines (``b""`` when empty): one orjson call per kind of change."""
        changes: list[Change] = []
        if self.upserts:
            changes.append(Upsert(self.upserts))
        if self.deletes:
            changes.append(Delete(self.deletes))
        touches = self.touches.entries()
        if touches:
            changes.append(Touch(touches))
        if self.meta is not None:
            changes.append(MetaChange(self.meta))
        if self.history:
            changes.append(HistoryChange(self.history))
        return encode_batch(changes, crc_start)


class PendingChanges:
    """What changed since the last journal batch (guarded by the store's lock).

    ``changed``: ids whose whole record (or deletion) must be written;
    ``touched``: ids that only got a new ``last_seen``/``messages``;
    ``meta``: whether the meta document changed; ``history``: history documents
    put back after a failed write (the keeper hands out each change once).
    """

    def __init__(self) -> None:
        self.changed: set[int] = set()
        self.touched: set[int] = set()
        self.meta = False
        self.history: HistoryDocs = {}

    def take(
        self, table: UserTable, meta: dict[str, Any], history: HistoryDocs
    ) -> tuple[Copied, Taken]:
        """Copy the values of the pending changes (and ``history``, the keeper's) and start afresh.

        Runs under the store's lock, so it only copies (C-level passes and one
        record per rewritten user); :meth:`Copied.encode` serialises them after
        the lock is released. The :class:`Taken` goes back with :meth:`put_back`
        if the batch cannot be written.
        """
        if self.history:  # put back earlier: older than what the keeper just gave
            history = _merged(self.history, history)
        taken = Taken(self.changed, self.touched, self.meta, history)
        self.changed, self.touched, self.meta, self.history = set(), set(), False, {}
        upserts = [record for i in taken.changed if (record := table.get(i)) is not None]
        deletes = [i for i in taken.changed if i not in table]
        touches = table.touch_values(taken.touched - taken.changed)
        copied = Copied(upserts, deletes, touches, dict(meta) if taken.meta else None, history)
        return copied, taken

    def put_back(self, taken: Taken) -> None:
        self.changed |= taken.changed
        self.touched |= taken.touched
        self.meta |= taken.meta
        self.history = _merged(taken.history, self.history)


def _merged(older: HistoryDocs, newer: HistoryDocs) -> HistoryDocs:
    """``older`` with ``newer``'s documents over it (whole documents: the newer one wins)."""
    merged = {name: dict(docs) for name, docs in older.items()}
    for name, docs in newer.items():
        merged.setdefault(name, {}).update(docs)
    return merged
