"""``python -m bench store``: the cost of recording a sighting, against the peers.

For each size (users already in the store) it measures, in one run:

* UserStore.seen() on existing users, including the journal and snapshot work
  the background threads do meanwhile (the timed loop ends with ``flush()``);
* sqlite3 as a typical SQLite-backed tracker stores users (WAL, autocommit,
  ``INSERT ... ON CONFLICT DO UPDATE``) with synchronous=FULL and =NORMAL;
* stock TinyDB (``table.upsert(doc, Query().id == uid)`` on JSONStorage) where
  it finishes in reasonable time;

then the longest pause a snapshot causes to seen() callers, the file size per
user, and resident memory per user (measured in a fresh child process).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from tracker.models import Profile, make_profile
from tracker.store import UserStore

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
FIRST_ID = 100_000_000


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


def build_store(path: Path, size: int) -> None:
    with UserStore(path) as store:
        for i in range(size):
            store.seen(make_profile_of(i), NOW)


def time_userstore(path: Path, size: int, updates: int) -> float:
    """µs per seen() on random existing users, journal/snapshot work included."""
    rng = random.Random(1)
    users = [make_profile_of(rng.randrange(size)) for _ in range(updates)]
    with UserStore(path) as store:
        start = time.perf_counter()
        for user in users:
            store.seen(user, NOW)
        store.flush()
        elapsed = time.perf_counter() - start
    return elapsed / updates * 1e6


def longest_pause(path: Path, size: int) -> tuple[float, float]:
    """(longest seen() call during a forced snapshot, snapshot duration), in ms."""
    rng = random.Random(2)
    users = [make_profile_of(rng.randrange(size)) for _ in range(50_000)]
    with UserStore(path) as store:
        worst, took = pause_during_snapshot(store, users)
    return worst * 1e3, took * 1e3


def pause_during_snapshot(store: UserStore, profiles: Sequence[Profile]) -> tuple[float, float]:
    """Snapshot on a second thread (as the store's own does) while this one keeps
    calling ``seen()``: (the longest ``seen()`` call, the snapshot's duration), in s."""
    done = threading.Event()
    took = [0.0]

    def snapshot() -> None:
        t0 = time.perf_counter()
        store.snapshot()  # what the snapshot thread runs
        took[0] = time.perf_counter() - t0
        done.set()

    worst = 0.0
    thread = threading.Thread(target=snapshot)
    thread.start()
    i = 0
    while not done.is_set():
        t0 = time.perf_counter()
        store.seen(profiles[i % len(profiles)], NOW)
        worst = max(worst, time.perf_counter() - t0)
        i += 1
    thread.join()
    return worst, took[0]


SQL_UPSERT = (
    "INSERT INTO users (id, first_name, last_name, username, language_code, is_bot, is_premium,"
    " first_seen, last_seen, messages) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
    " ON CONFLICT(id) DO UPDATE SET first_name=excluded.first_name, last_name=excluded.last_name,"
    " username=excluded.username, language_code=excluded.language_code,"
    " is_premium=excluded.is_premium, last_seen=excluded.last_seen, messages=messages+1"
)


def time_sqlite(path: Path, size: int, updates: int, synchronous: str) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, username TEXT,"
        " language_code TEXT, is_bot INTEGER, is_premium INTEGER, first_seen TEXT, last_seen TEXT,"
        " messages INTEGER, source TEXT, blocked INTEGER DEFAULT 0, blocked_at TEXT)"
    )
    ts = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")

    def row(user: dict[str, Any]) -> tuple[Any, ...]:
        return (user["id"], user["first_name"], user["last_name"], user["username"],
                user["language_code"], user["is_bot"], user["is_premium"], ts, ts)

    db.execute("BEGIN")
    db.executemany(SQL_UPSERT, (row(make_user(i)) for i in range(size)))
    db.execute("COMMIT")
    rng = random.Random(1)
    rows = [row(make_user(rng.randrange(size))) for _ in range(updates)]
    start = time.perf_counter()
    for values in rows:  # autocommit: one transaction per update, as a bot does it
        db.execute(SQL_UPSERT, values)
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed / updates * 1e6


def time_tinydb(path: Path, size: int, updates: int) -> float:
    from tinydb import Query, TinyDB

    # Build the file directly: inserting 100k docs through TinyDB would take hours.
    ts = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    table = {str(i + 1): {**make_user(i), "first_seen": ts, "last_seen": ts, "messages": 1}
             for i in range(size)}
    path.write_text(json.dumps({"users": table}))
    db = TinyDB(path)
    users = db.table("users")
    rng = random.Random(1)
    docs = [{**make_user(rng.randrange(size)), "last_seen": ts} for _ in range(updates)]
    q = Query()
    start = time.perf_counter()
    for doc in docs:
        users.upsert(doc, q.id == doc["id"])
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed / updates * 1e6


def resident_bytes_per_user(path: Path, size: int) -> float:
    """RSS growth of a fresh process opening the store as writer, per user."""
    code = (
        "import gc, psutil, sys; from tracker.store import UserStore;"
        "p = psutil.Process(); gc.collect(); before = p.memory_info().rss;"
        "s = UserStore(sys.argv[1]); gc.collect(); after = p.memory_info().rss;"
        "print(after - before); s.close()"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / size


def fmt_ratio(other: float | None, ours: float) -> str:
    return f"{other / ours:6.1f}x" if other else "     -"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench store", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000,1000000",
                        help="comma-separated store sizes (default: %(default)s)")
    parser.add_argument("--updates", type=int, default=200_000, help="seen() calls timed per size")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    tinydb_updates = {1_000: 200, 10_000: 20, 100_000: 3}

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB; {args.updates:,} updates per size")
    header = (f"{'users':>9} | {'UserStore':>10} | {'sqlite FULL':>11} | {'sqlite NORMAL':>13} | "
              f"{'TinyDB':>10} | {'vs NORMAL':>9} | {'vs FULL':>7} | {'vs TinyDB':>9} | "
              f"{'file B/user':>11} | {'RSS B/user':>10}")
    rows: list[str] = []
    pauses: list[str] = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            store_path = folder / "users.json"
            build_store(store_path, size)
            # Every file the store keeps (store, column cache, journal), not the store file alone.
            file_per_user = sum(p.stat().st_size for p in folder.glob("users.json*")) / size
            ours = time_userstore(store_path, size, args.updates)
            sql_updates = min(args.updates, 20_000)
            full = time_sqlite(folder / "full.db", size, min(sql_updates, 2_000), "FULL")
            normal = time_sqlite(folder / "normal.db", size, sql_updates, "NORMAL")
            tiny: float | None = None
            if size in tinydb_updates:
                tiny = time_tinydb(folder / "tinydb.json", size, tinydb_updates[size])
            rss = resident_bytes_per_user(store_path, size)
            if size >= 100_000:
                worst, took = longest_pause(store_path, size)
                pauses.append(f"{size:>9,} users: longest seen() pause during a snapshot "
                              f"{worst:6.1f} ms (snapshot took {took:,.0f} ms)")
            gc.collect()
        tiny_text = f"{tiny:8.0f}µs" if tiny else "         -"
        rows.append(
            f"{size:>9,} | {ours:8.2f}µs | {full:9.1f}µs | {normal:11.1f}µs | {tiny_text} | "
            f"{fmt_ratio(normal, ours):>9} | {fmt_ratio(full, ours):>7} | {fmt_ratio(tiny, ours):>9} | "
            f"{file_per_user:11.0f} | {rss:10.0f}"
        )
        print(rows[-1] if len(rows) > 1 else header + "\n" + rows[-1], flush=True)
    print()
    for line in pauses:
        print(line)
    print("\nTargets: <= 5 µs/update at every size (>= 3x faster than sqlite NORMAL); "
          "<= 100 ms longest pause at 100k; all files <= 400 B/user (issue 11); RSS <= 1 KB/user.")


