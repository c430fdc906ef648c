"""Recompute every ``cycle_digest`` audit row from what is stored (``facility audit verify``).

What each digest field covers is defined once in ``facility/store/digest.py``; this module
reads the day partitions, the ``events`` and the ``alarms`` tables back and names, per table,
partition (day) and cycle (the digest's audit row id), what no longer matches:

* samples: each partition's rows are assigned to cycles by the digests' ``ranges`` and
  ``late`` fields and hashed per cycle in ``(ts_ms, point_id)`` order (the writer's order);
  a row no cycle claims is an inserted row (with no version-1 digests); a partition file that is gone without a
  ``partition_purged`` audit row is named with the cycles and rows it held. A cycle that
  covers a purged day is not checked for samples (its rows are no longer all there).
* events: the rows ``event_ids[0]..event_ids[1]`` as stored are hashed again; with no
  version-1 digests, an event row outside every cycle's ids is named as inserted.
* alarms: the current row of each alarm must hash to what the last cycle touching it
  recorded; a row missing is named, and (with no version-1 digests) a row no cycle recorded.

Version-1 digests (no ``"v"`` in the details) carry no membership fields: they are counted
and skipped (``DigestCheck.v1_skipped``), so a store written only by version 1 checks nothing.

``ts_range`` (``[from_ms, to_ms)`` on the digest row's ``ts_ms``) limits the samples and events
checked to those cycles; rows and events outside them are then not named as inserted (other
cycles own them), while the alarms, a small table, are still checked against every digest.
``progress(done, total)`` is called after each chunk of sample rows read.

:func:`check_witness` compares the chain head with the latest signed checkpoint of the witness
file (``facility/store/witness.py``) and names audit rows missing at the tail, which the chain
alone cannot see.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from facility.store.digest import alarm_sha256, event_doc, events_sha256, sample_line
from facility.store.partitions import days_on_disk, open_partition_ro, partition_path
from facility.store.witness import WitnessError, read_checkpoints

_EMPTY = hashlib.sha256().hexdigest()
_CHUNK = 50_000


@dataclass
class DigestCheck:
    """Outcome of :func:`check_digests`: one line per finding and what was checked."""

    findings: list[str] = field(default_factory=list)
    cycles: int = 0
    v1_skipped: int = 0
    partitions: int = 0
    samples: int = 0
    events: int = 0
    alarms: int = 0
    seconds: float = 0.0
    ranged: bool = False  # only some cycles checked: no row is named as inserted

    @property
    def ok(self) -> bool:
        return not self.findings


def _span(ids: list[int]) -> str:
    lo, hi = min(ids), max(ids)
    return f"cycle #{lo}" if lo == hi else f"cycles #{lo}-#{hi}"


def _digests(conn: sqlite3.Connection, ts_range: tuple[int, int] | None = None
             ) -> tuple[list[tuple[int, dict]], int]:
    """Version-2 digest rows ``(id, details)`` in id order (those with ``ts_ms`` in
    ``ts_range`` when given), and the count of older ones."""
    rows, v1 = [], 0
    lo, hi = ts_range or (-(2**63), 2**63 - 1)
    for rid, details in conn.execute(
        "SELECT id, details FROM audit WHERE action = 'cycle_digest' AND ts_ms >= ?"
        " AND ts_ms < ? ORDER BY id", (lo, hi)
    ):
        try:
            doc = json.loads(details) if details else {}
        except ValueError:
            doc = {}
        if isinstance(doc, dict) and isinstance(doc.get("v"), int) and doc["v"] >= 2:
            rows.append((rid, doc))
        else:
            v1 += 1
    return rows, v1


class _Day:
    """One partition's membership: the cycles' ranges in cycle order and their late rows."""

    def __init__(self) -> None:
        self.cycles: list[int] = []
        self.los: list[int] = []
        self.his: list[int] = []
        self.late: dict[tuple[int, str], int] = {}
        self.expected: dict[int, int] = {}

    def owner(self, ts: int, point: str) -> int | None:
        if self.late:
            cid = self.late.get((ts, point))
            if cid is not None:
                return cid
        i = bisect.bisect_left(self.his, ts)
        if i < len(self.his) and self.los[i] < ts:
            return self.cycles[i]
        return None


def check_digests(conn: sqlite3.Connection, db_path: str, *,
                  ts_range: tuple[int, int] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> DigestCheck:
    """Recompute every version-2 cycle digest of the database at ``db_path`` (``conn`` open
    on it, read-only is enough) from the partitions, events and alarms stored now; only the
    cycles whose digest row's ``ts_ms`` is in ``ts_range`` when given."""
    t0 = time.perf_counter()
    out = DigestCheck(ranged=ts_range is not None)
    digests, out.v1_skipped = _digests(conn, ts_range)
    out.cycles = len(digests)
    names = {pid: name for pid, name in conn.execute("SELECT id, point FROM points")}
    purged = {d for (d,) in conn.execute(  # the chained audit row, not the editable state
        "SELECT subject FROM audit WHERE action = 'partition_purged'")}
    _check_samples(out, digests, names, purged, db_path, progress)
    _check_events(out, conn, digests)
    _check_alarms(out, conn, _digests(conn)[0] if out.ranged else digests)
    out.seconds = time.perf_counter() - t0
    return out


