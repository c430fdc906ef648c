"""``facility uplink`` and ``facility central``: the campus over MQTT Sparkplug B."""

from __future__ import annotations

import signal
import time

import click

from facility.cli.errors import RUNTIME, CliError
from facility.cli.group import cli, config_option, load, say


def _until(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds


def _on_signals(stop) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop())


@cli.command("uplink")
@click.option("--for", "for_s", type=float, default=None, help="stop after this many seconds")
@config_option
def uplink(for_s, config_path):
    """This site as a Sparkplug B edge node: committed cycles to the broker, store and forward."""
    from facility.campus.uplink import Uplink, edge_ids
    from facility.launch import configure_logging

    cfg = load(config_path)
    configure_logging(None, verbose=False)
    group, node = edge_ids(cfg)
    b = cfg.uplink.broker
    say(f"uplink {group}/{node} -> {b.host}:{b.port}"
        + (f" (waits for primary host {cfg.uplink.primary_host_id})"
           if cfg.uplink.primary_host_id else ""))
    up = Uplink(cfg)
    _on_signals(up.stop)
    up.run(until=_until(for_s))
    s = up.stats
    say(f"uplink stopped: {s['live_cycles']} live and {s['history_cycles']} replayed cycles,"
        f" {s['samples']} samples, {s['messages']} messages, {s['bytes']} bytes")


@cli.command("central")
@click.option("--for", "for_s", type=float, default=None, help="stop after this many seconds")
@config_option
def central(for_s, config_path):
    """The campus's primary host: STATE, every site's edge node mirrored in its own store."""
    from facility.campus.central import Central
    from facility.launch import configure_logging

    cfg = load(config_path)
    if not cfg.central.sites:
        raise CliError(f"{cfg.source}: [central] lists no sites; add [[central.sites]] with id"
                       " and node_id", 2)
    configure_logging(None, verbose=False)
    b = cfg.central.broker
    say(f"central {cfg.central.host_id} <- {b.host}:{b.port}: "
        + ", ".join(f"{s.id} ({s.node_id})" for s in cfg.central.sites))
    c = Central(cfg)
    _on_signals(c.stop)
    try:
        c.run(until=_until(for_s))
    except OSError as exc:
        raise CliError(f"central: {exc}", RUNTIME) from None
    s = c.stats
    say(f"central stopped: {s['cycles']} cycles, {s['samples']} samples mirrored")
