"""Who may do what: every (role set, action, critical?) pair, through the real request path.

Roles are explicit sets (docs/ARCHITECTURE.md "Critical alarms"): a login may do what its
listed roles allow and nothing more, and ``admin`` implies no other role, least of all
``shelve_critical``.  Each case below sets an alarm (or device) up so that the action is
possible, sends the request as that login through ``ActionHandler.handle`` (which checks the
role, then ``alarms.lifecycle.step`` checks what the alarm allows), stores the outcome in a
real SQLite store, and checks the reply, the alarm's state and the audit row.  The
expectations are written out by hand in ``ALLOWED``, not derived from the code under test.
"""

from __future__ import annotations

import pytest

from alarms.lifecycle import State
from facility.config import load_config, parse_config
from facility.domain.model import now_ms
from tests.fixtures.config import device, facility_toml, operator, zone
from tests.fixtures.desk import Desk

TEMP = "T-1.temp:action_high"  # not critical (an ISO 7 room), latching in this configuration
GAS = "GD-1:gas_high"  # critical: an arsine detector's own alarm, latching

ROLE_SETS = {
    "viewer": ("viewer",),
    "tech": ("technician",),
    "eng": ("engineer",),
    "crit": ("shelve_critical",),
    "hazmat": ("hazmat",),
    "admin": ("admin",),
    "tech_eng": ("technician", "engineer"),
    "tech_crit": ("technician", "shelve_critical"),
    "eng_crit": ("engineer", "shelve_critical"),
    "lead": ("technician", "engineer", "shelve_critical"),
    "root": ("technician", "engineer", "hazmat", "admin"),  # the shipped root: admin, no crit
    "admin_crit": ("admin", "shelve_critical"),
}

ALARM_ACTIONS = ("ack", "reset", "comment", "shelve", "unshelve", "suppress", "unsuppress")
DEVICE_ACTIONS = ("oos", "return")
ALL = "ack reset comment shelve unshelve suppress unsuppress oos return mode"

# role set -> (what it may do to a non-critical alarm or device, ... to a critical one).
# "mode" acts on a zone, so it appears only in the first column.
ALLOWED = {
    "viewer": ("", ""),
    "tech": ("ack reset comment shelve unshelve mode", "ack reset comment unshelve"),
    "eng": ("suppress unsuppress oos return", "return"),
    "crit": ("", ""),
    "hazmat": ("", ""),
    "admin": ("", ""),
    "tech_eng": (ALL, "ack reset comment unshelve return"),
    "tech_crit": ("ack reset comment shelve unshelve mode", "ack reset comment shelve unshelve"),
    "eng_crit": ("suppress unsuppress oos return", "oos return"),
    "lead": (ALL, "ack reset comment shelve unshelve oos return"),
    "root": (ALL, "ack reset comment unshelve return"),
    "admin_crit": ("", ""),
}
BASE_ROLE = {"ack": "technician", "reset": "technician", "comment": "technician",
             "shelve": "technician", "unshelve": "technician", "mode": "technician",
             "suppress": "engineer", "unsuppress": "engineer", "oos": "engineer",
             "return": "engineer"}
# Why a login that holds the action's base role is still refused on a critical alarm.
CRITICAL_REFUSAL = {"shelve": "shelve_critical", "oos": "shelve_critical",
                    "suppress": "a critical alarm cannot be suppressed",
                    "unsuppress": "alarm is UNACK"}  # it never was suppressed

CASES = [(name, action, critical) for name in ROLE_SETS
         for action in (*ALARM_ACTIONS, *DEVICE_ACTIONS, "mode")
         for critical in (False, True) if not (action == "mode" and critical)]


def config_text(db: str) -> str:
    return facility_toml(
        storage={"path": db},
        zones=[zone("Z1", iso_class=7, area_m2=10)],
        devices=[
            device("T-1", 15030, zone="Z1", points=[{
                "name": "temp", "table": "holding", "address": 0, "type": "float32",
                "unit": "C", "quantity": "temperature",
                "limits": {"action_high": {"limit": 25.0}}}]),
            device("GD-1", 15031, zone="Z1", profile="gas-detector", gas="arsine",
                   monitor="room"),
        ],
        operators=[operator(name, name, roles) for name, roles in ROLE_SETS.items()],
        alarms={"latching": ["gas_high", "action_high"]})


