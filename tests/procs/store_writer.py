"""Test helper: a process that writes to a UserStore continuously and says what it recorded.

Started by the crash, signal and concurrency tests as a real subprocess. Each
batch it sees every "hot" user again (ids 1..hot: messages +1, new last_name
and username), adds ``new`` users (ids above NEW_BASE, source ``src<id>``),
forgets the previous batch's new users whose id is a multiple of 10 (see
--forget-every), blocks those that are a multiple of 7, and stores the round
in meta. After each batch
it prints one JSON line (flushed) with what is now recorded and
``time.monotonic()``; the tests compare that with what survives a kill.

SIGTERM and SIGINT end the loop after the current batch and close the store,
as the bot does. Exit status 0 after a clean close, 3 when close() failed (its
error is printed as a "close_failed" event).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tracker.models import make_profile
from tracker.store import StoreError, Tuning, UserStore

NEW_BASE = 1_000_000
START = datetime(2024, 1, 1, tzinfo=UTC)


def say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def tuning_from(args: argparse.Namespace) -> Tuning:
    """The store's tuning with the knobs given on the command line (lowered so snapshots happen often)."""
    given = {
        "snapshot_min_journal_bytes": args.snapshot_min_bytes,
        "snapshot_chunk": args.snapshot_chunk,
        "snapshot_max_age": args.snapshot_max_age,
        "snapshot_max_duty": args.snapshot_max_duty,
        "close_retry_seconds": args.close_retry,
        "rescue_dirs": (args.rescue_dir,) if args.rescue_dir else None,
    }
    return Tuning(**{name: value for name, value in given.items() if value is not None})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", type=Path)
    parser.add_argument("--hot", type=int, default=100)
    parser.add_argument("--new", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.01, help="seconds between batches")
    parser.add_argument("--batches", type=int, default=0, help="close after this many (0: never)")
    parser.add_argument("--seconds", type=float, default=0.0, help="close after this long (0: never)")
    parser.add_argument("--forget-every", type=int, default=10, help="0: never (count only grows)")
    parser.add_argument("--snapshot-min-bytes", type=int)
    parser.add_argument("--snapshot-chunk", type=int)
    parser.add_argument("--snapshot-max-age", type=float)
    parser.add_argument("--snapshot-max-duty", type=float, help="share of the time snapshots may take")
    parser.add_argument("--close-retry", type=float, help="seconds close() keeps retrying")
    parser.add_argument("--rescue-dir", help="where close() puts what it cannot save")
    args = parser.parse_args()

    stop: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    store = UserStore(args.store, tuning=tuning_from(args))
    started = time.monotonic()
    meta_round = store.meta.get("writer_round", 0)
    round_no = (meta_round if isinstance(meta_round, int) else 0) + 1
    next_id = max((r["id"] for r in store if r["id"] > NEW_BASE), default=NEW_BASE) + 1
    say(event="ready", pid=os.getpid(), t=time.monotonic(), users=len(store), first_new=next_id)

    previous: list[int] = []
    forgot_upto = 0
    batches = 0
    while not stop:
        at = START + timedelta(seconds=round_no)
        for user_id in range(1, args.hot + 1):
            hot = make_profile(user_id, f"hot{user_id}", str(round_no), f"h{user_id}_r{round_no}", "en")
            store.seen(hot, at)
        created = list(range(next_id, next_id + args.new))
        for user_id in created:
            new = make_profile(user_id, f"new {user_id} 👋", username=f"n{user_id}")
            store.seen(new, at, source=f"src{user_id}")
        next_id += args.new
        for user_id in previous:
            if args.forget_every and user_id % args.forget_every == 0:
                store.forget(user_id)
            elif user_id % 7 == 0:
                store.set_blocked(user_id, True, at)
        if previous:
            forgot_upto = previous[-1]
        previous = created
        store.update_meta(writer_round=round_no)
        hot_messages = sum(store.get(i)["messages"] for i in range(1, args.hot + 1))  # type: ignore[index]
        say(
            t=time.monotonic(),
            round=round_no,
            new_upto=created[-1] if created else next_id - 1,
            forgot_upto=forgot_upto,
            hot_messages=hot_messages,
            users=len(store),
        )
        round_no += 1
        batches += 1
        if args.batches and batches >= args.batches:
            break
        if args.seconds and time.monotonic() - started >= args.seconds:
            break
        if args.pause:
            time.sleep(args.pause)
    try:
        store.close()
    except StoreError as exc:  # e.g. disk full: the message says where the changes went
        say(event="close_failed", t=time.monotonic(), error=str(exc))
        return 3
    say(event="closed", t=time.monotonic(), signal=stop[0] if stop else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
