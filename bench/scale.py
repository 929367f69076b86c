"""``python -m bench scale``: a store of N users from open to reopen, against sqlite3.

A fast generator streams an N-user store file in the TinyDB layout (and a
sqlite3 database of the same users, the peer), then each step runs as a fresh
process so its time and peak memory (``wait4`` rusage) are its own:

* **open** the store as the writer (the bot's start: parse, check, first
  snapshot, column cache), then ``seen()`` on random existing users (the
  journal and snapshot threads running), then a forced snapshot while one
  thread keeps calling ``seen()`` (the longest call is the pause persistence
  causes), then ``close()``;
* **reopen** as the writer and close (the bot's restart);
* ``stats --json`` as a whole process, with a fresh column cache and with a
  stale one (the store file touched, as after copying the data folder),
  against the same figures through SQL on the indexed sqlite3 database;

and the bytes per user of every file the store leaves (store, journal,
column cache) against the sqlite3 file. ``--repo`` runs another checkout's
``tracker`` (e.g. the code before a change) with the same generator.
Targets (issue 11): any size opens and reopens; peak memory while opening
<= 1 KB/user; longest pause <= 50 ms at 1M, <= 100 ms at 10M; all files
<= 400 B/user; ``stats`` faster than sqlite3, also with a stale cache.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
NOW = datetime.now(UTC).replace(microsecond=0)
FIRST_ID = 100_000_000
LANGS = ["en", "ru", "de", "es", "fa", "pt-br", None, "it", "uk", "tr"]
SOURCES = [None] * 6 + ["ads", "promo", "ref_42", "-x"]
CHUNK = 5_000  # users per line, as the writer's snapshots have them
#: Up to this size the open of a one-line store file (older versions' layout) is measured too.
ONE_LINE_UP_TO = 2_000_000


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def profile_of(i: int) -> dict[str, Any]:
    """The profile fields of generated user ``i`` (the updates of ``child_open`` repeat them)."""
    return {
        "id": FIRST_ID + i * 7, "first_name": f"Name{i}", "last_name": "Last" if i % 3 == 0 else None,
        "username": f"user{i}" if i % 2 else None, "language_code": LANGS[i % len(LANGS)],
        "is_bot": i % 97 == 0, "is_premium": None if i % 4 == 0 else i % 5 == 0,
    }


def generate(n: int, folder: Path, *, with_sqlite: bool, seed: int = 11, one_line: bool = False) -> None:
    """Stream ``users.json`` (TinyDB layout) and, if asked, ``users.sqlite`` with the same ``n`` users."""
    rnd = random.Random(seed)
    span = 730 * 86400
    # strftime per user would dominate: draw from a pool of stamps, newest first.
    stamps = [_stamp(NOW - timedelta(seconds=s)) for s in sorted(rnd.randrange(span) for _ in range(50_000))]
    db = None
    if with_sqlite:
        db = sqlite3.connect(folder / "users.sqlite")
        db.execute("pragma journal_mode=off")
        db.execute("pragma synchronous=off")
        db.execute(
            "create table users (id integer primary key, first_name text, last_name text, username text, "
            "language_code text, is_bot integer, is_premium integer, first_seen text, last_seen text, "
            "messages integer, source text, blocked integer, blocked_at text)"
        )
    # The layout this version's writer leaves (a chunk of users per line), or one
    # line (older versions, TinyDB itself, a hand-made file): same JSON document.
    if one_line:
        opening, separator, closing = b'{"users":{', b",", b"}"
    else:
        opening, separator, closing = b'{"users":{\n', b",\n", b"\n}"
    folder.mkdir(exist_ok=True)
    with open(folder / "users.json", "wb") as out:
        out.write(opening)
        for start in range(0, n, CHUNK):
            chunk: dict[str, dict[str, Any]] = {}
            for i in range(start, min(n, start + CHUNK)):
                uid = FIRST_ID + i * 7
                a, b = rnd.randrange(len(stamps)), rnd.randrange(len(stamps))
                last, first = stamps[min(a, b)], stamps[max(a, b)]
                blocked = i % 11 == 0
                chunk[str(uid)] = {
                    **profile_of(i),
                    "first_seen": first, "last_seen": last, "messages": rnd.randrange(50),
                    "source": SOURCES[rnd.randrange(len(SOURCES))], "blocked": blocked,
                    "blocked_at": last if blocked else None,
                }
            body = orjson.dumps(chunk)[1:-1]
            out.write(body if start == 0 else separator + body)
            if db is not None:
                db.executemany("insert into users values (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                               [tuple(record.values()) for record in chunk.values()])
        out.write(closing + b',"meta":{"1":{"schema":1,"store_id":"0123456789abcdef"}}}')
    if db is not None:
        db.execute("create index users_first_seen on users(first_seen)")
        db.execute("create index users_last_seen on users(last_seen)")
        db.commit()
        db.close()


# ------------------------------------------------------------ child steps


def child_open(path: str, n: int, updates: int) -> dict[str, float]:
    """Open as the writer, run updates, snapshot under load, close (one process)."""
    from bench.store import pause_during_snapshot
    from tracker.models import Profile, make_profile
    from tracker.store import UserStore

    rnd = random.Random(3)
    started = time.perf_counter()
    store = UserStore(path)
    opened = time.perf_counter() - started
    open_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # before the steps below add theirs
    # Returning users with the profile they have (a rename is the rare case): journaled as touches.
    profiles = [make_profile(*profile_of(i).values()) for i in (rnd.randrange(n) for _ in range(updates))]
    started = time.perf_counter()
    for profile in profiles:
        store.seen(profile, NOW)
    store.flush()
    per_update = (time.perf_counter() - started) / updates
    del profiles  # the probe's profiles are made as it goes, as a bot's are

    def more_profiles() -> list[Profile]:
        return [make_profile(*profile_of(rnd.randrange(n)).values()) for _ in range(100)]

    worst, snapshot_took = pause_during_snapshot(store, more_profiles)
    started = time.perf_counter()
    store.close()
    return {"open": opened, "open_peak": open_peak, "seen_us": per_update * 1e6, "pause_ms": worst * 1e3,
            "snapshot": snapshot_took, "close": time.perf_counter() - started}


def child_reopen(path: str) -> dict[str, float]:
    from tracker.store import UserStore

    started = time.perf_counter()
    store = UserStore(path)
    opened = time.perf_counter() - started
    open_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # before the steps below add theirs
    store.close()
    return {"open": opened, "open_peak": open_peak}


def run_child(repo: Path, step: str, *args: str) -> tuple[dict[str, float], int]:
    """Run a child step with ``repo``'s tracker; its result and peak RSS (bytes)."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen([sys.executable, str(HERE), step, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["(no message)"]
        return {"failed": 1.0, "error": last[0]}, usage.ru_maxrss * 1024  # type: ignore[dict-item]
    return json.loads(out), usage.ru_maxrss * 1024


