"""The alarm screen: what needs the operator first, the alarm counts, the event history.

Order (docs/ARCHITECTURE.md "Alarm lifecycle", ISA-18.2 states): unacknowledged active alarms,
then acknowledged active ones, then returned-but-unacknowledged ones, then latched ones waiting
for their reset, then the hidden ones (shelved, suppressed while active, out of service); within
each tier by priority (critical first), then newest first, so a new alarm is never listed below
an old one that has already returned.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rich.text import Text

from facility.config.schema import Config
from facility.domain.display import fmt_value as unit_value
from facility.domain.vocab import PRIORITIES
from tui.data import Snapshot
from tui.fmt import PRIORITY_STYLE, STATE_STYLE, fmt_duration, priority_rank, short_time
from tui.views.common import site_tz

PRIO_SHORT = {"critical": "crit", "medium": "med"}
"""How a priority reads in narrow columns."""

COUNTED_STATES = ("UNACK", "ACKED", "RTNUN", "SHLVD", "DSUPR", "OOSRV")
"""The states the header counts, in the order it shows them (ISA-18.2)."""


def tier(a: dict) -> int:
    """0 unacknowledged and active, 1 acknowledged and active, 2 returned and unacknowledged,
    3 latched (returned and acknowledged, waiting for reset), 4 hidden (shelved, suppressed,
    out of service) or anything else."""
    state = a.get("state")
    if state == "UNACK":
        return 0 if a.get("active") else 2  # a latched UNACK whose condition returned
    if state == "ACKED":
        return 1 if a.get("active") else 3
    if state == "RTNUN":
        return 2
    return 4


def needs_attention(a: dict) -> bool:
    """Whether the operator still has something to do: the condition is present, or it has
    returned but nobody acknowledged it. Returned-and-acknowledged, hidden and normal alarms do
    not count (the overview once said "5 med" while every value was green)."""
    return tier(a) <= 2


def needs_ack(a: dict) -> bool:
    """Whether an acknowledgement would change this alarm (UNACK or RTNUN)."""
    return a.get("state") in ("UNACK", "RTNUN")


def listed(a: dict) -> bool:
    """Shown in the alarm list: not NORM; a DSUPR row only while its condition is active, and
    never the inactive mode's rules (suppressed by mode are recorded, not listed)."""
    if a.get("state") in (None, "NORM") and not a.get("active") and a.get("acked", 1):
        return False
    if a.get("state") == "DSUPR" and not a.get("active"):
        return False
    return "mode" not in ((a.get("details") or {}).get("suppressed_by") or ())


def sort_key(a: dict) -> tuple:
    """Tier, priority (critical first), newest onset first, then id (stable)."""
    return (tier(a), priority_rank(a.get("priority")), -(a.get("onset_ms") or 0), a["id"])


def sorted_alarms(snap: Snapshot) -> list[dict]:
    """The alarm list in the order of this module's docstring."""
    return sorted((a for a in snap.alarms if listed(a)), key=sort_key)


@dataclass(frozen=True)
class AlarmCounts:
    """What the header counts: alarms per ISA-18.2 state, and the ones needing attention per
    priority."""

    by_state: dict[str, int]
    by_priority: dict[str, int]

    @property
    def unack(self) -> int:
        """Alarms waiting for an acknowledgement (UNACK and RTNUN)."""
        return self.by_state.get("UNACK", 0) + self.by_state.get("RTNUN", 0)


def alarm_counts(alarms: list[dict]) -> AlarmCounts:
    """Counts of listed alarms per state, and of those needing attention per priority."""
    shown = [a for a in alarms if listed(a)]
    states = Counter(a.get("state") for a in shown)
    prios = Counter(a.get("priority") for a in shown if needs_attention(a))
    return AlarmCounts({s: states[s] for s in COUNTED_STATES if states[s]},
                       {p: prios[p] for p in PRIORITIES if prios[p]})


