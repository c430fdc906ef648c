"""Stale alarms in ``facility backtest`` (docs/ARCHITECTURE.md "Stale": in a backtest a point is found
stale at the next input time or at the end of the input).

The command runs for real (a subprocess on a written configuration); the kernel behind it
(``alarms.stale.StaleTracker.feed``) is checked against a plain-Python twin over any split
of its input.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alarms.stale import StaleTracker
from tests.fixtures.config import device, facility_toml, zone

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000  # s; 2023-11-14T22:13:20Z


def iso(t: float) -> str:
    from facility.domain.model import iso_ms

    return iso_ms(round((T0 + t) * 1000))


def _config(tmp_path) -> Path:
    # TH-1 scans every 2 s (stale after 6 s); TH-2 every 1 s with its own 10 s stale time.
    text = facility_toml(
        storage={"path": str(tmp_path / "fms.db")},
        zones=[zone("Z1", iso_class=7)],
        devices=[device("TH-1", 15041, zone="Z1", scan_s=2.0, timeout_s=1.0,
                        profile="th-transmitter"),
                 device("TH-2", 15042, zone="Z1", scan_s=1.0, timeout_s=0.5,
                        points=[{"name": "temperature", "table": "input", "address": 0,
                                 "type": "int16", "scale": 0.1, "unit": "C",
                                 "quantity": "temperature", "stale_after_s": 10.0}])],
        alarms={"defaults": {"temperature": {"action_high": {"limit": 25.0},
                                             "alert_high": {"limit": 24.0}}}})
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def _backtest(cfg: Path, csv: Path) -> list[dict]:
    run = subprocess.run([sys.executable, "-m", "facility", "backtest", "--samples", str(csv),
                          "--json", "--config", str(cfg)], capture_output=True, text=True,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_backtest_raises_stale_at_the_next_input_time_and_at_the_end(tmp_path):
    cfg = _config(tmp_path)
    csv = tmp_path / "s.csv"
    rows = [(0, "TH-1.temperature", "20"), (0, "TH-2.temperature", "20"),
            (4, "TH-1.temperature", "20"),
            (9, "TH-2.temperature", "20"),  # TH-1 stale since 4 + 6 = 10: not yet
            (11, "TH-2.temperature", "20"),  # the next input time after 10: found here
            (12, "TH-1.temperature", "26"),  # back: clears stale; raises both limits
            (14, "TH-1.temperature", ""),  # a failed read is not good data
            (30, "TH-2.temperature", "20")]  # TH-1 stale at 18, TH-2 at 21: found at 30
    csv.write_text("ts,point,value\n" + "".join(f"{T0 + t},{p},{v}\n" for t, p, v in rows))
    got = _backtest(cfg, csv)
    assert [(g["ts"], g["point"], g["limit"], g["event"], g["value"], g["onset"])
            for g in got] == [
        (iso(11), "TH-1.temperature", "stale", "raise", None, iso(10)),
        # limits first, then stale: the documented order for one input row
        (iso(12), "TH-1.temperature", "action_high", "raise", 26.0, iso(12)),
        (iso(12), "TH-1.temperature", "alert_high", "raise", 26.0, iso(12)),
        (iso(12), "TH-1.temperature", "stale", "clear", 26.0, iso(12)),
        (iso(30), "TH-1.temperature", "stale", "raise", None, iso(18)),
        (iso(30), "TH-2.temperature", "stale", "raise", None, iso(21)),
        (iso(30), "TH-2.temperature", "stale", "clear", 20.0, iso(30)),
    ]
    # the input need not be in time order (an export is grouped by point): same result
    csv.write_text("ts,point,value\n" + "".join(f"{T0 + t},{p},{v}\n" for t, p, v in
                                                 sorted(rows, key=lambda r: r[1])))
    assert _backtest(cfg, csv) == got
    csv.write_text("ts,point,value\n" + "".join(f"{T0 + t},{p},{v}\n" for t, p, v in rows))
    # the end of the input: TH-2 (last good at 30) is stale from 40, the last input time,
    # and no later input finds it, so the end does (after the last row)
    with csv.open("a") as fh:
        fh.write(f"{T0 + 40},TH-1.temperature,20\n")
    tail = _backtest(cfg, csv)[len(got):]
    assert [(g["ts"], g["point"], g["limit"], g["event"], g["value"]) for g in tail] == [
        (iso(40), "TH-1.temperature", "action_high", "clear", 20.0),
        (iso(40), "TH-1.temperature", "alert_high", "clear", 20.0),
        (iso(40), "TH-1.temperature", "stale", "clear", 20.0),
        (iso(40), "TH-2.temperature", "stale", "raise", None),
    ]
    assert tail[-1]["onset"] == iso(40)


def test_stale_objects_leave_the_limit_transitions_as_they_were(tmp_path):
    """Adding stale alarms changes no limit transition and the order among them."""
    from alarms.backtest import read_samples_csv, run_backtest
    from facility.config import load_config
    from facility.records.backtest import compiled

    cfg = load_config(str(_config(tmp_path)))
    rules, ids, stale_after_s = compiled(cfg)
    csv = tmp_path / "s.csv"
    values = [20, 24.5, 26, 26, 23, 0, 25.5, 20, 24.2, 30]
    csv.write_text("".join(f"{T0 + 7 * k},TH-1.temperature,{v}\n" for k, v in enumerate(values))
                   + f"{T0 + 1},TH-2.temperature,24.5\n")
    arrays = read_samples_csv(str(csv), ids)
    alone = run_backtest(rules, arrays)
    both = run_backtest(rules, arrays, stale_after_s=stale_after_s)
    assert [o for o in both if o["limit"] != "stale"] == alone
    assert len(alone) >= 6
    # every 7 s gap of TH-1 exceeds its 6 s stale time: each sample clears what the
    # previous gap raised, and the raise is found at the late sample itself
    stale = [(o["ts"], o["event"], o["onset"]) for o in both
             if o["limit"] == "stale" and o["point"] == "TH-1.temperature"]
    assert stale[:2] == [(iso(7), "raise", iso(6)), (iso(7), "clear", iso(7))]
    assert len(stale) == 2 * (len(values) - 1)


def stale_twin(stale_after_s, point, ts, good):
    """docs/ARCHITECTURE.md "Stale" for a backtest, literally: at every sample, first every point whose
    deadline lies before the newest input time is stale; then the sample's own point is
    stale if the sample is at or after its deadline (a good one exactly at it is in time);
    a good sample clears its point. Samples are taken in the order given."""
    n = len(stale_after_s)
    last, stale, out, clock = [math.nan] * n, [False] * n, [], -math.inf
    for i, (p, t, g) in enumerate(zip(point, ts, good)):
        if t > clock:
            clock = t
            for q in range(n):
                if not stale[q] and not math.isnan(last[q]) and last[q] + stale_after_s[q] < t:
                    stale[q] = True
                    out.append((q, i, 1, last[q] + stale_after_s[q]))
        deadline = last[p] + stale_after_s[p]
        if not stale[p] and not math.isnan(last[p]) and (t > deadline if g else t >= deadline):
            stale[p] = True
            out.append((p, i, 1, deadline))
        if g and (math.isnan(last[p]) or t > last[p]):
            last[p] = t
            if stale[p]:
                stale[p] = False
                out.append((p, i, -1, t))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 12), st.booleans()), max_size=60),
       st.lists(st.integers(0, 60), max_size=4))
def test_stale_kernel_equals_its_plain_python_twin_over_any_split(samples, cuts):
    stale_after_s = [3.0, 1.5, 6.0]
    t, point, ts, good = 0.0, [], [], []
    for p, step, g in samples:
        t += step / 2
        point.append(p)
        ts.append(t)
        good.append(g)
    expected = stale_twin(stale_after_s, point, ts, good)
    tracker = StaleTracker(np.array(stale_after_s))
    got = []
    edges = [0, *sorted(min(c, len(point)) for c in cuts), len(point)]
    for lo, hi in zip(edges, edges[1:]):
        if hi <= lo:
            continue
        out = tracker.feed(np.array(point[lo:hi], dtype=np.int64), np.array(ts[lo:hi]),
                           np.ones(hi - lo), np.array(good[lo:hi], dtype=bool))
        got += [(int(x["point"]), int(x["sample"]) + lo, int(x["event"]), float(x["onset"]))
                for x in out]
    assert got == expected
