"""The compliance auditor's export (``facility export``): CSVs, configs, report, manifest.

Everything is read through the store's read API. Samples, the audit slice and the hazmat
movements stream in chunks, each chunk its own short read transaction (``Store.iter_samples``,
``Store.iter_audit``, ``Store.iter_hazmat_movements``), so memory stays constant and the
service's WAL checkpoints are never starved; alarms and events are small by comparison. Every CSV is
hash-chained row by row (see :mod:`facility.records.verify`), so ``facility verify`` can name the
first row that differs. Times in CSVs are UTC ``YYYY-MM-DDTHH:MM:SS.sssZ``.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import json
import os
import socket
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from facility.domain.display import person
from facility.domain.errors import FacilityError, UsageError
from facility.domain.model import Quality, iso_ms, now_ms
from facility.domain.text import neutralise_cell
from facility.records.signing import manifest_signature
from facility.records.verify import (
    MANIFEST,
    ROWHASH_CHARS,
    chain_next,
    chain_start,
    entry_digest,
    file_sha256,
    manifest_digest,
    manifest_hmac,
)
from facility.store.read import SampleRow

FORMAT = "facility-export/1"
CHECKPOINT_EVERY = 10_000

SAMPLE_COLUMNS = ["ts", "site", "zone", "device", "point", "quantity", "value", "unit", "quality"]
ALARM_COLUMNS = [
    "alarm_id", "occurrence", "site", "zone", "point", "kind", "priority", "limit", "source",
    "config_version", "onset", "detected", "raise_value", "acknowledged", "acknowledged_by",
    "ack_reason", "shelved", "shelved_by", "shelve_reason", "cleared_onset", "cleared_detected",
    "reset", "last_state", "events",
]
EVENT_COLUMNS = [
    "event_id", "alarm_id", "occurrence", "event", "state_from", "state_to", "ts", "detected",
    "value", "limit", "source", "actor", "reason", "config_version", "details",
    "actor_name", "actor_roles",
]
AUDIT_COLUMNS = ["id", "ts", "ts_ms", "actor", "action", "subject", "reason", "details",
                 "config_version", "prev_hash", "hash", "row_sha256"]
HAZMAT_COLUMNS = ["id", "ts", "container_id", "substance", "kind", "quantity", "unit",
                  "from_store", "from_compartment", "to_store", "to_compartment", "actor",
                  "reason", "audit_id"]
NUMERIC_COLUMNS = {
    "samples.csv": {"value"},
    "alarms.csv": {"occurrence", "limit", "config_version", "raise_value", "events"},
    "events.csv": {"event_id", "occurrence", "value", "limit", "config_version"},
    "audit.csv": {"id", "ts_ms", "config_version"},
    "hazmat_ledger.csv": {"id", "quantity", "audit_id"},
}
"""The number columns of each CSV; every other cell is text and is written through
``facility.domain.text.neutralise_cell`` (OWASP "CSV Injection"), so a reason such as
``=HYPERLINK(...)`` reaches a spreadsheet as text. Numbers stay numbers (``-12.5``)."""


def software_version() -> str:
    """The installed distribution's version (pyproject ``cleanroom-fms``)."""
    try:
        from importlib.metadata import version

        return version("cleanroom-fms")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "0.1.0+source"


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(value)


