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
from collections.abc import Iterator

import numpy as np

from alarms.backtest import SampleArrays, read_samples_csv, run_backtest
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


def _from_store(cfg: Config, from_ms: int, to_ms: int, ids: list[str]) -> SampleArrays:
    from facility.store import Store  # raises StoreMissing (exit 3) when there is no database

    index = {pid: i for i, pid in enumerate(ids)}
    pts, tss, vals, quals = [], [], [], []
    with Store(cfg.db_path, readonly=True) as store:
        for row in store.iter_samples(from_ms, to_ms):
            if row.point not in index:
                continue
            pts.append(index[row.point])
            tss.append(row.ts_ms / 1000.0)
            vals.append(np.nan if row.value is None else row.value)
            quals.append(row.quality)
    q = np.array(quals, dtype=np.int8)
    v = np.array(vals, dtype=np.float64)
    return SampleArrays(point_ids=tuple(ids), point=np.array(pts, dtype=np.int64),
                        ts=np.array(tss, dtype=np.float64), value=v, quality=q,
                        good=(q == int(Quality.GOOD)) & np.isfinite(v),
                        row=np.arange(len(pts), dtype=np.int64))


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
        arrays = _from_store(cfg, start, end, ids)
    used = set(arrays.point_ids[i] for i in np.unique(arrays.point)) if len(arrays.point) else set()
    rules = [r for r in rules if r[0] in used]
    if sys.stderr.isatty():
        print(f"evaluating {len(arrays.point)} samples against {len(rules)} rules ...",
              file=sys.stderr)
    for obj in run_backtest(rules, arrays, stale_after_s=stale_after_s):
        value = "none" if obj["value"] is None else f"{obj['value']:g}"
        yield obj if as_json else (f"{obj['ts']} {obj['event']:<5} {obj['point']} {obj['limit']}"
                                   f" value {value} onset {obj['onset']}")
