"""Offline verification of an export folder (``facility verify DIR``).

Needs only the folder (and, for authenticity, the audit key file): no database, no
configuration. What an export carries so that any change is found *and named*:

* ``manifest.json`` lists every file with its SHA-256, size and (for CSVs) row count. Each
  entry has its own digest (``entry_digests``) and the whole manifest a self-digest
  (``manifest_sha256``; with the audit key also ``manifest_hmac``), so an edited entry is
  named, and an edit that recomputes the entry digest is still caught as a manifest edit.
  Archives also record the manifest file's SHA-256 in the database's audit trail.
* Each CSV is hash-chained over its records: ``h_0 = SHA-256(MAGIC + header)``,
  ``h_i = SHA-256(h_{i-1} + canonical(record i))`` (canonical = the record's fields as a
  compact JSON list). The manifest holds the final ``h_n`` and a checkpoint every
  ``checkpoint_every`` rows; the sidecar ``<file>.rowhash`` holds the first 16 hex digits
  of every ``h_i``. A changed value, a deleted row or two swapped rows break the chain at
  the first affected record, which is named ("samples.csv row 1234: sha256 mismatch"); a
  forger who also rewrites the sidecar is caught by the checkpoints (naming the block) and
  the sidecar's own SHA-256.
* ``audit.csv`` is the audit trail's slice with ``prev_hash``/``hash``/``row_sha256``:
  continuity, content against ``facility.store.audit.canonical`` and, with the key, the HMAC.
* Origin: the manifest's Ed25519 ``signature`` (:mod:`facility.records.signing`) is checked
  against the trusted keys; without one the result says "integrity only".
* Cross-check against the chain: every ``cycle_digest`` row in ``audit.csv`` whose cycle lies
  inside the range has its ``samples_sha256`` and ``events_sha256`` re-derived from
  ``samples.csv`` and ``events.csv`` (:func:`_check_digests`), so changing a sample or an event
  means forging the audit rows, the manifest and its signature, not just recomputing hashes.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import hmac
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from facility.domain.model import Quality
from facility.domain.text import restore_cell
from facility.records.signing import OriginError, check_origin
from facility.store.audit import CANONICAL_FIELDS, canonical, canonical_doc, chain_hash
from facility.store.digest import event_doc, events_sha256, sample_line

MAGIC = b"facility-export-rows/1\n"
ROWHASH_CHARS = 16
MANIFEST = "manifest.json"
SELF_FIELDS = ("manifest_sha256", "manifest_hmac", "signature")


def row_bytes(fields: Iterable[str]) -> bytes:
    """Canonical bytes of one CSV record: its fields as a compact JSON list (UTF-8)."""
    return json.dumps(list(fields), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def chain_start(header: list[str]) -> bytes:
    """``h_0`` of a CSV's row chain (binds the column names)."""
    return hashlib.sha256(MAGIC + row_bytes(header)).digest()


def chain_next(prev: bytes, fields: Iterable[str]) -> bytes:
    """``h_i = SHA-256(h_{i-1} + canonical(record))``."""
    return hashlib.sha256(prev + row_bytes(fields)).digest()


