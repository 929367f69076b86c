"""The column cache: the store's users as one compact binary column per field.

Parsing a million JSON objects takes seconds; the same data as one column per
field reads in milliseconds, and a reader reads only the fields it needs. The
writer leaves ``<store>.columns`` beside the store after each snapshot. It is
a cache, not a source of truth: not fsynced, tied to the exact store file it
was made from (inode, size, mtime), and a reader that finds it missing, torn or
stale rebuilds it from the store file (:func:`rebuild`) or reads the store
file itself. A store file with another identity but the same size and CRC-32
(a copied data folder) keeps its cache: the header is re-stamped, in place.
Shaped like tinydb's ``Storage``: ``read`` and ``write``, plus
``apply_to_columns`` for the journal written since. Readers get the columns
as :mod:`.column_views` decodes them.

Layout: one JSON header line (format, generation, store id, user count, the
store file's identity and CRC-32, where each field's bytes are; spaces after
it, room for a re-stamp), then each field's
bytes in the form :mod:`.column_codec` picks (uint32 seconds for timestamps,
codes into a table for languages and sources, bytes for flags, JSON for
names), then an end mark that proves the file is whole. About 75 bytes a
user where the JSON-lines cache it replaces took 120.
"""

from __future__ import annotations

import gc
import os
import zlib
from collections.abc import Collection, Iterable
from operator import itemgetter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from tracker.files import atomic_write, read_regular
from tracker.models import RECORD_FIELDS, Record
from tracker.store.column_codec import ColumnBuilder, Kind, Part, byte_size
from tracker.store.column_views import CodeColumn, EncodedColumn, decode
from tracker.store.errors import StoreError
from tracker.store.journal import Effect, committed_changes, first_generation
from tracker.store.side_file import SideFile, StaleSideFileError, side_path
from tracker.store.validate import column_problem

if TYPE_CHECKING:
    from tracker.store.copies import Chunk

#: One sequence per field: a list, or an :class:`EncodedColumn` that reads like one
#: (see :mod:`.column_views`).
Columns = dict[str, list[Any]]

# The fields a whole-store count needs come first (kept for readers of the order).
_COUNTED_FIELDS = ("id", "first_seen", "last_seen", "messages", "blocked", "language_code", "source")
COLUMN_ORDER: tuple[str, ...] = (
    *_COUNTED_FIELDS,
    *(name for name in RECORD_FIELDS if name not in _COUNTED_FIELDS),
)
FORMAT = "tracker-columns/2"
_END = b"\nend\n"
#: Spaces after the header's JSON: room for a store identity with longer numbers (a copy's
#: inode and modification time), so that a re-stamp rewrites the header in place.
HEADER_ROOM = 32


class StaleColumnsError(StaleSideFileError):
    """The column file cannot be trusted for this store (missing, torn, stale, malformed)."""


def columns_path(store_path: Path) -> Path:
    """Where the column file of the store at ``store_path`` lives."""
    return side_path(store_path, ColumnCache.suffix)


class ColumnCollector:
    """Builds the columns of a snapshot, in their stored form, while its chunks are serialised."""

    def __init__(self) -> None:
        self._builders = [(ColumnBuilder(name), itemgetter(name)) for name in COLUMN_ORDER]
        self.count = 0

    def add(self, records: list[Record]) -> None:
        for builder, get in self._builders:
            builder.add(list(map(get, records)))
        self.count += len(records)

    def put(self, records: Iterable[Record]) -> None:
        """:meth:`add`, as a sink of :func:`~tracker.store.format.read_store_streamed`."""
        self.add(list(records))

    def add_chunk(self, chunk: Chunk, columns: dict[str, list[Any]]) -> None:
        """A writer's chunk of rows (``columns``: its values): timestamps go in as the seconds they are."""
        from tracker.store.copies import TIME_COLUMN  # the writer's: a reader never imports it

        odd_columns = {column for _, column in chunk.odd}
        for builder, _ in self._builders:
            column = TIME_COLUMN.get(builder.name)
            if column is not None and column not in odd_columns:
                builder.add_seconds(chunk.times[column])
            else:
                builder.add(columns[builder.name])
        self.count += chunk.size

    @property
    def columns(self) -> ColumnCollector:
        """What :meth:`ColumnCache.write` takes (the collector itself: nothing is copied)."""
        return self

    def encoded(self) -> list[tuple[str, Kind, bytes, list[Part]]]:
        return [(builder.name, *builder.encode()) for builder, _ in self._builders]

    def release(self) -> None:
        """Free what was collected a piece at a time: at 10M users, thousands of ~100 KB
        mappings freed in one C-level sweep held the GIL ~100 ms (a pause for ``seen()``)."""
        for builder, _ in self._builders:
            builder.release()


