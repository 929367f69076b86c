"""tracker.logs: stderr logging, Pyrogram kept quiet, and no secret in any log line."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pyrogram
import pytest
from pyrogram import raw

from tests.support import API_HASH, REPO, run_python, spawn_python, write_config
from tracker.logs import (
    REDACTED,
    RedactingFilter,
    describe_network_error,
    redaction,
    register_session_secrets,
    setup_logging,
)

HASH = API_HASH
TOKEN = "123456789:AAHnrBgaWCWnSQ7F838QRAQO2auiboiJby0"
AUTH_KEY = bytes(range(256))


class Logged:
    """What setup_logging wrote so far (``readouterr().err``, like capfd)."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def readouterr(self) -> Logged:
        return self

    @property
    def err(self) -> str:
        return self.stream.getvalue()


@contextlib.contextmanager
def logging_to(level: str, secrets: list[str] = []) -> Iterator[Logged]:  # noqa: B006
    """setup_logging into a buffer; the root logger's handlers and levels restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("pyrogram").level)
    logged = Logged()
    setup_logging(level, secrets, stream=logged.stream)
    try:
        yield logged
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        logging.getLogger("pyrogram").setLevel(saved[2])


@pytest.fixture
def logged() -> Iterator[Logged]:
    with logging_to("DEBUG", [HASH, TOKEN]) as logged:
        yield logged


def import_bot_authorization() -> object:
    # What pyrogram sends to log a bot in: it holds both the api_hash and the token.
    sent = raw.functions.auth.ImportBotAuthorization(
        flags=0, api_id=12345, api_hash=HASH, bot_auth_token=TOKEN
    )
    return raw.core.TLObject.read(io.BytesIO(sent.write()))


def test_pyrogram_debug_records_never_show_a_secret(logged: Logged) -> None:
    session_log = logging.getLogger("pyrogram.session.session")
    session_log.debug("Received: %s", import_bot_authorization())  # the token in args
    session_log.debug(f"Sent: {import_bot_authorization()}")  # the token in the message itself
    logging.getLogger("pyrogram.client").info("token=%s hash=%r", TOKEN, HASH)
    logging.getLogger("tracker.bot").error("with %s", "a stack", stack_info=True, extra={"x": TOKEN})
    try:
        raise ConnectionError(f"https://api.telegram.org/bot{TOKEN}/getMe failed for {HASH}")
    except ConnectionError:
        logging.getLogger("pyrogram.dispatcher").exception("handler failed")
    err = logged.readouterr().err
    assert "ImportBotAuthorization" in err and "handler failed" in err and "Traceback" in err
    assert err.count(REDACTED) >= 6
    assert HASH not in err and TOKEN not in err and TOKEN.split(":")[1] not in err


def test_pyrogram_is_quiet_unless_debug() -> None:
    with logging_to("INFO") as logged:
        logging.getLogger("pyrogram.connection.connection").info("Connecting...")
        logging.getLogger("pyrogram.session.session").warning("a pyrogram warning")
        logging.getLogger("tracker.bot").info("tracking as @bot")
        logging.getLogger("tracker.bot").debug("not at INFO")
        assert "Connecting..." not in logged.err and "not at INFO" not in logged.err
        assert "a pyrogram warning" in logged.err and "tracking as @bot" in logged.err
    with logging_to("debug") as logged:
        logging.getLogger("pyrogram.connection.connection").debug("Sending 1 bytes")
        assert "Sending 1 bytes" in logged.err
        setup_logging("debug", stream=logged.stream)
        assert len(logging.getLogger().handlers) == 1  # a second call replaces, it does not double lines


@pytest.mark.slow
def test_logs_go_to_stderr() -> None:
    code = (
        "from tracker.logs import setup_logging; import logging; "
        "setup_logging('INFO'); logging.getLogger('x').info('hi')"
    )
    done = run_python(["-c", code], cwd=REPO, check=True)
    assert done.stdout == "" and done.stderr.endswith("INFO x: hi\n")


def test_the_session_auth_key_and_session_string_are_redacted(logged: Logged) -> None:
    async def session_secrets() -> str:
        app = pyrogram.Client("t", api_id=12345, api_hash=HASH, in_memory=True)
        await app.storage.open()
        for setter, value in (("dc_id", 2), ("api_id", 12345), ("test_mode", False),
                              ("auth_key", AUTH_KEY), ("user_id", 777), ("is_bot", True)):
            await getattr(app.storage, setter)(value)
        await register_session_secrets(app)
        session_string: str = await app.export_session_string()
        await app.storage.close()
        return session_string

    session_string = asyncio.run(session_secrets())
    log = logging.getLogger("pyrogram.storage")
    log.debug("key %s / %s / %r", AUTH_KEY.hex(), __import__("base64").b64encode(AUTH_KEY).decode(), AUTH_KEY)
    log.debug("string %s", session_string)
    err = logged.readouterr().err
    assert "key " in err and "string " in err
    assert AUTH_KEY.hex()[:40] not in err and session_string[:40] not in err
    assert "\\x10\\x11\\x12\\x13\\x14" not in err


def test_unregistered_secrets_are_caught_by_their_shape() -> None:
    fresh = RedactingFilter()
    other_key = os.urandom(256)
    text = fresh.redact(f"bot 987654321:{'x' * 35} key {other_key.hex()} {other_key!r}")
    assert "x" * 35 not in text and other_key.hex()[:20] not in text and repr(other_key)[2:30] not in text
    assert fresh.redact("a short hash f00 stays") == "a short hash f00 stays"


def test_a_broken_format_does_not_leak_or_crash(logged: Logged) -> None:
    logging.getLogger("pyrogram.client").warning("%d items for %s", TOKEN)  # wrong args
    err = logged.readouterr().err
    assert TOKEN not in err and "items for" in err


def test_the_filter_is_shared_and_learns_new_secrets(logged: Logged) -> None:
    redaction.add("late-secret-value")
    logging.getLogger("tracker").info("now late-secret-value appears")
    assert "late-secret-value" not in logged.readouterr().err


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (KeyError(0), "closed the connection during the handshake"),
        (socket.gaierror(-3, "Temporary failure in name resolution"), "cannot look up"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"), "refused"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "network is unreachable"),
        (TimeoutError(), "did not answer in time"),
        (ConnectionError("Connection closed"), "connection to Telegram failed"),
    ],
)
def test_network_failures_in_words(exc: BaseException, words: str) -> None:
    message = describe_network_error(exc)
    assert message.startswith(words) or words in message.split(" (")[0], message
    assert f"({type(exc).__name__}" in message  # the technical cause stays, in brackets, last


def run_bot(folder: Path, *args: str, seconds: float) -> str:
    """``python bot.py ARGS`` for ``seconds`` (Telegram is unreachable here), then SIGTERM; its stderr."""
    proc = spawn_python([str(REPO / "bot.py"), *args], cwd=folder, stdout=subprocess.DEVNULL)
    time.sleep(seconds)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return err


@pytest.mark.slow
def test_the_bot_process_at_debug_logs_no_secret_and_warns_once_about_the_config(tmp_path: Path) -> None:
    write_config(tmp_path, bot_token=TOKEN, mode=0o644)
    err = run_bot(tmp_path, "--log-level", "DEBUG", seconds=4)
    assert "DEBUG pyrogram." in err  # Pyrogram's own DEBUG records were written
    assert HASH not in err and TOKEN not in err
    assert err.count("readable by everyone") == 1


@pytest.mark.slow
def test_the_bot_process_at_info_is_quiet_and_says_why_it_cannot_connect(tmp_path: Path) -> None:
    write_config(tmp_path, bot_token=TOKEN, mode=0o600)
    err = run_bot(tmp_path, seconds=4)
    lines = err.splitlines()
    assert not [line for line in lines if " INFO pyrogram" in line or " DEBUG " in line], err
    assert "readable by" not in err
    retries = [line for line in lines if "cannot reach Telegram" in line]
    # Offline (or blocked) here: the retry line says what is wrong in words.
    for line in retries:
        assert "cannot reach Telegram: " in line and "cannot reach Telegram (" not in line
    assert "flushed and closed" in err


def test_an_existing_session_files_auth_key_is_registered(tmp_path: Path) -> None:
    async def make_session() -> None:
        app = pyrogram.Client("old", api_id=12345, api_hash=HASH, workdir=str(tmp_path))
        await app.storage.open()
        await app.storage.auth_key(AUTH_KEY[::-1])
        await app.storage.save()
        await app.storage.close()

    asyncio.run(make_session())
    fresh = RedactingFilter()
    key = AUTH_KEY[::-1]
    assert key not in fresh
    import tracker.logs as logs

    saved, logs.redaction = logs.redaction, fresh
    try:
        logs.register_session_file(tmp_path / "old.session")
        logs.register_session_file(tmp_path / "missing.session")
    finally:
        logs.redaction = saved
    assert key in fresh and fresh.redact(f"key {key.hex()}") == f"key {REDACTED}"
