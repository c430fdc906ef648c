"""The service's book of alarms: lifecycle states, what each transition writes and pages.

Every change to an alarm goes through ``AlarmBook.apply``, which calls the pure
``alarms.lifecycle.step`` and collects, for the cycle's single transaction, the alarm
row upsert, the event row, the audit row (operator actions) and the paging effects.
The book lives on the event loop; what the writer thread needs of it leaves as plain data
(``Pending``, ``PageBatch``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, replace

from alarms.lifecycle import AlarmState, Effect, Event, Refused, State, step
from alarms.paging import AlarmContext, Pager
from alarms.rules import CompiledRule
from facility.config.schema import Config, Operator


@dataclass(frozen=True)
class AlarmMeta:
    """What an alarm row records besides its state: where, which limit, from what source."""

    id: str
    point: str | None
    zone: str | None
    site: str | None
    limit: float | None
    source: str
    priority: str
    critical: bool
    kind: str
    mode: str | None = None
    device: str | None = None


PAGE_SUMMARY_MAX = 1024
"""A page's summary is cut to this many characters: PagerDuty Events API v2 accepts at most
1024 (reference/standards.md, paging); the other channels show the same text."""


def meta_of(rule: CompiledRule, device: str | None) -> AlarmMeta:
    """Alarm metadata from a compiled rule."""
    return AlarmMeta(rule.alarm_id, rule.point, rule.zone, rule.site, rule.limit, rule.source,
                     rule.priority, rule.critical, rule.kind, rule.mode, device)


@dataclass
class Pending:
    """Rows and effects collected since the last write."""

    alarms: dict[str, dict] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    audit: list[dict] = field(default_factory=list)
    effects: list[tuple[Effect, AlarmContext, bool]] = field(default_factory=list)  # backfill?

    def take(self) -> "Pending":
        """Hand over everything collected and start afresh."""
        out = Pending(self.alarms, self.events, self.audit, self.effects)
        self.alarms, self.events, self.audit, self.effects = {}, [], [], []
        return out


@dataclass(frozen=True)
class PageBatch:
    """One write's page effects as plain data, for the writer thread.

    Built on the event loop by :meth:`AlarmBook.page_batch`. ``final`` holds, for the
    alarms of backfilled effects, their states after the batch, copied there (an
    ``AlarmState`` is frozen): the writer thread never reads the book, which the event
    loop keeps changing while a write is in flight.
    """

    live: tuple[tuple[Effect, AlarmContext], ...]
    backfill: dict[str, list[tuple[Effect, AlarmContext]]]
    """Device -> its late effects, paged together ("N excursions in backfill of ...")."""
    final: dict[str, AlarmState]
    now_ms: int

    def write(self, pager: Pager, conn: sqlite3.Connection) -> None:
        """Queue the pages in the write's own transaction, then escalate (``tick``)."""
        for e, ctx in self.live:
            pager.enqueue(conn, [e], ctx, now_ms=self.now_ms)
        for device, items in self.backfill.items():
            pager.enqueue_backfill(conn, items, self.final, device=device,
                                   t1_ms=min(e.at_ms for e, _ in items),
                                   t2_ms=max(e.at_ms for e, _ in items), now_ms=self.now_ms)
        pager.tick(conn, now_ms=self.now_ms)


def state_to_row(a: AlarmState, m: AlarmMeta, config_version: int | None, now_ms: int) -> dict:
    """The ``alarms`` table row of an alarm."""
    return {
        "id": a.id, "state": a.state.value, "priority": a.priority, "occurrence": a.occurrence,
        "active": int(a.active), "acked": int(a.acked), "onset_ms": a.onset_ms,
        "limit": m.limit, "source": m.source, "zone": m.zone, "site": m.site, "point": m.point,
        "shelved_until_ms": a.shelved_until_ms, "latched": int(a.latched),
        "config_version": config_version, "updated_ms": now_ms,
        "details": json.dumps({
            "suppressed_by": sorted(a.suppressed_by), "oos": a.oos, "shelved_by": a.shelved_by,
            "returned_ms": a.returned_ms, "latching": a.latching, "critical": a.critical,
            "kind": m.kind, "mode": m.mode, "device": m.device,
        }, sort_keys=True),
    }


def row_to_state(row: dict) -> AlarmState:
    """Rebuild an AlarmState from its stored row (restart: nothing forgotten)."""
    d = row.get("details") or {}
    d = json.loads(d) if isinstance(d, str) else d
    return AlarmState(
        id=row["id"], state=State(row["state"]), active=bool(row["active"]),
        acked=bool(row["acked"]), latching=bool(d.get("latching")), latched=bool(row["latched"]),
        occurrence=int(row["occurrence"] or 0), priority=row.get("priority") or "low",
        critical=bool(d.get("critical")), shelved_until_ms=row.get("shelved_until_ms"),
        shelved_by=d.get("shelved_by"), suppressed_by=frozenset(d.get("suppressed_by") or ()),
        oos=bool(d.get("oos")), onset_ms=row.get("onset_ms"), returned_ms=d.get("returned_ms"),
    )


