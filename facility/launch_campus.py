"""``facility demo --campus``: the campus of docs/ARCHITECTURE.md "Campus (Sparkplug B)" on one
machine, with simulated instruments.

The processes are those of a real campus:

* **mosquitto** on a free loopback port, anonymous, its configuration and log under
  ``var/demo-campus/broker/`` (the production broker's logins, ACL and TLS are
  ``deploy/mosquitto/``);
* **one process per site** (``deploy/campus/mec.toml``, ``mars.toml``): its simulator on
  ephemeral loopback ports, its service (the demo's settings: ``facility.launch.demo_config``)
  and its uplink (:class:`~facility.campus.uplink.Uplink`, the code of ``facility uplink``),
  which waits for central's STATE before its birth;
* **central** (:class:`~facility.campus.central.Central`, the code of ``facility central``,
  ``deploy/campus/central.toml``) in this process, with the TUI in front, or with a line per
  event (a site online or offline, cycles mirrored, alarm changes) under ``--headless``.

Everything the demo writes lives under ``var/demo-campus/`` beside the configuration (wiped
at each start; a second demo on the same folder is refused while one runs). The children run
in their own sessions, so a Ctrl-C in the terminal reaches only this process, which stops
them in order: the sites first (each uplink publishes its NDEATH, then its service stops),
then central (offline STATE), then the broker. Should this process die first, the kernel
sends each child SIGTERM (``PR_SET_PDEATHSIG``), so no child outlives the demo.

A site process is this module run as ``python -m facility.launch_campus SPEC`` (a JSON object:
its configuration file, folder, broker port, the pages inbox and the parent's pid).
"""

from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from facility.config import load_config
from facility.config.schema import BrokerCfg, Config
from facility.domain.errors import RuntimeFailure, UsageError
from facility.launch import DEMO_RECORD_S, TIMELINE, Inbox, Stack, Step, configure_logging

log = logging.getLogger("facility.launch.campus")

CAMPUS_DIR = os.path.join("deploy", "campus")
CENTRAL_FILE = "central.toml"
WORK_DIR = os.path.join("var", "demo-campus")
START_S = 180.0  # every site's first cycle mirrored by then (numba's cache load included)
STOP_S = 30.0  # a child still running this long after SIGTERM is killed
SUMMARY_S = 10.0  # headless: a "cycles mirrored" line this often
KEEPALIVE_S = 5.0  # the demo broker notices a vanished site after 1.5 x this
INSTALL_HINT = ("the campus demo needs the MQTT broker mosquitto, which is not installed;"
                " install it with `apt-get install mosquitto` (Debian/Ubuntu)")

STORIES: dict[str, list[Step]] = {
    "MEC": TIMELINE,  # the single-machine demo's story: door, particles, gas
    "MARS": [
        Step(10, "particle-excursion", "MARS-PC-08",
             "particles: counter MARS-PC-08 on mask line 1 counts above its limits"),
        Step(50, "normal", None, "back to normal: MARS returns to its limits"),
    ],
}
"""Each site's demo story (``facility.launch.Step``), from its first committed cycle."""

_PR_SET_PDEATHSIG = 1


class CampusError(RuntimeFailure):
    """The campus demo cannot run or lost a part of itself (exit code 3)."""