def _check_samples(out: DigestCheck, digests, names, purged: set[str], db_path: str,
                   progress: Callable[[int, int], None] | None = None) -> None:
    days: dict[str, _Day] = {}
    cycle_days: dict[int, list[str]] = {}
    want: dict[int, dict] = {}
    for cid, doc in digests:
        parts = doc.get("partitions") or {}
        if not doc.get("samples"):
            continue
        if not parts:
            out.findings.append(f"samples: cycle #{cid}: digest names no partition")
            continue
        want[cid] = doc
        cycle_days[cid] = sorted(parts)
        ranges = doc.get("ranges") or {}
        late = doc.get("late") or {}
        for day in sorted(parts):
            d = days.setdefault(day, _Day())
            d.expected[cid] = int(parts[day])
            if day in ranges:
                lo, hi = ranges[day]
                d.cycles.append(cid)
                d.los.append(int(lo))
                d.his.append(int(hi))
            for ts, point in late.get(day, []):
                d.late[(int(ts), point)] = cid
    skip = {cid for day in purged & set(days) for cid in days[day].expected}
    on_disk = set(days_on_disk(db_path))
    if out.ranged:  # the other cycles' days are not read
        on_disk &= set(days)
    total = sum(sum(d.expected.values()) for d in days.values())
    tick = (lambda n: progress(n, total)) if progress else None
    hashers: dict[int, Any] = {}
    counts: dict[tuple[int, str], int] = {}
    ending: dict[str, list[int]] = {}  # a cycle's hash is complete after its last day
    for cid, ds in cycle_days.items():
        ending.setdefault(ds[-1], []).append(cid)
    for day in sorted(set(days) | on_disk):
        d = days.get(day) or _Day()
        if day in purged:
            continue
        if day not in on_disk or not os.path.exists(partition_path(db_path, day)):
            ids = list(d.expected)
            out.findings.append(
                f"samples: partition {day} missing ({_span(ids)} wrote"
                f" {sum(d.expected.values())} rows)")
            skip.update(ids)
            continue
        _hash_partition(out, d, day, names, db_path, hashers, counts, skip, tick)
        for cid in ending.get(day, []):
            _compare_samples(out, cid, want[cid], cycle_days[cid], hashers, counts, skip)


def _hash_partition(out, d: _Day, day, names, db_path, hashers, counts, skip,
                    tick: Callable[[int], None] | None = None) -> None:
    conn = open_partition_ro(db_path, day)
    if conn is None:
        return
    out.partitions += 1
    orphans, first = 0, None
    try:
        last = (-(2**63), -1)
        while True:  # short read transactions, as the audit chain check does
            rows = conn.execute(
                "SELECT ts_ms, point_id, value, quality FROM samples WHERE (ts_ms, point_id) > (?, ?)"
                " ORDER BY ts_ms, point_id LIMIT ?", (*last, _CHUNK)).fetchall()
            if not rows:
                break
            before = orphans
            run_cid, run = None, []  # consecutive rows of one cycle, hashed in one update
            for ts, pid, value, q in rows:
                point = names.get(pid) or f"#{pid}"
                cid = d.owner(ts, point)
                if cid != run_cid:
                    _feed(run_cid, run, day, hashers, counts, skip)
                    run_cid, run = cid, []
                if cid is None:
                    orphans += 1
                    first = first or (ts, point)
                    continue
                run.append(sample_line(ts, point, value, q))
            _feed(run_cid, run, day, hashers, counts, skip)
            # rows read; with a range only the chosen cycles' rows count
            out.samples += len(rows) - (orphans - before if out.ranged else 0)
            last = (rows[-1][0], rows[-1][1])
            if tick:
                tick(out.samples)
    except sqlite3.DatabaseError as exc:
        out.findings.append(f"samples: partition {day} unreadable ({exc})")
        skip.update(d.expected)
    finally:
        conn.close()
    if orphans and not out.v1_skipped and not out.ranged:  # rows of version-1 cycles are claimed by no range
        out.findings.append(
            f"samples: partition {day}: {orphans} rows belong to no cycle (inserted; first at"
            f" ts {first[0]} point {first[1]})")


