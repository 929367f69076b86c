"""``tracker stats`` fits the terminal: long, wide and hostile source names never overflow a line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from wcwidth import wcswidth

from tracker.cli import cli
from tracker.models import make_profile
from tracker.store import UserStore

NOW = datetime.now(UTC)

#: Deep-link sources as a hand-edited or hostile store may hold them (users per source: 40 down to 1).
SOURCES = [
    "广告活动" * 20,  # CJK: two columns a character, 160 in all
    "🎉🚀👩‍👩‍👧‍👦" * 10,  # emoji, a ZWJ family among them
    "\x1b[31mred\x1b[0m\x1b]0;title\x07" + "x" * 60,  # escape sequences: colours, a window title
    "campaign_" + "a" * 55,
    "ref\u202eevil\u200b" * 8,  # bidi override, zero-width space
    "short",
    "ünïcödé-" * 9,
]
LANGUAGES = ["zh-hans", "en", "ru", "pt-br", "uk", "de", "fr"]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "users.json"
    with UserStore(path) as writer:
        user_id = 1
        for rank, source in enumerate(SOURCES):
            for _ in range(40 - 5 * rank):
                profile = make_profile(user_id, "Ann", language_code=LANGUAGES[rank])
                writer.seen(profile, NOW - timedelta(days=user_id % 20), source=source)
                user_id += 1
    return path


def stats_lines(store: Path, columns: int) -> list[str]:
    result = CliRunner().invoke(cli, ["--store", str(store), "stats"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


@pytest.mark.parametrize("columns", [80, 132])
def test_every_stats_line_fits_the_terminal(store: Path, columns: int) -> None:
    lines = stats_lines(store, columns)
    assert [line.split(":")[0] for line in lines][-3:] == ["Languages", "Sources", "New per day"]
    for line in lines:
        assert "\x1b" not in line and "\x07" not in line, repr(line)
        assert 0 <= wcswidth(line) <= columns, (wcswidth(line), line)


@pytest.mark.parametrize("columns", [80, 132])
def test_fitted_lists_keep_the_numbers_and_count_the_rest(store: Path, columns: int) -> None:
    lines = {line.split(":")[0]: line for line in stats_lines(store, columns)}
    sources = lines["Sources"]
    # The largest source comes first with its exact count and share; what is left out is counted.
    assert sources.startswith("Sources:        广告活动")
    assert " 40 (" in sources
    shown = len(re.findall(r" \d+ \(\d+%\)", sources))
    assert 1 <= shown < len(SOURCES)
    assert sources.endswith(f"+{len(SOURCES) - shown} more")
    assert "…" in sources  # the CJK name is longer than any line: cut, not dropped
    assert re.search(r" max \d+/day$", lines["New per day"])


def test_wider_terminal_lists_more(store: Path) -> None:
    def shown(columns: int) -> int:
        line = next(line for line in stats_lines(store, columns) if line.startswith("Languages:"))
        return len(re.findall(r" \d+ \(\d+%\)", line))

    assert shown(80) < shown(132)
