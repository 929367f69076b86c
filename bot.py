"""Start the tracker bot: ``python bot.py [--config PATH]``."""
from tracker.bot import main

main()
