"""``facility check-config`` and the facility summary."""

from __future__ import annotations

from collections import Counter

import click

from facility.cli import cli, config_option, load
from facility.errors import CliError


def extra_problems(cfg) -> tuple[list[str], list[str]]:
    """Problems and warnings found by the middle floor (profiles, limit compilation)."""
    problems: list[str] = []
    warnings: list[str] = []
    try:
        from sensors.points import expand_points
    except ImportError:
        expand_points = None
    if expand_points is not None:
        result = expand_points(cfg)
        problems.extend(f"{cfg.source}:{p}" for p in getattr(result, "problems", []))
    try:
        from alarms.rules import compile_problems
    except ImportError:
        compile_problems = None
    if compile_problems is not None:
        errs, warns = compile_problems(cfg)
        problems.extend(f"{cfg.source}:{p}" for p in errs)
        warnings.extend(f"{cfg.source}:{w}" for w in warns)
    return problems, warnings


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
    problems, warnings = extra_problems(cfg)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    if problems:
        raise CliError(problems, 2)
    n_points = None
    try:
        from sensors.points import expand_points

        n_points = len(expand_points(cfg).points)
    except ImportError:
        pass
    pts = f", {n_points} points" if n_points is not None else ""
    click.echo(f"{cfg.source}: ok ({len(cfg.sites)} sites, {len(cfg.zones)} zones, "
               f"{len(cfg.devices)} devices{pts}; {len(warnings)} warnings)")
    if show_summary:
        for line in summary(cfg):
            click.echo(line)
