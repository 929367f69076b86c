"""The control channel: a real Unix socket, served in this process or by a real subprocess."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import PROCS, spawn_python
from tracker.control import BotNotRunning, ControlError, ControlServer, request, socket_path_for


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return socket_path_for(tmp_path / "data" / "users.json")


@pytest.fixture
def served(sock_path: Path, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A real subprocess serving the control socket until its stdin closes."""
    server = [str(PROCS / "control_server.py"), str(sock_path)]
    proc = spawn_python(server, stdin=subprocess.PIPE, stderr=None)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def stop_served(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    assert proc.stdout.readline().strip() == "stopped"
    assert proc.wait(10) == 0


def test_socket_path_is_beside_the_store(tmp_path: Path) -> None:
    assert socket_path_for(tmp_path / "users.json") == tmp_path / "users.json.sock"


@pytest.mark.slow
def test_request_to_a_subprocess(served: subprocess.Popen[str], sock_path: Path) -> None:
    reply = request(sock_path, {"cmd": "ping"})
    assert reply == {"ok": True, "pid": served.pid, "calls": 1}
    assert request(sock_path, {"cmd": "echo", "value": "👥 1,234"}) == {"ok": True, "echo": "👥 1,234"}
    assert request(sock_path, {"cmd": "nope"}) == {"ok": False, "error": "unknown command nope"}
    reply = request(sock_path, {"cmd": "boom"})
    assert reply["ok"] is False
    assert "handler exploded" in reply["error"] and "\n" not in reply["error"]
    assert request(sock_path, {"cmd": "ping"})["calls"] == 5  # the server survived the failure


@pytest.mark.slow
def test_socket_is_owner_only(served: subprocess.Popen[str], sock_path: Path) -> None:
    mode = sock_path.lstat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert [p.name for p in sock_path.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.slow
def test_stop_removes_the_socket_then_bot_not_running(served: subprocess.Popen[str], sock_path: Path) -> None:
    stop_served(served)
    assert not sock_path.exists()
    with pytest.raises(BotNotRunning):
        request(sock_path, {"cmd": "ping"})


@pytest.mark.slow
def test_killed_server_leaves_a_stale_socket_that_is_handled(
    served: subprocess.Popen[str], sock_path: Path, tmp_path: Path
) -> None:
    served.kill()
    served.wait(10)
    assert stat.S_ISSOCK(sock_path.lstat().st_mode)  # SIGKILL: nobody removed it
    with pytest.raises(BotNotRunning):
        request(sock_path, {"cmd": "ping"})

    async def main() -> None:
        async def handler(req: dict[str, Any]) -> dict[str, Any]:
            return {"ok": True, "here": "new"}

        server = ControlServer(sock_path, handler)
        await server.start()  # replaces the stale file
        reply = await asyncio.to_thread(request, sock_path, {"cmd": "ping"})
        assert reply == {"ok": True, "here": "new"}
        await server.stop()

    asyncio.run(main())


@pytest.mark.slow
def test_a_live_server_is_never_replaced(served: subprocess.Popen[str], sock_path: Path) -> None:
    async def main() -> None:
        async def handler(req: dict[str, Any]) -> dict[str, Any]:
            return {"ok": True}

        with pytest.raises(ControlError, match="another process"):
            await ControlServer(sock_path, handler).start()

    asyncio.run(main())
    assert request(sock_path, {"cmd": "ping"})["pid"] == served.pid


def test_a_regular_file_at_the_path_is_left_alone(sock_path: Path) -> None:
    sock_path.parent.mkdir(parents=True)
    sock_path.write_text("not mine to delete")

    async def main() -> None:
        async def handler(req: dict[str, Any]) -> dict[str, Any]:
            return {"ok": True}

        with pytest.raises(ControlError, match="not a socket"):
            await ControlServer(sock_path, handler).start()

    asyncio.run(main())
    assert sock_path.read_text() == "not mine to delete"


def raw_exchange(path: Path, data: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(data)
        buffer = b""
        while not buffer.endswith(b"\n"):
            chunk = client.recv(4096)
            if not chunk:
                break
            buffer += chunk
    assert buffer.count(b"\n") == 1  # exactly one line back
    reply: dict[str, Any] = json.loads(buffer)
    return reply


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"this is not json\n", "not JSON"),
        (b"[1, 2]\n", "expected an object"),
        (b'{"no": "cmd"}\n', "expected an object"),
    ],
)
@pytest.mark.slow
def test_bad_requests_get_a_one_line_error(
    served: subprocess.Popen[str], sock_path: Path, data: bytes, fragment: str
) -> None:
    reply = raw_exchange(sock_path, data)
    assert reply["ok"] is False and fragment in reply["error"]
    assert request(sock_path, {"cmd": "ping"})["ok"] is True


def test_client_times_out_on_a_silent_peer(tmp_path: Path) -> None:
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(path))
        silent.listen(1)  # accepts into the backlog, never answers
        started = time.monotonic()
        with pytest.raises(ControlError, match="did not answer") as info:
            request(path, {"cmd": "ping"}, timeout=0.5)
        assert not isinstance(info.value, BotNotRunning)
        assert time.monotonic() - started < 30  # bounded, not a hang


def test_client_rejects_a_malformed_reply(tmp_path: Path) -> None:
    path = tmp_path / "odd.sock"

    async def main() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.write(b"<html>\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(serve, path=str(path))
        with pytest.raises(ControlError, match="malformed reply"):
            await asyncio.to_thread(request, path, {"cmd": "ping"})
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_missing_socket_means_bot_not_running(sock_path: Path) -> None:
    with pytest.raises(BotNotRunning):
        request(sock_path, {"cmd": "ping"})


def test_a_deep_data_folder_still_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = socket_path_for(deep / "users.json")
    assert len(str(path).encode()) > 108  # too long for a plain sun_path

    async def main() -> None:
        async def handler(req: dict[str, Any]) -> dict[str, Any]:
            return {"ok": True, "deep": True}

        server = ControlServer(path, handler)
        await server.start()
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600
        assert await asyncio.to_thread(request, path, {"cmd": "ping"}) == {"ok": True, "deep": True}
        with pytest.raises(ControlError, match="another process"):
            await ControlServer(path, handler).start()
        await server.stop()
        assert not path.exists()

    asyncio.run(main())
    with pytest.raises(BotNotRunning):
        request(path, {"cmd": "ping"})
