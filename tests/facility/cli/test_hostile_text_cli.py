"""Operator text is data on the terminal: no escape sequences, no forged lines, bounded reasons.

``facility alarms`` prints reasons and logins that anyone with the technician role typed;
the action commands print what the service answers. The reason limit is enforced by the
real service (``ActionHandler`` behind the real socket, a ``Desk`` without pollers), so the
refusal is one line on the terminal and a row in the audit trail.
"""

from __future__ import annotations

import unicodedata

import pytest

from facility.config import load_config
from facility.domain.text import REASON_MAX
from facility.service.socket import ActionServer, current_login, socket_path
from facility.store import Cycle, Store
from tests.facility.cli.test_cli_output import ACKED, DP, PC, ZONES, facility
from tests.fixtures.config import operator
from tests.fixtures.desk import Desk
from tests.fixtures.loop import LoopThread

HOSTILE_REASON = "\x1b[2J\x1b[Hwiped\nFAKE  critical forged#1 line\x1b]0;owned\x07\r\tend\x9b31m"
HOSTILE_ACTOR = "tech\x1b[8m"
ALARM = "Z1.dp_cascade:action_low"


def _no_controls(text: str) -> bool:
    return not any(unicodedata.category(c) == "Cc" and c != "\n" for c in text)


def test_alarms_listing_strips_control_characters(config_file, tmp_path):
    cfg = config_file(storage={"path": "fms.db"}, zones=ZONES, devices=[PC, DP])
    with Store(str(tmp_path / "fms.db")) as store:
        store.write_cycle(Cycle(alarms=[dict(ACKED, ack_reason=HOSTILE_REASON,
                                             ack_by=HOSTILE_ACTOR)]))
    out, err = facility(["alarms", "--config", cfg])
    assert err == "" and _no_controls(out)
    assert out.count("\n") == 1  # one alarm, one line: the reason's newline forged nothing
    assert out.endswith("acked by tech: wiped FAKE  critical forged#1 line end\n")
    # --json keeps the text exactly, escaped by JSON
    js, _ = facility(["alarms", "--json", "--config", cfg])
    assert "\\u001b[2J" in js and _no_controls(js)


@pytest.fixture
def served(config_file, tmp_path):
    """The real handler of a facility where this login is a technician, on its socket."""
    path = config_file(storage={"path": "fms.db"}, zones=ZONES, devices=[PC, DP],
                       operators=[operator(current_login(), "Test Operator", ("technician",))])
    cfg = load_config(str(path))
    loop = LoopThread("cli-hostile")
    desk = loop.call(lambda: Desk(cfg, cfg.db_path))
    loop.call(desk.raise_, ALARM)
    srv = ActionServer(socket_path(cfg.db_path), desk.handler.handle)
    loop.run(srv.start())
    yield path, loop, desk
    loop.run(srv.close())
    loop.call(desk.close)
    loop.stop()


def test_reason_over_the_limit_is_one_line_exit_2_and_audited(served):
    path, loop, desk = served
    out, err = facility(["comment", f"{ALARM}#1", "--reason", "x" * (REASON_MAX + 1),
                         "--config", path], code=2)
    assert out == "" and err == (f"refused: reason is {REASON_MAX + 1} characters, at most"
                                 f" {REASON_MAX} are accepted; shorten it\n")
    out, err = facility(["comment", f"{ALARM}#1", "--reason", "y" * 100_000,
                         "--config", path], code=2)
    assert out == "" and err.count("\n") == 1 and "larger than 16384 bytes" in err
    refused = loop.call(desk.audit)
    assert [(r["action"], r["actor"]) for r in refused if r["action"].startswith("refused:")] == [
        ("refused:comment", current_login()), ("refused:request", current_login())]
    out, err = facility(["comment", f"{ALARM}#1", "--reason", "z" * REASON_MAX,
                         "--config", path])
    assert out.startswith(f"comment on {ALARM}#1 recorded") and err == ""


def test_service_reply_and_refusal_are_cleaned(config_file, tmp_path, action_server):
    cfg = config_file(storage={"path": "fms.db"}, zones=ZONES, devices=[PC, DP])
    action_server(tmp_path / "fms.db", {"ok": True, "message": "done\x1b[31m\nsecond line"})
    out, err = facility(["ack", f"{ALARM}#1", "--reason", "x", "--config", cfg])
    assert (out, err) == (f"done second line (by {current_login()})\n", "")
    other = tmp_path / "other"
    other.mkdir()
    cfg2 = config_file("other/config.toml", storage={"path": str(other / "fms.db")},
                       zones=ZONES, devices=[PC, DP])
    action_server(other / "fms.db", {"ok": False, "message": "no\x1b]0;title\x07\r\nway"})
    out, err = facility(["ack", f"{ALARM}#1", "--reason", "x", "--config", cfg2], code=2)
    assert (out, err) == ("", "refused: no way\n")
