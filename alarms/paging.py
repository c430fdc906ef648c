"""Paging policy: routing, escalation, flood control and backfill, writing to the outbox.

DESIGN.md "Alarm lifecycle (ISA-18.2) and paging". ``Pager`` turns lifecycle ``Effect``s
into outbox rows *inside the caller's open transaction* (it never commits), so a page
exists if and only if the alarm event that caused it was committed. Delivery is the
``Dispatcher``'s job (``alarms.dispatcher``).

* ``dedup_key = <installation>:<alarm id>#<occurrence>``.
* Routing: the first ``Route`` whose priorities/sites/zones/kinds match (empty = any).
  Level ``i`` of that route is notified once the occurrence has stayed unacknowledged for
  ``levels[i].after_s`` (level 0 usually at 0 s); ``repeat_s`` re-notifies while it stays
  unacknowledged. Acknowledge/resolve/update go to every channel that got the trigger.
* Flood (ISA-18.2, standards.md §6): more than ``flood_max`` new non-critical pages within
  ``flood_window_s`` are folded; ``tick`` sends one summary page per flood episode with
  counts per priority and zone. Critical pages are never folded, nor counted.
* Backfill: see ``enqueue_backfill``.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from alarms import outbox
from alarms.lifecycle import AlarmState, Effect, State
from facility.config.schema import PagingCfg, Route
from facility.domain.model import iso_ms
from facility.domain.vocab import PRIORITIES as PRIORITY_ORDER

SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}


@dataclass(frozen=True)
class AlarmContext:
    """What routing and the page text need to know about an alarm besides its state."""

    site: str | None = None
    zone: str | None = None
    device: str | None = None
    summary: str = ""  # e.g. "MEC-LITHO particles 0.5 um above action limit"
    details: Mapping[str, object] = field(default_factory=dict)


def dedup_key(installation: str, alarm_id: str, occurrence: int) -> str:
    """``<installation>:<alarm id>#<occurrence>`` (PagerDuty allows 255 characters)."""
    return f"{installation}:{alarm_id}#{occurrence}"[:255]


def route_matches(r: Route, *, priority: str, site: str | None, zone: str | None,
                  kind: str) -> bool:
    """Whether route ``r`` applies (each empty criterion matches anything)."""
    return ((not r.priorities or priority in r.priorities)
            and (not r.sites or site in r.sites)
            and (not r.zones or zone in r.zones)
            and (not r.kinds or kind in r.kinds))


