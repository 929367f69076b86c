"""Erase one user from Pyrogram's session peer cache (the ``*.session`` SQLite file).

Pyrogram remembers every user it meets (id, access hash, username, phone number)
so it can address them later. A user who asked to be forgotten must leave that
cache too, not only the store. Pyrogram's storage has no method to remove a peer,
so this speaks SQL to its connection, for both schemas:

* pyrogram 2.0.106: ``peers(id, access_hash, type, username, phone_number, ...)``;
* kurigram: ``peers(id, access_hash, type, phone_number, ...)`` plus
  ``usernames(id, username)``.

``secure_delete`` makes SQLite overwrite the deleted rows with zeros, so the
name and phone number do not linger in free pages of the file.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: SQLite integers are signed 64-bit: an id outside cannot be in the cache (and would not bind).
_SQLITE_INT = range(-(2**63), 2**63)


def erase_peer(conn: sqlite3.Connection, user_id: int) -> bool:
    """Delete ``user_id`` from the peer tables reachable through ``conn`` and commit.

    Returns True when a row was removed. Tables that do not exist (``usernames``
    before kurigram) are skipped.
    """
    if user_id not in _SQLITE_INT:
        return False
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    removed = 0
    conn.execute("PRAGMA secure_delete = ON")
    with conn:  # commits (pyrogram itself commits only on save(); a crash must not bring the row back)
        # usernames first: it refers to peers(id).
        for table in ("usernames", "peers"):
            if table in tables:
                removed += conn.execute(f"DELETE FROM {table} WHERE id = ?", (user_id,)).rowcount
    return removed > 0


def forget_peer(storage: Any, user_id: int) -> bool:
    """Erase ``user_id`` from a client's session storage (``client.storage``).

    Uses the storage's own connection when it is open; a file session that is not
    open (the control channel works before the client connects) is opened briefly.
    Anything else (an unopened in-memory session, a storage that is not SQLite) has
    nothing to erase or nothing we can reach: False. Errors are logged, never raised:
    the record is already erased and the user has been answered.
    """
    try:
        with _connection(storage) as conn:
            return False if conn is None else erase_peer(conn, user_id)
    except (sqlite3.Error, OSError) as exc:
        log.warning("cannot remove user %s from the session's peer cache: %s", user_id, exc)
        return False


def forget_peer_in_file(session_file: Path, user_id: int) -> bool:
    """Erase ``user_id`` from a session file that no client has open (e.g. the CLI's ``forget``)."""
    if not session_file.is_file():
        return False
    conn = sqlite3.connect(str(session_file), timeout=1)
    try:
        return erase_peer(conn, user_id)
    finally:
        conn.close()


@contextlib.contextmanager
def _connection(storage: Any) -> Iterator[sqlite3.Connection | None]:
    try:
        conn = getattr(storage, "conn", None)
    except RuntimeError:  # kurigram: "conn accessed before open()"
        conn = None
    if isinstance(conn, sqlite3.Connection) and _is_open(conn):
        yield conn
        return
    database = getattr(storage, "database", None)
    if isinstance(database, str | Path) and str(database) != ":memory:" and Path(database).is_file():
        file_conn = sqlite3.connect(str(database), timeout=1)
        try:
            yield file_conn
        finally:
            file_conn.close()
        return
    yield None


def _is_open(conn: sqlite3.Connection) -> bool:
    # Pyrogram's close() closes the connection but keeps the object.
    try:
        conn.total_changes  # noqa: B018 - raises ProgrammingError once closed
    except sqlite3.ProgrammingError:
        return False
    return True
