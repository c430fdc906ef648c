"""Compliance and ISO 14644-1 classification against hand-computed cases."""

from types import SimpleNamespace

import pytest

from facility.records.classify import ZoneClassifier, classify_zone
from facility.records.report.stats import Compliance, alarm_performance
from facility.store import Store
from tests.fixtures.export import build

S = 1000


def test_compliance_hand_computed_with_not_monitored_time():
    # range 0..100 s, hold 10 s; action_high 5
    c = Compliance(0, 100 * S, 10 * S, {"action_high": 5.0})
    for ts, v, q in [(0, 1.0, 0), (10, 5.0, 0), (20, 6.0, 0),   # at limit is compliant
                     (30, None, 2),                              # comm: 10 s not monitored
                     (40, 2.0, 0),                               # holds only 10 s -> gap 50..60
                     (60, 7.0, 0), (65, 1.0, 0), (80, 1.0, 1)]:  # bad at 80 -> 80..90; 90..100 gap
        c.feed(ts * S, v, q)
    c.finish()
    # good: 0-10,10-20,20-30,40-50,60-65,65-75 = 55 s; within: 0-20, 40-50, 65-75 = 40 s
    assert c.good_ms == 55 * S and c.within_ms == 40 * S
    assert c.not_monitored_ms == 45 * S
    assert c.ratio == pytest.approx(40 / 55)


def test_compliance_no_data_is_not_compliant():
    c = Compliance(0, 60 * S, 10 * S, {"action_low": 10.0}).finish()
    assert c.ratio is None and c.not_monitored_ms == 60 * S


def _pc(**kw):
    return SimpleNamespace(profile="particle-counter", points=(), **kw)


def test_classification_hand_computed():
    zone = SimpleNamespace(id="Z", iso_class=7, area_m2=3)
    devs = [_pc(id="A", zone="Z", location="north"),
            _pc(id="B", zone="Z", location=None),
            # a pressure transmitter in the zone is not a sampling location
            SimpleNamespace(id="DP", zone="Z", location="door", profile="dp-transmitter",
                            points=())]
    clf = ZoneClassifier(zone, devs)
    for v in (300_000.0, 400_000.0):           # A avg 350 000 <= 352 000
        clf.feed("A.pc_0_5um", v, 0)
    clf.feed("A.pc_0_5um", 9e9, 1)             # bad quality never counts
    clf.feed("B.pc_0_5um", 360_000.0, 0)       # B avg 360 000 > 352 000
    clf.feed("A.pc_0_3um", 1e6, 0)             # 0.3 um: not applicable for class 7
    clf.feed("A.pc_5_0um", 2000.0, 0)
    clf.feed("B.pc_5_0um", 3000.0, 0)          # 5 um limit 2 930: B exceeds
    r = clf.result()
    by = {s.size_um: s for s in r.sizes}
    assert not by[0.3].applicable and by[0.3].limit is None
    assert by[0.5].limit == 352_000 and by[0.5].averages == {"A": 350_000.0, "B": 360_000.0}
    assert by[5.0].limit == 2930
    assert r.required_locations == 2 and r.present_locations == 2
    assert set(clf.locations) == {"A", "B"}
    assert r.min_volume_l == pytest.approx(20 / 2930 * 1000)
    assert not r.passed
    assert r.reasons[0] == ">= 0.5 um exceeded at B"
    text = "\n".join(r.lines())
    assert ">= 0.3 um: not applicable for class 7" in text and "sample volume" in text


def test_classification_pass_and_too_few_locations():
    zone = SimpleNamespace(id="Z", iso_class=5, area_m2=10)  # NL = 5
    clf = ZoneClassifier(zone, [_pc(id="A", zone="Z", location="x")])
    clf.feed("A.pc_0_5um", 100.0, 0)
    clf.feed("A.pc_5_0um", 50.0, 0)  # 5 um not applicable for ISO 5: not a failure
    r = clf.result()
    assert r.reasons == ["1 locations with data, 5 required for 10 m2"]
    assert r.min_volume_l == pytest.approx(20 / 3520 * 1000)


def test_classify_from_store_and_cli(tmp_path):
    from click.testing import CliRunner

    from facility.cli import cli

    cfg, db, t0 = build(tmp_path, minutes=20)
    with Store(db, readonly=True) as store:
        r = classify_zone(cfg, store, "Z1", t0, t0 + 86_400_000)
    assert r.present_locations == 2 and r.required_locations == 2
    assert r.passed, r.reasons
    res = CliRunner().invoke(cli, ["classify", "--config", str(tmp_path / "config.toml"),
                                   "--zone", "Z2", "--from", "2000-01-01", "--to", "2100-01-01"])
    assert res.exit_code == 0, res.output
    assert "not applicable" in res.output and "result:" in res.output
    res = CliRunner().invoke(cli, ["classify", "--config", str(tmp_path / "config.toml"),
                                   "--zone", "NOPE", "--from", "2000-01-01", "--to", "2100-01-01"])
    assert res.exit_code == 2 and "no such zone" in res.output
    assert "DP-1" not in r.locations  # the Z1 pressure transmitter is no sampling location
    res = CliRunner().invoke(cli, ["classify", "--config", str(tmp_path / "config.toml"),
                                   "--zone", "Z1", "--from", "1990-01-01", "--to", "1990-01-02"])
    assert res.exit_code == 1 and "result: FAIL" in res.output, res.output


