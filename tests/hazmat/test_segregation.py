"""IMDG 7.2.4 segregation: every cell of the table, through primary and subsidiary classes."""

from __future__ import annotations

import pytest

from facility.config.schema import Substance
from hazmat.segregation import CODE_WORDS, check_compartment, segregation, strictest

# HK Cap. 295 (FSD), written out again here so a typo in the module cannot hide.
COLS = ["1.1", "1.3", "1.4", "2.1", "2.2", "2.3", "3", "4.1", "4.2", "4.3",
        "5.1", "5.2", "6.1", "6.2", "7", "8", "9"]
LITERAL = {
    "2.1": "4 4 2 X X X 2 1 2 X 2 2 X 4 2 1 X",
    "2.2": "2 2 1 X X X 1 X 1 X X 1 X 2 1 X X",
    "2.3": "2 2 1 X X X 2 X 2 X X 2 X 2 1 X X",
    "3":   "4 4 2 2 1 2 X X 2 1 2 2 X 3 2 X X",
    "4.1": "4 3 2 1 X X X X 1 X 1 2 X 3 2 1 X",
    "4.2": "4 3 2 2 1 2 2 1 X 1 2 2 1 3 2 1 X",
    "4.3": "4 4 2 X X X 1 X 1 X 2 2 X 2 2 1 X",
    "5.1": "4 4 2 2 X X 2 1 2 2 X 2 1 3 1 2 X",
    "5.2": "4 4 2 2 1 2 2 2 2 2 2 X 1 3 2 2 X",
    "6.1": "2 2 X X X X X X 1 X 1 1 X 1 X X X",
    "8":   "4 2 2 1 X X X 1 1 1 2 2 X 3 2 X X",
    "9":   "X X X X X X X X X X X X X X X X X",
}
CELLS = [(row, col, None if code == "X" else int(code))
         for row, codes in LITERAL.items() for col, code in zip(COLS, codes.split())]
INCOMPATIBLE = [c for c in CELLS if c[2] is not None]
COMPATIBLE = [c for c in CELLS if c[2] is None]


def sub(sid: str, cls: str, *subsidiary: str) -> Substance:
    return Substance(id=sid, name=sid, un="UN0000", dg_class=cls, subsidiary=tuple(subsidiary))


def test_table_size():
    assert len(CELLS) == 12 * 17
    assert len(INCOMPATIBLE) == 119


@pytest.mark.parametrize("row,col,code", CELLS, ids=[f"{r}|{c}" for r, c, _ in CELLS])
def test_every_cell_both_orders(row, col, code):
    assert segregation(row, col) == code
    assert segregation(col, row) == code


@pytest.mark.parametrize("row,col,code", INCOMPATIBLE, ids=[f"{r}|{c}" for r, c, _ in INCOMPATIBLE])
def test_incompatible_primary_and_subsidiary_reported(row, col, code):
    # primary against primary
    found = check_compartment([sub("a", row), sub("b", col)])
    assert [(f.code, f.class_a, f.class_b) for f in found] == [(code, row, col)]
    assert CODE_WORDS[code] in found[0].message
    # the same classes reached only through subsidiary hazards of class 9 substances
    found = check_compartment([sub("a", "9", row), sub("b", "9", col)])
    assert [(f.code, f.class_a, f.class_b) for f in found] == [(code, row, col)]


@pytest.mark.parametrize("row,col,code", COMPATIBLE, ids=[f"{r}|{c}" for r, c, _ in COMPATIBLE])
def test_compatible_not_reported(row, col, code):
    assert check_compartment([sub("a", row), sub("b", col)]) == []


def test_chlorine_beside_silane_is_separated_from_via_oxidiser_subsidiary():
    chlorine = sub("chlorine", "2.3", "5.1", "8")
    silane = sub("silane", "2.1")
    # 2.3 vs 2.1 alone is X; 5.1 vs 2.1 is 2; 8 vs 2.1 is 1: the strictest (2) wins.
    assert segregation("2.3", "2.1") is None
    (f,) = check_compartment([chlorine, silane])
    assert (f.code, f.class_a, f.class_b) == (2, "5.1", "2.1")
    assert "separated from" in f.message


def test_strictest_over_all_class_pairs():
    assert strictest(["2.3", "5.1", "8"], ["2.1"]) == (2, "5.1", "2.1")
    assert strictest(["9"], ["9"]) is None


def test_same_substance_twice_is_one_entry_and_fsd_aliases():
    assert check_compartment([sub("ipa", "3"), sub("ipa", "3")]) == []
    assert segregation("3A", "5.1") == segregation("3", "5.1") == 2
    assert segregation("1", "2.1") == 4  # bare class 1 takes the strictest explosives column
    assert segregation("1.1", "1.4") is None  # explosives amongst themselves: IMDG 7.2.7
