"""Where an export's bytes go: standard output, a special file, or a regular file replaced whole.

:func:`write_to` takes the pieces an exporter produces (``(bytes, rows)``) and
drains them with one loop, :func:`_drain`, that writes and reports progress.
Standard output is ``-``; a non-regular file (``/dev/stdout``, a named pipe,
``/dev/null``, a process substitution) is written into directly; a regular file
is written to a temp file beside it and renamed over it only when everything
was written, so an interrupted export (an error, Ctrl-C, SIGTERM, SIGHUP,
SIGQUIT) leaves no half file and no temp file behind. :func:`refuse_protected`
keeps an export off the tracker's own files, however their path is spelled.
The formats themselves are :mod:`tracker.export`'s.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from tracker.files import atomic_write

if TYPE_CHECKING:
    from tracker.config import Settings

#: Signals that end an export as an error would: the temp file is removed.
#: SIGINT already raises KeyboardInterrupt; the others would end the process
#: without unwinding and leave a hidden temp file full of personal data.
CLEANUP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

Progress = Callable[[int], None]
#: What an exporter produces: ready bytes and how many rows they hold.
Pieces = Iterator[tuple[bytes, int]]


class ExportError(Exception):
    """The export could not be written; the message is one line naming the path."""


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


def write_to(target: str | os.PathLike[str], pieces: Pieces, progress: Progress | None) -> int:
    """Write every piece to ``target`` (``"-"``: standard output); the row count. ExportError on failure."""
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


def protected_paths(settings: Settings) -> list[Path]:
    """The store and every side file of it: an export must never replace one."""
    store = settings.store
    names = (settings.session, f"{settings.session}-cli")
    sessions = [settings.data_dir / f"{name}.session" for name in names]
    return [
        store,
        *(
            store.with_name(store.name + suffix)
            for suffix in (".journal", ".columns", ".history", ".lock", ".sock")
        ),
        *sessions,
        *(path.with_name(path.name + "-journal") for path in sessions),
    ]


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
