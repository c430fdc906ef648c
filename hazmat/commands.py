"""The library side of ``facility hazmat stock|receive|issue|move|check``.

The top-level CLI parses arguments, determines the actor from the OS login and calls these
with a store (read-only for ``stock`` and ``check``); each returns the lines to print. A
movement is booked with :func:`book`: by the running service, on its writer thread, when a
request arrives over the action socket, or by the command itself through the store when no
service runs. A refused request raises :class:`~hazmat.classes.HazmatError` (one line for
stderr, exit 2) with nothing written. ``cmd_check`` returns exit code 1 when any *action*
or *alert* finding exists (docs/ARCHITECTURE.md "The command line": 1 = a check found a problem).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping

from facility.config.schema import Config
from hazmat import ledger
from hazmat.checks import run_checks, segregation_findings
from hazmat.classes import HazmatError
from hazmat.ledger import Db
from hazmat.licence import check_licences, licensed_totals

__all__ = ["MOVEMENTS", "HazmatError", "book", "cmd_check", "cmd_issue", "cmd_move",
           "cmd_receive", "cmd_stock"]


def _place_warnings(cfg: Config, db: Db, store: str, compartment: str) -> list[str]:
    """Warnings after a movement: segregation in the target compartment, the store's licence."""
    containers = ledger.stock(db)
    here = [c for c in containers if (c.store, c.compartment) == (store, compartment)]
    lines = [f"warning: {f.line()}" for f in segregation_findings(cfg, here)]
    known = {s.id for s in cfg.hazmat.substances}
    rows = [r for r in ledger.stock_rows(containers) if r[1] in known]
    try:
        lines += [f"warning: {f.line()}" for f in check_licences(cfg.hazmat, rows)
                  if f.store and store in f.store.split(",")]
    except HazmatError as exc:
        lines.append(f"warning: {exc}")
    return lines


def _done(m: ledger.Movement) -> str:
    if m.kind == "receive":
        where = f"into {m.to_store}/{m.to_compartment}"
    elif m.kind == "issue":
        where = f"from {m.from_store}/{m.from_compartment}, {m.remaining:g} {m.unit} left"
    else:
        where = f"{m.from_store}/{m.from_compartment} -> {m.to_store}/{m.to_compartment}"
    return (f"{m.kind} #{m.id}: {m.container_id} {m.substance} {m.quantity:g} {m.unit} {where}"
            f" by {m.actor} (audit #{m.audit_id})")


def cmd_receive(cfg: Config, db: Db, actor: str, container: str,
                substance: str, quantity: float, unit: str, store: str, compartment: str,
                reason: str, *, key: bytes | None = None,
                config_version: int | None = None) -> list[str]:
    """Book a new container in; the lines name the movement and any new segregation or
    licence problem it caused (the receipt itself is not refused for those: the goods are
    physically there, and the ledger must say so)."""
    m = ledger.receive(db, cfg.hazmat, actor=actor, container=container, substance=substance,
                       quantity=quantity, unit=unit, store=store, compartment=compartment,
                       reason=reason, key=key, config_version=config_version)
    return [_done(m), *_place_warnings(cfg, db, store, compartment)]


def cmd_issue(cfg: Config, db: Db, actor: str, container: str,
              quantity: float, unit: str, reason: str, *, key: bytes | None = None,
              config_version: int | None = None) -> list[str]:
    """Issue part or all of a container; over-issue is refused with nothing written."""
    m = ledger.issue(db, cfg.hazmat, actor=actor, container=container, quantity=quantity,
                     unit=unit, reason=reason, key=key, config_version=config_version)
    return [_done(m)]


def cmd_move(cfg: Config, db: Db, actor: str, container: str, store: str,
             compartment: str, reason: str, *, key: bytes | None = None,
             config_version: int | None = None) -> list[str]:
    """Move a whole container; the lines warn about segregation in its new compartment."""
    m = ledger.move(db, cfg.hazmat, actor=actor, container=container, store=store,
                    compartment=compartment, reason=reason, key=key,
                    config_version=config_version)
    return [_done(m), *_place_warnings(cfg, db, store, compartment)]


