"""history / retention / sources / report through CliRunner and as a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

import tracker.cli_history
import tracker.cli_support
from tests.test_audience import write_store
from tests.test_history_aggregates import Simulation, random_events
from tracker import audience
from tracker.cli import cli
from tracker.periods import Grain
from tracker.store import StoreReader

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2024, 11, 8, 21, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
BERLIN_CONFIG = "[tracker]\ntimezone = Europe/Berlin\n"


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracker.cli_support, "now", lambda: NOW)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    sim = Simulation(BERLIN)
    random_events(sim, date(2024, 10, 10), 30, seed=5, users=50)
    for uid, record in sim.users.items():
        record["source"] = ["ads", None, 'promo,"x"'][uid % 3]
    return write_store(sim, tmp_path / "data" / "users.json")


def run(store: Path, *args: str) -> tuple[int, str, str]:
    config = store.parent.parent / "config.ini"
    config.write_text(BERLIN_CONFIG)
    result = CliRunner().invoke(cli, ["--config", str(config), "--store", str(store), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_history_json_is_the_query(store: Path) -> None:
    code, out, _ = run(store, "history", "--by", "week", "--days", "20", "--json")
    assert code == 0
    expected = audience.history(StoreReader(store), Grain.WEEK, 20, NOW, BERLIN)
    assert json.loads(out) == expected.to_json()
    assert json.loads(out)["by"] == "week" and len(json.loads(out)["periods"]) == 4


def test_retention_csv_has_active_columns(store: Path) -> None:
    code, out, _ = run(store, "retention", "--by", "day", "--periods", "5", "--csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["cohort", "users", "active_0", "active_1", "active_2", "active_3", "active_4"]
    report = audience.retention(StoreReader(store), Grain.DAY, 5, NOW, BERLIN)
    for row, cohort in zip(rows[1:], report.cohorts, strict=True):
        assert row[0] == cohort.cohort.isoformat() and int(row[1]) == cohort.users
        assert [int(v) for v in row[2:] if v] == list(cohort.active)


def test_history_csv_commands_are_json_text(store: Path) -> None:
    code, out, _ = run(store, "history", "--csv", "--days", "3")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 3
    assert list(rows[0]) == list(audience.HISTORY_KEYS)
    assert any(json.loads(row["commands"]) for row in rows)


def test_sources_csv_escapes_and_orders(store: Path) -> None:
    code, out, _ = run(store, "sources", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and list(rows[0]) == list(audience.SOURCES_KEYS)
    assert {row["source"] for row in rows} == {"ads", "", 'promo,"x"'}
    code, out, _ = run(store, "sources", "--json")
    assert [row["users"] for row in json.loads(out)] == [int(row["users"]) for row in rows]


@pytest.mark.parametrize(
    "args,words",
    [
        (["history"], ["PERIOD", "ACTIVE", "since"]),
        (["retention"], ["COHORT", "+0"]),
        (["sources"], ["SOURCE", "RET 7D"]),
    ],
    ids=["history", "retention", "sources"],
)
def test_tables_by_default(store: Path, args: list[str], words: list[str]) -> None:
    code, out, _ = run(store, *args)
    assert code == 0 and all(word in out for word in words)


@pytest.mark.parametrize("command", ["history", "retention", "sources"])
def test_json_and_csv_together_is_a_usage_error(store: Path, command: str) -> None:
    assert run(store, command, "--json", "--csv")[0] == 2


@pytest.mark.parametrize("command", ["history", "retention", "sources", "report"])
def test_missing_store_is_one_line_and_creates_nothing(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nope" / "users.json"
    args = [command, str(tmp_path / "r.html")] if command == "report" else [command]
    code, _, err = run(missing, *args)
    assert code == 1 and str(missing) in err and err.count("\n") == 1
    assert not missing.parent.exists() and not (tmp_path / "r.html").exists()


def test_malformed_history_table_is_one_line(store: Path) -> None:
    document = json.loads(store.read_text())
    document["history_day"]["x"] = {"period": 5}
    store.write_text(json.dumps(document))
    code, _, err = run(store, "history")
    assert code == 1 and "history_day" in err and err.count("\n") == 1


def test_report_writes_a_self_contained_page(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    code, _, err = run(store, "report", str(target), "--days", "14")
    assert code == 0 and str(target) in err
    page = target.read_text()
    assert page.count("<svg") >= 3 and "http" not in page and "<script" not in page
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert run(store, "report", str(tmp_path / "report.txt"))[0] == 2


@pytest.mark.parametrize("command", ["history", "retention", "sources", "report"])
def test_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    summary = cli.commands[command].help or ""
    assert result.exit_code == 0 and summary and summary.split("\n")[0] in result.output


@pytest.mark.slow
def test_subprocess(store: Path, tmp_path: Path) -> None:
    (tmp_path / "config.ini").write_text(BERLIN_CONFIG)
    env = {**os.environ, "TRACKER_STORE": str(store), "PYTHONPATH": str(REPO)}
    base = [sys.executable, str(REPO / "cli.py"), "--config", str(tmp_path / "config.ini")]
    out = subprocess.run([*base, "history", "--json"], env=env, capture_output=True, text=True, check=True)
    document = json.loads(out.stdout)
    assert list(document) == ["timezone", "by", "since", "periods"] and len(document["periods"]) == 30
    assert list(document["periods"][0]) == list(audience.HISTORY_KEYS)
    out = subprocess.run([*base, "retention", "--json"], env=env, capture_output=True, text=True, check=True)
    cohorts = json.loads(out.stdout)["cohorts"]
    assert len(cohorts) == 12 and all(len(c["active"]) == 12 - i for i, c in enumerate(cohorts))
    bad = subprocess.run([*base, "history", "--days", "0"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