class ColumnCache(SideFile):
    """``read``/``write`` the column file of one store."""

    suffix = ".columns"
    what = "column file"
    stale_error = StaleColumnsError

    def write(
        self, columns: ColumnCollector | Columns, gen: int, store_id: str | None,
        *, store_identity: list[int] | None = None, quiet: bool = False,
    ) -> None:
        """Write the column file for the snapshot of generation ``gen`` just written.

        ``store_identity``: the store file's identity when the columns were
        taken from it (a reader rebuilding the cache), else the file as it is
        now. ``quiet``: a failure is not worth a warning (a reader's rebuild).
        """
        collector = columns if isinstance(columns, ColumnCollector) else _collect(columns)
        try:
            identity = store_identity or file_identity(self.store_path)
            checksum = store_checksum(self.store_path, identity)
            fields, sections, offset = [], [], 0
            for name, kind, table, parts in collector.encoded():
                size = byte_size(parts)
                fields.append([name, kind.value, offset, len(table), offset + len(table), size])
                sections += [table, *parts]
                offset += len(table) + size
            # The store file's identity ties this file to the snapshot it was made
            # from: a store file replaced or edited since then no longer matches.
            header = _padded(orjson.dumps({
                "format": FORMAT, "gen": gen, "store_id": store_id, "count": collector.count,
                "store": identity, "crc": checksum, "fields": fields,
            }))
            with atomic_write(self.path, durable=False) as out:
                out.write(header)
                sections.reverse()
                while sections:  # dropped as written: the collector frees them (see release)
                    out.write(sections.pop())
                out.write(_END)
        except (OSError, TypeError, ValueError) as exc:
            self.write_failed(exc, quiet=quiet)

    def read(self, wanted: Collection[str]) -> tuple[tuple[Columns, str | None], int]:
        """``((columns, store id), generation)``; :class:`StaleColumnsError` if they cannot be trusted."""
        collecting = gc.isenabled()
        gc.disable()  # a value per user: the cyclic GC would only scan them again and again
        try:
            with self.open_for_reading() as fh, self.trusted():
                return self._parse(fh, set(wanted))
        finally:
            if collecting:
                gc.enable()

    def _parse(self, fh: IO[bytes], wanted: set[str]) -> tuple[tuple[Columns, str | None], int]:
        # The end mark proves the file is whole (it was not fsynced, so a crash can leave it torn).
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - len(_END)))
        if fh.read() != _END:
            raise ValueError("torn column file")
        fh.seek(0)
        line = fh.readline(1 << 16)
        header = orjson.loads(line)
        if header["format"] != FORMAT:
            raise ValueError("column file of another format")
        identity = file_identity(self.store_path)
        if header["store"] != identity:
            # Replaced or touched (a copied data folder): still ours if the bytes are the same.
            crc = header.get("crc")
            if header["store"][1] != identity[1] or type(crc) is not int:
                raise ValueError("column file does not match the store file")
            if crc != store_checksum(self.store_path, identity):
                raise ValueError("column file does not match the store file")
            self._restamp(fh, header, len(line), identity)
        count, base, end = header["count"], len(line), size - len(_END)
        gen, store_id = header["gen"], header.get("store_id")
        if type(gen) is not int or not (store_id is None or type(store_id) is str) or type(count) is not int:
            raise ValueError("malformed header")
        columns: Columns = {}
        for name, kind_name, table_at, table_len, data_at, data_len in header["fields"]:
            if name not in wanted:
                continue
            kind = Kind(kind_name)
            table, data = (_section(fh, base, end, at, length)
                           for at, length in ((table_at, table_len), (data_at, data_len)))
            values = decode(kind, table, data, count)
            if len(values) != count:
                raise ValueError(f"column {name!r} has the wrong length")
            problem = _problem(name, kind, values)
            if problem is not None:
                raise ValueError(problem)
            columns[name] = values  # type: ignore[assignment]  # an EncodedColumn reads like a list
        if not wanted <= columns.keys():
            raise ValueError("column file lacks fields")
        return (columns, store_id), gen

    def _restamp(self, fh: IO[bytes], header: dict[str, Any], length: int, identity: list[int]) -> None:
        """Tie the column file to the store file's new identity (a copy, its bytes checked; best effort).

        In place when the new header fits the old one's room (the writer pads
        it), which leaves the columns untouched: a reader that reads the header
        meanwhile sees the old identity, the new one or a torn line, and either
        of the last two only sends it through this check again. Else the file
        is rewritten. Through a descriptor of the very file just read: one
        that a writer has replaced meanwhile is never written.
        """
        stamped = {**header, "store": identity}
        line = orjson.dumps(stamped)
        try:
            if len(line) < length:
                fd = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    if _same_file(os.fstat(fd), os.fstat(fh.fileno())):
                        os.pwrite(fd, line + b" " * (length - 1 - len(line)) + b"\n", 0)
                finally:
                    os.close(fd)
                return
            fh.seek(length)
            with atomic_write(self.path, durable=False) as out:
                out.write(_padded(line))
                while chunk := fh.read(1 << 20):
                    out.write(chunk)
        except OSError:
            pass  # a read-only file or folder: the next reader checks the bytes again


