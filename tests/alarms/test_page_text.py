"""The words of a page, exactly: a particle, a pressure, a gas and a comm alarm.

docs/ARCHITECTURE.md "Paging": the summary says priority, site and room, the point in words
with its value and the limit with units, the limit's source, the instrument and where it
samples, the onset in the site's local time with its offset and the state; the details add
the occurrence, the dedup key and the exact ``facility ack`` command; the e-mail is that
text as text/plain with an HTML alternative, never JSON.

Real parts throughout: a configuration parsed from TOML, the catalogue's compiled rules, the
service's alarm book, the ``Pager`` writing into a SQLite outbox, the ``Dispatcher``
delivering to a loopback HTTP receiver (the webhook carries summary and details as written)
and to a real aiosmtpd SMTP server (the e-mail as a mail program receives it). Limit
sources other than the ISO one are the catalogue's words and are read from its rules.
"""

from __future__ import annotations

import email
import socket
import sqlite3
from email import policy
from html import escape
from html.parser import HTMLParser

import pytest
from aiosmtpd.controller import Controller

from alarms.dispatcher import Dispatcher
from alarms.lifecycle import Event
from alarms.outbox import OUTBOX_MIGRATIONS
from alarms.paging import Pager
from facility.catalogue import build_catalogue
from facility.config import parse_config
from facility.config.schema import Operator
from facility.domain.model import Quality, Sample
from facility.service.alarm_book import AlarmBook, meta_of
from tests.alarms.test_paging import ANSWER_S, Receiver, drain
from tests.fixtures.config import device, facility_toml, site, zone

T = 1_763_000_000_000  # 2025-11-13 02:13:20 UTC = 10:13:20 in Hong Kong
ONSET = T - 20_000
PARTICLE = "PC-01.pc_0_5um:action_high"
PRESSURE = "LITHO.dp_cascade:action_low"
GAS = "GD-01:gas_high"
COMM = "GD-01:comm"
TECH = Operator("tech", "T. Technician", ("technician",))


class Mailbox:
    """An aiosmtpd handler keeping every message as bytes."""

    def __init__(self):
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.original_content or envelope.content)
        return "250 OK"


@pytest.fixture
def smtp():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Mailbox()
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    yield port, box
    ctl.stop()


@pytest.fixture
def hook():
    r = Receiver()
    yield r
    r.close()


def config(tmp_path, hook_url: str, smtp_port: int, levels=None):
    text = facility_toml(
        id="hk", sites=[site("MEC", name="Microelectronics Centre")],
        zones=[zone("LITHO", site="MEC", name="Lithography bay", iso_class=5, area_m2=20,
                    reference="CORR", min_dp_pa=10.0),
               zone("CORR", site="MEC", name="Process corridor", iso_class=7, area_m2=40),
               zone("GASRM", site="MEC", name="Gas-cabinet room", kind="gas_room")],
        devices=[device("PC-01", 15020, site="MEC", zone="LITHO", profile="particle-counter",
                        location="litho bay centre, 1.1 m", scan_s=2.0, timeout_s=1.0),
                 device("DP-01", 15021, site="MEC", zone="LITHO", profile="dp-transmitter",
                        points=[{"name": "dp", "measures": "LITHO - CORR"}]),
                 device("GD-01", 15022, site="MEC", zone="GASRM", profile="gas-detector",
                        gas="arsine", monitor="room")],
        paging={"channels": [
            {"id": "hook", "type": "webhook", "url": hook_url, "timeout_s": ANSWER_S},
            {"id": "mail", "type": "smtp", "smtp_host": "127.0.0.1", "smtp_port": smtp_port,
             "smtp_from": "fms@example.org", "to": ["oncall@example.org"],
             "timeout_s": ANSWER_S}],
            "routes": [{"levels": levels or [{"after_s": 0, "channels": ["hook", "mail"]}]}]})
    return parse_config(text, base_dir=str(tmp_path))


