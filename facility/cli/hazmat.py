"""``facility hazmat stock|receive|issue|move|check``: the dangerous-goods stock ledger.

The service is the only writer (docs/ARCHITECTURE.md "Data flow"): while it runs, a
movement goes to it over the action socket and it books the movement on its writer thread,
one ``BEGIN IMMEDIATE`` transaction (a movement row plus its audit row) between two cycles.
Only when nothing listens on the socket does this command book the movement itself, through
the store (``hazmat.commands.book`` on a ``Store``), the same transaction. The operator is the OS
login and needs the ``hazmat`` role; the running service turns the resulting stock into
licence and segregation alarms. ``stock`` and ``check`` read through a read-only store.
"""

from __future__ import annotations

import click

from facility.cli.errors import CHECK_FAILED, USAGE, CliError, Exit
from facility.cli.group import cli, config_option, load, say
from facility.domain.vocab import has_role
from facility.service.socket import current_login

UNITS = click.Choice(["L", "kg", "L_wc"])


def _actor(cfg) -> str:
    """The login, checked here for a clear line before anything is sent (the service checks
    again from the socket's peer credentials)."""
    login = current_login()
    op = next((o for o in cfg.operators if o.login == login), None)
    if op is None:
        raise CliError(f"login {login!r} is not an operator; add it to [[operators]]", USAGE)
    if not has_role(op.roles, "hazmat"):
        raise CliError(f"{login} lacks role 'hazmat' needed to book dangerous goods", USAGE)
    return login


def _book_here(cfg, actor: str, movement: str, fields: dict) -> list[str]:
    """No service runs: book through the store, which is then the one writer."""
    from facility.store import Store
    from facility.store.keys import audit_key
    from hazmat import ledger
    from hazmat.commands import book

    Store(cfg.db_path, readonly=True).close()  # StoreMissing (exit 3), never a new database
    with Store(cfg.db_path, key=audit_key(cfg)) as store:
        store.add_migrations(ledger.NAMESPACE, ledger.LEDGER_MIGRATIONS)
        return book(cfg, store, actor, movement, fields, key=store.key,
                    config_version=store.config_version)


def _book(cfg, movement: str, **fields) -> None:
    from facility.service.socket import ActionRefused, ServiceNotListening, request
    from hazmat.classes import HazmatError

    actor = _actor(cfg)
    try:
        try:
            reply = request(cfg.db_path, {"action": "hazmat", "movement": movement, **fields})
            lines = reply.get("lines") or [str(reply.get("message") or "")]
        except ServiceNotListening:
            lines = _book_here(cfg, actor, movement, fields)
    except (ActionRefused, HazmatError) as exc:
        raise CliError(f"refused: {exc}", USAGE) from None
    for line in lines:
        say(line, err=line.startswith("warning:"))


def _reader(cfg):
    from facility.store import Store

    return Store(cfg.db_path, readonly=True)


@cli.group("hazmat")
def hazmat():
    """Dangerous goods: stock ledger, licences, segregation (HK Cap. 295, IMDG 7.2.4)."""


@hazmat.command("stock")
@config_option
def stock(config_path):
    """Show each store's stock per class against its licence or the exempt quantities."""
    from hazmat.commands import cmd_stock

    cfg = load(config_path)
    with _reader(cfg) as store:
        lines = cmd_stock(cfg, store)
    for line in lines:
        say(line)


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
    cfg = load(config_path)
    _book(cfg, "receive", container=container, substance=substance, quantity=quantity,
          unit=unit, store=store, compartment=compartment, reason=reason)


@hazmat.command("issue")
@click.option("--container", required=True)
@click.option("--quantity", required=True, type=float)
@click.option("--unit", required=True, type=UNITS)
@click.option("--reason", required=True, help="why (required, audited)")
@config_option
def issue(container, quantity, unit, reason, config_path):
    """Take a quantity out of a container (refused if more than it holds)."""
    cfg = load(config_path)
    _book(cfg, "issue", container=container, quantity=quantity, unit=unit, reason=reason)


@hazmat.command("move")
@click.option("--container", required=True)
@click.option("--store", required=True)
@click.option("--compartment", required=True)
@click.option("--reason", required=True, help="why (required, audited)")
@config_option
def move(container, store, compartment, reason, config_path):
    """Move a whole container to another store compartment."""
    cfg = load(config_path)
    _book(cfg, "move", container=container, store=store, compartment=compartment, reason=reason)


@hazmat.command("check")
@config_option
def check(config_path):
    """Check licences, exempt quantities and segregation; exit 1 when any finding fails."""
    from hazmat.commands import cmd_check

    cfg = load(config_path)
    with _reader(cfg) as store:
        lines, code = cmd_check(cfg, store)
    for line in lines:
        say(line)
    if code:
        raise Exit(CHECK_FAILED)
