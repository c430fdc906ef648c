"""Service benchmark: the whole service against a bare pymodbus loop, on scaled configs.

    .venv/bin/python benchmarks/bench_service.py [--points 620,2000,10000] [--seconds 30]

For each size a scaled copy of the shipped config.toml (benchmarks/scale_config.py) is played
by the simulator (``facility simulate``) in its own process on one core, and measured in turn,
in the same run, on the other core (``taskset`` where there is one):

- a bare pymodbus loop reading the same registers of the same devices (each device's read plan,
  at its scan_s; particle counters' record protocol is the service's own, so the bare loop reads
  their live status block only) - CPU us per value read;
- the service (``facility.service.service.Service``, as ``facility run --headless`` runs it):
  CPU us per stored sample (process CPU, writer thread included, over the steady window),
  poll lateness p50/p99 (each unit's read against its schedule), skipped scans, lost cycles,
  RSS, and startup (process start to the first committed cycle; numba cache warm).

The ratio service/bare is the figure of merit (docs/ARCHITECTURE.md "Data flow"); the machine
may be shared, so absolute figures vary between runs and the ratio is what compares.
"""

from __future__ import annotations

T_START = __import__("time").monotonic()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- children ---------------------------------------------------------------------------
async def child_bare(cfg_path: str, warm_s: float, seconds: float) -> dict:
    from pymodbus.client import AsyncModbusTcpClient  # bench only; the project uses sensors.modbus

    from facility.config import load_config
    from sensors.modbus import ConnectionPool
    from sensors.poller import DevicePoller

    cfg = load_config(cfg_path)
    pool = ConnectionPool(0.5, 30.0)
    plans: dict[tuple[str, int], list] = {}
    for d in cfg.devices:
        p = DevicePoller(cfg, d, pool)
        reqs = [(rq.table, rq.address, rq.count, len(rq.points)) for rq in p.requests]
        if not reqs:  # a record-protocol counter: its status block stands in
            reqs = [("holding", 0, 8, 1)]
        plans.setdefault((d.host, d.port), []).append((d.unit, d.scan_s, reqs))
    pool.close()
    counts = {"n": 0}
    measuring = {"on": False}

    async def loop(host, port, units):
        c = AsyncModbusTcpClient(host, port=port, timeout=1.0, retries=0, reconnect_delay=0)
        await c.connect()
        scan = min(s for _, s, _ in units)
        due = time.monotonic()
        end = due + warm_s + seconds
        while due < end:
            for unit, _, reqs in units:
                for table, address, count, n in reqs:
                    try:
                        fn = {"input": c.read_input_registers, "coil": c.read_coils,
                              "discrete": c.read_discrete_inputs}.get(
                                  table, c.read_holding_registers)
                        rr = await fn(address, count=count, device_id=unit)
                        regs = getattr(rr, "registers", None) or []
                        vals = [regs[i] for i in range(0, len(regs), 2)][:n]
                        if measuring["on"]:
                            counts["n"] += max(n, len(vals) and n)
                    except Exception:  # noqa: BLE001 - a bare loop counts what it read
                        pass
            due += scan
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        c.close()

    async def window():
        await asyncio.sleep(warm_s)
        measuring["on"] = True
        c0 = time.process_time()
        await asyncio.sleep(seconds)
        measuring["on"] = False
        return time.process_time() - c0

    res = await asyncio.gather(window(), *(loop(h, p, u) for (h, p), u in plans.items()))
    cpu = res[0]
    return {"values": counts["n"], "cpu_s": cpu, "us_per_value": 1e6 * cpu / max(1, counts["n"])}


