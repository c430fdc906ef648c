"""The monitoring service: pollers -> engine -> lifecycle -> store -> paging, 24/7.

docs/ARCHITECTURE.md "Data flow": one service per database (an exclusive lock beside it); each cycle
the engine runs once over the batch, lifecycle transitions are applied, and samples +
events + audit rows are written in one transaction by a single writer thread (so SQLite
never blocks the event loop). Kernels are compiled before polling starts. Operator
actions arrive over the Unix socket (``facility.service.socket``) and are applied on the event
loop, then written before the reply. On restart every alarm state and the engine state
come back from the database: nothing is forgotten, nothing is re-raised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import signal
import time

import numpy as np

from alarms.dispatcher import Dispatcher
from alarms.engine import Engine, Rule, warm_up
from alarms.lifecycle import Event, mode_suppressed
from alarms.outbox import OUTBOX_MIGRATIONS, OUTBOX_NAMESPACE
from alarms.paging import Pager
from alarms.paging_channels import send_heartbeat
from alarms.stale import StaleTracker
from facility.catalogue import Catalogue, build_catalogue
from facility.config.schema import Config
from facility.domain.model import Sample, now_ms
from facility.service.alarm_book import AlarmBook, AlarmMeta, meta_of
from facility.service.calibration import CalibrationWatch
from facility.service.derive import Deriver, HazmatProbe
from facility.service.health import HealthProbe, ServiceLock, sd_notify
from facility.service.operator_actions import ActionContext, ActionHandler
from facility.service.socket import ActionServer, socket_path
from facility.store import Cycle, Store
from facility.store.errors import StoreFull
from facility.store.keys import audit_key, signing_key
from facility.store.witness import append_checkpoint, witness_path
from hazmat import ledger
from hazmat.commands import book as book_movement

log = logging.getLogger("facility.service.service")
ENGINE_SAVE_EVERY = 10  # cycles; alarm rows are authoritative for "active" on restore
DISPATCHER_STOP_S = 15.0  # at stop, how long the dispatcher may finish its deliveries
WITNESS_S = 60.0  # how often the chain head is checkpointed to the witness file
BUFFER_CYCLES = 3600
"""Cycles held in memory while the store is full (docs/ARCHITECTURE.md "Disk full"): one hour at
the default 1 s cycle; beyond it the oldest are dropped and a gap record says how many."""
RETRY_MAX_S = 30.0  # backoff ceiling between write attempts while the store is full


class HeldCycles:
    """Cycles not yet written because the store is full, written in order when space returns.

    ``write`` is called on the writer thread with each new cycle: held cycles go first, and a
    full store keeps the new one too (at most ``limit``; the oldest beyond are dropped and
    counted). Attempts back off from one cycle to ``RETRY_MAX_S``. The first write after a
    drop carries an audited ``store_gap`` row with the time range and counts lost.
    """

    def __init__(self, store: Store, limit: int = BUFFER_CYCLES):
        self.store, self.limit = store, limit
        self.held: list[Cycle] = []
        self.lost = {"cycles": 0, "samples": 0, "events": 0, "from_ms": None, "to_ms": None}
        self._wait_s, self._next_try = 0.0, 0.0

    def __len__(self) -> int:
        return len(self.held)

    def write(self, cycle: Cycle) -> bool:
        """Write held cycles then ``cycle``; True when everything pending is stored."""
        self.held.append(cycle)
        while len(self.held) > self.limit:
            self._drop(self.held.pop(0))
        if time.monotonic() < self._next_try:
            return False
        while self.held:
            head = self.held[0]
            if self.lost["cycles"]:
                head.audit.append(self._gap_row())
            try:
                self.store.write_cycle(head)
            except StoreFull as exc:
                if self.lost["cycles"]:
                    head.audit.pop()
                self._wait_s = min(RETRY_MAX_S, max(1.0, 2 * self._wait_s))
                self._next_try = time.monotonic() + self._wait_s
                log.error("store full, %d cycle(s) held, next try in %.0f s: %s",
                          len(self.held), self._wait_s, exc)
                return False
            self.held.pop(0)
            self.lost = {"cycles": 0, "samples": 0, "events": 0, "from_ms": None, "to_ms": None}
        self._wait_s, self._next_try = 0.0, 0.0
        return True

    def _drop(self, cycle: Cycle) -> None:
        lost = self.lost
        ts = [s.ts_ms for s in cycle.samples]
        lost["cycles"] += 1
        lost["samples"] += len(cycle.samples)
        lost["events"] += len(cycle.events)
        if ts:
            lost["from_ms"] = min(ts) if lost["from_ms"] is None else min(lost["from_ms"], min(ts))
            lost["to_ms"] = max(ts) if lost["to_ms"] is None else max(lost["to_ms"], max(ts))

    def _gap_row(self) -> dict:
        n = self.lost
        return {"action": "store_gap", "actor": "service", "subject": "system",
                "reason": (f"store full: {n['cycles']} cycle(s) with {n['samples']} sample(s)"
                           f" and {n['events']} event(s) were not stored (buffer of {self.limit}"
                           " cycles exhausted)"),
                "details": dict(n)}


class Service:
    """One running service over one database."""

    def __init__(self, cfg: Config, *, cycle_s: float = 1.0, poller_factory=None):
        self.cfg = cfg
        self.cycle_s = cycle_s
        self.db_path = cfg.db_path
        self.cat: Catalogue = build_catalogue(cfg, cycle_s=cycle_s)
        self._point_info = {p.id: p for p in self.cat.points}
        self._poller_factory = poller_factory
        self._queue: list[Sample] = []
        # The store's connection lives on this one thread: every SQLite call goes through it,
        # and what crosses to it is plain data (a Cycle, a PageBatch), never live state.
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self.store: Store | None = None
        self.signing_key = None  # Ed25519, loaded (created on first start) by _open_store
        self.witnessed: dict | None = None  # the last witness checkpoint (for the heartbeat)
        self.cycles = 0
        self.stopping = asyncio.Event()
        self._lock = ServiceLock(self.db_path)
        # set by start(); stop() closes whichever of them exist
        self.poller = None
        self.server: ActionServer | None = None
        self.dispatcher: Dispatcher | None = None
        self._tasks: list[asyncio.Task] = []
        self._build_engine()

    # -- set-up -----------------------------------------------------------------------
    def _build_engine(self) -> None:
        index = {p.id: i for i, p in enumerate(self.cat.points)}
        self.point_index = index
        self.point_device = {p.id: p.device for p in self.cat.points}
        rules = [Rule(point=index[r.point], kind=r.side, limit=r.limit, deadband=r.deadband,
                      on_delay_s=r.on_delay_s, off_delay_s=r.off_delay_s, m_of_n=r.m_of_n,
                      max_gap_s=r.max_gap_s) for r in self.cat.rules]
        self.engine = Engine(rules, keys=[r.key for r in self.cat.rules])
        metas: dict[str, AlarmMeta] = {}
        for r in self.cat.rules:
            metas[r.alarm_id] = meta_of(r, self.point_device.get(r.point))
        # Stale alarms (docs/ARCHITECTURE.md "Stale"): one slot of the alarms.stale kernel per point,
        # -1 for the points that have none; the clocks start with polling (first cycle).
        self.stale_points = self.cat.stale_points()
        self._stale_ids = list(self.stale_points)
        self._stale_slot = np.full(len(self.cat.points), -1, dtype=np.int64)
        for k, pid in enumerate(self._stale_ids):
            self._stale_slot[index[pid]] = k
        self.stale = StaleTracker(np.array([self.stale_points[pid] for pid in self._stale_ids],
                                           dtype=np.float64))
        self._stale_started = False
        for pid in self.stale_points:
            dev = self.point_device[pid]
            metas[f"{pid}:stale"] = AlarmMeta(
                f"{pid}:stale", pid, self._zone_of(pid), self._site_of(pid), None,
                f"no good reading for stale_after_s={self.stale_points[pid]:g} s",
                self.cfg.alarms.priorities.get("stale", "low"),
                False, "stale", None, dev)
        # Calibration alarms (docs/ARCHITECTURE.md "Calibration tracking"): one per device
        # with a calibration_due, evaluated on the first cycle and then once a day.
        self.calibration = CalibrationWatch(self.cfg)
        metas.update(self.calibration.metas())
        self.metas = metas
        self._zones = {z.id: z for z in self.cfg.zones}
        self._comm_alarms = [aid for aid, m in metas.items() if m.kind == "comm"]
        self._mode_rules = [r for r in self.cat.rules if r.mode is not None and r.zone]
        # Timers touch only what changed (docs/ARCHITECTURE.md "Alarm lifecycle (ISA-18.2) and
        # paging"): mode suppression is decided once per (zone, rule mode) and applied to its
        # alarms only when that decision changes (or one of them changed); design suppression
        # of an alert only when its action alarm changed; a stale point's design suppression
        # only when its device's comm alarm changed. The first pass after start does all.
        self._mode_groups: dict[tuple[str, str], list[str]] = {}
        for r in self._mode_rules:
            self._mode_groups.setdefault((r.zone, r.mode), []).append(r.alarm_id)
        self._mode_group_of = {aid: key for key, aids in self._mode_groups.items() for aid in aids}
        self._mode_want: dict[tuple[str, str], bool] = {}
        self._dirty_design: set[str] | None = None  # None: everything (first pass)
        self._dirty_comm: set[str] | None = None
        self._dirty_mode: set[str] = set()
        self._comm_device = {aid: metas[aid].device for aid in self._comm_alarms}
        self._comm_of_device = {dev: aid for aid, dev in self._comm_device.items()}
        self._stale_of_device: dict[str, list[str]] = {}
        for pid in self._stale_ids:
            self._stale_of_device.setdefault(self.point_device[pid], []).append(pid)
        self.lost_cycles = 0  # engine cycles lost since start (docs/ARCHITECTURE.md "The monitoring watches itself")
        level = {(r.point, r.side, r.mode, r.limit_name.split("_")[0]): r.alarm_id
                 for r in self.cat.rules}
        self._alert_action = [(aid, level[(p, side, mode, "action")])
                              for (p, side, mode, lvl), aid in level.items()
                              if lvl == "alert" and (p, side, mode, "action") in level]
        self._alerts_of: dict[str, list[str]] = {}
        self._action_of = dict(self._alert_action)  # alert -> its action alarm
        for alert, action in self._alert_action:
            self._alerts_of.setdefault(action, []).append(alert)

    def _zone_of(self, pid: str) -> str | None:
        p = self._point_info.get(pid)
        return p.zone if p is not None else None

    def _site_of(self, pid: str) -> str | None:
        p = self._point_info.get(pid)
        return p.site if p is not None else None

    def _open_store(self) -> tuple[Store, int, dict]:
        """Runs on the writer thread (the connection lives there); returns, for the event
        loop, the store, the config version and what was stored before (plain rows)."""
        key = audit_key(self.cfg, create=True)
        self.signing_key = signing_key(self.cfg, create=True)
        store = Store(self.db_path, key=key, group=self.cfg.storage.group)
        try:
            store.add_migrations(OUTBOX_NAMESPACE, OUTBOX_MIGRATIONS)
            store.add_migrations(ledger.NAMESPACE, ledger.LEDGER_MIGRATIONS)
            store.register_points(self.cat.infos)
            version = store.record_config(self.cfg.text, self.cfg.sha256)
            restored = {
                "alarms": store.alarms(),
                "engine": store.engine_state(),
                "modes": store.zone_modes(),
                "latest": store.latest(),
            }
        except BaseException:
            store.close()
            raise
        return store, version, restored

    async def _in_writer(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def start(self) -> None:
        """Lock, open, restore, compile kernels, start pollers, socket and dispatcher."""
        self._lock.acquire()
        self.store, self.config_version, self._restored = await self._in_writer(self._open_store)
        self.held = HeldCycles(self.store)
        self.book = AlarmBook(self.cfg, self.metas, self.config_version, points=self._point_info)
        restored = self.book.restore(self._restored["alarms"])
        self.engine.load_state(self._restored["engine"] or {})
        self._reconcile_engine()
        self.modes = {z.id: (z.occupancy, None) for z in self.cfg.zones}
        for zone, row in (self._restored["modes"] or {}).items():
            self.modes[zone] = (row["mode"], row.get("since_ms"))
        self.deriver = Deriver(self.cat, self.cfg)
        self.hazmat = HazmatProbe(self.cfg)
        self.health = HealthProbe(self.cfg, self.db_path, self.cycle_s)
        warm_up()  # kernels ready before polling starts (docs/ARCHITECTURE.md "Data flow")
        # Stale clocks start when polling starts: a restart is not itself a data gap.
        start = now_ms()
        self.last_good: dict[str, int] = {pid: start for pid in self.stale_points}
        self.pager = Pager(self.cfg.paging, self.cfg.facility.id)
        self.dispatcher = Dispatcher(self.db_path, self.cfg.paging)
        self.actions = ActionHandler(ActionContext(
            cfg=self.cfg, book=self.book, modes=self.modes, resuppress=self._mode_suppression,
            flush=lambda: self._flush([], now_ms()),
            book_hazmat=lambda login, movement, fields: self._in_writer(
                lambda: book_movement(self.cfg, self.store, login, movement, fields,
                                      key=self.store.key,
                                      config_version=self.store.config_version))))
        # Suppression before the first page (docs/ARCHITECTURE.md "Alarm lifecycle (ISA-18.2)
        # and paging"): each zone's mode (the stored one, else what its schedule says for
        # now), the inactive mode's rules and alert-under-action DSUPR are in force before
        # the first engine cycle, so nothing is raised and paged only to be hidden.
        self.actions.resume_schedules(start, {z: row.get("since_ms") for z, row in
                                              (self._restored["modes"] or {}).items()})
        self._suppression(start)
        self.server = ActionServer(socket_path(self.db_path), self.actions.handle,
                                   group=self.cfg.storage.group)
        await self.server.start()
        self.poller = self._make_poller()
        self.poller.start()
        self._tasks = [asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
                       asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
                       asyncio.create_task(self._witness_loop(), name="witness")]
        log.info("service started: %d points, %d rules, %d alarms restored, db %s",
                 len(self.cat.points), len(self.cat.rules), restored, self.db_path)

    def _make_poller(self):
        """Pollers, told each counter's newest stored record so backfill starts there."""
        from sensors.poller import Poller

        factory = self._poller_factory or Poller
        newest: dict[str, int] = {}
        for row in self._restored["latest"]:
            dev, _, name = row["point"].partition(".")
            if name.startswith("count_"):
                newest[dev] = max(newest.get(dev, 0), int(row["ts_ms"]))
        return factory(self.cfg, self._on_samples, last_record_ts_ms=newest)

    def _reconcile_engine(self) -> None:
        """Alarm rows are written every transition, engine state every few cycles: make the
        engine's active flags agree with the alarms so nothing is re-raised or forgotten."""
        state = self.engine.state_dict()
        changed = False
        for r in self.cat.rules:
            st = self.book.states.get(r.alarm_id)
            want = bool(st and st.active)
            if state[r.key]["active"] != want:
                state[r.key]["active"] = want
                changed = True
        if changed:
            self.engine.load_state(state)

    def _on_samples(self, samples: list[Sample]) -> None:
        self._queue.extend(samples)

    # -- the cycle --------------------------------------------------------------------
    async def run(self) -> None:
        """Run cycles until ``stopping`` is set (SIGINT/SIGTERM)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stopping.set)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (demo, TUI): the owner stops us
        await self.start()
        try:
            # Cycles run half a period after the polls (which start now), so a poll's samples
            # are evaluated in the next half period instead of waiting a whole cycle.
            next_t = time.monotonic() + self.cycle_s / 2
            await asyncio.sleep(self.cycle_s / 2)
            while not self.stopping.is_set():
                lag = max(0.0, time.monotonic() - next_t)
                await self.cycle(lag_s=lag)
                next_t += self.cycle_s
                delay = next_t - time.monotonic()
                if delay < 0:
                    # Overload is counted, never hidden (docs/ARCHITECTURE.md "The monitoring
                    # watches itself"): each whole cycle the loop fell behind is a lost cycle,
                    # stored as a gap and alarmed (system.lost_cycles); the schedule stays on
                    # its grid, so the next cycle's loop_lag still shows how late it is.
                    lost = int(-delay // self.cycle_s)
                    if lost:
                        self._lost(lost, now_ms())
                        next_t += lost * self.cycle_s
                    delay = 0
                try:
                    await asyncio.wait_for(self.stopping.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
        finally:
            await self.stop()

    def _poll_gaps(self, now: int) -> None:
        """Store each run of scan turns the pollers passed over as a gap row (their
        ``system.<devices>.skipped_runs`` alarm counts them too)."""
        take = getattr(self.poller, "take_gaps", None)
        for g in (take() if take is not None else ()):
            self.book.pending.audit.append({
                "action": "poll_gap", "actor": "service", "subject": g["device"],
                "reason": (f"poll job too late: {g['turns']} scan(s) of {g['scan_s']:g} s of"
                           f" {g['device']} not polled"),
                "details": dict(g, ts_ms=now)})

    def _lost(self, n: int, now: int) -> None:
        """``n`` engine cycles were not run: count them and store a gap row."""
        self.lost_cycles += n
        self.health.lost_cycles = self.lost_cycles
        self.book.pending.audit.append({
            "action": "cycle_gap", "actor": "service", "subject": "system",
            "reason": (f"service overloaded: {n} engine cycle(s) of {self.cycle_s:g} s not run"
                       " (their samples are evaluated in the next cycle)"),
            "details": {"lost": n, "total": self.lost_cycles, "ts_ms": now,
                        "cycle_s": self.cycle_s}})

    async def cycle(self, lag_s: float = 0.0) -> None:
        """One poll -> engine -> lifecycle -> store -> paging cycle."""
        now = now_ms()
        batch, self._queue = self._queue, []
        stock = (await self._in_writer(self.hazmat.samples, self.store.conn, now)
                 if self.hazmat.due(now) else [])
        samples = (batch + self.deriver.derive(batch) + self.health.samples(now, lag_s, self.poller)
                   + stock)
        # Suppression first, so the engine's raises meet the hiding in force (mode, recovery,
        # alert under action); after the engine, design suppression of what it raised and the
        # stale clocks; then nothing raised and hidden within this cycle is paged.
        self._poll_gaps(now)
        self.book.begin_cycle()
        self._suppression(now)
        self._evaluate(samples, now)
        self._timers(now)
        self.calibration.check(self.book, now)  # a no-op until the site's date changes
        self.book.settle_cycle()
        await self._flush(samples, now, save_engine=self.cycles % ENGINE_SAVE_EVERY == 0)
        self.cycles += 1
        if self.cycles == 1:
            sd_notify("READY=1")
        sd_notify("WATCHDOG=1")

    def _evaluate(self, samples: list[Sample], now: int) -> None:
        if not self._stale_started:
            # start() set every stale point's last good time to when polling started (a
            # restart is not itself a data gap); a stale alarm restored active stays raised
            # until the point's next good sample instead of clearing and raising again.
            active = np.array([self.book.states[f"{pid}:stale"].active for pid in self._stale_ids],
                              dtype=bool)
            started = np.array([self.last_good[pid] / 1000.0 for pid in self._stale_ids],
                               dtype=np.float64)
            self.stale.start(np.where(active, np.nan, started), active)
            self._stale_started = True
        if not samples:
            return
        # The engine's arrays, built once per cycle in one pass each (no per-row tuples)
        n = len(samples)
        get = self.point_index.get
        point = np.fromiter((get(s.point, -1) for s in samples), dtype=np.int64, count=n)
        ts = np.fromiter((s.ts_ms for s in samples), dtype=np.float64, count=n) / 1000.0
        value = np.array([s.value for s in samples], dtype=np.float64)  # None -> NaN
        good = np.fromiter((s.good for s in samples), dtype=bool, count=n)
        keep = np.flatnonzero(point >= 0)
        if len(keep) == 0:
            return
        if len(keep) != n:
            point, ts, value, good = point[keep], ts[keep], value[keep], good[keep]
        self.stale.seen(self._stale_slot[point], ts, value, good)
        live_from = now - int(self.cfg.alarms.live_window_s * 1000)
        for tr in self.engine.feed(point, ts, value, good):
            rule = self.cat.rules[int(tr["rule"])]
            s = samples[int(keep[int(tr["sample"])])]
            event = Event.RAISE if tr["event"] > 0 else Event.CLEAR
            self.book.apply(rule.alarm_id, event, now_ms=now, ts_ms=int(round(tr["onset"] * 1000)),
                            value=s.value, by="engine", backfill=s.ts_ms < live_from)

    def _suppression(self, now: int) -> None:
        """Shelve, suppression and out-of-service expiry, schedules, mode and design
        suppression: what hides an alarm at ``now`` (each step does nothing when run again)."""
        for aid in self.book.due_shelves(now):  # a heap of deadlines, not a scan
            self.book.apply(aid, Event.SHELVE_EXPIRED, now_ms=now, by="timer")
        self.actions.expire(now)  # operator suppressions and out-of-service periods
        self.actions.apply_schedules(now)
        self._drain()
        self._mode_suppression(now, force=False)
        self._design_suppression(now)

    def _drain(self) -> None:
        """Hand the alarms the book changed since last time to each timer's dirty set."""
        changed = self.book.take_touched()
        if not changed:
            return
        if self._dirty_design is not None:
            self._dirty_design |= changed
        if self._dirty_comm is not None:
            self._dirty_comm |= changed
        self._dirty_mode |= changed

    def _timers(self, now: int) -> None:
        """After the engine: suppression again (an alert raised with its action starts
        DSUPR), then stale alarms; each step touches only what is due or changed."""
        self._suppression(now)
        self._stale(now)

    def _set_suppressed(self, aid: str, want: bool, by: str, now: int) -> None:
        st = self.book.states[aid]
        if want == (by in st.suppressed_by):
            return
        if want and st.critical:
            return  # critical alarms are never mode- or design-suppressed (docs/ARCHITECTURE.md)
        self.book.apply(aid, Event.SUPPRESS if want else Event.UNSUPPRESS, now_ms=now, by=by)

    def _mode_suppression(self, now: int, force: bool = True) -> None:
        """Mode suppression per (zone, rule mode); ``force`` (a mode change, from the
        operator actions) applies every decision, otherwise only changed ones and the
        alarms changed since the last pass."""
        rec = self.cfg.alarms.recovery_s
        wants = self._mode_want
        dirty, self._dirty_mode = self._dirty_mode, set()
        for key, aids in self._mode_groups.items():
            zone_id, rule_mode = key
            zone = self._zones[zone_id]
            mode, since = self.modes.get(zone_id, (zone.occupancy, None))
            want = mode_suppressed(rule_mode, mode,
                                   at_rest_since_ms=since if mode == "at_rest" else None,
                                   now_ms=now, recovery_s=zone.recovery_s or rec)
            if force or wants.get(key) != want:
                wants[key] = want
                for aid in aids:
                    self._set_suppressed(aid, want, "mode", now)
        for aid in dirty:
            key = self._mode_group_of.get(aid)
            if key is not None and key in wants:
                self._set_suppressed(aid, wants[key], "mode", now)

    def _design_suppression(self, now: int) -> None:
        """While a side's action alarm is active its alert alarm is DSUPR (one excursion,
        one alarm to handle, whose priority rises on action)."""
        dirty, self._dirty_design = self._dirty_design, set()
        if dirty is None:
            pairs = self._alert_action
        else:
            pairs = [(alert, action) for action in dirty
                     for alert in self._alerts_of.get(action, ())]
            pairs += [(a, self._action_of[a]) for a in dirty if a in self._action_of]
        for alert, action in pairs:
            self._set_suppressed(alert, self.book.states[action].active, "design", now)

    def _stale(self, now: int) -> None:
        """Live, stale alarms are checked every cycle (docs/ARCHITECTURE.md "Stale", alarms.stale):
        raised with onset last good + stale_after_s, cleared with onset the newest good
        sample once it is again within stale_after_s of now."""
        for tr in self.stale.check(now / 1000.0):
            event = Event.RAISE if tr["event"] > 0 else Event.CLEAR
            self.book.apply(f"{self._stale_ids[int(tr['point'])]}:stale", event, now_ms=now,
                            ts_ms=int(round(float(tr["onset"]) * 1000)), by="engine")
        self._drain()
        dirty, self._dirty_comm = self._dirty_comm, set()
        states = self.book.states
        if dirty is None:
            comm = {self._comm_device[aid] for aid in self._comm_alarms if states[aid].active}
            for pid in self._stale_ids:
                # a dead device's stale points are consequences of its comm alarm
                self._set_suppressed(f"{pid}:stale", self.point_device[pid] in comm, "design",
                                     now)
            return
        for aid in dirty:
            dev = self._comm_device.get(aid)
            if dev is not None:
                down = states[aid].active
                for pid in self._stale_of_device.get(dev, ()):
                    self._set_suppressed(f"{pid}:stale", down, "design", now)
            elif aid.endswith(":stale"):
                pid = aid[: -len(":stale")]
                dev = self.point_device.get(pid)
                comm_aid = self._comm_of_device.get(dev)
                if comm_aid is not None:
                    self._set_suppressed(aid, states[comm_aid].active, "design", now)

    async def _flush(self, samples: list[Sample], now: int, *, save_engine: bool = False) -> None:
        """Write what is pending as one cycle on the writer thread, and wake the dispatcher.

        Everything the Cycle carries is built here, on the event loop, as data that nothing
        changes afterwards; the writer thread reads no live state.
        """
        self.book.note_samples(samples)  # pages re-read the newest value (alarms.paging)
        pending = self.book.pending.take()
        cycle = Cycle(samples=samples, alarms=list(pending.alarms.values()),
                      events=pending.events, audit=pending.audit,
                      engine_state=self.engine.state_snapshot() if save_engine else {},
                      service_state={"heartbeat": {"ts_ms": now, "pid": os.getpid(),
                                                   "cycles": self.cycles}},
                      zone_modes=self.actions.take_mode_rows(),
                      extra=[self._pages(pending.effects, now)])
        # The engine state (hundreds of ms of dict building at 10 000 points) is a snapshot
        # copied here and turned into rows on the writer thread, never on the event loop
        # (docs/ARCHITECTURE.md "Engine": no loop stall over 50 ms).
        await self._in_writer(self.held.write, cycle)
        self.health.unwritten = len(self.held) + (self.store.unfinished is not None)
        if pending.effects:
            self.dispatcher.wake()

    def _pages(self, effects, now: int):
        """The paging step of a write: a snapshot taken now, run later on the writer thread.

        The pager keeps no state in memory (its outbox is in the database), so the writer
        thread may use it; the book's states are copied into the batch here.
        """
        return functools.partial(self.book.page_batch(effects, now).write, self.pager)

    def _checkpoint(self) -> dict | None:
        """Writer thread: append a signed checkpoint of the audit chain head to the witness
        file (fsynced; skipped when the head has not moved); remember it for the heartbeat."""
        head = self.store.audit_head()
        if head is None or self.signing_key is None:
            return None
        line = append_checkpoint(witness_path(self.cfg), self.signing_key, head["id"],
                                 head["hash"])
        if line is not None:
            self.witnessed = line
        return self.witnessed

    async def _witness_loop(self) -> None:
        """Checkpoint the chain head every ``WITNESS_S`` (and once at start; ``stop`` writes
        the last one), off the event loop (docs/ARCHITECTURE.md "Signing")."""
        while not self.stopping.is_set():
            try:
                await self._in_writer(self._checkpoint)
            except Exception as exc:  # noqa: BLE001 - the next round tries again; the log says why
                log.error("witness checkpoint failed: %s", exc)
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=WITNESS_S)
            except asyncio.TimeoutError:
                pass

    async def _heartbeat_loop(self) -> None:
        while not self.stopping.is_set():
            if len(self.held):
                # Not recording (cycles held: the disk is full). The dead-man's switch hears
                # nothing, so its missed-heartbeat page reaches the on-call engineer: this
                # service's own store_full page waits in the outbox of the database it cannot
                # write (docs/ARCHITECTURE.md "Disk full").
                log.warning("heartbeat withheld: %d cycles not yet written", len(self.held))
            elif self.cfg.paging.heartbeat_url or self.cfg.paging.heartbeat_command:
                res = await asyncio.to_thread(send_heartbeat, self.cfg.paging,
                                              head=self.witnessed)
                if not res.ok:
                    log.warning("heartbeat to the dead-man's switch failed: %s", res.error)
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=self.cfg.paging.heartbeat_s)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        """Clean shutdown: stop polling, write what is pending, close everything."""
        if self.poller is not None:
            await self.poller.stop()
        if self.server is not None:
            await self.server.close()
        if self.store is not None:
            self.held._next_try = 0.0  # one last attempt for held cycles, whatever the backoff
            try:
                await self._flush([], now_ms(), save_engine=True)
            except Exception as exc:  # noqa: BLE001 - shutdown must finish; the log says why
                log.error("final write failed: %s", exc)
            if len(self.held):
                log.error("store full at stop: %d held cycle(s) with %d sample(s) not written",
                          len(self.held), sum(len(c.samples) for c in self.held.held))
            try:
                await self._in_writer(self._checkpoint)  # the head as it was at a clean stop
            except Exception as exc:  # noqa: BLE001 - shutdown must finish; the log says why
                log.error("final witness checkpoint failed: %s", exc)
        if self.dispatcher is not None:
            self.dispatcher.stop()
        # The dispatcher ends its round by itself: its outbox reads run in a thread that a
        # cancel does not stop, and closing their connection under them crashes SQLite.
        sending = [t for t in self._tasks if t.get_name() == "dispatcher"]
        if sending:
            await asyncio.wait(sending, timeout=DISPATCHER_STOP_S)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.dispatcher is not None:
            self.dispatcher.close()  # waits for a query still running in its thread
        if self.store is not None:
            await self._in_writer(self.store.close)
        self._writer.shutdown(wait=True)
        self._lock.release()
        log.info("service stopped after %d cycles", self.cycles)
