"""Hiding an alarm never resolves its incident (docs/ARCHITECTURE.md "Critical alarms").

Shelve, suppress and out of service send the channels an ``update`` naming who, why and
until when; the incident is resolved only when the occurrence itself reaches NORM.  First
the lifecycle's effects for every visible state and every way of hiding, then the whole
path: a request through ``ActionHandler``, the ``Pager`` writing the real SQLite outbox in
the cycle's transaction, and the ``Dispatcher`` delivering to a real PagerDuty-shaped HTTP
receiver, a webhook receiver and an SMTP server on loopback ports.  The outbox's ``action``
column keeps PagerDuty's words (an update is the same ``dedup_key`` re-triggered); the
message every channel gets says ``"action": "update"`` and PagerDuty's body ``trigger``.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import pytest
from aiosmtpd.controller import Controller

from alarms.dispatcher import Dispatcher
from alarms.lifecycle import AlarmState, Event, Refused, State, step
from facility.config import parse_config
from facility.config.schema import AlarmsCfg, Operator
from facility.domain.model import iso_ms, now_ms
from tests.fixtures.config import device, facility_toml, operator, zone
from tests.fixtures.desk import Desk
from tests.fixtures.service import Receiver
from tests.fixtures.wait import DEADLINE_S

NOW = 1_700_000_000_000  # 2023-11-14T22:13:20Z
LEAD = Operator("lead", "L. Lead", ("technician", "engineer", "shelve_critical"))
ENG = Operator("eng", "E. Engineer", ("technician", "engineer"))
CFG = AlarmsCfg()
GAS = "GD-1:gas_low"  # critical, not latching here
TEMP = "T-1.temp:action_high"  # high, not critical
KEY = "R0UT1NG"

# One alarm per visible state with an open incident; hidden, each still needs handling.
VISIBLE = {
    "UNACK": dict(state=State.UNACK, active=True, acked=False),
    "ACKED": dict(state=State.ACKED, active=True, acked=True),
    "RTNUN": dict(state=State.RTNUN, active=False, acked=False),
}
# (how, event, by, actor, critical, the update's text without the end time)
HIDES = [
    ("shelve", Event.SHELVE, "operator", LEAD, True, "shelved by lead until "),
    ("oos", Event.OOS, "operator", LEAD, True, "out of service by lead until "),
    ("suppress", Event.SUPPRESS, "operator", ENG, False, "suppressed by eng until "),
    ("mode", Event.SUPPRESS, "mode", None, False, "suppressed by mode"),
    ("design", Event.SUPPRESS, "design", None, False, "suppressed by design"),
]
HIDE_CASES = [(h, s) for h in HIDES for s in VISIBLE]


def _alarm(critical: bool, **state) -> AlarmState:
    aid = GAS if critical else TEMP
    return AlarmState(aid, occurrence=1, critical=critical,
                      priority="critical" if critical else "high", **state)


@pytest.mark.parametrize("hide,visible", HIDE_CASES,
                         ids=[f"{h[0]}-{s}" for h, s in HIDE_CASES])
def test_hiding_an_open_occurrence_updates_and_never_resolves(hide, visible):
    how, event, by, actor, critical, words = hide
    a = _alarm(critical, **VISIBLE[visible])
    new, effects = step(a, event, now_ms=NOW, actor=actor, reason="detector swap",
                        duration_s=600, by=by, cfg=CFG)
    assert new.state in (State.SHLVD, State.OOSRV, State.DSUPR)
    pages = [e for e in effects if e.kind != "audit"]
    assert [e.kind for e in pages] == ["update"]
    (up,) = pages
    assert up.hidden == {"shelve": "shelved", "oos": "out of service"}.get(how, "suppressed")
    assert (up.alarm_id, up.occurrence, up.critical) == (a.id, 1, critical)
    if by == "operator":  # who, until when, why
        until = NOW + 600_000
        assert up.text == f"{words}{iso_ms(until)}: detector swap" and up.until_ms == until
        assert up.actor == actor.login and up.reason == "detector swap"
    else:
        assert up.text.startswith(words) and up.until_ms is None


def test_a_critical_alarm_cannot_be_suppressed_so_nothing_is_paged():
    for by, actor in (("operator", LEAD), ("mode", None), ("design", None)):
        r = step(_alarm(True, **VISIBLE["UNACK"]), Event.SUPPRESS, now_ms=NOW, actor=actor,
                 duration_s=600, by=by, cfg=CFG)
        assert isinstance(r, Refused)


def test_hiding_an_alarm_in_norm_pages_nothing():
    for how, event, by, actor, critical, _ in HIDES:
        new, effects = step(_alarm(critical), event, now_ms=NOW, actor=actor, reason="r",
                            duration_s=600, by=by, cfg=CFG)
        assert new.state is not State.NORM
        assert [e.kind for e in effects if e.kind != "audit"] == [], how


def test_the_incident_resolves_when_the_occurrence_reaches_norm_and_only_once():
    a = _alarm(True, **VISIBLE["ACKED"])
    a, eff = step(a, Event.SHELVE, now_ms=NOW, actor=LEAD, reason="r", duration_s=600, cfg=CFG)
    assert [e.kind for e in eff] == ["update", "audit"]
    a, eff = step(a, Event.CLEAR, now_ms=NOW + 1000, onset_ms=NOW + 1000, cfg=CFG)
    assert a.state is State.SHLVD  # still shelved, but the acknowledged occurrence is over
    assert [(e.kind, e.text) for e in eff] == [("resolve", "returned to normal while shelved")]
    a, eff = step(a, Event.SHELVE_EXPIRED, now_ms=NOW + 600_000, cfg=CFG)
    assert a.state is State.NORM and eff == []  # resolved already: not twice
    # returned unacknowledged while hidden: shown again it says so, and waits for the ack
    b = _alarm(True, **VISIBLE["UNACK"])
    b, _ = step(b, Event.OOS, now_ms=NOW, actor=LEAD, reason="r", duration_s=600, cfg=CFG)
    b, eff = step(b, Event.CLEAR, now_ms=NOW + 1000, cfg=CFG)
    assert eff == []
    b, eff = step(b, Event.OOS_EXPIRED, now_ms=NOW + 600_000, cfg=CFG)
    assert b.state is State.RTNUN and [e.kind for e in eff] == ["update"]
    b, eff = step(b, Event.ACK, now_ms=NOW + 700_000, actor=LEAD, cfg=CFG)
    assert b.state is State.NORM and [e.kind for e in eff] == ["resolve", "audit"]


def test_expiries_wait_for_their_time_and_show_the_true_state():
    a = _alarm(True, **VISIBLE["UNACK"])
    a, _ = step(a, Event.OOS, now_ms=NOW, actor=LEAD, reason="r", duration_s=60, cfg=CFG)
    early = step(a, Event.OOS_EXPIRED, now_ms=NOW + 59_999, cfg=CFG)
    assert isinstance(early, Refused) and "out of service until" in early.message
    a, eff = step(a, Event.OOS_EXPIRED, now_ms=NOW + 60_000, cfg=CFG)
    assert (a.state, a.oos, a.oos_until_ms) == (State.UNACK, False, None)
    assert [e.kind for e in eff] == ["trigger"]  # the same occurrence, paged again
    t = _alarm(False, **VISIBLE["UNACK"])
    t, _ = step(t, Event.SUPPRESS, now_ms=NOW, actor=ENG, reason="r", duration_s=60, cfg=CFG)
    assert isinstance(step(t, Event.SUPPRESS_EXPIRED, now_ms=NOW + 1, cfg=CFG), Refused)
    t, eff = step(t, Event.SUPPRESS_EXPIRED, now_ms=NOW + 60_000, cfg=CFG)
    assert t.state is State.UNACK and not t.suppressed_by and t.suppressed_until_ms is None
    assert [e.kind for e in eff] == ["trigger"]


# -- the whole path, to real receivers ---------------------------------------------------
class Mailbox:
    """aiosmtpd on an ephemeral loopback port, keeping each message's text."""

    def __init__(self):
        self.messages: list[str] = []
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                box.messages.append(envelope.content.decode())
                return "250 OK"

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def subjects(self) -> list[str]:
        return [next(line[len("Subject: "):] for line in m.splitlines()
                     if line.startswith("Subject: ")) for m in self.messages]

    def close(self):
        self.controller.stop()


