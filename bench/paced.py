"""A stream of updates paced like a busy bot, and the trackers ``bench store`` feeds it to.

Every tracker gets the same stream: ``rate`` updates a second, delivered in
ticks of 10 ms (a bot handles updates as they arrive; a tick is the finest
pacing ``time.sleep`` keeps reliably). Between ticks the process sleeps, so the
store's background threads run at the moment and the rate they would in the bot.
What a tracker costs is the process CPU time (every thread: the caller, the
journal and snapshot threads, sqlite's work in the calling thread) over the run,
per update, less what the same loop costs with a tracker that does nothing.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from tracker.models import Profile, make_profile

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
FIRST_ID = 100_000_000
TICK = 0.01
#: One update in NEW_EVERY comes from a user the tracker has not seen yet.
NEW_EVERY = 100
#: Existing users are replayed from a pool this large: big enough that every
#: record touched is a cache miss at 100k+ users, small enough not to weigh on
#: the process (a pool of 1M profiles would cost ~250 MB and slow every GC pass).
POOL = 1 << 17


def make_user(i: int) -> dict[str, Any]:
    """A plausible user: ~half have a last name, most a username."""
    return {
        "id": FIRST_ID + i,
        "first_name": f"User{i}",
        "last_name": f"Lastname{i}" if i % 2 else None,
        "username": f"user_{i}" if i % 5 else None,
        "language_code": ("en", "ru", "es", "de", None)[i % 5],
        "is_bot": False,
        "is_premium": bool(i % 7 == 0) if i % 3 else None,
    }


def make_profile_of(i: int) -> Profile:
    """The same user as the handlers hand it to the store."""
    return make_profile(**{"user_id" if k == "id" else k: v for k, v in make_user(i).items()})


class UpdateStream:
    """Profiles of random existing users (from a replayed pool) and, one in NEW_EVERY, a new user.

    Each update's Profile is built afresh, its strings new objects, as the
    handlers build one from the User that Pyrogram has just decoded: only the
    store's own data is cold, not the update it is handed.
    """

    def __init__(self, size: int, seed: int) -> None:
        import random

        rng = random.Random(seed)
        self._pool = [_encoded(make_profile_of(rng.randrange(size)))
                      for _ in range(min(POOL, max(size, 1) * 4))]
        self._at = 0
        self._taken = 0
        self._next_new = size

    def take(self, n: int) -> list[Profile]:
        pool, at = self._pool, self._at
        encoded = pool[at : at + n]
        while len(encoded) < n:  # wrapped around the pool
            encoded += pool[: n - len(encoded)]
        self._at = (at + n) % len(pool)
        batch = list(map(_fresh, encoded))
        first_new = -self._taken % NEW_EVERY
        for k in range(first_new, n, NEW_EVERY):
            batch[k] = make_profile_of(self._next_new)
            self._next_new += 1
        self._taken += n
        return batch


def _encoded(profile: Profile) -> tuple[Any, ...]:
    """A profile with its text as bytes (decoded again by _fresh into new str objects)."""
    return tuple(value.encode() if isinstance(value, str) else value for value in profile)


def _fresh(encoded: tuple[Any, ...]) -> Profile:
    user_id, first_name, last_name, username, language_code, is_bot, is_premium = encoded
    return Profile(
        user_id,
        None if first_name is None else first_name.decode(),
        None if last_name is None else last_name.decode(),
        None if username is None else username.decode(),
        None if language_code is None else language_code.decode(),
        is_bot,
        is_premium,
    )


class Tracker(Protocol):
    """Something that records a batch of sightings, all at the same second."""

    def apply(self, batch: list[Profile], at: datetime, stamp: str) -> None: ...


@dataclass(frozen=True)
class Run:
    """What one paced run cost, in seconds, and how many updates it fed."""

    updates: int
    cpu: float  #: process CPU time, every thread
    caller_cpu: float  #: CPU time of the thread that fed the updates
    in_calls: float  #: wall time the feeding thread spent inside the tracker's calls
    wall: float

    def per_update(self, baseline: Run | None = None) -> PerUpdate:
        """µs per update, less the cost of the same loop feeding a tracker that does nothing."""
        base = baseline.per_update() if baseline else PerUpdate(0.0, 0.0, 0.0)
        scale = 1e6 / self.updates
        return PerUpdate(
            self.cpu * scale - base.cpu,
            self.caller_cpu * scale - base.caller_cpu,
            self.in_calls * scale - base.in_calls,
        )


@dataclass(frozen=True)
class PerUpdate:
    """µs per update: all the process's CPU, the feeding thread's CPU, time blocked in calls."""

    cpu: float
    caller_cpu: float
    in_calls: float


def run_paced(
    tracker: Tracker, stream: UpdateStream, rate: int, done: Callable[[int, float], bool]
) -> Run:
    """Feed ``tracker`` ``rate`` updates a second until ``done(updates, seconds)``."""
    per_tick = max(1, round(rate * TICK))
    second = -1
    at, stamp = NOW, ""
    updates = 0
    in_calls = 0.0
    cpu0, caller0 = time.process_time(), time.thread_time()
    start = time.perf_counter()
    while True:
        now = time.perf_counter()
        elapsed = now - start
        if done(updates, elapsed):
            break
        if int(elapsed) != second:  # the clock moves on by the second, as a bot's would
            second = int(elapsed)
            at = NOW + timedelta(seconds=second)
            stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        batch = stream.take(per_tick)
        called = time.perf_counter()
        tracker.apply(batch, at, stamp)
        after = time.perf_counter()
        in_calls += after - called
        updates += per_tick
        wait = start + updates / rate - after
        if wait > 0:  # behind schedule (a slow tracker): no sleep, catch up
            time.sleep(wait)
    wall = time.perf_counter() - start
    return Run(updates, time.process_time() - cpu0, time.thread_time() - caller0, in_calls, wall)


class NullTracker:
    """Does nothing: its run is the cost of the loop itself, subtracted from every tracker's."""

    def apply(self, batch: list[Profile], at: datetime, stamp: str) -> None:
        for _profile in batch:
            pass


