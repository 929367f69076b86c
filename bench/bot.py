"""``python -m bench bot``: what tracking adds to Pyrogram's own cost per update.

Two real, never-connected ``pyrogram.Client`` objects (the fake Telegram of
``tests.telegram_fakes``; ``tests`` is a package, importable from the repository
root that ``python -m bench`` runs in) get the same raw updates through
``handle_updates`` -> dispatcher -> handlers:

* **baseline**: a client with one no-op ``MessageHandler``;
* **tracker**: ``tracker.bot.build_app()`` - every tracking and command handler
  registered, a real ``UserStore`` (journal threads running) in a temp folder.

The updates are new text messages from N distinct users (default 5,000), 80 % in
private chats and 20 % in a supergroup, one ``Updates`` container each (as
Telegram sends them), built and deserialised before the clock starts. Each round
runs all updates through both clients, interleaved chunk by chunk; after a
warm-up round the median round is reported: process CPU µs per update (the
store's journal thread included) and the tracker's overhead over the baseline.
One dispatcher worker (the handlers are CPU-bound coroutines; more workers
only interleave them).

Figures: README.md, "Benchmarks".
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyrogram
from pyrogram.handlers import MessageHandler

from tests.telegram_fakes import FakeTelegram
from tracker.bot import build_app
from tracker.config import load

FIRST_ID = 100_000_000


def make_world(users: int, updates: int, seed: int) -> tuple[FakeTelegram, list[Any]]:
    """The fake Telegram and ``updates`` raw Updates containers (already read back)."""
    tg = FakeTelegram(bot=True)
    supergroup = tg.channel()
    rng = random.Random(seed)
    languages = ["en", "de", "ru", None]
    people = [
        tg.user(FIRST_ID + i, f"User {i}", username=f"user{i}", lang_code=rng.choice(languages))
        for i in range(users)
    ]
    # Every user appears at least once; the rest are random repeat visitors.
    order = list(range(users)) + [rng.randrange(users) for _ in range(updates - users)]
    rng.shuffle(order)
    batches = []
    all_users, all_chats = tg.users, tg.chats
    for index in order:
        person = people[index]
        in_group = rng.random() < 0.2
        update = tg.message(person, f"message {rng.random()}", chat=supergroup if in_group else None)
        # Telegram sends only the peers an update mentions.
        tg.users = {person.id: person}
        tg.chats = {supergroup.id: supergroup} if in_group else {}
        batches.append(tg.updates(update))
    tg.users, tg.chats = all_users, all_chats
    return tg, batches


async def drive(app: pyrogram.Client, tg: FakeTelegram, batches: list[Any]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) to push every batch through handle_updates and the handlers.

    CPU time of the whole process (the store's journal thread included) is the
    figure compared: wall time on a shared machine mostly measures the neighbours.
    """
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in batches:
        await app.handle_updates(batch)
    await tg.settle(app, timeout=600)
    return time.process_time() - cpu, time.perf_counter() - wall


async def noop(client: Any, message: Any) -> None:
    """The baseline handler: does nothing."""


async def bench(
    users: int, updates: int, rounds: int, chunks: int, seed: int, log: Callable[[str], None]
) -> dict[str, float]:
    """Run the comparison; returns µs/update of each variant (median round) and the overhead."""
    tg, batches = make_world(users, updates, seed)
    size = -(-len(batches) // chunks)
    parts = [batches[i : i + size] for i in range(0, len(batches), size)]
    with tempfile.TemporaryDirectory(prefix="bench-bot-") as tmp:
        cfg = Path(tmp) / "config.ini"
        cfg.write_text(
            "[pyrogram]\napi_id = 1\napi_hash = 0123456789abcdef0123456789abcdef\nbot_token = 1:BENCH\n"
            "[tracker]\nstore = data/users.json\n",
            encoding="utf-8",
        )
        settings = load(cfg)

        baseline = pyrogram.Client("bench-noop", api_id=1, api_hash="x" * 32, bot_token="1:B", in_memory=True)
        baseline.add_handler(MessageHandler(noop), group=-1)
        tracking = build_app(settings, in_memory=True).tracking
        tracked = tracking.client
        await tg.attach(baseline)
        await tg.attach(tracked)
        apps = {"baseline": baseline, "tracker": tracked}
        # The prepared updates are long-lived: keep the collector from rescanning them.
        gc.collect()
        gc.freeze()
        per_round: list[dict[str, float]] = []
        ratios: list[float] = []
        try:
            for round_no in range(rounds + 1):
                cpu = dict.fromkeys(apps, 0.0)
                wall = dict.fromkeys(apps, 0.0)
                # Interleave the variants chunk by chunk (alternating who goes first) so
                # that load from other processes and CPU frequency drift hit both alike.
                for index, part in enumerate(parts):
                    names = ["baseline", "tracker"] if index % 2 == 0 else ["tracker", "baseline"]
                    chunk: dict[str, float] = {}
                    for name in names:
                        c, w = await drive(apps[name], tg, part)
                        chunk[name] = c
                        cpu[name] += c
                        wall[name] += w
                    if round_no and chunk["baseline"] > 0:
                        ratios.append(chunk["tracker"] / chunk["baseline"])
                label = "warm-up" if round_no == 0 else f"round {round_no}"
                figures = {name: cpu[name] / len(batches) * 1e6 for name in apps}
                log(
                    f"  {label:8} baseline {figures['baseline']:6.1f}  tracker {figures['tracker']:6.1f} "
                    f"µs/update CPU  ({figures['tracker'] / figures['baseline'] - 1:+.1%}; "
                    f"wall {wall['baseline']:.1f} s / {wall['tracker']:.1f} s)"
                )
                if round_no:
                    per_round.append(figures)
            assert len(tracking.store) == users, (len(tracking.store), users)
        finally:
            await tg.detach(baseline)
            await tg.detach(tracked)
            tracking.store.close()
    # Bursts of load from other processes hit single chunks: the median of the
    # paired chunk ratios is the robust figure; the per-variant µs are medians too.
    return {
        "baseline": statistics.median(r["baseline"] for r in per_round),
        "tracker": statistics.median(r["tracker"] for r in per_round),
        "overhead": statistics.median(ratios) - 1,
        "chunks": len(ratios),
    }


def main(argv: list[str]) -> None:
    """``python -m bench bot [--users N] [--updates N] [--rounds N]``."""
    parser = argparse.ArgumentParser(prog="python -m bench bot", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--updates", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (after a warm-up round)")
    parser.add_argument("--chunks", type=int, default=50, help="interleaved chunks per round")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.updates < args.users:
        parser.error("--updates must be at least --users")

    print(
        f"pyrogram {pyrogram.__version__}: {args.updates:,} updates from {args.users:,} users, "
        f"{args.rounds} rounds of {args.chunks} interleaved chunks, process CPU time"
    )
    result = asyncio.run(bench(args.users, args.updates, args.rounds, args.chunks, args.seed, print))
    print(f"baseline (no-op handler): {result['baseline']:7.1f} µs/update (median round)")
    print(f"tracker:                  {result['tracker']:7.1f} µs/update (median round)")
    print(
        f"overhead: {result['overhead']:+.1%} over Pyrogram's own cost "
        f"(median of {result['chunks']:.0f} paired chunks; target: <= +10%)"
    )
