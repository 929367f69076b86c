"""The live user counter in the profile (a bot's short description, or a user's bio).

* :mod:`.text` - render ``bio_template`` (and the bot ``description_template``)
  with thousands separators and fit Telegram's limits (pure);
* :mod:`.counts` - the numbers the templates show, counted from the store;
* :mod:`.telegram` - the one Telegram request and how its failures read;
* :mod:`.service` - :class:`BioService`, the schedule (interval, FloodWait,
  back-off), each attempt a typed :class:`Outcome`;
* :mod:`.refresh` - ``cli.py refresh-bio``: dry run, control channel, own session.
"""

from .counts import count_values, store_values
from .outcome import Outcome, OutcomeKind
from .refresh import BOT_MODE, MODE_KEY, USER_MODE, dry_run_text, recorded_mode, refresh_command
from .service import BACKOFF_MAX, BACKOFF_START, FLOOD_MARGIN, BioService, stamp
from .telegram import BioError, describe_error, update_request
from .text import (
    BOT_ABOUT_LIMIT,
    BOT_DESCRIPTION_LIMIT,
    USER_ABOUT_LIMIT,
    USER_ABOUT_LIMIT_PREMIUM,
    Rendered,
    about_limit,
    fit,
    render,
    render_for,
    utf16_len,
)

__all__ = [
    "BACKOFF_MAX",
    "BACKOFF_START",
    "BOT_ABOUT_LIMIT",
    "BOT_DESCRIPTION_LIMIT",
    "BOT_MODE",
    "FLOOD_MARGIN",
    "MODE_KEY",
    "USER_ABOUT_LIMIT",
    "USER_ABOUT_LIMIT_PREMIUM",
    "USER_MODE",
    "BioError",
    "BioService",
    "Outcome",
    "OutcomeKind",
    "Rendered",
    "about_limit",
    "count_values",
    "describe_error",
    "dry_run_text",
    "fit",
    "recorded_mode",
    "refresh_command",
    "render",
    "render_for",
    "stamp",
    "store_values",
    "update_request",
    "utf16_len",
]
