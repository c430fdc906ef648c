"""A deterministic database for the TUI's tests, snapshots, benchmark and screenshots.

Built with the real store (``facility.store.Store.write_cycle``), so the TUI is tested
against exactly what the service writes: every configured point plus the zones' derived
``<zone>.dp_cascade`` points, an hour of 1-minute history for the key readings, a set of
alarms covering the ISA-18.2 states, their events, a heartbeat, a zone mode, and (on
request) a hazmat ledger. Times are fixed: ``T0`` is 2026-11-23 18:02:11 +08:00.
"""

from __future__ import annotations

import math

from facility.config_schema import Config
from facility.model import PointInfo, Quality, Sample
from facility.store import Cycle, Store

T0 = 1_795_428_131_000  # 2026-11-23T10:02:11Z = 18:02:11 in Hong Kong
KEY_SUFFIXES = (".pc_0_5um", ".pc_5_0um", ".temperature", ".humidity", ".conc", ".dp",
                ".dp_cascade")


def cascade_infos(cfg: Config) -> list[PointInfo]:
    """The derived pressure point of every zone with a reference (DESIGN.md "Pressure cascade")."""
    return [PointInfo(id=f"{z.id}.dp_cascade", device=z.id, site=z.site, zone=z.id,
                      quantity="pressure_diff_zone", unit="Pa", decimals=1,
                      gmp=bool(z.gmp_grade), kind="derived")
            for z in cfg.zones if z.reference and z.min_dp_pa is not None]


def all_infos(cfg: Config) -> list[PointInfo]:
    """Configured points (profiles expanded) plus derived cascade points."""
    from sensors.points import point_infos

    return [*point_infos(cfg), *cascade_infos(cfg)]


def nominal(point: str, i: int, minute: int) -> float:
    """A plausible, deterministic value for a point at a minute of the hour."""
    wobble = math.sin(i * 0.7 + minute * 0.2)
    if point.endswith(".pc_0_5um"):
        return round(900 + 300 * wobble, 1)
    if point.endswith(".pc_5_0um"):
        return round(8 + 4 * wobble, 1)
    if point.endswith(".temperature"):
        return round(21.0 + 0.6 * wobble, 1)
    if point.endswith(".humidity"):
        return round(45.0 + 3 * wobble, 1)
    if point.endswith(".conc"):
        return round(max(0.0, 0.001 * (1 + wobble)), 4)
    if point.endswith((".dp", ".dp_cascade")):
        return round(14.0 + 1.5 * wobble, 1)
    if point.endswith(".comm_ok"):
        return 1.0
    if point.endswith(".latency_ms"):
        return round(12 + 3 * wobble, 1)
    if point.endswith(".last_good_age_s"):
        return 1.0
    return 0.0


def build(cfg: Config, path: str, *, t0: int = T0, hazmat: bool = False,
          heartbeat_ms: int | None = None) -> dict[str, int]:
    """Create the database at ``path``; return the point ids."""
    infos = all_infos(cfg)
    dp_sign = {z.id: (1 if (z.min_dp_pa or 0) >= 0 else -1) for z in cfg.zones}
    with Store(path) as store:
        ids = store.register_points(infos)
        store.record_config(cfg.text or "# test", cfg.sha256 or "0" * 64)
        keys = [p.id for p in infos if p.id.endswith(KEY_SUFFIXES)]
        for m in range(60, 0, -1):
            ts = t0 - m * 60_000
            samples = []
            for i, p in enumerate(keys):
                v = nominal(p, i, 60 - m)
                if p.endswith(".dp_cascade"):
                    v *= dp_sign.get(p.split(".")[0], 1)
                samples.append(Sample(p, ts, v))
            store.write_cycle(Cycle(samples=samples))
        samples = []
        for i, p in enumerate(infos):
            v = nominal(p.id, i, 60)
            if p.id.endswith(".dp_cascade"):
                v *= dp_sign.get(p.zone or "", 1)
            samples.append(Sample(p.id, t0 - 2000, v))
        special = {
            "MEC-PC-01.pc_0_5um": (2900.0, Quality.GOOD),  # above the alert level 2464
            "MEC-PC-02.pc_0_5um": (3700.0, Quality.GOOD),  # above the action limit 3520
            "MARS-LINE1.dp_cascade": (7.5, Quality.GOOD),  # below min_dp_pa 10
            "MEC-TH-06.humidity": (57.0, Quality.GOOD),
            "MEC-GD-01.conc": (None, Quality.COMM),
            "MEC-GD-01.comm_ok": (0.0, Quality.GOOD),
            "MEC-GD-01.consecutive_failures": (12.0, Quality.GOOD),
            "MEC-GD-01.last_good_age_s": (95.0, Quality.GOOD),
            "MEC-PC-03.clock_offset_s": (150.0, Quality.GOOD),
        }
        samples = [Sample(s.point, s.ts_ms, *special[s.point]) if s.point in special else s
                   for s in samples]
        alarms, events = sample_alarms(t0)
        store.write_cycle(Cycle(
            samples=samples, alarms=alarms, events=events,
            service_state={"heartbeat": {"ts_ms": heartbeat_ms if heartbeat_ms is not None
                                         else t0 - 1000, "pid": 4242}},
            zone_modes=[{"zone": "MARS-LINE1", "mode": "at_rest", "since_ms": t0 - 3_600_000,
                         "actor": "shiftlead", "reason": "end of shift"}]))
        if hazmat:
            from hazmat import ledger

            store.add_migrations(ledger.NAMESPACE, ledger.LEDGER_MIGRATIONS)
            for cid, sub, qty, unit, st, comp in (
                    ("C-001", "ipa", 200.0, "L", "MEC-DGS-1", "flammables"),
                    ("C-002", "acetone", 150.0, "L", "MEC-DGS-1", "flammables"),
                    ("C-003", "sulfuric-acid", 100.0, "L", "MEC-DGS-1", "corrosives"),
                    ("C-004", "silane", 47.0, "L_wc", "MEC-GAS-STORE", "GC-01")):
                ledger.receive(store.conn, cfg.hazmat, actor="engineer", container=cid,
                               substance=sub, quantity=qty, unit=unit, store=st,
                               compartment=comp, reason="delivery", ts_ms=t0 - 86_400_000)
    return ids


