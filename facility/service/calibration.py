"""Calibration alarms: one per device whose ``calibration_due`` has passed.

docs/ARCHITECTURE.md "Calibration tracking": a calibration goes out of date by the calendar,
not by a sample, so it is evaluated on the first cycle after start and then once a day (when
the device's site's local date changes), never per sample. An overdue calibration raises
``<device>:calibration`` through the alarm book, like the service's stale and comm alarms,
and clears once the configuration carries a new ``calibration_due`` (a restart with the new
file). The 30-day warning before is an advisory (check-config, TUI device screen, report),
not an alarm: nothing needs doing within a shift, and ISA-18.2 keeps alarms for what needs a
timely response.

Priority: ``[alarms.priorities] calibration``, default ``low`` (ISA-18.2 / EEMUA 191's mix
is mostly low; a calibration lapse questions the data's validity but hurts nobody within
the hour). A site that wants it paged raises it to ``medium``.
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from alarms.lifecycle import Event
from facility.catalogue import calibration_status
from facility.config.schema import Config, Device
from facility.service.alarm_book import AlarmBook, AlarmMeta

KIND = "calibration"
DEFAULT_PRIORITY = "low"


def alarm_id(device_id: str) -> str:
    """``<device>:calibration``."""
    return f"{device_id}:{KIND}"


def _source(dev: Device) -> str:
    what = ("ISO 21501-4: particle counters are calibrated yearly"
            if dev.profile == "particle-counter" else "the instrument's calibration interval")
    return f"devices[{dev.id}].calibration_due={dev.calibration_due.isoformat()} ({what})"


def _tz(cfg: Config, dev: Device) -> datetime.tzinfo:
    site = next((s for s in cfg.sites if s.id == dev.site), None)
    try:
        return ZoneInfo(site.timezone) if site is not None else datetime.timezone.utc
    except (KeyError, ValueError):  # the loader checks time zones; a bad one here reads as UTC
        return datetime.timezone.utc


def local_date(cfg: Config, dev: Device, now_ms: int) -> datetime.date:
    """The date at the device's site (its ``timezone``) at ``now_ms``."""
    return datetime.datetime.fromtimestamp(now_ms / 1000.0, _tz(cfg, dev)).date()


class CalibrationWatch:
    """The calibration alarms of a configuration and when they were last evaluated."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.devices = [d for d in cfg.devices if d.calibration_due is not None]
        self.priority = cfg.alarms.priorities.get(KIND, DEFAULT_PRIORITY)
        self._checked: dict[str, datetime.date] = {}  # device -> local date last evaluated
        self._next_ms = 0  # the next local midnight of any device's site: nothing to do before

    def metas(self) -> dict[str, AlarmMeta]:
        """Alarm metadata for every device with a ``calibration_due``."""
        return {alarm_id(d.id): AlarmMeta(alarm_id(d.id), None, d.zone, d.site, None,
                                          _source(d), self.priority, False, KIND, None, d.id)
                for d in self.devices}

    def check(self, book: AlarmBook, now_ms: int) -> list[str]:
        """Raise or clear each device's calibration alarm if its local date changed since the
        last check (the first call evaluates every device). Returns the alarm ids changed."""
        changed: list[str] = []
        if now_ms < self._next_ms:
            return changed
        nxt = None
        for dev in self.devices:
            tz = _tz(self.cfg, dev)
            today = local_date(self.cfg, dev, now_ms)
            midnight = datetime.datetime.combine(today + datetime.timedelta(days=1),
                                                 datetime.time(), tzinfo=tz).timestamp()
            nxt = midnight if nxt is None else min(nxt, midnight)
            if self._checked.get(dev.id) == today:
                continue
            self._checked[dev.id] = today
            aid = alarm_id(dev.id)
            status, days = calibration_status(dev, today)
            st = book.states.get(aid)
            if st is None:
                continue
            overdue = status == "overdue"
            if overdue == st.active:
                continue
            if overdue:
                # onset: the first day past due, midnight at the site
                onset = datetime.datetime.combine(
                    dev.calibration_due + datetime.timedelta(days=1), datetime.time(), tzinfo=tz)
                book.apply(aid, Event.RAISE, now_ms=now_ms,
                           ts_ms=min(now_ms, int(onset.timestamp() * 1000)), by="engine",
                           detail={"calibration_due": dev.calibration_due.isoformat(),
                                   "days_overdue": -days})
            else:
                book.apply(aid, Event.CLEAR, now_ms=now_ms, by="engine",
                           detail={"calibration_due": dev.calibration_due.isoformat()})
            changed.append(aid)
        self._next_ms = int(nxt * 1000) if nxt is not None else 2**62
        return changed
