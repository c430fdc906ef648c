"""Rule compilation (``alarms.rules``): where each limit comes from, and what it carries.

docs/ARCHITECTURE.md "Where limits come from": the zone's standard (ISO 14644-1 class and/or
EU GMP grade + occupancy; with both, the lower limit per size and mode wins and both sources
are recorded), then site defaults per quantity, then explicit per-point values, each
replacing only the limit it names. The configurations here are parsed from TOML like the
shipped one, including the zones it lacks: one with both an ISO class and a GMP grade, and
grade A/B rooms.
"""

from __future__ import annotations

import math

import pytest

from alarms.rules import (
    LOW_COUNT_M_OF_N,
    LOW_COUNT_SOURCE,
    NOMINAL_RECORD_VOLUME_L,
    CascadePoint,
    RulePoint,
    cascade_points,
    compile_rules,
    pair_of,
    with_alert_fraction,
)
from facility.config.loader import parse_config
from facility.config.schema import LimitSpec

HEAD = """
[facility]
id = "t-rules"

[[sites]]
id = "S"
timezone = "Asia/Hong_Kong"
"""

ZONES = """
[[zones]]
id = "ISO6B"
site = "S"
iso_class = 6
gmp_grade = "B"

[[zones]]
id = "ISO5"
site = "S"
iso_class = 5

[[zones]]
id = "ISO6"
site = "S"
iso_class = 6

[[zones]]
id = "GA"
site = "S"
gmp_grade = "A"

[[zones]]
id = "GB"
site = "S"
gmp_grade = "B"
occupancy = "at_rest"

[[zones]]
id = "ISO5B"
site = "S"
iso_class = 5
gmp_grade = "B"
"""


def cfg_of(extra: str = "", alarms: str = "alert_fraction = 0.7"):
    return parse_config(HEAD + ZONES + extra + "\n[alarms]\n" + alarms + "\n")


def particle(zone: str, size_um: float, site: str = "S", **kw) -> RulePoint:
    name = f"pc_{size_um:g}um".replace(".", "_")
    return RulePoint(id=f"PC-{zone}.{name}", device=f"PC-{zone}", zone=zone, site=site,
                     quantity="particle_conc", unit="/m3", size_um=size_um, **kw)


def by_key(rules):
    out = {r.key: r for r in rules}
    assert len(out) == len(rules), "rule keys are unique"
    return out


def compiled(cfg, *points):
    rules, problems, warnings = compile_rules(cfg, points)
    return by_key(rules), problems, warnings


# -- the lower of ISO 14644-1 and Annex 1 wins, per size and mode; both sources recorded ----
def test_iso_and_gmp_zone_lower_limit_wins_per_mode_and_names_both():
    cfg = cfg_of()
    rules, problems, _ = compiled(cfg, particle("ISO6B", 0.5), particle("ISO6B", 5.0))
    assert problems == []
    iso05 = "ISO 14644-1:2015 class 6 at 0.5 um"
    gmp05_op = "EU GMP Annex 1 Table 5 grade B in_operation at 0.5 um"
    gmp05_rest = "EU GMP Annex 1 Table 5 grade B at_rest at 0.5 um"
    # in operation ISO 6 (35 200) is stricter than grade B (352 000) at 0.5 um
    op = rules["PC-ISO6B.pc_0_5um:action_high@in_operation"]
    assert op.limit == 35_200.0
    assert op.source == f"{iso05} (lower than {gmp05_op})"
    # at rest grade B (3 520) is stricter than ISO 6
    rest = rules["PC-ISO6B.pc_0_5um:action_high@at_rest"]
    assert rest.limit == 3_520.0
    assert rest.source == f"{gmp05_rest} (lower than {iso05})"
    # 5 um: ISO 6 293 in operation (grade B 2 930), grade B 29 at rest
    assert rules["PC-ISO6B.pc_5um:action_high@in_operation"].limit == 293.0
    rest5 = rules["PC-ISO6B.pc_5um:action_high@at_rest"]
    assert rest5.limit == 29.0
    assert rest5.source.startswith("EU GMP Annex 1 Table 5 grade B at_rest at 5 um (lower than "
                                   "ISO 14644-1:2015 class 6 at 5 um)")
    assert {r.mode for r in rules.values()} == {"at_rest", "in_operation"}


