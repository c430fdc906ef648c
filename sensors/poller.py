"""Pollers: one APScheduler job per connection, samples to the caller's ``on_samples``.

Each host:port gets one ``AsyncIOScheduler`` interval job (``max_instances=1``,
``coalesce=True``, ``misfire_grace_time`` of one interval) that polls the units behind it in
turn, each at its own ``scan_s``; jobs of different connections run concurrently, so a slow
or dead device never delays a device on another connection. On a shared connection a unit
with 3 consecutive failures is probed only every ``dead_probe_s`` so it cannot starve its
neighbours. Skipped runs (EVENT_JOB_MISSED / EVENT_JOB_MAX_INSTANCES) are counted per
connection (:attr:`ConnectionJob.skipped`) for the service's self-monitoring, which alarms on
one connection missing its scans, and names it (``facility.service.health``).

Failed reads become samples with ``value=None`` and quality COMM (no answer) or BAD
(exception response, undecodable, sentinel, non-finite); never 0, never the last value.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from facility.config.schema import Config, Device
from facility.domain.errors import UsageError
from facility.domain.model import Quality, Sample, now_ms
from sensors.counter import Counter
from sensors.health import DeviceHealth
from sensors.modbus import COMM_KINDS, ConnectionPool, CounterClient, ReadFailure, UnitClient
from sensors.planning import plan_reads
from sensors.points import PointDef, device_points
from sensors.profiles import load_profile
from sensors.registers import decode

log = logging.getLogger("sensors.poller")

DEAD_AFTER_FAILURES = 3
COMM_DELAY_DEFAULT_MIN_S = 10.0  # the catalogue's default comm delay: max(3 x scan_s, 10 s)


def comm_hold_s(device: Device) -> float:
    """How long ``comm_ok`` is sent every cycle after a device answers again: at least its
    comm alarm's off delay (``comm_clear_s``, default ``comm_delay_s``, default at most
    max(3 x scan_s, 10 s)) plus two scans, so the clear is never starved of samples."""
    clear = (device.comm_clear_s or device.comm_delay_s
             or max(3 * device.scan_s, COMM_DELAY_DEFAULT_MIN_S))
    return float(clear) + 2 * device.scan_s


class DevicePoller:
    """Reads one device each cycle and turns registers into samples."""

    def __init__(self, cfg: Config, device: Device, pool: ConnectionPool, *, max_gap: int = 8,
                 last_record_ts_ms: int | None = None, health_every_s: float = 60.0):
        self.device = device
        self.conn = pool.get(device.host, device.port)
        self.points: list[PointDef] = device_points(cfg, device.id)
        self.health = DeviceHealth(device.id, health_every_s, comm_hold_s(device))
        self.counter: Counter | None = None
        prof = load_profile(device.profile) if device.profile else None
        if prof is not None and prof.kind == "record":
            site = next((s for s in cfg.sites if s.id == device.site), None)
            self.client: UnitClient = CounterClient(self.conn, device)
            self.counter = Counter(device, self.client, site.timezone if site else "UTC",
                                   cfg.alarms.clock_tolerance_s, last_record_ts_ms)
            self.requests = []
        else:
            self.client = UnitClient(self.conn, device)
            self.requests = plan_reads([p for p in self.points if p.polled], max_gap=max_gap)
        self.next_due = 0.0
        self.last_try = -math.inf

    def _fail_samples(self, ts: int, quality: Quality, points: Iterable[PointDef]) -> list[Sample]:
        return [Sample(p.id, ts, None, quality) for p in points]

    async def poll(self) -> list[Sample]:
        """One cycle: data samples (good, bad or comm) plus the due health samples."""
        self.last_try = time.monotonic()
        t0 = time.perf_counter()
        if self.counter is not None:
            out = await self._poll_counter()
        else:
            out = await self._poll_live()
        latency = (time.perf_counter() - t0) * 1000.0
        self.health.latency_ms = latency
        return out + self.health.samples(now_ms())

    async def _poll_counter(self) -> list[Sample]:
        try:
            out = await self.counter.scan(now_ms())
        except ReadFailure as exc:
            ts = now_ms()
            self.health.failure(ts, exc.kind, str(exc))
            q = Quality.COMM if exc.kind in COMM_KINDS else Quality.BAD
            status = [p for p in self.points if p.kind == "status"]
            return self._fail_samples(ts, q, status)
        self.health.success(now_ms(), 0.0)
        return out

    async def _poll_live(self) -> list[Sample]:
        results = await self.client.read_each(self.requests)
        ts = now_ms()
        out: list[Sample] = []
        failure: ReadFailure | None = None
        for rq, res in zip(self.requests, results):
            if isinstance(res, ReadFailure):
                failure = failure or res
                q = Quality.COMM if res.kind in COMM_KINDS else Quality.BAD
                out.extend(self._fail_samples(ts, q, rq.points))
                continue
            for p in rq.points:
                value, q = decode(rq.slice(p, res), p.type, p.order, bit=p.bit, scale=p.scale,
                                  offset=p.offset, decimals=p.decimals, nan=p.nan)
                out.append(Sample(p.id, ts, value, q))
        if failure is not None:
            self.health.failure(ts, failure.kind, str(failure))
        else:
            self.health.success(ts, 0.0)
        return out


class ConnectionJob:
    """The units behind one host:port, polled in turn by one scheduler job."""

    def __init__(self, key: tuple[str, int], pollers: list[DevicePoller], dead_probe_s: float):
        self.key = key
        self.pollers = pollers
        self.dead_probe_s = dead_probe_s
        self.interval_s = min(p.device.scan_s for p in pollers)
        self.shared = len(pollers) > 1
        self.runs = 0
        self.skipped = 0  # scheduler runs of this job skipped (late, or previous still going)
        # and scan turns of a unit passed over because the job came too late for them: counted
        # in ``skipped`` too and kept as gaps (device, from_ms, to_ms, turns) for the service
        # to store (docs/ARCHITECTURE.md "The monitoring watches itself": overload is visible)
        self.turns_skipped = 0
        self.gaps: list[dict] = []

    def _skip_dead(self, p: DevicePoller) -> bool:
        return (self.shared and p.health.consecutive_failures >= DEAD_AFTER_FAILURES
                and time.monotonic() - p.last_try < self.dead_probe_s)

    def _missed(self, p: DevicePoller, due: float, now: float, turns: int) -> None:
        """``turns`` scans of ``p`` from monotonic ``due`` were not polled: count, keep."""
        self.skipped += turns
        self.turns_skipped += turns
        wall = now_ms()
        self.gaps.append({"device": p.device.id, "turns": turns,
                          "from_ms": wall - int(round((now - due) * 1000)), "to_ms": wall,
                          "scan_s": p.device.scan_s})
        log.debug("poll job %s:%s passed over %d scan(s) of %s", *self.key, turns, p.device.id)

    async def cycle(self, force: bool = False) -> list[Sample]:
        """Poll every unit that is due (all of them when ``force``)."""
        self.runs += 1
        now = time.monotonic()
        out: list[Sample] = []
        slack = 0.25 * self.interval_s  # scheduler jitter must not make a unit skip a turn
        for p in self.pollers:
            if not force and now + slack < p.next_due:
                continue
            if not force and self._skip_dead(p):
                # not probed this turn: its comm_ok 0 still goes out, so the comm alarm's
                # delay keeps running on a per-cycle record; its schedule moves on (a turn
                # not probed is the comm alarm's, not a skipped scan)
                while p.next_due and p.next_due <= now + slack:
                    p.next_due += p.device.scan_s
                out.extend(p.health.samples(now_ms()))
                continue
            if not p.next_due:
                p.next_due = now
            due, turns = p.next_due, 0
            while p.next_due <= now + slack:  # keep the schedule; never drift, never burst
                p.next_due += p.device.scan_s
                turns += 1
            if turns > 1:
                self._missed(p, due, now, turns - 1)
            out.extend(await p.poll())
        return out


class Poller:
    """All pollers of a configuration under one AsyncIOScheduler.

    ``on_samples(samples)`` (plain function or coroutine function) receives each cycle's
    ``list[Sample]``; ``last_record_ts_ms`` restores each counter's newest stored record.
    """

    def __init__(self, cfg: Config, on_samples: Callable[[list[Sample]], object], *,
                 last_record_ts_ms: dict[str, int] | None = None, dead_probe_s: float = 30.0,
                 max_gap: int = 8, health_every_s: float = 60.0, base_backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, devices: Iterable[str] | None = None):
        self.cfg = cfg
        self.on_samples = on_samples
        self.pool = ConnectionPool(base_backoff_s, max_backoff_s)
        wanted = set(devices) if devices is not None else None
        groups: dict[tuple[str, int], list[DevicePoller]] = defaultdict(list)
        restore = last_record_ts_ms or {}
        for dev in cfg.devices:
            if wanted is not None and dev.id not in wanted:
                continue
            groups[(dev.host, dev.port)].append(
                DevicePoller(cfg, dev, self.pool, max_gap=max_gap, health_every_s=health_every_s,
                             last_record_ts_ms=restore.get(dev.id)))
        self.jobs = {f"{h}:{p}": ConnectionJob((h, p), ps, dead_probe_s) for (h, p), ps in groups.items()}
        self.skipped: dict[str, int] = defaultdict(int)
        self.scheduler: AsyncIOScheduler | None = None

    @property
    def skipped_runs(self) -> int:
        """Job runs skipped (previous still going, or too late) and unit scans passed over."""
        return sum(self.skipped.values()) + sum(j.turns_skipped for j in self.jobs.values())

    def take_gaps(self) -> list[dict]:
        """The scan turns passed over since the last call (and forget them)."""
        out: list[dict] = []
        for j in self.jobs.values():
            out += j.gaps
            j.gaps = []
        return out

    def devices(self) -> dict[str, DevicePoller]:
        """Device id -> its poller (cycle counts, health, counter state)."""
        return {p.device.id: p for j in self.jobs.values() for p in j.pollers}

    def newest_record_ms(self) -> dict[str, int]:
        """Counter device id -> newest stored record time (to persist, if wanted)."""
        return {d: p.counter.newest_ms for d, p in self.devices().items()
                if p.counter is not None and p.counter.newest_ms is not None}

    def _on_event(self, event) -> None:
        self.skipped[event.job_id] += 1
        if event.job_id in self.jobs:
            self.jobs[event.job_id].skipped += 1
        log.debug("poll job %s skipped a run (event %s)", event.job_id, event.code)

    async def _run_job(self, job_id: str) -> None:
        try:
            samples = await self.jobs[job_id].cycle()
        except asyncio.CancelledError:  # stop() while a cycle was running
            return
        if samples:
            res = self.on_samples(samples)
            if inspect.isawaitable(res):
                await res

    def start(self) -> None:
        """Add one job per connection and start the scheduler (inside a running loop)."""
        self.scheduler = AsyncIOScheduler()
        self.scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        from datetime import datetime, timezone

        start = datetime.now(timezone.utc)
        for job_id, job in self.jobs.items():
            self.scheduler.add_job(self._run_job, "interval", args=[job_id], id=job_id,
                                   seconds=job.interval_s, max_instances=1, coalesce=True,
                                   misfire_grace_time=max(1, math.ceil(job.interval_s)),
                                   next_run_time=start)
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop the scheduler and close every connection."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
        self.pool.close()


class UnknownDevice(UsageError):
    """A device id that is not in the configuration (exit 2)."""


async def poll_once(cfg: Config, device_id: str | None = None) -> list[Sample]:
    """Read every device (or one) once, connections concurrently; for ``facility poll --once``."""
    if device_id is not None and device_id not in {d.id for d in cfg.devices}:
        raise UnknownDevice(f"device {device_id!r} is not configured; known: "
                            f"{', '.join(d.id for d in cfg.devices)}")
    poller = Poller(cfg, lambda _samples: None, devices=[device_id] if device_id else None)
    try:
        results = await asyncio.gather(*(j.cycle(force=True) for j in poller.jobs.values()))
    finally:
        poller.pool.close()
    return [s for batch in results for s in batch]


@dataclass(frozen=True)
class PollResult:
    """What ``facility poll --once`` read: the samples, and whether every device was dead."""

    samples: list[Sample]
    all_dead: bool  # every polled device gave no answer at all (the CLI exits 3)


def read_once(cfg: Config, device: str | None = None) -> PollResult:
    """Read every device (or one) once, for ``facility poll --once``; the CLI formats it.

    Raises :class:`UnknownDevice` for a device id that is not configured.
    """
    samples = asyncio.run(poll_once(cfg, device))
    comm = {s.point.rsplit(".", 1)[0]: s.value for s in samples if s.point.endswith(".comm_ok")}
    return PollResult(samples, bool(comm) and all(v == 0 for v in comm.values()))
