"""A point's trend against its limits over 1 h, 24 h, 7 d and 30 d.

A real store holds 30 days of one particle counter, written in time order through the
store's writer (its minute and hourly aggregates are the store's own): a reading every 6 h
for a month, every 30 min for the last day, every minute for the last hour, and one
excursion beyond the action limit ten days ago. The trend screen must read minute buckets
for the hour and the day, hourly ones for the week and the month, and show the excursion
only in the spans that hold it.
"""

from __future__ import annotations

import os

import pytest

from facility.config import load_config
from facility.store import Cycle, Store
from tests.fixtures import sample_db
from tests.fixtures.wait import DEADLINE_S, pilot_until
from tui.app import make_app
from tui.data import SPANS
from tui.screens.trend import TrendScreen
from tui.widgets.live_table import LiveTable
from tui.widgets.trend import Trend

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "config.toml")
T0 = sample_db.T0
POINT = "MEC-PC-01.pc_0_5um"
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
SPIKE_MS = T0 - 10 * DAY
SPIKE = 9_000.0  # beyond the ISO class 5 action limit 3 520 /m³ (ISO 14644-1 Table 1)


def _times() -> list[int]:
    out = set(range(T0 - 30 * DAY, T0 - DAY, 6 * HOUR))
    out |= set(range(T0 - DAY, T0 - HOUR, 30 * MIN))
    out |= set(range(T0 - HOUR, T0, MIN))
    out.add(SPIKE_MS)
    return sorted(out)


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    cfg = load_config(CONFIG)
    path = str(tmp_path_factory.mktemp("trend") / "facility.db")
    from facility.domain.model import Sample

    with Store(path) as store:
        store.register_points(sample_db.all_infos(cfg))
        store.record_config(cfg.text or "# test", cfg.sha256 or "0" * 64)
        for i, ts in enumerate(_times()):
            value = SPIKE if ts == SPIKE_MS else 900.0 + (i % 7) * 50
            store.write_cycle(Cycle(samples=[Sample(POINT, ts, value)]))
        store.write_cycle(Cycle(service_state={"heartbeat": {"ts_ms": T0 - 1000, "pid": 1}}))
    return cfg, path


async def _until(pilot, cond, timeout: float = DEADLINE_S) -> None:
    await pilot_until(pilot, cond, timeout=timeout)


def _red(text) -> bool:
    return any("red" in str(s.style) and "█" in text.plain[s.start:s.end]
               or "red" in str(s.style) and "▬" in text.plain[s.start:s.end] for s in text.spans)


async def test_trend_at_each_span_from_minute_and_hourly_aggregates(month):
    cfg, path = month
    app = make_app(cfg, path, refresh_s=0.1, login="tmchan", clock=lambda: T0)
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: app.snapshot is not None)
        app.open_zone("MEC-LITHO")
        await _until(pilot, lambda: app.current_mode == "zone"
                     and POINT in app.screen.query_one("#points", LiveTable)._keys)
        table = app.screen.query_one("#points", LiveTable)
        table.select_key(POINT)
        await _until(pilot, lambda: table.current_key == POINT)
        await pilot.press("t")  # the trend of the highlighted point
        await _until(pilot, lambda: isinstance(app.screen, TrendScreen))
        screen = app.screen
        seen = {}
        for span in SPANS:  # 1h, 24h, 7d, 30d: t steps to the next longer one
            await _until(pilot, lambda span=span: screen.span == span
                         and app.snapshot.point_trend_of == (POINT, span)
                         and screen.drawn is app.snapshot)
            buckets = app.snapshot.point_trend
            step = HOUR if SPANS[span][1] == "1h" else MIN
            assert all(b["bucket_ms"] % step == 0 for b in buckets), span
            assert buckets[0]["bucket_ms"] >= T0 - SPANS[span][0] - step, span
            chart = screen.query_one(Trend).render()
            seen[span] = (len(buckets), max(b["max"] for b in buckets), _red(chart))
            assert "─" in chart.plain  # the limit lines are drawn
            note = str(screen.query_one("#trend-note").render())
            assert f"{len(buckets)} buckets" in note and "action_high" in note
            if span != "30d":
                await pilot.press("t")
        await pilot.press("escape")
        await _until(pilot, lambda: not isinstance(app.screen, TrendScreen))
        assert app.request.trend_point is None  # no more trend reads once it is closed
    # minute buckets: the hour's first one starts before the span (T0 is at :11 s) and is
    # left out; the day adds its 45 half-hourly readings after T0 - 24 h
    assert seen["1h"][0] == 59 and seen["24h"][0] == 60 + 45
    # hourly buckets: 6-hourly for 6 days, 23 hours of half-hourly readings, the last hour's 2
    assert seen["7d"][0] == 6 * 4 - 1 + 23 + 2 and seen["30d"][0] == 29 * 4 - 1 + 23 + 2
    assert [seen[s][1] == SPIKE for s in SPANS] == [False, False, False, True]
    assert [seen[s][2] for s in SPANS] == [False, False, False, True]  # beyond: red


async def test_room_alarm_history_from_the_zone_screen(tmp_path):
    cfg = load_config(CONFIG)
    db = str(tmp_path / "facility.db")
    sample_db.build(cfg, db)
    from tui.screens.history import ZoneHistoryScreen

    app = make_app(cfg, db, login="tmchan", clock=lambda: T0)
    async with app.run_test(size=(120, 30)) as pilot:
        await _until(pilot, lambda: app.snapshot is not None)
        app.open_zone("MEC-LITHO")
        await _until(pilot, lambda: app.current_mode == "zone" and app.screen.drawn is not None)
        await pilot.press("e")
        await _until(pilot, lambda: isinstance(app.screen, ZoneHistoryScreen)
                     and app.snapshot.zone_history_of == "MEC-LITHO"
                     and app.screen.drawn is app.snapshot)
        table = app.screen.query_one("#zone-history", LiveTable)
        alarms = {table.get_row_at(i)[1].plain for i in range(table.row_count)}
        # the three alarms of MEC-LITHO in the sample, and nothing of other rooms
        assert alarms == {"MEC-PC-01.pc_0_5um:alert_high", "MEC-PC-02.pc_0_5um:action_high",
                          "MEC-TH-01.temperature:alert_high"}
        ids = [e["id"] for e in app.snapshot.zone_history]
        assert ids == sorted(ids)  # as recorded in the snapshot; the newest first on screen
        assert table._keys[0] == str(ids[-1]) and len(ids) == table.row_count == 3
        await pilot.press("escape")
        await _until(pilot, lambda: not isinstance(app.screen, ZoneHistoryScreen))
        assert app.request.zone_history is None
