"""Checks of single configuration values that need more than a type: templates and proxy URLs.

Pure functions, each raising ValueError with a message that never echoes a
secret; :mod:`tracker.config` turns that into a :class:`~tracker.config.ConfigError`
naming the file and the key. Kept apart from the key reading so each can be
read (and tested) on its own. Like :mod:`tracker.config`, this module is
imported by ``tracker --help``: ``string`` and ``urllib`` are imported by the
functions that use them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PROXY_SCHEMES = ("socks4", "socks5", "http")

#: Widest field a template's format spec may ask for (a Telegram message holds 4096 chars).
FORMAT_WIDTH_MAX = 4096
#: Sample values a template is rendered with at load: the widest realistic ones.
SAMPLE_COUNT = 1_234_567
SAMPLE_FIRST_NAME = "Ann"


def template_fields(template: str) -> set[str]:
    """The ``{placeholder}`` names used by a str.format template (raises ValueError)."""
    import string

    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def parse_proxy(url: str) -> dict[str, Any] | None:
    """``socks5://user:pass@host:1080`` -> the dict ``pyrogram.Client(proxy=...)`` takes; "" -> None.

    Schemes: socks4, socks5, http; user and password are optional. Raises
    ValueError saying what is wrong, without echoing the URL (it may hold a password).
    """
    if not url:
        return None
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        raise ValueError("needs a port from 1 to 65535, e.g. socks5://host:1080") from None
    scheme = parts.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        schemes = ", ".join(PROXY_SCHEMES)
        raise ValueError(f"must look like socks5://[user:pass@]host:port (schemes: {schemes})")
    if not parts.hostname or port is None or not 1 <= port <= 65535:
        raise ValueError("needs a host and a port from 1 to 65535, e.g. socks5://host:1080")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be scheme://[user:pass@]host:port, nothing after the port")
    proxy: dict[str, Any] = {"scheme": scheme, "hostname": parts.hostname, "port": port}
    if parts.username is not None:
        proxy["username"] = unquote(parts.username)
    if parts.password is not None:
        proxy["password"] = unquote(parts.password)
    return proxy


def check_template(template: str, placeholders: frozenset[str], sample: Mapping[str, Any]) -> None:
    """Render ``template`` once with ``sample``; raise ValueError saying what is wrong.

    Catches what ``str.format`` would raise later at run time: unknown
    placeholders, bad format specs (``{users:Q}``), and widths so large that
    rendering would exhaust memory (``{users:>99999999999}``, checked before
    rendering).
    """
    import string

    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template: {exc}") from None
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        if name not in placeholders:
            allowed = ", ".join("{" + p + "}" for p in sorted(placeholders))
            raise ValueError(f"unknown placeholder {{{name}}} (allowed: {allowed})")
        for number in re.findall(r"[0-9]+", spec or ""):
            if len(number) > 6 or int(number) > FORMAT_WIDTH_MAX:
                raise ValueError(f"format width {number} in {{{name}:{spec}}} is over {FORMAT_WIDTH_MAX}")
    try:
        template.format(**sample)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError, OverflowError) as exc:
        raise ValueError(f"bad template: {exc}") from None


def sample_values(placeholders: frozenset[str]) -> dict[str, str]:
    """The values a template with ``placeholders`` is rendered with at load."""
    # The bot formats counts as text with thousands separators (tracker.bio.render),
    # and first_name is text: so the sample values are strings, as at run time.
    return {
        name: SAMPLE_FIRST_NAME if name == "first_name" else f"{SAMPLE_COUNT:,}" for name in placeholders
    }
