"""``python -m bench bot``: what tracking adds to Pyrogram's own cost per update.

Two real, never-connected ``pyrogram.Client`` objects (the fake Telegram of
``tests.telegram_fakes``; ``tests`` is a package, importable from the repository
root that ``python -m bench`` runs in) get the same raw updates through
``handle_updates`` -> dispatcher -> handlers:

* **baseline**: a client with one no-op ``MessageHandler``;
* **tracker**: ``tracker.bot.build_app()`` - every tracking and command handler
  registered, a real ``UserStore`` (journal and snapshot threads running) opened
  on a store file pre-filled with ``--store-users`` users (default 1,000,000).

The store file is written directly in the TinyDB layout the store keeps (one
``orjson`` dump per 100k records), so a 1M-user store takes seconds to build;
opening it is the bot's own start. The updates are text messages, one
``Updates`` container each (as Telegram sends them), 80 % in private chats and
20 % in a supergroup, 1 in 20 a ``/command`` the tracker does not answer
(it counts it in the audience history; answering is the bot's job, not the
cost of tracking). Their senders are drawn at random from the store (same
profile as stored) plus ``--new-share`` new users, different ones in every
round. Everything is built and deserialised before the clock starts.

**How CPU is charged.** The figure compared is CPU time: wall time on a shared
machine mostly measures the neighbours. Each round runs all updates through
both clients, interleaved chunk by chunk (alternating who goes first) so that
load from other processes and CPU frequency drift hit both alike. Around every
chunk the bench reads the process CPU clock and the per-thread CPU clocks of the
store's background threads (threads named ``tracker-store-*``, via
``time.pthread_getcpuclockid`` + ``time.clock_gettime``). The store threads run
whenever they like - also while the *baseline* chunk runs - so:

* baseline chunk = process CPU of the chunk minus the store threads' CPU in it;
* tracker chunk = process CPU of the chunk plus the store threads' CPU during
  the paired baseline chunk;
* a round's tracker total also gets the store threads' CPU between chunks and
  during a pause after the round (one journal interval: the work the round left
  pending).

Every CPU cycle of the store's threads is thus charged to the tracker (the
summary also shows their share, thread by thread; a snapshot, when one falls
in the measured rounds, shows there). The overhead is the median of the
paired chunk ratios (bursts of load from other processes hit single
chunks); the µs per update are median rounds. The collector is frozen
after set-up (``gc.freeze()``), since the prepared updates and the loaded
records are long-lived either way.

Figures: README.md, "Benchmarks".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import random
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pyrogram
from pyrogram.handlers import MessageHandler

from tests.telegram_fakes import FakeTelegram
from tracker.bot import build_app
from tracker.config import load
from tracker.models import RECORD_FIELDS
from tracker.store import SCHEMA

FIRST_ID = 100_000_000
LANGUAGES = ("en", "de", "ru", "es", "pt-br", None)
STORE_THREADS = "tracker-store-"
STORED_AT = "2026-01-01T00:00:00Z"
CHUNK = 100_000


class Person(NamedTuple):
    """User number ``index``: the same profile in the store file and in the updates."""

    id: int
    first_name: str
    last_name: str | None
    username: str | None
    lang_code: str | None
    premium: bool | None


def person(index: int) -> Person:
    """The deterministic profile of user ``index`` (stored users and new ones alike)."""
    return Person(
        FIRST_ID + index,
        f"User {index}",
        "Last" if index % 3 == 0 else None,
        f"user{index}" if index % 2 else None,
        LANGUAGES[index % len(LANGUAGES)],
        None if index % 4 == 0 else index % 5 == 0,
    )


def write_store(path: Path, users: int) -> None:
    """A store file of ``users`` users (indexes ``0 .. users-1``) in the TinyDB layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.write(b'{"users":{')
        for start in range(0, users, CHUNK):
            records = {}
            for index in range(start, min(users, start + CHUNK)):
                p = person(index)
                values = (p.id, p.first_name, p.last_name, p.username, p.lang_code, False, p.premium,
                          STORED_AT, STORED_AT, index % 50, None, False, None)  # fmt: skip
                records[str(p.id)] = dict(zip(RECORD_FIELDS, values, strict=True))
            body = orjson.dumps(records)[1:-1]
            out.write(body if start == 0 else b"," + body)
        out.write(b'},"meta":{"1":' + orjson.dumps({"schema": SCHEMA}) + b"}}")


