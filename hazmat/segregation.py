"""Segregation of incompatible classes: the IMDG Code 7.2.4 table as data.

The table below is copied cell for cell from HK Cap. 295 (FSD) (IMDG 7.2.4):
1 = "away from", 2 = "separated from", 3 = "separated by a complete compartment or hold
from", 4 = "separated longitudinally by an intervening complete compartment or hold from",
X = no general rule (see the substance's own entry). Two classes with 1-4 must not share
one store compartment without the stated separation. A substance with subsidiary hazards
is checked with every one of its classes and the strictest result applies (IMDG 7.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Iterable

from hazmat.classes import all_classes

COLUMNS: tuple[str, ...] = (
    "1.1/1.2/1.5", "1.3/1.6", "1.4", "2.1", "2.2", "2.3", "3", "4.1", "4.2", "4.3",
    "5.1", "5.2", "6.1", "6.2", "7", "8", "9",
)
"""Column headings of IMDG 7.2.4 (explosives grouped by division as the Code prints them)."""

# IMDG Code 7.2.4, rows as printed in HK Cap. 295 (FSD).
_TABLE = """
2.1  4 4 2 X X X 2 1 2 X 2 2 X 4 2 1 X
2.2  2 2 1 X X X 1 X 1 X X 1 X 2 1 X X
2.3  2 2 1 X X X 2 X 2 X X 2 X 2 1 X X
3    4 4 2 2 1 2 X X 2 1 2 2 X 3 2 X X
4.1  4 3 2 1 X X X X 1 X 1 2 X 3 2 1 X
4.2  4 3 2 2 1 2 2 1 X 1 2 2 1 3 2 1 X
4.3  4 4 2 X X X 1 X 1 X 2 2 X 2 2 1 X
5.1  4 4 2 2 X X 2 1 2 2 X 2 1 3 1 2 X
5.2  4 4 2 2 1 2 2 2 2 2 2 X 1 3 2 2 X
6.1  2 2 X X X X X X 1 X 1 1 X 1 X X X
8    4 2 2 1 X X X 1 1 1 2 2 X 3 2 X X
9    X X X X X X X X X X X X X X X X X
"""

CODE_WORDS: dict[int, str] = {
    1: "away from",
    2: "separated from",
    3: "separated by a complete compartment from",
    4: "separated longitudinally by an intervening complete compartment from",
}
"""IMDG 7.2.2 segregation terms for codes 1-4."""


def _parse(text: str) -> dict[tuple[str, str], int | None]:
    cells: dict[tuple[str, str], int | None] = {}
    for line in text.strip().splitlines():
        row, *codes = line.split()
        if len(codes) != len(COLUMNS):
            raise AssertionError(f"segregation table row {row}: {len(codes)} cells")
        for col, code in zip(COLUMNS, codes):
            cells[(row, col)] = None if code == "X" else int(code)
    return cells


TABLE: dict[tuple[str, str], int | None] = _parse(_TABLE)
"""(row class, column heading) -> code 1-4, or None for X."""

ROWS: tuple[str, ...] = tuple(dict.fromkeys(r for r, _ in TABLE))


def column_of(cls: str) -> str:
    """The 7.2.4 heading for a class or division.

    FSD class "1" has no division in this system, so it takes the strictest explosives
    column (1.1/1.2/1.5); "3A" (diesel) is a class 3 flammable liquid for segregation.
    """
    if cls == "3A":
        return "3"
    if cls in ("1", "1.1", "1.2", "1.5"):
        return "1.1/1.2/1.5"
    if cls in ("1.3", "1.6"):
        return "1.3/1.6"
    return cls


def segregation(class_a: str, class_b: str) -> int | None:
    """Segregation code (1-4) required between two classes, or None (X / no general rule).

    The table is symmetric; the explosives, 6.2 and 7 appear only as columns, so a pair is
    looked up with whichever class is a row. Explosives amongst themselves are governed by
    compatibility groups (IMDG 7.2.7), not by this table: None.
    """
    a, b = column_of(class_a), column_of(class_b)
    if (a, b) in TABLE:
        return TABLE[(a, b)]
    if (b, a) in TABLE:
        return TABLE[(b, a)]
    return None


@dataclass(frozen=True)
class SegregationFinding:
    """Two substances in one compartment whose classes need separation."""

    substance_a: str
    substance_b: str
    class_a: str  # the class of a that gave the strictest code
    class_b: str
    code: int

    @property
    def words(self) -> str:
        """IMDG wording of the code, e.g. "separated from"."""
        return CODE_WORDS[self.code]

    @property
    def message(self) -> str:
        """One line for the operator, naming both substances, the classes and the rule."""
        return (
            f"{self.substance_a} (class {self.class_a}) must be {self.words} "
            f"{self.substance_b} (class {self.class_b}) (IMDG 7.2.4 code {self.code})"
        )


def strictest(classes_a: Iterable[str], classes_b: Iterable[str]) -> tuple[int, str, str] | None:
    """Strictest code over every pair of classes (primary and subsidiary) of two substances.

    Returns (code, class of a, class of b) or None when no pair needs segregation. Ties
    keep the first pair found in primary-first order, so the primary class is named when it
    is responsible.
    """
    best: tuple[int, str, str] | None = None
    for ca in classes_a:
        for cb in classes_b:
            code = segregation(ca, cb)
            if code is not None and (best is None or code > best[0]):
                best = (code, ca, cb)
    return best


def check_compartment(substances: Iterable) -> list[SegregationFinding]:
    """Every pair of distinct substances stored together that needs separation.

    ``substances`` holds objects with ``id``, ``dg_class`` and ``subsidiary`` (the config's
    :class:`~facility.config.schema.Substance`). Each pair is reported once, with the
    strictest code over all their classes.
    """
    unique = list({s.id: s for s in substances}.values())
    out: list[SegregationFinding] = []
    for sa, sb in combinations(unique, 2):
        hit = strictest(all_classes(sa.dg_class, sa.subsidiary), all_classes(sb.dg_class, sb.subsidiary))
        if hit is not None:
            code, ca, cb = hit
            out.append(SegregationFinding(sa.id, sb.id, ca, cb, code))
    return out
