"""The store under hostile files, processes and faults: nothing lost, nothing redirected, no hang.

Real files in tmp_path and real writer processes (tests/procs/store_writer.py).
Each case either refuses with one line naming the file, or keeps every recorded
change; none may lose data, follow a planted link, hang or print a traceback.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from test_store_crash import LOSS_WINDOW, Writer, check_durable

from tracker.store import StoreLockedError, UserStore


def wait_for_rounds(writer: Writer, rounds: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(writer.reports) < rounds:
        if writer.proc.poll() is not None or time.monotonic() > deadline:
            writer.proc.kill()
            writer.finish()
            raise AssertionError(f"writer stopped early; stderr:\n{writer.stderr}")
        time.sleep(0.01)


# ------------------------------------------------ 1. the lock file goes away


def remove_lock(lock: Path) -> None:
    lock.unlink()


def replace_lock(lock: Path) -> None:
    fresh = lock.with_name("planted")
    fresh.write_text("12345\n")
    os.replace(fresh, lock)


@pytest.mark.slow
@pytest.mark.parametrize("tamper", [remove_lock, replace_lock], ids=["removed", "replaced"])
def test_a_second_writer_cannot_get_in_when_the_lock_file_is_removed(tmp_path: Path, tamper: object) -> None:
    path = tmp_path / "users.json"
    # Snapshots often, so the first writer compacts its journal while the second one tries.
    first = Writer(path, "--snapshot-min-bytes", "20000", "--snapshot-max-age", "0.3")
    first.wait_ready()
    wait_for_rounds(first, 5)
    tamper(path.with_name("users.json.lock"))  # type: ignore[operator]
    for attempt in range(5):
        second = Writer(path, "--batches", "1")
        code = second.finish()
        assert code != 0, f"attempt {attempt}: a second writer got in while the first runs"
        assert "already open for writing" in second.stderr, second.stderr
        assert str(path) in second.stderr
        with pytest.raises(StoreLockedError):  # and in this process, with the typed error
            UserStore(path)
    wait_for_rounds(first, len(first.reports) + 3)
    sent_at = first.signal(signal.SIGKILL)
    first.finish()
    with UserStore(path, readonly=True) as reader:
        records = {r["id"]: dict(r) for r in reader}
        meta = reader.meta
    report = check_durable(records, meta, first, sent_at, LOSS_WINDOW, "after SIGKILL of the first writer")
    assert report is not None, "the first writer reported nothing durable"
