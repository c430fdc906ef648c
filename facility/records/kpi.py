"""Alarm KPIs per site against ISA-18.2 / EEMUA 191 (docs/ARCHITECTURE.md "Alarm KPIs").

One computation for ``facility kpi`` and the report's alarm section. An *alarm* is an
annunciated raise: a ``raise`` event whose state is not hidden afterwards (a rule of the
zone's inactive mode raises in DSUPR, a shelved or out-of-service alarm in SHLVD / OOSRV;
those are recorded, never shown to the operator, so they are not the operator's load). A
re-alarm of an unacknowledged occurrence is annunciated again and counts again. Its time is
when the service detected it (``detected_ms``), not the onset, because that is when the
operator saw it.

Per site (an alarm's site is its row's ``site``; the service's own health alarms have none
and form a group of their own), over the half-open range ``[from, to)`` cut into 10-minute
periods from ``from`` (the last one may be shorter):

* alarms per day and per 10-minute period (mean, max);
* periods in flood: more than 10 alarms in the period (ISA-18.2);
* chattering alarms: 3 or more raises of one alarm within 60 s (ISA-18.2);
* stale alarms: an annunciated condition active for more than 24 h at some time in the
  range, also counted per day of the range (the target is "< 5 a day"), and the
  conditions still active at the end of the range (EEMUA 191's standing alarms);
* the ten most frequent alarms and their share of all; the priority mix;
* operators' shelve, suppress and out-of-service actions, with who (an out-of-service
  action on a device writes one event per alarm of the device: counted once per device,
  login and time); suppression by design (mode, alert under action) apart;
* acknowledgement: how many occurrences were acknowledged within the range, and how fast.

Nothing here lays text out: the command line and the report do, from ``figures``.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field

# ISA-18.2's chattering: 3 or more raises of one alarm within 60 s, the one definition the
# pager rate-limits by (alarms.chatter), so the report lists what the pages called chattering
from alarms.chatter import CHATTER_RAISES as CHATTER_MIN
from alarms.chatter import CHATTER_WINDOW_MS
from facility.domain.vocab import PRIORITIES

PERIOD_MS = 600_000
FLOOD_ABOVE = 10  # ISA-18.2: more than 10 alarms in 10 minutes is a flood
DAY_MS = 86_400_000
STALE_MS = DAY_MS  # standing longer than 24 h
ONSET_LOOKBACK_MS = 7 * DAY_MS
"""How long before its detection an event's onset may lie and still be read. A live raise's
onset precedes detection by its rule's delays (seconds to minutes); a backfilled record by
its age in the instrument's buffer (a particle counter's 500 records of 60 s: about 8 h)."""
HIDDEN_STATES = frozenset({"SHLVD", "DSUPR", "OOSRV"})

# The published figures, as ISA-18.2 (ANSI/ISA-18.2, IEC 62682) and EEMUA 191 give them
# for one operator position (docs/ARCHITECTURE.md "Alarm KPIs").
TARGETS: dict[str, str | None] = {
    "alarms": None,
    "alarms_per_day": "~150/day very likely acceptable, ~300/day maximum manageable (ISA-18.2)",
    "alarms_per_10min_mean": '< 1 alarm per 10 min steady state "very likely acceptable"'
                             " (EEMUA 191)",
    "alarms_per_10min_max": '< 10 in the first 10 min after an upset "manageable" (EEMUA 191)',
    "flood_periods_pct": "time in flood < 1 % (ISA-18.2; flood = more than 10 alarms in"
                         " 10 minutes)",
    "chattering": "chattering and fleeting alarms: zero (ISA-18.2)",
    "stale_per_day_max": "stale (standing > 24 h) < 5 a day (ISA-18.2)",
    "standing_at_end": "< 10 standing alarms (EEMUA 191)",
    "top10_share_pct": "the ten most frequent alarms < 1–5 % of all (ISA-18.2)",
    "priority_mix_pct": "~80 % low / 15 % medium / 5 % high (ISA-18.2)",
    "shelved": "no figure in ISA-18.2 / EEMUA 191; every action names who and why",
    "suppressed": "no figure in ISA-18.2 / EEMUA 191; every action names who and why",
    "out_of_service": "no figure in ISA-18.2 / EEMUA 191; every action names who and why",
    "suppressed_by_design": None,
    "acknowledged": None,
}

# What each figure is called where people read it (the command's text and the report).
FIGURE_NAMES: dict[str, str] = {
    "alarms": "alarms",
    "alarms_per_day": "alarms per day",
    "alarms_per_10min_mean": "alarms per 10 min, mean",
    "alarms_per_10min_max": "alarms per 10 min, max",
    "flood_periods_pct": "10-min periods in flood",
    "chattering": "chattering alarms",
    "stale_per_day_max": "stale > 24 h, most on a day",
    "standing_at_end": "standing at the end",
    "top10_share_pct": "top 10 share of all",
    "priority_mix_pct": "priority crit/high/med/low",
    "shelved": "shelved",
    "suppressed": "suppressed by operators",
    "out_of_service": "out of service (devices)",
    "suppressed_by_design": "suppressed by design",
    "acknowledged": "acknowledged / not",
}


@dataclass(frozen=True)
class Actions:
    """Operator actions of one kind: how many, by whom, on what."""

    count: int = 0
    by: dict[str, int] = field(default_factory=dict)
    subjects: tuple[str, ...] = ()  # alarms (shelve, suppress) or devices (out of service)


@dataclass(frozen=True)
class Stale:
    """An annunciated condition that stood for more than 24 h within the range."""

    alarm: str
    occurrence: int | None
    raised_ms: int
    active_ms: int  # until its clear, or the end of the range
    still_active: bool  # no clear before the end of the range


@dataclass(frozen=True)
class SiteKpi:
    """Every figure of one site (``site`` None: alarms without a site) over ``[from, to)``."""

    site: str | None
    from_ms: int
    to_ms: int
    alarms: int
    periods: int
    per_period_max: int
    floods: tuple[tuple[int, int], ...]  # (period start ms, alarms) of each period in flood
    chattering: tuple[tuple[str, int], ...]  # (alarm, most raises within 60 s)
    stale: tuple[Stale, ...]
    stale_per_day_max: int
    standing_at_end: tuple[str, ...]  # alarm ids still active at the end
    top10: tuple[tuple[str, int], ...]  # (alarm, raises), most frequent first
    priority: dict[str, int]
    shelved: Actions
    suppressed: Actions
    out_of_service: Actions
    suppressed_by_design: int
    acked: int
    unacked: int
    ack_s: tuple[float, ...]  # raise -> acknowledgement of each acknowledged occurrence

    @property
    def days(self) -> float:
        """Length of the range in days."""
        return (self.to_ms - self.from_ms) / DAY_MS

    @property
    def per_day(self) -> float:
        """Alarms per day (the range's count scaled to 24 h)."""
        return self.alarms / self.days

    @property
    def per_period_mean(self) -> float:
        """Alarms per 10 minutes, averaged over the range."""
        return self.alarms * PERIOD_MS / (self.to_ms - self.from_ms)

    @property
    def flood_pct(self) -> float:
        """Share of the 10-minute periods in flood, in %."""
        return 100.0 * len(self.floods) / self.periods

    @property
    def top10_share_pct(self) -> float | None:
        """The ten most frequent alarms' share of all alarms, in % (None: no alarms)."""
        return 100.0 * sum(n for _a, n in self.top10) / self.alarms if self.alarms else None

    @property
    def priority_pct(self) -> dict[str, float] | None:
        """Each priority's share of all alarms, in % (None: no alarms)."""
        if not self.alarms:
            return None
        return {p: 100.0 * n / self.alarms for p, n in self.priority.items()}

    @property
    def ack_median_s(self) -> float | None:
        """Median time to acknowledge."""
        return statistics.median(self.ack_s) if self.ack_s else None

    @property
    def ack_p90_s(self) -> float | None:
        """90th percentile (nearest rank) of the time to acknowledge."""
        xs = sorted(self.ack_s)
        return xs[math.ceil(0.9 * len(xs)) - 1] if xs else None

    @property
    def ack_max_s(self) -> float | None:
        """Longest time to acknowledge."""
        return max(self.ack_s) if self.ack_s else None

    def verdicts(self) -> dict[str, str | None]:
        """Each figure against its target: "ok", "manageable" (alarms per day between
        ~150 and ~300), "over", or None where the standards give no number to meet."""
        def over(ok: bool) -> str:
            return "ok" if ok else "over"

        top = self.top10_share_pct
        return {
            "alarms_per_day": "ok" if self.per_day <= 150 else
                              "manageable" if self.per_day <= 300 else "over",
            "alarms_per_10min_mean": over(self.per_period_mean < 1),
            "alarms_per_10min_max": over(self.per_period_max < 10),
            "flood_periods_pct": over(self.flood_pct < 1),
            "chattering": over(not self.chattering),
            "stale_per_day_max": over(self.stale_per_day_max < 5),
            "standing_at_end": over(len(self.standing_at_end) < 10),
            "top10_share_pct": None if top is None else over(top <= 5),
        }


@dataclass(frozen=True)
class AlarmKpis:
    """The KPIs of each site group, and of everything selected together (``total``)."""

    from_ms: int
    to_ms: int
    sites: tuple[SiteKpi, ...]
    total: SiteKpi


def when(e: dict) -> int:
    """When an event reached the operator: its detection time, else its event time."""
    d = e.get("detected_ms")
    return int(d if d is not None else e["ts_ms"])


def annunciated(e: dict) -> bool:
    """A raise the operator was shown (not hidden by mode, design, shelving or service)."""
    return e.get("event") == "raise" and e.get("state_to") not in HIDDEN_STATES


def _chattering(times: dict[str, list[int]]) -> list[tuple[str, int]]:
    out = []
    for alarm, ts in times.items():
        best, j = 0, 0
        for i in range(len(ts)):
            while ts[i] - ts[j] > CHATTER_WINDOW_MS:
                j += 1
            best = max(best, i - j + 1)
        if best >= CHATTER_MIN:
            out.append((alarm, best))
    return sorted(out)


def _actions(evs: list[dict], subject=lambda e: e["alarm_id"], key=lambda e: e["id"]) -> Actions:
    seen: dict = {}
    for e in evs:
        seen.setdefault(key(e), e)
    by = Counter(e.get("actor") or "?" for e in seen.values())
    return Actions(len(seen), dict(sorted(by.items())),
                   tuple(sorted({subject(e) for e in seen.values()})))


def _spans(seed: list[dict], evs: list[dict]) -> list[tuple[dict, int | None]]:
    """(opening raise, clear time or None) of every condition active within the range."""
    opened: dict[tuple, dict] = {}
    spans: list[tuple[dict, int | None]] = []
    for e in [*seed, *evs]:
        k = (e["alarm_id"], e.get("occurrence"))
        if e["event"] == "raise" and k not in opened:
            opened[k] = e
        elif e["event"] == "clear" and k in opened:
            spans.append((opened.pop(k), when(e)))
    spans += [(e, None) for e in opened.values()]
    return spans


def site_kpi(site: str | None, events: list[dict], seed: list[dict], alarms: dict[str, dict],
             from_ms: int, to_ms: int) -> SiteKpi:
    """The KPIs of one group from its events detected in the range (by id) and ``seed``, the
    raises of its conditions already active at ``from_ms``."""
    if to_ms <= from_ms:
        raise ValueError(f"empty range [{from_ms}, {to_ms})")
    evs = sorted((e for e in events if from_ms <= when(e) < to_ms), key=lambda e: e["id"])
    raises = sorted(((when(e), e["alarm_id"]) for e in evs if annunciated(e)))
    periods = math.ceil((to_ms - from_ms) / PERIOD_MS)
    bins = Counter((t - from_ms) // PERIOD_MS for t, _a in raises)
    floods = tuple(sorted((from_ms + b * PERIOD_MS, n) for b, n in bins.items()
                          if n > FLOOD_ABOVE))
    times: dict[str, list[int]] = {}
    for t, a in raises:
        times.setdefault(a, []).append(t)
    freq = Counter(a for _t, a in raises)
    top = tuple(sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:10])
    prio = {p: 0 for p in PRIORITIES}
    for _t, a in raises:
        p = (alarms.get(a) or {}).get("priority") or "low"
        prio[p] = prio.get(p, 0) + 1

    stale, standing, per_day = [], [], Counter()
    for rz, cleared in _spans([e for e in seed if annunciated(e)],
                              [e for e in evs if e["event"] == "clear" or annunciated(e)]):
        r = when(rz)
        end = min(cleared if cleared is not None else to_ms, to_ms)
        if cleared is None:
            standing.append(rz["alarm_id"])
        lo = max(from_ms, r + STALE_MS)  # from here on it has stood more than 24 h
        if lo < end:
            stale.append(Stale(rz["alarm_id"], rz.get("occurrence"), r, end - r, cleared is None))
            for d in range((lo - from_ms) // DAY_MS, (end - 1 - from_ms) // DAY_MS + 1):
                per_day[d] += 1

    occ: dict[tuple, dict[str, dict]] = {}
    for e in evs:
        occ.setdefault((e["alarm_id"], e.get("occurrence")), {}).setdefault(e["event"], e)
    ack_s, unacked = [], 0
    for o in occ.values():
        rz = o.get("raise")
        if rz is None or not annunciated(rz):
            continue
        if "ack" in o:
            ack_s.append((o["ack"]["ts_ms"] - when(rz)) / 1000.0)
        else:
            unacked += 1

    def device(e: dict) -> str:
        return ((alarms.get(e["alarm_id"]) or {}).get("details") or {}).get("device") \
            or e["alarm_id"].rsplit(":", 1)[0]

    design = [e for e in evs if e["event"].startswith("suppress:")
              and e["event"] != "suppress:operator"]
    return SiteKpi(
        site=site, from_ms=from_ms, to_ms=to_ms, alarms=len(raises), periods=periods,
        per_period_max=max(bins.values(), default=0), floods=floods,
        chattering=tuple(_chattering(times)), stale=tuple(sorted(stale, key=lambda s: (
            s.raised_ms, s.alarm))), stale_per_day_max=max(per_day.values(), default=0),
        standing_at_end=tuple(sorted(standing)), top10=top, priority=prio,
        shelved=_actions([e for e in evs if e["event"] == "shelve"]),
        suppressed=_actions([e for e in evs if e["event"] in ("suppress", "suppress:operator")]),
        out_of_service=_actions([e for e in evs if e["event"] == "oos"], subject=device,
                                key=lambda e: (device(e), e.get("actor"), when(e))),
        suppressed_by_design=len(design), acked=len(ack_s), unacked=unacked,
        ack_s=tuple(ack_s))


def compute(events: list[dict], seed: list[dict], alarms: dict[str, dict], from_ms: int,
            to_ms: int, sites: list[str | None] | None = None) -> AlarmKpis:
    """KPIs per site group and in total, from events and the alarm rows (site, priority).

    ``events``: events detected in the range; ``seed``: raises of conditions active at
    ``from_ms`` (``Store.raised_at``). ``sites``: the groups to report, in order (default:
    every site named by an alarm, then None for alarms without a site).
    """
    def site_of(e: dict) -> str | None:
        return (alarms.get(e["alarm_id"]) or {}).get("site")

    if sites is None:
        named = sorted({site_of(e) for e in [*events, *seed]} - {None})
        sites = [*named, None]
    groups = tuple(site_kpi(s, [e for e in events if site_of(e) == s],
                            [e for e in seed if site_of(e) == s], alarms, from_ms, to_ms)
                   for s in sites)
    return AlarmKpis(from_ms, to_ms, groups, site_kpi(None, events, seed, alarms, from_ms, to_ms))


def alarm_kpis(store, from_ms: int, to_ms: int, *, sites: list[str | None] | None = None,
               zone: str | None = None) -> AlarmKpis:
    """Read the range's events through the store's read API and compute the KPIs.

    ``sites``: the groups to report, in this order, each even without alarms (None: the
    group of alarms without a site); only their alarms are read into ``total``. Default:
    every site an alarm row names, then None. ``zone``: only that zone's alarms.
    """
    with store.snapshot():  # one committed state: alarm rows, the range and what stood before
        alarms = {a["id"]: a for a in store.alarms()}
        events = store.events_detected(from_ms, to_ms, ONSET_LOOKBACK_MS)
        seed = store.raised_at(from_ms)
    if sites is None:
        sites = [*sorted({a.get("site") for a in alarms.values()} - {None}), None]
    wanted = set(sites)

    def keep(e: dict) -> bool:
        a = alarms.get(e["alarm_id"]) or {}
        return a.get("site") in wanted and (zone is None or a.get("zone") == zone)

    return compute([e for e in events if keep(e)], [e for e in seed if keep(e)], alarms,
                   from_ms, to_ms, list(sites))


def _r(x: float | None, nd: int = 3) -> float | None:
    """Rounded for reading (3 decimals hold every figure's meaning), None kept."""
    return None if x is None else round(x, nd)


def figures(k: SiteKpi) -> dict[str, dict]:
    """Every figure of one site as ``{"value", "target", "verdict", ...}``: the JSON form of
    ``facility kpi`` (README), and what the report lays out."""
    verdict = k.verdicts()
    prio = k.priority_pct
    out = {
        "alarms": {"value": k.alarms},
        "alarms_per_day": {"value": _r(k.per_day)},
        "alarms_per_10min_mean": {"value": _r(k.per_period_mean)},
        "alarms_per_10min_max": {"value": k.per_period_max},
        "flood_periods_pct": {"value": _r(k.flood_pct), "periods": len(k.floods),
                              "of": k.periods},
        "chattering": {"value": len(k.chattering)},
        "stale_per_day_max": {"value": k.stale_per_day_max, "stale": len(k.stale)},
        "standing_at_end": {"value": len(k.standing_at_end)},
        "top10_share_pct": {"value": _r(k.top10_share_pct)},
        "priority_mix_pct": {"value": None if prio is None else
                             {p: _r(v) for p, v in prio.items()}, "counts": dict(k.priority)},
        "shelved": {"value": k.shelved.count, "by": k.shelved.by,
                    "alarms": list(k.shelved.subjects)},
        "suppressed": {"value": k.suppressed.count, "by": k.suppressed.by,
                       "alarms": list(k.suppressed.subjects)},
        "out_of_service": {"value": k.out_of_service.count, "by": k.out_of_service.by,
                           "devices": list(k.out_of_service.subjects)},
        "suppressed_by_design": {"value": k.suppressed_by_design},
        "acknowledged": {"value": k.acked, "unacknowledged": k.unacked,
                         "median_s": _r(k.ack_median_s), "p90_s": _r(k.ack_p90_s),
                         "max_s": _r(k.ack_max_s)},
    }
    for key, fig in out.items():
        out[key] = {"value": fig.pop("value"), "target": TARGETS[key],
                    "verdict": verdict.get(key), **fig}
    return out
