"""Benchmark the campus: N edge nodes x P points at 1 Hz into central, over a real mosquitto.

    .venv/bin/python benchmarks/bench_campus.py [--sites 3] [--points 2000] [--seconds 30]
                                                [--backlog 1000000] [--ceiling 50000]

Each site is a database written cycle by cycle through the real ``Store`` (one cycle of P
samples a second) with a real ``facility uplink`` process; ``facility central`` runs as its
own process. Reported, from the same run:

* central CPU (% of one core) and CPU us per mirrored sample;
* end-to-end latency from a cycle's commit at the edge (its digest row's time) to its commit
  in central's mirror (``campus_cycles.received_ms``), p50 / p99;
* bytes per metric on the wire (the uplinks' own count);
* replay throughput of a backlog of ``--backlog`` samples on site 1 (written before its
  uplink starts, its cursor set to the start of it) while live cycles of every site keep
  flowing, with the live latency during the replay, in three runs: central pacing the
  replay (``Node Control/History rate``, AIMD) under the ceiling ``--ceiling``, and fixed
  caps (central does not pace: ``[central] history_control = false``) of ``--ceiling`` and
  of 10 000 samples/s;
* the baseline: a bare paho-mqtt publish/subscribe loop carrying the same Sparkplug payload
  bytes (one message per instrument per second), its subscriber's CPU per sample and latency.
Needs mosquitto (Debian package). The machine is shared: compare ratios, not times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import paho.mqtt.client as mqtt  # noqa: E402

from facility.campus import sparkplug as sp  # noqa: E402
from facility.domain.model import PointInfo, Quality, Sample, now_ms  # noqa: E402
from facility.store import Cycle, Store  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DEVICES = 20  # instruments per site; points are spread over them


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(folder: str) -> tuple[subprocess.Popen, int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = os.path.join(folder, "mosquitto.conf")
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false",
             "max_queued_messages 1000000", "max_inflight_messages 0"]
    if os.geteuid() == 0:
        lines.append("user root")
    with open(conf, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def site_points(n: int, site: str) -> list[PointInfo]:
    return [PointInfo(f"{site}-D{i % DEVICES:02d}.p{i}", f"{site}-D{i % DEVICES:02d}", site,
                      f"{site}-Z{i % 5}", "pressure_diff", "Pa", 1) for i in range(n)]


def write_cycle(store: Store, points, ts: int, k: int) -> None:
    store.write_cycle(Cycle(samples=[Sample(p.id, ts, 10.0 + ((k + i) % 13) * 0.1, Quality.GOOD)
                                     for i, p in enumerate(points)]))


def site_toml(folder: str, site: str, port: int, rate: float) -> str:
    path = os.path.join(folder, f"{site}.toml")
    with open(path, "w") as fh:
        fh.write(f'[facility]\nid = "campus"\n\n[storage]\npath = "{site}.db"\n\n'
                 f'[[sites]]\nid = "{site}"\ntimezone = "Asia/Hong_Kong"\n\n'
                 f'[uplink]\nnode_id = "{site}"\nprimary_host_id = "central"\n'
                 f'history_rate = {rate:.1f}\nstate_path = "uplink-{site}.state.json"\n\n'
                 f'[uplink.broker]\nhost = "127.0.0.1"\nport = {port}\n')
    return path


def set_cursor(folder: str, site: str, origin: int) -> None:
    """The uplink's state before its first start: responsible from cycle ``origin`` on."""
    with open(os.path.join(folder, f"uplink-{site}.state.json"), "w") as fh:
        json.dump({"bdseq": -1, "origin": origin, "sent": []}, fh)


