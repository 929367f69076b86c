"""Test helper: read a store in a loop while another process writes it.

Alternates ``UserStore(path, readonly=True)`` and a plain ``json.load`` of the
store file until ``--seconds`` have passed, and checks every read: it must
succeed, every record must be complete, and nothing may go backwards (user
count, each hot user's message count). Prints one JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from tracker.models import RECORD_FIELDS
from tracker.store import UserStore


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", type=Path)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--hot", type=int, default=100)
    args = parser.parse_args()

    failures: list[str] = []
    backwards: list[str] = []
    counts: dict[str, list[int]] = {"store": [], "json": []}
    hot_seen: dict[int, int] = {}
    inodes: set[int] = set()
    reads = {"store": 0, "json": 0}
    last = {"store": -1, "json": -1}

    def count(kind: str, users: int) -> None:
        if users < last[kind]:
            backwards.append(f"{kind} read: {users} users after {last[kind]}")
        last[kind] = users
        counts[kind].append(users)
        reads[kind] += 1

    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        try:
            with UserStore(args.store, readonly=True) as store:
                records = list(store)
                incomplete = [r["id"] for r in records if any(f not in r for f in RECORD_FIELDS)]
                if incomplete:
                    failures.append(f"incomplete records {incomplete[:5]}")
                for user_id in range(1, args.hot + 1):
                    record = store.get(user_id)
                    if record is None:
                        continue
                    if record["messages"] < hot_seen.get(user_id, 0):
                        backwards.append(f"user {user_id}: {record['messages']} after {hot_seen[user_id]}")
                    hot_seen[user_id] = record["messages"]
                count("store", len(records))
        except Exception as exc:  # every failure is a finding: report it, keep reading
            failures.append(f"UserStore(readonly=True): {type(exc).__name__}: {exc}")
        try:
            inodes.add(os.stat(args.store).st_ino)
            with open(args.store, "rb") as fh:
                document: Any = json.load(fh)
            if not isinstance(document.get("users"), dict) or not isinstance(document.get("meta"), dict):
                failures.append(f"json read: tables {sorted(document)}")
            else:
                count("json", len(document["users"]))
        except Exception as exc:
            failures.append(f"json.load: {type(exc).__name__}: {exc}")

    print(
        json.dumps(
            {
                "reads": reads,
                "failures": failures[:10],
                "failure_count": len(failures),
                "backwards": backwards[:10],
                "backwards_count": len(backwards),
                "first": {k: v[0] if v else None for k, v in counts.items()},
                "last": {k: v[-1] if v else None for k, v in counts.items()},
                "files_seen": len(inodes),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
