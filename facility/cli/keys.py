"""``facility keys show`` and ``facility keys rotate``: the site's Ed25519 signing key
(docs/ARCHITECTURE.md "Signing"; trust and rotation: ``facility.records.signing``)."""

from __future__ import annotations

import getpass
import os

import click

from facility.cli.errors import CHECK_FAILED, CliError
from facility.cli.group import cli, config_option, load, say


@cli.group("keys")
def keys():
    """The signing key that proves where exports and chain checkpoints come from."""


def _site_keys(cfg) -> tuple[str, list[str]]:
    from facility.store.keys import public_raw, signing_key, signing_key_path, site_public_keys

    folder = os.path.dirname(os.path.abspath(signing_key_path(cfg)))
    known = site_public_keys(folder)
    try:
        key = signing_key(cfg)
    except Exception:  # noqa: BLE001 - not readable by this user: signing.pub still names it
        key = None
    current = public_raw(key).hex() if key is not None else (known[-1] if known else "")
    return current, known


@keys.command("show")
@config_option
def keys_show(config_path):
    """Print the public key and fingerprint (and every earlier key) for a trust file."""
    from facility.store.keys import fingerprint, signing_key_path

    cfg = load(config_path)
    current, known = _site_keys(cfg)
    if not current:
        raise CliError(f"{signing_key_path(cfg)}: no signing key yet (the service creates it on "
                       "first start)", CHECK_FAILED)
    say(f"# signing key {signing_key_path(cfg)}; put these lines in the auditor's trust file")
    say(f"{fingerprint(bytes.fromhex(current))} {current}  # current")
    for pub in reversed(known):
        if pub != current:
            say(f"{fingerprint(bytes.fromhex(pub))} {pub}  # earlier (rotated out)")


@keys.command("rotate")
@click.option("--reason", required=True, help="why the key is replaced (recorded in the audit trail)")
@config_option
def keys_rotate(reason, config_path):
    """Replace the signing key; the announcement is signed by the old and the new key and
    written into the audit chain (the service must be stopped)."""
    from facility.domain.model import iso_ms, now_ms
    from facility.service.health import ServiceLock
    from facility.store import Store
    from facility.store.keys import audit_key, rotate_signing_key, signing_key, signing_key_path
    from facility.store.witness import append_checkpoint, witness_path

    cfg = load(config_path)
    path = signing_key_path(cfg)
    if signing_key(cfg) is None:
        raise CliError(f"{path}: no signing key to rotate (start the service once, or run as "
                       "the service account)", CHECK_FAILED)
    lock = ServiceLock(cfg.db_path)
    lock.acquire()  # ServiceLocked (exit 2) while the service runs: it holds the key open
    try:
        with Store(cfg.db_path, key=audit_key(cfg, create=True)) as store:

            def announce(ann, old_key):
                row = store.append_audit({"action": "signing_key_rotated",
                                          "actor": getpass.getuser(), "subject": ann["new_key"],
                                          "reason": reason, "details": ann})
                # the old key witnesses the chain with the announcement in it
                append_checkpoint(witness_path(cfg), old_key, row["id"], row["hash"])

            ann, _new = rotate_signing_key(path, iso_ms(now_ms()), announce)
    finally:
        lock.release()
    say(f"signing key rotated: {ann['old_key']} -> {ann['new_key']} (announced in the audit "
        "trail, signed by both keys)")
