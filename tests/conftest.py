"""Fixtures for every test module (plain helpers are in ``tests/support.py``)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def no_tracker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``TRACKER_*`` variable of the caller's shell (a config path, a token) reaches a test."""
    for name in [name for name in os.environ if name.startswith("TRACKER_")]:
        monkeypatch.delenv(name)