def test_alarm_performance_flood_chatter_standing_ack():
    ev, i = [], 0
    for k in range(11):  # 11 raises within 10 minutes: a flood
        i += 1
        ev.append({"id": i, "alarm_id": f"A{k % 2}", "occurrence": k, "event": "raise",
                   "ts_ms": k * 20 * S, "detected_ms": k * 20 * S})
    i += 1
    ev.append({"id": i, "alarm_id": "A0", "occurrence": 0, "event": "ack", "ts_ms": 30 * S})
    i += 1
    ev.append({"id": i, "alarm_id": "L", "occurrence": 1, "event": "raise", "ts_ms": 2 * S,
               "detected_ms": 2 * S})
    for t in (0, 30, 55):  # three raises of one alarm within 60 s: chattering
        i += 1
        ev.append({"id": i, "alarm_id": "C", "occurrence": i, "event": "raise",
                   "ts_ms": 300 * S + t * S, "detected_ms": 300 * S + t * S})
    for e in [e for e in ev if e["alarm_id"] != "L" and e["event"] == "raise"]:
        i += 1
        ev.append({"id": i, "alarm_id": e["alarm_id"], "occurrence": e["occurrence"],
                   "event": "clear", "ts_ms": e["ts_ms"] + S})
    p = alarm_performance(ev, 0, 2 * 86_400 * S)
    assert p["raises"] == 15 and p["per_day"] == 7.5
    assert len(p["floods"]) == 1 and p["floods"][0][1] == 15
    assert p["chattering"] == [("C", 3)]  # A0/A1 raise every 40 s: at most 2 within 60 s
    assert p["top10"][0][:2] == ("A0", 6)
    assert [s[:2] for s in p["standing"]] == [("L", 1)]  # never cleared, range is 2 days
    assert p["ack_median_s"] == 30 and p["acked"] == 1


def test_classification_uses_each_counters_sample_time_for_the_volume():
    """ISO 14644-1 A.4.4: a 5 s record of a 1 CFM counter (2.36 L) is below the 5.68 L an ISO 5
    room needs at 0.5 um; the smallest record of the zone's counters decides."""
    zone = SimpleNamespace(id="Z", iso_class=5, area_m2=2)  # NL = 1
    clf = ZoneClassifier(zone, [_pc(id="A", zone="Z", location="x", sample_s=5.0),
                                _pc(id="B", zone="Z", location="y", sample_s=60.0)])
    for dev in ("A", "B"):
        clf.feed(f"{dev}.pc_0_5um", 100.0, 0)
    r = clf.result()
    assert r.record_volume_l == pytest.approx(2.36, abs=0.005)
    assert r.min_volume_l == pytest.approx(5.68, abs=0.005)
    assert r.reasons == ["sample volume 2.36 L per record below the ISO 14644-1 A.4.4 minimum"
                         " 5.68 L"]
    assert not r.passed and "INADEQUATE" in "\n".join(r.lines())
    ok = ZoneClassifier(zone, [_pc(id="B", zone="Z", location="y", sample_s=60.0)])
    ok.feed("B.pc_0_5um", 100.0, 0)
    assert ok.result().passed and ok.result().record_volume_l == pytest.approx(28.3168)


def test_classify_exit_codes_and_json(tmp_path):
    """Exit 0 for a zone that meets its class, 1 when it does not (also with --json), 2 for
    a zone that has no ISO class."""
    import json

    from click.testing import CliRunner

    from facility.cli import cli

    build(tmp_path, minutes=20)
    args = ["classify", "--config", str(tmp_path / "config.toml"), "--from", "2000-01-01",
            "--to", "2100-01-01"]
    ok = CliRunner().invoke(cli, [*args, "--zone", "Z1", "--json"])
    assert ok.exit_code == 0, ok.output
    body = json.loads(ok.stdout)
    assert body["passed"] is True and body["present_locations"] == 2
    assert all(set(s["averages"]) == {"PC-1", "PC-2"} for s in body["sizes"])  # no DP-1
    empty = CliRunner().invoke(cli, ["classify", "--config", str(tmp_path / "config.toml"),
                                     "--zone", "Z1", "--from", "1990-01-01", "--to",
                                     "1990-01-02", "--json"])
    assert empty.exit_code == 1 and json.loads(empty.stdout)["passed"] is False
