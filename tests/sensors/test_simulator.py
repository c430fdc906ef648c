"""Simulator scenarios: garbage is never a value, scripted timeline, determinism."""

import asyncio
import time

from facility.config import load_config
from facility.domain.model import Quality
from sensors.poller import poll_once
from sensors.simulator import DEMO_TIMELINE, Simulator
from tests.fixtures.wait import DEADLINE_S


def by_point(samples):
    return {s.point: s for s in samples}


GARBLED = ("MEC-DP-01.dp", "MEC-TH-01.temperature", "MEC-TH-01.humidity", "MEC-GD-01.conc",
           "MARS-IO-01.supply_fan_hz", "MEC-DGM-01.exhaust_flow")


async def test_garbage_gives_bad_quality_never_a_value():
    cfg = load_config("config.toml")
    async with Simulator(cfg, ephemeral=True, scenario="garbage") as sim:
        # on a busy machine a read may time out (COMM): poll again until every unit answered,
        # and check on every poll that no garbled or unanswered read became a value
        end = time.monotonic() + DEADLINE_S
        while True:
            got = by_point(await poll_once(sim.client_config()))
            assert all(got[pid].value is None for pid in GARBLED), got
            if all(got[pid].quality != Quality.COMM for pid in GARBLED) or \
                    time.monotonic() > end:
                break
    for pid in GARBLED:
        assert got[pid].quality == Quality.BAD and got[pid].value is None, pid
    assert got["MEC-PC-01.device_error"].value == 1  # records made now carry device error -> BAD


async def test_scripted_events():
    cfg = load_config("config.toml")
    async with Simulator(cfg, ephemeral=True) as sim:
        assert sim.set_scenario("door-open") and sim.units["MEC-DP-01"].scenario == "door-open"
        assert sim.set_scenario("gas-leak") == ["MEC-GD-01"]
        got = by_point(await poll_once(sim.client_config()))
        assert got["MEC-IO-01.door_litho"].value == 1 and abs(got["MEC-DP-01.dp"].value) < 5
        assert got["MEC-GD-01.alarm_high"].value == 1 and got["MEC-GD-01.conc"].value > 0.01
        assert got["MEC-GD-02.alarm_high"].value == 0
        task = sim.schedule([(0.1, "normal", None)])
        await asyncio.wait_for(task, 2)
        got = by_point(await poll_once(sim.client_config()))
        assert got["MEC-IO-01.door_litho"].value == 0 and got["MEC-DP-01.dp"].value > 10
    assert [t for t, *_ in DEMO_TIMELINE if _[0] != "normal"] == [10, 25, 40]


async def test_particle_excursion_exceeds_the_class_limit():
    cfg = load_config("config.toml")
    async with Simulator(cfg, ephemeral=True, record_s=60, prefill=0, devices=["MEC-PC-01"]) as sim:
        sim.set_scenario("particle-excursion", "MEC-PC-01")
        c = sim.units["MEC-PC-01"].counter
        c.buffer.append(c.make_record(int(sim.now_s()), "particle-excursion"))
        got = by_point(await poll_once(sim.client_config(), "MEC-PC-01"))
    assert got["MEC-PC-01.pc_0_5um"].value > 3520  # ISO 5 limit at 0.5 um


def test_same_seed_same_records():
    cfg = load_config("config.toml")
    a = Simulator(cfg, seed=7, devices=["MEC-PC-01"]).units["MEC-PC-01"].counter.buffer
    b = Simulator(cfg, seed=7, devices=["MEC-PC-01"]).units["MEC-PC-01"].counter.buffer
    c = Simulator(cfg, seed=8, devices=["MEC-PC-01"]).units["MEC-PC-01"].counter.buffer
    assert [r.counts for r in a] == [r.counts for r in b] != [r.counts for r in c]


def test_normal_particle_levels_are_compliant_in_every_mode_of_every_grade():
    """The normal scenario draws a GMP room's counts from the stricter mode's class, so a room
    the schedule puts at rest at night stays below its at-rest alert level (a 0.7 alert
    fraction of the Annex 1 Table 5 action limit) as well as below its in-operation one."""
    from types import SimpleNamespace

    from alarms.standards import annex1_limit
    from sensors.simulator_physics import NORMAL_FRACTION, iso_limit_per_m3, zone_iso

    checked = 0
    for grade in "ABCD":
        for occupancy in ("at_rest", "in_operation"):  # whatever the config says
            zone = SimpleNamespace(iso_class=None, gmp_grade=grade, occupancy=occupancy)
            for size in (0.5, 5.0):
                top = iso_limit_per_m3(zone_iso(zone), size) * NORMAL_FRACTION[1]
                for mode in ("at_rest", "in_operation"):
                    limit = annex1_limit(grade, mode, size)
                    if limit is not None:
                        assert top < 0.7 * limit, (grade, occupancy, size, mode, top, limit)
                        checked += 1
    assert checked >= 24
