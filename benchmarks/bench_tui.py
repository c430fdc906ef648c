"""CPU cost of the TUI showing 2 000 points updating at 1 Hz, against an idle Textual app.

    .venv/bin/python benchmarks/bench_tui.py [--seconds 30] [--points 2000]

A writer in a separate process (so its CPU is not counted against the TUI) updates every
point's ``latest`` row once a second through the real store, with a fresh heartbeat. In
this process, first an idle Textual app (a Static and a Footer) runs headless for the
same time as the baseline, then the TUI (``make_app``, refresh 1 s, 120x40) cycles through
overview, devices and a zone's detail. Process CPU time (all threads: the UI loop and the
refresh worker) is reported as a percentage of one core. Target: at most 5 % of a core while browsing
2 000 points. Each screen's window starts with the switch to it (composing the screen and
building its tables counts). Per screen it also reports the table cells rendered per refresh,
from the tables' own counter (``LiveTable.rendered``): only cells whose text changed, and only
those in view, are drawn again (docs/ARCHITECTURE.md "The technician's terminal").
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from facility.config import load_config  # noqa: E402
from facility.domain.model import PointInfo, Sample  # noqa: E402
from facility.store import Cycle, Store  # noqa: E402

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, "config.toml")
TARGET_PCT = 5.0
"""The TUI's budget while browsing 2 000 points at 1 Hz, in % of one core."""


def make_points(cfg, n: int) -> list[PointInfo]:
    """The configured points, topped up with synthetic ones spread over the zones."""
    from tests.fixtures.sample_db import all_infos

    infos = all_infos(cfg)
    zones = [z for z in cfg.zones]
    i = 0
    while len(infos) < n:
        z = zones[i % len(zones)]
        infos.append(PointInfo(id=f"SYN-{i // 50:03d}.p{i % 50:02d}", device=f"SYN-{i // 50:03d}",
                               site=z.site, zone=z.id, quantity="temperature", unit="°C",
                               decimals=2, kind="measured"))
        i += 1
    return infos[:max(n, len(infos))]


def writer(path: str, names: list[str], stop, ready, stats) -> None:
    """Every second: one cycle with a sample for every point and a heartbeat."""
    store = Store(path)
    k = 0
    ready.set()
    spent = 0.0
    while not stop.is_set():
        t = time.time()
        ts = int(t * 1000)
        samples = [Sample(p, ts, round(20 + ((k + j) % 100) / 10.0, 2)) for j, p in enumerate(names)]
        t0 = time.perf_counter()
        store.write_cycle(Cycle(samples=samples,
                                service_state={"heartbeat": {"ts_ms": ts, "pid": os.getpid()}}))
        spent += time.perf_counter() - t0
        k += 1
        time.sleep(max(0.0, 1.0 - (time.time() - t)))
    stats.put((k, spent))
    store.close()


async def run_idle(seconds: float) -> tuple[float, float]:
    from textual.app import App, ComposeResult
    from textual.widgets import Footer, Static

    class Idle(App):
        def compose(self) -> ComposeResult:
            yield Static("idle")
            yield Footer()

    async with Idle().run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        c0, w0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        return time.process_time() - c0, time.perf_counter() - w0


async def run_tui(cfg, path: str, seconds: float) -> tuple[float, float, int, dict]:
    from tui.app import make_app
    from tui.widgets.live_table import LiveTable

    app = make_app(cfg, path, refresh_s=1.0, login="bench")

    def cells_rendered(start: dict[int, int] | None = None) -> tuple[dict[int, int], int]:
        """Cells the screen in view has rendered: per table now, and in all since ``start``."""
        now = {id(t): sum(t.rendered.values()) for t in app.screen.query(LiveTable)}
        return now, sum(n - (start or {}).get(k, 0) for k, n in now.items())

    async with app.run_test(size=(120, 40)) as pilot:
        while not app.snapshots_seen:
            await pilot.pause(0.05)
        c0, w0, n0 = time.process_time(), time.perf_counter(), app.snapshots_seen
        third = seconds / 3
        per_screen: dict[str, tuple[float, int, int]] = {}
        for name, go in (("overview", None), ("devices", lambda: pilot.press("4")),
                         ("zone detail", lambda: app.open_zone(cfg.zones[0].id))):
            start = cells_rendered()[0] if go is None else {}  # a new screen's tables start at 0
            if go is not None:
                result = go()
                if asyncio.iscoroutine(result):
                    await result
            c, n = time.process_time(), app.snapshots_seen
            await asyncio.sleep(third)
            per_screen[name] = (time.process_time() - c, app.snapshots_seen - n,
                                cells_rendered(start)[1])
        return (time.process_time() - c0, time.perf_counter() - w0, app.snapshots_seen - n0,
                per_screen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--points", type=int, default=2000)
    args = ap.parse_args()
    cfg = load_config(CONFIG)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "facility.db")
        infos = make_points(cfg, args.points)
        with Store(path) as store:
            store.register_points(infos)
        names = [p.id for p in infos]
        ctx = mp.get_context("spawn")
        stop, ready, stats = ctx.Event(), ctx.Event(), ctx.Queue()
        proc = ctx.Process(target=writer, args=(path, names, stop, ready, stats), daemon=True)
        proc.start()
        ready.wait(60)
        time.sleep(1.5)
        try:
            idle_cpu, idle_wall = asyncio.run(run_idle(args.seconds))
            tui_cpu, tui_wall, refreshes, per_screen = asyncio.run(
                run_tui(cfg, path, args.seconds))
        finally:
            stop.set()
            cycles, spent = stats.get(timeout=30)
            proc.join(10)
    idle_pct = 100 * idle_cpu / idle_wall
    tui_pct = 100 * tui_cpu / tui_wall
    print(f"points: {len(names)} updated at 1 Hz; {cycles} writer cycles,"
          f" {1000 * spent / max(1, cycles):.1f} ms per cycle (writer process, not counted)")
    print(f"idle Textual app: {idle_cpu:.2f} s CPU in {idle_wall:.1f} s = {idle_pct:.1f} % of one core")
    print(f"TUI (overview, devices, zone detail): {tui_cpu:.2f} s CPU in {tui_wall:.1f} s"
          f" = {tui_pct:.1f} % of one core; {refreshes} refreshes"
          f" ({1000 * tui_cpu / max(1, refreshes):.1f} ms CPU per refresh)")
    for name, (cpu, n, cells) in per_screen.items():
        print(f"  {name}: {100 * cpu / (args.seconds / 3):.1f} % of one core,"
              f" {1000 * cpu / max(1, n):.1f} ms CPU per refresh ({n} refreshes),"
              f" {cells / max(1, n):.0f} table cells rendered per refresh")
    ratio = f"{tui_pct / idle_pct:.1f}x" if idle_pct >= 0.1 else "n/a (idle app under 0.1 %)"
    print(f"TUI minus idle: {tui_pct - idle_pct:.1f} % of one core; ratio TUI/idle: {ratio}")
    verdict = "OK" if tui_pct <= TARGET_PCT else "OVER"
    print(f"target <= {TARGET_PCT:g} % of one core: {verdict}")


if __name__ == "__main__":
    main()
