"""Every cell of ISO 14644-1:2015 Table 1 and Annex 1 Tables 1 and 5, written out by hand."""

from __future__ import annotations

import math

import pytest

from alarms.standards import (
    GASES,
    annex1_limit,
    default_setpoints,
    gas,
    iso14644_limit,
    min_locations,
    min_sample_volume_l,
)

N = None
SIZES = (0.1, 0.2, 0.3, 0.5, 1.0, 5.0)
# ISO 14644-1:2015 Table 1 as published (blank cells = None); not computed from the formula.
ISO_TABLE_2015 = {
    1: (10, N, N, N, N, N),
    2: (100, 24, 10, N, N, N),
    3: (1_000, 237, 102, 35, N, N),
    4: (10_000, 2_370, 1_020, 352, 83, N),
    5: (100_000, 23_700, 10_200, 3_520, 832, N),
    6: (1_000_000, 237_000, 102_000, 35_200, 8_320, 293),
    7: (N, N, N, 352_000, 83_200, 2_930),
    8: (N, N, N, 3_520_000, 832_000, 29_300),
    9: (N, N, N, 35_200_000, 8_320_000, 293_000),
}


@pytest.mark.parametrize("iso_class", range(1, 10))
@pytest.mark.parametrize("col", range(6))
def test_iso_table_1_every_cell(iso_class, col):
    assert iso14644_limit(iso_class, SIZES[col]) == ISO_TABLE_2015[iso_class][col]


def test_iso_1999_cell_is_not_used():
    assert iso14644_limit(5, 5) is None  # the 1999 edition printed 29 here


def test_iso_decimal_classes():
    # 10^5.5 x (0.1/0.5)^2.08 = 11 121.4... -> 11 100 (three significant figures)
    assert iso14644_limit(5.5, 0.5) == 11_100
    assert iso14644_limit(6.5, 5.0) == pytest.approx(float(f"{10**6.5 * 0.02**2.08:.3g}"))
    assert iso14644_limit(1.5, 0.1) == 32  # 31.6 -> whole particles below 100
    # blank cells follow the integer class below
    assert iso14644_limit(5.5, 5.0) is None
    assert iso14644_limit(2.5, 0.5) is None
    assert iso14644_limit(7.3, 0.3) is None
    assert iso14644_limit(8.9, 0.5) == float(f"{10**8.9 * 0.2**2.08:.3g}")


def test_iso_intermediate_size_uses_formula_inside_span_only():
    assert iso14644_limit(5, 0.7) == float(f"{1e5 * (0.1 / 0.7) ** 2.08:.3g}")
    assert iso14644_limit(5, 3.0) is None  # above ISO 5's largest size (1 µm)
    assert iso14644_limit(6, 10.0) is None  # outside the standard's 0.1-5 µm


@pytest.mark.parametrize("args, words", [
    ((0.9, 0.5), "classes 1-9"), ((9.1, 0.5), "classes 1-9"), ((math.nan, 0.5), "classes 1-9"),
    ((5.55, 0.5), "steps of 0.1"), ((5, 0), "positive"), ((5, -1), "positive"),
    (("x", 0.5), "must be numbers"),
])
def test_iso_errors(args, words):
    with pytest.raises(ValueError, match=words):
        iso14644_limit(*args)


# Annex 1 (2022), written out: (grade, occupancy, size) -> value; None = "—".
ANNEX1_TABLE_1 = {
    ("A", "at_rest", 0.5): 3_520, ("A", "in_operation", 0.5): 3_520,
    ("A", "at_rest", 5): N, ("A", "in_operation", 5): N,
    ("B", "at_rest", 0.5): 3_520, ("B", "in_operation", 0.5): 352_000,
    ("B", "at_rest", 5): N, ("B", "in_operation", 5): 2_930,
    ("C", "at_rest", 0.5): 352_000, ("C", "in_operation", 0.5): 3_520_000,
    ("C", "at_rest", 5): 2_930, ("C", "in_operation", 5): 29_300,
    ("D", "at_rest", 0.5): 3_520_000, ("D", "in_operation", 0.5): N,
    ("D", "at_rest", 5): 29_300, ("D", "in_operation", 5): N,
}
ANNEX1_TABLE_5 = {
    ("A", "at_rest", 0.5): 3_520, ("A", "in_operation", 0.5): 3_520,
    ("A", "at_rest", 5): 29, ("A", "in_operation", 5): 29,
    ("B", "at_rest", 0.5): 3_520, ("B", "in_operation", 0.5): 352_000,
    ("B", "at_rest", 5): 29, ("B", "in_operation", 5): 2_930,
    ("C", "at_rest", 0.5): 352_000, ("C", "in_operation", 0.5): 3_520_000,
    ("C", "at_rest", 5): 2_930, ("C", "in_operation", 5): 29_300,
    ("D", "at_rest", 0.5): 3_520_000, ("D", "in_operation", 0.5): N,
    ("D", "at_rest", 5): 29_300, ("D", "in_operation", 5): N,
}


