"""Request planning: fewest reads within 125 registers / 2000 bits and the gap limit."""

import pytest

from sensors.planning import plan_reads
from sensors.points import PointDef


def pt(name, table, address, type_="uint16", **kw):
    return PointDef(id=f"D.{name}", device="D", name=name, table=table, address=address, type=type_, **kw)


def test_contiguous_points_are_one_read():
    reads = plan_reads([pt("a", "input", 0, "float32"), pt("b", "input", 2), pt("c", "input", 2, bit=3)])
    assert [(r.table, r.address, r.count, len(r.points)) for r in reads] == [("input", 0, 3, 3)]


def test_gap_limit_splits():
    pts = [pt("a", "holding", 0), pt("b", "holding", 5), pt("c", "holding", 20)]
    assert [(r.address, r.count) for r in plan_reads(pts, max_gap=4)] == [(0, 6), (20, 1)]
    assert [(r.address, r.count) for r in plan_reads(pts, max_gap=0)] == [(0, 1), (5, 1), (20, 1)]
    assert [(r.address, r.count) for r in plan_reads(pts, max_gap=100)] == [(0, 21)]


def test_register_limit_125():
    pts = [pt(f"p{i}", "holding", i * 2, "float32") for i in range(100)]  # 200 registers
    reads = plan_reads(pts, max_gap=10)
    assert [(r.address, r.count) for r in reads] == [(0, 124), (124, 76)]
    assert all(r.count <= 125 for r in reads)


def test_bit_limit_2000_and_tables_separate():
    pts = [pt(f"c{i}", "coil", i, "bool") for i in range(0, 2500, 5)] + [pt("d", "discrete", 0, "bool")]
    reads = plan_reads(pts, max_gap=10)
    coil = [r for r in reads if r.table == "coil"]
    assert all(r.count <= 2000 for r in coil) and len(coil) == 2
    assert [r.table for r in reads][-1] == "discrete"


def test_slice_gives_each_point_its_words():
    a, b = pt("a", "input", 10, "uint32"), pt("b", "input", 14)
    (r,) = plan_reads([b, a], max_gap=8)
    data = [1, 2, 3, 4, 5]
    assert r.slice(a, data) == [1, 2] and r.slice(b, data) == [5]


def test_too_long_point_is_refused():
    with pytest.raises(ValueError):
        plan_reads([pt("s", "holding", 0, "string", count=200)])
