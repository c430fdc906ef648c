"""The service's book of alarms: lifecycle states, what each transition writes and pages.

Every change to an alarm goes through ``AlarmBook.apply``, which calls the pure
``alarms.lifecycle.step`` and collects, for the cycle's single transaction, the alarm
row upsert, the event row, the audit row (operator actions) and the paging effects.
The book lives on the event loop; what the writer thread needs of it leaves as plain data
(``Pending``, ``PageBatch``).
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from dataclasses import dataclass, field, replace

from alarms.lifecycle import HIDDEN, AlarmState, Effect, Event, Refused, State, step
from alarms.page_text import SUMMARY_MAX
from alarms.paging import AlarmContext, Pager
from alarms.rules import CompiledRule
from facility.config.schema import Config, Device, Operator
from facility.domain.display import format_value, point_words


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
    limit_name: str | None = None  # action_high | alert_high | alert_low | action_low


_PAGED_STATES = frozenset({State.UNACK, State.ACKED, State.RTNUN})

PAGE_SUMMARY_MAX = SUMMARY_MAX
"""A page's summary is cut to this many characters: PagerDuty Events API v2 accepts at most
1024 (the standards, paging); the other channels show the same text."""


def meta_of(rule: CompiledRule, device: str | None) -> AlarmMeta:
    """Alarm metadata from a compiled rule."""
    return AlarmMeta(rule.alarm_id, rule.point, rule.zone, rule.site, rule.limit, rule.source,
                     rule.priority, rule.critical, rule.kind, rule.mode, device,
                     rule.limit_name)


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
    current: dict[str, AlarmContext] = field(default_factory=dict)
    """Every alarm that may still be paged (UNACK, ACKED, RTNUN) as it is now (value, state):
    an escalation, a repeat or a late page re-reads these instead of repeating what was true
    when it was raised; a hidden alarm's incident is not escalated, so it needs none."""

    def write(self, pager: Pager, conn: sqlite3.Connection) -> None:
        """Queue the pages in the write's own transaction, then escalate (``tick``)."""
        for e, ctx in self.live:
            pager.enqueue(conn, [e], ctx, now_ms=self.now_ms)
        for device, items in self.backfill.items():
            pager.enqueue_backfill(conn, items, self.final, device=device,
                                   t1_ms=min(e.at_ms for e, _ in items),
                                   t2_ms=max(e.at_ms for e, _ in items), now_ms=self.now_ms)
        pager.tick(conn, now_ms=self.now_ms, current=self.current)


def attribution(op: Operator | None, via: str | None = None) -> tuple[dict, dict]:
    """Who acted, in words a person reads, as configured at the time of the action: the event
    columns (``actor_name``, ``actor_roles``) and the audit ``details`` keys (``name``,
    ``roles``, and ``shared`` for a login several people use). Empty for the service's own
    actors (timer, schedule) (Part 11 §11.10(e); docs/ARCHITECTURE.md "Audit trail")."""
    if op is None:
        return {}, {}
    who = {"name": op.name, "roles": list(op.roles)}
    if op.shared:
        who["shared"] = True
    if via:  # relayed by another system (e.g. "central"); the roles are still checked here
        who["via"] = via
    return {"actor_name": op.name, "actor_roles": ",".join(op.roles)}, who


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
            "suppressed_until_ms": a.suppressed_until_ms, "oos_until_ms": a.oos_until_ms,
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
        suppressed_until_ms=d.get("suppressed_until_ms"), oos_until_ms=d.get("oos_until_ms"),
    )


