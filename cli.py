"""The tracker CLI: ``python cli.py --help``."""
from tracker.cli import cli

cli()
