"""Comm alarms with on/off delays in the real service (docs/ARCHITECTURE.md "Alarm
lifecycle": hysteresis on every alarm kind).

A real simulator serves the test facility on 127.0.0.1 ephemeral ports, the real service
polls it and pages a loopback receiver. The outages are the scenario the test drives (the
simulator's listeners closed, then opened again): their length is the point of the test, not
a wait; every other wait is on a condition with a generous deadline. The delays are the
shipped defaults: the arsine detector GD-1 (toxic, scan 0.5 s) raises after 5 s without an
answer, the pressure transmitter DP-1 after max(3 x 0.5 s, 10 s) = 10 s.
"""

from __future__ import annotations

import time
from collections import Counter

from facility.domain.model import now_ms
from facility.store import Store
from tests.fixtures.service import wait_for
from tests.fixtures.wait import hold

GD, DP = "GD-1:comm", "DP-1:comm"
RECONNECT_S = 90.0  # reconnect backoff (up to 30 s) plus the 5 s clear, on a loaded machine


def _triggers(receiver) -> Counter:
    """Trigger pages per alarm id; the host's unsynchronised clock (a real finding in a
    container) is not what these tests are about."""
    out: Counter = Counter()
    for p in receiver.pages:
        if p.get("action") == "trigger" and "clock_unsynced" not in p["dedup_key"]:
            out[p["dedup_key"].split(":", 1)[1].rsplit("#", 1)[0]] += 1
    return out


def _answering_since(run, device: str, t_ms: int) -> bool:
    """The device answered a read made after ``t_ms``."""
    h = run.call(lambda: run.svc.poller.devices()[device].health)
    return h.comm_ok == 1 and h.last_good_ms is not None and h.last_good_ms > t_ms


def _values(cfg, point: str, since_ms: int) -> list[float]:
    with Store(cfg.db_path, readonly=True) as store:
        return [r.value for r in store.iter_samples(since_ms, now_ms() + 1) if r.point == point]


def test_a_3s_simulator_outage_pages_nothing_and_leaves_a_comm_record(start_service, receiver):
    run = start_service()
    before = {aid: run.state(aid).occurrence for aid in (GD, DP)}
    paged = _triggers(receiver)
    t0 = now_ms()
    for dev in ("GD-1", "DP-1"):
        run.call(lambda d=dev: run.loop.create_task(run.sim.refuse(d)))
    assert wait_for(lambda: run.call(
        lambda: run.svc.poller.devices()["GD-1"].health.comm_ok) == 0), "the outage was not seen"
    hold(3.0)  # the outage itself: 3 s of no simulator
    for dev in ("GD-1", "DP-1"):
        run.call(lambda d=dev: run.loop.create_task(run.sim.accept(d)))
    back = now_ms()
    assert wait_for(lambda: all(_answering_since(run, d, back) for d in ("GD-1", "DP-1")),
                    RECONNECT_S), "the devices did not answer again"
    # a comm raise needs a failing read after the delay: with both answering, none can come
    c = run.cycles()
    assert wait_for(lambda: run.cycles() >= c + 4)
    assert {aid: run.state(aid).occurrence for aid in (GD, DP)} == before
    assert not run.state(GD).active and not run.state(DP).active
    cfg = run.cfg
    run.stop()
    assert _triggers(receiver) == paged, receiver.pages
    # the blip is on record: comm_ok went 0 and back to 1
    values = _values(cfg, "GD-1.comm_ok", t0)
    assert 0.0 in values and values[-1] == 1.0, values
    assert any(v >= 1 for v in _values(cfg, "GD-1.consecutive_failures", t0))


def test_a_30s_outage_of_one_gas_detector_pages_once_per_alarm(start_service, receiver):
    run = start_service()
    occ = run.state(GD).occurrence
    paged = _triggers(receiver)
    run.call(lambda: run.loop.create_task(run.sim.refuse("GD-1")))
    t0 = time.monotonic()
    assert wait_for(lambda: run.state(GD).active), "GD-1 lost for 30 s raised no comm alarm"
    assert run.state(GD).occurrence == occ + 1
    assert wait_for(lambda: _triggers(receiver)[GD] > paged[GD]), receiver.pages
    hold(max(0.0, 30.0 - (time.monotonic() - t0)))  # the rest of the 30 s outage
    run.call(lambda: run.loop.create_task(run.sim.accept("GD-1")))
    assert wait_for(lambda: not run.state(GD).active, RECONNECT_S), "GD-1:comm did not clear"
    c = run.cycles()  # the clear's own cycle and a few more, so a re-raise would show
    assert wait_for(lambda: run.cycles() >= c + 4)
    assert run.state(GD).occurrence == occ + 1  # one occurrence for the whole outage
    assert not run.state(DP).active  # the other device was never lost
    run.stop()
    new = _triggers(receiver) - paged
    assert new[GD] == 1, receiver.pages
    assert all(n == 1 for n in new.values()), new
