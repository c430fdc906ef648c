"""End-to-end alarm latency: the simulator changes a value -> alarm row committed -> page received.

    .venv/bin/python benchmarks/bench_latency.py [--reps 10] [--cycle-s 0.5 1.0] [--reads 200]

Set-up (per ``--cycle-s`` value, each with a fresh database): the service test facility of
``tests/service_fixture.py`` (zone Z1 with ``door_grace_s = 0``, DP-1 scanned every 0.5 s),
the pymodbus simulator on its own event loop in this process, the real ``facility run
--headless --cycle-s X`` as a separate process (its own interpreter and GIL, as in
production), and a loopback HTTP receiver for the webhook pages.

Each repetition: ``sim.set_scenario("door-open", "Z1")`` (time t0, taken on the simulator's
loop right before the switch) -> (a) the ``alarms`` row of ``Z1.dp_cascade:action_low`` is
UNACK with a new occurrence (a read-only connection polls every 10 ms) and (b) the receiver
gets the ``trigger`` page of that occurrence; then the occurrence is acknowledged over the
action socket, the simulator goes back to normal, and the next repetition starts once the
``resolve`` page has arrived (so every repetition starts from NORM with paging idle).

Baseline, in the same run against the same simulator: the bare time of one pymodbus read of
the DP transmitter's dp register (input registers 0-1, float32), so the ratio shows what the
service adds over the instrument's own answer. The expected floor from scheduling alone is
about scan_s/2 + cycle_s/2 on average (a change waits for the next poll, then for the next
engine cycle), up to scan_s + cycle_s. The DB latency is also split, from the alarm row's
own ``onset_ms`` (the first beyond sample's timestamp) and ``detected_ms`` (wall clock, same
host): switch -> poll, onset -> detected (engine cycle), detected -> row visible (commit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facility.config import parse_config  # noqa: E402
from facility.launch import Inbox  # noqa: E402
from facility.service.socket import ActionRefused, ServiceNotRunning, request  # noqa: E402
from sensors.simulator import Simulator  # noqa: E402
from tests.fixtures.service import config_text  # noqa: E402

CASCADE = "Z1.dp_cascade:action_low"
SCAN_S = 0.5  # DP-1's scan_s in tests/service_fixture.py
POLL_S = 0.010


class TimedReceiver(Inbox):
    """The demo's loopback inbox, which keeps each page with its arrival time."""

    def first(self, action: str, tag: str) -> float | None:
        """Arrival time of the first page with ``action`` whose JSON mentions ``tag``."""
        for t, p in list(self.received):
            act = p.get("event_action") or p.get("action") or (p.get("payload") or {}).get("action")
            if act == action and tag in json.dumps(p):
                return t
        return None

    def close(self):
        self.server.shutdown()


class SimThread:
    """The simulator on its own loop; scenario switches are timed on that loop."""

    def __init__(self, cfg):
        self.loop = asyncio.new_event_loop()
        self.cfg = cfg
        self.ready = threading.Event()
        threading.Thread(target=self._main, daemon=True).start()
        if not self.ready.wait(30):
            raise RuntimeError("simulator did not start")

    def _main(self):
        asyncio.set_event_loop(self.loop)
        self.sim = Simulator(self.cfg, ephemeral=True, record_s=2)
        self.loop.run_until_complete(self.sim.start())
        self.ready.set()
        self.loop.run_forever()

    def set_scenario(self, scenario: str, device: str | None) -> tuple[float, float]:
        """Switch on the simulator's loop; return (monotonic, wall) time of the switch."""
        async def switch():
            t = (time.monotonic(), time.time())
            self.sim.set_scenario(scenario, device)
            return t
        return asyncio.run_coroutine_threadsafe(switch(), self.loop).result(10)

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def alarm_row(db: str) -> tuple | None:
    """(state, occurrence, onset_ms, detected_ms) of the cascade alarm, read-only."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return None
    try:
        row = conn.execute("SELECT state, occurrence, onset_ms, detected_ms FROM alarms"
                           " WHERE id = ?",
                           (CASCADE,)).fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return (row[0], int(row[1] or 0), row[2], row[3]) if row else None


def wait_until(pred, timeout_s: float, step_s: float = POLL_S):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step_s)
    return None


async def bare_reads(host: str, port: int, n: int) -> list[float]:
    """Seconds per pymodbus read of DP-1's dp register (connect excluded)."""
    from pymodbus.client import AsyncModbusTcpClient  # bench only; the product uses sensors.modbus

    c = AsyncModbusTcpClient(host, port=port, timeout=1.0, retries=0, reconnect_delay=0)
    await c.connect()
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            rr = await c.read_input_registers(0, count=2, device_id=1)
            out.append(time.perf_counter() - t)
            if rr.isError():
                raise RuntimeError(f"bare read failed: {rr}")
            await asyncio.sleep(0.01)
    finally:
        c.close()
    return out


