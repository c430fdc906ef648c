"""The simulator's normal plant is compliant in every mode, at every time of day.

Real parts, simulated time: every device of the shipped ``config.toml`` is played by the
simulator's own units (``SimUnit.action``, the function pymodbus calls for each request) on a
clock the test moves, so minutes pass in milliseconds. Counters are read by the production
``sensors.counter.Counter.scan`` and live points decoded with ``sensors.registers.decode``,
as the poller does; the socket between them is the only part left out (it carries the same
registers). The samples then go through the service's ``Deriver`` (cascades, gas exposure)
and the backtest (``facility.records.backtest.compiled`` + ``alarms.backtest.run_backtest``):
the catalogue's rules and the engine kernels the service runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import statistics
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from alarms.backtest import SampleArrays, run_backtest
from facility.catalogue import build_catalogue
from facility.config.loader import load_config
from facility.domain.model import Quality, Sample
from facility.records.backtest import compiled
from facility.service.derive import Deriver
from facility.service.operator_actions import scheduled_mode as service_scheduled_mode
from sensors.counter import Counter
from sensors.registers import decode, register_count
from sensors.simulator import BITS_SIZE, HOLDING_SIZE, INPUT_SIZE, Simulator
from sensors.simulator_physics import scheduled_mode, zone_tz

HK = ZoneInfo("Asia/Hong_Kong")
RUN_S = 200  # more than 3 simulated minutes per mode and time of day
TIMES_OF_DAY = ((2, 0), (7, 40), (13, 0), (21, 30))  # night, after the 07:30 switch, noon, evening
MONDAY = datetime.date(2026, 11, 30)  # a working day of the MARS schedule


class SimClient:
    """The counter's Modbus client, answered by the simulated unit's own action."""

    def __init__(self, unit):
        self.unit, self.map = unit, unit.cmap
        self.holding, self.input = [0] * HOLDING_SIZE, [0] * INPUT_SIZE

    async def read(self, table: str, address: int, count: int) -> list[int]:
        fc, regs = (3, self.holding) if table == "holding" else (4, self.input)
        assert await self.unit.action(fc, 0, address, count, regs, None) is None
        return regs[address:address + count]

    async def select_record(self, index: int) -> None:
        assert await self.unit.action(6, 0, self.map.record_index, 1, self.holding,
                                      [index & 0xFFFF]) is None


def _live_samples(unit, t_rel: float, ts_ms: int) -> list[Sample]:
    """What the poller's ``_poll_live`` decodes from the unit's registers at ``t_rel``."""
    out = []
    images = {}
    for table, fc, size in (("coil", 1, BITS_SIZE), ("discrete", 2, BITS_SIZE),
                            ("holding", 3, HOLDING_SIZE), ("input", 4, INPUT_SIZE)):
        if any(p.table == table for p in unit.points):
            regs = [0] * size
            unit._fill_live(fc, regs, t_rel)
            images[table] = regs
    for p in unit.points:
        regs = images[p.table]
        if p.table in ("coil", "discrete"):
            word, bit = divmod(p.address, 16)
            out.append(Sample(p.id, ts_ms, float((regs[word] >> bit) & 1), Quality.GOOD))
            continue
        n = register_count(p.type, p.count)
        value, q = decode(regs[p.address:p.address + n], p.type, p.order, bit=p.bit,
                          scale=p.scale, offset=p.offset, decimals=p.decimals, nan=p.nan)
        out.append(Sample(p.id, ts_ms, value, q))
    return out


async def _drive(cfg, t0_s: float, seconds: int) -> list[Sample]:
    """Every device scanned at its scan_s for ``seconds`` of simulated time from ``t0_s``."""
    clock = [t0_s]
    sim = Simulator(cfg, clock=lambda: clock[0], prefill=0)  # never started: no sockets
    counters, live = {}, []
    for dev_id, unit in sim.units.items():
        dev = unit.dev
        if unit.counter is not None:
            counters[dev_id] = Counter(dev, SimClient(unit), "Asia/Hong_Kong",
                                       cfg.alarms.clock_tolerance_s)
        else:
            live.append(unit)
    scans = {d.id: d.scan_s for d in cfg.devices}
    due = {d.id: t0_s for d in cfg.devices}
    samples: list[Sample] = []
    for k in range(seconds * 2 + 1):  # half-second steps
        t = t0_s + k / 2
        clock[0] = t
        ts_ms = int(round(t * 1000))
        for dev_id, counter in counters.items():
            if t >= due[dev_id]:
                samples += await counter.scan(ts_ms)
                due[dev_id] += scans[dev_id]
        for unit in live:
            if t >= due[unit.dev.id]:
                samples += _live_samples(unit, t - sim.start_s, ts_ms)
                due[unit.dev.id] += scans[unit.dev.id]
    return samples


def _plant(mode: str):
    """The shipped plant with every zone held in ``mode`` (no schedule moving it)."""
    shipped = load_config("config.toml")
    zones = tuple(dataclasses.replace(z, occupancy=mode, schedule=()) for z in shipped.zones)
    return dataclasses.replace(shipped, zones=zones)


def _alarms(cfg, samples: list[Sample]) -> list[dict]:
    """Raises of the rules in force in each zone's mode, as the service's engine makes them."""
    cat = build_catalogue(cfg)
    deriver = Deriver(cat, cfg)
    by_ts: dict[int, list[Sample]] = {}
    for s in samples:
        by_ts.setdefault(s.ts_ms, []).append(s)
    every = []
    for ts in sorted(by_ts):  # one service cycle per instant
        every += by_ts[ts] + deriver.derive(by_ts[ts])
    every.sort(key=lambda s: s.ts_ms)
    rules, ids, stale = compiled(cfg)
    index = {pid: i for i, pid in enumerate(ids)}
    rows = [s for s in every if s.point in index]
    v = np.array([np.nan if s.value is None else s.value for s in rows], dtype=np.float64)
    q = np.array([int(s.quality) for s in rows], dtype=np.int8)
    arrays = SampleArrays(point_ids=tuple(ids),
                          point=np.array([index[s.point] for s in rows], dtype=np.int64),
                          ts=np.array([s.ts_ms / 1000.0 for s in rows], dtype=np.float64),
                          value=v, quality=q, good=(q == int(Quality.GOOD)) & np.isfinite(v),
                          row=np.arange(len(rows), dtype=np.int64))
    used = {ids[i] for i in np.unique(arrays.point)}
    assert {s.point.split(".")[0] for s in samples} == {d.id for d in cfg.devices}
    return [t for t in run_backtest([r for r in rules if r[0] in used], arrays,
                                    stale_after_s={k: v for k, v in stale.items() if k in used})
            if t["event"] == "raise"]


@pytest.mark.parametrize("mode", ["at_rest", "in_operation"])
def test_normal_plant_raises_no_alarm_in_either_mode_at_any_time_of_day(mode):
    cfg = _plant(mode)
    raised = []
    for hh, mm in TIMES_OF_DAY:
        t0 = datetime.datetime.combine(MONDAY, datetime.time(hh, mm), HK).timestamp()
        samples = asyncio.run(_drive(cfg, t0, RUN_S))
        for d in cfg.devices:
            if d.profile == "particle-counter":  # every record of the run was read, good
                got = {s.ts_ms for s in samples if s.point == f"{d.id}.pc_0_5um" and s.good}
                assert len(got) >= RUN_S // d.sample_s >= 1, (d.id, len(got))
        raised += [(f"{hh:02d}:{mm:02d}", r["point"], r["limit"], r["value"])
                   for r in _alarms(cfg, samples)]
    assert not raised, f"{len(raised)} alarms in the normal plant {mode}: {raised[:10]}"


def test_particle_levels_follow_the_mode():
    """A grade C room at rest is far below its at-rest limit; in operation it carries more
    particles, still below its in-operation limit (EU GMP Annex 1 Table 5)."""
    t0 = datetime.datetime.combine(MONDAY, datetime.time(13, 0), HK).timestamp()
    means = {}
    for mode in ("at_rest", "in_operation"):
        samples = asyncio.run(_drive(_plant(mode), t0, RUN_S))
        vals = [s.value for s in samples if s.point == "MARS-PC-08.pc_0_5um" and s.good]
        assert vals
        means[mode] = statistics.mean(vals)
        limit = {"at_rest": 352_000, "in_operation": 3_520_000}[mode]
        assert max(vals) < 0.5 * limit, (mode, max(vals))
    assert means["in_operation"] > 3 * means["at_rest"], means


def test_the_simulator_reads_a_schedule_as_the_service_does():
    cfg = load_config("config.toml")
    zone = cfg.zone("MARS-LINE1")
    assert zone.schedule, "the shipped MARS rooms have a schedule"
    tz = zone_tz(cfg, zone)
    start = datetime.datetime(2026, 11, 28, 0, 0, tzinfo=HK)  # a Saturday, then Sunday, Monday
    seen = set()
    for minutes in range(0, 3 * 24 * 60, 17):
        t = (start + datetime.timedelta(minutes=minutes)).timestamp()
        service = service_scheduled_mode(zone.schedule, tz, int(t * 1000))
        mine = scheduled_mode(zone, tz, t)
        assert mine == (service[0] if service else zone.occupancy), minutes
        seen.add(mine)
    assert seen == {"at_rest", "in_operation"}


def test_set_mode_overrides_the_schedule_and_a_ramp_keeps_the_switch_safe():
    cfg = load_config("config.toml")
    t = [datetime.datetime.combine(MONDAY, datetime.time(13, 0), HK).timestamp()]
    sim = Simulator(cfg, clock=lambda: t[0], prefill=0)
    counter = sim.units["MARS-PC-08"].counter
    assert counter.class_at(t[0]) == 8  # grade C in operation (the schedule, 13:00 Monday)
    sim.set_mode("MARS-LINE1", "at_rest")
    assert counter.class_at(t[0]) == 7  # grade C at rest
    sim.set_mode("MARS-LINE1", None)
    evening = datetime.datetime.combine(MONDAY, datetime.time(20, 0), HK).timestamp()
    assert counter.class_at(evening + 1) == 7  # at rest at once after 20:00
    morning = datetime.datetime.combine(MONDAY, datetime.time(7, 30), HK).timestamp()
    assert counter.class_at(morning + 60) == 7  # still at-rest levels during the ramp
    assert counter.class_at(morning + 60 + counter.sample_s + counter.ramp_s) == 8
    with pytest.raises(ValueError):
        sim.set_mode("MARS-LINE1", "asleep")
