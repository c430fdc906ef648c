"""Paging against real loopback servers: HTTP receiver, aiosmtpd, a command script."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from alarms import outbox
from alarms.dispatcher import Dispatcher
from alarms.lifecycle import AlarmState, Event, State, step
from alarms.outbox import OUTBOX_MIGRATIONS
from alarms.paging import AlarmContext, Pager
from alarms.paging_channels import send_heartbeat
from facility.config.schema import (
    AlarmsCfg,
    Channel,
    EscalationLevel,
    Operator,
    PagingCfg,
    Route,
)
from tests.fixtures.wait import DEADLINE_S, until

T0 = 1_700_000_000_000
ANSWER_S = 30.0  # a loopback receiver answers at once; this only bounds a hung test
INST = "HKSTP"
TECH = Operator("tech", "Tech", ("technician",))
CTX = AlarmContext(site="MEC", zone="MEC-LITHO", device="MEC-PC-01",
                   summary="MEC-LITHO 0.5 um above action limit")


# -- real servers -------------------------------------------------------------------------
class Receiver:
    """HTTP server on an ephemeral loopback port recording every request."""

    def __init__(self, fail_first: int = 0, fail_status: int = 503, always: int | None = None):
        self.requests: list[tuple[str, str, dict | None, int]] = []
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.always = always
        self.lock = threading.Lock()
        rec = self

        class H(BaseHTTPRequestHandler):
            def _answer(self, body):
                with rec.lock:
                    if rec.always is not None:
                        code = rec.always
                    elif rec.fail_first > 0:
                        rec.fail_first -= 1
                        code = rec.fail_status
                    else:
                        code = 202
                    rec.requests.append((self.command, self.path, body, code))
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                self._answer(json.loads(self.rfile.read(n)))

            def do_GET(self):
                self._answer(None)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self):
        return [r[2] for r in self.requests if r[3] == 202]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "facility.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for s in OUTBOX_MIGRATIONS:
        conn.execute(s)
    conn.execute("CREATE TABLE alarm_events (alarm TEXT, state TEXT, ts_ms INTEGER)")
    yield path, conn
    conn.close()


def cfg_for(channels, routes=None, **kw) -> PagingCfg:
    kw.setdefault("base_backoff_s", 0.01)
    kw.setdefault("max_backoff_s", 0.05)
    if routes is None:
        routes = (Route(levels=(EscalationLevel(0, tuple(c.id for c in channels)),)),)
    return PagingCfg(channels=tuple(channels), routes=tuple(routes), **kw)


def webhook(url, cid="hook"):
    return Channel(id=cid, type="webhook", url=url, timeout_s=ANSWER_S)


class Alarm:
    """Drives one alarm through the lifecycle and into the pager, one transaction a step."""

    def __init__(self, pager, conn, alarm_id, priority="high", critical=False, ctx=CTX):
        self.a = AlarmState(alarm_id, priority=priority, critical=critical)
        self.pager, self.conn, self.ctx = pager, conn, ctx

    def __call__(self, ev, t_ms, **kw):
        r = step(self.a, ev, now_ms=t_ms, cfg=AlarmsCfg(), **kw)
        assert r, r
        self.a, effects = r
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO alarm_events VALUES (?,?,?)",
                          (self.a.id, self.a.state.value, t_ms))
        ids = self.pager.enqueue(self.conn, effects, self.ctx, now_ms=t_ms)
        self.conn.execute("COMMIT")
        return ids


async def drain(d: Dispatcher, conn, timeout_s=DEADLINE_S):
    """Run the dispatcher until nothing is pending (bounded)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        await d.run_once()
        (n,) = conn.execute("SELECT COUNT(*) FROM page_outbox WHERE state='pending'").fetchone()
        if n == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("outbox not drained")


def rows(conn, sql="SELECT channel, dedup_key, action, state FROM page_outbox ORDER BY id"):
    return conn.execute(sql).fetchall()


