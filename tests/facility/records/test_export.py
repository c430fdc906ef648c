"""Export round trip, archive -> purge, on a real SQLite data set."""

from __future__ import annotations

import csv
import json
import os

import pytest
from click.testing import CliRunner

from facility.cli import cli
from facility.records.export import ExportRequest, export
from facility.records.verify import verify_export
from facility.store import Store
from tests.fixtures.export import CONFIG, build, key_file


@pytest.fixture()
def dataset(tmp_path):
    path, key = key_file(tmp_path)
    cfg, db, t0 = build(tmp_path, key=key)
    return cfg, db, t0, path, key


def test_round_trip_export_verify(dataset, tmp_path, monkeypatch):
    cfg, db, t0, kpath, key = dataset
    out = tmp_path / "exp"
    monkeypatch.setenv("T_EXPORT_AUDIT_KEY", kpath)
    r = CliRunner().invoke(cli, ["export", "--config", str(tmp_path / "config.toml"),
                                 "--from", "2000-01-01", "--to", "2100-01-01", "--out", str(out)])
    assert r.exit_code == 0, r.output
    names = set(os.listdir(out))
    assert {"samples.csv", "alarms.csv", "events.csv", "audit.csv", "hazmat_ledger.csv",
            "manifest.json", "report.html"} <= names
    assert any(n.startswith("config-1-") and n.endswith(".toml") for n in names)
    man = json.loads((out / "manifest.json").read_text())
    assert man["files"]["samples.csv"]["rows"] == 2 * 60 * (9 + 12)
    assert man["audit"]["chain_head"]["id"] >= 1 and man["exported_by"]
    with open(out / "samples.csv", newline="") as fh:
        first = next(csv.DictReader(fh))
    assert first["ts"].endswith("Z") and len(first["ts"]) == 24 and first["site"] == "S"
    with open(out / "alarms.csv", newline="") as fh:
        (alarm,) = list(csv.DictReader(fh))
    assert alarm["acknowledged_by"] == "engineer"
    assert alarm["ack_reason"] == "door propped open for a delivery"
    assert alarm["limit"] == "10.0" and alarm["cleared_onset"] and alarm["config_version"] == "1"
    with open(out / "hazmat_ledger.csv", newline="") as fh:
        (mv,) = list(csv.DictReader(fh))
    assert mv["container_id"] == "IPA-0001" and mv["reason"] == "delivery note 4711"
    cfg_file = next(n for n in names if n.startswith("config-"))
    assert (out / cfg_file).read_text() == cfg.text
    r = CliRunner().invoke(cli, ["verify", str(out), "--key", kpath])
    assert r.exit_code == 0, r.output
    assert "ok:" in r.output and "authentic" in r.output
    monkeypatch.delenv("T_EXPORT_AUDIT_KEY")
    r = CliRunner().invoke(cli, ["verify", str(out), "--config", str(tmp_path / "nope.toml")])
    assert r.exit_code == 0 and "continuity only" in r.output
    r = CliRunner().invoke(cli, ["verify", str(out), "--key", str(tmp_path / "x.key")])
    assert r.exit_code == 2


def test_zone_filter_and_half_open_range(dataset, tmp_path):
    cfg, db, t0, _k, _key = dataset
    with Store(db, readonly=True) as store:
        _m, _sha = export(cfg, store, ExportRequest(t0, t0 + 10 * 60_000, str(tmp_path / "z"),
                                                    zone="Z2"))
    with open(tmp_path / "z" / "samples.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["zone"] for r in rows} == {"Z2"}
    assert len(rows) == 10 * 3  # minutes 0..9: [from, to) excludes minute 10
    assert verify_export(str(tmp_path / "z")).ok


def test_missing_database_exits_3(tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG)
    r = CliRunner().invoke(cli, ["export", "--config", str(tmp_path / "config.toml"), "--from",
                                 "2025-01-01", "--to", "2025-01-02", "--out", str(tmp_path / "o")])
    assert r.exit_code == 3 and "does not exist" in r.output


def test_archive_purge_archive_still_verifies(dataset, tmp_path, monkeypatch):
    cfg, db, t0, kpath, key = dataset
    monkeypatch.setenv("T_EXPORT_AUDIT_KEY", kpath)
    out = tmp_path / "arch"
    r = CliRunner().invoke(cli, ["archive", "--config", str(tmp_path / "config.toml"),
                                 "--before", "2100-01-01", "--out", str(out)])
    assert r.exit_code == 0, r.output
    days = sorted(os.listdir(out))
    assert len(days) == 2
    with Store(db, key=key) as store:
        entry = store.purge_partition(days[0], actor="engineer", reason="retention after archive")
        man_sha = store.conn.execute("SELECT manifest_sha256 FROM archives WHERE day = ?",
                                     (days[0],)).fetchone()[0]
        assert days[0] not in store.partitions()
        purge = store.audit_rows(action="partition_purged")
        assert purge and purge[-1]["details"]["manifest_sha256"] == man_sha
        assert purge[-1]["details"]["rows"] == 60 * 21 and entry["subject"] == days[0]
        assert store.verify_audit(key).ok
    res = verify_export(str(out / days[0]), key)
    assert res.ok, res.problem
    r = CliRunner().invoke(cli, ["archive", "--config", str(tmp_path / "config.toml"),
                                 "--before", "2100-01-01", "--out", str(out)])
    assert r.exit_code == 0 and "nothing to archive" in r.output