def sample_alarms(t0: int) -> tuple[list[dict], list[dict]]:
    """Alarm rows in each displayed state, and their events."""
    def row(aid, state, prio, occ, onset_s, limit, source, zone, site, point, **kw):
        active = kw.pop("active", 1)
        acked = kw.pop("acked", 0 if state in ("UNACK", "RTNUN") else 1)
        return {"id": aid, "state": state, "priority": prio, "occurrence": occ, "active": active,
                "acked": acked, "onset_ms": t0 - onset_s * 1000,
                "detected_ms": t0 - onset_s * 1000 + 500, "limit": limit, "source": source,
                "zone": zone, "site": site, "point": point, **kw}

    alarms = [
        row("MEC-PC-01.pc_0_5um:alert_high", "UNACK", "medium", 3, 300, 2464.0,
            "alarms.alert_fraction=0.7 x action limit (site choice, Annex 1 9.9)",
            "MEC-LITHO", "MEC", "MEC-PC-01.pc_0_5um"),
        row("MEC-PC-02.pc_0_5um:action_high", "UNACK", "critical", 1, 120, 3520.0,
            "ISO 14644-1:2015 class 5 at 0.5 um", "MEC-LITHO", "MEC", "MEC-PC-02.pc_0_5um"),
        row("MEC-GD-01:comm", "ACKED", "critical", 2, 900, None, "device comm", "MEC-GASRM",
            "MEC", None, ack_by="technician", ack_reason="detector rebooting", ack_ms=t0 - 600_000),
        row("MARS-LINE1.dp_cascade:action_low", "UNACK", "high", 1, 400, 10.0,
            "zones[MARS-LINE1].min_dp_pa=+10 Pa vs MARS-GOWN", "MARS-LINE1", "MARS",
            "MARS-LINE1.dp_cascade"),
        row("MEC-WET.dp_cascade:action_low", "RTNUN", "high", 4, 2000, 10.0,
            "zones[MEC-WET].min_dp_pa=+10 Pa vs MEC-CORRIDOR", "MEC-WET", "MEC",
            "MEC-WET.dp_cascade", active=0),
        row("MEC-TH-06.humidity:alert_high", "SHLVD", "medium", 1, 3000, 55.0,
            "alarms.defaults.humidity.alert_high", "MEC-GASRM", "MEC", "MEC-TH-06.humidity",
            shelved_until_ms=t0 + 1_800_000),
        row("MARS-PC-08.pc_5_0um:action_high@in_operation", "DSUPR", "high", 1, 1000, 29300.0,
            "EU GMP Annex 1 Table 5 grade C in_operation at 5 um", "MARS-LINE1", "MARS",
            "MARS-PC-08.pc_5_0um", active=0),
        row("MEC-TH-01.temperature:alert_high", "NORM", "medium", 2, 7200, 23.0,
            "alarms.defaults.temperature.alert_high", "MEC-LITHO", "MEC",
            "MEC-TH-01.temperature", active=0, acked=1),
    ]
    events = []
    for a in alarms:
        events.append({"alarm_id": a["id"], "occurrence": a["occurrence"], "event": "raise",
                       "state_from": "NORM", "state_to": "UNACK", "ts_ms": a["onset_ms"],
                       "detected_ms": a["detected_ms"], "limit": a["limit"], "source": a["source"]})
    events.append({"alarm_id": "MEC-GD-01:comm", "occurrence": 2, "event": "ack",
                   "state_from": "UNACK", "state_to": "ACKED", "ts_ms": t0 - 600_000,
                   "actor": "technician", "reason": "detector rebooting"})
    events.append({"alarm_id": "MEC-TH-06.humidity:alert_high", "occurrence": 1,
                   "event": "shelve", "state_from": "UNACK", "state_to": "SHLVD",
                   "ts_ms": t0 - 1_800_000, "actor": "engineer", "reason": "dehumidifier service"})
    return alarms, events


def touch_heartbeat(path: str, ts_ms: int) -> None:
    """Write a new heartbeat, as the running service does each cycle."""
    with Store(path) as store:
        store.write_cycle(Cycle(service_state={"heartbeat": {"ts_ms": ts_ms, "pid": 4242}}))
