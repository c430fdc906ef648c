"""Retention, archives and crash reconciliation of day partitions (docs/ARCHITECTURE.md "Storage").

Mixed into :class:`facility.store.database.Store`. Partitions are removed whole, never row by row; a
GMP day needs a verified archive with a matching row count first, and every purge is an
audit row naming the range, rows and archive manifest hash.
"""

from __future__ import annotations

import difflib
import os
import tomllib

from facility.domain.model import now_ms
from facility.store.errors import StoreError, StoreRefused
from facility.store.partitions import cycle_summary, days_on_disk, partition_path, unlink_partition

RECONCILE_RECENT_MS = 2 * 86_400_000
"""Partitions written within this long before an open are reconciled (older ones were
already checked when they were recent)."""


class StoreRetention:
    """Archive records, audited purges and reconciliation (the writer only)."""

    def record_archive(self, day: str, path: str, manifest_sha256: str, rows: int, *,
                       verified: bool = True, actor: str = "service") -> int:
        """Record an export of one day's partition (``verified``: ``facility verify`` passed)."""
        with self.transaction() as conn:
            aid = conn.execute(
                "INSERT INTO archives (day, path, manifest_sha256, rows, verified_ms, recorded_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (day, path, manifest_sha256, rows, now_ms() if verified else None, now_ms()),
            ).lastrowid
            self._audit(conn, {"action": "archive_recorded", "actor": actor, "subject": day,
                               "details": {"path": path, "manifest_sha256": manifest_sha256,
                                           "rows": rows, "verified": verified}})
        return aid

    def purge_partition(self, day: str, actor: str, reason: str) -> dict:
        """Delete a whole day's partition file, audited; GMP days need a verified archive.

        Raises :class:`StoreRefused` when the day holds GMP points and has no verified
        archive whose row count matches the partition.
        """
        self._writable()
        state = self._one("SELECT rows, min_ts_ms, max_ts_ms, has_gmp, purged_ms FROM partition_state"
                          " WHERE day = ?", (day,))
        if state is None and not os.path.exists(partition_path(self.path, day)):
            raise StoreError(f"partition {day}: no such partition (see store.partitions())")
        rows, lo, hi, gmp, purged = state if state else (0, None, None, 0, None)
        if purged:
            raise StoreRefused(f"partition {day}: already purged")
        archive = self._one(
            "SELECT path, manifest_sha256, rows FROM archives WHERE day = ? AND verified_ms IS NOT NULL"
            " ORDER BY id DESC LIMIT 1", (day,))
        if gmp and archive is None:
            raise StoreRefused(
                f"partition {day} holds GMP points and has no verified archive: export it, run"
                " facility verify on the export, record the archive, then purge")
        if gmp and archive[2] != rows:
            raise StoreRefused(f"partition {day}: archive {archive[0]} holds {archive[2]} rows,"
                               f" the partition {rows}; export it again")
        self._parts.detach(day)
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO partition_state (day, rows, purged_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (day) DO UPDATE SET purged_ms = excluded.purged_ms",
                (day, rows, now_ms()))
            entry = self._audit(conn, {
                "action": "partition_purged", "actor": actor, "subject": day, "reason": reason,
                "details": {"day": day, "from_ms": lo, "to_ms": hi, "rows": rows, "gmp": bool(gmp),
                            "archive": archive[0] if archive else None,
                            "manifest_sha256": archive[1] if archive else None}})
        unlink_partition(self.path, day)  # after the audit commit: a crash here is finished on open
        return entry

    def reconcile(self) -> list[dict]:
        """Compare recent partitions' ``cycles`` with ``partition_state``; audit differences."""
        self._writable()
        states = {r[0]: r[1:] for r in self.conn.execute(
            "SELECT day, rows, last_cycle, updated_ms, purged_ms FROM partition_state")}
        recent = now_ms() - RECONCILE_RECENT_MS
        found = []
        for day in sorted(set(days_on_disk(self.path)) | set(states)):
            rows, last, updated, purged = states.get(day, (0, None, None, None))
            if purged:
                unlink_partition(self.path, day)
                continue
            if day in states and (updated or 0) < recent:
                continue
            part_last, part_rows = cycle_summary(self.path, day)
            if part_last == last and part_rows == rows:
                continue
            found.append({"day": day, "main_last_cycle": last, "main_rows": rows,
                          "partition_last_cycle": part_last, "partition_rows": part_rows})
        if found:
            with self.transaction() as conn:
                for f in found:
                    lost = "partition" if (f["partition_last_cycle"] or 0) < (f["main_last_cycle"] or 0) else "main"
                    conn.execute(
                        "INSERT INTO partition_state (day, rows, last_cycle, updated_ms)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT (day) DO UPDATE SET rows = excluded.rows,"
                        " last_cycle = excluded.last_cycle, updated_ms = excluded.updated_ms",
                        (f["day"], f["partition_rows"], f["partition_last_cycle"], now_ms()))
                    self._audit(conn, {
                        "action": "partition_reconciled", "actor": "service", "subject": f["day"],
                        "reason": f"a crash kept one file's part of a cycle; the {lost} database"
                                  " lost its part", "details": f})
        return found




def config_changes(old: str | None, new: str) -> dict:
    """Changed top-level sections and a unified-diff line count between two config texts."""
    if old is None:
        return {"changed": ["(first version)"], "lines_added": new.count("\n"), "lines_removed": 0}
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0))
    added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
    removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
    try:
        a, b = tomllib.loads(old), tomllib.loads(new)
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    except tomllib.TOMLDecodeError:
        changed = ["(not TOML)"]
    return {"changed": changed, "lines_added": added, "lines_removed": removed}
