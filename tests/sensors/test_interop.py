"""Interoperability: the poller reads a Modbus server that is not pymodbus (pyModbusTCP).

The foreign server is loaded with literal register words, worked out by hand from the
register conventions (README.md "A tour of config.toml", Telegraf's byte orders), never with our
own encoder: a mistake shared by our encoder and decoder would pass a round trip but not
this table.
"""

import asyncio

import pytest
from pyModbusTCP.server import DataBank, ModbusServer

from facility.config import parse_config
from facility.domain.model import Quality
from sensors.poller import poll_once
from tests.fixtures.config import device, facility_toml, site
from tests.fixtures.wait import DEADLINE_S

# point definition, the words (or bits) the foreign server holds there, the value read
# (None: no reading, quality bad)
TABLE = [
    # 49.75 = 0x42470000; CDAB swaps the two words
    ({"name": "f", "table": "holding", "address": 0, "type": "float32", "order": "CDAB",
      "unit": "Hz"}, [0x0000, 0x4247], 49.75),
    # 25.0 = 0x41C80000, big-endian as it stands
    ({"name": "g", "table": "holding", "address": 2, "type": "float32", "order": "ABCD"},
     [0x41C8, 0x0000], 25.0),
    # -123 in two's complement, times scale 0.1
    ({"name": "t", "table": "input", "address": 5, "type": "int16", "scale": 0.1},
     [0xFF85], -12.3),
    # -2 = 0xFFFFFFFE over two registers
    ({"name": "i", "table": "input", "address": 6, "type": "int32", "order": "ABCD"},
     [0xFFFF, 0xFFFE], -2.0),
    # 0x12345678 with the bytes of each word swapped (BADC)
    ({"name": "u", "table": "holding", "address": 4, "type": "uint32", "order": "BADC"},
     [0x3412, 0x7856], float(0x12345678)),
    # 0x0123456789ABCDEF with every byte reversed (DCBA)
    ({"name": "big", "table": "holding", "address": 10, "type": "uint64", "order": "DCBA"},
     [0xEFCD, 0xAB89, 0x6745, 0x2301], float(0x0123456789ABCDEF)),
    # -1.5 = 0xBFF8000000000000
    ({"name": "dbl", "table": "holding", "address": 14, "type": "float64", "order": "ABCD"},
     [0xBFF8, 0x0000, 0x0000, 0x0000], -1.5),
    ({"name": "d", "table": "discrete", "address": 3, "type": "bool"}, [True], 1.0),
    ({"name": "c", "table": "coil", "address": 1, "type": "bool"}, [True], 1.0),
    # the configured sentinel means "no reading"
    ({"name": "s", "table": "holding", "address": 20, "type": "uint16", "nan": [65535]},
     [0xFFFF], None),
]

WRITE = {"holding": "set_holding_registers", "input": "set_input_registers",
         "discrete": "set_discrete_inputs", "coil": "set_coils"}


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
    for point, words, _ in TABLE:
        getattr(bank, WRITE[point["table"]])(point["address"], words)
    cfg = parse_config(facility_toml(sites=[site("S", timezone=None)], devices=[
        device("X", port, scan_s=2.0, timeout_s=1.0, points=[point for point, _, _ in TABLE])]))
    got = {s.point: s for s in await asyncio.wait_for(poll_once(cfg), DEADLINE_S)}
    for point, words, value in TABLE:
        sample = got[f"X.{point['name']}"]
        words_hex = " ".join(f"0x{w:04X}" if not isinstance(w, bool) else str(w) for w in words)
        if value is None:
            assert sample.value is None and sample.quality == Quality.BAD, (point, words_hex)
        else:
            assert sample.quality == Quality.GOOD, (point, words_hex, sample)
            assert sample.value == value, (point, words_hex, sample)
    assert got["X.comm_ok"].value == 1
