"""A bare control server in a process of its own, for tests/test_control.py.

Serves ``tracker.control.ControlServer`` on the socket path given as the only
argument with a toy handler (``ping``, ``echo``, ``boom`` that raises), prints
``ready``, serves until its stdin closes, then prints ``stopped``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from tracker.control import ControlServer

calls = 0


async def handler(req: dict[str, Any]) -> dict[str, Any]:
    global calls
    calls += 1
    if req["cmd"] == "ping":
        return {"ok": True, "pid": os.getpid(), "calls": calls}
    if req["cmd"] == "echo":
        return {"ok": True, "echo": req.get("value")}
    if req["cmd"] == "boom":
        raise RuntimeError("handler exploded")
    return {"ok": False, "error": "unknown command " + req["cmd"]}


async def main(path: Path) -> None:
    server = ControlServer(path, handler)
    await server.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
