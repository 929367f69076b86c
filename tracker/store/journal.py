"""The journal format: typed entries, one encoder, one decoder, one replay fold.

A journal is JSON lines, one entry each, written by the writer in batches:

* ``["g", gen, store_id]`` — a generation marker: the changes after it are not
  in any snapshot older than ``gen`` (see ``UserStore.snapshot``); ``store_id``
  is the random id in the store's meta, so a journal from another store is refused;
* ``["u", [record, ...]]`` — whole records, inserted or replaced;
* ``["t", [[id, last_seen, messages], ...]]`` — touches: a known user wrote
  again with an unchanged profile (the common case, journaled without
  re-serialising the whole record);
* ``["d", [id, ...]]`` — deletions;
* ``["m", meta]`` — the whole meta document;
* ``["h", {table: {doc_id: doc}}]`` — audience-history documents (whole, as the
  keeper's ``take_changes`` gives them), upserted by doc id on replay;
* ``["c", crc]`` — commit: the batch above it is complete; ``crc`` is the
  CRC-32 of every byte since the previous commit line (or the start of the
  file), so damage that still parses as JSON is detected, not applied.

Lines after the last commit are a torn write (a crash mid-append) and are
ignored. Journals of older versions (``["g", gen]``, ``["c"]``) are read as long
as the store has no id either. Every reader decodes lines here (:func:`decode`) and replays them
through :func:`fold`, whether it keeps records or columns.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from tracker.models import Record
from tracker.store.errors import StoreCorruptError
from tracker.store.validate import is_id, record_problem, touch_problem, writable


class Kind(Enum):
    """The one-letter tag that starts every journal line."""

    GENERATION = "g"
    UPSERT = "u"
    TOUCH = "t"
    DELETE = "d"
    META = "m"
    HISTORY = "h"
    COMMIT = "c"


class Generation(NamedTuple):
    """Changes after this marker belong to generation ``gen`` of the store ``store_id``."""

    gen: int
    store_id: str | None = None


class Upsert(NamedTuple):
    """Whole records, inserted or replaced."""

    records: list[Record]


class Touch(NamedTuple):
    """New ``last_seen`` and ``messages`` of known users: ``(id, last_seen, messages)``."""

    touches: list[tuple[int, str, int]]


class Delete(NamedTuple):
    """Ids of erased users."""

    ids: list[int]


class MetaChange(NamedTuple):
    """The whole meta document as it is now."""

    meta: dict[str, Any]


class HistoryChange(NamedTuple):
    """Whole audience-history documents, table -> doc id -> document (an upsert each)."""

    tables: dict[str, dict[str, dict[str, Any]]]


class Commit(NamedTuple):
    """The end of a complete batch, with the CRC-32 of the bytes since the previous commit."""

    crc: int | None = None


Change = Upsert | Touch | Delete | MetaChange | HistoryChange
Entry = Generation | Change | Commit

KIND_OF: dict[type[Entry], Kind] = {
    Generation: Kind.GENERATION,
    Upsert: Kind.UPSERT,
    Touch: Kind.TOUCH,
    Delete: Kind.DELETE,
    MetaChange: Kind.META,
    HistoryChange: Kind.HISTORY,
    Commit: Kind.COMMIT,
}


def encode(entry: Entry) -> bytes:
    """One journal line (without its newline); trailing None values are left out."""
    values = list(entry)
    while values and values[-1] is None:
        values.pop()
    return orjson.dumps([KIND_OF[type(entry)].value, *values])


def encode_batch(changes: Iterable[Change], crc_start: int) -> bytes:
    """Changes as one committed batch (newline-terminated lines), or ``b""`` when there are none.

    ``crc_start`` is the CRC-32 of what the journal holds since its last commit
    line (a generation marker, usually): the commit's checksum covers it too.
    """
    body = b"".join(encode(change) + b"\n" for change in changes)
    if not body:
        return b""
    return body + encode(Commit(zlib.crc32(body, crc_start))) + b"\n"


# ------------------------------------------------------------------ decoding


class _Malformed(ValueError):
    """A line that parses as JSON but is not a journal entry (the message says why)."""


def _decode_generation(body: list[Any]) -> Generation:
    if not 1 <= len(body) <= 2 or type(body[0]) is not int or not 0 <= body[0] < 2**63:
        raise _Malformed("generation marker is not [\"g\", number, store id]")
    store_id = body[1] if len(body) == 2 else None
    if store_id is not None and (type(store_id) is not str or len(store_id) > 64):
        raise _Malformed("generation marker has a malformed store id")
    return Generation(body[0], store_id)


def _decode_upsert(body: list[Any]) -> Upsert:
    if len(body) != 1 or type(body[0]) is not list:
        raise _Malformed("upsert is not a list of records")
    for record in body[0]:
        problem = record_problem(record, complete=True)
        if problem is not None:
            raise _Malformed(f"upserted record {problem}")
    return Upsert(body[0])


def _decode_touch(body: list[Any]) -> Touch:
    if len(body) != 1 or type(body[0]) is not list:
        raise _Malformed("touch is not a list")
    for touch in body[0]:
        problem = touch_problem(touch)
        if problem is not None:
            raise _Malformed(problem)
    return Touch(body[0])


def _decode_delete(body: list[Any]) -> Delete:
    if len(body) != 1 or type(body[0]) is not list or not all(map(is_id, body[0])):
        raise _Malformed("delete is not a list of ids")
    return Delete(body[0])


def _decode_meta(body: list[Any]) -> MetaChange:
    if len(body) != 1 or type(body[0]) is not dict or not writable(body[0]):
        raise _Malformed("meta is not an object that can be written back")
    return MetaChange(body[0])


def _decode_history(body: list[Any]) -> HistoryChange:
    # The documents' own shapes are checked where they are loaded (history_tables.load_tables).
    if len(body) != 1 or type(body[0]) is not dict or not writable(body[0]):
        raise _Malformed("history is not an object of tables")
    for name, docs in body[0].items():
        if type(docs) is not dict or not all(
            type(doc_id) is str and doc_id.isdigit() and type(doc) is dict for doc_id, doc in docs.items()
        ):
            raise _Malformed(f"history table {name[:40]!r} is not an object of documents")
    return HistoryChange(body[0])


def _decode_commit(body: list[Any]) -> Commit:
    if not body:
        return Commit()
    if len(body) != 1 or type(body[0]) is not int or not 0 <= body[0] < 2**32:
        raise _Malformed("commit is not [\"c\", checksum]")
    return Commit(body[0])


#: Kind letter -> decoder of the values after it (pyrogram's
#: ``Dispatcher.update_parsers`` shape: a table, not an if/elif chain).
DECODERS: dict[str, Callable[[list[Any]], Entry]] = {
    Kind.GENERATION.value: _decode_generation,
    Kind.UPSERT.value: _decode_upsert,
    Kind.TOUCH.value: _decode_touch,
    Kind.DELETE.value: _decode_delete,
    Kind.META.value: _decode_meta,
    Kind.HISTORY.value: _decode_history,
    Kind.COMMIT.value: _decode_commit,
}


def decode(line: bytes) -> Entry:
    """One journal line as a typed entry; ``ValueError`` saying why when it is not one."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise _Malformed("not JSON") from None
    if type(value) is not list or not value or type(value[0]) is not str:
        raise _Malformed("not a journal entry")
    decoder = DECODERS.get(value[0])
    if decoder is None:
        raise _Malformed(f"unknown entry kind {value[0][:10]!r}")
    return decoder(value[1:])


