"""``facility check-config`` and the facility summary."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import click

from facility.cli.errors import CliError
from facility.cli.group import cli, config_option, load, say

if TYPE_CHECKING:  # the catalogue pulls in numba: imported when check-config runs
    from facility.catalogue import Catalogue


def extra_problems(cfg) -> tuple[list[str], list[str], Catalogue | None]:
    """Problems and warnings found by the middle floor (profiles, limit compilation), and
    the catalogue they were found in (None when the points could not be expanded): the one
    compilation of the limits that check-config reports on, as the service would run it."""
    problems: list[str] = []
    warnings: list[str] = []
    from alarms.standards import GASES
    from alarms.standards import gas as gas_entry
    from facility.catalogue import build_catalogue
    from facility.config.checks import unknown
    from facility.config.loader import place
    from sensors.points import expand_points, point_problems

    problems.extend(place(cfg, f"{path}: {msg}") for path, msg in point_problems(cfg))
    if problems:
        return problems, warnings, None
    # Names only the floors above the configuration know: profile points and the gas table.
    point_ids = {p.id for p in expand_points(cfg)}
    for i, cab in enumerate(cfg.hazmat.cabinets):
        if cab.exhaust and "." in cab.exhaust and cab.exhaust.split(".")[0] in {
                d.id for d in cfg.devices}:
            problems.extend(place(cfg, f"{k}{'' if m.startswith('=') else ': '}{m}")
                            for k, m in unknown(f"hazmat.cabinets[{i}].exhaust", cab.exhaust,
                                                point_ids, "configured point"))
        try:
            gas_entry(cab.gas)
        except ValueError:
            problems.extend(place(cfg, f"{k}{m}") for k, m in unknown(
                f"hazmat.cabinets[{i}].gas", cab.gas, list(GASES), "gas of the gas table"))
    if problems:
        return problems, warnings, None
    cat = build_catalogue(cfg)
    problems.extend(place(cfg, p) for p in cat.problems)
    warnings.extend(place(cfg, w) for w in cat.warnings)
    # Sample volume (ISO 14644-1 A.4.4), GMP modes without a limit (Annex 1 Table 5 "—") and
    # calibration due dates at each site's date (docs/ARCHITECTURE.md "Calibration tracking").
    from facility.catalogue import calibration_status
    from facility.config.checks import (
        calibration_warnings,
        gmp_limit_warnings,
        sample_volume_warnings,
    )
    from facility.domain.model import now_ms
    from facility.service.calibration import local_date

    now = now_ms()
    warnings.extend(place(cfg, w) for w in sample_volume_warnings(cfg, cat)
                    + gmp_limit_warnings(cfg, cat) + calibration_warnings(
                        cfg, lambda d: calibration_status(d, local_date(cfg, d, now))))
    return problems, warnings, cat


def summary(cfg) -> list[str]:
    """A short human summary of the facility: sites, zones, devices, points."""
    lines = [f"{cfg.facility.name or cfg.facility.id} ({cfg.facility.id}), config sha256 {cfg.sha256[:12]}"]
    for site in cfg.sites:
        zones = [z for z in cfg.zones if z.site == site.id]
        devices = [d for d in cfg.devices if d.site == site.id]
        lines.append(f"  {site.id}: {site.name} [{site.timezone}] - {len(zones)} zones, {len(devices)} devices")
        for z in zones:
            std = []
            if z.iso_class is not None:
                std.append(f"ISO {z.iso_class:g}")
            if z.gmp_grade is not None:
                std.append(f"grade {z.gmp_grade}")
            dp = f", dP >= {z.min_dp_pa:+g} Pa vs {z.reference}" if z.min_dp_pa is not None else ""
            if z.min_dp_pa is not None and z.min_dp_pa < 0:
                dp = f", dP <= {z.min_dp_pa:+g} Pa vs {z.reference}"
            kinds = Counter(d.profile or "inline" for d in cfg.devices if d.zone == z.id)
            inst = ", ".join(f"{n}x {k}" for k, n in sorted(kinds.items()))
            lines.append(f"    {z.id:<14} {z.name:<24} {' / '.join(std) or '-':<10} {z.occupancy}{dp}"
                         + (f"; {inst}" if inst else ""))
    hz = cfg.hazmat
    lines.append(f"  hazmat: {len(hz.stores)} stores, {len(hz.substances)} substances, {len(hz.cabinets)} gas cabinets")
    lines.append(f"  operators: {', '.join(o.login for o in cfg.operators) or 'none'}")
    return lines


@cli.command("check-config")
@config_option
@click.option("--summary/--no-summary", "show_summary", default=False,
              help="also print a summary of the facility")
def check_config(config_path, show_summary):
    """Validate the configuration; print every problem as file:key: message; exit 2 if any."""
    cfg = load(config_path)
    problems, warnings, cat = extra_problems(cfg)
    for w in warnings:
        say(f"warning: {w}", err=True)
    if problems:
        raise CliError(problems, 2)
    pts = f", {len(cat.infos)} points, {len(cat.rules)} limit rules"
    say(f"{cfg.source}: ok ({len(cfg.sites)} sites, {len(cfg.zones)} zones, "
        f"{len(cfg.devices)} devices{pts}; {len(warnings)} warnings)")
    if show_summary:
        for line in summary(cfg):
            say(line)
