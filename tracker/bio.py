"""The live user counter in the profile: render, fit, schedule, send.

The account's profile text (a bot's short description, or a user's bio) shows the
count of tracked users, e.g. ``👥 Users: 1,234``. This module

* renders ``bio_template`` (and the optional bot ``description_template``) from the
  store with thousands separators (:func:`render`);
* fits the text into Telegram's limit, counted the way Telegram counts: in UTF-16
  code units, cut at a character boundary (:func:`fit`);
* schedules updates (:class:`BioService`): at start-up and whenever the text
  changes, at most once per ``bio_interval``; a change inside the interval is sent
  when the interval ends; the same text is never sent twice in a row; FloodWait is
  waited out, other errors are logged once and retried with back-off;
* serves ``cli.py refresh-bio`` (:func:`refresh_command`): a dry run, the running
  bot through the control channel, or a short session of the CLI's own.

The state lives in the store's ``meta`` so that a restart neither re-sends nor
forgets a pending update:

``bio_text``
    the profile text last set successfully (``null`` before the first time);
``bio_description``
    the bot description last set with it (bot mode with ``description_template``);
``bio_set_at``
    when it was set (UTC ``YYYY-MM-DDTHH:MM:SSZ``);
``bio_next_at``
    when the next attempt is due: a change waiting for the interval to end, or a
    retry after an error; ``null`` when nothing is pending;
``bio_error``
    the last error, one line, or ``null`` after a success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyrogram
from pyrogram import errors, raw

from tracker.config import BIO_PLACEHOLDERS, ConfigError, Settings, template_fields
from tracker.control import HANDLER_TIMEOUT, BotNotRunning, ControlError, request, socket_path_for
from tracker.models import format_ts, parse_ts
from tracker.stats import compute_stats
from tracker.store import StoreError, StoreLockedError, StoreNotFoundError, UserStore

log = logging.getLogger(__name__)

#: Telegram's limits, in UTF-16 code units.
BOT_ABOUT_LIMIT = 120
BOT_DESCRIPTION_LIMIT = 512
USER_ABOUT_LIMIT = 70
USER_ABOUT_LIMIT_PREMIUM = 140

#: Seconds added to a FloodWait before retrying: the server's clock and ours differ a little.
FLOOD_MARGIN = 2.0
#: Back-off after other errors: first retry after this many seconds, doubling ...
BACKOFF_START = 60.0
#: ... up to this many.
BACKOFF_MAX = 6 * 3600.0
#: Upper bound for one profile-update call, so a dead connection cannot wedge the service.
SEND_TIMEOUT = 30.0
#: Upper bound for the CLI's own connect / disconnect (network unreachable -> error, not a hang).
CLI_CONNECT_TIMEOUT = 20.0
#: How long the CLI waits for the running bot to answer a refresh-bio request.
#: Longer than the bot allows its handler, so the bot's own answer (even "timed
#: out") always arrives before the CLI gives up.
CONTROL_REFRESH_TIMEOUT = HANDLER_TIMEOUT + 5.0


class BioError(Exception):
    """A profile update could not be made; the message is one line."""


# --------------------------------------------------------------------------- rendering


def utf16_len(text: str) -> int:
    """Length of ``text`` as Telegram counts it: UTF-16 code units (an emoji is often 2)."""
    return len(text.encode("utf-16-le")) // 2


def _extends_cluster(prev: str, char: str) -> bool:
    """True when ``char`` belongs to the same user-perceived character as ``prev``.

    A small approximation of grapheme clusters, enough that a cut never strands a
    combining accent, a variation selector, a skin tone or half of a ZWJ sequence
    or flag.
    """
    code = ord(char)
    return (
        unicodedata.combining(char) != 0
        or unicodedata.category(char) in ("Mn", "Me")
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tag characters (subdivision flags)
        or code == 0x200D  # zero width joiner glues to the previous ...
        or prev == "\u200d"  # ... and to the next character
    )


def _clusters(text: str) -> Iterable[str]:
    cluster = ""
    regional = 0
    for char in text:
        is_regional = 0x1F1E6 <= ord(char) <= 0x1F1FF
        # Regional indicators pair up into flags: the second of a pair extends the first.
        if cluster and (_extends_cluster(cluster[-1], char) or (is_regional and regional % 2 == 1)):
            cluster += char
        else:
            if cluster:
                yield cluster
            cluster = char
        regional = regional + 1 if is_regional else 0
    if cluster:
        yield cluster


def fit(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` UTF-16 code units at a character boundary.

    Returns ``(text, was_cut)``. Trailing whitespace left by the cut is dropped.
    """
    if utf16_len(text) <= limit:
        return text, False
    kept: list[str] = []
    used = 0
    for cluster in _clusters(text):
        size = utf16_len(cluster)
        if used + size > limit:
            break
        kept.append(cluster)
        used += size
    return "".join(kept).rstrip(), True


