"""``users``, ``show`` and ``forget`` as people use them (issue 12), in-process AND as real processes.

Every test runs twice: through Click's CliRunner and as ``python cli.py`` in a
subprocess. Widths are measured on the output with wcwidth, the same way a
terminal places the characters.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from wcwidth import wcswidth

from tests.cli_run import Invoke, tracker_fixture  # noqa: F401 (the `tracker` fixture)
from tests.support import profile
from tracker.export import CSV_COLUMNS
from tracker.store import UserStore

NOW = datetime.now(UTC).replace(microsecond=0)
FIXED = datetime(2024, 1, 15, 12, 0, 0, tzinfo=UTC)  # winter: Berlin is UTC+1, New York UTC-5

#: Names a terminal renders with other widths than len() says.
HARD_NAMES = {
    1: ("李小龍", "漢字テスト長い名前です"),      # CJK: two columns each
    2: ("Zoë 🙂👍🏽🎉", "Émoji"),                 # emoji (and a skin-tone modifier)
    3: ("e\u0301te\u0301", "Combin\u0327ing"),   # combining marks: no column
    4: ("مرحبا", "بالعالم"),                     # Arabic (RTL)
    5: ("שלום", "\u202eevil"),                   # Hebrew (RTL) and a bidi override
    6: ("Plain", "Ascii"),
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Six users with hard names, unique languages l1..l6, sources for some."""
    path = tmp_path / "data" / "users.json"
    with UserStore(path) as writer:
        for uid, (first, last) in HARD_NAMES.items():
            writer.seen(profile(uid * 1111, first_name=first, last_name=last, language_code=f"l{uid}",
                         username=f"user_{uid}" if uid % 2 else None),
                        NOW - timedelta(hours=uid * 3, minutes=10),
                        source=f"ref_{1040 + uid}" if uid < 4 else None)
        writer.seen(profile(7777, first_name="Jürgen", last_name=None, language_code="de"),
                    FIXED, source="ads")
    return path


def _config(tmp_path: Path, store: Path, zone: str) -> Path:
    cfg = tmp_path / f"config-{zone.replace('/', '-')}.ini"
    cfg.write_text(f"[tracker]\nstore = {store}\ntimezone = {zone}\n", encoding="utf-8")
    return cfg


def _offset(line: str, text: str) -> int:
    """Display column where ``text`` starts in ``line``."""
    return wcswidth(line[: line.index(text)])


# ------------------------------------------------------------------ widths


@pytest.mark.parametrize("columns", [80, 132])
def test_every_row_fits_and_columns_line_up(tracker: Invoke, store: Path, columns: int) -> None:
    out = tracker(["--store", str(store), "users"], env={"COLUMNS": str(columns)})
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1 + 7
    for line in lines:
        assert 0 <= wcswidth(line) <= columns, line
    header, rows = lines[0], lines[1:]
    # After the names with wide, zero-width and RTL characters, the LANG cells
    # (unique per user) start exactly under the LANG title.
    lang_at = _offset(header, "LANG")
    for uid in HARD_NAMES:
        row = next(r for r in rows if f" {uid * 1111} " in f" {r} ")
        assert _offset(row, f" l{uid} ") + 1 == lang_at, row
    # IDs are right-aligned under the ID title.
    id_end = _offset(header, "ID") + 2
    assert {_offset(r, r.split()[0]) + len(r.split()[0]) for r in rows} == {id_end}
    assert "\u202e" not in out.stdout


def test_source_column_at_100_and_more(tracker: Invoke, store: Path) -> None:
    for columns in (100, 132, 200):
        out = tracker(["--store", str(store), "users"], env={"COLUMNS": str(columns)})
        header = out.stdout.splitlines()[0]
        assert "SOURCE" in header, columns
        row = next(r for r in out.stdout.splitlines() if r.lstrip().startswith("1111 "))
        assert _offset(row, "ref_10") == _offset(header, "SOURCE")


def test_long_names_are_cut_with_an_ellipsis(tracker: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path) as writer:
        writer.seen(profile(1, first_name="漢" * 60, username="u" * 32), NOW)
    out = tracker(["--store", str(path), "users"], env={"COLUMNS": "80"})
    row = out.stdout.splitlines()[1]
    assert "…" in row and wcswidth(row) <= 80 and len(out.stdout.splitlines()) == 2


def test_footer_goes_to_stderr(tracker: Invoke, store: Path) -> None:
    out = tracker(["--store", str(store), "users", "--limit", "2"], env={"COLUMNS": "132"})
    assert out.stderr == "2 of 7 matching users (7 in total)\n"
    assert "matching" not in out.stdout


# ------------------------------------------------------------------- zones


