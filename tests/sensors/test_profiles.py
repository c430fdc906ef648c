"""Profiles: TOML data, legal options, register NUMBERS vs protocol ADDRESSES, point expansion."""

import pytest

from facility.config import load_config, parse_config
from sensors.points import expand_points, point_infos, point_problems
from sensors.profiles import ProfileError, available, load_profile, protocol_address
from tests.fixtures.config import device, facility_toml, site, zone

CONFIG = "config.toml"


def test_every_shipped_profile_loads():
    assert {"particle-counter", "dp-transmitter", "th-transmitter", "gas-detector",
            "dg-store-monitor"} <= set(available())
    for name in available():
        load_profile(name)


def test_register_numbers_vs_protocol_addresses():
    assert protocol_address(40001) == ("holding", 0)
    assert protocol_address(40025) == ("holding", 24)
    assert protocol_address(40002) == ("holding", 1)
    assert protocol_address(30001) == ("input", 0)
    assert protocol_address(31009) == ("input", 1008)
    assert protocol_address(10002) == ("discrete", 1)
    m = load_profile("particle-counter").counter
    # the ONLY written register is 40025 -> address 24; the command register 40002 is address 1
    assert m.record_index == 24
    assert m.command == 1 and m.record_index != m.command
    assert (m.map_version, m.status, m.flow, m.record_count) == (0, 2, 22, 23)
    assert (m.rtc, m.hold_time, m.sample_time, m.last_sample_ts) == (26, 30, 32, 59)
    assert [c.address for c in m.channels] == [8, 10, 12, 14]
    assert [c.enable_address for c in m.channels] == [1008, 1010, 1012, 1014]
    assert m.holding_span == (0, 61)


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(ProfileError, match="built-in profiles"):
        load_profile("no-such-profile")


def test_shipped_config_points():
    cfg = load_config(CONFIG)
    pts = {p.id: p for p in expand_points(cfg)}
    assert point_problems(cfg) == []
    assert pts["MEC-DP-01.dp"].measures == "MEC-LITHO - MEC-CORRIDOR"
    assert pts["MEC-DP-01.dp"].quantity == "pressure_diff" and pts["MEC-DP-01.dp"].unit == "Pa"
    assert pts["MEC-TH-01.temperature"].decimals == 1
    assert pts["MEC-GD-01.conc"].order == "CDAB"
    assert pts["MEC-PC-01.pc_0_5um"].size_um == 0.5 and pts["MEC-PC-01.pc_0_5um"].unit == "count/m3"
    for name in ("count_5_0um", "flow_cfm", "flow_fault", "laser_fault", "service_due", "device_error",
                 "not_sampling", "clock_offset_s", "records_lost", "record_conflict"):
        assert f"MEC-PC-01.{name}" in pts
    for dev in cfg.devices:
        for h in ("comm_ok", "latency_ms", "consecutive_failures", "errors_timeout", "errors_refused",
                  "errors_exception", "errors_decode", "last_good_age_s"):
            assert pts[f"{dev.id}.{h}"].kind == "health"
    assert pts["MEC-IO-01.exhaust_gc01"].limits["action_high"].limit == -50.0
    assert pts["MARS-IO-01.supply_fan_hz"].decimals == 3
    infos = {i.id: i for i in point_infos(cfg)}
    assert infos["MARS-PC-08.pc_0_5um"].gmp and not infos["MEC-PC-01.pc_0_5um"].gmp


MINI = facility_toml(sites=[site("S", timezone=None)], zones=[zone("Z")],
                     devices=[device("DP", 1502, profile="dp-transmitter",
                                     points=[{"name": "dpp"}])])


def test_unknown_annotated_name_is_a_problem():
    cfg = parse_config(MINI)
    (problem,) = point_problems(cfg)
    assert problem[0] == "devices[0].points[0].name"
    assert "'dpp' is not a point of profile 'dp-transmitter'" in problem[1] and "dp" in problem[1]
