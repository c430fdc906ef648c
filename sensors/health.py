"""Communication health of one device: counters, "log once" and the health samples.

Health points (``<device>.comm_ok``, ``latency_ms``, ``consecutive_failures``,
``errors_timeout|refused|exception|decode``, ``last_good_age_s``) are emitted when their
value changes and at least once a minute (docs/ARCHITECTURE.md "Storage": status and communication
health are stored on change and once a minute). ``latency_ms`` and ``last_good_age_s``
change every cycle, so they follow the once-a-minute rhythm only (and any comm change).
``comm_ok`` is also sent every cycle while the device does not answer and for ``comm_hold_s``
after it answers again: the comm alarm's on and off delays (docs/ARCHITECTURE.md "Alarm
lifecycle": hysteresis) are runs of consecutive samples, so the engine needs one per cycle
while a delay is running. A blip shorter than the delay therefore leaves its record (the
``comm_ok`` 0 and 1 samples and the failure counters) and no alarm.

Logging follows Home Assistant's habit: a failing device logs once at ERROR, then DEBUG
until it recovers, and INFO on recovery.
"""

from __future__ import annotations

import logging

from facility.domain.model import Quality, Sample
from sensors.modbus import COMM_KINDS, FAILURE_KINDS

log = logging.getLogger("sensors.poller")

_EVERY_CYCLE_IGNORED = ("latency_ms", "last_good_age_s")


class DeviceHealth:
    """Counters and log state of one device's communication."""

    def __init__(self, device_id: str, emit_every_s: float = 60.0, comm_hold_s: float = 0.0):
        self.device_id = device_id
        self.emit_every_ms = int(emit_every_s * 1000)
        self.comm_hold_ms = int(comm_hold_s * 1000)
        self._recovered_ms: int | None = None  # when comm_ok last went from 0 to 1
        self.consecutive_failures = 0
        self.errors = {k: 0 for k in FAILURE_KINDS}
        self.last_good_ms: int | None = None
        self.last_attempt_ms: int | None = None
        self.latency_ms = 0.0
        self.comm_ok: int | None = None  # None until the first attempt
        self.failing = False
        self.cycles = 0
        self._sent: dict[str, float] = {}
        self._last_emit_ms: int | None = None

    def success(self, now_ms: int, latency_ms: float) -> None:
        """A cycle in which the device answered every read."""
        self.cycles += 1
        self.last_attempt_ms = now_ms
        if self.failing:
            log.info("%s: communication recovered after %d failed cycles", self.device_id,
                     self.consecutive_failures)
        self.failing = False
        self.consecutive_failures = 0
        self.last_good_ms = now_ms
        self.latency_ms = latency_ms
        if self.comm_ok == 0:
            self._recovered_ms = now_ms
        self.comm_ok = 1

    def failure(self, now_ms: int, kind: str, message: str, latency_ms: float = 0.0) -> None:
        """A cycle that failed with ``kind`` (timeout | refused | exception | decode)."""
        self.cycles += 1
        self.last_attempt_ms = now_ms
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.consecutive_failures += 1
        self.latency_ms = latency_ms
        # a device that answers with an exception still communicates; its values are BAD
        if kind in COMM_KINDS:
            self.comm_ok = 0
        else:
            if self.comm_ok == 0:
                self._recovered_ms = now_ms
            self.comm_ok = 1
        if not self.failing:
            log.error("%s: %s: %s (further failures logged at DEBUG until it recovers)",
                      self.device_id, kind, message)
        else:
            log.debug("%s: %s: %s", self.device_id, kind, message)
        self.failing = True

    def values(self, now_ms: int) -> dict[str, float]:
        """Current value of each health point."""
        age = (now_ms - self.last_good_ms) / 1000.0 if self.last_good_ms is not None else -1.0
        out = {"comm_ok": float(self.comm_ok or 0), "latency_ms": round(self.latency_ms, 1),
               "consecutive_failures": float(self.consecutive_failures)}
        out.update({f"errors_{k}": float(v) for k, v in self.errors.items()})
        out["last_good_age_s"] = round(age, 1)
        return out

    def samples(self, now_ms: int, force: bool = False) -> list[Sample]:
        """Health samples due now: changed values, or all of them once a minute."""
        if self.comm_ok is None:
            return []
        vals = self.values(now_ms)
        minute = (force or self._last_emit_ms is None
                  or now_ms - self._last_emit_ms >= self.emit_every_ms
                  or vals["comm_ok"] != self._sent.get("comm_ok"))
        every = self.comm_ok == 0 or (self._recovered_ms is not None
                                      and now_ms - self._recovered_ms <= self.comm_hold_ms)
        out = []
        for name, v in vals.items():
            if minute or (name not in _EVERY_CYCLE_IGNORED and self._sent.get(name) != v) \
                    or (every and name == "comm_ok"):
                if name == "last_good_age_s" and v < 0:  # never answered yet: no age to report
                    out.append(Sample(f"{self.device_id}.{name}", now_ms, None, Quality.COMM))
                else:
                    out.append(Sample(f"{self.device_id}.{name}", now_ms, v, Quality.GOOD))
                self._sent[name] = v
        if minute:
            self._last_emit_ms = now_ms
        return out
