"""What a ``cycle_digest`` audit row covers, byte for byte (docs/ARCHITECTURE.md "Audit trail").

One definition for the writer (:meth:`Store._digest`) and for everyone who recomputes a digest
(``facility audit verify``, an export cross-check), so both sides hash the same bytes.

* Samples: ``samples_sha256`` is the SHA-256 of one :func:`sample_line` per stored sample of
  the cycle, in ``(ts_ms, point)`` order (partition by partition in day order, as a day's rows
  all come before the next day's).
* Events (digest version 2): ``events_sha256`` is the SHA-256 of :func:`event_doc` + ``\\n`` for
  each event row of the cycle *as stored* (ids ``event_ids[0]..event_ids[1]``), read back inside
  the cycle's transaction. Version 1 hashed the event dicts the service passed in; see
  :func:`v1_event_docs` for how those are recomputed.
* Alarms (version 2): ``alarms`` maps each alarm row the cycle upserted to :func:`alarm_sha256`
  of the whole row as stored after the upsert; the current ``alarms`` table must equal, row by
  row, what the last cycle touching each row recorded.
* Membership (version 2): ``ranges`` maps each day to ``[lo, hi]``: the cycle's samples in that
  partition are the rows with ``lo < ts_ms <= hi`` plus the ``late`` rows ``[ts_ms, point]``
  (at or before ``lo``, the partition's newest time before the cycle), minus the late rows of
  later cycles. ``lo`` only grows, so the regions of successive cycles tile the day and every
  stored row belongs to exactly one cycle, without a cycle column in the samples.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping, Sequence

from facility.store.audit import canonical_doc

DIGEST_VERSION = 2
"""``details["v"]`` of the digest rows written now (rows without ``v`` are version 1)."""


def sample_line(ts_ms: int, point: str, value: float | None, quality: int) -> bytes:
    """One sample as hashed: ``ts,point,repr(value) or empty,quality`` and a newline."""
    return f"{ts_ms},{point},{'' if value is None else repr(value)},{quality}\n".encode()


def sample_lines(rows: Iterable[tuple], names: Mapping[int, str] | Sequence[str | None],
                 reprs: dict[float, str] | None = None) -> bytes:
    """:func:`sample_line` of each ``(point_id, ts_ms, value, quality)`` row, concatenated
    (the same bytes, built in one pass for a whole cycle). ``names``: point id -> name (a
    dict, or a list indexed by id).

    ``reprs`` caches ``repr(value)`` across calls (a plant's readings, rounded to their
    decimals, repeat; ``repr`` of a float was most of the digest's cost). Zero never goes
    through it: ``0.0 == -0.0`` but their reprs differ.
    """
    if reprs is None:
        return "".join([f"{ts},{names[pid]},{'' if value is None else repr(value)},{q}\n"
                        for pid, ts, value, q in rows]).encode()
    rows = list(rows)
    if not rows:
        return b""
    pids, tss, values, qs = zip(*rows)
    return sample_lines_columns(pids, tss, values, qs, names, reprs)


def sample_lines_columns(pids: Sequence[int], tss: list[int] | tuple[int, ...],
                         values: Sequence[float | None], qs: Sequence[int],
                         names: Mapping[int, str] | Sequence[str | None],
                         reprs: dict[float, str]) -> bytes:
    """:func:`sample_lines` of rows given as columns, with the ``reprs`` cache.

    The same bytes, without a format per row: the five pieces of every line (``ts,``,
    the point, ``,``, the value, ``,quality`` and the newline) are laid into one list by C
    loops (slice assignment of ``map`` results) and joined once; only the values not in the
    cache (and zeros) take a Python step.
    """
    n = len(tss)
    if not n:
        return b""
    if len(reprs) > REPR_CACHE_MAX:
        reprs.clear()
    texts = list(map(reprs.get, values))
    if None in texts:
        for i, (text, value) in enumerate(zip(texts, values)):
            if text is None:
                if value is None:
                    texts[i] = ""
                else:
                    texts[i] = text = repr(value)
                    if value:
                        reprs[value] = text
    parts = [","] * (5 * n)
    first = tss[0]
    if first == tss[-1] and tss.count(first) == n:
        parts[0::5] = [f"{first},"] * n  # one cycle, one time: the usual case
    else:
        parts[0::5] = map("{},".format, tss)
    parts[1::5] = map(names.__getitem__, pids)
    parts[3::5] = texts
    try:
        parts[4::5] = map(_QUALITY_TAIL.__getitem__, qs)
    except KeyError:
        parts[4::5] = map(",{}\n".format, qs)
    return "".join(parts).encode()


_QUALITY_TAIL = {q: f",{q}\n" for q in range(256)}
"""The end of a sample line for each quality code: ``,quality`` and the newline."""


REPR_CACHE_MAX = 200_000
"""Entries kept in a :func:`sample_lines` cache before it starts afresh (~20 MB): memory,
not correctness (a miss is only a ``repr``)."""


OPTIONAL_EVENT_COLUMNS = ("actor_name", "actor_roles")
"""Event columns added after digest version 2 was defined (store migration 5): hashed only
when they hold a value, so the digests of events stored before them still verify."""


def _stored(row: Mapping[str, Any]) -> dict:
    return {k: v for k, v in row.items() if v is not None or k not in OPTIONAL_EVENT_COLUMNS}


def event_doc(row: Mapping[str, Any]) -> bytes:
    """Canonical bytes of a stored event row (its id and every column, ``details`` as stored;
    the :data:`OPTIONAL_EVENT_COLUMNS` only when set)."""
    return canonical_doc(_stored(row))


def alarm_sha256(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a stored alarm row's canonical bytes (every column)."""
    return hashlib.sha256(canonical_doc(dict(row))).hexdigest()


def events_sha256(docs: Iterable[bytes]) -> str:
    """SHA-256 (hex) over each canonical event document followed by a newline."""
    h = hashlib.sha256()
    for doc in docs:
        h.update(doc + b"\n")
    return h.hexdigest()


def v1_event_docs(row: Mapping[str, Any]) -> list[bytes]:
    """Candidate version-1 documents of a stored event row, most likely first.

    Version 1 hashed the dict the service passed in, without the id: the engine passes every
    column, an operator comment leaves out the columns it has no value for (stored as null).
    """
    doc = {k: v for k, v in _stored(row).items() if k != "id"}
    sparse = {k: v for k, v in doc.items() if v is not None}
    return [canonical_doc(doc), canonical_doc(sparse)]