@pytest.fixture
def receivers():
    pd, hook, mail = Receiver(), Receiver(), Mailbox()
    yield pd, hook, mail
    pd.close()
    hook.close()
    mail.close()


def _config(tmp_path, pd, hook, mail, *, levels=None):
    db = str(tmp_path / "fms.db")
    channels = [
        {"id": "pd", "type": "pagerduty", "url": f"{pd.url}/v2/enqueue",
         "routing_key_env": "PD_KEY"},
        {"id": "hook", "type": "webhook", "url": f"{hook.url}/pages"},
        {"id": "mail", "type": "smtp", "smtp_host": "127.0.0.1", "smtp_port": mail.port,
         "smtp_from": "fms@example.org", "to": ["oncall@example.org"]},
    ]
    text = facility_toml(
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
        operators=[operator("lead", "L. Lead", list(LEAD.roles)),
                   operator("eng", "E. Engineer", list(ENG.roles))],
        paging={"base_backoff_s": 0.05, "max_backoff_s": 0.2, "channels": channels,
                "routes": [{"priorities": ["critical", "high", "medium", "low"],
                            "levels": levels or [{"after_s": 0,
                                                  "channels": ["pd", "hook", "mail"]}]}]})
    return parse_config(text, base_dir=str(tmp_path)), db


