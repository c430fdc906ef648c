"""The chain witness: an append-only file of signed checkpoints of the audit chain's head,
kept beside the signing key, outside the database (docs/ARCHITECTURE.md "Signing").

One JSON line per checkpoint ``{"seq","row_id","hash","at","prev","key","sig"}``:
``seq`` counts from 1, ``row_id``/``hash`` are the chain head, ``at`` the UTC time
(``YYYY-MM-DDTHH:MM:SS.sssZ``), ``prev`` the SHA-256 (hex) of the previous line's bytes
(64 zeros for the first), ``key`` the signer's raw Ed25519 public key (hex) and ``sig`` its
signature over the line's other fields as compact sorted JSON. Each line is fsynced. A line
edited, removed or reordered breaks ``prev``; a line rewritten and re-chained without the key
breaks ``sig``; and a key that is not one of the site's (``signing.pub`` and the rotation
announcements beside it) is refused. The service lives below the records in the layering, so
the writer is here; :mod:`facility.records.witness` is the readers' entry point.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os

from facility.config.schema import Config
from facility.domain.errors import CheckFailed
from facility.domain.model import iso_ms, now_ms
from facility.store.keys import public_raw, sign, signature_ok, signing_key_path, site_public_keys

WITNESS = "chain.witness"
FIELDS = ("seq", "row_id", "hash", "at", "prev", "key", "sig")
GENESIS = "0" * 64


class WitnessError(CheckFailed):
    """The witness file's own chain or a signature is broken (exit 1)."""


def witness_path(cfg: Config) -> str:
    """``chain.witness`` beside the signing key."""
    return os.path.join(os.path.dirname(os.path.abspath(signing_key_path(cfg))), WITNESS)


def signed_bytes(line: dict) -> bytes:
    """The bytes a checkpoint's signature covers: every field but ``sig``, compact sorted JSON."""
    body = {k: line[k] for k in FIELDS if k != "sig" and k in line}
    return b"facility-witness/1\n" + json.dumps(body, sort_keys=True,
                                                separators=(",", ":")).encode("utf-8")


def _line_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def read_checkpoints(path: str, trusted: set[str] | None = None) -> list[dict]:
    """Every checkpoint, checked; :class:`WitnessError` naming the first bad line.

    ``trusted``: public keys (hex) a line may be signed by; default the site's keys found
    beside the file (any key when there are none there, i.e. a copy taken away)."""
    if not os.path.exists(path):
        return []
    keys = trusted if trusted is not None else set(site_public_keys(os.path.dirname(path)))
    out: list[dict] = []
    prev = GENESIS
    with open(path, encoding="utf-8", newline="\n") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.endswith("\n"):
                raise WitnessError(f"{path} line {n}: incomplete (written during a crash?)")
            raw = raw[:-1]
            try:
                line = json.loads(raw)
            except ValueError:
                raise WitnessError(f"{path} line {n}: not JSON (edited)") from None
            if not isinstance(line, dict) or set(line) != set(FIELDS):
                raise WitnessError(f"{path} line {n}: fields differ from {', '.join(FIELDS)}")
            if line["seq"] != n:
                raise WitnessError(f"{path} line {n}: seq {line['seq']} (lines removed or "
                                   "reordered)")
            if line["prev"] != prev:
                raise WitnessError(f"{path} line {n}: prev does not match line {n - 1} "
                                   "(a line before it was edited, removed or inserted)")
            if keys and line["key"] not in keys:
                raise WitnessError(f"{path} line {n}: signed by a key that is not the site's "
                                   "(forged)")
            if not signature_ok(line["key"], signed_bytes(line), line["sig"]):
                raise WitnessError(f"{path} line {n}: signature does not match (edited or "
                                   "forged)")
            out.append(line)
            prev = _line_hash(raw)
    return out


def latest(path: str) -> dict | None:
    """The last checkpoint (the whole file checked), or None when there is none."""
    lines = read_checkpoints(path)
    return lines[-1] if lines else None


def last_checkpoint(path: str) -> dict | None:
    """The last line only (its own signature checked, not the whole file's chain: for the
    export manifest, which must not read a year of checkpoints), or None."""
    try:
        with open(path, "rb") as fh:
            raw = _tail(fh)
    except FileNotFoundError:
        return None
    if not raw:
        return None
    try:
        line = json.loads(raw)
        ok = signature_ok(line["key"], signed_bytes(line), line["sig"])
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise WitnessError(f"{path}: the last checkpoint's signature does not match (edited)")
    return line


def _tail(fh) -> str | None:
    """The last complete line of an open file (without its newline), or None."""
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    if end == 0:
        return None
    step = 4096
    pos = max(0, end - step)
    while True:
        fh.seek(pos)
        chunk = fh.read(end - pos)
        body = chunk[:-1] if chunk.endswith(b"\n") else chunk
        cut = body.rfind(b"\n")
        if cut >= 0 or pos == 0:
            return body[cut + 1:].decode("utf-8")
        pos = max(0, pos - step)


def append_checkpoint(path: str, key, row_id: int, head_hash: str,
                      at_ms: int | None = None) -> dict | None:
    """Append a signed checkpoint of the chain head ``(row_id, head_hash)``; None when the last
    checkpoint already names that head. The line is fsynced before returning."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
    with os.fdopen(fd, "r+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        last_raw = _tail(fh)
        last = json.loads(last_raw) if last_raw else None
        if last is not None and last.get("row_id") == row_id and last.get("hash") == head_hash:
            return None
        line = {"seq": (last["seq"] + 1) if last else 1, "row_id": int(row_id),
                "hash": head_hash, "at": iso_ms(now_ms() if at_ms is None else at_ms),
                "prev": _line_hash(last_raw) if last_raw else GENESIS,
                "key": public_raw(key).hex()}
        line["sig"] = sign(key, signed_bytes(line))
        raw = json.dumps({k: line[k] for k in FIELDS}, separators=(",", ":"))
        fh.write(raw.encode("utf-8") + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    return line


__all__ = ["WITNESS", "WitnessError", "append_checkpoint", "last_checkpoint", "latest",
           "read_checkpoints", "signed_bytes", "witness_path"]
