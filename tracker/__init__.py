"""telegram-user-tracker: record every user of a Telegram bot or account into a TinyDB store.

Library API for bot owners (see README, "Use it in your own bot"):

* :func:`attach` - tracking, the profile counter and the control channel in your
  own ``pyrogram.Client``; returns a :class:`Tracking`;
* :func:`open_db` - a read-only ``tinydb.TinyDB`` over the live store.

They are imported on first use, so ``python -m tracker`` (the CLI) does not pay
for importing pyrogram.
"""

from __future__ import annotations

__version__ = "0.1.0"

# Not ``from typing import TYPE_CHECKING``: importing typing costs ~5 ms, and
# ``tracker --help`` imports this package. mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from tracker.app import Tracking, attach
    from tracker.db import open_db

#: Public name -> the module that defines it.
_LAZY = {"Tracking": "tracker.app", "attach": "tracker.app", "open_db": "tracker.db"}

__all__ = ["Tracking", "__version__", "attach", "open_db"]


def __getattr__(name: str) -> Any:
    """Import the library API lazily (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:  # also asked for every ``from tracker import submodule``: keep it cheap
        raise AttributeError(f"module 'tracker' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
