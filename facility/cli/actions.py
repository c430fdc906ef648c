"""Operator actions (ack, shelve, mode ...), ``facility alarms`` and ``facility audit verify``.

Actions go to the running service over its Unix socket; the operator is the OS login.
Readers open the database read-only (a missing database is the store's ``StoreMissing``).

With a central configuration (``[[central.sites]]``) the readers are central's own database
(its ``campus:<site>:offline`` alarms) and every site's mirror; an action on one of central's
own alarms goes to central's socket, which decides it like a site service, and every other
action is relayed to the site that knows its alarm, device or zone, which decides it there
(docs/ARCHITECTURE.md "Campus (Sparkplug B)").
"""

from __future__ import annotations

import contextlib
import json

import click

from facility.cli.errors import CHECK_FAILED, RUNTIME, USAGE, CliError, Exit
from facility.cli.group import cli, config_option, load, say
from facility.domain.display import person
from facility.domain.model import iso_ms
from facility.domain.vocab import ZONE_MODES, DurationError, parse_duration, priority_rank

REASON = click.option("--reason", required=True, help="why (required: EU GMP Annex 11 9)")


def open_reader(cfg):
    """The database, read-only (``StoreMissing``, exit 3, when it does not exist yet)."""
    from facility.store import Store

    return Store(cfg.db_path, readonly=True)


CENTRAL_PREFIX = "campus:"
"""Central's own alarms are ``campus:<site>:<kind>`` (facility.campus.watch)."""


def _readers(cfg) -> list:
    """The databases a command reads: the site's own, or, of a central config, central's own
    database (when it exists) and every mirror that exists."""
    if not cfg.central.sites:
        return [open_reader(cfg)]
    import os

    from facility.config.paths import mirror_path
    from facility.store import Store

    paths = [cfg.db_path] + [mirror_path(cfg, s) for s in cfg.central.sites]
    return [Store(p, readonly=True) for p in paths if os.path.exists(p)]


def _central_owns(cfg, alarm: str | None) -> bool:
    """Whether an alarm is one of central's own (not a mirrored site's): its id says so, or
    central's own database knows it."""
    import os

    from facility.store import Store

    if not alarm:
        return False
    if alarm.startswith(CENTRAL_PREFIX):
        return True
    if not os.path.exists(cfg.db_path):
        return False
    with Store(cfg.db_path, readonly=True) as own:
        return any(a["id"] == alarm for a in own.alarms())


def _send(cfg, payload: dict) -> None:
    from facility.service.socket import (
        ActionRefused,
        ServiceNotListening,
        ServiceNotRunning,
        current_login,
        request,
    )

    if cfg.central.sites and _central_owns(cfg, payload.get("alarm")):
        try:  # central's own alarm: central decides, on its own action socket
            reply = request(cfg.db_path, payload)
        except ServiceNotListening:
            raise CliError(f"central is not running (nothing answers beside {cfg.db_path});"
                           f" start it with `facility central --config {cfg.source}`",
                           RUNTIME) from None
        except ServiceNotRunning as exc:
            raise CliError(f"central: {exc}", RUNTIME) from None
        except ActionRefused as exc:
            raise CliError(f"refused by central: {exc}", USAGE) from None
        say(f"central: {reply.get('message')} (by {reply.get('operator')})")
        return
    if cfg.central.sites:  # a central config: the site's own service decides (via central)
        from facility.campus.central import relay_action, site_of

        site = site_of(cfg, alarm=payload.get("alarm"), device=payload.get("device"),
                       zone=payload.get("zone"))
        reply = relay_action(cfg, site, payload, current_login())
        if not reply.get("ok"):
            raise CliError(f"refused at {site.id}: {reply.get('message')}", USAGE)
        say(f"{site.id}: {reply.get('message')} (by {current_login()}, via central)")
        return
    try:
        reply = request(cfg.db_path, payload)
    except ServiceNotRunning as exc:
        raise CliError(str(exc), RUNTIME) from None
    except ActionRefused as exc:
        raise CliError(f"refused: {exc}", USAGE) from None
    say(f"{reply.get('message')} (by {reply.get('operator')})")


def _alarm_payload(cfg, action: str, alarm: str, reason: str, **extra) -> dict:
    """Name the occurrence the action acts on (``ALARM#n``, or the current one)."""
    occurrence = None
    if "#" in alarm:
        alarm, _, occ = alarm.rpartition("#")
        if not occ.isdigit():
            raise CliError(f"{alarm}#{occ}: the occurrence after # must be a number", USAGE)
        occurrence = int(occ)
    else:
        row = None
        for store in _readers(cfg):
            with store:
                row = row or next((r for r in store.alarms() if r["id"] == alarm), None)
        if row is None:
            raise CliError(f"unknown alarm {alarm!r}; list them with `facility alarms`", USAGE)
        occurrence = row["occurrence"]
    return {"action": action, "alarm": alarm, "occurrence": occurrence, "reason": reason, **extra}


