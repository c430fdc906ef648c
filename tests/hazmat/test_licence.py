"""Exempt quantities (units, premises, "special" substances) and licence arithmetic."""

from __future__ import annotations

import pytest

from facility.config.schema import HazmatCfg, Store, Substance
from hazmat.classes import HazmatError, class_matches, legacy_label
from hazmat.exempt import aggregate, exempt_group, exempt_limit
from hazmat.licence import check_licences, licence_rules, stock_values


def S(sid, cls, unit="L", special=False, *subsidiary):
    return Substance(id=sid, name=sid, un="UN0000", dg_class=cls, subsidiary=subsidiary,
                     special=special, unit=unit)


SUBS = (S("silane", "2.1", "L_wc"), S("arsine", "2.3", "L_wc", False, "2.1"), S("ipa", "3"),
        S("h2so4", "8"), S("hf", "8", "L", True, "6.1"), S("h2o2", "5.1", "L", False, "8"),
        S("naoh", "8", "kg"), S("peroxide", "5.2", "kg"), S("diesel", "3A"), S("cyanide", "6.1", "kg", True))
BY_ID = {s.id: s for s in SUBS}


@pytest.mark.parametrize("group,general,industrial", [
    ("2", 300, 450), ("3", 100, 150), ("4", 100, 1000), ("5", 100, 1000), ("6.1", 100, 1000),
    ("8", 100, 1000), ("9", 100, 1000), ("special 5.1", 250, 1000), ("special 6.1", 250, 1000),
    ("special 8", 250, 1000)])
def test_exempt_table(group, general, industrial):
    assert exempt_limit(group, "general") == general
    assert exempt_limit(group, "special") == general
    assert exempt_limit(group, "industrial") == industrial


def test_groups_and_special():
    assert [exempt_group(c) for c in ("2.1", "2.2", "2.3", "3", "4.1", "4.3", "5.1", "5.2", "6.1", "8", "9")] == \
        ["2", "2", "2", "3", "4", "4", "5", "5", "6.1", "8", "9"]
    assert exempt_group("8", special=True) == "special 8"
    assert exempt_group("3A") is None and exempt_group("1") is None
    with pytest.raises(HazmatError, match="cannot be \"special\""):
        exempt_group("3", special=True)
    with pytest.raises(HazmatError, match="premises 'farm'"):
        exempt_limit("3", "farm")


def test_aggregate_units_and_special_buckets():
    lines = {ln.group: ln for ln in aggregate(
        [("silane", 200.0, "L_wc"), ("arsine", 110.0, "L_wc"), ("h2so4", 60.0, "L"),
         ("naoh", 50.0, "kg"), ("hf", 240.0, "L"), ("h2o2", 30.0, "L"), ("peroxide", 80.0, "kg")],
        BY_ID, "general")}
    assert lines["2"].total == 310.0 and lines["2"].limit == 300 and lines["2"].exceeded  # 2.1 + 2.3
    assert lines["8"].total == 110.0 and lines["8"].unit == "L/kg" and lines["8"].exceeded  # L + kg
    assert lines["special 8"].total == 240.0 and not lines["special 8"].exceeded  # 250 for "special"
    assert lines["5"].total == 110.0 and lines["5"].exceeded  # 5.1 + 5.2 together
    assert not aggregate([("silane", 310.0, "L_wc")], BY_ID, "industrial")[0].exceeded  # 450
    with pytest.raises(HazmatError, match="counted in L_wc"):
        aggregate([("silane", 5.0, "L")], BY_ID, "general")
    with pytest.raises(HazmatError, match="not in"):
        aggregate([("unobtainium", 5.0, "L")], BY_ID, "general")


def _hz(*stores):
    return HazmatCfg(substances=SUBS, stores=stores)


LIC = Store(id="LIC", site="A", premises="industrial", licence="DG-1",
            licensed_max={"3": 400.0, "2": 100.0, "2.3": 20.0}, compartments=("a",), alert_fraction=0.8)
