"""``python -m bench startup``: how long the CLI takes to start, as whole processes.

Each command below runs ``--runs`` times as a fresh process, the commands
taking turns (so a busy spell on the machine hits them all alike); the figure
is the median wall time, and beside it its peer, the bare interpreter
(``python -c pass``) measured in the same rounds, as a difference and a ratio:

* ``python -c pass`` - the floor every Python program pays;
* ``python -c "import click"`` - the floor of any Click CLI (for reference:
  the part of the CLI's start-up that is not the tracker's);
* ``tracker --help`` and ``python -m tracker --version``: answered from Click's
  pre-rendered output (tracker.cli_main);
* ``tracker --help`` through Click (``COLUMNS=80``: the same text, rendered
  by Click, as before the pre-rendered answer);
* ``tracker stats --json`` on a small store (``--users``);
* with ``--before DIR``: ``cli.py --help``, ``python -m tracker --version``
  and ``cli.py stats --json`` of another checkout (the previous version).

The package's bytecode is compiled first, as ``make`` leaves it (with
``PYTHONDONTWRITEBYTECODE`` set, an edited module would otherwise be
compiled again in every run).

Target (issue 11): ``tracker --help`` within 30 ms of the bare interpreter.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: ``tracker --help`` may take at most this much longer than ``python -c pass``.
HELP_BUDGET_MS = 30.0

BARE = "python -c pass"
HELP = "tracker --help"


def make_store(folder: Path, users: int) -> Path:
    """A store of ``users`` users written through ``UserStore.seen`` (with its column file)."""
    from tracker.models import make_profile
    from tracker.store import UserStore

    path = folder / "users.json"
    start = datetime.now(UTC) - timedelta(days=60)
    with UserStore(path) as store:
        for i in range(users):
            profile = make_profile(1_000 + i, first_name=f"User {i}", last_name=None,
                                   username=f"user{i}" if i % 2 else None, language_code="en",
                                   is_bot=False, is_premium=None)
            store.seen(profile, start + timedelta(minutes=i), source="ads" if i % 5 == 0 else None)
    return path


Command = tuple[list[str], dict[str, str]]  # the command line, and what it adds to the environment


def commands(store: Path, before: Path | None) -> dict[str, Command]:
    """What is timed, by label (the venv's ``tracker`` script when there is one).

    ``before``: another checkout, whose ``cli.py`` is timed too (its own code
    on ``PYTHONPATH``), for a before/after in the same rounds.
    """
    py = sys.executable
    script = Path(py).with_name("tracker")
    tracker = [str(script)] if script.is_file() else [py, "-m", "tracker"]
    timed: dict[str, Command] = {
        BARE: ([py, "-c", "pass"], {}),
        "python -c 'import click'": ([py, "-c", "import click"], {}),
        HELP: ([*tracker, "--help"], {}),
        "tracker --help through Click": ([*tracker, "--help"], {"COLUMNS": "80"}),
        "python -m tracker --version": ([py, "-m", "tracker", "--version"], {}),
        "tracker stats --json": ([*tracker, "--store", str(store), "stats", "--json"], {}),
    }
    if before is not None:
        old = {"PYTHONPATH": str(before)}
        timed |= {
            "before: cli.py --help": ([py, str(before / "cli.py"), "--help"], old),
            "before: python -m tracker --version": ([py, "-m", "tracker", "--version"], old),
            "before: cli.py stats --json": ([py, str(before / "cli.py"), "--store", str(store), "stats",
                                             "--json"], old),
        }
    return timed


def run_once(command: Command, cwd: Path, env: dict[str, str]) -> float:
    """Wall time of one run of ``command`` in milliseconds (a failure stops the bench)."""
    cmd, extra = command
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env={**env, **extra}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode(errors='replace')}")
    return elapsed


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench startup", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=41, help="runs of each command (the median is kept)")
    parser.add_argument("--users", type=int, default=1_000, help="users in the store of stats --json")
    parser.add_argument("--before", type=Path, help="another checkout to time too (the previous version)")
    args = parser.parse_args(argv)
    # No config file and no TRACKER_* overrides: every run starts from the same defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_") and k != "COLUMNS"}
    env["PYTHONPATH"] = str(REPO)
    for checkout in (REPO, args.before):
        if checkout is not None:
            compileall.compile_dir(checkout / "tracker", quiet=1)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; median of {args.runs} runs each, "
          "commands taking turns; whole processes; peer: the bare interpreter in the same rounds")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        folder = Path(tmp)
        timed = commands(make_store(folder, args.users), args.before)
        times: dict[str, list[float]] = {label: [] for label in timed}
        for cmd in timed.values():  # one unmeasured round: file caches warm
            run_once(cmd, folder, env)
        for _ in range(args.runs):
            for label, cmd in timed.items():
                times[label].append(run_once(cmd, folder, env))
    medians = {label: statistics.median(values) for label, values in times.items()}
    bare = medians[BARE]
    print(f"\n{'command':<38}{'median':>10}{'fastest':>10}{'- bare':>11}{'x bare':>8}")
    for label, median in medians.items():
        print(f"{label:<38}{median:7.1f} ms{min(times[label]):7.1f} ms{median - bare:+8.1f} ms"
              f"{median / bare:7.1f}x")
    over = medians[HELP] - bare
    print(f"\n{HELP}: {over:+.1f} ms over the bare interpreter ({bare:.1f} ms); target <= "
          f"{HELP_BUDGET_MS:.0f} ms: {'ok' if over <= HELP_BUDGET_MS else 'MISSED'}")
