"""``python -m bench bot``: what tracking adds to Pyrogram's own cost per update.

Real, never-connected ``pyrogram.Client`` objects (the fake Telegram of
``tests.telegram_fakes``; ``tests`` is a package, importable from the repository
root that ``python -m bench`` runs in) get the same raw updates
(``bench/bot_world.py``) through ``handle_updates`` -> dispatcher -> handlers:

* **baseline**: two clients with one no-op ``MessageHandler`` each, their
  mean per chunk: two identical clients differ by a percent or two (where each
  one's objects sit in memory), and the gap between them, printed, is the
  method's own noise floor;
* **tracker**: ``tracker.bot.build_app()`` - every tracking and command handler
  registered, a real ``UserStore`` (background threads running) opened on a
  store file pre-filled with ``--store-users`` users (default 1,000,000). The
  targets are about this figure.
* **handler side** (left out with ``--no-handler-side``): the same
  ``build_app()`` on an empty store of its own whose threads are stopped and
  whose ``seen()`` is replaced - in this benchmark only - by a stand-in that
  appends the call to a list (emptied between chunks) and returns False: what
  the handlers cost outside ``seen()``, the floor the tracker's figure tends to
  as ``seen()`` gets cheaper. Never the main figure.

**How CPU is charged.** The figures are CPU time: wall time on a shared machine
mostly measures the neighbours. Pyrogram and the handlers run on the main thread
(the event loop), so each client's chunk of updates is timed with the main
thread's CPU clock (``time.thread_time``). What every *other* thread does - the
store's background threads, whenever they run: during the tracker's chunks, the
baseline's, between chunks and in a pause after the round (one journal
interval: the work the round left pending) - is the process CPU clock minus the
main thread's over the whole round, and all of it is charged to the tracker;
so is the main thread's CPU outside every chunk (work a store might schedule on
the event loop, between chunks or in the pause; with none, only the bench's own
bookkeeping is there, 0.2-0.4 µs an update: an error against the tracker):

    tracker = baseline x median(tracker chunk / baseline chunk)
              + (other threads + main thread between chunks) / updates

**Noise.** The clients take turns chunk by chunk, in an order that rotates
(each at each place, and before each other, equally often), so load from other processes
and CPU frequency drift hit them alike; the median of the paired chunk ratios
drops the chunks a burst of load hit (the other threads' share is a sum, so a
bursty journal is charged whole). Each round is printed; the overhead is the
median of the timed rounds, with their spread. The collector is frozen after
set-up (``gc.freeze()``), since the prepared updates and the loaded records are
long-lived either way.

Figures: README.md, "Benchmarks".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import pyrogram
from pyrogram.handlers import MessageHandler

from bench.bot_world import World, write_store
from tests.telegram_fakes import FakeTelegram
from tracker.bot import build_app
from tracker.config import load
from tracker.models import Profile

STORE_THREADS = "tracker-store-"
#: After a round: one journal interval and more, so the work it left pending is done (and charged).
SETTLE_PAUSE = 0.5
#: The clients: two no-op ones (the baseline is their mean), the tracker, the handler-side one.
NOOP_A, NOOP_B, TRACKER, HANDLER_SIDE = "no-op A", "no-op B", "tracker", "handler side"


def other_threads_cpu() -> dict[str, float]:
    """CPU seconds used so far by each live thread but the main one, by name (``tracker-store-`` cut)."""
    used: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and thread.ident is not None:
            with contextlib.suppress(OSError):  # the thread ended between enumerate() and here
                clock = time.pthread_getcpuclockid(thread.ident)
                name = thread.name.removeprefix(STORE_THREADS)
                used[name] = used.get(name, 0.0) + time.clock_gettime(clock)
    return used


def stand_in_seen(calls: list[tuple[Any, ...]]) -> Callable[..., bool]:
    """A ``UserStore.seen`` that only remembers the call (the handler-side figure; never the main one)."""
    append = calls.append

    def seen(
        profile: Profile,
        at: datetime,
        *,
        message: bool = True,
        source: str | None = None,
        command: str | None = None,
        button: bool = False,
    ) -> bool:
        append((profile, at, message, source, command, button))
        return False

    return seen


async def drive(app: pyrogram.Client, tg: FakeTelegram, batches: list[Any]) -> tuple[float, float]:
    """Push every batch through ``handle_updates`` and the handlers: (main-thread CPU, wall) seconds."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for batch in batches:
        await app.handle_updates(batch)
    await tg.settle(app, timeout=600)
    return time.thread_time() - cpu, time.perf_counter() - wall


