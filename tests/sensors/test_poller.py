"""Pollers against the simulator on ephemeral ports: bad devices never delay good ones."""

import json
import socket

import pytest

from facility.cli.service import format_poll_json
from facility.config import load_config, parse_config
from facility.domain.model import Quality
from sensors.modbus import Connection, CounterClient, UnitClient, WriteRefused
from sensors.points import expand_points
from sensors.poller import (
    DEAD_AFTER_FAILURES,
    Poller,
    UnknownDevice,
    poll_once,
    read_once,
)
from sensors.simulator import Simulator
from tests.fixtures.config import device, facility_toml, zone
from tests.fixtures.wait import until

ZONE = zone("Z", iso_class=5, reference="ambient", min_dp_pa=10)


def dev(id_, port, profile="dp-transmitter", unit=1, scan_s=0.2, timeout_s=0.15, **more):
    return device(id_, port, zone="Z", unit=unit, scan_s=scan_s, timeout_s=timeout_s, retries=0,
                  profile=profile, **more)


def facility(*devices):
    """One ISO 5 zone and the given devices, validated."""
    return parse_config(facility_toml(zones=[ZONE], devices=list(devices)))


class Collector:
    def __init__(self):
        self.samples = []

    def __call__(self, batch):
        self.samples.extend(batch)

    def of(self, point):
        return [s for s in self.samples if s.point == point]


def _failed(poller, device, kind):
    return poller.devices()[device].health.errors[kind]


async def test_bad_devices_never_delay_good_ones_and_recover():
    cfg = facility(dev("G1", 1001), dev("G2", 1002), dev("SLOW", 1003, timeout_s=0.15),
                   dev("EXC", 1004), dev("REF", 1005))
    async with Simulator(cfg, ephemeral=True) as sim:
        sim.set_scenario("slow-device", "SLOW")
        sim.set_scenario("exceptions", "EXC")
        await sim.refuse("REF")
        got = Collector()
        poller = Poller(sim.client_config(), got, base_backoff_s=0.2, max_backoff_s=0.4)
        poller.start()
        # every bad device fails in its own way, repeatedly, while the good ones keep
        # being polled (each device has its own job; none waits for another's time-out)
        assert await until(lambda: _failed(poller, "SLOW", "timeout") >= 3
                           and _failed(poller, "EXC", "exception") >= 3
                           and _failed(poller, "REF", "refused") >= 3
                           and min(poller.devices()[d].health.cycles for d in ("G1", "G2")) >= 8
                           and any(".errors_" in s.point for s in got.samples)), \
            {d: (p.health.cycles, p.health.errors) for d, p in poller.devices().items()}
        for d in ("G1", "G2"):
            assert all(s.quality == Quality.GOOD for s in got.of(f"{d}.dp"))
        assert {s.quality for s in got.of("SLOW.dp")} == {Quality.COMM}
        assert {s.quality for s in got.of("EXC.dp")} == {Quality.BAD}
        assert {s.quality for s in got.of("REF.dp")} == {Quality.COMM}
        assert all(s.value is None for d in ("SLOW", "EXC", "REF") for s in got.of(f"{d}.dp"))
        health = {s.point: s.value for s in got.samples if ".errors_" in s.point or ".comm_ok" in s.point}
        assert health["SLOW.errors_timeout"] >= 1 and health["SLOW.comm_ok"] == 0
        assert health["EXC.errors_exception"] >= 1 and health["EXC.comm_ok"] == 1
        assert health["REF.errors_refused"] >= 1 and health["REF.comm_ok"] == 0
        # recovery, by themselves
        sim.set_scenario("normal")
        await sim.accept("REF")
        mark = len(got.samples)

        def recovered(d):
            return any(s.point == f"{d}.dp" and s.quality == Quality.GOOD and s.value > 5
                       for s in got.samples[mark:])

        await until(lambda: all(recovered(d) for d in ("SLOW", "EXC", "REF")))
        await poller.stop()
        for d in ("SLOW", "EXC", "REF"):
            assert recovered(d), d


