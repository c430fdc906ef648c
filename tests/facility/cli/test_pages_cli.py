"""`facility pages`: what the on-call engineer was sent, read from a real outbox.

The pages are written by the real pager (alarms.paging.Pager) into a real SQLite store and
delivered by the real dispatcher to loopback receivers: one accepts (202), one refuses
(400, a permanent failure); the pages written after the dispatcher ran stay queued.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from alarms.dispatcher import Dispatcher
from alarms.lifecycle import AlarmState, Event, step
from alarms.outbox import OUTBOX_MIGRATIONS, OUTBOX_NAMESPACE
from alarms.paging import AlarmContext, Pager
from facility.cli import cli
from facility.config import load_config
from facility.config.schema import AlarmsCfg, Operator
from facility.launch import DEMO_CHANNEL, Inbox, demo_db_path
from facility.store import Store
from tests.fixtures.config import write_config
from tests.fixtures.wait import DEADLINE_S

T0 = 1_700_000_000_000  # 2023-11-15 06:13:20 in Hong Kong
ALARM = "Z1.dp_cascade:action_low"
HOSTILE = "Z1 pressure low \x1b[2J\x1b]0;owned\x07 door held open"
CTX = AlarmContext(site="S", zone="Z1", device="DP-1", summary=HOSTILE)
TECH = Operator("tech", "Tech", ("technician",))


class Refuser:
    """A loopback receiver that answers every POST with 400 (a permanent failure)."""

    def __init__(self):
        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    ok, bad = Inbox(), Refuser()
    yield ok, bad
    ok.close()
    bad.close()


def _config(tmp_path, ok_url: str, bad_url: str):
    paging = {
        "channels": [
            {"id": "oncall-hook", "type": "webhook", "url": f"{ok_url}/pages?token=S3CRET",
             "timeout_s": DEADLINE_S},
            {"id": "broken-hook", "type": "webhook", "url": bad_url, "timeout_s": DEADLINE_S},
            {"id": "mail", "type": "smtp", "smtp_host": "127.0.0.1", "smtp_from": "fms@example.org",
             "to": ["oncall@example.org"]},
        ],
        "routes": [{"priorities": ["critical", "high"],
                    "levels": [{"after_s": 0, "channels": ["oncall-hook", "broken-hook"]}]}],
        "base_backoff_s": 0.01, "max_backoff_s": 0.05,
    }
    path = write_config(tmp_path / "config.toml", storage={"path": "var/facility.db"},
                        zones=[{"id": "Z1", "site": "S"}], paging=paging)
    return str(path), load_config(str(path))


async def _page(db: str, cfg, *, dispatch_ack: bool = False) -> None:
    """Raise the alarm (paged and delivered), then acknowledge it (paged, queued)."""
    with Store(db) as store:
        store.add_migrations(OUTBOX_NAMESPACE, OUTBOX_MIGRATIONS)
    conn = sqlite3.connect(db, isolation_level=None)
    pager, state = Pager(cfg.paging, "t"), AlarmState(ALARM, priority="critical", critical=True)
    disp = Dispatcher(db, cfg.paging, env={})
    try:
        for ev, at, kw in ((Event.RAISE, T0, {"onset_ms": T0 - 1000}),
                           (Event.ACK, T0 + 60_000, {"actor": TECH, "reason": "on it"})):
            state, effects = step(state, ev, now_ms=at, cfg=AlarmsCfg(), **kw)
            conn.execute("BEGIN IMMEDIATE")
            pager.enqueue(conn, effects, CTX, now_ms=at)
            conn.execute("COMMIT")
            if ev is Event.RAISE or dispatch_ack:
                await disp.run_once()
    finally:
        disp.close()
        conn.close()


def _run(*args: str):
    return CliRunner().invoke(cli, ["pages", *args])


async def test_pages_lists_what_was_sent_queued_and_failed(tmp_path, receivers):
    ok, bad = receivers
    cfg_path, cfg = _config(tmp_path, ok.url, bad.url)
    await _page(cfg.db_path, cfg)
    assert len(ok.pages) == 1  # the trigger reached the working hook

    result = _run("--config", cfg_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    heads = [ln for ln in lines if not ln.startswith("    ")]
    assert len(heads) == 4, result.output  # trigger and acknowledge, on two channels each
    # oldest first, in the site's local time; delivery state, priority, event, alarm, who
    first = heads[0]
    assert first.startswith("2023-11-15T06:13:20+08:00  sent "), first
    assert "critical" in first and "trigger" in first and f"{ALARM}#1" in first
    assert f"oncall-hook -> {ok.url}/pages" in first
    assert "S3CRET" not in result.output  # a webhook's query string may carry a token
    failed = next(ln for ln in heads if "broken-hook" in ln)
    assert " failed " in failed and "trigger" in failed
    assert any(ln.strip().startswith("last error: HTTP 400") for ln in lines), result.output
    queued = [ln for ln in heads if "acknowledge" in ln]
    assert len(queued) == 2 and all(" queued " in ln for ln in queued), result.output
    # the page's own text, as data: no escape sequence reaches the terminal
    texts = [ln.strip() for ln in lines if ln.startswith("    ") and "last error" not in ln]
    assert texts and all("door held open" in t for t in texts), result.output
    assert "\x1b" not in result.output and "\x07" not in result.output


async def test_pages_json_and_filters(tmp_path, receivers):
    ok, bad = receivers
    cfg_path, cfg = _config(tmp_path, ok.url, bad.url)
    await _page(cfg.db_path, cfg, dispatch_ack=True)

    rows = [json.loads(ln) for ln in _run("--config", cfg_path, "--json").output.splitlines()]
    assert [(r["channel"], r["event"], r["delivery"]) for r in rows] == [
        ("oncall-hook", "trigger", "sent"), ("broken-hook", "trigger", "failed"),
        ("oncall-hook", "acknowledge", "sent"), ("broken-hook", "acknowledge", "failed")]
    r = rows[0]
    assert r["time"] == "2023-11-14T22:13:20.000Z" and r["sent"] is not None
    assert (r["priority"], r["alarm"], r["recipient"]) == ("critical", f"{ALARM}#1",
                                                          f"{ok.url}/pages")
    assert "door held open" in r["text"] and r["error"] is None
    assert rows[1]["error"].startswith("HTTP 400")

    failed = _run("--config", cfg_path, "--json", "--state", "failed").output.splitlines()
    assert [json.loads(ln)["channel"] for ln in failed] == ["broken-hook", "broken-hook"]
    newest = _run("--config", cfg_path, "--json", "--limit", "1").output.splitlines()
    assert [json.loads(ln)["event"] for ln in newest] == ["acknowledge"]
    assert json.loads(newest[0])["channel"] == "broken-hook"  # the last row written


async def test_pages_demo_database(tmp_path, receivers):
    ok, bad = receivers
    cfg_path, cfg = _config(tmp_path, ok.url, bad.url)
    demo_db = demo_db_path(cfg)
    assert demo_db.startswith(str(tmp_path))
    import os

    os.makedirs(os.path.dirname(demo_db))
    with Store(demo_db) as store:
        store.add_migrations(OUTBOX_NAMESPACE, OUTBOX_MIGRATIONS)
    conn = sqlite3.connect(demo_db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    from alarms import outbox

    outbox.put(conn, DEMO_CHANNEL, "t:x#1", "trigger", {"summary": "demo page", "event": "trigger",
                                                        "custom_details": {"priority": "high"}},
               T0)
    conn.execute("COMMIT")
    conn.close()
    result = _run("--config", cfg_path, "--demo")
    assert result.exit_code == 0, result.output
    assert "demo page" in result.output and "queued" in result.output
    assert "demo-inbox -> the demo's loopback inbox" in result.output
    assert " high " in result.output  # a message of no occurrence: its own priority
    # the configured database has no store yet: exit 3 and one line, no traceback
    missing = _run("--config", cfg_path)
    assert missing.exit_code == 3, missing.output
    assert len(missing.output.strip().splitlines()) == 1 and "Traceback" not in missing.output


def test_pages_before_the_service_started_and_bad_limit(tmp_path):
    cfg_path, cfg = _config(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    Store(cfg.db_path).close()  # a store, but the service never created the outbox
    result = _run("--config", cfg_path)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "no pages: the service has not started on this database yet"
    bad = _run("--config", cfg_path, "--limit", "-1")
    assert bad.exit_code == 2 and "--limit -1" in bad.output, bad.output
