"""Backtest: evaluate limit rules over recorded samples with the live engine's kernels.

docs/ARCHITECTURE.md "The command line": ``facility backtest --json`` reads CSV ``ts,point,value
[,quality]`` (ts ISO 8601 or Unix seconds; point = configured point id) and prints one
object per transition, ordered by time, then input row, then action_high, alert_high,
alert_low, action_low, and last ``"stale"`` (docs/ARCHITECTURE.md "Stale": in a backtest a point is
found stale at the next input time or at the end of the input). The CLI wrapper and rule
compilation live elsewhere; this module reads the CSV into arrays and runs one
``Engine.feed`` (and one ``StaleTracker.feed``) over them, so a backtest and the live
service can never disagree about a rule.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Iterable, Mapping, Sequence

import numpy as np

from alarms.engine import Engine, Rule
from alarms.stale import StaleTracker
from facility.domain.model import LIMIT_NAMES, Quality, iso_ms

STALE = "stale"  # the "limit" of a stale transition; it sorts after the four limits


@dataclass(frozen=True)
class SampleArrays:
    """Samples in input order: ``point`` indexes ``point_ids``; ``row`` is the CSV line."""

    point_ids: tuple[str, ...]
    point: np.ndarray  # int64
    ts: np.ndarray  # float64 Unix seconds
    value: np.ndarray  # float64, NaN where the CSV had no number
    quality: np.ndarray  # int8 facility.domain.model.Quality codes
    good: np.ndarray  # bool: quality good and value finite
    row: np.ndarray  # int64 line number in the CSV (1-based)


def _parse_ts(text: str, where: str) -> float:
    """Unix seconds, or ISO 8601 with an offset (a bare time has no defined zone here)."""
    text = text.strip()
    try:
        t = float(text)
    except ValueError:
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{where}: ts {text!r} is neither Unix seconds nor ISO 8601 "
                             "(e.g. 2024-05-01T08:00:00Z)") from None
        if dt.tzinfo is None:
            raise ValueError(f"{where}: ts {text!r} has no UTC offset; add Z or +08:00")
        return dt.timestamp()
    if not math.isfinite(t):
        raise ValueError(f"{where}: ts {text!r} is not a finite time")
    return t


def read_samples_csv(path_or_file, point_ids: Iterable[str]) -> SampleArrays:
    """Read ``ts,point,value[,quality]`` rows (an optional header starting with "ts").

    An empty, ``nan`` or ``null`` value is kept as a bad sample (never as 0). Any other
    problem raises one ValueError naming the file, the line and the fix.
    """
    ids = tuple(point_ids)
    index = {pid: i for i, pid in enumerate(ids)}
    if isinstance(path_or_file, (str, os.PathLike)):
        name = os.fspath(path_or_file)
        with open(path_or_file, newline="", encoding="utf-8") as fh:
            text = fh.read()
    else:
        name = getattr(path_or_file, "name", "<samples>")
        text = path_or_file.read()
    pts, tss, vals, quals, rows = [], [], [], [], []
    reader = csv.reader(io.StringIO(text))
    for fields in reader:
        line = reader.line_num
        where = f"{name}: line {line}"
        if not fields or all(not f.strip() for f in fields):
            continue
        if line == 1 and fields[0].strip().lower() == "ts":
            continue
        if len(fields) not in (3, 4):
            raise ValueError(f"{where}: expected ts,point,value[,quality], "
                             f"got {len(fields)} fields")
        pid = fields[1].strip()
        if pid not in index:
            raise ValueError(f"{where}: point {pid!r} is not a configured point id")
        raw = fields[2].strip()
        if raw.lower() in ("", "nan", "null", "none"):
            value = math.nan
        else:
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{where}: value {raw!r} is not a number "
                                 "(leave it empty for a failed read)") from None
        try:
            q = Quality.parse(fields[3]) if len(fields) == 4 and fields[3].strip() else Quality.GOOD
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        pts.append(index[pid])
        tss.append(_parse_ts(fields[0], where))
        vals.append(value)
        quals.append(int(q))
        rows.append(line)
    value_arr = np.array(vals, dtype=np.float64)
    qual_arr = np.array(quals, dtype=np.int8)
    return SampleArrays(
        point_ids=ids, point=np.array(pts, dtype=np.int64), ts=np.array(tss, dtype=np.float64),
        value=value_arr, quality=qual_arr,
        good=(qual_arr == int(Quality.GOOD)) & np.isfinite(value_arr),
        row=np.array(rows, dtype=np.int64),
    )


def run_backtest(rules_with_keys: Sequence[tuple], arrays: SampleArrays,
                 include_rule: bool = False,
                 stale_after_s: Mapping[str, float] | None = None) -> list[dict]:
    """Evaluate rules over samples; return docs/ARCHITECTURE.md's backtest JSON objects.

    ``rules_with_keys`` holds ``(point_id, limit_name, Rule)`` or ``(point_id,
    limit_name, Rule, key)``; each Rule's ``point`` is replaced by the point's index in
    ``arrays.point_ids``. ``include_rule`` adds ``"rule"`` (the index into
    ``rules_with_keys``) for callers that compiled several modes of one limit.
    ``stale_after_s`` (point id -> seconds) adds the stale transitions of those points
    (see ``stale_transitions``), merged into the same order.
    """
    index = {pid: i for i, pid in enumerate(arrays.point_ids)}
    rules, keys, names, pids = [], [], [], []
    for n, item in enumerate(rules_with_keys):
        pid, limit_name, rule = item[0], item[1], item[2]
        if pid not in index:
            raise ValueError(f"rule {n}: point {pid!r} is not among the samples' point ids")
        if limit_name not in LIMIT_NAMES:
            raise ValueError(f"rule {n}: limit {limit_name!r} is not one of "
                             f"{', '.join(LIMIT_NAMES)}")
        if not isinstance(rule, Rule):
            raise TypeError(f"rule {n}: expected alarms.engine.Rule, got {type(rule).__name__}")
        rules.append(replace(rule, point=index[pid]))
        key = item[3] if len(item) > 3 else f"{pid}:{limit_name}"
        keys.append(key if key not in keys else f"{key}#{n}")
        names.append(limit_name)
        pids.append(pid)
    tr = Engine(rules, keys=keys).feed(arrays.point, arrays.ts, arrays.value, arrays.good)
    rank = {name: i for i, name in enumerate(LIMIT_NAMES)}
    order = sorted(range(len(tr)), key=lambda j: (
        arrays.ts[tr["sample"][j]], arrays.row[tr["sample"][j]],
        rank[names[tr["rule"][j]]], tr["rule"][j]))
    keyed = []
    for j in order:
        r, s = int(tr["rule"][j]), int(tr["sample"][j])
        obj = {
            "ts": iso_ms(round(float(arrays.ts[s]) * 1000)),
            "point": pids[r],
            "limit": names[r],
            "event": "raise" if tr["event"][j] > 0 else "clear",
            "value": float(arrays.value[s]),
            "onset": iso_ms(round(float(tr["onset"][j]) * 1000)),
        }
        if include_rule:
            obj["rule"] = r
        keyed.append(((float(arrays.ts[s]), int(arrays.row[s]), rank[names[r]]), obj))
    if stale_after_s:
        keyed += [((ts, row, len(LIMIT_NAMES)), obj)
                  for ts, row, obj in stale_transitions(stale_after_s, arrays)]
        keyed.sort(key=lambda kv: kv[0])  # stable: each source keeps its own order
    return [obj for _key, obj in keyed]


def stale_transitions(stale_after_s: Mapping[str, float],
                      arrays: SampleArrays) -> list[tuple[float, int, dict]]:
    """Stale raises and clears as ``(ts, row, JSON object)`` in the order found.

    docs/ARCHITECTURE.md "Stale": a point is stale from ``last good ts + stale_after_s`` (the onset);
    a backtest finds that at the next input time (``ts`` and ``row`` are that sample's,
    ``value`` null: no value raised it) or at the end of the input (the last input time,
    row after the last), and clears it at the point's next good sample (its value). The
    samples are taken in time order, then input row; points not in ``stale_after_s`` have
    no stale alarm.
    """
    ids = [pid for pid in arrays.point_ids if pid in stale_after_s]
    if not ids or arrays.point.shape[0] == 0:
        return []
    index = {pid: i for i, pid in enumerate(arrays.point_ids)}
    slot = np.full(len(arrays.point_ids), -1, dtype=np.int64)
    for k, pid in enumerate(ids):
        slot[index[pid]] = k
    tracker = StaleTracker(np.array([stale_after_s[pid] for pid in ids], dtype=np.float64))
    order = np.lexsort((arrays.row, arrays.ts))
    found = tracker.feed(slot[arrays.point[order]], arrays.ts[order], arrays.value[order],
                         arrays.good[order])
    end_ts, end_row = float(arrays.ts.max()), int(arrays.row.max()) + 1
    out = []
    for tr in found:
        s = int(order[int(tr["sample"])])
        ts, row = float(arrays.ts[s]), int(arrays.row[s])
        clear = tr["event"] < 0
        out.append((ts, row, _stale_obj(ids[int(tr["point"])], ts, clear,
                                        float(arrays.value[s]) if clear else None,
                                        float(tr["onset"]))))
    for tr in tracker.check(end_ts):  # raises only: a cleared point had a good sample
        out.append((end_ts, end_row, _stale_obj(ids[int(tr["point"])], end_ts, tr["event"] < 0,
                                                None, float(tr["onset"]))))
    return out


def _stale_obj(pid: str, ts: float, clear: bool, value: float | None, onset: float) -> dict:
    return {"ts": iso_ms(round(ts * 1000)), "point": pid, "limit": STALE,
            "event": "clear" if clear else "raise", "value": value,
            "onset": iso_ms(round(onset * 1000))}