class World:
    """The fake Telegram and the prepared rounds of raw ``Updates`` containers."""

    def __init__(self, store_users: int, updates: int, new_share: float, rounds: int, seed: int) -> None:
        self.tg = FakeTelegram(bot=True)
        self.supergroup = self.tg.channel()
        self.rng = random.Random(seed)
        self._raw_users: dict[int, Any] = {}
        new = round(updates * new_share)
        # One shared sequence of stored senders; each round gets its own new users.
        stored = [self.rng.randrange(store_users) for _ in range(updates - new)]
        self.rounds: list[list[Any]] = []
        for round_no in range(rounds):
            first_new = store_users + round_no * new
            senders = stored + list(range(first_new, first_new + new))
            random.Random(seed + round_no).shuffle(senders)
            self.rounds.append([self._update(index) for index in senders])

    def _update(self, index: int) -> Any:
        tg, rng = self.tg, self.rng
        user = self._raw_users.get(index)
        if user is None:
            p = person(index)
            user = self._raw_users[index] = tg.user(
                p.id, p.first_name, last_name=p.last_name, username=p.username,
                lang_code=p.lang_code, premium=p.premium,
            )  # fmt: skip
        in_group = rng.random() < 0.2
        roll = rng.random()
        text = "/help" if roll < 0.025 else "/settings now" if roll < 0.05 else f"message {roll}"
        update = tg.message(user, text, chat=self.supergroup if in_group else None)
        # Telegram sends only the peers an update mentions.
        all_users, all_chats = tg.users, tg.chats
        tg.users = {user.id: user}
        tg.chats = {self.supergroup.id: self.supergroup} if in_group else {}
        try:
            return tg.updates(update)
        finally:
            tg.users, tg.chats = all_users, all_chats


def store_threads_cpu() -> dict[str, float]:
    """CPU seconds used so far by each of the store's background threads (``tracker-store-*``)."""
    used: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.name.startswith(STORE_THREADS) and thread.ident is not None:
            with contextlib.suppress(OSError):  # the thread ended between enumerate() and here
                clock = time.pthread_getcpuclockid(thread.ident)
                used[thread.name] = used.get(thread.name, 0.0) + time.clock_gettime(clock)
    return used


def store_thread_cpu() -> float:
    """CPU seconds used so far by the store's background threads, together."""
    return sum(store_threads_cpu().values())


class ChunkCost(NamedTuple):
    """CPU of one chunk: the whole process's, and the store threads' share of it."""

    process: float
    store: float
    wall: float


async def drive(app: pyrogram.Client, tg: FakeTelegram, batches: list[Any]) -> ChunkCost:
    """Push every batch through ``handle_updates`` and the handlers; what it cost."""
    cpu, store, wall = time.process_time(), store_thread_cpu(), time.perf_counter()
    for batch in batches:
        await app.handle_updates(batch)
    await tg.settle(app, timeout=600)
    return ChunkCost(time.process_time() - cpu, store_thread_cpu() - store, time.perf_counter() - wall)


async def noop(client: Any, message: Any) -> None:
    """The baseline handler: does nothing."""


class RoundFigures(NamedTuple):
    """µs of CPU per update in one round, and the paired chunk ratios (tracker / baseline)."""

    baseline: float
    tracker: float
    store: float
    ratios: list[float]
    wall: tuple[float, float]


async def run_round(
    apps: dict[str, pyrogram.Client], tg: FakeTelegram, parts: list[list[Any]]
) -> RoundFigures:
    """One round: every chunk through both clients, store-thread CPU charged to the tracker."""
    total = dict.fromkeys(apps, 0.0)
    wall = dict.fromkeys(apps, 0.0)
    ratios = []
    store_at_start, in_chunks = store_thread_cpu(), 0.0
    for index, part in enumerate(parts):
        names = ["baseline", "tracker"] if index % 2 == 0 else ["tracker", "baseline"]
        costs = {name: await drive(apps[name], tg, part) for name in names}
        base, tracked = costs["baseline"], costs["tracker"]
        baseline_cpu = base.process - base.store
        tracker_cpu = tracked.process + base.store
        in_chunks += base.store + tracked.store
        total["baseline"] += baseline_cpu
        total["tracker"] += tracker_cpu
        for name in apps:
            wall[name] += costs[name].wall
        if baseline_cpu > 0:
            ratios.append(tracker_cpu / baseline_cpu)
    # The work the round left pending runs in the next journal round: wait for it.
    await asyncio.sleep(0.5)
    store_total = store_thread_cpu() - store_at_start
    total["tracker"] += store_total - in_chunks  # between chunks and after the round
    updates = sum(map(len, parts))
    return RoundFigures(
        total["baseline"] / updates * 1e6,
        total["tracker"] / updates * 1e6,
        store_total / updates * 1e6,
        ratios,
        (wall["baseline"], wall["tracker"]),
    )


@contextlib.asynccontextmanager
async def clients(
    tmp: Path, tg: FakeTelegram, store_users: int
) -> AsyncIterator[dict[str, pyrogram.Client]]:
    """The baseline client and the tracker client (on a pre-filled store), attached to ``tg``."""
    cfg = tmp / "config.ini"
    cfg.write_text(
        "[pyrogram]\napi_id = 1\napi_hash = 0123456789abcdef0123456789abcdef\nbot_token = 1:BENCH\n"
        "[tracker]\nstore = data/users.json\n",
        encoding="utf-8",
    )
    settings = load(cfg)
    write_store(settings.store, store_users)
    baseline = pyrogram.Client("bench-noop", api_id=1, api_hash="x" * 32, bot_token="1:B", in_memory=True)
    baseline.add_handler(MessageHandler(noop), group=-1)
    tracked = build_app(settings, in_memory=True)
    try:
        await tg.attach(baseline)
        await tg.attach(tracked)
        yield {"baseline": baseline, "tracker": tracked}
    finally:
        await tg.detach(baseline)
        await tg.detach(tracked)
        tracked.tracking.close_store()