class AlarmBook:
    """All alarms of the installation, their metadata and the pending writes."""

    def __init__(self, cfg: Config, metas: dict[str, AlarmMeta], config_version: int | None):
        self.cfg = cfg
        self.metas = metas
        self.config_version = config_version
        self.states: dict[str, AlarmState] = {}
        self.pending = Pending()
        self.operators = {o.login: o for o in cfg.operators}
        latching = set(cfg.alarms.latching)
        for aid, m in metas.items():
            self.states[aid] = AlarmState(id=aid, priority=m.priority, critical=m.critical,
                                          latching=m.kind in latching)

    def restore(self, rows: list[dict]) -> int:
        """Load stored alarm rows; configuration (priority, critical) wins over stored."""
        n = 0
        for row in rows:
            if row["id"] not in self.metas:
                continue
            base = self.states[row["id"]]
            st = row_to_state(row)
            self.states[row["id"]] = replace(st, priority=base.priority, critical=base.critical,
                                             latching=base.latching)
            n += 1
        return n

    def context(self, aid: str, value: float | None = None) -> AlarmContext:
        """Routing and page text for an alarm."""
        m = self.metas[aid]
        limit = f" (limit {m.limit:g}, {m.source})" if m.limit is not None else ""
        val = f" value {value:g}" if value is not None else ""
        return AlarmContext(site=m.site, zone=m.zone, device=m.device,
                            summary=f"{aid}{val}{limit}"[:PAGE_SUMMARY_MAX],
                            details={"limit": m.limit, "source": m.source, "point": m.point})

    def apply(self, aid: str, event: Event, *, now_ms: int, ts_ms: int | None = None,
              value: float | None = None, actor: Operator | None = None, reason: str | None = None,
              duration_s: float | None = None, by: str = "operator", backfill: bool = False,
              detail: dict | None = None) -> AlarmState | Refused:
        """Apply one lifecycle event; queue the rows and pages it produces."""
        old = self.states[aid]
        result = step(old, event, now_ms=now_ms, actor=actor, reason=reason,
                      duration_s=duration_s, by=by, onset_ms=ts_ms, cfg=self.cfg.alarms)
        if isinstance(result, Refused):
            return result
        new, effects = result
        self.states[aid] = new
        m = self.metas[aid]
        row = state_to_row(new, m, self.config_version, now_ms)
        if event is Event.RAISE:  # a new occurrence: detected now, nobody has acknowledged it
            row.update(detected_ms=now_ms, ack_by=None, ack_reason=None, ack_ms=None)
        elif event is Event.ACK and actor is not None:
            row.update(ack_by=actor.login, ack_reason=reason, ack_ms=now_ms)
        prev = self.pending.alarms.get(aid, {})
        self.pending.alarms[aid] = {**prev, **row}
        self.pending.events.append({
            "alarm_id": aid, "occurrence": new.occurrence, "event": event.value + (
                f":{by}" if event in (Event.SUPPRESS, Event.UNSUPPRESS) else ""),
            "state_from": old.state.value, "state_to": new.state.value,
            "ts_ms": ts_ms if ts_ms is not None else now_ms, "detected_ms": now_ms,
            "value": value, "limit": m.limit, "source": m.source,
            "actor": actor.login if actor else (None if by == "operator" else by),
            "reason": reason, "config_version": self.config_version,
            "details": json.dumps(detail or {}, sort_keys=True) if detail else None,
        })
        for e in effects:
            if e.kind == "audit":
                self.pending.audit.append({
                    "action": event.value, "actor": e.actor, "subject": f"{aid}#{new.occurrence}",
                    "reason": reason, "details": {"from": old.state.value, "to": new.state.value,
                                                  "duration_s": duration_s, **(detail or {})},
                })
            else:
                self.pending.effects.append((e, self.context(aid, value), backfill))
        return new

    def audit_refusal(self, login: str, action: str, subject: str, reason: str | None,
                      message: str) -> None:
        """Refused actions are audited too (who tried what, and why it was refused)."""
        self.pending.audit.append({"action": f"refused:{action}", "actor": login,
                                   "subject": subject, "reason": reason,
                                   "details": {"refusal": message}})

    def page_batch(self, effects: list[tuple[Effect, AlarmContext, bool]],
                   now_ms: int) -> PageBatch:
        """Split taken effects into live and backfilled ones, with a copy of final states.

        Live effects page in order; a backfilled device's effects are paged together
        after them, judged against the states their alarms have now (after the batch).
        """
        live = tuple((e, ctx) for e, ctx, backfill in effects if not backfill)
        late: dict[str, list[tuple[Effect, AlarmContext]]] = {}
        for e, ctx, backfill in effects:
            if backfill:
                late.setdefault(ctx.device or "?", []).append((e, ctx))
        final = {e.alarm_id: self.states[e.alarm_id]
                 for items in late.values() for e, _ in items if e.alarm_id in self.states}
        return PageBatch(live, late, final, now_ms)

    def active(self) -> list[AlarmState]:
        """Alarms not in NORM."""
        return [a for a in self.states.values() if a.state is not State.NORM]
