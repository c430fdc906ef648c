"""Stale timing and design suppression in the real service (docs/ARCHITECTURE.md "Stale", "Alert and
action", "Alarm lifecycle").

A real ``Service`` is started on a real SQLite file with a real simulator behind its
pollers; the test then drives the service's own cycle steps (``_evaluate`` and ``_timers``,
what ``Service.cycle`` runs) with samples and times it chooses, so every onset and
detection time is exact and nothing waits on the wall clock. What an auditor sees is read
back from the database after a clean stop.
"""

from __future__ import annotations

import asyncio

import pytest

from facility.config import parse_config
from facility.domain.model import Quality, Sample, now_ms
from facility.service.service import Service
from facility.store import Store
from sensors.simulator import Simulator
from tests.fixtures.config import device, facility_toml, zone

T1, T2 = "TH-1.temperature", "TH-2.temperature"
STALE_MS = 3000  # 3 x scan_s of 1.0 s (docs/ARCHITECTURE.md "Stale" default)
LIMITS = {"temperature": {"action_high": {"limit": 25.0}, "alert_high": {"limit": 24.0},
                          "alert_low": {"limit": 16.0}, "action_low": {"limit": 15.0}}}


@pytest.fixture
def cfg(tmp_path):
    text = facility_toml(
        storage={"path": str(tmp_path / "fms.db")},
        zones=[zone("Z1", iso_class=7)],
        devices=[device("TH-1", 15031, zone="Z1", scan_s=1.0, timeout_s=0.5,
                        profile="th-transmitter"),
                 device("TH-2", 15032, zone="Z1", scan_s=1.0, timeout_s=0.5,
                        profile="th-transmitter")],
        alarms={"defaults": LIMITS})
    return parse_config(text, base_dir=str(tmp_path))


class Session:
    """One start of the real service; ``step`` is one cycle at a chosen time."""

    def __init__(self, cfg):
        self.cfg = cfg

    async def __aenter__(self):
        self.sim = Simulator(self.cfg, ephemeral=True, record_s=2)
        await self.sim.start()
        self.svc = Service(self.sim.client_config(self.cfg), cycle_s=1.0)
        await self.svc.start()
        self.t0 = now_ms() + 1000  # the test's own clock starts after the service's
        return self

    async def __aexit__(self, *exc):
        await self.svc.stop()  # writes everything pending in one transaction
        await self.sim.stop()

    def step(self, at_ms: int, samples=()) -> None:
        samples = list(samples)
        self.svc._evaluate(samples, at_ms)
        self.svc._timers(at_ms)

    def state(self, aid):
        return self.svc.book.states[aid]


def _events(cfg, aid):
    with Store(cfg.db_path, readonly=True) as store:
        return [(e["event"], e["ts_ms"], e["detected_ms"]) for e in store.events(alarm_id=aid)]


def test_stale_raises_at_last_good_plus_stale_after_and_clears_at_the_next_good(cfg):
    aid = f"{T1}:stale"

    async def scenario():
        async with Session(cfg) as s:
            t = s.t0
            s.step(t, [Sample(T1, t, 20.0), Sample(T2, t, 20.0)])
            s.step(t + STALE_MS - 1)
            assert not s.state(aid).active  # one millisecond before its deadline
            s.step(t + STALE_MS)
            assert s.state(aid).active and s.state(aid).state.value == "UNACK"
            s.step(t + 3500, [Sample(T1, t + 3400, None, Quality.BAD)])
            assert s.state(aid).active  # only a good sample ends it
            s.step(t + 4200, [Sample(T1, t + 4000, 21.0), Sample(T1, t + 4100, 21.5)])
            assert not s.state(aid).active
            # stays clear while samples keep coming, raises again after the next gap
            s.step(t + 7099, [Sample(T1, t + 5000, 21.0)])
            assert not s.state(aid).active
            s.step(t + 8400)  # a late cycle: the onset is still the deadline
            assert s.state(aid).active
            return t

    t = asyncio.run(scenario())
    assert _events(cfg, aid) == [
        ("raise", t + STALE_MS, t + STALE_MS),  # onset: last good + stale_after_s
        ("clear", t + 4100, t + 4200),  # onset: the newest good sample of the cycle
        ("raise", t + 5000 + STALE_MS, t + 8400),
    ]


