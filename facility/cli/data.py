"""``facility export``, ``verify``, ``archive`` and ``classify`` (the auditor's commands)."""

from __future__ import annotations

import json
import os
import sys

import click

from facility.cli.errors import CHECK_FAILED, RUNTIME, USAGE, CliError
from facility.cli.group import cli, config_option, load, say


def _tz(cfg, site: str | None, zone: str | None) -> str:
    """The zone bare CLI times are read in: the site's (docs/ARCHITECTURE.md "Samples and quality")."""
    if zone is not None:
        try:
            site = cfg.zone(zone).site
        except StopIteration:
            known = ", ".join(z.id for z in cfg.zones)
            raise CliError(f"--zone {zone}: no such zone; known: {known}", USAGE) from None
    if site is not None:
        try:
            return cfg.site(site).timezone
        except StopIteration:
            known = ", ".join(s.id for s in cfg.sites)
            raise CliError(f"--site {site}: no such site; known: {known}", USAGE) from None
    return cfg.sites[0].timezone if cfg.sites else "UTC"


def _range(frm: str, to: str, tz: str) -> tuple[int, int]:
    from facility.domain.timeparse import TimeError, parse_range

    try:
        return parse_range(frm, to, tz)
    except TimeError as exc:
        raise CliError(f"--from/--to: {exc}", USAGE) from None


def _audit_key(cfg, required: bool = False) -> bytes | None:
    """The audit key where the service keeps it (env var, else audit.key beside the db)."""
    from facility.store import AuditKeyError
    from facility.store.keys import audit_key

    try:
        return audit_key(cfg)
    except AuditKeyError as exc:
        if required:
            raise CliError(str(exc), USAGE) from None
        say(f"warning: {exc}; continuing without the key", err=True)
        return None


def _open_ro(cfg):
    """The database, read-only (``StoreMissing``, exit 3, when it does not exist yet)."""
    from facility.store import Store

    return Store(cfg.db_path, readonly=True)


@cli.command("export")
@config_option
@click.option("--from", "frm", required=True, help="start (inclusive); bare dates/times are in the site's zone")
@click.option("--to", "to", required=True, help="end (exclusive); a bare date means the end of that day")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="new or empty folder")
@click.option("--site", default=None, help="only this site")
@click.option("--zone", default=None, help="only this zone")
def export_cmd(config_path, frm, to, out, site, zone):
    """Auditor export: samples, alarms, audit slice, configs, manifest and report.html."""
    from facility.records.export import ExportRequest, export
    from facility.store.keys import signing_key_path

    cfg = load(config_path)
    if cfg.central.sites:  # a central config: one site's mirror
        return _export_mirror(cfg, *_range(frm, to, _tz(cfg, None, None)), out, site, zone)
    lo, hi = _range(frm, to, _tz(cfg, site, zone))
    key = _audit_key(cfg)
    with _open_ro(cfg) as store:
        req = ExportRequest(lo, hi, out, site=site, zone=zone, key=key)
        if sys.stderr.isatty():
            total = sum((store.partition_info(d) or {}).get("rows", 0) or 0
                        for d in store.partitions())
            with click.progressbar(length=max(total, 1), label="samples", file=sys.stderr) as bar:
                manifest, sha = export(cfg, store, req, progress=bar.update)
        else:
            manifest, sha = export(cfg, store, req)
    rows = manifest["files"]["samples.csv"]["rows"]
    if "signature" in manifest:
        signed = f"signed by {manifest['signature']['key']}"
    elif os.path.exists(signing_key_path(cfg)):
        signed = ("NOT signed (the signing key is not readable by this user; export as the "
                  "service account)")
    else:
        signed = "NOT signed (no signing key yet: the service creates it on its first start)"
    say(f"{out}: {len(manifest['files'])} files, {rows} samples, manifest sha256 {sha}, {signed}")


def _read_key_file(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            key = fh.read().strip()
    except OSError as exc:
        raise CliError(f"--key {path}: cannot read ({exc.strerror})", USAGE) from None
    if len(key) < 16:
        raise CliError(f"--key {path}: audit key is shorter than 16 bytes", USAGE)
    return key


def _export_mirror(cfg, lo: int, hi: int, out: str, site: str | None, zone: str | None) -> None:
    """``facility export --config central.toml [--site ID]``: the auditor's export of one
    site's mirror over ``[lo, hi)`` (epoch ms). ``--site`` names the mirrored site (``[[central.sites]] id``; needed when
    central mirrors more than one) and exports all of it; the manifest's ``campus`` block
    says what the export is a copy of and carries the edge's last signed chain checkpoint,
    so ``facility verify`` can say what the export proves (docs/ARCHITECTURE.md "Campus
    (Sparkplug B)")."""
    from facility.campus.central import mirror_path, site_of
    from facility.records.export import ExportRequest, export
    from facility.store import Store

    sites = cfg.central.sites
    if site is None and len(sites) > 1:
        raise CliError("central mirrors " + ", ".join(s.id for s in sites)
                       + "; name one with --site", USAGE)
    chosen = site_of(cfg, site=site or sites[0].id)
    path = mirror_path(cfg, chosen)
    if not os.path.exists(path):
        raise CliError(f"{path}: no mirror of site {chosen.id} yet; start `facility central`"
                       " and the site's `facility uplink`", RUNTIME)
    with Store(path, readonly=True) as store:
        node = {k: v["value"] for k, v in store.campus_node().items()}
        checkpoint = node.get("signed_checkpoint")
        campus = {
            "mirror_of": {"site": chosen.id, "node_id": chosen.node_id,
                          "group_id": chosen.group_id or cfg.central.group_id
                          or cfg.facility.id},
            "central": cfg.central.host_id,
            "edge_chain_head": node.get("edge_head"),
            "edge_signed_checkpoint": json.loads(checkpoint) if checkpoint else None,
            "central_trust": node.get("trust"),
        }
        req = ExportRequest(lo, hi, out, zone=zone, extra_manifest={"campus": campus})
        manifest, sha = export(cfg, store, req)
    rows = manifest["files"]["samples.csv"]["rows"]
    signed = (f"signed by central's key {manifest['signature']['key']}" if "signature" in
              manifest else "NOT signed (central has no signing key)")
    say(f"{out}: mirror of site {chosen.id}, {len(manifest['files'])} files, {rows} samples,"
        f" manifest sha256 {sha}, {signed}")


@cli.command("verify")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--key", "key_file", default=None, type=click.Path(dir_okay=False),
              help="audit key file: also prove authenticity (HMAC)")
