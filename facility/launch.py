"""``facility demo``: simulator + service + TUI on the shipped config, with a story.

Within the first minute of monitoring a newcomer sees a door-open pressure excursion, then a
particle excursion, then a gas alarm, one after another, each announced on screen as it
starts; acknowledges them in the TUI (the OS login is the operator); watches them return to
normal; and reads the pages the on-call engineer was sent (``facility pages --demo``). The
story's clock starts when the service has committed its first cycle (start-up, numba's
compilation included, takes tens of seconds on a small machine), so the three alarms never
arrive in the same instant. The demo keeps its own database under ``var/demo/`` (wiped at
each start), serves the instruments on ephemeral loopback ports, and sends pages to a small
loopback inbox instead of real pagers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from facility.config.schema import Channel, Config, EscalationLevel, Operator, Route
from facility.domain.vocab import SHARED_LOGINS
from facility.service.socket import current_login

log = logging.getLogger("facility.launch")


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of the story: ``at_s`` seconds after the first committed cycle, play
    ``scenario`` on ``target`` (a device or zone id) and announce ``text``."""

    at_s: float
    scenario: str
    target: str | None
    text: str


# The demo's story. Each alarm is detected before the next step starts, with room to spare
# on a busy machine: the door alarm waits DEMO_DOOR_GRACE_S after the door opens (about 12 s
# in); a particle alarm needs the counter's next 5 s record (20-26 s); a gas alarm follows
# the detector's next poll (about 35 s).
TIMELINE = [
    Step(2, "door-open", "MEC-LITHO",
         "1/3 door: the lithography bay's door is held open; its pressure falls and the"
         " cascade alarm follows after the door grace"),
    Step(20, "particle-excursion", "MEC-PC-01",
         "2/3 particles: counter MEC-PC-01 counts far above its limits (the next 5 s record"
         " raises the alarm)"),
    Step(34, "gas-leak", "MEC-GD-04",
         "3/3 gas: detector MEC-GD-04 in the gas room reads above its alarm set points"),
    Step(60, "normal", None,
         "back to normal: the alarms return and wait for acknowledgement (2: alarms, a:"
         " acknowledge); 6: the pages the on-call engineer was sent"),
]
DEMO_RECORD_S = 5.0  # counters record every 5 s (not 60 s) so the story fits in a minute
DEMO_DOOR_GRACE_S = 10.0  # the shipped 30 s would push the pressure alarm past the first minute
DEMO_CHANNEL = "demo-inbox"  # the demo's one paging channel: the loopback inbox
ANNOUNCE_S = 20.0  # an announcement stays on screen until about the next one


def demo_db_path(cfg: Config) -> str:
    """The demo's database: ``var/demo/facility.db`` beside the configuration."""
    return os.path.join(cfg.base_dir, "var", "demo", "facility.db")


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
        shared = login.lower() in SHARED_LOGINS  # e.g. a demo run as root
        ops = (*ops, Operator(login, f"Demo operator ({login})",
                              ("technician", "engineer", "hazmat"), shared=shared,
                              justification="the demo runs under the desktop's login"
                              if shared else ""))
    channel = Channel(id=DEMO_CHANNEL, type="webhook", url=f"{inbox_url}/pages")
    paging = dataclasses.replace(
        cfg.paging, channels=(channel,), heartbeat_url=f"{inbox_url}/heartbeat", heartbeat_s=10,
        routes=(Route(levels=(EscalationLevel(0, (DEMO_CHANNEL,)),),
                      priorities=("critical", "high", "medium")),))
    zones = tuple(dataclasses.replace(z, door_grace_s=min(z.door_grace_s, DEMO_DOOR_GRACE_S))
                  for z in cfg.zones)
    devices = tuple(dataclasses.replace(d, sample_s=DEMO_RECORD_S)
                    if d.profile == "particle-counter" else d for d in cfg.devices)
    storage = dataclasses.replace(cfg.storage, path=os.path.join(db_dir, "facility.db"))
    return dataclasses.replace(cfg, operators=ops, paging=paging, zones=zones, storage=storage,
                               devices=devices)