def cmd_stock(cfg: Config, db: Db) -> list[str]:
    """Containers per store and compartment, then each licensed class against its maximum."""
    containers = ledger.stock(db)
    lines: list[str] = []
    by_store: dict[str, list[ledger.Container]] = defaultdict(list)
    for c in containers:
        by_store[c.store].append(c)
    known = {s.id for s in cfg.hazmat.substances}
    totals, rest = licensed_totals(cfg.hazmat, [r for r in ledger.stock_rows(containers)
                                                if r[1] in known])
    for st in cfg.hazmat.stores:
        lic = f"licence {st.licence}" if st.licence else "no licence (exempt quantities)"
        lines.append(f"{st.id} ({st.premises} premises, {lic})")
        for c in by_store.get(st.id, []):
            lines.append(f"  {c.compartment:<12} {c.container_id:<16} {c.substance:<20} "
                         f"{c.quantity:>10g} {c.unit}")
        if not by_store.get(st.id):
            lines.append("  (empty)")
        for (sid, key), (total, unit) in sorted(totals.items()):
            if sid == st.id:
                maximum = st.licensed_max[key]
                pct = f"{total / maximum:.0%}" if maximum else "-"
                lines.append(f"  class {key}: {total:g} of {maximum:g} {unit or ''} ({pct})".rstrip())
        for _sid, sub, qty, unit in (r for r in rest if r[0] == st.id):
            lines.append(f"  unlicensed here: {sub} {qty:g} {unit}")
    for sid in sorted(set(by_store) - {s.id for s in cfg.hazmat.stores}):
        lines.append(f"{sid} (not in the config)")
        lines += [f"  {c.compartment:<12} {c.container_id:<16} {c.substance:<20} "
                  f"{c.quantity:>10g} {c.unit}" for c in by_store[sid]]
    return lines


def cmd_check(cfg: Config, db: Db,
              latest: Mapping[str, Any] | None = None) -> tuple[list[str], int]:
    """All findings, most severe first; exit code 1 if any is an action or alert, else 0."""
    findings = run_checks(cfg, db, latest)
    lines = [f.line() for f in findings]
    problems = sum(1 for f in findings if f.severity in ("action", "alert"))
    lines.append(f"{problems} problem(s), {len(findings) - problems} note(s)"
                 if findings else "no problems found")
    return lines, (1 if problems else 0)


MOVEMENTS: dict[str, tuple[str, ...]] = {
    "receive": ("container", "substance", "quantity", "unit", "store", "compartment", "reason"),
    "issue": ("container", "quantity", "unit", "reason"),
    "move": ("container", "store", "compartment", "reason"),
}
"""Each movement and the fields its request carries (the CLI's options, the socket's keys)."""


def book(cfg: Config, db: Db, actor: str, movement: str, fields: Mapping[str, Any], *,
         key: bytes | None = None, config_version: int | None = None) -> list[str]:
    """Book one movement request; the lines of :func:`cmd_receive` / ``cmd_issue`` / ``cmd_move``.

    ``fields`` may hold more keys than the movement needs (a whole socket request); a
    missing one is refused with nothing written, as is an unknown movement.
    """
    names = MOVEMENTS.get(movement)
    if names is None:
        raise HazmatError(f"hazmat movement {movement!r} is not one of {', '.join(MOVEMENTS)}")
    missing = [n for n in names if fields.get(n) is None]
    if missing:
        raise HazmatError(f"hazmat {movement}: {', '.join(missing)} missing from the request")
    cmd = {"receive": cmd_receive, "issue": cmd_issue, "move": cmd_move}[movement]
    return cmd(cfg, db, actor, **{n: fields[n] for n in names}, key=key,
               config_version=config_version)
