"""report.html: one self-contained page (inline CSS and SVG, no JavaScript, no assets).

Per zone: particle concentrations against alert/action limits and the pressure cascade
(``<ZONE>.dp_cascade``), compliance with "not monitored" time apart, excursions from onset
to clear, and the ISO 14644-1 classification status; then ISA-18.2 alarm performance.
Times are the site's local time with its offset (docs/ARCHITECTURE.md "Samples and quality").

Every text that reaches the page (names from the configuration, alarm ids, limit sources,
logins in the KPIs) passes ``html.escape``: table cells arrive escaped (``_n`` marks an
escaped number), headings and attributes are escaped where they are written
(docs/ARCHITECTURE.md "Operator text is data").
"""

from __future__ import annotations

import math
from html import escape

from facility.domain.display import fmt_limit, fmt_number, format_number
from facility.domain.timeparse import local_iso
from facility.domain.vocab import PRIORITIES, ZONE_MODES
from facility.records.report.charts import downsample, line_chart
from facility.records.report.modes import ModeShare
from facility.records.report.stats import ReportData

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:2px solid #1f77b4;padding-bottom:3px;margin-top:32px}
h3{font-size:15px;margin-bottom:4px}table{border-collapse:collapse;margin:6px 0 14px;font-size:12px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#eef3f8}
td.num{text-align:right}.pass{color:#2ca02c;font-weight:600}.fail{color:#d62728;font-weight:600}
.muted{color:#777}.chart{display:block;margin:4px 0 10px}
table.approval td{height:34px;min-width:90px}pre.config-diff{background:#f6f8fa;padding:6px}
@media print{h2{page-break-before:always}}
"""


def _dur(ms: int | None) -> str:
    if ms is None:
        return ""
    s = int(ms // 1000)
    d, s = divmod(s, 86_400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def _pct(x: float | None) -> str:
    """A share with two decimals, rounded down: anything short of all of it never reads as
    100 % (a 2:46 excursion in a month is 99.99 %, not 100.00 %)."""
    if x is None:
        return "n/a"
    n = math.floor(x * 10_000 + 1e-6)  # the epsilon: 0.57 is 5699.999... in binary
    if x < 1:
        n = min(n, 9_999)
    return f"{n / 100:.2f} %"


def _mode(mode: str | None) -> str:
    return (mode or "").replace("_", " ")


def _table(cls: str, head: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted {cls}">{escape(empty)}</p>'
    out = [f'<table class="{cls}"><thead><tr>']
    out += [f"<th>{escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append("<tr>" + "".join(
            f'<td class="num">{c[1:]}</td>' if c.startswith("\x00") else f"<td>{c}</td>"
            for c in r) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _n(text: str) -> str:
    """Mark a cell as numeric (right-aligned)."""
    return "\x00" + escape(text)


def _series(data: ReportData, pid: int) -> list[tuple[int, float | None]]:
    """The point's aggregates over the range; a read failure raises (an auditor's report
    never shows an empty chart for data it could not read), no data is an empty list."""
    res = "1m" if data.to_ms - data.from_ms <= 2 * 86_400_000 else "1h"
    return downsample(data.store.aggregates(pid, data.from_ms, data.to_ms, res))


def _zone_points(data: ReportData, zone_id: str) -> list[dict]:
    return sorted((p for p in data.points.values() if p.get("zone") == zone_id),
                  key=lambda p: p["point"])


def _limit_lines(lim: dict[str, float]) -> list[tuple[str, str, float]]:
    """A chart's limit lines ``(label, kind, value)``; the kind names a CSS class in the SVG,
    so it is escaped like every other text (``line_chart`` escapes the label itself)."""
    return [(n.replace("_", " "), escape(n.split("_")[0]), v) for n, v in sorted(lim.items())]


def _mode_limit_lines(data: ReportData, point: str) -> list[tuple[str, str, float]]:
    """A point's limit lines; where its limits differ by mode (a GMP room at rest and in
    operation), each mode's lines, labelled with the mode."""
    by_mode = {m: (getattr(data, "mode_limits", {}).get(m) or {}).get(point, {})
               for m in ZONE_MODES}
    if len({tuple(sorted(v.items())) for v in by_mode.values()}) <= 1:
        return _limit_lines(data.limits.get(point, {}))
    return [(f"{_mode(m)} {label}", kind, v) for m, lim in by_mode.items()
            for label, kind, v in _limit_lines(lim)]


def _charts(data: ReportData, zone, tz: str) -> str:
    pts = _zone_points(data, zone.id)
    out = []
    by_size: dict[str, list[dict]] = {}
    for p in pts:
        if p.get("quantity") == "particle_conc" and ".pc_" in p["point"]:
            by_size.setdefault(p["point"].rsplit(".pc_", 1)[1], []).append(p)
    for size, group in sorted(by_size.items(), key=lambda kv: float(kv[0][:-2].replace("_", "."))):
        series = {p["point"]: _series(data, p["id"]) for p in group}
        limits = _mode_limit_lines(data, group[0]["point"])
        out.append(f"<h3>Particles &ge; {escape(size[:-2].replace('_', '.'))} &micro;m</h3>")
        out.append(line_chart(f"{zone.id} particles >= {size}", series, limits, data.from_ms,
                              data.to_ms, tz, "particles/m3 (mean per interval)", log=True))
    for p in pts:
        if p["point"] == f"{zone.id}.dp_cascade":
            limits = _limit_lines(data.limits.get(p["point"], {}))
            out.append(f"<h3>Pressure cascade vs {escape(zone.reference or '')}</h3>")
            out.append(line_chart(f"{zone.id} pressure cascade", {p["point"]: _series(data, p["id"])},
                                  limits, data.from_ms, data.to_ms, tz, "Pa"))
    if not out:
        out.append('<p class="muted">no particle or pressure-cascade points in this zone</p>')
    return "".join(out)


def _compliance(data: ReportData, zone_id: str) -> str:
    """Per point and per mode the zone was in: each span judged against the limits of the
    mode in force then (``stats.ModeCompliance``), so an at-rest excursion counts against
    the at-rest limits; time outside the limits is shown beside the share."""
    rows = []
    for p in _zone_points(data, zone_id):
        c = data.compliance.get(p["point"])
        if c is None:
            continue
        shares = [m for m in c.by_mode.values() if m.time_ms]
        if len({tuple(sorted(m.action.items())) for m in shares}) == 1 and len(shares) > 1:
            # the same limits in every mode: one row (the modes are listed in "Modes")
            one = ModeShare("all modes", shares[0].action, shares[0].alert)
            for m in shares:
                one.time_ms += m.time_ms
                one.good_ms += m.good_ms
                one.within_ms += m.within_ms
            shares = [one]
        for m in shares:
            mode = m.mode
            lim = (fmt_limit(m.action, p.get("unit"), p.get("quantity"), name=p["point"])
                   if m.limited else "no action limit in this mode: the site must set it")
            rows.append([escape(p["point"]), escape(_mode(mode)), escape(lim),
                         _n(_dur(m.time_ms)), _n(_dur(m.good_ms)),
                         _n(_dur(m.within_ms) if m.limited else "n/a"),
                         _n(_dur(m.outside_ms) if m.limited else "n/a"), _n(_pct(m.ratio)),
                         _n(_dur(m.not_monitored_ms)),
                         _n(_pct(m.not_monitored_ms / max(m.time_ms, 1)))])
    return _table("compliance", ["point", "mode", "action limits", "time in mode", "good data",
                                 "within limits", "outside limits", "compliance",
                                 "not monitored", "not monitored share"], rows,
                  "no points with limits in this zone")


def _modes(data: ReportData, zone_id: str, tz: str) -> str:
    """The zone's modes over the range and who changed them, with the reason."""
    from facility.domain.display import person

    rows = []
    for s in data.modes.get(zone_id, []):
        ch = s.change or {}
        d = ch.get("details") if isinstance(ch.get("details"), dict) else {}
        who = person(d.get("name"), ch.get("actor")) if ch else "in force at the start"
        rows.append([escape(_mode(s.mode)), escape(local_iso(s.start_ms, tz)),
                     escape(local_iso(s.end_ms, tz)), _n(_dur(s.end_ms - s.start_ms)),
                     escape(who), escape(ch.get("reason") or "")])
    return _table("modes", ["mode", "from", "until", "for", "set by", "reason"], rows,
                  "no mode recorded")
def _excursions(data: ReportData, zone_id: str, tz: str) -> str:
    rows = []
    for x in data.excursions:
        point = x["alarm_id"].split(":", 1)[0]
        pz = next((p.get("zone") for p in data.points.values() if p["point"] == point), None)
        if pz != zone_id and not point.startswith(zone_id + "."):
            continue
        peak = "" if x["peak"] is None else f"{x['peak']:g}"
        rows.append([escape(x["alarm_id"]), _n(str(x["occurrence"])),
                     escape(_mode(x.get("mode"))), escape(local_iso(x["onset_ms"], tz)),
                     escape(local_iso(x["clear_ms"], tz)) if x["clear_ms"] else "not cleared",
                     _n(_dur(x["duration_ms"])), _n(peak),
                     _n("" if x["limit"] is None else f"{x['limit']:g}"),
                     escape(x.get("source") or "")])
    return _table("excursions", ["alarm", "#", "mode at onset", "onset", "clear", "duration", "peak", "limit",
                                 "limit source"], rows, "no excursions in the range")


def _classification(data: ReportData, zone) -> str:
    c = getattr(data, "classification", {}).get(zone.id)
    grade = _grade(data, zone)
    if c is None:
        if grade:
            return grade
        return '<p class="muted classification">no ISO class or no particle data</p>'
    status = "PASS" if c.passed else "FAIL"
    return (grade + f'<p class="classification">ISO 14644-1:2015 class {c.iso_class:g}: '
            f'<span class="{status.lower()}">{status}</span></p><pre>'
            + escape("\n".join(c.lines())) + "</pre>")


def _grade(data: ReportData, zone) -> str:
    """The EU GMP Annex 1 statement of a graded zone: its grade, the Table 5 maximum action
    limits (§9.15) at rest and in operation beside the site's configured action limits, and
    where Table 5 sets none (grade D in operation) that the site must set it."""
    g = getattr(data, "grades", {}).get(zone.id)
    if g is None:
        return ""
    rows = []
    for r in g["rows"]:
        t5 = r["table5"]
        site = "; ".join(f"{fmt_number(v)} ({src})" for v, src in r["site"])
        if t5 is None:
            t5_text = "none: Annex 1 leaves it to the site"
            if not site:
                site = "none set: the site must set it"
        else:
            t5_text = fmt_number(t5)
            if not site:
                site = "none configured" if r["counters"] else "no counter at this size"
        rows.append([escape(_mode(r["mode"])), escape(f"\u2265 {r['size_um']:g} \u00b5m"),
                     _n(t5_text), escape(site)])
    return (f'<p class="grade">EU GMP Annex 1 (2022) grade {escape(g["grade"])}: routine '
            "monitoring against the maximum action limits of Table 5 (&sect;9.15), particles/m&sup3;"
            " &ge; size; alert levels are set by the site (&sect;9.9), exceeding an action limit"
            " requires investigation (&sect;9.13).</p>"
            + _table("grade", ["mode", "size", "Table 5 action limit", "site action limit"],
                     rows, ""))


def _who_acted(data: ReportData, tz: str) -> str:
    """Every operator action in the range with name, login, roles, time and reason
    (21 CFR Part 11 §11.10(e), EU GMP Annex 11 §9 and §12.4); refused attempts included."""
    rows = [[escape(local_iso(a["ts_ms"], tz)), escape(a["who"]), escape(a.get("roles") or ""),
             escape(a["action"]), escape(a.get("subject") or ""), escape(a.get("reason") or ""),
             _n(str(a.get("audit_id") or ""))] for a in getattr(data, "actions", [])]
    return _table("actions", ["time", "who", "roles", "action", "subject", "reason",
                              "audit #"], rows, "no operator action in the range")


def _configs(data: ReportData, tz: str) -> str:
    """The configuration versions in force during the range, each with its diff."""
    out = []
    for v in getattr(data, "config_versions", []):
        until = (escape(local_iso(v["until_ms"], tz)) if v.get("until_ms") is not None
                 else "still in force")
        out.append(f'<h3 class="config-version">Version {escape(str(v["id"]))}: loaded '
                   f'{escape(local_iso(v["loaded_ms"], tz))} by {escape(v.get("actor") or "")}'
                   f", until {until}</h3>"
                   f'<p class="muted">SHA-256 {escape(v["sha256"])}</p>')
        if v.get("diff") is None:
            out.append('<p class="muted">first stored version: no earlier version to compare'
                       "</p>")
        elif not v["diff"]:
            out.append(f'<p>no change against version {escape(str(v["previous"]))}</p>')
        else:
            more = (f"\n... {v['diff_more']} more lines (full texts in the export's config"
                    " files)") if v.get("diff_more") else ""
            out.append(f'<p>changes against version {escape(str(v["previous"]))}: '
                       f'{v["added"]} lines added, {v["removed"]} removed</p>'
                       f'<pre class="config-diff">{escape(v["diff"] + more)}</pre>')
    return "".join(out) or '<p class="muted">no stored configuration</p>'


def _instruments(data: ReportData, tz: str) -> str:
    """Each instrument's calibration (ISO 21501-4 asks a yearly one of particle counters)
    and status in the range: its own health alarms and the out-of-service periods."""
    words = {"ok": "in calibration", "due_soon": "due soon", "overdue": "OVERDUE"}
    rows = []
    for d in getattr(data, "instruments", []):
        days = d["days"]
        if d["calibration_due"] is None:
            cal = "no calibration date configured"
        elif days < 0:
            cal = f"{words[d['status']]} by {-days} day{'s' if days != -1 else ''}"
        else:
            cal = f"{words[d['status']]}, {days} day{'s' if days != 1 else ''} left"
        oos = "; ".join(f"{a['action']} {local_iso(a['ts_ms'], tz)} by {a['who']}"
                        for a in d["oos"])
        rows.append([escape(d["device"]), escape(d["zone"] or ""), escape(d["location"]),
                     escape(d["profile"]),
                     escape(d["calibrated_on"].isoformat() if d["calibrated_on"] else ""),
                     escape(d["calibration_due"].isoformat() if d["calibration_due"] else ""),
                     f'<span class="{"fail" if d["status"] == "overdue" else ""}">'
                     f"{escape(cal)}</span>",
                     escape(", ".join(d["health_alarms"]) or "none"), escape(oos or "none")])
    return _table("instruments", ["device", "zone", "location", "profile", "calibrated on",
                                  "calibration due", "calibration at the end of the range",
                                  "instrument alarms raised", "out of service"], rows,
                  "no instruments")


def _completeness(data: ReportData) -> str:
    """Samples stored against those expected from each point's interval."""
    rows = [[escape(g["location"]), escape(g["zone"] or ""), escape(g["where"]),
             _n(str(g["points"])), _n(format_number(g["interval_s"]) + " s"),
             _n(str(g["expected"])), _n(str(g["stored"])), _n(str(g["good"])),
             _n(_pct(g["ratio"])), _n(_pct(g["good_ratio"]))]
            for g in getattr(data, "completeness", [])]
    return _table("completeness", ["location", "zone", "where", "channels", "interval",
                                   "expected", "stored", "good", "stored share", "good share"],
                  rows, "no measured points")


def _approval(data: ReportData, tz: str) -> str:
    """Prepared by / reviewed by / approved by, to be signed on paper or electronically later;
    a signature shows the printed name, date and time and its meaning (21 CFR Part 11 §11.50)."""
    p = getattr(data, "prepared", None) or {}
    rows = [["Prepared by", escape(p.get("who") or ""), escape(local_iso(p.get("ts_ms"), tz)),
             "report generated from the monitoring records", ""],
            ["Reviewed by", "", "", "records reviewed, deviations investigated", ""],
            ["Approved by (QA)", "", "", "approved for release", ""]]
    return _table("approval", ["role", "printed name (login)", "date and time", "meaning",
                               "signature"], rows, "")


def _kpi_value(key: str, fig: dict) -> str:
    v = fig["value"]
    if v is None:
        return "n/a"
    if key == "flood_periods_pct":
        return f"{v:.2f} % ({fig['periods']} of {fig['of']})"
    if key == "top10_share_pct":
        return f"{v:.1f} %"
    if key == "priority_mix_pct":
        return " / ".join(f"{v[p]:.0f}" for p in PRIORITIES) + " %"
    if key == "acknowledged":
        t = " / ".join("n/a" if fig[k] is None else f"{fig[k]:.0f} s"
                       for k in ("median_s", "p90_s", "max_s"))
        return f"{v} / {fig['unacknowledged']} (median / p90 / max {t})"
    if key in ("alarms_per_day", "alarms_per_10min_mean"):
        return f"{v:.2f}"
    by = ", ".join(f"{who} {n}" for who, n in (fig.get("by") or {}).items())
    return f"{v} (by {by})" if by else str(v)


def _performance(data: ReportData, tz: str) -> str:
    """Per site, every alarm KPI beside its target: ``facility.records.kpi``, the same
    figures as ``facility kpi`` (docs/ARCHITECTURE.md "Alarm KPIs")."""
    from facility.records.kpi import FIGURE_NAMES, figures

    names = {s.id: s.name for s in data.cfg.sites}
    out = []
    for k in data.kpi.sites:
        name = names.get(k.site) or ""
        title = (f"Site {escape(k.site)}" + (f" &mdash; {escape(name)}" if name else "")
                 if k.site is not None else "No site: the monitoring&#39;s own health alarms")
        out.append(f"<h3>{title}</h3>")
        out.append(_table("performance", ["measure", "value", "verdict", "target"],
                          [[escape(FIGURE_NAMES[key]), _n(_kpi_value(key, f)),
                            escape(f["verdict"] or ""), escape(f["target"] or "")]
                           for key, f in figures(k).items()], ""))
        out.append(_table("top10", ["most frequent alarm", "raises", "share"],
                          [[escape(a), _n(str(n)), _n(f"{100.0 * n / k.alarms:.1f} %")]
                           for a, n in k.top10], "no alarms raised"))
        out.append(_table("floods", ["10-minute period in flood, from", "alarms"],
                          [[escape(local_iso(t, tz)), _n(str(n))] for t, n in k.floods],
                          "no period in flood"))
        out.append(_table("chattering", ["chattering alarm", "most raises within 60 s"],
                          [[escape(a), _n(str(n))] for a, n in k.chattering],
                          "no chattering alarm"))
        out.append(_table("standing", ["stale alarm (standing > 24 h)", "#", "active for",
                                       "still active"],
                          [[escape(x.alarm), _n(str(x.occurrence)), _n(_dur(x.active_ms)),
                            "yes" if x.still_active else "no"] for x in k.stale],
                          "no stale alarm"))
    return "".join(out)


def render_report(data: ReportData, manifest_summary: dict | None = None) -> str:
    """The whole HTML page."""
    cfg = data.cfg
    sites = {s.id: s for s in cfg.sites}
    first_tz = cfg.sites[0].timezone if cfg.sites else "UTC"
    zones = [z for z in cfg.zones if (data.zone is None or z.id == data.zone)
             and (data.site is None or z.site == data.site)
             and any(p.get("zone") == z.id for p in data.points.values())]
    ms = manifest_summary or {}
    head = [f"<h1>Monitoring report: {escape(cfg.facility.name or cfg.facility.id)}</h1>",
            f"<p>Range [{escape(local_iso(data.from_ms, first_tz))}, "
            f"{escape(local_iso(data.to_ms, first_tz))}) &mdash; half-open, local time "
            f"({escape(first_tz)}). Filters: site {escape(str(data.site or 'all'))}, zone "
            f"{escape(str(data.zone or 'all'))}. Installation {escape(cfg.facility.id)}; audit "
            f"chain head #{escape(str(((ms.get('audit') or {}).get('chain_head') or {}).get('id')))}.</p>",
            "<p class=\"muted\">Compliance = time within action limits &divide; time with good "
            "data, per mode: each span is judged against the limits of the mode the zone was in"
            " at that time (at rest or in operation); time without good data is shown as <em>not monitored</em> and never counted "
            "as compliant. Classification here is a statement from monitoring data, not a "
            "formal ISO 14644-1 test.</p>"]
    versions = getattr(data, "config_versions", [])
    if len(versions) > 1:
        head.append('<p class="muted config-note">The configuration changed during the range'
                    f" ({len(versions)} versions, see <em>Configuration versions in force</em>);"
                    " compliance is judged against the limits of the configuration this report"
                    f" was made with ({escape(cfg.sha256[:12])}&hellip;).</p>")
    body = []
    for z in zones:
        tz = sites[z.site].timezone if z.site in sites else first_tz
        std = " / ".join(filter(None, [f"ISO {z.iso_class:g}" if z.iso_class else "",
                                       f"grade {z.gmp_grade}" if z.gmp_grade else ""]))
        body.append(f'<section class="zone" id="zone-{escape(z.id)}"><h2>{escape(z.id)} '
                    f"&mdash; {escape(z.name)} {escape(std)}</h2>")
        body.append(_charts(data, z, tz))
        body.append("<h3>Modes</h3>" + _modes(data, z.id, tz))
        body.append("<h3>Compliance</h3>" + _compliance(data, z.id))
        body.append("<h3>Excursions</h3>" + _excursions(data, z.id, tz))
        body.append("<h3>Classification</h3>" + _classification(data, z))
        body.append("</section>")
    body.append('<section id="alarm-performance"><h2>Alarm performance (ISA-18.2)</h2>')
    body.append(_performance(data, first_tz) + "</section>")
    body.append('<section id="operator-actions"><h2>Who acted (acknowledged, shelved, commented,'
                ' changed a mode)</h2>' + _who_acted(data, first_tz) + "</section>")
    body.append('<section id="configuration"><h2>Configuration versions in force</h2>'
                + _configs(data, first_tz) + "</section>")
    body.append('<section id="instruments"><h2>Instruments and calibration</h2>'
                + _instruments(data, first_tz) + "</section>")
    body.append('<section id="completeness"><h2>Data completeness</h2>'
                '<p class="muted">Samples stored against those expected from each point&#39;s'
                " interval (scan interval, or a particle counter&#39;s record time) up to the"
                " end of the range or now; a particle-counter location counts its records (one"
                " record carries every channel).</p>" + _completeness(data) + "</section>")
    body.append('<section id="approval"><h2>Approval</h2>' + _approval(data, first_tz)
                + "</section>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Monitoring report {escape(cfg.facility.id)}</title><style>{CSS}</style>"
            "</head><body>" + "".join(head) + "".join(body) + "</body></html>\n")
