"""The words of a page: its summary, its details and the e-mail a person reads.

docs/ARCHITECTURE.md "Paging": a page is read on a phone, often at night, by someone who
must decide what to do before they reach a terminal. So the summary says, in one line,
how urgent, where (site and room by name), what (the point in words, its value and the
limit with units, and the standard clause the limit comes from), which instrument and
where it samples, since when (the site's local time with its offset) and the ISA-18.2
state. The details repeat those fields and add what is needed to act: the occurrence, the
dedup key and the exact ``facility ack`` command. The e-mail is that text, as text/plain
with an HTML alternative, never raw JSON.

:class:`AlarmContext` is what the service knows about an alarm besides its lifecycle
state (built by ``facility.service.alarm_book``); values are formatted by
``facility.domain.display`` so a page and the TUI write a reading the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

from facility.domain.display import BOOLEAN_WORDS, format_value, local_time

SUMMARY_MAX = 1024
"""PagerDuty Events API v2 accepts at most 1024 characters of summary
(PagerDuty Events v2 / Alertmanager); every channel gets the same text."""

LIMIT_WORDS = {"action": "action limit", "alert": "alert level"}
"""EU GMP Annex 1's words for the two levels of a limit."""

ACK_REASON = '"..."'
"""The placeholder of the ``--reason`` the person types (Annex 11 §9: every action has one)."""


@dataclass(frozen=True)
class AlarmContext:
    """What routing and the page text need to know about an alarm besides its state.

    Every field is optional so a caller that knows little (a test, a system alarm without a
    room) still gets a readable page; ``summary``, when given, replaces the composed one.
    """

    site: str | None = None
    zone: str | None = None
    device: str | None = None
    summary: str = ""  # a fixed summary instead of the composed one
    details: Mapping[str, object] = field(default_factory=dict)  # extra detail rows
    site_name: str = ""
    zone_name: str = ""
    timezone: str = "UTC"  # the site's IANA zone: pages show local time with offset
    point: str | None = None  # point id, e.g. "MEC-PC-01.pc_0_5um"
    what: str = ""  # the point in words, e.g. "particles ≥0.5 µm"
    unit: str = ""
    quantity: str = ""
    value: float | None = None  # the newest reading of the point
    value_ms: int | None = None
    reading: str = ""  # a related reading, e.g. a gas detector's concentration beside its bit
    limit: float | None = None
    limit_name: str | None = None  # action_high | alert_high | alert_low | action_low
    source: str = ""  # where the limit comes from (the standard's clause)
    instrument: str = ""  # e.g. "MEC-GD-01 (arsine cabinet detector)"
    location: str = ""  # where the instrument samples
    onset_ms: int | None = None
    state: str | None = None  # the ISA-18.2 state now
    active: bool | None = None  # the process condition now (None: not known)


def ack_command(alarm_id: str, occurrence: int) -> str:
    """The exact command that acknowledges this occurrence (docs/ARCHITECTURE.md
    "The command line": ``facility ack ALARM#N --reason TEXT``)."""
    return f"facility ack {alarm_id}#{occurrence} --reason {ACK_REASON}"


def _is_bit(ctx: AlarmContext) -> bool:
    return ctx.quantity in BOOLEAN_WORDS and not ctx.unit


def limit_text(ctx: AlarmContext) -> str:
    """``action limit max 3520 count/m3`` (empty for a 0/1 point or no limit)."""
    if ctx.limit is None or _is_bit(ctx) or not ctx.limit_name:
        return ""
    level, _, side = ctx.limit_name.partition("_")
    bound = "max" if side == "high" else "min"
    word = LIMIT_WORDS.get(level, ctx.limit_name.replace("_", " "))
    return f"{word} {bound} {format_value(ctx.limit, ctx.unit, ctx.quantity)}"


def _label(name: str, ident: str | None) -> str:
    if name and ident and name != ident:
        return f"{name} ({ident})"
    return name or ident or ""


def _instrument(ctx: AlarmContext) -> str:
    if ctx.instrument and ctx.location:
        return f"{ctx.instrument} at {ctx.location}"
    return ctx.instrument or ctx.location


def compose_title(ctx: AlarmContext, *, alarm_id: str, priority: str,
                  prefix: str | None = None) -> str:
    """The short form, for an e-mail subject or an SMS: how urgent, which room, what reads
    what (``CRITICAL Lithography bay: particles ≥0.5 µm 4120 count/m3``)."""
    if ctx.summary:
        text = ctx.summary
    else:
        where = ctx.zone_name or ctx.zone or ctx.site_name or ctx.site
        head = f"{priority.upper()} {where}:" if where else f"{priority.upper()}:"
        reading = format_value(ctx.value, ctx.unit, ctx.quantity) if ctx.what else ""
        text = " ".join(p for p in (head, ctx.what or alarm_id, reading) if p)
    return (f"{prefix}; {text}" if prefix else text)[:SUMMARY_MAX]