class Desk:
    """The alarm book and pager of a small facility over one SQLite outbox file."""

    def __init__(self, tmp_path, hook_url, smtp_port, levels=None):
        self.cfg = config(tmp_path, hook_url, smtp_port, levels)
        cat = build_catalogue(self.cfg)
        devices = {p.id: p.device for p in cat.points}
        self.sources = {r.alarm_id: r.source for r in cat.rules}
        metas = {r.alarm_id: meta_of(r, devices.get(r.point)) for r in cat.rules}
        self.book = AlarmBook(self.cfg, metas, 1, points={p.id: p for p in cat.points})
        self.pager = Pager(self.cfg.paging, self.cfg.facility.id)
        self.path = str(tmp_path / "facility.db")
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        for stmt in OUTBOX_MIGRATIONS:
            self.conn.execute(stmt)

    def write(self, now_ms: int) -> None:
        """One cycle's paging step, as the service's writer runs it."""
        self.conn.execute("BEGIN IMMEDIATE")
        self.book.page_batch(self.book.pending.take().effects, now_ms).write(self.pager,
                                                                            self.conn)
        self.conn.execute("COMMIT")

    async def deliver(self):
        d = Dispatcher(self.path, self.cfg.paging, env={}, clock=lambda: T + 10**9)
        await drain(d, self.conn)
        d.close()


@pytest.fixture
def desk(tmp_path, hook, smtp):
    d = Desk(tmp_path, hook.url, smtp[0])
    yield d
    d.conn.close()


def raise_all(desk):
    desk.book.note_samples([Sample("GD-01.conc", T - 1_000, 0.0123)])
    for aid, value in ((PARTICLE, 4120.0), (PRESSURE, 6.4), (GAS, 1.0), (COMM, 0.0)):
        desk.book.apply(aid, Event.RAISE, now_ms=T, ts_ms=ONSET, value=value, by="engine")
    desk.write(T)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


def plain(m) -> str:
    """The text/plain body with SMTP's CRLF line ends read back as newlines."""
    return m.get_body(("plain",)).get_content().replace("\r\n", "\n")


def mails(box) -> dict[str, email.message.EmailMessage]:
    return {parse(raw)["X-Dedup-Key"]: parse(raw) for raw in box.messages}


class Cells(HTMLParser):
    """The (label, value) rows of the HTML table, as a mail program would show them."""

    def __init__(self):
        super().__init__()
        self.rows, self._cell, self._in = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag in ("th", "td"):
            self._in, self._text = True, ""

    def handle_endtag(self, tag):
        if tag in ("th", "td"):
            self._in = False
            self._cell.append(self._text)
            if tag == "td":
                self.rows.append(tuple(self._cell))
                self._cell = []

    def handle_data(self, data):
        if self._in:
            self._text += data


def html_rows(html: str) -> list[tuple[str, str]]:
    p = Cells()
    p.feed(html)
    return p.rows


def text_rows(body: str) -> list[tuple[str, str]]:
    lines = body.split("\n\n", 1)[1].strip().splitlines()
    return [tuple(part.strip() for part in line.split(":", 1)) for line in lines]


PARTICLE_SUMMARY = (
    "CRITICAL Microelectronics Centre / Lithography bay: particles ≥0.5 µm 4120 count/m3"
    " (action limit max 3520 count/m3, ISO 14644-1:2015 class 5 at 0.5 um); PC-01 (particle"
    " counter) at litho bay centre, 1.1 m; onset 2025-11-13 10:13:00 +08:00; UNACK")

PARTICLE_TEXT = PARTICLE_SUMMARY + """

priority:          critical
state:             UNACK
site:              Microelectronics Centre (MEC)
room:              Lithography bay (LITHO)
point:             particles ≥0.5 µm (PC-01.pc_0_5um, count/m3)
value:             4120 count/m3 at 2025-11-13 10:13:20 +08:00
limit:             action limit max 3520 count/m3
limit source:      ISO 14644-1:2015 class 5 at 0.5 um
instrument:        PC-01 (particle counter)
sampling location: litho bay centre, 1.1 m
onset:             2025-11-13 10:13:00 +08:00
alarm:             PC-01.pc_0_5um:action_high
occurrence:        1
dedup key:         hk:PC-01.pc_0_5um:action_high#1
acknowledge:       facility ack PC-01.pc_0_5um:action_high#1 --reason "..."
"""

PARTICLE_HTML = """<!DOCTYPE html>
<html><body>
<p><strong>""" + PARTICLE_SUMMARY + """</strong></p>
<table>
<tr><th align="left">priority</th><td>critical</td></tr>
<tr><th align="left">state</th><td>UNACK</td></tr>
<tr><th align="left">site</th><td>Microelectronics Centre (MEC)</td></tr>
<tr><th align="left">room</th><td>Lithography bay (LITHO)</td></tr>
<tr><th align="left">point</th><td>particles ≥0.5 µm (PC-01.pc_0_5um, count/m3)</td></tr>
<tr><th align="left">value</th><td>4120 count/m3 at 2025-11-13 10:13:20 +08:00</td></tr>
<tr><th align="left">limit</th><td>action limit max 3520 count/m3</td></tr>
<tr><th align="left">limit source</th><td>ISO 14644-1:2015 class 5 at 0.5 um</td></tr>
<tr><th align="left">instrument</th><td>PC-01 (particle counter)</td></tr>
<tr><th align="left">sampling location</th><td>litho bay centre, 1.1 m</td></tr>
<tr><th align="left">onset</th><td>2025-11-13 10:13:00 +08:00</td></tr>
<tr><th align="left">alarm</th><td>PC-01.pc_0_5um:action_high</td></tr>
<tr><th align="left">occurrence</th><td>1</td></tr>
<tr><th align="left">dedup key</th><td>hk:PC-01.pc_0_5um:action_high#1</td></tr>
<tr><th align="left">acknowledge</th><td><code>facility ack PC-01.pc_0_5um:action_high#1\
 --reason &quot;...&quot;</code></td></tr>
</table>
</body></html>
"""


