"""The campus overview: one row per mirrored site (docs/ARCHITECTURE.md "Campus (Sparkplug
B)"): whether its edge node is online or since when it is OFFLINE, its zones and the worst of
them, the alarms needing attention by priority, the devices with a communication fault or
stale data, how old the newest mirrored value is, and whether the edge's signed chain head
matched what central mirrored. Central's own alarms (``campus:<site>:offline``, from central's
own database) that need attention get a line each above the sites' alert lines and count in
the summary's need-attention figures.

Every text that comes from a site (site, zone, device and alarm ids, the trust check's words)
is shown as data: Rich ``Text`` built from :func:`facility.domain.text.clean_terminal`, never
markup (docs/ARCHITECTURE.md "Operator text is data").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text

from facility.config.schema import Config
from facility.domain.text import clean_terminal
from facility.domain.vocab import PRIORITIES
from tui.campus_data import CampusSnapshot, SiteState, mirror_tz
from tui.fmt import PRIORITY_STYLE, fmt_duration, local_time, priority_rank
from tui.views.alarms import PRIO_SHORT, alarm_counts, listed, needs_attention, tier, zone_badge

CAMPUS_COLUMNS = ("Site", "Node", "Edge node", "Zones", "Worst zone", "Alarms", "Comm",
                  "Data age", "Trust")

DATA_AGE_WARN_S = 60.0
"""A newest mirrored value older than this is shown yellow (a site writes every second)."""
DATA_AGE_BAD_S = 300.0
"""... and older than this red."""

COMM_FAULT, STALE = 2, 3  # facility.domain.model.Quality.COMM, .STALE


def text(value: object, style: str = "") -> Text:
    """Site data as shown: plain characters, no markup, no terminal control sequences."""
    return Text(clean_terminal(str(value)), style=style)


@dataclass(frozen=True)
class SiteRow:
    """What the campus overview says about one site."""

    site: str
    node: str
    tz: str
    exists: bool  # the mirror database exists
    error: str | None  # the mirror could not be read
    online: bool | None  # None: central has not seen the node's birth yet
    since_ms: int | None  # when the node came online / went OFFLINE
    zones: tuple[str, ...] = ()
    worst_zone: str | None = None
    worst_zone_alarms: tuple[dict, ...] = ()
    worst_zone_quality: int | None = None  # the worst quality of its points when no alarm
    attention: dict[str, int] = field(default_factory=dict)  # priority -> alarms needing attention
    unack: int = 0
    devices: int = 0
    comm_faults: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    data_age_s: float | None = None
    trust: dict | None = None  # campus_node "trust" ({ok, why, origin, ...}); None: not checked
    node_state: dict = field(default_factory=dict)  # every campus_node key (unknown ones kept)

    @property
    def offline(self) -> bool:
        return self.online is False

    @property
    def trust_failed(self) -> bool:
        return isinstance(self.trust, dict) and not self.trust.get("ok", False)


def _zone_rank(alarms: list[dict], quality: int | None) -> tuple:
    """Higher is worse: an active or unacknowledged alarm by priority, then a point of the zone
    that is not good (comm, stale, bad), then nothing."""
    if alarms:
        worst = min(priority_rank(a.get("priority")) for a in alarms)
        return (2, len(PRIORITIES) - worst, len(alarms))
    if quality:
        return (1, quality, 0)
    return (0, 0, 0)


def site_row(cfg: Config, state: SiteState) -> SiteRow:
    """The facts of one site's row, from its mirror and central's record of its node."""
    node = dict(state.node or {})
    online = node.get("online")
    online = bool(online) if online is not None else None
    since = node.get("since_ms")
    since = int(since) if isinstance(since, (int, float)) else None
    trust = node.get("trust") if isinstance(node.get("trust"), dict) else None
    base = {"site": state.id, "node": state.node_id, "tz": mirror_tz(cfg, state),
            "exists": state.exists, "error": state.error, "online": online, "since_ms": since,
            "trust": trust, "node_state": node}
    snap = state.snapshot
    if snap is None or snap.error:
        return SiteRow(**base)
    zones: dict[str, list[dict]] = {}
    zone_q: dict[str, int] = {}
    devices: set[str] = set()
    comm: set[str] = set()
    stale: set[str] = set()
    newest = None
    for name, row in snap.points.items():
        zone = row.get("zone")
        dev = row.get("device") if row.get("kind") != "derived" else None  # a zone's own
        if zone:
            zones.setdefault(zone, [])
        value, q, ts = snap.value(name)
        if ts is not None and (newest is None or ts > newest):
            newest = ts
        if dev:
            devices.add(dev)
        if q is None:
            continue
        if zone and q:
            zone_q[zone] = max(zone_q.get(zone, 0), q)
        if dev:
            if q == COMM_FAULT or (name == f"{dev}.comm_ok" and q == 0 and value is not None
                                   and value < 1):  # no answer, or its comm point says so
                comm.add(dev)
            elif q == STALE:
                stale.add(dev)
    for a in snap.alarms:
        if a.get("zone"):
            zones.setdefault(a["zone"], [])
            if needs_attention(a):
                zones[a["zone"]].append(a)
    stale -= comm
    worst = max(zones, key=lambda z: (_zone_rank(zones[z], zone_q.get(z)), z), default=None)
    counts = alarm_counts(snap.alarms)
    return SiteRow(
        **base, zones=tuple(sorted(zones)), worst_zone=worst,
        worst_zone_alarms=tuple(zones.get(worst, ())) if worst else (),
        worst_zone_quality=zone_q.get(worst) if worst else None,
        attention=counts.by_priority, unack=counts.unack, devices=len(devices),
        comm_faults=tuple(sorted(comm)), stale=tuple(sorted(stale)),
        data_age_s=None if newest is None else max(0.0, (snap.now_ms - newest) / 1000.0))


def site_rows(cfg: Config, campus: CampusSnapshot) -> list[SiteRow]:
    """Every site's facts, in [[central.sites]] order."""
    return [site_row(cfg, s) for s in campus.sites]


