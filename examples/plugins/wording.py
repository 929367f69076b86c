"""Texts shared by the plugins (plugins may import each other relatively)."""


def hello_text(first_name: str | None) -> str:
    """The /hello answer."""
    return f"Hello, {first_name or 'stranger'}! (from a plugin)"
