"""Readers and writers in separate processes: one writer, lock-free readers, no torn reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support import PROCS, profile, spawn_python
from tracker.store import StoreError, StoreLockedError, UserStore

pytestmark = pytest.mark.slow

AT = datetime(2024, 5, 1, tzinfo=UTC)


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return spawn_python([str(PROCS / script), *args])


class Lines:
    """Collects a process's JSON stdout lines in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.items: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.items.append(json.loads(line))

    def wait_for(self, predicate: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in list(self.items):
                if predicate(item):
                    return item
            if self.proc.poll() is not None and not self._thread.is_alive():
                break
            time.sleep(0.005)
        stderr = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        raise AssertionError(f"process never printed the expected line; stderr:\n{stderr}")

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self._thread.join(timeout)
        return code


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def test_readers_never_see_torn_or_backward_state(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    seed = spawn("store_writer.py", str(path), "--new", "1000", "--batches", "5", "--pause", "0")
    assert seed.wait(60) == 0, seed.stderr.read() if seed.stderr else ""
    writer = spawn(
        # No forgets: the user count may then only grow, which the reader checks.
        "store_writer.py", str(path), "--pause", "0.002", "--seconds", "6", "--forget-every", "0",
        # Frequent, slow-ish snapshots: the file is replaced many times under the reader.
        "--snapshot-max-age", "0.05", "--snapshot-min-bytes", "4096", "--snapshot-chunk", "50",
        # Snapshots back to back (a loaded machine must not space them out past the window).
        "--snapshot-max-duty", "0.9",
    )  # fmt: skip
    writer_lines = Lines(writer)
    try:
        writer_lines.wait_for(lambda e: e.get("event") == "ready")
        reader = spawn("store_reader.py", str(path), "--seconds", "4")
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
    finally:
        stop(writer)
    writer_lines.finish()
    assert writer.returncode == 0, writer.stderr.read() if writer.stderr else ""
    summary = json.loads(out)
    assert summary["failure_count"] == 0, summary["failures"]
    assert summary["backwards_count"] == 0, summary["backwards"]
    assert summary["reads"]["store"] >= 5 and summary["reads"]["json"] >= 5, summary
    # The reads overlapped real writing and real snapshots, or they proved nothing.
    assert summary["last"]["store"] > summary["first"]["store"], summary
    assert summary["last"]["json"] > summary["first"]["json"], summary
    assert summary["files_seen"] >= 3, f"the store file was replaced only {summary['files_seen'] - 1} times"


def test_reader_sees_what_the_running_writer_recorded_a_second_ago(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    writer = spawn("store_writer.py", str(path), "--pause", "0.01")
    lines = Lines(writer)
    try:
        lines.wait_for(lambda e: e.get("event") == "ready")
        for _ in range(3):
            report = lines.wait_for(lambda e: "round" in e and e["t"] > time.monotonic() - 0.1)
            time.sleep(max(0.0, report["t"] + 1.0 - time.monotonic()))
            with UserStore(path, readonly=True) as reader:
                # Users only ever grow in number in this writer (20 new, 2 forgotten per batch).
                assert len(reader) >= report["users"], (len(reader), report)
                assert reader.meta["writer_round"] >= report["round"]
    finally:
        stop(writer)
    lines.finish()
    assert writer.returncode == 0


def attempt_open(path: Path) -> BaseException | None:
    """Open a second writer in a thread; return what it raised. Fails if it blocks."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            UserStore(path).close()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert outcome, "a second writer blocked instead of failing at once"
    return outcome[0]


def test_second_writer_fails_fast_naming_the_holder_pid(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    writer = spawn("store_writer.py", str(path), "--pause", "0.05")
    lines = Lines(writer)
    try:
        first = lines.wait_for(lambda e: "round" in e)
        error = attempt_open(path)
        assert isinstance(error, StoreLockedError), repr(error)
        assert error.pid == writer.pid
        message = str(error)
        assert str(writer.pid) in message and str(path) in message, message
        assert "\n" not in message
        # Readers need no lock while the writer holds it (and see data at most ~1 s old).
        time.sleep(max(0.0, first["t"] + 1.0 - time.monotonic()))
        with UserStore(path, readonly=True) as reader:
            assert len(reader) >= first["users"] > 0
    finally:
        stop(writer)
    lines.finish()
    assert writer.returncode == 0
    # Released on exit: the next writer gets in and sees everything.
    with UserStore(path) as store:
        assert len(store) == [e for e in lines.items if "round" in e][-1]["users"]


def test_lock_of_a_killed_writer_does_not_block_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    writer = spawn("store_writer.py", str(path), "--pause", "0.01")
    lines = Lines(writer)
    lines.wait_for(lambda e: "round" in e)
    writer.send_signal(signal.SIGKILL)
    lines.finish()
    assert attempt_open(path) is None


def test_second_writer_in_the_same_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path) as first:
        first.seen(profile(1, first_name="A"), AT)
        error = attempt_open(path)
        assert isinstance(error, StoreLockedError), repr(error)
        assert isinstance(error, StoreError)
        assert str(os.getpid()) in str(error)
        assert first.get(1) is not None  # the holder is unharmed
    with UserStore(path, readonly=True) as reader:
        assert reader.get(1)["first_name"] == "A"  # type: ignore[index]
