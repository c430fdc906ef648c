"""``facility simulate``: every configured device played by a pymodbus server on loopback.

Units sharing a gateway port share one server. Values are computed when read
(:mod:`sensors.simulator_physics`); particle counters keep a record ring buffer with the
reference semantics (status bits, *new data* cleared when a record is read, the record
index register 40025 as the only writable register; every write is logged in
:attr:`Simulator.writes` so tests can prove nothing else is ever written).

Scenarios (per device, device=None picks the demo target or all applicable devices):
normal, door-open, particle-excursion, gas-leak, counter-offline (stops answering, keeps
recording, comes back), offline (same for any device), flow-fault, garbage (sentinels,
NaN, device-error records), slow-device (answers after ``slow_s`` = 5 s), exceptions
(answers with Modbus exception 4). :meth:`Simulator.refuse` closes a port's listener
(connections refused) and :meth:`Simulator.accept` opens it again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
import time
import zlib
from functools import partial

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from facility.config.schema import Config, Device
from facility.domain.errors import RuntimeFailure, UsageError
from facility.domain.vocab import ZONE_MODES
from sensors.points import PointDef, device_points
from sensors.profiles import load_profile
from sensors.registers import encode
from sensors.simulator_physics import MODE_RAMP_S, CounterModel, live_value, mode_clock, zone_iso

log = logging.getLogger("sensors.simulator")
if logging.getLogger("pymodbus").level == logging.NOTSET:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

SCENARIOS = ("normal", "door-open", "particle-excursion", "gas-leak", "counter-offline", "offline",
             "flow-fault", "garbage", "slow-device", "exceptions")
# The demo's story (docs/ARCHITECTURE.md `facility demo`): (seconds from start, scenario, target).
DEMO_TIMELINE = [(10, "door-open", None), (30, "normal", None), (25, "particle-excursion", None),
                 (45, "normal", None), (40, "gas-leak", None), (60, "normal", None)]
HOLDING_SIZE, INPUT_SIZE, BITS_SIZE = 128, 2048, 64


class SimUnit:
    """One simulated device: its register images, physics and scenario."""

    def __init__(self, sim: "Simulator", dev: Device):
        self.sim = sim
        self.dev = dev
        self.scenario = "normal"
        self.rng = random.Random(zlib.crc32(f"{sim.seed}:{dev.id}".encode()))
        self.points: list[PointDef] = [p for p in device_points(sim.cfg, dev.id) if p.polled]
        prof = load_profile(dev.profile) if dev.profile else None
        self.cmap = prof.counter if prof is not None else None
        self.counter: CounterModel | None = None
        if self.cmap is not None:
            zone = next((z for z in sim.cfg.zones if z.id == dev.zone), None)
            # counts follow the zone's mode (docs/ARCHITECTURE.md "Particle counts"): what its
            # schedule says, or what set_mode() was told
            record_s = sim.record_s if sim.record_s is not None else (
                (dev.sample_s or self.cmap.record_interval_s) / sim.speed)
            self.counter = CounterModel(
                tuple(c.size_um for c in self.cmap.channels), zone_iso(zone), self.rng, record_s,
                sim.hold_s, sim.buffer_size, mode_at=mode_clock(sim.cfg, zone, sim.modes),
                mode_iso={m: zone_iso(zone, m) for m in ZONE_MODES}, ramp_s=sim.ramp_s)
            self.counter.prefill(sim.now_s(), sim.prefill)
        self.disabled_channels: set[float] = set()
        self.reads = 0

    # -------------------------------------------------------------- register images
    def _fill_live(self, fc: int, regs: list[int], t: float) -> None:
        table = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}[fc]
        bitwords: dict[int, int] = {}
        for p in self.points:
            if p.table != table:
                continue
            v = live_value(self.sim.cfg, self.dev, p.name, p.quantity, p.measures, t, self.rng,
                           self.scenario, p.limits)
            if table in ("coil", "discrete"):
                word, bit = divmod(p.address, 16)
                regs[word] = (regs[word] & ~(1 << bit)) | (int(bool(v)) << bit)
                continue
            if p.bit is not None:
                bitwords[p.address] = bitwords.get(p.address, 0) | (int(bool(v)) << p.bit)
                continue
            if self.scenario == "garbage":
                if p.nan:
                    regs[p.address:p.address + 1] = [p.nan[0] & 0xFFFF]
                    if p.type in ("int32", "uint32", "float32", "int64", "uint64", "float64"):
                        n = 2 if p.type.endswith("32") else 4
                        regs[p.address:p.address + n] = [p.nan[0] & 0xFFFF] * n if p.nan[0] <= 0xFFFF \
                            else encode(p.nan[0], "uint32" if n == 2 else "uint64", "ABCD")
                    continue
                if p.type.startswith("float"):
                    v = math.nan
            words = encode(float(v), p.type, p.order, scale=p.scale, offset=p.offset, count=p.count)
            regs[p.address:p.address + len(words)] = words
        for addr, word in bitwords.items():
            regs[addr] = word

    def _fill_counter_holding(self, regs: list[int], now_s: float) -> None:
        m, c = self.cmap, self.counter
        c.catch_up(now_s, self.scenario)
        status = 0b11 | (4 if c.new_data else 0)
        if self.scenario == "flow-fault":
            status |= 1 << m.bits["flow"]
        if self.scenario == "garbage":
            status |= 1 << m.bits["device_error"]
        flow = 0.7 if self.scenario == "flow-fault" else c.flow_cfm
        last = c.buffer[-1].ts_s if c.buffer else 0
        regs[m.map_version] = 150
        regs[m.status] = status
        regs[m.flow] = int(round(flow * 100))
        regs[m.record_count] = len(c.buffer)
        regs[m.record_index] = c.index & 0xFFFF
        regs[m.rtc:m.rtc + 2] = encode(int(now_s + self.sim.clock_skew_s.get(self.dev.id, 0)), "int32")
        regs[m.hold_time:m.hold_time + 2] = encode(int(c.hold_s), "uint32")
        regs[m.sample_time:m.sample_time + 2] = encode(int(c.sample_s), "uint32")
        regs[m.ext_status] = 0
        regs[m.last_sample_ts:m.last_sample_ts + 2] = encode(last, "int32")

    def _fill_counter_input(self, regs: list[int], address: int, count: int, now_s: float) -> None:
        m, c = self.cmap, self.counter
        c.catch_up(now_s, self.scenario)
        end = address + count
        if address < m.record_ts + m.record_len and end > m.record_ts:
            rec = c.record(c.index)
            if rec is None:
                regs[m.record_ts:m.record_ts + m.record_len] = [0] * m.record_len
            else:
                b = m.record_ts
                regs[m.record_ts - b:m.record_ts - b + 2] = encode(rec.ts_s, "int32")
                regs[m.record_sample_time - b:m.record_sample_time - b + 2] = encode(rec.sample_time_s, "uint32")
                regs[m.record_location - b:m.record_location - b + 2] = encode(rec.location, "int32")
                regs[m.record_status - b:m.record_status - b + 2] = encode(rec.status, "uint32")
                for ch, n in zip(m.channels, rec.counts):
                    val = 0xDEAD if ch.size_um in self.disabled_channels else n  # garbage if disabled
                    regs[ch.address:ch.address + 2] = encode(val, "uint32")
                if c.index == -1 or c.record(-1) is rec:
                    c.new_data = False  # reading the record clears "new data"
        for ch in m.channels:
            en = 0 if ch.size_um in self.disabled_channels else 0xFFFFFFFF
            regs[ch.enable_address:ch.enable_address + 2] = encode(en, "uint32")
            tag = f"{ch.size_um:g}".ljust(4)[:4]
            regs[m.type_base + ch.address:m.type_base + ch.address + 2] = encode(tag, "string", count=2)

    # -------------------------------------------------------------- the pymodbus action
    async def action(self, fc: int, start: int, address: int, count: int, regs: list[int],
                     values) -> ExcCodes | None:
        """Called by pymodbus for every request to this unit."""
        self.reads += 1
        sc = self.scenario
        if sc in ("offline", "counter-offline"):
            if self.counter is not None:
                self.counter.catch_up(self.sim.now_s(), sc)  # keeps recording
            raise NoSuchIdException(f"{self.dev.id} is offline")  # no answer at all
        if sc == "slow-device":
            await asyncio.sleep(self.sim.slow_s)
        if sc == "exceptions":
            return ExcCodes.DEVICE_FAILURE
        now_s = self.sim.now_s()
        if fc in (5, 6, 15, 16):
            if values is None:
                return None  # pymodbus re-reads the written register to build the reply
            self.sim.writes.append((self.dev.id, address, list(values)))
            if self.cmap is None or address != self.cmap.record_index or len(values) != 1:
                return ExcCodes.ILLEGAL_ADDRESS  # no setting is writable in the simulator
            idx = values[0] - 0x10000 if values[0] & 0x8000 else values[0]
            if idx != -1 and not 0 <= idx < len(self.counter.buffer):
                return ExcCodes.ILLEGAL_VALUE
            self.counter.index = idx
            return None
        if self.counter is not None:
            if fc == 3:
                self._fill_counter_holding(regs, now_s)
            elif fc == 4:
                self._fill_counter_input(regs, address, count, now_s)
            return None
        self._fill_live(fc, regs, now_s - self.sim.start_s)
        return None

    def sim_device(self) -> SimDevice:
        """The pymodbus device: four blocks (coils, discrete, holding, input) and the action."""
        def bits():
            return [SimData(0, count=BITS_SIZE, values=False, datatype=DataType.BITS)]
        return SimDevice(self.dev.unit, simdata=(
            bits(), bits(),
            [SimData(0, count=HOLDING_SIZE, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=INPUT_SIZE, values=0, datatype=DataType.REGISTERS)]),
            action=partial(SimUnit.action, self))


MAX_SPEED = 10_000.0
"""The fastest time acceleration: beyond it a scan's simulated minutes collapse below the
event loop's resolution."""