def chunked(batches: list[Any], chunks: int) -> list[list[Any]]:
    """``batches`` cut into ``chunks`` consecutive parts."""
    size = -(-len(batches) // chunks)
    return [batches[i : i + size] for i in range(0, len(batches), size)]


class Result(NamedTuple):
    """The median figures of the timed rounds (µs of CPU per update) and the overhead."""

    baseline: float
    tracker: float
    store: float
    overhead: float
    round_overheads: list[float]
    chunks: int
    threads: dict[str, float]


async def bench(args: argparse.Namespace, log: Callable[[str], None]) -> Result:
    """Run the comparison; returns the median figures and the overhead."""
    started = time.perf_counter()
    world = World(args.store_users, args.updates, args.new_share, args.rounds + 1, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-bot-") as folder:
        async with clients(Path(folder), world.tg, args.store_users) as apps:
            store = apps["tracker"].tracking.store
            log(f"  set-up (updates, store file, opening the store): {time.perf_counter() - started:.1f} s")
            gc.collect()
            gc.freeze()  # the prepared updates and the loaded records are long-lived
            per_round: list[RoundFigures] = []
            threads_before = store_threads_cpu()
            for round_no, batches in enumerate(world.rounds):
                figures = await run_round(apps, world.tg, chunked(batches, args.chunks))
                label = "warm-up" if round_no == 0 else f"round {round_no}"
                log(
                    f"  {label:8} baseline {figures.baseline:6.1f}  tracker {figures.tracker:6.1f} "
                    f"µs/update CPU (store threads {figures.store:4.1f}; "
                    f"{figures.tracker / figures.baseline - 1:+.1%}; "
                    f"wall {figures.wall[0]:.1f} s / {figures.wall[1]:.1f} s)"
                )
                if round_no:
                    per_round.append(figures)
                if round_no == 0:
                    threads_before = store_threads_cpu()  # the timed rounds' share, thread by thread
            threads = {
                name.removeprefix(STORE_THREADS): (used - threads_before.get(name, 0.0))
                / (args.updates * args.rounds) * 1e6
                for name, used in store_threads_cpu().items()
            }
            expected = args.store_users + (args.rounds + 1) * round(args.updates * args.new_share)
            assert len(store) == expected, (len(store), expected)
    ratios = [ratio for figures in per_round for ratio in figures.ratios]
    return Result(
        statistics.median(r.baseline for r in per_round),
        statistics.median(r.tracker for r in per_round),
        statistics.median(r.store for r in per_round),
        statistics.median(ratios) - 1,
        [r.tracker / r.baseline - 1 for r in per_round],
        len(ratios),
        threads,
    )


def main(argv: list[str]) -> None:
    """``python -m bench bot [--store-users N] [--updates N] [--rounds N] [--chunks N]``."""
    parser = argparse.ArgumentParser(prog="python -m bench bot", description=__doc__.splitlines()[0])
    parser.add_argument("--store-users", type=int, default=1_000_000, help="users stored before the run")
    parser.add_argument("--updates", type=int, default=50_000, help="updates per round")
    parser.add_argument("--new-share", type=float, default=0.05, help="share of updates from new users")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (after a warm-up round)")
    parser.add_argument("--chunks", type=int, default=50, help="interleaved chunks per round")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.store_users < 1 or args.updates < args.chunks or not 0 <= args.new_share <= 1:
        parser.error("need --store-users >= 1, --updates >= --chunks and 0 <= --new-share <= 1")

    target = "+10%" if pyrogram.__version__.startswith("2.0.") else "+5%"  # issue 11: 2.0.106 / kurigram
    print(
        f"pyrogram {pyrogram.__version__}: a {args.store_users:,}-user store; {args.updates:,} updates "
        f"a round ({args.new_share:.0%} from new users), {args.rounds} rounds of {args.chunks} "
        f"interleaved chunks; CPU time, the store threads' charged to the tracker"
    )
    result = asyncio.run(bench(args, print))
    print(f"baseline (no-op handler): {result.baseline:7.1f} µs/update (median round)")
    print(
        f"tracker:                  {result.tracker:7.1f} µs/update (median round; "
        f"{result.store:.1f} of it in the store's threads: "
        + ", ".join(f"{name} {used:.1f}" for name, used in sorted(result.threads.items()))
        + ")"
    )
    rounds = " / ".join(f"{overhead:+.1%}" for overhead in result.round_overheads)
    print(
        f"overhead: {result.overhead:+.1%} over Pyrogram's own cost "
        f"(median of {result.chunks} paired chunks; rounds {rounds}; target: <= {target})"
    )
