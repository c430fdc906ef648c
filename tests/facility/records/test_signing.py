"""Signed exports, trust, key rotation and the digest cross-check, on a real data set.

A forger here has everything an auditor has (the export, the shipped hash functions, even a
fresh Ed25519 key of their own) but not the site's signing key.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ed25519

from facility.cli import cli
from facility.records.export import ExportRequest, export
from facility.records.signing import extend_trust, manifest_signature
from facility.records.verify import MANIFEST, verify_export
from facility.records.witness import read_checkpoints, witness_path
from facility.store import Store
from facility.store.keys import (
    announcement_bytes,
    fingerprint,
    public_raw,
    signing_key,
    signing_key_path,
)
from tests.facility.records.test_verify_mutants import records, write_manifest, write_records
from tests.facility.records.test_verify_mutants import reseal as _reseal
from tests.fixtures.export import build

WIDE = ("--from", "2000-01-01", "--to", "2100-01-01")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A data set, its signing key (created as on the service's first start) and one export."""
    os.environ.pop("FACILITY_SIGNING_KEY_FILE", None)
    tmp = tmp_path_factory.mktemp("signing")
    cfg, db, t0 = build(tmp, minutes=26)  # the alarm raises at minute 20
    key = signing_key(cfg, create=True)
    out = tmp / "exp"
    with Store(db, readonly=True) as store:
        export(cfg, store, ExportRequest(0, 4_102_444_800_000, str(out), signing_key=key,
                                         report=False))
    return cfg, tmp, key, str(out)


def _fp(key) -> str:
    return fingerprint(public_raw(key))


def reseal(folder: str, key=None) -> None:
    """Recompute every row chain, sidecar, file hash, entry digest and the self-digest with the
    shipped functions, as a forger without the site's key would; sign with ``key`` if given."""
    man = _reseal(Path(folder))
    man.pop("signature", None)
    if key is not None:
        man["signature"] = manifest_signature(man["manifest_sha256"], key)
    write_manifest(Path(folder), man)


def edit_csv(folder: str, name: str, change) -> None:
    """Rewrite one CSV through ``change(rows)`` (header included), as the export writes it."""
    rows = records(Path(folder), name)
    change(rows)
    write_records(Path(folder), name, rows)


def verify(*args):
    return CliRunner().invoke(cli, ["verify", *args, "--config", "/nonexistent.toml"])


def test_key_file_is_0600_and_public_key_is_beside_it(site):
    cfg, _tmp, key, _out = site
    path = signing_key_path(cfg)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pub = os.path.join(os.path.dirname(path), "signing.pub")
    assert open(pub).read().strip() == public_raw(key).hex()
    assert _fp(signing_key(cfg)) == _fp(key)  # loaded again, not regenerated
    os.chmod(path, 0o640)
    try:
        with pytest.raises(Exception, match="accessible by group/others"):
            signing_key(cfg)
    finally:
        os.chmod(path, 0o600)


def test_untouched_export_passes_with_trust_and_says_integrity_only_without(site, tmp_path):
    cfg, _tmp, key, out = site
    fp = _fp(key)
    r = verify(out, "--trust", fp, "--strict")
    assert r.exit_code == 0, r.output
    assert f"origin: signed by trusted key {fp}" in r.output
    assert "cycles cross-checked" in r.output and " 0 cycles" not in r.output
    r = verify(out)
    assert r.exit_code == 0, r.output
    assert "integrity only: origin not checked (no trusted key)" in r.output
    r = verify(out, "--strict")
    assert r.exit_code == 1 and "integrity only" in r.output
    # a trust file made from `facility keys show`
    shown = CliRunner().invoke(cli, ["keys", "show", "--config", str(site[1] / "config.toml")])
    assert shown.exit_code == 0 and fp in shown.output and public_raw(key).hex() in shown.output
    (tmp_path / "trusted.keys").write_text(shown.output)
    r = verify(out, "--trust-file", str(tmp_path / "trusted.keys"), "--strict")
    assert r.exit_code == 0, r.output
    r = verify(out, "--trust", "not-a-key")
    assert r.exit_code == 2 and "neither a fingerprint" in r.output


def test_export_recomputed_without_the_key_fails_trusted_verify(site, tmp_path):
    _cfg, _tmp, key, out = site
    fp = _fp(key)
    forged = str(tmp_path / "forged")
    shutil.copytree(out, forged)

    def retarget(rows):
        col = rows[0].index("ack_reason")
        rows[1][col] = "nothing happened"

    edit_csv(forged, "alarms.csv", retarget)
    own = ed25519.Ed25519PrivateKey.generate()
    reseal(forged, own)  # every hash recomputed and signed, by the forger's own key
    assert verify_export(forged).ok  # the shipped hash functions alone cannot tell
    r = verify(forged, "--trust", fp)
    assert r.exit_code == 1 and f"signed by {_fp(own)}, which is not trusted" in r.output
    reseal(forged)  # unsigned
    r = verify(forged, "--trust", fp)
    assert r.exit_code == 1 and "not signed" in r.output
    with open(os.path.join(out, MANIFEST)) as fh:
        genuine = json.load(fh)["signature"]
    with open(os.path.join(forged, MANIFEST)) as fh:
        man = json.load(fh)
    man["signature"] = genuine  # the site's signature copied onto the forged manifest
    with open(os.path.join(forged, MANIFEST), "w") as fh:
        json.dump(man, fh)
    r = verify(forged)
    assert r.exit_code == 1 and "signature does not match" in r.output