def count_values(records: Iterable[Mapping[str, Any]], *, now: datetime, tz: ZoneInfo) -> dict[str, int]:
    """The numbers the templates may show, named as the placeholders.

    Computed by :func:`tracker.stats.compute_stats`, so the profile and ``stats``
    always agree: ``users`` = ``total_users``, ``reachable`` = ``reachable_users``
    (users that have not blocked the account), ``active_30d`` (seen within 30 days),
    ``new_today`` (first seen today in ``tz``).
    """
    stats = compute_stats(records, now=now, tz=tz)
    return {
        "users": int(stats["total_users"]),
        "reachable": int(stats["reachable_users"]),
        "active_30d": int(stats["active_30d"]),
        "new_today": int(stats["new_today"]),
    }


def render(template: str, values: Mapping[str, int]) -> str:
    """``template`` with its placeholders replaced by ``values`` with thousands separators.

    Raises :class:`ConfigError` for a placeholder that is not one of
    :data:`tracker.config.BIO_PLACEHOLDERS` (``load`` rejects those already).
    """
    formatted = {name: f"{values.get(name, 0):,}" for name in BIO_PLACEHOLDERS}
    try:
        return template.format(**formatted)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"bad bio template {template!r}: {exc}") from None


def about_limit(settings: Settings, *, premium: bool | None) -> int:
    """The limit of the profile text for the configured mode (user mode: Premium doubles it)."""
    if settings.is_bot:
        return BOT_ABOUT_LIMIT
    return USER_ABOUT_LIMIT_PREMIUM if premium else USER_ABOUT_LIMIT


def target_name(settings: Settings) -> str:
    """What the profile text is, in words, for messages."""
    return "bot short description" if settings.is_bot else "user bio"


@dataclass(frozen=True)
class Rendered:
    """The profile text (and bot description) ready to send, within the limits."""

    about: str
    limit: int
    description: str | None = None
    description_limit: int = BOT_DESCRIPTION_LIMIT
    warnings: tuple[str, ...] = ()

    @property
    def length(self) -> int:
        """Length of :attr:`about` in UTF-16 code units."""
        return utf16_len(self.about)


def render_for(
    settings: Settings, values: Mapping[str, int], *, premium: bool | None
) -> Rendered:
    """Render and fit the texts for the configured mode; warnings say what was cut."""
    warnings: list[str] = []
    limit = about_limit(settings, premium=premium)
    about = _render_fitted(
        "bio_template", settings.bio_template, values, limit, target_name(settings), warnings
    )
    description: str | None = None
    if settings.is_bot and settings.description_template is not None:
        description = _render_fitted(
            "description_template", settings.description_template, values,
            BOT_DESCRIPTION_LIMIT, "bot description", warnings,
        )  # fmt: skip
    return Rendered(about=about, limit=limit, description=description, warnings=tuple(warnings))


def _render_fitted(
    key: str, template: str, values: Mapping[str, int], limit: int, target: str, warnings: list[str]
) -> str:
    """``template`` rendered and cut to ``limit``; a cut adds a warning naming the config key."""
    full = render(template, values)
    text, cut = fit(full, limit)
    if cut:
        warnings.append(
            f"{key} renders to {utf16_len(full)} characters, over the {limit} allowed for "
            f"the {target}: cut to {text!r}"
        )
    return text


