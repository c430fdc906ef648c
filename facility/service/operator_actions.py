"""Operator actions inside the service: identity, roles, occurrences, modes, schedules.

Every request names the operator only through the socket's peer credentials, must give a
reason (Annex 11 §9), and for alarm actions names the occurrence it acts on; a request for
a superseded occurrence is refused. Accepted and refused actions are both audit rows.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from alarms.lifecycle import Event, Refused
from facility.config.schema import Config
from facility.domain.model import now_ms
from facility.domain.vocab import ZONE_MODES, has_role
from facility.service.alarm_book import AlarmBook

# action -> (lifecycle event, role needed). Roles are configured per login in [[operators]].
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

    def __init__(self, ctx: ActionContext):
        self.ctx = ctx
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
        if action == "hazmat":
            reply = await self._hazmat(login, req)
        else:
            reply = self._decide(login, action, req)
        await self.ctx.flush()
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
            book.pending.audit.append({"action": "comment", "actor": login,
                                       "subject": f"{aid}#{st.occurrence}", "reason": reason,
                                       "details": {"state": st.state.value}})
            book.pending.events.append({
                "alarm_id": aid, "occurrence": st.occurrence, "event": "comment",
                "state_from": st.state.value, "state_to": st.state.value, "ts_ms": now,
                "detected_ms": now, "actor": login, "reason": reason,
                "config_version": book.config_version})
            return {"ok": True, "message": f"comment on {aid}#{st.occurrence} recorded"}
        event = ALARM_ACTIONS[action][0]
        duration = req.get("duration_s")
        result = book.apply(aid, event, now_ms=now, actor=op, reason=reason,
                            duration_s=float(duration) if duration is not None else None,
                            by="operator")
        if isinstance(result, Refused):
            return self._refuse(login, action, f"{aid}#{st.occurrence}", reason, result.message)
        return {"ok": True, "message": f"{action} {aid}#{result.occurrence}: now {result.state.value}",
                "state": result.state.value, "occurrence": result.occurrence}

    def _device(self, op, action: str, req: dict, reason: str, now: int) -> dict:
        book = self.ctx.book
        dev = str(req.get("device") or "")
        if dev not in {d.id for d in self.ctx.cfg.devices}:
            return self._refuse(op.login, action, dev, reason, f"unknown device {dev!r}")
        event = Event.OOS if action == "oos" else Event.RETURN
        changed = 0
        for aid, meta in book.metas.items():
            if meta.device == dev:
                if not isinstance(book.apply(aid, event, now_ms=now, actor=op, reason=reason),
                                  Refused):
                    changed += 1
        book.pending.audit.append({"action": action, "actor": op.login, "subject": dev,
                                   "reason": reason, "details": {"alarms": changed}})
        word = "out of service" if action == "oos" else "back in service"
        return {"ok": True, "message": f"{dev} {word} ({changed} alarms)"}

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
        """Change a zone's mode (operator or schedule); suppression follows next cycle."""
        old = self.ctx.modes.get(zone, (None, None))[0]
        self.ctx.modes[zone] = (mode, now)
        self._mode_rows.append({"zone": zone, "mode": mode, "since_ms": now, "actor": actor,
                                "reason": reason})
        self.ctx.book.pending.audit.append({"action": "mode", "actor": actor, "subject": zone,
                                            "reason": reason, "details": {"from": old, "to": mode}})
        self.ctx.resuppress(now)

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
