"""The service watching itself: lock, systemd notification, system health samples.

docs/ARCHITECTURE.md "The monitoring watches itself": event-loop lag over two cycles,
skipped job runs, low free disk and an unsynchronised clock (where the host reports it) are
system alarms; the dead-man's switch is pinged by the service (see
``Service._heartbeat_loop``). The samples are conditions over a window, not per-cycle
deltas (ISA-18.2 hysteresis, ISA-18.2 / EEMUA 191): ``system.loop_lag_s`` is the lag
sustained over the last two cycles (the smaller of the two), and each connection's
``system.<devices>.skipped_runs`` is how many scans that one connection skipped in the last
60 s, so the alarm names the devices whose poll job is too slow; the catalogue's rules add
the on/off delays (``facility.catalogue.system_points``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import shutil
import socket
from collections import deque
from collections.abc import Callable

from facility.catalogue import LOST_CYCLES_POINT, SKIPPED_WINDOW_S, SLOW_CHECK_S, skipped_point
from facility.config.schema import Config
from facility.domain.errors import UsageError
from facility.domain.model import Quality, Sample

SLOW_CHECK_MS = int(SLOW_CHECK_S * 1000)
"""Free disk and clock sync are sampled once a minute: both change over minutes to hours,
and their alarms (docs/ARCHITECTURE.md "The monitoring watches itself") need no finer
resolution."""
SKIPPED_WINDOW_MS = int(SKIPPED_WINDOW_S * 1000)

TIME_ERROR = 5
"""``adjtimex`` return value: the clock is not synchronised (Linux ``<sys/timex.h>``)."""
STA_UNSYNC = 0x0040
"""``timex.status`` bit: clock unsynchronised (Linux ``<sys/timex.h>``)."""


class ServiceLocked(UsageError):
    """Another service owns the database (exit 2)."""


class ServiceLock:
    """An exclusive ``flock`` on ``<db>.lock`` holding the owner's pid."""

    def __init__(self, db_path: str):
        self.path = db_path + ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ServiceLocked naming the owner's pid."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.read(fd, 32).decode().strip() or "?"
            finally:
                os.close(fd)
            db = self.path[: -len(".lock")]
            raise ServiceLocked(f"another service (pid {pid}) owns {db}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Release the lock (the file stays; a stale pid in it means nothing without the lock)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def sd_notify(message: str) -> bool:
    """Send a systemd notification (READY=1, WATCHDOG=1) when run under systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(message.encode())
        return True
    except OSError:
        return False


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("constant", ctypes.c_long),
                ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long),
                ("tick", ctypes.c_long),
                # glibc's struct timex goes on for 10 more fields (ppsfreq ... tai) and 11
                # padding ints, all written by adjtimex: 32 longs cover them with room
                ("pad", ctypes.c_long * 32)]


def clock_unsynchronised() -> bool | None:
    """True/False from the kernel's adjtimex (STA_UNSYNC / TIME_ERROR); None if unknown."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return bool(state == TIME_ERROR or tx.status & STA_UNSYNC)


class HealthProbe:
    """Produces the ``system.*`` samples each cycle (disk and clock once a minute).

    ``free_disk_mb`` and ``clock_unsynced`` read the host (``shutil.disk_usage`` beside the
    database, ``adjtimex``); a caller may pass its own readers, as tests do to drive a full
    disk or a clock losing sync, which a test cannot do to the host.
    """

    def __init__(self, cfg: Config, db_path: str, cycle_s: float, *,
                 free_disk_mb: Callable[[], float] | None = None,
                 clock_unsynced: Callable[[], bool | None] | None = None):
        self.cfg = cfg
        self.db_dir = os.path.dirname(db_path) or "."
        self.cycle_s = cycle_s
        self._free_disk_mb = free_disk_mb or (lambda: shutil.disk_usage(self.db_dir).free / 1e6)
        self._clock_unsynced = clock_unsynced or clock_unsynchronised
        self._next_slow_ms = 0
        self._prev_lag_s = 0.0
        self._skipped_seen: dict[str, int] = {}
        self._skips: dict[str, deque[tuple[int, int]]] = {}
        self.unwritten = 0
        """Cycles the service holds because the store is full (``Service._flush``)."""
        self.lost_cycles = 0
        """Engine cycles the service lost since start (``Service.run``)."""
        self._lost_seen = 0
        self._lost: deque[tuple[int, int]] = deque()

    def samples(self, now: int, lag_s: float, poller) -> list[Sample]:
        """Sustained loop lag and each connection's skipped scans in the last 60 s every
        cycle; free disk and clock sync every minute."""
        sustained = min(lag_s, self._prev_lag_s)  # one late cycle is not a lagging loop
        self._prev_lag_s = lag_s
        out = [Sample("system.loop_lag_s", now, round(sustained, 3), Quality.GOOD),
               Sample("system.store_unwritten", now, float(self.unwritten))]
        new = self.lost_cycles - self._lost_seen
        self._lost_seen = self.lost_cycles
        if new > 0:
            self._lost.append((now, new))
        while self._lost and self._lost[0][0] <= now - SKIPPED_WINDOW_MS:
            self._lost.popleft()
        out.append(Sample(LOST_CYCLES_POINT, now, float(sum(n for _, n in self._lost))))
        for job_id, job in (getattr(poller, "jobs", None) or {}).items():
            total = int(job.skipped)
            new = total - self._skipped_seen.get(job_id, 0)
            self._skipped_seen[job_id] = total
            window = self._skips.setdefault(job_id, deque())
            if new > 0:
                window.append((now, new))
            while window and window[0][0] <= now - SKIPPED_WINDOW_MS:
                window.popleft()
            out.append(Sample(skipped_point([p.device.id for p in job.pollers]), now,
                              float(sum(n for _, n in window))))
        if now >= self._next_slow_ms:
            self._next_slow_ms = now + SLOW_CHECK_MS
            out.append(Sample("system.free_disk_mb", now, round(self._free_disk_mb(), 1)))
            unsync = self._clock_unsynced()
            if unsync is not None:
                out.append(Sample("system.clock_unsynced", now, float(unsync)))
        return out
