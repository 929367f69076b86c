"""The tracker CLI: ``python cli.py --help``."""
from tracker.cli_main import main

main()