async def noop(client: Any, message: Any) -> None:
    """The baseline handler: does nothing."""


def noop_client(name: str) -> pyrogram.Client:
    """A client with one no-op handler: Pyrogram's own cost."""
    client = pyrogram.Client(name, api_id=1, api_hash="x" * 32, bot_token="1:B", in_memory=True)
    client.add_handler(MessageHandler(noop), group=-1)
    return client


class RoundFigures(NamedTuple):
    """One round in µs of CPU per update: medians over its chunks, and every other thread's share."""

    #: The no-op clients' main thread (their mean, median chunk).
    baseline: float
    #: The tracker's main thread: baseline x the median paired chunk ratio.
    tracker_main: float
    #: Every other thread's CPU in the round (the store's threads), charged to the tracker.
    other_threads: float
    #: Main-thread CPU outside every chunk (event-loop work between chunks and in the
    #: pause, e.g. a store's loop callbacks; else the bench's own bookkeeping,
    #: 0.2-0.4 µs), charged to the tracker too.
    between_chunks: float
    #: The handler-side client (seen() a stand-in, no threads), same method; None when left out.
    handler_side: float | None
    #: How much no-op client A cost more than B (median chunk ratio - 1): the noise floor.
    noop_gap: float
    #: Wall seconds per client, summed over the chunks.
    wall: dict[str, float]

    @property
    def tracker(self) -> float:
        """The tracker's whole cost per update."""
        return self.tracker_main + self.other_threads + self.between_chunks

    @property
    def overhead(self) -> float:
        """What tracking adds, as a share of Pyrogram's own cost."""
        return self.tracker / self.baseline - 1

    @property
    def handler_overhead(self) -> float | None:
        """The same for the handler-side client."""
        return None if self.handler_side is None else self.handler_side / self.baseline - 1


def turns(names: list[str]) -> list[list[str]]:
    """Orders of the clients: over all of them each is at each place, and before each other, equally often."""
    rotations = [names[k:] + names[:k] for k in range(len(names))]
    return rotations + [order[::-1] for order in rotations]


def median_ratio(costs: list[float], baselines: list[float]) -> float:
    """The median of the paired chunk ratios."""
    return statistics.median(cost / base for cost, base in zip(costs, baselines, strict=True))


async def run_round(
    apps: dict[str, pyrogram.Client], tg: FakeTelegram, parts: list[list[Any]], calls: list[tuple[Any, ...]]
) -> RoundFigures:
    """One round: every chunk through every client in rotating order; see the module docstring."""
    orders = turns(list(apps))
    per_update: dict[str, list[float]] = {name: [] for name in apps}
    wall = dict.fromkeys(apps, 0.0)
    process_at_start, main_at_start = time.process_time(), time.thread_time()
    in_chunks = 0.0
    for index, part in enumerate(parts):
        for name in orders[index % len(orders)]:
            cpu, seconds = await drive(apps[name], tg, part)
            per_update[name].append(cpu / len(part))
            wall[name] += seconds
            in_chunks += cpu
        calls.clear()  # the stand-in's list, emptied outside the timed chunks
    await asyncio.sleep(SETTLE_PAUSE)
    main = time.thread_time() - main_at_start
    other = (time.process_time() - process_at_start) - main
    updates = sum(map(len, parts))
    noop = [(a + b) / 2 for a, b in zip(per_update[NOOP_A], per_update[NOOP_B], strict=True)]
    baseline = statistics.median(noop)

    def main_thread(name: str) -> float:
        return baseline * median_ratio(per_update[name], noop) * 1e6

    return RoundFigures(
        baseline * 1e6,
        main_thread(TRACKER),
        other / updates * 1e6,
        (main - in_chunks) / updates * 1e6,
        main_thread(HANDLER_SIDE) if HANDLER_SIDE in apps else None,
        median_ratio(per_update[NOOP_A], per_update[NOOP_B]) - 1,
        wall,
    )


