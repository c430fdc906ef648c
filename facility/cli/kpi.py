"""``facility kpi``: ISA-18.2 / EEMUA 191 alarm KPIs per site, each beside its target.

The figures come from ``facility.records.kpi`` (the same computation as the report's alarm
section); this module only reads the arguments and lays the figures out, as text or as the
JSON object documented in the README ("`facility kpi --json` schema").
"""

from __future__ import annotations

import json

import click

from facility.cli.errors import USAGE, CliError
from facility.cli.group import cli, config_option, load, say
from facility.domain.vocab import PRIORITIES

NO_SITE = "no site (the monitoring's own health alarms)"


def site_record(k, cfg) -> dict:
    """One site's JSON object."""
    from facility.domain.model import iso_ms
    from facility.records.kpi import figures

    names = {s.id: s.name for s in cfg.sites}
    return {
        "site": k.site, "name": names.get(k.site, "") if k.site is not None else NO_SITE,
        "figures": figures(k),
        "floods": [{"from": iso_ms(t), "alarms": n} for t, n in k.floods],
        "chattering": [{"alarm": a, "raises_in_60s": n} for a, n in k.chattering],
        "stale": [{"alarm": s.alarm, "occurrence": s.occurrence, "raised": iso_ms(s.raised_ms),
                   "active_s": s.active_ms / 1000.0, "still_active": s.still_active}
                  for s in k.stale],
        "standing_at_end": list(k.standing_at_end),
        "top10": [{"alarm": a, "raises": n, "share_pct": round(100.0 * n / k.alarms, 3)}
                  for a, n in k.top10],
    }


def _value(key: str, fig: dict) -> str:
    v = fig["value"]
    if v is None:
        return "n/a"
    if key == "flood_periods_pct":
        return f"{v:.2f} % ({fig['periods']}/{fig['of']})"
    if key == "top10_share_pct":
        return f"{v:.1f} %"
    if key == "priority_mix_pct":
        return "/".join(f"{v[p]:.0f}" for p in PRIORITIES) + " %"
    if key == "acknowledged":
        return f"{v} / {fig['unacknowledged']}"
    if key == "alarms_per_day":
        return f"{v:.1f}"
    if key == "alarms_per_10min_mean":
        return f"{v:.2f}"
    return str(v)


def _dur(s: float) -> str:
    s = int(s)
    d, s = divmod(s, 86_400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def site_lines(rec: dict, tz: str) -> list[str]:
    """The text block of one site."""
    from facility.domain.timeparse import local_iso
    from facility.records.kpi import FIGURE_NAMES

    def local(iso: str) -> str:
        from datetime import datetime

        return local_iso(int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
                             * 1000), tz)

    head = f"site {rec['site']} ({rec['name']})" if rec["site"] is not None else rec["name"]
    lines = [head]
    for key, fig in rec["figures"].items():
        target = f"target: {fig['target']}" if fig["target"] else ""
        lines.append(f"  {FIGURE_NAMES[key]:<28} {_value(key, fig):>16}  {fig['verdict'] or '':<10}"
                     f" {target}".rstrip())
        by = fig.get("by")
        if by:
            lines.append("      by " + ", ".join(f"{who} {n}" for who, n in by.items()))
    if rec["top10"]:
        lines.append("  top 10:")
        lines += [f"    {i:>2}. {t['alarm']:<44} {t['raises']:>5}  {t['share_pct']:5.1f} %"
                  for i, t in enumerate(rec["top10"], 1)]
    if rec["floods"]:
        lines.append("  periods in flood:")
        lines += [f"    {local(f['from'])}  {f['alarms']} alarms" for f in rec["floods"]]
    if rec["chattering"]:
        lines.append("  chattering:")
        lines += [f"    {c['alarm']}  {c['raises_in_60s']} raises within 60 s"
                  for c in rec["chattering"]]
    if rec["stale"]:
        lines.append("  stale (standing > 24 h):")
        lines += [f"    {s['alarm']}#{s['occurrence']} raised {local(s['raised'])}, active "
                  f"{_dur(s['active_s'])}{', still active' if s['still_active'] else ''}"
                  for s in rec["stale"]]
    return lines


@cli.command("kpi")
@config_option
@click.option("--from", "frm", required=True, help="start (inclusive); bare dates/times are in the site's zone")
@click.option("--to", "to", required=True, help="end (exclusive); a bare date means the end of that day")
@click.option("--site", default=None, help="only this site")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object (schema in the README)")
def kpi_cmd(config_path, frm, to, site, as_json):
    """ISA-18.2 / EEMUA 191 alarm KPIs per site, each beside its target."""
    from facility.domain.model import iso_ms
    from facility.domain.timeparse import TimeError, local_iso, parse_range
    from facility.records.kpi import PERIOD_MS, alarm_kpis
    from facility.store import Store

    cfg = load(config_path)
    if site is not None and site not in {s.id for s in cfg.sites}:
        known = ", ".join(s.id for s in cfg.sites)
        raise CliError(f"--site {site}: no such site; known: {known}", USAGE)
    tzs = {s.id: s.timezone for s in cfg.sites}
    tz = tzs.get(site) or (cfg.sites[0].timezone if cfg.sites else "UTC")
    try:
        lo, hi = parse_range(frm, to, tz)
    except TimeError as exc:
        raise CliError(f"--from/--to: {exc}", USAGE) from None
    groups = [site] if site is not None else [*(s.id for s in cfg.sites), None]
    with Store(cfg.db_path, readonly=True) as store:
        result = alarm_kpis(store, lo, hi, sites=groups)
    records = [site_record(k, cfg) for k in result.sites]
    if as_json:
        click.echo(json.dumps({"from": iso_ms(lo), "to": iso_ms(hi), "period_s": PERIOD_MS // 1000,
                               "days": round((hi - lo) / 86_400_000, 6), "sites": records}))
        return
    first = result.total
    say(f"alarm KPIs for [{local_iso(lo, tz)}, {local_iso(hi, tz)}): {first.periods} "
        f"ten-minute periods, {first.days:.2f} days")
    for rec in records:
        say("")
        for line in site_lines(rec, tzs.get(rec["site"], tz)):
            say(line)