class CsvOut:
    """A CSV written with its row chain, checkpoints and ``.rowhash`` sidecar."""

    def __init__(self, folder: str, name: str, columns: list[str], every: int):
        self.folder, self.name, self.columns, self.every = folder, name, columns, every
        self.fh = open(os.path.join(folder, name), "w", encoding="utf-8", newline="")
        self.side = open(os.path.join(folder, name + ".rowhash"), "w", encoding="ascii",
                         newline="\n")
        self.writer = csv.writer(self.fh, lineterminator="\n")
        self.writer.writerow(columns)
        numeric = NUMERIC_COLUMNS.get(name, set())
        self.text = [c not in numeric for c in columns]
        self.h = chain_start(columns)
        self.rows = 0
        self.checkpoints: list[str] = []

    def write(self, fields: list[str]) -> None:
        """Append one record (already formatted as strings); text cells are neutralised and
        the row chain covers the cells as written (``restore_cell`` gives the text back)."""
        fields = [neutralise_cell(f) if t else f for f, t in zip(fields, self.text)]
        self.writer.writerow(fields)
        self.h = chain_next(self.h, fields)
        self.rows += 1
        self.side.write(self.h.hex()[:ROWHASH_CHARS] + "\n")
        if self.rows % self.every == 0:
            self.checkpoints.append(self.h.hex())

    def write_chained(self, lines: list[str], docs: list[str]) -> None:
        """Append records already written out: ``lines`` their CSV lines (neutralised, with
        the terminator) and ``docs`` the :func:`facility.records.verify.row_bytes` text of each
        (the same chain as :meth:`write`, without the csv module and ``json.dumps`` per row)."""
        h, every, rows = self.h, self.every, self.rows
        side, sha, checkpoints = [], hashlib.sha256, self.checkpoints
        for doc in docs:
            h = sha(h + doc.encode("utf-8")).digest()
            rows += 1
            hx = h.hex()
            side.append(hx[:ROWHASH_CHARS])
            if rows % every == 0:
                checkpoints.append(hx)
        self.h, self.rows = h, rows
        self.fh.write("".join(lines))
        if side:
            self.side.write("\n".join(side) + "\n")

    def close(self) -> dict[str, dict]:
        """Close both files; return their manifest entries."""
        self.fh.close()
        self.side.close()
        side = self.name + ".rowhash"
        return {
            self.name: {"columns": self.columns, "rows": self.rows,
                        "chain_sha256": self.h.hex(), "checkpoints": self.checkpoints,
                        "rowhash_file": side},
            side: {"rows": self.rows, "describes": self.name},
        }


@dataclass
class ExportRequest:
    """What to export: half-open ``[from_ms, to_ms)`` and optional site / zone filters."""

    from_ms: int
    to_ms: int
    out: str
    site: str | None = None
    zone: str | None = None
    checkpoint_every: int = CHECKPOINT_EVERY
    chunk: int = 10_000
    key: bytes | None = None
    signing_key: Any = None  # Ed25519 private key: the manifest is signed (records/signing.py)
    report: bool = True
    extra_manifest: dict = field(default_factory=dict)


def selected_points(store, site: str | None, zone: str | None) -> dict[int, dict]:
    """Point rows (by id) that the filters keep."""
    return {p["id"]: p for p in store.points()
            if (site is None or p.get("site") == site) and (zone is None or p.get("zone") == zone)}


def _prepare_out(path: str) -> None:
    if os.path.exists(path) and os.listdir(path):
        raise UsageError(f"--out {path}: folder exists and is not empty; an export goes into a "
                         "new or empty folder")
    os.makedirs(path, exist_ok=True)


