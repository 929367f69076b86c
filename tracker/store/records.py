"""The writer's pending changes, and how they become one journal batch."""

from __future__ import annotations

from typing import Any, NamedTuple

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
        self, table: UserTable, meta: dict[str, Any], crc_start: int, history: HistoryDocs
    ) -> tuple[bytes, Taken]:
        """Serialise the pending changes (and ``history``, the keeper's) as one journal batch; start afresh.

        Each kind of change is one orjson call over a list: far cheaper than a
        call per record. The :class:`Taken` goes back with :meth:`put_back` if
        the batch cannot be written.
        """
        if self.history:  # put back earlier: older than what the keeper just gave
            history = _merged(self.history, history)
        taken = Taken(self.changed, self.touched, self.meta, history)
        self.changed, self.touched, self.meta, self.history = set(), set(), False, {}
        changes: list[Change] = []
        if taken.changed:
            upserts = [record for i in taken.changed if (record := table.get(i)) is not None]
            deletes = [i for i in taken.changed if i not in table]
            if upserts:
                changes.append(Upsert(upserts))
            if deletes:
                changes.append(Delete(deletes))
        touches = table.touches(taken.touched - taken.changed)
        if touches:
            changes.append(Touch(touches))
        if taken.meta:
            changes.append(MetaChange(meta))
        if history:
            changes.append(HistoryChange(history))
        return encode_batch(changes, crc_start), taken

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
