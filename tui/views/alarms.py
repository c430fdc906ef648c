"""The alarm screen: annunciated alarms first (by priority, then onset), their ISA-18.2
state, and the event history of the highlighted one."""

from __future__ import annotations

from rich.text import Text

from facility.config.schema import Config
from tui.data import Snapshot
from tui.fmt import PRIORITY_STYLE, STATE_STYLE, fmt_duration, fmt_value, priority_rank, short_time
from tui.views.common import ALARM_STATES_ACTIVE, site_tz


def sorted_alarms(snap: Snapshot) -> list[dict]:
    """Annunciated alarms by priority (critical first), then onset (oldest first); shelved,
    out-of-service and suppressed ones (the latter only while their condition is active)
    follow, so they stay visible without burying what needs attention. The inactive mode's
    rules (DSUPR by mode) are recorded, not listed."""
    shown = [a for a in snap.active_alarms()
             if not (a.get("state") == "DSUPR" and not a.get("active"))
             and "mode" not in ((a.get("details") or {}).get("suppressed_by") or ())]
    return sorted(shown, key=lambda a: (a.get("state") not in ALARM_STATES_ACTIVE,
                                        priority_rank(a.get("priority")),
                                        a.get("onset_ms") or 0, a["id"]))


ALARM_COLUMNS = ("Prio", "State", "Alarm", "#", "Onset", "Value", "Limit")


def alarm_rows(cfg: Config, snap: Snapshot) -> list[tuple[str, list]]:
    """Rows of the alarm list; UNACK rows are bold and reversed across every cell."""
    rows = []
    for a in sorted_alarms(snap):
        tz = site_tz(cfg, a.get("site"))
        state = a.get("state") or "?"
        if state == "SHLVD" and a.get("shelved_until_ms"):
            left = (a["shelved_until_ms"] - snap.now_ms) / 1000.0
            state_txt = f"SHLVD {fmt_duration(left)}"
        else:
            state_txt = state
        if a.get("chattering"):  # tui.data: chattering (ISA-18.2), paged once per min_repage_s
            state_txt += " CHAT"
        value = None
        if a.get("point"):
            value = snap.value(a["point"])[0]
        prio = a.get("priority") or ""
        base = "bold reverse" if state == "UNACK" else ""
        cells = [Text({"medium": "med", "critical": "crit"}.get(prio, prio), style=f"{PRIORITY_STYLE.get(prio, '')} {base}".strip()),
                 Text(state_txt, style=STATE_STYLE.get(state, "") or base),
                 Text(a["id"], style=base), Text(str(a.get("occurrence") or ""), style=base),
                 Text(short_time(a.get("onset_ms"), tz), style=base),
                 Text(fmt_value(value, 2), style=base),
                 Text(fmt_value(a.get("limit"), 2) if a.get("limit") is not None else "",
                      style=base)]
        rows.append((a["id"], cells))
    return rows


HISTORY_COLUMNS = ("Time", "Alarm", "#", "Event", "From→To", "Actor", "Reason")


def history_rows(cfg: Config, snap: Snapshot) -> list[tuple[str, list]]:
    """Events of the focused alarm (or the most recent events), newest first."""
    tz = site_tz(cfg, None)
    rows = []
    for ev in reversed(snap.history):
        trans = f"{ev.get('state_from') or ''}→{ev.get('state_to') or ''}"
        rows.append((str(ev["id"]), [short_time(ev.get("ts_ms"), tz), ev.get("alarm_id") or "",
                                     str(ev.get("occurrence") or ""), ev.get("event") or "", trans,
                                     ev.get("actor") or "", (ev.get("reason") or "")[:60]]))
    return rows
