"""``python -m bench store``: what recording a sighting costs, against the peers, in one run.

For each size (users already in the store) every tracker is fed the same stream
of updates (``bench/paced.py``): random existing users, one in 100 a new user,
``--rate`` updates a second (default 10,000: a busy bot, about half of what one
process can dispatch) in 10 ms ticks, sleeping in between as a bot waits for
updates. The cost charged to an update is the **process CPU time** over the run
(every thread) per update, less what the same loop costs feeding a tracker that
does nothing. CPU time rather than wall time because the stream is paced: wall
time is set by the pace, and what the tracker takes from the bot is the CPU its
threads burn (on a shared 2-core machine CPU time is also far less noisy). The
time the caller spends blocked inside the calls (which includes sqlite's fsync
waits in the calling thread) is printed beside it.

* **UserStore**: ``seen(profile, at)`` per update while the store's own journal
  thread (every ``Tuning.flush_interval``) and snapshot thread (when the store
  decides one is due) run as they do in the bot. The window is one whole
  snapshot cycle: it starts when a snapshot has just replaced the store file and
  ends when the next one, started by the store itself, has (the store file's
  inode changes: DESIGN.md has every snapshot ``os.replace`` it), so the
  snapshot's CPU is charged at its natural rate. When none comes within
  ``--max-seconds`` (at a million users the store's rule brings one every half
  hour or so), one snapshot is taken after the window and its CPU charged at
  that natural rate: the window's updates pay their share of it, the share
  computed from the journal bytes the window wrote per update (marked ``*``).
* **sqlite batched**: the same batching and durability: WAL, synchronous=FULL,
  an ``INSERT … ON CONFLICT DO UPDATE`` per update, one transaction per batch of
  as many updates as one journal round of the store takes at this rate
  (``rate × flush_interval``).
* **sqlite autocommit**: the typical tracker: WAL, synchronous=NORMAL, autocommit.
* **TinyDB** (small sizes only): stock ``table.upsert(doc, Query().id == uid)``
  on JSONStorage, unpaced (each upsert rewrites the file: ms each).

Then, per size: the longest ``seen()`` call while a snapshot runs (another thread
keeps calling it), all the store's files per user, and the steady-state resident
memory per user (a fresh process opens the store, takes 20,000 updates and a
snapshot; its RSS growth over the same steps on an empty store, per user).
Every measurement runs in a fresh process so one cannot leave garbage or a
warm heap to the next.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import psutil

from bench.paced import (
    NOW,
    NullTracker,
    PerUpdate,
    Run,
    SqliteTracker,
    StoreTracker,
    UpdateStream,
    build_sqlite,
    file_identity,
    make_profile_of,
    make_user,
    run_paced,
)
from tracker.models import Profile
from tracker.store import Tuning, UserStore

T = TypeVar("T")
TINYDB_UPDATES = {1_000: 200, 10_000: 20, 100_000: 3}
RSS_UPDATES = 20_000
SEEN_TARGET_US = 3.0
RATIO_TARGET = 3.0
RSS_TARGET = 700
PAUSE_TARGET_MS = 50
FILE_TARGET = 400


def in_child(function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` in a fresh interpreter and return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def build_store(path: Path, size: int) -> None:
    with UserStore(path) as store:
        for i in range(size):
            store.seen(make_profile_of(i), NOW)


@dataclass(frozen=True)
class StoreRun:
    """The store's paced run over one snapshot cycle, and its snapshot pause."""

    run: Run
    snapshots: int  #: natural snapshots in the window (0: one is charged at its natural rate)
    cycle_updates: int  #: with no natural snapshot: the updates the store's own rule spreads one over
    pause_ms: float
    snapshot_ms: float


def after_a_snapshot(store: UserStore, path: Path) -> threading.Thread:
    """Snapshot on a thread; return once its store file is in place (its tail still running,
    as the tail of the window's last snapshot will be when the window ends)."""
    before = file_identity(path)
    thread = threading.Thread(target=store.snapshot)
    thread.start()
    while thread.is_alive() and file_identity(path) == before:
        time.sleep(0.001)
    return thread


