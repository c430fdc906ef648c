"""System health alarms as conditions over a window, with on/off delays (docs/ARCHITECTURE.md
"The monitoring watches itself"; ISA-18.2 hysteresis, ISA-18.2 / EEMUA 191).

A real ``Service`` runs on a real SQLite file with a real simulator behind its pollers; the
test drives ``HealthProbe.samples`` and the service's own cycle steps (``_evaluate`` and
``_timers``, what ``Service.cycle`` runs) on a clock it chooses, one step per 1 s cycle.
That compresses minutes into a fraction of a second: "a slow device for 2 minutes" is 120
such cycles, not 2 real minutes. Skipped runs reach the poller through its real scheduler
listener (``Poller._on_event`` with APScheduler's own event); free disk and clock sync come
from readers the test passes to the probe, since a test cannot fill the host's disk or
unsynchronise its clock. What an auditor sees is read back from the database after a stop.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent

from facility.domain.model import now_ms
from facility.service.health import HealthProbe
from facility.service.service import Service
from facility.store import Store
from sensors.simulator import Simulator
from tests.fixtures.service import make_config

CYCLE_MS = 1000
DP_SKIPS, GD_SKIPS = "system.DP-1:skipped_runs", "system.GD-1:skipped_runs"
SYSTEM = ("system:loop_lag", "system:disk_low", "system:clock_unsynced", DP_SKIPS, GD_SKIPS)


class Readings:
    """What the probe reads from the host at each once-a-minute check, in turn."""

    def __init__(self, values):
        self.values = list(values)
        self.calls = 0

    def __call__(self):
        v = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return v


class Session:
    """One start of the real service with its own probe; ``step`` is one cycle."""

    def __init__(self, cfg, disk=(50_000.0,), clock=(False,)):
        self.cfg, self.disk, self.clock = cfg, Readings(disk), Readings(clock)

    async def __aenter__(self):
        self.sim = Simulator(self.cfg, ephemeral=True, record_s=2)
        await self.sim.start()
        self.svc = Service(self.sim.client_config(self.cfg), cycle_s=CYCLE_MS / 1000)
        await self.svc.start()
        self.probe = HealthProbe(self.svc.cfg, self.svc.db_path, CYCLE_MS / 1000,
                                 free_disk_mb=self.disk, clock_unsynced=self.clock)
        self.t = now_ms() + 1000  # the test's own clock starts after the service's
        self.job = {p.device.id: jid for jid, j in self.svc.poller.jobs.items() for p in j.pollers}
        return self

    async def __aexit__(self, *exc):
        await self.svc.stop()
        await self.sim.stop()

    def skip(self, device: str) -> None:
        """The scheduler reports a missed run of the job polling ``device``."""
        self.svc.poller._on_event(JobExecutionEvent(EVENT_JOB_MISSED, self.job[device], None,
                                                    datetime.now(timezone.utc)))

    def step(self, lag_s: float = 0.0) -> None:
        self.t += CYCLE_MS
        samples = self.probe.samples(self.t, lag_s, self.svc.poller)
        self.svc._evaluate(samples, self.t)
        self.svc._timers(self.t)

    def active(self, aid) -> bool:
        return self.svc.book.states[aid].active


def _events(cfg, aid):
    with Store(cfg.db_path, readonly=True) as store:
        return [e["event"] for e in store.events(alarm_id=aid)]


def test_a_slow_device_for_2_minutes_raises_each_alarm_at_most_once(tmp_path):
    """DP-1's poll job misses every other run for 120 cycles (skipped scans: 30 per minute),
    and every other cycle starts 3 s late: the connection's alarm raises once, names DP-1,
    and clears a minute after the misses leave the window; the loop-lag alarm never raises
    (no two consecutive late cycles) and GD-1's connection is not blamed."""
    cfg = make_config(tmp_path, "http://127.0.0.1:9")

    async def scenario():
        async with Session(cfg) as s:
            for _ in range(5):
                s.step()
            for i in range(120):
                if i % 2:
                    s.skip("DP-1")
                s.step(lag_s=3.0 if i % 2 else 0.0)
                if i == 10:  # 5 skips in the window: more than k=3
                    assert s.active(DP_SKIPS)
            assert s.active(DP_SKIPS) and not s.active(GD_SKIPS)
            assert not s.active("system:loop_lag")
            source = s.svc.book.metas[DP_SKIPS].source
            for _ in range(60):  # the misses leave the 60 s window
                s.step()
            assert s.active(DP_SKIPS)  # the off delay is still running
            for _ in range(65):
                s.step()
            assert not s.active(DP_SKIPS)
            return source

    source = asyncio.run(scenario())
    assert "DP-1" in source and "more than 3 skipped scans in 60 s" in source, source
    assert _events(cfg, DP_SKIPS).count("raise") == 1
    assert _events(cfg, DP_SKIPS).count("clear") == 1
    for aid in SYSTEM:
        assert _events(cfg, aid).count("raise") <= 1, (aid, _events(cfg, aid))
    assert _events(cfg, GD_SKIPS) == [] and _events(cfg, "system:loop_lag") == []