#: Shortest period of the re-render that time-dependent placeholders need.
MIN_TICK = 60.0

#: Stores larger than this are counted in a worker thread, so the event loop (and
#: with it every tracking handler) is not held up by a full pass over the records.
OFFLOAD_RECORDS = 20_000


def needs_full_pass(settings: Settings) -> bool:
    """True when the templates use more than ``{users}`` (which is just ``len(store)``)."""
    fields = template_fields(settings.bio_template)
    if settings.is_bot and settings.description_template is not None:
        fields |= template_fields(settings.description_template)
    return not fields <= {"users"}


def store_values(settings: Settings, store: UserStore, *, now: float) -> dict[str, int]:
    """The placeholder values for ``store`` at ``now`` (a Unix time)."""
    if not needs_full_pass(settings):
        return {"users": len(store), "reachable": 0, "active_30d": 0, "new_today": 0}
    at = datetime.fromtimestamp(now, UTC)
    return count_values(iter(store), now=at, tz=settings.tz)


def render_store(settings: Settings, store: UserStore, *, now: float, premium: bool | None) -> Rendered:
    """Render the texts from the records of ``store`` at ``now`` (a Unix time)."""
    return render_for(settings, store_values(settings, store, now=now), premium=premium)


# --------------------------------------------------------------------------- sending


def update_request(settings: Settings, rendered: Rendered) -> Any:
    """The raw function that sets ``rendered`` for the configured mode.

    Bot mode: ``bots.SetBotInfo(lang_code="", about=...)`` (the default language's
    short description, plus ``description`` when configured); user mode:
    ``account.UpdateProfile(about=...)``. Raw functions, because pyrogram 2.0.106 has
    no high-level method for either.
    """
    if settings.is_bot:
        if rendered.description is not None:
            return raw.functions.bots.SetBotInfo(
                lang_code="", about=rendered.about, description=rendered.description
            )
        return raw.functions.bots.SetBotInfo(lang_code="", about=rendered.about)
    return raw.functions.account.UpdateProfile(about=rendered.about)


async def send(client: pyrogram.Client, settings: Settings, rendered: Rendered) -> None:
    """Set ``rendered`` on the account; raises pyrogram errors, or BioError on a refusal."""
    result = await client.invoke(update_request(settings, rendered))
    # SetBotInfo answers boolTrue/boolFalse (pyrogram turns them into bool);
    # UpdateProfile answers the updated User.
    if result is False:
        raise BioError(f"Telegram refused to set the {target_name(settings)}")


