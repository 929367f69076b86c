"""Crash tests: a real writer process is killed and the store must come back whole.

tests/procs/store_writer.py ingests continuously and prints, after each batch,
what it has recorded and ``time.monotonic()`` (the clock is system-wide, so the
test can compare it with the moment it sent the signal). After SIGKILL, every
update reported more than ``LOSS_WINDOW`` seconds before the kill must be in the
store, seen the same way by a read-only open, a writer open and (after that
writer closes) a plain ``json`` read of the file. After SIGTERM, SIGINT or a
clean close nothing at all may be missing.

Trials on one store are cumulative: each writer continues from what the
previous one left, so recovery of a recovered store is exercised too. The
random seed is in every failure message; set STORE_CRASH_SEED to replay it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tinydb import TinyDB

from tests.support import PROCS, spawn_python
from tracker.store import UserStore

pytestmark = pytest.mark.slow

WRITER = PROCS / "store_writer.py"
NEW_BASE = 1_000_000  # as in store_writer.py
START = datetime(2024, 1, 1, tzinfo=UTC)
LOSS_WINDOW = 1.0  # DESIGN.md: at most 1 s of recorded updates lost on kill -9
HOT = 100
NEW = 20

SEED = int(os.environ.get("STORE_CRASH_SEED", random.randrange(2**32)))


def ts(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Writer:
    """tests/procs/store_writer.py as a subprocess, its stdout collected as it comes."""

    def __init__(self, store: Path, *args: str, new: int = NEW) -> None:
        self.new = new
        self.proc = spawn_python([str(WRITER), str(store), "--hot", str(HOT), "--new", str(new), *args])
        self.lines: list[dict[str, Any]] = []
        self.stderr = ""
        self.ready = threading.Event()
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            entry = json.loads(line)
            self.lines.append(entry)
            if entry.get("event") == "ready":
                self.ready.set()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def wait_ready(self) -> dict[str, Any]:
        if not self.ready.wait(60):
            self.proc.kill()
            self.finish()
            raise AssertionError(f"writer never became ready; stderr:\n{self.stderr}")
        return self.lines[0]

    def signal(self, signum: int) -> float:
        """Send ``signum`` and return the monotonic time just before sending it."""
        sent_at = time.monotonic()
        os.kill(self.proc.pid, signum)
        return sent_at

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        return code

    @property
    def ready_line(self) -> dict[str, Any] | None:
        return next((e for e in self.lines if e.get("event") == "ready"), None)

    @property
    def reports(self) -> list[dict[str, Any]]:
        return [e for e in self.lines if "round" in e]


def open_all_ways(path: Path, *, tinydb: bool = False) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """The store as a reader, a writer and a plain JSON/TinyDB read see it; they must agree."""
    with UserStore(path, readonly=True) as reader:
        read_only = {r["id"]: dict(r) for r in reader}
        read_only_round = reader.meta.get("writer_round")
    with UserStore(path) as writer:
        records = {r["id"]: dict(r) for r in writer}
        meta = writer.meta
    assert read_only == records, "a read-only open and a writer open see different stores"
    assert read_only_round == meta.get("writer_round")
    leftovers = [name for name in os.listdir(path.parent) if "journal" in name and "tmp" not in name]
    assert leftovers == [], f"close() left {leftovers}"
    plain = json.loads(path.read_bytes())
    assert {int(k): v for k, v in plain["users"].items()} == records
    if tinydb and records:
        some_id = next(iter(records))
        db = TinyDB(path, access_mode="r")
        try:
            assert db.table("users").get(doc_id=some_id) == records[some_id]
        finally:
            db.close()
    return records, meta


def check_durable(
    records: dict[int, dict[str, Any]],
    meta: dict[str, Any],
    run: Writer,
    sent_at: float,
    window: float,
    context: str,
) -> dict[str, Any] | None:
    """Everything ``run`` reported at least ``window`` s before ``sent_at`` is in ``records``.

    Returns the newest report that had to be durable (None when none had).
    """
    ready = run.ready_line
    reports = run.reports
    if reports:
        # Sanity: nothing can be in the store that the writer never got to.
        last = reports[-1]
        newest = max((i for i in records if i > NEW_BASE), default=NEW_BASE)
        assert newest <= last["new_upto"] + run.new, f"{context}: store has user {newest} never written"
        hot_total = sum(records[h]["messages"] for h in range(1, HOT + 1) if h in records)
        assert hot_total <= last["hot_messages"] + HOT, f"{context}: more messages than were counted"
    due = [r for r in reports if r["t"] <= sent_at - window]
    if not due:
        return None
    assert ready is not None
    report = due[-1]
    context = f"{context}, newest due report {report}, {sent_at - report['t']:.3f} s before the signal"
    first, upto, forgot_upto = ready["first_new"], report["new_upto"], report["forgot_upto"]

    # Multiples of 10 are forgotten by the batch after the one that created them,
    # possibly after the due report: their absence is checked only up to forgot_upto.
    missing = [i for i in range(first, upto + 1) if i not in records and i % 10 != 0]
    assert missing == [], f"{context}: {len(missing)} recorded users lost, e.g. {missing[:5]}"
    resurrected = [i for i in range(first, forgot_upto + 1) if i % 10 == 0 and i in records]
    assert resurrected == [], f"{context}: forgotten users are back: {resurrected[:5]}"
    not_blocked = [
        i for i in range(first, forgot_upto + 1) if i % 7 == 0 and i % 10 != 0 and not records[i]["blocked"]
    ]
    assert not_blocked == [], f"{context}: set_blocked lost for {not_blocked[:5]}"
    wrong_source = [i for i in range(first, upto + 1) if i in records and records[i]["source"] != f"src{i}"]
    assert wrong_source == [], f"{context}: source wrong for {wrong_source[:5]}"

    due_seen = ts(START + timedelta(seconds=report["round"]))
    stale = [
        h
        for h in range(1, HOT + 1)
        if int(records[h]["last_name"]) < report["round"] or records[h]["last_seen"] < due_seen
    ]
    assert stale == [], f"{context}: hot users {stale[:5]} lost updates"
    hot_total = sum(records[h]["messages"] for h in range(1, HOT + 1))
    assert hot_total >= report["hot_messages"], f"{context}: message counts lost ({hot_total})"
    assert meta.get("writer_round", 0) >= report["round"], f"{context}: meta lost ({meta})"
    return report


def check_baseline(
    records: dict[int, dict[str, Any]], baseline: dict[int, dict[str, Any]], context: str
) -> None:
    """What an earlier open saw is still there (the writers only forget users they created)."""
    gone = [i for i in baseline if i not in records]
    assert gone == [], f"{context}: users from before this run vanished: {gone[:5]}"
    older = [i for i in baseline if records[i]["messages"] < baseline[i]["messages"]]
    assert older == [], f"{context}: message counts went backwards for {older[:5]}"


def temp_files(folder: Path, known: set[str]) -> set[str]:
    """Files that appeared in ``folder`` and are not the store, its journal or its lock."""
    return {
        name
        for name in os.listdir(folder)
        if name not in known and name not in ("users.json", "users.json.journal", "users.json.lock")
    }


def test_sigkill_at_random_moments_loses_at_most_one_second(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "data" / "users.json"
    baseline: dict[int, dict[str, Any]] = {}
    checked = 0
    for trial in range(12):
        context = f"seed {SEED}, trial {trial}"
        run = Writer(path)
        run.wait_ready()
        time.sleep(rng.uniform(0.0, 2.4))  # past the 1 s window in over half the trials
        sent_at = run.signal(signal.SIGKILL)
        assert run.finish() == -signal.SIGKILL, f"{context}: writer died early:\n{run.stderr}"
        records, meta = open_all_ways(path)
        check_baseline(records, baseline, context)
        if check_durable(records, meta, run, sent_at, LOSS_WINDOW, context) is not None:
            checked += 1
        baseline = records
    # The random delays must have produced trials that actually test the window.
    assert checked >= 3, f"seed {SEED}: only {checked} trials had reports older than {LOSS_WINDOW} s"


def test_sigkill_during_snapshot(tmp_path: Path) -> None:
    """Kill while a snapshot (or the journal compaction after it) is being written."""
    rng = random.Random(SEED + 1)
    path = tmp_path / "users.json"
    # Seed the store so that snapshots take a while, then make them frequent.
    seed = Writer(path, "--batches", "10", "--pause", "0", new=1000)
    assert seed.finish() == 0, seed.stderr
    tuned = ("--snapshot-max-age", "0.05", "--snapshot-min-bytes", "4096", "--snapshot-chunk", "25")
    baseline = open_all_ways(path)[0]
    mid_snapshot = 0
    checked = 0
    for trial in range(8):
        context = f"seed {SEED + 1}, snapshot trial {trial}"
        known = set(os.listdir(path.parent))
        run = Writer(path, *tuned)
        run.wait_ready()
        # Let it run past the window sometimes, then wait for the next snapshot to start.
        time.sleep(rng.uniform(0.0, 2.0))
        deadline = time.monotonic() + 20
        while not temp_files(path.parent, known) and time.monotonic() < deadline:
            time.sleep(0.0005)
        assert temp_files(path.parent, known), f"{context}: no snapshot started within 20 s"
        time.sleep(rng.uniform(0.0, 0.01))
        sent_at = run.signal(signal.SIGKILL)
        assert run.finish() == -signal.SIGKILL, f"{context}: writer died early:\n{run.stderr}"
        # A temp file that is still there proves the kill landed mid-snapshot.
        mid_snapshot += bool(temp_files(path.parent, known))
        records, meta = open_all_ways(path)
        check_baseline(records, baseline, context)
        if check_durable(records, meta, run, sent_at, LOSS_WINDOW, context) is not None:
            checked += 1
        baseline = records
    assert mid_snapshot >= 4, f"seed {SEED + 1}: only {mid_snapshot} of 8 kills landed during a snapshot"
    assert checked >= 2, f"seed {SEED + 1}: only {checked} trials had reports older than {LOSS_WINDOW} s"


def test_sigkill_while_opening_a_store_with_a_journal(tmp_path: Path) -> None:
    """Killed while it recovers the previous crash (replay, fold, new journal): nothing old lost."""
    rng = random.Random(SEED + 2)
    path = tmp_path / "users.json"
    first = Writer(path, "--pause", "0.02", new=500)
    first.wait_ready()
    time.sleep(1.5)
    sent_at = first.signal(signal.SIGKILL)
    first.finish()
    assert any(name.endswith(".journal") for name in os.listdir(tmp_path)), "expected a journal after a kill"
    with UserStore(path, readonly=True) as reader:
        baseline = {r["id"]: dict(r) for r in reader}
        meta = reader.meta
    assert check_durable(baseline, meta, first, sent_at, LOSS_WINDOW, "first run") is not None
    for trial in range(3):
        context = f"seed {SEED + 2}, startup trial {trial}"
        run = Writer(path)
        time.sleep(rng.uniform(0.0, 0.25))
        run.signal(signal.SIGKILL)
        run.finish()
        with UserStore(path, readonly=True) as reader:
            records = {r["id"]: dict(r) for r in reader}
        check_baseline(records, baseline, context)
        baseline = records
    records, _ = open_all_ways(path, tinydb=True)
    check_baseline(records, baseline, f"seed {SEED + 2}, final open")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_termination_signal_loses_nothing(tmp_path: Path, signum: int) -> None:
    path = tmp_path / "users.json"
    run = Writer(path, "--pause", "0.005")
    run.wait_ready()
    while len(run.reports) < 20:
        time.sleep(0.01)
    sent_at = run.signal(signum)
    assert run.finish() == 0, run.stderr
    assert run.lines[-1].get("event") == "closed" and run.lines[-1]["signal"] == signum
    records, meta = open_all_ways(path, tinydb=True)
    # Window 0: every report, up to the last one before the close, must be there.
    report = check_durable(records, meta, run, sent_at + 3600, 0.0, signal.Signals(signum).name)
    assert report == run.reports[-1]
    assert len(records) == report["users"]


def test_close_loses_nothing_and_leaves_a_plain_tinydb_file(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    run = Writer(path, "--batches", "40", "--pause", "0")
    assert run.finish() == 0, run.stderr
    assert run.lines[-1].get("event") == "closed"
    assert sorted(os.listdir(tmp_path)) == [
        "users.json", "users.json.columns", "users.json.history", "users.json.lock"
    ]
    db = TinyDB(path, access_mode="r")
    try:
        users = db.table("users")
        report = run.reports[-1]
        assert len(users) == report["users"]
        assert users.get(doc_id=report["new_upto"])["source"] == f"src{report['new_upto']}"
        assert users.get(doc_id=1)["last_name"] == str(report["round"])
        assert db.table("meta").get(doc_id=1)["writer_round"] == report["round"]
    finally:
        db.close()
    records, meta = open_all_ways(path)
    check_durable(records, meta, run, time.monotonic() + 3600, 0.0, "close")
