"""The running service witnesses its audit chain head: a signed checkpoint at start, one at a
clean stop, and the head in every dead-man heartbeat (real service, real HTTP receiver)."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from facility.records.witness import latest, read_checkpoints, witness_path
from facility.store.keys import signing_key_path
from tests.fixtures.service import Running, make_config
from tests.fixtures.wait import wait_for


@pytest.fixture()
def beats():
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            got.append({k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()})
            self.send_response(200)
            self.end_headers()

        def do_POST(self):  # noqa: N802 - pages: accepted, not looked at here
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()


def test_service_writes_signed_checkpoints_and_sends_the_head(tmp_path, beats, monkeypatch):
    monkeypatch.delenv("FACILITY_SIGNING_KEY_FILE", raising=False)
    url, got = beats
    cfg = make_config(tmp_path, url, heartbeat_s=0.3)
    run = Running(cfg).start()
    try:
        key_path = signing_key_path(cfg)
        assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600  # generated on first start
        path = witness_path(cfg)
        first = wait_for(lambda: latest(path))
        assert first and first["seq"] == 1 and first["row_id"] >= 1
        beat = wait_for(lambda: next((b for b in got if "chain_row_id" in b), None))
        assert beat and beat["chain_sig"] and int(beat["chain_row_id"]) >= first["row_id"]
    finally:
        run.stop()
    conn = sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True)
    try:
        head_id, head_hash = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1"
                                          ).fetchone()
    finally:
        conn.close()
    last = read_checkpoints(path)[-1]  # chain and signatures checked
    assert (last["row_id"], last["hash"]) == (head_id, head_hash)  # witnessed at the clean stop