def _csv_cells(cells: list[str]) -> str:
    """``cells`` as the csv module writes them within a record (no terminator): quoting is
    decided cell by cell, so a record is these pieces joined by commas (more than one cell:
    a lone empty cell is the one case quoted for its own sake)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue()[:-1]


def _json_cells(cells: list[str]) -> str:
    """``cells`` as :func:`facility.records.verify.row_bytes` encodes them inside its list."""
    return ",".join(json.dumps(c, ensure_ascii=False) for c in cells)


class _SampleFormat:
    """samples.csv records built from pieces computed once: each point's text cells
    (neutralised, CSV-quoted and JSON-encoded once per point, not per row), each quality's
    label and each second's ISO time. The time and value cells never need quoting or
    escaping (digits, ``-``, ``.``, ``:``, ``T``, ``Z``, ``e``) and start with neither a
    formula character nor a quote, so neutralising leaves them as they are."""

    def __init__(self, store, points: dict[int, dict]):
        self.store, self.points = store, points
        self.by_point: dict[int, tuple[str, str]] = {}
        self.by_quality: dict[int, tuple[str, str]] = {}
        self.unit: dict[int, tuple[str, str]] = {}
        self.second: dict[int, str] = {}

    def point(self, pid: int) -> tuple[str, str, str, str]:
        p = self.points.get(pid) or {}
        name = p.get("point") or self.store._point_name(pid)
        cells = [neutralise_cell(c) for c in (p.get("site") or "", p.get("zone") or "",
                                              p.get("device") or "", name,
                                              p.get("quantity") or "")]
        unit = neutralise_cell(p.get("unit") or "")
        out = (_csv_cells(cells), _json_cells(cells), _csv_cells([unit, "x"])[:-2],
               json.dumps(unit, ensure_ascii=False))
        self.by_point[pid] = out
        return out

    def quality(self, q: int) -> tuple[str, str]:
        label = neutralise_cell(_QUALITY_LABELS.get(q, str(q)))
        out = (_csv_cells(["x", label])[2:], json.dumps(label, ensure_ascii=False))
        self.by_quality[q] = out
        return out

    def time(self, ts_ms: int) -> str:
        sec = ts_ms // 1000
        base = self.second.get(sec)
        if base is None:
            if len(self.second) > 100_000:
                self.second.clear()
            base = self.second[sec] = iso_ms(sec * 1000)[:-5]  # "YYYY-MM-DDTHH:MM:SS"
        return f"{base}.{ts_ms - sec * 1000:03d}Z"

    def records(self, rows: list[tuple]) -> tuple[list[str], list[str]]:
        """CSV lines and chain documents of ``(point_id, ts_ms, value, quality)`` rows."""
        lines, docs = [], []
        by_point, by_quality, time = self.by_point, self.by_quality, self.time
        last, t = None, ""
        for pid, ts, value, q in rows:
            pc, pj, uc, uj = by_point.get(pid) or self.point(pid)
            qc, qj = by_quality.get(q) or self.quality(q)
            if ts != last:  # a cycle's rows share their time
                t, last = time(ts), ts
            v = "" if value is None else (repr(value) if type(value) is float else _num(value))
            lines.append(f"{t},{pc},{v},{uc},{qc}\n")
            docs.append(f'["{t}",{pj},"{v}",{uj},{qj}]')
        return lines, docs


_QUALITY_LABELS = {int(q): q.label for q in Quality}


def write_samples(store, req: ExportRequest, points: dict[int, dict],
                  sinks: Iterable[Callable] = (), progress: Callable[[int], None] | None = None
                  ) -> dict:
    """Stream samples into samples.csv; each row is also passed to every sink (as a
    ``SampleRow``). Chunk by chunk: the records are built from per-point pieces
    (:class:`_SampleFormat`) and chained in one pass, the same bytes as :meth:`CsvOut.write`."""
    out = CsvOut(req.out, "samples.csv", SAMPLE_COLUMNS, req.checkpoint_every)
    ids = None if req.site is None and req.zone is None else sorted(points)
    sinks = list(sinks)
    fmt = _SampleFormat(store, points)
    names: dict[int, str] = {}
    done = 0
    for rows in store.iter_sample_chunks(req.from_ms, req.to_ms, ids, chunk=req.chunk):
        lines, docs = fmt.records(rows)
        out.write_chained(lines, docs)
        if sinks:
            name = store._point_name
            for pid, ts, value, q in rows:
                nm = names.get(pid)
                if nm is None:
                    nm = names[pid] = name(pid)
                s = SampleRow(pid, nm, ts, value, q)
                for sink in sinks:
                    sink(s)
        if progress is not None:
            ticks = (done + len(rows)) // 1000 - done // 1000
            for _ in range(ticks):
                progress(1000)
        done += len(rows)
    return out.close()


def _keep_alarm(alarm: dict | None, req: ExportRequest) -> bool:
    if req.site is None and req.zone is None:
        return True
    a = alarm or {}
    if req.zone is not None and a.get("zone") != req.zone:
        return False
    return req.site is None or a.get("site") == req.site


def occurrences(events: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """Events grouped by (alarm id, occurrence), each list in event-id order."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for ev in sorted(events, key=lambda e: e["id"]):
        groups.setdefault((ev["alarm_id"], ev.get("occurrence") or 0), []).append(ev)
    return groups


