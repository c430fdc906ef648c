"""Zone mode schedules fire at their local times, once, only on their days."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from facility.service.operator_actions import _entry_times

HK = ZoneInfo("Asia/Hong_Kong")


def _ms(*args):
    return int(datetime(*args, tzinfo=HK).timestamp() * 1000)


def test_weekday_entry_fires_at_local_time_once():
    # Friday 2026-11-20 07:00 .. Monday 2026-11-23 09:00 (Hong Kong time)
    fired = _entry_times("Mon-Fri 08:00 in_operation", HK, _ms(2026, 11, 20, 7), _ms(2026, 11, 23, 9))
    assert fired == [_ms(2026, 11, 20, 8), _ms(2026, 11, 23, 8)]  # not Saturday or Sunday


def test_half_open_window_and_single_day():
    t = _ms(2026, 11, 21, 20)  # a Saturday
    assert _entry_times("Sat 20:00 at_rest", HK, t - 1, t) == [t]
    assert _entry_times("Sat 20:00 at_rest", HK, t, t + 60_000) == []  # (from, to]
    assert _entry_times("Sun 20:00 at_rest", HK, t - 1, t) == []
