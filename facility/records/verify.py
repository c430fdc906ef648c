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
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from facility.store.audit import CANONICAL_FIELDS, canonical, canonical_doc, chain_hash

MAGIC = b"facility-export-rows/1\n"
ROWHASH_CHARS = 16
MANIFEST = "manifest.json"
SELF_FIELDS = ("manifest_sha256", "manifest_hmac")


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
    row: dict[str, Any] = dict(rec)
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


def verify_export(folder: str, key: bytes | None = None) -> Result:
    """Verify an export folder; the first problem found is returned in ``problem``."""
    checked: dict[str, Any] = {}
    try:
        manifest = _load_manifest(folder, key)
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
        extra = sorted(set(os.listdir(folder)) - listed)
        if extra:
            raise Failed(f"{extra[0]}: not in the manifest (added after the export)")
    except Failed as exc:
        return Result(False, str(exc), str(exc), checked)
    rows = sum(v for k, v in checked.items() if k.endswith(".csv"))
    auth = "authentic (HMAC)" if key is not None else "continuity only (no key)"
    head = (manifest.get("audit") or {}).get("chain_head") or {}
    summary = (f"ok: {len(files)} files, {rows} rows, audit slice "
               f"{checked.get('audit_rows', 0)} rows {auth}; chain head "
               f"#{head.get('id')} {str(head.get('hash'))[:12]}")
    return Result(True, summary, None, checked)


__all__ = ["CANONICAL_FIELDS", "Result", "chain_next", "chain_start", "file_sha256",
           "manifest_digest", "manifest_hmac", "entry_digest", "row_bytes", "verify_export"]