def _by(event: dict) -> str | None:
    """Who acted on an occurrence, as a person reads it: "Name (login)"."""
    return person(event.get("actor_name"), event.get("actor")) if event.get("actor") else None


def lifecycle_row(alarm_id: str, occ: int, evs: list[dict], alarm: dict | None) -> list[str]:
    """One alarms.csv record: the occurrence's whole lifecycle from its events."""
    a = alarm or {}

    def first(kind: str) -> dict:
        return next((e for e in evs if e["event"] == kind), {})

    rz, ack, sh, cl, rs = (first("raise"), first("ack"), first("shelve"), first("clear"),
                           first("reset"))
    return [
        alarm_id, str(occ), _text(a.get("site")), _text(a.get("zone")), _text(a.get("point")),
        alarm_id.rsplit(":", 1)[-1], _text(a.get("priority")), _num(rz.get("limit")),
        _text(rz.get("source")), _num(rz.get("config_version")), iso_ms(rz.get("ts_ms")) or "",
        iso_ms(rz.get("detected_ms")) or "", _num(rz.get("value")),
        iso_ms(ack.get("ts_ms")) or "", _text(_by(ack)), _text(ack.get("reason")),
        iso_ms(sh.get("ts_ms")) or "", _text(_by(sh)), _text(sh.get("reason")),
        iso_ms(cl.get("ts_ms")) or "", iso_ms(cl.get("detected_ms")) or "",
        iso_ms(rs.get("ts_ms")) or "", _text(evs[-1].get("state_to")), str(len(evs)),
    ]


def write_alarms(store, req: ExportRequest) -> tuple[dict, list[dict]]:
    """alarms.csv (one row per occurrence touched by the range) and events.csv (raw)."""
    alarms = {a["id"]: a for a in store.alarms()}
    in_range = store.events(req.from_ms, req.to_ms)
    keys = sorted({(e["alarm_id"], e.get("occurrence") or 0) for e in in_range
                   if _keep_alarm(alarms.get(e["alarm_id"]), req)})
    by_alarm: dict[str, list[dict]] = {}
    for alarm_id in sorted({k[0] for k in keys}):
        by_alarm[alarm_id] = store.events(alarm_id=alarm_id)
    groups: dict[tuple[str, int], list[dict]] = {}
    for evs in by_alarm.values():
        groups.update(occurrences(evs))
    out = CsvOut(req.out, "alarms.csv", ALARM_COLUMNS, req.checkpoint_every)
    kept: list[dict] = []
    for alarm_id, occ in keys:
        evs = groups.get((alarm_id, occ), [])
        if evs:
            out.write(lifecycle_row(alarm_id, occ, evs, alarms.get(alarm_id)))
            kept.extend(evs)
    entries = out.close()
    ev_out = CsvOut(req.out, "events.csv", EVENT_COLUMNS, req.checkpoint_every)
    for e in sorted(kept, key=lambda e: e["id"]):
        ev_out.write([str(e["id"]), e["alarm_id"], _num(e.get("occurrence")), e["event"],
                      _text(e.get("state_from")), _text(e.get("state_to")),
                      iso_ms(e.get("ts_ms")) or "", iso_ms(e.get("detected_ms")) or "",
                      _num(e.get("value")), _num(e.get("limit")), _text(e.get("source")),
                      _text(e.get("actor")), _text(e.get("reason")),
                      _num(e.get("config_version")), _text(e.get("details")),
                      _text(e.get("actor_name")), _text(e.get("actor_roles"))])
    entries.update(ev_out.close())
    return entries, kept