@pytest.mark.parametrize("cell, expected", ANNEX1_TABLE_1.items())
def test_annex1_table_1_every_cell(cell, expected):
    assert annex1_limit(*cell, table="classification") == expected


@pytest.mark.parametrize("cell, expected", ANNEX1_TABLE_5.items())
def test_annex1_table_5_every_cell(cell, expected):
    assert annex1_limit(*cell) == expected
    assert annex1_limit(*cell, table="monitoring") == expected


@pytest.mark.parametrize("args, words", [
    (("E", "at_rest", 0.5), "grade"), (("A", "idle", 0.5), "occupancy"),
    (("A", "at_rest", 1.0), "0.5 and 5"), (("A", "at_rest", "big"), "0.5 and 5"),
])
def test_annex1_errors(args, words):
    with pytest.raises(ValueError, match=words):
        annex1_limit(*args)
    with pytest.raises(ValueError, match="table"):
        annex1_limit("A", "at_rest", 0.5, table="grading")


@pytest.mark.parametrize("area, nl", [
    (1, 1), (2, 1), (2.1, 2), (10, 5), (10.5, 6), (52, 10), (53, 11), (1000, 27),
    (1001, 28), (2000, 54), (1500, 41),
])
def test_min_locations(area, nl):
    assert min_locations(area) == nl


def test_min_locations_error():
    with pytest.raises(ValueError, match="positive"):
        min_locations(0)


def test_min_sample_volume():
    assert min_sample_volume_l(5, 0.5) == pytest.approx(5.68, abs=0.005)
    assert min_sample_volume_l(9, 0.5) == 2.0  # the 2 L floor
    with pytest.raises(ValueError, match="blank"):
        min_sample_volume_l(5, 5)


def test_gas_table_rows():
    assert set(GASES) == {"silane", "arsine", "phosphine", "diborane", "chlorine",
                          "hydrogen fluoride", "ammonia", "nitrogen trifluoride",
                          "germane", "hydrogen"}
    assert gas("AsH3").idlh_ppm == 3 and gas("arsine").tlv_twa_ppm == 0.005
    assert gas("Silane").pyrophoric and gas("PH3").pyrophoric and gas("germane").pyrophoric
    assert gas("hydrogen").lel_pct_vol == 4.0 and gas("hydrogen").tlv_twa_ppm is None
    assert gas("HF").ceiling_ppm == 2 and gas("ammonia").stel_ppm == 35
    with pytest.raises(ValueError, match="known"):
        gas("xenon")


@pytest.mark.parametrize("name, monitor, low, high, unit", [
    ("phosphine", "room", 0.3, 1.0, "ppm"),  # TLV, STEL
    ("arsine", "room", 0.005, 0.01, "ppm"),  # TLV, 2 x TLV
    ("hydrogen fluoride", "room", 0.5, 1.0, "ppm"),  # 2 x TLV below the ceiling 2
    ("ammonia", "room", 25, 35, "ppm"),
    ("arsine", "cabinet", 0.005, 0.01, "ppm"),  # cabinets too: TLV-based, never the IDLH
    ("phosphine", "cabinet", 0.3, 1.0, "ppm"),
    ("ammonia", "cabinet", 25, 35, "ppm"),
    ("silane", "cabinet", 5, 10, "ppm"),
    ("hydrogen", "room", 10, 20, "%LEL"),
    ("hydrogen", "cabinet", 10, 20, "%LEL"),
])
def test_default_setpoints(name, monitor, low, high, unit):
    sp = default_setpoints(name, monitor)
    assert (sp["low"], sp["high"], sp["unit"]) == (pytest.approx(low), pytest.approx(high), unit)
    assert "ACGIH" in sp["source"]


def test_setpoint_override_and_errors():
    sp = default_setpoints("arsine", "cabinet", {"low": 0.05, "high": 0.1})
    assert sp["low"] == 0.05 and sp["high"] == 0.1 and "override" in sp["source"]
    with pytest.raises(ValueError, match="room"):
        default_setpoints("arsine", "lab")
    with pytest.raises(ValueError, match="low"):
        default_setpoints("arsine", "room", {"low": 1.0})  # above high
    with pytest.raises(ValueError, match="not 'low'/'high'"):
        default_setpoints("arsine", "room", {"mid": 1.0})