class Simulator:
    """Serve every configured device (tests: ``ephemeral=True``, then :meth:`client_config`).

    ``ports`` maps a configured port to the port to bind (0 = ephemeral); ``port_offset``
    shifts every configured port; :attr:`bound` maps configured port -> actual port.
    """

    def __init__(self, cfg: Config, scenario: str = "normal", seed: int = 0, speed: float = 1.0,
                 bind: str = "127.0.0.1", port_offset: int = 0, ports: dict[int, int] | None = None,
                 ephemeral: bool = False, record_s: float | None = None, hold_s: float = 0.0,
                 buffer_size: int = 500, prefill: int = 10, slow_s: float = 5.0,
                 devices: list[str] | None = None, clock=None):
        """``clock``: a function returning the simulated wall clock in Unix s (default
        ``time.time``): tests drive the physics in simulated time with it."""
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario {scenario!r} is unknown; use one of {', '.join(SCENARIOS)}")
        if not (isinstance(speed, (int, float)) and math.isfinite(speed) and 0 < speed <= MAX_SPEED):
            raise UsageError(f"--speed {speed!r} is not allowed; a time acceleration > 0 and at"
                             f" most {MAX_SPEED:g}, e.g. 1 (real time) or 60")
        self.cfg = cfg
        self.seed, self.speed, self.bind = seed, speed, bind
        self.port_offset, self.ports, self.ephemeral = port_offset, dict(ports or {}), ephemeral
        # record_s None: each counter records every sample_s of its config (else the
        # profile's interval); a number plays every counter at that record time
        self.record_s = None if record_s is None else record_s / speed
        self.hold_s = hold_s / speed
        self.modes: dict[str, str] = {}  # zone -> mode set_mode() forces (else its schedule)
        self.ramp_s = MODE_RAMP_S / speed
        self.buffer_size, self.prefill, self.slow_s = buffer_size, prefill, slow_s
        self._clock = clock or time.time
        self.start_s = self._clock()
        self.writes: list[tuple[str, int, list[int]]] = []
        self.clock_skew_s: dict[str, float] = {}
        chosen = [d for d in cfg.devices if devices is None or d.id in devices]
        self.units: dict[str, SimUnit] = {d.id: SimUnit(self, d) for d in chosen}
        self.bound: dict[int, int] = {}
        self._servers: dict[int, ModbusTcpServer] = {}
        self._tasks: list[asyncio.Task] = []
        self._initial = scenario

    def now_s(self) -> float:
        """Simulated wall clock (Unix s); instrument clocks and record times use it."""
        return self._clock()

    # -------------------------------------------------------------- servers
    def _port_units(self, cfg_port: int) -> list[SimUnit]:
        return [u for u in self.units.values() if u.dev.port == cfg_port]

    def _bind_port(self, cfg_port: int) -> int:
        if cfg_port in self.bound:
            return self.bound[cfg_port]
        if cfg_port in self.ports:
            return self.ports[cfg_port]
        return 0 if self.ephemeral else cfg_port + self.port_offset

    async def _listen(self, cfg_port: int) -> None:
        server = ModbusTcpServer([u.sim_device() for u in self._port_units(cfg_port)],
                                 address=(self.bind, self._bind_port(cfg_port)),
                                 ignore_missing_devices=True)
        try:
            await server.serve_forever(background=True)
        except (RuntimeError, OSError) as exc:  # pymodbus wraps the OSError of bind()
            raise RuntimeFailure(
                f"cannot listen on {self.bind}:{self._bind_port(cfg_port)}: {str(exc).rstrip('.')}; the port is"
                " in use (another simulator?) or the address is not on this host") from None
        self.bound[cfg_port] = server.transport.sockets[0].getsockname()[1]
        self._servers[cfg_port] = server

    async def start(self) -> None:
        """Open one listener per configured port."""
        for port in sorted({u.dev.port for u in self.units.values()}):
            await self._listen(port)
        if self._initial != "normal":
            self.set_scenario(self._initial)
        log.info("simulating %d devices on %d ports", len(self.units), len(self._servers))

    async def stop(self) -> None:
        """Close every listener and cancel scheduled scenario changes."""
        for t in self._tasks:
            t.cancel()
        for server in list(self._servers.values()):
            await server.shutdown()
        self._servers.clear()

    async def refuse(self, device_id: str) -> None:
        """Close the listener (and its connections) of the device's port: connections refused."""
        port = self.units[device_id].dev.port
        server = self._servers.pop(port, None)
        if server is not None:
            await server.shutdown()
            for handler in list(getattr(server, "active_connections", {}).values()):
                handler.close()

    async def accept(self, device_id: str) -> None:
        """Listen again on the device's port (same port number)."""
        port = self.units[device_id].dev.port
        if port not in self._servers:
            await self._listen(port)

    def port_of(self, device_id: str) -> int:
        """The actual port a device is served on."""
        return self.bound[self.units[device_id].dev.port]

    def client_config(self, cfg: Config | None = None) -> Config:
        """``cfg`` with each device's host/port replaced by where this simulator serves it."""
        cfg = cfg or self.cfg
        devs = tuple(dataclasses.replace(d, host=self.bind if self.bind not in ("0.0.0.0", "") else "127.0.0.1",
                                         port=self.bound.get(d.port, d.port)) for d in cfg.devices)
        return dataclasses.replace(cfg, devices=devs)

    # -------------------------------------------------------------- scenarios
    def _targets(self, scenario: str, device: str | None) -> list[SimUnit]:
        units = list(self.units.values())
        if device is not None:
            picked = [u for u in units if u.dev.id == device or u.dev.zone == device]
            if not picked:
                raise KeyError(f"no simulated device or zone {device!r}")
            return picked
        if scenario == "door-open":
            zone = next((p.between.split(" - ")[0] for u in units for p in u.points
                         if p.quantity == "door" and p.between), None)
            return [u for u in units if u.dev.zone == zone or any(
                p.quantity == "door" and p.between and p.between.startswith(f"{zone} ") for p in u.points)]
        if scenario == "particle-excursion":
            return [u for u in units if u.counter is not None][:1]
        if scenario == "gas-leak":
            return [u for u in units if u.dev.profile == "gas-detector"][:1]
        if scenario in ("counter-offline", "flow-fault"):
            return [u for u in units if u.counter is not None]
        return units

    def set_scenario(self, scenario: str, device: str | None = None) -> list[str]:
        """Switch devices to ``scenario`` now; returns the device ids affected.

        ``device`` is a device id or a zone id; None picks the demo target (door-open: the
        first zone with a door contact; particle-excursion: the first counter; gas-leak: the
        first gas detector) or every applicable device (normal and failure scenarios).
        """
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario {scenario!r} is unknown; use one of {', '.join(SCENARIOS)}")
        targets = self._targets(scenario, device)
        for u in targets:
            if u.counter is not None:
                u.counter.catch_up(self.now_s(), u.scenario)
            u.scenario = scenario
        log.info("scenario %s on %s", scenario, ", ".join(u.dev.id for u in targets))
        return [u.dev.id for u in targets]

    def set_mode(self, zone_id: str, mode: str | None) -> None:
        """Play ``zone_id``'s rooms in ``mode`` from now on (None: back to its schedule), as a
        room's occupancy changes when the operator records it with ``facility mode``."""
        if mode is not None and mode not in ZONE_MODES:
            raise ValueError(f"mode {mode!r} is unknown; use one of {', '.join(ZONE_MODES)}")
        if not any(z.id == zone_id for z in self.cfg.zones):
            raise KeyError(f"no zone {zone_id!r}")
        for u in self.units.values():
            if u.counter is not None and u.dev.zone == zone_id:
                u.counter.catch_up(self.now_s(), u.scenario)  # records so far keep the old mode
        if mode is None:
            self.modes.pop(zone_id, None)
        else:
            self.modes[zone_id] = mode

    def schedule(self, timeline: list[tuple[float, str, str | None]]) -> asyncio.Task:
        """Run ``[(t_s, scenario, device), ...]`` (seconds from now, divided by speed)."""
        async def run():
            t0 = time.monotonic()
            for t_s, scenario, device in sorted(timeline, key=lambda e: e[0]):
                delay = t_s / self.speed - (time.monotonic() - t0)
                if delay > 0:
                    await asyncio.sleep(delay)
                self.set_scenario(scenario, device)
        task = asyncio.create_task(run())
        self._tasks.append(task)
        return task

    async def __aenter__(self) -> "Simulator":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


async def run_simulator(cfg: Config, scenario: str = "normal", seed: int = 0, speed: float = 1.0,
                        bind: str = "127.0.0.1", port_offset: int = 0,
                        stop_event: asyncio.Event | None = None,
                        timeline: list[tuple[float, str, str | None]] | None = None,
                        record_s: float | None = None) -> None:
    """``facility simulate``: serve every device until ``stop_event`` is set (or cancelled)."""
    sim = Simulator(cfg, scenario=scenario, seed=seed, speed=speed, bind=bind,
                    port_offset=port_offset, record_s=record_s)
    try:
        await sim.start()
        if timeline:
            sim.schedule(timeline)
        await (stop_event or asyncio.Event()).wait()
    finally:
        await sim.stop()
