"""ISA-18.2 lifecycle: every (state, event) pair against a table written here by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alarms.lifecycle import (
    TRANSITIONS,
    AlarmState,
    Event,
    Refused,
    State,
    mode_suppressed,
    step,
    true_state,
)
from facility.config.schema import AlarmsCfg, Operator

NOW = 1_700_000_000_000
TECH = Operator("tech", "T. Technician", ("technician",))
BOSS = Operator("boss", "B. Engineer", ("engineer", "shelve_critical"))
CFG = AlarmsCfg(max_shelve_s=3600.0, max_shelve_critical_s=600.0)
ID = "MEC-PC-01.pc_0_5um:action_high"

N, U, A, R = State.NORM, State.UNACK, State.ACKED, State.RTNUN
S, D, O = State.SHLVD, State.DSUPR, State.OOSRV
X = "refused"

# One representative alarm per state (non-latching). Hidden ones are active and
# unacknowledged underneath, so leaving them shows UNACK.
FIXTURES = {
    N: AlarmState(ID, N, active=False, acked=True, occurrence=1),
    U: AlarmState(ID, U, active=True, acked=False, occurrence=1),
    A: AlarmState(ID, A, active=True, acked=True, occurrence=1),
    R: AlarmState(ID, R, active=False, acked=False, occurrence=1),
    S: AlarmState(ID, S, active=True, acked=False, occurrence=1, shelved_until_ms=NOW + 60_000),
    D: AlarmState(ID, D, active=True, acked=False, occurrence=1, suppressed_by=frozenset({"mode"})),
    O: AlarmState(ID, O, active=True, acked=False, occurrence=1, oos=True, oos_until_ms=NOW),
}

EV = (Event.RAISE, Event.CLEAR, Event.ACK, Event.RESET, Event.SHELVE, Event.UNSHELVE,
      Event.SHELVE_EXPIRED, Event.SUPPRESS, Event.UNSUPPRESS, Event.OOS, Event.RETURN,
      Event.SUPPRESS_EXPIRED, Event.OOS_EXPIRED)

# rows: state; columns in EV order (s_exp: suppress_expired, o_exp: oos_expired; no fixture
# holds an operator suppression, so s_exp is refused by its guard everywhere):
#        raise clear ack reset shelve unshelve expired suppress unsuppress oos return s_exp o_exp
EXPECTED = {
    N: (U, X, X, X, S, X, X, D, X, O, X, X, X),
    U: (X, R, A, X, S, X, X, D, X, O, X, X, X),
    A: (X, N, X, X, S, X, X, D, X, O, X, X, X),
    R: (U, X, N, X, S, X, X, D, X, O, X, X, X),
    S: (X, S, X, X, X, U, U, S, X, O, X, X, X),
    D: (X, D, X, X, X, X, X, X, U, O, X, X, X),
    O: (X, O, X, X, X, X, O, O, X, X, U, X, U),
}
CASES = [(s, e, EXPECTED[s][i]) for s in State for i, e in enumerate(EV)]


def do(a: AlarmState, ev: Event, **kw):
    kw.setdefault("now_ms", NOW)
    kw.setdefault("cfg", CFG)
    if ev is Event.SHELVE:
        kw.setdefault("duration_s", 60)
        kw.setdefault("actor", TECH)
    if ev in (Event.SUPPRESS, Event.UNSUPPRESS):
        kw.setdefault("by", "mode")
    return step(a, ev, **kw)


def test_table_covers_91_pairs_in_the_test():
    assert len(CASES) == 7 * 13 == len(State) * len(Event)


@pytest.mark.parametrize("state,event,expected", CASES,
                         ids=[f"{s.value}-{e.value}" for s, e, _ in CASES])
def test_every_state_event_pair(state, event, expected):
    result = do(FIXTURES[state], event)
    if expected == X:
        assert isinstance(result, Refused), result
        assert not result
        assert result.message.startswith(f"cannot {event.value} {ID}: ")
    else:
        assert not isinstance(result, Refused), result
        new, _ = result
        assert new.state is expected
        assert new.state is true_state(new)


def test_refusal_names_state():
    r = do(FIXTURES[N], Event.ACK)
    assert r == Refused(f"cannot ack {ID}: alarm is NORM")


def test_transitions_table_only_holds_states_or_true_state():
    for (s, e), t in TRANSITIONS.items():
        assert isinstance(s, State) and isinstance(e, Event)
        assert isinstance(t, State) or t == "TRUE_STATE"


# -- latching ---------------------------------------------------------------------------
L = AlarmState(ID, N, latching=True, occurrence=1)
LATCHED = {
    "UNACK active": replace(L, state=U, active=True, acked=False),
    "UNACK returned": replace(L, state=U, active=False, acked=False, latched=True),
    "ACKED active": replace(L, state=A, active=True, acked=True),
    "ACKED returned": replace(L, state=A, active=False, acked=True, latched=True),
}
#                    raise      clear  ack  reset
LATCH_EXPECTED = {
    "UNACK active": (X, U, A, X),
    "UNACK returned": (U, X, A, X),
    "ACKED active": (X, A, X, X),
    "ACKED returned": (U, X, X, N),
}
LATCH_CASES = [(k, e, LATCH_EXPECTED[k][i]) for k in LATCHED
               for i, e in enumerate((Event.RAISE, Event.CLEAR, Event.ACK, Event.RESET))]


@pytest.mark.parametrize("name,event,expected", LATCH_CASES)
def test_latched_pairs(name, event, expected):
    result = do(LATCHED[name], event, actor=TECH)
    if expected == X:
        assert isinstance(result, Refused)
    else:
        assert result.__class__ is tuple and result[0].state is expected


def test_latched_needs_ack_and_reset():
    a, _ = do(L, Event.RAISE)
    a, eff = do(a, Event.CLEAR)
    assert a.state is U and a.latched and [e.kind for e in eff] == ["update"]
    assert "acknowledge it first" in do(a, Event.RESET, actor=TECH).message
    a, _ = do(a, Event.ACK, actor=TECH)
    assert a.state is A
    a, eff = do(a, Event.RESET, actor=TECH)
    assert a.state is N and "resolve" in [e.kind for e in eff]


def test_reset_of_non_latching_is_refused_with_reason():
    assert "does not latch" in do(FIXTURES[A], Event.RESET).message


def test_raise_after_latched_ack_is_new_occurrence():
    a, eff = do(LATCHED["ACKED returned"], Event.RAISE)
    assert a.occurrence == 2 and a.state is U
    assert [(e.kind, e.occurrence) for e in eff] == [("resolve", 1), ("trigger", 2)]


# -- occurrences and effects ------------------------------------------------------------
def test_occurrences_and_effects():
    a = AlarmState(ID)
    a, eff = do(a, Event.RAISE, onset_ms=NOW - 5000)
    assert (a.state, a.occurrence, a.onset_ms) == (U, 1, NOW - 5000)
    assert [e.kind for e in eff] == ["trigger"]
    a, eff = do(a, Event.CLEAR)
    assert a.state is R and [e.kind for e in eff] == ["update"]
    a, eff = do(a, Event.RAISE)  # re-alarm of the same unacknowledged occurrence
    assert (a.state, a.occurrence) == (U, 1) and [e.kind for e in eff] == ["trigger"]
    a, eff = do(a, Event.ACK, actor=TECH, reason="seen")
    assert [e.kind for e in eff] == ["acknowledge", "audit"]
    assert eff[1].actor == "tech" and eff[1].reason == "seen"
    a, eff = do(a, Event.CLEAR)
    assert a.state is N and [e.kind for e in eff] == ["resolve"]
    a, _ = do(a, Event.RAISE)
    assert a.occurrence == 2


def test_rtnun_ack_resolves():
    a, eff = do(FIXTURES[R], Event.ACK, actor=TECH)
    assert a.state is N and [e.kind for e in eff] == ["resolve", "audit"]


# -- shelving -------------------------------------------------------------------------
def test_shelve_needs_duration_within_max():
    u = FIXTURES[U]
    assert "needs a duration" in do(u, Event.SHELVE, duration_s=None).message
    assert "max_shelve_s=3600" in do(u, Event.SHELVE, duration_s=3601).message
    a, eff = do(u, Event.SHELVE, duration_s=3600, reason="maintenance")
    assert a.state is S and a.shelved_until_ms == NOW + 3_600_000 and a.shelved_by == "tech"
    assert [e.kind for e in eff] == ["update", "audit"]  # hiding never resolves
    assert eff[0].text == "shelved by tech until 2023-11-14T23:13:20.000Z: maintenance"


def test_critical_shelve_needs_role_and_its_max():
    c = replace(FIXTURES[U], critical=True, priority="critical")
    assert "lacks role shelve_critical" in do(c, Event.SHELVE, actor=TECH).message
    assert "lacks role shelve_critical" in do(c, Event.SHELVE, actor=None).message
    assert "max_shelve_critical_s=600" in do(c, Event.SHELVE, actor=BOSS,
                                              duration_s=601).message
    a, _ = do(c, Event.SHELVE, actor=BOSS, duration_s=600)
    assert a.state is S


def test_shelve_expiry_shows_true_state():
    a, _ = do(FIXTURES[U], Event.SHELVE)
    a, eff = do(a, Event.CLEAR)
    assert a.state is S and eff == []
    a, _ = do(a, Event.SHELVE_EXPIRED)
    assert a.state is R  # returned while shelved, never acknowledged
    b, _ = do(FIXTURES[A], Event.SHELVE)
    b, _ = do(b, Event.CLEAR)
    b, _ = do(b, Event.SHELVE_EXPIRED)
    assert b.state is N
    c, _ = do(FIXTURES[N], Event.SHELVE)
    c, _ = do(c, Event.RAISE)
    assert c.occurrence == 2 and c.state is S
    c, eff = do(c, Event.UNSHELVE, actor=TECH)
    assert c.state is U and [e.kind for e in eff] == ["trigger", "audit"]


# -- suppression and out of service ---------------------------------------------------
def test_critical_never_suppressed_by_mode():
    c = replace(FIXTURES[U], critical=True)
    r = do(c, Event.SUPPRESS, by="mode")
    assert isinstance(r, Refused) and "never suppressed by a mode" in r.message
    for by, actor in (("design", None), ("operator", TECH), ("operator", BOSS)):
        r = do(c, Event.SUPPRESS, by=by, actor=actor, duration_s=60)
        assert isinstance(r, Refused) and "critical alarm cannot be suppressed" in r.message


def test_two_suppression_reasons():
    a, _ = do(FIXTURES[U], Event.SUPPRESS, by="design")
    a, _ = do(a, Event.SUPPRESS, by="mode")
    assert a.suppressed_by == {"design", "mode"}
    a, _ = do(a, Event.UNSUPPRESS, by="mode")
    assert a.state is D
    a, eff = do(a, Event.UNSUPPRESS, by="design")
    assert a.state is U and [e.kind for e in eff] == ["trigger"]
    assert "by=" in do(FIXTURES[U], Event.SUPPRESS, by="whim").message


def test_superseded_occurrence_is_refused():
    a = replace(FIXTURES[U], occurrence=3)
    r = do(a, Event.ACK, actor=TECH, occurrence=2)
    assert isinstance(r, Refused) and "occurrence #2 is superseded by #3" in r.message
    assert do(a, Event.ACK, actor=TECH, occurrence=3)[0].state is A


def test_shelve_records_its_expiry_time():
    a, _ = do(FIXTURES[U], Event.SHELVE, duration_s=60)
    assert a.shelved_until_ms == NOW + 60_000  # the service sends SHELVE_EXPIRED from then on
    assert FIXTURES[U].shelved_until_ms is None


def test_oos_has_precedence_over_shelve():
    a, _ = do(FIXTURES[U], Event.SHELVE)
    a, _ = do(a, Event.OOS, actor=TECH)
    assert a.state is O
    a, _ = do(a, Event.RETURN, actor=TECH)
    assert a.state is S
    a, _ = do(a, Event.OOS, actor=TECH)
    a, _ = do(a, Event.SHELVE_EXPIRED)
    a, _ = do(a, Event.RETURN, actor=TECH)
    assert a.state is U


def test_mode_suppressed_with_recovery():
    assert mode_suppressed("in_operation", "at_rest", at_rest_since_ms=0, now_ms=1,
                           recovery_s=1200)
    assert mode_suppressed("at_rest", "at_rest", at_rest_since_ms=NOW,
                           now_ms=NOW + 1_199_999, recovery_s=1200)
    assert not mode_suppressed("at_rest", "at_rest", at_rest_since_ms=NOW,
                               now_ms=NOW + 1_200_000, recovery_s=1200)
    assert not mode_suppressed("in_operation", "in_operation", at_rest_since_ms=None,
                               now_ms=NOW, recovery_s=1200)


# -- property: any event sequence keeps the state consistent ----------------------------
@settings(max_examples=150, deadline=None)
@given(st.booleans(), st.booleans(),
       st.lists(st.tuples(st.sampled_from(list(Event)),
                          st.sampled_from(["mode", "design", "operator"])), max_size=40))
def test_random_sequences_keep_invariants(latching, critical, events):
    a = AlarmState(ID, latching=latching, critical=critical)
    for i, (ev, by) in enumerate(events):
        r = step(a, ev, now_ms=NOW + i, actor=BOSS, duration_s=60, by=by, cfg=CFG)
        if isinstance(r, Refused):
            continue
        new, effects = r
        assert new.state is true_state(new)
        assert new.occurrence >= a.occurrence
        assert not (critical and "mode" in new.suppressed_by)
        assert all(e.kind in {"trigger", "acknowledge", "resolve", "update", "audit"}
                   for e in effects)
        a = new
