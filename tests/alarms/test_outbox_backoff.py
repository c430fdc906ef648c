"""Outbox retry backoff: exponential with jitter, capped at ``max_backoff_s``.

docs/ARCHITECTURE.md "Paging": a transient failure is retried after
min(max_backoff_s, base_backoff_s x 2^(attempts-1)) x U(0.5, 1); a channel's Retry-After
is honoured, but never beyond the cap, so one answer cannot park a page for an hour.
Jitter comes from a seeded ``random.Random``.
"""

from __future__ import annotations

import random
import sqlite3

import pytest

from alarms import outbox


def spread(attempts, base_s, max_s, retry_after_s=None, n=400):
    rng = random.Random(20240611)
    return [outbox.backoff_ms(attempts, base_s, max_s, rng, retry_after_s) for _ in range(n)]


@pytest.mark.parametrize("attempts,nominal_ms", [(1, 2_000), (2, 4_000), (3, 8_000),
                                                 (4, 16_000), (0, 2_000)])
def test_exponential_with_jitter_between_half_and_full(attempts, nominal_ms):
    got = spread(attempts, 2.0, 3600.0)
    assert min(got) >= nominal_ms // 2 and max(got) <= nominal_ms
    # the jitter covers the range, not one point of it
    assert min(got) < nominal_ms * 0.55 and max(got) > nominal_ms * 0.95


@pytest.mark.parametrize("attempts", [6, 7, 12, 40])
def test_capped_at_max_backoff(attempts):
    got = spread(attempts, 2.0, 60.0)
    assert max(got) <= 60_000
    assert min(got) >= 30_000  # the cap applies before the jitter
    assert max(got) > 57_000


def test_retry_after_is_honoured_up_to_the_cap():
    # Retry-After 20 s beats a 1-2 s backoff
    assert set(spread(1, 2.0, 60.0, retry_after_s=20.0)) == {20_000}
    # ... but a Retry-After of an hour is capped at max_backoff_s
    assert set(spread(1, 2.0, 60.0, retry_after_s=3600.0)) == {60_000}
    # a shorter Retry-After than the backoff does not shorten it
    got = spread(5, 2.0, 60.0, retry_after_s=1.0)
    assert min(got) >= 16_000 and max(got) <= 32_000


def test_mark_retry_schedules_the_next_try_and_counts_the_attempt():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    outbox.apply_migrations(conn)
    now = 1_700_000_000_000
    rid = outbox.put(conn, "hook", "I:A:x#1", "trigger", {"summary": "x"}, now)
    nxt = outbox.mark_retry(conn, rid, 9, "HTTP 503", now, base_s=2.0, max_s=60.0,
                            rng=random.Random(1))
    # the tenth attempt would wait 2 x 2^9 s: capped to 30-60 s
    assert now + 30_000 <= nxt <= now + 60_000
    assert conn.execute("SELECT attempts, next_try_ms, last_error, state FROM page_outbox"
                        ).fetchone() == (1, nxt, "HTTP 503", "pending")
    assert outbox.due(conn, now) == []
    assert [r[0] for r in outbox.due(conn, nxt)] == [rid]
    nxt2 = outbox.mark_retry(conn, rid, 0, "timeout", now, base_s=2.0, max_s=60.0,
                             rng=random.Random(1), retry_after_s=120.0)
    assert nxt2 == now + 60_000
