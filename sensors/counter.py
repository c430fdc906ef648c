"""Record-based particle counters: new records, backfill, lost records, conflicts, clock.

Implements the reference's "What a monitoring system does" (reference/particle-counter-
modbus.md) for instruments that store one data record per sample time:

1. Each scan reads the holding block 40001-40061 (status, flow, record count, clock, hold and
   sample time, timestamp of the last sample). A new record exists when 40060-61 is newer than
   the newest stored record (the *new data* bit is not trusted: another client clears it).
2. New records are found by walking the record index back from the latest (-1), reading each
   record's own timestamp, until reaching the newest stored one; they are emitted oldest
   first, timestamped with the RECORD's timestamp. When even the oldest buffered record is
   newer than the newest stored one by more than one record interval, records were lost:
   ``<dev>.records_lost`` carries the lost period in seconds (and the log names it).
3. A re-read of a stored record with different values is a record conflict:
   ``<dev>.record_conflict`` carries the number of conflicting records (first wins).
4. Concentration per m^3 = count / (flow_cfm x 28.3168 L x sample_time_s / 60) x 1000 with the
   record's own sample time and the instrument's flow (40023); cumulative channels are the sum
   of the enabled differential channels at and above the size. A channel whose enable register
   (31xxx) is 0 is not a point: no samples are produced for it.
5. Records whose status says device error or flow out of spec, and all records while the
   instrument clock is off by more than ``clock_tolerance_s``, have quality BAD;
   ``<dev>.clock_fault`` is 1 while the clock is off.

Event points (``records_lost``, ``record_conflict``, ``clock_fault``) are emitted every scan at
the scan time (0 = nothing happened) so the alarm side can raise and clear instrument alarms.
The newest stored record time is restorable: pass ``last_record_ts_ms`` (from the database).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from facility.config.schema import Device
from facility.domain.model import Quality, Sample, iso_ms, round_to
from sensors.modbus import CounterClient
from sensors.points import size_tag

log = logging.getLogger("sensors.counter")

CUBIC_FOOT_L = 28.3168  # litres per cubic foot (1 CFM = 28.3168 L/min)


def u32(hi: int, lo: int) -> int:
    """Two registers, high word first (ABCD), as unsigned."""
    return (hi << 16) | lo


def i32(hi: int, lo: int) -> int:
    """Two registers, high word first (ABCD), as signed."""
    v = u32(hi, lo)
    return v - (1 << 32) if v & 0x80000000 else v


def concentration_per_m3(count: float, flow_cfm: float, sample_time_s: float) -> float | None:
    """Particles per m^3 from a record count; None when the sampled volume is not positive."""
    volume_l = flow_cfm * CUBIC_FOOT_L * sample_time_s / 60.0
    if volume_l <= 0:
        return None
    return count / volume_l * 1000.0


@dataclass(frozen=True)
class Record:
    """One data record as read from the 3xxxx registers."""

    ts_s: int  # instrument clock, Unix s (UTC or local, per the device's clock)
    sample_time_s: int
    location: int
    status: int
    counts: tuple[int, ...]  # differential count per channel, profile channel order


@dataclass(frozen=True)
class HoldingState:
    """What one read of 40001-40061 says."""

    map_version: int
    status: int
    flow_cfm: float
    record_count: int
    record_index: int
    rtc_s: int
    hold_time_s: int
    sample_time_s: int
    ext_status: int
    last_sample_ts_s: int


class Counter:
    """State and scan logic of one record-based particle counter."""

    def __init__(self, device: Device, client: CounterClient, timezone: str = "UTC",
                 clock_tolerance_s: float = 120.0, last_record_ts_ms: int | None = None,
                 conflict_memory: int = 2000):
        self.device = device
        self.client = client
        self.map = client.map
        self.tz = ZoneInfo(timezone)
        self.clock_tolerance_s = clock_tolerance_s
        self.newest_ms = last_record_ts_ms
        self.enabled: tuple[bool, ...] | None = None
        self.stale_after_s = 3 * self.map.record_interval_s
        self._seen: OrderedDict[int, tuple] = OrderedDict()  # ts_ms -> record values
        self._memory = conflict_memory
        self.stored_records = 0

    # ------------------------------------------------------------------ helpers
    def to_utc_ms(self, instrument_s: int) -> int:
        """Instrument clock seconds -> UTC ms (a local clock is read in the site's zone)."""
        if self.device.clock == "local":
            naive = datetime.fromtimestamp(instrument_s, timezone.utc).replace(tzinfo=None)
            return int(naive.replace(tzinfo=self.tz).timestamp() * 1000)
        return instrument_s * 1000

    @property
    def no_channels(self) -> bool:
        """True when the last channel-enable read found every channel disabled."""
        return self.enabled is not None and not any(self.enabled)

    def _parse_holding(self, h: list[int]) -> HoldingState:
        m = self.map
        idx = h[m.record_index]
        return HoldingState(
            map_version=h[m.map_version], status=h[m.status], flow_cfm=h[m.flow] / 100.0,
            record_count=h[m.record_count], record_index=idx - 0x10000 if idx & 0x8000 else idx,
            rtc_s=i32(h[m.rtc], h[m.rtc + 1]), hold_time_s=u32(h[m.hold_time], h[m.hold_time + 1]),
            sample_time_s=u32(h[m.sample_time], h[m.sample_time + 1]), ext_status=h[m.ext_status],
            last_sample_ts_s=i32(h[m.last_sample_ts], h[m.last_sample_ts + 1]))

    def _parse_record(self, r: list[int]) -> Record:
        m, b = self.map, self.map.record_ts
        def at(a: int) -> tuple[int, int]:
            return r[a - b], r[a - b + 1]
        return Record(ts_s=i32(*at(m.record_ts)), sample_time_s=u32(*at(m.record_sample_time)),
                      location=i32(*at(m.record_location)), status=u32(*at(m.record_status)),
                      counts=tuple(u32(*at(ch.address)) for ch in m.channels))

    def _bit(self, word: int, name: str) -> int:
        return (word >> self.map.bits[name]) & 1

    async def _read_record(self, index: int) -> Record:
        await self.client.select_record(index)
        regs = await self.client.read("input", self.map.record_ts, self.map.record_len)
        return self._parse_record(regs)

    async def _read_enabled(self) -> tuple[bool, ...]:
        chans = self.map.channels
        first = min(c.enable_address for c in chans)
        last = max(c.enable_address for c in chans) + 2
        regs = await self.client.read("input", first, last - first)
        return tuple(u32(regs[c.enable_address - first], regs[c.enable_address - first + 1]) != 0
                     for c in chans)

    # ------------------------------------------------------------------ samples
    def record_samples(self, rec: Record, flow_cfm: float, clock_bad: bool) -> list[Sample]:
        """Cumulative count and concentration samples of one record, at the record's time."""
        ts = self.to_utc_ms(rec.ts_s)
        bad = clock_bad or self._bit(rec.status, "device_error") or self._bit(rec.status, "flow")
        q = Quality.BAD if bad else Quality.GOOD
        enabled = self.enabled or tuple(True for _ in rec.counts)
        out = []
        for i, ch in enumerate(self.map.channels):
            if not enabled[i]:
                continue  # a disabled channel is not a point (it returns garbage)
            cum = sum(c for c, en in zip(rec.counts[i:], enabled[i:]) if en)
            tag, dev = size_tag(ch.size_um), self.device.id
            out.append(Sample(f"{dev}.count_{tag}", ts, float(cum), q))
            conc = concentration_per_m3(cum, flow_cfm, rec.sample_time_s)
            if conc is None:
                out.append(Sample(f"{dev}.pc_{tag}", ts, None, Quality.BAD))
            else:
                out.append(Sample(f"{dev}.pc_{tag}", ts, round_to(conc, 1), q))
        return out

    def _remember(self, ts_ms: int, rec: Record) -> bool:
        """Remember a stored record; False when a different record had this time (conflict)."""
        key = (rec.sample_time_s, rec.location, rec.status, rec.counts)
        old = self._seen.get(ts_ms)
        if old is not None:
            return old == key
        self._seen[ts_ms] = key
        while len(self._seen) > self._memory:
            self._seen.popitem(last=False)
        return True

    # ------------------------------------------------------------------ the scan
    async def scan(self, now_ms: int) -> list[Sample]:
        """One scan: status points, new (and backfilled) records, events. Raises ReadFailure."""
        start, count = self.map.holding_span
        h = self._parse_holding(await self.client.read("holding", start, count))
        self.stale_after_s = 3 * max(1, h.sample_time_s + h.hold_time_s)
        dev = self.device.id
        offset_s = self.to_utc_ms(h.rtc_s) / 1000.0 - now_ms / 1000.0
        clock_bad = abs(offset_s) > self.clock_tolerance_s
        if self.no_channels:
            self.enabled = await self._read_enabled()  # re-read until a channel is usable
        sampling = self._bit(h.status, "running") and self._bit(h.status, "sampling")
        laser = self._bit(h.status, "laser") or (h.ext_status & 1)
        out = [
            Sample(f"{dev}.flow_cfm", now_ms, round_to(h.flow_cfm, 2), Quality.GOOD),
            Sample(f"{dev}.flow_fault", now_ms, float(self._bit(h.status, "flow")), Quality.GOOD),
            Sample(f"{dev}.laser_fault", now_ms, float(bool(laser)), Quality.GOOD),
            Sample(f"{dev}.service_due", now_ms, float(self._bit(h.status, "service_due")), Quality.GOOD),
            Sample(f"{dev}.device_error", now_ms, float(self._bit(h.status, "device_error")), Quality.GOOD),
            Sample(f"{dev}.clock_offset_s", now_ms, float(round(offset_s)), Quality.GOOD),
            Sample(f"{dev}.clock_fault", now_ms, float(clock_bad), Quality.GOOD),
            Sample(f"{dev}.sample_time_s", now_ms, float(h.sample_time_s), Quality.GOOD),
            Sample(f"{dev}.hold_time_s", now_ms, float(h.hold_time_s), Quality.GOOD),
        ]
        lost_s, conflicts, records = 0.0, 0, []
        last_ms = self.to_utc_ms(h.last_sample_ts_s)
        if h.record_count > 0 and (self.newest_ms is None or last_ms > self.newest_ms):
            self.enabled = await self._read_enabled()  # channels may be re-configured any time
            records, lost_s, conflicts = await self._collect(h)
        for rec in records:
            ts = self.to_utc_ms(rec.ts_s)
            self._remember(ts, rec)
            out.extend(self.record_samples(rec, h.flow_cfm, clock_bad))
            self.newest_ms = ts if self.newest_ms is None else max(self.newest_ms, ts)
            self.stored_records += 1
        # no usable channel (all read "disabled") counts as not sampling: nothing it
        # records is a particle measurement (docs/ARCHITECTURE.md "Particle counts")
        out.append(Sample(f"{dev}.not_sampling", now_ms, float(not sampling or self.no_channels),
                          Quality.GOOD))
        out.append(Sample(f"{dev}.records_lost", now_ms, float(round(lost_s)), Quality.GOOD))
        out.append(Sample(f"{dev}.record_conflict", now_ms, float(conflicts), Quality.GOOD))
        return out

    async def _collect(self, h: HoldingState) -> tuple[list[Record], float, int]:
        """Walk back from the latest record to the newest stored one; oldest first."""
        newest = self.newest_ms
        found: dict[int, Record] = {}
        conflicts = 0
        reached = False
        interval_s = max(1, h.sample_time_s + h.hold_time_s)
        oldest_ms = None
        for k in range(h.record_count):
            index = -1 if k == 0 else h.record_count - 1 - k
            rec = await self._read_record(index)
            ts = self.to_utc_ms(rec.ts_s)
            oldest_ms = ts if oldest_ms is None else min(oldest_ms, ts)
            if newest is None:  # first start without stored state: the latest record only
                found[ts] = rec
                reached = True
                break
            if ts <= newest:
                if ts in self._seen and not self._remember(ts, rec):
                    conflicts += 1
                    log.warning("%s: record conflict: record of %s re-read with different values"
                                " (first stored wins)", self.device.id, iso_ms(ts))
                reached = True
                break
            if ts in found and found[ts] != rec:
                conflicts += 1
            found.setdefault(ts, rec)
        lost_s = 0.0
        if not reached and newest is not None and oldest_ms is not None:
            gap_s = (oldest_ms - newest) / 1000.0
            if gap_s > 1.5 * interval_s:
                lost_s = gap_s - interval_s
                log.warning("%s: records lost: the buffer wrapped; nothing recorded between %s and %s"
                            " (%.0f s)", self.device.id, iso_ms(newest), iso_ms(oldest_ms), lost_s)
        if len(found) > 1:
            log.info("%s: backfilled %d records from %s to %s", self.device.id, len(found),
                     iso_ms(min(found)), iso_ms(max(found)))
        return [found[t] for t in sorted(found)], lost_s, conflicts