def expected(desk) -> dict[str, tuple[str, str, str]]:
    """alarm -> (subject, summary, text/plain body) as a person reads them."""
    src = desk.sources
    pressure = (
        "CRITICAL Microelectronics Centre / Lithography bay: differential pressure 6.4 Pa"
        f" (action limit min 10 Pa, {src[PRESSURE]}); DP-01 (dp transmitter) at Lithography"
        " bay vs Process corridor; onset 2025-11-13 10:13:00 +08:00; UNACK")
    gas = (
        "CRITICAL Microelectronics Centre / Gas-cabinet room: arsine detector high alarm"
        f" ALARM, arsine concentration 0.0123 ppm ({src[GAS]}); GD-01 (arsine room detector)"
        " at Gas-cabinet room; onset 2025-11-13 10:13:00 +08:00; UNACK")
    comm = (
        "CRITICAL Microelectronics Centre / Gas-cabinet room: communication NO ANSWER"
        f" ({src[COMM]}); GD-01 (arsine room detector) at Gas-cabinet room; onset"
        " 2025-11-13 10:13:00 +08:00; UNACK")
    return {
        PARTICLE: ("[TRIGGER] CRITICAL Lithography bay: particles ≥0.5 µm 4120 count/m3",
                   PARTICLE_SUMMARY, PARTICLE_TEXT),
        PRESSURE: ("[TRIGGER] CRITICAL Lithography bay: differential pressure 6.4 Pa", pressure,
                   pressure + f"""

priority:          critical
state:             UNACK
site:              Microelectronics Centre (MEC)
room:              Lithography bay (LITHO)
point:             differential pressure (LITHO.dp_cascade, Pa)
value:             6.4 Pa at 2025-11-13 10:13:20 +08:00
limit:             action limit min 10 Pa
limit source:      {src[PRESSURE]}
instrument:        DP-01 (dp transmitter)
sampling location: Lithography bay vs Process corridor
onset:             2025-11-13 10:13:00 +08:00
alarm:             LITHO.dp_cascade:action_low
occurrence:        1
dedup key:         hk:LITHO.dp_cascade:action_low#1
acknowledge:       facility ack LITHO.dp_cascade:action_low#1 --reason "..."
"""),
        GAS: ("[TRIGGER] CRITICAL Gas-cabinet room: arsine detector high alarm ALARM", gas,
              gas + f"""

priority:          critical
state:             UNACK
site:              Microelectronics Centre (MEC)
room:              Gas-cabinet room (GASRM)
point:             arsine detector high alarm (GD-01.alarm_high)
value:             ALARM at 2025-11-13 10:13:20 +08:00
reading:           arsine concentration 0.0123 ppm
limit source:      {src[GAS]}
instrument:        GD-01 (arsine room detector)
sampling location: Gas-cabinet room
onset:             2025-11-13 10:13:00 +08:00
alarm:             GD-01:gas_high
occurrence:        1
dedup key:         hk:GD-01:gas_high#1
acknowledge:       facility ack GD-01:gas_high#1 --reason "..."
"""),
        COMM: ("[TRIGGER] CRITICAL Gas-cabinet room: communication NO ANSWER", comm,
               comm + f"""

priority:          critical
state:             UNACK
site:              Microelectronics Centre (MEC)
room:              Gas-cabinet room (GASRM)
point:             communication (GD-01.comm_ok)
value:             NO ANSWER at 2025-11-13 10:13:20 +08:00
limit source:      {src[COMM]}
instrument:        GD-01 (arsine room detector)
sampling location: Gas-cabinet room
onset:             2025-11-13 10:13:00 +08:00
alarm:             GD-01:comm
occurrence:        1
dedup key:         hk:GD-01:comm#1
acknowledge:       facility ack GD-01:comm#1 --reason "..."
"""),
    }


