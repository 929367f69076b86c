"""Logging for the bot: quiet by default, to stderr, and never a secret in a line.

* :func:`setup_logging` - one stderr handler; Pyrogram's own loggers at WARNING
  unless DEBUG is asked for (its INFO chatter is hundreds of lines a minute while
  offline); the redaction filter on the handler.
* :class:`RedactingFilter` - replaces every registered secret (api_hash, bot
  token, proxy password, the session's auth key and session string) and anything
  shaped like a bot token or a long key in a record's final text, its traceback
  and its stack, before any handler writes it. Pyrogram's DEBUG records carry the
  sent and received TL objects, which hold the api_hash and the bot token.
* :func:`describe_network_error` - a start-up failure in words for the log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import logging
import re
import socket
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"
#: Shorter "secrets" are not redacted: replacing every "x" would make the log unreadable.
MIN_SECRET_LENGTH = 6

# Redacted whatever was registered: a bot token's shape, a bot token inside a
# Bot API URL, and long key-like runs (a 256-byte auth key is 512 hex or 344
# base64 characters; a session string is ~350 base64url characters).
_PATTERNS = (
    re.compile(r"\b[0-9]{5,16}:[A-Za-z0-9_-]{30,}"),
    re.compile(r"[A-Za-z0-9+/_=-]{200,}"),
    re.compile(r"b'(?:[^'\\]|\\.){120,}'|b\"(?:[^\"\\]|\\.){120,}\""),  # long bytes reprs
)


class RedactingFilter(logging.Filter):
    """A handler filter that rewrites each record without the secrets it knows.

    The record's message is formatted once here (``msg % args``) and the result
    replaces ``msg`` with empty ``args``, so a secret passed as an argument is
    caught as surely as one in the text. Always lets the record through.
    """

    def __init__(self, secrets: Iterable[str | bytes] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | bytes | None) -> None:
        """Never log ``secret`` (bytes: also its hex, base64 and repr forms)."""
        if not secret:
            return
        if isinstance(secret, bytes):
            forms = {
                secret.hex(),
                base64.b64encode(secret).decode(),
                base64.urlsafe_b64encode(secret).decode().rstrip("="),
                repr(secret)[2:-1],
            }
        else:
            forms = {secret}
        self._secrets.update(f for f in forms if len(f) >= MIN_SECRET_LENGTH)

    def __contains__(self, secret: object) -> bool:
        """True when ``secret`` (a str, or bytes by its hex form) is registered."""
        if isinstance(secret, bytes):
            secret = secret.hex()
        return secret in self._secrets

    def redact(self, text: str) -> str:
        """``text`` with every known secret and secret-shaped run replaced."""
        # Longest first, so a secret that contains another is replaced whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format: keep the raw parts, as text, redacted
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


#: The filter :func:`setup_logging` installs; :func:`register_secret` feeds it.
redaction = RedactingFilter()


def register_secret(secret: str | bytes | None) -> None:
    """Never log ``secret`` (e.g. the session's auth key once the client has started)."""
    redaction.add(secret)


async def register_session_secrets(client: Any) -> None:
    """Register a started client's auth key and session string with the log redaction."""
    try:
        register_secret(await client.storage.auth_key())
        register_secret(await client.export_session_string())
    except Exception as exc:  # an in-memory or half-open storage: nothing more to hide
        logging.getLogger(__name__).debug("no session secrets to register: %s", type(exc).__name__)


def register_session_file(path: Path) -> None:
    """Register the auth key of an existing Pyrogram session file (read-only; absent: nothing)."""
    if not path.is_file():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            for (auth_key,) in db.execute("SELECT auth_key FROM sessions"):
                register_secret(auth_key)
    except sqlite3.Error as exc:  # not a session we can read: Pyrogram will say so itself
        logging.getLogger(__name__).debug("cannot read session %s: %s", path, exc)


def setup_logging(
    level: str = "INFO", secrets: Iterable[str | bytes] = (), *, stream: TextIO | None = None
) -> logging.Handler:
    """Log to ``stream`` (stderr) at ``level``; Pyrogram at WARNING unless DEBUG; secrets redacted.

    Replaces the root logger's handlers (so calling it twice does not double
    lines) and returns the one it installed.
    """
    for secret in secrets:
        register_secret(secret)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(redaction)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    logging.getLogger("pyrogram").setLevel(logging.DEBUG if numeric == logging.DEBUG else logging.WARNING)
    return handler


_ERRNO_WORDS = {
    errno.ENETUNREACH: "the network is unreachable (no connection?)",
    errno.EHOSTUNREACH: "Telegram's servers are unreachable from here",
    errno.ECONNREFUSED: "the connection was refused (a firewall, or a proxy that is not running?)",
    errno.ECONNRESET: "the connection was reset (a firewall or a blocked network?)",
    errno.ETIMEDOUT: "the connection timed out",
}


def describe_network_error(exc: BaseException) -> str:
    """Why Telegram could not be reached, in words, with the technical cause in brackets.

    e.g. ``"Telegram closed the connection during the handshake, often a blocked
    network or a wrong proxy (KeyError: 0)"``.
    """
    cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    words = _words(exc)
    return f"{words} ({cause})"


def _words(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "cannot look up Telegram's address (no network or no DNS?)"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "Telegram did not answer in time (a slow or blocked network?)"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[exc.errno]
    if isinstance(exc, KeyError):
        # KeyError: 0 is Pyrogram reading an empty reply while it creates the auth key.
        return (
            "Telegram closed the connection during the handshake, often a blocked "
            "network or a wrong proxy"
        )
    if isinstance(exc, ConnectionError):
        return "the connection to Telegram failed or was closed (a blocked network or a wrong proxy?)"
    if isinstance(exc, OSError):
        return "a network error"
    return "an unexpected error while connecting"
