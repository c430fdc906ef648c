"""Paging policy: routing, escalation, repeat and chattering control, floods and backfill.

docs/ARCHITECTURE.md "Paging". ``Pager`` turns lifecycle ``Effect``s into outbox rows
*inside the caller's open transaction* (it never commits), so a page exists if and only if
the alarm event that caused it was committed. Delivery is the ``Dispatcher``'s job
(``alarms.dispatcher``); the words of each page are ``alarms.page_text``'s.

* ``dedup_key = <installation>:<alarm id>#<occurrence>``.
* Routing: the first ``Route`` whose priorities/sites/zones/kinds match (empty = any).
  Level ``i`` of that route is notified once the occurrence has stayed unacknowledged for
  ``levels[i].after_s`` (level 0 usually at 0 s); ``repeat_s`` re-notifies while it stays
  unacknowledged. Acknowledge/resolve/update go to every channel that got the trigger. An
  escalation, a repeat or a late update is written from the alarm's *current* context
  (value and state, passed to :meth:`Pager.tick` by the service), else from the latest one
  stored with the occurrence.
* Repeat control: a return to normal, unacknowledged, is paged after
  :data:`RETURN_HOLD_MS` unless the alarm raises again first; then neither is paged, since
  the incident that was paged is still open, unacknowledged and true.
* Chattering (ISA-18.2: 3 or more raises in 60 s, ``alarms.chatter``): the first raise
  pages; while chattering, at most one page per alarm per ``min_repage_s`` saying
  "chattering: N raises since T", critical alarms included.
* Flood (ISA-18.2, per site, ``alarms.flood``): more than ``flood_max`` new alarms below
  critical within ``flood_window_s`` start a flood, which ends below ``flood_max / 2``;
  meanwhile new alarms below critical are folded into summaries with counts per priority
  and room. Critical alarms are never folded, nor counted.
* Backfill: see ``enqueue_backfill``.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence

from alarms import chatter, flood, outbox
from alarms.chatter import CHATTER_RAISES, CHATTER_WINDOW_MS, Chatter, chattering
from alarms.lifecycle import AlarmState, Effect, State
from alarms.page_text import (
    SUMMARY_MAX,
    AlarmContext,
    compose_details,
    compose_summary,
    compose_title,
)
from facility.config.schema import PagingCfg, Route
from facility.domain.display import local_time
from facility.domain.model import iso_ms

__all__ = ["CHATTER_RAISES", "CHATTER_WINDOW_MS", "RETURN_HOLD_MS", "SEVERITY", "SUMMARY_MAX",
           "AlarmContext", "Chatter", "Pager", "chattering", "dedup_key", "in_flood",
           "route_matches"]

SEVERITY = flood.SEVERITY
in_flood = flood.in_flood

RETURN_HOLD_MS = CHATTER_WINDOW_MS
"""How long a return to normal, unacknowledged, waits before it is paged: the ISA-18.2
chattering window (60 s). An alarm that comes back within it pages neither its return nor
its re-raise, so raise, clear, raise is one page, as the first raise of a chattering alarm
must be. Only the news that it *returned* waits; a raise is never delayed."""

_CTX_FIELDS = {f.name for f in dataclasses.fields(AlarmContext)}


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


def ctx_json(ctx: AlarmContext) -> str:
    """An alarm context as stored with its occurrence (plain JSON)."""
    return json.dumps(dataclasses.asdict(ctx), sort_keys=True, default=str)


def ctx_load(text: str | dict | None) -> AlarmContext | None:
    """A stored context back (fields a newer version added and this one lacks are ignored)."""
    if not text:
        return None
    data = json.loads(text) if isinstance(text, str) else text
    return AlarmContext(**{k: v for k, v in data.items() if k in _CTX_FIELDS})


@dataclasses.dataclass(frozen=True, slots=True)
class _Occ:
    """A ``page_occurrence`` row as the pager reads it."""

    key: str
    alarm_id: str
    occurrence: int
    priority: str
    critical: bool
    route: int
    level: int
    channels: list
    status: str
    message: str
    triggered_ms: int
    last_notified_ms: int | None
    ctx: str | None
    folded_by: str | None
    held: str | None
    acked_ms: int | None


_OCC_COLS = ("dedup_key, alarm_id, occurrence, priority, critical, route, level, channels,"
             " status, message, triggered_ms, last_notified_ms, ctx, folded_by, held, acked_ms")


def _chatter_words(raises: int, since_ms: int | None, ctx: AlarmContext | None,
                   ) -> tuple[str, tuple[tuple[str, object], ...]]:
    when = local_time(since_ms, ctx.timezone if ctx else "UTC")
    text = f"{raises} raises since {when}"
    return f"chattering: {text}", (("chattering", text),)


class Pager:
    """Writes pages for lifecycle effects into the outbox (see module docstring)."""

    def __init__(self, paging: PagingCfg, installation: str, *, flood_group_s: float = 30.0):
        """``flood_group_s``: how long a flood's first summary waits for more folds
        (Alertmanager's group_wait, PagerDuty Events v2 / Alertmanager)."""
        self.cfg = paging
        self.installation = installation
        self.flood_group_s = flood_group_s
        self.repage_ms = int(paging.min_repage_s * 1000)

    # -- routing --------------------------------------------------------------------
    def route_for(self, priority: str, site: str | None, zone: str | None,
                  kind: str) -> int | None:
        """Index of the first matching route in ``cfg.routes``, or None (not paged)."""
        for i, r in enumerate(self.cfg.routes):
            if route_matches(r, priority=priority, site=site, zone=zone, kind=kind):
                return i
        return None

    def _route(self, i: int) -> Route | None:
        return self.cfg.routes[i] if 0 <= i < len(self.cfg.routes) else None

    # -- messages -------------------------------------------------------------------
    def _message(self, *, alarm_id: str, occurrence: int, priority: str, critical: bool,
                 ctx: AlarmContext, key: str, event: str, action: str, at_ms: int,
                 note: str | None = None, prefix: str | None = None,
                 extra: Iterable[tuple[str, object]] = ()) -> dict:
        summary = compose_summary(ctx, alarm_id=alarm_id, priority=priority, note=note,
                                  prefix=prefix)
        details = compose_details(ctx, alarm_id=alarm_id, occurrence=occurrence,
                                  priority=priority, dedup_key=key, note=note, extra=extra)
        return {
            "event": event,
            "action": action,
            "dedup_key": key,
            "summary": summary,
            "title": compose_title(ctx, alarm_id=alarm_id, priority=priority, prefix=prefix),
            "severity": SEVERITY.get(priority, "error"),
            "source": self.installation,
            "timestamp": iso_ms(at_ms),
            "component": ctx.device or alarm_id.rsplit(":", 1)[0],
            "group": ctx.zone or ctx.site,
            "class": alarm_id.rsplit(":", 1)[-1],
            "details": [[k, v] for k, v in details],
            "custom_details": {**dict(details), "critical": bool(critical)},
        }

    def _effect_message(self, e: Effect, ctx: AlarmContext, key: str, event: str,
                        action: str, *, extra: Iterable[tuple[str, object]] = (),
                        **kw) -> dict:
        """A message about an effect; an operator's action says who and why."""
        who = (("actor", e.actor), ("reason", e.reason)) if e.actor else ()
        return self._message(alarm_id=e.alarm_id, occurrence=e.occurrence, priority=e.priority,
                             critical=e.critical, ctx=ctx, key=key, event=event,
                             action=action, at_ms=e.at_ms, extra=(*extra, *who), **kw)

    def _occ_message(self, occ: _Occ, ctx: AlarmContext | None, event: str, action: str,
                     at_ms: int, **kw) -> dict:
        """A message about a paged occurrence, from ``ctx`` or the latest stored context;
        a row stored before contexts were kept re-sends its stored message."""
        ctx = ctx or ctx_load(occ.ctx)
        if ctx is None:
            msg = json.loads(occ.message)
            msg["event"], msg["action"] = event, action
            msg.setdefault("custom_details", {}).update(dict(kw.get("extra", ())))
            return msg
        return self._message(alarm_id=occ.alarm_id, occurrence=occ.occurrence,
                             priority=occ.priority, critical=occ.critical, ctx=ctx,
                             key=occ.key, event=event, action=action, at_ms=at_ms, **kw)

    def _occ(self, conn, key: str) -> _Occ | None:
        row = conn.execute(f"SELECT {_OCC_COLS} FROM page_occurrence WHERE dedup_key=?",
                           (key,)).fetchone()
        if row is None:
            return None
        r = list(row)
        r[4], r[7] = bool(r[4]), json.loads(r[7])
        return _Occ(*r)

    def _put(self, conn, channels: Iterable[str], key: str, action: str, msg: dict,
             now_ms: int) -> list[int]:
        return [outbox.put(conn, ch, key, action, msg, now_ms) for ch in channels]

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

    def _insert(self, conn, e: Effect, route: int, key: str, status: str, ctx: AlarmContext,
                now_ms: int, folded_by: str | None = None) -> None:
        msg = self._effect_message(e, ctx, key, "trigger", "trigger")
        conn.execute(
            "INSERT OR REPLACE INTO page_occurrence (dedup_key, alarm_id, occurrence, priority,"
            " critical, route, level, channels, status, message, triggered_ms, ctx, folded_by)"
            " VALUES (?,?,?,?,?,?,-1,'[]',?,?,?,?,?)",
            (key, e.alarm_id, e.occurrence, e.priority, int(e.critical), route, status,
             json.dumps(msg), now_ms, ctx_json(ctx), folded_by))

    def _trigger(self, conn, e: Effect, ctx: AlarmContext, now_ms: int) -> list[int]:
        key = dedup_key(self.installation, e.alarm_id, e.occurrence)
        # counted whether routed or not: the TUI marks every chattering alarm
        step = chatter.note_raise(conn, e.alarm_id, key, now_ms, self.repage_ms, ctx_json(ctx))
        kind = e.alarm_id.rsplit(":", 1)[-1]
        ri = self.route_for(e.priority, ctx.site, ctx.zone, kind)
        if ri is None:
            return []
        occ = self._occ(conn, key)
        if occ is not None and occ.status in ("open", "acked"):  # re-alarm: same incident
            return self._realarm(conn, e, ctx, occ, step, now_ms)
        if occ is not None and occ.status == "folded":  # folded stays folded
            conn.execute("UPDATE page_occurrence SET ctx=? WHERE dedup_key=?",
                         (ctx_json(ctx), key))
            return []
        if step.chattering and not step.notify:  # counted; paged with the next notice
            self._insert(conn, e, ri, key, "folded", ctx, now_ms, folded_by="chatter")
            return []
        if occ is None and not e.critical:
            route = self.cfg.routes[ri]
            episode = flood.fold_episode(
                conn, ctx.site, now_ms, flood_max=self.cfg.flood_max,
                window_ms=int(self.cfg.flood_window_s * 1000),
                label=ctx.site_name or ctx.site or "", timezone=ctx.timezone)
            ch0 = list(route.levels[0].channels) if route.levels else []
            flood.record(conn, ctx.site, key, e.priority, ctx.zone,
                         ch0 if episode is not None else [], now_ms, episode)
            if episode is not None:
                self._insert(conn, e, ri, key, "folded", ctx, now_ms, folded_by="flood")
                return []
        self._insert(conn, e, ri, key, "open", ctx, now_ms)
        prefix, extra = (_chatter_words(step.raises, step.since_ms, ctx) if step.chattering
                         else (None, ()))
        return self._escalate(conn, key, now_ms, ctx, prefix=prefix, extra=extra)

    def _realarm(self, conn, e: Effect, ctx: AlarmContext, occ: _Occ,
                 step: chatter.RaiseStep, now_ms: int) -> list[int]:
        """A raise of an occurrence that is still open (it returned, unacknowledged, or was
        shown again after being hidden)."""
        conn.execute("UPDATE page_occurrence SET status='open', acked_ms=NULL, held=NULL,"
                     " held_until_ms=NULL, ctx=? WHERE dedup_key=?", (ctx_json(ctx), occ.key))
        prefix, extra, event = None, (), "realarm"
        if step.chattering:
            if not step.notify:
                return []
            prefix, extra = _chatter_words(step.raises, step.since_ms, ctx)
            event = "chattering"
        elif occ.held is not None:
            return []  # its return was never paged: the page that went is still true
        conn.execute("UPDATE page_occurrence SET last_notified_ms=? WHERE dedup_key=?",
                     (now_ms, occ.key))
        msg = self._effect_message(e, ctx, occ.key, event, "trigger", prefix=prefix,
                                   extra=extra)
        return self._put(conn, occ.channels, occ.key, "trigger", msg, now_ms)

    def _follow_up(self, conn, e: Effect, ctx: AlarmContext, now_ms: int) -> list[int]:
        key = dedup_key(self.installation, e.alarm_id, e.occurrence)
        occ = self._occ(conn, key)
        if occ is None or occ.status == "resolved":
            return []
        returned = e.kind == "update" and not getattr(e, "hidden", None)
        conn.execute("UPDATE page_occurrence SET ctx=? WHERE dedup_key=?", (ctx_json(ctx), key))
        if occ.status == "folded":  # never paged: keep its bookkeeping, page nothing
            if e.kind == "resolve":
                conn.execute("UPDATE page_occurrence SET status='resolved', resolved_ms=?"
                             " WHERE dedup_key=?", (now_ms, key))
            elif e.kind == "acknowledge":
                conn.execute("UPDATE page_occurrence SET acked_ms=? WHERE dedup_key=?",
                             (now_ms, key))
            elif returned:
                chatter.note_return(conn, e.alarm_id, ctx_json(ctx))
            return []
        if returned:
            if chatter.note_return(conn, e.alarm_id, ctx_json(ctx)):
                return []  # chattering: told with the next chattering page
            note = f"returned at {local_time(e.at_ms, ctx.timezone)}, not acknowledged"
            if "latched" in (e.text or ""):
                note += " (latched: acknowledge, then reset)"
            held = {"note": note, "at_ms": e.at_ms, "ctx": dataclasses.asdict(ctx)}
            conn.execute("UPDATE page_occurrence SET held=?, held_until_ms=? WHERE dedup_key=?",
                         (json.dumps(held, default=str), now_ms + RETURN_HOLD_MS, key))
            return []
        ids = self._flush_held(conn, occ, now_ms) if occ.held else []
        if e.kind == "acknowledge":
            if occ.status != "open":
                return ids
            conn.execute("UPDATE page_occurrence SET status='acked', acked_ms=? WHERE"
                         " dedup_key=?", (now_ms, key))
            note = f"acknowledged by {e.actor or '?'}" + (f": {e.reason}" if e.reason else "")
            msg = self._effect_message(e, ctx, key, "acknowledge", "acknowledge", note=note)
            action = "acknowledge"
        elif e.kind == "resolve":
            conn.execute("UPDATE page_occurrence SET status='resolved', resolved_ms=? WHERE"
                         " dedup_key=?", (now_ms, key))
            msg = self._effect_message(e, ctx, key, "resolve", "resolve",
                                       note=e.text or "back to normal and acknowledged")
            action = "resolve"
        else:  # hidden (shelved, suppressed, out of service): an update, never a resolve
            msg = self._effect_message(e, ctx, key, "update", "update", note=e.text)
            if occ.status == "open":
                # A hidden occurrence stays open on the channels but is not escalated or
                # repeated: someone took it in hand. Shown again as UNACK, it re-triggers.
                conn.execute("UPDATE page_occurrence SET status='acked' WHERE dedup_key=?",
                             (key,))
            action = "trigger"  # the outbox's word: PagerDuty re-triggers the same dedup_key
        return ids + self._put(conn, occ.channels, key, action, msg, now_ms)

    def _flush_held(self, conn, occ: _Occ, now_ms: int,
                    ctx: AlarmContext | None = None) -> list[int]:
        """Page a held return now (before what follows it, so the order stays true)."""
        held = json.loads(occ.held or "{}")
        conn.execute("UPDATE page_occurrence SET held=NULL, held_until_ms=NULL WHERE"
                     " dedup_key=?", (occ.key,))
        ctx = ctx or ctx_load(held.get("ctx"))
        msg = self._occ_message(occ, ctx, "update", "update", held.get("at_ms") or now_ms,
                                note=held.get("note"))
        return self._put(conn, occ.channels, occ.key, "trigger", msg, now_ms)

    # -- escalation -----------------------------------------------------------------
    def _escalate(self, conn, key: str, now_ms: int, ctx: AlarmContext | None = None, *,
                  prefix: str | None = None,
                  extra: Sequence[tuple[str, object]] = ()) -> list[int]:
        """Notify every level whose delay has passed and that was not notified yet."""
        occ = self._occ(conn, key)
        route = self._route(occ.route) if occ is not None else None
        if route is None:
            return []
        notified = list(occ.channels)
        ids: list[int] = []
        new_level = occ.level
        for li in range(occ.level + 1, len(route.levels)):
            lv = route.levels[li]
            if occ.triggered_ms + int(lv.after_s * 1000) > now_ms:
                break
            if li == 0:
                msg = self._occ_message(occ, ctx, "chattering" if prefix else "trigger",
                                        "trigger", now_ms, prefix=prefix, extra=extra)
            else:
                msg = self._occ_message(occ, ctx, "escalate", "trigger", now_ms,
                                        extra=(("level", li + 1),))
            for ch in lv.channels:
                ids.append(outbox.put(conn, ch, key, "trigger", msg, now_ms))
                if ch not in notified:
                    notified.append(ch)
            new_level = li
        if new_level != occ.level:
            conn.execute("UPDATE page_occurrence SET level=?, channels=?, last_notified_ms=?"
                         " WHERE dedup_key=?", (new_level, json.dumps(notified), now_ms, key))
        return ids

    def tick(self, conn: sqlite3.Connection, *, now_ms: int,
             current: Mapping[str, AlarmContext] | None = None) -> list[int]:
        """Everything due by ``now_ms`` (caller's transaction): held returns, escalations,
        repeats, chattering pages and flood summaries.

        ``current``: alarm id -> its context now (value, state), so what is paged late says
        what is true now; without it the latest stored context is used.
        """
        current = current or {}
        ids = self._due_returns(conn, now_ms, current)
        rows = conn.execute("SELECT dedup_key, alarm_id FROM page_occurrence WHERE"
                            " status='open'").fetchall()
        for key, alarm_id in rows:
            ctx = current.get(alarm_id)
            ids += self._escalate(conn, key, now_ms, ctx)
            occ = self._occ(conn, key)
            route = self._route(occ.route)
            if route is None or occ.last_notified_ms is None or route.repeat_s <= 0:
                continue
            if now_ms >= occ.last_notified_ms + int(route.repeat_s * 1000):
                msg = self._occ_message(occ, ctx, "repeat", "trigger", now_ms)
                ids += self._put(conn, occ.channels, key, "trigger", msg, now_ms)
                conn.execute("UPDATE page_occurrence SET last_notified_ms=? WHERE dedup_key=?",
                             (now_ms, key))
        ids += self._chatter_pages(conn, now_ms, current)
        chatter.end_quiet(conn, now_ms, self.repage_ms)
        for p in flood.tick(conn, now_ms, installation=self.installation,
                            flood_max=self.cfg.flood_max,
                            window_ms=int(self.cfg.flood_window_s * 1000),
                            group_ms=int(self.flood_group_s * 1000), repage_ms=self.repage_ms):
            ids += self._put(conn, p.channels, p.dedup_key, p.action, p.message, now_ms)
        return ids

    def _due_returns(self, conn, now_ms: int, current: Mapping[str, AlarmContext]) -> list[int]:
        """Held returns whose wait is over: paged, unless the alarm is active again."""
        ids: list[int] = []
        keys = conn.execute("SELECT dedup_key FROM page_occurrence WHERE held_until_ms <= ?"
                            " AND held IS NOT NULL ORDER BY held_until_ms", (now_ms,)).fetchall()
        for (key,) in keys:
            occ = self._occ(conn, key)
            ctx = current.get(occ.alarm_id)
            if ctx is not None and ctx.active:  # raised again without a page (a latch)
                conn.execute("UPDATE page_occurrence SET held=NULL, held_until_ms=NULL WHERE"
                             " dedup_key=?", (key,))
                continue
            ids += self._flush_held(conn, occ, now_ms, ctx)
        return ids

    def _chatter_pages(self, conn, now_ms: int, current: Mapping[str, AlarmContext]) -> list[int]:
        """One page per chattering alarm whose ``min_repage_s`` has passed and that changed
        since its last page: its latest occurrence, as it is now."""
        ids: list[int] = []
        for ch in chatter.due(conn, now_ms, self.repage_ms):
            chatter.noticed(conn, ch.alarm_id, now_ms)
            occ = self._occ(conn, ch.dedup_key) if ch.dedup_key else None
            if occ is None:
                continue
            ctx = current.get(ch.alarm_id) or ctx_load(ch.ctx) or ctx_load(occ.ctx)
            prefix, extra = _chatter_words(ch.raises, ch.since_ms, ctx)
            if occ.status == "open":
                msg = self._occ_message(occ, ctx, "chattering", "trigger", now_ms,
                                        prefix=prefix, extra=extra)
                conn.execute("UPDATE page_occurrence SET last_notified_ms=? WHERE dedup_key=?",
                             (now_ms, occ.key))
                ids += self._put(conn, occ.channels, occ.key, "trigger", msg, now_ms)
            elif occ.status == "folded" and occ.folded_by == "chatter" and occ.acked_ms is None:
                # an occurrence nobody was told about and nobody acknowledged: page it now,
                # escalation counting from this first page
                conn.execute("UPDATE page_occurrence SET status='open', level=-1,"
                             " channels='[]', triggered_ms=? WHERE dedup_key=?",
                             (now_ms, occ.key))
                ids += self._escalate(conn, occ.key, now_ms, ctx, prefix=prefix, extra=extra)
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
        per alarm); every other raise is an excursion, and they all become one
        informational page "N excursions in backfill of DEVICE from T1 to T2", not counted
        toward flood. Acknowledge/resolve/update pass through (they only concern
        occurrences already paged).
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
        alarms = sorted({e.alarm_id for e, _ in excursions})
        msg = {
            "event": "backfill_summary", "action": "trigger", "dedup_key": key,
            "summary": text, "severity": "info", "source": self.installation,
            "timestamp": iso_ms(now_ms), "component": device, "group": None,
            "class": "backfill",
            "details": [["device", device], ["excursions", n], ["alarms", ", ".join(alarms)],
                        ["from", iso_ms(t1_ms)], ["to", iso_ms(t2_ms)], ["dedup key", key]],
            "custom_details": {"count": n, "alarms": alarms,
                               "from": iso_ms(t1_ms), "to": iso_ms(t2_ms)},
        }
        ids += [outbox.put(conn, ch, key, "trigger", msg, now_ms) for ch in chans]
        return ids