# -- channels -----------------------------------------------------------------------------
async def test_pagerduty_payload_shape(db, receiver):
    path, conn = db
    ch = Channel(id="pd", type="pagerduty", url=receiver.url, routing_key_env="PD_KEY")
    cfg = cfg_for([ch])
    al = Alarm(Pager(cfg, INST), conn, "MEC-PC-01.pc_0_5um:action_high")
    al(Event.RAISE, T0, onset_ms=T0 - 1000)
    al(Event.ACK, T0 + 1000, actor=TECH, reason="on it")
    al(Event.CLEAR, T0 + 2000)
    d = Dispatcher(path, cfg, env={"PD_KEY": "R0UT1NG"})
    await drain(d, conn)
    d.close()
    bodies = receiver.accepted()
    key = f"{INST}:MEC-PC-01.pc_0_5um:action_high#1"
    assert [(b["event_action"], b["dedup_key"], b["routing_key"]) for b in bodies] == [
        ("trigger", key, "R0UT1NG"), ("acknowledge", key, "R0UT1NG"),
        ("resolve", key, "R0UT1NG")]
    p = bodies[0]["payload"]
    assert set(p) == {"summary", "source", "severity", "timestamp", "component", "group",
                      "class", "custom_details"}
    assert p["severity"] == "error" and p["source"] == INST
    assert p["summary"] == CTX.summary and len(p["summary"]) <= 1024
    assert p["timestamp"] == "2023-11-14T22:13:20.000Z"
    assert (p["component"], p["group"], p["class"]) == ("MEC-PC-01", "MEC-LITHO", "action_high")
    assert p["custom_details"]["occurrence"] == 1
    assert "payload" not in bodies[1]
    assert rows(conn, "SELECT DISTINCT state FROM page_outbox") == [("sent",)]
    assert "R0UT1NG" not in json.dumps(rows(conn, "SELECT payload FROM page_outbox"))


async def test_webhook_update_when_returned_unacknowledged(db, receiver):
    path, conn = db
    cfg = cfg_for([webhook(receiver.url)])
    al = Alarm(Pager(cfg, INST), conn, "MEC-DP-01.dp:action_low")
    al(Event.RAISE, T0)
    al(Event.CLEAR, T0 + 5000)
    al(Event.ACK, T0 + 9000, actor=TECH)
    d = Dispatcher(path, cfg)
    await drain(d, conn)
    d.close()
    b = receiver.accepted()
    assert [(m["event"], m["action"]) for m in b] == [
        ("trigger", "trigger"), ("update", "update"), ("resolve", "resolve")]
    # a page speaks the site's local time with its offset (this context names no zone: UTC)
    assert b[1]["summary"].endswith("returned at 2023-11-14 22:13:25 +00:00, not acknowledged")
    assert {m["dedup_key"] for m in b} == {f"{INST}:MEC-DP-01.dp:action_low#1"}