def timed(cmd: list[str], repo: Path, repeat: int) -> tuple[float, int, str]:
    """Best wall time of ``cmd`` over ``repeat`` runs, its peak RSS, and an error ('' if none)."""
    best = (float("inf"), 0)
    env = {**os.environ, "PYTHONPATH": str(repo)}
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            return elapsed, usage.ru_maxrss * 1024, err.decode(errors="replace").strip()[-200:]
        best = min(best, (elapsed, usage.ru_maxrss * 1024))
    return best[0], best[1], ""


def stale_stats(store: Path, repo: Path, repeat: int, how: str) -> tuple[float, int, str]:
    """``stats --json`` right after the column cache went out of step with the store file.

    ``copied``: the store file touched (new mtime, same bytes, as after copying
    the data folder); ``missing``: the column file removed (it must be rebuilt
    from the store file: one full parse, the worst case).
    """
    best: tuple[float, int, str] = (float("inf"), 0, "")
    cache = store.with_name(store.name + ".columns")
    for _ in range(repeat):
        if how == "copied":
            os.utime(store)
        else:
            cache.unlink(missing_ok=True)
        result = timed([sys.executable, str(repo / "cli.py"), "--store", str(store), "stats", "--json"],
                       repo, 1)
        best = min(best, result)
    return best


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="1000000", help="comma-separated store sizes")
    parser.add_argument("--updates", type=int, default=200_000, help="seen() calls timed after opening")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each stats process (best kept)")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose tracker runs [this one]")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the sqlite3 peer (saves time)")
    parser.add_argument("--folder", type=Path, help="where to generate [a temp folder]")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=args.folder) as tmp:
        empty = Path(tmp) / "users.json"
        empty.write_bytes(b'{"users":{},"meta":{"1":{"schema":1}}}')
        _, args.base_rss = run_child(repo, "reopen", str(empty))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; tracker from {repo}; "
          f"RSS per user is above a process opening an empty store ({args.base_rss / 2**20:.0f} MB)")
    for n in map(int, args.users.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=args.folder) as tmp:
            scale_one(n, Path(tmp), repo, args)


