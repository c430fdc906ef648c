"""Alarm floods per site (ISA-18.2, ISA-18.2 / EEMUA 191: more than 10 alarms in 10 min).

docs/ARCHITECTURE.md "Paging" ("Flood control"): a site is in flood once more than
``flood_max`` new alarms below critical arrived within ``flood_window_s``; the flood ends
when the number in the window falls below ``flood_max / 2`` (a hysteresis, so one quiet
moment inside a flood does not end it and the next alarm does not start it again). During a
flood new alarms below critical are folded: they are recorded, not paged one by one, and
summary pages give the counts per priority and room. Critical alarms are never folded and
never counted.

State lives in the ``page_flood`` (one row per new alarm) and ``page_flood_episode`` (one
row per flood) tables of ``alarms.outbox``, written in the caller's transaction. Summaries
of one flood share a dedup key ``<installation>:flood:<site>#<start ms>``: the first goes
``group_s`` after the first fold, later ones at most every ``min_repage_s`` while alarms
keep being folded, a last one when the flood ends if any fold was not summarised yet, and
then a ``resolve`` so the flood's incident closes.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass

from facility.domain.display import local_time
from facility.domain.model import iso_ms
from facility.domain.vocab import PRIORITIES

SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
LIST_MAX = 20  # alarm ids a summary names; the counts cover every one


@dataclass(frozen=True, slots=True)
class Page:
    """One message for the outbox: to ``channels``, under ``dedup_key``."""

    channels: tuple[str, ...]
    dedup_key: str
    action: str
    message: dict


def site_key(site: str | None) -> str:
    """Alarms without a site (none below critical today) are one installation-wide group."""
    return site or ""


def _count(conn: sqlite3.Connection, site: str, now_ms: int, window_ms: int) -> int:
    (n,) = conn.execute("SELECT COUNT(*) FROM page_flood WHERE site=? AND ts_ms > ?",
                        (site, now_ms - window_ms)).fetchone()
    return int(n)


def _active(conn: sqlite3.Connection, site: str) -> int | None:
    row = conn.execute("SELECT started_ms FROM page_flood_episode WHERE site=? AND ended_ms IS"
                       " NULL", (site,)).fetchone()
    return row[0] if row else None


def below_half(n: int, flood_max: int) -> bool:
    """The end of a flood: fewer than half of ``flood_max`` in the window."""
    return n < flood_max / 2


def fold_episode(conn: sqlite3.Connection, site: str | None, now_ms: int, *, flood_max: int,
                 window_ms: int, label: str, timezone: str) -> int | None:
    """Whether a new alarm below critical at ``site`` is folded: the flood's start, or None.

    Ends a flood whose rate fell below half before deciding, and starts one when this alarm
    is the one above ``flood_max``.
    """
    site = site_key(site)
    n = _count(conn, site, now_ms, window_ms)
    episode = _active(conn, site)
    if episode is not None and below_half(n, flood_max):
        conn.execute("UPDATE page_flood_episode SET ended_ms=? WHERE site=? AND started_ms=?",
                     (now_ms, site, episode))
        episode = None
    if episode is None and n + 1 > flood_max:
        episode = now_ms
        conn.execute("INSERT OR IGNORE INTO page_flood_episode (site, started_ms, label,"
                     " timezone) VALUES (?,?,?,?)", (site, episode, label, timezone))
    return episode


def record(conn: sqlite3.Connection, site: str | None, key: str, priority: str,
           zone: str | None, channels: list[str], now_ms: int, episode: int | None) -> None:
    """Count one new alarm below critical (``episode`` set: folded into that flood)."""
    conn.execute("INSERT INTO page_flood (ts_ms, dedup_key, priority, zone, channels, folded,"
                 " episode_ms, site) VALUES (?,?,?,?,?,?,?,?)",
                 (now_ms, key, priority, zone, json.dumps(channels), int(episode is not None),
                  episode, site_key(site)))


def in_flood(conn: sqlite3.Connection) -> dict[str, int]:
    """Sites in flood now -> when their flood started (for readers; "" = no site)."""
    try:
        return dict(conn.execute("SELECT site, started_ms FROM page_flood_episode WHERE"
                                 " ended_ms IS NULL"))
    except sqlite3.OperationalError:  # no service has created the paging tables yet
        return {}


def tick(conn: sqlite3.Connection, now_ms: int, *, installation: str, flood_max: int,
         window_ms: int, group_ms: int, repage_ms: int) -> list[Page]:
    """End floods whose rate fell below half and send the summaries that are due."""
    pages: list[Page] = []
    episodes = conn.execute(
        "SELECT site, started_ms, ended_ms, summary_ms, channels, label, timezone"
        " FROM page_flood_episode WHERE closed=0 ORDER BY started_ms").fetchall()
    for site, started, ended, summary_ms, sent_to, label, tz in episodes:
        if ended is None and below_half(_count(conn, site, now_ms, window_ms), flood_max):
            ended = now_ms
            conn.execute("UPDATE page_flood_episode SET ended_ms=? WHERE site=? AND"
                         " started_ms=?", (ended, site, started))
        folds = conn.execute("SELECT ts_ms, dedup_key, priority, zone, channels, summarised"
                             " FROM page_flood WHERE folded=1 AND site=? AND episode_ms=?"
                             " ORDER BY id", (site, started)).fetchall()
        fresh = [f for f in folds if not f[5]]
        key = f"{installation}:flood:{site or '-'}#{started}"
        due = bool(fresh) and (
            ended is not None
            or (summary_ms is None and now_ms >= fresh[0][0] + group_ms)
            or (summary_ms is not None and now_ms >= summary_ms + repage_ms))
        channels = list(json.loads(sent_to))
        if due:
            msg = _summary(installation, key, site, label, tz, started, ended, folds,
                           len(fresh), now_ms)
            chans: list[str] = []
            for f in folds:
                chans += [c for c in json.loads(f[4]) if c not in chans]
            pages += [Page((c,), key, "trigger", msg) for c in chans]
            channels += [c for c in chans if c not in channels]
            conn.execute("UPDATE page_flood SET summarised=1 WHERE folded=1 AND site=? AND"
                         " episode_ms=?", (site, started))
            conn.execute("UPDATE page_flood_episode SET summary_ms=?, channels=? WHERE site=?"
                         " AND started_ms=?", (now_ms, json.dumps(channels), site, started))
        if ended is not None:
            if channels:
                msg = _over(installation, key, site, label, tz, started, ended, len(folds),
                            now_ms)
                pages += [Page((c,), key, "resolve", msg) for c in channels]
            conn.execute("UPDATE page_flood_episode SET closed=1 WHERE site=? AND started_ms=?",
                         (site, started))
    # rows older than the window count for nothing any more, once their flood is closed
    conn.execute(
        "DELETE FROM page_flood WHERE ts_ms <= ? AND (folded=0 OR NOT EXISTS (SELECT 1 FROM"
        " page_flood_episode e WHERE e.site=page_flood.site AND e.started_ms="
        "page_flood.episode_ms AND e.closed=0))", (now_ms - window_ms,))
    return pages


def _where(label: str | None, site: str) -> str:
    return label or site or "the installation"


def _summary(installation: str, key: str, site: str, label: str | None, tz: str | None,
             started: int, ended: int | None, folds: list[tuple], new: int,
             now_ms: int) -> dict:
    by_prio = Counter(f[2] for f in folds)
    by_zone = Counter(f[3] or "-" for f in folds)
    prios = ", ".join(f"{by_prio[p]} {p}" for p in PRIORITIES if by_prio[p])
    zones = ", ".join(f"{z} {n}" for z, n in sorted(by_zone.items()))
    since = local_time(started, tz or "UTC")
    text = (f"alarm flood at {_where(label, site)}: {len(folds)} alarms below critical not"
            f" paged one by one since {since} ({prios}; rooms: {zones})")
    if ended is not None:
        text += f"; flood over at {local_time(ended, tz or 'UTC')}"
    alarms = sorted({f[1].split(":", 1)[-1] for f in folds})
    details = [["site", _where(label, site)], ["flood since", since],
               ["alarms not paged", len(folds)], ["new since the last summary", new],
               ["by priority", prios], ["by room", zones],
               ["alarms", ", ".join(alarms[:LIST_MAX])
                + (f" and {len(alarms) - LIST_MAX} more" if len(alarms) > LIST_MAX else "")],
               ["dedup key", key]]
    top = next(p for p in PRIORITIES if by_prio[p])
    return {
        "event": "flood_summary", "action": "trigger", "dedup_key": key, "summary": text,
        "severity": SEVERITY[top], "source": installation, "timestamp": iso_ms(now_ms),
        "component": "paging", "group": site or None, "class": "flood", "details": details,
        "custom_details": {"count": len(folds), "by_priority": dict(by_prio),
                           "by_zone": dict(by_zone), "site": site or None,
                           "new": new, "ended": ended is not None},
    }


def _over(installation: str, key: str, site: str, label: str | None, tz: str | None,
          started: int, ended: int, total: int, now_ms: int) -> dict:
    where = _where(label, site)
    text = (f"alarm flood at {where} over at {local_time(ended, tz or 'UTC')}: {total} alarms"
            f" were not paged one by one since {local_time(started, tz or 'UTC')}")
    return {
        "event": "flood_over", "action": "resolve", "dedup_key": key, "summary": text,
        "severity": "info", "source": installation, "timestamp": iso_ms(now_ms),
        "component": "paging", "group": site or None, "class": "flood",
        "details": [["site", where], ["flood over", local_time(ended, tz or "UTC")],
                    ["alarms not paged", total], ["dedup key", key]],
        "custom_details": {"count": total, "site": site or None, "ended": True},
    }