def test_equal_limits_from_both_standards_name_both():
    rules, _, _ = compiled(cfg_of(), particle("ISO5B", 0.5))
    rest = rules["PC-ISO5B.pc_0_5um:action_high@at_rest"]
    assert rest.limit == 3_520.0
    assert rest.source == ("ISO 14644-1:2015 class 5 at 0.5 um = "
                           "EU GMP Annex 1 Table 5 grade B at_rest at 0.5 um")
    # in operation ISO 5 (3 520) is below grade B (352 000): one wins, the other is named
    op = rules["PC-ISO5B.pc_0_5um:action_high@in_operation"]
    assert op.limit == 3_520.0
    assert op.source == ("ISO 14644-1:2015 class 5 at 0.5 um (lower than "
                         "EU GMP Annex 1 Table 5 grade B in_operation at 0.5 um)")


def test_single_standard_source_has_no_comparison():
    rules, _, _ = compiled(cfg_of(), particle("ISO6", 0.5), particle("GA", 0.5))
    iso = rules["PC-ISO6.pc_0_5um:action_high"]
    assert (iso.limit, iso.source, iso.mode) == (35_200.0, "ISO 14644-1:2015 class 6 at 0.5 um",
                                                 None)
    ga = rules["PC-GA.pc_0_5um:action_high@in_operation"]
    assert ga.source == "EU GMP Annex 1 Table 5 grade A in_operation at 0.5 um"


def test_gmp_limits_only_at_the_sizes_annex1_lists():
    # Annex 1 has 0.5 and 5 um only: at 1 um a grade-only zone has no standard limit
    rules, _, warnings = compiled(cfg_of(), particle("GB", 1.0), particle("ISO6B", 1.0))
    assert not [k for k in rules if k.startswith("PC-GB.")]
    assert warnings == [
        "PC-GB.pc_1um: no applicable limit: the zone's standard gives none at 1 um (an ISO"
        " 14644-1:2015 blank cell, or a size Annex 1 does not list); recorded, not alarmed;"
        " add [devices.points.limits] or alarms.defaults to alarm on it"]
    # with an ISO class as well, the ISO limit applies in both modes
    both = [r for k, r in rules.items() if k.startswith("PC-ISO6B.pc_1um:action_high@")]
    assert len(both) == 2
    assert {r.source for r in both} == {"ISO 14644-1:2015 class 6 at 1 um"}


# -- low counts: limit x record volume below 2 counts -> m_of_n [2, 3] -----------------
def test_low_count_m_of_n_on_action_and_alert_rules():
    cfg = cfg_of()
    rules, _, _ = compiled(cfg, particle("GA", 5.0), particle("GA", 0.5))
    # 29 /m3 x 28.3 L = 0.82 counts per record: one particle is already above the limit
    action = rules["PC-GA.pc_5um:action_high@in_operation"]
    alert = rules["PC-GA.pc_5um:alert_high@in_operation"]
    assert action.limit == 29.0 and action.m_of_n == LOW_COUNT_M_OF_N == (2, 3)
    assert action.source.endswith(f"; {LOW_COUNT_SOURCE}")
    assert alert.m_of_n == (2, 3), "the alert rule keeps the low-count M-of-N"
    assert alert.limit == pytest.approx(29.0 * 0.7)
    assert alert.source == ("alarms.alert_fraction=0.7 x action limit (site choice, Annex 1 9.9)")
    # 3 520 /m3 x 28.3 L = 99.7 counts: plenty, no M-of-N
    big = rules["PC-GA.pc_0_5um:action_high@in_operation"]
    assert big.m_of_n is None and LOW_COUNT_SOURCE not in big.source
    assert rules["PC-GA.pc_0_5um:alert_high@in_operation"].m_of_n is None


def test_nominal_record_volume_is_one_cfm_minute():
    # 1 CFM for 60 s; a point without a record volume uses it
    assert NOMINAL_RECORD_VOLUME_L == pytest.approx(28.3168)
    rules, _, _ = compiled(cfg_of(), particle("GA", 5.0, record_volume_l=None))
    assert rules["PC-GA.pc_5um:action_high@at_rest"].m_of_n == (2, 3)


