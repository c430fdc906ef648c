"""``check_digests``: every cycle digest recomputed from real SQLite files, tampered with sqlite3."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from facility.cli import cli
from facility.domain.model import PointInfo, Sample
from facility.store.database import Cycle, Store
from facility.store.digest_check import check_digests
from facility.store.partitions import partition_path

T0 = int(datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp() * 1000)
DAY = 86_400_000
POINTS = [
    PointInfo("MEC-DP-01.dp", "MEC-DP-01", "MEC", "MEC-LITHO", "pressure_diff", "Pa", 1),
    PointInfo("MARS-PC-01.pc_0_5um", "MARS-PC-01", "MARS", "MARS-C1", "particle_conc", "/m3",
              0, gmp=True),
]
DP, PC = (p.id for p in POINTS)
AID = "MEC-DP-01.dp:action_low"


@pytest.fixture
def written(store):
    """Four cycles over two days (a backfill among them), an alarm and its events; closed."""
    ids = []
    for c in range(3):  # day 1: three cycles of both points
        r = store.write_cycle(Cycle(samples=[Sample(p, T0 + c * 10_000 + k * 1000, 10.0 + k)
                                             for p in (DP, PC) for k in range(5)]))
        ids.append(r.digest_id)
    r = store.write_cycle(Cycle(
        samples=[Sample(DP, T0 + DAY, 4.0), Sample(DP, T0 + 500, 0.5)],  # next day + a late row
        alarms=[{"id": AID, "state": "UNACK", "active": 1, "occurrence": 1}],
        events=[{"alarm_id": AID, "occurrence": 1, "event": "raise", "ts_ms": T0},
                {"alarm_id": AID, "occurrence": 1, "event": "note", "ts_ms": T0 + 1}]))
    ids.append(r.digest_id)
    r = store.write_cycle(Cycle(alarms=[{"id": AID, "state": "ACKED", "acked": 1}]))
    ids.append(r.digest_id)
    store.close()
    return store.path, ids


def check(path):
    with Store(path, readonly=True) as s:
        return check_digests(s.conn, s.path)


def tamper(path, sql, params=()):
    conn = sqlite3.connect(path)
    try:
        assert conn.execute(sql, params).rowcount == 1
        conn.commit()
    finally:
        conn.close()


DAY1 = "2025-03-01"


def test_untampered_store_has_no_findings_and_counts_what_it_read(written):
    path, ids = written
    res = check(path)
    assert res.findings == []
    assert (res.cycles, res.v1_skipped, res.partitions, res.samples, res.events, res.alarms) == (
        5, 0, 2, 32, 2, 1)


def test_changed_sample_named_with_partition_and_cycle(written):
    path, ids = written
    tamper(partition_path(path, DAY1), "UPDATE samples SET value = 99 WHERE ts_ms = ? AND point_id = 1",
           (T0 + 10_000 + 2000,))
    assert check(path).findings == [
        f"samples: partition {DAY1}, cycle #{ids[1]}: digest mismatch (a sample changed, deleted"
        " or inserted; 10 rows stored, 10 in the digest)"]


def test_deleted_sample_and_deleted_late_row_named(written):
    path, ids = written
    tamper(partition_path(path, DAY1), "DELETE FROM samples WHERE ts_ms = ? AND point_id = 1",
           (T0 + 20_000,))
    tamper(partition_path(path, DAY1), "DELETE FROM samples WHERE ts_ms = ?", (T0 + 500,))
    findings = check(path).findings
    assert findings == [
        f"samples: partition {DAY1}, cycle #{ids[2]}: digest mismatch (a sample changed, deleted"
        " or inserted; 9 rows stored, 10 in the digest)",
        f"samples: partition {DAY1}, cycle #{ids[3]}: digest mismatch (a sample changed, deleted"
        " or inserted; 0 rows stored, 1 in the digest)"]


def test_inserted_sample_inside_a_cycle_and_outside_every_cycle(written):
    path, ids = written
    part = partition_path(path, DAY1)
    tamper(part, "INSERT INTO samples VALUES (1, ?, 5.0, 0)", (T0 + 10_000 + 500,))
    tamper(part, "INSERT INTO samples VALUES (1, ?, 5.0, 0)", (T0 + 3_600_000,))
    findings = check(path).findings
    assert findings == [
        f"samples: partition {DAY1}: 1 rows belong to no cycle (inserted; first at ts"
        f" {T0 + 3_600_000} point {DP})",
        f"samples: partition {DAY1}, cycle #{ids[1]}: digest mismatch (a sample changed, deleted"
        " or inserted; 11 rows stored, 10 in the digest)"]


def test_changed_event_named_with_its_rows_and_cycle(written):
    path, ids = written
    with Store(path, readonly=True) as s:
        doc = json.loads(s.conn.execute("SELECT details FROM audit WHERE id = ?",
                                        (ids[3],)).fetchone()[0])
    a, b = doc["event_ids"]
    tamper(path, "UPDATE events SET ts_ms = ts_ms + 1 WHERE id = ?", (b,))
    assert check(path).findings == [
        f"events: cycle #{ids[3]}: event rows {a}-{b} do not match the digest (2 stored, 2 in"
        " the digest)"]


def test_changed_deleted_and_inserted_alarm_rows_named(written):
    path, ids = written
    tamper(path, "UPDATE alarms SET state = 'NORM' WHERE id = ?", (AID,))
    assert check(path).findings == [f"alarms: {AID}: row differs from cycle #{ids[4]}'s digest"]
    tamper(path, "DELETE FROM alarms WHERE id = ?", (AID,))
    tamper(path, "INSERT INTO alarms (id) VALUES ('X:forged')")
    assert check(path).findings == [
        f"alarms: {AID}: row deleted (recorded by cycle #{ids[4]}'s digest)",
        "alarms: X:forged: row in no cycle's digest (inserted)"]


def test_deleted_partition_named_with_its_cycles_and_rows(written):
    path, ids = written
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(partition_path(path, DAY1) + suffix):
            os.remove(partition_path(path, DAY1) + suffix)
    res = check(path)
    assert res.findings == [
        f"samples: partition {DAY1} missing (cycles #{ids[0]}-#{ids[3]} wrote 31 rows)"]
    assert res.partitions == 1
    with Store(path) as s:  # marking the day purged without the audited purge is no excuse
        s.conn.execute("UPDATE partition_state SET purged_ms = 1 WHERE day = ?", (DAY1,))
    assert len(check(path).findings) == 1


def test_audited_purge_is_not_a_finding(written):
    path, ids = written
    with Store(path) as s:  # a GMP day: archived first
        s.record_archive(DAY1, "/archive/2025-03-01", "0" * 64, 31)
        s.purge_partition(DAY1, "bob", "archived")
    assert not os.path.exists(partition_path(path, DAY1))
    res = check(path)
    assert res.findings == [] and res.partitions == 1


def test_version1_digests_are_counted_and_skipped(written):
    path, ids = written
    conn = sqlite3.connect(path)
    conn.execute("UPDATE audit SET details = json_remove(details, '$.v') WHERE id = ?", (ids[0],))
    conn.commit()
    conn.close()
    res = check(path)
    assert (res.cycles, res.v1_skipped) == (4, 1)
    # cycle 1's rows are claimed by no version-2 range: not reported as inserted, and the
    # other cycles are still checked
    assert res.findings == []
    tamper(partition_path(path, DAY1), "UPDATE samples SET value = 99 WHERE ts_ms = ?"
           " AND point_id = 1", (T0 + 20_000,))
    assert [f.split(":")[1] for f in check(path).findings] == [
        f" partition {DAY1}, cycle #{ids[2]}"]


# -- the command ---------------------------------------------------------------------------
def test_cli_audit_verify_exit_1_naming_a_changed_sample_and_0_untouched(written, config_file):
    path, ids = written
    cfg = config_file(storage={"path": path})

    def run():
        return CliRunner().invoke(cli, ["audit", "verify", "--config", str(cfg)])

    ok = run()
    assert ok.exit_code == 0, (ok.stdout, ok.stderr, ok.exception)
    assert ok.stderr == ""
    assert re.fullmatch(r"audit trail ok: \d+ rows, continuity and content \(no key\) checked\n"
                        r"checked \d+ audit rows, 2 partitions, 5 cycles, 32 samples, 2 events,"
                        r" 1 alarms in \d+\.\d\d s\n", ok.stdout), ok.stdout
    tamper(partition_path(path, DAY1), "UPDATE samples SET value = 99 WHERE ts_ms = ? AND point_id = 1", (T0,))
    bad = run()
    assert bad.exit_code == 1, (bad.stdout, bad.stderr, bad.exception)
    assert bad.stderr == (f"samples: partition {DAY1}, cycle #{ids[0]}: digest mismatch (a sample"
                          " changed, deleted or inserted; 10 rows stored, 10 in the digest)\n")
