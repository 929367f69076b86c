"""The store under hostile files, processes and faults: nothing lost, nothing redirected, no hang.

Real files in tmp_path and real writer processes (tests/procs/store_writer.py).
Each case either refuses with one line naming the file, or keeps every recorded
change; none may lose data, follow a planted link, hang or print a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import resource
import shutil
import signal
import stat
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.test_store import crash_image, snapshot_folder
from tests.test_store_crash import LOSS_WINDOW, Writer, check_durable
from tracker.models import Profile
from tracker.store import StoreCorruptError, StoreError, StoreLockedError, StoreReader, Tuning, UserStore


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
    time.sleep(LOSS_WINDOW + 0.5)  # so some of what it reported must be durable
    rounds_before_kill = len(first.reports)
    sent_at = first.signal(signal.SIGKILL)
    first.finish()
    with UserStore(path, readonly=True) as reader:
        records = {r["id"]: dict(r) for r in reader}
        meta = reader.meta
    report = check_durable(records, meta, first, sent_at, LOSS_WINDOW, "after SIGKILL of the first writer")
    assert report is not None, f"the first writer reported nothing durable ({rounds_before_kill} rounds)"


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


def as_json(value: Any) -> bytes:
    """Compact JSON of anything, even what orjson refuses to write (ints over 64 bits, deep nesting)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


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


# ---------------------------------------------- 3./4. wrong shapes, wrong types

WRONG_VALUES: list[Any] = ["5", 5, 1.5, 1001.0, None, True, [], {}, -1, 2**64, [[[]]]]
WRONG_VALUES.append("２０２４-03-01T12:00:00Z")  # full-width digits: isdigit() says yes
FIELD_SAMPLE = {  # a valid value per field, to tell wrong values from right ones
    "id": 3,
    "first_name": "A",
    "last_name": None,
    "username": "a",
    "language_code": None,
    "is_bot": False,
    "is_premium": None,
    "first_seen": "2024-03-01T12:30:45Z",
    "last_seen": "2024-03-01T12:30:45Z",
    "messages": 2,
    "source": None,
    "blocked": False,
    "blocked_at": None,
}
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
ALLOWED: dict[str, Callable[[Any], bool]] = {  # the contract (DESIGN.md "The store file"), written out
    "id": lambda v: type(v) is int and -(2**63) <= v < 2**63,
    "is_bot": lambda v: type(v) is bool,
    "blocked": lambda v: type(v) is bool,
    "is_premium": lambda v: v is None or type(v) is bool,
    "messages": lambda v: type(v) is int and 0 <= v < 2**63,
    "first_seen": lambda v: v is None or (type(v) is str and TIMESTAMP.fullmatch(v) is not None),
}
ALLOWED["last_seen"] = ALLOWED["blocked_at"] = ALLOWED["first_seen"]


DEEP = functools.reduce(lambda inner, _: [inner], range(300), [])  # deeper than orjson writes


def wrong_values(field: str) -> list[Any]:
    allowed = ALLOWED.get(field, lambda v: v is None or type(v) is str)
    return [value for value in WRONG_VALUES if not allowed(value)]


def wrong_records() -> Iterator[tuple[str, Any]]:
    for field in FIELD_SAMPLE:
        for value in wrong_values(field):
            yield f"{field}={value!r}", {**FIELD_SAMPLE, field: value}
        yield f"no {field}", {k: v for k, v in FIELD_SAMPLE.items() if k != field}
    yield "extra nested too deep", {**FIELD_SAMPLE, "extra": DEEP}


def wrong_entries() -> Iterator[tuple[str, Any]]:
    """Every entry kind with every wrong shape and type (none of them is a valid entry)."""
    for kind in "gudtmc":
        for value in WRONG_VALUES:
            valid = (kind in "udt" and value == []) or (kind == "m" and value == {})
            valid |= kind == "c" and type(value) is int and 0 <= value < 2**32  # a checksum (checked below)
            if not valid:
                yield f"[{kind}, {value!r}]", [kind, value]
        yield f"[{kind}, [], 1] (one value too many)", [kind, [], 1]
    yield "[] (no kind)", []
    yield "[5, []] (kind not text)", [5, []]
    yield "[x, []] (unknown kind)", ["x", []]
    yield "{} (not a list)", {}
    for label, record in wrong_records():
        yield f"upsert of a record with {label}", ["u", [record]]
    for value in WRONG_VALUES:
        yield f"upsert of {value!r}", ["u", [value]]
        yield f"delete of {value!r}", ["d", [value]] if not ALLOWED["id"](value) else ["d", [value, "x"]]
    good_touch = [3, "2024-03-01T12:30:45Z", 2]
    yield "touch with two fields", ["t", [good_touch[:2]]]
    yield "touch with four fields", ["t", [[*good_touch, 1]]]
    for position, field in enumerate(("id", "last_seen", "messages")):
        for value in wrong_values(field):
            touch = list(good_touch)
            touch[position] = value
            yield f"touch with {field}={value!r}", ["t", [touch]]
    yield "generation as text", ["g", "7"]
    yield "meta nested too deep", ["m", {"x": DEEP}]