def counts_text(counts: AlarmCounts) -> Text:
    """``3 UNACK  1 ACKED  1 RTNUN  1 SHLVD │ need attention: 2 crit  2 high  1 med``."""
    out = Text()
    if not counts.by_state:
        out.append("no alarms", style="green")
        return out
    for i, (state, n) in enumerate(counts.by_state.items()):
        if i:
            out.append("  ")
        out.append(f"{n} {state}", style=STATE_STYLE.get(state, ""))
    out.append(" │ ", style="dim")
    if not counts.by_priority:
        out.append("nothing needs attention", style="green")
        return out
    out.append("need attention: ")
    for i, (prio, n) in enumerate(counts.by_priority.items()):
        if i:
            out.append("  ")
        out.append(f"{n} {PRIO_SHORT.get(prio, prio)}", style=PRIORITY_STYLE.get(prio, ""))
    return out


def zone_badge(alarms: list[dict]) -> Text:
    """The overview's alarm cell of one zone: active alarms (count and worst priority, reversed
    while one is unacknowledged), then returned ones still to acknowledge; ``ok`` otherwise."""
    active = [a for a in alarms if tier(a) <= 1]
    returned = [a for a in alarms if tier(a) == 2]
    if not active and not returned:
        return Text("ok", style="green")
    out = Text()
    if active:
        worst = min((a.get("priority") for a in active), key=priority_rank) or "?"
        unack = any(a.get("state") == "UNACK" for a in active)
        style = PRIORITY_STYLE.get(worst, "") + (" reverse" if unack else "")
        out.append(f"{len(active)} {PRIO_SHORT.get(worst, worst)}", style=style.strip())
    if returned:
        out.append(f"{' +' if active else ''}{len(returned)} rtn", style="italic")
    return out


ALARM_COLUMNS = ("Prio", "State", "Alarm", "#", "Onset", "Value", "Limit")
MARK = "●"


def alarm_rows(cfg: Config, snap: Snapshot, marked: frozenset[str] | set[str] = frozenset()
               ) -> list[tuple[str, list]]:
    """Rows of the alarm list; UNACK rows are bold and reversed across every cell; rows in
    ``marked`` (for a multi-acknowledge) carry a mark before their priority, in the first column
    so it shows at any terminal width."""
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
        value, unit, quantity, name = None, "", None, None
        if a.get("point"):
            value = snap.value(a["point"])[0]
            pt = snap.points.get(a["point"]) or {}
            unit, quantity = pt.get("unit") or "", pt.get("quantity")
            name = a["point"].rsplit(".", 1)[-1]
        prio = a.get("priority") or ""
        base = "bold reverse" if state == "UNACK" else ""
        cells = [Text.assemble((MARK if a["id"] in marked else " ", "bold cyan"),
                               (PRIO_SHORT.get(prio, prio),
                                f"{PRIORITY_STYLE.get(prio, '')} {base}".strip())),
                 Text(state_txt, style=STATE_STYLE.get(state, "") or base),
                 Text(a["id"], style=base), Text(str(a.get("occurrence") or ""), style=base),
                 Text(short_time(a.get("onset_ms"), tz), style=base),
                 Text(unit_value(value, unit, quantity, name=name) if a.get("point") else "",
                      style=base),
                 Text(unit_value(a.get("limit"), unit, quantity, name=name)
                      if a.get("limit") is not None else "", style=base)]
        rows.append((a["id"], cells))
    return rows


HISTORY_COLUMNS = ("Time", "Alarm", "#", "Event", "From→To", "Actor", "Reason")


def history_rows(cfg: Config, snap: Snapshot, events: list[dict] | None = None,
                 tz: str | None = None) -> list[tuple[str, list]]:
    """Events (the focused alarm's, the most recent ones, or ``events``), newest first."""
    tz = tz or site_tz(cfg, None)
    rows = []
    for ev in reversed(snap.history if events is None else events):
        trans = f"{ev.get('state_from') or ''}→{ev.get('state_to') or ''}"
        rows.append((str(ev["id"]), [short_time(ev.get("ts_ms"), tz), ev.get("alarm_id") or "",
                                     str(ev.get("occurrence") or ""), ev.get("event") or "", trans,
                                     ev.get("actor") or "", (ev.get("reason") or "")[:60]]))
    return rows