def compose_summary(ctx: AlarmContext, *, alarm_id: str, priority: str,
                    note: str | None = None, prefix: str | None = None) -> str:
    """The one-line summary (at most :data:`SUMMARY_MAX` characters).

    ``note`` says what this message is about beyond the alarm itself ("returned at T, not
    acknowledged", "acknowledged by ..."); ``prefix`` goes first ("chattering: ...").
    """
    if ctx.summary:
        text = ctx.summary
    else:
        place = " / ".join(p for p in (ctx.site_name or ctx.site, ctx.zone_name or ctx.zone) if p)
        head = f"{priority.upper()} {place}:" if place else f"{priority.upper()}:"
        what = ctx.what or alarm_id
        reading = format_value(ctx.value, ctx.unit, ctx.quantity) if ctx.what else ""
        limit = ", ".join(p for p in (limit_text(ctx), ctx.source) if p)
        body = " ".join(p for p in (head, what, reading) if p)
        if ctx.reading:
            body += f", {ctx.reading}"
        parts = [body + (f" ({limit})" if limit else "")]
        instrument = _instrument(ctx)
        if instrument:
            parts.append(instrument)
        if ctx.onset_ms is not None:
            parts.append(f"onset {local_time(ctx.onset_ms, ctx.timezone)}")
        if ctx.state:
            parts.append(ctx.state)
        text = "; ".join(parts)
    if prefix:
        text = f"{prefix}; {text}"
    if note:
        text = f"{text}: {note}"
    return text[:SUMMARY_MAX]


def compose_details(ctx: AlarmContext, *, alarm_id: str, occurrence: int, priority: str,
                    dedup_key: str, note: str | None = None,
                    extra: Iterable[tuple[str, object]] = ()) -> list[tuple[str, object]]:
    """The detail rows, in reading order: the summary's fields, then what is needed to act.

    Rows without a value are left out (a system alarm has no room).
    """
    point = ""
    if ctx.what or ctx.point:
        inner = ", ".join(p for p in (ctx.point, ctx.unit) if p)
        point = f"{ctx.what} ({inner})" if ctx.what and inner else (ctx.what or inner)
    value = ""
    if ctx.what:
        value = format_value(ctx.value, ctx.unit, ctx.quantity)
        if ctx.value_ms is not None:
            value += f" at {local_time(ctx.value_ms, ctx.timezone)}"
    rows: list[tuple[str, object]] = [
        ("priority", priority),
        ("state", ctx.state or ""),
        ("site", _label(ctx.site_name, ctx.site)),
        ("room", _label(ctx.zone_name, ctx.zone)),
        ("point", point),
        ("value", value),
        ("reading", ctx.reading),
        ("limit", limit_text(ctx)),
        ("limit source", ctx.source),
        ("instrument", ctx.instrument),
        ("sampling location", ctx.location),
        ("onset", local_time(ctx.onset_ms, ctx.timezone)),
        ("note", note or ""),
        *extra,
        *ctx.details.items(),
        ("alarm", alarm_id),
        ("occurrence", occurrence),
        ("dedup key", dedup_key),
        ("acknowledge", ack_command(alarm_id, occurrence)),
    ]
    return [(k, v) for k, v in rows if v is not None and v != ""]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format_value(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return str(value)


def detail_rows(msg: Mapping) -> list[tuple[str, str]]:
    """A message's detail rows as text: its ``details`` list, else its ``custom_details``
    (a message written before the ``details`` list existed still reads as rows)."""
    rows = msg.get("details")
    if rows is None:
        rows = sorted((msg.get("custom_details") or {}).items())
    return [(str(k), _text(v)) for k, v in rows]


def email_text(summary: str, rows: Sequence[tuple[str, str]]) -> str:
    """The text/plain body: the summary, a blank line, one aligned ``label: value`` a row."""
    width = max((len(k) for k, _ in rows), default=0) + 1
    lines = [summary, ""] + [f"{k + ':':<{width}} {v}" for k, v in rows]
    return "\n".join(lines) + "\n"


def email_html(summary: str, rows: Sequence[tuple[str, str]]) -> str:
    """The HTML alternative: the same words, every one escaped (operator text is data)."""
    cells = []
    for k, v in rows:
        value = f"<code>{escape(v)}</code>" if k == "acknowledge" else escape(v)
        cells.append(f'<tr><th align="left">{escape(k)}</th><td>{value}</td></tr>')
    body = "\n".join(cells)
    return ("<!DOCTYPE html>\n<html><body>\n"
            f"<p><strong>{escape(summary)}</strong></p>\n"
            f"<table>\n{body}\n</table>\n</body></html>\n")
