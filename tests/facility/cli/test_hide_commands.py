"""`facility suppress --for` and `facility oos --for`, against the service's real handler.

Every hide has an end (docs/ARCHITECTURE.md "Critical alarms"): ``suppress`` always takes
``--for``, and ``oos`` of a device with critical alarms does (the service decides, since it
knows which alarms are critical). The commands talk to the real ``ActionHandler`` of a
``tests.fixtures.desk.Desk`` served on the real action socket, so the refusals printed are
the service's own, one line each with exit 2.
"""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from alarms.lifecycle import State
from facility.cli import cli
from facility.config import parse_config
from facility.service.socket import ActionServer, current_login, socket_path
from tests.fixtures.config import device, facility_toml, operator, zone
from tests.fixtures.desk import Desk
from tests.fixtures.loop import LoopThread

TEMP = "T-1.temp:action_high"
GAS = "GD-1:gas_low"
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def facility(args, *, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr,
                                      result.exception)
    return result.stdout, result.stderr


@pytest.fixture
def served(tmp_path):
    """A config file, and the desk whose handler answers on that database's socket."""
    db = str(tmp_path / "fms.db")
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
        operators=[operator(current_login(), "Shift Lead",
                            ["technician", "engineer", "shelve_critical"])])
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    desk = Desk(parse_config(text, base_dir=str(tmp_path)), db)
    loop = LoopThread("desk-socket")
    server = ActionServer(socket_path(db), desk.handler.handle)
    loop.run(server.start())
    yield path, desk
    loop.run(server.close())
    loop.stop()
    desk.close()


def test_suppress_without_for_is_one_line_and_sends_nothing(served):
    path, desk = served
    desk.raise_(TEMP)
    out, err = facility(["suppress", TEMP, "--reason", "nuisance", "--config", path], code=2)
    assert (out, err) == ("", "suppress needs --for DURATION, e.g. --for 2h (at most"
                              " alarms.max_suppress_s=28800 s)\n")
    out, err = facility(["suppress", TEMP, "--for", "soon", "--reason", "x", "--config", path],
                        code=2)
    assert out == "" and err.count("\n") == 1 and err.startswith("--for: ") and "'soon'" in err
    assert desk.state(TEMP).state is State.UNACK and desk.audit("suppress") == []


def test_suppress_for_a_time_and_a_critical_alarm_refused(served):
    path, desk = served
    desk.raise_(TEMP)
    desk.raise_(GAS)
    out, err = facility(["suppress", TEMP, "--for", "2h", "--reason", "chiller swap",
                         "--config", path])
    assert err == "" and out == f"suppress {TEMP}#1: now DSUPR (by {current_login()})\n"
    assert desk.state(TEMP).suppressed_until_ms is not None
    out, err = facility(["suppress", GAS, "--for", "10m", "--reason", "quiet",
                         "--config", path], code=2)
    assert out == "" and err == (f"refused: cannot suppress {GAS}: a critical alarm cannot be"
                                 " suppressed; shelve it instead (role shelve_critical, at most"
                                 " max_shelve_critical_s)\n")
    desk.raise_("T-1:comm")
    out, err = facility(["suppress", "T-1:comm", "--for", "9h", "--reason", "x",
                         "--config", path], code=2)
    assert (out, err) == ("", "refused: cannot suppress T-1:comm: duration 32400 s exceeds"
                              " max_suppress_s=28800\n")


def test_oos_of_a_gas_detector_needs_for_and_returns_by_itself(served):
    path, desk = served
    out, err = facility(["oos", "GD-1", "--reason", "bump test", "--config", path], code=2)
    assert out == "" and err == (
        "refused: GD-1 has critical alarms (GD-1:comm, GD-1:fault, GD-1:gas_high and 2 more):"
        " out of service needs --for DURATION, at most max_oos_critical_s=3600 s\n")
    out, err = facility(["oos", "GD-1", "--for", "2h", "--reason", "bump test",
                         "--config", path], code=2)
    assert out == "" and "exceeds max_oos_critical_s=3600 for GD-1" in err
    out, err = facility(["oos", "GD-1", "--for", "30m", "--reason", "bump test",
                         "--config", path])
    assert err == "" and re.fullmatch(
        rf"GD-1 out of service until {ISO} \(6 alarms\) \(by {re.escape(current_login())}\)\n",
        out), out
    until = desk.state(GAS).oos_until_ms
    desk.expire(until)
    assert not desk.state(GAS).oos and desk.state(GAS).state is State.NORM


def test_oos_of_a_plain_device_keeps_working_without_for(served):
    path, desk = served
    out, err = facility(["oos", "T-1", "--reason", "recalibration", "--config", path])
    assert err == "" and out == (f"T-1 out of service until `facility return` (2 alarms)"
                                 f" (by {current_login()})\n")
    out, err = facility(["return", "T-1", "--reason", "done", "--config", path])
    assert out == f"T-1 back in service (2 alarms) (by {current_login()})\n"