def flood_seconds(exc: BaseException) -> int | None:
    """The seconds a FloodWait-like error (420) asks to wait, else None."""
    if isinstance(exc, errors.Flood):
        value = getattr(exc, "value", None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def describe_error(exc: BaseException) -> str:
    """One line for a failed profile update."""
    if isinstance(exc, errors.RPCError):
        name = exc.ID or exc.NAME or type(exc).__name__
        if isinstance(exc, errors.AboutTooLong):
            return f"{name}: Telegram says the text is too long"
        # "Telegram says: [400 BOT_INVALID] - This is not a valid bot. (caused by ...)"
        text = str(exc).splitlines()[0] if str(exc) else ""
        detail = text.split("] - ", 1)[1] if "] - " in text else text
        detail = detail.split(' (caused by "', 1)[0].strip()
        return f"{name}: {detail}" if detail else name
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "network: no answer from Telegram in time"
    if isinstance(exc, OSError):
        return f"network: {exc.strerror or exc}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- scheduling


def _ts(seconds: float | None) -> str | None:
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


class BioService:
    """Keeps the profile text showing the live counts, within Telegram's limits.

    ``clock`` returns Unix seconds and ``sleep`` waits (both injectable for tests).
    All Telegram calls happen in one background task, so tracking handlers never
    wait for them: :meth:`notify_changed` only sets a flag.
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
        self._text: str | None = meta.get("bio_text") if isinstance(meta.get("bio_text"), str) else None
        self._description: str | None = (
            meta.get("bio_description") if isinstance(meta.get("bio_description"), str) else None
        )
        self._set_at = _unix(meta.get("bio_set_at"))
        self._error: str | None = meta.get("bio_error") if isinstance(meta.get("bio_error"), str) else None
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

    async def start(self) -> None:
        """Start the background task; it makes the start-up update (never blocks the caller)."""
        if self.running:
            return
        self._loop = asyncio.get_running_loop()
        if self._settings.description_template is not None and not self._settings.is_bot:
            log.warning("description_template is used in bot mode only; ignored for a user account")
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name="bio-updater")
        if needs_full_pass(self._settings):
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

    async def refresh(self, force: bool = False) -> dict[str, Any]:
        """Update now if allowed (``force`` ignores ``bio_interval``, not FloodWait).

        Returns ``{"ok": True, "changed": bool, "text": ..., ...}`` or
        ``{"ok": False, "error": "one line", ...}`` (``flood_wait`` = seconds left).
        Inside the interval without ``force`` nothing is sent: the update is left
        pending and ``next_at`` says when it will be made.
        """
        result = await self._attempt(force=force)
        if result.get("pending") or not result.get("ok"):
            self._wake.set()
        return result

    async def stop(self) -> None:
        """Stop the background task (a pending update stays recorded in ``meta``)."""
        for task in (self._ticker, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._ticker = None

    # ----------------------------------------------------------------- internals

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
                result = await self._attempt(force=False)
                while result.get("pending") or result.get("retry"):
                    delay = self._not_before() - self._clock()
                    if delay > 0:
                        await self._sleep(delay)
                    result = await self._attempt(force=False)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the updater die silently: log, wait, go on
                log.exception("profile updater failed unexpectedly")
                await self._sleep(BACKOFF_START)
                self._wake.set()

    def _premium(self) -> bool | None:
        me = getattr(self._client, "me", None)
        return getattr(me, "is_premium", None) if me is not None else None

    def _save(self, **fields: Any) -> None:
        try:
            self._store.update_meta(**fields)
        except StoreError as exc:  # the bio must not take the bot down; the store logs too
            log.error("cannot record the profile state: %s", exc)

    def _set_pending(self, next_at: float | None) -> None:
        text = _ts(next_at)
        if text != self._next_at_stored:
            self._next_at_stored = text
            self._save(bio_next_at=text)

    async def _attempt(self, *, force: bool) -> dict[str, Any]:
        async with self._lock:
            now = self._clock()
            if self._error is not None and self._retry_at is not None and now < self._retry_at:
                wait = math.ceil(self._retry_at - now)
                if self._error.startswith("FLOOD_WAIT"):
                    # Not even with force: sending during a FloodWait only earns a longer one.
                    return {
                        "ok": False,
                        "error": f"FloodWait: Telegram asks to wait {wait} s before the next profile update",
                        "flood_wait": wait,
                        "retry": True,
                        "next_at": _ts(self._retry_at),
                    }
                if not force:
                    return {"ok": False, "error": self._error, "retry": True, "next_at": _ts(self._retry_at)}
            if needs_full_pass(self._settings) and len(self._store) > OFFLOAD_RECORDS:
                values = await asyncio.to_thread(store_values, self._settings, self._store, now=now)
            else:
                values = store_values(self._settings, self._store, now=now)
            rendered = render_for(self._settings, values, premium=self._premium())
            for warning in rendered.warnings:
                if warning not in self._warned:  # once per distinct text, not every interval
                    self._warned.add(warning)
                    log.warning("%s", warning)
            info: dict[str, Any] = {
                "text": rendered.about,
                "length": rendered.length,
                "limit": rendered.limit,
                "target": target_name(self._settings),
            }
            if rendered.warnings:
                info["warnings"] = list(rendered.warnings)
            if rendered.about == self._text and rendered.description == self._description:
                # Never the same text twice in a row. The profile already shows it, so a
                # pending update or a retry of another text (and its error) is over.
                self._retry_at = None
                self._set_pending(None)
                if self._error is not None:
                    self._error = self._logged_error = None
                    self._failures = 0
                    self._save(bio_error=None)
                return {"ok": True, "changed": False, **info}
            not_before = self._not_before()
            if not force and now < not_before:
                self._set_pending(not_before)
                return {"ok": True, "changed": False, "pending": True, "next_at": _ts(not_before), **info}
            try:
                await asyncio.wait_for(send(self._client, self._settings, rendered), self._send_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return {**info, **self._failed(exc, now)}
            self._text, self._description = rendered.about, rendered.description
            self._set_at, self._retry_at, self._failures = now, None, 0
            if self._error is not None:
                log.info("profile text updated again after: %s", self._error)
            self._error = self._logged_error = None
            self._next_at_stored = None
            fields: dict[str, Any] = {
                "bio_text": rendered.about,
                "bio_set_at": _ts(now),
                "bio_next_at": None,
                "bio_error": None,
            }
            if self._settings.is_bot and self._settings.description_template is not None:
                fields["bio_description"] = rendered.description
            self._save(**fields)
            log.info("%s set to %r", target_name(self._settings), rendered.about)
            return {"ok": True, "changed": True, "set_at": _ts(now), **info}

    def _failed(self, exc: BaseException, now: float) -> dict[str, Any]:
        """Record a failed send and plan the retry; returns the reply fields."""
        seconds = flood_seconds(exc)
        if seconds is not None:
            self._retry_at = now + seconds + FLOOD_MARGIN
            self._error = f"FLOOD_WAIT_{seconds}: Telegram asks to wait {seconds} s"
            log.warning("profile update: FloodWait of %d s, retrying after it", seconds)
            reply: dict[str, Any] = {
                "ok": False,
                "error": f"FloodWait: Telegram asks to wait {seconds} s before the next profile update",
                "flood_wait": seconds,
            }
        else:
            self._failures += 1
            backoff = min(BACKOFF_START * 2 ** (self._failures - 1), BACKOFF_MAX)
            self._retry_at = now + backoff
            self._error = describe_error(exc)
            if self._error != self._logged_error:  # logged once, not at every retry
                self._logged_error = self._error
                log.error(
                    "cannot set the %s: %s (retrying with back-off)", target_name(self._settings), self._error
                )
            else:
                log.debug("profile update failed again: %s", self._error)
            reply = {"ok": False, "error": f"cannot set the {target_name(self._settings)}: {self._error}"}
        self._next_at_stored = _ts(self._retry_at)
        self._save(bio_error=self._error, bio_next_at=self._next_at_stored)
        reply.update(retry=True, next_at=self._next_at_stored)
        return reply


# --------------------------------------------------------------------------- CLI


def _describe(result: Mapping[str, Any]) -> str:
    """A reply of :meth:`BioService.refresh` as the text ``refresh-bio`` prints."""
    text = result.get("text", "")
    size = f"({result.get('length')}/{result.get('limit')})" if "length" in result else ""
    lines = [f"warning: {w}" for w in result.get("warnings", [])]
    if result.get("changed"):
        lines.append(f"set {result.get('target', 'profile text')} to: {text} {size}".rstrip())
    elif result.get("pending"):
        lines.append(
            f"not sent: {text!r} waits for bio_interval to end (next update at {result.get('next_at')}); "
            f"use --force to send it now"
        )
    else:
        lines.append(f"unchanged: {text} {size}".rstrip())
    return "\n".join(lines)


def dry_run_text(settings: Settings, *, now: float | None = None) -> str:
    """What ``refresh-bio --dry-run`` prints: the text, its length and the limit. Contacts nobody."""
    at = time.time() if now is None else now
    try:
        with UserStore(settings.store, readonly=True) as store:
            rendered = render_store(settings, store, now=at, premium=False)
    except StoreNotFoundError:
        # A fresh install: nothing tracked yet, the counter shows zero.
        zero = count_values([], now=datetime.fromtimestamp(at, UTC), tz=settings.tz)
        rendered = render_for(settings, zero, premium=False)
    limit_text = str(rendered.limit)
    if not settings.is_bot:
        limit_text = f"{USER_ABOUT_LIMIT} ({USER_ABOUT_LIMIT_PREMIUM} with Telegram Premium)"
    lines = [f"warning: {w}" for w in rendered.warnings]
    lines.append(rendered.about)
    lines.append(f"length: {rendered.length}, limit: {limit_text} ({target_name(settings)})")
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
    return _describe(reply)


def _standalone(settings: Settings, *, force: bool, timeout: float) -> str:
    try:
        api_id, api_hash = settings.require_credentials()
    except ConfigError as exc:
        raise BioError(str(exc)) from None
    session_name = f"{settings.session}-cli"
    data_dir = settings.data_dir
    if not settings.is_bot and not (data_dir / f"{session_name}.session").exists() and not sys.stdin.isatty():
        raise BioError(
            f"no CLI session {data_dir / (session_name + '.session')}: run `cli.py refresh-bio` once in "
            f"a terminal to log in (the CLI never uses the bot's own session)"
        )
    try:
        store = UserStore(settings.store)
    except StoreLockedError as exc:
        raise BioError(
            f"{exc}; the bot seems to run but does not answer on {socket_path_for(settings.store)}"
        ) from None
    except StoreError as exc:
        raise BioError(str(exc)) from None
    # Pyrogram logs every reconnect attempt; the CLI's contract is one line on error,
    # so its chatter is muted unless someone configured that logger on purpose.
    pyrogram_log = logging.getLogger("pyrogram")
    muted = pyrogram_log.level == logging.NOTSET
    if muted:
        pyrogram_log.setLevel(logging.CRITICAL + 1)
    # The session file (and its SQLite journal) hold the login key: owner-only from birth.
    old_umask = os.umask(0o077)
    try:
        with store:
            return asyncio.run(
                _standalone_async(settings, store, api_id, api_hash, session_name, force, timeout)
            )
    finally:
        os.umask(old_umask)
        if muted:
            pyrogram_log.setLevel(logging.NOTSET)


async def _standalone_async(
    settings: Settings,
    store: UserStore,
    api_id: int,
    api_hash: str,
    session_name: str,
    force: bool,
    timeout: float,
) -> str:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    client = pyrogram.Client(
        session_name,
        api_id=api_id,
        api_hash=api_hash,
        bot_token=settings.bot_token,
        workdir=str(settings.data_dir),  # explicit: never the current directory
        no_updates=True,
    )
    # FloodWaits are reported, not slept through: the user decides when to retry.
    client.sleep_threshold = 0
    service = BioService(client, store, settings)
    session_file = settings.data_dir / f"{session_name}.session"
    interactive_login = not settings.is_bot and not session_file.exists()
    try:
        if interactive_login:
            await client.start()  # asks for the phone number and code on the terminal
        else:
            await asyncio.wait_for(client.start(), timeout)
    except TimeoutError:
        await _quiet_stop(client, session_file)
        raise BioError(f"cannot reach Telegram within {timeout:g} s (network unreachable?)") from None
    except errors.RPCError as exc:
        await _quiet_stop(client, session_file)
        raise BioError(f"Telegram refused the login: {describe_error(exc)}") from None
    except OSError as exc:
        await _quiet_stop(client, session_file)
        raise BioError(f"cannot reach Telegram: {exc.strerror or exc}") from None
    except Exception as exc:  # pyrogram raises assorted types while connecting; one line each
        await _quiet_stop(client, session_file)
        raise BioError(f"cannot connect to Telegram: {describe_error(exc)}") from None
    try:
        result = await service.refresh(force=force)
    finally:
        await _quiet_stop(client, session_file)
    if not result.get("ok"):
        raise BioError(str(result.get("error")))
    return _describe(result)


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


__all__ = [
    "BOT_ABOUT_LIMIT",
    "BOT_DESCRIPTION_LIMIT",
    "USER_ABOUT_LIMIT",
    "USER_ABOUT_LIMIT_PREMIUM",
    "BioError",
    "BioService",
    "Rendered",
    "about_limit",
    "count_values",
    "dry_run_text",
    "fit",
    "refresh_command",
    "render",
    "render_for",
    "utf16_len",
]
