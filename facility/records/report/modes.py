"""Which limits were in force when: each zone's mode history over a report's range and the
time accounting of a point per mode (docs/ARCHITECTURE.md "The report")."""

from __future__ import annotations

import math
from dataclasses import dataclass

from facility.catalogue import Catalogue, within_limits
from facility.domain.vocab import ZONE_MODES


@dataclass
class ModeSpan:
    """A zone in one mode over ``[start_ms, end_ms)``; ``change`` is the audit row that set
    it (None for the mode already in force when the range began)."""

    zone: str
    mode: str
    start_ms: int
    end_ms: int
    change: dict | None = None


def mode_history(cfg, store, from_ms: int, to_ms: int) -> dict[str, list[ModeSpan]]:
    """Each zone's modes over ``[from_ms, to_ms)`` from the ``mode`` audit rows (operator and
    schedule changes, as the service records them: ``facility.service.operator_actions``).

    The mode at ``from_ms`` is the newest change before it; without one, the first change's
    ``from`` (what the zone was in before); without any, the configured ``occupancy``.
    """
    rows = store.audit_rows(to_ms=to_ms, action="mode") if store is not None else []
    out: dict[str, list[ModeSpan]] = {}
    for z in cfg.zones:
        mine = [r for r in rows if r.get("subject") == z.id]
        before = [r for r in mine if r["ts_ms"] < from_ms]
        during = [r for r in mine if r["ts_ms"] >= from_ms]
        details = [(r.get("details") if isinstance(r.get("details"), dict) else {}) for r in
                   (before[-1:] or during[:1])]
        if before:
            mode = details[0].get("to") or z.occupancy
        elif during:
            mode = details[0].get("from") or z.occupancy
        else:
            mode = z.occupancy
        spans = [ModeSpan(z.id, mode, from_ms, to_ms)]
        for r in during:
            d = r.get("details") if isinstance(r.get("details"), dict) else {}
            new = d.get("to")
            if not new:
                continue
            last = spans[-1]
            if r["ts_ms"] <= last.start_ms:
                spans[-1] = ModeSpan(z.id, new, last.start_ms, to_ms, r)
                continue
            last.end_ms = r["ts_ms"]
            spans.append(ModeSpan(z.id, new, r["ts_ms"], to_ms, r))
        out[z.id] = spans
    return out


def mode_at(spans: list[ModeSpan], ts_ms: int) -> str | None:
    """The mode of a zone at ``ts_ms`` (None outside the range)."""
    for s in spans:
        if s.start_ms <= ts_ms < s.end_ms:
            return s.mode
    return None


@dataclass
class ModeShare:
    """One point's time accounting in one mode: time in the mode, good data, within limits.

    ``limited`` is False where the mode has no action limit for the point (EU GMP Annex 1
    Table 5 "—", grade D in operation: the site sets it); its good data is then neither
    within nor outside."""

    mode: str
    action: dict[str, float]
    alert: dict[str, float]
    time_ms: int = 0
    good_ms: int = 0
    within_ms: int = 0
    within_alert_ms: int = 0

    @property
    def limited(self) -> bool:
        return bool(self.action)

    @property
    def outside_ms(self) -> int:
        """Good data beyond an action limit (0 without limits)."""
        return self.good_ms - self.within_ms if self.limited else 0

    @property
    def not_monitored_ms(self) -> int:
        return self.time_ms - self.good_ms

    @property
    def ratio(self) -> float | None:
        """Within ÷ good data in this mode (None: no good data, or no limit in this mode)."""
        return self.within_ms / self.good_ms if self.good_ms and self.limited else None


class ModeCompliance:
    """:class:`Compliance` with each span judged against the limits of the zone's mode at
    that time: a sample's span is split at every mode change, and each piece counts in its
    mode with that mode's action limits (an at-rest excursion is measured against the at-rest
    limits, never against the in-operation ones; EU GMP Annex 1 Table 5, §9.15).

    Totals (``good_ms``, ``within_ms``, ``ratio``) add the modes that have limits."""

    def __init__(self, from_ms: int, to_ms: int, hold_ms: int, spans: list[ModeSpan],
                 limits: dict[str, tuple[dict[str, float], dict[str, float]]]):
        self.from_ms, self.to_ms, self.hold_ms, self.spans = from_ms, to_ms, hold_ms, spans
        self.by_mode: dict[str, ModeShare] = {}
        for s in spans:
            if s.mode not in self.by_mode:
                action, alert = limits.get(s.mode, ({}, {}))
                self.by_mode[s.mode] = ModeShare(s.mode, action, alert)
            self.by_mode[s.mode].time_ms += max(0, min(s.end_ms, to_ms) - max(s.start_ms, from_ms))
        self._shares = [(self.by_mode[s.mode], self.by_mode[s.mode].action,
                         self.by_mode[s.mode].alert) for s in spans]
        self._ends = [s.end_ms for s in spans]
        self._i = 0
        self._last: tuple | None = None

    @property
    def action(self) -> dict[str, float]:
        """The action limits of the first mode with any (for a one-line summary)."""
        return next((m.action for m in self.by_mode.values() if m.action), {})

    def feed(self, ts_ms: int, value: float | None, quality: int) -> None:
        if self._last is not None and ts_ms <= self._last[0]:
            return  # duplicate or out of order: never evaluated
        self._close(ts_ms)
        self._last = (ts_ms, value, quality)

    def _close(self, until_ms: int) -> None:
        if self._last is None:
            return
        ts, value, q = self._last
        if q != 0 or value is None or not math.isfinite(value):
            return
        lo, hi = max(ts, self.from_ms), min(until_ms, ts + self.hold_ms, self.to_ms)
        ends, i = self._ends, self._i
        while ends[i] <= lo and i < len(ends) - 1:
            i += 1  # samples come in time order: the spans before are done
        self._i = i
        while lo < hi and i < len(ends):
            b = hi if hi <= ends[i] else ends[i]
            if b > lo:
                m, action, alert = self._shares[i]
                m.good_ms += b - lo
                if action:
                    if within_limits(value, action):
                        m.within_ms += b - lo
                    if within_limits(value, alert):
                        m.within_alert_ms += b - lo
                lo = b
            i += 1

    def finish(self) -> "ModeCompliance":
        self._close(self.to_ms)
        self._last = None
        return self

    @property
    def good_ms(self) -> int:
        return sum(m.good_ms for m in self.by_mode.values() if m.limited)

    @property
    def within_ms(self) -> int:
        return sum(m.within_ms for m in self.by_mode.values() if m.limited)

    @property
    def within_alert_ms(self) -> int:
        return sum(m.within_alert_ms for m in self.by_mode.values() if m.limited)

    @property
    def not_monitored_ms(self) -> int:
        return (self.to_ms - self.from_ms) - sum(m.good_ms for m in self.by_mode.values())

    @property
    def ratio(self) -> float | None:
        return self.within_ms / self.good_ms if self.good_ms else None


def mode_limits(cat: Catalogue, zone_ids: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Mode -> point -> limit name -> value, every zone in that mode (``Catalogue.limit_rules``)."""
    out = {}
    for mode in ZONE_MODES:
        rules = cat.limit_rules({z: mode for z in zone_ids})
        out[mode] = {pid: {n: r.limit for n, r in rs.items()} for pid, rs in rules.items()}
    return out


def split_limits(lim: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """(action limits, alert limits) of a point; alert falls back to action."""
    action = {k: v for k, v in lim.items() if k.startswith("action")}
    alert = {k: v for k, v in lim.items() if k.startswith("alert")} or action
    return action or alert, alert
