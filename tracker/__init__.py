"""telegram-user-tracker: record every user of a Telegram bot or account into a TinyDB store."""

__version__ = "0.1.0"