@contextlib.asynccontextmanager
async def clients(
    tmp: Path, tg: FakeTelegram, store_users: int, calls: list[tuple[Any, ...]] | None
) -> AsyncIterator[dict[str, pyrogram.Client]]:
    """The two no-op clients, the tracker (pre-filled store) and the handler-side client (given ``calls``)."""
    settings = {}
    for name, store in ((TRACKER, "users"), (HANDLER_SIDE, "handler-side")):
        cfg = tmp / f"{store}.ini"
        cfg.write_text(
            "[pyrogram]\napi_id = 1\napi_hash = 0123456789abcdef0123456789abcdef\nbot_token = 1:BENCH\n"
            f"[tracker]\nstore = data/{store}.json\nsession = {store}\n",
            encoding="utf-8",
        )
        settings[name] = load(cfg)
    write_store(settings[TRACKER].store, store_users)
    apps = {
        NOOP_A: noop_client("bench-noop-a"),
        NOOP_B: noop_client("bench-noop-b"),
        TRACKER: build_app(settings[TRACKER], in_memory=True),
    }
    attached: list[pyrogram.Client] = []
    try:
        if calls is not None:
            handler_side = apps[HANDLER_SIDE] = build_app(settings[HANDLER_SIDE], in_memory=True)
            handler_side.tracking.close_store()  # its threads end: every other thread's CPU is the tracker's
            handler_side.tracking.store.seen = stand_in_seen(calls)
        for app in apps.values():
            await tg.attach(app)
            attached.append(app)
        yield apps
    finally:
        for app in attached:
            await tg.detach(app)
        apps[TRACKER].tracking.close_store()


