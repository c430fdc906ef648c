"""Suppression before the first page (docs/ARCHITECTURE.md "Alarm lifecycle (ISA-18.2) and
paging"): at start-up each zone's mode (the stored one, else what its schedule says for now)
and the inactive mode's DSUPR are in force before the first engine cycle; an alert raised in
the same cycle as its action starts DSUPR; nothing raised and suppressed in one cycle pages.

A real ``Service`` on a real SQLite file in ``tmp_path``; its devices point at a closed
loopback port (no instrument answers), so the only readings are the ones a test queues, and
each test runs the service's own ``cycle``. What the pager was given is read back from the
outbox after a clean stop; the default alarm list is the real ``facility alarms`` command.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from facility.cli import cli as cli_main
from facility.config import parse_config
from facility.domain.model import Sample, now_ms
from facility.service.service import Service
from facility.store import Store
from tests.fixtures.config import HK, device, facility_toml, zone

PC = "PC-1.pc_0_5um"
AT_REST, IN_OP = f"{PC}:action_high@at_rest", f"{PC}:action_high@in_operation"
T_ALERT, T_ACTION = "TH-1.temperature:alert_high", "TH-1.temperature:action_high"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp_path, schedule=()):
    """A grade C room (Annex 1 Table 5: 0.5 um at rest 352 000 /m3, in operation 3 520 000)
    with a particle counter and a temperature transmitter, every priority paged."""
    port, port2 = _closed_port(), _closed_port()
    text = facility_toml(
        storage={"path": str(tmp_path / "fms.db")},
        zones=[zone("Z1", gmp_grade="C", area_m2=10, schedule=list(schedule) or None)],
        devices=[device("PC-1", port, zone="Z1", profile="particle-counter"),
                 device("TH-1", port2, zone="Z1", profile="th-transmitter")],
        alarms={"defaults": {"temperature": {"action_high": {"limit": 25.0},
                                             "alert_high": {"limit": 24.0}}}},
        paging={"channels": [{"id": "hook", "type": "webhook", "url": f"http://127.0.0.1:{port}"}],
                "routes": [{"priorities": ["critical", "high", "medium", "low"],
                            "levels": [{"after_s": 0, "channels": ["hook"]}]}]})
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    return parse_config(text, base_dir=str(tmp_path))


def _entry(ago: timedelta, mode: str) -> str:
    """A daily schedule entry that fired ``ago`` before now (site-local time, minutes)."""
    t = datetime.now(ZoneInfo(HK)) - ago
    return f"Mon-Sun {t:%H:%M} {mode}"


async def _one_cycle(cfg, samples_at=None):
    """Start the service, check what is in force before any cycle, run one cycle with the
    samples ``samples_at(now)`` queued, stop. Returns (modes before, states before, after)."""
    svc = Service(cfg, cycle_s=1.0)
    await svc.start()
    try:
        modes = dict(svc.modes)
        before = dict(svc.book.states)
        if samples_at is not None:
            svc._queue.extend(samples_at(now_ms()))
        await svc.cycle()
        return modes, before, dict(svc.book.states)
    finally:
        await svc.stop()


def _paged(cfg) -> dict[str, list[str]]:
    """Alarm id -> the actions queued for the pager, in order."""
    with Store(cfg.db_path, readonly=True) as store:
        rows = store.conn.execute(
            "SELECT dedup_key, action FROM page_outbox ORDER BY id").fetchall()
    out: dict[str, list[str]] = {}
    for key, action in rows:
        aid = key.split(":", 1)[1].rsplit("#", 1)[0]  # <installation>:<alarm id>#<occurrence>
        out.setdefault(aid, []).append(action)
    return out


def _events(cfg, aid) -> list[str]:
    with Store(cfg.db_path, readonly=True) as store:
        return [e["event"] for e in store.events(alarm_id=aid)]


def _burst(point, value, n=3):
    return lambda now: [Sample(point, now - 1000 * (n - i), value) for i in range(n)]


def test_a_schedule_that_says_at_rest_now_is_in_force_from_the_first_cycle(tmp_path):
    # in operation from 5 h ago, at rest from 2 h ago (past the 1 200 s recovery time); the
    # configured occupancy says in_operation and the database is fresh
    cfg = _config(tmp_path, [_entry(timedelta(hours=5), "in_operation"),
                             _entry(timedelta(hours=2), "at_rest")])
    assert cfg.zones[0].occupancy == "in_operation"
    modes, before, after = asyncio.run(_one_cycle(cfg, _burst(PC, 4_000_000.0)))

    assert modes["Z1"][0] == "at_rest"  # before the first cycle
    assert before[IN_OP].state.value == "DSUPR" and before[IN_OP].suppressed_by == {"mode"}
    assert before[AT_REST].state.value == "NORM"
    # one cycle over both limits: the at-rest rule annunciates, the in-operation one is
    # recorded under its suppression
    assert after[AT_REST].state.value == "UNACK"
    assert after[IN_OP].active and after[IN_OP].state.value == "DSUPR"
    paged = _paged(cfg)
    assert paged.get(AT_REST) == ["trigger"]
    assert IN_OP not in paged
    assert _events(cfg, IN_OP) == ["suppress:mode", "raise"]
    with Store(cfg.db_path, readonly=True) as store:
        row = store.zone_modes()["Z1"]
    assert (row["mode"], row["actor"]) == ("at_rest", "schedule")


def test_a_recent_at_rest_boundary_keeps_the_recovery_time_from_the_first_cycle(tmp_path):
    cfg = _config(tmp_path, [_entry(timedelta(hours=5), "in_operation"),
                             _entry(timedelta(minutes=2), "at_rest")])  # recovery 1 200 s
    modes, before, after = asyncio.run(_one_cycle(cfg, _burst(PC, 4_000_000.0)))
    assert modes["Z1"][0] == "at_rest"
    assert before[AT_REST].suppressed_by == {"mode"}  # cleaning up after operation
    assert after[AT_REST].active and after[AT_REST].state.value == "DSUPR"
    assert not ({AT_REST, IN_OP} & set(_paged(cfg)))


def test_an_operators_mode_stored_after_the_boundary_stands_at_start_up(tmp_path):
    cfg = _config(tmp_path, [_entry(timedelta(hours=2), "at_rest")])
    asyncio.run(_one_cycle(cfg))
    with Store(cfg.db_path) as store:  # an operator put the room back in operation since
        store.conn.execute("UPDATE zone_modes SET mode='in_operation', since_ms=?, actor='op'"
                           " WHERE zone='Z1'", (now_ms() - 60_000,))
    modes, before, _after = asyncio.run(_one_cycle(cfg))
    assert modes["Z1"][0] == "in_operation"
    assert before[AT_REST].suppressed_by == {"mode"} and not before[IN_OP].suppressed_by


def test_an_alert_raised_with_its_action_in_one_cycle_starts_dsupr_and_only_the_action_pages(
        tmp_path):
    cfg = _config(tmp_path)
    _modes, _before, after = asyncio.run(_one_cycle(cfg, _burst("TH-1.temperature", 26.0)))
    assert after[T_ACTION].state.value == "UNACK"
    assert after[T_ALERT].active and after[T_ALERT].state.value == "DSUPR"
    assert after[T_ALERT].suppressed_by == {"design"}
    paged = _paged(cfg)
    assert paged.get(T_ACTION) == ["trigger"]
    assert T_ALERT not in paged  # neither a trigger nor a "suppressed" update
    assert "raise" in _events(cfg, T_ALERT)  # recorded all the same


def test_an_inactive_mode_rule_raising_is_recorded_not_paged_and_not_listed(tmp_path):
    cfg = _config(tmp_path)  # in operation: the at-rest rules are the inactive mode's
    _modes, before, after = asyncio.run(_one_cycle(cfg, _burst(PC, 500_000.0)))
    assert before[AT_REST].suppressed_by == {"mode"}
    assert after[AT_REST].active and after[AT_REST].state.value == "DSUPR"
    assert not after[IN_OP].active  # 500 000 is within the in-operation limit
    assert AT_REST not in _paged(cfg)
    assert _events(cfg, AT_REST) == ["suppress:mode", "raise"]

    runner = CliRunner()
    config = str(tmp_path / "config.toml")
    listed = runner.invoke(cli_main, ["alarms", "--config", config])
    assert listed.exit_code == 0, listed.output
    assert AT_REST not in listed.output
    everything = runner.invoke(cli_main, ["alarms", "--all", "--config", config])
    assert everything.exit_code == 0, everything.output
    assert "DSUPR" in everything.output and AT_REST in everything.output