def scale_one(n: int, folder: Path, repo: Path, args: argparse.Namespace) -> None:
    """Every step at one size; prints as it goes (a 10M run takes minutes)."""
    started = time.perf_counter()
    generate(n, folder, with_sqlite=not args.no_sqlite)
    store = folder / "users.json"
    print(f"\n== {n:,} users: store file {store.stat().st_size / 2**20:,.0f} MB "
          f"(generated in {time.perf_counter() - started:.0f} s)", flush=True)
    result, rss = run_child(repo, "open", str(store), str(n), str(args.updates))
    if "failed" in result:
        print(f"open      FAILED: {result['error']}  (peak RSS {rss / 2**20:,.0f} MB)")
        return
    base = args.base_rss
    peak = result["open_peak"]
    print(f"open      {result['open']:7.1f} s   peak RSS {peak / 2**20:,.0f} MB = "
          f"{(peak - base) / n:,.0f} B/user (target <= 1024); whole step (updates, snapshot, close) "
          f"{(rss - base) / n:,.0f} B/user", flush=True)
    print(f"seen()    {result['seen_us']:7.2f} µs/update ({args.updates:,} updates, flush included)")
    target = 50 if n <= 1_000_000 else 100
    print(f"snapshot  {result['snapshot']:7.1f} s   longest seen() pause {result['pause_ms']:.0f} ms "
          f"(target <= {target})   close {result['close']:.1f} s", flush=True)
    reopened, rss = run_child(repo, "reopen", str(store))
    if "failed" in reopened:
        print(f"reopen    FAILED: {reopened['error']}")
        return
    print(f"reopen    {reopened['open']:7.1f} s   peak RSS {(rss - base) / n:,.0f} B/user", flush=True)
    if n <= ONE_LINE_UP_TO:
        generate(n, folder / "one-line", with_sqlite=False, one_line=True)
        legacy, rss = run_child(repo, "reopen", str(folder / "one-line" / "users.json"))
        took = f"{legacy['open']:7.1f} s" if "open" in legacy else "FAILED"
        print(f"one-line  {took}   peak RSS {(rss - base) / n:,.0f} B/user (the first open of a store "
              f"written by an older version: parsed whole, then rewritten)", flush=True)
        subprocess.run(["rm", "-rf", str(folder / "one-line")], check=True)
    files = {p.name: p.stat().st_size for p in folder.iterdir() if p.name.startswith("users.json")}
    ours = sum(files.values()) / n
    sqlite_file = folder / "users.sqlite"
    peer = f"   sqlite3 {sqlite_file.stat().st_size / n:,.0f} B/user" if sqlite_file.exists() else ""
    detail = ", ".join(f"{name} {size / n:,.0f}" for name, size in sorted(files.items()))
    print(f"disk      {ours:7.0f} B/user ({detail}){peer}   target <= 400", flush=True)
    cli = [sys.executable, str(repo / "cli.py"), "--store", str(store), "stats", "--json"]
    runs = [("fresh cache", *timed(cli, repo, args.repeat)),
            ("copied store", *stale_stats(store, repo, args.repeat, "copied")),
            ("no cache (rebuilt)", *stale_stats(store, repo, 1, "missing")),
            ("after the rebuild", *timed(cli, repo, args.repeat))]
    sql = None
    if sqlite_file.exists():
        from bench.cli import SQL_STATS

        sql, _, _ = timed([sys.executable, "-c", SQL_STATS, str(sqlite_file)], repo, args.repeat)
    for label, took, rss_, err in runs:
        if err:
            print(f"stats     {label}: FAILED: {err.splitlines()[-1] if err else ''}")
            continue
        ratio = f"   sqlite3 {sql:.3f} s   ratio {took / sql:.2f}x" if sql else ""
        per_user = (rss_ - base) / n
        print(f"stats     {label:<19}{took:7.3f} s   peak RSS {per_user:,.0f} B/user{ratio}", flush=True)


def child(argv: list[str]) -> None:
    """Entry point of the child processes: ``scale.py STEP ARGS...``, result as JSON on stdout."""
    step, *args = argv
    result = child_open(args[0], int(args[1]), int(args[2])) if step == "open" else child_reopen(args[0])
    print(json.dumps(result))


if __name__ == "__main__":
    child(sys.argv[1:])