def _alarm_command(action: str, doc: str):
    @cli.command(action, help=doc)
    @click.argument("alarm")
    @REASON
    @config_option
    def command(alarm, reason, config_path):
        cfg = load(config_path)
        _send(cfg, _alarm_payload(cfg, action, alarm, reason))

    return command


for _action, _doc in (
    ("ack", "Acknowledge ALARM (id, or id#occurrence)."),
    ("reset", "Reset a latched ALARM after it returned to normal and was acknowledged."),
    ("comment", "Add a comment to ALARM's current occurrence."),
    ("unshelve", "Unshelve ALARM: it shows its true state again."),
    ("unsuppress", "Remove an operator suppression from ALARM."),
):
    _alarm_command(_action, _doc)


def _for_option(required_for: str):
    return click.option("--for", "duration", default=None,
                        help=f"how long, e.g. 30m, 2h ({required_for})")


def _seconds(duration: str | None) -> float | None:
    """``--for`` in seconds (None when not given); one line naming the fix when unreadable."""
    if duration is None:
        return None
    try:
        return parse_duration(duration)
    except DurationError as exc:
        raise CliError(f"--for: {exc}", USAGE) from None


@cli.command("suppress")
@click.argument("alarm")
@_for_option("mandatory; at most alarms.max_suppress_s")
@REASON
@config_option
def suppress(alarm, duration, reason, config_path):
    """Suppress ALARM for a limited time (role engineer; critical alarms cannot be suppressed)."""
    cfg = load(config_path)
    if duration is None:
        raise CliError("suppress needs --for DURATION, e.g. --for 2h (at most"
                       f" alarms.max_suppress_s={cfg.alarms.max_suppress_s:g} s)", USAGE)
    _send(cfg, _alarm_payload(cfg, "suppress", alarm, reason, duration_s=_seconds(duration)))


@cli.command("shelve")
@click.argument("alarm")
@click.option("--for", "duration", required=True, help="how long, e.g. 30m, 2h (mandatory)")
@REASON
@config_option
def shelve(alarm, duration, reason, config_path):
    """Shelve ALARM for a limited time (critical alarms: role shelve_critical, <= 1 h)."""
    cfg = load(config_path)
    _send(cfg, _alarm_payload(cfg, "shelve", alarm, reason, duration_s=_seconds(duration)))


@cli.command("oos")
@click.argument("device")
@_for_option("mandatory for a device with critical alarms: role shelve_critical, at most"
             " alarms.max_oos_critical_s")
@REASON
@config_option
def oos(device, duration, reason, config_path):
    """Take DEVICE out of service (maintenance): its alarms become OOSRV, until --for ends or
    `facility return`. The service refuses a device with critical alarms without --for."""
    cfg = load(config_path)
    payload = {"action": "oos", "device": device, "reason": reason}
    seconds = _seconds(duration)
    if seconds is not None:
        payload["duration_s"] = seconds
    _send(cfg, payload)


@cli.command("return")
@click.argument("device")
@REASON
@config_option
def return_(device, reason, config_path):
    """Return DEVICE to service: its alarms show their true state."""
    cfg = load(config_path)
    _send(cfg, {"action": "return", "device": device, "reason": reason})


@cli.command("mode")
@click.argument("zone")
@click.argument("mode", type=click.Choice(ZONE_MODES))
@REASON
@config_option
def mode(zone, mode, reason, config_path):
    """Set ZONE's mode (at_rest / in_operation); each mode has its own limits."""
    cfg = load(config_path)
    _send(cfg, {"action": "mode", "zone": zone, "mode": mode, "reason": reason})


ALARM_FIELDS = ("id", "state", "priority", "occurrence", "active", "onset", "detected", "limit",
                "source", "zone", "site", "point", "ack_by", "ack_by_name", "ack_reason",
                "acked_at", "shelved_until")


def alarm_record(row: dict) -> dict:
    """The README's JSON schema of one alarm."""
    return {
        "id": row["id"], "state": row["state"], "priority": row["priority"],
        "occurrence": row["occurrence"], "active": bool(row["active"]),
        "onset": iso_ms(row.get("onset_ms")), "detected": iso_ms(row.get("detected_ms")),
        "limit": row.get("limit"), "source": row.get("source"), "zone": row.get("zone"),
        "site": row.get("site"), "point": row.get("point"), "ack_by": row.get("ack_by"),
        "ack_by_name": row.get("ack_by_name"), "ack_reason": row.get("ack_reason"), "acked_at": iso_ms(row.get("ack_ms")),
        "shelved_until": iso_ms(row.get("shelved_until_ms")),
    }


def mode_suppressed(row: dict) -> bool:
    """An inactive mode's rule (DSUPR by mode): recorded, not listed by default
    (docs/ARCHITECTURE.md "Alarm lifecycle (ISA-18.2) and paging")."""
    return "mode" in ((row.get("details") or {}).get("suppressed_by") or ())