def central_toml(folder: str, sites: list[str], port: int, paced: bool) -> str:
    path = os.path.join(folder, "central.toml")
    with open(path, "w") as fh:
        fh.write(f'[facility]\nid = "campus"\n\n[storage]\npath = "central/central.db"\n\n'
                 f'[[sites]]\nid = "HQ"\ntimezone = "Asia/Hong_Kong"\n\n[central]\nhost_id = "central"\n'
                 f'history_control = {"true" if paced else "false"}\n\n'
                 f'[central.broker]\nhost = "127.0.0.1"\n'
                 f'port = {port}\n\n')
        for s in sites:
            fh.write(f'[[central.sites]]\nid = "{s}"\nnode_id = "{s}"\n\n')
    return path


def proc(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "facility", *args], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def latencies(folder: str, site: str, edge_db: str, since_ms: int,
              historical: int = 0) -> list[int]:
    mirror = os.path.join(folder, "central", "mirror", f"{site}.db")
    if not os.path.exists(mirror):
        return []
    with sqlite3.connect(f"file:{mirror}?mode=ro", uri=True) as m:
        got = dict(m.execute("SELECT edge_cycle, received_ms FROM campus_cycles WHERE"
                             " historical = ?", (historical,)).fetchall())
    with sqlite3.connect(f"file:{edge_db}?mode=ro", uri=True) as e:
        sent = dict(e.execute("SELECT id, ts_ms FROM audit WHERE action = 'cycle_digest' AND"
                              " ts_ms >= ?", (since_ms,)).fetchall())
    return [got[c] - sent[c] for c in sent if c in got]


def mirrored(folder: str, site: str) -> int:
    mirror = os.path.join(folder, "central", "mirror", f"{site}.db")
    if not os.path.exists(mirror):
        return 0
    with sqlite3.connect(f"file:{mirror}?mode=ro", uri=True) as m:
        return int(m.execute("SELECT coalesce(sum(samples), 0) FROM campus_cycles").fetchone()[0])


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def baseline(port: int, points: int, seconds: float) -> dict:
    """A bare publish/subscribe loop with the same Sparkplug bytes: one DDATA per
    instrument per second, received and decoded by a plain subscriber."""
    pts = site_points(points, "BASE")
    by_dev: dict[str, list[int]] = {}
    for i, p in enumerate(pts):
        by_dev.setdefault(p.device, []).append(i)
    lat: list[float] = []
    n_samples = [0]

    def on_message(c, u, msg):
        p = sp.Payload.FromString(msg.payload)
        n_samples[0] += len(p.metrics)
        lat.append(time.time() * 1000 - p.timestamp)

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="base-sub")
    sub.on_message = on_message
    ready = threading.Event()
    sub.on_subscribe = lambda *a: ready.set()
    sub.on_connect = lambda c, *a: c.subscribe("spBv1.0/base/#", qos=0)
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    ready.wait(10)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="base-pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    cpu0 = time.process_time()
    end = time.monotonic() + seconds
    k = 0
    wire = 0
    while time.monotonic() < end:
        ts = now_ms()
        for dev, idx in by_dev.items():
            p = sp.Payload()
            p.timestamp, p.seq = ts, k % 256
            for i in idx:
                sp.add_metric(p, alias=1000 + i, ts_ms=ts, datatype=sp.DOUBLE,
                              value=10.0 + ((k + i) % 13) * 0.1)
            data = p.SerializeToString()
            wire += len(data)
            pub.publish(f"spBv1.0/base/DDATA/BASE/{dev}", data, qos=0)
        k += 1
        time.sleep(max(0.0, 1.0 - (time.monotonic() % 1.0)))
    time.sleep(1.0)
    cpu = time.process_time() - cpu0  # publisher and subscriber: one process
    pub.loop_stop()
    sub.loop_stop()
    return {"samples": n_samples[0], "cpu_s": cpu, "lat": lat, "bytes": wire,
            "metrics": k * points}