class Stack:
    """Simulator and service on their own event loop in a background thread.

    ``timeline`` (a list of :class:`Step`) starts when the service has committed its first
    cycle; ``on_step`` is called with each step as it is played (on the stack's thread).
    """

    def __init__(self, cfg: Config, *, simulate: bool = True, timeline=None,
                 record_s: float = DEMO_RECORD_S,
                 on_step: Callable[[Step], None] | None = None):
        self.cfg = cfg
        self.simulate = simulate
        self.timeline = timeline
        self.record_s = record_s
        self.on_step = on_step
        self.ready = threading.Event()
        self.done = threading.Event()  # the stack's thread has ended (stopped, or failed)
        self.error: BaseException | None = None
        self.db_path = cfg.db_path
        self.story_t0: float | None = None  # time.monotonic() of the first committed cycle
        self.played: list[tuple[float, Step]] = []  # (monotonic time, step), in order
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
        """Ask everything to stop and wait for it (again: a no-op)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop closed in between
                pass
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported to the starting thread
            self.error = exc
            self.ready.set()
        finally:
            self.done.set()

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
        service = Service(cfg)
        task = asyncio.create_task(service.run())
        # ``cycles`` counts cycles whose write has returned: the first one is committed
        while service.cycles == 0 and not task.done():
            await asyncio.sleep(0.1)
        if service.cycles == 0:  # the service ended before its first cycle: say why
            await task  # its exception, reported by _main
            raise RuntimeError("the service stopped before its first cycle")
        self.story_t0 = time.monotonic()
        story = (asyncio.create_task(self._story(sim, self.story_t0))
                 if sim is not None and self.timeline else None)
        self.ready.set()
        await asyncio.wait([task, asyncio.create_task(self._stop.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        if story is not None:
            story.cancel()
        service.stopping.set()
        await task
        if sim is not None:
            await sim.stop()

    async def _story(self, sim, t0: float) -> None:
        """Play the timeline against the simulator, ``at_s`` after ``t0``."""
        for step in sorted(self.timeline, key=lambda st: st.at_s):
            delay = t0 + step.at_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sim.set_scenario(step.scenario, step.target)
            self.played.append((time.monotonic(), step))
            log.info("demo story at %.0f s: %s", time.monotonic() - t0, step.text)
            if self.on_step is not None:
                try:
                    self.on_step(step)
                except Exception:  # noqa: BLE001 - an announcement never stops the story
                    log.exception("announcing a demo step failed")


class Announcer:
    """Shows each step of the story in the TUI's notification area (a toast that stays
    about until the next step), or prints it when there is no TUI.

    Steps may start before the TUI is up: they wait in a queue, and a daemon thread hands
    them to the app once it runs (``App.call_from_thread`` needs a running app).
    """

    def __init__(self):
        self.app = None
        self._queue: queue.Queue[Step | None] = queue.Queue()
        self._closed = threading.Event()

    def __call__(self, step: Step) -> None:
        if self.app is None:
            print(f"{time.strftime('%H:%M:%S')} demo {step.text}", flush=True)
        else:
            self._queue.put(step)

    def attach(self, app) -> None:
        """Announce in ``app`` from now on (steps queued before it runs are kept)."""
        self.app = app
        threading.Thread(target=self._deliver, name="announcer", daemon=True).start()

    def close(self) -> None:
        """Stop delivering."""
        self._closed.set()
        self._queue.put(None)

    def _deliver(self) -> None:
        app = self.app
        while True:
            step = self._queue.get()
            if step is None:
                return
            while not app.is_running:  # not up yet: wait (the queue keeps the order)
                if self._closed.wait(0.2):
                    return
            try:
                app.call_from_thread(app.notify, step.text, title="demo",
                                     severity="warning" if step.scenario != "normal"
                                     else "information", timeout=ANNOUNCE_S, markup=False)
            except RuntimeError:  # the app has stopped
                return


QUIET = {"apscheduler": logging.WARNING, "asyncio": logging.WARNING,
         # pymodbus logs each frame (hex) at DEBUG and each timeout at ERROR; the poller
         # reports failures itself, once per failure (sensors/modbus.py), so by default only
         # its CRITICAL lines pass. --verbose shows the protocol for commissioning.
         "pymodbus": logging.CRITICAL}


def configure_logging(path: str | None = None, *, verbose: bool = False) -> None:
    """The log of ``facility run`` and ``facility demo``: to ``path`` (under a TUI the screen
    belongs to the TUI) or to stderr; INFO and up, without protocol dumps, unless
    ``verbose`` (DEBUG everywhere, pymodbus's frames included)."""
    target = {"filename": path} if path else {"stream": sys.stderr}
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", **target)
    for name, level in QUIET.items():
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else level)


def run_demo(cfg: Config, *, seconds: float = 0.0, headless: bool = False,
             verbose: bool = False) -> None:
    """Run the demo until ``q`` in the TUI (or for ``seconds``, or Ctrl-C when headless)."""
    db_dir = os.path.dirname(demo_db_path(cfg))
    shutil.rmtree(db_dir, ignore_errors=True)
    os.makedirs(db_dir, exist_ok=True)
    inbox = Inbox()
    dcfg = demo_config(cfg, inbox.url, db_dir)
    configure_logging(os.path.join(db_dir, "demo.log"), verbose=verbose)
    print(f"starting the demo: {len(dcfg.devices)} simulated instruments, database {dcfg.db_path}"
          f" (log: {db_dir}/demo.log); the story starts with the first monitoring cycle ...",
          file=sys.stderr)
    announce = Announcer()
    app = None
    if not headless:
        from tui.demo import make_demo_app

        app = make_demo_app(dcfg, dcfg.db_path)
        announce.attach(app)
    stack = Stack(dcfg, timeline=TIMELINE, on_step=announce)
    stack.start()
    try:
        if app is None:
            _headless(dcfg, inbox, seconds)
        else:
            if seconds:
                threading.Timer(seconds, lambda: app.call_from_thread(app.exit)).start()
            app.run()
    finally:
        announce.close()
        stack.stop()
        inbox.close()
    where = "" if os.path.abspath(cfg.source) == os.path.abspath("config.toml") else \
        f" --config {cfg.source}"
    print(f"demo stopped; {len(inbox.pages)} pages were sent to the demo inbox (list them with"
          f" `facility pages --demo{where}`)", file=sys.stderr)


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


def run_with_tui(cfg: Config, *, verbose: bool = False) -> None:
    """``facility run`` without --headless: the service in the background, the TUI in front;
    the log goes to ``service.log`` beside the database."""
    from tui.app import make_app

    db_dir = os.path.dirname(cfg.db_path)
    os.makedirs(db_dir, exist_ok=True)
    configure_logging(os.path.join(db_dir, "service.log"), verbose=verbose)
    stack = Stack(cfg, simulate=False)
    stack.start()
    try:  # the service lives in this process: q asks before it stops it (tui/app.py)
        make_app(cfg, cfg.db_path, stop_service=stack.stop).run()
    finally:
        stack.stop()
