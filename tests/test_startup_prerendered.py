"""``tracker --help`` / ``--version`` from Click's pre-rendered output (tracker.cli_main).

The fast path must be indistinguishable from Click: every test here compares
it byte for byte with Click's own output, in-process (CliRunner) and as real
processes, and checks that whatever could make Click answer differently (a
narrow terminal, ``COLUMNS``, other arguments, an edited command, another
Click) sends the command to Click instead.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support import REPO, python_env
from tracker import cli_main, cli_render, cli_rendered
from tracker.cli import cli

#: The ``tracker`` console script the install made (setup.cfg's entry point).
SCRIPT = Path(sys.executable).with_name("tracker")

#: Each entry point as a command line, and the program name Click gives it.
ENTRY_POINTS = {
    "tracker": [sys.executable, str(SCRIPT)],
    "python -m tracker": [sys.executable, "-m", "tracker"],
    "cli.py": [sys.executable, str(REPO / "cli.py")],
}

OPTIONS = ["--help", "-h", "--version"]


@pytest.fixture
def plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard output is not a terminal and nothing sets the width: the fast path's home ground."""
    monkeypatch.setattr(sys, "__stdout__", io.StringIO())
    monkeypatch.delenv("COLUMNS", raising=False)
    for name in [name for name in os.environ if name.endswith("_COMPLETE")]:
        monkeypatch.delenv(name)


# ------------------------------------------------------------------ in-process


def test_the_rendered_module_is_what_click_renders_now() -> None:
    """Fails after a change to a command, an option or the version until it is rendered again."""
    current = Path(cli_rendered.__file__).read_text(encoding="utf-8")
    assert cli_render.module_source() == current, "stale: run python -m tracker.cli_render"


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("prog", sorted(ENTRY_POINTS))
def test_the_fast_answer_is_clicks_byte_for_byte(plain_output: None, prog: str, option: str) -> None:
    result = CliRunner().invoke(cli, [option], prog_name=prog, terminal_width=cli_render.WIDTH)

    assert result.exit_code == 0
    assert cli_main.prerendered(prog, [option]) == result.output


@pytest.mark.parametrize("args", [[], ["stats"], ["--help", "stats"], ["stats", "--help"], ["--versio"],
                                  ["--store", "x.json"]])
def test_other_arguments_go_to_click(plain_output: None, args: list[str]) -> None:
    assert cli_main.prerendered("tracker", args) is None


def test_a_program_name_it_was_not_rendered_for_goes_to_click(plain_output: None) -> None:
    assert cli_main.prerendered("tracker-dev", ["--help"]) is None
    assert cli_main.prerendered(None, ["--version"]) is None