@pytest.mark.parametrize("volume_l,counts_m_of_n", [
    (2000 / 293, None),  # exactly 2.0 counts per record: not below 2
    (1.9 * 1000 / 293, (2, 3)),  # 1.9 counts
    (1.5 * 1000 / 293, (2, 3)),  # 1.5 counts
    (2.5 * 1000 / 293, None),  # 2.5 counts
    (28.3168, None),  # 293 x 28.3 L = 8.3 counts
])
def test_low_count_threshold_is_two_counts_per_record(volume_l, counts_m_of_n):
    assert 293.0 * (2000 / 293) / 1000.0 == 2.0  # the boundary is exact in floating point
    rules, _, _ = compiled(cfg_of(), particle("ISO6", 5.0, record_volume_l=volume_l))
    action = rules["PC-ISO6.pc_5um:action_high"]
    assert action.limit == 293.0
    assert action.m_of_n == counts_m_of_n
    assert rules["PC-ISO6.pc_5um:alert_high"].m_of_n == counts_m_of_n
    assert (LOW_COUNT_SOURCE in action.source) == (counts_m_of_n is not None)


def test_record_volume_of_the_point_is_used():
    # a counter with 5 s records (2.4 L) sees few particles even at 3 520 /m3: 8.3 counts;
    # at 0.5 L per record it is 1.76 counts -> M-of-N
    rules, _, _ = compiled(cfg_of(), particle("ISO5", 0.5, record_volume_l=0.5))
    assert rules["PC-ISO5.pc_0_5um:action_high"].m_of_n == (2, 3)
    rules, _, _ = compiled(cfg_of(), particle("ISO5", 0.5, record_volume_l=2.4))
    assert rules["PC-ISO5.pc_0_5um:action_high"].m_of_n is None


def test_explicit_limit_overrides_the_low_count_default():
    spec = LimitSpec(limit=29.0)
    p = particle("GA", 5.0, limits={"action_high": spec},
                 limit_sources={"action_high": "site SOP 12: single count alarms"})
    rules, _, _ = compiled(cfg_of(), p)
    action = rules["PC-GA.pc_5um:action_high@at_rest"]
    assert action.m_of_n is None and action.source == "site SOP 12: single count alarms"
    # the alert limit it did not name still comes from the standard, with its M-of-N
    assert rules["PC-GA.pc_5um:alert_high@at_rest"].m_of_n == (2, 3)


def test_no_alert_rule_without_an_alert_fraction():
    rules, _, _ = compiled(cfg_of(alarms="max_shelve_s = 3600"), particle("GA", 5.0))
    assert sorted(rules) == ["PC-GA.pc_5um:action_high@at_rest",
                             "PC-GA.pc_5um:action_high@in_operation"]


def test_alert_fraction_is_rounded_and_overridable():
    cfg = with_alert_fraction(cfg_of(), 1 / 3)
    assert cfg.alarms.alert_fraction == 1 / 3
    rules, _, _ = compiled(cfg, particle("ISO6", 0.5))
    alert = rules["PC-ISO6.pc_0_5um:alert_high"]
    assert alert.limit == round(35_200 / 3, 6)
    assert alert.source.startswith("alarms.alert_fraction=0.333333 x action limit")


# -- priority: action limits in ISO <= 5 or grade A rooms are critical --------------------
@pytest.mark.parametrize("zone,size,critical", [
    ("ISO5", 0.5, True),  # ISO 5 is "<= 5"
    ("ISO6", 0.5, False),
    ("GA", 0.5, True),  # grade A
    ("GB", 0.5, False),  # grade B is not
    ("ISO5B", 0.5, True),  # ISO 5 + grade B: the ISO class makes it critical
    ("ISO6B", 0.5, False),
])
def test_action_limits_in_iso5_or_grade_a_are_critical(zone, size, critical):
    rules, _, _ = compiled(cfg_of(), particle(zone, size))
    actions = [r for r in rules.values() if r.limit_name == "action_high"]
    alerts = [r for r in rules.values() if r.limit_name == "alert_high"]
    assert actions and alerts
    for r in actions:
        assert r.critical is critical, r.key
        assert r.priority == ("critical" if critical else "high"), r.key
    for r in alerts:  # alert limits never are
        assert (r.critical, r.priority) == (False, "medium"), r.key