def _die_with_parent(parent: int | None = None) -> None:
    """Ask the kernel for SIGTERM when the parent dies (Linux ``prctl``); when the parent is
    already gone (``parent`` given and no longer ours), leave now."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's stop is the only guard
        return
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_path() -> str | None:
    """The mosquitto executable (PATH, or Debian's /usr/sbin outside root's PATH)."""
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)


class Broker:
    """mosquitto on a free loopback port, anonymous, persistence off, logging to a file."""

    def __init__(self, folder: str, exe: str):
        self.folder, self.exe = folder, exe
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(folder, "mosquitto.log")

    def _write_conf(self) -> str:
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false",
                 f"log_dest file {self.log_path}", "log_type error", "log_type warning",
                 "log_type notice", "max_queued_messages 100000"]
        if os.geteuid() == 0:  # as root mosquitto drops to user mosquitto, unless told to stay
            lines.append("user root")
        path = os.path.join(self.folder, "mosquitto.conf")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        return path

    def start(self, deadline_s: float = 30.0, tries: int = 5) -> None:
        """Start and wait until it accepts connections; a port taken between choosing it and
        binding it is chosen again."""
        os.makedirs(self.folder, exist_ok=True)
        why = ""
        for _ in range(tries):
            self.port = _free_port()
            conf = self._write_conf()
            with open(os.path.join(self.folder, "stderr.log"), "ab") as err:
                self.proc = subprocess.Popen([self.exe, "-c", conf], stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=err,
                                             start_new_session=True, preexec_fn=_die_with_parent)
            end = time.monotonic() + deadline_s
            while time.monotonic() < end and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return
                except OSError:
                    time.sleep(0.05)
            why = f"exit code {self.proc.poll()}" if self.proc.poll() is not None else \
                f"not listening after {deadline_s:g} s"
            self.stop()
        raise CampusError(f"mosquitto did not start ({why}); see {self.log_path}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            _end(self.proc)
            self.proc = None


def _end(proc: subprocess.Popen, timeout_s: float = STOP_S) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclasses.dataclass
class SiteProcess:
    """One site's process: simulator, service and uplink."""

    id: str
    config: str
    folder: str
    devices: int
    proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> str:
        return os.path.join(self.folder, "site.log")

    def start(self, broker_port: int, inbox_url: str, verbose: bool) -> None:
        os.makedirs(self.folder, exist_ok=True)
        spec = {"config": self.config, "dir": self.folder, "broker_port": broker_port,
                "inbox": inbox_url, "verbose": verbose, "parent": os.getpid()}
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "facility.launch_campus", json.dumps(spec)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def died(self) -> str | None:
        """Why the process is no longer running (its exit code and last line), or None."""
        if self.proc is None or self.proc.poll() is None:
            return None
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                last = [ln.strip() for ln in fh if ln.strip()][-1:]
        except OSError:
            last = []
        return (f"site {self.id} stopped (exit code {self.proc.returncode})"
                + (f": {last[0]}" if last else "") + f"; see {self.log_path}")


def central_file(root: str) -> str:
    """``root/deploy/campus/central.toml``; the sites' files lie beside it, each named after
    its site (``MEC`` -> ``mec.toml``)."""
    path = os.path.join(root, CAMPUS_DIR, CENTRAL_FILE)
    if not os.path.isfile(path):
        raise UsageError(f"{path}: not found; the campus demo runs the configurations of"
                         f" {CAMPUS_DIR}/ beside {os.path.join(root, 'config.toml')}")
    return path


def _site_configs(central_cfg: Config, folder: str) -> dict[str, Config]:
    """Each mirrored site's configuration, whose ``[uplink] node_id`` must be the edge node
    central expects."""
    from facility.campus.uplink import edge_ids

    sites: dict[str, Config] = {}
    for s in central_cfg.central.sites:
        path = os.path.join(folder, f"{s.id.lower()}.toml")
        if not os.path.isfile(path):
            raise UsageError(f"{central_cfg.source}: central mirrors site {s.id}, but {path}"
                             " (its configuration) is missing")
        cfg = load_config(path)
        node = edge_ids(cfg)[1]
        if node != s.node_id:
            raise UsageError(f"{path}: [uplink] node_id is {node!r}, but {central_cfg.source}"
                             f" expects edge node {s.node_id!r} for site {s.id}")
        sites[s.id] = cfg
    if not sites:
        raise UsageError(f"{central_cfg.source}: [central] lists no sites; add [[central.sites]]")
    return sites


def central_demo_config(cfg: Config, folder: str, broker_port: int) -> Config:
    """Central's configuration for the demo: its database and mirrors under ``folder``, the
    demo broker."""
    storage = dataclasses.replace(cfg.storage, path=os.path.join(folder, "central.db"))
    c = dataclasses.replace(
        cfg.central, broker=BrokerCfg(host="127.0.0.1", port=broker_port, keepalive_s=KEEPALIVE_S),
        sites=tuple(dataclasses.replace(s, path="") for s in cfg.central.sites))
    return dataclasses.replace(cfg, storage=storage, central=c)


class _Lock:
    """One campus demo per folder: an exclusive ``flock`` on ``<work>/campus.lock``."""

    def __init__(self, work: str):
        self.work = work
        self.fh = None

    def acquire(self) -> None:
        path = os.path.join(self.work, "campus.lock")
        if os.path.exists(path):  # a demo already running here holds it: refuse, wipe nothing
            with open(path, "a") as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    raise CampusError(f"another campus demo is running in {self.work}; stop it"
                                      " first (q, or Ctrl-C)") from None
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work, exist_ok=True)
        self.fh = open(path, "a")  # noqa: SIM115 - held for the demo's life
        fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


