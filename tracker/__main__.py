"""``python -m tracker``: the same CLI as ``tracker`` (``python -m tracker run`` starts the bot)."""

from tracker.cli import cli

cli(prog_name="python -m tracker")