def _problem(name: str, kind: Kind, values: list[Any] | EncodedColumn) -> str | None:
    """What breaks the record rules in a decoded column (codes: through their table of distinct values)."""
    if isinstance(values, CodeColumn):
        return column_problem(name, values.names)
    if kind is Kind.JSON or kind is Kind.CODE:
        return column_problem(name, values)  # type: ignore[arg-type]  # JSON and no codes: a list
    return None  # numbers, flags and timestamps hold nothing else by construction


def _padded(header: bytes) -> bytes:
    """The header line: ``header``, room for a longer store identity (a re-stamp in place), a newline."""
    return header + b" " * HEADER_ROOM + b"\n"


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def store_checksum(store_path: Path, identity: list[int]) -> int | None:
    """CRC-32 of the store file's bytes, if it is still the file of ``identity`` (else None).

    Read through one 1 MiB buffer (~1 GB/s, zlib drops the GIL): a memory map
    would add the whole file to the process's resident size.
    """
    checksum = 0
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    try:
        with open(store_path, "rb", buffering=0) as fh:
            while read := fh.readinto(buffer):
                checksum = zlib.crc32(view[:read], checksum)
    except OSError:
        return None
    return checksum if file_identity(store_path) == identity else None


def file_identity(path: Path) -> list[int]:
    """Inode, size and modification time: what ties the column file to the store file.

    The same as ``tracker.store.format.file_identity``, not imported from there:
    a reader of the column file (``stats``) never loads the store file's format.
    """
    info = os.stat(path)
    return [info.st_ino, info.st_size, info.st_mtime_ns]


def _section(fh: IO[bytes], base: int, end: int, at: Any, length: Any) -> bytes:
    if type(at) is not int or type(length) is not int or at < 0 or length < 0 or base + at + length > end:
        raise ValueError("malformed section")
    if not length:
        return b""
    fh.seek(base + at)
    data = fh.read(length)
    if len(data) != length:
        raise ValueError("torn column file")
    return data


