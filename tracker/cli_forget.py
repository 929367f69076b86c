"""What ``tracker forget`` does once confirmed: erase one user everywhere the tracker keeps them.

Through the running bot's control channel when one listens (it holds the
store's lock), else in the store opened for writing; then from the Pyrogram
session files in the data folder. Every failure is a
:class:`click.ClickException` (one line, exit 1) that says how far the
erasure got. Imported only when ``forget`` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from tracker.config import Settings


def erase_user(settings: Settings, user_id: int) -> bool:
    """Erase ``user_id``'s record and cached peers; True when the running bot did the store's part."""
    through_bot = _forget_through_bot(settings, user_id)
    if not through_bot:
        _forget_in_store(settings, user_id)
    # A running bot has cleared its own session; the CLI's session is never the bot's to clear.
    _forget_cached_peer(settings, user_id, bot_session=not through_bot)
    return through_bot


def _forget_in_store(settings: Settings, user_id: int) -> None:
    """Erase the record with the store opened for writing (no bot may hold it)."""
    from tracker.store import StoreError, StoreLockedError, UserStore

    try:
        with UserStore(settings.store) as writer:
            erased = writer.forget(user_id)
    except StoreLockedError as exc:
        raise click.ClickException(
            f"{exc}; the bot's control channel did not answer, so the user was not erased"
        ) from None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if not erased:
        raise click.ClickException(f"no user {user_id} in {settings.store}")


def _forget_cached_peer(settings: Settings, user_id: int, *, bot_session: bool) -> None:
    """Remove ``user_id`` from the Pyrogram session files in the data folder (those that exist).

    Pyrogram caches every user it met (id, access hash, username, phone number)
    in its ``.session`` file: the bot's, and the CLI's own ``<session>-cli``
    used by ``refresh-bio``. A file that cannot be cleaned is an error (exit 1)
    after the record itself was erased: the user must hear it was not complete.
    """
    import sqlite3

    from tracker.session_peers import forget_peer_in_file

    names = [settings.session] if bot_session else []
    for name in [*names, f"{settings.session}-cli"]:
        path = settings.data_dir / f"{name}.session"
        try:
            forget_peer_in_file(path, user_id)
        except (sqlite3.Error, OSError) as exc:
            raise click.ClickException(
                f"erased user {user_id} from the store, but not from the session file {path}: {exc}"
            ) from None


def _forget_through_bot(settings: Settings, user_id: int) -> bool:
    """Ask the running bot to forget; False when no bot listens."""
    from tracker import control

    try:
        reply = control.request(
            control.socket_path_for(settings.store), {"cmd": "forget", "user_id": user_id}
        )
    except control.BotNotRunning:
        return False
    except control.ControlError as exc:
        raise click.ClickException(str(exc)) from None
    if not reply.get("ok"):
        raise click.ClickException(str(reply.get("error") or "the bot refused without saying why"))
    if reply.get("forgotten") is False:
        raise click.ClickException(f"no user {user_id} in {settings.store}")
    return True
