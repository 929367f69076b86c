"""The store file: parse and check it, write it as a stream.

The store file is a plain TinyDB JSON database: ``{"users": {"<id>": record,
...}, "meta": {"1": {...}}, ...other tables}``. This module turns its bytes into
a :class:`Snapshot` (refusing anything that is not a user store, naming the file
and the problem) and writes one back, streamed in chunks so the writer never
builds the whole document in memory.
"""

from __future__ import annotations

import gc
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

import orjson

from tracker.files import atomic_write, open_regular
from tracker.models import RECORD_FIELDS, Record, complete_record
from tracker.store.errors import StoreCorruptError, StoreNotFoundError, file_error
from tracker.store.table import UserTable
from tracker.store.validate import is_id, record_problem, records_look_right, writable

if TYPE_CHECKING:  # imported where used: a reader of the column cache needs neither
    import mmap

#: The store format version this code reads and writes.
SCHEMA = 1

USERS_TABLE = "users"
META_TABLE = "meta"
META_DOC_ID = "1"
#: Meta keys the store manages itself; callers own the rest (e.g. bio_*).
JOURNAL_GEN = "journal_gen"
#: A random id given to a store when a writer first opens it: its journals carry it.
STORE_ID = "store_id"
OWN_META_KEYS = ("schema", JOURNAL_GEN, STORE_ID)
_RECORD_KEYS = frozenset(RECORD_FIELDS)
_ID = itemgetter("id")

#: Store files at least this large are parsed by the large-file path (see
#: :func:`read_store`). orjson refuses inputs near 2**31 bytes (~7.5M users),
#: and needs the whole file in memory beside its objects; msgspec has no such
#: wall, decodes straight from a memory map of the file and peaks ~40% lower.
#: Below the threshold orjson stays: it is the faster parser for small files.
LARGE_FILE_BYTES = 256 << 20
#: How a store file this code writes starts: the users table's records follow a
#: chunk per line, each line but the last ending in a comma, then a line of
#: its own starts with ``},`` and holds the other tables.
USERS_OPENING = b'{"' + USERS_TABLE.encode() + b'":{\n'


