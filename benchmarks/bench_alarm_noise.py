"""Alarm noise on the shipped configuration: pages per scenario and the ISA-18.2 KPIs.

    .venv/bin/python benchmarks/bench_alarm_noise.py [--speed 4] [--settle-s 20] [--json]

Set-up, as ``facility demo`` runs it (``facility/launch.py``): the shipped ``config.toml``
with a fresh database in a temporary folder, the simulator (``sensors/simulator.py``, every
device on an ephemeral loopback port, ``--speed`` dividing the particle counters' record
interval) and the real service (``Service``, engine cycle 1 s) on one event loop in this
process. Only paging is redirected: each configured channel keeps its id and the shipped
routes, but delivers to a loopback HTTP inbox, and so does the dead-man's heartbeat.

Phases, one after the other on the same database (times are real seconds; the service's
delays, comm delays and door grace are real time, only the counters' records are faster):

* normal: the simulator's normal scenario from start-up (a fresh database: what a new user
  sees first) until ``600 / speed`` s after the service's first cycle;
* door: the first door held open 45 s (the shipped door grace is 30 s), then normal;
* particle: the first particle counter's excursion for 45 s, then normal;
* gas: a gas leak at the first gas detector for 20 s, then normal;
* offline: the first gas detector stops answering for ``120 / speed`` s, then answers again;
* restart: every listener of the simulator closed for 3 s, then open again (a restart).

Each scenario phase is followed by ``--settle-s`` of normal operation, which still belongs to
the phase (its clears, resolves and late pages). A *page* is a ``trigger`` message (first
page, re-alarm, escalation, repeat, flood or chattering summary); the same message delivered
to two channels is one page. *Alarms* are the phase's annunciated raises as ``facility kpi``
counts them (the shipped routes page none of the low-priority ones). At the end the KPIs of
``facility.records.kpi`` are computed over the normal phase, over its steady state (after
the first ``--startup-s``, where start-up findings fall) and over the whole run.

It is a benchmark, not a test: it prints what it measured and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

from facility.config import load_config  # noqa: E402
from facility.config.schema import Channel  # noqa: E402
from facility.domain.model import now_ms  # noqa: E402


class Inbox:
    """A loopback HTTP receiver: each POST kept with its arrival time (ms) and path."""

    def __init__(self):
        self.received: list[tuple[int, str, dict]] = []
        self.beats = 0
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                inbox.beats += 1
                self.send_response(200)
                self.end_headers()

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    inbox.received.append((now_ms(), self.path, json.loads(body or b"{}")))
                except ValueError:
                    pass
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def bench_config(cfg, inbox_url: str, db_dir: str):
    """The shipped config with its database in ``db_dir`` and every channel to the inbox."""
    channels = tuple(Channel(id=ch.id, type="webhook", url=f"{inbox_url}/pages/{ch.id}")
                     for ch in cfg.paging.channels)
    paging = dataclasses.replace(cfg.paging, channels=channels,
                                 heartbeat_url=f"{inbox_url}/heartbeat")
    storage = dataclasses.replace(cfg.storage, path=os.path.join(db_dir, "facility.db"))
    return dataclasses.replace(cfg, paging=paging, storage=storage)


@dataclasses.dataclass
class Phase:
    name: str
    what: str
    start_ms: int = 0
    end_ms: int = 0


async def restart(sim, hold_s: float) -> None:
    """Close every listener of the simulator for ``hold_s``, then listen again."""
    one_per_port = {u.dev.port: d for d, u in sim.units.items()}
    for dev in one_per_port.values():
        await sim.refuse(dev)
    await asyncio.sleep(hold_s)
    for dev in one_per_port.values():
        await sim.accept(dev)


async def run(cfg, speed: float, settle_s: float, log) -> tuple[list[Phase], int]:
    from facility.service.service import Service
    from sensors.simulator import Simulator

    sim = Simulator(cfg, ephemeral=True, speed=speed)
    await sim.start()
    begin_ms = now_ms()  # the normal phase includes start-up: what a new user sees first
    service = Service(sim.client_config(cfg))
    task = asyncio.create_task(service.run())
    t_start = time.monotonic()
    while service.cycles == 0 and not task.done():
        await asyncio.sleep(0.1)
    if task.done():
        task.result()
    log(f"service up after {time.monotonic() - t_start:.1f} s")
    gas = next(d.id for d in cfg.devices if d.profile == "gas-detector")
    phases: list[Phase] = []

    async def phase(name: str, what: str, hold_s: float, act, settle: float) -> None:
        p = Phase(name, what, start_ms=now_ms())
        log(f"{name}: {what}")
        await act()
        await asyncio.sleep(hold_s)
        if settle:
            sim.set_scenario("normal")
            await asyncio.sleep(settle)
        p.end_ms = now_ms()
        phases.append(p)

    async def nothing():
        return None

    def scenario(s: str, target: str | None = None):
        async def act():
            sim.set_scenario(s, target)
        return act

    normal_s = 600 / speed
    offline_s = 120 / speed
    await phase("normal", f"normal scenario from start-up, {normal_s:g} s", normal_s,
                nothing, 0)
    phases[0].start_ms = begin_ms
    await phase("door", "first door held open 45 s", 45, scenario("door-open"), settle_s)
    await phase("particle", "first particle counter's excursion 45 s", 45,
                scenario("particle-excursion"), settle_s)
    await phase("gas", "gas leak at the first gas detector 20 s", 20, scenario("gas-leak"),
                settle_s)
    await phase("offline", f"{gas} offline {offline_s:g} s", offline_s,
                scenario("offline", gas), settle_s)
    p = Phase("restart", "every simulator listener closed 3 s", start_ms=now_ms())
    log(f"restart: {p.what}")
    await restart(sim, 3.0)
    await asyncio.sleep(settle_s)
    p.end_ms = now_ms()
    phases.append(p)
    service.stopping.set()
    await task
    await sim.stop()
    return phases, service.cycles


def pages_in(inbox: Inbox, lo: int, hi: int) -> dict:
    """Pages and other messages that arrived in ``[lo, hi)``."""
    triggers, others, alarms = set(), 0, {}
    for t, _path, msg in inbox.received:
        if not lo <= t < hi:
            continue
        body = json.dumps(msg, sort_keys=True)
        if msg.get("action") == "trigger":
            if body not in triggers:
                triggers.add(body)
                aid = (msg.get("custom_details") or {}).get("alarm") or msg.get("event")
                alarms[aid] = alarms.get(aid, 0) + 1
        else:
            others += 1
    return {"pages": len(triggers), "other_messages": others,
            "paged": dict(sorted(alarms.items(), key=lambda kv: (-kv[1], kv[0])))}


def kpi_summary(db: str, sites: list[str | None], lo: int, hi: int) -> list[dict]:
    from facility.records.kpi import alarm_kpis
    from facility.store import Store

    with Store(db, readonly=True) as store:
        res = alarm_kpis(store, lo, hi, sites=sites)
    out = []
    for k in (*res.sites, dataclasses.replace(res.total, site="all")):
        out.append({"site": k.site, "alarms": k.alarms, "per_day": round(k.per_day, 1),
                    "per_10min_mean": round(k.per_period_mean, 2),
                    "per_10min_max": k.per_period_max, "flood_pct": round(k.flood_pct, 2),
                    "chattering": [a for a, _n in k.chattering],
                    "standing_at_end": len(k.standing_at_end),
                    "top": [f"{a} x{n}" for a, n in k.top10[:5]]})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", type=float, default=4.0,
                    help="simulator speed: normal phase 600/speed s, offline 120/speed s")
    ap.add_argument("--settle-s", type=float, default=20.0,
                    help="normal operation after each scenario, counted with it")
    ap.add_argument("--startup-s", type=float, default=60.0,
                    help="start-up part of the normal phase, left out of its steady state")
    ap.add_argument("--config", default=str(ROOT / "config.toml"))
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    a = ap.parse_args()

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    shipped = load_config(a.config)
    inbox = Inbox()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-noise-") as tmp:
        cfg = bench_config(shipped, inbox.url, tmp)
        try:
            phases, cycles = asyncio.run(run(cfg, a.speed, a.settle_s, log))
        finally:
            inbox.close()
        sites = [*(s.id for s in cfg.sites), None]
        rows = []
        for p in phases:
            alarms = kpi_summary(cfg.db_path, sites, p.start_ms, p.end_ms)[-1]
            rows.append({"phase": p.name, "what": p.what,
                         "seconds": round((p.end_ms - p.start_ms) / 1000, 1),
                         "alarms": alarms["alarms"], **pages_in(inbox, p.start_ms, p.end_ms)})
        normal = phases[0]
        result = {
            "measured": time.strftime("%Y-%m-%d"), "speed": a.speed, "cycles": cycles,
            "wall_s": round(time.monotonic() - t0, 1), "phases": rows,
            "kpi_normal": kpi_summary(cfg.db_path, sites, normal.start_ms, normal.end_ms),
            "kpi_steady": kpi_summary(cfg.db_path, sites, normal.start_ms + int(
                a.startup_s * 1000), normal.end_ms),
            "kpi_run": kpi_summary(cfg.db_path, sites, phases[0].start_ms, phases[-1].end_ms),
        }
    if a.json:
        print(json.dumps(result))
        return 0
    print(f"alarm noise on the shipped config, measured {result['measured']}, speed "
          f"{a.speed:g}, {cycles} engine cycles, {result['wall_s']:g} s wall")
    print(f"{'phase':<9} {'s':>6} {'alarms':>6} {'pages':>5} {'other':>5}  what / alarms paged")
    for r in rows:
        print(f"{r['phase']:<9} {r['seconds']:>6g} {r['alarms']:>6} {r['pages']:>5} "
              f"{r['other_messages']:>5}  {r['what']}")
        for aid, n in r["paged"].items():
            print(f"{'':>36}{aid}" + (f" x{n}" if n > 1 else ""))
    for title, key in (("KPIs, normal phase", "kpi_normal"),
                       (f"KPIs, normal phase after the first {a.startup_s:g} s", "kpi_steady"),
                       ("KPIs, whole run", "kpi_run")):
        print(f"{title} (facility.records.kpi):")
        print(f"  {'site':<5} {'alarms':>6} {'per day':>8} {'10-min mean':>11} {'max':>4} "
              f"{'flood %':>7} {'standing':>8}  chattering / most frequent")
        for k in result[key]:
            print(f"  {str(k['site'] or '-'):<5} {k['alarms']:>6} {k['per_day']:>8g} "
                  f"{k['per_10min_mean']:>11g} {k['per_10min_max']:>4} {k['flood_pct']:>7g} "
                  f"{k['standing_at_end']:>8}  {', '.join(k['chattering']) or 'none'} / "
                  f"{', '.join(k['top']) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
