"""Poller benchmark: N simulated devices x 10 points at 1 Hz vs a bare pymodbus loop.

    .venv/bin/python benchmarks/bench_poller.py [--devices 200] [--seconds 60]

Reports achieved samples/s, p50/p99 lateness of each device's cycle vs its schedule, and
process CPU per sample for the Poller and for a bare pymodbus loop reading the same
registers in the same run (both against the same simulator, in this process, so the
simulator's CPU is included in both and the ratio is conservative).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facility.config import parse_config  # noqa: E402
from sensors.poller import Poller  # noqa: E402
from sensors.simulator import Simulator  # noqa: E402


def make_config(n: int) -> str:
    head = '[facility]\nid = "bench"\n[[sites]]\nid = "S"\n'
    dev = []
    for i in range(n):
        pts = "".join(f'[[devices.points]]\nname = "p{k}"\ntable = "holding"\naddress = {2 * k}\n'
                      f'type = "float32"\nquantity = "temperature"\n' for k in range(10))
        dev.append(f'[[devices]]\nid = "D{i:03d}"\nsite = "S"\nhost = "127.0.0.1"\nport = {20000 + i}\n'
                   f'scan_s = 1.0\ntimeout_s = 0.5\n{pts}')
    return head + "\n".join(dev)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def bench_poller(cfg, seconds):
    count = 0

    def on_samples(batch):
        nonlocal count
        count += sum(1 for s in batch if s.point.rsplit(".", 1)[1].startswith("p"))

    poller = Poller(cfg, on_samples)
    lateness = []
    for job in poller.jobs.values():  # measure each cycle's start against its schedule
        orig = job.cycle

        async def timed(force=False, _orig=orig, _job=job, _t0=[]):  # noqa: B006 - a per-job first-run memo, on purpose
            now = time.monotonic()
            if not _t0:
                _t0.append(now)
            k = round((now - _t0[0]) / _job.interval_s)
            lateness.append(max(0.0, now - (_t0[0] + k * _job.interval_s)))
            return await _orig(force)
        job.cycle = timed
    c0, t0 = time.process_time(), time.monotonic()
    poller.start()
    await asyncio.sleep(seconds)
    await poller.stop()
    return count, time.process_time() - c0, time.monotonic() - t0, lateness, poller.skipped_runs


async def bench_bare(cfg, seconds):
    from pymodbus.client import (
        AsyncModbusTcpClient,  # bench only; production code uses sensors.modbus
    )

    clients = []
    for d in cfg.devices:
        c = AsyncModbusTcpClient(d.host, port=d.port, timeout=0.5, retries=0, reconnect_delay=0)
        await c.connect()
        clients.append(c)
    count, lateness = 0, []

    async def loop(c):
        nonlocal count
        due = time.monotonic()
        end = due + seconds
        while due < end:
            lateness.append(max(0.0, time.monotonic() - due))
            rr = await c.read_holding_registers(0, count=20, device_id=1)
            vals = [c.convert_from_registers(rr.registers[2 * k:2 * k + 2], c.DATATYPE.FLOAT32) for k in range(10)]
            count += len(vals)
            due += 1.0
            await asyncio.sleep(max(0.0, due - time.monotonic()))
    c0, t0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(loop(c) for c in clients))
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    for c in clients:
        c.close()
    return count, cpu, wall, lateness


async def main(n, seconds):
    cfg = parse_config(make_config(n))
    async with Simulator(cfg, ephemeral=True) as sim:
        ccfg = sim.client_config()
        pc, pcpu, pwall, plate, skipped = await bench_poller(ccfg, seconds)
        bc, bcpu, bwall, blate = await bench_bare(ccfg, seconds)
    print(f"devices={n} points/device=10 scan=1 s duration={seconds} s (simulator in-process)")
    print(f"poller: {pc / pwall:8.0f} samples/s  lateness p50={1000 * statistics.median(plate):.1f} ms"
          f" p99={1000 * pct(plate, 0.99):.1f} ms  cpu/sample={1e6 * pcpu / max(pc, 1):.1f} us"
          f"  skipped runs={skipped}")
    print(f"bare:   {bc / bwall:8.0f} samples/s  lateness p50={1000 * statistics.median(blate):.1f} ms"
          f" p99={1000 * pct(blate, 0.99):.1f} ms  cpu/sample={1e6 * bcpu / max(bc, 1):.1f} us")
    print(f"ratio poller/bare: samples/s {pc / pwall / max(bc / bwall, 1e-9):.2f}"
          f"  cpu/sample {(pcpu / max(pc, 1)) / max(bcpu / max(bc, 1), 1e-12):.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60.0)
    a = ap.parse_args()
    asyncio.run(main(a.devices, a.seconds))