@click.option("--trust", "trust", multiple=True, metavar="FINGERPRINT",
              help="a trusted signing key (fingerprint or public key, see `facility keys show`);"
                   " repeatable")
@click.option("--trust-file", "trust_files", multiple=True, type=click.Path(dir_okay=False),
              help="a file of trusted keys, one a line (# comments)")
@click.option("--strict", is_flag=True,
              help="exit 1 unless the manifest is signed by a trusted key")
@click.option("--config", "config_path", default="config.toml", show_default=True,
              help="only to find storage.audit_key_env; verify itself needs only FOLDER")
def verify_cmd(folder, key_file, trust, trust_files, strict, config_path):
    """Re-check an export offline; exit 1 naming the first file and row that differ."""
    from facility.records.signing import load_trust
    from facility.records.verify import verify_export

    if not os.path.isdir(folder):
        raise CliError(f"{folder}: no such folder", USAGE)
    key = None
    if key_file:
        key = _read_key_file(key_file)
    else:
        env = "FACILITY_AUDIT_KEY_FILE"
        if os.path.exists(config_path):
            try:
                env = load(config_path).storage.audit_key_env
            except CliError:
                pass
        if os.environ.get(env, "").strip():
            key = _read_key_file(os.environ[env].strip())
    result = verify_export(folder, key, load_trust(trust, trust_files))
    if not result.ok:
        raise CliError(f"{folder}: {result.problem}", CHECK_FAILED)
    say(f"{folder}: {result.summary}")
    if strict and not result.trusted:
        raise CliError(f"{folder}: --strict: {result.origin}", CHECK_FAILED)


@cli.command("archive")
@config_option
@click.option("--before", required=True, help="archive whole UTC days before this date (YYYY-MM-DD)")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="archive folder")
def archive_cmd(config_path, before, out):
    """Export, verify and record past day partitions, so retention may purge them.

    Opens the database read-write only for the record step (one short transaction per day).
    """
    import re

    from facility.records.archive import archive

    if not re.match(r"^\d{4}-\d{2}-\d{2}$", before):
        raise CliError(f"--before {before}: use a UTC date YYYY-MM-DD (partitions are UTC days)",
                       USAGE)
    cfg = load(config_path)
    key = _audit_key(cfg)
    done = archive(cfg, cfg.db_path, before, out, key=key,
                   log=lambda m: say(m, err=True))
    for a in done:
        say(f"{a.day}: {a.rows} rows -> {a.path} (manifest sha256 {a.manifest_sha256})")
    if not done:
        say(f"nothing to archive before {before}")


@cli.command("classify")
@config_option
@click.option("--zone", required=True, help="zone id")
@click.option("--from", "frm", required=True, help="start (inclusive), site's zone for bare times")
@click.option("--to", "to", required=True, help="end (exclusive); a bare date means the end of that day")
@click.option("--json", "as_json", is_flag=True, help="print the statement as JSON")
def classify_cmd(config_path, zone, frm, to, as_json):
    """ISO 14644-1:2015 classification statement from the zone's monitoring data."""
    from facility.records.classify import classify_zone

    cfg = load(config_path)
    lo, hi = _range(frm, to, _tz(cfg, None, zone))
    with _open_ro(cfg) as store:
        try:
            result = classify_zone(cfg, store, zone, lo, hi)
        except ValueError as exc:
            raise CliError(f"--zone {zone}: {exc}", USAGE) from None
    if as_json:
        click.echo(json.dumps({
            "zone": result.zone, "iso_class": result.iso_class, "passed": result.passed,
            "required_locations": result.required_locations,
            "present_locations": result.present_locations, "min_volume_l": result.min_volume_l,
            "record_volume_l": result.record_volume_l, "reasons": result.reasons,
            "sizes": [{"size_um": s.size_um, "limit": s.limit, "averages": s.averages}
                      for s in result.sizes]}, sort_keys=True))
    else:
        for line in result.lines():
            say(line)
    if not result.passed:
        sys.exit(CHECK_FAILED)  # the zone does not meet its class: a failed check, exit 1