def link_cell(r: SiteRow) -> Text:
    """``online``, ``OFFLINE since 2026-11-23 18:02:11 +08:00`` (site time), ``no birth yet``
    or ``no mirror yet``."""
    if not r.exists:
        return Text("no mirror yet", style="dim")
    if r.online is None:
        return Text("no birth yet", style="yellow")
    if r.online:
        return Text("online", style="green")
    when = local_time(r.since_ms, r.tz) if r.since_ms is not None else "an unknown time"
    return Text(f"OFFLINE since {when}", style="bold white on red")


def zones_cell(r: SiteRow) -> Text:
    return Text(str(len(r.zones))) if r.exists and not r.error else Text("--", style="dim")


QUALITY_WORD = {1: "bad", 2: "comm", 3: "stale"}


def worst_zone_cell(r: SiteRow) -> Text:
    """The worst zone and why: its alarm badge (``LITHO 2 crit``), a point's quality
    (``LITHO comm``) or ``ok``."""
    if r.worst_zone is None:
        return Text("--" if not r.exists or r.error else "no zones", style="dim")
    out = text(r.worst_zone)
    out.append(" ")
    if r.worst_zone_alarms:
        out.append_text(zone_badge(list(r.worst_zone_alarms)))
    elif r.worst_zone_quality:
        out.append(QUALITY_WORD.get(r.worst_zone_quality, "?"), style="magenta")
    else:
        out.append("ok", style="green")
    return out


def alarms_cell(r: SiteRow) -> Text:
    """Alarms needing attention per priority (``1 crit  2 high``) and how many wait for an
    acknowledgement; ``ok`` when none."""
    if not r.exists or r.error:
        return Text("--", style="dim")
    if not r.attention:
        return Text("ok", style="green")
    out = Text()
    for i, (prio, n) in enumerate(r.attention.items()):
        if i:
            out.append("  ")
        out.append(f"{n} {PRIO_SHORT.get(prio, prio)}", style=PRIORITY_STYLE.get(prio, ""))
    if r.unack:
        out.append(f" ({r.unack} unack)", style="bold")
    return out


