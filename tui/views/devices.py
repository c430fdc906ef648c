"""The devices screen: per instrument its communication health, and for a particle counter
its flow, laser, sample and hold time and how far its records lag; for every instrument the
calibration due date (docs/ARCHITECTURE.md "Values on screen", "Calibration tracking").

Values carry their unit and status points read as words, in the one format of
``facility.domain.display``.
"""

from __future__ import annotations

import datetime
from functools import lru_cache

from rich.text import Text

from facility.catalogue import calibration_status
from facility.config.schema import Config, Device
from facility.domain.display import fmt_value as fmt_reading
from tui.data import Snapshot
from tui.fmt import QUALITY_LABEL, fmt_duration, fmt_value, zone_info
from tui.views.common import site_tz

DEVICE_COLUMNS = ("Device", "Zone", "Comm", "Latency", "Fails", "Good age", "Clock", "Flow",
                  "Laser", "Sample / hold", "Record lag", "Calibration due", "Quality",
                  "Updated")

# Columns of the instrument section of a zone screen: the same facts, one line per device.
INSTRUMENT_COLUMNS = ("Instrument", "Comm", "Latency", "Faults", "Flow", "Record lag",
                      "Calibration due")

CALIBRATION_STYLE = {"ok": "green", "due_soon": "yellow", "overdue": "bold red"}

# Status points that mean an instrument's readings are not valid or not coming (a counter's:
# facility.catalogue RECORD_FAULTS; a gas detector's own fault bit), with the words the zone
# screen lists them as.
FAULT_WORDS = {"fault": "DETECTOR FAULT", "flow_fault": "FLOW FAULT",
               "laser_fault": "LASER FAULT", "device_error": "DEVICE ERROR",
               "not_sampling": "NOT SAMPLING", "clock_fault": "CLOCK FAULT", "service_due": "SERVICE DUE"}


@lru_cache(maxsize=16)
def _record_interval_s(profile: str | None) -> float | None:
    """The profile's default sample + hold time of a record-based instrument (None: live)."""
    if not profile:
        return None
    from sensors.profiles import ProfileError, load_profile

    try:
        counter = load_profile(profile).counter
    except ProfileError:
        return None
    return None if counter is None else counter.record_interval_s


def is_counter(d: Device) -> bool:
    """A record-based particle counter (its profile has a record map)."""
    return _record_interval_s(d.profile) is not None


def site_today(cfg: Config, d: Device, now_ms: int) -> datetime.date:
    """The date at the device's site now (a calibration is due on a site's date)."""
    tz = zone_info(site_tz(cfg, d.site))
    return datetime.datetime.fromtimestamp(now_ms / 1000.0, tz=tz).date()


def calibration_cell(d: Device, today: datetime.date) -> Text:
    """``2027-03-01 (98 d)``, ``2026-10-01 OVERDUE 53 d``, or ``not set`` (dim)."""
    if d.calibration_due is None:
        return Text("not set", style="dim")
    status, days = calibration_status(d, today)
    due = d.calibration_due.isoformat()
    if status == "overdue":
        return Text(f"{due} OVERDUE {-(days or 0)} d", style=CALIBRATION_STYLE[status])
    return Text(f"{due} ({days} d)", style=CALIBRATION_STYLE[status])


def _v(snap: Snapshot, point: str):
    value, q, _ts = snap.value(point)
    return value if q == 0 else None


def comm_cell(snap: Snapshot, d: Device) -> Text:
    comm = snap.value(f"{d.id}.comm_ok")[0]
    return (Text("--", style="dim") if comm is None else
            Text("OK", style="green") if comm >= 1 else Text("FAIL", style="bold red"))


def latency_cell(snap: Snapshot, d: Device) -> Text:
    lat = snap.value(f"{d.id}.latency_ms")[0]
    return Text(fmt_reading(lat, "ms") if lat is not None else "--")


def flow_cell(snap: Snapshot, d: Device) -> Text:
    """``1 CFM`` (``0.7 CFM FAULT`` in red when the counter flags its flow)."""
    if not is_counter(d):
        return Text("")
    flow = _v(snap, f"{d.id}.flow_cfm")
    fault = _v(snap, f"{d.id}.flow_fault")
    text = fmt_reading(flow, "CFM") if flow is not None else "--"
    if fault:
        return Text(f"{text} FAULT", style="bold red")
    return Text(text)


def laser_cell(snap: Snapshot, d: Device) -> Text:
    if not is_counter(d):
        return Text("")
    fault = _v(snap, f"{d.id}.laser_fault")
    if fault is None:
        return Text("--", style="dim")
    return Text("FAULT", style="bold red") if fault >= 0.5 else Text("ok", style="green")


def sample_cell(snap: Snapshot, d: Device) -> Text:
    """``60 s / 0 s``: the sample and hold time the counter reports (40033 / 40031); before
    it has answered, the configured sample time (``sample_s``) with the hold unknown, dim."""
    if not is_counter(d):
        return Text("")
    sample = _v(snap, f"{d.id}.sample_time_s")
    hold = _v(snap, f"{d.id}.hold_time_s")
    if sample is not None and hold is not None:
        return Text(f"{fmt_reading(sample, 's')} / {fmt_reading(hold, 's')}")
    if d.sample_s is not None:
        return Text(f"{fmt_reading(d.sample_s, 's')} / ?", style="dim")
    return Text("--", style="dim")


