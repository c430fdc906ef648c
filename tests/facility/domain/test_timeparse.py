"""CLI times: site zone for bare dates/times, half-open ranges, --to date = end of day."""

from datetime import datetime, timezone

import pytest

from facility.domain.timeparse import TimeError, local_iso, parse_range, parse_time

HK = "Asia/Hong_Kong"


def utc(*a):
    return int(datetime(*a, tzinfo=timezone.utc).timestamp() * 1000)


def test_bare_date_is_site_midnight():
    assert parse_time("2025-03-01", HK) == utc(2025, 2, 28, 16)


def test_to_date_is_end_of_that_day():
    assert parse_range("2025-03-01", "2025-03-01", HK) == (utc(2025, 2, 28, 16), utc(2025, 3, 1, 16))


def test_bare_datetime_in_site_zone_and_explicit_offsets():
    assert parse_time("2025-03-01T08:00", HK) == utc(2025, 3, 1, 0)
    assert parse_time("2025-03-01 08:00:00", HK) == utc(2025, 3, 1, 0)
    assert parse_time("2025-03-01T08:00:00Z", HK) == utc(2025, 3, 1, 8)
    assert parse_time("2025-03-01T08:00:00+01:00", HK) == utc(2025, 3, 1, 7)
    assert parse_time("2025-03-01T08:00", HK, end=True) == utc(2025, 3, 1, 0)  # only dates move


def test_bare_time_is_today_in_site_zone():
    now = datetime(2025, 3, 1, 20, 0, tzinfo=timezone.utc)  # already 2 March in Hong Kong
    assert parse_time("08:30", HK, now=now) == utc(2025, 3, 2, 0, 30)


def test_unix_seconds_and_errors():
    assert parse_time("1740787200", HK) == 1740787200000
    with pytest.raises(TimeError, match="not a time"):
        parse_time("yesterday", HK)
    with pytest.raises(TimeError, match="empty"):
        parse_range("2025-03-02", "2025-03-01T10:00", HK)
    with pytest.raises(TimeError, match="IANA"):
        parse_time("2025-03-01", "Mars/Olympus")


def test_local_iso_has_offset():
    assert local_iso(utc(2025, 3, 1, 0), HK) == "2025-03-01T08:00:00+08:00"
