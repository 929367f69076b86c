"""``tracker.attach(client)``: tracking inside a bot owner's own ``pyrogram.Client``.

The owner keeps running the client the usual way (``client.run()``, ``async with
client:``, or start / idle / stop); tracking follows the client's life by
wrapping three of its steps on this one instance (never the class):

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
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pyrogram

from tracker.app import Tracking
from tracker.config import Settings, load
from tracker.handlers import Clock, register, utc_now
from tracker.store import UserStore


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
    store = UserStore(settings.store)
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
