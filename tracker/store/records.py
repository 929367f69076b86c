"""The writer's pending changes, and how they become one journal batch."""

from __future__ import annotations

from typing import Any, NamedTuple

from tracker.models import Record
from tracker.store.copies import TouchValues
from tracker.store.journal import Change, Delete, HistoryChange, MetaChange, Touch, Upsert, encode_batch
from tracker.store.table import UserTable

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
    """The values of one journal batch, read from the table after the changes were taken.

    Read without the store's lock (:meth:`of`), so ``seen()`` callers never wait
    for it: a value read while a ``seen()`` is changing the same user may be
    newer than the batch or half-changed, but that ``seen()`` marks the user
    pending again when it is done, so the next batch writes the whole truth and
    replaying the journal ends with it. Rows are never reused, so a read never
    mixes two users; a user erased meanwhile reads as absent (and its erasure is
    pending too).
    """

    upserts: list[Record]
    deletes: list[int]
    touches: TouchValues
    meta: dict[str, Any] | None
    history: HistoryDocs

    @classmethod
    def of(cls, taken: Taken, table: UserTable, meta: dict[str, Any] | None) -> Copied:
        """The values of ``taken``'s changes as the table holds them now (``meta``: copied under the lock)."""
        upserts = [record for i in taken.changed if (record := table.get(i)) is not None]
        deletes = [i for i in taken.changed if i not in table]
        touches = TouchValues.of(table, taken.touched - taken.changed)
        return cls(upserts, deletes, touches, meta, taken.history)

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

    def take(self, history: HistoryDocs) -> Taken:
        """The pending changes (and ``history``, the keeper's), handed over; start afresh (under the lock).

        The :class:`Taken` goes back with :meth:`put_back` if the batch cannot be written.
        """
        if self.history:  # put back earlier: older than what the keeper just gave
            history = _merged(self.history, history)
        taken = Taken(self.changed, self.touched, self.meta, history)
        self.changed, self.touched, self.meta, self.history = set(), set(), False, {}
        return taken

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