@pytest.fixture
def desk(tmp_path):
    db = str(tmp_path / "fms.db")
    d = Desk(parse_config(config_text(db), base_dir=str(tmp_path)), db)
    yield d
    d.close()


def test_the_table_covers_every_role_set_and_action():
    assert set(ALLOWED) == set(ROLE_SETS)
    assert len(CASES) == len(ROLE_SETS) * 19
    for may, may_critical in ALLOWED.values():
        assert set(may.split()) <= set(ALL.split()) and "mode" not in may_critical.split()
    assert not any(set(ALLOWED[n][1].split()) - set(ALLOWED[n][0].split()) for n in ALLOWED)


def _prepare(desk: Desk, action: str, critical: bool) -> dict:
    """Bring an alarm (or device) into a state where ``action`` is possible; the request."""
    aid, dev = (GAS, "GD-1") if critical else (TEMP, "T-1")
    lead = "lead"
    if action == "mode":
        return {"action": "mode", "zone": "Z1", "mode": "in_operation", "reason": "shift start"}
    if action == "return":
        assert desk.act(lead, {"action": "oos", "device": dev, "duration_s": 600,
                               "reason": "bump test"})["ok"]
        return {"action": "return", "device": dev, "reason": "bump test done"}
    if action == "oos":
        return {"action": "oos", "device": dev, "duration_s": 600, "reason": "bump test"}
    desk.raise_(aid)
    if action == "reset":
        assert desk.act(lead, {"action": "ack", "alarm": aid, "reason": "seen"})["ok"]
        desk.clear(aid)
        assert desk.state(aid).state is State.ACKED and desk.state(aid).latched
    if action == "unshelve":
        assert desk.act(lead, {"action": "shelve", "alarm": aid, "duration_s": 600,
                               "reason": "sensor swap"})["ok"]
    if action == "unsuppress" and not critical:
        assert desk.act(lead, {"action": "suppress", "alarm": aid, "duration_s": 600,
                               "reason": "known nuisance"})["ok"]
    req = {"action": action, "alarm": aid, "occurrence": desk.state(aid).occurrence,
           "reason": "per procedure"}
    if action in ("shelve", "suppress"):
        req["duration_s"] = 600
    return req


@pytest.mark.parametrize("name,action,critical", CASES,
                         ids=[f"{n}-{a}-{'critical' if c else 'plain'}" for n, a, c in CASES])
def test_role_table(desk, name, action, critical):
    req = _prepare(desk, action, critical)
    subject_alarm = req.get("alarm")
    before = desk.state(subject_alarm) if subject_alarm else None
    audit_before = len(desk.audit())
    reply = desk.act(name, req)
    allowed = action in ALLOWED[name][1 if critical else 0].split()
    assert reply["ok"] is allowed, reply
    assert "\n" not in reply["message"]  # one line, whatever the outcome
    rows = desk.audit()[audit_before:]
    ours = [r for r in rows if r["actor"] == name]
    if allowed:  # one row per alarm changed, and for a device one naming the device too
        assert {r["action"] for r in ours} == {action}, ours
        if action in DEVICE_ACTIONS:
            assert [r["subject"] for r in ours][-1] == req["device"]
        return
    assert [r["action"] for r in ours] == [f"refused:{action}"], ours
    refusal = ours[0]["details"]["refusal"]
    assert refusal == reply["message"]
    base = BASE_ROLE[action]
    if base not in ROLE_SETS[name]:
        assert f"lacks role '{base}'" in refusal
    else:
        assert critical and CRITICAL_REFUSAL[action] in refusal, refusal
    if before is not None:  # a refused request changes nothing
        assert desk.state(subject_alarm) == before


# -- the bounds on hiding, beyond the roles ------------------------------------------------
def _refused(desk, login, req, words):
    reply = desk.act(login, req)
    assert not reply["ok"] and words in reply["message"] and "\n" not in reply["message"], reply
    assert desk.audit(f"refused:{req['action']}")[-1]["details"]["refusal"] == reply["message"]


def test_critical_shelve_is_bounded_by_max_shelve_critical_s(desk):
    desk.raise_(GAS)
    shelve = {"action": "shelve", "alarm": GAS, "reason": "swap"}
    _refused(desk, "lead", {**shelve, "duration_s": 3601}, "exceeds max_shelve_critical_s=3600")
    _refused(desk, "lead", shelve, "needs a duration")
    assert desk.act("lead", {**shelve, "duration_s": 3600})["ok"]
    assert desk.state(GAS).state is State.SHLVD