def test_alert_is_design_suppressed_while_the_action_of_its_side_is_active(cfg):
    high_alert, high_action = f"{T1}:alert_high", f"{T1}:action_high"
    low_alert = f"{T1}:alert_low"

    async def scenario():
        async with Session(cfg) as s:
            t = s.t0
            s.step(t, [Sample(T1, t, 24.5)])
            assert s.state(high_alert).state.value == "UNACK"
            assert not s.state(high_alert).suppressed_by
            s.step(t + 1000, [Sample(T1, t + 1000, 26.0)])
            assert s.state(high_action).state.value == "UNACK"
            assert s.state(high_alert).state.value == "DSUPR"
            assert s.state(high_alert).suppressed_by == {"design"}
            assert s.state(high_alert).active  # both rules run; reports count both
            assert not s.state(high_action).suppressed_by
            assert "design" not in s.state(low_alert).suppressed_by  # the other side
            s.step(t + 2000, [Sample(T1, t + 2000, 24.5)])  # action clears, alert stays
            assert not s.state(high_action).active
            assert s.state(high_alert).active and not s.state(high_alert).suppressed_by
            assert s.state(high_alert).state.value == "UNACK"
            s.step(t + 3000, [Sample(T1, t + 3000, 14.0)])  # the low side, both levels
            assert s.state(f"{T1}:action_low").active
            assert s.state(low_alert).suppressed_by == {"design"}
            assert not s.state(high_alert).suppressed_by

    asyncio.run(scenario())
    kinds = [e for e, _ts, _d in _events(cfg, high_alert)]
    assert kinds == ["raise", "suppress:design", "unsuppress:design", "clear"]
    assert [e for e, _ts, _d in _events(cfg, high_action)] == ["raise", "clear"]


def test_a_dead_devices_stale_points_are_suppressed_by_its_comm_alarm(cfg):
    async def scenario():
        async with Session(cfg) as s:
            comm = next(r for r in s.svc.cat.rules if r.alarm_id == "TH-1:comm")
            on, off = int(comm.on_delay_s * 1000), int(comm.off_delay_s * 1000)
            t = s.t0
            s.step(t, [Sample(T1, t, 20.0), Sample(T2, t, 20.0),
                       Sample("TH-1.comm_ok", t, 1.0), Sample("TH-2.comm_ok", t, 1.0)])
            # TH-1 stops answering at t + 1 s; TH-2 answers until then too
            s.step(t + 1000, [Sample("TH-1.comm_ok", t + 1000, 0.0), Sample(T2, t + 1000, 20.0)])
            late = t + 1000 + max(on, STALE_MS + 1000)
            s.step(late, [Sample("TH-1.comm_ok", late, 0.0)])
            assert s.state("TH-1:comm").active and not s.state("TH-2:comm").active
            dead, alive = s.state(f"{T1}:stale"), s.state(f"{T2}:stale")
            assert dead.active and alive.active
            assert dead.suppressed_by == {"design"} and dead.state.value == "DSUPR"
            assert not alive.suppressed_by and alive.state.value == "UNACK"
            back = late + 1000  # answers again, for comm_clear_s
            s.step(back, [Sample("TH-1.comm_ok", back, 1.0)])
            s.step(back + off, [Sample("TH-1.comm_ok", back + off, 1.0)])
            assert not s.state("TH-1:comm").active
            assert s.state(f"{T1}:stale").active and not s.state(f"{T1}:stale").suppressed_by

    asyncio.run(scenario())


def test_a_restored_stale_alarm_stays_raised_until_the_next_good_sample(cfg):
    aid = f"{T1}:stale"

    async def first():
        async with Session(cfg) as s:
            s.step(s.t0, [Sample(T1, s.t0, 20.0)])
            s.step(s.t0 + STALE_MS)
            assert s.state(aid).active
            return s.state(aid).occurrence, s.t0 + STALE_MS

    async def second():
        async with Session(cfg) as s:
            assert s.state(aid).active  # restored from its row
            t = s.t0
            s.step(t)  # no data yet: not cleared
            assert s.state(aid).active
            s.step(t + 500, [Sample(T1, t + 400, 20.0)])  # the first good sample clears it
            assert not s.state(aid).active
            # a point without data stays raised as long as it lasts: one occurrence
            other = s.state(f"{T2}:stale")  # TH-2 never answered: restored active
            s.step(t + 2 * STALE_MS, [Sample(T1, t + 2 * STALE_MS, 20.0)])
            assert s.state(f"{T2}:stale") == other and other.active
            return s.state(aid).occurrence, t + 400

    occurrence, raised_ms = asyncio.run(first())
    again, good_ms = asyncio.run(second())
    assert again == occurrence  # one occurrence across the restart
    assert [(e, ts) for e, ts, _d in _events(cfg, aid)] == [("raise", raised_ms),
                                                            ("clear", good_ms)]