def test_decimal_iso_class_above_five_is_not_critical():
    cfg = parse_config(HEAD + """
[[zones]]
id = "ISO51"
site = "S"
iso_class = 5.1

[[zones]]
id = "ISO4"
site = "S"
iso_class = 4
""")
    rules, _, _ = compiled(cfg, particle("ISO51", 0.5), particle("ISO4", 0.5))
    assert rules["PC-ISO51.pc_0_5um:action_high"].critical is False
    assert rules["PC-ISO4.pc_0_5um:action_high"].critical is True


def test_other_alarm_kinds_in_a_critical_room_keep_their_priority():
    # a comm alarm of a counter in an ISO 5 room is an action limit, but not the room's
    comm = RulePoint(id="PC-ISO5.comm", device="PC-ISO5", zone="ISO5", site="S",
                     quantity="comm", unit="", limits={"action_low": LimitSpec(limit=0.5)},
                     limit_sources={"action_low": "no answer"}, alarm_kind="comm",
                     alarm_subject="PC-ISO5")
    rules, _, _ = compiled(cfg_of(), comm)
    (r,) = rules.values()
    assert (r.alarm_id, r.kind, r.critical, r.priority) == ("PC-ISO5:comm", "comm", False, "high")
    # a point marked critical is critical whatever its room
    crit = RulePoint(id="GD-1.stel", device="GD-1", zone=None, site="S", quantity="gas_conc",
                     unit="ppm", limits={"action_high": LimitSpec(limit=5.0),
                                         "alert_high": LimitSpec(limit=2.5)}, critical=True)
    rules, _, _ = compiled(cfg_of(), crit)
    assert {(r.limit_name, r.priority, r.critical) for r in rules.values()} == {
        ("action_high", "critical", True), ("alert_high", "critical", True)}


def test_configured_priorities_by_kind_then_limit_name():
    cfg = cfg_of(alarms='alert_fraction = 0.7\npriorities = { alert_high = "low", comm = "medium" }')
    rules, _, _ = compiled(cfg, particle("ISO6", 0.5))
    assert rules["PC-ISO6.pc_0_5um:alert_high"].priority == "low"
    assert rules["PC-ISO6.pc_0_5um:action_high"].priority == "high"
    comm = RulePoint(id="X.comm", device="X", zone=None, site="S", quantity="comm", unit="",
                     limits={"action_low": LimitSpec(limit=0.5)}, alarm_kind="comm")
    rules, _, _ = compiled(cfg, comm)
    assert [r.priority for r in rules.values()] == ["medium"]
    # the room's criticality wins over a configured priority
    cfg = cfg_of(alarms='priorities = { action_high = "low" }')
    rules, _, _ = compiled(cfg, particle("ISO5", 0.5))
    assert rules["PC-ISO5.pc_0_5um:action_high"].priority == "critical"


# -- merging: standard, then site default, then explicit; each replaces only its limit ----
def test_defaults_and_explicit_values_replace_only_the_limit_they_name():
    cfg = cfg_of(alarms="""alert_fraction = 0.7
[alarms.defaults.particle_conc.alert_high]
limit = 1000.0
[alarms.defaults.temperature.action_high]
limit = 24.0
[alarms.defaults.temperature.action_low]
limit = 18.0
deadband = 0.5""")
    # the standard's alert limit is not replaced by the site default
    rules, _, _ = compiled(cfg, particle("ISO6", 0.5))
    assert rules["PC-ISO6.pc_0_5um:alert_high"].limit == pytest.approx(35_200 * 0.7)
    t = RulePoint(id="TH-1.t", device="TH-1", zone="ISO6", site="S", quantity="temperature",
                  unit="degC", limits={"action_high": LimitSpec(limit=23.0, on_delay_s=60.0)},
                  stale_after_s=30.0)
    rules, _, _ = compiled(cfg, t)
    hi, lo = rules["TH-1.t:action_high"], rules["TH-1.t:action_low"]
    assert (hi.limit, hi.on_delay_s, hi.source) == (23.0, 60.0,
                                                    "devices[TH-1].points[t].limits.action_high")
    assert (lo.limit, lo.deadband, lo.source) == (18.0, 0.5,
                                                  "alarms.defaults.temperature.action_low")
    assert (hi.side, lo.side) == ("high", "low")
    assert hi.max_gap_s == 30.0 and hi.zone == "ISO6" and hi.site == "S"
    # the site default where the zone gives nothing
    rules, _, _ = compiled(cfg, particle("GB", 1.0))
    assert rules["PC-GB.pc_1um:alert_high@at_rest"].source == (
        "alarms.defaults.particle_conc.alert_high")