def test_changed_sample_with_recomputed_hashes_is_caught_by_the_digest_rows(site, tmp_path):
    _cfg, _tmp, key, out = site
    forged = str(tmp_path / "forged")
    shutil.copytree(out, forged)

    def bump(rows):
        col = rows[0].index("value")
        rows[40][col] = repr(float(rows[40][col]) + 1.0)

    edit_csv(forged, "samples.csv", bump)
    reseal(forged, key)  # even re-signed with the site's key: the chain's digest rows disagree
    res = verify_export(forged)
    assert not res.ok
    assert "samples.csv: cycle" in res.problem and "differ from the chain" in res.problem

    deleted = str(tmp_path / "deleted")
    shutil.copytree(out, deleted)
    edit_csv(deleted, "samples.csv", lambda rows: rows.pop(7))
    reseal(deleted, key)
    assert "samples.csv: cycle" in verify_export(deleted).problem

    event = str(tmp_path / "event")
    shutil.copytree(out, event)

    def reword(rows):
        rows[1][rows[0].index("value")] = "9.5"

    edit_csv(event, "events.csv", reword)
    reseal(event, key)
    res = verify_export(event)
    assert not res.ok and "events.csv: events" in res.problem


def test_rotated_key_verifies_old_and_new_exports(tmp_path, monkeypatch):
    monkeypatch.delenv("FACILITY_SIGNING_KEY_FILE", raising=False)
    cfg, db, _t0 = build(tmp_path, minutes=3)
    old = signing_key(cfg, create=True)
    with Store(db, readonly=True) as store:
        export(cfg, store, ExportRequest(0, 4_102_444_800_000, str(tmp_path / "a"),
                                         signing_key=old, report=False))
    conf = str(tmp_path / "config.toml")
    r = CliRunner().invoke(cli, ["keys", "rotate", "--reason", "yearly rotation", "--config", conf])
    assert r.exit_code == 0, r.output
    new = signing_key(cfg)
    assert _fp(new) != _fp(old) and stat.S_IMODE(os.stat(signing_key_path(cfg)).st_mode) == 0o600
    r = CliRunner().invoke(cli, ["export", "--config", conf, *WIDE, "--out", str(tmp_path / "b")])
    assert r.exit_code == 0 and f"signed by {_fp(new)}" in r.output, r.output
    with open(tmp_path / "b" / "audit.csv", newline="") as fh:
        (row,) = [r for r in csv.DictReader(fh) if r["action"] == "signing_key_rotated"]
    assert _fp(old) in row["details"] and _fp(new) in row["details"]
    # the old key witnessed the chain with the announcement in it; the manifest carries it
    (line,) = read_checkpoints(witness_path(cfg))
    assert line["row_id"] == int(row["id"]) and line["key"] == public_raw(old).hex()
    with open(tmp_path / "b" / MANIFEST) as fh:
        assert json.load(fh)["witness"] == line
    # trust in the old key extends to the new one through the announcement signed by both
    for folder in ("a", "b"):
        r = verify(str(tmp_path / folder), "--trust", _fp(old), "--strict")
        assert r.exit_code == 0, r.output
    r = verify(str(tmp_path / "b"), "--trust", _fp(new), "--strict")
    assert r.exit_code == 0, r.output
    # an export from before the rotation does not know the new key: trust both (keys show)
    r = verify(str(tmp_path / "a"), "--trust", _fp(new))
    assert r.exit_code == 1 and "not trusted" in r.output
    shown = CliRunner().invoke(cli, ["keys", "show", "--config", conf])
    assert _fp(old) in shown.output and _fp(new) in shown.output
    (tmp_path / "trusted.keys").write_text(shown.output)
    for folder in ("a", "b"):
        r = verify(str(tmp_path / folder), "--trust-file", str(tmp_path / "trusted.keys"),
                   "--strict")
        assert r.exit_code == 0, r.output
    # an announcement not signed by the trusted old key extends nothing
    with open(tmp_path / "b" / MANIFEST) as fh:
        ann = json.load(fh)["key_history"][0]
    assert ann["old_key"] == _fp(old) and ann["new_key"] == _fp(new)
    assert _fp(new) in extend_trust({_fp(old)}, [ann])
    forger = ed25519.Ed25519PrivateKey.generate()
    fake = dict(ann, new_key=_fp(forger), new_public=public_raw(forger).hex())
    msg = announcement_bytes(fake)
    fake.update(sig_old=forger.sign(msg).hex(), sig_new=forger.sign(msg).hex())
    assert extend_trust({_fp(old)}, [fake]) == {_fp(old)}
