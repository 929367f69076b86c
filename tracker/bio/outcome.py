"""The result of one profile-update attempt, as a typed value.

The service returns an :class:`Outcome`; the control channel carries it as JSON
(:meth:`Outcome.to_reply` / :meth:`Outcome.from_reply`), and ``refresh-bio``
prints it (:meth:`Outcome.describe`). The kind says what happened, so nobody
has to read it out of a message text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class OutcomeKind(enum.Enum):
    """What one attempt did."""

    SET = "set"  #: the text was sent and set
    UNCHANGED = "unchanged"  #: the profile already shows this text
    PENDING = "pending"  #: a new text waits for ``bio_interval`` to end
    FLOOD_WAIT = "flood_wait"  #: Telegram asked to wait (FloodWait); retried after it
    FAILED = "failed"  #: another error; retried with back-off


#: Kinds after which the service tries again by itself.
RETRY_KINDS = frozenset({OutcomeKind.FLOOD_WAIT, OutcomeKind.FAILED})


#: The fields a reply carries only when they have a value.
_OPTIONAL_FIELDS = ("text", "length", "limit", "target", "next_at", "set_at", "flood_wait", "error")


@dataclass(frozen=True)
class Outcome:
    """One attempt: its kind, the rendered text (when it got that far) and the timing."""

    kind: OutcomeKind
    text: str | None = None
    length: int | None = None
    limit: int | None = None
    target: str | None = None
    warnings: tuple[str, ...] = ()
    #: When the next attempt is due (pending change or retry), store timestamp text.
    next_at: str | None = None
    #: When the text was set (kind SET).
    set_at: str | None = None
    #: Seconds Telegram still asks to wait (kind FLOOD_WAIT).
    flood_wait: float | None = None
    #: One line for FLOOD_WAIT and FAILED.
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True unless the attempt failed (a pending update is not a failure)."""
        return self.kind not in RETRY_KINDS

    @property
    def retry(self) -> bool:
        """True when the service will try again by itself."""
        return self.kind in RETRY_KINDS

    def to_reply(self) -> dict[str, Any]:
        """The control-channel reply: ``{"ok": ..., "kind": ..., ...}`` (JSON-ready)."""
        reply: dict[str, Any] = {
            "ok": self.ok,
            "kind": self.kind.value,
            "changed": self.kind is OutcomeKind.SET,
        }
        if self.kind is OutcomeKind.PENDING:
            reply["pending"] = True
        if self.retry:
            reply["retry"] = True
        for name in _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                reply[name] = value
        if self.warnings:
            reply["warnings"] = list(self.warnings)
        return reply

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> Outcome:
        """The inverse of :meth:`to_reply`; raises ValueError for a reply of another shape."""
        try:
            kind = OutcomeKind(reply.get("kind"))
        except ValueError:
            raise ValueError(f"unknown outcome kind {reply.get('kind')!r}") from None
        warnings = reply.get("warnings", [])
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise ValueError("warnings must be a list of texts")
        fields = {name: reply.get(name) for name in _OPTIONAL_FIELDS}
        return cls(kind=kind, warnings=tuple(warnings), **fields)

    def describe(self) -> str:
        """The text ``refresh-bio`` prints for a successful attempt."""
        size = f"({self.length}/{self.limit})" if self.length is not None else ""
        lines = [f"warning: {w}" for w in self.warnings]
        if self.kind is OutcomeKind.SET:
            lines.append(f"set {self.target or 'profile text'} to: {self.text} {size}".rstrip())
        elif self.kind is OutcomeKind.PENDING:
            lines.append(
                f"not sent: {self.text!r} waits for bio_interval to end (next update at {self.next_at}); "
                f"use --force to send it now"
            )
        else:
            lines.append(f"unchanged: {self.text} {size}".rstrip())
        return "\n".join(lines)
