"""Run the CLI two ways for the CLI tests: in-process (CliRunner) and as a real ``python cli.py``.

The ``tracker`` fixture of the test modules is parametrized over both, so every
point is checked through Click's runner and through a real process (exit
status, stdout and stderr as a shell sees them).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support import REPO, python_env, run_python
from tracker.cli import cli

CLI = [sys.executable, str(REPO / "cli.py")]


@dataclass(frozen=True)
class Outcome:
    """What a run left: exit status, standard output, standard error."""

    code: int
    stdout: str
    stderr: str


Invoke = Callable[..., Outcome]


def process_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI subprocess: the repo importable, no config from the caller."""
    return python_env(**(extra or {}))


def in_process(args: list[str], env: dict[str, str] | None = None, input: str | None = None,
               cwd: Path | None = None) -> Outcome:
    """Through CliRunner; an exception other than Click's exit fails the test."""
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner(env=env).invoke(cli, args, input=input)
    finally:
        os.chdir(old)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def as_process(args: list[str], env: dict[str, str] | None = None, input: str | None = None,
               cwd: Path | None = None) -> Outcome:
    """As ``python cli.py``; a traceback on stderr fails the test."""
    proc = run_python([str(REPO / "cli.py"), *args], env=process_env(env), cwd=cwd, input=input)
    assert "Traceback" not in proc.stderr, proc.stderr
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


RUNNERS: dict[str, Invoke] = {"runner": in_process, "process": as_process}


@pytest.fixture(params=[pytest.param("process", marks=pytest.mark.slow), "runner"], name="tracker")
def tracker_fixture(request: pytest.FixtureRequest) -> Invoke:
    """``tracker``: the CLI, once in-process and once as a real process (import it into the test module).

    The process runs are marked ``slow``: ``-m "not slow"`` keeps the in-process half.
    """
    return RUNNERS[request.param]