def comm_cell(r: SiteRow) -> Text:
    """``ok (7)``, or ``2 comm 1 stale / 7`` in red: devices with a comm fault or stale data."""
    if not r.exists or r.error:
        return Text("--", style="dim")
    if not r.devices:
        return Text("no devices", style="dim")
    if not r.comm_faults and not r.stale:
        return Text(f"ok ({r.devices})", style="green")
    parts = []
    if r.comm_faults:
        parts.append(f"{len(r.comm_faults)} comm")
    if r.stale:
        parts.append(f"{len(r.stale)} stale")
    return Text(f"{' '.join(parts)} / {r.devices}", style="bold red" if r.comm_faults else "yellow")


def age_cell(r: SiteRow) -> Text:
    if r.data_age_s is None:
        return Text("--", style="dim")
    age = r.data_age_s
    style = "bold red" if age > DATA_AGE_BAD_S else "yellow" if age > DATA_AGE_WARN_S else ""
    return Text(f"{fmt_duration(age)} ago", style=style)


def trust_cell(r: SiteRow) -> Text:
    """``ok``, ``FAILED`` (the reason is in the detail and alert lines) or ``not checked``."""
    if not r.exists:
        return Text("--", style="dim")
    if r.trust is None:
        return Text("not checked", style="dim")
    if r.trust_failed:
        return Text("FAILED", style="bold white on red")
    return Text("ok", style="green")


def campus_rows(rows: list[SiteRow]) -> list[tuple[str, list[Text]]]:
    """``(site id, cells)`` per site (of :func:`site_rows`), in [[central.sites]] order."""
    out = []
    for r in rows:
        out.append((r.site, [text(r.site, "bold"), text(r.node), link_cell(r),
                             zones_cell(r), worst_zone_cell(r), alarms_cell(r), comm_cell(r),
                             age_cell(r), trust_cell(r)]))
    return out


def central_attention(alarms: list[dict]) -> list[dict]:
    """Central's own alarms needing attention (the condition is present, or it returned and
    nobody acknowledged it), unacknowledged first, then by priority, newest first."""
    rows = [a for a in alarms if listed(a) and needs_attention(a)]
    return sorted(rows, key=lambda a: (tier(a), priority_rank(a.get("priority")),
                                       -(a.get("onset_ms") or 0), str(a.get("id"))))


def central_tz(cfg: Config, alarm: dict) -> str:
    """The zone a central alarm's times are shown in: central's [[sites]] entry named like the
    alarm's site, else central's first site (UTC without sites)."""
    by_id = {s.id: s.timezone for s in cfg.sites}
    if alarm.get("site") in by_id:
        return by_id[alarm["site"]]
    return cfg.sites[0].timezone if cfg.sites else "UTC"


def central_alerts(cfg: Config, campus: CampusSnapshot) -> Text:
    """One line per alarm of central's own needing attention
    (``central: campus:mars:offline HIGH UNACK since 2026-11-23 18:03:11 +08:00``), and one
    when central's own database cannot be read."""
    lines = []
    if campus.central_error:
        lines.append(text(f"central: own database not readable: {campus.central_error}",
                          "bold red"))
    for a in central_attention(campus.central_alarms):
        prio = str(a.get("priority") or "")
        onset = a.get("onset_ms")
        when = local_time(onset, central_tz(cfg, a)) if onset else "an unknown time"
        returned = "" if a.get("active") or a.get("state") == "RTNUN" else " (returned)"
        lines.append(text(f"central: {a.get('id')} {prio.upper()} {a.get('state')}{returned}"
                          f" since {when}", PRIORITY_STYLE.get(prio, "bold")))
    return Text("\n").join(lines)