def committed_changes(journal: bytes, min_gen: int, path: Path, store_id: str | None) -> Iterator[Change]:
    """The changes of the committed batches of generation >= ``min_gen``, in order.

    Every line is decoded and checked (shape, store id, batch checksum) before
    any batch is applied: :class:`StoreCorruptError` names the file and line.
    """
    lines = journal.split(b"\n")
    lines.pop()  # after the last newline: empty, or a torn write
    gen, marker_id = -1, store_id
    crc = 0  # of the bytes since the last commit line
    pending: list[Change] = []
    batches: list[list[Change]] = []
    for number, line in enumerate(lines, 1):
        try:
            entry = decode(line)
            if isinstance(entry, Generation):
                gen, marker_id = entry.gen, entry.store_id
                if marker_id != store_id:
                    raise _Malformed("it belongs to another store (its store id differs)")
            elif isinstance(entry, Commit):
                if entry.crc != crc and (entry.crc is not None or marker_id is not None):
                    raise _Malformed("batch checksum mismatch (damaged in place)")
                if gen >= min_gen:
                    batches.append(pending)
                pending, crc = [], 0
                continue
            else:
                pending.append(entry)
        except ValueError as exc:
            raise StoreCorruptError(f"journal {path} line {number} is corrupt: {exc}") from None
        crc = zlib.crc32(line + b"\n", crc)
    for batch in batches:
        yield from batch


