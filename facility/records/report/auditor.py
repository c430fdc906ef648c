"""What an auditor asks of a report beyond the numbers: the EU GMP Annex 1 grade statement,
the configuration versions in force, who acted, the instruments' calibration and the data's
completeness, and who prepared it (docs/ARCHITECTURE.md "The report")."""

from __future__ import annotations

from facility.catalogue import Catalogue
from facility.domain.vocab import ZONE_MODES

# ---- EU GMP Annex 1 grade statements --------------------------------------------------------

ANNEX1_SIZES = (0.5, 5.0)


def grade_statement(zone, cat: Catalogue) -> dict:
    """What EU GMP Annex 1 (2022) asks of a graded zone's particle monitoring: per mode and
    size, the Table 5 maximum action limit (§9.15; None where Table 5 has "—") and the action
    limit the site configured on the zone's counters (the compiled rules), with its source."""
    from alarms.standards import annex1_limit

    counters = [p for p in cat.points if p.zone == zone.id and p.quantity == "particle_conc"
                and p.size_um in ANNEX1_SIZES]
    rows = []
    for mode in ZONE_MODES:
        rules = cat.limit_rules({zone.id: mode})
        for size in ANNEX1_SIZES:
            site = sorted({(rules[p.id]["action_high"].limit, rules[p.id]["action_high"].source)
                           for p in counters if p.size_um == size and p.id in rules
                           and "action_high" in rules[p.id]})
            rows.append({"mode": mode, "size_um": size,
                         "table5": annex1_limit(zone.gmp_grade, mode, size),
                         "table1": annex1_limit(zone.gmp_grade, mode, size, "classification"),
                         "site": site, "counters": bool(counters)})
    return {"grade": zone.gmp_grade, "rows": rows}


# ---- configuration versions -----------------------------------------------------------------

DIFF_MAX_LINES = 400
"""Lines of one version's diff shown in the report; the rest is counted (the full texts are
in the export's config files)."""


def config_history(store, from_ms: int, to_ms: int) -> list[dict]:
    """The configuration versions in force during ``[from_ms, to_ms)``: the one loaded last
    before the range and each loaded within it, oldest first, each with a unified diff
    against the version before it (``diff`` None for the first stored version)."""
    import difflib

    versions = store.config_versions()
    keep = [i for i, v in enumerate(versions) if from_ms <= v["loaded_ms"] < to_ms]
    before = [i for i, v in enumerate(versions) if v["loaded_ms"] < from_ms]
    if before:
        keep.insert(0, before[-1])
    out = []
    for i in keep:
        v = dict(versions[i])
        text = store.config_text(v["id"]) or ""
        v["until_ms"] = versions[i + 1]["loaded_ms"] if i + 1 < len(versions) else None
        if i == 0:
            v.update(diff=None, added=0, removed=0, previous=None)
        else:
            prev = versions[i - 1]
            lines = list(difflib.unified_diff(
                (store.config_text(prev["id"]) or "").splitlines(), text.splitlines(),
                f"version {prev['id']}", f"version {v['id']}", n=1, lineterm=""))
            v.update(previous=prev["id"],
                     added=sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++")),
                     removed=sum(1 for ln in lines if ln.startswith("-")
                                 and not ln.startswith("---")),
                     diff_more=max(0, len(lines) - DIFF_MAX_LINES),
                     diff="\n".join(lines[:DIFF_MAX_LINES]))
        out.append(v)
    return out


# ---- people: who acted (21 CFR Part 11 §11.10(e), Annex 11 §9 / §12.4) -----------------------

def people_actions(store, cfg, from_ms: int, to_ms: int, events: list[dict],
                   zones: set[str] | None) -> list[dict]:
    """What people did in the range (``StoreReaders.operator_actions``, refused attempts
    included), each with ``who`` = "Name (login)": the name recorded in the audit row, else
    the one on the matching event row (``actor_name``), else the login alone. ``zones``
    (None: all) keeps the actions on those zones, their alarms and their devices."""
    from facility.domain.display import person

    names = {}
    for e in events:
        if e.get("actor") and e.get("actor_name"):
            names[(e["actor"], f"{e['alarm_id']}#{e.get('occurrence')}")] = (
                e["actor_name"], e.get("actor_roles"))
    dev_zone = {d.id: d.zone for d in cfg.devices}
    known = {z.id for z in cfg.zones}
    out = []
    for a in store.operator_actions(from_ms, to_ms):
        subject = a.get("subject") or ""
        where = _subject_zone(subject, dev_zone)
        if zones is not None and where in known and where not in zones:
            continue  # another zone's; site-wide actions (configuration, hazmat) stay
        name, roles = a.get("name"), a.get("roles")
        if not name:
            name, ev_roles = names.get((a["login"], subject), (None, None))
            roles = roles or ev_roles
        if isinstance(roles, (list, tuple)):
            roles = ", ".join(roles)
        out.append({**a, "name": name, "roles": roles, "who": person(name, a["login"])})
    return out


