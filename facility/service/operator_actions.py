"""Operator actions inside the service: identity, roles, occurrences, modes, schedules.

Every request names the operator only through the socket's peer credentials, must give a
reason (Annex 11 §9), and for alarm actions names the occurrence it acts on; a request for
a superseded occurrence is refused. Accepted and refused actions are both audit rows.

Roles are explicit sets (``facility.domain.vocab.has_role``): an action needs the role in
``ALARM_ACTIONS`` / ``OTHER_ROLES``, and hiding a critical alarm needs ``shelve_critical``
besides (docs/ARCHITECTURE.md "Critical alarms"). Every hide has an end: shelve and
suppress always take a duration, out of service does for a device with critical alarms, and
``ActionHandler.expire`` ends them (an event and an audit row each).
"""

from __future__ import annotations

import math
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from alarms.lifecycle import Event, Refused
from facility.config.schema import Config
from facility.domain.model import iso_ms, now_ms
from facility.domain.text import REASON_MAX
from facility.domain.vocab import ZONE_MODES, has_role
from facility.service.alarm_book import AlarmBook, attribution
from facility.service.socket import INVALID_REQUEST, current_login

# action -> (lifecycle event, role needed). Roles are configured per login in [[operators]];
# a critical alarm also needs shelve_critical to be shelved (alarms.lifecycle) or taken out
# of service with its device (ActionHandler._device), and cannot be suppressed at all.
ALARM_ACTIONS = {
    "ack": (Event.ACK, "technician"),
    "reset": (Event.RESET, "technician"),
    "shelve": (Event.SHELVE, "technician"),
    "unshelve": (Event.UNSHELVE, "technician"),
    "suppress": (Event.SUPPRESS, "engineer"),
    "unsuppress": (Event.UNSUPPRESS, "engineer"),
}
OTHER_ROLES = {"comment": "technician", "oos": "engineer", "return": "engineer",
               "mode": "technician"}
HAZMAT_ROLE = "hazmat"  # the "hazmat" action: a dangerous-goods movement (receive, issue, move)
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY_MS = 86_400_000


def _has(op, role: str) -> bool:
    return has_role(op.roles, role)


@dataclass(frozen=True)
class ActionContext:
    """All that operator actions may touch of the running service.

    Everything here lives on the event loop, where requests are applied; nothing of it is
    handed to the writer thread except through ``flush`` (a cycle's worth of rows).
    """

    cfg: Config
    book: AlarmBook
    """The alarms: states, metadata, operators and the rows pending for the next write."""
    modes: dict[str, tuple[str, int | None]]
    """Zone -> (mode, since_ms), the service's own dict: a change here is the live mode."""
    resuppress: Callable[[int], None]
    """Re-evaluate mode suppression at a time (ms) after a mode change."""
    flush: Callable[[], Awaitable[None]]
    """Write everything pending now (an action's rows are stored before its reply)."""
    book_hazmat: Callable[[str, str, dict], Awaitable[list[str]]] | None = None
    """Book a dangerous-goods movement ``(login, movement, fields)`` on the writer thread, in
    its own transaction (the service is the ledger's one writer); its lines, or HazmatError."""