def chunked(batches: list[Any], chunks: int) -> list[list[Any]]:
    """``batches`` cut into ``chunks`` consecutive parts."""
    size = -(-len(batches) // chunks)
    return [batches[i : i + size] for i in range(0, len(batches), size)]


class Result(NamedTuple):
    """The timed rounds and the other threads' CPU over them, thread by thread (µs per update)."""

    rounds: list[RoundFigures]
    threads: dict[str, float]

    def median(self, figure: Callable[[RoundFigures], float | None]) -> float:
        """The median round's ``figure``."""
        values = [value for value in map(figure, self.rounds) if value is not None]
        return statistics.median(values)


def describe(label: str, figures: RoundFigures) -> str:
    """One round as one line."""
    line = (
        f"  {label:8} baseline {figures.baseline:6.1f}  tracker {figures.tracker:6.1f} µs/update CPU "
        f"({figures.tracker_main:.1f} + other threads {figures.other_threads:.1f} + between chunks "
        f"{figures.between_chunks:.2f}): {figures.overhead:+6.1%}"
    )
    if figures.handler_side is not None and figures.handler_overhead is not None:
        line += f"; handler side {figures.handler_side:6.1f}: {figures.handler_overhead:+6.1%}"
    line += f"; no-op A/B {figures.noop_gap:+.1%}"
    walls = " / ".join(f"{seconds:.1f}" for seconds in figures.wall.values())
    return f"{line}; wall {walls} s"


async def bench(args: argparse.Namespace, log: Callable[[str], None]) -> Result:
    """Run the comparison: a warm-up round, then ``args.rounds`` timed ones, each logged."""
    started = time.perf_counter()
    world = World(args.store_users, args.updates, args.new_share, args.rounds + 1, args.seed)
    calls: list[tuple[Any, ...]] = []
    with tempfile.TemporaryDirectory(prefix="bench-bot-") as folder:
        stand_in_calls = calls if args.handler_side else None
        async with clients(Path(folder), world.tg, args.store_users, stand_in_calls) as apps:
            store = apps[TRACKER].tracking.store
            log(f"  set-up (updates, store file, opening the store): {time.perf_counter() - started:.1f} s")
            gc.collect()
            gc.freeze()  # the prepared updates and the loaded records are long-lived
            rounds: list[RoundFigures] = []
            threads_before: dict[str, float] = {}
            for round_no, batches in enumerate(world.rounds):
                if round_no == 1:
                    threads_before = other_threads_cpu()  # the timed rounds' share, thread by thread
                figures = await run_round(apps, world.tg, chunked(batches, args.chunks), calls)
                log(describe("warm-up" if round_no == 0 else f"round {round_no}", figures))
                if round_no:
                    rounds.append(figures)
            timed_updates = args.updates * args.rounds
            threads = {
                name: (used - threads_before.get(name, 0.0)) / timed_updates * 1e6
                for name, used in other_threads_cpu().items()
            }
            expected = args.store_users + (args.rounds + 1) * round(args.updates * args.new_share)
            assert len(store) == expected, (len(store), expected)
    return Result(rounds, threads)


def spread(values: list[float]) -> str:
    """Each round's overhead, and how far apart the extremes are."""
    rounds = " / ".join(f"{value:+.1%}" for value in values)
    return f"rounds {rounds}; spread {(max(values) - min(values)) * 100:.1f} points"


def main(argv: list[str]) -> None:
    """``python -m bench bot [--store-users N] [--updates N] [--rounds N] [--chunks N] ...``."""
    parser = argparse.ArgumentParser(prog="python -m bench bot", description=__doc__.splitlines()[0])
    parser.add_argument("--store-users", type=int, default=1_000_000, help="users stored before the run")
    parser.add_argument("--updates", type=int, default=50_000, help="updates per round")
    parser.add_argument("--new-share", type=float, default=0.05, help="share of updates from new users")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (after a warm-up round)")
    parser.add_argument("--chunks", type=int, default=64, help="chunks per round, the clients taking turns")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-handler-side", dest="handler_side", action="store_false",
        help="leave out the handler-side client (seen() replaced by a stand-in)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.store_users < 1 or args.updates < args.chunks or not 0 <= args.new_share <= 1 or args.rounds < 1:
        parser.error("need --store-users, --rounds >= 1, --updates >= --chunks and 0 <= --new-share <= 1")

    target = "+10%" if pyrogram.__version__.startswith("2.0.") else "+5%"  # issue 11: 2.0.106 / kurigram
    print(
        f"pyrogram {pyrogram.__version__}: a {args.store_users:,}-user store; {args.updates:,} updates "
        f"a round ({args.new_share:.0%} from new users), {args.rounds} timed rounds of {args.chunks} chunks, "
        "the clients taking turns; main-thread CPU per chunk, every other thread's CPU charged to the tracker"
    )
    result = asyncio.run(bench(args, print))
    print(f"baseline (no-op handler): {result.median(lambda r: r.baseline):7.1f} µs/update (median round; "
          "mean of two no-op clients)")
    print(
        f"tracker:                  {result.median(lambda r: r.tracker):7.1f} µs/update (median round; "
        f"{result.median(lambda r: r.other_threads):.1f} of it in other threads: "
        + ", ".join(f"{name} {used:.1f}" for name, used in sorted(result.threads.items()))
        + ")"
    )
    overheads = [figures.overhead for figures in result.rounds]
    print(
        f"overhead: {statistics.median(overheads):+.1%} over Pyrogram's own cost "
        f"(median of {len(overheads)} rounds; {spread(overheads)}; target: <= {target})"
    )
    handler_side = [o for o in (figures.handler_overhead for figures in result.rounds) if o is not None]
    if handler_side:
        print(
            f"handler side only (seen() a stand-in that appends to a list; NOT the tracker's figure): "
            f"{result.median(lambda r: r.handler_side):.1f} µs/update, "
            f"{statistics.median(handler_side):+.1%} ({spread(handler_side)})"
        )
    gaps = [figures.noop_gap for figures in result.rounds]
    print(f"noise floor: the two no-op clients differ by {statistics.median(gaps):+.1%} ({spread(gaps)})")
