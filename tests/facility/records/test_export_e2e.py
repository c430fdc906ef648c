"""The auditor's path end to end, on data the real service wrote.

Real parts only: the pymodbus simulator on ephemeral loopback ports, the service in-process
(the ``start_service`` fixture), a loopback HTTP page receiver, the Unix action socket, a
real SQLite file — and then the auditor's commands as subprocesses of the real CLI:

1. a door-open excursion on Z1 (``Z1.dp_cascade:action_low``), acknowledged through the
   action socket with a reason, returned to normal; a hazmat receipt booked with
   ``facility hazmat receive`` while the service runs;
2. ``facility export`` of the whole period -> ``facility verify`` exits 0 -> alarms.csv names
   the acknowledging login, the reason, the onset and the clear; report.html shows the zone
   and the excursion; hazmat_ledger.csv has the receipt;
3. one value changed in samples.csv -> ``facility verify`` exits 1 naming samples.csv and row;
4. ``facility archive`` -> ``Store.purge_partition`` -> the archive still verifies, the
   partition file is gone, the audit trail names the manifest hash, ``facility audit
   verify`` exits 0.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from facility.config import parse_config
from facility.domain.model import PointInfo, Sample
from facility.service.socket import current_login, request
from facility.store import Cycle, Store
from facility.store.keys import audit_key, default_key_path
from facility.store.partitions import partition_path
from tests.fixtures.service import config_text, wait_for

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow

CASCADE = "Z1.dp_cascade:action_low"
REASON = "door held for a pallet transfer"

HAZMAT = {
    "substances": [{"id": "ipa", "name": "Isopropanol", "un": "UN1219", "class": "3",
                    "unit": "L"}],
    "stores": [{"id": "DGS", "site": "S", "zone": "Z2", "premises": "industrial",
                "licence": "DG-E2E-1", "licensed_max": {"3": 400.0},
                "compartments": ["flammables"]}],
}


def _facility(tmp_path, url):
    """The shared test facility plus a dangerous-goods store; the login gets role hazmat."""
    text = config_text(str(tmp_path / "fms.db"), url, roles=("technician", "hazmat"),
                       hazmat=HAZMAT)
    path = tmp_path / "config.toml"
    path.write_text(text)
    return parse_config(text, base_dir=str(tmp_path)), path


KEY_ENV = "FACILITY_AUDIT_KEY_FILE"  # storage.audit_key_env's default


def _env(key_file=None):
    """The caller's environment without an audit key variable, or with ``key_file`` in it.

    Without the variable every command finds the key the way the product does on its own
    (the service creates ``audit.key`` beside the database; see facility.store.keys).
    """
    env = dict(os.environ)
    env.pop(KEY_ENV, None)
    if key_file is not None:
        env[KEY_ENV] = str(key_file)
    return env


def _cli(*args, config=None, key_file=None):
    cmd = [sys.executable, "-m", "facility", *args]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=_env(key_file),
                          timeout=120)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _utc_day(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d")


def test_auditor_export_verify_tamper_archive_purge(tmp_path, receiver, start_service):
    cfg, cfg_path = _facility(tmp_path, receiver.url)
    login = current_login()
    # ---- 1. the service records an acknowledged excursion and a hazmat receipt ----------
    run = start_service(cfg)
    got = _cli("hazmat", "receive", "--container", "IPA-0001", "--substance", "ipa",
               "--quantity", "20", "--unit", "L", "--store", "DGS", "--compartment",
               "flammables", "--reason", "delivery note 4711", config=cfg_path)
    assert got.returncode == 0, got.stderr
    run.call(run.sim.set_scenario, "door-open", "Z1")
    assert wait_for(lambda: run.state(CASCADE).state.value == "UNACK"), "no alarm"
    occ = run.state(CASCADE).occurrence
    reply = request(cfg.db_path, {"action": "ack", "alarm": CASCADE, "occurrence": occ,
                                  "reason": REASON})
    assert reply["ok"] and reply["state"] == "ACKED"
    run.call(run.sim.set_scenario, "normal", None)
    assert wait_for(lambda: run.state(CASCADE).state.value == "NORM"), "never cleared"
    assert wait_for(lambda: "resolve" in receiver.actions_for(CASCADE)), receiver.pages
    run.stop()

    # ---- 2. the auditor exports the whole period and verifies it -------------------------
    # Bare dates are in the site's zone (Asia/Hong_Kong); --to DATE is the end of that day.
    local_today = datetime.now(timezone.utc).astimezone(ZoneInfo("Asia/Hong_Kong")).date()
    frm, to = str(local_today - timedelta(days=1)), str(local_today)
    exp = tmp_path / "export"
    got = _cli("export", "--from", frm, "--to", to, "--out", str(exp), config=cfg_path)
    assert got.returncode == 0, got.stderr
    assert re.search(r"manifest sha256 [0-9a-f]{64}", got.stdout), got.stdout
    got = _cli("verify", str(exp))
    assert got.returncode == 0, got.stdout + got.stderr
    assert "ok:" in got.stdout

    alarms = _rows(exp / "alarms.csv")
    (row,) = [a for a in alarms if a["alarm_id"] == CASCADE and a["occurrence"] == str(occ)]
    assert row["acknowledged_by"] == f"Test Technician ({login})"  # name (login)
    assert row["ack_reason"] == REASON
    assert row["onset"].endswith("Z") and row["cleared_onset"].endswith("Z")
    assert row["onset"] <= row["acknowledged"] and row["onset"] < row["cleared_onset"]
    assert row["last_state"] == "NORM" and row["zone"] == "Z1" and row["limit"] == "10.0"
    events = [e["event"] for e in _rows(exp / "events.csv")
              if e["alarm_id"] == CASCADE and e["occurrence"] == str(occ)]
    assert events[:3] == ["raise", "ack", "clear"]
    ledger = _rows(exp / "hazmat_ledger.csv")
    assert [(m["container_id"], m["actor"], m["reason"]) for m in ledger] == [
        ("IPA-0001", login, "delivery note 4711")]
    audit = _rows(exp / "audit.csv")
    assert any(a["action"] == "ack" and a["actor"] == login and a["reason"] == REASON
               and a["subject"] == f"{CASCADE}#{occ}" for a in audit)

    html = (exp / "report.html").read_text(encoding="utf-8")
    z1 = re.search(r'<section class="zone" id="zone-Z1">.*?</section>', html, re.S)
    assert z1, "report.html has no section for zone Z1"
    assert CASCADE in z1.group(0), "the excursion is not in Z1's section of the report"
    assert "no excursions in the range" not in z1.group(0)
    assert "not cleared" not in z1.group(0)

    # ---- 3. tampering: one value in samples.csv is changed -------------------------------
    samples = exp / "samples.csv"
    lines = samples.read_text(encoding="utf-8").splitlines(keepends=True)
    target = next(i for i, ln in enumerate(lines[1:], start=1)
                  if ",Z1.dp_cascade," in ln and ln.split(",")[6])
    fields = lines[target].rstrip("\n").split(",")
    fields[6] = repr(float(fields[6]) + 5.0)  # the excursion "never happened"
    lines[target] = ",".join(fields) + "\n"
    samples.write_text("".join(lines), encoding="utf-8")
    got = _cli("verify", str(exp))
    assert got.returncode == 1, got.stdout + got.stderr
    assert f"samples.csv row {target}" in got.stderr, got.stderr

    # ---- 4. archive -> purge --------------------------------------------------------------
    # `facility archive` only takes whole PAST UTC days (facility.records.archive.days_to_archive
    # skips today's partition, which the service may still be writing). The service's data
    # is all from today, so a past-day partition is written here through the real Store API
    # (one Store.write_cycle, with the service's own audit key, as a backfill would): a
    # minute of samples two UTC days ago (two, so a run near UTC midnight cannot mix the
    # service's own data into that day).
    now = datetime.now(timezone.utc)
    past = datetime(now.year, now.month, now.day, tzinfo=timezone.utc) - timedelta(days=2)
    day = _utc_day(past)
    t0 = int(past.timestamp() * 1000) + 3_600_000
    backfill = [Sample(p, t0 + k * 1000, 12.5 + k / 10)
                for k in range(60) for p in ("DP-1.dp", "Z1.dp_cascade")]
    key = audit_key(cfg)
    assert key is not None, "the service did not create its audit key"
    with Store(cfg.db_path, key=key) as store:
        res = store.write_cycle(Cycle(samples=backfill, actor="backfill"))
        assert res.stored == len(backfill)
        assert day in store.partitions()

    # Archive appends audit rows, so it runs as the service account WITH the service's key,
    # here handed over through storage.audit_key_env's variable (the default location beside
    # the database is covered by the test below).
    key_file = default_key_path(cfg)
    arch = tmp_path / "archive"
    tomorrow = _utc_day(now + timedelta(days=1))
    got = _cli("archive", "--before", tomorrow, "--out", str(arch), config=cfg_path,
               key_file=key_file)
    assert got.returncode == 0, got.stderr
    assert f"{day}: {len(backfill)} rows" in got.stdout, got.stdout
    assert _utc_day(now) not in os.listdir(arch), "today's partition must not be archived"
    got = _cli("verify", str(arch / day), "--key", key_file)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "authentic (HMAC)" in got.stdout

    with Store(cfg.db_path, key=key) as store:
        man_sha = store.conn.execute(
            "SELECT manifest_sha256 FROM archives WHERE day = ? AND verified_ms IS NOT NULL",
            (day,)).fetchone()[0]
        entry = store.purge_partition(day, actor=login, reason="retention after archive")
        assert entry["subject"] == day
        assert day not in store.partitions()
    assert not os.path.exists(partition_path(cfg.db_path, day)), "partition file still there"

    with Store(cfg.db_path, readonly=True) as store:
        purges = store.audit_rows(action="partition_purged")
        archived = store.audit_rows(action="archive_recorded")
    assert purges and purges[-1]["subject"] == day and purges[-1]["actor"] == login
    assert purges[-1]["details"]["manifest_sha256"] == man_sha
    assert purges[-1]["details"]["rows"] == len(backfill)
    assert purges[-1]["reason"] == "retention after archive"
    assert archived and archived[-1]["details"]["manifest_sha256"] == man_sha
    # the recorded hash is the hash of the archive's manifest.json as it lies on disk
    assert hashlib.sha256((arch / day / "manifest.json").read_bytes()).hexdigest() == man_sha
    man = json.loads((arch / day / "manifest.json").read_text())
    assert man["files"]["samples.csv"]["rows"] == len(backfill)

    for extra in ((), ("--key", key_file)):  # the archive outlives its partition
        got = _cli("verify", str(arch / day), *extra)
        assert got.returncode == 0, got.stdout + got.stderr
    got = _cli("audit", "verify", config=cfg_path)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "authenticity (HMAC)" in got.stdout


def test_archive_with_the_default_key_location_keeps_the_chain_authentic(tmp_path):
    """The documented default set-up (no key variable, audit.key beside the database)."""
    text = config_text(str(tmp_path / "fms.db"), "http://127.0.0.1:9")
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(text)
    cfg = parse_config(text, base_dir=str(tmp_path))
    key = audit_key(cfg, create=True)  # what the service does on its first start
    now = datetime.now(timezone.utc)
    past = datetime(now.year, now.month, now.day, tzinfo=timezone.utc) - timedelta(days=2)
    t0 = int(past.timestamp() * 1000)
    with Store(cfg.db_path, key=key) as store:
        store.register_points([PointInfo("DP-1.dp", "DP-1", "S", "Z1", "pressure_diff", "Pa", 2)])
        store.record_config(cfg.text, cfg.sha256)
        store.write_cycle(Cycle(samples=[Sample("DP-1.dp", t0 + k * 1000, 12.5)
                                         for k in range(10)]))
    got = _cli("audit", "verify", config=cfg_path)
    assert got.returncode == 0 and "authenticity (HMAC)" in got.stdout, got.stderr
    got = _cli("archive", "--before", _utc_day(now), "--out", str(tmp_path / "a"),
               config=cfg_path)
    assert got.returncode == 0, got.stderr
    got = _cli("audit", "verify", config=cfg_path)
    assert got.returncode == 0, got.stdout + got.stderr
