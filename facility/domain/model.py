"""Domain types shared by every floor: samples, quality, limits, time.

This module imports nothing above the ground floor, so sensors, alarms, hazmat and the top
floor can all exchange plain data through it (docs/ARCHITECTURE.md "Samples and quality").
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timezone

from facility.domain.vocab import LIMIT_NAMES  # re-exported beside limit_side for the rules

__all__ = ["LIMIT_NAMES", "PointInfo", "Quality", "Sample", "iso_ms", "limit_side", "now_ms",
           "round_to"]


class Quality(enum.IntEnum):
    """Quality of a sample. Only GOOD samples can satisfy or clear a limit."""

    GOOD = 0
    BAD = 1  # the instrument says so: error, flow fault, sentinel, non-finite
    COMM = 2  # no answer from the device
    STALE = 3  # no new reading within stale_after_s

    @property
    def label(self) -> str:
        """Lower-case name as used in JSON and CSV ("good", "bad", "comm", "stale")."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> "Quality":
        """Parse a label such as "good"; raises ValueError naming the allowed labels."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            allowed = ", ".join(q.label for q in cls)
            raise ValueError(f"quality {text!r} is not one of {allowed}") from None


def limit_side(name: str) -> str:
    """Return "high" or "low" for a limit name such as "alert_high"."""
    return "high" if name.endswith("_high") else "low"


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement: point id, UTC time in integer ms, value, quality.

    A failed read has ``value=None`` and quality COMM or BAD; it is never 0.
    """

    point: str
    ts_ms: int
    value: float | None
    quality: Quality = Quality.GOOD

    @property
    def good(self) -> bool:
        """True when the sample may satisfy or clear a limit."""
        return (
            self.quality == Quality.GOOD
            and self.value is not None
            and math.isfinite(self.value)
        )


@dataclass(frozen=True, slots=True)
class PointInfo:
    """What the store and readers need to know about a point (configured or derived)."""

    id: str
    device: str
    site: str
    zone: str | None
    quantity: str
    unit: str
    decimals: int = 3
    gmp: bool = False  # raw data of GMP points is purged only after a verified archive
    kind: str = "measured"  # measured | derived | health | status


def now_ms() -> int:
    """Current UTC time in integer milliseconds since the epoch."""
    return int(datetime.now(tz=timezone.utc).timestamp() * 1000)


def iso_ms(ts_ms: int | None) -> str | None:
    """Format integer ms as docs/ARCHITECTURE.md's JSON time ``YYYY-MM-DDTHH:MM:SS.sssZ``."""
    if ts_ms is None:
        return None
    dt = datetime.fromtimestamp(ts_ms / 1000.0, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def round_to(value: float, decimals: int) -> float:
    """Round a decoded value to the point's decimals, so 3 x 0.1 compares equal to 0.3."""
    if not math.isfinite(value):
        return value
    return round(value, decimals)
