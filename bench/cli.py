"""``python -m bench cli``: ``stats`` and ``export`` as whole processes, against sqlite3.

For each size it writes a store file directly in the TinyDB layout (faster
than ``seen()`` one by one), opens and closes it once as the bot would (which
leaves the column file beside it), and a sqlite3 database of the same users
(the peer a user would pick instead: one table, indexes on the timestamps), then
times, each as a fresh process (best of ``--repeat``):

* start-up: ``cli.py stats --json`` on an empty store vs the SQL script on an
  empty database;
* ``cli.py stats --json`` vs the same figures through SQL queries, with a
  fresh column cache and with a stale one: the store file copied over itself
  before each run (same bytes, new inode and modification time), as after a
  copy of the data folder;
* ``cli.py export FILE`` (CSV) vs ``csv.writer`` over ``SELECT``;
* ``cli.py users --limit 50`` and ``cli.py show ID`` (issue 12: within the
  time and memory of ``stats``), time and peak RSS per user;

and in-process the CSV writer alone (rows/s with the columns already
loaded), plus the peak memory of ``stats`` per user (``wait4`` rusage).
A figure and its sqlite3 peer are run in turns (best of each), so a busy
spell on the machine hits both. The peer is a plain ``python -c`` script
(sqlite3, json, zoneinfo; no CLI framework) with indexes on the timestamps.
Targets (issue 5): stats <= 0.2 s at 100k and <= 1.5 s at 1M users, export
>= 500k rows/s and <= 4 s for 1M users end to end, stats <= 1 KB per user;
(issue 11) stats faster than sqlite3 at 100k and 1M, also with a stale cache:
the four ``stats`` figures and their peers are summed up at the end
(``--stats-only`` skips the other commands).
"""

from __future__ import annotations

import argparse
import compileall
import functools
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from tracker.models import format_ts

REPO = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC)
FIRST_ID = 100_000_000
LANGS = ["en", "ru", "de", "es", "fa", "pt-br", None, "it", "uk", "tr"]
SOURCES = [None] * 6 + ["ads", "promo", "ref_42", "-x"]

SQL_STATS = """
import sqlite3, sys, json
from datetime import datetime, timedelta, UTC
from zoneinfo import ZoneInfo
conn = sqlite3.connect(sys.argv[1])
now = datetime.now(UTC); tz = ZoneInfo("UTC")
ts = lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
today = datetime.combine(now.date(), datetime.min.time(), tzinfo=tz)
q = lambda sql, *a: conn.execute(sql, a).fetchall()
out = {
  "total_users": q("select count(*) from users")[0][0],
  "new_today": q("select count(*) from users where first_seen >= ?", ts(today))[0][0],
  "active_24h": q("select count(*) from users where last_seen >= ?", ts(now - timedelta(hours=24)))[0][0],
  "active_7d": q("select count(*) from users where last_seen >= ?", ts(now - timedelta(days=7)))[0][0],
  "active_30d": q("select count(*) from users where last_seen >= ?", ts(now - timedelta(days=30)))[0][0],
  "blocked_users": q("select count(*) from users where blocked")[0][0],
  "messages_total": q("select sum(messages) from users")[0][0],
  "first_seen": q("select min(first_seen) from users")[0][0],
  "last_seen": q("select max(last_seen) from users")[0][0],
  "languages": dict(q("select coalesce(language_code, 'unknown'), count(*) from users "
                      "group by 1 order by 2 desc")),
  "sources": dict(q("select source, count(*) from users where source is not null "
                    "group by 1 order by 2 desc")),
  "new_per_day": q("select substr(first_seen, 1, 10), count(*) from users where first_seen >= ? group by 1",
                   ts(today - timedelta(days=29))),
}
out["reachable_users"] = out["total_users"] - out["blocked_users"]
print(json.dumps(out))
"""

SQL_EXPORT = """
import csv, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
B = {1: "true", 0: "false", None: ""}
with open(sys.argv[2], "w", newline="", encoding="utf-8") as fh:
    w = csv.writer(fh, lineterminator="\\n")
    w.writerow("id,username,first_name,last_name,language_code,is_bot,is_premium,first_seen,last_seen,"
               "messages,source,blocked".split(","))
    w.writerows((r[0], r[1], r[2], r[3], r[4], B[r[5]], B[r[6]], r[7], r[8], r[9], r[10], B[r[11]])
                for r in conn.execute("select id, username, first_name, last_name, language_code, "
                                      "is_bot, is_premium, first_seen, last_seen, messages, source, "
                                      "blocked from users"))
"""


