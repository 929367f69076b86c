"""The profile counter's schedule: when to send, what to do after a failure.

:class:`BioService` keeps the profile text showing the live counts: at start-up
and whenever the text changes, at most once per ``bio_interval``; a change inside
the interval is sent when the interval ends; the same text is never sent twice in
a row; FloodWait is waited out, other errors are logged once and retried with
back-off. Each attempt returns an :class:`~tracker.bio.outcome.Outcome`.

The state lives in the store's ``meta`` so that a restart neither re-sends nor
forgets a pending update: ``bio_text`` (last set), ``bio_description``,
``bio_set_at``, ``bio_next_at`` (pending change or retry; null when nothing is
pending), ``bio_error`` (one line, null after a success) and ``bio_error_kind``
(``flood_wait`` or ``failed``: whether even ``--force`` must wait).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pyrogram

from tracker.config import Settings
from tracker.models import format_ts, parse_ts
from tracker.store import StoreError, UserStore

from .counts import store_values
from .outcome import Outcome, OutcomeKind
from .telegram import describe_error, flood_seconds, send
from .text import Rendered, needs_full_pass, render_for, target_name

log = logging.getLogger(__name__)

#: Seconds added to a FloodWait before retrying: the server's clock and ours differ a little.
FLOOD_MARGIN = 2.0
#: Back-off after other errors: first retry after this many seconds, doubling ...
BACKOFF_START = 60.0
#: ... up to this many.
BACKOFF_MAX = 6 * 3600.0
#: Upper bound for one profile-update call, so a dead connection cannot wedge the service.
SEND_TIMEOUT = 30.0
#: Shortest period of the re-render that time-dependent placeholders need.
MIN_TICK = 60.0
#: Stores larger than this are counted in a worker thread, so the event loop (and
#: with it every tracking handler) is not held up by a full pass over the records.
OFFLOAD_RECORDS = 20_000


def stamp(seconds: float | None) -> str | None:
    """A Unix time as the store's timestamp text, rounded *up* to the second.

    Rounding up keeps the interval honest after a restart: the stored time is
    never earlier than the real one.
    """
    if seconds is None:
        return None
    return format_ts(datetime.fromtimestamp(math.ceil(seconds), UTC))


def _unix(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_ts(text).timestamp()
    except ValueError:
        return None


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


class BioService:
    """Keeps the profile text showing the live counts, within Telegram's limits.

    ``clock`` returns Unix seconds and ``sleep`` waits (both injectable for tests).
    All Telegram calls happen in one background task, so tracking handlers never
    wait for them: :meth:`notify_changed` only sets a flag. Bot or user mode is the
    signed-in account's (``client.me.is_bot``).
    """

    def __init__(
        self,
        client: pyrogram.Client,
        store: UserStore,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        self._client = client
        self._store = store
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._send_timeout = send_timeout
        self._interval = float(settings.bio_interval)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._failures = 0
        self._logged_error: str | None = None
        self._warned: set[str] = set()
        meta = store.meta
        self._text = _text_or_none(meta.get("bio_text"))
        self._description = _text_or_none(meta.get("bio_description"))
        self._set_at = _unix(meta.get("bio_set_at"))
        self._error = _text_or_none(meta.get("bio_error"))
        # Which kind of failure the error was: a FloodWait binds even --force.
        flood = meta.get("bio_error_kind") == OutcomeKind.FLOOD_WAIT.value
        self._error_kind = OutcomeKind.FLOOD_WAIT if flood else OutcomeKind.FAILED
        # A stored next_at after an error is a retry time (FloodWait or back-off) to honour;
        # without an error it is a pending change, which start-up finds again by rendering.
        self._retry_at = _unix(meta.get("bio_next_at")) if self._error else None
        self._next_at_stored = meta.get("bio_next_at")

    # ----------------------------------------------------------------- public API

    @property
    def text(self) -> str | None:
        """The profile text last set successfully."""
        return self._text

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._task is not None and not self._task.done()

    @property
    def is_bot(self) -> bool:
        """Bot mode (short description) or user mode (bio), from the signed-in account."""
        me = self._client.me
        return me is not None and bool(me.is_bot)

    async def start(self) -> None:
        """Start the background task; it makes the start-up update (never blocks the caller)."""
        if self.running:
            return
        self._loop = asyncio.get_running_loop()
        if self._settings.description_template is not None and not self.is_bot:
            log.warning("description_template is used in bot mode only; ignored for a user account")
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name="bio-updater")
        if needs_full_pass(self._settings, is_bot=self.is_bot):
            # {active_30d} and {new_today} change with time alone (users age out of
            # the window, midnight passes) without any notify_changed().
            self._ticker = asyncio.create_task(self._tick(), name="bio-ticker")

    def notify_changed(self) -> None:
        """Tell the service that the counts may have changed (sync, O(1), thread-safe)."""
        loop = self._loop
        if loop is None:
            return  # not started: start() renders anyway
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        elif not loop.is_closed():
            # Sync handlers run in pyrogram's thread pool; asyncio.Event is not thread-safe.
            loop.call_soon_threadsafe(self._wake.set)

    async def refresh(self, force: bool = False) -> Outcome:
        """Update now if allowed (``force`` ignores ``bio_interval``, not FloodWait).

        Inside the interval without ``force`` nothing is sent: the outcome is
        PENDING and ``next_at`` says when the update will be made.
        """
        outcome = await self._attempt(force=force)
        if outcome.kind is OutcomeKind.PENDING or not outcome.ok:
            self._wake.set()
        return outcome

    async def stop(self) -> None:
        """Stop the background task (a pending update stays recorded in ``meta``)."""
        for task in (self._ticker, self._task):
            # Cancel until it is done: a cancel swallowed by library code must not hang the shutdown.
            while task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            if task is not None and not task.cancelled() and task.exception() is not None:
                log.error("the profile updater had failed: %r", task.exception())
        self._task = self._ticker = None

    # ----------------------------------------------------------------- the loop

    def _not_before(self) -> float:
        """The earliest time the next update may be sent (without force)."""
        due = -math.inf
        if self._set_at is not None:
            due = self._set_at + self._interval
        if self._retry_at is not None:
            due = max(due, self._retry_at)
        return due

    async def _tick(self) -> None:
        """Re-render once per interval (at least a minute): time-dependent counts move."""
        while True:
            await self._sleep(max(self._interval, MIN_TICK))
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                outcome = await self._attempt(force=False)
                while outcome.kind is OutcomeKind.PENDING or outcome.retry:
                    delay = self._not_before() - self._clock()
                    if delay > 0:
                        await self._sleep(delay)
                    outcome = await self._attempt(force=False)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the updater die silently: log, wait, go on
                log.exception("profile updater failed unexpectedly")
                await self._sleep(BACKOFF_START)
                self._wake.set()

    # ----------------------------------------------------------------- one attempt

    async def _attempt(self, *, force: bool) -> Outcome:
        async with self._lock:
            now = self._clock()
            waiting = self._still_waiting(now, force=force)
            if waiting is not None:
                return waiting
            rendered = await self._render(now)
            info = Outcome(
                OutcomeKind.UNCHANGED, text=rendered.about, length=rendered.length, limit=rendered.limit,
                target=target_name(is_bot=self.is_bot), warnings=rendered.warnings,
            )  # fmt: skip
            if rendered.about == self._text and rendered.description == self._description:
                # Never the same text twice in a row. The profile already shows it, so a
                # pending update or a retry of another text (and its error) is over.
                self._retry_at = None
                self._set_pending(None)
                if self._error is not None:
                    self._error = self._logged_error = None
                    self._failures = 0
                    self._save(bio_error=None, bio_error_kind=None)
                return info
            not_before = self._not_before()
            if not force and now < not_before:
                self._set_pending(not_before)
                return replace(info, kind=OutcomeKind.PENDING, next_at=stamp(not_before))
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                # cancel that arrives as the send completes, and stop() would wait forever.
                async with asyncio.timeout(self._send_timeout):
                    await send(self._client, rendered, is_bot=self.is_bot)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return self._failed(exc, now, info)
            self._succeeded(rendered, now)
            return replace(info, kind=OutcomeKind.SET, set_at=stamp(now))

    def _still_waiting(self, now: float, *, force: bool) -> Outcome | None:
        """The outcome when an earlier failure's retry time has not come yet, else None."""
        if self._error is None or self._retry_at is None or now >= self._retry_at:
            return None
        next_at = stamp(self._retry_at)
        if self._error_kind is OutcomeKind.FLOOD_WAIT:
            # Not even with force: sending during a FloodWait only earns a longer one.
            wait = math.ceil(self._retry_at - now)
            return Outcome(
                OutcomeKind.FLOOD_WAIT, flood_wait=wait, next_at=next_at,
                error=f"FloodWait: Telegram asks to wait {wait} s before the next profile update",
            )  # fmt: skip
        if force:
            return None
        return Outcome(OutcomeKind.FAILED, error=self._error, next_at=next_at)

    async def _render(self, now: float) -> Rendered:
        """The texts for the counts at ``now``; each distinct cut warning is logged once."""
        is_bot = self.is_bot
        if needs_full_pass(self._settings, is_bot=is_bot) and len(self._store) > OFFLOAD_RECORDS:
            values = await asyncio.to_thread(
                store_values, self._settings, self._store, now=now, is_bot=is_bot
            )
        else:
            values = store_values(self._settings, self._store, now=now, is_bot=is_bot)
        rendered = render_for(self._settings, values, is_bot=is_bot, premium=self._premium())
        for warning in rendered.warnings:
            if warning not in self._warned:  # once per distinct text, not every interval
                self._warned.add(warning)
                log.warning("%s", warning)
        return rendered

    def _succeeded(self, rendered: Rendered, now: float) -> None:
        """Remember and record a text that was set."""
        self._text, self._description = rendered.about, rendered.description
        self._set_at, self._retry_at, self._failures = now, None, 0
        if self._error is not None:
            log.info("profile text updated again after: %s", self._error)
        self._error = self._logged_error = None
        self._next_at_stored = None
        fields: dict[str, Any] = {
            "bio_text": rendered.about,
            "bio_set_at": stamp(now),
            "bio_next_at": None,
            "bio_error": None,
            "bio_error_kind": None,
        }
        if self.is_bot and self._settings.description_template is not None:
            fields["bio_description"] = rendered.description
        self._save(**fields)
        log.info("%s set to %r", target_name(is_bot=self.is_bot), rendered.about)

    def _failed(self, exc: BaseException, now: float, info: Outcome) -> Outcome:
        """Record a failed send and plan the retry."""
        target = target_name(is_bot=self.is_bot)
        seconds = flood_seconds(exc)
        if seconds is not None:
            self._retry_at = now + seconds + FLOOD_MARGIN
            self._error_kind = OutcomeKind.FLOOD_WAIT
            self._error = f"FLOOD_WAIT_{seconds}: Telegram asks to wait {seconds} s"
            log.warning("profile update: FloodWait of %d s, retrying after it", seconds)
            error = f"FloodWait: Telegram asks to wait {seconds} s before the next profile update"
        else:
            self._failures += 1
            backoff = min(BACKOFF_START * 2 ** (self._failures - 1), BACKOFF_MAX)
            self._retry_at = now + backoff
            self._error_kind = OutcomeKind.FAILED
            self._error = describe_error(exc)
            if self._error != self._logged_error:  # logged once, not at every retry
                self._logged_error = self._error
                log.error("cannot set the %s: %s (retrying with back-off)", target, self._error)
            else:
                log.debug("profile update failed again: %s", self._error)
            error = f"cannot set the {target}: {self._error}"
        self._next_at_stored = stamp(self._retry_at)
        self._save(
            bio_error=self._error, bio_error_kind=self._error_kind.value, bio_next_at=self._next_at_stored
        )
        return replace(
            info, kind=self._error_kind, error=error, next_at=self._next_at_stored,
            flood_wait=seconds,
        )  # fmt: skip

    # ----------------------------------------------------------------- helpers

    def _premium(self) -> bool | None:
        me = self._client.me
        return me.is_premium if me is not None else None

    def _save(self, **fields: Any) -> None:
        try:
            self._store.update_meta(**fields)
        except StoreError as exc:  # the bio must not take the bot down; the store logs too
            log.error("cannot record the profile state: %s", exc)

    def _set_pending(self, next_at: float | None) -> None:
        text = stamp(next_at)
        if text != self._next_at_stored:
            self._next_at_stored = text
            self._save(bio_next_at=text)
