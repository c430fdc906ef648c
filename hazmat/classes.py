"""Dangerous-goods classes as the Hong Kong Fire Services Department uses them.

Since 31 Mar 2022 the Dangerous Goods Ordinance (Cap. 295) with Cap. 295E / 295G uses the
UN-aligned classes below (HK Cap. 295 (FSD)). The old "Category 1-10" scheme of
Cap. 295B is repealed: it is kept here only as a label for old paperwork and is never used
to decide anything.
"""

from __future__ import annotations

from typing import Iterable

from facility.domain.errors import UsageError

FSD_CLASSES: dict[str, str] = {
    "1": "explosives (licensed by the Commissioner of Mines, not the FSD)",
    "2.1": "flammable gas",
    "2.2": "non-flammable non-toxic gas",
    "2.3": "toxic gas",
    "3": "flammable liquid",
    "3A": "diesel / fuel oil (flash point > 60 °C)",
    "4.1": "flammable solid",
    "4.2": "substance liable to spontaneous combustion",
    "4.3": "substance dangerous when wet",
    "5.1": "oxidising substance",
    "5.2": "organic peroxide",
    "6.1": "toxic substance",
    "8": "corrosive substance",
    "9": "miscellaneous dangerous goods",
}
"""Every class the FSD regime knows (6.2 and 7 are not FSD classes; §4)."""

LEGACY_CATEGORIES: dict[str, str] = {
    "1": "Cat. 1 explosives",
    "2": "Cat. 2 compressed gases",
    "3": "Cat. 3 corrosive substances",
    "4": "Cat. 4 poisonous substances",
    "5": "Cat. 5 substances giving off inflammable vapour",
    "6": "Cat. 6 substances which become dangerous by interaction with water",
    "7": "Cat. 7 strong supporters of combustion",
    "8": "Cat. 8 readily combustible substances",
    "9": "Cat. 9 substances liable to spontaneous combustion",
    "10": "Cat. 10 dangerous goods in general",
}
"""Repealed Cap. 295B categories: a display label for records made before 31 Mar 2022."""

UNITS: dict[str, str] = {
    "L": "litres",
    "kg": "kilograms",
    "L_wc": "litres water capacity of cylinders",
}
"""Stock units: class 2 is counted in cylinder water capacity (§4 exempt table)."""


class HazmatError(UsageError):
    """A refused hazmat request; the message names the value, the problem and the fix."""


def check_class(cls: str) -> str:
    """Return ``cls`` if it is an FSD class, else raise :class:`HazmatError` naming the allowed ones."""
    if cls not in FSD_CLASSES:
        raise HazmatError(
            f"class {cls!r} is not an FSD class; use one of {', '.join(FSD_CLASSES)}"
        )
    return cls


def legacy_label(category: str | None) -> str | None:
    """Human label of a repealed Cap. 295B category ("5" -> "Cat. 5 ..."), or None."""
    if category is None:
        return None
    key = str(category).strip().lower().removeprefix("cat.").removeprefix("cat").strip()
    return LEGACY_CATEGORIES.get(key, f"Cat. {category} (repealed Cap. 295B)")


def all_classes(primary: str, subsidiary: Iterable[str] = ()) -> tuple[str, ...]:
    """Primary then subsidiary classes, without repeats (IMDG 7.2: each one is checked)."""
    out: list[str] = []
    for c in (primary, *subsidiary):
        if c not in out:
            out.append(c)
    return tuple(out)


def class_matches(licensed: str, cls: str) -> bool:
    """True when stock of ``cls`` counts against a licence entry ``licensed``.

    A licence may name a division ("2.1") or a whole class ("2" covers 2.1, 2.2, 2.3).
    3A (diesel) is its own class, never part of "3".
    """
    return cls == licensed or cls.startswith(licensed + ".")


def is_toxic_gas(primary: str, subsidiary: Iterable[str] = ()) -> bool:
    """Class 2.3 anywhere among the classes: a toxic gas (docs/ARCHITECTURE.md "Critical alarms")."""
    return "2.3" in all_classes(primary, subsidiary)