def _collect(columns: Columns) -> ColumnCollector:
    """A collector holding ``columns`` (for callers that already have them as lists)."""
    collector = ColumnCollector()
    names = [name for name in COLUMN_ORDER if name in columns]
    records = [dict(zip(names, row, strict=True)) for row in zip(*(columns[n] for n in names), strict=True)]
    collector.add(records)
    return collector


def rebuild(store_path: Path) -> bool:
    """Rebuild the column cache of the store at ``store_path`` from its store file; True when done.

    What a reader does when the cache is missing or stale (e.g. after the data
    folder was copied): one parse of the store file, so the next reads are
    fast again. The identity is taken before the parse and checked after it,
    so a store file replaced meanwhile never gets a cache it was not made from.
    Writes nothing where the folder is not writable (quietly: it is a cache).
    """
    from tracker.store.format import read_store_streamed, store_id_of

    try:
        identity = file_identity(store_path)
        # Streamed into the collector a line at a time: no whole parse of a large store.
        snapshot, collector, _ = read_store_streamed(store_path, ColumnCollector)
        if file_identity(store_path) != identity:
            return False
        gen, store_id = snapshot.gen, store_id_of(snapshot.meta)
        # A store whose journal is refused (foreign, damaged, newer) is left exactly as it is.
        journal_path = store_path.with_name(store_path.name + ".journal")
        journal = read_regular(journal_path) or b""
        if (first_generation(journal) or 0) > gen:
            return False
        for _ in committed_changes(journal, gen, journal_path, store_id):
            pass
    except (OSError, StoreError):
        return False
    cache = ColumnCache(store_path)
    cache.write(collector, gen, store_id, store_identity=identity, quiet=True)
    return cache.path.exists()


def apply_to_columns(effect: Effect, columns: Columns) -> None:
    """Apply a journal :class:`Effect` to columns (in place), as ``apply_to_records`` does to records.

    The changes are gathered per column first, then made a column at a time:
    a compact column converts a whole batch at once (a journal may touch
    every user).
    """
    if not effect.records and not effect.touches:
        return
    records = dict(effect.records)
    affected = records.keys() | effect.touches.keys()
    positions = [(i, user_id) for i, user_id in enumerate(columns["id"]) if user_id in affected]
    changes: dict[str, tuple[list[int], list[Any]]] = {name: ([], []) for name in columns}
    deleted: set[int] = set()
    for position, user_id in positions:
        touch = effect.touches.get(user_id)
        if touch is not None:
            for name, value in zip(("last_seen", "messages"), touch, strict=True):
                if name in changes:
                    changes[name][0].append(position)
                    changes[name][1].append(value)
            continue
        record = records.pop(user_id)
        if record is None:
            deleted.add(position)
            continue
        for name, (at, values) in changes.items():
            at.append(position)
            values.append(record.get(name))
    added = [record for record in records.values() if record is not None]  # users new since the file
    for name, (at, values) in changes.items():
        _change(columns, name, at, values, [record.get(name) for record in added])
    if deleted:
        for name, column in columns.items():
            if isinstance(column, EncodedColumn):
                columns[name] = column.without(deleted)  # type: ignore[assignment]
            else:
                columns[name] = [v for i, v in enumerate(column) if i not in deleted]


def _change(columns: Columns, name: str, at: list[int], values: list[Any], added: list[Any]) -> None:
    """Set ``columns[name]`` at the positions ``at`` to ``values``, then append ``added``.

    A value the compact form cannot hold (a timestamp before 1970 in the
    journal) turns that column into a plain list first.
    """
    column = columns[name]
    if isinstance(column, EncodedColumn):
        try:
            column.assign(at, values)
            column.extend(added)
            return
        except (ValueError, KeyError, TypeError, OverflowError):
            # Each step is all or nothing: redoing the assignments on the values is harmless.
            column = columns[name] = list(column)
    for position, value in zip(at, values, strict=True):
        column[position] = value
    column.extend(added)
