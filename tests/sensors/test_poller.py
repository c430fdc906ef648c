"""Pollers against the simulator on ephemeral ports: bad devices never delay good ones."""

import asyncio
import json
import socket

import pytest

from facility.config import load_config, parse_config
from facility.domain.model import Quality
from sensors.modbus import Connection, CounterClient, UnitClient, WriteRefused
from sensors.points import expand_points
from sensors.poller import Poller, format_poll_json, poll_command, poll_once
from sensors.simulator import Simulator

HEAD = """
[facility]
id = "t"
[[sites]]
id = "S"
timezone = "Asia/Hong_Kong"
[[zones]]
id = "Z"
site = "S"
iso_class = 5
reference = "ambient"
min_dp_pa = 10
"""


def dev(id_, port, profile="dp-transmitter", unit=1, scan_s=0.2, timeout_s=0.15, extra=""):
    return f"""
[[devices]]
id = "{id_}"
site = "S"
zone = "Z"
host = "127.0.0.1"
port = {port}
unit = {unit}
scan_s = {scan_s}
timeout_s = {timeout_s}
retries = 0
profile = "{profile}"
{extra}"""


class Collector:
    def __init__(self):
        self.samples = []

    def __call__(self, batch):
        self.samples.extend(batch)

    def of(self, point):
        return [s for s in self.samples if s.point == point]


async def run_for(poller, seconds):
    poller.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        await poller.stop()


async def test_bad_devices_never_delay_good_ones_and_recover():
    cfg = parse_config(HEAD + dev("G1", 1001) + dev("G2", 1002) + dev("SLOW", 1003, timeout_s=0.15)
                       + dev("EXC", 1004) + dev("REF", 1005))
    async with Simulator(cfg, ephemeral=True) as sim:
        sim.set_scenario("slow-device", "SLOW")
        sim.set_scenario("exceptions", "EXC")
        await sim.refuse("REF")
        got = Collector()
        poller = Poller(sim.client_config(), got, base_backoff_s=0.2, max_backoff_s=0.4)
        poller.start()
        await asyncio.sleep(2.0)
        for d in ("G1", "G2"):
            cycles = poller.devices()[d].health.cycles
            assert cycles >= 8, f"{d} polled only {cycles} times in 2 s at 0.2 s"
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
        await asyncio.sleep(1.5)
        await poller.stop()
        later = got.samples[mark:]
        for d in ("SLOW", "EXC", "REF"):
            assert any(s.point == f"{d}.dp" and s.quality == Quality.GOOD and s.value > 5 for s in later), d


async def test_dead_unit_behind_gateway_does_not_starve_neighbours():
    th = lambda u: dev(f"TH{u}", 1100, "th-transmitter", unit=u, scan_s=0.3, timeout_s=0.08)  # noqa: E731
    cfg = parse_config(HEAD + th(1) + th(2) + th(3))
    async with Simulator(cfg, ephemeral=True) as sim:
        sim.set_scenario("offline", "TH2")
        got = Collector()
        poller = Poller(sim.client_config(), got, dead_probe_s=1.0)
        await run_for(poller, 2.4)
        p = poller.devices()
        assert p["TH1"].health.cycles >= 6 and p["TH3"].health.cycles >= 6
        assert p["TH2"].health.cycles <= 5, "a dead unit must only be probed every dead_probe_s"
        assert all(s.quality == Quality.GOOD for s in got.of("TH1.temperature") + got.of("TH3.humidity"))
        assert {s.quality for s in got.of("TH2.temperature")} == {Quality.COMM}
        sim.set_scenario("normal", "TH2")
        poller2 = Poller(sim.client_config(), got, dead_probe_s=1.0)
        await run_for(poller2, 0.8)
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
    cfg = parse_config(HEAD + dev("DEAD", port))
    lines, code = poll_command(cfg, as_json=True)
    assert code == 3
    rows = [json.loads(line) for line in lines]
    dp = next(r for r in rows if r["point"] == "DEAD.dp")
    assert dp == {"device": "DEAD", "point": "DEAD.dp", "ts": dp["ts"], "value": None,
                  "quality": "comm", "unit": "Pa"}
    assert dp["ts"].endswith("Z") and len(dp["ts"]) == 24
    with pytest.raises(KeyError):
        poll_command(cfg, device="NOPE")


def test_format_json_non_finite_is_null_bad():
    from facility.domain.model import Sample

    cfg = parse_config(HEAD + dev("D", 1))
    (line,) = format_poll_json([Sample("D.dp", 1_700_000_000_123, float("nan"), Quality.GOOD)], cfg)
    assert json.loads(line) == {"device": "D", "point": "D.dp", "ts": "2023-11-14T22:13:20.123Z",
                                "value": None, "quality": "bad", "unit": "Pa"}


def test_write_path_is_structural():
    public = lambda cls: {n for n in dir(cls) if not n.startswith("_")}  # noqa: E731
    assert not any("write" in n for n in public(UnitClient) | public(Connection))
    assert public(CounterClient) - public(UnitClient) == {"select_record"}
    cfg = parse_config(HEAD + dev("D", 1))
    with pytest.raises(WriteRefused):
        CounterClient(Connection("127.0.0.1", 1), cfg.devices[0])
    import pathlib

    src = "".join(p.read_text() for p in pathlib.Path("sensors").glob("*.py") if p.name != "simulator.py")
    assert src.count("write_register(") == 1 and "write_registers(" not in src and "write_coil" not in src
