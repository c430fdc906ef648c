"""The one result type of every hazmat check, so the CLI and the service print them alike."""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES: tuple[str, ...] = ("action", "alert", "info")
"""Most severe first. "action" needs doing now (a licence or segregation breach), "alert"
warns before one (Annex 1's alert/action words, reused for stock levels), "info" is context."""


@dataclass(frozen=True)
class Finding:
    """One problem (or note) found in a dangerous-goods store."""

    severity: str  # action | alert | info
    store: str | None  # store id; None for a site-wide finding
    kind: str  # licence | exempt | segregation | temperature | exhaust | leak | door | sensor
    message: str  # one line naming the place, the value, the rule and the fix
    subject: str = ""  # what it is about: a class, a substance pair, a point id

    def line(self) -> str:
        """``ACTION MEC-DGS-1 licence: ...`` for the CLI."""
        where = self.store or "-"
        return f"{self.severity.upper():6} {where} {self.kind}: {self.message}"


def sort_key(f: Finding) -> tuple[int, str, str, str]:
    """Most severe first, then by store, kind and subject (stable output for tests and diffs)."""
    return (SEVERITIES.index(f.severity), f.store or "", f.kind, f.subject)