def test_limit_fields_carried_into_the_rule():
    spec = LimitSpec(limit=50.0, deadband=2.0, on_delay_s=5.0, off_delay_s=7.0, max_gap_s=90.0)
    mofn = LimitSpec(limit=40.0, m_of_n=(3, 5))
    p = RulePoint(id="H-1.rh", device="H-1", zone=None, site="MARS", quantity="humidity",
                  unit="%", limits={"action_high": spec, "alert_high": mofn})
    rules, problems, warnings = compiled(cfg_of(), p)
    hi = rules["H-1.rh:action_high"]
    assert (hi.deadband, hi.on_delay_s, hi.off_delay_s, hi.max_gap_s, hi.m_of_n) == (
        2.0, 5.0, 7.0, 90.0, None)
    assert rules["H-1.rh:alert_high"].m_of_n == (3, 5)
    assert math.isinf(rules["H-1.rh:alert_high"].max_gap_s)  # no stale time: never a gap
    assert hi.site == "MARS" and hi.zone is None and hi.mode is None
    assert (problems, warnings) == ([], [])


def test_rule_order_follows_the_limit_names():
    p = RulePoint(id="T.t", device="T", zone=None, site="S", quantity="temperature", unit="C",
                  limits={"action_low": LimitSpec(limit=1.0), "alert_low": LimitSpec(limit=2.0),
                          "alert_high": LimitSpec(limit=3.0), "action_high": LimitSpec(limit=4.0)})
    rules, _, _ = compile_rules(cfg_of(), [p])
    assert [r.limit_name for r in rules] == ["action_high", "alert_high", "alert_low",
                                             "action_low"]
    assert [r.kind for r in rules] == [r.limit_name for r in rules]


def test_limit_order_problems_name_both_sources():
    # an explicit alert limit above the standard's action limit
    p = particle("ISO6", 0.5, limits={"alert_high": LimitSpec(limit=40_000.0)},
                 limit_sources={"alert_high": "devices[PC-ISO6].points[pc_0_5um].limits.alert_high"})
    _, problems, _ = compiled(cfg_of(), p)
    assert problems == [
        "ISO 14644-1:2015 class 6 at 0.5 um.action_high: action_high=35200.0 (ISO 14644-1:2015 "
        "class 6 at 0.5 um) must be above alert_high=40000.0 (devices[PC-ISO6].points[pc_0_5um]"
        ".limits.alert_high); order is action_low < alert_low < alert_high < action_high"]


def test_alarm_subject_and_kind_name_the_alarm():
    p = RulePoint(id="GC-1.door", device="GC-1", zone=None, site="S", quantity="status",
                  unit="", limits={"action_high": LimitSpec(limit=0.5)},
                  alarm_kind="door_open", alarm_subject="GC-1")
    rules, _, warnings = compiled(cfg_of(), p)
    (r,) = rules.values()
    assert (r.alarm_id, r.key, r.point, r.kind) == ("GC-1:door_open", "GC-1.door:action_high",
                                                    "GC-1.door", "door_open")
    assert warnings == []  # status is not a quantity that must have a limit


def test_points_without_limits_warn_only_for_limited_quantities():
    t = RulePoint(id="T.t", device="T", zone=None, site="S", quantity="temperature", unit="C")
    s = RulePoint(id="T.s", device="T", zone=None, site="S", quantity="status", unit="")
    rules, _, warnings = compiled(cfg_of(), t, s)
    assert rules == {}
    assert warnings == ["T.t: no applicable limit: none for quantity 'temperature'; recorded,"
                        " not alarmed; add [devices.points.limits] or alarms.defaults to alarm"
                        " on it"]


def test_site_comes_from_the_zone_else_from_the_point():
    # a point in a configured zone belongs to the zone's site, whatever it says itself
    rules, _, _ = compiled(cfg_of(), particle("ISO6", 0.5, site="ELSEWHERE"))
    assert {r.site for r in rules.values()} == {"S"}
    # a zone the configuration does not know gives no standard and no site of its own
    lim = {"action_high": LimitSpec(limit=10.0)}
    rules, _, warnings = compiled(cfg_of(), particle("NOWHERE", 0.5, site="MARS", limits=lim))
    (r,) = rules.values()
    assert (r.site, r.zone, r.mode, r.source) == (
        "MARS", "NOWHERE", None, "devices[PC-NOWHERE].points[pc_0_5um].limits.action_high")
    rules, _, warnings = compiled(cfg_of(), particle("NOWHERE", 0.5))
    assert rules == {} and len(warnings) == 1


