"""``facility hazmat check``: every store against its licence, the exempt quantities, the
segregation table and (given the latest readings) its own monitor.

Stock comes from the ledger in one snapshot; each finding says which store, what rule and
what to do. The store monitor (profile ``dg-store-monitor``: temperature, exhaust_flow, leak,
door) is judged here only as a snapshot for the report; live alarms on those points come
from the engine's limit rules like any other point.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from typing import Any, Mapping

from facility.config.schema import Config, Device
from facility.domain.model import Quality
from hazmat import ledger
from hazmat.classes import HazmatError
from hazmat.findings import Finding, sort_key
from hazmat.licence import check_licences
from hazmat.segregation import check_compartment

STORE_TEMPERATURE_MAX_C = 35.0
"""Default upper store temperature when the monitor's point carries no action_high limit.
A site choice *(unconfirmed default, not from a standard)*: set
``[devices.points.limits] action_high`` on the store monitor's ``temperature`` point."""

STORE_POINTS: tuple[str, ...] = ("temperature", "exhaust_flow", "leak", "door")
"""Point names of the ``dg-store-monitor`` profile this check understands."""


def segregation_findings(cfg: Config, containers: list[ledger.Container]) -> list[Finding]:
    """Incompatible substances sharing a compartment (IMDG 7.2.4 via :mod:`hazmat.segregation`).

    Code 1 ("away from") can be met inside one compartment by distance, which the ledger
    cannot see, so it is an *alert* to check; codes 2-4 need another compartment: *action*.
    """
    subs = {s.id: s for s in cfg.hazmat.substances}
    together: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for c in containers:
        if c.quantity > 0 and c.substance in subs:
            together[(c.store, c.compartment)][c.substance] = subs[c.substance]
    out = []
    for (store, comp), present in sorted(together.items()):
        for f in check_compartment(present.values()):
            sev = "alert" if f.code == 1 else "action"
            fix = ("keep them at least 3 m apart (IMDG 7.2.2 'away from')" if f.code == 1
                   else "move one of them to another compartment")
            out.append(Finding(sev, store, "segregation",
                               f"compartment {comp}: {f.message}; {fix}",
                               f"{comp}:{f.substance_a}+{f.substance_b}"))
    return out


def _value(latest: Mapping[str, Any], point: str) -> tuple[float | None, Quality | None]:
    """(value, quality) from a latest-values mapping of Sample, (value, quality) or a number."""
    if point not in latest:
        return None, None
    item = latest[point]
    if hasattr(item, "quality"):
        value, quality = item.value, Quality(item.quality)
    elif isinstance(item, (tuple, list)):
        value, quality = item[0], Quality(item[1]) if len(item) > 1 else Quality.GOOD
    else:
        value, quality = item, Quality.GOOD
    if value is None or not math.isfinite(float(value)):
        return None, Quality.BAD if quality == Quality.GOOD else quality
    return float(value), quality


def _limit(dev: Device, name: str, limit: str) -> float | None:
    for pt in dev.points:
        if pt.name == name and limit in pt.limits:
            return pt.limits[limit].limit
    return None


def monitor_findings(cfg: Config, latest: Mapping[str, Any]) -> list[Finding]:
    """Snapshot findings from each store monitor's latest readings (devices with ``store``)."""
    out: list[Finding] = []
    for dev in cfg.devices:
        if not dev.store:
            continue
        store = dev.store
        for name in STORE_POINTS:
            pid = f"{dev.id}.{name}"
            value, quality = _value(latest, pid)
            if quality is None:
                continue  # no reading offered: nothing to say in a stock-only check
            if quality != Quality.GOOD or value is None:
                out.append(Finding("info", store, "sensor",
                                   f"{pid}: no good reading (quality {quality.label})", pid))
                continue
            if name == "temperature":
                hi = _limit(dev, name, "action_high")
                src = "point limit" if hi is not None else "default, site choice"
                hi = STORE_TEMPERATURE_MAX_C if hi is None else hi
                if value > hi:
                    out.append(Finding("action", store, "temperature",
                                       f"{pid} = {value:g} °C is above {hi:g} °C ({src})", pid))
            elif name == "exhaust_flow":
                lo = _limit(dev, name, "action_low")
                if value <= 0 or (lo is not None and value < lo):
                    lim = f"below {lo:g} m3/h (point limit)" if lo is not None else "stopped"
                    out.append(Finding("action", store, "exhaust",
                                       f"{pid} = {value:g} m3/h: store exhaust {lim}", pid))
            elif name == "leak" and value >= 0.5:
                out.append(Finding("action", store, "leak", f"{pid}: leak sensor wet", pid))
            elif name == "door" and value >= 0.5:
                out.append(Finding("alert", store, "door", f"{pid}: store door open", pid))
    return out


def run_checks(cfg: Config, conn: sqlite3.Connection,
               latest: Mapping[str, Any] | None = None) -> list[Finding]:
    """Every finding for every store, most severe first.

    ``latest`` maps point id to the newest Sample (or ``(value, quality)``); when given, the
    store monitors are judged too. Unknown substances in the ledger (removed from the config
    after they were received) are findings, not crashes.
    """
    hz = cfg.hazmat
    containers = ledger.stock(conn)
    known = {s.id for s in hz.substances}
    findings: list[Finding] = []
    for c in containers:
        if c.substance not in known:
            findings.append(Finding("action", c.store, "ledger",
                                    f"container {c.container_id} holds {c.substance!r}, which is "
                                    "not in [[hazmat.substances]]; add it to the config", c.container_id))
    rows = [r for r in ledger.stock_rows(containers) if r[1] in known]
    try:
        findings.extend(check_licences(hz, rows))
    except HazmatError as exc:
        findings.append(Finding("action", None, "licence", str(exc)))
    findings.extend(segregation_findings(cfg, containers))
    if latest is not None:
        findings.extend(monitor_findings(cfg, latest))
    return sorted(findings, key=sort_key)