def _deliver(desk: Desk, db: str) -> None:
    """Run the real dispatcher until the outbox holds nothing pending (bounded)."""

    async def run():
        # every row is due: pages written at a future "now" (an expiry) are not held back
        d = Dispatcher(db, desk.cfg.paging, env={"PD_KEY": KEY}, clock=lambda: 2**62)
        try:
            loop = asyncio.get_running_loop()
            end = loop.time() + DEADLINE_S
            while loop.time() < end:
                await d.run_once()
                left = desk.store.conn.execute(
                    "SELECT COUNT(*) FROM page_outbox WHERE state='pending'").fetchone()[0]
                if left == 0:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError("outbox not drained")
        finally:
            d.close()

    asyncio.run(run())
    failed = desk.store.conn.execute(
        "SELECT channel, last_error FROM page_outbox WHERE state='failed'").fetchall()
    assert failed == []


def _key(aid: str, occ: int = 1) -> str:
    return f"t:{aid}#{occ}"


@pytest.fixture
def desk_of(tmp_path, receivers):
    made = []

    def make(**kw):
        cfg, db = _config(tmp_path, *receivers, **kw)
        desk = Desk(cfg, db)
        made.append(desk)
        return desk, db

    yield make
    for d in made:
        d.close()


def test_shelving_an_active_critical_alarm_updates_every_channel_then_resolves_at_norm(
        desk_of, receivers):
    pd, hook, mail = receivers
    desk, db = desk_of()
    desk.raise_(GAS)
    n = len(desk.outbox())
    reply = desk.act("lead", {"action": "shelve", "alarm": GAS, "duration_s": 600,
                              "reason": "detector swap"})
    assert reply["ok"], reply
    until = desk.state(GAS).shelved_until_ms
    text = f"shelved by lead until {iso_ms(until)}: detector swap"
    rows = desk.outbox()[n:]
    assert sorted(r["channel"] for r in rows) == ["hook", "mail", "pd"]
    for r in rows:
        assert r["dedup_key"] == _key(GAS) and r["action"] == "trigger"  # same incident
        m = r["message"]
        assert (m["event"], m["action"]) == ("update", "update")
        assert m["summary"].endswith(f": {text}")
        assert m["custom_details"]["actor"] == "lead"
        assert m["custom_details"]["reason"] == "detector swap"
    _deliver(desk, db)
    assert [(b["event_action"], b["dedup_key"]) for b in pd.pages] == [
        ("trigger", _key(GAS)), ("trigger", _key(GAS))]
    assert pd.pages[1]["payload"]["summary"].endswith(text)
    assert [(b["action"], b["event"]) for b in hook.pages] == [("trigger", "trigger"),
                                                               ("update", "update")]
    subjects = mail.subjects()
    assert len(subjects) == 2 and subjects[1].startswith("[UPDATE] ")
    # the shelve ends: shown again, unacknowledged, the same incident is paged again;
    # acknowledged and returned to normal, it is resolved, once, at last
    desk.expire(until)
    assert desk.state(GAS).state is State.UNACK
    assert desk.act("lead", {"action": "ack", "alarm": GAS, "reason": "on it"})["ok"]
    desk.clear(GAS)
    assert desk.state(GAS).state is State.NORM
    _deliver(desk, db)
    actions = [b["event_action"] for b in pd.pages]
    assert actions == ["trigger", "trigger", "trigger", "acknowledge", "resolve"]
    assert [b["action"] for b in hook.pages] == ["trigger", "update", "trigger", "acknowledge",
                                                 "resolve"]
    assert len(mail.messages) == 5 and mail.subjects()[-1].startswith("[RESOLVE] ")


