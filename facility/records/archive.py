"""Archiving whole past UTC day partitions (``facility archive``), so retention may purge.

Each day becomes its own export folder ``<out>/<YYYY-MM-DD>/``, is verified offline
(``facility.records.verify``) and is then recorded with ``Store.record_archive`` (the manifest's
SHA-256 and the partition's row count). Only then may ``Store.purge_partition`` delete the
day — an audited action naming the range, rows and manifest hash (docs/ARCHITECTURE.md "Retention vs
GMP records").

Writing while the service runs: the service is the only *regular* writer. Archive reads
through a read-only open (short read transactions per chunk) and opens the database
read-write only for the record step: one short ``BEGIN IMMEDIATE`` per day, which waits on
SQLite's busy timeout for the service's cycle transaction to finish and never holds the
lock across the export. Run it from the service account (it appends audit rows with the
service's key).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone

from facility.records.export import ExportRequest, export
from facility.records.verify import verify_export
from facility.store import Store
from facility.store.partitions import day_bounds


@dataclass
class Archived:
    """One archived day."""

    day: str
    path: str
    rows: int
    manifest_sha256: str
    archive_id: int | None


def days_to_archive(store, before_day: str, today: str | None = None) -> list[str]:
    """Partitions strictly before ``before_day`` (and before today, UTC) not yet archived."""
    today = today or datetime.now(tz=timezone.utc).strftime("%Y-%m-%d")
    done = store.archived_days()
    return [d for d in store.partitions() if d < before_day and d < today and d not in done]


def archive(cfg, db_path: str, before_day: str, out: str, *, key: bytes | None = None,
            actor: str = "service", today: str | None = None, log=None) -> list[Archived]:
    """Export, verify and record every whole past day before ``before_day``.

    Raises ``StoreMissing`` (before creating ``out``) when the database does not exist.
    """
    done: list[Archived] = []
    with Store(db_path, readonly=True) as ro:
        os.makedirs(out, exist_ok=True)
        days = days_to_archive(ro, before_day, today)
        results = []
        for day in days:
            lo, hi = day_bounds(day)
            folder = os.path.abspath(os.path.join(out, day))
            manifest, sha = export(cfg, ro, ExportRequest(lo, hi, folder, key=key))
            res = verify_export(folder, key)
            if not res.ok:
                raise RuntimeError(f"archive {day}: verify failed right after export: {res.problem}")
            rows = manifest["files"]["samples.csv"]["rows"]
            results.append((day, folder, rows, sha))
            if log:
                log(f"{day}: exported {rows} rows to {folder}, verified")
    if not results:
        return done
    with Store(db_path, readonly=False, key=key) as rw:  # the record step only, short
        for day, folder, rows, sha in results:
            aid = rw.record_archive(day, folder, sha, rows, verified=True, actor=actor)
            done.append(Archived(day, folder, rows, sha, aid))
    return done