def file_sha256(path: str) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in 1 MiB blocks."""
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def manifest_digest(manifest: dict) -> str:
    """Self-digest of a manifest: canonical JSON of everything but the self fields."""
    body = {k: v for k, v in manifest.items() if k not in SELF_FIELDS}
    return hashlib.sha256(canonical_doc(body)).hexdigest()


def manifest_hmac(manifest: dict, key: bytes) -> str:
    """HMAC-SHA-256 of the same bytes as :func:`manifest_digest` (needs the audit key)."""
    body = {k: v for k, v in manifest.items() if k not in SELF_FIELDS}
    return hmac.new(key, canonical_doc(body), hashlib.sha256).hexdigest()


def entry_digest(entry: dict) -> str:
    """Digest of one manifest file entry."""
    return hashlib.sha256(canonical_doc(entry)).hexdigest()


@dataclass
class Result:
    """Outcome: ``problem`` names the first file and row that differ."""

    ok: bool
    summary: str
    problem: str | None = None
    checked: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # what the signature proves ("origin: ..." or "... integrity only ...")
    trusted: bool = False  # the manifest is signed by a trusted key


class Failed(Exception):
    """The first problem found; its message is the line ``facility verify`` prints."""


def _load_manifest(folder: str, key: bytes | None) -> dict:
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise Failed(f"{MANIFEST}: missing (is {folder} an export folder?)")
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        raise Failed(f"{MANIFEST}: unreadable ({exc}) (edited)") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise Failed(f"{MANIFEST}: no 'files' table (edited or not an export)")
    digests = manifest.get("entry_digests") or {}
    for name in sorted(set(manifest["files"]) | set(digests)):
        entry = manifest["files"].get(name)
        if entry is None:
            raise Failed(f"{MANIFEST} files[{name}]: entry removed (edited)")
        if digests.get(name) != entry_digest(entry):
            raise Failed(f"{MANIFEST} files[{name}]: entry differs from its digest (edited)")
    if manifest.get("manifest_sha256") != manifest_digest(manifest):
        raise Failed(f"{MANIFEST}: content differs from manifest_sha256 (edited)")
    if key is not None:
        mac = manifest.get("manifest_hmac")
        if not mac:
            raise Failed(f"{MANIFEST}: no manifest_hmac (exported without the audit key); "
                         "authenticity cannot be proved")
        if not hmac.compare_digest(mac, manifest_hmac(manifest, key)):
            raise Failed(f"{MANIFEST}: manifest_hmac does not match (forged, or another key)")
    return manifest


def _check_csv(folder: str, name: str, entry: dict, every: int) -> int:
    """Walk a CSV's row chain against its sidecar and checkpoints; return the row count."""
    path = os.path.join(folder, name)
    side_name = entry.get("rowhash_file")
    side_path = os.path.join(folder, side_name) if side_name else None
    checkpoints = entry.get("checkpoints") or []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != entry.get("columns"):
            raise Failed(f"{name} row 0 (header): columns differ from the manifest")
        side = open(side_path, encoding="ascii") if side_path and os.path.isfile(side_path) else None
        try:
            h, n = chain_start(header), 0
            for n, rec in enumerate(reader, start=1):
                h = chain_next(h, rec)
                if side is not None:
                    want = side.readline().strip()
                    if not want:
                        raise Failed(f"{name} row {n}: extra row (the export has "
                                     f"{entry.get('rows')} rows)")
                    if want != h.hex()[:ROWHASH_CHARS]:
                        raise Failed(f"{name} row {n}: sha256 mismatch (changed, deleted, "
                                     "inserted or moved)")
                if n % every == 0:
                    k = n // every - 1
                    if k >= len(checkpoints) or checkpoints[k] != h.hex():
                        raise Failed(f"{name} rows {n - every + 1}-{n}: chain differs from the "
                                     f"manifest checkpoint at row {n}")
            if n != entry.get("rows"):
                raise Failed(f"{name} row {n + 1}: missing (the manifest says {entry.get('rows')}"
                             f" rows, the file has {n}; rows deleted at the end)")
            if h.hex() != entry.get("chain_sha256"):
                start = (n // every) * every + 1
                raise Failed(f"{name} rows {start}-{n}: chain differs from the manifest's final"
                             " value")
        finally:
            if side is not None:
                side.close()
    return n


def _audit_rows(folder: str) -> Iterable[dict]:
    with open(os.path.join(folder, "audit.csv"), encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh):
            yield rec


def _typed(rec: dict) -> dict:
    # text cells were neutralised on export (facility.domain.text); numeric cells never start
    # with a quote, so restoring every cell gives back the stored values
    row: dict[str, Any] = {k: restore_cell(v) if isinstance(v, str) else v for k, v in rec.items()}
    for k in ("id", "ts_ms", "config_version"):
        row[k] = int(rec[k]) if rec.get(k) not in (None, "") else None
    for k in ("subject", "reason", "details"):
        if row.get(k) == "":
            row[k] = None
    return row


def _audit_canon(rec: dict, row_sha: str) -> bytes | None:
    """Canonical bytes of a CSV audit row; CSV cannot tell null from "" so try both."""
    base = _typed(rec)
    empties = [k for k in ("subject", "reason") if rec.get(k) == ""]
    for choice in itertools.product((None, ""), repeat=len(empties)):
        row = dict(base, **dict(zip(empties, choice)))
        canon = canonical(row)
        if hashlib.sha256(canon).hexdigest() == row_sha:
            return canon
    return None


def _check_audit(folder: str, manifest: dict, key: bytes | None) -> int:
    info = manifest.get("audit") or {}
    prev_hash = info.get("slice_prev_hash")
    prev_id = None
    n = 0
    for n, rec in enumerate(_audit_rows(folder), start=1):
        try:
            rid = int(rec["id"])
        except (KeyError, ValueError):
            raise Failed(f"audit.csv row {n}: unreadable id (edited)") from None
        if prev_id is not None and rid != prev_id + 1:
            raise Failed(f"audit.csv row {n}: audit id {rid} follows {prev_id} (rows deleted "
                         "or reordered)")
        if prev_hash is not None and rec.get("prev_hash") != prev_hash:
            raise Failed(f"audit.csv row {n}: prev_hash does not match the previous row's hash "
                         f"(audit id {rid}; chain broken)")
        try:
            canon = _audit_canon(rec, rec.get("row_sha256", ""))
        except (ValueError, TypeError):
            canon = None
        if canon is None:
            raise Failed(f"audit.csv row {n}: content differs from row_sha256 (audit id {rid}; "
                         "edited)")
        if key is not None and not hmac.compare_digest(
                chain_hash(key, rec["prev_hash"], canon), rec.get("hash", "")):
            raise Failed(f"audit.csv row {n}: HMAC does not match (audit id {rid}; forged or "
                         "another key)")
        prev_id, prev_hash = rid, rec.get("hash")
    if n and info.get("slice_last_id") is not None and prev_id != info["slice_last_id"]:
        raise Failed(f"audit.csv row {n}: last audit id {prev_id}, the manifest says "
                     f"{info['slice_last_id']} (rows deleted at the end)")
    return n


def _ms(iso: str) -> int:
    """``YYYY-MM-DDTHH:MM:SS.sssZ`` (as written by the export) to epoch milliseconds."""
    from datetime import datetime, timezone

    dt = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(round(dt.timestamp() * 1000))


def _digest_rows(folder: str) -> list[tuple[int, dict]]:
    rows = []
    for rec in _audit_rows(folder):
        if rec.get("action") == "cycle_digest" and rec.get("details"):
            try:
                rows.append((int(rec["id"]), json.loads(_typed(rec)["details"])))
            except ValueError:
                raise Failed(f"audit.csv audit id {rec.get('id')}: cycle_digest details are not "
                             "JSON (edited)") from None
    return rows


EVENT_INT = {"id", "occurrence", "ts_ms", "detected_ms", "config_version"}
EVENT_REAL = {"value", "limit"}
EVENT_FROM_CSV = {"event_id": "id", "ts": "ts_ms", "detected": "detected_ms"}


def _event_doc(rec: dict) -> bytes:
    """The stored-row document of an events.csv record (an empty cell was a null)."""
    row: dict[str, Any] = {}
    for col, cell in rec.items():
        name = EVENT_FROM_CSV.get(col, col)
        if name in ("ts_ms", "detected_ms"):
            row[name] = _ms(cell) if cell else None
        elif name in EVENT_INT:
            row[name] = int(cell) if cell else None
        elif name in EVENT_REAL:
            row[name] = float(cell) if cell else None
        else:
            row[name] = restore_cell(cell) if cell else None
    return event_doc(row)


def _check_digests(folder: str, manifest: dict) -> int:
    """Re-derive every in-range cycle's sample and event digests from the CSVs; return how many
    cycles were checked. Skipped (0) under a site/zone filter, which exports part of a cycle."""
    files = manifest["files"]
    filters = manifest.get("filters") or {}
    if "audit.csv" not in files or filters.get("site") or filters.get("zone"):
        return 0
    rng = manifest.get("range") or {}
    lo_ms, hi_ms = rng.get("from_ms"), rng.get("to_ms")
    cycles = [(rid, d) for rid, d in _digest_rows(folder) if d.get("v", 1) >= 2]
    if not cycles or lo_ms is None or hi_ms is None:
        return 0
    late_of: dict[tuple[str, int, str], int] = {}  # (day, ts, point) -> cycle that stored it late
    for rid, d in cycles:
        for day, rows in (d.get("late") or {}).items():
            for ts, point in rows:
                late_of[(day, int(ts), point)] = rid
    inside = [(rid, d) for rid, d in cycles if d.get("samples", 0) == 0
              or (d.get("ts_min_ms") is not None and lo_ms <= d["ts_min_ms"]
                  and d.get("ts_max_ms", hi_ms) < hi_ms)]
    regions: dict[str, list[tuple[int, int, int]]] = {}  # day -> [(lo, hi, cycle id)] by lo
    for rid, d in inside:
        for day, (lo, hi) in (d.get("ranges") or {}).items():
            regions.setdefault(day, []).append((int(lo), int(hi), rid))
    starts = {day: [r[0] for r in sorted(rs)] for day, rs in regions.items()}
    regions = {day: sorted(rs) for day, rs in regions.items()}
    hashes = {rid: hashlib.sha256() for rid, _ in inside}
    counts = dict.fromkeys(hashes, 0)
    labels = {q.label: int(q) for q in Quality}
    if "samples.csv" in files and regions:
        with open(os.path.join(folder, "samples.csv"), encoding="utf-8", newline="") as fh:
            for n, rec in enumerate(csv.DictReader(fh), start=2):
                ts = _ms(rec["ts"])
                day = rec["ts"][:10]
                point = restore_cell(rec["point"])
                owner = late_of.get((day, ts, point))
                if owner is None and day in regions:
                    k = bisect.bisect_left(starts[day], ts) - 1  # last region with lo < ts
                    if k >= 0 and ts <= regions[day][k][1]:
                        owner = regions[day][k][2]
                if owner not in hashes:
                    continue
                value = float(rec["value"]) if rec["value"] else None
                q = labels.get(rec["quality"])
                if q is None:
                    raise Failed(f"samples.csv row {n - 1}: quality {rec['quality']!r} unknown")
                hashes[owner].update(sample_line(ts, point, value, q))
                counts[owner] += 1
    events: dict[int, list[dict]] = {}
    if "events.csv" in files:
        with open(os.path.join(folder, "events.csv"), encoding="utf-8", newline="") as fh:
            for rec in csv.DictReader(fh):
                events[int(rec["event_id"])] = rec
    for rid, d in inside:
        if counts[rid] != d.get("samples", 0) or hashes[rid].hexdigest() != d.get(
                "samples_sha256", hashlib.sha256().hexdigest()):
            raise Failed(f"samples.csv: cycle {rid} (audit id) has {counts[rid]} samples here, "
                         f"its signed digest row says {d.get('samples', 0)}; the samples differ "
                         "from the chain (changed, deleted or inserted)")
        ids = d.get("event_ids")
        if ids:
            docs = []
            for eid in range(ids[0], ids[1] + 1):
                if eid not in events:
                    raise Failed(f"events.csv: event {eid} of cycle {rid} (audit id) is missing "
                                 "(deleted)")
                docs.append(_event_doc(events[eid]))
            if events_sha256(docs) != d.get("events_sha256"):
                raise Failed(f"events.csv: events {ids[0]}-{ids[1]} differ from the digest of "
                             f"cycle {rid} (audit id) in the chain (changed)")
    return len(inside)


def verify_export(folder: str, key: bytes | None = None,
                  trusted: set[str] | None = None) -> Result:
    """Verify an export folder; the first problem found is returned in ``problem``.

    ``trusted``: fingerprints whose signature proves origin (see
    :mod:`facility.records.signing`); without them the result's ``origin`` says the check was
    of integrity only."""
    checked: dict[str, Any] = {}
    origin, is_trusted = "", False
    try:
        manifest = _load_manifest(folder, key)
        try:
            origin = check_origin(manifest, trusted)
        except OriginError as exc:
            raise Failed(str(exc)) from None
        is_trusted = origin.startswith("origin:")
        files = manifest["files"]
        every = int(manifest.get("checkpoint_every") or 10_000)
        listed = set(files) | {MANIFEST}
        for name in sorted(files):
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                raise Failed(f"{name}: missing")
        # row-level checks first, so a change is named by its row, not just "file hash"
        for name in sorted(files):
            entry = files[name]
            if name.endswith(".csv"):
                checked[name] = _check_csv(folder, name, entry, every)
        for name in sorted(files):
            digest, size = file_sha256(os.path.join(folder, name))
            if digest != files[name].get("sha256"):
                raise Failed(f"{name}: sha256 mismatch (bytes changed)")
            if size != files[name].get("bytes"):
                raise Failed(f"{name}: {size} bytes, the manifest says {files[name].get('bytes')}")
        if "audit.csv" in files:
            checked["audit_rows"] = _check_audit(folder, manifest, key)
            checked["cycles"] = _check_digests(folder, manifest)
        extra = sorted(set(os.listdir(folder)) - listed)
        if extra:
            raise Failed(f"{extra[0]}: not in the manifest (added after the export)")
        mirror = _campus(manifest)
    except Failed as exc:
        return Result(False, str(exc), str(exc), checked, origin, is_trusted)
    rows = sum(v for k, v in checked.items() if k.endswith(".csv"))
    auth = "authentic (HMAC)" if key is not None else "continuity only (no key)"
    head = (manifest.get("audit") or {}).get("chain_head") or {}
    summary = (f"ok: {len(files)} files, {rows} rows, audit slice "
               f"{checked.get('audit_rows', 0)} rows {auth}; chain head "
               f"#{head.get('id')} {str(head.get('hash'))[:12]}; {checked.get('cycles', 0)} "
               f"cycles cross-checked against their digest rows; {origin}{mirror}")
    return Result(True, summary, None, checked, origin, is_trusted)


def _campus(manifest: dict) -> str:
    """What an export of central's mirror of a site proves (its manifest's ``campus`` block,
    docs/ARCHITECTURE.md "Campus (Sparkplug B)"): the rows are the mirror's, checked against
    the mirror's own audit chain and digests; the edge's signed chain head it carries is
    checked here, its signature verifying or the export failing. Empty for a site's own."""
    campus = manifest.get("campus")
    if not isinstance(campus, dict):
        return ""
    from facility.store.keys import fingerprint, signature_ok
    from facility.store.witness import signed_bytes

    of = campus.get("mirror_of") or {}
    out = (f"; a mirror of {of.get('site')} (edge node {of.get('group_id')}/"
           f"{of.get('node_id')}) kept by central {campus.get('central')}: its rows are checked"
           " against the mirror's own audit chain and cycle digests, not the edge's")
    line = campus.get("edge_signed_checkpoint")
    if not isinstance(line, dict):
        return out + "; it carries no signed chain head of the edge"
    try:
        ok = signature_ok(line["key"], signed_bytes(line), line["sig"])
        fp = fingerprint(bytes.fromhex(line["key"]))
        row, head = int(line["row_id"]), str(line["hash"])
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise Failed(f"{MANIFEST} campus: the edge's signed chain head does not verify (forged"
                     " or damaged)")
    trust = campus.get("central_trust") or {}
    agreed = ("central received the same head with the mirrored cycles"
              if trust.get("ok") and trust.get("row_id") == row else
              f"central flagged it: {trust.get('why')}" if trust.get("why") else
              "central had not compared it with the mirror")
    return out + (f"; the edge's signed chain head #{row} {head[:12]} verifies (key {fp});"
                  f" {agreed}")


__all__ = ["CANONICAL_FIELDS", "Result", "chain_next", "chain_start", "file_sha256",
           "manifest_digest", "manifest_hmac", "entry_digest", "row_bytes", "verify_export"]
