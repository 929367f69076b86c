"""Hostile bytes on the control socket: a one-line JSON error each, no traceback in the bot log.

The bot is real (``build_app``; Telegram faked at ``client.invoke``), its
:class:`~tracker.control.ControlServer` listens on a real Unix socket, and the
requests are raw bytes from a plain socket client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyrogram import raw

from tests.telegram_fakes import FakeTelegram, run
from tracker.bot import build_app
from tracker.config import load
from tracker.control import MAX_LINE, request, socket_path_for

pytestmark = pytest.mark.bot

HOSTILE: dict[str, bytes] = {
    "deep array over the size limit": b"[" * 60_000 + b"]" * 60_000 + b"\n",
    "deep array within the size limit": b"[" * 30_000 + b"]" * 30_000 + b"\n",
    "deep object": b'{"cmd": "ping", "x": ' + b'{"a": ' * 8_000 + b"1" + b"}" * 8_000 + b"}\n",
    "5,000-digit user id": b'{"cmd": "forget", "user_id": ' + b"7" * 5_000 + b"}\n",
    "5,000-digit float": b'{"cmd": "forget", "user_id": 1.' + b"7" * 5_000 + b"e99999}\n",
    "user id beyond 64 bits": b'{"cmd": "forget", "user_id": ' + str(2**70).encode() + b"}\n",
    "negative user id": b'{"cmd": "forget", "user_id": -5}\n',
    "array": b'["ping"]\n',
    "string": b'"ping"\n',
    "number": b"42\n",
    "null": b"null\n",
    "NaN": b"NaN\n",
    "cmd not a string": b'{"cmd": 5}\n',
    "cmd NaN": b'{"cmd": NaN}\n',
    "no cmd": b'{"op": "ping"}\n',
    "unknown op": b'{"cmd": "drop-everything"}\n',
    "unknown op with a newline": b'{"cmd": "a\\nb"}\n',
    "unknown op, lone surrogate": b'{"cmd": "\\ud800"}\n',
    "unknown op, very long": b'{"cmd": "' + b"x" * 60_000 + b'"}\n',
    "unknown op, control escapes": b'{"cmd": "' + b"\\u0001" * 10_000 + b'"}\n',
    "invalid UTF-8": b'{"cmd": "\xff\xfe"}\n',
    "invalid UTF-8 alone": b"\xc3\x28\n",
    "over the size limit": b'{"cmd": "ping", "pad": "' + b"a" * 200_000 + b'"}\n',
    "over the size limit, no newline": b"a" * (MAX_LINE * 3),
    "empty line": b"\n",
    "NUL bytes": b"\x00" * 100 + b"\n",
    "two requests on one line": b'{"cmd": "ping"}{"cmd": "ping"}\n',
    "refresh-bio with a wild force": b'{"cmd": "refresh-bio", "force": [[[[1]]]]}\n',
}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A Unix socket path must stay under ~100 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="hc", dir="/tmp") as folder:
        yield Path(folder)


def exchange(path: Path, data: bytes, timeout: float = 20.0) -> bytes:
    """Send raw ``data`` on the control socket and return everything the server answers."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading an oversized request; its answer still counts
        answer = bytearray()
        while chunk := sock.recv(65536):
            answer += chunk
        return bytes(answer)
    finally:
        sock.close()


def one_line_error(answer: bytes) -> dict[str, Any]:
    assert answer.endswith(b"\n") and answer.count(b"\n") == 1, answer[:200]
    assert len(answer) <= MAX_LINE
    reply = json.loads(answer)
    assert isinstance(reply, dict) and reply["ok"] is False, reply
    assert isinstance(reply["error"], str) and reply["error"] and "\n" not in reply["error"]
    return reply


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert bad == [], [f"{r.name}: {r.getMessage()}" for r in bad]


def test_hostile_requests_get_one_line_errors_and_the_bot_carries_on(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = short_dir / "config.ini"
    config.write_text(
        "[pyrogram]\napi_id = 12345\napi_hash = 0123456789abcdef0123456789abcdef\n"
        "bot_token = 12345:TEST-token\n[tracker]\nstore = data/users.json\n",
        encoding="utf-8",
    )
    settings = load(config)
    tg = FakeTelegram()
    tg.invoke.respond(raw.functions.bots.SetBotInfo, True)  # refresh-bio may update the profile
    alice = tg.user(1001, "Alice")
    sock = socket_path_for(settings.store)
    answers: dict[str, bytes] = {}

    async def scenario() -> None:
        app = build_app(settings, in_memory=True)
        await tg.attach(app)
        try:
            await app.tracking.open_control()
            await tg.feed(app, tg.message(alice, "hi"))
            for name, data in HOSTILE.items():
                answers[name] = await asyncio.to_thread(exchange, sock, data)
            # Still serving, nothing lost.
            pong = await asyncio.to_thread(request, sock, {"cmd": "ping"})
            assert pong["ok"] is True and pong["users"] == 1
        finally:
            await app.tracking.stop()
            await tg.detach(app)
            app.tracking.close_store()

    run(scenario())
    ok_replies = {"user id beyond 64 bits", "negative user id"}  # well-formed: nobody to forget
    for name, answer in answers.items():
        if name in ok_replies:
            assert json.loads(answer) == {"ok": True, "forgotten": False}, name
        elif name != "refresh-bio with a wild force":
            one_line_error(answer)
    # refresh-bio takes any truthy "force": the profile text is set (one JSON line back).
    assert json.loads(answers["refresh-bio with a wild force"])["ok"] is True
    no_tracebacks(caplog)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_request_alone(
    name: str, short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same inputs against a bare ControlServer whose handler only pings: each answered alone."""
    from tracker.control import ControlServer

    caplog.set_level(logging.DEBUG)
    sock = short_dir / "s.sock"

    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "cmd": req["cmd"]} if req["cmd"] == "ping" else {"ok": False, "error": "unknown"}

    async def scenario() -> bytes:
        server = ControlServer(sock, handler)
        await server.start()
        try:
            return await asyncio.to_thread(exchange, sock, HOSTILE[name])
        finally:
            await server.stop()

    one_line_error(run(scenario()))
    no_tracebacks(caplog)
