"""``python -m bench bot`` at toy size: its store file is a real store, its run completes.

No timings are asserted (figures are the benchmark's job): this keeps the
benchmark's fast store writer in step with the store, and its accounting whole.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.bot import bench, person, write_store
from tests.telegram_fakes import run
from tracker.models import PROFILE_FIELDS, make_profile
from tracker.store import UserStore

pytestmark = pytest.mark.bot


def test_the_benchmarks_store_file_opens_with_every_user(tmp_path: Path) -> None:
    path = tmp_path / "data" / "users.json"
    write_store(path, 250)
    with UserStore(path) as store:
        assert len(store) == 250
        for index in (0, 1, 3, 249):
            p = person(index)
            record = store.get(p.id)
            assert record is not None
            stored = make_profile(record["id"], *(record[name] for name in PROFILE_FIELDS))
            sent = make_profile(p.id, p.first_name, p.last_name, p.username, p.lang_code, False, p.premium)
            assert stored == sent  # what the updates send: a stored user's profile is unchanged



def test_a_toy_run_reports_every_round_and_charges_the_store_threads() -> None:
    args = argparse.Namespace(store_users=300, updates=200, new_share=0.1, rounds=2, chunks=4, seed=3)
    lines: list[str] = []
    result = run(bench(args, lines.append))
    assert result.chunks == 2 * 4
    assert len(result.round_overheads) == 2
    assert result.baseline > 0 and result.tracker > 0
    assert set(result.threads) == {"journal", "snapshot"}
    assert 0 <= result.store <= result.tracker
    assert [line.split()[0] for line in lines] == ["set-up", "warm-up", "round", "round"]
