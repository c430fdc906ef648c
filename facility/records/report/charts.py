"""Inline SVG line charts for report.html: no JavaScript, no external assets.

A chart is series of ``(ts_ms, value)`` (None breaks the line: no good data there) plus
horizontal limit lines. The x axis is labelled in the site's local time with its offset.
A chart without a single good value says "no data" across its plot area, so an empty
frame is never mistaken for a flat line outside the range shown.
"""

from __future__ import annotations

import math
from html import escape

from facility.domain.display import format_number
from facility.domain.timeparse import local_iso

W, H = 800, 220
L, R, T, B = 70, 190, 14, 34
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22")
LIMIT_STYLE = {"action": ("#d62728", "6 3"), "alert": ("#ff7f0e", "3 3")}


def _fmt(v: float) -> str:
    """Axis and limit labels: significant digits, never scientific notation."""
    return format_number(v)


def downsample(buckets: list[dict], max_points: int = 300) -> list[tuple[int, float | None]]:
    """Aggregate buckets (``bucket_ms``, ``n_good``, ``sum``, ``max``) into at most
    ``max_points`` points of the mean of good samples; None where a bucket had no good data."""
    if not buckets:
        return []
    step = max(1, math.ceil(len(buckets) / max_points))
    out: list[tuple[int, float | None]] = []
    for i in range(0, len(buckets), step):
        group = buckets[i:i + step]
        n = sum(b["n_good"] or 0 for b in group)
        s = sum(b["sum"] or 0.0 for b in group if b["n_good"])
        out.append((group[0]["bucket_ms"], s / n if n else None))
    return out


def line_chart(title: str, series: dict[str, list[tuple[int, float | None]]],
               limits: list[tuple[str, str, float]], from_ms: int, to_ms: int, tz: str,
               unit: str = "", log: bool = False) -> str:
    """One SVG chart; ``limits`` are ``(label, "action"|"alert", value)``."""
    values = [v for pts in series.values() for _t, v in pts if v is not None]
    has_data = bool(values)
    values += [v for _l, _k, v in limits]
    if log:
        values = [v for v in values if v > 0]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if log:
        lo, hi = math.log10(max(lo, 1e-3)), math.log10(max(hi, 1e-3))
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    span = max(to_ms - from_ms, 1)

    def x(t: int) -> float:
        return L + (W - L - R) * (t - from_ms) / span

    def y(v: float) -> float:
        if log:
            v = math.log10(max(v, 1e-3))
        return T + (H - T - B) * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="#fff" '
             'stroke="#999"/>']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        shown = 10 ** v if log else v
        yy = T + (H - T - B) * (1 - k / 4)
        parts.append(f'<text x="{L - 4}" y="{yy + 4:.1f}" text-anchor="end" font-size="10">'
                     f"{escape(_fmt(shown))}</text>")
    for k in range(3):
        t = from_ms + span * k // 2
        anchor = ("start", "middle", "end")[k]
        parts.append(f'<text x="{x(t):.1f}" y="{H - 18}" text-anchor="{anchor}" font-size="10">'
                     f"{escape(local_iso(t, tz, seconds=False))}</text>")
    parts.append(f'<text x="{L}" y="{H - 4}" font-size="10">{escape(unit)}'
                 f'{" (log scale)" if log else ""}</text>')
    legend_y = T + 10
    for label, kind, v in limits:
        color, dash = LIMIT_STYLE.get(kind, ("#d62728", "6 3"))
        yy = y(v)
        parts.append(f'<line class="limit {kind}" x1="{L}" x2="{W - R}" y1="{yy:.1f}" '
                     f'y2="{yy:.1f}" stroke="{color}" stroke-dasharray="{dash}"/>')
        parts.append(f'<text x="{W - R + 6}" y="{legend_y}" font-size="10" fill="{color}">'
                     f"{escape(label)} {escape(_fmt(v))}</text>")
        legend_y += 13
    for i, (name, pts) in enumerate(sorted(series.items())):
        color = PALETTE[i % len(PALETTE)]
        runs, cur = [], []
        for t, v in pts:
            if v is None or (log and v <= 0):
                if cur:
                    runs.append(cur)
                cur = []
                continue
            cur.append(f"{x(t):.1f},{y(v):.1f}")
        if cur:
            runs.append(cur)
        for run in runs:
            if len(run) == 1:
                px, py = run[0].split(",")
                parts.append(f'<circle cx="{px}" cy="{py}" r="1.5" fill="{color}"/>')
            else:
                parts.append(f'<polyline class="series" fill="none" stroke="{color}" '
                             f'stroke-width="1.2" points="{" ".join(run)}"/>')
        parts.append(f'<text x="{W - R + 6}" y="{legend_y}" font-size="10" fill="{color}">'
                     f"{escape(name)}</text>")
        legend_y += 13
    if not has_data:
        parts.append(f'<text class="no-data" x="{(L + W - R) / 2:.1f}" y="{(T + H - B) / 2:.1f}"'
                     ' text-anchor="middle" font-size="14" fill="#777">no data</text>')
    parts.append("</svg>")
    return "".join(parts)