class AlarmBook:
    """All alarms of the installation, their metadata and the pending writes."""

    def __init__(self, cfg: Config, metas: dict[str, AlarmMeta], config_version: int | None,
                 points: dict | None = None):
        """``points``: point id -> the catalogue's point (quantity, unit, size), for the words
        of a page; without it a page names the alarm by its id."""
        self.cfg = cfg
        self.metas = metas
        self.config_version = config_version
        self.points = points or {}
        self.values: dict[str, tuple[float | None, int]] = {}  # point -> newest (value, ts)
        self._watched = {m.point for m in metas.values() if m.point}
        self._watched |= {f"{m.device}.conc" for m in metas.values() if m.device}
        self._static: dict[str, dict] = {}
        self._sites = {s.id: s for s in cfg.sites}
        self._zones = {z.id: z for z in cfg.zones}
        self._devices = {d.id: d for d in cfg.devices}
        self.states: dict[str, AlarmState] = {}
        self.pending = Pending()
        # begin_cycle .. settle_cycle: each touched alarm's state before the cycle, and where
        # the cycle's effects start in pending.effects
        self._cycle_start: dict[str, AlarmState] | None = None
        self._cycle_first = 0
        self.operators = {o.login: o for o in cfg.operators}
        # Timers touch only what is due (docs/ARCHITECTURE.md "Alarm lifecycle (ISA-18.2) and
        # paging"): a heap of shelve deadlines, and the alarms changed since the service last
        # looked (for its design suppression), instead of a scan of every alarm every cycle.
        self._shelves: list[tuple[int, str]] = []
        self.touched: set[str] = set()
        self.acting_via: str | None = None  # set while a relayed request is applied
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
            self.touched.add(row["id"])
            if st.shelved_until_ms is not None:
                heapq.heappush(self._shelves, (int(st.shelved_until_ms), row["id"]))
            n += 1
        return n

    def note_samples(self, samples) -> None:
        """Keep the newest reading of every alarmed point: a page re-reads it (a failed
        read is ``None``, "no reading", never the last good value)."""
        for s in samples:
            if s.point in self._watched:
                old = self.values.get(s.point)
                if old is None or s.ts_ms >= old[1]:
                    self.values[s.point] = (s.value, s.ts_ms)

    def context(self, aid: str, value: float | None = None,
                value_ms: int | None = None) -> AlarmContext:
        """Routing and page text for an alarm as it is now (``alarms.page_text``): where,
        what, the reading (``value``, else the newest one seen), the limit and its source,
        the instrument, the onset and the state."""
        m = self.metas[aid]
        st = self.states.get(aid)
        if value is None and m.point in self.values:
            value, value_ms = self.values[m.point]
        return AlarmContext(
            site=m.site, zone=m.zone, device=m.device, **self._words(aid, m), value=value,
            value_ms=value_ms, reading=self._reading(m), limit=m.limit,
            limit_name=m.limit_name, source=m.source, onset_ms=st.onset_ms if st else None,
            state=st.state.value if st else None, active=st.active if st else None)

    def _reading(self, m: AlarmMeta) -> str:
        """A gas detector's alarm bit says *that* it alarms; its concentration says how much."""
        p = self.points.get(m.point)
        if p is None or getattr(p, "quantity", "") != "gas_alarm" or not m.device:
            return ""
        conc = f"{m.device}.conc"
        cp = self.points.get(conc)
        if cp is None or conc not in self.values:
            return ""
        dev = self._devices.get(m.device)
        gas = dev.gas if dev is not None and dev.gas else "gas"
        return f"{gas} concentration {format_value(self.values[conc][0], cp.unit, cp.quantity)}"

    def _words(self, aid: str, m: AlarmMeta) -> dict:
        """The parts of a page that only the configuration decides (computed once)."""
        if aid in self._static:
            return self._static[aid]
        sites, zones, devices = self._sites, self._zones, self._devices
        site, zone, dev = sites.get(m.site or ""), zones.get(m.zone or ""), devices.get(
            m.device or "")
        p = self.points.get(m.point)
        quantity, unit = (getattr(p, "quantity", ""), getattr(p, "unit", "")) if p else ("", "")
        what = point_words((m.point or "").split(".", 1)[-1], quantity,
                           size_um=getattr(p, "size_um", None), gas=dev.gas if dev else None
                           ) if p else ""
        zone_name = zone.name if zone and zone.name else (m.zone or "")
        location = dev.location if dev and dev.location else ""
        if not location and dev and dev.cabinet:
            location = f"gas cabinet {dev.cabinet}"
        if not location and zone and quantity == "pressure_diff_zone" and zone.reference:
            ref = zones.get(zone.reference)
            location = f"{zone_name} vs {ref.name if ref and ref.name else zone.reference}"
        instrument = _instrument(dev)
        if not instrument and quantity == "pressure_diff_zone":  # the transmitters behind it
            instrument = ", ".join(_instrument(d) for d in self.cfg.devices for q in d.points
                                   if q.measures and q.measures.split(" - ")[0].strip() == m.zone)
        if not instrument and m.device == "system":
            instrument = "the monitoring service"
        words = {"site_name": site.name if site else "", "zone_name": zone_name,
                 "timezone": site.timezone if site else "UTC", "point": m.point, "what": what,
                 "unit": unit, "quantity": quantity, "instrument": instrument,
                 "location": location or zone_name}
        self._static[aid] = words
        return words

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
        if self._cycle_start is not None:
            self._cycle_start.setdefault(aid, old)
        self.states[aid] = new
        self.touched.add(aid)
        if new.shelved_until_ms is not None and new.shelved_until_ms != old.shelved_until_ms:
            heapq.heappush(self._shelves, (int(new.shelved_until_ms), aid))
        m = self.metas[aid]
        if value is not None and m.point and (m.point not in self.values
                                              or self.values[m.point][1] <= now_ms):
            self.values[m.point] = (value, now_ms)  # the reading that made the transition
        row = state_to_row(new, m, self.config_version, now_ms)
        if event is Event.RAISE:  # a new occurrence: detected now, nobody has acknowledged it
            row.update(detected_ms=now_ms, ack_by=None, ack_reason=None, ack_ms=None)
        elif event is Event.ACK and actor is not None:
            row.update(ack_by=actor.login, ack_reason=reason, ack_ms=now_ms)
        prev = self.pending.alarms.get(aid, {})
        self.pending.alarms[aid] = {**prev, **row}
        named, who = attribution(actor, self.acting_via)
        self.pending.events.append({
            "alarm_id": aid, "occurrence": new.occurrence, "event": event.value + (
                f":{by}" if event in (Event.SUPPRESS, Event.UNSUPPRESS) else ""),
            "state_from": old.state.value, "state_to": new.state.value,
            "ts_ms": ts_ms if ts_ms is not None else now_ms, "detected_ms": now_ms,
            "value": value, "limit": m.limit, "source": m.source,
            "actor": actor.login if actor else (None if by == "operator" else by),
            "reason": reason, "config_version": self.config_version,
            "details": json.dumps(detail or {}, sort_keys=True) if detail else None,
            **named,
        })
        for e in effects:
            if e.kind == "audit":
                self.pending.audit.append({
                    "action": event.value, "actor": e.actor, "subject": f"{aid}#{new.occurrence}",
                    "reason": reason, "details": {"from": old.state.value, "to": new.state.value,
                                                  "duration_s": duration_s, **(detail or {}),
                                                  **who},
                })
            else:
                self.pending.effects.append((e, self.context(
                    aid, value, now_ms if value is not None else None), backfill))
        return new

    def due_shelves(self, now_ms: int) -> list[str]:
        """Alarms whose shelve ends at or before ``now_ms`` (each once; popped from the heap;
        an entry whose alarm was unshelved or shelved again meanwhile is dropped)."""
        due: list[str] = []
        while self._shelves and self._shelves[0][0] <= now_ms:
            until, aid = heapq.heappop(self._shelves)
            if self.states[aid].shelved_until_ms == until:
                due.append(aid)
        return due

    def take_touched(self) -> set[str]:
        """The alarms changed since the last call (and forget them)."""
        out, self.touched = self.touched, set()
        return out

    def begin_cycle(self) -> None:
        """Start collecting one cycle's transitions for :meth:`settle_cycle`."""
        self._cycle_start = {}
        self._cycle_first = len(self.pending.effects)

    def settle_cycle(self) -> None:
        """Page only what is still annunciated after the cycle's lifecycle application.

        An alarm that ends the cycle hidden (suppressed by mode or design, shelved, out of
        service) had its raise in this cycle met by the hiding: its ``trigger`` is dropped,
        and so is everything of an occurrence that began in this cycle (it was never
        shown). The rows and events stay: the raise is recorded, not paged
        (docs/ARCHITECTURE.md "Alarm lifecycle (ISA-18.2) and paging"). An occurrence paged
        before keeps its ``update`` saying it is now hidden.
        """
        start, self._cycle_start = self._cycle_start, None
        if not start:
            return
        drop: dict[str, int | None] = {}  # alarm -> its unshown new occurrence (None: none)
        for aid, old in start.items():
            new = self.states[aid]
            if new.state in HIDDEN:
                drop[aid] = new.occurrence if new.occurrence != old.occurrence else None
        if not drop:
            return
        effects = self.pending.effects
        head, cycle = effects[:self._cycle_first], effects[self._cycle_first:]
        self.pending.effects = head + [
            (e, ctx, late) for e, ctx, late in cycle
            if e.alarm_id not in drop
            or not (e.kind == "trigger" or e.occurrence == drop[e.alarm_id])]

    def audit_refusal(self, login: str, action: str, subject: str, reason: str | None,
                      message: str) -> None:
        """Refused actions are audited too (who tried what, and why it was refused)."""
        self.pending.audit.append({"action": f"refused:{action}", "actor": login,
                                   "subject": subject, "reason": reason,
                                   "details": {"refusal": message,
                                               **attribution(self.operators.get(login),
                                                             self.acting_via)[1]}})

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
        current = {aid: self.context(aid) for aid, st in self.states.items()
                   if st.state in _PAGED_STATES}
        return PageBatch(live, late, final, now_ms, current)

    def active(self) -> list[AlarmState]:
        """Alarms not in NORM."""
        return [a for a in self.states.values() if a.state is not State.NORM]


def _instrument(dev: Device | None) -> str:
    """``MEC-GD-01 (arsine cabinet detector)``: the device and what kind of instrument it is."""
    if dev is None:
        return ""
    kind = (dev.description or (f"{dev.gas} {dev.monitor or 'room'} detector" if dev.gas else "")
            or (dev.profile or "").replace("-", " "))
    return f"{dev.id} ({kind})" if kind else dev.id