# -- pressure cascades and doors -----------------------------------------------------------
CASCADE = """
[[zones]]
id = "LITHO"
site = "S"
gmp_grade = "C"
reference = "CORR"
min_dp_pa = 15
dp_deadband_pa = 1.5
door_grace_s = 20
justification = "door interlock: airlock purge takes 20 s"

[[zones]]
id = "CORR"
site = "S"
iso_class = 8
reference = "ambient"
min_dp_pa = 10

[[zones]]
id = "GAS"
site = "S"
kind = "gas_room"
reference = "CORR"
min_dp_pa = -5
door_open_max_s = 60
"""


def dp_zone(zone: str, door: bool = False) -> RulePoint:
    return RulePoint(id=f"{zone}.dp_cascade", device=zone, zone=zone, site="S",
                     quantity="pressure_diff_zone", unit="Pa", door=door, kind="derived")


def test_cascade_limits_are_signed_min_dp_with_deadband_and_door_grace():
    cfg = cfg_of(CASCADE)
    rules, problems, _ = compiled(cfg, dp_zone("LITHO", door=True), dp_zone("CORR"),
                                  dp_zone("GAS"))
    assert problems == []
    litho = rules["LITHO.dp_cascade:action_low"]
    assert (litho.limit, litho.deadband, litho.on_delay_s, litho.side) == (15.0, 1.5, 20.0, "low")
    assert litho.source == ("zones[LITHO].min_dp_pa=+15 Pa vs CORR (EU GMP Annex 1 4.14: >= 10"
                            " Pa between grades); door_grace_s=20 on-delay (door contact between"
                            " the rooms): door interlock: airlock purge takes 20 s")
    corr = rules["CORR.dp_cascade:action_low"]
    assert (corr.limit, corr.deadband, corr.on_delay_s) == (10.0, 1.0, 0.0)
    assert corr.source == ("zones[CORR].min_dp_pa=+10 Pa vs ambient (site practice, ISO"
                           " 14644-4: 10-15 Pa between cleanliness classes)")
    gas = rules["GAS.dp_cascade:action_high"]  # a room kept below its neighbour
    assert (gas.limit, gas.side) == (-5.0, "high")
    assert "GAS.dp_cascade:action_low" not in rules
    # a pressure point is not a particle point: one mode only, even in a GMP zone
    assert litho.mode is None


def test_cascade_without_door_has_no_delay_and_no_justification_text():
    rules, _, _ = compiled(cfg_of(CASCADE), dp_zone("LITHO", door=False))
    r = rules["LITHO.dp_cascade:action_low"]
    assert r.on_delay_s == 0.0 and "door" not in r.source and "interlock" not in r.source


def test_door_open_too_long_is_its_own_alarm():
    door = RulePoint(id="D-1.door", device="D-1", zone="GAS", site="S", quantity="door",
                     unit="", between="GAS - CORR")
    rules, _, _ = compiled(cfg_of(CASCADE), door)
    r = rules["D-1.door:action_high"]
    assert (r.limit, r.on_delay_s, r.source) == (0.5, 60.0, "zones[GAS].door_open_max_s=60")


def _dp(pid: str, measures: str | None) -> RulePoint:
    return RulePoint(id=pid, device=pid.split(".")[0], zone=None, site="S",
                     quantity="pressure_diff", unit="Pa", measures=measures)


