"""Facts from the standards, each traceable to a row of the standards they cite.

Every limit the system applies must come from here or from an explicit entry in
``config.toml`` (the reference tables say so in their preamble). Values marked *(unconfirmed)* in the
reference are configurable defaults, never hard-coded law: the gas set points can be
overridden per detector and the docstrings say which numbers are unconfirmed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from facility.domain.vocab import ZONE_MODES

# -- ISO 14644-1:2015 (reference §1) ----------------------------------------------------

ISO_SIZES_UM: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 1.0, 5.0)
"""The considered particle sizes of ISO 14644-1:2015 Table 1."""

# reference §1 table "sizes that are blank": classification not applicable there (2015).
_ISO_BLANK: dict[int, frozenset[float]] = {
    1: frozenset({0.2, 0.3, 0.5, 1.0, 5.0}),
    2: frozenset({0.5, 1.0, 5.0}),
    3: frozenset({1.0, 5.0}),
    4: frozenset({5.0}),
    5: frozenset({5.0}),  # the standard points to the macroparticle M descriptor instead
    6: frozenset(),
    7: frozenset({0.1, 0.2, 0.3}),
    8: frozenset({0.1, 0.2, 0.3}),
    9: frozenset({0.1, 0.2, 0.3}),
}


def _round_iso(x: float) -> float:
    """Round like the published Table 1: three significant figures, whole particles.

    Three significant figures reproduces the large cells (3 516.8 -> 3 520); the cells
    below 100 are printed as whole particles (23.7 -> 24, 29.3 -> 29, 10.2 -> 10).
    """
    r = float(f"{x:.3g}")
    return float(round(x)) if r < 100 else r


def iso14644_limit(iso_class: float, size_um: float) -> float | None:
    """Class limit in particles/m³ ≥ ``size_um`` (ISO 14644-1:2015 Table 1 / formula).

    ``Cn = 10^N × (0.1/D)^2.08`` (reference §1). Returns None where the 2015 table is
    blank (classification not applicable). Decimal classes (steps of 0.1, e.g. 5.5) use
    the formula and follow the blank cells of the integer class below them, because the
    standard gives no table for them and that is the conservative reading (a 5.5 room is
    not classified at 5 µm, like ISO 5). A size between the tabulated ones uses the
    formula when it lies within the span of the class's non-blank sizes and is None
    outside it (which also covers sizes outside the standard's 0.1–5 µm).
    """
    try:
        n = float(iso_class)
        d = float(size_um)
    except (TypeError, ValueError):
        raise ValueError(f"iso_class={iso_class!r} and size_um={size_um!r} "
                         "must be numbers") from None
    if not (math.isfinite(n) and 1.0 <= n <= 9.0):
        raise ValueError(f"iso_class={iso_class!r} is outside ISO 14644-1 classes 1-9")
    if abs(n * 10 - round(n * 10)) > 1e-9:
        raise ValueError(f"iso_class={iso_class!r}: decimal classes go in steps of 0.1")
    if not (math.isfinite(d) and d > 0):
        raise ValueError(f"size_um={size_um!r} must be a positive particle size in µm")
    n = round(n * 10) / 10
    base = int(math.floor(n + 1e-9))
    valid = [s for s in ISO_SIZES_UM if s not in _ISO_BLANK[base]]
    if not valid or d < min(valid) - 1e-12 or d > max(valid) + 1e-12:
        return None
    if any(abs(d - s) < 1e-12 for s in _ISO_BLANK[base]):
        return None
    return _round_iso(10.0**n * (0.1 / d) ** 2.08)


# reference §1 "Minimum number of sampling locations" (rows unconfirmed except 52->10, 1000->27)
_NL_ROWS: tuple[tuple[float, int], ...] = (
    (2, 1), (4, 2), (6, 3), (8, 4), (10, 5), (24, 6), (28, 7), (32, 8), (36, 9),
    (52, 10), (56, 11), (64, 12), (68, 13), (72, 14), (76, 15), (104, 16), (108, 17),
    (116, 18), (148, 19), (156, 20), (192, 21), (232, 22), (276, 23), (352, 24),
    (436, 25), (636, 26), (1000, 27),
)


def min_locations(area_m2: float) -> int:
    """Minimum number of sampling locations NL for a cleanroom area (ISO 14644-1 Annex A).

    Take the next larger row of the table; above 1 000 m², NL = ceil(27 × A / 1000)
    (reference §1). Row values other than 52 -> 10 and 1000 -> 27 are unconfirmed.
    """
    a = float(area_m2)
    if not (math.isfinite(a) and a > 0):
        raise ValueError(f"area_m2={area_m2!r} must be a positive area")
    for limit, nl in _NL_ROWS:
        if a <= limit:
            return nl
    return math.ceil(27 * a / 1000 - 1e-9)


def min_sample_volume_l(iso_class: float, size_um: float) -> float:
    """Minimum single sample volume Vs = 20 / Cn × 1000 L, at least 2 L (reference §1).

    ``size_um`` is the largest considered size; e.g. ISO 5 at 0.5 µm -> 5.68 L. The 2 L
    floor (and the 1 minute minimum, not applied here) is unconfirmed.
    """
    cn = iso14644_limit(iso_class, size_um)
    if cn is None:
        raise ValueError(f"ISO class {iso_class} has no limit at {size_um} µm "
                         "(blank in the 2015 table); choose another considered size")
    return max(2.0, 20.0 / cn * 1000.0)


# -- EU GMP Annex 1 (2022), reference §2 -------------------------------------------------

ANNEX1_TABLES: dict[str, dict[tuple[str, str, float], float | None]] = {
    # Table 1 (classification, §4.27); None = "—" (not specified / site sets it)
    "classification": {
        ("A", "at_rest", 0.5): 3520, ("A", "in_operation", 0.5): 3520,
        ("A", "at_rest", 5.0): None, ("A", "in_operation", 5.0): None,
        ("B", "at_rest", 0.5): 3520, ("B", "in_operation", 0.5): 352_000,
        ("B", "at_rest", 5.0): None, ("B", "in_operation", 5.0): 2930,
        ("C", "at_rest", 0.5): 352_000, ("C", "in_operation", 0.5): 3_520_000,
        ("C", "at_rest", 5.0): 2930, ("C", "in_operation", 5.0): 29_300,
        ("D", "at_rest", 0.5): 3_520_000, ("D", "in_operation", 0.5): None,
        ("D", "at_rest", 5.0): 29_300, ("D", "in_operation", 5.0): None,
    },
    # Table 5 (monitoring, §9.15): the maximum action limits for routine monitoring
    "monitoring": {
        ("A", "at_rest", 0.5): 3520, ("A", "in_operation", 0.5): 3520,
        ("A", "at_rest", 5.0): 29, ("A", "in_operation", 5.0): 29,
        ("B", "at_rest", 0.5): 3520, ("B", "in_operation", 0.5): 352_000,
        ("B", "at_rest", 5.0): 29, ("B", "in_operation", 5.0): 2930,
        ("C", "at_rest", 0.5): 352_000, ("C", "in_operation", 0.5): 3_520_000,
        ("C", "at_rest", 5.0): 2930, ("C", "in_operation", 5.0): 29_300,
        ("D", "at_rest", 0.5): 3_520_000, ("D", "in_operation", 0.5): None,
        ("D", "at_rest", 5.0): 29_300, ("D", "in_operation", 5.0): None,
    },
}


def annex1_limit(grade: str, occupancy: str, size_um: float,
                 table: str = "monitoring") -> float | None:
    """Particles/m³ ≥ ``size_um`` for a GMP grade (EU GMP Annex 1, 2022).

    ``table="monitoring"`` is Table 5 (§9.15, maximum action limits, the default since
    that is what the monitoring system alarms on); ``"classification"`` is Table 1
    (§4.27). None where the table has "—" (the site sets it, or not predetermined).
    """
    if table not in ANNEX1_TABLES:
        raise ValueError(f"table={table!r} must be 'monitoring' (Table 5) or "
                         "'classification' (Table 1)")
    g = str(grade).strip().upper()
    if g not in ("A", "B", "C", "D"):
        raise ValueError(f"grade={grade!r} is not an Annex 1 grade; use A, B, C or D")
    if occupancy not in ZONE_MODES:
        raise ValueError(f"occupancy={occupancy!r} must be 'at_rest' or 'in_operation'")
    try:
        d = float(size_um)
    except (TypeError, ValueError):
        d = math.nan
    if d not in (0.5, 5.0):
        raise ValueError(f"size_um={size_um!r}: Annex 1 gives limits at 0.5 and 5 µm only")
    val = ANNEX1_TABLES[table][(g, occupancy, d)]
    return None if val is None else float(val)


# -- Gases in semiconductor gas cabinets, reference §3 ----------------------------------


@dataclass(frozen=True)
class Gas:
    """Exposure limits of one gas in ppm (None = none given in reference §3).

    ACGIH TLV as quoted by OSHA/NIOSH/Haz-Map; sites should check their own values,
    which is why every set point derived from these can be overridden per detector.
    """

    name: str
    formula: str
    tlv_twa_ppm: float | None
    stel_ppm: float | None
    ceiling_ppm: float | None  # ACGIH ceiling (never exceeded at any instant)
    pel_ppm: float | None  # OSHA PEL (a ceiling where pel_is_ceiling)
    idlh_ppm: float | None  # NIOSH IDLH
    lel_pct_vol: float | None
    pyrophoric: bool = False
    pel_is_ceiling: bool = False
    note: str = ""


GASES: dict[str, Gas] = {g.name: g for g in (
    # reference §3 row "silane SiH4": TLV 5; pyrophoric, LEL 1.37 (unconfirmed)
    Gas("silane", "SiH4", 5.0, None, None, None, None, 1.37, pyrophoric=True,
        note="LEL 1.37 %vol unconfirmed"),
    # row "arsine AsH3": TLV 0.005 (older 0.05), PEL 0.05, IDLH 3, LEL 5.1
    Gas("arsine", "AsH3", 0.005, None, None, 0.05, 3.0, 5.1, note="older TLV 0.05"),
    # row "phosphine PH3": TLV 0.3 (newer 0.05 unconfirmed), STEL 1, PEL 0.3, IDLH 50, LEL 1.79
    Gas("phosphine", "PH3", 0.3, 1.0, None, 0.3, 50.0, 1.79, pyrophoric=True,
        note="newer TLV 0.05 unconfirmed"),
    # row "diborane B2H6": TLV 0.1, PEL 0.1, IDLH 15, LEL 0.8
    Gas("diborane", "B2H6", 0.1, None, None, 0.1, 15.0, 0.8),
    # row "chlorine Cl2": TLV 0.5 (newer 0.1 unconfirmed), STEL 1, PEL C 1, IDLH 10, oxidiser
    Gas("chlorine", "Cl2", 0.5, 1.0, None, 1.0, 10.0, None, pel_is_ceiling=True,
        note="oxidiser; newer TLV 0.1 unconfirmed"),
    # row "hydrogen fluoride HF": TLV 0.5 (as F), C 2, PEL 3, IDLH 30
    Gas("hydrogen fluoride", "HF", 0.5, None, 2.0, 3.0, 30.0, None),
    # row "ammonia NH3": TLV 25, STEL 35, PEL 50, IDLH 300, LEL 15
    Gas("ammonia", "NH3", 25.0, 35.0, None, 50.0, 300.0, 15.0),
    # row "nitrogen trifluoride NF3": TLV 10, PEL 10, IDLH 1 000, oxidiser
    Gas("nitrogen trifluoride", "NF3", 10.0, None, None, 10.0, 1000.0, None, note="oxidiser"),
    # row "germane GeH4": TLV 0.2, pyrophoric
    Gas("germane", "GeH4", 0.2, None, None, None, None, None, pyrophoric=True),
    # row "hydrogen H2": asphyxiant, LEL 4.0
    Gas("hydrogen", "H2", None, None, None, None, None, 4.0, note="asphyxiant"),
)}


def gas(name: str) -> Gas:
    """Look a gas up by name or formula, case-insensitively ("Silane", "SiH4", "HF")."""
    key = str(name).strip().lower().replace("_", " ")
    for g in GASES.values():
        if key in (g.name, g.formula.lower()):
            return g
    known = ", ".join(GASES)
    raise ValueError(f"gas {name!r} is not in the gas table; known: {known}")


# Detector set points (reference §3 "Detector set-point conventions"). Alarm levels are
# exposure-limit based: a usual two-stage scheme alarms low at the TLV-TWA and high at the
# STEL or 2 x TLV; a ceiling ("never exceeded at any instant") caps the high stage. The
# IDLH is what a person must never meet, so it is never an alarm level: for cabinet
# monitors §3 gives it only as the bound ("at or below the IDLH", common practice 1/2 IDLH
# or 3 x PEL) that a site's own higher set points may reach without a justification.
LEL_LOW_PCT = 10.0
"""Low alarm of a flammable gas with no toxic limit, % of its LEL (reference §3 "flammables
at 10 % / 20 % (or 25 %) of LEL")."""
LEL_HIGH_PCT = 20.0
"""High alarm of such a gas, % of its LEL (reference §3, the usual 20 %)."""
LEL_HIGH_MAX_PCT = 25.0
"""The highest high alarm reference §3 names for a flammable gas (its "or 25 %")."""


def _scheme(g: Gas) -> tuple[float, float, str, str]:
    """(low, high, unit, source) of the two-stage scheme for one gas (room and cabinet)."""
    if g.tlv_twa_ppm is None:
        if g.lel_pct_vol is None:
            raise ValueError(f"gas {g.name!r} has neither a toxic limit nor an LEL; "
                             "give setpoints for its detector in config.toml")
        # reference §3: "flammables at 10 % / 20 % (or 25 %) of LEL"
        return (LEL_LOW_PCT, LEL_HIGH_PCT, "%LEL",
                f"{g.name}: low = {LEL_LOW_PCT:g} %, high = {LEL_HIGH_PCT:g} % of LEL "
                f"{g.lel_pct_vol:g} %vol (flammable gas)")
    tlv = g.tlv_twa_ppm
    # reference §3 two-stage scheme: "low alarm at the TLV-TWA ... high alarm at 2 x TLV or
    # the STEL"; the STEL where the table gives one, else 2 x TLV capped at a ceiling
    # (HF: 2 x 0.5 = 1 ppm, below its ceiling of 2 ppm).
    if g.stel_ppm is not None:
        high, how = g.stel_ppm, f"ACGIH STEL {g.stel_ppm:g} ppm"
    else:
        high, how = 2 * tlv, f"2 x TLV-TWA {2 * tlv:g} ppm"
    ceilings = [c for c in (g.ceiling_ppm, g.pel_ppm if g.pel_is_ceiling else None)
                if c is not None]
    if ceilings and min(ceilings) < high:
        high, how = min(ceilings), f"ceiling {min(ceilings):g} ppm"
    return (tlv, high, "ppm",
            f"{g.name}: low = ACGIH TLV-TWA {tlv:g} ppm, high = {how} (two-stage scheme)")


def default_setpoints(gas_name: str, monitor: str,
                      override: dict[str, float] | None = None) -> dict:
    """Two-stage detector set points for a gas (reference §3 "Detector set-point conventions").

    Room and cabinet monitors alike: low = TLV-TWA, high = STEL, else 2 × TLV (capped at a
    ceiling: the ACGIH ceiling or an OSHA PEL that is one). The IDLH is never an alarm
    level (:func:`supported_setpoints` uses it only as a bound for cabinet monitors). A gas
    with no toxic value (hydrogen) alarms at 10 % / 20 % of its LEL in "%LEL". ``override``
    (the detector's ``setpoints`` from config.toml, in the unit returned) replaces the values
    it names and the ``source`` says so. Returns ``dict(low=, high=, unit=, source=)``.
    """
    g = gas(gas_name)
    if monitor not in ("room", "cabinet"):
        raise ValueError(f"monitor={monitor!r} must be 'room' or 'cabinet'")
    low, high, unit, how = _scheme(g)
    out = {"low": low, "high": high, "unit": unit,
           "source": f"{how}, {monitor} monitor (ACGIH TLV)"}
    if override:
        unknown = set(override) - {"low", "high"}
        if unknown:
            raise ValueError(f"setpoint override keys {sorted(unknown)} are not 'low'/'high'")
        for k, v in override.items():
            v = float(v)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"setpoint {k}={v!r} must be a positive finite number in {unit}")
            out[k] = v
        out["source"] = f"config override of {sorted(override)}; default: {out['source']}"
    if not out["low"] < out["high"]:
        raise ValueError(f"gas {g.name} {monitor} set points low={out['low']:g} must be "
                         f"below high={out['high']:g}")
    return out


def supported_setpoints(gas_name: str, monitor: str) -> dict:
    """The highest set points reference §3 supports for a detector, in the unit of
    :func:`default_setpoints`: a configured value above them needs a justification.

    Room monitors "alarm at or below the PEL/TLV": low at most the TLV-TWA, high at most
    the scheme's STEL / 2 × TLV / ceiling. Cabinet (exhausted-enclosure) monitors alarm
    "at or below the IDLH (common practice: ½ IDLH or 3 × PEL)": each stage may reach the
    lower of ½ IDLH and 3 × PEL (whichever the table gives), or the room value where that
    is higher; never the IDLH itself. Flammables: low 10 %, high 25 % of the LEL.
    Returns ``dict(low=, high=, unit=, why=)``; ``why`` names the clause for messages.
    """
    g = gas(gas_name)
    if monitor not in ("room", "cabinet"):
        raise ValueError(f"monitor={monitor!r} must be 'room' or 'cabinet'")
    low, high, unit, _how = _scheme(g)
    if unit == "%LEL":
        # reference §3: "flammables at 10 % / 20 % (or 25 %) of LEL"
        return {"low": LEL_LOW_PCT, "high": LEL_HIGH_MAX_PCT, "unit": unit,
                "why": f"flammables at {LEL_LOW_PCT:g} % / {LEL_HIGH_MAX_PCT:g} % of LEL"}
    why = "room monitors alarm at or below the TLV-TWA, high at the STEL or 2 x TLV"
    if monitor == "cabinet":
        # reference §3: cabinet monitors "at or below the IDLH (common practice: 1/2 IDLH or
        # 3 x PEL)"; the lower of the two is the protective reading of "or".
        practice = [(v, w) for v, w in ((g.idlh_ppm / 2 if g.idlh_ppm else None, "1/2 IDLH"),
                                        (3 * g.pel_ppm if g.pel_ppm else None, "3 x PEL"))
                    if v is not None]
        if practice:
            bound, what = min(practice)
            low, high = max(low, bound), max(high, bound)
            why = (f"cabinet monitors at or below {what} {bound:g} ppm"
                   + (f", never the IDLH {g.idlh_ppm:g} ppm" if g.idlh_ppm else ""))
    return {"low": low, "high": high, "unit": unit, "why": why}