def write_audit(store, req: ExportRequest) -> tuple[dict, dict, list[int]]:
    """audit.csv: the trail's rows in the range, with the chain's anchor and head."""
    span = store.audit_span(req.from_ms, req.to_ms)
    # the slice is the contiguous id range, so continuity can be checked offline
    rows = store.iter_audit(span[0], span[1], chunk=req.chunk) if span else iter(())
    out = CsvOut(req.out, "audit.csv", AUDIT_COLUMNS, req.checkpoint_every)
    versions: set[int] = set()
    first: dict | None = None
    last: dict | None = None
    for r in rows:
        first = first or r
        last = r
        details = r.get("details")
        out.write([str(r["id"]), iso_ms(r["ts_ms"]), str(r["ts_ms"]), r["actor"], r["action"],
                   _text(r.get("subject")), _text(r.get("reason")),
                   "" if details is None else json.dumps(details, sort_keys=True,
                                                         separators=(",", ":"),
                                                         ensure_ascii=False),
                   _num(r.get("config_version")), r["prev_hash"], r["hash"], r["row_sha256"]])
        if r.get("config_version") is not None:
            versions.add(int(r["config_version"]))
    info = {
        "chain_head": store.audit_head(),
        "slice_first_id": first["id"] if first else None,
        "slice_last_id": last["id"] if last else None,
        "slice_prev_hash": first["prev_hash"] if first else None,
    }
    return out.close(), info, sorted(versions)


def write_hazmat(store, req: ExportRequest) -> dict:
    """hazmat_ledger.csv when the ledger table exists (hazmat/ledger.py's migrations)."""
    if not store.has_hazmat_ledger():
        return {}
    out = CsvOut(req.out, "hazmat_ledger.csv", HAZMAT_COLUMNS, req.checkpoint_every)
    cols = [c for c in HAZMAT_COLUMNS if c != "ts"]
    # ledger rows name stores, not zones: kept whole under a site/zone filter (audited together)
    for d in store.iter_hazmat_movements(req.from_ms, req.to_ms, chunk=req.chunk):
        out.write([_num(d["id"]), iso_ms(d["ts_ms"])] + [_num(d[c]) if c == "quantity"
                                                         else _text(d[c]) for c in cols[1:]])
    return out.close()