def generate(n: int, folder: Path, seed: int = 5) -> tuple[Path, Path]:
    """Write ``users.json`` (TinyDB layout) and ``users.sqlite`` with the same ``n`` users."""
    rnd = random.Random(seed)
    # strftime per user would dominate generation: draw from a pool of stamps.
    span = 730 * 86400
    pool = sorted(rnd.randrange(0, span) for _ in range(20_000))
    stamps = [format_ts(NOW - timedelta(seconds=s)) for s in pool]  # newest first
    users: dict[str, dict[str, Any]] = {}
    rows = []
    for i in range(n):
        uid = FIRST_ID + i * 7
        a, b = rnd.randrange(len(stamps)), rnd.randrange(len(stamps))
        last, first = stamps[min(a, b)], stamps[max(a, b)]
        blocked = i % 11 == 0
        record = {
            "id": uid, "first_name": f"Name{i}", "last_name": "Last" if i % 3 == 0 else None,
            "username": f"user{i}" if i % 2 else None, "language_code": LANGS[i % len(LANGS)],
            "is_bot": i % 97 == 0, "is_premium": None if i % 4 == 0 else i % 5 == 0,
            "first_seen": first, "last_seen": last, "messages": rnd.randrange(0, 50),
            "source": SOURCES[rnd.randrange(len(SOURCES))], "blocked": blocked,
            "blocked_at": last if blocked else None,
        }
        users[str(uid)] = record
        rows.append(tuple(record.values()))
    store = folder / "users.json"
    store.write_bytes(orjson.dumps({"users": users, "meta": {"1": {"schema": 1}}}))
    del users
    # Open and close it once as the bot would: that writes the snapshot in our
    # own layout and the column file beside it, the state a running bot leaves.
    from tracker.store import UserStore

    UserStore(store).close()
    db = folder / "users.sqlite"
    write_sqlite(db, rows)
    return store, db


