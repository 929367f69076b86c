"""Rescue files: where a writer puts the changes it could not save (disk full at close).

When ``close()`` cannot append its last changes to the journal (the disk is
full, the folder went read-only, ...) it keeps retrying for
``Tuning.close_retry_seconds``, then writes those changes, in the journal's own
format (generation marker with the store id, one checksummed batch), to the
first writable rescue folder: ``$TRACKER_RESCUE_DIR``, the user's state folder,
``/var/tmp``, the temp folder. The error names the file. The next writer that
opens the store looks in the same folders, applies the rescue files that belong
to it (same store id, not older than the store) and removes them once they are
in the store file; a stale one is reported in the log, never applied.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from tracker.files import PRIVATE, fsync_folder, open_regular, read_regular, unlink_quietly
from tracker.store.errors import StoreError, os_reason
from tracker.store.journal import Effect, committed_changes, first_generation, fold

log = logging.getLogger("tracker.store")

_SUFFIX = ".rescue"


def default_rescue_dirs() -> tuple[Path, ...]:
    """Where rescue files go, first writable wins (and where an open looks for them)."""
    dirs = []
    if os.environ.get("TRACKER_RESCUE_DIR"):
        dirs.append(Path(os.environ["TRACKER_RESCUE_DIR"]))
    state_home = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    dirs.append(Path(state_home) / "telegram-user-tracker")
    dirs.extend([Path("/var/tmp"), Path(tempfile.gettempdir())])
    return tuple(dict.fromkeys(dirs))


def _prefix(store_path: Path, store_id: str | None) -> str:
    return f"{store_path.name}.{store_id or 'no-id'}."


def write_rescue(dirs: tuple[Path, ...], store_path: Path, store_id: str | None, journal: bytes) -> Path:
    """Write ``journal`` (a marker and one committed batch) to the first rescue folder that takes it."""
    name = f"{_prefix(store_path, store_id)}{time.time_ns()}{_SUFFIX}"
    problems = []
    for folder in dirs:
        path = folder / name
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
            try:
                view = memoryview(journal)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_folder(folder)
        except OSError as exc:
            problems.append(f"{folder}: {os_reason(exc)}")
            unlink_quietly(path)
            continue
        return path
    raise StoreError(f"cannot write a rescue file for store {store_path} anywhere ({'; '.join(problems)})")


def find_rescues(dirs: tuple[Path, ...], store_path: Path, store_id: str | None) -> list[Path]:
    """The rescue files of this store, oldest first."""
    prefix = _prefix(store_path, store_id)
    found: list[Path] = []
    for folder in dirs:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found.extend(folder / n for n in names if n.startswith(prefix) and n.endswith(_SUFFIX))
    return sorted(found, key=lambda path: path.name)


def read_rescue(path: Path, store_id: str | None, store_gen: int) -> Effect | None:
    """The changes a rescue file holds; None (logged) when it is older than the store."""
    try:
        data = read_regular(path) or b""
    except OSError as exc:
        raise StoreError(f"cannot read rescue file {path}: {os_reason(exc)}") from None
    gen = first_generation(data)
    if gen is None or gen < store_gen:
        log.warning("rescue file %s is older than the store (or damaged): not applied; remove it", path)
        return None
    return fold(committed_changes(data, gen, path, store_id))
