"""``facility demo``: simulator + service + TUI on the shipped config, with a story.

Within the first minute a newcomer sees a door-open pressure excursion, a particle
excursion and a gas alarm; acknowledges them in the TUI (the OS login is the operator);
and watches them return to normal. The demo keeps its own database under ``var/demo/``
(wiped at each start), serves the instruments on ephemeral loopback ports, and sends
pages to a small loopback inbox instead of real pagers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from facility.config.schema import Channel, Config, EscalationLevel, Operator, Route
from facility.service.socket import current_login

log = logging.getLogger("facility.launch")

# (seconds from start, scenario, device or zone): the demo's story.
TIMELINE = [
    (8, "door-open", "MEC-LITHO"),
    (14, "particle-excursion", "MEC-PC-01"),
    (22, "gas-leak", "MEC-GD-04"),
    (50, "normal", None),
]
DEMO_RECORD_S = 5.0  # counters record every 5 s (not 60 s) so the story fits in a minute
DEMO_DOOR_GRACE_S = 10.0  # the shipped 30 s would push the pressure alarm past the first minute


class Inbox:
    """A loopback HTTP receiver standing in for the pager (POST) and the dead-man's switch
    (GET); it keeps each page with its arrival time (``time.monotonic()``)."""

    def __init__(self):
        self.received: list[tuple[float, dict]] = []
        self.beats: list[float] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                inbox.beats.append(time.monotonic())
                self.send_response(200)
                self.end_headers()

            def do_POST(self):  # noqa: N802
                t = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    inbox.received.append((t, json.loads(body or b"{}")))
                except ValueError:
                    pass
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def pages(self) -> list[dict]:
        """The pages received, in order."""
        return [p for _, p in self.received]

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()


def demo_config(cfg: Config, inbox_url: str, db_dir: str) -> Config:
    """The shipped config with a demo database, the current login as operator, pages to
    the inbox, and a shorter door grace so the story fits in a minute."""
    login = current_login()
    ops = cfg.operators
    if login not in {o.login for o in ops}:
        ops = (*ops, Operator(login, f"Demo operator ({login})",
                              ("technician", "engineer", "hazmat")))
    channel = Channel(id="demo-inbox", type="webhook", url=f"{inbox_url}/pages")
    paging = dataclasses.replace(
        cfg.paging, channels=(channel,), heartbeat_url=f"{inbox_url}/heartbeat", heartbeat_s=10,
        routes=(Route(levels=(EscalationLevel(0, ("demo-inbox",)),),
                      priorities=("critical", "high", "medium")),))
    zones = tuple(dataclasses.replace(z, door_grace_s=min(z.door_grace_s, DEMO_DOOR_GRACE_S))
                  for z in cfg.zones)
    devices = tuple(dataclasses.replace(d, sample_s=DEMO_RECORD_S)
                    if d.profile == "particle-counter" else d for d in cfg.devices)
    storage = dataclasses.replace(cfg.storage, path=os.path.join(db_dir, "facility.db"))
    return dataclasses.replace(cfg, operators=ops, paging=paging, zones=zones, storage=storage,
                               devices=devices)


class Stack:
    """Simulator and service on their own event loop in a background thread."""

    def __init__(self, cfg: Config, *, simulate: bool = True, timeline=None,
                 record_s: float = DEMO_RECORD_S):
        self.cfg = cfg
        self.simulate = simulate
        self.timeline = timeline
        self.record_s = record_s
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.db_path = cfg.db_path
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="stack", daemon=True)

    def start(self, timeout_s: float = 120.0) -> None:
        """Start and wait until the service has written its first cycle."""
        self._thread.start()
        if not self.ready.wait(timeout_s) and self.error is None:
            raise RuntimeError(f"the service did not start within {timeout_s:g} s")
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Ask everything to stop and wait for it."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported to the starting thread
            self.error = exc
            self.ready.set()

    async def _run(self) -> None:
        from facility.service.service import Service

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        sim = None
        cfg = self.cfg
        if self.simulate:
            from sensors.simulator import Simulator

            sim = Simulator(cfg, ephemeral=True, record_s=self.record_s)
            await sim.start()
            cfg = sim.client_config(cfg)
            if self.timeline:
                sim.schedule(self.timeline)
        service = Service(cfg)
        task = asyncio.create_task(service.run())
        while service.cycles == 0 and not task.done():
            await asyncio.sleep(0.1)
        self.ready.set()
        await asyncio.wait([task, asyncio.create_task(self._stop.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        service.stopping.set()
        await task
        if sim is not None:
            await sim.stop()


def _quiet_logs(path: str) -> None:
    """Under the TUI, logs go to a file (the screen belongs to the TUI)."""
    logging.basicConfig(level=logging.INFO, filename=path,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("apscheduler", "pymodbus", "asyncio"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run_demo(cfg: Config, *, seconds: float = 0.0, headless: bool = False) -> None:
    """Run the demo until ``q`` in the TUI (or for ``seconds``, or Ctrl-C when headless)."""
    db_dir = os.path.join(cfg.base_dir, "var", "demo")
    shutil.rmtree(db_dir, ignore_errors=True)
    os.makedirs(db_dir, exist_ok=True)
    inbox = Inbox()
    dcfg = demo_config(cfg, inbox.url, db_dir)
    _quiet_logs(os.path.join(db_dir, "demo.log"))
    print(f"starting the demo: {len(dcfg.devices)} simulated instruments, database {dcfg.db_path}"
          f" (log: {db_dir}/demo.log) ...", file=sys.stderr)
    stack = Stack(dcfg, timeline=TIMELINE)
    stack.start()
    try:
        if headless:
            _headless(dcfg, inbox, seconds)
        else:
            from tui.app import make_app

            app = make_app(dcfg, dcfg.db_path)
            if seconds:
                threading.Timer(seconds, lambda: app.call_from_thread(app.exit)).start()
            app.run()
    finally:
        stack.stop()
        inbox.close()
    print(f"demo stopped; {len(inbox.pages)} pages were sent to the demo inbox", file=sys.stderr)


def _headless(cfg: Config, inbox: Inbox, seconds: float) -> None:
    """Print alarm state changes as they happen (no TUI)."""
    from facility.store import Store

    seen: dict[str, str] = {}
    end = time.monotonic() + seconds if seconds else None
    try:
        while end is None or time.monotonic() < end:
            with Store(cfg.db_path, readonly=True) as store:
                rows = store.alarms()
            for r in rows:
                label = f"{r['state']}#{r['occurrence']}"
                if r["occurrence"] and seen.get(r["id"]) != label and r["state"] != "DSUPR":
                    seen[r["id"]] = label
                    print(f"{time.strftime('%H:%M:%S')} {r['state']:<5} {r['priority']:<8} "
                          f"{r['id']}#{r['occurrence']}", flush=True)
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass


def run_with_tui(cfg: Config) -> None:
    """``facility run`` without --headless: the service in the background, the TUI in front."""
    from tui.app import make_app

    db_dir = os.path.dirname(cfg.db_path)
    os.makedirs(db_dir, exist_ok=True)
    _quiet_logs(os.path.join(db_dir, "service.log"))
    stack = Stack(cfg, simulate=False)
    stack.start()
    try:
        make_app(cfg, cfg.db_path).run()
    finally:
        stack.stop()
