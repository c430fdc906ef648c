"""The only user of pymodbus's client: reads with timeouts, retries and reconnect backoff.

* One :class:`Connection` per host:port, shared under an ``asyncio.Lock`` by every unit
  behind that gateway; a request never interleaves with another on the same socket.
* Failures are classified, never turned into numbers: no answer -> ``timeout`` (quality
  COMM), connection refused / not connected -> ``refused`` (COMM), a Modbus exception
  response -> ``exception`` (quality BAD), a malformed answer -> ``decode`` (BAD).
* After a timeout the socket is closed: a late answer must not be taken for the answer
  to the next request. Reconnects back off exponentially up to ``max_backoff_s``.
* The write path is structural: :class:`UnitClient` and :class:`Connection` have no
  write method at all. The only write in the project is
  :meth:`CounterClient.select_record`, which writes the profile's fixed record-index
  address (40025 -> protocol address 24) after checking the register-map version, and
  verifies it by reading it back (reference "What a monitoring system does", step 3).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from facility.config.schema import Device
from sensors.profiles import CounterMap, load_profile

log = logging.getLogger(__name__)
if logging.getLogger("pymodbus").level == logging.NOTSET:
    # pymodbus logs every timeout at ERROR; the poller logs once per failure itself.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

FAILURE_KINDS = ("timeout", "refused", "exception", "decode")
COMM_KINDS = ("timeout", "refused")  # no answer: quality COMM; the others are BAD

# Timing. pymodbus 3.16 enforces a device's ``timeout_s`` itself: ``connect()`` wraps the
# TCP connect in ``asyncio.wait_for(..., comm_params.timeout_connect)`` and each request
# waits for its response for the same ``timeout_connect`` (``TransactionManager.execute``),
# then raises ``ModbusIOException``. Our own ``wait_for`` around both is a backstop for a
# call pymodbus never finishes (a transport stuck under its internal lock): it must fire
# *after* pymodbus's timer, so that the normal failure is pymodbus's, and soon enough not to
# cost a second scan. Measured on a loaded 2-core host (load 3.8, timeout 0.3 s, loopback
# server that accepts and never answers / a listener with a full backlog): pymodbus's
# request timeout fired 0.7 ms late at the median and 5.7 ms at worst over 40 reads, its
# connect timeout 1.0 ms / 5.0 ms over 15 connects. The margins are ~50x that worst case.
REQUEST_BACKSTOP_S = 0.25
"""Added to ``timeout_s`` for our ``wait_for`` around one request (see above)."""
CONNECT_BACKSTOP_S = 0.5
"""Added to ``timeout_s`` for our ``wait_for`` around a connect: larger than the request
margin because a connect also resolves the host and sets up the transport."""

BASE_BACKOFF_S = 0.5
"""First wait after a failed connect: the default ``timeout_s`` (README.md "A tour of config.toml"
``[[devices]]``), so a refused gateway is not retried faster than one request could time
out, and a transient drop costs about one scan."""
MAX_BACKOFF_S = 30.0
"""Cap of the doubling wait: a dead gateway is tried twice a minute, so its return is seen
within 30 s while it costs one connect attempt per 30 s instead of one per scan."""

REGISTER_MASK = 0xFFFF
"""A holding register is 16 bits (MODBUS Application Protocol v1.1b3, 4.3 "Data model")."""
RECORD_INDEX_MIN, RECORD_INDEX_MAX = -1, 0x7FFF
"""The record index register 40025 is signed 16-bit: -1 selects the latest record, 0 the
oldest, up to the largest positive int16 (reference "how a real remote particle counter
speaks Modbus", register 40025)."""


class ReadFailure(Exception):
    """A read that produced no data: ``kind`` is timeout | refused | exception | decode."""

    def __init__(self, kind: str, message: str, code: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.code = code  # Modbus exception code for kind "exception"


class WriteRefused(Exception):
    """A write the system will not do (anything but a verified record selection)."""


@dataclass
class Connection:
    """One TCP connection to host:port, shared by the units behind it."""

    host: str
    port: int
    base_backoff_s: float = BASE_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _client: AsyncModbusTcpClient | None = None
    _next_try: float = 0.0
    _backoff: float = 0.0
    connects: int = 0

    @property
    def connected(self) -> bool:
        """True while a socket is open."""
        return self._client is not None and self._client.connected

    async def _ensure(self, timeout_s: float) -> AsyncModbusTcpClient:
        if self.connected:
            return self._client
        now = time.monotonic()
        if now < self._next_try:
            raise ReadFailure("refused", f"{self.host}:{self.port} not connected; retry in"
                              f" {self._next_try - now:.1f} s (backoff)")
        self.close()
        client = AsyncModbusTcpClient(self.host, port=self.port, timeout=timeout_s, retries=0,
                                      reconnect_delay=0, reconnect_delay_max=0)
        try:
            ok = await asyncio.wait_for(client.connect(), timeout_s + CONNECT_BACKSTOP_S)
        except (asyncio.TimeoutError, OSError, ConnectionException):
            ok = False
        if not ok:
            client.close()
            self._backoff = min(self.max_backoff_s, max(self.base_backoff_s, self._backoff * 2))
            self._next_try = time.monotonic() + self._backoff
            raise ReadFailure("refused", f"cannot connect to {self.host}:{self.port}")
        self._client, self._backoff, self._next_try = client, 0.0, 0.0
        self.connects += 1
        return client

    def close(self) -> None:
        """Close the socket (the next request reconnects, subject to backoff)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _request(self, unit: int, table: str, address: int, count: int,
                       timeout_s: float, retries: int, *, _write: int | None = None) -> list:
        """One read (or the record-index write) with timeout and bounded retries.

        Callers must hold :attr:`lock`.
        """
        attempt = 0
        while True:
            client = await self._ensure(timeout_s)
            client.ctx.comm_params.timeout_connect = timeout_s
            try:
                if _write is not None:
                    call = client.write_register(address, _write, device_id=unit)
                elif table == "holding":
                    call = client.read_holding_registers(address, count=count, device_id=unit)
                elif table == "input":
                    call = client.read_input_registers(address, count=count, device_id=unit)
                elif table == "coil":
                    call = client.read_coils(address, count=count, device_id=unit)
                elif table == "discrete":
                    call = client.read_discrete_inputs(address, count=count, device_id=unit)
                else:
                    raise ReadFailure("decode", f"table={table!r} is not readable")
                rr = await asyncio.wait_for(call, timeout_s + REQUEST_BACKSTOP_S)
            except (asyncio.TimeoutError, ModbusException, OSError) as exc:
                self.close()  # a late answer must not match the next request
                kind = "refused" if isinstance(exc, ConnectionException) else "timeout"
                if attempt >= retries:
                    raise ReadFailure(kind, f"{self.host}:{self.port} unit {unit} {table}@{address}:"
                                      f" no answer within {timeout_s:g} s ({exc.__class__.__name__})") from None
                attempt += 1
                continue
            if rr.isError():
                code = getattr(rr, "exception_code", None)
                raise ReadFailure("exception", f"{self.host}:{self.port} unit {unit} {table}@{address}:"
                                  f" Modbus exception {code}", code)
            if _write is not None:
                return []
            data = list(rr.bits[:count]) if table in ("coil", "discrete") else list(rr.registers)
            if len(data) != count:
                raise ReadFailure("decode", f"{self.host}:{self.port} unit {unit} {table}@{address}:"
                                  f" asked {count}, got {len(data)}")
            return data


class ConnectionPool:
    """Shares one :class:`Connection` per host:port."""

    def __init__(self, base_backoff_s: float = BASE_BACKOFF_S,
                 max_backoff_s: float = MAX_BACKOFF_S):
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._conns: dict[tuple[str, int], Connection] = {}

    def get(self, host: str, port: int) -> Connection:
        """The shared connection to host:port."""
        key = (host, port)
        if key not in self._conns:
            self._conns[key] = Connection(host, port, self.base_backoff_s, self.max_backoff_s)
        return self._conns[key]

    def close(self) -> None:
        """Close every connection."""
        for c in self._conns.values():
            c.close()


class UnitClient:
    """Read-only access to one device (unit) over a shared connection. No write methods."""

    def __init__(self, conn: Connection, device: Device):
        self.conn = conn
        self.device = device
        self.last_latency_ms = 0.0

    async def read(self, table: str, address: int, count: int) -> list:
        """Read ``count`` registers/bits; raises :class:`ReadFailure`."""
        async with self.conn.lock:
            t0 = time.perf_counter()
            try:
                return await self.conn._request(self.device.unit, table, address, count,
                                                self.device.timeout_s, self.device.retries)
            finally:
                self.last_latency_ms = (time.perf_counter() - t0) * 1000.0

    async def read_each(self, requests) -> list[list | ReadFailure]:
        """Several reads (objects with table/address/count) under one hold of the lock.

        Each result is the data or the :class:`ReadFailure`; after a failure with no
        answer the remaining reads are not tried (they would only time out too).
        """
        out: list[list | ReadFailure] = []
        async with self.conn.lock:
            t0 = time.perf_counter()
            for i, rq in enumerate(requests):
                try:
                    out.append(await self.conn._request(self.device.unit, rq.table, rq.address,
                                                        rq.count, self.device.timeout_s,
                                                        self.device.retries))
                except ReadFailure as exc:
                    out.append(exc)
                    if exc.kind in COMM_KINDS:
                        out.extend([exc] * (len(requests) - i - 1))
                        break
            self.last_latency_ms = (time.perf_counter() - t0) * 1000.0
        return out


class CounterClient(UnitClient):
    """A record-based particle counter: reads, plus the one permitted write."""

    def __init__(self, conn: Connection, device: Device):
        super().__init__(conn, device)
        prof = load_profile(device.profile)
        if prof.counter is None:
            raise WriteRefused(f"{device.id}: profile {device.profile!r} is not a record-based counter")
        self.map: CounterMap = prof.counter
        self.map_version: int | None = None

    async def select_record(self, index: int) -> None:
        """Select which record the 3xxxx registers show (40025; 0 = oldest, -1 = latest).

        Writes only the profile's record-index address, only after the register-map
        version (40001) was read and is supported, and verifies by reading it back.
        """
        if not RECORD_INDEX_MIN <= index <= RECORD_INDEX_MAX:
            raise WriteRefused(f"{self.device.id}: record index {index} is out of range"
                               f" {RECORD_INDEX_MIN}..{RECORD_INDEX_MAX}")
        m = self.map
        address = m.record_index
        if address in (m.command, m.map_version, m.status):
            raise WriteRefused(f"{self.device.id}: record index address {address} collides with a"
                               " command/status register; check the profile")
        dev = self.device
        async with self.conn.lock:
            if self.map_version is None:
                (ver,) = await self.conn._request(dev.unit, "holding", m.map_version, 1,
                                                  dev.timeout_s, dev.retries)
                if ver < m.min_map_version:
                    raise WriteRefused(f"{dev.id}: register map version {ver} < {m.min_map_version};"
                                       " record selection not written")
                self.map_version = ver
            raw = index & REGISTER_MASK  # two's complement in one register: -1 -> 0xFFFF
            await self.conn._request(dev.unit, "holding", address, 1, dev.timeout_s, dev.retries,
                                     _write=raw)
            (back,) = await self.conn._request(dev.unit, "holding", address, 1, dev.timeout_s,
                                               dev.retries)
        if back != raw:
            raise ReadFailure("decode", f"{dev.id}: record index read back {back}, wrote {raw}"
                              " (another client moved it?)")