class ActionHandler:
    """Applies operator requests to the service's alarm book and zone modes."""

    def __init__(self, ctx: ActionContext, relay_login: str | None = None):
        self.ctx = ctx
        self.relay_login = relay_login or current_login()
        """The one login that may relay a request on behalf of an operator (``facility
        uplink`` relaying central's actions runs under the service's own account)."""
        self._mode_rows: list[dict] = []
        self._last_schedule_ms = now_ms()

    def take_mode_rows(self) -> list[dict]:
        """Zone-mode rows changed since the last write."""
        rows, self._mode_rows = self._mode_rows, []
        return rows

    async def handle(self, login: str, req: dict) -> dict:
        """Answer one request from ``login`` (the socket's peer credentials)."""
        action = str(req.get("action") or "")
        if action == "ping":
            return {"ok": True, "message": f"service pid {os.getpid()} running"}
        problem = request_problem(req)
        behalf = req.get("on_behalf_of")
        book = self.ctx.book
        if problem is None and behalf is not None:
            # a relay (the uplink, under the service's own account) acts for an operator of
            # this site; who may do what is decided here, as for a local request
            if login != self.relay_login:
                problem = (f"{login} may not act on behalf of another operator; only the"
                           f" service account {self.relay_login} relays requests")
            else:
                login, book.acting_via = behalf, str(req.get("via") or "relay")
        try:
            if problem is not None:
                reply = self._refuse(login, *_refusal_subject(req), problem)
            elif action == "hazmat":
                reply = await self._hazmat(login, req)
            else:
                reply = self._decide(login, action, req)
            await self.ctx.flush()
        finally:
            book.acting_via = None
        return reply

    def _refuse(self, login: str, action: str, subject: str, reason, message: str) -> dict:
        self.ctx.book.audit_refusal(login, action, subject, reason, message)
        return {"ok": False, "message": message}

    async def _hazmat(self, login: str, req: dict) -> dict:
        """A dangerous-goods movement (``hazmat.commands.MOVEMENTS``), refused and audited
        like any action when the login lacks the role or the ledger refuses it."""
        from hazmat.classes import HazmatError

        movement = str(req.get("movement") or "")
        action, subject = f"hazmat_{movement}", str(req.get("container") or "")
        reason = (req.get("reason") or "").strip() or None
        op = self.ctx.book.operators.get(login)
        if op is None:
            return self._refuse(login, action, subject, reason,
                                f"login {login!r} is not an operator; add it to [[operators]]")
        if not _has(op, HAZMAT_ROLE):
            return self._refuse(login, action, subject, reason,
                                f"{login} lacks role {HAZMAT_ROLE!r} needed to book dangerous goods")
        if self.ctx.book_hazmat is None:
            return self._refuse(login, action, subject, reason, "this service keeps no ledger")
        try:
            lines = await self.ctx.book_hazmat(login, movement, req)
        except HazmatError as exc:
            return self._refuse(login, action, subject, reason, str(exc))
        return {"ok": True, "message": lines[0] if lines else "booked", "lines": lines}

    def _decide(self, login: str, action: str, req: dict) -> dict:
        book = self.ctx.book
        reason = (req.get("reason") or "").strip() or None
        subject = str(req.get("alarm") or req.get("device") or req.get("zone") or "")
        op = book.operators.get(login)
        if action not in ALARM_ACTIONS and action not in OTHER_ROLES:
            return self._refuse(login, action, subject, reason, f"unknown action {action!r}")
        if op is None:
            return self._refuse(login, action, subject, reason,
                                f"login {login!r} is not an operator; add it to [[operators]]")
        role = ALARM_ACTIONS[action][1] if action in ALARM_ACTIONS else OTHER_ROLES[action]
        if not _has(op, role):
            return self._refuse(login, action, subject, reason,
                                f"{login} lacks role {role!r} needed to {action}")
        if reason is None:
            return self._refuse(login, action, subject, reason,
                                f"{action} needs --reason TEXT (EU GMP Annex 11 9)")
        now = now_ms()
        if action == "mode":
            return self._mode(op, req, reason, now)
        if action in ("oos", "return"):
            return self._device(op, action, req, reason, now)
        aid = str(req.get("alarm") or "")
        st = book.states.get(aid)
        if st is None:
            return self._refuse(login, action, aid, reason, f"unknown alarm {aid!r}")
        occ = req.get("occurrence")
        if occ is not None and int(occ) != st.occurrence:
            return self._refuse(login, action, f"{aid}#{occ}", reason,
                                f"occurrence #{occ} of {aid} is superseded by #{st.occurrence}")
        if action == "comment":
            named, who = attribution(op, book.acting_via)
            book.pending.audit.append({"action": "comment", "actor": login,
                                       "subject": f"{aid}#{st.occurrence}", "reason": reason,
                                       "details": {"state": st.state.value, **who}})
            book.pending.events.append({
                "alarm_id": aid, "occurrence": st.occurrence, "event": "comment",
                "state_from": st.state.value, "state_to": st.state.value, "ts_ms": now,
                "detected_ms": now, "actor": login, "reason": reason,
                "config_version": book.config_version, **named})
            return {"ok": True, "message": f"comment on {aid}#{st.occurrence} recorded"}
        event = ALARM_ACTIONS[action][0]
        duration, why = _duration(req)
        if why:
            return self._refuse(login, action, f"{aid}#{st.occurrence}", reason, why)
        result = book.apply(aid, event, now_ms=now, actor=op, reason=reason,
                            duration_s=duration, by="operator")
        if isinstance(result, Refused):
            return self._refuse(login, action, f"{aid}#{st.occurrence}", reason, result.message)
        return {"ok": True, "message": f"{action} {aid}#{result.occurrence}: now {result.state.value}",
                "state": result.state.value, "occurrence": result.occurrence}

    def _device(self, op, action: str, req: dict, reason: str, now: int) -> dict:
        book = self.ctx.book
        dev = str(req.get("device") or "")
        if dev not in {d.id for d in self.ctx.cfg.devices}:
            return self._refuse(op.login, action, dev, reason, f"unknown device {dev!r}")
        duration, why = _duration(req) if action == "oos" else (None, None)
        if action == "oos" and not why:
            why = self._oos_refusal(op, dev, duration)
        if why:
            return self._refuse(op.login, action, dev, reason, why)
        event = Event.OOS if action == "oos" else Event.RETURN
        changed = 0
        for aid, meta in book.metas.items():
            if meta.device == dev:
                if not isinstance(book.apply(aid, event, now_ms=now, actor=op, reason=reason,
                                             duration_s=duration), Refused):
                    changed += 1
        until = now + int(round(duration * 1000)) if duration is not None else None
        details: dict = {"alarms": changed}
        if action == "oos":
            details.update(duration_s=duration, until_ms=until)
        book.pending.audit.append({"action": action, "actor": op.login, "subject": dev,
                                   "reason": reason,
                                   "details": {**details, **attribution(op, book.acting_via)[1]}})
        if action == "return":
            return {"ok": True, "message": f"{dev} back in service ({changed} alarms)"}
        end = f"until {iso_ms(until)}" if until is not None else "until `facility return`"
        return {"ok": True, "message": f"{dev} out of service {end} ({changed} alarms)"}

    def _oos_refusal(self, op, dev: str, duration: float | None) -> str | None:
        """Why ``dev`` may not go out of service now, decided for the whole device (so it
        never ends half out of service): a device with critical alarms needs role
        shelve_critical and a duration of at most ``max_oos_critical_s``."""
        book = self.ctx.book
        critical = sorted(aid for aid, m in book.metas.items()
                          if m.device == dev and book.states[aid].critical)
        if not critical:
            return None
        names = ", ".join(critical[:3]) + (f" and {len(critical) - 3} more"
                                          if len(critical) > 3 else "")
        if not _has(op, "shelve_critical"):
            return (f"{op.login} lacks role 'shelve_critical' needed to take {dev} out of"
                    f" service: it has critical alarms ({names})")
        limit = self.ctx.cfg.alarms.max_oos_critical_s
        if duration is None:
            return (f"{dev} has critical alarms ({names}): out of service needs --for DURATION,"
                    f" at most max_oos_critical_s={limit:g} s")
        if duration > limit:
            return (f"duration {duration:g} s exceeds max_oos_critical_s={limit:g} for {dev},"
                    f" which has critical alarms ({names})")
        return None

    def expire(self, now: int) -> None:
        """End the operator suppressions and the out-of-service periods whose time is up.

        Each expiry is an event row (``suppress_expired`` / ``oos_expired``, actor "timer",
        from ``AlarmBook.apply``) and an audit row (one per alarm, one per device); the
        alarms then show their true state (docs/ARCHITECTURE.md "Critical alarms").
        """
        book = self.ctx.book
        devices: dict[str, list[int]] = {}  # device -> [alarms back in service, end time]
        for aid, st in list(book.states.items()):
            if st.suppressed_until_ms is not None and now >= st.suppressed_until_ms:
                until = st.suppressed_until_ms
                if not isinstance(book.apply(aid, Event.SUPPRESS_EXPIRED, now_ms=now,
                                             by="timer"), Refused):
                    book.pending.audit.append({
                        "action": "suppress_expired", "actor": "timer",
                        "subject": f"{aid}#{st.occurrence}",
                        "reason": f"suppressed until {iso_ms(until)}",
                        "details": {"until_ms": until}})
            if st.oos_until_ms is not None and now >= st.oos_until_ms:
                until = st.oos_until_ms
                if not isinstance(book.apply(aid, Event.OOS_EXPIRED, now_ms=now, by="timer"),
                                  Refused):
                    seen = devices.setdefault(book.metas[aid].device or aid, [0, until])
                    seen[0], seen[1] = seen[0] + 1, min(seen[1], until)
        for dev, (n, until) in devices.items():
            book.pending.audit.append({
                "action": "oos_expired", "actor": "timer", "subject": dev,
                "reason": f"out of service until {iso_ms(until)}",
                "details": {"alarms": n, "until_ms": until}})

    def _mode(self, op, req: dict, reason: str, now: int) -> dict:
        zone, mode = str(req.get("zone") or ""), str(req.get("mode") or "")
        if zone not in {z.id for z in self.ctx.cfg.zones}:
            return self._refuse(op.login, "mode", zone, reason, f"unknown zone {zone!r}")
        if mode not in ZONE_MODES:
            return self._refuse(op.login, "mode", zone, reason,
                                f"mode {mode!r} is not at_rest or in_operation")
        self.set_mode(zone, mode, now, op.login, reason)
        return {"ok": True, "message": f"{zone} is now {mode}"}

    def set_mode(self, zone: str, mode: str, now: int, actor: str, reason: str) -> None:
        """Change a zone's mode (operator or schedule); suppression follows at once."""
        self._record_mode(zone, mode, now, actor, reason)
        self.ctx.resuppress(now)

    def _record_mode(self, zone: str, mode: str, since: int, actor: str, reason: str) -> None:
        """The live mode, its ``zone_modes`` row and its audit row."""
        old = self.ctx.modes.get(zone, (None, None))[0]
        self.ctx.modes[zone] = (mode, since)
        self._mode_rows.append({"zone": zone, "mode": mode, "since_ms": since, "actor": actor,
                                "reason": reason})
        who = attribution(self.ctx.book.operators.get(actor), self.ctx.book.acting_via)[1]
        self.ctx.book.pending.audit.append({"action": "mode", "actor": actor, "subject": zone,
                                            "reason": reason,
                                            "details": {"from": old, "to": mode, **who}})

    def resume_schedules(self, now: int, stored: dict[str, int | None]) -> None:
        """At start-up, before the first cycle: put each scheduled zone in the mode its
        schedule says for ``now`` unless a stored mode (``stored``: zone -> since_ms, an
        operator's or the schedule's own) is newer than the schedule's last boundary, so a
        boundary passed while the service was down is in force from the first cycle and an
        operator's later override stands (docs/ARCHITECTURE.md "Alarm lifecycle (ISA-18.2)
        and paging"). The mode starts at that boundary, so the recovery time after
        in_operation -> at_rest counts from it. The caller applies mode suppression next.
        """
        self._last_schedule_ms = now
        for zone in self.ctx.cfg.zones:
            last = scheduled_mode(zone.schedule, ZoneInfo(self.ctx.cfg.site(zone.site).timezone),
                                  now) if zone.schedule else None
            if last is None:
                continue
            mode, since, entry = last
            if zone.id in stored and (stored[zone.id] or 0) >= since:
                continue  # set after the boundary (operator override): it stands
            if self.ctx.modes.get(zone.id, (None,))[0] != mode:
                self._record_mode(zone.id, mode, since, "schedule", f"schedule: {entry}")

    def apply_schedules(self, now: int) -> None:
        """Apply configured mode schedules whose time passed since the last check."""
        last, self._last_schedule_ms = self._last_schedule_ms, now
        for zone in self.ctx.cfg.zones:
            if not zone.schedule:
                continue
            tz = ZoneInfo(self.ctx.cfg.site(zone.site).timezone)
            for entry in zone.schedule:
                for t in _entry_times(entry, tz, last, now):
                    mode = entry.rsplit(" ", 1)[1]
                    if self.ctx.modes.get(zone.id, (None,))[0] != mode:
                        self.set_mode(zone.id, mode, t, "schedule", f"schedule: {entry}")


