"""The audience commands as a terminal and a file system see them.

Source names are user input (the payload of ``/start PAYLOAD``): they must not
reach the terminal raw, and the tables must fit it. ``report`` writes a file,
so like ``export`` it must never replace the store or one of its side files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from wcwidth import wcswidth

import tracker.cli_history
import tracker.cli_support
from tracker.cli import cli
from tracker.models import make_profile
from tracker.periods import Grain
from tracker.store import UserStore

NOW = datetime(2024, 11, 8, 21, 0, tzinfo=UTC)

HOSTILE_SOURCES = [
    "ads",
    "clear\x1b[2Jscreen",  # an escape sequence: would clear the terminal
    "bidi\u202etxt.exe",  # a right-to-left override
    "wide_广告_source_with_a_long_campaign_name_2024",
    "😀" * 30,
]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tracker.cli_support, "now", lambda: NOW)
    path = tmp_path / "data" / "users.json"
    with UserStore(path) as writer:
        for user_id, source in enumerate(HOSTILE_SOURCES, 1):
            at = datetime(2024, 11, user_id, 12, tzinfo=UTC)
            writer.seen(make_profile(user_id, "User"), at, source=source, command="/start")
    return path


def run(store: Path, *args: str, columns: int = 80) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--store", str(store), *args], env={"COLUMNS": str(columns)})
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("columns", [80, 132])
@pytest.mark.parametrize(
    "command", [["sources"], ["history"], ["retention", "--by", "day", "--periods", "5"]]
)
def test_tables_fit_the_terminal_and_carry_no_control_characters(
    store: Path, columns: int, command: list[str]
) -> None:
    code, out, _ = run(store, *command, columns=columns)
    assert code == 0, out
    for line in out.splitlines():
        assert "\x1b" not in line and "\u202e" not in line, repr(line)
        assert wcswidth(line) <= columns, (columns, line)


def test_sources_table_names_every_source_recognisably(store: Path) -> None:
    code, out, _ = run(store, "sources", columns=132)
    assert code == 0
    assert "ads" in out and "clear?[2Jscreen" in out and "bidi?txt.exe" in out


@pytest.mark.parametrize("side", ["", ".journal", ".columns", ".history", ".lock"])
def test_report_never_replaces_the_store_or_a_side_file(store: Path, side: str) -> None:
    target = store.with_name(store.name + side)
    before = target.read_bytes() if target.exists() else None
    # Spelled another way: through a relative path with a "..".
    spelled = store.parent / ".." / store.parent.name / (target.name + ".html")
    real = Path(str(target) + ".html")
    if side == "":
        # The store itself cannot be named *.html; a symlink named like a report can point at it.
        real.symlink_to(store)
    else:
        real.symlink_to(target)
    code, _, err = run(store, "report", str(spelled))
    assert code == 1, err
    assert err.startswith("Error: ") and err.count("\n") == 1
    assert (target.read_bytes() if target.exists() else None) == before


def test_grain_names_match_the_calendar() -> None:
    assert [grain.value for grain in Grain] == tracker.cli_history.GRAINS