WRONG_ENTRIES = dict(wrong_entries())


def test_there_are_many_wrong_entries() -> None:
    assert len(WRONG_ENTRIES) >= 150  # the suite below tries each one


@pytest.mark.parametrize("label", list(WRONG_ENTRIES))
def test_a_wrong_shaped_journal_entry_is_refused_naming_file_and_line(tmp_path: Path, label: str) -> None:
    image = crash_image(tmp_path)
    journal = image.with_name("users.json.journal")
    line_number = journal.read_bytes().count(b"\n") + 1
    append_batch(journal, as_json(WRONG_ENTRIES[label]))
    message = refused(image, journal)
    assert f"line {line_number}" in message, message


# In the store file a missing field is completed (older stores; see test_store) and
# the doc id is the truth (a record's own "id" is normalised to it): not errors there.
STORE_FILE_WRONG = {label: rec for label, rec in wrong_records() if not label.startswith(("no ", "id="))}


@pytest.mark.parametrize("label", list(STORE_FILE_WRONG))
def test_a_wrong_typed_record_in_the_store_file_is_refused(tmp_path: Path, label: str) -> None:
    path = tmp_path / "users.json"
    document = {"users": {"3": STORE_FILE_WRONG[label]}, "meta": {"1": {"schema": 1}}}
    path.write_bytes(as_json(document))
    assert "users record 3" in refused(path, path)


@pytest.mark.parametrize("wrong_id", wrong_values("id"), ids=repr)
def test_a_records_own_id_is_normalised_to_its_doc_id(tmp_path: Path, wrong_id: Any) -> None:
    path = tmp_path / "users.json"
    document = {"users": {"1001": {**FIELD_SAMPLE, "id": wrong_id}}, "meta": {"1": {"schema": 1}}}
    path.write_bytes(as_json(document))
    with UserStore(path) as store:
        assert store.get(1001) == {**FIELD_SAMPLE, "id": 1001}
    assert json.loads(path.read_bytes())["users"] == {"1001": {**FIELD_SAMPLE, "id": 1001}}
    with UserStore(path, readonly=True) as reader:
        assert [type(r["id"]) for r in reader] == [int]


@pytest.mark.parametrize("doc_id", ["1001.0", "99999999999999999999999", "1e3", "-5"])
def test_odd_doc_ids_are_refused(tmp_path: Path, doc_id: str) -> None:
    path = tmp_path / "users.json"
    path.write_bytes(as_json({"users": {doc_id: {**FIELD_SAMPLE, "id": 5}}, "meta": {"1": {"schema": 1}}}))
    refused(path, path)


