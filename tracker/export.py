"""Streaming CSV / JSON / NDJSON export of user records.

Every format is a stream of ready pieces (``(bytes, rows)``) that
:func:`tracker.export_target.write_to` drains, reporting progress. CSV has one
encoder, :func:`csv_lines`, that turns a chunk of columns (one list per field)
into lines column by column; whole-store exports hand it slices of
``StoreReader.columns``, record iterables are cut into chunks of columns first.
JSON and NDJSON are for programs and carry every stored field of each record.

Where the bytes go is :mod:`tracker.export_target`'s job (standard output, a
special file, or a regular file replaced whole, never one of the tracker's
own files); :class:`ExportError`, :func:`refuse_protected` and
:func:`silence_stdout` are re-exported from there.

CSV is for spreadsheets, so by default every text cell that a spreadsheet
would read as a formula (starting with ``= + - @``, tab or CR, also right
after a ``;``, where Excel splits cells in ``;``-separator locales) gets a
leading ``'`` (OWASP "CSV injection"); ``safe=False`` writes values as stored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import IO, Any

import orjson

from tracker.export_target import (
    ExportError,
    Pieces,
    Progress,
    refuse_protected,
    silence_stdout,
    write_to,
)

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "SUFFIX_FORMATS",
    "ExportError",
    "csv_lines",
    "export",
    "export_columns",
    "format_for",
    "neutralise",
    "refuse_protected",
    "silence_stdout",
    "write_csv",
]

#: CSV columns, in order (DESIGN.md).
CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "username",
    "first_name",
    "last_name",
    "language_code",
    "is_bot",
    "is_premium",
    "first_seen",
    "last_seen",
    "messages",
    "source",
    "blocked",
)

FORMATS: tuple[str, ...] = ("csv", "json", "ndjson")

#: File name endings that say the format (``export users.json``).
SUFFIX_FORMATS: Mapping[str, str] = {".csv": "csv", ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson"}

#: A CSV cell holding any of these is quoted (RFC 4180). CR is included even
#: when lines end in LF alone: a bare CR would split the row for most readers.
CSV_SPECIAL = ',"\r\n'

#: Records per write: large enough to amortise the per-call cost, small
#: enough that a chunk's text stays a few MB.
CHUNK = 10_000

#: First characters that make a spreadsheet evaluate a cell.
FORMULA_START = frozenset("=+-@\t\r")

_BOOL_FIELDS = frozenset({"is_bot", "is_premium", "blocked"})
_INT_FIELDS = frozenset({"id", "messages"})
#: Our own timestamps: never a formula, never neutralised.
_OWN_TEXT_FIELDS = frozenset({"first_seen", "last_seen"})
_BOOL = {True: "true", False: "false", None: ""}

Columns = Mapping[str, Sequence[Any]]


def format_for(target: str, fmt: str | None) -> str:
    """The export format: ``fmt`` if given, else from the file name (CSV for ``-`` or no ending).

    Raises ValueError for another ending without ``fmt`` (``users.xlsx``).
    """
    if fmt is not None:
        return fmt
    suffix = Path(target).suffix.lower() if target != "-" else ""
    if not suffix:
        return "csv"
    if suffix not in SUFFIX_FORMATS:
        raise ValueError(
            f"cannot tell the format from {suffix!r}: name the file .csv, .json, .ndjson or .jsonl, "
            "or pass --format"
        )
    return SUFFIX_FORMATS[suffix]


def neutralise(value: str) -> str:
    """``value`` with a ``'`` before each part a spreadsheet would treat as a formula.

    A part is the whole cell, or what follows a ``;``.
    """
    if value and value[0] in FORMULA_START:
        value = "'" + value
    if ";" in value:
        value = ";".join(p if not p or p[0] not in FORMULA_START else "'" + p for p in value.split(";"))
    return value


# ------------------------------------------------------------------- CSV


def csv_lines(columns: Columns, *, safe: bool = True) -> list[str]:
    """The CSV data lines (no header, no line ends) of a chunk of columns.

    Each column is turned into cells in one pass and quoting is checked once
    per column (most columns never need it), then rows are joined in C:
    several times faster than ``csv.writer`` over per-record rows. A column
    with odd values (a hand-edited store) is converted value by value.
    """
    cells = [_column_cells(name, columns[name], safe) for name in CSV_COLUMNS]
    return list(map(",".join, zip(*cells, strict=True)))


def _column_cells(name: str, values: Sequence[Any], safe: bool) -> list[str]:
    neutral = safe and name not in _OWN_TEXT_FIELDS
    try:
        if name in _BOOL_FIELDS:
            if not set(map(type, values)) <= {bool, type(None)}:
                raise TypeError(name)
            return list(map(_BOOL.__getitem__, values))
        if name in _INT_FIELDS:
            if not set(map(type, values)) <= {int, type(None)}:
                raise TypeError(name)
            return ["" if v is None else str(v) for v in values]
        return _text_cells(values, safe=neutral)
    except TypeError:
        return [_quoted(_cell(v, neutral)) for v in values]


def _text_cells(values: Sequence[Any], *, safe: bool) -> list[str]:
    text = ["" if v is None else v for v in values]
    everything = "".join(text)  # TypeError on a non-string: converted one by one
    if safe and (";" in everything or any(v and v[0] in FORMULA_START for v in text)):
        text = list(map(neutralise, text))
    if any(char in everything for char in CSV_SPECIAL):
        return list(map(_quoted, text))
    return text


def _cell(value: Any, safe: bool) -> str:
    if value is None or isinstance(value, bool):
        return _BOOL[value]
    text = value if isinstance(value, str) else str(value)
    return neutralise(text) if safe else text


def _quoted(text: str) -> str:
    if any(char in text for char in CSV_SPECIAL):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_pieces(chunks: Iterable[Columns], *, excel: bool, safe: bool) -> Iterator[tuple[str, int]]:
    end = "\r\n" if excel else "\n"
    yield ("\ufeff" if excel else "") + ",".join(CSV_COLUMNS) + end, 0
    for chunk in chunks:
        lines = csv_lines(chunk, safe=safe)
        if lines:
            yield end.join(lines) + end, len(lines)


def _column_chunks(columns: Columns) -> Iterator[Columns]:
    total = len(columns["id"])
    for start in range(0, total, CHUNK):
        yield {name: columns[name][start : start + CHUNK] for name in CSV_COLUMNS}


def _record_chunks(records: Iterable[Mapping[str, Any]]) -> Iterator[list[Mapping[str, Any]]]:
    it = iter(records)
    while chunk := list(islice(it, CHUNK)):
        yield chunk


def _records_as_columns(records: Iterable[Mapping[str, Any]]) -> Iterator[Columns]:
    for chunk in _record_chunks(records):
        yield {name: [rec.get(name) for rec in chunk] for name in CSV_COLUMNS}


def write_csv(
    records: Iterable[Mapping[str, Any]], out: IO[str], *, excel: bool = False, safe: bool = True
) -> int:
    """Write a header and one row per record to the text stream ``out``; return the row count."""
    count = 0
    for text, rows in _csv_pieces(_records_as_columns(records), excel=excel, safe=safe):
        out.write(text)
        count += rows
    return count


def _encoded(pieces: Iterator[tuple[str, int]]) -> Pieces:
    return ((text.encode(), rows) for text, rows in pieces)


# ------------------------------------------------------------ JSON, NDJSON


def _ndjson_pieces(records: Iterable[Mapping[str, Any]]) -> Pieces:
    dumps = orjson.dumps
    for chunk in _record_chunks(records):
        yield b"".join([dumps(rec, option=orjson.OPT_APPEND_NEWLINE) for rec in chunk]), len(chunk)


def _json_pieces(records: Iterable[Mapping[str, Any]]) -> Pieces:
    """A JSON array, one record per line."""
    dumps = orjson.dumps
    yield b"[", 0
    first = True
    for chunk in _record_chunks(records):
        yield (b"\n" if first else b",\n") + b",\n".join([dumps(rec) for rec in chunk]), len(chunk)
        first = False
    yield (b"]\n" if first else b"\n]\n"), 0


# ----------------------------------------------------------------- targets


def export(
    records: Iterable[Mapping[str, Any]],
    target: str | os.PathLike[str],
    *,
    fmt: str = "csv",
    excel: bool = False,
    safe: bool = True,
    progress: Progress | None = None,
) -> int:
    """Export ``records`` to ``target`` (``"-"``: standard output); return the count.

    A regular file is written to a temp file beside it (mode 0600: it holds
    personal data), fsynced and renamed over ``target``; on any failure or
    interrupt the temp file is removed and ``target`` is left as it was.
    """
    if fmt == "csv":
        pieces = _encoded(_csv_pieces(_records_as_columns(records), excel=excel, safe=safe))
    elif fmt == "json":
        pieces = _json_pieces(records)
    elif fmt == "ndjson":
        pieces = _ndjson_pieces(records)
    else:
        raise ValueError(f"unknown export format {fmt!r} (use one of {', '.join(FORMATS)})")
    return write_to(target, pieces, progress)


def export_columns(
    columns: Columns,
    target: str | os.PathLike[str],
    *,
    excel: bool = False,
    safe: bool = True,
    progress: Progress | None = None,
) -> int:
    """Like :func:`export` in CSV, from whole columns (``StoreReader.columns(CSV_COLUMNS)``)."""
    pieces = _encoded(_csv_pieces(_column_chunks(columns), excel=excel, safe=safe))
    return write_to(target, pieces, progress)
