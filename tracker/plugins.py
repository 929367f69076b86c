"""Load the owner's Pyrogram smart plugins from a folder given by path.

Pyrogram's own ``Client(plugins=dict(root="plugins"))`` imports ``root`` as a
dotted module path, i.e. relative to the current directory: started from
another folder (systemd, cron, ``tracker run``) the plugins silently vanish.
Here the folder is an absolute path (``plugins =`` in config.ini, resolved
against the config file's folder); it is mounted as a package of its own, so
plugins may import each other relatively, and their handlers are registered the
way pyrogram's ``load_plugins`` does: every module attribute whose ``handlers``
list holds ``(Handler, group)`` pairs (what ``@Client.on_message()`` and the
other decorators leave on a function in a plugin).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import sys
import types
from pathlib import Path

import pyrogram
from pyrogram.handlers.handler import Handler

from tracker.config import ConfigError

log = logging.getLogger(__name__)


def load_plugins(client: pyrogram.Client, folder: Path) -> int:
    """Register the handlers of every ``*.py`` under ``folder`` (sorted, recursive); their count.

    Raises :class:`ConfigError` (one line naming the file) when the folder is
    missing or a plugin fails to import.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"plugins: {folder} is not a folder")
    package = _mount(folder)
    count = 0
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder).with_suffix("")
        if relative.name == "__init__":
            relative = relative.parent
        name = ".".join((package, *relative.parts))
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # the owner's code: any error, reported in one line
            raise ConfigError(f"plugins: cannot load {path}: {type(exc).__name__}: {exc}") from None
        for attribute, value in vars(module).items():
            for handler, group in _handlers_of(value):
                client.add_handler(handler, group)
                log.debug("plugin %s: %s(%s) in group %d", path, type(handler).__name__, attribute, group)
                count += 1
    log.info("loaded %d plugin handlers from %s", count, folder)
    return count


def _mount(folder: Path) -> str:
    """Make ``folder`` importable as a package of its own name; return that name."""
    resolved = folder.resolve()
    digest = hashlib.sha1(str(resolved).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    package = f"tracker_plugins_{digest}"
    if package not in sys.modules:
        module = types.ModuleType(package, f"smart plugins from {resolved}")
        module.__path__ = [str(resolved)]
        sys.modules[package] = module
    return package


def _handlers_of(value: object) -> list[tuple[Handler, int]]:
    """The ``(handler, group)`` pairs a plugin decorator left on ``value``, else none."""
    pairs = getattr(value, "handlers", None) if callable(value) else None
    if not isinstance(pairs, list | tuple):
        return []
    return [
        (pair[0], pair[1])
        for pair in pairs
        if isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], Handler)
        and isinstance(pair[1], int) and not isinstance(pair[1], bool)
    ]
