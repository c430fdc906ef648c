"""Operator actions inside the service: identity, roles, occurrences, modes, schedules.

Every request names the operator only through the socket's peer credentials, must give a
reason (Annex 11 §9), and for alarm actions names the occurrence it acts on; a request for
a superseded occurrence is refused. Accepted and refused actions are both audit rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from alarms.lifecycle import Event, Refused
from facility.domain.model import now_ms

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
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _has(op, role: str) -> bool:
    return role in op.roles or "admin" in op.roles


class ActionHandler:
    """Applies operator requests to the service's alarm book and zone modes."""

    def __init__(self, service):
        self.svc = service
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
            return {"ok": True, "message": f"service pid {__import__('os').getpid()} running"}
        reply = self._decide(login, action, req)
        await self.svc._flush([], now_ms())
        return reply

    def _refuse(self, login: str, action: str, subject: str, reason, message: str) -> dict:
        self.svc.book.audit_refusal(login, action, subject, reason, message)
        return {"ok": False, "message": message}

    def _decide(self, login: str, action: str, req: dict) -> dict:
        book = self.svc.book
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
        book = self.svc.book
        dev = str(req.get("device") or "")
        if dev not in {d.id for d in self.svc.cfg.devices}:
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

    def _mode(self, op, req: dict, reason: str, now: int, actor: str | None = None) -> dict:
        zone, mode = str(req.get("zone") or ""), str(req.get("mode") or "")
        if zone not in {z.id for z in self.svc.cfg.zones}:
            return self._refuse(op.login if op else actor, "mode", zone, reason,
                                f"unknown zone {zone!r}")
        if mode not in ("at_rest", "in_operation"):
            return self._refuse(op.login if op else actor, "mode", zone, reason,
                                f"mode {mode!r} is not at_rest or in_operation")
        self.set_mode(zone, mode, now, op.login if op else actor, reason)
        return {"ok": True, "message": f"{zone} is now {mode}"}

    def set_mode(self, zone: str, mode: str, now: int, actor: str, reason: str) -> None:
        """Change a zone's mode (operator or schedule); suppression follows next cycle."""
        old = self.svc.modes.get(zone, (None, None))[0]
        self.svc.modes[zone] = (mode, now)
        self._mode_rows.append({"zone": zone, "mode": mode, "since_ms": now, "actor": actor,
                                "reason": reason})
        self.svc.book.pending.audit.append({"action": "mode", "actor": actor, "subject": zone,
                                            "reason": reason, "details": {"from": old, "to": mode}})
        self.svc._mode_suppression(now)

    def apply_schedules(self, now: int) -> None:
        """Apply configured mode schedules whose time passed since the last check."""
        last, self._last_schedule_ms = self._last_schedule_ms, now
        for zone in self.svc.cfg.zones:
            if not zone.schedule:
                continue
            tz = ZoneInfo(self.svc.cfg.site(zone.site).timezone)
            for entry in zone.schedule:
                for t in _entry_times(entry, tz, last, now):
                    mode = entry.rsplit(" ", 1)[1]
                    if self.svc.modes.get(zone.id, (None,))[0] != mode:
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
    for d in range(0, 2 + (to_ms - from_ms) // 86_400_000):
        day = (start + timedelta(days=d)).replace(hour=h, minute=m, second=0, microsecond=0)
        t = int(day.timestamp() * 1000)
        if day.weekday() in allowed and from_ms < t <= to_ms:
            out.append(t)
    return out