def latencies_between(folder: str, site: str, edge_db: str, lo_ms: int, hi_ms: int) -> list[int]:
    """Live latencies of the cycles committed at the edge in ``[lo_ms, hi_ms)``."""
    mirror = os.path.join(folder, "central", "mirror", f"{site}.db")
    if not os.path.exists(mirror):
        return []
    with sqlite3.connect(f"file:{mirror}?mode=ro", uri=True) as m:
        got = dict(m.execute("SELECT edge_cycle, received_ms FROM campus_cycles WHERE"
                             " historical = 0").fetchall())
    with sqlite3.connect(f"file:{edge_db}?mode=ro", uri=True) as e:
        sent = dict(e.execute("SELECT id, ts_ms FROM audit WHERE action = 'cycle_digest' AND"
                              " ts_ms >= ? AND ts_ms < ?", (lo_ms, hi_ms)).fetchall())
    return [got[c] - sent[c] for c in sent if c in got]


def campus_run(a, rate: float, paced: bool) -> dict:
    """One campus: sites with their uplinks (site 1 with its backlog), central, the live
    cycles for ``--seconds`` and until the backlog is mirrored (at most 300 s more)."""
    folder = tempfile.mkdtemp(prefix="bench-campus-")
    broker, port = start_broker(folder)
    sites = [f"S{i + 1}" for i in range(a.sites)]
    stores, pts, cfgs = {}, {}, {}
    try:
        t0 = now_ms() - 10 * 86_400_000
        backlog_cycles = a.backlog // a.points if a.backlog else 0
        for s in sites:
            cfgs[s] = site_toml(folder, s, port, rate)
            stores[s] = Store(os.path.join(folder, f"{s}.db"))
            pts[s] = site_points(a.points, s)
            stores[s].register_points(pts[s])
            write_cycle(stores[s], pts[s], t0, 0)  # one cycle before the uplinks start
        # site 1's backlog, written before its uplink first starts; its cursor starts there
        b0 = stores[sites[0]].cycle_head()
        for k in range(backlog_cycles):
            write_cycle(stores[sites[0]], pts[sites[0]], t0 + (k + 1) * 1000, k)
        set_cursor(folder, sites[0], b0)
        for s in sites[1:]:  # only site 1 replays: the others start at their head
            set_cursor(folder, s, stores[s].cycle_head())
        central = proc("central", "--config", central_toml(folder, sites, port, paced))
        time.sleep(2.0)  # central's STATE first: the uplinks wait for it anyway
        ups = [proc("uplink", "--config", cfgs[s]) for s in sites]
        start = now_ms()
        c_cpu0 = cpu_s(central.pid)
        live_end = time.monotonic() + a.seconds
        k = 0
        replay_done_at = None
        while time.monotonic() < live_end or (a.backlog and replay_done_at is None
                                              and time.monotonic() < live_end + 300):
            ts = now_ms()
            for s in sites:
                write_cycle(stores[s], pts[s], ts, k)
            k += 1
            if replay_done_at is None and a.backlog and \
                    mirrored(folder, sites[0]) >= (backlog_cycles + k) * a.points:
                replay_done_at = now_ms()
            time.sleep(max(0.0, 1.0 - (time.monotonic() % 1.0)))
        time.sleep(3.0)
        c_cpu = cpu_s(central.pid) - c_cpu0
        wall = (now_ms() - start) / 1000
        for u in ups:
            u.terminate()
        outs = [u.communicate(timeout=60)[0] for u in ups]
        central.terminate()
        c_out = central.communicate(timeout=60)[0]
        live = [x for s in sites for x in latencies(folder, s, os.path.join(folder, f"{s}.db"),
                                                    start)]
        during = [x for s in sites for x in latencies_between(
            folder, s, os.path.join(folder, f"{s}.db"), start, replay_done_at or now_ms())]
        total = sum(mirrored(folder, s) for s in sites)
        up_bytes = up_samples = 0
        for o in outs:
            for line in o.splitlines():
                if line.startswith("uplink stopped:"):
                    parts = line.replace(",", "").split()
                    up_samples += int(parts[parts.index("samples") - 1])
                    up_bytes += int(parts[parts.index("bytes") - 1])
        if not total:
            print("nothing mirrored; the processes said:\n" + "\n".join(outs) + c_out)
        base = baseline(port, a.points, min(a.seconds, 20.0)) if a.with_baseline else None
    finally:
        for st in stores.values():
            st.close()
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    dur = ((replay_done_at or now_ms()) - start) / 1000
    return {"c_cpu": c_cpu, "wall": wall, "live": live, "during": during, "total": total,
            "up_bytes": up_bytes, "up_samples": up_samples, "base": base, "dur": dur,
            "done": replay_done_at is not None, "sites": sites}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--backlog", type=int, default=1_000_000)
    ap.add_argument("--ceiling", type=float, default=50_000.0,
                    help="[uplink] history_rate of the paced run and of one fixed-cap run")
    a = ap.parse_args()
    if not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    runs = [("paced", a.ceiling, True)]
    if a.backlog:
        runs += [("fixed", a.ceiling, False), ("fixed", 10_000.0, False)]
    results = []
    for i, (kind, rate, paced) in enumerate(runs):
        a.with_baseline = i == 0
        results.append((kind, rate, campus_run(a, rate, paced)))
    r = results[0][2]
    base, wall, total = r["base"], r["wall"], r["total"]
    live, c_cpu = r["live"], r["c_cpu"]
    print(f"{a.sites} edge nodes x {a.points} points at 1 Hz, {wall:.0f} s; backlog"
          f" {a.backlog:,} samples on {r['sites'][0]}; replay paced by central, ceiling"
          f" {a.ceiling:,.0f} samples/s")
    print(f"{'':<34}{'central':>14}{'bare pub/sub':>14}")
    print(f"{'CPU us per sample':<34}{c_cpu / max(1, total) * 1e6:>14.1f}"
          f"{base['cpu_s'] / max(1, base['samples']) * 1e6:>14.1f}")
    print(f"{'CPU (% of one core)':<34}{c_cpu / wall * 100:>14.1f}"
          f"{base['cpu_s'] / 20.0 * 100:>14.1f}")
    print(f"{'latency p50 / p99 (ms)':<34}{pct(live, .5):>7.0f} /{pct(live, .99):>5.0f}"
          f"{pct(base['lat'], .5):>7.0f} /{pct(base['lat'], .99):>5.0f}")
    print(f"{'bytes per metric on the wire':<34}{r['up_bytes'] / max(1, r['up_samples']):>14.1f}"
          f"{base['bytes'] / max(1, base['metrics']):>14.1f}")
    if a.backlog:
        print(f"replay of {a.backlog:,} samples while every site stays live"
              f" (bare pub/sub latency p50 {pct(base['lat'], .5):.0f} ms,"
              f" p99 {pct(base['lat'], .99):.0f} ms):")
        print(f"{'':<28}{'samples/s':>11}{'done in':>9}{'live p50':>10}{'p99':>7}{'max':>7}"
              f"{'> 1 s':>7}")
        for kind, rate, x in results:
            d = x["during"]
            late = sum(1 for v in d if v > 1000)
            label = f"{'paced, ceiling' if kind == 'paced' else 'unpaced, cap'} {rate:,.0f}"
            print(f"{label:<28}{a.backlog / x['dur']:>11,.0f}"
                  f"{x['dur']:>7.0f} s{'' if x['done'] else '!'}{pct(d, .5):>8.0f} ms"
                  f"{pct(d, .99):>7.0f}{max(d, default=float('nan')):>7.0f}"
                  f"{late:>4}/{len(d)}")
        print("(live latency: edge commit to central commit of the live cycles committed"
              " during the replay, every site; '!': the backlog was not all mirrored)")
    print(f"mirrored {total:,} samples in all; central p50 latency"
          f" {statistics.median(live) if live else float('nan'):.0f} ms")


if __name__ == "__main__":
    main()
