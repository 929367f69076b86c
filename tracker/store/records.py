"""Records as the writer changes them: sightings into fields, changes into journal batches."""

from __future__ import annotations

from typing import Any, NamedTuple

from tracker.models import PROFILE_FIELDS, Profile, Record, encodable_text
from tracker.store.journal import Change, Delete, MetaChange, Touch, Upsert, encode_batch


def _text(value: str | None) -> str | None:
    return value if value is None else encodable_text(value)


def profile_values(record: Record) -> tuple[Any, ...]:
    return (
        record["first_name"],
        record["last_name"],
        record["username"],
        record["language_code"],
        record["is_bot"],
        record["is_premium"],
    )


def encodable_values(profile: Profile) -> tuple[Any, ...]:
    """The profile fields after the id, text made UTF-8 encodable."""
    first_name, last_name, username, language_code = map(_text, profile[1:5])
    return (first_name, last_name, username, language_code, profile[5], profile[6])


def new_record(profile: Profile, seen_at: str) -> Record:
    """A fresh record for a user first seen at ``seen_at`` (already formatted)."""
    fields: Record = {"id": profile[0]}
    fields.update(zip(PROFILE_FIELDS, encodable_values(profile), strict=True))
    fields.update(
        first_seen=seen_at, last_seen=seen_at, messages=0, source=None, blocked=False, blocked_at=None
    )
    return fields


class Taken(NamedTuple):
    """Pending changes taken for one journal batch, to put back if the write fails."""

    changed: set[int]
    touched: set[int]
    meta: bool


    @property
    def any(self) -> bool:
        return bool(self.changed or self.touched or self.meta)


class PendingChanges:
    """What changed since the last journal batch (guarded by the store's lock).

    ``changed``: ids whose whole record (or deletion) must be written;
    ``touched``: ids that only got a new ``last_seen``/``messages``;
    ``meta``: whether the meta document changed.
    """

    def __init__(self) -> None:
        self.changed: set[int] = set()
        self.touched: set[int] = set()
        self.meta = False

    def take(self, records: dict[int, Record], meta: dict[str, Any], crc_start: int) -> tuple[bytes, Taken]:
        """Serialise the pending changes as one journal batch and start afresh.

        Each kind of change is one orjson call over a list: far cheaper than a
        call per record. The :class:`Taken` goes back with :meth:`put_back` if
        the batch cannot be written.
        """
        taken = Taken(self.changed, self.touched, self.meta)
        self.changed, self.touched, self.meta = set(), set(), False
        changes: list[Change] = []
        if taken.changed:
            upserts = [records[i] for i in taken.changed if i in records]
            deletes = [i for i in taken.changed if i not in records]
            if upserts:
                changes.append(Upsert(upserts))
            if deletes:
                changes.append(Delete(deletes))
        touches = [
            (i, record["last_seen"], record["messages"])
            for i in taken.touched - taken.changed
            if (record := records.get(i)) is not None
        ]
        if touches:
            changes.append(Touch(touches))
        if taken.meta:
            changes.append(MetaChange(meta))
        return encode_batch(changes, crc_start), taken

    def put_back(self, taken: Taken) -> None:
        self.changed |= taken.changed
        self.touched |= taken.touched
        self.meta |= taken.meta
