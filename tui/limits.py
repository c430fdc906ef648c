"""Which limits apply to a point, and where each comes from.

An active alarm row records the limit and source the engine used, so it wins; otherwise
the limits the catalogue compiled from the configuration (the rules the service runs) are
shown with their source. A value is then classed as beyond the action limit, beyond the
alert level, or within both, by the one ``facility.catalogue.within_limits`` the report
uses too (docs/ARCHITECTURE.md "Limit rules": a value exactly at the limit is compliant).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from facility.catalogue import Catalogue, build_catalogue, within_limits
from facility.config.schema import Config
from facility.domain.display import fmt_limit, fmt_value
from facility.domain.model import LIMIT_NAMES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """One limit as shown: its name, value and the source text recorded for it."""

    name: str  # action_high | alert_high | alert_low | action_low
    value: float
    source: str
    mode: str | None = None  # the zone mode the rule applies in (None: every mode)
    from_alarm: bool = False  # True when read from an alarm row (what the engine used)


def compile_limits(cfg: Config, catalogue: Catalogue | None = None) -> dict[str, list[Limit]]:
    """Limits per point id from the catalogue's compiled rules (``catalogue``, else the one
    built from ``cfg``); empty when compilation fails.

    The TUI never refuses to start because of limits: a problem here is logged and the
    limits then come from alarm rows only.
    """
    try:
        rules = (catalogue if catalogue is not None else build_catalogue(cfg)).rules
    except Exception as exc:  # noqa: BLE001 - any failure degrades to alarm-row limits
        log.warning("limits from the configuration unavailable: %s", exc)
        return {}
    out: dict[str, list[Limit]] = {}
    for r in rules:
        if r.limit_name in LIMIT_NAMES:
            out.setdefault(r.point, []).append(Limit(r.limit_name, r.limit, r.source, r.mode))
    return out


def alarm_limit_name(alarm_id: str) -> tuple[str | None, str | None]:
    """("action_high", "at_rest") from ``MARS-PC-08.pc_0_5um:action_high@at_rest``."""
    kind = alarm_id.rsplit(":", 1)[-1] if ":" in alarm_id else ""
    kind, _, mode = kind.partition("@")
    return (kind if kind in LIMIT_NAMES else None), (mode or None)


class LimitIndex:
    """Limits per point for the current zone modes, alarm rows first."""

    def __init__(self, compiled: dict[str, list[Limit]]):
        self.compiled = compiled
        self._from_alarms: dict[str, dict[str, Limit]] = {}

    def update_alarms(self, alarms: list[dict]) -> None:
        """Take the limits of active alarm rows (what the engine compared against)."""
        found: dict[str, dict[str, Limit]] = {}
        for a in alarms:
            name, mode = alarm_limit_name(a.get("id") or "")
            if name and a.get("active") and a.get("limit") is not None and a.get("point"):
                found.setdefault(a["point"], {})[name] = Limit(
                    name, float(a["limit"]), a.get("source") or "alarm row", mode, True)
        self._from_alarms = found

    def for_point(self, point: str, mode: str | None = None) -> dict[str, Limit]:
        """Limit name -> Limit for a point in a zone mode."""
        out: dict[str, Limit] = {}
        for lim in self.compiled.get(point, ()):
            if lim.mode is None or mode is None or lim.mode == mode:
                if lim.name not in out or lim.mode == mode:
                    out[lim.name] = lim
        out.update(self._from_alarms.get(point, {}))
        return out


def classify(value: float | None, limits: dict[str, Limit]) -> str | None:
    """"action", "alert" or "ok" (None when there is no value or no limit)."""
    if value is None or not math.isfinite(value) or not limits:
        return None
    if not within_limits(value, {k: v.value for k, v in limits.items() if k.startswith("action")}):
        return "action"
    if not within_limits(value, {k: v.value for k, v in limits.items() if k.startswith("alert")}):
        return "alert"
    return "ok"


LIMIT_WORDS = {"action_high": "action high", "alert_high": "alert high",
               "alert_low": "alert low", "action_low": "action low"}
"""A limit's name as people read it."""


def limit_text(limits: dict[str, Limit], unit: str | None = "", quantity: str | None = None,
               name: str | None = None) -> str:
    """``alert 7 140 / action 10 200 /m³``: the limits in force, in the one format
    (``facility.domain.display.fmt_limit``); a 0/1 point as ``action when OPEN``."""
    return fmt_limit({n: lim.value for n, lim in limits.items()}, unit, quantity, name=name)


def limit_line(name: str, lim: Limit, unit: str | None = "", quantity: str | None = None,
               point: str | None = None) -> str:
    """One limit with its name and unit: ``action high 3 520 /m³``, ``action low +10 Pa``;
    a 0/1 point's as the state that raises it, ``action when OPEN``."""
    words = fmt_limit({name: lim.value}, unit, quantity, name=point)
    if words.startswith(tuple(f"{level} when" for level in ("alert", "action"))):
        return words
    return f"{LIMIT_WORDS.get(name, name)} {fmt_value(lim.value, unit, quantity, name=point)}"
