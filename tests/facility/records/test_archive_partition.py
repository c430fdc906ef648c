"""Purging a GMP partition needs a verified archive holding exactly the partition's rows.

docs/ARCHITECTURE.md "Storage": raw GMP data is deleted only after ``facility archive``
exported, verified and recorded its day. An archive that counts more rows than the
partition is no proof either (it was made from another copy of the data, or the partition
lost rows since), so the purge is refused with both counts, just as for an archive with
fewer rows; the day stays until an archive matches.
"""

from __future__ import annotations

import os

import pytest

from facility.domain.model import PointInfo, Sample
from facility.records.archive import archive, days_to_archive
from facility.store import Cycle, Store, StoreRefused
from facility.store.partitions import partition_path
from tests.fixtures.export import build, key_file

GMP_POINT = PointInfo("GMP-PC.pc_0_5um", "GMP-PC", "S", "Z1", "particle_conc", "count/m3", 0,
                      gmp=True)


@pytest.fixture
def dataset(tmp_path):
    _, key = key_file(tmp_path)
    cfg, db, t0 = build(tmp_path, key=key, minutes=5)
    with Store(db, key=key) as store:  # one GMP sample per day makes both days GMP days
        store.register_points([GMP_POINT])
        for day in (0, 1):
            store.write_cycle(Cycle(samples=[Sample(GMP_POINT.id, t0 + day * 86_400_000, 1.0)]))
        days = store.partitions()
    assert len(days) == 2
    return cfg, db, key, days, tmp_path


def test_archive_then_purge_needs_the_exact_row_count(dataset):
    cfg, db, key, (day0, day1), tmp = dataset
    done = archive(cfg, db, day1, str(tmp / "arch"), key=key)
    assert [a.day for a in done] == [day0]  # strictly before day1
    rows = done[0].rows
    with Store(db, key=key) as store:
        assert store.partition_info(day0)["rows"] == rows
        # a later verified archive of the same day counting one row more
        store.record_archive(day0, done[0].path, done[0].manifest_sha256, rows + 1)
        with pytest.raises(StoreRefused, match=f"holds {rows + 1} rows, the partition {rows};"
                                               " export it again"):
            store.purge_partition(day0, "admin", "retention")
        assert os.path.exists(partition_path(store.path, day0))
        store.record_archive(day0, done[0].path, done[0].manifest_sha256, rows - 1)
        with pytest.raises(StoreRefused, match=f"holds {rows - 1} rows, the partition {rows}"):
            store.purge_partition(day0, "admin", "retention")
        # the matching archive again: now the purge goes ahead, audited with its rows
        store.record_archive(day0, done[0].path, done[0].manifest_sha256, rows)
        entry = store.purge_partition(day0, "admin", "retention")
        row = store.audit_rows(action="partition_purged")[-1]
        assert row["id"] == entry["id"]
        assert row["details"]["rows"] == rows and row["details"]["gmp"] is True
        assert not os.path.exists(partition_path(store.path, day0))
        assert store.partitions() == [day1]


def test_days_to_archive_are_strictly_before_the_day_and_today(dataset):
    cfg, db, key, (day0, day1), tmp = dataset
    with Store(db, readonly=True) as ro:
        assert days_to_archive(ro, day1) == [day0]
        assert days_to_archive(ro, "9999-12-31") == [day0, day1]
        assert days_to_archive(ro, "9999-12-31", today=day1) == [day0]
        assert days_to_archive(ro, day0) == []
    archive(cfg, db, "9999-12-31", str(tmp / "arch"), key=key)
    with Store(db, readonly=True) as ro:  # archived days are not offered again
        assert days_to_archive(ro, "9999-12-31") == []
    assert archive(cfg, db, "9999-12-31", str(tmp / "arch"), key=key) == []
