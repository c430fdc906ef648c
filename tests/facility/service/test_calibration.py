"""Calibration tracking (docs/ARCHITECTURE.md "Calibration tracking").

``calibration_status`` against explicit dates; the daily evaluation through a real alarm book;
and a real service (simulator, SQLite) raising one ``<device>:calibration`` alarm for an
overdue instrument, once, kept across a restart. Dates in the service test are far in the past
or future, so it does not depend on the day it runs.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from zoneinfo import ZoneInfo

import pytest

from facility.catalogue import calibration_status
from facility.config.loader import load_config
from facility.domain.vocab import ALARM_KINDS
from facility.service.alarm_book import AlarmBook
from facility.service.calibration import CalibrationWatch, alarm_id
from facility.store import Store
from tests.fixtures.service import make_config, wait_for

HK = ZoneInfo("Asia/Hong_Kong")
D = datetime.date


def _dev(due, on=None):
    cfg = load_config("config.toml")
    return dataclasses.replace(cfg.devices[0], calibration_due=due, calibrated_on=on)


@pytest.mark.parametrize("due,today,expected", [
    (D(2027, 1, 1), D(2026, 12, 1), ("ok", 31)),
    (D(2026, 12, 31), D(2026, 12, 1), ("due_soon", 30)),   # 30 days before: the warning
    (D(2026, 12, 2), D(2026, 12, 1), ("due_soon", 1)),
    (D(2026, 12, 1), D(2026, 12, 1), ("due_soon", 0)),     # the due day is still in calibration
    (D(2026, 11, 30), D(2026, 12, 1), ("overdue", -1)),    # the day after: overdue
    (D(2025, 12, 1), D(2026, 12, 1), ("overdue", -365)),
])
def test_calibration_status_by_date(due, today, expected):
    assert calibration_status(_dev(due, D(2025, 1, 1)), today) == expected


def test_no_due_date_is_nothing_to_track():
    assert calibration_status(_dev(None), D(2026, 12, 2)) == ("ok", None)
    assert "calibration" in ALARM_KINDS


def _ms(y, m, d, hh=0, mm=0, ss=0):
    return int(datetime.datetime(y, m, d, hh, mm, ss, tzinfo=HK).timestamp() * 1000)


def test_evaluated_at_start_then_once_a_day_at_the_sites_midnight():
    cfg = load_config("config.toml")
    pc = dataclasses.replace(cfg.devices[0], calibration_due=D(2026, 12, 10))
    dp = dataclasses.replace(cfg.devices[11], calibration_due=D(2026, 1, 1))  # long overdue
    cfg = dataclasses.replace(cfg, devices=(pc, dp) + tuple(
        dataclasses.replace(d, calibration_due=None) for d in cfg.devices[1:11]))
    watch = CalibrationWatch(cfg)
    metas = watch.metas()
    assert set(metas) == {alarm_id(pc.id), alarm_id(dp.id)}
    m = metas[alarm_id(pc.id)]
    assert (m.kind, m.priority, m.device, m.zone, m.point, m.critical) == (
        "calibration", "low", pc.id, pc.zone, None, False)
    assert "ISO 21501-4" in m.source and "calibration_due=2026-12-10" in m.source
    book = AlarmBook(cfg, metas, 1)
    # first check (the service's first cycle): the overdue transmitter raises
    assert watch.check(book, _ms(2026, 12, 10, 9)) == [alarm_id(dp.id)]
    st = book.states[alarm_id(dp.id)]
    assert st.state.value == "UNACK" and st.onset_ms == _ms(2026, 1, 2)  # first day past due
    raise_row = book.pending.events[-1]
    assert raise_row["event"] == "raise" and json.loads(raise_row["details"])[
        "days_overdue"] == 343
    # the same day again, and the due day itself until midnight: nothing
    assert watch.check(book, _ms(2026, 12, 10, 9, 0, 1)) == []
    assert watch.check(book, _ms(2026, 12, 10, 23, 59, 59)) == []
    assert not book.states[alarm_id(pc.id)].active
    # the next local day: the counter is overdue
    assert watch.check(book, _ms(2026, 12, 11, 0, 0, 1)) == [alarm_id(pc.id)]
    assert book.states[alarm_id(pc.id)].onset_ms == _ms(2026, 12, 11)
    assert watch.check(book, _ms(2026, 12, 12, 8)) == []  # still overdue: not raised again
    # a new configuration with the new due date (a restart), the book as restored: clears
    fresh = dataclasses.replace(cfg, devices=(dataclasses.replace(pc, calibration_due=D(
        2027, 12, 11)), dp) + cfg.devices[2:])
    again = CalibrationWatch(fresh)
    assert again.check(book, _ms(2026, 12, 12, 9)) == [alarm_id(pc.id)]
    assert not book.states[alarm_id(pc.id)].active
    assert book.states[alarm_id(pc.id)].state.value == "RTNUN"  # still to be acknowledged


def test_priority_follows_alarms_priorities():
    cfg = load_config("config.toml")
    cfg = dataclasses.replace(cfg, alarms=dataclasses.replace(
        cfg.alarms, priorities={**cfg.alarms.priorities, "calibration": "medium"}))
    assert {m.priority for m in CalibrationWatch(cfg).metas().values()} == {"medium"}


def test_the_service_raises_an_overdue_calibration_once_and_keeps_it(tmp_path, receiver,
                                                                     start_service):
    cfg = make_config(tmp_path, receiver.url)
    devs = {d.id: d for d in cfg.devices}
    cfg = dataclasses.replace(cfg, devices=(
        dataclasses.replace(devs["DP-1"], calibrated_on=D(2019, 1, 2),
                            calibration_due=D(2020, 1, 2)),          # overdue whenever it runs
        dataclasses.replace(devs["GD-1"], calibration_due=D(2999, 1, 1))))
    run = start_service(cfg)
    aid = "DP-1:calibration"
    assert wait_for(lambda: run.state(aid).state.value == "UNACK")
    assert not run.state("GD-1:calibration").active
    occ = run.state(aid).occurrence
    run.stop()
    with Store(cfg.db_path, readonly=True) as store:
        row = next(a for a in store.alarms() if a["id"] == aid)
    details = row["details"] if isinstance(row["details"], dict) else json.loads(row["details"])
    assert details["kind"] == "calibration" and details["device"] == "DP-1"
    assert row["priority"] == "low" and "calibration_due=2020-01-02" in row["source"]
    run = start_service(cfg)  # a restart: the same occurrence, not raised again
    assert run.state(aid).occurrence == occ and run.state(aid).active
    run.stop()
    assert not [p for p in receiver.pages if aid in json.dumps(p)]  # low: not paged
