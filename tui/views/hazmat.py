"""View models of the hazmat screen: stock against licence, gas readings against set points.

Stock comes from the ledger's ``hazmat_containers`` table (``hazmat.ledger``); a database
without it shows "no ledger yet". Gas set points: the limits the engine uses for
``<detector>.conc`` when it has any, else the two-stage defaults of the gas table with the
detector's ``setpoints`` overrides (ACGIH TLV), each with its source. Gas
values keep the significant digits their range needs (``facility.domain.display``): arsine's
0.005 / 0.01 ppm set points must not both read "0.01".
"""

from __future__ import annotations

from rich.text import Text

from facility.config.schema import Config, Device
from facility.domain.display import format_value
from tui.data import Snapshot
from tui.fmt import LEVEL_STYLE, QUALITY_LABEL, fmt_value
from tui.limits import LimitIndex

STOCK_COLUMNS = ("Store", "Class", "Stock", "Licensed", "Use", "Containers")
GAS_COLUMNS = ("Detector", "Gas", "Watches", "Conc", "Low", "High", "STEL", "TWA", "Det. alarm")


def stock_rows(cfg: Config, snap: Snapshot) -> list[tuple[str, list]]:
    """Stock per store and dangerous-goods class against the licensed maximum."""
    if snap.hazmat is None:
        return []
    cls_of = {s.id: s.dg_class for s in cfg.hazmat.substances}
    stock: dict[tuple[str, str], list[float]] = {}
    for r in snap.hazmat:
        key = (r["store"], cls_of.get(r["substance"], "?"))
        acc = stock.setdefault(key, [0.0, 0])
        acc[0] += r["quantity"] or 0.0
        acc[1] += r["containers"] or 0
    rows = []
    for st in cfg.hazmat.stores:
        classes = sorted(set(st.licensed_max) | {c for (s, c) in stock if s == st.id})
        for c in classes:
            qty, n = stock.get((st.id, c), [0.0, 0])
            lic = st.licensed_max.get(c)
            if lic:
                frac = qty / lic
                style = "bold red" if frac > 1 else "yellow" if frac >= st.alert_fraction else "green"
                use = Text(f"{100 * frac:.0f} %", style=style)
            else:
                use = Text("no licence" if qty else "", style="bold red" if qty else "")
            rows.append((f"{st.id}:{c}", [st.id, c, fmt_value(qty, 1),
                                          fmt_value(lic, 1) if lic else "-", use, str(n)]))
    return rows


def gas_setpoints(dev: Device, limits: LimitIndex,
                  cfg: Config | None = None) -> tuple[float | None, float | None, str]:
    """(low, high, source) in ppm for a detector's ``conc`` point (with ``cfg``: the gas
    policy's set points, % LEL converted to ppm like the reading)."""
    lims = limits.for_point(f"{dev.id}.conc")
    if lims:
        low = lims.get("alert_high") or lims.get("action_high")
        high = lims.get("action_high")
        return (low.value if low else None, high.value if high else None,
                (high or low).source if (high or low) else "")
    try:
        if cfg is not None:
            from hazmat.gas import policy

            pol = policy(cfg, dev)
            return pol.low, pol.high, pol.source
        from alarms.standards import default_setpoints

        sp = default_setpoints(dev.gas or "", dev.monitor or "room", dict(dev.setpoints))
        return sp["low"], sp["high"], sp["source"]
    except Exception as exc:  # noqa: BLE001 - an unknown gas shows no set point
        return None, None, str(exc)


def _ppm(value: float | None) -> str:
    """A gas value or set point (ppm) with the digits its range needs, so arsine's 0.005 /
    0.01 ppm set points read apart and 0.004 ppm is not "0.00"; ``--`` where there is none."""
    return "--" if value is None else format_value(value)


def gas_rows(cfg: Config, snap: Snapshot, limits: LimitIndex) -> list[tuple[str, list]]:
    """One row per gas detector: concentration, set points, STEL/TWA, the detector's own bits."""
    rows = []
    for d in cfg.devices:
        if not d.gas:
            continue
        low, high, _src = gas_setpoints(d, limits, cfg)
        value, q, _ts = snap.value(f"{d.id}.conc")
        if q is None:
            conc = Text("--", style="dim")
        elif q != 0:
            conc = Text(QUALITY_LABEL.get(q, "?"), style=LEVEL_STYLE["bad"])
        else:
            level = ("action" if high is not None and value is not None and value >= high else
                     "alert" if low is not None and value is not None and value >= low else "ok")
            conc = Text(format_value(value), style=LEVEL_STYLE[level])
        bits = []
        for name, label in (("alarm_high", "HIGH"), ("alarm_low", "low"), ("fault", "fault")):
            v = snap.value(f"{d.id}.{name}")[0]
            if v:
                bits.append(label)
        stel = snap.value(f"{d.id}.stel_15min")[0]
        twa = snap.value(f"{d.id}.twa_8h")[0]
        rows.append((d.id, [d.id, d.gas, d.cabinet or d.monitor or "", conc,
                            _ppm(low), _ppm(high),
                            _ppm(stel) if f"{d.id}.stel_15min" in snap.points else "",
                            _ppm(twa) if f"{d.id}.twa_8h" in snap.points else "",
                            Text(" ".join(bits) or "-", style="bold red" if bits else "")]))
    return rows
