"""The large-file path: stores of any size open, with the same checks as small ones.

orjson refuses inputs near 2**31 bytes, so a store file over ``LARGE_FILE_BYTES``
is parsed by msgspec from a memory map. Gigabytes are too slow for a test: the
threshold is lowered to 0 so every file here takes the large-file path, and it
must accept and refuse exactly what the small-file path does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

try:
    from tests.test_hostile_store import FIELD_SAMPLE, STORE_FILE_WRONG, as_json
except ImportError:  # tests/ is not a package in every checkout
    from test_hostile_store import FIELD_SAMPLE, STORE_FILE_WRONG, as_json  # type: ignore[no-redef]

from tracker.models import Profile
from tracker.store import StoreCorruptError, UserStore
from tracker.store.format import LARGE_FILE_BYTES, Snapshot, read_store

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
SMALL, LARGE = LARGE_FILE_BYTES, 0  # thresholds: the default, and "every file is large"


def outcome(path: Path, threshold: int) -> Snapshot | str:
    """The parsed snapshot, or the error message (which must be one line naming the file)."""
    try:
        return read_store(path, compact=True, large_file_bytes=threshold)
    except StoreCorruptError as exc:
        message = str(exc)
        assert str(path) in message and "\n" not in message, message
        return message.split(":")[0]


def test_the_default_threshold_is_below_orjsons_wall() -> None:
    assert 0 < LARGE_FILE_BYTES < 2**31 - 2**28


def test_a_real_store_reads_the_same_through_both_paths(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path) as store:
        for i in range(300):
            store.seen(Profile(1000 + i, f"Näme {i} 😀", None, f"u{i}", "en", False, None), NOW,
                       source="ad" if i % 3 else None)
        store.set_blocked(1001, True, NOW + timedelta(seconds=5))
        store.update_meta(bio_text="👥 Users: 300")
    small = read_store(path, compact=True, large_file_bytes=SMALL)
    large = read_store(path, compact=True, large_file_bytes=LARGE)
    assert large == small
    assert len(large.records) == 300 and large.records[1001]["blocked"] is True
    assert large.meta["bio_text"] == "👥 Users: 300"


def damaged_files() -> dict[str, bytes]:
    """Store files that must be refused (or read) the same way by both parsers."""
    good = {"users": {"3": {**FIELD_SAMPLE, "id": 3}}, "meta": {"1": {"schema": 1}}}
    text = as_json(good)
    files: dict[str, bytes] = {f"wrong record: {label}": as_json(
        {"users": {"3": record}, "meta": {"1": {"schema": 1}}}) for label, record in STORE_FILE_WRONG.items()}
    files.update({
        "good": text,
        "empty": b"",
        "blank": b"  \n ",
        "truncated": text[: len(text) // 2],
        "garbage": b"\x00\xff not json",
        "trailing garbage": text + b"x",
        "not an object": b"[1, 2]",
        "foreign tables": b'{"orders": {"1": {}}}',
        "users not an object": b'{"users": [1], "meta": {"1": {"schema": 1}}}',
        "non-numeric doc id": b'{"users": {"x1": {}}, "meta": {"1": {"schema": 1}}}',
        "doc id over 64 bits": as_json({"users": {"99999999999999999999999": {**FIELD_SAMPLE, "id": 5}},
                                        "meta": {"1": {"schema": 1}}}),
        "lone surrogate": text.replace(b'"id":3', b'"id":3,"x":"\\ud800"'),
        "invalid utf-8": text.replace(b'"id":3', b'"id":3,"x":"\xff"'),
        "NaN": text.replace(b'"id":3', b'"id":3,"x":NaN'),
        "deep meta": b'{"users": {}, "meta": {"1": {"schema": 1, "x": ' + b"[" * 3000 + b"]" * 3000 + b"}}}",
        "newer schema": b'{"users": {}, "meta": {"1": {"schema": 99}}}',
    })
    return files


DAMAGED = damaged_files()


@pytest.mark.parametrize("label", list(DAMAGED))
def test_the_large_file_path_accepts_and_refuses_what_the_small_one_does(tmp_path: Path, label: str) -> None:
    path = tmp_path / "users.json"
    path.write_bytes(DAMAGED[label])
    small, large = outcome(path, SMALL), outcome(path, LARGE)
    assert large == small
    if label not in ("good", "empty", "blank"):
        assert isinstance(large, str), f"{label} was accepted"


def test_a_record_read_by_the_large_path_is_written_back_as_read(tmp_path: Path) -> None:
    """Values msgspec yields (ints, text) must be ones the writer can serialise again."""
    path = tmp_path / "users.json"
    record: dict[str, Any] = {**FIELD_SAMPLE, "id": 2**62, "messages": 2**63 - 1, "extra": {"k": [1, "ü"]}}
    path.write_bytes(as_json({"users": {str(2**62): record}, "meta": {"1": {"schema": 1}}}))
    snapshot = read_store(path, compact=True, large_file_bytes=LARGE)
    assert snapshot.records == {2**62: record}
    with UserStore(path) as store:  # the writer reads, snapshots and closes
        store.seen(Profile(7, "Seven"), NOW)
    again = read_store(path, compact=True, large_file_bytes=LARGE)
    assert again.records[2**62] == record and again.records[7]["first_name"] == "Seven"