def test_suppress_needs_a_duration_within_max_suppress_s(desk):
    desk.raise_(TEMP)
    sup = {"action": "suppress", "alarm": TEMP, "reason": "nuisance"}
    _refused(desk, "tech_eng", sup, "a suppression needs a duration > 0")
    _refused(desk, "tech_eng", {**sup, "duration_s": 8 * 3600 + 1}, "exceeds max_suppress_s=28800")
    _refused(desk, "tech_eng", {**sup, "duration_s": "soon"}, "is not a number of seconds")
    _refused(desk, "tech_eng", {**sup, "duration_s": float("nan")}, "finite number of seconds")
    t = now_ms()
    assert desk.act("tech_eng", {**sup, "duration_s": 8 * 3600})["ok"]
    st = desk.state(TEMP)
    assert st.state is State.DSUPR and st.suppressed_until_ms >= t + 8 * 3600 * 1000


def test_a_critical_alarm_cannot_be_suppressed_by_anyone(desk):
    desk.raise_(GAS)
    for login in ROLE_SETS:
        reply = desk.act(login, {"action": "suppress", "alarm": GAS, "duration_s": 60,
                                 "reason": "try"})
        assert not reply["ok"]
    assert desk.state(GAS).state is State.UNACK
    assert len(desk.audit("refused:suppress")) == len(ROLE_SETS)


def test_oos_of_a_device_with_critical_alarms_needs_a_bounded_duration(desk):
    desk.raise_(GAS)
    oos = {"action": "oos", "device": "GD-1", "reason": "bump test"}
    _refused(desk, "lead", oos, "GD-1 has critical alarms (GD-1:comm, GD-1:fault, GD-1:gas_high"
             " and 2 more): out of service needs --for DURATION, at most max_oos_critical_s=3600 s")
    _refused(desk, "lead", {**oos, "duration_s": 3601}, "exceeds max_oos_critical_s=3600 for GD-1")
    _refused(desk, "root", {**oos, "duration_s": 600}, "root lacks role 'shelve_critical'")
    _refused(desk, "lead", {"action": "oos", "device": "GD-1", "duration_s": 600}, "needs --reason")
    # refused for the whole device: none of its alarms went out of service
    assert not any(st.oos for st in desk.book.states.values())
    assert desk.act("lead", {**oos, "duration_s": 3600})["ok"]
    gd = [st for aid, st in desk.book.states.items() if aid.startswith("GD-1")]
    assert gd and all(st.state is State.OOSRV and st.oos_until_ms is not None for st in gd)


def test_oos_of_a_plain_device_may_stay_until_return(desk):
    reply = desk.act("tech_eng", {"action": "oos", "device": "T-1", "reason": "recalibration"})
    assert reply["ok"] and "until `facility return`" in reply["message"]
    assert all(st.oos_until_ms is None for aid, st in desk.book.states.items()
               if aid.startswith("T-1"))
    row = desk.audit("oos")[-1]
    assert row["subject"] == "T-1" and row["details"]["until_ms"] is None


def test_the_shipped_operators_name_their_roles_and_the_admin_cannot_hide_a_critical_alarm(
        tmp_path):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[3] / "config.toml"
    cfg = load_config(str(shipped))
    roles = {o.login: set(o.roles) for o in cfg.operators}
    holders = sorted(login for login, r in roles.items() if "shelve_critical" in r)
    assert holders == ["kylee"]  # the shift lead
    assert "admin" in roles["hmho"] and "shelve_critical" not in roles["hmho"]
    assert cfg.alarms.max_oos_critical_s == 3600 and cfg.alarms.max_suppress_s == 28800
    import dataclasses

    cfg = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage,
                                                               path=str(tmp_path / "f.db")))
    desk = Desk(cfg, tmp_path / "f.db")
    try:
        gas = next(aid for aid, st in desk.book.states.items()
                   if st.critical and aid.endswith(":gas_high"))
        desk.raise_(gas)
        reply = desk.act("hmho", {"action": "shelve", "alarm": gas, "duration_s": 600,
                                  "reason": "quiet please"})
        assert not reply["ok"] and "hmho lacks role shelve_critical" in reply["message"]
        assert desk.act("kylee", {"action": "shelve", "alarm": gas, "duration_s": 600,
                                      "reason": "detector swap"})["ok"]
    finally:
        desk.close()
