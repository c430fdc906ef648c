"""``facility run``, ``simulate``, ``poll``, ``tui``, ``demo`` and ``backtest``."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import click

from facility.cli.errors import RUNTIME, CliError, Exit
from facility.cli.group import cli, config_option, load


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


@cli.command("run")
@click.option("--headless", is_flag=True, help="no TUI: log to stderr (for systemd)")
@click.option("--cycle-s", default=1.0, show_default=True, help="engine cycle in seconds")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@config_option
def run(headless, cycle_s, verbose, config_path):
    """The service: pollers, engine, store and paging (+ a TUI unless --headless)."""
    from facility.service.health import ServiceLocked
    from facility.service.service import Service

    cfg = load(config_path)
    _logging(verbose)
    try:
        if headless:
            asyncio.run(Service(cfg, cycle_s=cycle_s).run())
        else:
            from facility.launch import run_with_tui

            run_with_tui(cfg)
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
def poll(device, once, as_json, config_path):
    """Read devices once and print decoded samples (commissioning)."""
    from sensors.poller import poll_command

    cfg = load(config_path)
    if device is not None and device not in {d.id for d in cfg.devices}:
        raise CliError(f"--device {device!r} is not configured")
    lines, code = poll_command(cfg, device=device, as_json=as_json)
    for line in lines:
        click.echo(line)
    if code:
        raise Exit(code)


@cli.command("tui")
@config_option
def tui(config_path):
    """Attach a TUI to a running service (reads the database read-only)."""
    import os

    cfg = load(config_path)
    if not os.path.exists(cfg.db_path):
        raise CliError(f"database {cfg.db_path} does not exist; start `facility run` first",
                       RUNTIME)
    from tui.app import run_tui

    run_tui(cfg, cfg.db_path)


@cli.command("demo")
@click.option("--seconds", default=0.0, help="stop after this many seconds (0: until q)")
@click.option("--headless", is_flag=True, help="no TUI: print alarms as they change")
@config_option
def demo(seconds, headless, config_path):
    """Simulator + service + TUI on the shipped config, with a scripted timeline."""
    from facility.launch import run_demo

    cfg = load(config_path)
    run_demo(cfg, seconds=seconds, headless=headless)


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
    for line in backtest_command(cfg, samples_file=samples_file, from_=from_, to=to,
                                 alert_fraction=alert_fraction, as_json=as_json):
        click.echo(line if isinstance(line, str) else json.dumps(line))
