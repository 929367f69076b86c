"""Streaming CSV / JSON / NDJSON export of user records.

Every format is a stream of ready pieces (``(bytes, rows)``) drained by one
loop, :func:`_drain`, that writes them and reports progress. CSV has one
encoder, :func:`csv_lines`, that turns a chunk of columns (one list per field)
into lines column by column; whole-store exports hand it slices of
``StoreReader.columns``, record iterables are cut into chunks of columns first.
JSON and NDJSON are for programs and carry every stored field of each record.

Where the bytes go is :func:`_write_to`'s job: standard output (``-``), a
non-regular file (``/dev/stdout``, a named pipe, ``/dev/null``, a process
substitution) written into directly, or a regular file written to a temp file
beside it and renamed over it only when everything was written, so an
interrupted export (an error, Ctrl-C, SIGTERM, SIGHUP, SIGQUIT) leaves no half
file and no temp file behind.

CSV is for spreadsheets, so by default every text cell that a spreadsheet
would read as a formula (starting with ``= + - @``, tab or CR, also right
after a ``;``, where Excel splits cells in ``;``-separator locales) gets a
leading ``'`` (OWASP "CSV injection"); ``safe=False`` writes values as stored.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import IO, Any

import orjson

from tracker.files import atomic_write

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

#: Signals that end an export as an error would: the temp file is removed.
#: SIGINT already raises KeyboardInterrupt; the others would end the process
#: without unwinding and leave a hidden temp file full of personal data.
CLEANUP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

_BOOL_FIELDS = frozenset({"is_bot", "is_premium", "blocked"})
_INT_FIELDS = frozenset({"id", "messages"})
#: Our own timestamps: never a formula, never neutralised.
_OWN_TEXT_FIELDS = frozenset({"first_seen", "last_seen"})
_BOOL = {True: "true", False: "false", None: ""}

Progress = Callable[[int], None]
Columns = Mapping[str, Sequence[Any]]
Pieces = Iterator[tuple[bytes, int]]


class ExportError(Exception):
    """The export could not be written; the message is one line naming the path."""


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
    return _write_to(target, pieces, progress)


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
    return _write_to(target, pieces, progress)


def _drain(pieces: Pieces, out: IO[bytes], progress: Progress | None) -> int:
    """The one write loop: every piece to ``out``, progress per piece; the row count."""
    count = 0
    for data, rows in pieces:
        out.write(data)
        if rows:
            count += rows
            if progress is not None:
                progress(rows)
    return count


def _write_to(target: str | os.PathLike[str], pieces: Pieces, progress: Progress | None) -> int:
    if str(target) == "-":
        return _write_stdout(pieces, progress)
    path = Path(target)
    try:
        with _cleanup_on_signals():
            if _is_special(path):
                # A device, pipe or socket is written into: replacing it with a
                # regular file would break whatever reads from it.
                with open(path, "wb") as out:
                    return _drain(pieces, out, progress)
            # Through symlinks: replace the file the link points to, not the link.
            with atomic_write(Path(os.path.realpath(path))) as out:
                return _drain(pieces, out, progress)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None


def _is_special(path: Path) -> bool:
    try:
        return not stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _write_stdout(pieces: Pieces, progress: Progress | None) -> int:
    if sys.stdout is None:
        raise ExportError("cannot write to standard output: it is closed")
    stdout = sys.stdout.buffer
    try:
        count = _drain(pieces, stdout, progress)
        stdout.flush()
    except BrokenPipeError:
        # `export - | head`: the reader left; that is not an error of ours.
        silence_stdout()
        return 0
    except OSError as exc:
        silence_stdout()
        raise ExportError(f"cannot write to standard output: {exc.strerror or exc}") from None
    return count


def silence_stdout() -> None:
    """Point standard output at /dev/null so that exit does not fail again on the unwritten rest."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@contextlib.contextmanager
def _cleanup_on_signals() -> Iterator[None]:
    """Turn the :data:`CLEANUP_SIGNALS` into an exit that unwinds (and removes the temp file)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in CLEANUP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# --------------------------------------------------------- protected paths


def refuse_protected(target: str, protected: Iterable[Path]) -> None:
    """Raise ExportError if ``target`` is one of ``protected`` however it is spelled.

    Compared after resolving symlinks and relative parts (whether or not the
    file exists yet), and by inode when both exist (a hard link).
    """
    if target == "-":
        return
    resolved = os.path.realpath(target)
    try:
        target_stat: os.stat_result | None = os.stat(target)
    except OSError:
        target_stat = None
    for path in protected:
        same = os.path.realpath(path) == resolved
        if not same and target_stat is not None and stat.S_ISREG(target_stat.st_mode):
            with contextlib.suppress(OSError):
                other = os.stat(path)
                same = (other.st_dev, other.st_ino) == (target_stat.st_dev, target_stat.st_ino)
        if same:
            raise ExportError(f"refusing to export onto {path}: it belongs to the tracker, not to exports")


#: errno values that mean "standard output cannot take more" (a full disk, a closed or broken file).
STDOUT_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF, errno.EPIPE})
