"""Register decoding: hex tables for every type x byte order, sentinels, hypothesis round trips."""

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin as M

from facility.domain.model import Quality
from sensors.registers import decode, decode_value, derive_decimals, encode

W32 = [0x89AB, 0xCDEF]
W64 = [0x0123, 0x4567, 0x89AB, 0xCDEF]

TABLE = [
    # (words, type, order, expected raw value)
    (W32, "uint32", "ABCD", 0x89ABCDEF),
    (W32, "uint32", "CDAB", 0xCDEF89AB),
    (W32, "uint32", "BADC", 0xAB89EFCD),
    (W32, "uint32", "DCBA", 0xEFCDAB89),
    (W32, "int32", "ABCD", 0x89ABCDEF - (1 << 32)),
    (W32, "int32", "CDAB", 0xCDEF89AB - (1 << 32)),
    (W32, "int32", "BADC", 0xAB89EFCD - (1 << 32)),
    (W32, "int32", "DCBA", 0xEFCDAB89 - (1 << 32)),
    (W64, "uint64", "ABCD", 0x0123456789ABCDEF),
    (W64, "uint64", "CDAB", 0xCDEF89AB45670123),
    (W64, "uint64", "BADC", 0x23016745AB89EFCD),
    (W64, "uint64", "DCBA", 0xEFCDAB8967452301),
    (W64, "int64", "ABCD", 0x0123456789ABCDEF),
    (W64, "int64", "DCBA", 0xEFCDAB8967452301 - (1 << 64)),
    ([0x8001], "uint16", "ABCD", 0x8001),
    ([0x8001], "int16", "ABCD", -32767),
    ([0x8001], "uint16", "BADC", 0x0180),
    ([0x8001], "int16", "DCBA", 0x0180),
    ([0x8001], "uint16", "CDAB", 0x8001),
    ([0x3F80, 0x0000], "float32", "ABCD", 1.0),
    ([0x0000, 0x3F80], "float32", "CDAB", 1.0),
    ([0x803F, 0x0000], "float32", "BADC", 1.0),
    ([0x0000, 0x803F], "float32", "DCBA", 1.0),
    ([0x4049, 0x0FDB], "float32", "ABCD", struct.unpack(">f", bytes.fromhex("40490FDB"))[0]),
    ([0x400921FB, 0][0:0] + [0x4009, 0x21FB, 0x5444, 0x2D18], "float64", "ABCD", math.pi),
    ([0x2D18, 0x5444, 0x21FB, 0x4009], "float64", "CDAB", math.pi),
    ([0x0940, 0xFB21, 0x4454, 0x182D], "float64", "BADC", math.pi),
    ([0x182D, 0x4454, 0xFB21, 0x0940], "float64", "DCBA", math.pi),
    ([0x4142, 0x4344, 0x0000], "string", "ABCD", "ABCD"),
    ([0x4241, 0x4443], "string", "BADC", "ABCD"),
]


@pytest.mark.parametrize("words,type_,order,expected", TABLE)
def test_decode_table(words, type_, order, expected):
    assert decode_value(words, type_, order) == expected


@pytest.mark.parametrize("words,type_,order,expected", [t for t in TABLE if t[1] != "string"])
def test_encode_is_inverse(words, type_, order, expected):
    assert encode(expected, type_, order) == words


def test_bits_and_bools():
    assert decode_value([0b0110], "uint16", bit=1) is True
    assert decode_value([0b0110], "uint16", bit=0) is False
    assert decode([0b0100], "uint16", bit=2) == (1.0, Quality.GOOD)
    assert decode([True], "bool") == (1.0, Quality.GOOD)
    assert decode([False], "bool") == (0.0, Quality.GOOD)
    assert decode([7], "bool") == (1.0, Quality.GOOD)


