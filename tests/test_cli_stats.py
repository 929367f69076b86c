"""``stats`` without Click (tracker.cli_stats): the same bytes, exit status and messages as Click's path.

Each case runs the real ``python cli.py ...`` (which answers a plain ``stats``
itself) and the Click group as a process of its own (``cli(prog_name=...)``),
and compares what a shell sees; a case that must take the fast path also
shows that Click was never imported (``-X importtime``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.cli_run import process_env
from tests.support import REPO, profile, run_python
from tracker.cli import cli
from tracker.cli_stats import parse
from tracker.store import UserStore, columns_path

NOW = datetime.now(UTC)

#: The Click group itself, as a process, named as ``cli.py`` names it.
CLICK = ["-c", "import sys; from tracker.cli import cli; cli(sys.argv[1:], prog_name='cli.py')"]
FAST = [str(REPO / "cli.py")]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store of a few users: languages, sources (one of them ``none``), blocked, several days.

    Half an hour off every window's edge: the runs compared are a moment apart.
    """
    path = tmp_path / "data" / "users.json"
    with UserStore(path) as writer:
        for i in range(40):
            writer.seen(profile(100 + i, f"User{i}", language_code=("en", "ru", None, "pt-br")[i % 4]),
                        NOW - timedelta(hours=7 * i + 0.5), source=("ads", None, "promo", "ü")[i % 4])
        writer.set_blocked(103, True, NOW - timedelta(hours=1))
    return path


def run(prefix: list[str], args: list[str], cwd: Path, env: dict[str, str] | None = None,
        **options: object) -> subprocess.CompletedProcess[str]:
    return run_python([*prefix, *args], cwd=cwd, env=process_env(env), **options)  # type: ignore[arg-type]


def imported(args: list[str], cwd: Path, entry: list[str] = FAST) -> set[str]:
    """The modules ``python ENTRY ARGS`` imported (it succeeded, or the assertion says why)."""
    proc = run(["-X", "importtime", *entry], args, cwd)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return {line.split("|")[-1].strip() for line in lines}


def click_imported(args: list[str], cwd: Path) -> bool:
    return "click" in imported(args, cwd)


PLAIN = [
    ["stats", "--json"],
    ["stats"],
    ["stats", "--json", "--tz", "Asia/Tokyo"],
    ["stats", "--tz=America/New_York"],
    ["stats", "--source", "ads", "--json"],
    ["stats", "--source", "none", "--source", "ü", "--json"],
    ["stats", "--json", "--json"],
]


@pytest.mark.slow  # processes
@pytest.mark.parametrize("args", PLAIN, ids=" ".join)
def test_plain_stats_is_answered_without_click_and_byte_for_byte(store: Path, tmp_path: Path,
                                                                   args: list[str]) -> None:
    full = ["--store", str(store), *args]
    fast, slow = run(FAST, full, tmp_path), run(CLICK, full, tmp_path)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)
    assert fast.returncode == 0 and fast.stdout.startswith(("{", "Users:"))
    assert not click_imported(full, tmp_path)


@pytest.mark.slow  # a process
def test_stats_reads_the_column_cache_with_none_of_the_rest(store: Path, tmp_path: Path) -> None:
    """What ``stats --json`` imports: not Click, logging, the store file's format, the writer's table,
    the history side file or the table renderer (each costs start-up on every run)."""
    modules = imported(["--store", str(store), "stats", "--json"], tmp_path)
    assert "tracker.store.columns" in modules and "tracker.stats" in modules  # it did run
    assert modules.isdisjoint({
        "click", "logging", "threading", "tracker.store.format", "tracker.store.table",
        "tracker.store.copies", "tracker.store.history_cache", "tracker.history_tables",
        "tracker.stats_render", "tracker.table", "tracker.filters",
    })


@pytest.mark.slow  # processes
def test_where_the_options_go_and_which_wins(store: Path, tmp_path: Path) -> None:
    """--config/--store before and after the command; the one after it wins, as in Click."""
    config = tmp_path / "config.ini"
    config.write_text("[tracker]\nstore = data/users.json\ntimezone = Asia/Tokyo\n")
    elsewhere = tmp_path / "other.json"
    for args in (["--config", str(config), "stats", "--json"],
                 [f"--config={config}", "stats"],
                 ["--store", str(elsewhere), "stats", "--json", "--store", str(store)],
                 ["stats", "--config", str(config), "--json"]):
        fast, slow = run(FAST, args, tmp_path), run(CLICK, args, tmp_path)
        assert (fast.returncode, fast.stdout, fast.stderr) == (0, slow.stdout, slow.stderr), args
        assert not click_imported(args, tmp_path)


@pytest.mark.slow  # processes
@pytest.mark.parametrize("case", ["missing store", "bad zone", "bad config", "store is a folder",
                                  "corrupt store", "extra argument", "help"])
def test_failures_are_clicks_own(store: Path, tmp_path: Path, case: str) -> None:
    config = tmp_path / "bad.ini"
    config.write_text("[tracker]\ntimezone = Nowhere/Land\n")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_bytes(b'{"users": {"1": {"id": 1, "first_')
    args = {
        "missing store": ["--store", str(tmp_path / "none.json"), "stats", "--json"],
        "bad zone": ["--store", str(store), "stats", "--tz", "Mars/Base"],
        "bad config": ["--config", str(config), "stats"],
        "store is a folder": ["--store", str(tmp_path), "stats"],
        "corrupt store": ["--store", str(corrupt), "stats", "--json"],
        "extra argument": ["--store", str(store), "stats", "now"],
        "help": ["--store", str(store), "stats", "--help"],
    }[case]
    fast, slow = run(FAST, args, tmp_path), run(CLICK, args, tmp_path)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)
    assert fast.returncode == (0 if case == "help" else 2 if case in ("bad zone", "store is a folder",
                                                                      "extra argument") else 1)
    assert "Traceback" not in fast.stderr
    assert not (tmp_path / "none.json").exists()


