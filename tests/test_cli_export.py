"""``export`` targets and formats, ``stats`` output, and the CLI under hostile input and faults.

Issue 12 (formats from the extension, a missing store) and the CLI items of
issue 8 (protected targets, non-regular targets, formula cells after ``;``,
control characters in ``stats``, a failing standard output, non-ASCII digits,
SIGHUP/SIGQUIT during an export). Each runs through CliRunner and as a real
process.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tests.cli_run import CLI, Invoke, process_env, tracker_fixture  # noqa: F401 (the `tracker` fixture)
from tests.support import profile
from tracker.export import neutralise
from tracker.store import UserStore

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "users.json"
    with UserStore(path) as writer:
        writer.seen(profile(1, first_name="x;=cmd|' /C calc'!A0", language_code="\x1b[31mred"),
                    NOW - timedelta(hours=1), source="\u202eevil\x07")
        writer.seen(profile(2, first_name="Anna", username="anna", language_code="en"),
                    NOW - timedelta(days=2), source="ads")
    return path


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ------------------------------------------------------------ missing store


@pytest.mark.parametrize(
    "args",
    [["stats"], ["stats", "--json"], ["users"], ["show", "1"], ["export", "-"], ["export", "u.csv"],
     ["forget", "1", "--yes"], ["forget", "@anna", "--yes"], ["refresh-bio", "--dry-run"]],
)
def test_missing_store_is_one_line_and_creates_nothing(
    tracker: Invoke, tmp_path: Path, args: list[str]
) -> None:
    missing = tmp_path / "data" / "users.json"
    out = tracker(["--store", str(missing), *args], cwd=tmp_path)
    assert (out.code, out.stderr) == (1, f"Error: no store at {missing} yet\n")
    assert _files(tmp_path) == []


# ------------------------------------------------------------------ formats


def test_format_comes_from_the_extension(tracker: Invoke, store: Path, tmp_path: Path) -> None:
    as_json = tmp_path / "u.json"
    assert tracker(["--store", str(store), "export", str(as_json)]).code == 0
    assert sorted(r["id"] for r in json.loads(as_json.read_text(encoding="utf-8"))) == [1, 2]
    for name in ("u.ndjson", "u.jsonl"):
        assert tracker(["--store", str(store), "export", str(tmp_path / name)]).code == 0
        lines = (tmp_path / name).read_text(encoding="utf-8").splitlines()
        assert sorted(json.loads(line)["id"] for line in lines) == [1, 2]
    assert tracker(["--store", str(store), "export", str(tmp_path / "U.CSV")]).code == 0
    with open(tmp_path / "U.CSV", newline="", encoding="utf-8") as fh:
        assert sorted(r["id"] for r in csv.DictReader(fh)) == ["1", "2"]


def test_unknown_extension_needs_format(tracker: Invoke, store: Path, tmp_path: Path) -> None:
    out = tracker(["--store", str(store), "export", str(tmp_path / "u.xlsx")])
    assert out.code == 2 and ".xlsx" in out.stderr and not (tmp_path / "u.xlsx").exists()
    out = tracker(["--store", str(store), "export", str(tmp_path / "u.xlsx"), "--format", "csv"])
    assert out.code == 0 and (tmp_path / "u.xlsx").read_text().startswith("id,username,")


# --------------------------------------------------------- protected targets


SIDE_FILES = ["users.json", "users.json.journal", "users.json.columns", "users.json.lock", "users.json.sock",
              "tracker.session", "tracker.session-journal", "tracker-cli.session",
              "tracker-cli.session-journal"]


@pytest.mark.parametrize("name", SIDE_FILES)
def test_export_onto_the_store_or_a_side_file_is_refused(tracker: Invoke, store: Path, name: str) -> None:
    data = store.parent
    (data / "tracker.session").write_bytes(b"session")  # one that exists, the others do not
    before = {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()}
    link = data.parent / "link.csv"
    link.symlink_to(data / name)
    spellings = [str(data / name), f"./{name}", f"../data/{name}", str(link), f"{data}//./{name}"]
    for target in spellings:
        out = tracker(["--store", str(store), "export", target, "--format", "csv"], cwd=data)
        assert out.code in (1, 2), (target, out)
        assert "refusing" in out.stderr and out.stderr.count("\n") == 1
        assert {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()} == before, target


# ------------------------------------------------------ non-regular targets


def test_export_into_a_named_pipe_keeps_the_pipe(tracker: Invoke, store: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so the exporter's open does not block
    try:
        out = tracker(["--store", str(store), "export", str(fifo)])
        assert out.code == 0, out.stderr
        data = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert data.startswith(b"id,username,") and data.count(b"\n") == 3
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
def test_export_through_a_link_to_stdout_writes_into_it(store: Path, tmp_path: Path) -> None:
    link = tmp_path / "out.ndjson"
    link.symlink_to("/dev/stdout")
    proc = subprocess.run([*CLI, "--store", str(store), "export", str(link)], env=process_env(),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(line)["id"] for line in proc.stdout.splitlines()) == [1, 2]
    assert link.is_symlink() and os.readlink(link) == "/dev/stdout"


@pytest.mark.slow
def test_export_into_a_process_substitution(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy.csv"
    script = f'"$@" --store {store} export >(cat > {out}) --format csv; wait'
    proc = subprocess.run(["bash", "-c", script, "bash", *CLI], env=process_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    deadline = time.monotonic() + 10
    while out.read_bytes().count(b"\n") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.read_bytes().startswith(b"id,username,") and out.read_bytes().count(b"\n") == 3


def test_export_to_dev_null(tracker: Invoke, store: Path) -> None:
    out = tracker(["--store", str(store), "export", "/dev/null"])
    assert out.code == 0, out.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


# ----------------------------------------------------------- cells, stats


def test_formulas_after_a_semicolon_are_neutralised(tracker: Invoke, store: Path, tmp_path: Path) -> None:
    assert neutralise("x;=cmd|' /C calc'!A0") == "x;'=cmd|' /C calc'!A0"
    assert neutralise("a;b;+1;;@x") == "a;b;'+1;;'@x"
    assert neutralise("a;b") == "a;b"
    target = tmp_path / "u.csv"
    assert tracker(["--store", str(store), "export", str(target)]).code == 0
    with open(target, newline="", encoding="utf-8") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    assert rows["1"]["first_name"] == "x;'=cmd|' /C calc'!A0"


def test_stats_never_prints_control_or_bidi_characters(tracker: Invoke, store: Path) -> None:
    out = tracker(["--store", str(store), "stats"])
    assert out.code == 0, out.stderr
    for char in ("\x1b", "\x07", "\u202e"):
        assert char not in out.stdout
    assert "?[31mred" in out.stdout and "?evil?" in out.stdout
    as_json = json.loads(tracker(["--store", str(store), "stats", "--json"]).stdout)
    assert as_json["sources"] == {"\u202eevil\x07": 1, "ads": 1}  # JSON keeps the values, escaped


# ----------------------------------------------------- failing stdout


@pytest.mark.parametrize("args", [["export", "-"], ["stats", "--json"], ["users"], ["show", "1"]])
@pytest.mark.slow
def test_stdout_on_a_full_disk(store: Path, args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run([*CLI, "--store", str(store), *args], env=process_env(), stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == "Error: cannot write to standard output: No space left on device\n"


@pytest.mark.parametrize("args", [["export", "-"], ["stats", "--json"], ["users"], ["show", "1"]])
@pytest.mark.slow
def test_stdout_closed(store: Path, args: list[str]) -> None:
    script = 'exec "$@" >&-'
    proc = subprocess.run(["bash", "-c", script, "bash", *CLI, "--store", str(store), *args],
                          env=process_env(), stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == "Error: cannot write to standard output: it is closed\n"


# --------------------------------------------------------- ASCII digits


@pytest.mark.parametrize(
    "args",
    [["show", "²"], ["show", "--", "--5"], ["show", "٣"], ["forget", "²", "--yes"],
     ["users", "--active-within", "999999999d"], ["users", "--active-within", "²d"],
     ["export", "-", "--active-within", "99999999999999999999w"], ["show", "9" * 40]],
)
def test_odd_numbers_are_usage_errors(tracker: Invoke, store: Path, args: list[str]) -> None:
    out = tracker(["--store", str(store), *args])
    assert out.code == 2, out
    assert out.stderr.splitlines()[-1].startswith("Error: Invalid value")


# ------------------------------------------------------- signals in export


def _big_store(folder: Path, n: int) -> Path:
    """``n`` users written in the TinyDB layout, then opened once as the bot would."""
    stamp = "2024-01-01T00:00:00Z"
    users = {str(i): {"id": i, "first_name": f"Person {i}", "last_name": None, "username": f"u{i}",
                      "language_code": "en", "is_bot": False, "is_premium": None, "first_seen": stamp,
                      "last_seen": stamp, "messages": 1, "source": None, "blocked": False,
                      "blocked_at": None} for i in range(1, n + 1)}
    path = folder / "users.json"
    path.write_bytes(orjson.dumps({"users": users, "meta": {"1": {"schema": 1}}}))
    UserStore(path).close()
    return path


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM])
def test_signal_during_export_leaves_no_temp_file(tmp_path: Path, sig: signal.Signals) -> None:
    data = tmp_path / "data"
    data.mkdir()
    path = _big_store(data, 300_000)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "users.ndjson"
    proc = subprocess.Popen([*CLI, "--store", str(path), "export", str(target)], env=process_env(),
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any(p.name.endswith(".tmp") for p in out_dir.iterdir()):
            assert proc.poll() is None, "export ended before its temp file was seen"
            assert time.monotonic() < deadline
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig
    assert list(out_dir.iterdir()) == []  # neither a hidden temp file nor a half target
