"""``python -m bench floor``'s bare trackers record what a tracker must: else their figure is no floor.

No timings are asserted; these check that each floor keeps last_seen (never
moving back), counts every message (a user twice in one batch too), takes
new users, and journals the touched users' values.
"""

from __future__ import annotations

from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.floor import BatchedFloor, InPlaceFloor, _Columns, main
from bench.paced import FIRST_ID, make_profile_of

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("kind", [InPlaceFloor, BatchedFloor])
def test_a_floor_keeps_last_seen_messages_and_new_users(kind: type[_Columns], tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    floor = kind(10, journal)
    floor.start()
    later = NOW + timedelta(seconds=30)
    floor.apply([make_profile_of(3), make_profile_of(3), make_profile_of(10)], later, "")  # type: ignore[attr-defined]
    floor.apply([make_profile_of(3)], NOW, "")  # type: ignore[attr-defined]  # older: last_seen stays
    floor.close()
    three, new = floor.rows[FIRST_ID + 3], floor.rows[FIRST_ID + 10]
    assert (floor.messages[three], floor.last_seen[three]) == (3, int(later.timestamp()))
    assert (floor.messages[new], floor.last_seen[new]) == (1, int(later.timestamp()))
    assert floor.messages[0] == 0 and floor.last_seen[0] == 0
    written = journal.read_bytes()
    assert len(written) % 16 == 0  # rounds of (id: 8, last_seen: 4, messages: 4) bytes per user
    for user_id in (FIRST_ID + 3, FIRST_ID + 10):
        assert array("q", [user_id]).tobytes() in written


def test_the_benchmark_runs_at_toy_size(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--sizes", "200", "--updates", "300", "--rounds", "1"])
    row = [line for line in capsys.readouterr().out.splitlines() if line.lstrip().startswith("200 |")]
    assert len(row) == 1 and row[0].count("µs") == 4