_by_points: list = [None, None, None]
"""The last ``snap.points`` seen (held, so its identity stays its own) and what
:func:`_point_groups` derived from it; the reader hands the same dict until points change."""


def _point_groups(snap: Snapshot) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """``(record channel, device)`` pairs and device -> its measured/derived points, worked
    out once per set of points rather than on every redraw."""
    if _by_points[0] is not snap.points:
        channels, per_dev = [], {}
        for name, row in snap.points.items():
            dev, _, short = name.partition(".")
            if short.startswith(("pc_", "count_")):
                channels.append((name, row.get("device") or dev))
            if row.get("kind") in ("measured", "derived", None):
                per_dev.setdefault(row.get("device") or dev, []).append(name)
        _by_points[:] = [snap.points, channels, per_dev]
    return _by_points[1], _by_points[2]


def newest_records(snap: Snapshot) -> dict[str, int]:
    """Device -> time of its newest stored record (its channel points' newest sample), over
    the record channels only (the screen redraws every second at 2 000 points)."""
    out: dict[str, int] = {}
    for name, dev in _point_groups(snap)[0]:
        ts = snap.value(name)[2]
        if ts is not None and ts > out.get(dev, -1):
            out[dev] = ts
    return out


def record_lag(snap: Snapshot, d: Device, newest: dict[str, int] | None = None) -> float | None:
    """Seconds since the newest stored record of a counter (``newest``: from
    :func:`newest_records`, computed here when not given)."""
    ts = (newest if newest is not None else newest_records(snap)).get(d.id)
    return None if ts is None else max(0.0, (snap.now_ms - ts) / 1000.0)


def lag_cell(snap: Snapshot, d: Device, newest: dict[str, int] | None = None) -> Text:
    """How far the records lag; yellow beyond 2, red beyond 3 record intervals (the stale
    time of a counter's channels, sensors/points.py: 3 x sample + hold)."""
    if not is_counter(d):
        return Text("")
    lag = record_lag(snap, d, newest)
    if lag is None:
        return Text("no record", style="dim")
    sample, hold = _v(snap, f"{d.id}.sample_time_s"), _v(snap, f"{d.id}.hold_time_s")
    interval = ((sample + hold) if sample is not None and hold is not None else None) \
        or d.sample_s or _record_interval_s(d.profile) or 60.0
    style = "bold red" if lag > 3 * interval else "yellow" if lag > 2 * interval else ""
    return Text(fmt_duration(lag), style=style)


def faults_cell(snap: Snapshot, d: Device) -> Text:
    """The fault words of an instrument that are set, else ``ok`` (blank for a device with
    no fault point)."""
    if not any(f"{d.id}.{name}" in snap.points for name in FAULT_WORDS):
        return Text("")
    on = [w for name, w in FAULT_WORDS.items() if (_v(snap, f"{d.id}.{name}") or 0) >= 0.5]
    return Text(", ".join(on), style="bold red") if on else Text("ok", style="green")


def device_rows(cfg: Config, snap: Snapshot) -> list[tuple[str, list]]:
    """One row per configured device."""
    per_dev = _point_groups(snap)[1]
    newest_rec = newest_records(snap)
    rows = []
    for d in cfg.devices:
        def v(name: str):
            return snap.value(f"{d.id}.{name}")[0]
        fails = v("consecutive_failures")
        age = v("last_good_age_s")
        offset = v("clock_offset_s")
        worst, newest = None, None
        for p in per_dev.get(d.id, ()):
            _val, q, ts = snap.value(p)
            if q is not None:
                worst = q if worst is None else max(worst, q)
            if ts is not None:
                newest = ts if newest is None else max(newest, ts)
        qual = (Text("--", style="dim") if worst is None else
                Text(QUALITY_LABEL.get(worst, "?"), style="green" if worst == 0 else "magenta"))
        off_style = "red" if offset is not None and abs(offset) > cfg.alarms.clock_tolerance_s else ""
        rows.append((d.id, [
            Text(d.id), Text(d.zone or d.site), comm_cell(snap, d), latency_cell(snap, d),
            Text(fmt_value(fails), style="red" if fails else ""),
            Text(fmt_duration(age) if age is not None else "--"),
            Text(fmt_reading(offset, "s", "clock_offset") if offset is not None else "",
                 style=off_style),
            flow_cell(snap, d), laser_cell(snap, d), sample_cell(snap, d), lag_cell(snap, d, newest_rec),
            calibration_cell(d, site_today(cfg, d, snap.now_ms)),
            qual,
            Text(fmt_duration((snap.now_ms - newest) / 1000) + " ago" if newest else "--"),
        ]))
    return rows


def instrument_rows(cfg: Config, snap: Snapshot, zone: str) -> list[tuple[str, list]]:
    """The instrument section of a zone screen: one line per device of the zone."""
    newest = newest_records(snap)
    rows = []
    for d in cfg.devices:
        if d.zone != zone:
            continue
        rows.append((d.id, [Text(d.id), comm_cell(snap, d), latency_cell(snap, d),
                            faults_cell(snap, d), flow_cell(snap, d), lag_cell(snap, d, newest),
                            calibration_cell(d, site_today(cfg, d, snap.now_ms))]))
    return rows