async def test_summary_details_and_email_of_four_alarms_exactly(desk, hook, smtp):
    raise_all(desk)
    await desk.deliver()
    want = expected(desk)
    pages = {m["dedup_key"]: m for m in hook.accepted()}
    got = mails(smtp[1])
    assert len(pages) == len(got) == 4
    for aid, (subject, summary, text) in want.items():
        key = f"hk:{aid}#1"
        page = pages[key]
        assert (page["event"], page["action"], page["severity"]) == ("trigger", "trigger",
                                                                     "critical")
        assert page["summary"] == summary and len(summary) <= 1024
        rows = text_rows(text)
        assert [tuple(map(str, r)) for r in page["details"]] == rows
        assert page["custom_details"]["occurrence"] == 1
        assert page["custom_details"]["critical"] is True
        m = got[key]
        assert m["Subject"] == subject
        assert m["To"] == "oncall@example.org" and m["From"] == "fms@example.org"
        assert m.get_content_type() == "multipart/alternative"
        assert plain(m) == text
        html = m.get_body(("html",)).get_content().replace("\r\n", "\n")
        assert html_rows(html) == rows  # the same words, read back from the HTML
        assert f"<p><strong>{escape(summary)}</strong></p>" in html
        assert "{" not in text and '"dedup_key"' not in html  # never raw JSON
    html = got["hk:" + PARTICLE + "#1"].get_body(("html",)).get_content()
    assert html.replace("\r\n", "\n") == PARTICLE_HTML


async def test_operator_text_in_an_email_is_escaped(desk, hook, smtp):
    raise_all(desk)
    desk.book.apply(PARTICLE, Event.ACK, now_ms=T + 5_000, actor=TECH,
                    reason="<b>door</b> & filter")
    desk.write(T + 5_000)
    await desk.deliver()
    ack = [m for m in map(parse, smtp[1].messages) if m["Subject"].startswith("[ACKNOWLEDGE]")]
    (m,) = ack
    html = m.get_body(("html",)).get_content()
    assert "<b>door</b>" not in html and "&lt;b&gt;door&lt;/b&gt; &amp; filter" in html
    text = plain(m)
    assert text.startswith(PARTICLE_SUMMARY.replace("UNACK", "ACKED")
                           + ": acknowledged by tech: <b>door</b> & filter\n")
    assert "reason:            <b>door</b> & filter" in text


async def test_an_escalation_and_a_repeat_read_the_value_and_state_of_now(tmp_path, hook, smtp):
    levels = [{"after_s": 0, "channels": ["hook"]}, {"after_s": 60, "channels": ["mail"]}]
    desk = Desk(tmp_path, hook.url, smtp[0], levels=levels)
    try:
        desk.book.apply(PARTICLE, Event.RAISE, now_ms=T, ts_ms=ONSET, value=4120.0,
                        by="engine")
        desk.write(T)
        # a minute later the count is higher and nobody has acknowledged
        desk.book.note_samples([Sample("PC-01.pc_0_5um", T + 60_000, 35200.0)])
        desk.write(T + 61_000)
        # then the counter stops answering; the alarm returns and the return is paged late
        desk.book.note_samples([Sample("PC-01.pc_0_5um", T + 90_000, None, Quality.COMM)])
        desk.book.apply(PARTICLE, Event.CLEAR, now_ms=T + 95_000, ts_ms=T + 94_000,
                        by="engine")
        desk.write(T + 95_000)
        desk.write(T + 95_000 + 60_000)
        await desk.deliver()
    finally:
        desk.conn.close()
    esc, late = map(parse, smtp[1].messages)  # level 2 got the escalation, then the return
    assert esc["Subject"] == "[ESCALATE] CRITICAL Lithography bay: particles ≥0.5 µm 35200 count/m3"
    assert late["Subject"] == "[UPDATE] CRITICAL Lithography bay: particles ≥0.5 µm no reading"
    body = plain(esc)
    assert "value:             35200 count/m3 at 2025-11-13 10:14:20 +08:00\n" in body
    assert "state:             UNACK\n" in body and "level:             2\n" in body
    events = [(m["event"], m["summary"]) for m in hook.accepted()]
    assert [e for e, _ in events] == ["trigger", "update"]
    assert events[1][1].startswith("CRITICAL Microelectronics Centre / Lithography bay:"
                                   " particles ≥0.5 µm no reading (")
    assert events[1][1].endswith("; RTNUN: returned at 2025-11-13 10:14:55 +08:00,"
                                 " not acknowledged")
