"""The replay of a backlog is paced by central (``Node Control/History rate``, AIMD on its own
lag), so live data keeps arriving within a second while tens of thousands of historical
samples drain, with a high ceiling (``[uplink] history_rate`` 50 000 samples/s).

The controller (:class:`facility.campus.central.Pace`) is checked on its own with the times
it is given; the whole path on a real mosquitto with the site database written through the
real ``Store``, uplink and central in threads of the test.
"""

from __future__ import annotations

import pytest

from facility.campus.central import PACE_HOLD_S, PACE_STEP_S, Central, Pace, mirror_path
from facility.campus.uplink import Uplink
from facility.config import load_config
from facility.domain.model import PointInfo, Quality, Sample, now_ms
from facility.store import Cycle, Store
from tests.fixtures.campus import Background, poll, site_config
from tests.fixtures.config import facility_toml
from tests.fixtures.wait import hold

TARGET_MS = 250.0
POINTS = [PointInfo(f"D{i % 5}.p{i}", f"D{i % 5}", "S", "Z1", "pressure_diff", "Pa", 1)
          for i in range(100)]
BACKLOG_CYCLES = 400  # x 100 points: 40 000 samples


def test_pace_grows_additively_and_halves_above_the_target():
    """AIMD within [floor, ceiling]: it grows only while the edge uses the rate and the lag
    stays under the target, halves when the live lag's p95 or the inbox wait exceeds it,
    and counts only lags measured after a cut towards the next one. Lags count above the
    quickest one seen, so the edge's clock running behind central's does not throttle."""
    p = Pace(ceiling=50_000.0, floor=100.0, rate=5_000.0)
    p.lags.append((-9.0, 1_020.0))  # the quickest lag seen: the edge's clock is 1 s behind
    assert p.update(0.0, TARGET_MS, 0.0) == 5_000.0  # nothing replayed: no reason to grow
    p.history.append((0.9, 5_000))
    assert p.update(1.0, TARGET_MS, 0.0) == pytest.approx(5_000.0 + 50_000.0 / PACE_STEP_S)
    p.lags.append((1.2, 1_400.0))
    assert p.update(1.5, TARGET_MS, 0.0) == pytest.approx(3_750.0)  # halved
    p.lags.append((1.4, 1_900.0))  # measured before the cut: the old rate's
    assert p.update(1.5 + PACE_HOLD_S, TARGET_MS, 0.0) == pytest.approx(3_750.0)
    p.lags.append((2.6, 1_400.0))
    assert p.update(2.7, TARGET_MS, 0.0) == pytest.approx(1_875.0)
    assert p.update(2.8, TARGET_MS, 0.0) == pytest.approx(1_875.0)  # held after a cut
    for k in range(20):  # the inbox waits too long, again and again: down to the floor
        assert p.update(10.0 + k * PACE_HOLD_S, TARGET_MS, 2 * TARGET_MS) >= 100.0
    assert p.rate == 100.0
    t = 40.0
    for k in range(200):  # quick lags and a busy replay: up to the ceiling, never above
        t += 0.5
        p.lags.append((t, 1_050.0))  # 30 ms more than the quickest: under the target
        p.history.append((t, int(p.rate)))
        p.update(t, TARGET_MS, 0.0)
    assert p.rate == 50_000.0
    assert p.cuts == 2 + 5  # two for the lags, five from 1 875 to the floor


def _write(store: Store, ts: int, k: int) -> None:
    store.write_cycle(Cycle(samples=[Sample(p.id, ts, 10.0 + (k + i) % 13 * 0.1, Quality.GOOD)
                                     for i, p in enumerate(POINTS)]))


def test_live_cycles_arrive_within_a_second_while_a_backlog_replays(tmp_path, broker):
    """40 000 samples of backlog replay at up to 50 000 samples/s while the site writes a
    live cycle every 0.3 s: every backlog sample reaches the mirror (none lost), live cycles
    overtake the backlog, and live cycles take under a second (p95) from their commit at the
    edge to their commit in the mirror, the requirement for live data during a replay.
    Central paces the edge; on a busy machine it only slows the replay further."""
    cfg_path = site_config(tmp_path, broker.port, primary_host_id="central",
                           history_rate=50_000.0)
    scfg = load_config(str(cfg_path))
    store = Store(scfg.db_path)
    store.register_points(POINTS)
    _write(store, now_ms() - 7_200_000, 0)
    cpath = tmp_path / "central.toml"
    cpath.write_text(facility_toml(
        id="hk", storage={"path": "central/central.db"},
        central={"host_id": "central", "live_lag_ms": TARGET_MS,
                 "broker": {"host": "127.0.0.1", "port": broker.port, "keepalive_s": 5.0},
                 "sites": [{"id": "mec", "node_id": "MEC"}]}))
    ccfg = load_config(str(cpath))
    central = Central(ccfg)
    run = Background(central)
    m = central.mirrors[("hk", "MEC")]
    up = Background(Uplink(scfg))
    live: list[int] = []
    try:
        assert poll(lambda: m.born, 60)
        up.stop()  # the edge is away while the backlog accumulates
        base = now_ms() - 3_600_000
        for k in range(BACKLOG_CYCLES):
            _write(store, base + k * 1000, k)
        backlog = [cid for cid, _t, _d in store.cycle_digests(0, 10**6)][-BACKLOG_CYCLES:]
        up = Background(Uplink(scfg))
        assert poll(lambda: m.born and m.online, 60)
        while not all(c in m.received for c in backlog) and len(live) < 400:
            _write(store, now_ms(), len(live))  # the plant goes on, one cycle in 0.3 s
            live.append(store.cycle_head())
            hold(0.3)
        assert poll(lambda: all(c in m.received for c in backlog + live), 120), (
            sum(c in m.received for c in backlog), len(backlog))
        allowed = up.obj._allowed
    finally:
        up.stop()
        run.stop()
    want = sorted((r.point, r.ts_ms, r.value, r.quality) for r in store.iter_samples(0, 2**62))
    digest_ts = {cid: ts for cid, ts, _d in store.cycle_digests(0, 10**6)}
    store.close()
    with Store(mirror_path(ccfg, ccfg.central.sites[0]), readonly=True) as mirror:
        got = sorted((r.point, r.ts_ms, r.value, r.quality)
                     for r in mirror.iter_samples(0, 2**62))
        rows = {c: (h, r) for c, h, r in mirror.conn.execute(
            "SELECT edge_cycle, historical, received_ms FROM campus_cycles")}
    assert len(want) >= (BACKLOG_CYCLES + 1) * len(POINTS) and got == want  # none lost
    assert all(rows[c][0] == 1 for c in backlog)  # the backlog came as history
    last_history = max(rows[c][1] for c in backlog)
    overtaking = [c for c in live if rows[c][0] == 0 and rows[c][1] < last_history]
    assert len(overtaking) >= 3, (len(live), len(overtaking))  # live went first
    lat = sorted(rows[c][1] - digest_ts[c] for c in live if rows[c][0] == 0)
    assert len(lat) >= len(live) - 2  # a cycle committed during a birth may be history
    p95 = lat[int(0.95 * (len(lat) - 1))]
    assert p95 < 1000, lat  # edge commit to central commit, live, during the replay
    assert allowed is not None and 100.0 <= allowed <= 50_000.0  # central paced the edge
