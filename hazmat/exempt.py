"""Aggregate exempt quantities: how much may be stored without an FSD licence.

Numbers from HK Cap. 295 (FSD) (Cap. 295E / 295G, FSD regime since 31 Mar 2022):

| group | general / special premises | industrial premises | unit |
|---|---|---|---|
| class 2 | 300 | 450 | L_wc (litres water capacity of cylinders) |
| class 3 | 100 | 150 | L |
| classes 4, 5, 6.1, 8, 9 | 100 | 1 000 | L or kg |
| "special" 5.1, 6.1, 8 substances | 250 | 1 000 | L or kg |

Reading of the table used here (say so when an auditor asks): quantities are aggregated
per premises by the *primary* class of each substance, divisions of 2, 4 and 5 summed into
their class; a substance the config marks ``special`` is aggregated in its own group (per
class) against the "special" row instead of its class's row; litres and kilograms of one
group are added as numbers, as the table's "L or kg" does. Class 3A (diesel) and class 1
(Commissioner of Mines) have no row in the reference, so no exempt quantity is assumed for
them: any stock of them outside a licence is reported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping

from hazmat.classes import HazmatError

PREMISES: tuple[str, ...] = ("general", "special", "industrial")
"""Premises types of the exempt table; "special" premises share the general column."""

# group -> (general/special premises, industrial premises, allowed units); reference §4.
EXEMPT: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "2": (300.0, 450.0, ("L_wc",)),
    "3": (100.0, 150.0, ("L",)),
    "4": (100.0, 1000.0, ("L", "kg")),
    "5": (100.0, 1000.0, ("L", "kg")),
    "6.1": (100.0, 1000.0, ("L", "kg")),
    "8": (100.0, 1000.0, ("L", "kg")),
    "9": (100.0, 1000.0, ("L", "kg")),
    "special 5.1": (250.0, 1000.0, ("L", "kg")),
    "special 6.1": (250.0, 1000.0, ("L", "kg")),
    "special 8": (250.0, 1000.0, ("L", "kg")),
}
"""Aggregate exempt quantity per group and premises type."""

SPECIAL_CLASSES: tuple[str, ...] = ("5.1", "6.1", "8")
"""Only substances of these classes can be "special" (reference §4)."""


def exempt_group(dg_class: str, special: bool = False) -> str | None:
    """Group of the exempt table a primary class falls in, or None (3A, 1: no exempt row).

    >>> exempt_group("2.3"), exempt_group("4.2"), exempt_group("5.2"), exempt_group("8", True)
    ('2', '4', '5', 'special 8')
    """
    if special:
        if dg_class not in SPECIAL_CLASSES:
            raise HazmatError(
                f"class {dg_class!r} cannot be \"special\"; only {', '.join(SPECIAL_CLASSES)} can"
            )
        return f"special {dg_class}"
    if dg_class.startswith("2."):
        return "2"
    if dg_class == "3":
        return "3"
    if dg_class.startswith("4."):
        return "4"
    if dg_class.startswith("5."):
        return "5"
    if dg_class in ("6.1", "8", "9"):
        return dg_class
    return None


def exempt_limit(group: str, premises: str) -> float:
    """Exempt quantity of a group for a premises type (raises on an unknown premises type)."""
    if premises not in PREMISES:
        raise HazmatError(f"premises {premises!r} is not allowed; use {', '.join(PREMISES)}")
    general, industrial, _units = EXEMPT[group]
    return industrial if premises == "industrial" else general


def group_units(group: str) -> tuple[str, ...]:
    """Units in which a group's quantities are counted (class 2: L_wc only)."""
    return EXEMPT[group][2]


@dataclass(frozen=True)
class ExemptLine:
    """Aggregate of one group on one premises against its exempt quantity."""

    group: str  # "2", "3", ..., "special 8"; "3A" / "1" for classes with no exempt row
    total: float
    unit: str  # the unit(s) added, e.g. "L" or "L/kg"
    limit: float | None  # None: no exempt quantity exists for this group
    premises: str

    @property
    def exceeded(self) -> bool:
        """More than the exempt quantity (a class without one is exceeded by any stock)."""
        return self.total > 0 and (self.limit is None or self.total > self.limit)


def aggregate(
    stock: Iterable[tuple[str, float, str]], substances: Mapping[str, object], premises: str
) -> list[ExemptLine]:
    """Sum ``(substance id, quantity, unit)`` rows into exempt groups for one premises.

    ``substances`` maps id -> config Substance. A quantity in a unit the group does not use
    (e.g. class 2 in litres of liquid) raises :class:`HazmatError`, since adding it would be
    meaningless.
    """
    totals: dict[str, float] = defaultdict(float)
    units: dict[str, set[str]] = defaultdict(set)
    for sub_id, qty, unit in stock:
        sub = substances.get(sub_id)
        if sub is None:
            raise HazmatError(f"substance {sub_id!r} is not in [[hazmat.substances]]")
        group = exempt_group(sub.dg_class, sub.special) or sub.dg_class
        if group in EXEMPT and unit not in group_units(group):
            raise HazmatError(
                f"{sub_id}: {qty:g} {unit} cannot count towards exempt group {group}, "
                f"which is counted in {' or '.join(group_units(group))}"
            )
        totals[group] += qty
        units[group].add(unit)
    lines = []
    for group in sorted(totals, key=_group_order):
        limit = exempt_limit(group, premises) if group in EXEMPT else None
        lines.append(ExemptLine(group, totals[group], "/".join(sorted(units[group])), limit, premises))
    return lines


def _group_order(group: str) -> tuple[int, str]:
    keys = list(EXEMPT)
    return (keys.index(group), group) if group in keys else (len(keys), group)


def strictest_premises(premises: Iterable[str]) -> str:
    """General/special before industrial: stores sharing premises get the smaller allowance."""
    kinds = set(premises)
    for p in PREMISES:
        if p in kinds:
            return p
    return "general"