def write_sqlite(db: Path, rows: list[tuple[Any, ...]]) -> None:
    """The peer's database: one table of ``rows`` (record values in field order), timestamps indexed."""
    db.unlink(missing_ok=True)
    conn = sqlite3.connect(db)
    conn.execute(
        "create table users (id integer primary key, first_name text, last_name text, username text, "
        "language_code text, is_bot integer, is_premium integer, first_seen text, last_seen text, "
        "messages integer, source text, blocked integer, blocked_at text)"
    )
    conn.executemany("insert into users values (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    conn.execute("create index users_first_seen on users(first_seen)")
    conn.execute("create index users_last_seen on users(last_seen)")
    conn.commit()
    conn.close()


def generate_elsewhere(n: int, folder: Path) -> tuple[Path, Path]:
    """:func:`generate` in a child process.

    On Linux a child's peak RSS (``ru_maxrss``) starts at its parent's size
    at fork; keeping the generated data out of this process keeps the
    measured processes' memory figures their own.
    """
    code = "import sys; from pathlib import Path; from bench.cli import generate; " \
           "generate(int(sys.argv[1]), Path(sys.argv[2]))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code, str(n), str(folder)], check=True, env=env)
    return folder / "users.json", folder / "users.sqlite"


Run = tuple[float, int]  # wall time (s), peak RSS (bytes)


def run_once(cmd: list[str], before: Callable[[], object] | None = None) -> Run:
    """One run of ``cmd`` (after ``before()``): wall time and peak RSS; a failure stops the bench."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if before is not None:
        before()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        assert proc.stderr is not None
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss * 1024


def timed(cmd: list[str], repeat: int) -> Run:
    """Best wall time over ``repeat`` runs of ``cmd`` and the peak RSS (bytes) of the best run."""
    return min(run_once(cmd) for _ in range(repeat))


def timed_with_peer(
    cmd: list[str], peer: list[str], repeat: int, before: Callable[[], object] | None = None
) -> tuple[Run, Run]:
    """:func:`timed` of ``cmd`` and of its ``peer``, run in turns (``before`` each run of ``cmd``)."""
    ours, theirs = [], []
    for _ in range(repeat):
        ours.append(run_once(cmd, before))
        theirs.append(run_once(peer))
    return min(ours), min(theirs)


def versus(label: str, ours: float, peer: float) -> str:
    """``label  tracker X s   sqlite3 Y s   ratio Z x``."""
    return f"{label:<9}tracker {ours:7.3f} s   sqlite3 {peer:7.3f} s   ratio {ours / peer:5.2f}x"


def copy_over(path: Path) -> None:
    """Replace ``path`` by a copy of itself (flushed to disk): the same bytes, a new inode and mtime."""
    copy = path.with_name(path.name + ".copy")
    shutil.copyfile(path, copy)
    fd = os.open(copy, os.O_RDONLY)
    try:
        os.fsync(fd)  # the copy's write-back is not charged to the run that follows
    finally:
        os.close(fd)
    os.replace(copy, path)


def writer_only(store: Path, out: Path) -> tuple[int, float]:
    """Export with the columns already loaded: the CSV writer's own throughput."""
    from tracker.export import CSV_COLUMNS, export_columns
    from tracker.store import StoreReader

    columns = StoreReader(store).columns(CSV_COLUMNS)
    start = time.perf_counter()
    count = export_columns(columns, out)
    return count, time.perf_counter() - start


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench cli", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated user counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    parser.add_argument("--stats-only", action="store_true", help="only stats and its peer")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    py = sys.executable
    cli = str(REPO / "cli.py")
    compileall.compile_dir(REPO / "tracker", quiet=1)  # as ``make`` leaves it
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; best of {args.repeat}; whole processes; "
          "each figure and its sqlite3 peer run in turns")
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        folder = Path(tmp)
        empty, empty_db = folder / "empty.json", folder / "empty.sqlite"
        empty.write_bytes(orjson.dumps({"users": {}, "meta": {"1": {"schema": 1}}}))
        write_sqlite(empty_db, [])
        (base_time, base_rss), (sql_base, _) = timed_with_peer(
            [py, cli, "--store", str(empty), "stats", "--json"], [py, "-c", SQL_STATS, str(empty_db)],
            args.repeat)
        print(versus("start-up", base_time, sql_base) + f"   (empty store; {base_rss / 2**20:.0f} MB RSS)\n")
        summary: list[tuple[str, float, float]] = []
        for n in sizes:
            start = time.perf_counter()
            store, db = generate_elsewhere(n, folder)
            print(f"== {n:,} users (store {store.stat().st_size / 2**20:.0f} MB, sqlite "
                  f"{db.stat().st_size / 2**20:.0f} MB; generated in {time.perf_counter() - start:.1f} s)")
            stats_cmd = [py, cli, "--store", str(store), "stats", "--json"]
            sql_cmd = [py, "-c", SQL_STATS, str(db)]
            (st, st_rss), (sq, _) = timed_with_peer(stats_cmd, sql_cmd, args.repeat)
            target = 0.2 if n <= 100_000 else 1.5
            per_user = (st_rss - base_rss) / n
            print(versus("stats", st, sq) + f"   target <= {target} s and faster than sqlite3: "
                  f"{'ok' if st <= target and st < sq else 'MISSED'}")
            print(f"        peak RSS {st_rss / 2**20:.0f} MB = {per_user:,.0f} B/user above start-up   "
                  f"target <= 1024 B/user: {'ok' if per_user <= 1024 else 'MISSED'}")
            # The store file copied over itself before each run: its column cache no longer matches it.
            (copied, _), (sq_then, _) = timed_with_peer(stats_cmd, sql_cmd, args.repeat,
                                                        before=functools.partial(copy_over, store))
            print(versus("copied", copied, sq_then) + "   (the store file copied before each run, as in a "
                  f"copied data folder): {'ok' if copied < sq_then else 'MISSED'}")
            summary += [(f"{n:>9,} fresh", st, sq), (f"{n:>9,} copied", copied, sq_then)]
            if args.stats_only:
                store.unlink()
                db.unlink()
                continue
            out = folder / "out.csv"
            (ex, _), (sx, _) = timed_with_peer([py, cli, "--store", str(store), "export", str(out)],
                                               [py, "-c", SQL_EXPORT, str(db), str(folder / "sql.csv")],
                                               args.repeat)
            print(versus("export", ex, sx) + f"   {n / ex:,.0f} vs {n / sx:,.0f} rows/s end to end"
                  + (f"   target 1M <= 4 s: {'ok' if ex <= 4 else 'MISSED'}" if n >= 1_000_000 else ""))
            for label, argv in (("users --limit 50", ["users", "--limit", "50"]),
                                ("show ID", ["show", str(FIRST_ID + 7 * (n // 2))])):
                took, rss = timed([py, cli, "--store", str(store), *argv], args.repeat)
                per = (rss - base_rss) / n
                print(f"{label:<17}{took:7.3f} s ({took / st:4.1f}x stats)   peak RSS {rss / 2**20:.0f} MB = "
                      f"{per:,.0f} B/user above start-up   target <= 1024 B/user: "
                      f"{'ok' if per <= 1024 else 'MISSED'}")
            count, writer = writer_only(store, out)
            print(f"        writer alone (store loaded): {count / writer:,.0f} rows/s   "
                  f"target >= 500,000: {'ok' if count / writer >= 500_000 else 'MISSED'}\n")
            store.unlink()
            db.unlink()
    print("stats --json against sqlite3 (issue 11: faster at 100k and 1M, with a fresh and a copied store):")
    for label, ours, peer in summary:
        print(f"  {label:<17}tracker {ours:7.3f} s   sqlite3 {peer:7.3f} s   ratio {ours / peer:5.2f}x   "
              f"{'ok' if ours < peer else 'MISSED'}")
