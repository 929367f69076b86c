"""``cli.py refresh-bio``: a dry run, the running bot, or a short session of the CLI's own.

Bot or user mode is the one the bot recorded in the store (``meta.mode``), so
credentials lying around in the shell's environment do not change what the CLI
does; a store the bot never ran on falls back to the configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyrogram
from pyrogram import errors

from tracker.config import ConfigError, Settings
from tracker.control import HANDLER_TIMEOUT, BotNotRunning, ControlError, request, socket_path_for
from tracker.store import StoreError, StoreLockedError, StoreNotFoundError, UserStore

from .counts import count_values, store_values
from .outcome import Outcome
from .service import BioService
from .telegram import BioError, describe_error
from .text import (
    BOT_DESCRIPTION_LIMIT,
    USER_ABOUT_LIMIT,
    USER_ABOUT_LIMIT_PREMIUM,
    render_for,
    target_name,
    utf16_len,
)

log = logging.getLogger(__name__)

#: Upper bound for the CLI's own connect / disconnect (network unreachable -> error, not a hang).
CLI_CONNECT_TIMEOUT = 20.0
#: How long the CLI waits for the running bot to answer a refresh-bio request.
#: Longer than the bot allows its handler, so the bot's own answer (even "timed
#: out") always arrives before the CLI gives up.
CONTROL_REFRESH_TIMEOUT = HANDLER_TIMEOUT + 5.0
#: The store's ``meta`` key where the bot records its mode, and its two values.
MODE_KEY = "mode"
BOT_MODE, USER_MODE = "bot", "user"


def recorded_mode(meta: dict[str, object], settings: Settings) -> bool:
    """True for bot mode: as the bot recorded it, else as configured (a bot token)."""
    mode = meta.get(MODE_KEY)
    if mode in (BOT_MODE, USER_MODE):
        return mode == BOT_MODE
    return settings.is_bot


def dry_run_text(settings: Settings, *, now: float | None = None) -> str:
    """What ``refresh-bio --dry-run`` prints: the text, its length and the limit. Contacts nobody."""
    at = time.time() if now is None else now
    try:
        with UserStore(settings.store, readonly=True) as store:
            is_bot = recorded_mode(store.meta, settings)
            values = store_values(settings, store, now=at, is_bot=is_bot)
    except StoreNotFoundError:
        # A fresh install: nothing tracked yet, the counter shows zero.
        is_bot = settings.is_bot
        values = count_values([], now=datetime.fromtimestamp(at, UTC), tz=settings.tz)
    rendered = render_for(settings, values, is_bot=is_bot, premium=False)
    limit_text = str(rendered.limit)
    if not is_bot:
        limit_text = f"{USER_ABOUT_LIMIT} ({USER_ABOUT_LIMIT_PREMIUM} with Telegram Premium)"
    lines = [f"warning: {w}" for w in rendered.warnings]
    lines.append(rendered.about)
    lines.append(f"length: {rendered.length}, limit: {limit_text} ({target_name(is_bot=is_bot)})")
    if rendered.description is not None:
        lines.append(
            f"description: {rendered.description!r}, length: {utf16_len(rendered.description)}, "
            f"limit: {BOT_DESCRIPTION_LIMIT}"
        )
    return "\n".join(lines)


def refresh_command(
    settings: Settings, *, dry_run: bool, force: bool, timeout: float = CLI_CONNECT_TIMEOUT
) -> str:
    """``cli.py refresh-bio``: returns the text to print; raises :class:`BioError` (one line).

    ``dry_run`` renders only. Otherwise the running bot is asked through the control
    channel; when none runs, the CLI connects with its own session
    (``<session>-cli`` in the data folder, so the bot's session file is never locked),
    sets the text and records it in ``meta``. ``timeout`` bounds connecting.
    """
    if dry_run:
        try:
            return dry_run_text(settings)
        except StoreError as exc:
            raise BioError(str(exc)) from None
    socket_path = socket_path_for(settings.store)
    try:
        reply = request(socket_path, {"cmd": "refresh-bio", "force": force}, timeout=CONTROL_REFRESH_TIMEOUT)
    except BotNotRunning:
        return _standalone(settings, force=force, timeout=timeout)
    except ControlError as exc:
        raise BioError(str(exc)) from None
    if not reply.get("ok"):
        raise BioError(str(reply.get("error") or "the bot refused without saying why"))
    try:
        return Outcome.from_reply(reply).describe()
    except ValueError as exc:
        raise BioError(f"malformed reply from {socket_path}: {exc}") from None


def _standalone(settings: Settings, *, force: bool, timeout: float) -> str:
    try:
        api_id, api_hash = settings.require_credentials()
    except ConfigError as exc:
        raise BioError(str(exc)) from None
    try:
        store = UserStore(settings.store)
    except StoreLockedError as exc:
        raise BioError(
            f"{exc}; the bot seems to run but does not answer on {socket_path_for(settings.store)}"
        ) from None
    except StoreError as exc:
        raise BioError(str(exc)) from None
    with store:
        login = _CliLogin(settings, api_id, api_hash, is_bot=recorded_mode(store.meta, settings))
        login.check_session()
        # Pyrogram logs every reconnect attempt; the CLI's contract is one line on error,
        # so its chatter is muted unless someone configured that logger on purpose.
        pyrogram_log = logging.getLogger("pyrogram")
        muted = pyrogram_log.level == logging.NOTSET
        if muted:
            pyrogram_log.setLevel(logging.CRITICAL + 1)
        # The session file (and its SQLite journal) hold the login key: owner-only from birth.
        old_umask = os.umask(0o077)
        try:
            return asyncio.run(login.refresh(store, force=force, timeout=timeout))
        finally:
            os.umask(old_umask)
            if muted:
                pyrogram_log.setLevel(logging.NOTSET)


class _CliLogin:
    """The CLI's own short session (``<session>-cli``): log in, refresh once, log out."""

    def __init__(self, settings: Settings, api_id: int, api_hash: str, *, is_bot: bool) -> None:
        self.settings = settings
        self.api_id, self.api_hash = api_id, api_hash
        self.is_bot = is_bot
        self.session_name = f"{settings.session}-cli"
        self.session_file = settings.data_dir / f"{self.session_name}.session"

    def check_session(self) -> None:
        """A user account's first login needs a terminal for the phone number and code."""
        if not self.is_bot and not self.session_file.exists() and not sys.stdin.isatty():
            raise BioError(
                f"no CLI session {self.session_file}: run `cli.py refresh-bio` once in "
                f"a terminal to log in (the CLI never uses the bot's own session)"
            )

    async def refresh(self, store: UserStore, *, force: bool, timeout: float) -> str:
        """Connect, make one attempt, disconnect; the text to print."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        client = pyrogram.Client(
            self.session_name,
            api_id=self.api_id,
            api_hash=self.api_hash,
            bot_token=self.settings.bot_token if self.is_bot else None,
            workdir=str(self.settings.data_dir),  # explicit: never the current directory
            no_updates=True,
        )
        # FloodWaits are reported, not slept through: the user decides when to retry.
        client.sleep_threshold = 0
        await self._start(client, timeout)
        try:
            outcome = await BioService(client, store, self.settings).refresh(force=force)
        finally:
            await _quiet_stop(client, self.session_file)
        if not outcome.ok:
            raise BioError(str(outcome.error))
        return outcome.describe()

    async def _start(self, client: pyrogram.Client, timeout: float) -> None:
        try:
            if not self.is_bot and not self.session_file.exists():
                await client.start()  # asks for the phone number and code on the terminal
            else:
                await asyncio.wait_for(client.start(), timeout)
        except TimeoutError:
            await _quiet_stop(client, self.session_file)
            raise BioError(f"cannot reach Telegram within {timeout:g} s (network unreachable?)") from None
        except errors.RPCError as exc:
            await _quiet_stop(client, self.session_file)
            raise BioError(f"Telegram refused the login: {describe_error(exc)}") from None
        except OSError as exc:
            await _quiet_stop(client, self.session_file)
            raise BioError(f"cannot reach Telegram: {exc.strerror or exc}") from None
        except Exception as exc:  # pyrogram raises assorted types while connecting; one line each
            await _quiet_stop(client, self.session_file)
            raise BioError(f"cannot connect to Telegram: {describe_error(exc)}") from None


async def _quiet_stop(client: pyrogram.Client, session_file: Path) -> None:
    """Disconnect within a bounded time, ignoring a client that never fully started."""
    try:
        if client.is_initialized:
            await asyncio.wait_for(client.stop(), 10)
        elif client.is_connected:
            await asyncio.wait_for(client.disconnect(), 10)
    except Exception as exc:  # shutting down after an error: the first error is the one to report
        log.debug("ignoring error while disconnecting: %s", exc)
    # The session file holds the login key: owner-only, like the store.
    with contextlib.suppress(OSError):
        os.chmod(session_file, 0o600)
