"""``python -m bench bot`` at toy size: its store file is a real store, its run completes.

No timings are asserted (figures are the benchmark's job): this keeps the
benchmark's fast store writer in step with the store, and its accounting whole.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pytest

from bench.bot import bench, turns
from bench.bot_world import person, write_store
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


def toy_args(**changes: object) -> argparse.Namespace:
    fields: dict[str, object] = dict(store_users=300, updates=200, new_share=0.1, rounds=2, chunks=6, seed=3)
    fields.update(handler_side=True)
    return argparse.Namespace(**{**fields, **changes})


def test_a_toy_run_reports_every_round_and_charges_the_store_threads() -> None:
    lines: list[str] = []
    result = run(bench(toy_args(), lines.append))
    assert len(result.rounds) == 2
    assert [line.split()[0] for line in lines] == ["set-up", "warm-up", "round", "round"]
    for figures in result.rounds:
        assert figures.baseline > 0 and figures.tracker_main > 0 and figures.handler_side is not None
        assert figures.other_threads >= 0 and figures.between_chunks >= 0
        assert figures.tracker >= figures.tracker_main
        assert "handler side" in lines[-1]
    # Only the tracker's store has threads (the handler-side client's were stopped), all of them shown.
    assert {"journal", "snapshot"} <= set(result.threads)
    assert all(used >= 0 for used in result.threads.values())


def test_without_the_handler_side_client_only_the_tracker_is_compared() -> None:
    lines: list[str] = []
    result = run(bench(toy_args(rounds=1, handler_side=False), lines.append))
    [figures] = result.rounds
    assert figures.handler_side is None and figures.handler_overhead is None
    assert "handler side" not in lines[-1] and "no-op A/B" in lines[-1]


def test_the_turns_put_every_client_at_every_place_and_before_every_other_equally_often() -> None:
    names = ["a", "b", "c", "d"]
    orders = turns(names)
    for name in names:
        assert sorted(order.index(name) for order in orders) == sorted(list(range(len(names))) * 2)
    for first, second in itertools.permutations(names, 2):
        before = sum(order.index(first) < order.index(second) for order in orders)
        assert before == len(orders) // 2, (first, second)