async def child_service(cfg_path: str, warm_s: float, seconds: float) -> dict:
    from facility.config import load_config
    from facility.service.service import Service
    from sensors import poller as poller_mod

    late: list[float] = []
    orig_poll = poller_mod.DevicePoller.poll

    async def poll(self):
        late.append(max(0.0, time.monotonic() - (self.next_due - self.device.scan_s)))
        return await orig_poll(self)

    poller_mod.DevicePoller.poll = poll
    cfg = load_config(cfg_path)
    svc = Service(cfg)
    stored = {"n": 0, "on": False}
    orig_flush = svc._flush

    async def flush(samples, now, **kw):
        if stored["on"]:
            stored["n"] += len(samples)
        return await orig_flush(samples, now, **kw)

    svc._flush = flush
    task = asyncio.create_task(svc.run())
    while svc.cycles < 1 and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    startup = time.monotonic() - T_START
    await asyncio.sleep(warm_s)
    late.clear()
    stored["on"] = True
    skipped0, lost0 = svc.poller.skipped_runs, svc.lost_cycles
    c0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    stored["on"] = False
    out = {"samples": stored["n"], "cpu_s": cpu, "core_pct": 100 * cpu / wall,
           "us_per_sample": 1e6 * cpu / max(1, stored["n"]),
           "late_p50_ms": 1000 * pct(late, 0.5), "late_p99_ms": 1000 * pct(late, 0.99),
           "skipped": svc.poller.skipped_runs - skipped0, "lost_cycles": svc.lost_cycles - lost0,
           "rss_mb": rss_mb(), "startup_s": startup, "points": len(svc.cat.points)}
    svc.stopping.set()
    await task
    return out


# -- the parent -------------------------------------------------------------------------
def pinned(core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core % (os.cpu_count() or 1))]
    return []


def wait_ports(cfg_path: str, timeout_s: float = 120.0) -> None:
    from facility.config import load_config

    ports = {(d.host, d.port) for d in load_config(cfg_path).devices}
    deadline = time.monotonic() + timeout_s
    for host, port in sorted(ports, key=lambda hp: -hp[1])[:1] + sorted(ports)[:1]:
        while True:
            try:
                socket.create_connection((host, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"simulator did not open {host}:{port}") from None
                time.sleep(0.2)


def run_child(kind: str, cfg_path: str, warm_s: float, seconds: float) -> dict:
    cmd = pinned(1) + [sys.executable, __file__, "--child", kind, cfg_path,
                       "--warm", str(warm_s), "--seconds", str(seconds)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                         timeout=warm_s + seconds + 300)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode or not lines:
        raise SystemExit(f"{kind} run failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(lines[-1])


def bench(n: int, seconds: float, warm_s: float, tmp: Path) -> dict:
    from scale_config import write_scaled

    path, points = write_scaled(n, tmp / f"scaled-{n}.toml")
    env = dict(os.environ)
    sim = subprocess.Popen(pinned(0) + [str(ROOT / ".venv" / "bin" / "facility"), "simulate",
                                        "--config", str(path)],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ports(str(path))
        bare = run_child("bare", str(path), warm_s, seconds)
        svc = run_child("service", str(path), warm_s, seconds)
    finally:
        sim.terminate()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
    return {"points": points, "bare": bare, "service": svc,
            "ratio": svc["us_per_sample"] / max(bare["us_per_value"], 1e-9)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", default="620,2000,10000", help="comma-separated sizes")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window per run")
    ap.add_argument("--warm", type=float, default=5.0, help="seconds before measuring")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "CONFIG"), help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="print one JSON line per size")
    a = ap.parse_args(argv)
    if a.child:
        kind, cfg = a.child
        fn = child_bare if kind == "bare" else child_service
        print(json.dumps(asyncio.run(fn(cfg, a.warm, a.seconds))))
        return 0
    print(f"service vs bare pymodbus loop, {a.seconds:g} s windows after {a.warm:g} s,"
          f" simulator on core 0, measured process on core 1 ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        for n in (int(x) for x in a.points.split(",")):
            r = bench(n, a.seconds, a.warm, Path(tmp))
            s, b = r["service"], r["bare"]
            if a.json:
                print(json.dumps(r))
            print(f"points={r['points']:6d}  service {s['us_per_sample']:6.1f} us/sample"
                  f" ({s['core_pct']:.0f} % core) vs bare {b['us_per_value']:5.1f} us/value"
                  f" = {r['ratio']:.2f} x  lateness p50 {s['late_p50_ms']:.0f} ms"
                  f" p99 {s['late_p99_ms']:.0f} ms  skipped {s['skipped']} lost {s['lost_cycles']}"
                  f"  RSS {s['rss_mb']:.0f} MB  startup {s['startup_s']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