def test_scale_offset_and_rounding():
    assert decode([3], "uint16", scale=0.1) == (0.3, Quality.GOOD)  # 3 x 0.1 == 0.3 exactly
    assert decode([0xFFF6], "int16", scale=0.1) == (-1.0, Quality.GOOD)
    assert decode([1234], "uint16", scale=0.01, offset=-10) == (2.34, Quality.GOOD)
    assert derive_decimals(0.1) == 1 and derive_decimals(0.01) == 2 and derive_decimals(1) == 0
    assert derive_decimals(10) == 0 and derive_decimals(0.5) == 1
    assert derive_decimals(1, "float32") == 3 and derive_decimals(0.1, "int16", 4) == 4


@pytest.mark.parametrize("words,type_,order,nan", [
    ([0xFFFF], "uint16", "ABCD", (65535,)),
    ([0x7FFF], "int16", "ABCD", (32767,)),
    ([0xFFFF, 0xFFFF], "float32", "CDAB", (0xFFFFFFFF,)),
    ([0xFFFF, 0xFFFF], "float32", "CDAB", (65535,)),  # 16-bit sentinel in every register
    ([0x8000], "int16", "ABCD", (-32768,)),
])
def test_sentinels_are_bad_never_a_value(words, type_, order, nan):
    assert decode(words, type_, order, nan=nan) == (None, Quality.BAD)


@pytest.mark.parametrize("words", [[0x7FC0, 0x0000], [0x7F80, 0x0000], [0xFF80, 0x0000]])
def test_non_finite_is_bad(words):
    assert decode(words, "float32") == (None, Quality.BAD)


def test_wrong_count_is_bad():
    assert decode([1], "float32") == (None, Quality.BAD)
    assert decode([1, 2, 3], "uint32") == (None, Quality.BAD)


PM = {"int16": M.DATATYPE.INT16, "uint16": M.DATATYPE.UINT16, "int32": M.DATATYPE.INT32,
      "uint32": M.DATATYPE.UINT32, "int64": M.DATATYPE.INT64, "uint64": M.DATATYPE.UINT64,
      "float32": M.DATATYPE.FLOAT32, "float64": M.DATATYPE.FLOAT64}
RANGES = {"int16": (-(1 << 15), (1 << 15) - 1), "uint16": (0, (1 << 16) - 1),
          "int32": (-(1 << 31), (1 << 31) - 1), "uint32": (0, (1 << 32) - 1),
          "int64": (-(1 << 63), (1 << 63) - 1), "uint64": (0, (1 << 64) - 1)}


@given(st.sampled_from(sorted(RANGES)), st.data(), st.sampled_from(["ABCD", "CDAB"]))
def test_int_round_trip_matches_pymodbus(type_, data, order):
    lo, hi = RANGES[type_]
    v = data.draw(st.integers(lo, hi))
    word_order = "big" if order == "ABCD" else "little"
    regs = M.convert_to_registers(v, PM[type_], word_order=word_order)
    assert encode(v, type_, order) == regs
    assert decode_value(regs, type_, order) == v == M.convert_from_registers(regs, PM[type_], word_order=word_order)


@given(st.floats(allow_nan=False, allow_infinity=False, width=32), st.sampled_from(["ABCD", "CDAB"]))
def test_float32_round_trip_matches_pymodbus(v, order):
    word_order = "big" if order == "ABCD" else "little"
    regs = M.convert_to_registers(v, PM["float32"], word_order=word_order)
    assert encode(v, "float32", order) == regs
    assert decode_value(regs, "float32", order) == v


@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["ABCD", "CDAB", "BADC", "DCBA"]))
def test_float64_round_trip_all_orders(v, order):
    regs = encode(v, "float64", order)
    assert decode_value(regs, "float64", order) == v
    if order in ("ABCD", "CDAB"):
        assert regs == M.convert_to_registers(v, PM["float64"], word_order="big" if order == "ABCD" else "little")


@given(st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4), st.sampled_from(["ABCD", "CDAB", "BADC", "DCBA"]))
def test_words_round_trip_every_order(words, order):
    v = decode_value(words, "uint64", order)
    assert encode(v, "uint64", order) == words