class Campus:
    """The whole campus demo: broker, sites, central; :meth:`stop` ends every part."""

    def __init__(self, root: str, *, verbose: bool = False):
        self.root = os.path.abspath(root)
        self.work = os.path.join(self.root, WORK_DIR)
        self.verbose = verbose
        central_path = central_file(self.root)
        self.central_base = load_config(central_path)
        self.site_cfgs = _site_configs(self.central_base, os.path.dirname(central_path))
        self.sites = [SiteProcess(sid, cfg.source, os.path.join(self.work, sid), len(cfg.devices))
                      for sid, cfg in self.site_cfgs.items()]
        self.exe = mosquitto_path()
        if self.exe is None:
            raise CampusError(INSTALL_HINT)
        self.lock = _Lock(self.work)
        self.broker: Broker | None = None
        self.inbox: Inbox | None = None
        self.central = None
        self.central_cfg: Config | None = None
        self._central_thread: threading.Thread | None = None
        self.central_error: BaseException | None = None

    # -- start --------------------------------------------------------------------------------
    def start(self) -> None:
        """Broker, central, then the sites; returns once every site's first cycle is mirrored
        (or raises CampusError naming the part that failed)."""
        from facility.campus.central import Central
        from facility.store import Store

        if self.lock.fh is None:
            self.lock.acquire()
        configure_logging(os.path.join(self.work, "central.log"), verbose=self.verbose)
        self.broker = Broker(os.path.join(self.work, "broker"), self.exe)
        self.broker.start()
        self.inbox = Inbox()  # every site pages this loopback inbox, not real pagers
        self.central_cfg = central_demo_config(self.central_base, os.path.join(self.work, "central"),
                                               self.broker.port)
        os.makedirs(os.path.dirname(self.central_cfg.db_path), exist_ok=True)
        Store(self.central_cfg.db_path).close()  # central's own (empty) database, for the TUI
        self.central = Central(self.central_cfg)
        self._central_thread = threading.Thread(target=self._run_central, name="central",
                                                daemon=True)
        self._central_thread.start()
        for site in self.sites:
            site.start(self.broker.port, self.inbox.url, self.verbose)
        self.wait_mirrored()

    def _run_central(self) -> None:
        try:
            self.central.run()
        except Exception as exc:  # noqa: BLE001 - reported by check(), then the demo stops
            log.exception("central stopped")
            self.central_error = exc

    def check(self) -> None:
        """Raise CampusError when a part of the campus is no longer running."""
        if self.broker is None or not self.broker.alive():
            raise CampusError("mosquitto stopped; see "
                              + (self.broker.log_path if self.broker else self.work))
        if self.central_error is not None or (self._central_thread is not None
                                              and not self._central_thread.is_alive()):
            raise CampusError(f"central stopped: {self.central_error}; see"
                              f" {os.path.join(self.work, 'central.log')}")
        for site in self.sites:
            why = site.died()
            if why:
                raise CampusError(why)

    def mirrors(self) -> dict[str, object]:
        """Central's mirror of each site, by site id."""
        return {m.site.id: m for m in self.central.mirrors.values()} if self.central else {}

    def cycles(self) -> dict[str, int]:
        """Edge cycles mirrored so far, by site id."""
        return {sid: len(m.received) for sid, m in self.mirrors().items()}

    def wait_mirrored(self, deadline_s: float = START_S) -> None:
        end = time.monotonic() + deadline_s
        while True:
            self.check()
            waiting = [sid for sid, n in self.cycles().items() if n == 0]
            if not waiting:
                return
            if time.monotonic() > end:
                raise CampusError(f"no cycle of {', '.join(waiting)} reached central within"
                                  f" {deadline_s:g} s; see the site logs under {self.work}")
            time.sleep(0.2)

    # -- stop ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """Sites first (NDEATH, then their services stop), then central, then the broker."""
        for site in self.sites:
            if site.proc is not None and site.proc.poll() is None:
                site.proc.terminate()
        for site in self.sites:
            if site.proc is not None:
                _end(site.proc)
        if self.central is not None:
            self.central.stop()
            if self._central_thread is not None:
                self._central_thread.join(STOP_S)
        if self.broker is not None:
            self.broker.stop()
        if self.inbox is not None:
            self.inbox.close()
            self.inbox = None
        self.lock.release()


