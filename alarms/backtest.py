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
    run = Backtest(rules_with_keys, arrays.point_ids, include_rule, stale_after_s)
    return run.feed(arrays) + run.finish()


class Backtest:
    """:func:`run_backtest` over a stream of chunks (a day from the store is 50 M samples).

    One ``Engine`` and one ``StaleTracker`` carry their state from chunk to chunk, as the
    live service's do from cycle to cycle. Each :meth:`feed` returns its chunk's
    transitions in the documented order; when the chunks follow one another in time and
    ``row`` (the chunk's ``SampleArrays.row``) keeps growing, as the store's reads do, the
    chunks' lists joined, then :meth:`finish` (stale found at the end of the input), equal
    one :func:`run_backtest` over all the samples at once.
    """

    def __init__(self, rules_with_keys: Sequence[tuple], point_ids: Sequence[str],
                 include_rule: bool = False,
                 stale_after_s: Mapping[str, float] | None = None) -> None:
        self.point_ids = tuple(point_ids)
        index = {pid: i for i, pid in enumerate(self.point_ids)}
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
        self.engine = Engine(rules, keys=keys)
        self.names, self.pids, self.include_rule = names, pids, include_rule
        self.rank = {name: i for i, name in enumerate(LIMIT_NAMES)}
        self.stale_ids = [pid for pid in self.point_ids if pid in (stale_after_s or {})]
        self.tracker = None
        if self.stale_ids:
            slot = np.full(len(self.point_ids), -1, dtype=np.int64)
            for k, pid in enumerate(self.stale_ids):
                slot[index[pid]] = k
            self.slot = slot
            self.tracker = StaleTracker(np.array([stale_after_s[pid] for pid in self.stale_ids],
                                                 dtype=np.float64))
        self.end: tuple[float, int] | None = None  # last input time, row after the last
        self.samples = 0

    def feed(self, arrays: SampleArrays) -> list[dict]:
        """The transitions of one chunk, in order."""
        n = arrays.point.shape[0]
        if n == 0:
            return []
        self.samples += n
        end_ts, end_row = float(arrays.ts.max()), int(arrays.row.max()) + 1
        if self.end is not None:
            end_ts, end_row = max(end_ts, self.end[0]), max(end_row, self.end[1])
        self.end = (end_ts, end_row)
        tr = self.engine.feed(arrays.point, arrays.ts, arrays.value, arrays.good)
        names, pids, rank = self.names, self.pids, self.rank
        keyed = []
        if len(tr):
            smp, rule = tr["sample"], tr["rule"]
            order = sorted(range(len(tr)), key=lambda j: (
                arrays.ts[smp[j]], arrays.row[smp[j]], rank[names[rule[j]]], rule[j]))
            for j in order:
                r, s = int(rule[j]), int(smp[j])
                obj = {
                    "ts": iso_ms(round(float(arrays.ts[s]) * 1000)),
                    "point": pids[r],
                    "limit": names[r],
                    "event": "raise" if tr["event"][j] > 0 else "clear",
                    "value": float(arrays.value[s]),
                    "onset": iso_ms(round(float(tr["onset"][j]) * 1000)),
                }
                if self.include_rule:
                    obj["rule"] = r
                keyed.append(((float(arrays.ts[s]), int(arrays.row[s]), rank[names[r]]), obj))
        if self.tracker is not None:
            stale = self._stale(arrays)
            if stale:
                keyed += [((ts, row, len(LIMIT_NAMES)), obj) for ts, row, obj in stale]
                keyed.sort(key=lambda kv: kv[0])  # stable: each source keeps its own order
        return [obj for _key, obj in keyed]

    def _stale(self, arrays: SampleArrays) -> list[tuple[float, int, dict]]:
        order = np.lexsort((arrays.row, arrays.ts))
        if (order[1:] > order[:-1]).all():
            order = None  # already in time order (the store's reads): no copies
        pt = arrays.point if order is None else arrays.point[order]
        found = self.tracker.feed(
            self.slot[pt], *((arrays.ts, arrays.value, arrays.good) if order is None else
                             (arrays.ts[order], arrays.value[order], arrays.good[order])))
        out = []
        for tr in found:
            s = int(tr["sample"]) if order is None else int(order[int(tr["sample"])])
            ts, row = float(arrays.ts[s]), int(arrays.row[s])
            clear = tr["event"] < 0
            out.append((ts, row, _stale_obj(self.stale_ids[int(tr["point"])], ts, clear,
                                            float(arrays.value[s]) if clear else None,
                                            float(tr["onset"]))))
        return out

    def finish(self) -> list[dict]:
        """Stale raises found at the end of the input (after its last row)."""
        if self.tracker is None or self.end is None:
            return []
        end_ts = self.end[0]
        return [_stale_obj(self.stale_ids[int(tr["point"])], end_ts, tr["event"] < 0, None,
                           float(tr["onset"]))
                for tr in self.tracker.check(end_ts)]  # raises only: a cleared point had a good sample


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
    run = Backtest([], arrays.point_ids, stale_after_s=stale_after_s)
    if run.tracker is None or arrays.point.shape[0] == 0:
        return []
    out = run._stale(arrays)
    end_ts, end_row = float(arrays.ts.max()), int(arrays.row.max()) + 1
    return out + [(end_ts, end_row, obj) for obj in run.finish()]


def _stale_obj(pid: str, ts: float, clear: bool, value: float | None, onset: float) -> dict:
    return {"ts": iso_ms(round(ts * 1000)), "point": pid, "limit": STALE,
            "event": "clear" if clear else "raise", "value": value,
            "onset": iso_ms(round(onset * 1000))}
