"""``python -m tracker``: the same CLI as ``tracker`` (``python -m tracker run`` starts the bot)."""

from tracker.cli_main import main

main(prog_name="python -m tracker")