async def test_smtp_message_received(db):
    path, conn = db

    class Handler:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    h = Handler()
    ctl = Controller(h, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        ch = Channel(id="mail", type="smtp", smtp_host="127.0.0.1", smtp_port=port,
                     smtp_from="fms@example.org", to=("oncall@example.org",), timeout_s=ANSWER_S)
        cfg = cfg_for([ch])
        al = Alarm(Pager(cfg, INST), conn, "MEC-GD-03:comm", priority="critical",
                   critical=True)
        al(Event.RAISE, T0)
        d = Dispatcher(path, cfg, env={})
        await drain(d, conn)
        d.close()
    finally:
        ctl.stop()
    assert len(h.messages) == 1
    rcpt, text = h.messages[0]
    assert rcpt == ["oncall@example.org"]
    assert "Subject: [TRIGGER] MEC-LITHO 0.5 um above action limit" in text
    assert f"X-Dedup-Key: {INST}:MEC-GD-03:comm#1" in text


async def test_command_channel_retries_non_zero_exit(db, tmp_path):
    path, conn = db
    out, flag = tmp_path / "sms.jsonl", tmp_path / "failed-once"
    script = (
        "import sys, pathlib\n"
        f"flag = pathlib.Path({str(flag)!r})\n"
        "if not flag.exists():\n"
        "    flag.touch(); sys.exit(3)\n"
        f"open({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')\n"
    )
    ch = Channel(id="sms", type="command", command=(sys.executable, "-c", script), timeout_s=20)
    cfg = cfg_for([ch])
    Alarm(Pager(cfg, INST), conn, "MEC-GC-01:exhaust_fail", priority="critical")(
        Event.RAISE, T0)
    d = Dispatcher(path, cfg)
    await d.run_once()
    (attempts, err) = conn.execute("SELECT attempts, last_error FROM page_outbox").fetchone()
    assert attempts == 1 and "exit 3" in err
    await drain(d, conn)
    d.close()
    lines = out.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["dedup_key"] == f"{INST}:MEC-GC-01:exhaust_fail#1"


# -- delivery guarantees ----------------------------------------------------------------
async def test_503_then_202_delivers_all_in_order_without_duplicates(db):
    path, conn = db
    rec = Receiver(fail_first=7)
    try:
        cfg = cfg_for([webhook(rec.url)])
        pager = Pager(cfg, INST)
        alarms = [Alarm(pager, conn, f"MEC-DP-0{i}.dp:action_low") for i in range(3)]
        for i, al in enumerate(alarms):
            al(Event.RAISE, T0 + i)
        for i, al in enumerate(alarms):
            al(Event.ACK, T0 + 10 + i, actor=TECH)
            al(Event.CLEAR, T0 + 20 + i)
        d = Dispatcher(path, cfg)
        await drain(d, conn)
        d.close()
    finally:
        rec.close()
    got = rec.accepted()
    assert len(rec.requests) == 9 + 7
    assert len(got) == 9
    assert len({(m["dedup_key"], m["action"]) for m in got}) == 9  # none duplicated
    for al in alarms:
        key = f"{INST}:{al.a.id}#1"
        assert [m["action"] for m in got if m["dedup_key"] == key] == [
            "trigger", "acknowledge", "resolve"]
    assert rows(conn, "SELECT MAX(attempts) > 1, COUNT(*) FROM page_outbox WHERE state='sent'"
                ) == [(1, 9)]


def _asleep(d: Dispatcher) -> bool:
    """The dispatcher found nothing due and waits on its wake event (or poll_s)."""
    return bool(getattr(d._wake, "_waiters", None))


async def test_run_loop_wakes_and_stops(db, receiver):
    path, conn = db
    cfg = cfg_for([webhook(receiver.url)])
    d = Dispatcher(path, cfg, poll_s=3600.0)  # only wake() can deliver within the test
    task = asyncio.create_task(d.run())
    assert await until(lambda: _asleep(d)), "the dispatcher never went idle"
    Alarm(Pager(cfg, INST), conn, "A:x")(Event.RAISE, T0)
    d.wake()
    assert await until(receiver.accepted), "wake() did not deliver"
    d.stop()
    await asyncio.wait_for(task, DEADLINE_S)
    assert len(receiver.accepted()) == 1


async def test_failing_head_blocks_its_key_only(db):
    path, conn = db
    rec = Receiver()
    try:
        ch = webhook(rec.url)
        cfg = cfg_for([ch])
        pager = Pager(cfg, INST)
        a1 = Alarm(pager, conn, "A:x")
        a2 = Alarm(pager, conn, "B:x")
        a1(Event.RAISE, T0)
        a1(Event.CLEAR, T0 + 1)
        a2(Event.RAISE, T0 + 2)
        # make A's head retry far in the future
        conn.execute("UPDATE page_outbox SET next_try_ms=? WHERE dedup_key LIKE '%A:x#1'"
                     " AND seq=1", (T0 + 10**9,))
        d = Dispatcher(path, cfg, clock=lambda: T0 + 10)
        await d.run_once()
        await d.run_once()
        d.close()
    finally:
        rec.close()
    assert [m["dedup_key"] for m in rec.accepted()] == [f"{INST}:B:x#1"]


async def test_400_is_failed_and_not_retried(db):
    path, conn = db
    rec = Receiver(always=400)
    try:
        cfg = cfg_for([Channel(id="pd", type="pagerduty", url=rec.url, routing_key_env="K")])
        Alarm(Pager(cfg, INST), conn, "A:x")(Event.RAISE, T0)
        d = Dispatcher(path, cfg, env={"K": "k"})
        await d.run_once()
        await d.run_once()
        d.close()
    finally:
        rec.close()
    assert len(rec.requests) == 1
    state, attempts, err = conn.execute(
        "SELECT state, attempts, last_error FROM page_outbox").fetchone()
    assert (state, attempts) == ("failed", 1) and "HTTP 400" in err
    assert outbox.counts(conn) == {"failed": 1}


async def test_outbox_survives_restart(db):
    path, conn = db
    rec = Receiver(always=503)
    try:
        cfg = cfg_for([webhook(rec.url)])
        al = Alarm(Pager(cfg, INST), conn, "A:x")
        al(Event.RAISE, T0)
        al(Event.ACK, T0 + 1, actor=TECH)
        d1 = Dispatcher(path, cfg)
        await d1.run_once()
        d1.close()
        del d1
        assert outbox.counts(conn) == {"pending": 2}
        rec.always = None
        d2 = Dispatcher(path, cfg, clock=lambda: T0 + 10**12)  # backoff long passed
        await drain(d2, conn)
        d2.close()
    finally:
        rec.close()
    assert [m["action"] for m in rec.accepted()] == ["trigger", "acknowledge"]


def test_enqueue_joins_the_callers_transaction(db, tmp_path):
    _, conn = db
    cfg = cfg_for([webhook("http://127.0.0.1:9/")])
    pager = Pager(cfg, INST)
    a, eff = step(AlarmState("A:x"), Event.RAISE, now_ms=T0)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO alarm_events VALUES ('A:x', 'UNACK', ?)", (T0,))
    assert pager.enqueue(conn, eff, CTX, now_ms=T0)
    conn.execute("ROLLBACK")
    assert rows(conn) == [] and rows(conn, "SELECT * FROM alarm_events") == []
    # a Python-managed transaction works as well
    c2 = sqlite3.connect(conn.execute("PRAGMA database_list").fetchone()[2])
    with c2:
        c2.execute("INSERT INTO alarm_events VALUES ('A:x', 'UNACK', ?)", (T0,))
        pager.enqueue(c2, eff, CTX, now_ms=T0)
    c2.close()
    assert rows(conn) == [("hook", f"{INST}:A:x#1", "trigger", "pending")]


# -- routing, escalation, flood, backfill ----------------------------------------------
def test_routing_by_priority_zone_and_kind(db):
    _, conn = db
    chans = [webhook("http://x/", "a"), webhook("http://x/", "b")]
    cfg = cfg_for(chans, routes=[
        Route(levels=(EscalationLevel(0, ("a",)),), priorities=("critical",)),
        Route(levels=(EscalationLevel(0, ("b",)),), zones=("MEC-LITHO",), kinds=("action_high",)),
    ])
    pager = Pager(cfg, INST)
    Alarm(pager, conn, "P:action_high", priority="critical", critical=True)(Event.RAISE, T0)
    Alarm(pager, conn, "Q:action_high", priority="high")(Event.RAISE, T0)
    Alarm(pager, conn, "R:alert_high", priority="medium")(Event.RAISE, T0)  # unrouted
    assert [(r[0], r[1]) for r in rows(conn)] == [
        ("a", f"{INST}:P:action_high#1"), ("b", f"{INST}:Q:action_high#1")]


def _escalating_cfg():
    chans = [webhook("http://x/", "l1"), webhook("http://x/", "l2")]
    return cfg_for(chans, routes=[Route(levels=(
        EscalationLevel(0, ("l1",)), EscalationLevel(60, ("l2",))), repeat_s=3600)])


def test_escalation_only_when_unacknowledged(db):
    _, conn = db
    pager = Pager(_escalating_cfg(), INST)
    acked = Alarm(pager, conn, "A:x")
    ignored = Alarm(pager, conn, "B:x")
    acked(Event.RAISE, T0)
    ignored(Event.RAISE, T0)
    assert pager.tick(conn, now_ms=T0 + 59_000) == []
    acked(Event.ACK, T0 + 40_000, actor=TECH)
    pager.tick(conn, now_ms=T0 + 61_000)
    got = [(c, k.split(":", 1)[1], a) for c, k, a, _ in rows(conn)]
    assert got == [("l1", "A:x#1", "trigger"), ("l1", "B:x#1", "trigger"),
                   ("l1", "A:x#1", "acknowledge"), ("l2", "B:x#1", "trigger")]
    esc = json.loads(rows(conn, "SELECT payload FROM page_outbox ORDER BY id DESC")[0][0])
    assert esc["event"] == "escalate" and esc["custom_details"]["level"] == 2
    assert pager.tick(conn, now_ms=T0 + 120_000) == []  # no re-escalation
    # ack after escalation goes to both levels; later repeat only while unacknowledged
    ignored(Event.ACK, T0 + 130_000, actor=TECH)
    assert [r[0] for r in rows(conn)[-2:]] == ["l1", "l2"]
    assert pager.tick(conn, now_ms=T0 + 10**8) == []


def test_repeat_while_unacknowledged(db):
    _, conn = db
    pager = Pager(_escalating_cfg(), INST)
    Alarm(pager, conn, "A:x")(Event.RAISE, T0)
    pager.tick(conn, now_ms=T0 + 60_000)
    ids = pager.tick(conn, now_ms=T0 + 60_000 + 3_600_000)
    assert len(ids) == 2
    assert {json.loads(p)["event"] for (p,) in rows(
        conn, "SELECT payload FROM page_outbox WHERE id >= %d" % ids[0])} == {"repeat"}


async def test_flood_summary_and_critical_never_folded(db, receiver):
    path, conn = db
    cfg = cfg_for([webhook(receiver.url)], flood_max=3, flood_window_s=600)
    pager = Pager(cfg, INST, flood_group_s=0)
    zones = ["MEC-LITHO", "MEC-LITHO", "MEC-ETCH", "MEC-ETCH", "MEC-ETCH", "MEC-LITHO"]
    prios = ["low", "medium", "low", "high", "medium", "low"]
    for i, (z, p) in enumerate(zip(zones, prios)):
        ctx = AlarmContext(site="MEC", zone=z, summary=f"alarm {i}")
        Alarm(pager, conn, f"D{i}:action_high", priority=p, ctx=ctx)(Event.RAISE, T0 + i)
    for i in range(2):
        Alarm(pager, conn, f"GAS{i}:gas_high", priority="critical", critical=True)(
            Event.RAISE, T0 + 10 + i)
    pager.tick(conn, now_ms=T0 + 20)
    assert pager.tick(conn, now_ms=T0 + 30) == []  # one summary per episode
    d = Dispatcher(path, cfg)
    await drain(d, conn)
    d.close()
    got = receiver.accepted()
    # order is only guaranteed per dedup key; compare as sets across keys
    assert len(got) == 6
    assert {m["dedup_key"].split(":", 1)[1] for m in got if m["event"] == "trigger"} == {
        "D0:action_high#1", "D1:action_high#1", "D2:action_high#1",
        "GAS0:gas_high#1", "GAS1:gas_high#1"}
    (s,) = [m for m in got if m["event"] != "trigger"]
    assert s["event"] == "flood_summary"
    assert s["custom_details"] == {"count": 3, "by_priority": {"high": 1, "medium": 1, "low": 1},
                                   "by_zone": {"MEC-ETCH": 2, "MEC-LITHO": 1}, "site": "MEC",
                                   "new": 3, "ended": False}
    assert "3 alarms below critical not paged one by one" in s["summary"]
    assert "1 high, 1 medium, 1 low" in s["summary"]


def test_folded_occurrences_do_not_page_later(db):
    _, conn = db
    cfg = cfg_for([webhook("http://x/")], flood_max=1)
    pager = Pager(cfg, INST, flood_group_s=0)
    Alarm(pager, conn, "A:x")(Event.RAISE, T0)
    b = Alarm(pager, conn, "B:x")
    assert b(Event.RAISE, T0 + 1) == []
    assert b(Event.ACK, T0 + 2, actor=TECH) == []
    assert b(Event.CLEAR, T0 + 3) == []


def test_backfill_pages_only_still_active_and_one_info(db):
    _, conn = db
    cfg = cfg_for([webhook("http://x/")], flood_max=1)
    pager = Pager(cfg, INST)
    items, final = [], {}
    over = AlarmState("DEV.dp:action_low", priority="high")
    still = AlarmState("DEV.t:action_high", priority="high")
    for ev, t in [(Event.RAISE, 1), (Event.CLEAR, 2), (Event.RAISE, 3), (Event.CLEAR, 4)]:
        over, eff = step(over, ev, now_ms=T0 + t)
        items += [(e, CTX) for e in eff]
    for ev, t in [(Event.RAISE, 1), (Event.CLEAR, 2), (Event.RAISE, 5)]:
        still, eff = step(still, ev, now_ms=T0 + t)
        items += [(e, CTX) for e in eff]
    final = {over.id: over, still.id: still}
    assert over.state is State.RTNUN and still.state is State.UNACK
    conn.execute("BEGIN")
    pager.enqueue_backfill(conn, items, final, device="DEV", t1_ms=T0, t2_ms=T0 + 60_000,
                           now_ms=T0 + 3_600_000)
    conn.execute("COMMIT")
    msgs = [json.loads(p) for (p,) in rows(conn, "SELECT payload FROM page_outbox ORDER BY id")]
    assert [(m["event"], m["dedup_key"]) for m in msgs] == [
        ("trigger", f"{INST}:DEV.t:action_high#1"), ("backfill_summary", f"{INST}:backfill:DEV#{T0}")]
    assert msgs[1]["severity"] == "info"
    assert msgs[1]["summary"] == ("2 excursions in backfill of DEV from 2023-11-14T22:13:20.000Z"
                                  " to 2023-11-14T22:14:20.000Z")
    # the info page does not count toward flood: a new alarm still pages (flood_max=1)
    assert rows(conn, "SELECT COUNT(*) FROM page_flood") == [(1,)]


# -- heartbeat ----------------------------------------------------------------------------
def test_heartbeat_url_and_command(receiver, tmp_path):
    ok = send_heartbeat(PagingCfg(heartbeat_url=receiver.url), timeout_s=ANSWER_S)
    assert ok.ok and receiver.requests[0][0] == "GET"
    bad = send_heartbeat(PagingCfg(heartbeat_command=(sys.executable, "-c", "raise SystemExit(1)")))
    assert not bad.ok and "exit 1" in bad.error
    dead = send_heartbeat(PagingCfg(heartbeat_url="http://127.0.0.1:9/"), timeout_s=1)
    assert not dead.ok and dead.error
    assert not send_heartbeat(PagingCfg()).ok
