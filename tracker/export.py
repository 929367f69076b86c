"""Streaming CSV / JSON / NDJSON export of user records.

Records are written in chunks of :data:`CHUNK` as they are read, so memory
does not grow with the number of users beyond the store itself. A file export
goes to a temp file in the target's folder that is renamed over the target
only when everything was written: an interrupted export leaves no half file.

CSV is for spreadsheets, so by default every text cell that a spreadsheet
would read as a formula (starting with ``= + - @``, tab or CR) gets a leading
``'`` (OWASP "CSV injection"); ``safe=False`` writes values as stored.
JSON and NDJSON are for programs and always carry the stored values.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import orjson

from tracker.files import atomic_write

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "ExportError",
    "csv_line",
    "csv_lines_from_columns",
    "csv_row",
    "export",
    "export_csv_lines",
    "neutralise",
    "write_csv",
    "write_csv_lines",
    "write_json",
    "write_ndjson",
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

#: A CSV cell holding any of these is quoted (RFC 4180). CR is included even
#: when lines end in LF alone: a bare CR would split the row for most readers.
CSV_SPECIAL = ',"\r\n'


#: Records per write: large enough to amortise the per-call cost, small
#: enough that a chunk's text stays a few MB.
CHUNK = 10_000

#: First characters that make a spreadsheet evaluate a cell.
FORMULA_START = frozenset("=+-@\t\r")

_BOOL = {True: "true", False: "false", None: ""}

Progress = Callable[[int], None]


class ExportError(Exception):
    """The export could not be written; the message is one line naming the path."""


def neutralise(value: str) -> str:
    """``value`` with a leading ``'`` if a spreadsheet would treat it as a formula."""
    if value and value[0] in FORMULA_START:
        return "'" + value
    return value


def _text(value: Any, safe: bool) -> Any:
    # Slow path of csv_row for values that are not plain str/None.
    if value is None:
        return ""
    if isinstance(value, bool):
        return _BOOL[value]
    value = value if isinstance(value, str) else str(value)
    return neutralise(value) if safe else value


def csv_row(record: Mapping[str, Any], *, safe: bool = True) -> list[Any]:
    """One record as the CSV cells of :data:`CSV_COLUMNS` (booleans ``true``/``false``, null empty)."""
    row: list[Any] = []
    for name in CSV_COLUMNS:
        value = record.get(name)
        if name in ("id", "messages") and isinstance(value, int) and not isinstance(value, bool):
            row.append(value)
        elif name in ("is_bot", "is_premium", "blocked") and (value is None or isinstance(value, bool)):
            row.append(_BOOL[value])
        else:
            row.append(_text(value, safe))
    return row


def _chunks(records: Iterable[Mapping[str, Any]]) -> Iterator[list[Mapping[str, Any]]]:
    it = iter(records)
    while chunk := list(islice(it, CHUNK)):
        yield chunk


def write_csv(
    records: Iterable[Mapping[str, Any]],
    out: IO[str],
    *,
    excel: bool = False,
    safe: bool = True,
    progress: Progress | None = None,
) -> int:
    """Write a header and one row per record to the text stream ``out``; return the row count.

    Each chunk of records is turned into columns and goes through
    :func:`csv_lines_from_columns`, so both export paths quote alike; a chunk
    with an odd record (a missing field, a strange type) is redone record by
    record with :func:`csv_row`. ``excel`` ends lines with CRLF (the caller adds
    the UTF-8 BOM when opening the stream).
    """
    end = "\r\n" if excel else "\n"
    out.write(",".join(CSV_COLUMNS) + end)
    count = 0
    getters = [(name, itemgetter(name)) for name in CSV_COLUMNS]
    for chunk in _chunks(records):
        try:
            columns = {name: list(map(get, chunk)) for name, get in getters}
            lines = list(csv_lines_from_columns(columns, safe=safe))
        except (KeyError, TypeError):
            lines = [csv_line(csv_row(rec, safe=safe)) for rec in chunk]
        out.write(end.join(lines) + end)
        count += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return count


def csv_line(cells: Iterable[Any]) -> str:
    """One CSV line (without its end) of ready cells: None empty, quoted where needed."""
    return ",".join(_quoted("" if cell is None else str(cell)) for cell in cells)


def _quoted(text: str) -> str:
    if any(char in text for char in CSV_SPECIAL):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_lines_from_columns(columns: Mapping[str, list[Any]], *, safe: bool = True) -> Iterator[str]:
    """The CSV data lines (no header, no line ends) of whole columns.

    ``columns`` come from ``store.load_columns``. Each column is turned into
    cells in one pass, quoting is checked once per column (most columns never
    need it), and rows are joined in C: several times faster than
    ``csv.writer`` over per-record rows. Raises KeyError/TypeError on odd
    values (a hand-edited store); the caller then exports records instead.
    """
    cells: list[list[str]] = []
    for name in CSV_COLUMNS:
        values = columns[name]
        if name in ("is_bot", "is_premium", "blocked"):
            cells.append(list(map(_BOOL.__getitem__, values)))
        elif name in ("id", "messages"):
            cells.append(["" if v is None else str(v) for v in values])
        else:
            neutralise_cells = safe and name not in ("first_seen", "last_seen")
            cells.append(_text_cells(values, safe=neutralise_cells))
    return map(",".join, zip(*cells, strict=True))