def natural_cycle(store: UserStore, journal_bytes_per_update: float, rate: int) -> int:
    """Updates between two snapshots by the store's own rule (``Tuning``): the journal
    grows to ``snapshot_journal_ratio`` of the store file, or it ages ``snapshot_max_age``."""
    tuning = store.tuning
    wanted = max(tuning.snapshot_min_journal_bytes, store.path.stat().st_size * tuning.snapshot_journal_ratio)
    by_size = wanted / max(journal_bytes_per_update, 1e-9)
    return int(min(by_size, tuning.snapshot_max_age * rate))


def measure_store(path: Path, size: int, rate: int, min_updates: int, max_seconds: float) -> StoreRun:
    """One natural snapshot cycle of paced ``seen()`` calls, then the snapshot pause probe.

    A cycle longer than ``max_seconds`` (a large store's is half an hour) is not
    waited for: the window's updates are charged their share of one snapshot's
    CPU, measured right after the window, at the rate the store's rule would
    bring snapshots (from the journal bytes the window wrote per update).
    """
    stream = UpdateStream(size, seed=1)
    with UserStore(path) as store:
        gc.collect()
        previous = [file_identity(path)]
        snapshots = [0]

        def done(updates: int, elapsed: float) -> bool:
            now = file_identity(path)
            if now != previous[0]:
                previous[0] = now
                snapshots[0] += 1
                if updates >= min_updates:
                    return True
            return elapsed >= max_seconds

        forced_snapshot = after_a_snapshot(store, path)
        previous[0] = file_identity(path)
        run = run_paced(StoreTracker(store.seen), stream, rate, done)
        forced_snapshot.join()
        cycle = 0
        if not snapshots[0]:  # none came: charge the window its share of one
            store.flush()
            journal_per_update = store.journal_path.stat().st_size / run.updates
            cpu = time.process_time()
            store.snapshot()
            snapshot_cpu = time.process_time() - cpu
            cycle = max(run.updates, natural_cycle(store, journal_per_update, rate))
            run = Run(run.updates, run.cpu + snapshot_cpu * run.updates / cycle, run.caller_cpu,
                      run.in_calls, run.wall)
        worst, took = pause_during_snapshot(store, lambda: stream.take(100))
    return StoreRun(run, snapshots[0], cycle, worst * 1e3, took * 1e3)


def pause_during_snapshot(
    store: UserStore, more_profiles: Callable[[], Sequence[Profile]]
) -> tuple[float, float]:
    """Snapshot on a second thread (as the store's own does) while this one keeps
    calling ``seen()``: (the longest ``seen()`` call, the snapshot's duration), in s.

    ``more_profiles`` hands out a few fresh profiles at a time, so they live as
    briefly as a bot's do (a long list of them kept alive would be walked by
    every full GC pass, a pause of the bench's own making)."""
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
    while not done.is_set():
        for profile in more_profiles():
            t0 = time.perf_counter()
            store.seen(profile, NOW)
            worst = max(worst, time.perf_counter() - t0)
    thread.join()
    return worst, took[0]


def measure_sqlite(template: Path, path: Path, size: int, rate: int, updates: int,
                   synchronous: str, batch: int) -> Run:
    shutil.copyfile(template, path)
    tracker = SqliteTracker(path, synchronous, batch)
    run = run_paced(tracker, UpdateStream(size, seed=1), rate, lambda n, _s: n >= updates)
    tracker.close()
    return run


def measure_null(rate: int, updates: int) -> Run:
    return run_paced(NullTracker(), UpdateStream(100_000, seed=1), rate, lambda n, _s: n >= updates)