def test_cascade_points_direct_inverted_and_via_a_common_reference():
    cfg = cfg_of(CASCADE)
    door = RulePoint(id="D.door", device="D", zone=None, site="S", quantity="door", unit="",
                     between="CORR - LITHO")  # the contact is between the rooms, either order
    pts = [
        _dp("DP-1.dp", "LITHO - CORR"),  # direct
        _dp("DP-2.dp", "ambient - CORR"),  # inverted: reference - zone
        _dp("DP-3.dp", "GAS - ambient"),  # GAS and CORR against a common reference...
        _dp("DP-4.dp", "CORR - ambient"),  # ... measured the same way
        door,
    ]
    plan, problems = cascade_points(cfg, pts)
    assert problems == []
    assert plan == [
        CascadePoint(id="LITHO.dp_cascade", zone="LITHO", reference="CORR", plus="DP-1.dp",
                     minus=None, invert=False, door=True),
        # "CORR - ambient" (DP-4) is measured directly, so it wins over the inverted DP-2
        CascadePoint(id="CORR.dp_cascade", zone="CORR", reference="ambient", plus="DP-4.dp",
                     minus=None, invert=False, door=False),
        CascadePoint(id="GAS.dp_cascade", zone="GAS", reference="CORR", plus="DP-3.dp",
                     minus="DP-4.dp", invert=False, door=False),
    ]
    plan, problems = cascade_points(cfg, [p for p in pts if p.id != "DP-4.dp"])
    assert plan[1] == CascadePoint(id="CORR.dp_cascade", zone="CORR", reference="ambient",
                                   plus="DP-2.dp", minus=None, invert=True, door=False)
    # GAS - ambient and ambient - CORR do not combine: only the same direction does
    assert [p.zone for p in plan] == ["LITHO", "CORR"]
    assert problems == [
        'zones[8].min_dp_pa: no pressure point measures "GAS - CORR" or both against a'
        " common reference; add a transmitter with measures"]
    # a pressure point of another quantity, or a door elsewhere, does not count
    other = RulePoint(id="X.p", device="X", zone=None, site="S", quantity="exhaust_pressure",
                      unit="Pa", measures="GAS - CORR")
    plan, _ = cascade_points(cfg, [_dp("DP-1.dp", "LITHO - CORR"), other])
    assert [(p.zone, p.door) for p in plan] == [("LITHO", False)]


def test_cascade_points_name_the_zone_without_inputs():
    plan, problems = cascade_points(cfg_of(CASCADE), [_dp("DP-1.dp", "LITHO - CORR")])
    assert [p.zone for p in plan] == ["LITHO"]
    # zones are numbered in the config: 6 zones above the cascade ones
    assert problems == [
        'zones[7].min_dp_pa: no pressure point measures "CORR - ambient" or both against a'
        " common reference; add a transmitter with measures",
        'zones[8].min_dp_pa: no pressure point measures "GAS - CORR" or both against a'
        " common reference; add a transmitter with measures"]


def test_pair_of_reads_measures():
    assert pair_of(_dp("A.dp", "LITHO - CORR")) == ("LITHO", "CORR")
    assert pair_of(_dp("A.dp", None)) is None
    assert pair_of(_dp("A.dp", "LITHO-CORR")) is None


# -- the plain-object interface, and what is not a particle or cascade point ---------------
def test_plain_point_objects_with_only_the_documented_attributes():
    # the module takes any object with id, device, zone, quantity, unit, size_um, limits,
    # stale_after_s, measures, between: everything else has a default
    from types import SimpleNamespace

    def plain(**kw):
        base = dict(id="PC-ISO5.pc_0_5um", device="PC-ISO5", zone="ISO5",
                    quantity="particle_conc", unit="/m3", size_um=0.5, limits={},
                    stale_after_s=None, measures=None, between=None)
        return SimpleNamespace(**(base | kw))

    rules, problems, _ = compiled(cfg_of(CASCADE), plain(),
                                  plain(id="T.t", device="T", zone=None, quantity="temperature",
                                        limits={"action_high": LimitSpec(limit=30.0)}),
                                  plain(id="LITHO.dp_cascade", device="LITHO", zone="LITHO",
                                        quantity="pressure_diff_zone", size_um=None))
    assert problems == []
    pc = rules["PC-ISO5.pc_0_5um:action_high"]
    assert (pc.alarm_id, pc.kind, pc.critical, pc.site) == (
        "PC-ISO5.pc_0_5um:action_high", "action_high", True, "S")
    assert pc.m_of_n is None  # the nominal record volume: 99.7 counts
    t = rules["T.t:action_high"]
    assert (t.site, t.critical, t.priority, t.source) == (
        None, False, "high", "devices[T].points[t].limits.action_high")
    dp = rules["LITHO.dp_cascade:action_low"]
    assert dp.on_delay_s == 0.0  # no door attribute: no door between the rooms
    assert pair_of(plain(measures="LITHO - CORR")) == ("LITHO", "CORR")
    assert pair_of(SimpleNamespace(id="x")) is None
    plan, _ = cascade_points(cfg_of(CASCADE), [
        plain(id="DP-1.dp", device="DP-1", zone=None, quantity="pressure_diff", size_um=None,
              measures="LITHO - CORR"),
        SimpleNamespace(id="D.door", device="D", zone=None, quantity="door")])
    assert [(p.zone, p.door) for p in plan] == [("LITHO", False)]