EX = Store(id="EX", site="A", premises="general", compartments=("a",))
EX2 = Store(id="EX2", site="A", premises="industrial", compartments=("a",))


def kinds(findings):
    return sorted((f.severity, f.store, f.kind, f.subject) for f in findings)


def test_licence_alert_at_fraction_action_above():
    hz = _hz(LIC)
    assert check_licences(hz, [("LIC", "ipa", 319.0, "L")]) == []
    assert kinds(check_licences(hz, [("LIC", "ipa", 320.0, "L")])) == [("alert", "LIC", "licence", "3")]
    assert kinds(check_licences(hz, [("LIC", "ipa", 400.0, "L")])) == [("alert", "LIC", "licence", "3")]
    (f,) = check_licences(hz, [("LIC", "ipa", 250.0, "L"), ("LIC", "ipa", 150.5, "L")])
    assert (f.severity, f.subject) == ("action", "3") and "remove 0.5 L" in f.message


def test_licence_most_specific_key_and_division_of_class():
    hz = _hz(LIC)
    # arsine (2.3) counts against "2.3" only, silane (2.1) against "2"
    assert kinds(check_licences(hz, [("LIC", "arsine", 21.0, "L_wc"), ("LIC", "silane", 50.0, "L_wc")])) \
        == [("action", "LIC", "licence", "2.3")]
    assert class_matches("2", "2.1") and not class_matches("3", "3A") and not class_matches("2.1", "2.3")


def test_unlicensed_class_in_licensed_store_and_unlicensed_stores_share_the_site_exemption():
    hz = _hz(LIC, EX, EX2)
    # 60 L of sulfuric acid in the licensed store (class 8 not on its licence) plus 50 L in EX:
    # 110 L on site A > 100 L (general premises is the stricter of the two contributing)
    found = check_licences(hz, [("LIC", "h2so4", 60.0, "L"), ("EX", "h2so4", 50.0, "L")])
    assert kinds(found) == [("action", "EX,LIC", "exempt", "8")]
    # only industrial stores contributing: 1 000 L allowed, alert at 80 %
    assert kinds(check_licences(hz, [("EX2", "h2so4", 800.0, "L")])) == [("alert", "EX2", "exempt", "8")]
    assert check_licences(hz, [("EX2", "h2so4", 799.0, "L")]) == []
    # no exempt quantity for 3A diesel in the reference: any unlicensed stock is reported
    assert kinds(check_licences(hz, [("EX", "diesel", 1.0, "L")])) == [("action", "EX", "exempt", "3A")]
    # class 2 in litres of liquid cannot be aggregated
    assert kinds(check_licences(hz, [("EX", "silane", 1.0, "L")])) == [("action", "EX", "unit", "A")]


def test_special_substances_use_the_special_row():
    hz = _hz(EX)
    assert check_licences(hz, [("EX", "cyanide", 199.0, "kg")]) == []  # 250 (special), alert 200
    assert kinds(check_licences(hz, [("EX", "cyanide", 200.0, "kg")])) == [("alert", "EX", "exempt", "special 6.1")]
    assert kinds(check_licences(hz, [("EX", "cyanide", 251.0, "kg")])) == [("action", "EX", "exempt", "special 6.1")]
    # the same amount of an ordinary 8 substance exceeds 100
    assert kinds(check_licences(hz, [("EX", "naoh", 101.0, "kg")])) == [("action", "EX", "exempt", "8")]


def test_licence_rules_and_stock_values():
    hz = _hz(LIC)
    rules = {(r["point"], r["limit"]): r for r in licence_rules(hz)}
    assert rules[("LIC.stock_3", "action_high")]["value"] == 400.0
    assert rules[("LIC.stock_3", "alert_high")]["value"] == pytest.approx(320.0)
    assert stock_values(hz, [("LIC", "ipa", 12.0, "L")]) == {"LIC.stock_3": 12.0, "LIC.stock_2": 0.0,
                                                            "LIC.stock_2.3": 0.0}


def test_legacy_label_only():
    assert legacy_label("5").startswith("Cat. 5") and legacy_label(None) is None
