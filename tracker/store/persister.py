"""The writer's background threads: journal every round, snapshot when due.

Two threads, so a slow snapshot never delays the journal: the journal thread
appends pending changes every ``Tuning.flush_interval`` (or sooner when many
are pending) and asks for a snapshot when one is due; the snapshot thread
writes it. A failure in either is logged, kept for the next ``flush()`` to
raise, and retried on the next round: a dead thread would silently stop saving.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from tracker.store.errors import StoreError

log = logging.getLogger("tracker.store")


@dataclass(frozen=True)
class Tuning:
    """The writer's timing and sizing knobs (see ``bench/store.py`` for what they cost)."""

    #: Seconds between journal rounds: at most this much is lost on ``kill -9``.
    flush_interval: float = 0.2
    #: Journal early once this many changes are pending: serialising a batch holds
    #: the lock, so bounding the batch bounds the pause ``seen()`` callers can feel.
    flush_early_at: int = 8_192
    #: Records serialised per chunk of a snapshot: the longest pause a snapshot
    #: imposes on ``seen()`` callers is one chunk.
    snapshot_chunk: int = 5_000
    #: Snapshot when the journal reaches this size or ``snapshot_journal_ratio``
    #: of the last snapshot's, whichever is larger, or when it holds changes older
    #: than ``snapshot_max_age``.
    snapshot_min_journal_bytes: int = 1 << 20
    #: A snapshot rewrites every user (~3 s of CPU at a million), a journal round
    #: only the ones that changed: letting the journal grow as large as the store
    #: file spreads that cost over ~7 updates per user (~0.4 µs each) where 1/8 of
    #: it cost ~3 µs each. The price: a store killed just before a snapshot
    #: replays that much journal at its next open (a clean close folds it in).
    snapshot_journal_ratio: float = 1.0
    #: Readers fold the journal in, so its age costs nothing but their time; a
    #: snapshot of a million users is ~4 s of CPU, which every 5 minutes was
    #: ~1.3 µs on each update of a bot at 10,000 a second. Half an hour is
    #: about when a journal at that rate reaches the store file's size anyway.
    snapshot_max_age: float = 1_800.0
    #: At most this share of the time goes to snapshots: after one that took d
    #: seconds the next waits (1 / snapshot_max_duty - 1) * d. Under a flood of
    #: updates the journal then grows instead of the writer snapshotting nonstop.
    snapshot_max_duty: float = 0.1
    #: ``close()`` retries saving this long (a full disk may be freed meanwhile)
    #: before it writes what it could not save to a rescue file (see ``rescue.py``).
    close_retry_seconds: float = 10.0
    #: Where rescue files go and are looked for; empty: ``rescue.default_rescue_dirs()``.
    rescue_dirs: tuple[str, ...] = ()


class Persisted(Protocol):
    """What the threads drive: the writer's own flush and snapshot steps."""

    def flush_journal(self) -> None: ...

    def snapshot_due(self) -> bool: ...

    def write_snapshot_now(self) -> None: ...


class Persister:
    """Runs the journal and snapshot threads of one writer."""

    def __init__(self, target: Persisted, name: str) -> None:
        self._target = target
        self._name = name
        self._stop = threading.Event()
        self.flush_wanted = threading.Event()
        self._snapshot_wanted = threading.Event()
        self._threads: list[threading.Thread] = []
        # The last failure of each step, until that step succeeds again: a
        # failure whose cause is gone is not worth raising any more.
        self._failures: dict[str, StoreError] = {}

    def start(self, flush_interval: float) -> None:
        self._flush_interval = flush_interval
        for name, loop in (("journal", self._journal_loop), ("snapshot", self._snapshot_loop)):
            thread = threading.Thread(target=loop, name=f"tracker-store-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop both threads and wait for them (the current round finishes)."""
        self._stop.set()
        self.flush_wanted.set()
        self._snapshot_wanted.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def _journal_loop(self) -> None:
        while not self._stop.is_set():
            self.flush_wanted.wait(self._flush_interval)
            self.flush_wanted.clear()
            try:
                self._target.flush_journal()
                self._failures.pop("journal", None)
                if self._target.snapshot_due():
                    self._snapshot_wanted.set()
            except Exception as exc:  # any: a dead thread would silently stop saving
                self._record_failure("journal", exc)

    def _snapshot_loop(self) -> None:
        while True:
            self._snapshot_wanted.wait()
            if self._stop.is_set():
                return
            self._snapshot_wanted.clear()
            try:
                self._target.write_snapshot_now()
                self._failures.pop("snapshot", None)
            except Exception as exc:  # any: a dead thread would silently stop saving
                self._record_failure("snapshot", exc)

    def _record_failure(self, step: str, exc: Exception) -> None:
        if not isinstance(exc, StoreError):
            exc = StoreError(f"store {self._name}: saving failed: {exc!r}")
        previous = self._failures.get(step)
        if previous is None or str(previous) != str(exc):
            log.error("%s (will retry)", exc)
        self._failures[step] = exc

    def forget_failure(self, step: str) -> None:
        """``step`` just succeeded outside the threads: its old failure is over."""
        self._failures.pop(step, None)

    def raise_failure(self) -> None:
        """Raise a background failure whose step has not succeeded since (once)."""
        for step in ("journal", "snapshot"):
            failure = self._failures.pop(step, None)
            if failure is not None:
                raise failure
