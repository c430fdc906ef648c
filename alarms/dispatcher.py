"""Delivers outbox rows: at-least-once, in order per (channel, dedup_key), with backoff.

The dispatcher owns a connection of its own to the database file and keeps no state in
memory that matters: a row is marked sent only after the channel accepted it (so a crash
in between re-sends it: at-least-once), and a new Dispatcher on the same file carries on
with whatever is pending. A retrying row blocks later rows of its own (channel,
dedup_key) only; permanent failures (4xx other than 408/429, e.g. PagerDuty 400) are
marked ``failed`` with the error, visible to ``outbox.counts``, and not retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sqlite3
import threading
from collections.abc import Callable, Mapping

from alarms import outbox
from alarms.paging_channels import Delivery, deliver
from facility.config.schema import PagingCfg
from facility.domain.model import now_ms as _wall_ms

log = logging.getLogger(__name__)


class Dispatcher:
    """Asyncio delivery loop over the ``page_outbox`` table of ``db_path``."""

    def __init__(
        self, db_path: str, paging: PagingCfg, *, env: Mapping[str, str] | None = None,
        poll_s: float = 1.0, concurrency: int = 4, batch: int = 50,
        clock: Callable[[], int] = _wall_ms, rng: random.Random | None = None,
    ):
        """``env`` holds the secrets' environment (default ``os.environ``)."""
        self.db_path = db_path
        self.cfg = paging
        self.channels = {c.id: c for c in paging.channels}
        self.env = os.environ if env is None else env
        self.poll_s = poll_s
        self.batch = batch
        self.clock = clock
        self.rng = rng or random.Random()
        self._sem = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._stop = False
        self._conn: sqlite3.Connection | None = None
        self._db_lock = asyncio.Lock()
        # Held by the worker thread for each query and by close(): a cancelled task does not
        # stop its thread, and closing SQLite under a running statement crashes the process.
        self._thread_lock = threading.Lock()
        self._logged_failing: set[tuple[str, str]] = set()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.db_path, timeout=10.0, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout=10000")
        return self._conn

    async def _in_db(self, fn, *args):
        async with self._db_lock:
            return await asyncio.to_thread(self._locked, fn, *args)

    def _locked(self, fn, *args):
        with self._thread_lock:
            return fn(self._db(), *args)

    def wake(self) -> None:
        """Look at the outbox now (call after committing new pages)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask ``run`` to return after the current round."""
        self._stop = True
        self._wake.set()

    def close(self) -> None:
        """Close the database connection (after a query still running in its thread)."""
        with self._thread_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def run_once(self) -> int:
        """Attempt every due head row once; returns the number of attempts made."""
        rows = await self._in_db(outbox.due, self.clock(), self.batch)
        if not rows:
            return 0
        await asyncio.gather(*(self._send(r) for r in rows))
        return len(rows)

    async def run(self) -> None:
        """Deliver until ``stop()``; sleeps ``poll_s`` (or until ``wake()``) when idle."""
        while not self._stop:
            # Clear before looking, not after: a wake() that arrives while a round is
            # reading the outbox must start the next round instead of being lost for poll_s.
            self._wake.clear()
            try:
                n = await self.run_once()
            except sqlite3.Error as e:  # locked too long, etc.: log and try again
                log.warning("paging outbox: %s", e)
                n = 0
            if n == 0 and not self._stop:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                except TimeoutError:
                    pass
        self.close()

    async def _send(self, row: tuple) -> None:
        row_id, channel, key, _seq, _action, payload, attempts = row
        ch = self.channels.get(channel)
        async with self._sem:
            if ch is None:
                result = Delivery(False, error=f"channel {channel!r} is not configured")
            else:
                try:
                    result = await asyncio.to_thread(deliver, ch, json.loads(payload), self.env)
                except Exception as e:  # noqa: BLE001 - a bug in a channel must not kill paging
                    result = Delivery(False, retry=True, error=f"{type(e).__name__}: {e}")
        now = self.clock()
        if result.ok:
            await self._in_db(outbox.mark_sent, row_id, now)
            if (channel, key) in self._logged_failing:
                self._logged_failing.discard((channel, key))
                log.info("paging %s %s delivered after %d attempts", channel, key, attempts + 1)
        elif result.retry:
            await self._in_db(outbox.mark_retry, row_id, attempts, result.error, now,
                              self.cfg.base_backoff_s, self.cfg.max_backoff_s, self.rng,
                              result.retry_after_s)
            level = logging.DEBUG if (channel, key) in self._logged_failing else logging.ERROR
            self._logged_failing.add((channel, key))
            log.log(level, "paging %s %s: %s (will retry)", channel, key, result.error)
        else:
            await self._in_db(outbox.mark_failed, row_id, result.error)
            log.error("paging %s %s failed permanently: %s", channel, key, result.error)
