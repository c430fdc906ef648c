"""Interoperability: the poller reads a Modbus server that is not pymodbus (pyModbusTCP)."""

import asyncio

import pytest
from pyModbusTCP.server import DataBank, ModbusServer

from facility.config import parse_config
from facility.domain.model import Quality
from sensors.poller import poll_once
from sensors.registers import encode

CFG = """
[facility]
id = "t"
[[sites]]
id = "S"
[[devices]]
id = "X"
site = "S"
host = "127.0.0.1"
port = {port}
timeout_s = 1.0
[[devices.points]]
name = "f"
table = "holding"
address = 0
type = "float32"
order = "CDAB"
unit = "Hz"
[[devices.points]]
name = "t"
table = "input"
address = 5
type = "int16"
scale = 0.1
[[devices.points]]
name = "big"
table = "holding"
address = 10
type = "uint64"
order = "DCBA"
[[devices.points]]
name = "d"
table = "discrete"
address = 3
type = "bool"
[[devices.points]]
name = "c"
table = "coil"
address = 1
type = "bool"
[[devices.points]]
name = "s"
table = "holding"
address = 20
type = "uint16"
nan = [65535]
"""


@pytest.fixture
def server():
    bank = DataBank()
    srv = ModbusServer("127.0.0.1", port=0, no_block=True, data_bank=bank)
    srv.start()
    yield srv, bank
    srv.stop()


async def test_poller_reads_pymodbustcp_server(server):
    srv, bank = server
    port = srv._service.server_address[1]
    bank.set_holding_registers(0, encode(49.75, "float32", "CDAB"))
    bank.set_input_registers(5, encode(-12.3, "int16", scale=0.1))
    bank.set_holding_registers(10, encode(0x0123456789ABCDEF, "uint64", "DCBA"))
    bank.set_holding_registers(20, [0xFFFF])
    bank.set_discrete_inputs(3, [True])
    bank.set_coils(1, [True])
    cfg = parse_config(CFG.format(port=port))
    got = {s.point: s for s in await asyncio.wait_for(poll_once(cfg), 5)}
    assert got["X.f"].value == 49.75 and got["X.f"].quality == Quality.GOOD
    assert got["X.t"].value == -12.3
    assert got["X.big"].value == float(0x0123456789ABCDEF)
    assert got["X.d"].value == 1.0 and got["X.c"].value == 1.0
    assert got["X.s"].value is None and got["X.s"].quality == Quality.BAD
    assert got["X.comm_ok"].value == 1
