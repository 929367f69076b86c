"""Fixtures for every test module (plain helpers are in ``tests/support.py``)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import RunningBot, Spawn, spawn_python


@pytest.fixture(autouse=True)
def no_tracker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``TRACKER_*`` variable of the caller's shell (a config path, a token) reaches a test."""
    for name in [name for name in os.environ if name.startswith("TRACKER_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def running_bot() -> Iterator[Callable[..., RunningBot]]:
    """Starts :class:`~tests.support.RunningBot` processes; any still running are killed afterwards."""
    bots: list[RunningBot] = []

    def start(config: Path, **options: Any) -> RunningBot:
        bots.append(RunningBot(config, **options))
        return bots[-1]

    yield start
    for bot in bots:
        bot.kill()


@pytest.fixture(autouse=True)
def only_slow_tests_start_processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the ``slow`` marker honest: a test that starts a process must carry it.

    ``pytest -m "not slow"`` is then the in-process suite, quick by construction.
    """
    if request.node.get_closest_marker("slow") is not None:
        return
    real_init = subprocess.Popen.__init__

    def refuse(self: subprocess.Popen[Any], args: Any, *rest: Any, **options: Any) -> None:
        pytest.fail(f"{request.node.nodeid} starts a process ({args!r}): mark it slow", pytrace=False)
        real_init(self, args, *rest, **options)  # unreachable; keeps the signature honest

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """:func:`~tests.support.spawn_python`; whatever still runs after the test is killed (SIGKILL)."""
    procs: list[subprocess.Popen[str]] = []

    def start(args: list[str], **options: Any) -> subprocess.Popen[str]:
        procs.append(spawn_python(args, **options))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