def test_skipped_runs_up_to_k_in_60s_raise_nothing(tmp_path):
    cfg = make_config(tmp_path, "http://127.0.0.1:9")

    async def scenario():
        async with Session(cfg) as s:
            for i in range(300):  # 3 skips every 61 s: never more than 3 in one window
                if i % 61 in (0, 1, 2):
                    s.skip("DP-1")
                s.step()
                assert not s.active(DP_SKIPS), i

    asyncio.run(scenario())
    assert _events(cfg, DP_SKIPS) == []


def test_loop_lag_raises_when_sustained_over_two_cycles(tmp_path):
    cfg = make_config(tmp_path, "http://127.0.0.1:9")

    async def scenario():
        async with Session(cfg) as s:
            s.step()
            s.step(lag_s=5.0)  # one late cycle: not a lagging loop
            s.step()
            assert not s.active("system:loop_lag")
            s.step(lag_s=5.0)
            s.step(lag_s=5.0)  # two in a row: over 2 x cycle_s, sustained
            assert s.active("system:loop_lag")
            s.step()
            s.step()
            assert s.active("system:loop_lag")  # off delay: two cycles without lag
            s.step()
            s.step()
            assert not s.active("system:loop_lag")

    asyncio.run(scenario())
    assert _events(cfg, "system:loop_lag") == ["raise", "clear"]


def test_disk_and_clock_raise_on_the_second_bad_reading_and_clear_after_three_good(tmp_path):
    """Readings once a minute (limit storage.free_disk_min_mb = 1024 MB, deadband 5 %)."""
    cfg = make_config(tmp_path, "http://127.0.0.1:9")
    disk = [5000, 500, 5000, 500, 500, 500, 1050, 5000, 5000, 5000]
    clock = [False, True, False, True, True, True, False, True, False, False, False]
    raised_at: dict[str, list[int]] = {"system:disk_low": [], "system:clock_unsynced": []}

    async def scenario():
        async with Session(cfg, disk=disk, clock=clock) as s:
            for _ in range(60 * len(clock)):
                s.step()
                for aid, seen in raised_at.items():
                    if s.active(aid) and (not seen or seen[-1] != s.disk.calls):
                        seen.append(s.disk.calls)
            return s.active("system:disk_low"), s.active("system:clock_unsynced")

    disk_on, clock_on = asyncio.run(scenario())
    assert not disk_on and not clock_on
    # raised on the 5th reading (the 2nd consecutive bad one), a single occurrence each
    assert raised_at["system:disk_low"][0] == 5 and raised_at["system:clock_unsynced"][0] == 5
    # disk: 1050 MB is within the deadband, so the run of good readings starts at the 8th;
    # it clears on the 10th. Clock: the 8th reading breaks the run; it clears on the 11th.
    assert raised_at["system:disk_low"][-1] == 9
    assert raised_at["system:clock_unsynced"][-1] == 10
    assert _events(cfg, "system:disk_low") == ["raise", "clear"]
    assert _events(cfg, "system:clock_unsynced") == ["raise", "clear"]