def _feed(cid, lines, day, hashers, counts, skip) -> None:
    if cid is None or not lines or cid in skip:
        return
    h = hashers.get(cid)
    if h is None:
        h = hashers[cid] = hashlib.sha256()
    h.update(b"".join(lines))
    counts[cid, day] = counts.get((cid, day), 0) + len(lines)


def _compare_samples(out, cid, doc, days, hashers, counts, skip) -> None:
    h = hashers.pop(cid, None)
    got = [counts.pop((cid, day), 0) for day in days]
    if cid in skip:
        return
    if (h.hexdigest() if h else _EMPTY) == doc.get("samples_sha256"):
        return
    parts = doc.get("partitions") or {}
    bad = [day for day, n in zip(days, got) if n != int(parts.get(day, 0))] or days
    for day in bad:
        n = got[days.index(day)]
        out.findings.append(
            f"samples: partition {day}, cycle #{cid}: digest mismatch (a sample changed, deleted"
            f" or inserted; {n} rows stored, {parts.get(day, 0)} in the digest)")


def _check_events(out: DigestCheck, conn: sqlite3.Connection, digests) -> None:
    covered: list[tuple[int, int]] = []
    for cid, doc in digests:
        ids = doc.get("event_ids")
        if not ids:
            continue
        a, b = int(ids[0]), int(ids[1])
        covered.append((a, b))
        cur = conn.execute("SELECT * FROM events WHERE id BETWEEN ? AND ? ORDER BY id", (a, b))
        cols = [c[0] for c in cur.description]
        rows = [dict(zip(cols, r)) for r in cur]
        out.events += len(rows)
        if len(rows) != int(doc.get("events", 0)) or events_sha256(
                event_doc(r) for r in rows) != doc.get("events_sha256"):
            out.findings.append(
                f"events: cycle #{cid}: event rows {a}-{b} do not match the digest"
                f" ({len(rows)} stored, {doc.get('events', 0)} in the digest)")
    if out.v1_skipped or out.ranged:
        return
    covered.sort()
    stray: list[int] = []
    for (eid,) in conn.execute("SELECT id FROM events ORDER BY id"):
        i = bisect.bisect_right(covered, (eid, 2**63)) - 1
        if i < 0 or not covered[i][0] <= eid <= covered[i][1]:
            stray.append(eid)
    if stray:
        out.findings.append(
            f"events: rows {', '.join(map(str, stray[:10]))}{' ...' if len(stray) > 10 else ''}"
            " belong to no cycle (inserted)")


def _check_alarms(out: DigestCheck, conn: sqlite3.Connection, digests) -> None:
    recorded: dict[str, tuple[int, str]] = {}
    for cid, doc in digests:
        for aid, sha in (doc.get("alarms") or {}).items():
            recorded[aid] = (cid, sha)
    cur = conn.execute("SELECT * FROM alarms ORDER BY id")
    cols = [c[0] for c in cur.description]
    current = {r[0]: dict(zip(cols, r)) for r in cur}
    out.alarms = len(current)
    for aid, (cid, sha) in sorted(recorded.items()):
        row = current.get(aid)
        if row is None:
            out.findings.append(f"alarms: {aid}: row deleted (recorded by cycle #{cid}'s digest)")
        elif alarm_sha256(row) != sha:
            out.findings.append(f"alarms: {aid}: row differs from cycle #{cid}'s digest")
    if not out.v1_skipped:
        for aid in sorted(set(current) - set(recorded)):
            out.findings.append(f"alarms: {aid}: row in no cycle's digest (inserted)")


def check_witness(conn: sqlite3.Connection, witness_file: str) -> list[str]:
    """The chain head in ``conn`` against the latest checkpoint of the signed witness file
    (tail truncation): one line per finding, none when the witnessed row is there unchanged
    or the file has no checkpoint. A broken or unreadable witness file is one finding."""
    try:
        lines = read_checkpoints(witness_file)
    except WitnessError as exc:
        return [f"witness file broken: {exc}"]
    except OSError as exc:
        return [f"witness file {witness_file}: cannot read ({exc.strerror})"]
    if not lines:
        return []
    wid, at = int(lines[-1]["row_id"]), lines[-1]["at"]
    (last,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM audit").fetchone()
    if wid > last:
        return [f"audit rows {last + 1}..{wid} missing (witness at {at})"]
    row = conn.execute("SELECT hash FROM audit WHERE id = ?", (wid,)).fetchone()
    if row is None:
        return [f"audit row {wid} missing (witness at {at})"]
    if row[0] != lines[-1]["hash"]:
        return [f"audit row {wid} differs from the witness checkpoint of {at}"]
    return []
