"""Trends from the minute and hourly aggregates: an inline sparkline and a chart against the
limits (the zone screen's last hour, the trend screen's 1 h to 30 d)."""

from __future__ import annotations

import math

from rich.text import Text
from textual.geometry import Size
from textual.widgets import Static

from tui.fmt import fmt_value, short_time
from tui.limits import Limit

BARS = "▁▂▃▄▅▆▇█"
LIMIT_STYLE = {"action_high": "red", "action_low": "red", "alert_high": "yellow",
               "alert_low": "yellow"}


def sparkline(values: list[float | None], width: int = 12) -> str:
    """The last ``width`` values as block characters (a gap for missing minutes)."""
    vals = values[-width:]
    good = [v for v in vals if v is not None and math.isfinite(v)]
    if not good:
        return " " * len(vals)
    lo, hi = min(good), max(good)
    span = hi - lo or 1.0
    out = []
    for v in vals:
        if v is None or not math.isfinite(v):
            out.append(" ")
        else:
            out.append(BARS[min(7, int((v - lo) / span * 7.999))])
    return "".join(out)


SPAN_WORDS = {3_600_000: "hour", 86_400_000: "24 hours", 7 * 86_400_000: "7 days",
              30 * 86_400_000: "30 days"}


def _axis_time(ts_ms: int, tz: str, span_ms: int) -> str:
    """A time-axis label: ``18:02`` within a day, ``11-23 18:02`` up to a week, else ``11-23``."""
    t = short_time(ts_ms, tz)  # "11-23 18:02:11"
    if span_ms <= 3_600_000:
        return t[6:]
    if span_ms <= 86_400_000:
        return t[6:11]
    return t[:11] if span_ms <= 7 * 86_400_000 else t[:5]


def chart(buckets: list[dict], limits: dict[str, Limit], width: int, height: int,
          tz: str, end_ms: int | None = None, span_ms: int = 3_600_000,
          bucket_ms: int = 60_000) -> Text:
    """Min-max bars per screen column on a scale that includes the limits, limit lines marked.

    Time runs left to right over ``span_ms`` ending at ``end_ms`` (the newest bucket's end
    when None), so a gap in the data shows as a gap. Each column spans ``span_ms / columns``
    and shows the lowest minimum and highest maximum of the ``bucket_ms`` buckets in it, so
    a short excursion stays visible in a 30-day view.
    """
    width, height = max(10, width), max(3, height)
    label_w = 8
    cols = width - label_w - 1
    data = list(buckets)
    if end_ms is None and data:
        end_ms = data[-1]["bucket_ms"] + bucket_ms
    start_ms = (end_ms or 0) - span_ms
    data = [b for b in data if b["bucket_ms"] >= start_ms]
    values = [v for b in data for v in (b["min"], b["max"]) if v is not None and math.isfinite(v)]
    lim_vals = {n: lim.value for n, lim in limits.items()}
    scale = values + list(lim_vals.values())
    if not scale:
        return Text(f"no data in the last {SPAN_WORDS.get(span_ms, 'span')}", style="dim")
    lo, hi = min(scale), max(scale)
    if hi == lo:
        hi, lo = hi + 1, lo - 1
    step = (hi - lo) / (height - 1)

    def row_of(v: float) -> int:
        return int(round((hi - v) / step))

    col_lo: list[float | None] = [None] * cols
    col_hi: list[float | None] = [None] * cols
    for b in data:
        bmin, bmax = b["min"], b["max"]
        if bmin is None or bmax is None or not (math.isfinite(bmin) and math.isfinite(bmax)):
            continue
        c0 = int((b["bucket_ms"] - start_ms) * cols / span_ms)
        c1 = max(c0 + 1, int((b["bucket_ms"] + bucket_ms - start_ms) * cols / span_ms))
        for c in range(max(0, c0), min(cols, c1)):
            col_lo[c] = bmin if col_lo[c] is None else min(col_lo[c], bmin)
            col_hi[c] = bmax if col_hi[c] is None else max(col_hi[c], bmax)
    grid = [[(" ", "")] * cols for _ in range(height)]
    for name, v in lim_vals.items():
        r = row_of(v)
        for c in range(cols):
            grid[r][c] = ("─", LIMIT_STYLE.get(name, ""))
    for c in range(cols):
        cmin, cmax = col_lo[c], col_hi[c]
        if cmin is None or cmax is None:
            continue
        r0, r1 = row_of(cmax), row_of(cmin)
        beyond = any((n.endswith("high") and cmax > v) or (n.endswith("low") and cmin < v)
                     for n, v in lim_vals.items())
        style = "bold red" if beyond else "bright_white"
        for r in range(r0, r1 + 1):
            grid[r][c] = ("█" if r0 != r1 else "▬", style)
    out = Text()
    for r in range(height):
        label = fmt_value(hi - r * step, 2) if r in (0, height - 1) or r == height // 2 else ""
        out.append(f"{label:>{label_w}} ", style="dim")
        for ch, st in grid[r]:
            out.append(ch, style=st)
        out.append("\n")
    if end_ms:
        first, last = _axis_time(start_ms, tz, span_ms), _axis_time(end_ms, tz, span_ms)
        out.append(f"{'':>{label_w}} {first}", style="dim")
        pad = max(1, cols - len(first) - len(last))
        out.append(" " * pad + last, style="dim")
    return out


class Trend(Static):
    """One point against its limits over a span (min-max per column), the last hour unless
    told otherwise."""

    def __init__(self, **kwargs):
        super().__init__("", **kwargs)
        self._args: tuple | None = None
        self._last: tuple | None = None

    @property
    def drawn_size(self) -> Size | None:
        """The content size the chart was last drawn for (None before the first draw)."""
        return None if self._args is None else self._args[3]

    def show(self, buckets: list[dict], limits: dict[str, Limit], tz: str, title: str,
             end_ms: int | None = None, span_ms: int = 3_600_000,
             bucket_ms: int = 60_000) -> None:
        """Draw (only when something changed); ``end_ms``: the right edge (now)."""
        self._last = (buckets, limits, tz, title, end_ms, span_ms, bucket_ms)
        size = self.content_size
        edge = None if end_ms is None else end_ms // bucket_ms
        args = (title, tuple((b["bucket_ms"], b["min"], b["max"]) for b in buckets),
                tuple(sorted((n, lim.value) for n, lim in limits.items())), size, edge,
                span_ms, bucket_ms)
        if args == self._args:
            return
        self._args = args
        self.border_title = title
        end = None if end_ms is None else (edge + 1) * bucket_ms
        # the chart is drawn to the widget's size, which the stylesheet fixes (#trend,
        # #point-trend): a redraw needs no layout of the screen
        self.update(chart(buckets, limits, max(20, size.width), max(3, size.height - 1), tz,
                          end, span_ms, bucket_ms), layout=False)

    def on_resize(self) -> None:
        self._args = None
        if self._last is not None:
            self.show(*self._last)
