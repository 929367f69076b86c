"""Plain helpers shared by the test modules (fixtures live in ``conftest.py``).

One place for what many tests need: a user's :class:`~tracker.models.Profile`,
a ``config.ini`` on disk, and a Python subprocess that imports this checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracker.config import Settings, load
from tracker.models import Profile, make_profile

REPO = Path(__file__).resolve().parent.parent
PROCS = Path(__file__).resolve().parent / "procs"

API_ID = "12345"
API_HASH = "0123456789abcdef0123456789abcdef"
BOT_TOKEN = "12345:TEST-token"


def profile(user_id: int, first_name: str | None = "User", **fields: Any) -> Profile:
    """A user's profile as the handlers build it; ``fields`` are the other Profile fields."""
    return make_profile(user_id, first_name, **fields)


def write_config(
    folder: Path,
    *,
    credentials: bool = True,
    bot_token: str | None = BOT_TOKEN,
    mode: int | None = None,
    **tracker: object,
) -> Path:
    """``folder/config.ini``: the API credentials (unless ``credentials=False``), a bot token
    (unless None), ``store = data/users.json`` and ``tracker`` as more ``[tracker]`` keys."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[pyrogram]"]
    if credentials:
        lines += [f"api_id = {API_ID}", f"api_hash = {API_HASH}"]
    if bot_token is not None:
        lines.append(f"bot_token = {bot_token}")
    lines += ["[tracker]", "store = data/users.json", *(f"{key} = {value}" for key, value in tracker.items())]
    path = folder / "config.ini"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if mode is not None:
        path.chmod(mode)
    return path


def settings_in(folder: Path, **config: Any) -> Settings:
    """The :class:`Settings` of a :func:`write_config` file in ``folder``."""
    return load(write_config(folder, **config))


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a Python subprocess: this checkout importable, no ``TRACKER_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def spawn_python(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
                 **popen: Any) -> subprocess.Popen[str]:
    """``python ARGS`` started with pipes for stdout and stderr (text), in :func:`python_env`."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env or python_env(), text=True, **options)


#: The ``spawn`` fixture: :func:`spawn_python`, the process killed after the test if still running.
Spawn = Callable[..., "subprocess.Popen[str]"]


def run_python(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 60, **run: Any) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` run to the end, output captured (text), in :func:`python_env`."""
    options: dict[str, Any] = {"capture_output": True, **run}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env or python_env(), text=True,
                          timeout=timeout, **options)


class RunningBot:
    """tests/procs/running_bot.py in a process of its own (that module describes what it does)."""

    def __init__(self, config: Path, *, users: int = 0, telegram: str = "ok") -> None:
        args = [str(PROCS / "running_bot.py"), str(config), "--users", str(users), "--telegram", telegram]
        self.proc = spawn_python(args, cwd=config.parent, stdin=subprocess.PIPE, stderr=None)
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"

    def add_user(self, user_id: int) -> None:
        """A ``/start`` from ``user_id`` reaches the bot (and has been handled on return)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"add {user_id}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "added\n"

    def stop(self) -> list[dict[str, str]]:
        """Stop the bot cleanly (exit status 0); the bio requests it sent, ``{"type", "about"}`` each."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        requests: list[dict[str, str]] = json.loads(self.proc.stdout.readline())
        assert self.proc.wait(10) == 0
        return requests

    def kill(self) -> None:
        """SIGKILL, if it still runs (a test's clean-up)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