def test_a_float_id_is_never_written_back_as_a_float_key(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    document = {"users": {"1001": {**FIELD_SAMPLE, "id": 1001.0}}, "meta": {"1": {"schema": 1}}}
    path.write_bytes(as_json(document))
    with UserStore(path) as store:
        store.seen(Profile(1002, "B"), datetime(2024, 3, 1, tzinfo=UTC))
    assert b'"1001.0"' not in path.read_bytes()
    with UserStore(path, readonly=True) as reader:
        assert 1001 in reader


# ------------------------------------------------- 4. random damage to journals

DAMAGE_CASES = 240
DamageBase = tuple[Path, list[dict[int, dict[str, Any]]], list[int]]


@pytest.fixture(scope="module")
def damage_base(tmp_path_factory: pytest.TempPathFactory) -> DamageBase:
    """A crash image, the records after each committed batch, and where each batch ends in the journal."""
    image = crash_image(tmp_path_factory.mktemp("damage"))
    journal = image.with_name("users.json.journal")
    data = journal.read_bytes()
    ends = [match.end() for match in re.finditer(rb'\["c"(,\d+)?\]\n', data)]
    # A torn last write, as a crash mid-append leaves it: ignored, so damage there must be too.
    last_batch = data[ends[-2] : ends[-1]]
    journal.write_bytes(data + last_batch[: len(last_batch) // 2])
    assert len(ends) >= 5
    states = []
    for end in [0, *ends]:  # the state after k batches: the journal cut right after the k-th commit
        prefix = image.parent / f"prefix{end}" / "users.json"
        prefix.parent.mkdir()
        shutil.copy2(image, prefix)
        prefix.with_name("users.json.journal").write_bytes(data[: end or data.index(b"\n") + 1])
        with UserStore(prefix, readonly=True) as reader:
            states.append({r["id"]: dict(r) for r in reader})
    # Each batch changes something, so "which state is this" has one answer.
    assert len({json.dumps(state, sort_keys=True) for state in states}) == len(states)
    return image, states, ends


@pytest.mark.parametrize("seed", range(DAMAGE_CASES))
def test_random_damage_to_a_journal_is_refused_or_applied_exactly(
    tmp_path: Path, damage_base: DamageBase, seed: int
) -> None:
    image, states, ends = damage_base
    rng = random.Random(seed)
    data = bytearray(image.with_name("users.json.journal").read_bytes())
    changed_at = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        at = rng.randrange(len(data))
        how = rng.choice(["flip", "byte", "digit", "delete", "insert"])
        if how == "flip":
            data[at] ^= 1 << rng.randrange(8)
        elif how == "byte":
            data[at] = rng.randrange(256)
        elif how == "digit":  # the damage most likely to stay valid JSON
            digits = [i for i, b in enumerate(data) if 48 <= b <= 57]
            at = rng.choice(digits)
            data[at] = 48 + (data[at] - 48 + rng.randrange(1, 10)) % 10
        elif how == "delete":
            del data[at]
        else:
            data.insert(at, rng.choice(b'0123456789",[]{}:\n x'))
        changed_at.append(at)
    folder = tmp_path / "store"
    folder.mkdir()
    path = folder / "users.json"
    shutil.copy2(image, path)
    journal = path.with_name("users.json.journal")
    journal.write_bytes(bytes(data))
    intact_batches = sum(1 for end in ends if end <= min(changed_at))
    try:
        with UserStore(path, readonly=True) as reader:
            records = {r["id"]: dict(r) for r in reader}
    except StoreCorruptError as exc:
        assert str(journal) in str(exc) and "\n" not in str(exc), exc
        return
    # Not refused: then it is exactly the state after some whole batches, all the intact ones at least.
    matches = [k for k, state in enumerate(states) if state == records]
    assert matches, f"seed {seed}: damage at {changed_at} was applied as something no batch wrote"
    assert max(matches) >= intact_batches, f"seed {seed}: intact batches were dropped"


# ----------------------------------------- 5. FIFOs, devices, folders, symlinks


def within(seconds: float, action: Callable[[], object]) -> BaseException | None:
    """Run ``action`` in a thread; the exception it raised (None if none); fail if it hangs."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            action()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"hung for {seconds} s"
    return outcome[0]


def make_fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def make_folder(path: Path) -> None:
    path.mkdir()


def make_device(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers: endless zeros


OPENERS: dict[str, Callable[[Path], object]] = {
    "writer": lambda path: UserStore(path).close(),
    "reader": lambda path: UserStore(path, readonly=True).close(),
    "StoreReader.columns": lambda path: StoreReader(path).columns(["id"]),
    "StoreReader.records": lambda path: list(StoreReader(path).records()),
}
SIDE_FILES = ["users.json", "users.json.journal", "users.json.columns", "users.json.lock"]


@pytest.mark.parametrize("opener", list(OPENERS))
@pytest.mark.parametrize("make", [make_fifo, make_folder, make_device], ids=["fifo", "folder", "device"])
@pytest.mark.parametrize("which", SIDE_FILES)
def test_a_non_regular_file_is_refused_naming_it_never_a_hang(
    tmp_path: Path, which: str, make: Callable[[Path], None], opener: str
) -> None:
    path = tmp_path / "users.json"
    with UserStore(path) as store:
        store.seen(Profile(1, "A"), datetime(2024, 3, 1, tzinfo=UTC))
    target = tmp_path / which
    target.unlink(missing_ok=True)
    make(target)
    untouched = {"users.json.lock": {"reader", "StoreReader.columns", "StoreReader.records"},
                 "users.json.columns": {"reader", "StoreReader.records"}}  # fmt: skip
    if opener in untouched.get(which, ()):
        assert within(10, lambda: OPENERS[opener](path)) is None  # a file it never opens
        return
    error = within(10, lambda: OPENERS[opener](path))
    assert isinstance(error, StoreError), error
    assert str(target) in str(error) and "\n" not in str(error), error
    assert os.path.lexists(target) and not target.is_file()  # left as it was


@pytest.mark.parametrize("opener", ["writer", "reader", "StoreReader.records"])
def test_a_store_path_of_dev_zero_is_refused_and_creates_nothing(opener: str) -> None:
    before = set(os.listdir("/dev"))
    error = within(10, lambda: OPENERS[opener](Path("/dev/zero")))
    assert isinstance(error, StoreError) and "/dev/zero" in str(error), error
    assert set(os.listdir("/dev")) == before


@pytest.mark.parametrize("which", ["users.json.lock", "users.json.journal"])
def test_a_planted_symlink_for_the_lock_or_journal_is_refused(tmp_path: Path, which: str) -> None:
    path = tmp_path / "users.json"
    with UserStore(path) as store:
        store.seen(Profile(1, "A"), datetime(2024, 3, 1, tzinfo=UTC))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / which).unlink(missing_ok=True)
    (tmp_path / which).symlink_to(victim)
    with pytest.raises(StoreError) as info:
        UserStore(path)
    assert str(tmp_path / which) in str(info.value) and "symbolic link" in str(info.value)
    assert victim.read_text() == "precious\n"


def test_planted_symlinks_for_temp_files_are_never_followed(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    temps = [
        f".users.json.{os.getpid()}.tmp",  # the snapshot's temp file
        f".users.json.columns.{os.getpid()}.tmp",  # the column file's
        "users.json.journal.tmp",  # the compacted journal's
    ]
    for name in temps:
        (tmp_path / name).symlink_to(victim)
    with UserStore(path) as store:
        for name in temps:  # planted again after the open cleaned up
            if not os.path.lexists(tmp_path / name):
                (tmp_path / name).symlink_to(victim)
        store.seen(Profile(1, "A"), datetime(2024, 3, 1, tzinfo=UTC))
        store.snapshot()
        store.seen(Profile(2, "B"), datetime(2024, 3, 1, tzinfo=UTC))
    assert victim.read_text() == "precious\n"
    with UserStore(path, readonly=True) as reader:
        assert len(reader) == 2


# ------------------------------------------------------ 6. disk full, then stop


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MB tmpfs: a disk that fills up (needs root to mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the disk-full case runs only as root")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the disk-full case needs one")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; return the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (1 << 16, 1 << 10, 1):
            while True:
                try:
                    out.write(b"\0" * size)
                except OSError:
                    break
    return filler


@pytest.mark.slow
def test_disk_full_then_sigterm_loses_nothing(tmp_path: Path, small_disk: Path) -> None:
    path = small_disk / "users.json"
    rescue = tmp_path / "rescue"
    writer = Writer(path, "--close-retry", "1", "--rescue-dir", str(rescue))
    writer.wait_ready()
    wait_for_rounds(writer, 3)
    filler = fill(small_disk)
    wait_for_rounds(writer, len(writer.reports) + 20)  # recorded while nothing can be saved
    writer.signal(signal.SIGTERM)
    code = writer.finish()
    failed = [e for e in writer.lines if e.get("event") == "close_failed"]
    assert code == 3 and failed, f"close() should have failed on a full disk; stderr:\n{writer.stderr}"
    message = failed[0]["error"]
    assert str(rescue) in message and "\n" not in message, message
    assert [p.name for p in rescue.iterdir()], "no rescue file"

    filler.unlink()
    with UserStore(path, tuning=Tuning(rescue_dirs=(str(rescue),))) as store:  # the next open applies it
        records = {r["id"]: dict(r) for r in store}
        meta = store.meta
    report = check_durable(records, meta, writer, time.monotonic(), 0.0, "after disk full + SIGTERM")
    assert report == writer.reports[-1], "the last reported round was not saved"
    assert list(rescue.iterdir()) == [], "the rescue file was applied and should be gone"
    with UserStore(path, readonly=True) as reader:  # and it is in the store file itself now
        assert {r["id"]: dict(r) for r in reader} == records


# -------------------------------------------- 7. flush() after the cause is gone


def test_flush_does_not_raise_a_background_error_whose_cause_is_gone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "users.json"
    at = datetime(2024, 3, 1, tzinfo=UTC)
    with UserStore(path, flush_interval=0.05) as store:
        store.seen(Profile(1, "A"), at)
        store.flush()
        journal_size = path.with_name("users.json.journal").stat().st_size
        # A real write failure: files of this process may not grow past the journal's size now.
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (journal_size + 16, old_limit[1]))
        try:
            for user_id in range(2, 200):
                store.seen(Profile(user_id, "B"), at)
            deadline = time.monotonic() + 10
            while "cannot write journal" not in caplog.text:
                assert time.monotonic() < deadline, "the background write never failed"
                time.sleep(0.01)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
            signal.signal(signal.SIGXFSZ, old_handler)
        deadline = time.monotonic() + 10
        while StoreReader(path).count() != 199:  # the thread retried and got through
            assert time.monotonic() < deadline, "the background write never recovered"
            time.sleep(0.01)
        store.flush()  # the cause is gone: nothing to raise
    with UserStore(path, readonly=True) as reader:
        assert len(reader) == 199
