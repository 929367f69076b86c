"""``admins = @name``, bound to accounts: the first account seen with an admin name keeps it.

A Telegram username can be given up and taken by someone else. Were ``@boss``
matched by name alone, the next holder of the name would get the admin
``/stats``. So the first account seen with an admin name is pinned to it, in the
store's meta (``admin_pins``: ``{"boss": 7100}``, kept across restarts), and from
then on only that account counts, whatever it is called later. To hand the role
to another account, list its numeric id in ``admins``.
"""

from __future__ import annotations

import logging

from tracker.store import UserStore

log = logging.getLogger(__name__)

#: Meta key of the pins: {admin name (lower case, no "@"): the user id first seen with it}.
ADMIN_PINS_KEY = "admin_pins"


class AdminPins:
    """The ``@name`` admins of one configuration, pinned to accounts in one store."""

    def __init__(self, store: UserStore, names: frozenset[str]) -> None:
        self.store = store
        self.names = names
        self._pins: dict[str, int] | None = None  # read from the store's meta on first use

    def __bool__(self) -> bool:
        return bool(self.names)

    def check(self, user_id: int, username: str | None) -> bool:
        """A sighting of ``user_id`` called ``username``: True when it is a pinned admin account.

        Pins the name to ``user_id`` when the name is an admin name seen for the first time.
        """
        pins = self._load()
        name = (username or "").lower()
        if name in self.names:
            pinned = pins.get(name)
            if pinned is None:
                pins[name] = user_id
                self.store.update_meta(**{ADMIN_PINS_KEY: dict(pins)})
                log.info("admin @%s pinned to user %s", name, user_id)
            elif pinned != user_id:
                log.warning("@%s is an admin name pinned to user %s; not user %s", name, pinned, user_id)
        return any(pins.get(name) == user_id for name in self.names)

    def _load(self) -> dict[str, int]:
        if self._pins is None:
            stored = self.store.meta.get(ADMIN_PINS_KEY)
            # Hand-edited entries of the wrong type are dropped (never a crash): that name pins anew.
            self._pins = {
                name: user_id
                for name, user_id in (stored.items() if isinstance(stored, dict) else ())
                if isinstance(name, str) and isinstance(user_id, int) and not isinstance(user_id, bool)
            }
        return self._pins
