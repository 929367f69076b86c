"""The profile text: render the counts into the templates, fit Telegram's limits.

Pure functions, no I/O: what the counter shows and how long it may be.
Telegram counts lengths in UTF-16 code units and a cut must not split a
user-perceived character (an accent, a skin tone, a ZWJ family, a flag).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tracker.config import BIO_PLACEHOLDERS, ConfigError, Settings
from tracker.config_checks import template_fields

#: Telegram's limits, in UTF-16 code units.
BOT_ABOUT_LIMIT = 120
BOT_DESCRIPTION_LIMIT = 512
USER_ABOUT_LIMIT = 70
USER_ABOUT_LIMIT_PREMIUM = 140


def utf16_len(text: str) -> int:
    """Length of ``text`` as Telegram counts it: UTF-16 code units (an emoji is often 2)."""
    return len(text.encode("utf-16-le")) // 2


def _extends_cluster(prev: str, char: str) -> bool:
    """True when ``char`` belongs to the same user-perceived character as ``prev``.

    A small approximation of grapheme clusters, enough that a cut never strands a
    combining accent, a variation selector, a skin tone or half of a ZWJ sequence
    or flag.
    """
    code = ord(char)
    return (
        unicodedata.combining(char) != 0
        or unicodedata.category(char) in ("Mn", "Me")
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tag characters (subdivision flags)
        or code == 0x200D  # zero width joiner glues to the previous ...
        or prev == "\u200d"  # ... and to the next character
    )


def _clusters(text: str) -> Iterable[str]:
    cluster = ""
    regional = 0
    for char in text:
        is_regional = 0x1F1E6 <= ord(char) <= 0x1F1FF
        # Regional indicators pair up into flags: the second of a pair extends the first.
        if cluster and (_extends_cluster(cluster[-1], char) or (is_regional and regional % 2 == 1)):
            cluster += char
        else:
            if cluster:
                yield cluster
            cluster = char
        regional = regional + 1 if is_regional else 0
    if cluster:
        yield cluster


def fit(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` UTF-16 code units at a character boundary.

    Returns ``(text, was_cut)``. Trailing whitespace left by the cut is dropped.
    """
    if utf16_len(text) <= limit:
        return text, False
    kept: list[str] = []
    used = 0
    for cluster in _clusters(text):
        size = utf16_len(cluster)
        if used + size > limit:
            break
        kept.append(cluster)
        used += size
    return "".join(kept).rstrip(), True


def render(template: str, values: Mapping[str, int]) -> str:
    """``template`` with its placeholders replaced by ``values`` with thousands separators.

    Raises :class:`ConfigError` for a placeholder that is not one of
    :data:`tracker.config.BIO_PLACEHOLDERS` (``load`` rejects those already).
    """
    formatted = {name: f"{values.get(name, 0):,}" for name in BIO_PLACEHOLDERS}
    try:
        return template.format(**formatted)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"bad bio template {template!r}: {exc}") from None


def about_limit(*, is_bot: bool, premium: bool | None) -> int:
    """The limit of the profile text for the mode (user mode: Premium doubles it)."""
    if is_bot:
        return BOT_ABOUT_LIMIT
    return USER_ABOUT_LIMIT_PREMIUM if premium else USER_ABOUT_LIMIT


def target_name(*, is_bot: bool) -> str:
    """What the profile text is, in words, for messages."""
    return "bot short description" if is_bot else "user bio"


def needs_full_pass(settings: Settings, *, is_bot: bool) -> bool:
    """True when the templates use more than ``{users}`` (which is just ``len(store)``)."""
    fields = template_fields(settings.bio_template)
    if is_bot and settings.description_template is not None:
        fields |= template_fields(settings.description_template)
    return not fields <= {"users"}


@dataclass(frozen=True)
class Rendered:
    """The profile text (and bot description) ready to send, within the limits."""

    about: str
    limit: int
    description: str | None = None
    description_limit: int = BOT_DESCRIPTION_LIMIT
    warnings: tuple[str, ...] = ()

    @property
    def length(self) -> int:
        """Length of :attr:`about` in UTF-16 code units."""
        return utf16_len(self.about)


def render_for(
    settings: Settings, values: Mapping[str, int], *, is_bot: bool, premium: bool | None
) -> Rendered:
    """Render and fit the texts for the mode; warnings say what was cut."""
    warnings: list[str] = []
    limit = about_limit(is_bot=is_bot, premium=premium)
    about = _render_fitted(
        "bio_template", settings.bio_template, values, limit, target_name(is_bot=is_bot), warnings
    )
    description: str | None = None
    if is_bot and settings.description_template is not None:
        description = _render_fitted(
            "description_template", settings.description_template, values,
            BOT_DESCRIPTION_LIMIT, "bot description", warnings,
        )  # fmt: skip
    return Rendered(about=about, limit=limit, description=description, warnings=tuple(warnings))


def _render_fitted(
    key: str, template: str, values: Mapping[str, int], limit: int, target: str, warnings: list[str]
) -> str:
    """``template`` rendered and cut to ``limit``; a cut adds a warning naming the config key."""
    full = render(template, values)
    text, cut = fit(full, limit)
    if cut:
        warnings.append(
            f"{key} renders to {utf16_len(full)} characters, over the {limit} allowed for "
            f"the {target}: cut to {text!r}"
        )
    return text
