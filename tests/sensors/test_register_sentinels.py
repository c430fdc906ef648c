"""A 16-bit "no reading" sentinel on a 32-bit value: every register must hold it.

Instruments that mark a missing reading with 0xFFFF (or 0x7FFF) in each register of a
multi-register value are common; a point's ``nan`` list may name the 16-bit word for them.
Only a value whose registers are *all* that word is the sentinel: one register holding it
is an ordinary number (0xFFFF0000 is a valid reading of a uint32).
"""

from __future__ import annotations

import pytest

from facility.domain.model import Quality
from sensors.registers import decode


@pytest.mark.parametrize("type_,order", [("uint32", "ABCD"), ("uint32", "CDAB"),
                                         ("int32", "ABCD"), ("uint64", "DCBA")])
def test_sixteen_bit_sentinel_in_every_register_is_bad(type_, order):
    n = 4 if type_.endswith("64") else 2
    assert decode([0xFFFF] * n, type_, order, nan=(0xFFFF,)) == (None, Quality.BAD)
    assert decode([0x7FFF] * n, type_, order, nan=(0x7FFF,)) == (None, Quality.BAD)


def test_without_the_sentinel_the_same_registers_are_a_number():
    assert decode([0xFFFF, 0xFFFF], "uint32") == (4294967295.0, Quality.GOOD)
    assert decode([0x7FFF, 0x7FFF], "uint32", nan=(0xFFFF,)) == (2147450879.0, Quality.GOOD)


@pytest.mark.parametrize("words,expect", [
    ([0xFFFF, 0x0000], 4294901760.0),  # 0xFFFF0000
    ([0x0001, 0xFFFF], 131071.0),  # 0x0001FFFF
    ([0xFFFF, 0xFFFE], 4294967294.0),
])
def test_one_register_holding_the_word_is_a_reading(words, expect):
    assert decode(words, "uint32", "ABCD", nan=(0xFFFF,)) == (expect, Quality.GOOD)


def test_a_32_bit_sentinel_matches_the_whole_value_only():
    # 0x0000FFFF is 65535 as a uint32: a 32-bit sentinel 65535 matches its value...
    assert decode([0x0000, 0xFFFF], "uint32", nan=(65535,)) == (None, Quality.BAD)
    # ...and 0xFFFFFFFF as a 32-bit sentinel does not match a single 0xFFFF word
    assert decode([0xFFFF], "uint16", nan=(0xFFFFFFFF,)) == (65535.0, Quality.GOOD)
    assert decode([0xFFFF, 0xFFFF], "uint32", nan=(0xFFFFFFFF,)) == (None, Quality.BAD)


def test_negative_sentinel_matches_a_signed_value():
    assert decode([0xFFFF, 0xFFFF], "int32", nan=(-1,)) == (None, Quality.BAD)
    assert decode([0xFFFF, 0xFFFE], "int32", nan=(-1,)) == (-2.0, Quality.GOOD)


def test_bits_and_bool_points_ignore_sentinels():
    assert decode([0xFFFF], "uint16", bit=3, nan=(0xFFFF,)) == (1.0, Quality.GOOD)
    assert decode([True], "bool", nan=(1,)) == (1.0, Quality.GOOD)