TEXT_FIELDS = ("action", "alarm", "device", "zone", "mode", "movement", "container", "substance",
               "unit", "store", "compartment", "reason", "on_behalf_of", "via")
"""Request fields that, when present, must be JSON strings (the rest are numbers)."""


def request_problem(req: dict) -> str | None:
    """Why a request cannot be acted on as sent (one line), before any role or state check.

    The socket hands over what any local user wrote: a field of the wrong JSON type or a
    reason longer than ``REASON_MAX`` is refused here, and the refusal audited like any
    other, instead of failing somewhere inside (docs/ARCHITECTURE.md "The action socket
    under abuse").
    """
    if req.get("action") == INVALID_REQUEST:
        return str(req.get("refusal") or "bad request")
    for name in TEXT_FIELDS:
        value = req.get(name)
        if value is not None and not isinstance(value, str):
            return f"bad request: {name} must be text, not {_json_type(value)}"
    for name, kinds in (("occurrence", (int,)), ("quantity", (int, float))):
        value = req.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            return f"bad request: {name} must be a number, not {_json_type(value)}"
    reason = (req.get("reason") or "").strip()
    if len(reason) > REASON_MAX:
        return (f"reason is {len(reason)} characters, at most {REASON_MAX} are accepted;"
                " shorten it")
    return None