class Snapshot(NamedTuple):
    """A parsed store file."""

    records: dict[int, Record]
    meta: dict[str, Any]
    other_tables: dict[str, Any]
    gen: int  # the journal generation it covers
    size: int  # bytes


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Parsing a large store creates millions of objects; the cyclic GC would scan them repeatedly."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_store(path: Path, *, compact: bool, large_file_bytes: int = LARGE_FILE_BYTES) -> Snapshot:
    """Read and parse the store file at ``path`` (``compact``: for a long-lived writer).

    A file of ``large_file_bytes`` or more takes the large-file path: parsed by
    msgspec from a read-only memory map (no 2 GiB limit, no copy of the file
    on the heap); smaller ones are read whole and parsed by orjson. Both end
    in the same checks, so both accept and refuse exactly the same files.
    """
    try:
        with _open_store_file(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < max(large_file_bytes, 1):  # mmap refuses an empty file
                data = fh.read()
                return parse_store(data, path, compact=compact)
            import mmap

            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return parse_store(mapped, path, compact=compact, large=True)
    except OSError as exc:
        raise file_error("read store", path, exc) from None


def _open_store_file(path: Path) -> IO[bytes]:
    """The store file open for reading (a regular file; a symlink to one is followed)."""
    try:
        fd = open_regular(path, os.O_RDONLY, follow=True)
    except FileNotFoundError:
        raise StoreNotFoundError(f"no store at {path}") from None
    except OSError as exc:
        raise file_error("read store", path, exc) from None
    return os.fdopen(fd, "rb")


def _decode(data: bytes | mmap.mmap, path: Path, *, large: bool) -> Any:
    """The JSON document in ``data``; :class:`StoreCorruptError` saying why when it is not one."""
    with no_cyclic_gc():
        if isinstance(data, bytes) and not large:
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                truncated = exc.pos >= len(data.rstrip()) - 1
                problem = "truncated JSON" if truncated else f"invalid JSON ({exc})"
                raise StoreCorruptError(f"store {path} is not readable: {problem}") from None
        import msgspec  # only for large stores: its import is start-up time every CLI run would pay

        try:
            return msgspec.json.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            text = str(exc)
            problem = "truncated JSON" if "truncated" in text else f"invalid JSON ({text})"
            raise StoreCorruptError(f"store {path} is not readable: {problem}") from None


def _blank(data: bytes | mmap.mmap) -> bool:
    """Whether ``data`` holds only whitespace (an empty file is a new store); cheap for a large one."""
    head = data[:64]
    return not head.strip() and (len(data) <= 64 or not bytes(data).strip())


def parse_store(data: bytes | mmap.mmap, path: Path, *, compact: bool, large: bool = False) -> Snapshot:
    """The store file's bytes as a :class:`Snapshot`; :class:`StoreCorruptError` when it is not one.

    ``large``: parse with msgspec (the large-file path, see :func:`read_store`).
    """
    if _blank(data):
        return Snapshot({}, {"schema": SCHEMA}, {}, 0, 0)
    size = len(data)
    document = _decode(data, path, large=large)
    del data  # the parsed objects are what we keep; free the text early
    if not isinstance(document, dict):
        raise StoreCorruptError(f"store {path} is not a TinyDB database (not a JSON object)")
    if document and USERS_TABLE not in document and META_TABLE not in document:
        tables = ", ".join(sorted(map(str, document))[:3])
        raise StoreCorruptError(f"store {path} is not a user store (it has tables {tables} but no 'users')")
    ours = META_TABLE in document
    meta = _parse_meta(document.pop(META_TABLE, {}) or {}, path)
    users = document.pop(USERS_TABLE, {}) or {}
    records = users_records(users, path, ours=ours, compact=compact, large=large)
    del users
    if not (writable(meta) and writable(document)):
        raise StoreCorruptError(f"store {path}: its meta or another table is nested too deep to write back")
    return Snapshot(records, meta, document, meta.get(JOURNAL_GEN, 0), size)


def users_records(
    users: Any, path: Path, *, ours: bool, compact: bool, large: bool = False
) -> dict[int, Record]:
    """The parsed ``users`` table (or a part of it) as checked records keyed by id.

    ``ours``: the file has our meta table (records keyed otherwise are then
    normalised, not refused); ``compact``: make them small for a long-lived
    holder (see :func:`compact_records`).
    """
    if not isinstance(users, dict):
        raise StoreCorruptError(f"store {path}: table 'users' is not an object")
    if not (all(map(str.isdigit, users)) and all(map(str.isascii, users))):
        bad = next(doc_id for doc_id in users if not (doc_id.isdigit() and doc_id.isascii()))
        raise StoreCorruptError(f"store {path}: users record {bad!r} has a non-numeric id")
    # Readers are short-lived: keep orjson's objects as they are, fast.
    if compact:
        records = compact_records(users, copy=not large)
    else:
        records = {int(doc_id): rec for doc_id, rec in users.items()}
    _check_records(records, path, ours=ours)
    return records


def _parse_meta(meta_table: Any, path: Path) -> dict[str, Any]:
    meta = meta_table.get(META_DOC_ID) if isinstance(meta_table, dict) else None
    if meta is None:
        return {"schema": SCHEMA}
    if not isinstance(meta, dict) or not isinstance(meta.get("schema", SCHEMA), int):
        raise StoreCorruptError(f"store {path} has a malformed 'meta' table")
    schema = meta.get("schema", SCHEMA)
    store_id = meta.get(STORE_ID)
    gen = meta.get(JOURNAL_GEN, 0)
    if (store_id is not None and (type(store_id) is not str or len(store_id) > 64)) or type(gen) is not int:
        raise StoreCorruptError(f"store {path} has a malformed 'meta' table")
    if schema > SCHEMA:
        raise StoreCorruptError(
            f"store {path} has schema {schema}, newer than this version reads ({SCHEMA}); "
            f"upgrade telegram-user-tracker"
        )
    return {**meta, "schema": SCHEMA}


def _check_records(records: dict[int, Record], path: Path, *, ours: bool) -> None:
    """Refuse malformed records, naming the first; complete and re-key the ones that only need it."""
    values = list(records.values())
    # The norm, checked with C-level passes only: complete dicts keyed by their own int id.
    if (
        set(map(type, values)) <= {dict}
        and all(map(_RECORD_KEYS.issubset, values))
        and list(map(_ID, values)) == list(records)
        and records_look_right(values)
    ):
        return
    for user_id, record in records.items():
        if type(record) is not dict:
            raise StoreCorruptError(f"store {path}: users record {user_id} is not an object")
        # The doc id (the key) is the truth: an id of another type (1001.0) or value is normalised.
        if not record.keys() >= _RECORD_KEYS or type(record["id"]) is not int or record["id"] != user_id:
            # Without our meta table, only records keyed by their own Telegram
            # id say "a user store (hand-made or older)"; another program's
            # "users" table (doc ids 1, 2, 3...) is foreign and left alone.
            if not ours and record.get("id") != user_id:
                raise StoreCorruptError(
                    f"store {path} is not a user store (its 'users' record {user_id} "
                    f"is not keyed by its Telegram id)"
                )
            complete_record(record)["id"] = user_id
    if records and not (is_id(min(records)) and is_id(max(records))):
        raise StoreCorruptError(f"store {path}: a users record has an id over 64 bits")
    if not records_look_right(list(records.values())):
        for user_id, record in records.items():  # find the first culprit, for the message
            problem = record_problem(record, complete=True)
            if problem is not None:
                raise StoreCorruptError(f"store {path}: users record {user_id} {problem}")


def compact_records(users: dict[str, Any], *, copy: bool = True) -> dict[int, Record]:
    """The parsed records, made smaller for a long-lived writer.

    orjson's dicts are over-allocated while being built: a copy is ~25%
    smaller (``copy``; msgspec's are already tight, and copying them would
    only raise the peak). Low-cardinality strings share one object, a record
    seen once shares its two timestamps, and the dict key is the record's
    own id object. Each parsed dict is freed once copied.
    """
    records: dict[int, Record] = {}
    shared: dict[str, str] = {}
    for doc_id in list(users):
        parsed = users.pop(doc_id)
        # Inserted key by key: dict(parsed) would clone orjson's oversized table.
        record = {key: value for key, value in parsed.items()} if copy and type(parsed) is dict else parsed
        if type(record) is dict:
            for name in ("language_code", "source"):
                value = record.get(name)
                if type(value) is str:
                    record[name] = shared.setdefault(value, value)
            if record.get("last_seen") == record.get("first_seen"):
                record["last_seen"] = record.get("first_seen")
            user_id = record.get("id")
            if type(user_id) is int and str(user_id) == doc_id:
                records[user_id] = record  # the key is the record's own id object
                continue
        records[int(doc_id)] = record
    return records


def write_store(
    path: Path, user_chunks: Iterable[bytes], meta: dict[str, Any], other_tables: dict[str, Any]
) -> int:
    """Write the store file atomically from serialised chunks of the users table; return its size.

    Each chunk is a JSON object of ``{"<id>": record}`` (orjson's output for a
    dict); the braces are stripped and the bodies joined, so the users table
    is streamed chunk by chunk instead of being built whole in memory. Each
    chunk is a line of its own (see :data:`USERS_OPENING`): still one JSON
    document for any reader, and the writer's next open reads it back chunk
    by chunk (:func:`read_store_table`).
    """
    with atomic_write(path) as out:
        out.write(USERS_OPENING)
        first = True
        for body in user_chunks:
            if len(body) > 2:
                out.write(body[1:-1] if first else b",\n" + body[1:-1])
                first = False
        out.write(b"}," if first else b"\n},")
        out.write(orjson.dumps({META_TABLE: {META_DOC_ID: meta}, **other_tables})[1:])
        return out.tell()


class _NotOurLayout(Exception):
    """The file is not laid out as :func:`write_store` writes it: parse it whole instead."""


class RecordSink(Protocol):
    """What takes a store file's users chunk by chunk (the writer's table, a column collector)."""

    def put(self, records: Iterable[Record]) -> None: ...


Sink = TypeVar("Sink", bound=RecordSink)


def read_store_streamed(
    path: Path, new_sink: Callable[[], Sink], *, large_file_bytes: int = LARGE_FILE_BYTES
) -> tuple[Snapshot, Sink, bool]:
    """The store file's users fed to a new sink, and the rest (``Snapshot.records`` is empty).

    A file this code wrote is read a chunk (a line) at a time, each parsed,
    checked and handed to the sink before the next is read, so the peak is
    what the sink keeps plus one chunk, not every record as a dict at once.
    Any other file (hand-made, written by TinyDB or an older version) is
    parsed whole by :func:`read_store` and fed to a fresh sink. Both accept
    and refuse the same files: a line that does not fit the layout exactly
    sends the file to the whole parse. The flag says whether the file was in
    this code's layout (then it need not be rewritten to be read so next time).
    """
    try:
        with _open_store_file(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            if fh.readline() == USERS_OPENING:
                sink = new_sink()
                try:
                    return _stream_store(fh, path, size, sink), sink, True
                except _NotOurLayout:
                    pass
    except OSError as exc:
        raise file_error("read store", path, exc) from None
    # The parser's own dicts go straight to the sink (no compact copies: they would raise the peak).
    snapshot = read_store(path, compact=False, large_file_bytes=large_file_bytes)
    sink = new_sink()
    records = snapshot.records
    while records:  # handed over in slices, each freed once taken
        slice_ids = list(itertools.islice(records, 10_000))
        sink.put([records.pop(user_id) for user_id in slice_ids])
    return snapshot, sink, False


def read_store_table(
    path: Path, *, large_file_bytes: int = LARGE_FILE_BYTES
) -> tuple[Snapshot, UserTable, bool]:
    """The store file as a :class:`UserTable` (see :func:`read_store_streamed`): the writer's open."""
    return read_store_streamed(path, UserTable, large_file_bytes=large_file_bytes)


def _stream_store(lines: IO[bytes], path: Path, size: int, sink: RecordSink) -> Snapshot:
    expect_more = True  # the previous line ended with a comma (or was the opening)
    first = True
    with no_cyclic_gc():
        for line in lines:
            if line.startswith(b"},"):
                if expect_more and not first:
                    raise _NotOurLayout  # a trailing comma: not JSON
                return _stream_tail(line + lines.read(), path, size)
            if not expect_more or not line.endswith(b"\n"):
                raise _NotOurLayout
            body = line[:-1]
            expect_more = body.endswith(b",")
            if expect_more:
                body = body[:-1]
            first = False
            try:
                users = orjson.loads(b"{" + body + b"}")
            except orjson.JSONDecodeError:
                raise _NotOurLayout from None
            sink.put(users_records(users, path, ours=True, compact=False).values())
    raise _NotOurLayout  # no end: truncated (the whole parse says so)


def _stream_tail(tail: bytes, path: Path, size: int) -> Snapshot:
    """The tables after the users table (``},"meta": ...}``) as a snapshot without records."""
    try:
        document = orjson.loads(b"{" + tail[2:])
    except orjson.JSONDecodeError:
        raise _NotOurLayout from None
    if type(document) is not dict or META_TABLE not in document or USERS_TABLE in document:
        raise _NotOurLayout  # no meta (not ours: other rules) or a second users table (it would win)
    meta = _parse_meta(document.pop(META_TABLE) or {}, path)
    if not (writable(meta) and writable(document)):
        raise StoreCorruptError(f"store {path}: its meta or another table is nested too deep to write back")
    return Snapshot({}, meta, document, meta.get(JOURNAL_GEN, 0), size)


def store_id_of(meta: dict[str, Any]) -> str | None:
    """The store's own id (None for a store no writer of this version has opened yet)."""
    value = meta.get(STORE_ID)
    return value if isinstance(value, str) else None


def file_identity(path: Path) -> list[int]:
    """Inode, size and modification time: changes whenever the file is replaced or edited."""
    info = os.stat(path)
    return [info.st_ino, info.st_size, info.st_mtime_ns]
