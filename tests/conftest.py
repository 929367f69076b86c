"""Fixtures for every test module (plain helpers are in ``tests/support.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import RunningBot


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
