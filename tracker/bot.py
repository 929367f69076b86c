"""The bot process: build the Pyrogram client, run it until a signal, shut down cleanly.

``python bot.py [--config PATH]`` calls :func:`main`. The pieces are public so
that other code (and tests) can use them:

* :func:`build_app` - a client for ``settings`` with tracking attached
  (:func:`tracker.attach`, the one path) and the owner's plugins loaded; returns
  the :class:`~tracker.app.Tracking`; not started.
* :func:`run` - start (retrying while Telegram is unreachable), serve until the
  stop event is set, then stop the client; the store is always closed.
* :func:`main` - argument parsing, signals, and one-line errors with exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pyrogram
from pyrogram.errors import BadRequest, Unauthorized

from tracker import __version__
from tracker.app import Tracking, attach
from tracker.config import LOG_LEVELS, ConfigError, Settings, load, permission_warning
from tracker.control import ControlError
from tracker.handlers import Clock, utc_now
from tracker.logs import describe_network_error, register_session_file, setup_logging
from tracker.plugins import load_plugins
from tracker.store import StoreError, UserStore

log = logging.getLogger(__name__)

#: Seconds between start-up attempts while Telegram is unreachable (doubling up to the max).
RETRY_FIRST = 1.0
RETRY_MAX = 60.0


class FatalStartError(Exception):
    """Telegram refused the credentials: retrying cannot help."""


class TrackerClient(pyrogram.Client):  # type: ignore[misc]  # pyrogram ships no type information
    """The bot's own client: a ``pyrogram.Client`` that declares what tracking adds to it.

    ``tracking`` is the :class:`~tracker.app.Tracking` that :func:`tracker.attach`
    attached (the counter, the control channel, the handlers' state); ``store`` is
    its open :class:`~tracker.store.UserStore`. Nothing else is hung on the client.
    """

    tracking: Tracking

    @property
    def store(self) -> UserStore:
        """The open writer store (``tracking.store``)."""
        return self.tracking.store


def build_app(
    settings: Settings,
    *,
    in_memory: bool = False,
    clock: Clock = utc_now,
) -> TrackerClient:
    """The tracker client for ``settings``: store open, handlers registered, not started.

    Tracking is attached with :func:`tracker.attach`, exactly as in an owner's
    own bot (``client.tracking``), and the smart plugins of ``plugins = FOLDER``
    are loaded beside it.

    Call it from inside the event loop that will run the client (pyrogram 2.0.106
    binds the current loop in ``Client.__init__``). ``in_memory`` keeps the
    session out of the data folder (tests). Raises :class:`ConfigError` when the
    API credentials are missing and :class:`StoreError` (e.g. the store's writer
    lock is held by another bot) before anything is created.
    """
    api_id, api_hash = settings.require_credentials()
    client = TrackerClient(
        settings.session,
        api_id=api_id,
        api_hash=api_hash,
        bot_token=settings.bot_token,
        proxy=settings.proxy,
        # The session file lives beside the store, never in the cwd or the venv's bin/.
        workdir=str(settings.data_dir),
        in_memory=in_memory,
    )
    tracking = client.tracking = attach(client, settings, clock=clock)
    plugins = settings.plugins
    if plugins is not None:
        try:
            load_plugins(client, plugins)
        except BaseException:
            tracking.close_store()
            raise
    return client


async def start_client(app: pyrogram.Client, stop: asyncio.Event) -> bool:
    """``app.start()``, retried with back-off until it works or ``stop`` is set.

    Returns True once started, False when stopped first. Raises
    :class:`FatalStartError` when Telegram rejects the credentials (bad token,
    revoked session, bad api_id): retrying would not help; a
    :class:`ControlError` (the control channel cannot open) as it is.
    """
    delay = RETRY_FIRST
    while not stop.is_set():
        start = asyncio.ensure_future(app.start())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not start.done():
            start.cancel()
            with contextlib.suppress(BaseException):
                await start
            await _disconnect_quietly(app)
            return False
        exc = start.exception()
        if exc is None:
            return True
        if isinstance(exc, ControlError | StoreError):
            raise exc  # ours, not the network's: retrying cannot help
        if isinstance(exc, Unauthorized | BadRequest):
            raise FatalStartError(f"Telegram refused to log in: {exc}") from exc
        if isinstance(exc, EOFError):
            # Pyrogram's interactive login (first run in user mode) read end-of-file.
            raise FatalStartError(
                "logging in needs answers on the terminal (phone number, code); "
                "run the bot interactively once to create the session"
            ) from exc
        log.warning("cannot reach Telegram: %s; retrying in %.0f s", describe_network_error(exc), delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, RETRY_MAX)
    return False


async def _disconnect_quietly(app: pyrogram.Client) -> None:
    # start() was cancelled half-way: close whatever it had opened.
    if app.is_connected:
        try:
            await asyncio.wait_for(app.disconnect(), 10)
        except BaseException as exc:
            log.debug("disconnect after an interrupted start failed: %r", exc)


async def run(app: TrackerClient, *, stop: asyncio.Event | None = None) -> None:
    """Run the client until ``stop`` is set, then shut everything down; the store is always closed.

    Without ``stop``, SIGINT and SIGTERM set it. While Telegram is unreachable
    the start is retried (the control channel is open meanwhile); once started,
    pyrogram itself reconnects. Stopping the client stops the counter and the
    control channel, lets the handlers finish the queued updates, then closes
    the store (:mod:`tracker.attach`).
    """
    if stop is None:
        stop = asyncio.Event()
        _install_signal_handlers(stop)
    tracking = app.tracking
    try:
        if not await start_client(app, stop):
            return
        try:
            await stop.wait()
        finally:
            try:
                await app.stop()
            except Exception:
                log.exception("stopping the client failed")
    finally:
        await tracking.close()


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _amain(settings: Settings) -> None:
    # build_app inside the loop: pyrogram binds the running loop when the client is built.
    await run(build_app(settings))


class _HelpFormatter(argparse.HelpFormatter):
    """argparse help that reads like the rest of the CLI's (Click's ``Usage:``)."""

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, prefix or "Usage: ")


def parse_args(argv: list[str] | None, *, prog: str = "bot.py") -> argparse.Namespace:
    """``--config PATH``, ``--store PATH``, ``--log-level LEVEL`` (``-v`` = DEBUG) and ``--version``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Start the bot: track every user who interacts with it.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: $TRACKER_CONFIG or ./config.ini)"
    )
    parser.add_argument(
        "--store", metavar="PATH", help="user store file, overriding the config's [tracker] store"
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="log level (default: the config's log_level, INFO); Pyrogram's own loggers "
        "stay at WARNING unless DEBUG; secrets are never logged",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_const", dest="log_level", const="DEBUG",
        help="same as --log-level DEBUG",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, *, prog: str = "bot.py") -> None:
    """Entry point of ``python bot.py`` and ``tracker run``: exits 0 after a clean stop, 1 on an error."""
    args = parse_args(argv, prog=prog)
    # Everything this process creates is private: the store, and above all the
    # session file (and its SQLite journal), which holds the account's login key.
    os.umask(0o077)
    try:
        settings = load(args.config)
        if args.store:
            settings = dataclasses.replace(settings, store=Path(args.store).absolute())
        # Logging is set up only once the secrets are known, so that the very first
        # line can already be redacted.
        setup_logging(args.log_level or settings.log_level, settings.secrets())
        register_session_file(settings.data_dir / f"{settings.session}.session")
        warning = permission_warning(settings)
        if warning:
            log.warning("%s", warning)
        settings.require_credentials()
        asyncio.run(_amain(settings))
    except (ConfigError, StoreError, FatalStartError, ControlError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass  # Ctrl-C before the signal handlers were installed: nothing to flush yet