def time_tinydb(path: Path, size: int, updates: int) -> float:
    """CPU µs per stock TinyDB upsert (unpaced: each one takes milliseconds)."""
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
    start = time.process_time()
    for doc in docs:
        users.upsert(doc, q.id == doc["id"])
    elapsed = time.process_time() - start
    db.close()
    return elapsed / updates * 1e6


def steady_rss(path: Path, size: int) -> int:
    """RSS growth of this (fresh) process over: open as writer, updates, snapshot."""
    profiles = UpdateStream(size, seed=3).take(RSS_UPDATES) if size else []
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    with UserStore(path) as store:
        for profile in profiles:
            store.seen(profile, NOW)
        store.flush()
        store.snapshot()
        gc.collect()
        after = process.memory_info().rss
    return after - before


@dataclass(frozen=True)
class SizeResult:
    size: int
    store: StoreRun
    ours: PerUpdate
    batched: PerUpdate
    autocommit: PerUpdate
    tinydb: float | None
    file_per_user: float
    rss_per_user: float


def measure_size(folder: Path, size: int, args: argparse.Namespace, null: Run, empty_rss: int) -> SizeResult:
    store_path = folder / "users.json"
    in_child(build_store, store_path, size)
    # Every file the store keeps (store, column cache, journal, ...), not the store file alone.
    file_per_user = sum(p.stat().st_size for p in folder.glob("users.json*")) / size
    template = folder / "template.db"
    in_child(build_sqlite, template, size)
    batch = max(1, round(args.rate * Tuning().flush_interval))
    batched = in_child(measure_sqlite, template, folder / "batched.db", size, args.rate,
                       args.updates, "FULL", batch)
    autocommit = in_child(measure_sqlite, template, folder / "auto.db", size, args.rate,
                          args.updates, "NORMAL", 1)
    for db in folder.glob("*.db*"):
        db.unlink()
    tiny = None
    if size in TINYDB_UPDATES:
        tiny = in_child(time_tinydb, folder / "tinydb.json", size, TINYDB_UPDATES[size])
    rss = (in_child(steady_rss, store_path, size) - empty_rss) / size
    store = in_child(measure_store, store_path, size, args.rate, args.updates, args.max_seconds)
    return SizeResult(size, store, store.run.per_update(null), batched.per_update(null),
                      autocommit.per_update(null), tiny, file_per_user, rss)


def ratio(other: float | None, ours: float) -> str:
    if not other or ours <= 0:
        return "-"
    return f"{other / ours:,.0f}x" if other / ours >= 100 else f"{other / ours:.1f}x"


def print_row(r: SizeResult, first: bool) -> None:
    if first:
        print(f"{'users':>9} | {'UserStore':>10} {'(caller':>8} {'in call)':>9} | {'sqlite batched':>14} "
              f"{'(in call)':>9} | {'autocommit':>10} {'(in call)':>9} | {'TinyDB':>8} | "
              f"{'vs batched':>10} | {'vs autocommit':>13} | {'vs TinyDB':>9} | {'store window':>24}")
    snapshots = f"{r.store.snapshots} snap" if r.store.snapshots else f"1/{r.store.cycle_updates:,}*"
    cycle = f"{r.store.run.updates:,} upd {snapshots} {r.store.run.wall:.0f} s"
    tiny = f"{r.tinydb / 1e3:6.1f}ms" if r.tinydb else "-"
    print(f"{r.size:>9,} | {r.ours.cpu:8.2f}µs {r.ours.caller_cpu:7.2f}µs {r.ours.in_calls:7.2f}µs | "
          f"{r.batched.cpu:12.1f}µs {r.batched.in_calls:7.1f}µs | {r.autocommit.cpu:8.1f}µs "
          f"{r.autocommit.in_calls:7.1f}µs | {tiny:>8} | {ratio(r.batched.cpu, r.ours.cpu):>10} | "
          f"{ratio(r.autocommit.cpu, r.ours.cpu):>13} | {ratio(r.tinydb, r.ours.cpu):>9} | {cycle:>24}",
          flush=True)