class StoreTracker:
    """The store as the handlers call it: ``seen(profile, at)`` per update."""

    def __init__(self, seen: Callable[[Profile, datetime], bool]) -> None:
        self._seen = seen

    def apply(self, batch: list[Profile], at: datetime, stamp: str) -> None:
        seen = self._seen
        for profile in batch:
            seen(profile, at)


SQL_SCHEMA = (
    "CREATE TABLE users (id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, username TEXT,"
    " language_code TEXT, is_bot INTEGER, is_premium INTEGER, first_seen TEXT, last_seen TEXT,"
    " messages INTEGER, source TEXT, blocked INTEGER DEFAULT 0, blocked_at TEXT)"
)
SQL_UPSERT = (
    "INSERT INTO users (id, first_name, last_name, username, language_code, is_bot, is_premium,"
    " first_seen, last_seen, messages) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
    " ON CONFLICT(id) DO UPDATE SET first_name=excluded.first_name, last_name=excluded.last_name,"
    " username=excluded.username, language_code=excluded.language_code,"
    " is_premium=excluded.is_premium, last_seen=excluded.last_seen, messages=messages+1"
)


def build_sqlite(path: Path, size: int) -> None:
    """A database of the same ``size`` users the store holds, in one transaction."""
    stamp = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(SQL_SCHEMA)
    db.execute("BEGIN")
    db.executemany(SQL_UPSERT, ((*make_profile_of(i), stamp, stamp) for i in range(size)))
    db.execute("COMMIT")
    db.close()


class SqliteTracker:
    """A sqlite3 tracker: an upsert per update, a commit every ``batch`` updates (1: autocommit)."""

    def __init__(self, path: Path, synchronous: str, batch: int) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self._batch = batch
        self._pending = 0

    def apply(self, batch: list[Profile], at: datetime, stamp: str) -> None:
        execute = self.db.execute
        if self._batch == 1:  # autocommit: a transaction per statement
            for profile in batch:
                execute(SQL_UPSERT, (*profile, stamp, stamp))
            return
        for profile in batch:
            if not self._pending:
                execute("BEGIN")
            execute(SQL_UPSERT, (*profile, stamp, stamp))
            self._pending += 1
            if self._pending >= self._batch:
                execute("COMMIT")
                self._pending = 0

    def close(self) -> None:
        if self._pending:
            self.db.execute("COMMIT")
        self.db.close()


def file_identity(path: Path) -> tuple[int, int]:
    """(inode, mtime): it changes when a snapshot replaces the store file (DESIGN.md:
    "write a temp file ..., os.replace"), whatever the store keeps beside it."""
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns
