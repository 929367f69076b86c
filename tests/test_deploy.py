"""Running it like a service: entry points, the systemd unit, the Dockerfile's install, ``make run``.

No docker engine or systemd manager runs here: the unit is checked with
``systemd-analyze verify`` and the Dockerfile's own steps are replayed in a clean
virtual environment (network to the package index needed: marked slow).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import tracker

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "telegram-user-tracker.service"
BIN = Path(sys.executable).parent
CREDENTIALS_MESSAGE = "missing Telegram API credentials"


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 60,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env,  # None: this environment, TRACKER_* cleared by conftest
                          capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------- entry points


@pytest.mark.parametrize(
    ("args", "prog"),
    [
        ([str(BIN / "tracker"), "--version"], "tracker"),
        ([str(BIN / "tracker"), "run", "--version"], "tracker run"),
        ([sys.executable, "-m", "tracker", "--version"], "tracker"),
        ([sys.executable, str(REPO / "bot.py"), "--version"], "bot.py"),
    ],
    ids=["tracker", "tracker run", "python -m tracker", "python bot.py"],
)
@pytest.mark.slow
def test_version(tmp_path: Path, args: list[str], prog: str) -> None:
    done = run(args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{prog} {tracker.__version__}"


@pytest.mark.parametrize(
    "args",
    [
        [str(BIN / "tracker"), "run"],
        [sys.executable, "-m", "tracker", "run"],
        [sys.executable, str(REPO / "bot.py")],
    ],
    ids=["tracker run", "python -m tracker run", "python bot.py"],
)
@pytest.mark.slow
def test_run_without_credentials_says_what_to_set(tmp_path: Path, args: list[str]) -> None:
    done = run(args, tmp_path)
    assert done.returncode == 1
    assert CREDENTIALS_MESSAGE in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing created before the credentials are known


@pytest.mark.slow
def test_tracker_run_takes_the_groups_config_and_store(tmp_path: Path) -> None:
    cfg = tmp_path / "conf" / "my.ini"
    cfg.parent.mkdir()
    cfg.write_text("[tracker]\nlog_level = WARNING\n", encoding="utf-8")
    done = run([str(BIN / "tracker"), "--config", str(cfg), "run"], tmp_path)
    assert done.returncode == 1 and str(cfg) in done.stderr, done.stderr
    done = run([str(BIN / "tracker"), "--config", str(tmp_path / "missing.ini"), "run"], tmp_path)
    assert done.returncode == 1 and "missing.ini" in done.stderr, done.stderr
    # --store reaches the bot as the store override: with credentials it would open it there.
    code = (
        "import tracker.bot as b\n"
        "def fake(settings): print('STORE', settings.store); raise SystemExit(0)\n"
        "b.Settings.require_credentials = fake\n"
        "from tracker.cli import cli\n"
        "cli(['--store', 'elsewhere/u.json', 'run'])\n"
    )
    done = run([sys.executable, "-c", code], tmp_path)
    assert done.stdout.strip() == f"STORE {(tmp_path / 'elsewhere' / 'u.json').resolve()}", done.stderr


@pytest.mark.slow
def test_tracker_help_stays_cheap() -> None:
    code = (
        "import sys\nfrom tracker.cli import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('pyrogram' in sys.modules, 'tracker.bot' in sys.modules)"
    )
    done = run([sys.executable, "-c", code], REPO)
    assert "  run " in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "False False"


# ---------------------------------------------------------------- systemd


def unit_directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_systemd_unit_is_hardened_and_restarts() -> None:
    directives = unit_directives(UNIT.read_text(encoding="utf-8"))
    for key, value in {
        "Restart": "on-failure",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ExecStart": "/opt/tracker/venv/bin/tracker run",
    }.items():
        assert directives.get(key) == [value], key
    assert directives["User"][0] not in ("", "root")
    assert directives["EnvironmentFile"]
    store = next(v.split("=", 1)[1] for v in directives["Environment"] if v.startswith("TRACKER_STORE="))
    assert str(Path(store).parent) in " ".join(directives["ReadWritePaths"]).split()


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if not shutil.which("systemd-analyze"):
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing: .ci/run installs Debian's systemd package")
        pytest.skip("systemd-analyze is not installed here (Debian: apt-get install systemd)")
    # verify checks that ExecStart exists: point it at this checkout's own `tracker`.
    unit = tmp_path / UNIT.name
    here = unit_text.replace("/opt/tracker/venv/bin/tracker", str(BIN / "tracker"))
    unit.write_text(here, encoding="utf-8")
    return run(["systemd-analyze", "verify", str(unit)], tmp_path)


@pytest.mark.slow
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    done = verify(UNIT.read_text(encoding="utf-8"), tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.slow
def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    broken = UNIT.read_text(encoding="utf-8").replace("PrivateTmp=yes", "PrivatTmp=yes")
    done = verify(broken, tmp_path)
    assert "PrivatTmp" in done.stderr


# ---------------------------------------------------------------- Docker


def dockerfile_steps() -> tuple[list[tuple[str, list[str]]], dict[str, str], list[str]]:
    """The Dockerfile as (instruction, arguments) steps, its ENV, and its CMD."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    steps: list[tuple[str, list[str]]] = []
    env: dict[str, str] = {}
    cmd: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(rest))  # type: ignore[misc]
        elif instruction == "CMD":
            cmd = json.loads(rest)
        else:
            steps.append((instruction, shlex.split(rest) if instruction == "COPY" else [rest]))
    return steps, env, cmd


def test_dockerfile_shape() -> None:
    steps, env, cmd = dockerfile_steps()
    assert steps[0] == ("FROM", ["python:3.11-slim"])
    instructions = [s[0] for s in steps]
    assert ("USER", ["tracker"]) in steps and instructions.index("USER") > instructions.index("RUN")
    assert ("VOLUME", ['["/data"]']) in steps
    assert env["TZ"] and env["TRACKER_STORE"].startswith("/data/")
    assert cmd == ["tracker", "run"]


@pytest.mark.slow
def test_the_dockerfile_install_steps_give_a_working_tracker_run(tmp_path: Path) -> None:
    """Replays COPY and the pip/python RUN steps in a clean venv, then the CMD to its credentials message."""
    steps, env, cmd = dockerfile_steps()
    image = tmp_path / "venv"
    venv.create(image, with_pip=True)
    workdir = tmp_path / "app"
    workdir.mkdir()
    path_env = {**os.environ, **{k: v for k, v in env.items() if not k.startswith("TRACKER_")}}
    path_env["PATH"] = f"{image / 'bin'}{os.pathsep}{path_env['PATH']}"
    for instruction, args in steps:
        if instruction == "COPY":
            *sources, dest = args
            for source in sources:
                target = workdir / dest / Path(source).name if dest.endswith("/") else workdir / dest
                copy = shutil.copytree if (REPO / source).is_dir() else shutil.copy
                copy(REPO / source, target)
        elif instruction == "RUN" and args[0].split()[0] in ("pip", "python"):
            done = run(["sh", "-c", args[0]], workdir, path_env, timeout=900)
            assert done.returncode == 0, done.stderr[-2000:]
    installed = {p.name for p in (image / "bin").iterdir()}
    assert "tracker" in installed
    assert not {"pytest", "mypy", "ruff"} & installed  # running needs no test tools
    data = tmp_path / "data"
    data.mkdir()
    path_env["TRACKER_STORE"] = str(data / "users.json")  # the image's /data volume
    zones = run([str(image / "bin" / "python"), "-c", "import tzdata, wcwidth; print('ok')"], data, path_env)
    assert zones.stdout.strip() == "ok", zones.stderr
    done = run(cmd, data, path_env)
    assert done.returncode == 1 and CREDENTIALS_MESSAGE in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_compose_file_builds_the_dockerfile_with_a_data_volume() -> None:
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    context = re.search(r"context:\s*(\S+)", text)
    dockerfile = re.search(r"dockerfile:\s*(\S+)", text)
    assert context and dockerfile
    assert ((DEPLOY / context.group(1)) / dockerfile.group(1)).resolve() == (DEPLOY / "Dockerfile").resolve()
    assert re.search(r"-\s*\S+:/data\b", text) and "restart: on-failure" in text
    assert "env_file: tracker.env" in text and (DEPLOY / "tracker.env.example").exists()


# ---------------------------------------------------------------- make run


@pytest.mark.slow
def test_make_run_installs_only_what_running_needs(tmp_path: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    checkout = tmp_path / "checkout"
    for name in files.stdout.splitlines():
        if (REPO / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / name, checkout / name)
    for name in ("Makefile", "setup.cfg", "tracker", "bot.py"):  # this worktree's versions, committed or not
        source = REPO / name
        (shutil.copytree(source, checkout / name, dirs_exist_ok=True) if source.is_dir()
         else shutil.copy(source, checkout / name))
    done = run(["make", "run"], checkout, timeout=900)
    assert done.returncode != 0  # the bot stops: no credentials here
    assert CREDENTIALS_MESSAGE in done.stderr, done.stderr[-2000:]
    installed = {p.name for p in (checkout / ".venv" / "bin").iterdir()}
    assert "tracker" in installed and not {"pytest", "mypy", "ruff"} & installed