def test_out_of_service_of_a_gas_detector_updates_and_expires_back_to_service(
        desk_of, receivers):
    pd, hook, mail = receivers
    desk, db = desk_of()
    desk.raise_(GAS)
    n_out, n_audit = len(desk.outbox()), len(desk.audit())
    reply = desk.act("lead", {"action": "oos", "device": "GD-1", "duration_s": 900,
                              "reason": "bump test"})
    assert reply["ok"] and "GD-1 out of service until " in reply["message"], reply
    until = desk.state(GAS).oos_until_ms
    gd = sorted(aid for aid in desk.book.states if aid.startswith("GD-1"))
    assert all(desk.state(aid).state is State.OOSRV for aid in gd)
    rows = desk.outbox()[n_out:]  # only the active alarm had an incident to update
    assert {r["dedup_key"] for r in rows} == {_key(GAS)} and len(rows) == 3
    assert all(r["message"]["action"] == "update" and r["message"]["summary"].endswith(
        f"out of service by lead until {iso_ms(until)}: bump test") for r in rows)
    # not yet due: nothing changes
    desk.expire(until - 1)
    assert all(desk.state(aid).state is State.OOSRV for aid in gd)
    desk.expire(until)
    assert desk.state(GAS).state is State.UNACK  # its true state: still active, unacked
    assert all(not desk.state(aid).oos for aid in gd)
    assert {desk.state(aid).state for aid in gd if aid != GAS} == {State.NORM}
    events = [e for e in desk.store.events() if e["event"] == "oos_expired"]
    assert sorted(e["alarm_id"] for e in events) == gd
    assert {e["actor"] for e in events} == {"timer"}
    (row,) = [r for r in desk.audit()[n_audit:] if r["action"] == "oos_expired"]
    assert (row["actor"], row["subject"]) == ("timer", "GD-1")
    assert row["details"] == {"alarms": len(gd), "until_ms": until}
    _deliver(desk, db)
    assert [b["event_action"] for b in pd.pages] == ["trigger", "trigger", "trigger"]
    assert {b["dedup_key"] for b in pd.pages} == {_key(GAS)}
    assert [b["action"] for b in hook.pages] == ["trigger", "update", "trigger"]
    assert not any("resolve" in s.lower() for s in mail.subjects())
    assert desk.store.verify_audit().ok


def test_suppressing_a_plain_alarm_updates_and_a_critical_one_is_refused(desk_of, receivers):
    pd, hook, mail = receivers
    desk, db = desk_of()
    desk.raise_(TEMP)
    desk.raise_(GAS)
    n = len(desk.outbox())
    refused = desk.act("eng", {"action": "suppress", "alarm": GAS, "duration_s": 600,
                               "reason": "nuisance"})
    assert not refused["ok"] and "cannot be suppressed" in refused["message"]
    assert desk.outbox()[n:] == [] and desk.state(GAS).state is State.UNACK
    assert desk.act("eng", {"action": "suppress", "alarm": TEMP, "duration_s": 600,
                            "reason": "chiller swap"})["ok"]
    until = desk.state(TEMP).suppressed_until_ms
    rows = desk.outbox()[n:]
    assert len(rows) == 3 and {r["dedup_key"] for r in rows} == {_key(TEMP)}
    assert all(r["message"]["action"] == "update" and r["action"] != "resolve" for r in rows)
    assert rows[0]["message"]["summary"].endswith(
        f"suppressed by eng until {iso_ms(until)}: chiller swap")
    desk.expire(until)
    assert desk.state(TEMP).state is State.UNACK
    (row,) = desk.audit("suppress_expired")
    assert (row["actor"], row["subject"]) == ("timer", f"{TEMP}#1")
    _deliver(desk, db)
    assert [b["event_action"] for b in pd.pages if b["dedup_key"] == _key(TEMP)] == [
        "trigger", "trigger", "trigger"]
    assert not any(b["event_action"] == "resolve" for b in pd.pages)


def test_a_hidden_occurrence_is_not_escalated_until_it_shows_again(desk_of, receivers):
    pd, hook, mail = receivers
    desk, db = desk_of(levels=[{"after_s": 0, "channels": ["hook"]},
                               {"after_s": 60, "channels": ["pd"]}])
    lead = desk.book.operators["lead"]
    t = now_ms()
    desk.raise_(GAS, at=t)
    assert desk.book.apply(GAS, Event.SHELVE, now_ms=t + 10_000, actor=lead, reason="swap",
                           duration_s=600)
    desk.write(t + 10_000)
    desk.write(t + 120_000)  # past level 2's delay: a visible UNACK would escalate now
    assert [r["channel"] for r in desk.outbox()] == ["hook", "hook"]  # trigger, update
    desk.expire(t + 610_000)  # shown again, still unacknowledged: escalation resumes
    assert desk.state(GAS).state is State.UNACK
    assert [r["channel"] for r in desk.outbox()][2:] == ["hook", "pd"]


def test_end_times_survive_a_restart(desk_of):
    from facility.service.alarm_book import AlarmBook

    desk, _db = desk_of()
    desk.raise_(TEMP)
    assert desk.act("lead", {"action": "oos", "device": "GD-1", "duration_s": 900,
                             "reason": "bump test"})["ok"]
    assert desk.act("eng", {"action": "suppress", "alarm": TEMP, "duration_s": 600,
                            "reason": "r"})["ok"]
    again = AlarmBook(desk.cfg, desk.book.metas, desk.book.config_version)
    again.restore(desk.store.alarms())
    for aid, st in desk.book.states.items():
        r = again.states[aid]
        assert (r.oos_until_ms, r.suppressed_until_ms) == (st.oos_until_ms,
                                                           st.suppressed_until_ms), aid
    assert again.states[GAS].oos_until_ms is not None
    assert replace(again.states[TEMP], changed_ms=None) == replace(desk.state(TEMP),
                                                                   changed_ms=None)