def _refusal_subject(req: dict) -> tuple[str, str, str | None]:
    """(action, subject, reason) of a refused request for its audit row: only what is text,
    and the reason cut to ``REASON_MAX`` characters (the refusal says how long it was)."""
    def text(name: str) -> str | None:
        value = req.get(name)
        return value if isinstance(value, str) else None

    action = text("action") or "request"
    if action == INVALID_REQUEST:
        action = "request"
    elif action == "hazmat":  # as ActionHandler._hazmat names it
        action = f"hazmat_{text('movement') or ''}"
    subject = text("alarm") or text("device") or text("zone") or text("container") or ""
    reason = (text("reason") or "").strip()[:REASON_MAX] or None
    return action, subject, reason


def _json_type(value) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _duration(req: dict) -> tuple[float | None, str | None]:
    """The request's ``duration_s`` in seconds (None when absent), or why it is unusable."""
    raw = req.get("duration_s")
    if raw is None:
        return None, None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None, f"duration_s={raw!r} is not a number of seconds; use e.g. --for 30m"
    if not math.isfinite(value) or value <= 0:
        return None, f"duration_s={raw!r} must be a finite number of seconds > 0, e.g. --for 30m"
    return value, None


def scheduled_mode(schedule, tz: ZoneInfo, now: int) -> tuple[str, int, str] | None:
    """What a zone's schedule says for ``now``: (mode, time of the boundary that set it,
    the entry), from the latest boundary in the week before ``now``; None without one."""
    best: tuple[int, str] | None = None
    for entry in schedule:
        times = _entry_times(entry, tz, now - 7 * DAY_MS, now)
        if times and (best is None or times[-1] > best[0]):
            best = (times[-1], entry)
    if best is None:
        return None
    return best[1].rsplit(" ", 1)[1], best[0], best[1]


def _entry_times(entry: str, tz: ZoneInfo, from_ms: int, to_ms: int) -> list[int]:
    """Times in (from_ms, to_ms] at which a schedule entry such as "Mon-Fri 08:00 x" fires."""
    days, hhmm, _mode = entry.split(" ")
    first, _, last = days.partition("-")
    lo, hi = DAYS.index(first), DAYS.index(last or first)
    allowed = set(range(lo, hi + 1)) if lo <= hi else set(range(lo, 7)) | set(range(0, hi + 1))
    h, m = (int(x) for x in hhmm.split(":"))
    start = datetime.fromtimestamp(from_ms / 1000, tz)
    out = []
    # whole days in the window, plus the day it starts on and the one a partial day reaches
    for d in range(0, 2 + (to_ms - from_ms) // DAY_MS):
        day = (start + timedelta(days=d)).replace(hour=h, minute=m, second=0, microsecond=0)
        t = int(day.timestamp() * 1000)
        if day.weekday() in allowed and from_ms < t <= to_ms:
            out.append(t)
    return out
