"""``python -m bench floor``: the least any pure-Python tracker costs per update, beside the store.

Issue 11 asks ``seen()`` for <= 3 µs per update at a million users, background
work included, and the bot's tracking for <= 5% (kurigram) / <= 10% (pyrogram
2.0.106) of dispatch, which leaves the store ~2 / ~1.3 µs per update once the
handlers' ~3 µs are paid. This benchmark asks whether Python allows that at all.
Two deliberately bare trackers get the same paced stream as ``bench store``
(``bench/paced.py``: CPU of every thread per update, less the empty loop):

* **in place**: a dict id -> row and three ``array`` columns (last_seen,
  messages, profile hash), updated under a lock per call; a thread journals the
  touched users every 0.2 s as raw bytes (C-level copies) with an fsync;
* **batched**: the caller only hashes the profile, looks the user up (to answer
  "new?") and queues the row; the thread applies each batch in C-level passes
  (``map`` over the arrays, a ``Counter`` for messages) and journals as above.

Neither keeps the audience history, checks arguments, writes text timestamps or
JSON, or snapshots; the real ``UserStore`` is run beside them (its journal and
snapshot threads running, no snapshot charged: the part the floors also do).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import threading
from array import array
from collections import Counter
from datetime import datetime
from pathlib import Path

from bench.paced import FIRST_ID, NullTracker, StoreTracker, Tracker, UpdateStream, make_profile_of, run_paced
from tracker.models import Profile
from tracker.store import UserStore

RATE = 10_000  #: updates a second, as ``bench store``'s default
JOURNAL_EVERY = 0.2  #: seconds between journal rounds, as the store's default ``flush_interval``
SEEN_TARGET_US = 3.0
PASS = 4_096  #: rows per C-level pass (as the store's ``copies.TOUCH_PASS``)


class _Columns:
    """The three columns both floors keep, and their journal file."""

    def __init__(self, size: int, journal: Path) -> None:
        self.rows = {FIRST_ID + i: i for i in range(size)}
        self.ids = array("q", range(FIRST_ID, FIRST_ID + size))
        self.last_seen = array("I", bytes(4 * size))
        self.messages = array("I", bytes(4 * size))
        self.hashes = array("q", (hash(make_profile_of(i)[1:]) for i in range(size)))
        self.lock = threading.Lock()
        self._fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._journal_loop, daemon=True)

    def add(self, user_id: int, digest: int) -> int:
        """A new user's row (under the lock)."""
        row = self.rows[user_id] = len(self.ids)
        self.ids.append(user_id)
        self.last_seen.append(0)
        self.messages.append(0)
        self.hashes.append(digest)
        return row

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._round()
        os.close(self._fd)

    def _journal_loop(self) -> None:
        while not self._stop.wait(JOURNAL_EVERY):
            self._round()

    def _round(self) -> None:
        rows = self.take()
        ids = array("q", map(self.ids.__getitem__, rows))
        seconds = array("I", map(self.last_seen.__getitem__, rows))
        messages = array("I", map(self.messages.__getitem__, rows))
        os.write(self._fd, ids.tobytes() + seconds.tobytes() + messages.tobytes())
        os.fsync(self._fd)

    def take(self) -> list[int]:
        """The rows to journal this round (applied first, for the batched floor)."""
        raise NotImplementedError


class InPlaceFloor(_Columns):
    """Each call updates its row under the lock; the journal copies the touched rows."""

    def __init__(self, size: int, journal: Path) -> None:
        super().__init__(size, journal)
        self.touched: set[int] = set()

    def apply(self, batch: list[Profile], at: datetime, stamp: str) -> None:
        seconds = int(at.timestamp())
        rows, lock = self.rows, self.lock
        last_seen, messages, hashes = self.last_seen, self.messages, self.hashes
        for profile in batch:
            digest = hash(profile[1:])
            with lock:
                row = rows.get(profile[0])
                if row is None:
                    row = self.add(profile[0], digest)
                if seconds >= last_seen[row]:
                    last_seen[row] = seconds
                    if hashes[row] != digest:
                        hashes[row] = digest
                messages[row] += 1
                self.touched.add(row)

    def take(self) -> list[int]:
        with self.lock:
            touched, self.touched = self.touched, set()
        return sorted(touched)