@pytest.mark.slow  # processes
def test_a_full_standard_output_is_one_line_and_exit_1(store: Path, tmp_path: Path) -> None:
    args = ["--store", str(store), "stats", "--json"]
    outcomes = []
    for prefix in (FAST, CLICK):
        with open("/dev/full", "w") as full:
            proc = run(prefix, args, tmp_path, stdout=full, capture_output=False, stderr=subprocess.PIPE)
        outcomes.append((proc.returncode, proc.stderr))
    message = "Error: cannot write to standard output: No space left on device\n"
    assert outcomes[0] == outcomes[1] == (1, message)


@pytest.mark.slow  # processes
def test_a_reader_that_left_is_a_quiet_exit(store: Path, tmp_path: Path) -> None:
    args = ["--store", str(store), "stats", "--json"]
    outcomes = []
    for prefix in (FAST, CLICK):
        read, write = os.pipe()
        os.close(read)  # nobody reads: the first write fails with EPIPE
        try:
            proc = run(prefix, args, tmp_path, stdout=write, capture_output=False, stderr=subprocess.PIPE)
        finally:
            os.close(write)
        outcomes.append((proc.returncode, proc.stderr))
    assert outcomes[0] == outcomes[1]
    assert "Traceback" not in outcomes[0][1]


@pytest.mark.slow  # processes
def test_an_ascii_standard_output_goes_to_click(store: Path, tmp_path: Path) -> None:
    """Click writes UTF-8 where Python's stream is ASCII; the fast path leaves that to it."""
    args = ["--store", str(store), "stats"]
    fast = run(FAST, args, tmp_path, env={"PYTHONIOENCODING": "ascii"})
    slow = run(CLICK, args, tmp_path, env={"PYTHONIOENCODING": "ascii"})
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)
    assert "▁" in fast.stdout or "█" in fast.stdout  # the chart: not ASCII


@pytest.mark.slow  # processes
def test_a_copied_store_gives_the_same_figures_and_its_cache_is_restamped_in_place(
    store: Path, tmp_path: Path
) -> None:
    args = ["--store", str(store), "stats", "--json"]
    before = run(FAST, args, tmp_path).stdout
    cache = columns_path(store)
    inode = cache.stat().st_ino
    copy = store.with_name("copy.json")
    copy.write_bytes(store.read_bytes())
    copy.replace(store)  # same bytes, new inode and mtime: as after copying the data folder
    assert run(FAST, args, tmp_path).stdout == before
    assert cache.stat().st_ino == inode  # re-stamped in place, not rewritten
    assert f"[{store.stat().st_ino},".encode() in cache.read_bytes().split(b"\n", 1)[0]


@pytest.mark.parametrize("args", [
    ["stats", "--help"], ["stats", "now"], ["--json", "stats"], ["users"], [], ["stats", "--tz"],
    ["stats", "--store", ""], ["stats", "--source", "-x"], ["stats", "--source=-x"], ["--", "stats"],
    ["stats", "stats"], ["-h", "stats"], ["stats", "--jso"], ["--tz", "UTC", "stats"],
])
def test_other_command_lines_are_left_to_click(args: list[str]) -> None:
    assert parse(args) is None


def test_a_plain_command_line_is_read_as_click_reads_it(tmp_path: Path) -> None:
    os.chdir(tmp_path)  # paths that exist nowhere: Click takes them as they are
    call = parse(["--store", "a.json", "--config=c.ini", "stats", "--source", "none", "--tz", "UTC",
                  "--json", "--source=ads", "--store", "b.json", "--tz=Asia/Tokyo"])
    assert call is not None
    assert (call.store, call.config, call.tz, call.as_json, call.sources) == (
        "b.json", "c.ini", "Asia/Tokyo", True, [None, "ads"])
    call = parse(["stats"])
    assert call is not None and (call.store, call.config, call.tz, call.as_json, call.sources) == (
        None, None, None, False, [])


def test_a_folder_or_an_unreadable_path_is_left_to_click(tmp_path: Path) -> None:
    assert parse(["--store", str(tmp_path), "stats"]) is None
    unreadable = tmp_path / "secret.json"
    unreadable.write_bytes(b"{}")
    unreadable.chmod(0)
    if not os.access(unreadable, os.R_OK):  # root reads everything
        assert parse(["--config", str(unreadable), "stats"]) is None


def test_the_click_command_prints_what_the_shared_function_makes(store: Path) -> None:
    """In-process (CliRunner): the Click command is a thin wrapper over tracker.cli_stats.stats_text."""
    result = CliRunner().invoke(cli, ["--store", str(store), "stats", "--json", "--source", "ads"])
    assert result.exit_code == 0, result.output
    assert '"total_users": 10' in result.output


@pytest.mark.slow  # processes
def test_every_entry_point_answers_alike(store: Path, tmp_path: Path) -> None:
    """``tracker``, ``python -m tracker``, ``python cli.py``: the same figures, none through Click."""
    entries = [FAST, ["-m", "tracker"], [str(Path(sys.executable).with_name("tracker"))]]
    args = ["--store", str(store), "stats", "--json"]
    outputs = {run(entry, args, tmp_path).stdout for entry in entries}
    assert len(outputs) == 1 and outputs.pop().startswith("{")
    for entry in entries:
        assert "click" not in imported(args, tmp_path, entry)