@cli.command("alarms")
@click.option("--active", is_flag=True, help="only alarms not in NORM")
@click.option("--all", "show_all", is_flag=True,
              help="also the inactive mode's rules (suppressed by mode)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@config_option
def alarms(active, show_all, as_json, config_path):
    """List alarms with state, priority, onset, limit and source, and who acknowledged."""
    cfg = load(config_path)
    rows = []
    for store in _readers(cfg):  # a central config lists every mirrored site's alarms
        with store:
            mine = [r for r in store.alarms() if (r["occurrence"] or r["state"] != "NORM")
                    and (show_all or not mode_suppressed(r))]
            for r in mine:  # who acknowledged, by the name recorded with the ack
                if r.get("ack_by"):
                    r["ack_by_name"] = store.ack_name(r["id"], r["occurrence"])
            rows.extend(mine)
    if active:  # suppressed-by-design rows whose condition is not active are not news
        rows = [r for r in rows if r["state"] != "NORM"
                and not (r["state"] == "DSUPR" and not r["active"])]
    rows.sort(key=lambda r: (priority_rank(r["priority"]), -(r.get("onset_ms") or 0)))
    for r in rows:
        rec = alarm_record(r)
        if as_json:
            click.echo(json.dumps(rec))
        else:
            ack = (f" acked by {person(rec['ack_by_name'], rec['ack_by'])}: {rec['ack_reason']}"
                   if rec["ack_by"] else "")
            lim = f" limit {rec['limit']:g}" if rec["limit"] is not None else ""
            say(f"{rec['state']:<5} {rec['priority']:<8} {rec['id']}#{rec['occurrence']}"
                f" onset {rec['onset']}{lim} ({rec['source']}){ack}")
    if not rows and not as_json:
        say("no alarms" + (" active" if active else ""))


@cli.group("audit")
def audit():
    """The audit trail: append-only, HMAC-SHA-256 chained."""


@audit.command("verify")
@click.option("--key", "key_file", help="audit key file (default: the env var named in config)")
@click.option("--from", "frm", default=None, help="only cycles written from (inclusive); site's zone for bare times")
@click.option("--to", "to", default=None, help="only cycles written before (exclusive)")
@config_option
def audit_verify(key_file, frm, to, config_path):
    """Check the live audit chain and recompute every cycle digest from the stored samples,
    events and alarms; exit 1 naming the first broken row and each table, partition and cycle
    that no longer matches, and audit rows missing at the tail by the signed witness file."""
    from facility.cli.data import _range, _tz
    from facility.store.digest_check import check_digests
    from facility.store.keys import audit_key

    cfg = load(config_path)
    if bool(frm) != bool(to):
        raise CliError("--from and --to go together", USAGE)
    ts_range = _range(frm, to, _tz(cfg, None, None)) if frm else None
    if key_file:
        with open(key_file, "rb") as fh:
            key = fh.read().strip()
    else:
        key = audit_key(cfg)
    with open_reader(cfg) as store:
        res = store.verify_audit(key)
        how = "authenticity (HMAC) and continuity" if key else "continuity and content (no key)"
        if res.ok:
            say(f"audit trail ok: {res.checked} rows, {how} checked")
        else:
            say(f"audit trail BROKEN at row {res.first_bad_id}: {res.problem}", err=True)
        tail = _witness_findings(cfg, store)
        with _progress() as tick:  # every cycle digest (in the range) against what is stored
            dc = check_digests(store.conn, store.path, ts_range=ts_range, progress=tick)
    for line in tail + dc.findings:
        say(line, err=True)
    if dc.v1_skipped:
        say(f"note: {dc.v1_skipped} version-1 cycle digests not recomputed (no membership fields)")
    say(f"checked {res.checked} audit rows, {dc.partitions} partitions, {dc.cycles} cycles,"
        f" {dc.samples} samples, {dc.events} events, {dc.alarms} alarms in {dc.seconds:.2f} s")
    if not res.ok or tail or dc.findings:
        raise Exit(CHECK_FAILED)


def _witness_findings(cfg, store) -> list[str]:
    """The database's chain head against the latest signed witness checkpoint (tail
    truncation, docs/ARCHITECTURE.md "Signing"): one line per finding, none when it holds."""
    import os

    from facility.records.witness import witness_path
    from facility.store.digest_check import check_witness
    from facility.store.keys import site_public_keys

    path = witness_path(cfg)
    if not os.path.exists(path):
        if site_public_keys(os.path.dirname(path)):  # the site signs: a witness is expected
            say("note: no witness file: tail truncation not checked", err=True)
        return []
    return check_witness(store.conn, path)


@contextlib.contextmanager
def _progress():
    """A rich progress bar on stderr while samples are read, only when stderr is a terminal;
    yields the ``progress(done, total)`` callback (None otherwise)."""
    import sys

    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("samples", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=max(total, done))