@pytest.mark.parametrize(("zone", "clock"), [("Europe/Berlin", "13:00"), ("America/New_York", "07:00")])
def test_users_and_show_use_the_configured_zone(tracker: Invoke, store: Path, tmp_path: Path,
                                                zone: str, clock: str) -> None:
    cfg = _config(tmp_path, store, zone)
    table = tracker(["--config", str(cfg), "users", "--search", "jurgen"], env={"COLUMNS": "132"})
    assert f"2024-01-15 {clock} (" in table.stdout and "d ago)" in table.stdout
    assert "T12:00:00Z" not in table.stdout
    shown = tracker(["--config", str(cfg), "show", "7777"])
    zone_name = "CET" if zone == "Europe/Berlin" else "EST"
    assert f"first_seen  2024-01-15 {clock}:00 {zone_name} (" in shown.stdout.replace("     ", "  ")
    as_json = json.loads(tracker(["--config", str(cfg), "show", "7777", "--json"]).stdout)
    assert as_json["first_seen"] == "2024-01-15T12:00:00Z"


def test_relative_times(tracker: Invoke, store: Path) -> None:
    out = tracker(["--store", str(store), "users", "--sort", "last_seen"], env={"COLUMNS": "80"})
    rows = out.stdout.splitlines()[1:]
    assert "3 h ago" in rows[0] and "6 h ago" in rows[1] and "18 h ago" in rows[5]


# ----------------------------------------------------------------- filters


def _ids(tracker: Invoke, store: Path, *args: str) -> list[int]:
    out = tracker(["--store", str(store), "users", "--format", "json", *args])
    assert out.code == 0, out.stderr
    return sorted(r["id"] for r in json.loads(out.stdout))


def test_source_filter_repeatable_and_none(tracker: Invoke, store: Path) -> None:
    assert _ids(tracker, store, "--source", "ref_1041") == [1111]
    assert _ids(tracker, store, "--source", "ref_1041", "--source", "ads") == [1111, 7777]
    assert _ids(tracker, store, "--source", "none") == [4444, 5555, 6666]
    assert _ids(tracker, store, "--source", "ref_104") == []  # exact match


def test_search_finds_sources_and_folds_accents_both_ways(tracker: Invoke, store: Path) -> None:
    assert _ids(tracker, store, "--search", "ref_1042") == [2222]
    assert _ids(tracker, store, "--search", "jurgen") == [7777]
    assert _ids(tracker, store, "--search", "JÜRGEN") == [7777]
    assert _ids(tracker, store, "--search", "JURGEN") == [7777]
    assert _ids(tracker, store, "--search", "ete") == [3333]


def test_source_filter_on_stats_and_export(tracker: Invoke, store: Path, tmp_path: Path) -> None:
    stats = json.loads(tracker(["--store", str(store), "stats", "--json", "--source", "none"]).stdout)
    assert stats["total_users"] == 3 and stats["sources"] == {}
    target = tmp_path / "ads.csv"
    out = tracker(["--store", str(store), "export", str(target), "--source", "ads", "--source", "ref_1043"])
    assert out.code == 0, out.stderr
    with open(target, newline="", encoding="utf-8") as fh:
        assert sorted(r["id"] for r in csv.DictReader(fh)) == ["3333", "7777"]


# ----------------------------------------------------------------- formats


def test_users_formats_parse_back(tracker: Invoke, store: Path) -> None:
    base = ["--store", str(store), "users", "--sort", "messages", "--limit", "3"]
    as_json = json.loads(tracker([*base, "--format", "json"]).stdout)
    assert as_json == json.loads(tracker([*base, "--json"]).stdout)
    assert len(as_json) == 3 and as_json[0]["first_seen"].endswith("Z")
    ndjson = [json.loads(line) for line in tracker([*base, "--format", "ndjson"]).stdout.splitlines()]
    assert ndjson == as_json
    rows = list(csv.DictReader(io.StringIO(tracker([*base, "--format", "csv"]).stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r["id"]) for r in rows] == [r["id"] for r in as_json]


# ------------------------------------------------------- options, forget


def test_global_options_after_the_command(tracker: Invoke, store: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path, store, "Europe/Berlin")
    out = tracker(["users", "--limit", "2", "--config", str(cfg)], env={"COLUMNS": "132"})
    assert out.code == 0 and out.stderr == "2 of 7 matching users (7 in total)\n"
    out = tracker(["stats", "--json", "--store", str(store)])
    assert out.code == 0 and json.loads(out.stdout)["total_users"] == 7
    out = tracker(["show", "@user_1", "--store", str(store)])
    assert out.code == 0 and "1111" in out.stdout


def test_forget_by_username(tracker: Invoke, store: Path) -> None:
    out = tracker(["--store", str(store), "forget", "@USER_3"], input="y\n")
    assert out.code == 0, out.stderr
    assert "Erase user 3333 (" in out.stdout and out.stdout.endswith("erased user 3333\n")
    with UserStore(store, readonly=True) as reader:
        assert 3333 not in reader and len(reader) == 6


def test_show_user_not_found_by_username(tracker: Invoke, store: Path) -> None:
    out = tracker(["--store", str(store), "forget", "@ghost", "--yes"])
    assert (out.code, out.stderr) == (1, f"Error: no user @ghost in {store}\n")


def test_users_on_an_empty_store(tracker: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path):
        pass
    out = tracker(["--store", str(path), "users"], env={"COLUMNS": "80"})
    assert out.code == 0 and out.stdout.split()[0] == "ID"
    assert out.stderr == "0 of 0 matching users (0 in total)\n"