class BatchedFloor(_Columns):
    """Each call queues its row; the journal thread applies a batch in C-level passes first."""

    def __init__(self, size: int, journal: Path) -> None:
        super().__init__(size, journal)
        self.queued: list[int] = []
        self.digests: list[int] = []
        self.seconds: list[int] = []

    def apply(self, batch: list[Profile], at: datetime, stamp: str) -> None:
        seconds = int(at.timestamp())
        rows, lock = self.rows, self.lock
        for profile in batch:
            digest = hash(profile[1:])
            row = rows.get(profile[0])  # answers "new?", as seen() must (one feeding thread here)
            with lock:
                if row is None:
                    row = self.add(profile[0], digest)
                self.queued.append(row)
                self.digests.append(digest)
                self.seconds.append(seconds)

    def take(self) -> list[int]:
        with self.lock:
            rows, digests, seconds = self.queued, self.digests, self.seconds
            self.queued, self.digests, self.seconds = [], [], []
        last_seen, messages, hashes = self.last_seen, self.messages, self.hashes
        for start in range(0, len(rows), PASS):
            part = slice(start, start + PASS)
            # max() keeps last_seen from moving back; each row's hash becomes its latest sighting's
            list(map(last_seen.__setitem__, rows[part], map(max, map(last_seen.__getitem__, rows[part]),
                                                                seconds[part])))
            list(map(hashes.__setitem__, rows[part], digests[part]))
        counts = Counter(rows)
        list(map(messages.__setitem__, counts, map(int.__add__, map(messages.__getitem__, counts),
                                                   counts.values())))
        return sorted(counts)



def median_cpu(tracker: Tracker, size: int, updates: int, rounds: int) -> float:
    """Median CPU µs per update of ``rounds`` paced runs, each less an empty loop run just before it."""
    gc.collect()
    figures = []
    for turn in range(rounds):
        null = run_paced(NullTracker(), UpdateStream(size, seed=turn), RATE, lambda done, _: done >= updates)
        run = run_paced(tracker, UpdateStream(size, seed=turn), RATE, lambda done, _: done >= updates)
        figures.append(run.per_update(null).cpu)
    return statistics.median(figures)


def measure_size(folder: Path, size: int, updates: int, rounds: int) -> tuple[float, float, float]:
    """The store's, the in-place floor's and the batched floor's µs per update, in that order."""
    from bench.store import build_store

    build_store(folder / "users.json", size)
    with UserStore(folder / "users.json") as store:
        ours = median_cpu(StoreTracker(store.seen), size, updates, rounds)
    floors = []
    for kind in (InPlaceFloor, BatchedFloor):
        floor = kind(size, folder / f"{kind.__name__}.journal")
        floor.start()
        try:
            floors.append(median_cpu(floor, size, updates, rounds))
        finally:
            floor.close()
    return ours, floors[0], floors[1]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench floor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000",
                        help="comma-separated sizes (default: %(default)s)")
    parser.add_argument("--updates", type=int, default=200_000,
                        help="updates per run (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs per tracker, the median kept (default: %(default)s)")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; {RATE:,} updates/s in 10 ms ticks; "
          f"CPU µs per update (all threads, less the empty loop), median of {args.rounds} runs")
    print(f"{'users':>9} | {'UserStore':>9} | {'floor, in place':>15} | {'floor, batched':>14} | "
          f"{'target':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            folder = Path(tmp) / str(size)
            folder.mkdir()
            ours, in_place, batched = measure_size(folder, size, args.updates, args.rounds)
            print(f"{size:>9,} | {ours:7.2f}µs | {in_place:13.2f}µs | {batched:12.2f}µs | "
                  f"{SEEN_TARGET_US:4.1f}µs", flush=True)
    print("\nUserStore: its journal and snapshot threads run, no snapshot is charged (`bench store` charges\n"
          "its share). A target below both floors is below what per-update Python code costs here.")
