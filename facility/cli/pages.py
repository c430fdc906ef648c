"""``facility pages``: what the on-call engineer was sent, from the paging outbox.

Every page is a row of the durable outbox (docs/ARCHITECTURE.md "Paging"): one per message
per channel, queued, retrying, sent or failed. This module reads them through the store's
read API (``StoreReaders.pages``) and lays them out: time, delivery state, priority, what
happened (trigger, update, acknowledge, resolve), the alarm, the channel and its recipient
as the configuration names it now, then the page's own text.
"""

from __future__ import annotations

import json
import os

import click

from facility.cli.errors import USAGE, CliError
from facility.cli.group import cli, config_option, load, say

STATES = ("pending", "sent", "failed")


def recipient(ch) -> str:
    """Who a channel reaches, in words, without its secrets (a webhook's query string may
    carry a token; a PagerDuty routing key is named by its variable only)."""
    if ch is None:
        return "not in this configuration"
    if ch.type == "webhook":
        return (ch.url or "no url").split("?", 1)[0]
    if ch.type == "pagerduty":
        return f"PagerDuty service (routing key ${ch.routing_key_env})"
    if ch.type == "smtp":
        return ", ".join(ch.to) or "no recipient"
    if ch.type == "command":
        return f"command {os.path.basename(ch.command[0])}" if ch.command else "no command"
    return ch.type


def delivery(row: dict) -> str:
    """``sent``, ``queued`` (not tried yet), ``retrying`` or ``failed``."""
    if row["state"] == "pending":
        return "retrying" if row["attempts"] else "queued"
    return row["state"]


def page_record(row: dict, recipients: dict[str, str]) -> dict:
    """One page as the JSON object ``facility pages --json`` prints."""
    from facility.domain.model import iso_ms

    msg = row["message"] if isinstance(row["message"], dict) else {}
    details = msg.get("custom_details") if isinstance(msg.get("custom_details"), dict) else {}
    alarm = row["alarm_id"]
    return {
        "time": iso_ms(row["created_ms"]), "channel": row["channel"],
        "recipient": recipients.get(row["channel"], recipient(None)),
        "priority": row["priority"] or details.get("priority"),
        "event": msg.get("event") or row["action"], "action": row["action"],
        "alarm": f"{alarm}#{row['occurrence']}" if alarm else None,
        "group": msg.get("group"), "title": msg.get("title"), "text": msg.get("summary", ""),
        "delivery": delivery(row), "sent": iso_ms(row["sent_ms"]) if row["sent_ms"] else None,
        "attempts": row["attempts"],
        "next_try": iso_ms(row["next_try_ms"]) if row["state"] == "pending" else None,
        "error": row["last_error"],
    }


def _tz_of(cfg, group: str | None) -> str:
    """The time zone of the page's room or site (the first site's when it names neither)."""
    sites = {s.id: s.timezone for s in cfg.sites}
    zone = next((z for z in cfg.zones if z.id == group), None)
    site = zone.site if zone is not None else group
    return sites.get(site) or (cfg.sites[0].timezone if cfg.sites else "UTC")


def page_lines(rec: dict, cfg, row: dict) -> list[str]:
    """Two lines per page: when, state, priority, event, alarm, channel -> recipient; then
    the text the engineer read."""
    from facility.domain.timeparse import local_iso

    tz = _tz_of(cfg, rec["group"])
    created = local_iso(row["created_ms"], tz)

    def when(ms: int) -> str:  # the time alone on the page's own day
        text = local_iso(ms, tz)
        return text[11:19] if text[:10] == created[:10] else text

    state = rec["delivery"]
    if state == "sent":
        state = f"sent {when(row['sent_ms'])}"
    elif state == "retrying":
        state = f"retrying ({rec['attempts']} tries, next {when(row['next_try_ms'])})"
    head = (f"{created}  {state:<13} {rec['priority'] or '-':<8} "
            f"{rec['event']:<11} {rec['alarm'] or '-'}  {rec['channel']} -> {rec['recipient']}")
    lines = [head, f"    {rec['text']}"]
    if rec["error"] and rec["delivery"] != "sent":
        lines.append(f"    last error: {rec['error']}")
    return lines


def demo_db(cfg) -> str:
    """The database ``facility demo`` keeps beside the configuration."""
    from facility.launch import demo_db_path

    return demo_db_path(cfg)


@cli.command("pages")
@click.option("--limit", default=50, show_default=True, type=int,
              help="the newest N pages (0: all)")
@click.option("--state", type=click.Choice(STATES), default=None,
              help="only pages in this outbox state (pending: queued or retrying)")
@click.option("--demo", is_flag=True, help="read the demo's database (var/demo/) instead")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@config_option
def pages(limit, state, demo, as_json, config_path):
    """List the pages sent or queued: time, channel, recipient, priority, text, delivery."""
    from facility.store import Store

    if limit < 0:
        raise CliError(f"--limit {limit}: use a count >= 0 (0: all)", USAGE)
    cfg = load(config_path)
    path = demo_db(cfg) if demo else cfg.db_path
    recipients = {ch.id: recipient(ch) for ch in cfg.paging.channels}
    if demo:
        from facility.launch import DEMO_CHANNEL

        recipients[DEMO_CHANNEL] = "the demo's loopback inbox (stands in for the pager)"
    with Store(path, readonly=True) as store:
        rows = store.pages(limit=limit or None, state=state)
    if rows is None:
        if not as_json:
            say("no pages: the service has not started on this database yet")
        return
    rows.reverse()  # oldest first, as a log reads
    for row in rows:
        rec = page_record(row, recipients)
        if as_json:
            click.echo(json.dumps(rec, ensure_ascii=False))
        else:
            for line in page_lines(rec, cfg, row):
                say(line)
    if not rows and not as_json:
        say("no pages" + (f" {state}" if state else ""))
