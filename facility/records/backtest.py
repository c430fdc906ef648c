"""``facility backtest``: the configured limits over recorded samples, same kernels as live.

Samples come from a CSV (``ts,point,value[,quality]``) or from the store's history
(``--from/--to``, read in short transactions). Rules and stale times come from the
catalogue, the very objects the service runs. GMP particle limits exist per mode; the
backtest applies each zone's configured ``occupancy`` mode (the live service follows the
mode recorded in the database instead). Stale alarms are raised as docs/ARCHITECTURE.md "Stale" says
for a backtest: at the next input time, or at the end of the input.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

import numpy as np

from alarms.backtest import Backtest, SampleArrays, read_samples_csv, run_backtest
from alarms.engine import Rule
from alarms.rules import with_alert_fraction
from facility.catalogue import build_catalogue
from facility.config.schema import Config
from facility.domain.errors import UsageError
from facility.domain.model import Quality


def compiled(cfg: Config) -> tuple[list[tuple], list[str], dict[str, float]]:
    """(point_id, limit_name, Rule, key) for every rule in the zone's configured mode, every
    point id, and the stale time of every point with a stale alarm."""
    cat = build_catalogue(cfg)
    occupancy = {z.id: z.occupancy for z in cfg.zones}
    out = []
    for r in cat.rules:
        if r.mode is not None and r.mode != occupancy.get(r.zone):
            continue
        rule = Rule(point=0, kind=r.side, limit=r.limit, deadband=r.deadband,
                    on_delay_s=r.on_delay_s, off_delay_s=r.off_delay_s, m_of_n=r.m_of_n,
                    max_gap_s=r.max_gap_s)
        out.append((r.point, r.limit_name, rule, r.key))
    return out, [p.id for p in cat.points], cat.stale_points()


CHUNK_ROWS = 1_000_000
"""Samples per chunk of a backtest from the store: ~25 MB of columns and the engine's output
for them, so memory stays bounded whatever the range (at most about 1 GB for a day of 50 M samples)."""


def store_chunks(store, from_ms: int, to_ms: int, ids: list[str],
                 chunk_rows: int = CHUNK_ROWS, timing: dict | None = None
                 ) -> Iterator[SampleArrays]:
    """The store's samples in ``[from_ms, to_ms)`` as engine input, chunk by chunk: columnar
    reads (``Store.iter_sample_arrays``), store point ids mapped to indexes of ``ids`` (rows of
    points not in the configuration dropped), ``row`` numbering the kept rows across chunks.
    ``timing["read_s"]`` accumulates the time spent reading and converting."""
    import time

    index = {pid: i for i, pid in enumerate(ids)}
    to_index = np.full(1, -1, dtype=np.int64)
    row0 = 0
    it = store.iter_sample_arrays(from_ms, to_ms, chunk_rows)
    while True:
        t = time.perf_counter()
        chunk = next(it, None)
        if chunk is None:
            break
        top = int(chunk.point_id.max())
        if top >= to_index.shape[0]:  # points by store id (registered ones, new ones too)
            to_index = np.full(top + 1, -1, dtype=np.int64)
            for p in store.points():
                if p["id"] <= top and p["point"] in index:
                    to_index[p["id"]] = index[p["point"]]
        point = to_index[chunk.point_id]
        keep = point >= 0
        if not keep.all():
            chunk = type(chunk)(*(c[keep] for c in chunk))
            point = point[keep]
        n = point.shape[0]
        q, v = chunk.quality, chunk.value
        arrays = SampleArrays(point_ids=tuple(ids), point=point, ts=chunk.ts_ms / 1000.0,
                              value=v, quality=q, good=(q == int(Quality.GOOD)) & np.isfinite(v),
                              row=np.arange(row0, row0 + n, dtype=np.int64))
        row0 += n
        if timing is not None:
            timing["read_s"] = timing.get("read_s", 0.0) + time.perf_counter() - t
        if n:
            yield arrays


def run_from_store(store, rules: list[tuple], ids: list[str], stale_after_s: dict[str, float],
                   from_ms: int, to_ms: int, chunk_rows: int = CHUNK_ROWS,
                   timing: dict | None = None) -> Iterator[dict]:
    """Backtest transitions over the store's samples, streamed: one chunk in memory at a time
    (``alarms.backtest.Backtest``), the same objects in the same order as one run over all.
    ``timing`` gets ``read_s`` (reading) and ``engine_s`` (rules, stale, JSON objects)."""
    import time

    run = Backtest(rules, ids, stale_after_s=stale_after_s)
    for arrays in store_chunks(store, from_ms, to_ms, ids, chunk_rows, timing):
        t = time.perf_counter()
        out = run.feed(arrays)
        if timing is not None:
            timing["engine_s"] = timing.get("engine_s", 0.0) + time.perf_counter() - t
        yield from out
    yield from run.finish()
    if timing is not None:
        timing["samples"] = run.samples


def backtest_command(cfg: Config, *, samples_file: str | None, from_: str | None,
                     to: str | None, alert_fraction: float | None,
                     as_json: bool) -> Iterator[dict | str]:
    """Transitions as JSON objects (``as_json``) or one readable line each."""
    if alert_fraction is not None:
        if not 0 < alert_fraction < 1:
            raise UsageError(f"--alert-fraction {alert_fraction:g} must be between 0 and 1")
        cfg = with_alert_fraction(cfg, alert_fraction)
    rules, ids, stale_after_s = compiled(cfg)
    if samples_file:
        try:
            arrays = read_samples_csv(samples_file, ids)
        except FileNotFoundError:
            raise UsageError(f"--samples {samples_file}: file not found") from None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    else:
        from facility.domain.timeparse import TimeError, parse_time

        tz = cfg.sites[0].timezone
        try:
            start, end = parse_time(from_, tz), parse_time(to, tz, end=True)
        except TimeError as exc:
            raise UsageError(str(exc)) from None
        from facility.store import Store  # raises StoreMissing (exit 3) without a database

        if sys.stderr.isatty():
            print(f"evaluating the stored samples against {len(rules)} rules ...",
                  file=sys.stderr)
        with Store(cfg.db_path, readonly=True) as store:
            # a rule whose point has no sample never transitions: no need to know which
            yield from _lines(run_from_store(store, rules, ids, stale_after_s, start, end),
                              as_json)
        return
    used = set(arrays.point_ids[i] for i in np.unique(arrays.point)) if len(arrays.point) else set()
    rules = [r for r in rules if r[0] in used]
    if sys.stderr.isatty():
        print(f"evaluating {len(arrays.point)} samples against {len(rules)} rules ...",
              file=sys.stderr)
    yield from _lines(run_backtest(rules, arrays, stale_after_s=stale_after_s), as_json)


def _lines(objs: Iterable[dict], as_json: bool) -> Iterator[dict | str]:
    for obj in objs:
        value = "none" if obj["value"] is None else f"{obj['value']:g}"
        yield obj if as_json else (f"{obj['ts']} {obj['event']:<5} {obj['point']} {obj['limit']}"
                                   f" value {value} onset {obj['onset']}")