def test_columns_in_the_environment_goes_to_click(
    plain_output: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli_main.prerendered("tracker", ["--help"]) is not None  # the precondition
    monkeypatch.setenv("COLUMNS", "200")
    assert cli_main.prerendered("tracker", ["--help"]) is None


def test_shell_completion_goes_to_click(plain_output: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_TRACKER_COMPLETE", "bash_source")
    assert cli_main.prerendered("tracker", ["--help"]) is None


@pytest.mark.parametrize(("columns", "fast"), [(60, False), (79, False), (80, True), (132, True)])
def test_a_terminal_narrower_than_rendered_goes_to_click(
    plain_output: None, monkeypatch: pytest.MonkeyPatch, columns: int, fast: bool
) -> None:
    controller, terminal = pty.openpty()
    try:
        set_columns(terminal, columns)
        with os.fdopen(os.dup(terminal), "w") as stdout:
            monkeypatch.setattr(sys, "__stdout__", stdout)
            assert cli_main.terminal_columns() == columns
            assert (cli_main.prerendered("tracker", ["--help"]) is not None) is fast
    finally:
        os.close(controller)
        os.close(terminal)


def test_an_edited_command_goes_to_click(
    plain_output: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The sources the text was rendered from changed (say, a command's docstring): Click answers."""
    for name in cli_rendered.SOURCES:
        shutil.copyfile(Path(cli_main.PACKAGE_DIR) / name, tmp_path / name)
    monkeypatch.setattr(cli_main, "PACKAGE_DIR", str(tmp_path))
    assert cli_main.prerendered("tracker", ["--help"]) is not None  # same bytes: still fast

    cli_py = tmp_path / "cli.py"
    cli_py.write_text(cli_py.read_text(encoding="utf-8").replace("Totals, activity", "Totals and activity"),
                      encoding="utf-8")
    assert cli_main.prerendered("tracker", ["--help"]) is None


def test_another_click_goes_to_click(
    plain_output: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The fingerprint names the Click that ``import click`` would load: another version, or none known."""
    (tmp_path / "click").mkdir()
    (tmp_path / "click" / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert cli_main.click_version() is None
    assert cli_main.prerendered("tracker", ["--help"]) is None

    (tmp_path / "click-0.1.dist-info").mkdir()
    assert cli_main.click_version() == "0.1"
    assert cli_main.prerendered("tracker", ["--version"]) is None


# ------------------------------------------------------------------ processes


def run(cmd: list[str], *, env: dict[str, str], cwd: Path | None = None, stdout: int = subprocess.PIPE,
        stderr: int = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    """``cmd`` to the end; what it wrote to a pipe (the default) as bytes."""
    return subprocess.run(cmd, env=env, cwd=cwd, stdout=stdout, stderr=stderr, timeout=60, check=False)


def importtime(cmd: list[str]) -> list[str]:
    """``python -X importtime ...``: the command line that lists on stderr what the process imported."""
    return [cmd[0], "-X", "importtime", *cmd[1:]]


def imported(stderr: bytes) -> set[str]:
    lines = stderr.decode().splitlines()
    return {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}


@pytest.mark.slow
def test_the_console_script_is_the_fast_entry_point() -> None:
    assert SCRIPT.is_file(), "the tracker script is missing: install the package (make)"
    assert "tracker.cli_main" in SCRIPT.read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_each_entry_point_answers_fast_and_exactly_as_click(entry: str, option: str, tmp_path: Path) -> None:
    """Without Click, and byte for byte what Click prints (``COLUMNS=80``: Click, the same width)."""
    cmd = [*ENTRY_POINTS[entry], option]
    env = {k: v for k, v in python_env().items() if k != "COLUMNS"}

    fast = run(importtime(cmd), env=env, cwd=tmp_path)
    through_click = run(importtime(cmd), env={**env, "COLUMNS": "80"}, cwd=tmp_path)

    assert "click" not in imported(fast.stderr) and "click" in imported(through_click.stderr)
    assert (fast.returncode, fast.stdout) == (through_click.returncode, through_click.stdout) == (
        0, cli_main.prerendered(entry, [option]).encode()  # type: ignore[union-attr]
    )


def set_columns(fd: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))


def on_terminal(cmd: list[str], columns: int, env: dict[str, str]) -> bytes:
    """What ``cmd`` shows on a terminal ``columns`` wide (a pseudo-terminal as its standard output)."""
    controller, terminal = pty.openpty()
    set_columns(terminal, columns)
    try:
        proc = run(cmd, env=env, stdout=terminal, stderr=subprocess.DEVNULL)
    finally:
        os.close(terminal)
    shown = b""
    try:
        while chunk := os.read(controller, 65536):
            shown += chunk
    except OSError:  # EIO: everything was read and the other end is closed
        pass
    finally:
        os.close(controller)
    assert proc.returncode == 0
    return shown


@pytest.mark.slow
@pytest.mark.parametrize("columns", [60, 120])
def test_on_a_terminal_the_help_is_clicks(columns: int) -> None:
    """60 columns: Click formats narrower, and answers itself; 120: the rendered text, as Click would."""
    env = {k: v for k, v in python_env().items() if k != "COLUMNS"}
    cmd = [*ENTRY_POINTS["tracker"], "--help"]

    shown = on_terminal(cmd, columns, env)

    assert shown == on_terminal(cmd, columns, {**env, "COLUMNS": str(columns)})
    rendered = cli_rendered.USAGE["tracker"] + cli_rendered.HELP_BODY
    assert (shown.replace(b"\r\n", b"\n") == rendered.encode()) is (columns >= 80)


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--help", "--version"])
def test_a_reader_that_left_is_handled_as_click_does(option: str) -> None:
    """Standard output a pipe nobody reads any more: the same exit status and (quiet) stderr as Click."""
    env = {k: v for k, v in python_env().items() if k != "COLUMNS"}
    outcomes = []
    for extra in ({}, {"COLUMNS": "80"}):
        reader, writer = os.pipe()
        os.close(reader)
        try:
            proc = run([*ENTRY_POINTS["tracker"], option], env={**env, **extra}, stdout=writer,
                       stderr=subprocess.PIPE)
        finally:
            os.close(writer)
        outcomes.append((proc.returncode, proc.stderr))
    assert outcomes[0] == outcomes[1] == (1, b"")


@pytest.mark.slow
def test_the_fingerprint_covers_every_module_the_help_imports(tmp_path: Path) -> None:
    """An edit to any module of the package that Click's ``--help`` imports must change the fingerprint."""
    env = {**python_env(), "COLUMNS": "80"}
    proc = run(importtime([*ENTRY_POINTS["tracker"], "--help"]), env=env, cwd=tmp_path)

    ours = {name for name in imported(proc.stderr) if name.split(".")[0] == "tracker"}
    covered = {"tracker" if name == "__init__.py" else f"tracker.{name.removesuffix('.py')}"
               for name in cli_rendered.SOURCES}
    assert "tracker.cli" in ours
    assert ours - {"tracker.cli_main", "tracker.cli_rendered"} <= covered


@pytest.mark.slow
def test_the_bot_started_through_the_cli_runs_with_the_cyclic_gc_on(tmp_path: Path) -> None:
    """The entry point turns the GC off for one-shot commands; ``tracker run`` turns it back on."""
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: sys.stderr.write(f'gc={gc.isenabled()}'))\n"
            "sys.argv = ['tracker', *sys.argv[1:]]\n"
            "from tracker.cli_main import main\n"
            "main()\n")
    env = python_env()
    bot = run([sys.executable, "-c", code, "run", "--version"], env=env, cwd=tmp_path)
    one_shot = run([sys.executable, "-c", code, "--store", "missing.json", "stats"], env=env, cwd=tmp_path)

    assert bot.returncode == 0 and bot.stderr.endswith(b"gc=True"), bot.stderr
    assert one_shot.returncode == 1 and one_shot.stderr.endswith(b"gc=False"), one_shot.stderr
