"""Dispatch ``python -m bench NAME [ARGS...]`` to ``bench/NAME.py``'s ``main(argv)``."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("store", "bot", "cli", "history", "startup", "scale", "floor")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        sys.exit(f"usage: python -m bench {{{'|'.join(BENCHMARKS)}}} [options]")
    module = importlib.import_module(f"bench.{sys.argv[1]}")
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
