"""Record-based particle counter: records once by their own time, backfill, lost, conflict."""

import pytest

from facility.config import parse_config
from facility.domain.model import Quality
from sensors.counter import concentration_per_m3
from sensors.poller import Poller
from sensors.simulator import Simulator
from tests.fixtures.config import device, facility_toml, zone
from tests.fixtures.wait import until

CFG = facility_toml(zones=[zone("Z", iso_class=7)],
                    devices=[device("PC", 2000, zone="Z", scan_s=0.3, timeout_s=0.2, retries=0,
                                    profile="particle-counter")])


class Collector(list):
    def __call__(self, batch):
        self.extend(batch)

    def of(self, name):
        return [s for s in self if s.point == f"PC.{name}"]


def test_concentration_formula():
    # 100 particles in 60 s at 1 CFM = 28.3168 L -> 3531.47 /m3
    assert concentration_per_m3(100, 1.0, 60) == pytest.approx(100 / 28.3168 * 1000)
    assert concentration_per_m3(5, 0.0, 60) is None


async def one_scan(sim, restore=None):
    got = Collector()
    poller = Poller(sim.client_config(), got, last_record_ts_ms=restore)
    (job,) = poller.jobs.values()
    got.extend(await job.cycle(force=True))
    poller.pool.close()
    return got, poller


async def test_backfill_after_outage_stores_every_record_exactly_once():
    cfg = parse_config(CFG)
    async with Simulator(cfg, ephemeral=True, record_s=1.0, prefill=3) as sim:
        got = Collector()
        poller = Poller(sim.client_config(), got, base_backoff_s=0.2, max_backoff_s=0.4)
        counter = sim.units["PC"].counter
        pc = poller.devices()["PC"]

        def stored():
            return [s.ts_ms for s in got.of("count_0_3um")]

        def newest_buffered():
            return counter.buffer[-1].ts_s * 1000

        def caught_up():  # every record the counter holds is stored
            return bool(stored()) and stored()[-1] == newest_buffered()

        poller.start()
        try:
            assert await until(lambda: len(stored()) >= 2 and caught_up())
            sim.set_scenario("counter-offline", "PC")
            last = stored()[-1]
            # the outage: reads fail while the counter keeps recording (three records or more)
            assert await until(lambda: pc.health.consecutive_failures > 0
                               and newest_buffered() - last >= 3000)
            assert pc.health.consecutive_failures > 0
            sim.set_scenario("normal", "PC")
            backlog = newest_buffered()
            # the backlog is read back, and recording goes on live after it
            assert await until(lambda: pc.health.consecutive_failures == 0 and caught_up()
                               and stored()[-1] > backlog), "the backlog was never read back"
        finally:
            await poller.stop()
        ts = stored()
        assert len(ts) == len(set(ts)), "a record was stored twice"
        assert ts == sorted(ts), "records must be stored oldest first"
        buffered = [r.ts_s * 1000 for r in counter.buffer if r.ts_s * 1000 >= ts[0]]
        assert ts == buffered[:len(ts)] and len(ts) >= len(buffered) - 1
        assert len(ts) >= 6
        assert max(s.value for s in got.of("records_lost") if s.value is not None) == 0
        assert {s.quality for s in got.of("flow_cfm")} == {Quality.GOOD, Quality.COMM}
        assert all(s.quality == Quality.GOOD for s in got.of("pc_0_5um"))
        # only the record index (40025 = address 24) was ever written; never 40002 (address 1)
        assert sim.writes and {a for _, a, _ in sim.writes} == {24}


async def test_wrapped_buffer_reports_records_lost():
    cfg = parse_config(CFG)
    async with Simulator(cfg, ephemeral=True, record_s=10.0, buffer_size=5, prefill=5) as sim:
        restored = sim.units["PC"].counter.buffer[0].ts_s * 1000 - 300_000
        got, poller = await one_scan(sim, {"PC": restored})
        buffered = [r.ts_s * 1000 for r in sim.units["PC"].counter.buffer]
    ts = [s.ts_ms for s in got.of("count_0_5um")]
    assert ts == buffered and len(ts) == 5
    (lost,) = got.of("records_lost")
    # lost period: from the newest stored record to the oldest buffered one, less one interval
    assert lost.value == pytest.approx((buffered[0] - restored) / 1000 - 10, abs=1)
    assert poller.newest_record_ms()["PC"] == ts[-1]


async def test_restored_state_stores_nothing_twice():
    cfg = parse_config(CFG)
    async with Simulator(cfg, ephemeral=True, record_s=10.0, prefill=5) as sim:
        newest = sim.units["PC"].counter.buffer[-1].ts_s * 1000
        got, _ = await one_scan(sim, {"PC": newest})
        assert got.of("count_0_3um") == []
        got, _ = await one_scan(sim, {"PC": newest - 20_000})
        assert [s.ts_ms for s in got.of("count_0_3um")] == [newest - 10_000, newest]


async def test_record_conflict_and_flow_fault_and_disabled_channel():
    cfg = parse_config(CFG)
    async with Simulator(cfg, ephemeral=True, record_s=10.0, prefill=3) as sim:
        got = Collector()
        poller = Poller(sim.client_config(), got)
        (job,) = poller.jobs.values()
        got.extend(await job.cycle(force=True))
        c = sim.units["PC"].counter
        last = c.buffer[-1]
        c.buffer[-1] = type(last)(last.ts_s, last.sample_time_s, last.location, last.status,
                                  tuple(n + 7 for n in last.counts))
        sim.set_scenario("flow-fault", "PC")
        sim.units["PC"].disabled_channels = {1.0}
        c.buffer.append(c.make_record(last.ts_s + 10, "flow-fault"))
        job.pollers[0].next_due = 0
        got.extend(await job.cycle(force=True))
        poller.pool.close()
    assert got.of("record_conflict")[-1].value == 1
    assert got.of("flow_fault")[-1].value == 1
    newest = [s for s in got if s.ts_ms == (last.ts_s + 10) * 1000]
    assert newest and all(s.quality == Quality.BAD for s in newest)
    assert not [s for s in newest if s.point in ("PC.count_1_0um", "PC.pc_1_0um")]
    rec = c.buffer[-1]
    (c05,) = [s for s in newest if s.point == "PC.count_0_5um"]
    assert c05.value == rec.counts[1] + rec.counts[3]  # 0.5 + 5.0 (1.0 disabled)


async def test_clock_offset_beyond_tolerance_marks_records_bad():
    cfg = parse_config(CFG)
    async with Simulator(cfg, ephemeral=True, record_s=10.0, prefill=2) as sim:
        sim.clock_skew_s["PC"] = 600
        got, _ = await one_scan(sim)
    assert got.of("clock_fault")[0].value == 1
    assert 595 <= got.of("clock_offset_s")[0].value <= 605
    assert all(s.quality == Quality.BAD for s in got.of("pc_0_3um"))


async def test_scan_reports_the_sample_and_hold_time_of_the_instrument():
    # the devices screen shows them (docs/ARCHITECTURE.md "Values on screen")
    cfg = parse_config(CFG)
    async with Simulator(cfg, ephemeral=True, record_s=7.0, hold_s=3.0, prefill=1) as sim:
        got, _poller = await one_scan(sim)
        assert [s.value for s in got.of("sample_time_s")] == [7.0]
        assert [s.value for s in got.of("hold_time_s")] == [3.0]