def run_campus_demo(root: str, *, seconds: float = 0.0, headless: bool = False,
                    verbose: bool = False) -> None:
    """Run the campus demo of ``root/deploy/campus/`` until ``q`` in the TUI, or (headless)
    for ``seconds`` after every site is mirrored, or until Ctrl-C."""
    if seconds and not headless:
        raise UsageError("--seconds with --campus needs --headless (the campus console stops"
                         " on q)")
    campus = Campus(root, verbose=verbose)
    campus.lock.acquire()  # refused here, before anything is started or wiped
    where = os.path.relpath(campus.work)
    print("starting the campus demo: mosquitto, sites "
          + ", ".join(f"{s.id} ({s.devices} simulated instruments)" for s in campus.sites)
          + f" with their uplinks, and central; everything under {where}/ ...", file=sys.stderr)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a kill stops the children too
    try:
        campus.start()
        print(f"campus online: {', '.join(campus.cycles())} mirrored by central (broker"
              f" 127.0.0.1:{campus.broker.port})", file=sys.stderr)
        if headless:
            _headless(campus, seconds)
        else:
            from tui.app import run_tui

            signal.signal(signal.SIGTERM, previous)  # the screen is the TUI's until q
            run_tui(campus.central_cfg, campus.central_cfg.db_path)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        counts = campus.cycles()
        pages = len(campus.inbox.pages) if campus.inbox is not None else 0
        campus.stop()
    print(f"campus demo stopped; cycles mirrored into {os.path.join(where, 'central', 'mirror')}/: "
          + ", ".join(f"{sid} {n}" for sid, n in counts.items())
          + f"; the sites sent {pages} pages to the demo inbox", file=sys.stderr)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def _headless(campus: Campus, seconds: float) -> None:
    """A line per site going online or offline, per alarm change in a mirror, and the cycles
    mirrored every SUMMARY_S, until ``seconds`` (0: Ctrl-C)."""
    from facility.store import Store, StoreError

    online: dict[str, bool] = {}
    seen: dict[tuple[str, str], str] = {}
    end = time.monotonic() + seconds if seconds else None
    summary_at = time.monotonic()
    while end is None or time.monotonic() < end:
        campus.check()
        for sid, m in campus.mirrors().items():
            if online.get(sid) != m.online:
                online[sid] = m.online
                print(f"{_stamp()} site {sid} {'online' if m.online else 'offline'}"
                      f" (edge node {m.group}/{m.site.node_id})", flush=True)
            if not os.path.exists(m.path):
                continue
            try:
                with Store(m.path, readonly=True) as store:
                    rows = store.alarms()
            except StoreError:
                continue  # the mirror is being created: next time
            for r in rows:
                label = f"{r['state']}#{r['occurrence']}"
                if r["occurrence"] and seen.get((sid, r["id"])) != label and r["state"] != "DSUPR":
                    seen[(sid, r["id"])] = label
                    print(f"{_stamp()} {sid:<5} {r['state']:<5} {r['priority']:<8}"
                          f" {r['id']}#{r['occurrence']}", flush=True)
        if time.monotonic() >= summary_at:
            summary_at = time.monotonic() + SUMMARY_S
            print(f"{_stamp()} cycles mirrored: " + ", ".join(
                f"{sid} {n}" for sid, n in campus.cycles().items()), flush=True)
        time.sleep(1.0)


# -- the site process -------------------------------------------------------------------------
def site_main(argv: list[str]) -> int:
    """One site of the campus demo: simulator, service and uplink until SIGTERM."""
    from facility.campus.uplink import Uplink
    from facility.launch import demo_config

    spec = json.loads(argv[0])
    _die_with_parent(int(spec["parent"]))
    folder = spec["dir"]
    configure_logging(os.path.join(folder, "site.log"), verbose=bool(spec.get("verbose")))
    stopping = threading.Event()
    running: list = []  # the uplink, once it runs

    def on_signal(signum, frame):
        if stopping.is_set():
            return
        stopping.set()
        if running:
            running[0].stop()  # its run() ends the session (NDEATH) and returns
        else:
            raise KeyboardInterrupt  # leaves the start-up wait

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stack = None
    try:
        cfg = load_config(spec["config"])
        dcfg = demo_config(cfg, spec["inbox"], folder)
        broker = BrokerCfg(host="127.0.0.1", port=int(spec["broker_port"]),
                           keepalive_s=KEEPALIVE_S)
        dcfg = dataclasses.replace(dcfg, uplink=dataclasses.replace(dcfg.uplink, broker=broker))
        site = dcfg.sites[0].id if dcfg.sites else dcfg.facility.id
        stack = Stack(dcfg, timeline=STORIES.get(site), record_s=DEMO_RECORD_S)
        stack.start()
        log.info("site %s: service running; uplink to 127.0.0.1:%s", site, broker.port)
        up = Uplink(dcfg)
        running.append(up)

        def watch() -> None:  # a service that ends on its own ends the site
            stack.done.wait()
            if not stopping.is_set():
                up.stop()
        threading.Thread(target=watch, name="site-watch", daemon=True).start()
        if not stopping.is_set():
            up.run()
        if not stopping.is_set():  # the service ended, not the demo
            why = stack.error or "it stopped on its own"
            log.error("site %s: service ended: %s", site, why)
            print(f"site error: the service ended: {why}", file=sys.stderr, flush=True)
            return 3
        return 0
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # noqa: BLE001 - one line for the launcher, which names the log
        log.exception("site stopped")
        print(f"site error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 3
    finally:
        if stack is not None:
            stack.stop()


if __name__ == "__main__":
    sys.exit(site_main(sys.argv[1:]))