def run_one(cycle_s: float, reps: int, reads: int, workdir: Path) -> dict:
    receiver = TimedReceiver()
    base = parse_config(config_text(str(workdir / "fms.db"), receiver.url),
                        base_dir=str(workdir))
    sim = SimThread(base)
    db = str(workdir / "fms.db")
    cfg_file = workdir / "config.toml"
    cfg_file.write_text(config_text(db, receiver.url, dp_port=sim.sim.bound[15020],
                                    gd_port=sim.sim.bound[15021]))
    log = open(workdir / "service.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "facility", "run", "--headless", "--cycle-s",
                             str(cycle_s), "--config", str(cfg_file)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    to_db, to_page, misses = [], [], 0
    parts: dict[str, list[float]] = {"poll": [], "engine": [], "commit": []}
    try:
        def ready():
            try:
                return request(db, {"action": "ping"}, timeout_s=2)["ok"]
            except (ServiceNotRunning, ActionRefused):
                return False
        if not wait_until(ready, 90, 0.2):
            raise RuntimeError(f"service did not start; see {workdir / 'service.log'}")
        time.sleep(max(2.0, 3 * cycle_s))  # a few full cycles: pollers, engine, store warm
        occ = (alarm_row(db) or ("NORM", 0))[1]
        for i in range(reps):
            t0, w0 = sim.set_scenario("door-open", "Z1")
            seen = wait_until(lambda: (r := alarm_row(db)) and r[0] == "UNACK" and r[1] > occ
                              and (time.monotonic(), r), 30)
            if not seen:
                misses += 1
                print(f"  rep {i + 1}: no UNACK row within 30 s", file=sys.stderr)
                sim.set_scenario("normal", None)
                continue
            t_db, (_state, occ, onset_ms, detected_ms) = seen
            # where the time went: the first beyond sample's timestamp (onset) is when the
            # poller read it; detected is when the engine cycle saw it; then the commit
            if onset_ms is not None and detected_ms is not None:
                parts["poll"].append(onset_ms / 1000 - w0)
                parts["engine"].append((detected_ms - onset_ms) / 1000)
                parts["commit"].append((t_db - t0) - (detected_ms / 1000 - w0))
            tag = f"{CASCADE}#{occ}"
            t_page = wait_until(lambda: receiver.first("trigger", tag), 30)
            to_db.append(t_db - t0)
            if t_page is None:
                misses += 1
                print(f"  rep {i + 1}: no trigger page within 30 s", file=sys.stderr)
            else:
                to_page.append(t_page - t0)
            request(db, {"action": "ack", "alarm": CASCADE, "occurrence": occ,
                         "reason": "latency benchmark"})
            sim.set_scenario("normal", None)
            if not wait_until(lambda: receiver.first("resolve", tag), 30, 0.05):
                print(f"  rep {i + 1}: no resolve page within 30 s", file=sys.stderr)
            time.sleep(0.2 + (i % 5) * 0.137)  # spread the phase against scan and cycle
        bare = asyncio.run(bare_reads("127.0.0.1", sim.sim.bound[15020], reads))
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        sim.stop()
        receiver.close()
    return {"cycle_s": cycle_s, "db": to_db, "page": to_page, "bare": bare, "misses": misses,
            "parts": parts}


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, int(round(q * len(xs) + 0.5)) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10, help="excursions per configuration")
    ap.add_argument("--cycle-s", type=float, nargs="+", default=[0.5, 1.0],
                    help="engine cycle(s) to measure, each with a fresh service and database")
    ap.add_argument("--reads", type=int, default=200, help="bare Modbus reads for the baseline")
    a = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        for k, cycle_s in enumerate(a.cycle_s):
            work = Path(tmp) / f"c{k}"
            work.mkdir()
            print(f"cycle_s={cycle_s:g}: {a.reps} repetitions ...", file=sys.stderr, flush=True)
            results.append(run_one(cycle_s, a.reps, a.reads, work))
    ms = lambda v: f"{1000 * v:8.1f}"  # noqa: E731
    print(f"end-to-end alarm latency, {a.reps} repetitions per row (door-open on Z1, "
          f"door_grace_s = 0, DP-1 scan_s = {SCAN_S:g}; service = `facility run --headless` "
          f"in its own process; DB polled read-only every {1000 * POLL_S:.0f} ms)")
    print(f"{'cycle_s':>7} {'to':<24} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"
          f" {'p50/bare':>9}")
    for r in results:
        bare50 = statistics.median(r["bare"]) if r["bare"] else float("nan")
        rows = [("alarm row UNACK (DB)", r["db"]), ("trigger page received", r["page"])]
        for name, xs in rows:
            p50 = statistics.median(xs) if xs else float("nan")
            print(f"{r['cycle_s']:>7g} {name:<24} {len(xs):>3} {ms(p50)} {ms(pct(xs, 0.95))} "
                  f"{ms(max(xs) if xs else float('nan'))} {p50 / bare50:>8.0f}x")
        print(f"{r['cycle_s']:>7g} {'bare Modbus read (dp)':<24} {len(r['bare']):>3} {ms(bare50)} "
              f"{ms(pct(r['bare'], 0.95))} {ms(max(r['bare']))} {'1':>8}x")
        for name, key in (("  switch -> onset (poll)", "poll"), ("  onset -> detected", "engine"),
                          ("  detected -> row seen", "commit")):
            xs = r["parts"][key]
            if xs:
                print(f"{r['cycle_s']:>7g} {name:<24} {len(xs):>3} {ms(statistics.median(xs))} "
                      f"{ms(pct(xs, 0.95))} {ms(max(xs))}")
        floor = SCAN_S / 2 + r["cycle_s"] / 2
        print(f"{r['cycle_s']:>7g} {'(schedule floor, mean)':<24} {'':>3} {ms(floor)} "
              f"{'':>8} {ms(SCAN_S + r['cycle_s'])}   scan_s/2 + cycle_s/2; max scan_s + cycle_s")
        if r["misses"]:
            print(f"{'':>7} missed: {r['misses']}")
    return 1 if any(r["misses"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
