"""The service watching itself: lock, systemd notification, system health samples.

DESIGN.md "The monitoring watches itself": event-loop lag over two cycles, skipped job
runs, low free disk and an unsynchronised clock (where the host reports it) are system
alarms; the dead-man's switch is pinged by the service (see ``Service._heartbeat_loop``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import shutil
import socket

from facility.config.schema import Config
from facility.domain.errors import UsageError
from facility.domain.model import Quality, Sample

SLOW_CHECK_MS = 60_000
"""Free disk and clock sync are sampled once a minute: both change over minutes to hours,
and their alarms (DESIGN.md "The monitoring watches itself") need no finer resolution."""

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
    """Produces the ``system.*`` samples each cycle (disk and clock once a minute)."""

    def __init__(self, cfg: Config, db_path: str, cycle_s: float):
        self.cfg = cfg
        self.db_dir = os.path.dirname(db_path) or "."
        self.cycle_s = cycle_s
        self._next_slow_ms = 0
        self._skipped_seen = 0

    def samples(self, now: int, lag_s: float, poller) -> list[Sample]:
        """Loop lag and skipped runs every cycle; free disk and clock sync every minute."""
        out = [Sample("system.loop_lag_s", now, round(lag_s, 3), Quality.GOOD)]
        skipped = int(getattr(poller, "skipped_runs", 0) or 0)
        out.append(Sample("system.skipped_runs", now, float(skipped - self._skipped_seen)))
        self._skipped_seen = skipped
        if now >= self._next_slow_ms:
            self._next_slow_ms = now + SLOW_CHECK_MS
            free_mb = shutil.disk_usage(self.db_dir).free / 1e6
            out.append(Sample("system.free_disk_mb", now, round(free_mb, 1)))
            unsync = clock_unsynchronised()
            if unsync is not None:
                out.append(Sample("system.clock_unsynced", now, float(unsync)))
        return out