def _subject_zone(subject: str, dev_zone: dict) -> str | None:
    """The zone an action's subject (zone, device, ``alarm#occurrence``) belongs to."""
    if subject in dev_zone:
        return dev_zone[subject]
    point = subject.split("#", 1)[0].split(":", 1)[0]
    if point.split(".", 1)[0] in dev_zone:
        return dev_zone[point.split(".", 1)[0]]
    return point.split(".", 1)[0] or None


# ---- instruments: status and calibration (ISO 21501-4) --------------------------------------

def instruments(cfg, cat: Catalogue, events: list[dict], actions: list[dict], at_ms: int,
                zones: set[str] | None) -> list[dict]:
    """Per device of the reported zones: its calibration (``calibration_status`` on the
    report's last day at the device's site), its own health alarms raised in the range (not
    the limits of what it measures) and the out-of-service actions on it."""
    from datetime import datetime, timezone

    from facility.catalogue import calibration_status
    from facility.domain.timeparse import zone_of

    tzs = {s.id: s.timezone for s in cfg.sites}
    out = []
    for d in cfg.devices:
        if zones is not None and d.zone not in zones:
            continue
        today = datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc).astimezone(
            zone_of(tzs.get(d.site, "UTC"))).date()
        status, days = calibration_status(d, today)
        health = sorted({e["alarm_id"] for e in events if e["event"] == "raise"
                         and e["alarm_id"].startswith(d.id + ".")
                         and not e["alarm_id"].split(":", 1)[-1].startswith(("action", "alert"))})
        oos = [a for a in actions if a.get("subject") == d.id and a["action"] in ("oos", "return")]
        out.append({"device": d.id, "zone": d.zone, "profile": d.profile or "",
                    "location": d.location or d.description or "",
                    "calibrated_on": d.calibrated_on, "calibration_due": d.calibration_due,
                    "status": status, "days": days, "health_alarms": health, "oos": oos})
    return out


# ---- data completeness: samples stored vs expected ------------------------------------------

def completeness(cfg, cat: Catalogue, points: dict[int, dict], counts: dict[str, list[int]],
                 from_ms: int, to_ms: int, zones: set[str] | None,
                 count_to_ms: int | None = None) -> list[dict]:
    """Samples stored against those expected in ``[from_ms, min(to_ms, now))`` from each
    point's interval (its stale time ÷ 3: the scan interval, or a particle counter's record
    time; docs/ARCHITECTURE.md "Stale"). One row per particle-counter location, counting its
    records (the most stored of its channels: one record carries every channel), and one per
    other measured point."""
    from facility.domain.model import now_ms

    span = max(0, min(to_ms, count_to_ms if count_to_ms is not None else now_ms()) - from_ms)
    devices = {d.id: d for d in cfg.devices}
    stored = {p["point"] for p in points.values()}
    groups: dict[str, dict] = {}
    for p in cat.points:
        if p.kind != "measured" or p.id not in stored or not p.stale_after_s:
            continue
        if zones is not None and p.zone not in zones:
            continue
        dev = devices.get(p.device)
        interval_ms = p.stale_after_s * 1000 / 3
        expected = int(span // interval_ms) if interval_ms > 0 else 0
        counter = p.quantity.startswith("particle_")
        key = p.device if counter else p.id
        g = groups.setdefault(key, {"location": key, "zone": p.zone, "points": 0,
                                    "interval_s": interval_ms / 1000, "expected": 0,
                                    "stored": 0, "good": 0,
                                    "where": (dev.location or dev.description or "") if dev else ""})
        n, good = counts.get(p.id, (0, 0))
        g["points"] += 1
        g["expected"] = max(g["expected"], expected)
        g["stored"] = max(g["stored"], n)
        g["good"] = max(g["good"], good)
    for g in groups.values():
        g["ratio"] = min(1.0, g["stored"] / g["expected"]) if g["expected"] else None
        g["good_ratio"] = min(1.0, g["good"] / g["expected"]) if g["expected"] else None
    return sorted(groups.values(), key=lambda g: (g["zone"] or "", g["location"]))


def prepared_by(cfg) -> dict:
    """Who prepares the report: this process's login, with the operator's name where the
    configuration has one (the approval block's first line, 21 CFR Part 11 §11.50)."""
    import getpass
    import os

    from facility.domain.display import person

    try:
        login = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (container); fall back to the uid
        login = f"uid {os.getuid()}"
    op = next((o for o in getattr(cfg, "operators", ()) if o.login == login), None)
    return {"login": login, "name": op.name if op else None,
            "who": person(op.name if op else None, login)}
