"""Each check of ``facility verify`` on its own: the tampering that only it catches.

A forger without the audit key can recompute every SHA-256 of an export: the row chains,
the ``.rowhash`` sidecars, the checkpoints, the file digests and the manifest's self-digest
(only ``manifest_hmac`` needs the key). ``reseal`` below does exactly that after an edit, so
the check under test is the one that must fail, and the problem it names (file, row, audit
id) is asserted word for word. Without this, a check could be deleted and every tamper test
would still pass through another one.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from facility.records.export import ExportRequest, export
from facility.records.verify import (
    MANIFEST,
    ROWHASH_CHARS,
    chain_next,
    chain_start,
    entry_digest,
    file_sha256,
    manifest_digest,
    manifest_hmac,
    row_bytes,
    verify_export,
)
from facility.store import Store
from tests.fixtures.export import build, key_file

EVERY = 100  # checkpoint interval of the fixture export


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify-mutants")
    _, key = key_file(tmp)
    cfg, db, _ = build(tmp, key=key, minutes=30)
    with Store(db, key=key) as store:
        # empty text, not null: CSV cannot tell them apart, verify must try both; and a
        # reason over two lines, which CSV quotes
        store.append_audit({"action": "comment", "actor": "engineer", "subject": "",
                            "reason": ""})
        store.append_audit({"action": "comment", "actor": "engineer", "subject": "Z1",
                            "reason": "first line\r\nsecond line"})
    out = tmp / "exp"
    with Store(db, readonly=True) as store:
        export(cfg, store, ExportRequest(0, 2**42, str(out), checkpoint_every=EVERY, key=key))
    return out, key


@pytest.fixture
def folder(exported, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(exported[0], dst)
    return dst


def manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


def write_manifest(folder: Path, man: dict) -> None:
    (folder / MANIFEST).write_text(json.dumps(man, indent=1), encoding="utf-8")


def records(folder: Path, name: str) -> list[list[str]]:
    with open(folder / name, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def write_records(folder: Path, name: str, recs: list[list[str]]) -> None:
    with open(folder / name, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(recs)


def reseal(folder: Path, key: bytes | None = None, edit=None, sidecars: bool = True) -> dict:
    """Recompute everything a forger without the key can: chains, sidecars, digests."""
    man = manifest(folder)
    files = man["files"]
    every = man["checkpoint_every"]
    for name, entry in files.items():
        if not name.endswith(".csv") or not sidecars:
            continue
        recs = records(folder, name)
        h, side, points = chain_start(recs[0]), [], []
        for n, rec in enumerate(recs[1:], start=1):
            h = chain_next(h, rec)
            side.append(h.hex()[:ROWHASH_CHARS] + "\n")
            if n % every == 0:
                points.append(h.hex())
        (folder / entry["rowhash_file"]).write_text("".join(side), encoding="ascii")
        entry.update(rows=len(recs) - 1, chain_sha256=h.hex(), checkpoints=points)
        files[entry["rowhash_file"]]["rows"] = len(recs) - 1
    if edit is not None:
        edit(man)
    for name, entry in files.items():
        entry["sha256"], entry["bytes"] = file_sha256(str(folder / name))
    man["entry_digests"] = {n: entry_digest(e) for n, e in files.items()}
    man.pop("manifest_hmac", None)
    man["manifest_sha256"] = manifest_digest(man)
    if key is not None:
        man["manifest_hmac"] = manifest_hmac(man, key)
    write_manifest(folder, man)
    return man


def problem(folder: Path, key: bytes | None = None) -> str:
    res = verify_export(str(folder), key)
    assert res.ok is False, res.summary
    assert res.summary == res.problem
    return res.problem


# -- what a good export says --------------------------------------------------------------
def test_untouched_export_summary_counts_rows_and_names_the_chain_head(exported):
    folder, key = exported
    man = manifest(folder)
    rows = {n: e["rows"] for n, e in man["files"].items() if n.endswith(".csv")}
    head = man["audit"]["chain_head"]
    res = verify_export(str(folder), key)
    assert res.ok and res.problem is None
    cycles = res.checked.get("cycles")
    assert cycles and res.checked == {**rows, "audit_rows": rows["audit.csv"], "cycles": cycles}
    assert res.summary == (
        f"ok: {len(man['files'])} files, {sum(rows.values())} rows, audit slice "
        f"{rows['audit.csv']} rows authentic (HMAC); chain head #{head['id']} {head['hash'][:12]}"
        f"; {cycles} cycles cross-checked against their digest rows; unsigned; integrity only: "
        "origin not checked (no trusted key)")
    unkeyed = verify_export(str(folder))
    assert unkeyed.ok and "rows continuity only (no key); chain head" in unkeyed.summary


def test_resealing_alone_changes_nothing(folder, exported):
    # the helper is faithful: resealing an untouched export keeps it valid, key or not
    reseal(folder, key=exported[1])
    assert verify_export(str(folder), exported[1]).ok
    reseal(folder)
    assert verify_export(str(folder)).ok
    # without the key the forger cannot produce a manifest_hmac
    assert problem(folder, exported[1]) == (
        "manifest.json: no manifest_hmac (exported without the audit key); authenticity cannot"
        " be proved")


# -- rows: tail truncation, row count, extra rows, header, checkpoints, final chain ---------
def test_rows_deleted_at_the_end_are_named(folder):
    recs = records(folder, "samples.csv")
    n = len(recs) - 1
    write_records(folder, "samples.csv", recs[:-3])
    # the sidecar still has the deleted rows' hashes: only the row count can tell
    assert problem(folder) == (f"samples.csv row {n - 2}: missing (the manifest says {n} rows,"
                               f" the file has {n - 3}; rows deleted at the end)")


def test_rows_deleted_at_the_end_with_the_sidecar_truncated_too(folder):
    recs = records(folder, "samples.csv")
    n = len(recs) - 1
    write_records(folder, "samples.csv", recs[:-1])
    side = (folder / "samples.csv.rowhash").read_text().splitlines(keepends=True)
    (folder / "samples.csv.rowhash").write_text("".join(side[:-1]))
    assert problem(folder) == (f"samples.csv row {n}: missing (the manifest says {n} rows,"
                               f" the file has {n - 1}; rows deleted at the end)")


def test_row_count_in_the_manifest_is_checked(folder):
    # the forger lowers the row count after deleting the tail, and reseals: the final chain
    # value in the manifest is the untouched one, so the last block is named
    n = manifest(folder)["files"]["samples.csv"]["rows"]
    want = manifest(folder)["files"]["samples.csv"]["chain_sha256"]
    reseal(folder, edit=lambda m: m["files"]["samples.csv"].update(rows=n + 5))
    assert problem(folder) == (f"samples.csv row {n + 1}: missing (the manifest says {n + 5}"
                               f" rows, the file has {n}; rows deleted at the end)")
    man = manifest(folder)
    assert man["files"]["samples.csv"]["chain_sha256"] == want


def test_final_chain_value_is_checked(folder):
    n = manifest(folder)["files"]["samples.csv"]["rows"]
    reseal(folder, edit=lambda m: m["files"]["samples.csv"].update(chain_sha256="0" * 64))
    start = (n // EVERY) * EVERY + 1
    assert problem(folder) == (f"samples.csv rows {start}-{n}: chain differs from the"
                               " manifest's final value")


def test_final_chain_block_starts_after_the_last_checkpoint_on_a_multiple(folder):
    recs = records(folder, "samples.csv")
    write_records(folder, "samples.csv", recs[:EVERY * 3 + 1])  # exactly 300 rows
    reseal(folder, edit=lambda m: m["files"]["samples.csv"].update(chain_sha256="0" * 64))
    assert problem(folder) == ("samples.csv rows 301-300: chain differs from the manifest's"
                               " final value")


def test_an_extra_row_is_named_by_the_sidecar(folder):
    recs = records(folder, "samples.csv")
    n = len(recs) - 1
    write_records(folder, "samples.csv", recs + [recs[-1]])
    assert problem(folder) == f"samples.csv row {n + 1}: extra row (the export has {n} rows)"


def test_missing_checkpoints_are_a_chain_difference(folder):
    reseal(folder, edit=lambda m: m["files"]["samples.csv"].update(checkpoints=[]))
    assert problem(folder) == ("samples.csv rows 1-100: chain differs from the manifest"
                               " checkpoint at row 100")


def test_a_wrong_later_checkpoint_names_its_block(folder):
    def edit(m):
        m["files"]["samples.csv"]["checkpoints"][2] = "f" * 64
    reseal(folder, edit=edit)
    assert problem(folder) == ("samples.csv rows 201-300: chain differs from the manifest"
                               " checkpoint at row 300")


def test_checkpoints_run_out_before_the_rows(folder):
    def edit(m):
        del m["files"]["samples.csv"]["checkpoints"][5:]
    reseal(folder, edit=edit)
    assert problem(folder) == ("samples.csv rows 501-600: chain differs from the manifest"
                               " checkpoint at row 600")


def test_header_is_checked(folder):
    recs = records(folder, "samples.csv")
    recs[0] = ["when" if c == "ts" else c for c in recs[0]]
    write_records(folder, "samples.csv", recs)
    assert problem(folder) == "samples.csv row 0 (header): columns differ from the manifest"


def test_a_csv_without_its_sidecar_is_still_walked(folder):
    # an export whose sidecar was left out: the checkpoints still find the changed row
    (folder / "samples.csv.rowhash").unlink()
    man = manifest(folder)
    del man["files"]["samples.csv.rowhash"]
    write_manifest(folder, man)
    recs = records(folder, "samples.csv")
    recs[150][-1] = recs[150][-1] + "0"
    write_records(folder, "samples.csv", recs)
    reseal(folder, sidecars=False)
    assert problem(folder) == ("samples.csv rows 101-200: chain differs from the manifest"
                               " checkpoint at row 200")


def test_checkpoint_interval_defaults_to_ten_thousand(folder):
    # with no interval in the manifest, no checkpoint is expected below 10 000 rows
    reseal(folder, edit=lambda m: (m.pop("checkpoint_every"),
                                   [e.update(checkpoints=[]) for n, e in m["files"].items()
                                    if n.endswith(".csv")]))
    assert verify_export(str(folder)).ok


# -- files ---------------------------------------------------------------------------------
def test_bytes_changed_in_a_file_without_rows(folder):
    with open(folder / "report.html", "a", encoding="utf-8") as fh:
        fh.write("<!-- -->")
    assert problem(folder) == "report.html: sha256 mismatch (bytes changed)"


def test_size_differs_from_the_manifest(folder):
    size = (folder / "report.html").stat().st_size
    reseal(folder, edit=lambda m: m["files"]["report.html"].update(bytes=size + 1))
    # reseal recomputes bytes after the edit: put the wrong size back in
    man = manifest(folder)
    man["files"]["report.html"]["bytes"] = size + 1
    man["entry_digests"]["report.html"] = entry_digest(man["files"]["report.html"])
    man["manifest_sha256"] = manifest_digest(man)
    write_manifest(folder, man)
    assert problem(folder) == f"report.html: {size} bytes, the manifest says {size + 1}"


def test_a_file_listed_but_gone(folder):
    (folder / "events.csv").unlink()
    assert problem(folder) == "events.csv: missing"


# -- the manifest ---------------------------------------------------------------------------
def test_no_manifest(folder):
    (folder / MANIFEST).unlink()
    assert problem(folder) == f"manifest.json: missing (is {folder} an export folder?)"


def test_unreadable_manifest(folder):
    (folder / MANIFEST).write_text("{not json", encoding="utf-8")
    got = problem(folder)
    assert got.startswith("manifest.json: unreadable (") and got.endswith(") (edited)")


@pytest.mark.parametrize("doc", [[], {"files": []}, {"format": "x"}])
def test_manifest_without_a_files_table(folder, doc):
    write_manifest(folder, doc)
    assert problem(folder) == "manifest.json: no 'files' table (edited or not an export)"


def test_entry_removed_from_the_files_table(folder):
    man = manifest(folder)
    del man["files"]["events.csv"]
    write_manifest(folder, man)
    assert problem(folder) == "manifest.json files[events.csv]: entry removed (edited)"


def test_entry_digest_removed_is_an_edit(folder):
    man = manifest(folder)
    del man["entry_digests"]["alarms.csv"]
    write_manifest(folder, man)
    assert problem(folder) == "manifest.json files[alarms.csv]: entry differs from its digest (edited)"


def test_forged_hmac(folder, exported):
    man = manifest(folder)
    man["manifest_hmac"] = "0" * 64
    write_manifest(folder, man)
    assert problem(folder, exported[1]) == (
        "manifest.json: manifest_hmac does not match (forged, or another key)")
    assert verify_export(str(folder)).ok  # without the key only continuity is claimed


# -- the audit slice: link, ids, content, tail, HMAC ---------------------------------------
AUDIT = "audit.csv"


def audit_rows(folder: Path) -> tuple[list[str], list[list[str]]]:
    recs = records(folder, AUDIT)
    return recs[0], recs[1:]


def col(header: list[str], name: str) -> int:
    return header.index(name)


def write_audit(folder: Path, header, rows) -> None:
    write_records(folder, AUDIT, [header] + rows)


def test_audit_link_broken(folder):
    header, rows = audit_rows(folder)
    rows[0][col(header, "hash")] = "ab" * 32  # not covered by row_sha256: only the link
    write_audit(folder, header, rows)
    reseal(folder)
    assert problem(folder) == ("audit.csv row 2: prev_hash does not match the previous row's"
                               f" hash (audit id {rows[1][0]}; chain broken)")


def test_audit_slice_must_start_at_the_recorded_anchor(folder):
    header, rows = audit_rows(folder)
    rows[0][col(header, "prev_hash")] = "cd" * 32
    write_audit(folder, header, rows)
    reseal(folder)
    assert problem(folder) == ("audit.csv row 1: prev_hash does not match the previous row's"
                               f" hash (audit id {rows[0][0]}; chain broken)")


def test_audit_slice_without_anchor_checks_links_from_the_second_row(folder):
    header, rows = audit_rows(folder)
    rows[0][col(header, "prev_hash")] = "cd" * 32
    write_audit(folder, header, rows)
    reseal(folder, edit=lambda m: m["audit"].update(slice_prev_hash=None))
    assert verify_export(str(folder)).ok


def test_audit_row_deleted_in_the_middle(folder):
    header, rows = audit_rows(folder)
    gone = rows.pop(4)
    write_audit(folder, header, rows)
    reseal(folder)
    assert problem(folder) == (f"audit.csv row 5: audit id {int(gone[0]) + 1} follows"
                               f" {int(gone[0]) - 1} (rows deleted or reordered)")


def test_audit_rows_deleted_at_the_end(folder):
    header, rows = audit_rows(folder)
    last = int(rows[-1][0])
    write_audit(folder, header, rows[:-2])
    reseal(folder)
    assert problem(folder) == (f"audit.csv row {len(rows) - 2}: last audit id {last - 2}, the"
                               f" manifest says {last} (rows deleted at the end)")


def test_audit_row_content_edited(folder):
    header, rows = audit_rows(folder)
    rows[2][col(header, "actor")] = "someone-else"
    write_audit(folder, header, rows)
    reseal(folder)
    assert problem(folder) == (f"audit.csv row 3: content differs from row_sha256 (audit id"
                               f" {rows[2][0]}; edited)")


def test_audit_id_unreadable(folder):
    header, rows = audit_rows(folder)
    rows[3][0] = "four"
    write_audit(folder, header, rows)
    reseal(folder)
    assert problem(folder) == "audit.csv row 4: unreadable id (edited)"


def test_audit_row_hmac_checked_with_the_key(folder, exported):
    # even a manifest sealed with the key cannot vouch for an audit row whose HMAC is wrong
    key = exported[1]
    header, rows = audit_rows(folder)
    last = len(rows) - 1
    rows[last][col(header, "hash")] = "ef" * 32  # the last row: no later link to break
    write_audit(folder, header, rows)
    reseal(folder, key=key)
    assert verify_export(str(folder)).ok  # continuity cannot see it
    assert problem(folder, key) == (f"audit.csv row {last + 1}: HMAC does not match (audit id"
                                    f" {rows[last][0]}; forged or another key)")
    assert problem(folder, b"k" * 32) == (
        "manifest.json: manifest_hmac does not match (forged, or another key)")


def test_audit_slice_only_checked_when_exported(folder):
    # an export without audit.csv (e.g. a hand-made subset) has nothing to continue from
    man = manifest(folder)
    for name in (AUDIT, AUDIT + ".rowhash"):
        (folder / name).unlink()
        del man["files"][name]
    write_manifest(folder, man)
    reseal(folder)
    res = verify_export(str(folder))
    assert res.ok and "audit_rows" not in res.checked
    assert " audit slice 0 rows continuity only" in res.summary


def test_empty_fields_match_null_or_empty_text(folder):
    # CSV cannot tell null from "": rows whose subject/reason are empty still verify, and
    # the row bytes of the chain are the compact JSON list of the fields
    header, rows = audit_rows(folder)
    assert any(r[col(header, "subject")] == "" for r in rows)
    assert any(r[col(header, "subject")] != "" for r in rows)
    assert row_bytes(["a", "é", ""]) == '["a","é",""]'.encode("utf-8")
    assert verify_export(str(folder)).ok


def test_an_added_file_is_named(folder):
    (folder / "zz-notes.txt").write_text("added later")
    assert problem(folder) == "zz-notes.txt: not in the manifest (added after the export)"


# -- edge cases of the walk ------------------------------------------------------------------
def test_changed_row_named_in_full(folder):
    recs = records(folder, "samples.csv")
    recs[10][-1] = recs[10][-1] + "1"
    write_records(folder, "samples.csv", recs)
    assert problem(folder) == ("samples.csv row 10: sha256 mismatch (changed, deleted, inserted"
                               " or moved)")


def test_what_was_checked_before_the_problem_is_reported(folder):
    header, rows = audit_rows(folder)
    rows[0][col(header, "actor")] = "nobody"
    write_audit(folder, header, rows)
    reseal(folder)
    res = verify_export(str(folder))
    assert res.ok is False
    man = manifest(folder)
    assert res.checked == {n: e["rows"] for n, e in man["files"].items() if n.endswith(".csv")}


def test_an_empty_csv_file_has_no_header(folder):
    (folder / "events.csv").write_text("")
    assert problem(folder) == "events.csv row 0 (header): columns differ from the manifest"


def test_a_csv_with_no_rows_verifies(folder):
    recs = records(folder, "events.csv")
    write_records(folder, "events.csv", recs[:1])
    reseal(folder)
    res = verify_export(str(folder))
    # the empty CSV's row chain passes; the events are missing from the chain's digest rows
    assert res.checked["events.csv"] == 0 and not res.ok
    assert res.problem.startswith("events.csv: event ") and "(deleted)" in res.problem


def test_an_audit_slice_with_no_rows_verifies(folder):
    header, _ = audit_rows(folder)
    write_audit(folder, header, [])
    reseal(folder)
    res = verify_export(str(folder))
    assert res.ok and res.checked["audit_rows"] == 0
    assert " audit slice 0 rows continuity only" in res.summary


def test_a_csv_entry_without_a_sidecar_name(folder):
    recs = records(folder, "events.csv")
    recs[1][-1] += "x"
    write_records(folder, "events.csv", recs)
    man = manifest(folder)
    del man["files"]["events.csv"]["rowhash_file"]
    write_manifest(folder, man)
    reseal(folder, sidecars=False)
    # no sidecar and no checkpoint below 100 rows: only the final chain value finds it
    assert problem(folder) == "events.csv rows 1-3: chain differs from the manifest's final value"


def test_unparsable_audit_field_is_a_content_difference(folder):
    header, rows = audit_rows(folder)
    rows[1][col(header, "ts_ms")] = "yesterday"
    write_audit(folder, header, rows)
    reseal(folder)
    assert problem(folder) == (f"audit.csv row 2: content differs from row_sha256 (audit id"
                               f" {rows[1][0]}; edited)")


def test_empty_text_and_a_two_line_reason_survive_the_round_trip(exported):
    header, rows = audit_rows(exported[0])
    subj, reason = col(header, "subject"), col(header, "reason")
    assert ["", ""] in [[r[subj], r[reason]] for r in rows]
    assert "first line\r\nsecond line" in [r[reason] for r in rows]
    assert verify_export(str(exported[0]), exported[1]).ok


def test_file_digest_over_several_blocks(tmp_path):
    import hashlib

    data = bytes(range(256)) * (4096 * 3 + 7)  # just over 3 MiB: several 1 MiB blocks
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert file_sha256(str(path)) == (hashlib.sha256(data).hexdigest(), len(data))


def test_manifest_digests_cover_everything_but_themselves(exported):
    import hashlib
    import hmac

    from facility.store.audit import canonical_doc

    man = manifest(exported[0])
    body = {k: v for k, v in man.items() if k not in ("manifest_sha256", "manifest_hmac")}
    assert manifest_digest(man) == hashlib.sha256(canonical_doc(body)).hexdigest()
    assert manifest_hmac(man, exported[1]) == hmac.new(exported[1], canonical_doc(body),
                                                       hashlib.sha256).hexdigest()
    other = dict(man, exported_by="someone else")
    assert manifest_hmac(other, exported[1]) != manifest_hmac(man, exported[1])
    assert entry_digest(man["files"]["samples.csv"]) == hashlib.sha256(
        canonical_doc(man["files"]["samples.csv"])).hexdigest()