def write_configs(store, req: ExportRequest, referenced: Iterable[int]) -> dict:
    """Every configuration version in force during the range, verbatim."""
    rows = [(v["id"], v["sha256"], v["loaded_ms"]) for v in store.config_versions()]
    before = [r for r in rows if r[2] < req.from_ms]
    wanted = {r[0] for r in rows if req.from_ms <= r[2] < req.to_ms} | set(referenced)
    if before:
        wanted.add(before[-1][0])
    entries = {}
    for vid, sha, loaded in rows:
        if vid not in wanted:
            continue
        text = store.config_text(vid) or ""
        name = f"config-{vid}-{sha[:12]}.toml"
        with open(os.path.join(req.out, name), "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        entries[name] = {"config_version": vid, "config_sha256": sha, "loaded": iso_ms(loaded)}
    return entries


def witness_fields(cfg) -> dict:
    """``witness``: the latest signed checkpoint of the chain head from the witness file (None
    when there is none or it is not readable here); ``key_history``: the signing key's rotation
    announcements, so trust in an old key extends to the key that signed this manifest."""
    from facility.store.keys import read_keyring, signing_key_path
    from facility.store.witness import last_checkpoint, witness_path

    try:
        checkpoint = last_checkpoint(witness_path(cfg))
    except (OSError, FacilityError):  # a broken witness is `facility audit verify`'s to name
        checkpoint = None
    return {"witness": checkpoint,
            "key_history": read_keyring(os.path.dirname(os.path.abspath(signing_key_path(cfg))))}


def finish_manifest(req: ExportRequest, entries: dict[str, dict], extra: dict) -> tuple[dict, str]:
    """Hash every file, write manifest.json; return it and the file's SHA-256."""
    for name, entry in entries.items():
        entry["sha256"], entry["bytes"] = file_sha256(os.path.join(req.out, name))
    try:
        login = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (container); fall back to the uid
        login = f"uid {os.getuid()}"
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "software": {"name": "cleanroom-fms", "version": software_version()},
        "exported_by": login,
        "exported_on": socket.gethostname(),
        "exported_at": iso_ms(now_ms()),
        "range": {"from": iso_ms(req.from_ms), "to": iso_ms(req.to_ms), "from_ms": req.from_ms,
                  "to_ms": req.to_ms, "half_open": True},
        "filters": {"site": req.site, "zone": req.zone},
        "checkpoint_every": req.checkpoint_every,
        **extra,
        **req.extra_manifest,
        "files": dict(sorted(entries.items())),
        "entry_digests": {n: entry_digest(e) for n, e in sorted(entries.items())},
    }
    manifest["manifest_sha256"] = manifest_digest(manifest)
    if req.key is not None:
        manifest["manifest_hmac"] = manifest_hmac(manifest, req.key)
    if req.signing_key is not None:
        manifest["signature"] = manifest_signature(manifest["manifest_sha256"], req.signing_key)
    path = os.path.join(req.out, MANIFEST)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=False, ensure_ascii=False)
        fh.write("\n")
    return manifest, file_sha256(path)[0]


def export(cfg, store, req: ExportRequest,
           progress: Callable[[int], None] | None = None) -> tuple[dict, str]:
    """Write a complete export folder; return (manifest, SHA-256 of manifest.json).

    Signed with ``req.signing_key``, else with the site's key when this user can read it."""
    if req.signing_key is None and cfg is not None:
        from facility.store.keys import signing_key

        req = replace(req, signing_key=signing_key(cfg))
    _prepare_out(req.out)
    points = selected_points(store, req.site, req.zone)
    report_data = None
    sinks = []
    if req.report:
        from facility.records.report.stats import ReportData

        report_data = ReportData(cfg, store, req.from_ms, req.to_ms, points, req.site, req.zone)
        sinks.append(report_data.feed)
    entries: dict[str, dict] = {}
    alarm_entries, events = write_alarms(store, req)
    entries.update(alarm_entries)
    if report_data is not None:
        report_data.set_events(events)  # before the stream: excursion peaks come from it
    entries.update(write_samples(store, req, points, sinks, progress))
    audit_entries, audit_info, versions = write_audit(store, req)
    entries.update(audit_entries)
    entries.update(write_hazmat(store, req))
    versions = set(versions) | {int(e["config_version"]) for e in events
                                if e.get("config_version") is not None}
    entries.update(write_configs(store, req, versions))
    extra = {"installation": cfg.facility.id if cfg is not None else None,
             "database": os.path.basename(store.path), "audit": audit_info}
    if cfg is not None:
        extra.update(witness_fields(cfg))
    if report_data is not None:
        from facility.records.report.html import render_report

        report_data.finish()
        html = render_report(report_data, manifest_summary={**extra, "entries": entries})
        with open(os.path.join(req.out, "report.html"), "w", encoding="utf-8") as fh:
            fh.write(html)
        entries["report.html"] = {"kind": "report"}
    for name, entry in entries.items():
        entry.setdefault("kind", "csv" if name.endswith(".csv") else
                         "rowhash" if name.endswith(".rowhash") else "config")
    return finish_manifest(req, entries, extra)
