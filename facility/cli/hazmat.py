"""``facility hazmat stock|receive|issue|move|check``: the dangerous-goods stock ledger.

Movements are written by this command in one ``BEGIN IMMEDIATE`` transaction each (a
movement row plus its audit row); the operator is the OS login and needs the ``hazmat``
role. The running service turns the resulting stock into licence and segregation alarms.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing

import click

from facility.cli.errors import CHECK_FAILED, RUNTIME, CliError, Exit
from facility.cli.group import cli, config_option, load
from facility.service.socket import current_login

UNITS = click.Choice(["L", "kg", "L_wc"])


def _connect(cfg, write: bool):
    if not os.path.exists(cfg.db_path):
        raise CliError(f"database {cfg.db_path} does not exist; start the service once with"
                       " `facility run`", RUNTIME)
    from hazmat import ledger

    if write:
        conn = sqlite3.connect(cfg.db_path, timeout=10.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=10000")
        ledger.ensure_schema(conn)
    else:
        conn = sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True, timeout=10.0,
                               isolation_level=None)
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='hazmat_containers'").fetchone():
            conn.close()
            conn = sqlite3.connect(":memory:", isolation_level=None)
            ledger.ensure_schema(conn)
    return conn


def _actor(cfg) -> str:
    login = current_login()
    op = next((o for o in cfg.operators if o.login == login), None)
    if op is None:
        raise CliError(f"login {login!r} is not an operator; add it to [[operators]]", 2)
    if "hazmat" not in op.roles and "admin" not in op.roles:
        raise CliError(f"{login} lacks role 'hazmat' needed to book dangerous goods", 2)
    return login


def _write(cfg, fn, **kwargs) -> None:
    from facility.store.keys import audit_key
    from hazmat.classes import HazmatError

    actor = _actor(cfg)
    with closing(_connect(cfg, write=True)) as conn:
        version = conn.execute("SELECT max(id) FROM config_versions").fetchone()[0]
        try:
            lines = fn(cfg, conn, actor, key=audit_key(cfg), config_version=version, **kwargs)
        except HazmatError as exc:
            raise CliError(f"refused: {exc}", 2) from None
    for line in lines:
        click.echo(line, err=line.startswith("warning:"))


@cli.group("hazmat")
def hazmat():
    """Dangerous goods: stock ledger, licences, segregation (HK Cap. 295, IMDG 7.2.4)."""


@hazmat.command("stock")
@config_option
def stock(config_path):
    """Show each store's stock per class against its licence or the exempt quantities."""
    from hazmat.commands import cmd_stock

    cfg = load(config_path)
    with closing(_connect(cfg, write=False)) as conn:
        lines = cmd_stock(cfg, conn)
    for line in lines:
        click.echo(line)


@hazmat.command("receive")
@click.option("--container", required=True, help="container or cylinder id")
@click.option("--substance", required=True, help="substance id from [[hazmat.substances]]")
@click.option("--quantity", required=True, type=float)
@click.option("--unit", required=True, type=UNITS, help="L, kg or L_wc (cylinder water capacity)")
@click.option("--store", required=True)
@click.option("--compartment", required=True)
@click.option("--reason", required=True, help="why (required, audited)")
@config_option
def receive(container, substance, quantity, unit, store, compartment, reason, config_path):
    """Book a container into a store compartment."""
    from hazmat.commands import cmd_receive

    cfg = load(config_path)
    _write(cfg, cmd_receive, container=container, substance=substance, quantity=quantity,
           unit=unit, store=store, compartment=compartment, reason=reason)


@hazmat.command("issue")
@click.option("--container", required=True)
@click.option("--quantity", required=True, type=float)
@click.option("--unit", required=True, type=UNITS)
@click.option("--reason", required=True, help="why (required, audited)")
@config_option
def issue(container, quantity, unit, reason, config_path):
    """Take a quantity out of a container (refused if more than it holds)."""
    from hazmat.commands import cmd_issue

    cfg = load(config_path)
    _write(cfg, cmd_issue, container=container, quantity=quantity, unit=unit, reason=reason)


@hazmat.command("move")
@click.option("--container", required=True)
@click.option("--store", required=True)
@click.option("--compartment", required=True)
@click.option("--reason", required=True, help="why (required, audited)")
@config_option
def move(container, store, compartment, reason, config_path):
    """Move a whole container to another store compartment."""
    from hazmat.commands import cmd_move

    cfg = load(config_path)
    _write(cfg, cmd_move, container=container, store=store, compartment=compartment,
           reason=reason)


@hazmat.command("check")
@config_option
def check(config_path):
    """Check licences, exempt quantities and segregation; exit 1 when any finding fails."""
    from hazmat.commands import cmd_check

    cfg = load(config_path)
    with closing(_connect(cfg, write=False)) as conn:
        lines, code = cmd_check(cfg, conn)
    for line in lines:
        click.echo(line)
    if code:
        raise Exit(CHECK_FAILED)