async def test_dead_unit_behind_gateway_does_not_starve_neighbours():
    # the timeout leaves room for a reconnect on a busy machine: after TH2 times out the shared
    # socket is closed and TH1/TH3 reconnect within their own timeout
    th = lambda u: dev(f"TH{u}", 1100, "th-transmitter", unit=u, scan_s=1.0, timeout_s=0.3)  # noqa: E731
    cfg = facility(th(1), th(2), th(3))
    async with Simulator(cfg, ephemeral=True) as sim:
        sim.set_scenario("offline", "TH2")
        got = Collector()
        # a probe interval longer than the test: once TH2 is dead it must not be polled at all
        poller = Poller(sim.client_config(), got, dead_probe_s=3600.0)
        p = poller.devices()
        poller.start()
        try:
            assert await until(lambda: p["TH2"].health.consecutive_failures >= DEAD_AFTER_FAILURES)
            dead_cycles = p["TH2"].health.cycles
            c1, c3 = p["TH1"].health.cycles, p["TH3"].health.cycles
            assert await until(lambda: p["TH1"].health.cycles >= c1 + 6
                               and p["TH3"].health.cycles >= c3 + 6), \
                "the live units behind the gateway stopped being polled"
        finally:
            await poller.stop()
        assert p["TH1"].health.cycles >= 6 and p["TH3"].health.cycles >= 6
        assert p["TH2"].health.cycles == dead_cycles, \
            "a dead unit must only be probed every dead_probe_s"
        assert dead_cycles == DEAD_AFTER_FAILURES
        assert all(s.quality == Quality.GOOD for s in got.of("TH1.temperature") + got.of("TH3.humidity"))
        assert {s.quality for s in got.of("TH2.temperature")} == {Quality.COMM}
        # back online: a fresh poller (no dead state) reads it again
        sim.set_scenario("normal", "TH2")
        mark = len(got.samples)
        poller2 = Poller(sim.client_config(), got, dead_probe_s=1.0)
        poller2.start()
        try:
            await until(lambda: any(s.point == "TH2.temperature" for s in got.samples[mark:]))
        finally:
            await poller2.stop()
        assert got.of("TH2.temperature")[-1].quality == Quality.GOOD


async def test_poll_once_whole_shipped_config():
    cfg = load_config("config.toml")
    async with Simulator(cfg, ephemeral=True) as sim:
        samples = await poll_once(sim.client_config())
    ids = {p.id for p in expand_points(cfg)}
    seen = {s.point: s for s in samples}
    assert ids == set(seen), sorted(ids ^ set(seen))[:10]
    bad = [s for s in samples if s.quality != Quality.GOOD and not s.point.endswith("last_good_age_s")]
    assert bad == []
    assert 10 < seen["MEC-DP-01.dp"].value < 20 and seen["MEC-DP-05.dp"].value < -10
    assert 15 < seen["MEC-TH-01.temperature"].value < 27 and 30 < seen["MEC-TH-01.humidity"].value < 60
    assert 0 <= seen["MEC-GD-01.conc"].value < 0.05 and seen["MEC-GD-01.alarm_high"].value == 0
    assert seen["MEC-IO-01.door_litho"].value == 0 and seen["MEC-IO-01.exhaust_gc01"].value < -50
    assert seen["MEC-PC-01.flow_cfm"].value == 1.0 and seen["MEC-PC-01.not_sampling"].value == 0
    # normal particle levels stay well below ISO 5 (3 520 /m3 >= 0.5 um)
    assert seen["MEC-PC-01.pc_0_5um"].value < 1000
    assert seen["MEC-PC-01.count_0_3um"].value >= seen["MEC-PC-01.count_0_5um"].value
    assert seen["MEC-PC-01.pc_0_5um"].ts_ms % 1000 == 0  # the record's own timestamp
    assert all(s.value == 1 for s in samples if s.point.endswith(".comm_ok"))


def test_poll_json_and_exit_3_when_every_device_is_dead():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    cfg = facility(dev("DEAD", port))
    result = read_once(cfg)
    assert result.all_dead  # the CLI exits 3
    rows = [json.loads(line) for line in format_poll_json(result.samples, cfg)]
    dp = next(r for r in rows if r["point"] == "DEAD.dp")
    assert dp == {"device": "DEAD", "point": "DEAD.dp", "ts": dp["ts"], "value": None,
                  "quality": "comm", "unit": "Pa"}
    assert dp["ts"].endswith("Z") and len(dp["ts"]) == 24
    with pytest.raises(UnknownDevice, match="'NOPE' is not configured"):
        read_once(cfg, device="NOPE")


def test_format_json_non_finite_is_null_bad():
    from facility.domain.model import Sample

    cfg = facility(dev("D", 1))
    (line,) = format_poll_json([Sample("D.dp", 1_700_000_000_123, float("nan"), Quality.GOOD)], cfg)
    assert json.loads(line) == {"device": "D", "point": "D.dp", "ts": "2023-11-14T22:13:20.123Z",
                                "value": None, "quality": "bad", "unit": "Pa"}


def test_write_path_is_structural():
    public = lambda cls: {n for n in dir(cls) if not n.startswith("_")}  # noqa: E731
    assert not any("write" in n for n in public(UnitClient) | public(Connection))
    assert public(CounterClient) - public(UnitClient) == {"select_record"}
    cfg = facility(dev("D", 1))
    with pytest.raises(WriteRefused):
        CounterClient(Connection("127.0.0.1", 1), cfg.devices[0])
    import pathlib

    src = "".join(p.read_text() for p in pathlib.Path("sensors").glob("*.py") if p.name != "simulator.py")
    assert src.count("write_register(") == 1 and "write_registers(" not in src and "write_coil" not in src
