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

from html import escape

from facility.domain.timeparse import local_iso
from facility.domain.vocab import PRIORITIES
from facility.records.report.charts import downsample, line_chart
from facility.records.report.stats import ReportData

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:2px solid #1f77b4;padding-bottom:3px;margin-top:32px}
h3{font-size:15px;margin-bottom:4px}table{border-collapse:collapse;margin:6px 0 14px;font-size:12px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#eef3f8}
td.num{text-align:right}.pass{color:#2ca02c;font-weight:600}.fail{color:#d62728;font-weight:600}
.muted{color:#777}.chart{display:block;margin:4px 0 10px}
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
    return "n/a" if x is None else f"{100.0 * x:.2f} %"


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


def _charts(data: ReportData, zone, tz: str) -> str:
    pts = _zone_points(data, zone.id)
    out = []
    by_size: dict[str, list[dict]] = {}
    for p in pts:
        if p.get("quantity") == "particle_conc" and ".pc_" in p["point"]:
            by_size.setdefault(p["point"].rsplit(".pc_", 1)[1], []).append(p)
    for size, group in sorted(by_size.items(), key=lambda kv: float(kv[0][:-2].replace("_", "."))):
        series = {p["point"]: _series(data, p["id"]) for p in group}
        limits = _limit_lines(data.limits.get(group[0]["point"], {}))
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
    rows = []
    for p in _zone_points(data, zone_id):
        c = data.compliance.get(p["point"])
        if c is None:
            continue
        lim = ", ".join(f"{k} {v:g}" for k, v in sorted(c.action.items()))
        rows.append([escape(p["point"]), escape(lim), _n(_dur(c.good_ms)), _n(_dur(c.within_ms)),
                     _n(_pct(c.ratio)), _n(_dur(c.not_monitored_ms)),
                     _n(_pct(c.not_monitored_ms / max(c.to_ms - c.from_ms, 1)))])
    return _table("compliance", ["point", "action limits", "good data", "within limits",
                                 "compliance", "not monitored", "not monitored share"], rows,
                  "no points with limits in this zone")


def _excursions(data: ReportData, zone_id: str, tz: str) -> str:
    rows = []
    for x in data.excursions:
        point = x["alarm_id"].split(":", 1)[0]
        pz = next((p.get("zone") for p in data.points.values() if p["point"] == point), None)
        if pz != zone_id and not point.startswith(zone_id + "."):
            continue
        peak = "" if x["peak"] is None else f"{x['peak']:g}"
        rows.append([escape(x["alarm_id"]), _n(str(x["occurrence"])),
                     escape(local_iso(x["onset_ms"], tz)),
                     escape(local_iso(x["clear_ms"], tz)) if x["clear_ms"] else "not cleared",
                     _n(_dur(x["duration_ms"])), _n(peak),
                     _n("" if x["limit"] is None else f"{x['limit']:g}"),
                     escape(x.get("source") or "")])
    return _table("excursions", ["alarm", "#", "onset", "clear", "duration", "peak", "limit",
                                 "limit source"], rows, "no excursions in the range")


def _classification(data: ReportData, zone_id: str) -> str:
    c = getattr(data, "classification", {}).get(zone_id)
    if c is None:
        return '<p class="muted classification">no ISO class or no particle data</p>'
    status = "PASS" if c.passed else "FAIL"
    return (f'<p class="classification">ISO 14644-1:2015 class {c.iso_class:g}: '
            f'<span class="{status.lower()}">{status}</span></p><pre>'
            + escape("\n".join(c.lines())) + "</pre>")


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
            "data; time without good data is shown as <em>not monitored</em> and never counted "
            "as compliant. Classification here is a statement from monitoring data, not a "
            "formal ISO 14644-1 test.</p>"]
    body = []
    for z in zones:
        tz = sites[z.site].timezone if z.site in sites else first_tz
        std = " / ".join(filter(None, [f"ISO {z.iso_class:g}" if z.iso_class else "",
                                       f"grade {z.gmp_grade}" if z.gmp_grade else ""]))
        body.append(f'<section class="zone" id="zone-{escape(z.id)}"><h2>{escape(z.id)} '
                    f"&mdash; {escape(z.name)} {escape(std)}</h2>")
        body.append(_charts(data, z, tz))
        body.append("<h3>Compliance</h3>" + _compliance(data, z.id))
        body.append("<h3>Excursions</h3>" + _excursions(data, z.id, tz))
        body.append("<h3>Classification</h3>" + _classification(data, z.id))
        body.append("</section>")
    body.append('<section id="alarm-performance"><h2>Alarm performance (ISA-18.2)</h2>')
    body.append(_performance(data, first_tz) + "</section>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Monitoring report {escape(cfg.facility.id)}</title><style>{CSS}</style>"
            "</head><body>" + "".join(head) + "".join(body) + "</body></html>\n")