def first_generation(journal: bytes) -> int | None:
    """The generation a journal starts at (its first line is always a marker), or None."""
    end = journal.find(b"\n")
    if end < 0:
        return None
    try:
        entry = decode(journal[:end])
    except ValueError:
        return None
    return entry.gen if isinstance(entry, Generation) else None


# -------------------------------------------------------------------- replay


class Effect:
    """What a run of changes amounts to, whatever order they came in.

    ``records``: the latest whole record of each user the changes wrote (None:
    erased); ``touches``: the latest ``(last_seen, messages)`` of other users;
    ``meta``: the latest meta document, if any; ``history``: the latest version of
    each audience-history document written (table -> doc id -> doc). Records keep
    this in a dict, the column cache in lists; both apply the same effect.
    """

    # A plain class, not a dataclass: ``dataclasses`` imports ``inspect``, start-up
    # time every CLI read would pay for one small accumulator.
    __slots__ = ("history", "meta", "records", "touches")

    def __init__(self) -> None:
        self.records: dict[int, Record | None] = {}
        self.touches: dict[int, tuple[str, int]] = {}
        self.meta: dict[str, Any] | None = None
        self.history: dict[str, dict[str, dict[str, Any]]] = {}


def _fold_upsert(effect: Effect, change: Upsert) -> None:
    for record in change.records:
        effect.records[record["id"]] = record
        effect.touches.pop(record["id"], None)


def _fold_touch(effect: Effect, change: Touch) -> None:
    for user_id, last_seen, messages in change.touches:
        if user_id in effect.records:
            record = effect.records[user_id]
            if record is not None:  # a touch after an erase: the erase wins
                record["last_seen"], record["messages"] = last_seen, messages
        else:
            effect.touches[user_id] = (last_seen, messages)


def _fold_delete(effect: Effect, change: Delete) -> None:
    for user_id in change.ids:
        effect.records[user_id] = None
        effect.touches.pop(user_id, None)


def _fold_meta(effect: Effect, change: MetaChange) -> None:
    effect.meta = change.meta


def _fold_history(effect: Effect, change: HistoryChange) -> None:
    for name, docs in change.tables.items():
        effect.history.setdefault(name, {}).update(docs)


FOLDERS: dict[type[Change], Callable[[Effect, Any], None]] = {
    Upsert: _fold_upsert,
    Touch: _fold_touch,
    Delete: _fold_delete,
    MetaChange: _fold_meta,
    HistoryChange: _fold_history,
}


def fold(changes: Iterable[Change]) -> Effect:
    """Reduce ``changes`` (in journal order) to their net :class:`Effect`."""
    effect = Effect()
    for change in changes:
        FOLDERS[type(change)](effect, change)
    return effect


def apply_to_tables(effect: Effect, tables: dict[str, Any]) -> None:
    """Upsert ``effect``'s history documents into ``tables`` (name -> doc id -> doc), in place."""
    for name, docs in effect.history.items():
        table = tables.get(name)
        if not isinstance(table, dict):
            table = tables[name] = {}
        table.update(docs)


def apply_to_records(effect: Effect, records: dict[int, Record]) -> None:
    """Apply ``effect`` to records keyed by id (in place)."""
    for user_id, record in effect.records.items():
        if record is None:
            records.pop(user_id, None)
        else:
            records[user_id] = record
    for user_id, (last_seen, messages) in effect.touches.items():
        touched = records.get(user_id)
        if touched is not None:
            touched["last_seen"], touched["messages"] = last_seen, messages
