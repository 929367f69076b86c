"""``tracker.attach(client)`` and the :class:`Tracking` it returns.

Tracking attached to one ``pyrogram.Client``: store, handlers, counter, control channel.

:class:`Tracking` is what :func:`tracker.attach` returns and what ``bot.py`` runs:
a typed home for the pieces that used to hang off the client as untyped
attributes. Its life follows the client's (see :mod:`tracker.attach`):

* :meth:`Tracking.open_control` - before connecting, so ``forget`` and
  ``refresh-bio`` reach the bot even while Telegram is unreachable;
* :meth:`Tracking.start` - once signed in: the mode (bot or user, from
  ``client.me``) is recorded in the store, the profile counter starts;
* :meth:`Tracking.stop` / :meth:`Tracking.close` - services stopped, store flushed
  and closed.

How :func:`attach` follows the client's life, without the owner changing how
they run it (``client.run()``, ``async with client:``, or start / idle / stop): it
wraps three of the client's steps on this one instance (never the class):

* ``connect`` (the first step of ``start``): the control channel opens first, so
  ``cli.py forget`` and ``refresh-bio`` reach the bot even while Telegram is
  unreachable and ``start`` keeps failing;
* ``initialize`` (the last step of ``start``, after ``client.me`` is set): the
  mode is recorded and the profile counter starts;
* ``terminate`` (the first step of ``stop``): the counter and the control channel
  stop, the dispatcher finishes the queued updates, then the store is flushed
  and closed. A restart that keeps the handlers (kurigram's
  ``clear_handlers=False``) keeps the store open too.

These three exist with the same meaning in kurigram and in pyrogram 2.0.106
(whose ``start``/``stop`` call them the same way), and pyrogram's sync wrappers
of ``start``/``stop`` await them like any other coroutine.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pyrogram

from tracker.bio import BOT_MODE, MODE_KEY, USER_MODE, BioService
from tracker.commands import ChatCommands, register
from tracker.config import Settings, load
from tracker.control import ControlServer, socket_path_for
from tracker.handlers import Clock, utc_now
from tracker.stats import compute_stats
from tracker.store import UserStore

log = logging.getLogger(__name__)


class Tracking:
    """Tracking for one client: the store, the handlers' :class:`Tracker`, the counter, the control channel.

    Build it with :func:`tracker.attach` (or ``tracker.bot.build_app``).
    ``store`` is the open writer :class:`~tracker.store.UserStore`; ``on_change``
    callbacks run after the user counts may have changed (the counter's
    ``notify_changed`` is one).
    """

    def __init__(
        self, client: pyrogram.Client, store: UserStore, settings: Settings, *, clock: Clock = utc_now
    ) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.on_change: list[Callable[[], None]] = []
        self.tracker = ChatCommands(store, settings, on_change=self.on_change, clock=clock)
        self.bio = BioService(client, store, settings)
        self.on_change.append(self.bio.notify_changed)
        self.control = ControlServer(socket_path_for(settings.store), self.handle_control)
        self._control_open = False
        self._closed = False

    # ----------------------------------------------------------------- for the owner

    @property
    def is_bot(self) -> bool | None:
        """Bot (True) or user account (False) once signed in; None before."""
        me = self.client.me
        return None if me is None else bool(me.is_bot)

    def stats(self) -> dict[str, Any]:
        """The ``stats --json`` document of the store as it is now."""
        return compute_stats(list(self.store), now=self.tracker.clock(), tz=self.settings.tz)

    # ----------------------------------------------------------------- life cycle

    async def open_control(self) -> None:
        """Open the control channel (idempotent); raises ControlError."""
        if not self._control_open:
            await self.control.start()
            self._control_open = True

    async def start(self) -> None:
        """The client is signed in: record its mode, open the control channel, start the counter."""
        is_bot = self.is_bot
        if is_bot is not None:
            mode = BOT_MODE if is_bot else USER_MODE
            if self.store.meta.get(MODE_KEY) != mode:
                self.store.update_meta(**{MODE_KEY: mode})
        await self.open_control()
        await self.bio.start()
        me = self.client.me
        log.info(
            "tracking as %s%s (%s mode); %d users in %s",
            "@" if me and me.username else "",
            (me.username or me.id) if me else "?",
            "bot" if is_bot else "user",
            len(self.store),
            self.store.path,
        )

    async def stop(self) -> None:
        """Stop the counter and close the control channel (the store stays open)."""
        try:
            await self.bio.stop()
        except Exception:
            log.exception("stopping the profile counter failed")
        if self._control_open:
            self._control_open = False
            try:
                await self.control.stop()
            except Exception:
                log.exception("closing the control channel failed")

    async def close(self) -> None:
        """:meth:`stop`, then flush and close the store (idempotent)."""
        await self.stop()
        self.close_store()

    def close_store(self) -> None:
        """Flush and close the store (idempotent)."""
        if not self._closed:
            self._closed = True
            self.store.close()
            log.info("store %s flushed and closed", self.store.path)

    # ----------------------------------------------------------------- control channel

    async def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        """A control-channel request (``ping``, ``forget``, ``refresh-bio``) -> its reply."""
        cmd = request.get("cmd")
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid(), "users": len(self.store)}
        if cmd == "forget":
            user_id = request.get("user_id")
            if isinstance(user_id, bool) or not isinstance(user_id, int):
                return {"ok": False, "error": "forget needs an integer user_id"}
            return {"ok": True, "forgotten": self.tracker.forget(user_id)}
        if cmd == "refresh-bio":
            if self.client.me is None:
                return {"ok": False, "error": "the bot is not connected to Telegram yet; try again later"}
            outcome = await self.bio.refresh(bool(request.get("force", False)))
            return outcome.to_reply()
        return {"ok": False, "error": f"unknown command {cmd!r}"}


def attach(
    client: pyrogram.Client,
    config: str | os.PathLike[str] | Settings | None = None,
    *,
    clock: Clock = utc_now,
) -> Tracking:
    """Add tracking, the profile counter and the control channel to ``client``.

    ``config`` is a config file path or a :class:`~tracker.config.Settings`
    (default: ``$TRACKER_CONFIG`` or ``./config.ini``, with ``TRACKER_*`` overrides);
    its credentials are not used: the client has its own. The store is opened
    here, so a second writer fails at once (:class:`~tracker.store.StoreLockedError`).
    The tracking handlers go in group -1 and never stop propagation; the
    owner's handlers in any group still see every update.
    """
    settings = config if isinstance(config, Settings) else load(config)
    store = UserStore(settings.store, timezone=settings.tz)
    try:
        tracking = Tracking(client, store, settings, clock=clock)
        register(client, tracking.tracker)
        _follow_life_cycle(client, tracking)
    except BaseException:
        store.close()
        raise
    return tracking


AsyncStep = Callable[..., Awaitable[Any]]


def _follow_life_cycle(client: pyrogram.Client, tracking: Tracking) -> None:
    """Wrap this client's ``connect``, ``initialize`` and ``terminate`` (see the module docstring)."""
    connect: AsyncStep = client.connect
    initialize: AsyncStep = client.initialize
    terminate: AsyncStep = client.terminate

    @functools.wraps(connect)
    async def connect_with_control(*args: Any, **kwargs: Any) -> Any:
        await tracking.open_control()
        return await connect(*args, **kwargs)

    @functools.wraps(initialize)
    async def initialize_with_tracking(*args: Any, **kwargs: Any) -> Any:
        result = await initialize(*args, **kwargs)
        await tracking.start()
        return result

    @functools.wraps(terminate)
    async def terminate_with_tracking(*args: Any, **kwargs: Any) -> Any:
        await tracking.stop()
        try:
            return await terminate(*args, **kwargs)
        finally:
            if kwargs.get("clear_handlers", args[0] if args else True):
                # Handlers gone (a plain stop): tracking is over, the store is closed.
                await tracking.close()

    # Instance attributes shadow the class's methods for this client only.
    client.connect = connect_with_control  # type: ignore[method-assign]
    client.initialize = initialize_with_tracking  # type: ignore[method-assign]
    client.terminate = terminate_with_tracking  # type: ignore[method-assign]


__all__ = ["Tracking", "attach"]
