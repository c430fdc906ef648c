"""``facility run``, ``simulate``, ``poll``, ``tui``, ``demo`` and ``backtest``."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable

import click

from facility.cli.errors import RUNTIME, CliError, Exit, check_text_file
from facility.cli.group import cli, config_option, load, say
from facility.domain.model import Quality, iso_ms


def _logging(verbose: bool) -> None:
    """To stderr, without protocol dumps unless ``verbose`` (``facility.launch``)."""
    from facility.launch import configure_logging

    configure_logging(None, verbose=verbose)


@cli.command("run")
@click.option("--headless", is_flag=True, help="no TUI: log to stderr (for systemd)")
@click.option("--cycle-s", default=1.0, show_default=True, help="engine cycle in seconds")
@click.option("-v", "--verbose", is_flag=True,
              help="debug logging, Modbus frames included (default: INFO, no protocol dumps)")
@config_option
def run(headless, cycle_s, verbose, config_path):
    """The service: pollers, engine, store and paging (+ a TUI unless --headless)."""
    from facility.service.health import ServiceLocked
    from facility.service.service import Service

    cfg = load(config_path)
    from facility.cli.config import extra_problems

    problems, _warnings, _cat = extra_problems(cfg)  # what check-config refuses, run refuses
    if problems:
        raise CliError(problems, 2)
    try:
        if headless:
            _logging(verbose)
            asyncio.run(Service(cfg, cycle_s=cycle_s).run())
        else:  # the screen belongs to the TUI: the log goes to service.log
            from facility.launch import run_with_tui

            run_with_tui(cfg, verbose=verbose)
    except ServiceLocked as exc:
        raise CliError(str(exc), 2) from None


@cli.command("simulate")
@click.option("--scenario", default="normal", show_default=True,
              help="normal, door-open, particle-excursion, gas-leak, counter-offline, "
                   "flow-fault, garbage, slow-device")
@click.option("--seed", default=0, show_default=True, type=int, help="random seed (deterministic)")
@click.option("--speed", default=1.0, show_default=True, type=float, help="time acceleration")
@click.option("--bind", default="127.0.0.1", show_default=True, help="address to listen on")
@config_option
def simulate(scenario, seed, speed, bind, config_path):
    """Serve every configured device (Modbus/TCP) with plausible physics."""
    from sensors.simulator import SCENARIOS, run_simulator

    if not (math.isfinite(speed) and 0 < speed):
        raise CliError(f"--speed {speed!r} is not allowed; a time acceleration > 0, e.g. 1"
                       " (real time) or 60")
    cfg = load(config_path)
    if scenario not in SCENARIOS:
        raise CliError(f"--scenario {scenario!r} is not known; use one of {', '.join(SCENARIOS)}")
    _logging(False)
    try:
        asyncio.run(run_simulator(cfg, scenario=scenario, seed=seed, speed=speed, bind=bind))
    except OSError as exc:
        raise CliError(f"cannot listen on {bind}: {exc.strerror or exc}", RUNTIME) from None


@cli.command("poll")
@click.option("--device", default=None, help="only this device id")
@click.option("--once", is_flag=True, required=True, help="read once and exit (required)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@config_option
def poll(device, once, as_json, config_path):  # noqa: ARG001 - --once is required
    """Read devices once and print decoded samples (commissioning)."""
    from sensors.poller import read_once

    cfg = load(config_path)
    if device is not None and device not in {d.id for d in cfg.devices}:
        raise CliError(f"--device {device!r} is not configured")
    result = read_once(cfg, device)
    fmt = format_poll_json if as_json else format_poll_text
    for line in fmt(result.samples, cfg):
        say(line)
    if result.all_dead:  # docs/ARCHITECTURE.md "The command line": all dead, exit 3
        raise Exit(RUNTIME)


def _units(cfg) -> dict[str, tuple[str, str]]:
    from sensors.points import expand_points

    return {p.id: (p.device, p.unit) for p in expand_points(cfg)}


def format_poll_json(samples: Iterable, cfg) -> list[str]:
    """One JSON object per sample: device, point, ts, value, quality, unit
    (docs/ARCHITECTURE.md "The command line").

    A non-finite value is ``null`` with quality bad, as JSON has no NaN.
    """
    units = _units(cfg)
    lines = []
    for s in samples:
        device, unit = units.get(s.point, (s.point.split(".", 1)[0], ""))
        value, quality = s.value, s.quality
        if value is not None and not math.isfinite(value):
            value, quality = None, Quality.BAD
        lines.append(json.dumps({"device": device, "point": s.point, "ts": iso_ms(s.ts_ms),
                                 "value": value, "quality": quality.label, "unit": unit},
                                ensure_ascii=False))
    return lines


def format_poll_text(samples: Iterable, cfg) -> list[str]:
    """Aligned human-readable lines: point, value unit, quality, time."""
    units = _units(cfg)
    lines = []
    for s in samples:
        unit = units.get(s.point, ("", ""))[1]
        val = "-" if s.value is None else f"{s.value:g}"
        lines.append(f"{s.point:<36} {val:>12} {unit:<9} {s.quality.label:<5} {iso_ms(s.ts_ms)}")
    return lines


@cli.command("tui")
@config_option
def tui(config_path):
    """Attach a TUI to a running service (reads the database read-only); on central's
    config, the campus overview over its mirrors."""
    from facility.store import Store

    cfg = load(config_path)
    if cfg.central.sites:  # central: the campus overview over the mirrors
        import os

        from facility.campus.central import mirror_path

        if not any(os.path.exists(mirror_path(cfg, s)) for s in cfg.central.sites):
            raise CliError("no mirror yet: run `facility central`", RUNTIME)
    else:
        Store(cfg.db_path, readonly=True).close()  # StoreMissing (exit 3) before the screen opens
    from tui.app import run_tui

    run_tui(cfg, cfg.db_path)


@cli.command("demo")
@click.option("--seconds", default=0.0, help="stop after this many seconds (0: until q)")
@click.option("--headless", is_flag=True, help="no TUI: print alarms as they change")
@click.option("-v", "--verbose", is_flag=True,
              help="debug logging in var/demo/demo.log, Modbus frames included")
@click.option("--campus", is_flag=True,
              help="the campus of deploy/campus/ beside the config: mosquitto, the MEC and MARS"
                   " sites with their uplinks, and central's console (var/demo-campus/)")
@config_option
def demo(seconds, headless, verbose, campus, config_path):
    """Simulator + service + TUI on the shipped config, with a scripted timeline."""
    if campus:
        import os

        from facility.launch_campus import run_campus_demo

        run_campus_demo(os.path.dirname(os.path.abspath(config_path)), seconds=seconds,
                        headless=headless, verbose=verbose)
        return
    from facility.launch import run_demo

    cfg = load(config_path)
    run_demo(cfg, seconds=seconds, headless=headless, verbose=verbose)


@cli.command("backtest")
@click.option("--samples", "samples_file", type=click.Path(), help="CSV ts,point,value[,quality]")
@click.option("--from", "from_", help="start (site time unless an offset is given)")
@click.option("--to", help="end, exclusive; a date means the end of that day")
@click.option("--alert-fraction", type=float, help="what if the alert level were this fraction")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per transition")
@config_option
def backtest(samples_file, from_, to, alert_fraction, as_json, config_path):
    """Evaluate the configured limits over recorded samples and print transitions."""
    from facility.records.backtest import backtest_command

    cfg = load(config_path)
    if bool(samples_file) == bool(from_ or to):
        raise CliError("give either --samples FILE.csv or --from T --to T")
    if not samples_file and not (from_ and to):
        raise CliError("--from and --to go together")
    if samples_file:
        check_text_file(samples_file, "a CSV of ts,point,value[,quality]")
    for line in backtest_command(cfg, samples_file=samples_file, from_=from_, to=to,
                                 alert_fraction=alert_fraction, as_json=as_json):
        say(line if isinstance(line, str) else json.dumps(line))
