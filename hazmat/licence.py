"""Stock against FSD licences and against exempt quantities.

A licensed store has an approved maximum quantity per class (HK Cap. 295 (FSD)):
stock of a class at or above the store's ``alert_fraction`` of that maximum is an *alert*
(time to order less or move stock), above the maximum an *action* (a licence breach).
Everything a licence does not cover — unlicensed stores, and classes a licensed store's
licence does not name — counts towards the site's aggregate exempt quantities (§4 table,
see :mod:`hazmat.exempt`), because exempt quantities apply to the premises, not a room.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from facility.config.schema import HazmatCfg, Store
from hazmat.classes import HazmatError, class_matches
from hazmat.exempt import aggregate, strictest_premises
from hazmat.findings import Finding

StockRow = tuple[str, str, float, str]
"""(store id, substance id, quantity, unit): what the licence arithmetic needs of stock."""


def licence_key(store: Store, dg_class: str) -> str | None:
    """The ``licensed_max`` entry that stock of ``dg_class`` counts against (most specific wins)."""
    keys = [k for k in store.licensed_max if class_matches(k, dg_class)]
    return max(keys, key=len) if keys else None


def licensed_totals(hz: HazmatCfg, rows: Iterable[StockRow]) -> tuple[dict, list[StockRow]]:
    """Split stock into licensed totals and the rest.

    Returns ``({(store, licence key): (total, units)}, uncovered rows)``; every licence
    entry of every licensed store is present, at 0 when empty, so a report lists them all.
    """
    stores = {s.id: s for s in hz.stores}
    subs = {s.id: s for s in hz.substances}
    totals: dict[tuple[str, str], list] = {}
    for st in hz.stores:
        if st.licence:
            for k in st.licensed_max:
                totals[(st.id, k)] = [0.0, set()]
    rest: list[StockRow] = []
    for store_id, sub_id, qty, unit in rows:
        st, sub = stores.get(store_id), subs.get(sub_id)
        if sub is None:
            raise HazmatError(f"substance {sub_id!r} is not in [[hazmat.substances]]")
        key = licence_key(st, sub.dg_class) if st is not None and st.licence else None
        if key is None:
            rest.append((store_id, sub_id, qty, unit))
            continue
        totals[(store_id, key)][0] += qty
        totals[(store_id, key)][1].add(unit)
    return {k: (v[0], "/".join(sorted(v[1])) or "") for k, v in totals.items()}, rest


def check_licences(hz: HazmatCfg, rows: Iterable[StockRow]) -> list[Finding]:
    """Findings for licensed maxima (alert at alert_fraction, action above) and exempt quantities."""
    rows = list(rows)
    stores = {s.id: s for s in hz.stores}
    out: list[Finding] = []
    totals, rest = licensed_totals(hz, rows)
    for (store_id, key), (total, unit) in sorted(totals.items()):
        st = stores[store_id]
        maximum = st.licensed_max[key]
        unit = unit or _licence_unit(key)
        where = f"class {key} stock {total:g} {unit} in {store_id} (licence {st.licence}"
        if total > maximum:
            out.append(Finding("action", store_id, "licence",
                               f"{where} max {maximum:g}): over the licensed maximum; "
                               f"remove {total - maximum:g} {unit} now", key))
        elif maximum > 0 and total >= st.alert_fraction * maximum:
            out.append(Finding("alert", store_id, "licence",
                               f"{where} max {maximum:g}): at {total / maximum:.0%}, alert "
                               f"level {st.alert_fraction:.0%} (site choice)", key))
    out.extend(check_exempt(hz, rest))
    return out


def _licence_unit(key: str) -> str:
    return "L_wc" if key == "2" or key.startswith("2.") else "L/kg"


def check_exempt(hz: HazmatCfg, rest: Iterable[StockRow]) -> list[Finding]:
    """Stock not covered by a licence against the site's aggregate exempt quantities.

    Aggregated per site (the premises) over every store there; the premises type is the
    strictest of the stores contributing (general before industrial). Alert at the smallest
    ``alert_fraction`` among them, action above the exempt quantity.
    """
    stores = {s.id: s for s in hz.stores}
    subs = {s.id: s for s in hz.substances}
    by_site: dict[str, list[StockRow]] = defaultdict(list)
    for row in rest:
        st = stores.get(row[0])
        by_site[st.site if st else "?"].append(row)
    out: list[Finding] = []
    for site, site_rows in sorted(by_site.items()):
        contributing = sorted({r[0] for r in site_rows if r[2] > 0})
        if not contributing:
            continue
        cfgs = [stores[s] for s in contributing if s in stores]
        premises = strictest_premises(s.premises for s in cfgs)
        fraction = min((s.alert_fraction for s in cfgs), default=0.8)
        label = contributing[0] if len(contributing) == 1 else ",".join(contributing)
        try:
            lines = aggregate([(r[1], r[2], r[3]) for r in site_rows], subs, premises)
        except HazmatError as exc:
            out.append(Finding("action", label, "unit", str(exc), site))
            continue
        for line in lines:
            what = (f"unlicensed {_group_words(line.group)} on site {site} ({premises} premises): "
                    f"{line.total:g} {line.unit}")
            if line.limit is None and line.total > 0:
                out.append(Finding("action", label, "exempt",
                                   f"{what}; no exempt quantity exists for this class, "
                                   "store it under a licence that names it", line.group))
            elif line.exceeded:
                out.append(Finding("action", label, "exempt",
                                   f"{what} exceeds the exempt quantity {line.limit:g}; "
                                   "a DG licence is needed (Cap. 295)", line.group))
            elif line.limit and line.total >= fraction * line.limit:
                out.append(Finding("alert", label, "exempt",
                                   f"{what} is at {line.total / line.limit:.0%} of the exempt "
                                   f"quantity {line.limit:g}", line.group))
    return out


def _group_words(group: str) -> str:
    return f"{group} substances" if group.startswith("special") else f"class {group}"


def licence_rules(hz: HazmatCfg, alarm_priorities: dict[str, str] | None = None) -> list[dict]:
    """Limit rules on the derived stock points ``<store>.stock_<class>`` of licensed stores.

    The service (or a report) may evaluate stock levels like any other point: action_high
    at the licensed maximum, alert_high at the store's ``alert_fraction`` of it.
    """
    pri = alarm_priorities or {}
    rules = []
    for st in hz.stores:
        if not st.licence:
            continue
        for key, maximum in st.licensed_max.items():
            point = f"{st.id}.stock_{key}"
            src = f"FSD licence {st.licence} class {key} max {maximum:g}"
            rules.append(dict(point=point, limit="action_high", value=float(maximum), source=src,
                              priority=pri.get("action_high", "high"), critical=False,
                              kind="licence", on_delay_s=0.0))
            rules.append(dict(point=point, limit="alert_high",
                              value=float(maximum) * st.alert_fraction,
                              source=f"{src} x alert_fraction {st.alert_fraction:g} (site choice)",
                              priority=pri.get("alert_high", "medium"), critical=False,
                              kind="licence", on_delay_s=0.0))
    return rules


def stock_values(hz: HazmatCfg, rows: Iterable[StockRow]) -> dict[str, float]:
    """Current value of every ``<store>.stock_<class>`` point of :func:`licence_rules`."""
    totals, _rest = licensed_totals(hz, rows)
    return {f"{store}.stock_{key}": total for (store, key), (total, _u) in totals.items()}