def test_point_names_may_contain_dots():
    p = RulePoint(id="TH-1.t.avg", device="TH-1", zone=None, site="S", quantity="temperature",
                  unit="C", limits={"action_high": LimitSpec(limit=30.0)})
    rules, _, _ = compiled(cfg_of(), p)
    assert rules["TH-1.t.avg:action_high"].source == "devices[TH-1].points[t.avg].limits.action_high"


def test_counts_per_record_do_not_get_the_concentration_limits():
    # the count channel beside a concentration has a size but is not a concentration
    counts = RulePoint(id="PC-ISO5.cnt_0_5um", device="PC-ISO5", zone="ISO5", site="S",
                       quantity="particle_count", unit="count", size_um=0.5)
    assert compiled(cfg_of(), counts)[0] == {}


def test_only_the_derived_cascade_point_gets_the_min_dp_limit():
    raw = _dp("DP-1.dp", "LITHO - CORR")
    raw = RulePoint(**{**raw.__dict__, "zone": "LITHO"})
    temp = RulePoint(id="TH-1.t", device="TH-1", zone="LITHO", site="S",
                     quantity="temperature", unit="C")
    rules, _, _ = compiled(cfg_of(CASCADE), raw, temp)
    assert rules == {}


def test_small_positive_min_dp_is_still_a_low_limit():
    cfg = cfg_of("""
[[zones]]
id = "GOWN"
site = "S"
reference = "ambient"
min_dp_pa = 0.5
""")
    rules, _, _ = compiled(cfg, dp_zone("GOWN"))
    assert list(rules) == ["GOWN.dp_cascade:action_low"]


def test_priority_by_limit_name_for_other_alarm_kinds():
    cfg = cfg_of(alarms='priorities = { action_low = "low" }')
    comm = RulePoint(id="X.comm", device="X", zone=None, site="S", quantity="comm", unit="",
                     limits={"action_low": LimitSpec(limit=0.5)}, alarm_kind="comm")
    rules, _, _ = compiled(cfg, comm)
    assert [r.priority for r in rules.values()] == ["low"]


def test_a_point_between_zones_is_a_door_only_if_it_is_a_door():
    cfg = cfg_of(CASCADE)
    not_a_door = RulePoint(id="TH-1.t", device="TH-1", zone=None, site="S",
                           quantity="temperature", unit="C", between="LITHO - CORR")
    plan, _ = cascade_points(cfg, [_dp("DP-1.dp", "LITHO - CORR"), not_a_door])
    assert [(p.zone, p.door) for p in plan] == [("LITHO", False)]


def test_a_zone_with_a_reference_but_no_min_dp_has_no_cascade():
    cfg = cfg_of("""
[[zones]]
id = "STORE"
site = "S"
kind = "store"
reference = "ambient"
""")
    plan, problems = cascade_points(cfg, [])
    assert (plan, problems) == ([], [])


def test_min_priority_is_a_floor_not_a_ceiling():
    cfg = cfg_of(alarms='priorities = { alert_high = "low" }')
    limits = {"action_high": LimitSpec(limit=30.0), "alert_high": LimitSpec(limit=25.0)}
    p = RulePoint(id="T.t", device="T", zone=None, site="S", quantity="temperature", unit="C",
                  limits=limits, min_priority="high")
    rules, _, _ = compiled(cfg, p)
    # the configured "low" is raised to the floor; "high" already meets it
    assert {r.limit_name: r.priority for r in rules.values()} == {"alert_high": "high",
                                                                 "action_high": "high"}
    lower = RulePoint(id="T.t", device="T", zone="ISO5", site="S", quantity="temperature",
                      unit="C", limits=limits, min_priority="medium")
    rules, _, _ = compiled(cfg, lower)
    # a floor never lowers: the ISO 5 action stays critical, the alert rises from low
    assert {r.limit_name: (r.priority, r.critical) for r in rules.values()} == {
        "action_high": ("critical", True), "alert_high": ("medium", False)}