class Pager:
    """Writes pages for lifecycle effects into the outbox (see module docstring)."""

    def __init__(self, paging: PagingCfg, installation: str, *, flood_group_s: float = 30.0):
        """``flood_group_s``: how long a flood summary waits for more folds (group_wait)."""
        self.cfg = paging
        self.installation = installation
        self.flood_group_s = flood_group_s

    # -- routing --------------------------------------------------------------------
    def route_for(self, priority: str, site: str | None, zone: str | None,
                  kind: str) -> int | None:
        """Index of the first matching route in ``cfg.routes``, or None (not paged)."""
        for i, r in enumerate(self.cfg.routes):
            if route_matches(r, priority=priority, site=site, zone=zone, kind=kind):
                return i
        return None

    def _message(self, e: Effect, ctx: AlarmContext, key: str, event: str, action: str,
                 summary: str | None = None) -> dict:
        base = ctx.summary or f"{e.alarm_id} #{e.occurrence} ({e.priority})"
        return {
            "event": event,
            "action": action,
            "dedup_key": key,
            "summary": (summary or base)[:1024],
            "severity": SEVERITY.get(e.priority, "error"),
            "source": self.installation,
            "timestamp": iso_ms(e.at_ms),
            "component": ctx.device or e.alarm_id.rsplit(":", 1)[0],
            "group": ctx.zone or ctx.site,
            "class": e.alarm_id.rsplit(":", 1)[-1],
            "custom_details": {
                "alarm": e.alarm_id, "occurrence": e.occurrence, "priority": e.priority,
                "critical": e.critical, "site": ctx.site, "zone": ctx.zone,
                "text": e.text, "actor": e.actor, "reason": e.reason, **dict(ctx.details),
            },
        }

    # -- effects --------------------------------------------------------------------
    def enqueue(self, conn: sqlite3.Connection, effects: Iterable[Effect],
                ctx: AlarmContext | None = None, *, now_ms: int) -> list[int]:
        """Write the pages for ``effects`` (of one alarm) in the caller's transaction.

        Returns the outbox row ids written. ``audit`` effects are ignored here.
        """
        ctx = ctx or AlarmContext()
        ids: list[int] = []
        for e in effects:
            if e.kind == "trigger":
                ids += self._trigger(conn, e, ctx, now_ms)
            elif e.kind in ("acknowledge", "resolve", "update"):
                ids += self._follow_up(conn, e, ctx, now_ms)
        return ids

    def _trigger(self, conn, e: Effect, ctx: AlarmContext, now_ms: int) -> list[int]:
        kind = e.alarm_id.rsplit(":", 1)[-1]
        ri = self.route_for(e.priority, ctx.site, ctx.zone, kind)
        if ri is None:
            return []
        key = dedup_key(self.installation, e.alarm_id, e.occurrence)
        msg = self._message(e, ctx, key, "trigger", "trigger")
        row = conn.execute("SELECT status, channels FROM page_occurrence WHERE dedup_key=?",
                           (key,)).fetchone()
        if row is not None and row[0] in ("open", "acked"):  # re-alarm: same incident
            conn.execute("UPDATE page_occurrence SET status='open', acked_ms=NULL,"
                         " last_notified_ms=? WHERE dedup_key=?", (now_ms, key))
            msg["event"] = "realarm"
            return [outbox.put(conn, ch, key, "trigger", msg, now_ms)
                    for ch in json.loads(row[1])]
        if row is not None and row[0] == "folded":
            return []
        route = self.cfg.routes[ri]
        if row is None and not e.critical and self._flooding(conn, now_ms):
            ch0 = list(route.levels[0].channels) if route.levels else []
            self._record_flood(conn, key, e.priority, ctx.zone, ch0, now_ms, folded=True)
            conn.execute(
                "INSERT INTO page_occurrence (dedup_key, alarm_id, occurrence, priority,"
                " critical, route, status, message, triggered_ms) VALUES (?,?,?,?,?,?,?,?,?)",
                (key, e.alarm_id, e.occurrence, e.priority, 0, ri, "folded",
                 json.dumps(msg), now_ms))
            return []
        if row is None and not e.critical:
            self._record_flood(conn, key, e.priority, ctx.zone, [], now_ms, folded=False)
        conn.execute(
            "INSERT OR REPLACE INTO page_occurrence (dedup_key, alarm_id, occurrence, priority,"
            " critical, route, level, channels, status, message, triggered_ms)"
            " VALUES (?,?,?,?,?,?,-1,'[]','open',?,?)",
            (key, e.alarm_id, e.occurrence, e.priority, int(e.critical), ri, json.dumps(msg),
             now_ms))
        return self._escalate(conn, key, now_ms)

    def _follow_up(self, conn, e: Effect, ctx: AlarmContext, now_ms: int) -> list[int]:
        key = dedup_key(self.installation, e.alarm_id, e.occurrence)
        row = conn.execute("SELECT status, channels FROM page_occurrence WHERE dedup_key=?",
                           (key,)).fetchone()
        if row is None or row[0] == "resolved":
            return []
        status, channels = row[0], json.loads(row[1])
        if e.kind == "acknowledge":
            if status != "open":
                return []
            conn.execute("UPDATE page_occurrence SET status='acked', acked_ms=? WHERE"
                         " dedup_key=?", (now_ms, key))
            msg = self._message(e, ctx, key, "acknowledge", "acknowledge",
                                summary=f"{ctx.summary or e.alarm_id} acknowledged"
                                f" by {e.actor or '?'}")
            action = "acknowledge"
        elif e.kind == "resolve":
            conn.execute("UPDATE page_occurrence SET status='resolved', resolved_ms=? WHERE"
                         " dedup_key=?", (now_ms, key))
            msg = self._message(e, ctx, key, "resolve", "resolve")
            action = "resolve"
        else:  # update: returned to normal while unacknowledged
            if status == "folded":
                return []
            text = f"returned at {iso_ms(e.at_ms)}, not acknowledged"
            msg = self._message(e, ctx, key, "update", "trigger",
                                summary=f"{ctx.summary or e.alarm_id}: {text}")
            action = "trigger"
        if status == "folded":
            return []
        return [outbox.put(conn, ch, key, action, msg, now_ms) for ch in channels]

    # -- escalation -----------------------------------------------------------------
    def _escalate(self, conn, key: str, now_ms: int) -> list[int]:
        """Notify every level whose delay has passed and that was not notified yet."""
        route_i, level, channels, message, t0 = conn.execute(
            "SELECT route, level, channels, message, triggered_ms FROM page_occurrence"
            " WHERE dedup_key=?", (key,)).fetchone()
        route = self.cfg.routes[route_i] if route_i < len(self.cfg.routes) else None
        if route is None:
            return []
        notified = json.loads(channels)
        ids: list[int] = []
        new_level = level
        for li in range(level + 1, len(route.levels)):
            lv = route.levels[li]
            if t0 + int(lv.after_s * 1000) > now_ms:
                break
            msg = json.loads(message)
            if li > 0:
                msg["event"] = "escalate"
                msg["custom_details"]["level"] = li + 1
            for ch in lv.channels:
                ids.append(outbox.put(conn, ch, key, "trigger", msg, now_ms))
                if ch not in notified:
                    notified.append(ch)
            new_level = li
        if new_level != level:
            conn.execute("UPDATE page_occurrence SET level=?, channels=?, last_notified_ms=?"
                         " WHERE dedup_key=?", (new_level, json.dumps(notified), now_ms, key))
        return ids

    def tick(self, conn: sqlite3.Connection, *, now_ms: int) -> list[int]:
        """Escalate, repeat and send flood summaries that are due (caller's transaction)."""
        ids: list[int] = []
        rows = conn.execute("SELECT dedup_key, route, channels, message, last_notified_ms"
                            " FROM page_occurrence WHERE status='open'").fetchall()
        for key, route_i, channels, message, last in rows:
            ids += self._escalate(conn, key, now_ms)
            route = self.cfg.routes[route_i] if route_i < len(self.cfg.routes) else None
            if route is None or last is None or route.repeat_s <= 0:
                continue
            if now_ms >= last + int(route.repeat_s * 1000):
                (chs,) = conn.execute("SELECT channels FROM page_occurrence WHERE dedup_key=?",
                                      (key,)).fetchone()
                msg = json.loads(message)
                msg["event"] = "repeat"
                ids += [outbox.put(conn, ch, key, "trigger", msg, now_ms)
                        for ch in json.loads(chs)]
                conn.execute("UPDATE page_occurrence SET last_notified_ms=? WHERE dedup_key=?",
                             (now_ms, key))
        ids += self._flood_summary(conn, now_ms)
        return ids

    # -- flood ----------------------------------------------------------------------
    def _flooding(self, conn, now_ms: int) -> bool:
        since = now_ms - int(self.cfg.flood_window_s * 1000)
        (n,) = conn.execute("SELECT COUNT(*) FROM page_flood WHERE ts_ms > ?",
                            (since,)).fetchone()
        return n >= self.cfg.flood_max

    def _record_flood(self, conn, key, priority, zone, channels, now_ms, *, folded) -> None:
        episode = None
        if folded:
            since = now_ms - int(self.cfg.flood_window_s * 1000)
            prev = conn.execute("SELECT episode_ms FROM page_flood WHERE folded=1 AND ts_ms > ?"
                                " ORDER BY id DESC LIMIT 1", (since,)).fetchone()
            episode = prev[0] if prev else now_ms
        conn.execute("INSERT INTO page_flood (ts_ms, dedup_key, priority, zone, channels,"
                     " folded, episode_ms) VALUES (?,?,?,?,?,?,?)",
                     (now_ms, key, priority, zone, json.dumps(channels), int(folded), episode))

    def _flood_summary(self, conn, now_ms: int) -> list[int]:
        ids: list[int] = []
        episodes = conn.execute(
            "SELECT episode_ms, MIN(ts_ms) FROM page_flood WHERE folded=1 AND summarised=0"
            " GROUP BY episode_ms").fetchall()
        for episode, first in episodes:
            if now_ms < first + int(self.flood_group_s * 1000):
                continue
            rows = conn.execute("SELECT priority, zone, channels FROM page_flood WHERE folded=1"
                                " AND episode_ms=?", (episode,)).fetchall()
            by_prio = Counter(r[0] for r in rows)
            by_zone = Counter(r[1] or "-" for r in rows)
            chans: list[str] = []
            for r in rows:
                chans += [c for c in json.loads(r[2]) if c not in chans]
            prios = ", ".join(f"{by_prio[p]} {p}" for p in PRIORITY_ORDER if by_prio[p])
            zones = ", ".join(f"{z} {n}" for z, n in sorted(by_zone.items()))
            key = f"{self.installation}:flood#{episode}"
            top = next(p for p in PRIORITY_ORDER if by_prio[p])
            msg = {
                "event": "flood_summary", "action": "trigger", "dedup_key": key,
                "summary": f"alarm flood: {len(rows)} more alarms since {iso_ms(episode)}"
                           f" ({prios}; zones: {zones})",
                "severity": SEVERITY[top], "source": self.installation,
                "timestamp": iso_ms(now_ms), "component": "paging", "group": None,
                "class": "flood",
                "custom_details": {"count": len(rows), "by_priority": dict(by_prio),
                                   "by_zone": dict(by_zone)},
            }
            ids += [outbox.put(conn, ch, key, "trigger", msg, now_ms) for ch in chans]
            conn.execute("UPDATE page_flood SET summarised=1 WHERE folded=1 AND episode_ms=?",
                         (episode,))
        return ids

    # -- backfill -------------------------------------------------------------------
    def enqueue_backfill(
        self, conn: sqlite3.Connection,
        items: Sequence[tuple[Effect, AlarmContext]],
        final: Mapping[str, AlarmState], *, device: str, t1_ms: int, t2_ms: int,
        now_ms: int,
    ) -> list[int]:
        """Pages for the transitions of a late (backfilled) batch of ``device``.

        A trigger pages only if its alarm is still active and unacknowledged after the
        batch (``final``, the states after it) and it is the final occurrence (one trigger
        per alarm); every other raise is an excursion, and they all become one informational page "N excursions in backfill of
        DEVICE from T1 to T2", not counted toward flood. Acknowledge/resolve/update pass
        through (they only concern occurrences already paged).
        """
        ids: list[int] = []
        excursions: list[tuple[Effect, AlarmContext]] = []
        live: dict[str, tuple[Effect, AlarmContext]] = {}
        for e, ctx in items:  # pass 1: follow-ups of occurrences paged before the batch
            if e.kind != "trigger":
                ids += self.enqueue(conn, [e], ctx, now_ms=now_ms)
                continue
            fin = final.get(e.alarm_id)
            if (fin is not None and fin.active and fin.state is State.UNACK
                    and fin.occurrence == e.occurrence):
                live[e.alarm_id] = (e, ctx)  # the last trigger of the final occurrence
            else:  # each raise of an occurrence that is over is one excursion
                excursions.append((e, ctx))
        for e, ctx in live.values():  # pass 2: one trigger per alarm still active
            ids += self.enqueue(conn, [e], ctx, now_ms=now_ms)
        chans: list[str] = []
        for e, ctx in excursions:
            ri = self.route_for(e.priority, ctx.site, ctx.zone, e.alarm_id.rsplit(":", 1)[-1])
            if ri is not None and self.cfg.routes[ri].levels:
                chans += [c for c in self.cfg.routes[ri].levels[0].channels if c not in chans]
        if not excursions or not chans:
            return ids
        n = len(excursions)
        key = f"{self.installation}:backfill:{device}#{t1_ms}"
        text = (f"{n} excursion{'s' if n != 1 else ''} in backfill of {device} from "
                f"{iso_ms(t1_ms)} to {iso_ms(t2_ms)}")
        msg = {
            "event": "backfill_summary", "action": "trigger", "dedup_key": key,
            "summary": text, "severity": "info", "source": self.installation,
            "timestamp": iso_ms(now_ms), "component": device, "group": None,
            "class": "backfill",
            "custom_details": {"count": n, "alarms": sorted({e.alarm_id for e, _ in excursions}),
                               "from": iso_ms(t1_ms), "to": iso_ms(t2_ms)},
        }
        ids += [outbox.put(conn, ch, key, "trigger", msg, now_ms) for ch in chans]
        return ids
