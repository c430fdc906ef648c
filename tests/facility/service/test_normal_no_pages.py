"""A fresh database, the shipped configuration and the simulator's normal scenario for three
minutes page nothing but the monitoring system's own real findings (docs/ARCHITECTURE.md
"Alarm lifecycle (ISA-18.2) and paging"): in a container that is the unsynchronised clock.

Real parts: the shipped ``config.toml`` copied to ``tmp_path`` (its database beside it), every
one of its paging channels pointed at a loopback webhook receiver with the shipped routes
kept, the simulator serving every device over Modbus on ephemeral ports and the service's
real cycle. What arrived is asserted from the receiver, every page listed on failure.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from facility.config import load_config
from facility.config.schema import Channel
from facility.store import Store
from tests.fixtures.service import Receiver, Running, wait_for

RUN_S = 180.0
SELF_MONITORING = {"system:clock_unsynced"}  # a container's clock is not NTP-synchronised


def _alarm_of(page: dict) -> str:
    """The alarm a page is about, from its dedup key ``<installation>:<alarm>#<occurrence>``."""
    key = page.get("dedup_key") or (page.get("payload") or {}).get("dedup_key") or ""
    return key.split(":", 1)[1].rsplit("#", 1)[0] if ":" in key else json.dumps(page)[:120]


def _pending(db: str) -> int:
    with Store(db, readonly=True) as store:
        return store.conn.execute(
            "SELECT COUNT(*) FROM page_outbox WHERE state = 'pending'").fetchone()[0]


@pytest.mark.slow
def test_normal_scenario_on_a_fresh_database_pages_only_self_monitoring(tmp_path):
    shutil.copy(Path("config.toml"), tmp_path / "config.toml")
    shipped = load_config(str(tmp_path / "config.toml"))
    receiver = Receiver()
    channels = tuple(Channel(id=c.id, type="webhook", url=f"{receiver.url}/pages/{c.id}")
                     for c in shipped.paging.channels)
    paging = dataclasses.replace(shipped.paging, channels=channels,
                                 heartbeat_url=f"{receiver.url}/heartbeat",
                                 heartbeat_command=())
    cfg = dataclasses.replace(shipped, paging=paging)
    assert not Path(cfg.db_path).exists()  # fresh
    run = Running(cfg, cycle_s=1.0, record_s=60.0).start()
    try:
        cycles = int(RUN_S / 1.0)
        assert wait_for(lambda: run.cycles() >= cycles, RUN_S * 2, step_s=1.0), \
            f"the service committed only {run.cycles()} cycles"
        assert wait_for(lambda: _pending(cfg.db_path) == 0), "pages still pending delivery"
    finally:
        run.stop()
        receiver.close()
    pages = [(_alarm_of(p), p.get("action") or p.get("event_action"),
              (p.get("summary") or (p.get("payload") or {}).get("summary") or "")[:160])
             for p in receiver.pages]
    noise = [p for p in pages if p[0] not in SELF_MONITORING]
    listing = "\n".join(f"  {a} {act}: {s}" for a, act, s in pages)
    assert not noise, f"{len(noise)} of {len(pages)} pages are not self-monitoring:\n{listing}"
