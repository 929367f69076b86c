"""The store under hostile files, processes and faults: nothing lost, nothing redirected, no hang.

Real files in tmp_path and real writer processes (tests/procs/store_writer.py).
Each case either refuses with one line naming the file, or keeps every recorded
change; none may lose data, follow a planted link, hang or print a traceback.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import zlib
from pathlib import Path

import orjson
import pytest
from test_store import crash_image, snapshot_folder
from test_store_crash import LOSS_WINDOW, Writer, check_durable

from tracker.store import StoreCorruptError, StoreLockedError, StoreReader, UserStore


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


# ------------------------------------- 2. a journal belongs to one store, intact


def refused(path: Path, named: Path) -> str:
    """Every way of opening ``path`` refuses with one line naming ``named``; nothing changes."""
    before = snapshot_folder(path.parent)
    messages = []
    openers = (
        lambda: UserStore(path, readonly=True),
        lambda: UserStore(path),
        lambda: StoreReader(path).count(),
    )
    for opener in openers:
        with pytest.raises(StoreCorruptError) as info:
            opener()
        message = str(info.value)
        assert str(named) in message and "\n" not in message, message
        messages.append(message)
    after = snapshot_folder(path.parent)
    after.pop("users.json.lock", None)
    assert after == before, "a refused open changed the files"
    return messages[0]


def append_batch(journal: Path, *lines: bytes) -> None:
    """Append a well-formed committed batch (checksum over everything since the last commit)."""
    data = journal.read_bytes()
    last_commit = data.rfind(b'["c"')
    since = data[data.index(b"\n", last_commit) + 1 :] if last_commit >= 0 else data
    body = b"".join(line + b"\n" for line in lines)
    journal.write_bytes(data + body + b'["c",%d]\n' % zlib.crc32(since + body))


def test_a_journal_from_another_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "theirs").mkdir()
    mine = crash_image(tmp_path / "mine")
    theirs = crash_image(tmp_path / "theirs")  # same users, same generation, another store
    journal = mine.with_name("users.json.journal")
    shutil.copy2(theirs.with_name("users.json.journal"), journal)
    assert "another store" in refused(mine, journal)


def test_damage_that_still_parses_is_detected_not_applied(tmp_path: Path) -> None:
    image = crash_image(tmp_path)
    journal = image.with_name("users.json.journal")
    data = journal.read_bytes()
    assert b'"First3"' in data
    journal.write_bytes(data.replace(b'"First3"', b'"Fxrst3"', 1))
    assert "checksum" in refused(image, journal)


def test_a_journal_meta_entry_cannot_set_the_stores_own_fields(tmp_path: Path) -> None:
    image = crash_image(tmp_path)
    journal = image.with_name("users.json.journal")
    hostile_meta = {"schema": 99, "journal_gen": "x", "store_id": "y", "bio_text": "t"}
    append_batch(journal, orjson.dumps(["m", hostile_meta]))
    for _ in range(2):  # the second open reads what the first one wrote
        with UserStore(image) as store:
            meta = store.meta
        assert meta["schema"] == 1 and meta["bio_text"] == "t"
        assert meta["journal_gen"] != "x" and meta["store_id"] != "y"
    with UserStore(image, readonly=True) as reader:
        assert len(reader) == 5
