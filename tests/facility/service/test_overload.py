"""Overload is visible, never silent (docs/ARCHITECTURE.md "The monitoring watches itself").

A real poller polls a real Modbus server on 127.0.0.1 (the simulator) and a real service runs
over a real SQLite file. Overload is what it is in the plant: the process is too busy to run
its poll jobs and cycles on time. Here the event loop is held busy (a callback that spins
until the poller's own schedule is two scans behind: a condition, not a duration), so the
poll job comes back too late for the next turns. Every turn passed over is counted in
``skipped_runs``, kept as a gap, stored by the service as a ``poll_gap`` audit row and raised as
the connection's ``skipped_runs`` self-monitoring alarm; every lost engine cycle is counted,
stored as a ``cycle_gap`` row and raised as ``system:lost_cycles``. The configuration itself is
valid (check-config refuses timeouts that do not fit in a scan, so a slow device alone cannot
overrun a job). Waits are on conditions; nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import time

from facility.config import parse_config
from facility.service.service import Service
from facility.store import Store
from sensors.poller import Poller
from sensors.simulator import Simulator
from tests.fixtures.config import device, facility_toml, zone
from tests.fixtures.wait import until

SCAN_S = 0.2


def facility(db: str | None = None, tmp_path=None):
    return parse_config(facility_toml(
        storage={"path": db} if db else None,
        zones=[zone("Z", iso_class=7, area_m2=10)],
        devices=[device("TH-1", 1001, zone="Z", scan_s=SCAN_S, timeout_s=0.15, retries=0,
                        profile="th-transmitter")],
        alarms={"skipped_runs_max": 0}),  # every skipped scan in the window alarms
        base_dir=str(tmp_path) if tmp_path else ".")


def hog(poller, cycles: int = 0, cycle_s: float = 0.0) -> None:
    """Keep the event loop busy until the poller is two scans behind its schedule (and,
    for a service, ``cycles`` cycles of ``cycle_s`` have gone by)."""
    (p,) = [p for j in poller.jobs.values() for p in j.pollers]
    due = p.next_due + 2 * p.device.scan_s
    until_t = max(due, time.monotonic() + cycles * cycle_s)
    while time.monotonic() < until_t:
        pass


async def test_a_late_poll_job_s_passed_over_turns_are_counted_and_kept_as_gaps():
    cfg = facility()
    async with Simulator(cfg, ephemeral=True) as sim:
        got: list = []
        busy = {"done": False}

        def on_samples(batch):
            got.extend(batch)
            if not busy["done"] and len(got) > 10:  # the consumer stalls the loop once
                busy["done"] = True
                hog(poller)

        poller = Poller(sim.client_config(), on_samples)
        poller.start()
        try:
            assert await until(lambda: busy["done"] and any(
                j.turns_skipped for j in poller.jobs.values()))
        finally:
            await poller.stop()
        (job,) = poller.jobs.values()
        assert poller.skipped_runs >= job.turns_skipped > 0
        gaps = poller.take_gaps()
        assert gaps and all(g["device"] == "TH-1" and g["turns"] >= 1 for g in gaps)
        assert all(g["from_ms"] <= g["to_ms"] for g in gaps)
        assert sum(g["turns"] for g in gaps) == job.turns_skipped
        assert poller.take_gaps() == []  # taken once


async def test_an_overloaded_service_stores_its_gaps_and_raises_its_alarms(tmp_path):
    cfg = facility(str(tmp_path / "fms.db"), tmp_path)
    skipped, lost = "system.TH-1:skipped_runs", "system:lost_cycles"
    async with Simulator(cfg, ephemeral=True) as sim:
        svc = Service(sim.client_config(cfg), cycle_s=0.5)
        task = asyncio.create_task(svc.run())
        try:
            assert await until(lambda: task.done() or svc.cycles >= 2)
            assert not task.done(), task.result()
            assert not svc.book.states[lost].active and svc.lost_cycles == 0
            hog(svc.poller, cycles=4, cycle_s=svc.cycle_s)  # the loop stalls: an overload
            assert await until(lambda: task.done() or (
                svc.book.states[skipped].active and svc.book.states[lost].active))
            assert not task.done(), task.result()
            assert svc.poller.skipped_runs > 0 and svc.lost_cycles >= 2
        finally:
            svc.stopping.set()
            await task
    with Store(cfg.db_path, readonly=True) as store:
        poll_gaps = store.audit_rows(action="poll_gap")
        cycle_gaps = store.audit_rows(action="cycle_gap")
        events = {aid: [e["event"] for e in store.events(alarm_id=aid)] for aid in (skipped, lost)}
    assert poll_gaps and all(g["subject"] == "TH-1" for g in poll_gaps)
    assert cycle_gaps and sum(g["details"]["lost"] for g in cycle_gaps) >= 2, cycle_gaps
    assert all("raise" in ev for ev in events.values()), events