def campus_summary(rows: list[SiteRow], central: list[dict] = ()) -> Text:
    """``2 sites · 1 OFFLINE · 1 trust FAILED │ need attention: 1 crit  2 high``; the
    need-attention figures count central's own alarms (``central``: its alarm rows) too."""
    out = Text(f"{len(rows)} site{'s' if len(rows) != 1 else ''}")
    offline = sum(r.offline for r in rows)
    if offline:
        out.append(" · ")
        out.append(f"{offline} OFFLINE", style="bold white on red")
    failed = sum(r.trust_failed for r in rows)
    if failed:
        out.append(" · ")
        out.append(f"{failed} trust FAILED", style="bold white on red")
    missing = sum(not r.exists for r in rows)
    if missing:
        out.append(f" · {missing} without a mirror yet", style="dim")
    total: dict[str, int] = {}
    for r in rows:
        for p, n in r.attention.items():
            total[p] = total.get(p, 0) + n
    for a in central_attention(list(central)):
        p = a.get("priority")
        total[p] = total.get(p, 0) + 1
    out.append(" │ ", style="dim")
    if not total:
        out.append("nothing needs attention", style="green")
        return out
    out.append("need attention: ")
    for i, p in enumerate(p for p in PRIORITIES if total.get(p)):
        if i:
            out.append("  ")
        out.append(f"{total[p]} {PRIO_SHORT.get(p, p)}", style=PRIORITY_STYLE.get(p, ""))
    return out


def campus_alerts(rows: list[SiteRow]) -> Text:
    """One line per site whose edge is OFFLINE, whose trust check failed, or whose mirror
    cannot be read: what the control room must not miss, shown whichever row is highlighted."""
    lines = []
    for r in rows:
        if r.error:
            lines.append(text(f"{r.site}: mirror not readable: {r.error}", "bold red"))
        if r.offline:
            when = local_time(r.since_ms, r.tz) if r.since_ms is not None else "an unknown time"
            lines.append(text(f"{r.site}: edge node {r.node} OFFLINE since {when}; its data is"
                              " as of then", "bold red"))
        if r.trust_failed:
            why = r.trust.get("why") or "no reason recorded"
            lines.append(text(f"{r.site}: trust check FAILED: {why}", "bold red"))
    return Text("\n").join(lines)


def site_detail(r: SiteRow | None, now_ms: int) -> Text:
    """The highlighted site in words: its mirror, node session, devices at fault, trust."""
    if r is None:
        return Text("")
    parts = [f"{r.site} ({r.node})"]
    if not r.exists:
        parts.append("no mirror yet: run `facility central`")
        return text(" · ".join(parts))
    if r.error:
        parts.append(f"not readable: {r.error}")
    if r.online is not None:
        when = local_time(r.since_ms, r.tz) if r.since_ms is not None else "?"
        took = (f" ({fmt_duration((now_ms - r.since_ms) / 1000.0)})"
                if r.since_ms is not None and now_ms >= r.since_ms else "")
        parts.append(f"{'online' if r.online else 'OFFLINE'} since {when}{took}")
    if r.node_state.get("bdseq") is not None:
        parts.append(f"bdSeq {r.node_state['bdseq']}")
    head = r.node_state.get("edge_head")
    if isinstance(head, dict) and head.get("id") is not None:
        parts.append(f"edge chain head {head['id']}")
    if r.comm_faults:
        parts.append("comm fault: " + ", ".join(r.comm_faults))
    if r.stale:
        parts.append("stale: " + ", ".join(r.stale))
    if r.trust is None:
        parts.append("trust not checked yet")
    elif r.trust_failed:
        parts.append(f"trust FAILED: {r.trust.get('why') or 'no reason recorded'}")
    else:
        origin = r.trust.get("origin") or "ok"
        parts.append(f"trust ok ({origin})")
    return text(" · ".join(str(p) for p in parts))


def site_banner(r: SiteRow | None, error: str | None = None) -> str:
    """The red line over a mirrored site's screens: the mirror is unreadable, the edge node is
    OFFLINE (its data is as of then), not born yet, or its trust check failed; "" otherwise.
    (A mirror has no heartbeat of its own: the edge node's session stands for it.)"""
    if r is None:
        return error or ""
    if error:
        return clean_terminal(f"mirror of {r.site} not readable: {error}")
    words = []
    if r.offline:
        when = local_time(r.since_ms, r.tz) if r.since_ms is not None else "an unknown time"
        words.append(f"site {r.site}: edge node {r.node} OFFLINE since {when}; data as of then")
    elif r.online is None:
        words.append(f"site {r.site}: central has not seen edge node {r.node} born yet")
    if r.trust_failed:
        words.append(f"trust check FAILED: {r.trust.get('why') or 'no reason recorded'}")
    return clean_terminal(" · ".join(words))