def _text_cells(values: list[Any], *, safe: bool) -> list[str]:
    danger = FORMULA_START
    if safe:
        text = ["" if v is None else ("'" + v) if v and v[0] in danger else v for v in values]
    else:
        text = ["" if v is None else v for v in values]
    everything = "".join(text)  # TypeError on a non-string: the caller falls back
    if any(char in everything for char in CSV_SPECIAL):
        return [_quoted(v) for v in text]
    return text


def write_csv_lines(
    lines: Iterable[str], out: IO[bytes], *, excel: bool = False, progress: Progress | None = None
) -> int:
    """Write the header and ready CSV ``lines`` to the binary ``out``; return the row count.

    ``excel`` adds the UTF-8 BOM and ends lines with CRLF.
    """
    end = "\r\n" if excel else "\n"
    out.write(("\ufeff" if excel else "").encode() + (",".join(CSV_COLUMNS) + end).encode())
    count = 0
    iterator = iter(lines)
    while chunk := list(islice(iterator, CHUNK)):
        out.write((end.join(chunk) + end).encode())
        count += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return count


def write_ndjson(
    records: Iterable[Mapping[str, Any]], out: IO[bytes], *, progress: Progress | None = None
) -> int:
    """Write one JSON object per line (every field of each record); return the count."""
    dumps = orjson.dumps
    count = 0
    for chunk in _chunks(records):
        out.write(b"".join([dumps(rec, option=orjson.OPT_APPEND_NEWLINE) for rec in chunk]))
        count += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return count


def write_json(
    records: Iterable[Mapping[str, Any]], out: IO[bytes], *, progress: Progress | None = None
) -> int:
    """Write a JSON array of records (every field), one record per line; return the count."""
    dumps = orjson.dumps
    count = 0
    out.write(b"[")
    for chunk in _chunks(records):
        body = b",\n".join([dumps(rec) for rec in chunk])
        out.write((b"\n" if count == 0 else b",\n") + body)
        count += len(chunk)
        if progress is not None:
            progress(len(chunk))
    out.write(b"\n]\n" if count else b"]\n")
    return count


def _write(
    records: Iterable[Mapping[str, Any]],
    binary: IO[bytes],
    fmt: str,
    *,
    excel: bool,
    safe: bool,
    progress: Progress | None,
) -> int:
    if fmt == "csv":
        with _csv_text(binary, excel) as text:
            return write_csv(records, text, excel=excel, safe=safe, progress=progress)
    if fmt == "json":
        return write_json(records, binary, progress=progress)
    if fmt == "ndjson":
        return write_ndjson(records, binary, progress=progress)
    raise ValueError(f"unknown export format {fmt!r} (use one of {', '.join(FORMATS)})")


@contextlib.contextmanager
def _csv_text(binary: IO[bytes], excel: bool) -> Iterator[IO[str]]:
    """A CSV text stream over ``binary`` (UTF-8, with a BOM for ``excel``)."""
    encoding = "utf-8-sig" if excel else "utf-8"
    text = io.TextIOWrapper(binary, encoding=encoding, newline="", write_through=False)
    try:
        yield text
    finally:
        text.flush()
        text.detach()


def export(
    records: Iterable[Mapping[str, Any]],
    target: str | os.PathLike[str],
    *,
    fmt: str = "csv",
    excel: bool = False,
    safe: bool = True,
    progress: Progress | None = None,
) -> int:
    """Export ``records`` to the file ``target`` (``"-"``: standard output); return the count.

    A file is written to a temp file beside it (mode 0600: it holds personal
    data), fsynced and renamed over ``target``; on any failure or interrupt the
    temp file is removed and ``target`` is left as it was.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (use one of {', '.join(FORMATS)})")
    return _write_atomically(
        target, lambda out: _write(records, out, fmt, excel=excel, safe=safe, progress=progress)
    )


def export_csv_lines(
    lines: Iterable[str],
    target: str | os.PathLike[str],
    *,
    excel: bool = False,
    progress: Progress | None = None,
) -> int:
    """Like :func:`export` in CSV, from ready lines (see :func:`csv_lines_from_columns`)."""
    return _write_atomically(target, lambda out: write_csv_lines(lines, out, excel=excel, progress=progress))


def _write_atomically(target: str | os.PathLike[str], write: Callable[[IO[bytes]], int]) -> int:
    """Run ``write`` on standard output (``"-"``) or on a temp file renamed over ``target``."""
    if str(target) == "-":
        stdout = sys.stdout.buffer
        try:
            count = write(stdout)
            stdout.flush()
        except BrokenPipeError:
            # `export - | head`: the reader left; that is not an error of ours.
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return 0
        return count
    path = Path(target)
    try:
        with atomic_write(path) as out:
            return write(out)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