def print_footer(results: list[SizeResult], null: Run) -> None:
    print("\nµs per update = process CPU (all threads) / updates, less the empty loop "
          f"({null.per_update().cpu:.2f} µs); caller = the feeding thread's CPU; in call = wall time "
          "the caller spent inside the calls.\nstore window: its updates, the natural snapshots in it "
          "(* none came: one snapshot's CPU is charged\nover the updates the store's own rule "
          "spreads it over, from the journal bytes per update the window wrote), its length.")
    print(f"\n{'users':>9} | {'file B/user':>11} | {'RSS B/user':>10} | {'snapshot pause':>14} | "
          f"{'snapshot took':>13}")
    for r in results:
        print(f"{r.size:>9,} | {r.file_per_user:11.0f} | {r.rss_per_user:10.0f} | "
              f"{r.store.pause_ms:11.1f} ms | {r.store.snapshot_ms:10,.0f} ms")
    print_targets(results)


def verdict(name: str, met: bool, figure: str) -> None:
    print(f"  {name}: {'met' if met else 'MISSED'} ({figure})")


def print_targets(results: list[SizeResult]) -> None:
    print("\nTargets (issue 11):")
    for r in results:
        batched, autocommit = r.batched.cpu / r.ours.cpu, r.autocommit.cpu / r.ours.cpu
        verdict(f"{r.size:>9,} users: >= {RATIO_TARGET:.0f}x faster than each sqlite peer",
                min(batched, autocommit) >= RATIO_TARGET,
                f"vs batched {batched:.1f}x, vs autocommit {autocommit:.1f}x")
    for r in results:
        if r.size == 1_000_000:
            verdict(f"seen() <= {SEEN_TARGET_US} µs at 1M with the background work",
                    r.ours.cpu <= SEEN_TARGET_US, f"{r.ours.cpu:.2f} µs")
            verdict(f"longest seen() pause during a snapshot <= {PAUSE_TARGET_MS} ms at 1M",
                    r.store.pause_ms <= PAUSE_TARGET_MS, f"{r.store.pause_ms:.0f} ms")
    largest = results[-1]
    verdict(f"all files <= {FILE_TARGET} B/user", largest.file_per_user <= FILE_TARGET,
            f"{largest.file_per_user:.0f} B/user at {largest.size:,}")
    large = [r for r in results if r.size >= 100_000]  # below, fixed costs dominate
    if large:
        worst = max(large, key=lambda r: r.rss_per_user)
        verdict(f"steady-state RSS <= {RSS_TARGET} B/user (100k+ users)", worst.rss_per_user <= RSS_TARGET,
                f"{worst.rss_per_user:.0f} B/user at {worst.size:,}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench store", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000,1000000",
                        help="comma-separated store sizes (default: %(default)s)")
    parser.add_argument("--updates", type=int, default=60_000,
                        help="updates per peer run, and at least this many in the store's window "
                             "(default: %(default)s)")
    parser.add_argument("--rate", type=int, default=10_000,
                        help="updates a second in the paced stream (default: %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=240.0,
                        help="longest store window waiting for its natural snapshot (default: %(default)s)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    batch = max(1, round(args.rate * Tuning().flush_interval))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB; {args.rate:,} updates/s in 10 ms ticks; "
          f"sqlite batched commits every {batch:,} updates; {args.updates:,} updates per peer run")
    results: list[SizeResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        null = in_child(measure_null, args.rate, min(args.updates, 20_000))
        empty = Path(tmp) / "empty" / "users.json"
        empty.parent.mkdir()
        UserStore(empty).close()
        empty_rss = in_child(steady_rss, empty, 0)
        for size in sizes:
            folder = Path(tmp) / str(size)
            folder.mkdir()
            results.append(measure_size(folder, size, args, null, empty_rss))
            print_row(results[-1], first=len(results) == 1)
            shutil.rmtree(folder)
    print_footer(results, null)
