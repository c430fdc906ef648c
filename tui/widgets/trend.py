"""Trends from 1-minute aggregates: an inline sparkline and a chart against the limits."""

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


def chart(buckets: list[dict], limits: dict[str, Limit], width: int, height: int,
          tz: str, end_ms: int | None = None, span_ms: int = 3_600_000) -> Text:
    """Min-max bars per minute on a scale that includes the limits, limit lines marked.

    Time runs left to right over ``span_ms`` ending at ``end_ms`` (the newest bucket's end
    when None), so a gap in the data shows as a gap.
    """
    width, height = max(10, width), max(3, height)
    label_w = 8
    cols = width - label_w - 1
    data = list(buckets)
    if end_ms is None and data:
        end_ms = data[-1]["bucket_ms"] + 60_000
    start_ms = (end_ms or 0) - span_ms
    data = [b for b in data if b["bucket_ms"] >= start_ms]
    values = [v for b in data for v in (b["min"], b["max"]) if v is not None and math.isfinite(v)]
    lim_vals = {n: lim.value for n, lim in limits.items()}
    scale = values + list(lim_vals.values())
    if not scale:
        return Text("no data in the last hour", style="dim")
    lo, hi = min(scale), max(scale)
    if hi == lo:
        hi, lo = hi + 1, lo - 1
    step = (hi - lo) / (height - 1)

    def row_of(v: float) -> int:
        return int(round((hi - v) / step))

    grid = [[(" ", "")] * cols for _ in range(height)]
    for name, v in lim_vals.items():
        r = row_of(v)
        for c in range(cols):
            grid[r][c] = ("─", LIMIT_STYLE.get(name, ""))
    for b in data:
        if b["min"] is None or b["max"] is None:
            continue
        c0 = int((b["bucket_ms"] - start_ms) * cols / span_ms)
        c1 = max(c0 + 1, int((b["bucket_ms"] + 60_000 - start_ms) * cols / span_ms))
        r0, r1 = row_of(b["max"]), row_of(b["min"])
        beyond = any((n.endswith("high") and b["max"] > v) or (n.endswith("low") and b["min"] < v)
                     for n, v in lim_vals.items())
        style = "bold red" if beyond else "bright_white"
        for c in range(max(0, c0), min(cols, c1)):
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
        first, last = short_time(start_ms, tz), short_time(end_ms, tz)
        out.append(f"{'':>{label_w}} {first[6:]}", style="dim")
        pad = max(1, cols - len(first[6:]) - len(last[6:]))
        out.append(" " * pad + last[6:], style="dim")
    return out


class Trend(Static):
    """The last hour of one point against its limits (min-max per minute)."""

    def __init__(self, **kwargs):
        super().__init__("", **kwargs)
        self._args: tuple | None = None
        self._last: tuple | None = None

    @property
    def drawn_size(self) -> Size | None:
        """The content size the chart was last drawn for (None before the first draw)."""
        return None if self._args is None else self._args[3]

    def show(self, buckets: list[dict], limits: dict[str, Limit], tz: str, title: str,
             end_ms: int | None = None) -> None:
        """Draw (only when something changed); ``end_ms``: the right edge (now)."""
        self._last = (buckets, limits, tz, title, end_ms)
        size = self.content_size
        minute = None if end_ms is None else end_ms // 60_000
        args = (title, tuple((b["bucket_ms"], b["min"], b["max"]) for b in buckets),
                tuple(sorted((n, lim.value) for n, lim in limits.items())), size, minute)
        if args == self._args:
            return
        self._args = args
        self.border_title = title
        end = None if end_ms is None else (minute + 1) * 60_000
        self.update(chart(buckets, limits, max(20, size.width), max(3, size.height - 1), tz, end))

    def on_resize(self) -> None:
        self._args = None
        if self._last is not None:
            self.show(*self._last)
