"""Delivery of one outbox message to one channel: PagerDuty, webhook, SMTP, command.

Each ``deliver_*`` function is blocking (urllib, smtplib, subprocess) and is run by the
dispatcher in a worker thread. They never raise for delivery problems: they return a
``Delivery`` saying whether it worked and, if not, whether a retry may help
(PagerDuty Events v2 / Alertmanager: PagerDuty 202 accepted, 400 do not retry, 429/5xx retry).
Secrets (routing key, SMTP login) are read from the environment variables the channel
names, at send time, so they never reach the database. A command channel's command gets
only the variables its ``env`` lists, and every error text is scrubbed of the channel's
secret values before the dispatcher stores it in the outbox or logs it
(docs/ARCHITECTURE.md "Secrets stay secret").
"""

from __future__ import annotations

import dataclasses
import json
import os
import smtplib
import socket
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from email.message import EmailMessage

from alarms.page_text import detail_rows, email_html, email_text
from facility.config.schema import Channel, PagingCfg

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
PD_SEVERITIES = ("critical", "error", "warning", "info")
MAX_DEDUP = 255  # PagerDuty Events API v2 limit
MAX_SUMMARY = 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """Outcome of one attempt: ``ok``; else ``retry`` (transient) or permanent failure."""

    ok: bool
    retry: bool = False
    error: str = ""
    retry_after_s: float | None = None


def pagerduty_body(msg: Mapping, routing_key: str) -> dict:
    """The Events API v2 JSON for an outbox message (limits enforced here)."""
    sev = msg.get("severity", "error")
    # PagerDuty has no "update": the same dedup_key re-triggered carries the new summary.
    action = "trigger" if msg["action"] == "update" else msg["action"]
    body: dict = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": str(msg["dedup_key"])[:MAX_DEDUP],
    }
    if action == "trigger":
        body["payload"] = {
            "summary": str(msg.get("summary", ""))[:MAX_SUMMARY] or msg["dedup_key"],
            "source": msg.get("source") or "facility",
            "severity": sev if sev in PD_SEVERITIES else "error",
            "timestamp": msg.get("timestamp"),
            "component": msg.get("component"),
            "group": msg.get("group"),
            "class": msg.get("class"),
            "custom_details": msg.get("custom_details", {}),
        }
    return body


def _post_json(url: str, body: dict, timeout_s: float) -> Delivery:
    data = json.dumps(body, sort_keys=True).encode()
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
            return Delivery(True)
    except urllib.error.HTTPError as e:
        code = e.code
        text = e.read()[:200].decode("utf-8", "replace") if e.fp else ""
        err = f"HTTP {code} from {url}: {text}".strip()
        if code == 429 or code >= 500 or code == 408:
            ra = e.headers.get("Retry-After") if e.headers else None
            try:
                after = float(ra) if ra else None
            except ValueError:
                after = None
            return Delivery(False, retry=True, error=err, retry_after_s=after)
        return Delivery(False, retry=False, error=err)
    except (urllib.error.URLError, OSError, socket.timeout) as e:
        return Delivery(False, retry=True, error=f"{url}: {e}")


def deliver_pagerduty(ch: Channel, msg: Mapping, env: Mapping[str, str]) -> Delivery:
    """POST to the Events API v2 (202 accepted; 400 permanent; 429/5xx retry)."""
    key = env.get(ch.routing_key_env or "", "")
    if not key:
        return Delivery(False, retry=True,
                        error=f"channel {ch.id}: env var routing_key_env="
                        f"{ch.routing_key_env!r} is not set")
    return _post_json(ch.url or PAGERDUTY_URL, pagerduty_body(msg, key), ch.timeout_s)


def deliver_webhook(ch: Channel, msg: Mapping, env: Mapping[str, str]) -> Delivery:
    """POST the message as generic JSON (2xx ok; 4xx but 408/429 permanent)."""
    if not ch.url:
        return Delivery(False, error=f"channel {ch.id}: webhook has no url")
    return _post_json(ch.url, dict(msg), ch.timeout_s)


SUBJECT_MAX = 200
"""Characters of a subject line; the whole summary opens the body."""


def email_message(ch: Channel, msg: Mapping) -> EmailMessage:
    """The e-mail for a message: subject ``[EVENT] title`` (the summary's short form); a
    text/plain body (the summary, then one ``label: value`` line per detail) with the same
    words as an HTML alternative, escaped (``alarms.page_text``). Never raw JSON: a person
    reads it."""
    em = EmailMessage()
    em["From"] = ch.smtp_from or "facility@localhost"
    em["To"] = ", ".join(ch.to)
    summary = str(msg.get("summary", ""))
    event = str(msg.get("event") or msg["action"]).upper()
    em["Subject"] = f"[{event}] {msg.get('title') or summary}"[:SUBJECT_MAX]
    em["X-Dedup-Key"] = str(msg["dedup_key"])
    rows = detail_rows(msg)
    em.set_content(email_text(summary, rows))
    em.add_alternative(email_html(summary, rows), subtype="html")
    return em


def deliver_smtp(ch: Channel, msg: Mapping, env: Mapping[str, str]) -> Delivery:
    """Send by SMTP (optional STARTTLS and login from env); 5xx permanent, rest retry."""
    if not ch.smtp_host or not ch.to:
        return Delivery(False, error=f"channel {ch.id}: smtp needs smtp_host and to")
    try:
        with smtplib.SMTP(ch.smtp_host, ch.smtp_port, timeout=ch.timeout_s) as s:
            if ch.starttls:
                s.starttls(context=ssl.create_default_context())
            user = env.get(ch.username_env or "", "")
            if user:
                s.login(user, env.get(ch.password_env or "", ""))
            s.send_message(email_message(ch, msg))
        return Delivery(True)
    except smtplib.SMTPResponseException as e:
        err = f"SMTP {e.smtp_code} from {ch.smtp_host}: {e.smtp_error!r}"
        return Delivery(False, retry=e.smtp_code < 500, error=err)
    except smtplib.SMTPRecipientsRefused as e:
        return Delivery(False, retry=False, error=f"recipients refused: {e.recipients}")
    except (smtplib.SMTPException, OSError) as e:
        return Delivery(False, retry=True, error=f"SMTP {ch.smtp_host}:{ch.smtp_port}: {e}")


def command_env(ch: Channel, env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a command channel's command: the variables its ``env`` names
    that are set, and nothing else of the service's environment."""
    return {name: env[name] for name in ch.env if name in env}


NOT_SECRET = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME",
                        "SHELL", "PWD", "TERM"})
"""Variables a command may be passed whose values are not secrets (nor worth scrubbing)."""

REDACTED = "[redacted]"


def secret_values(ch: Channel, env: Mapping[str, str]) -> list[str]:
    """The secret values ``ch`` may know: each of its ``*_env`` settings resolved, and for a
    command channel every variable it passes except the plainly public ones (``LC_*`` too).
    Longest first, so a secret containing another is scrubbed whole."""
    names = [getattr(ch, f.name) for f in dataclasses.fields(ch) if f.name.endswith("_env")]
    names += [n for n in ch.env if n not in NOT_SECRET and not n.startswith("LC_")]
    values = {env.get(n or "", "") for n in names}
    return sorted((v for v in values if v.strip()), key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every occurrence of every secret value replaced by ``[redacted]``."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def deliver_command(ch: Channel, msg: Mapping, env: Mapping[str, str]) -> Delivery:
    """Run the command with the message as JSON on stdin; non-zero exit = retry.

    The command's environment is :func:`command_env`; its stderr is kept (the last 200
    characters, for the outbox's ``last_error``) only after :func:`deliver` has scrubbed it.
    """
    if not ch.command:
        return Delivery(False, error=f"channel {ch.id}: command is empty")
    try:
        p = subprocess.run(list(ch.command), input=json.dumps(dict(msg)).encode(),
                           capture_output=True, timeout=ch.timeout_s, env=command_env(ch, env))
    except subprocess.TimeoutExpired:
        return Delivery(False, retry=True, error=f"{ch.command[0]}: timed out")
    except OSError as e:
        return Delivery(False, retry=True, error=f"{ch.command[0]}: {e}")
    if p.returncode != 0:
        # scrub before cutting: a secret split at the cut would survive in part
        err = scrub(p.stderr.decode("utf-8", "replace"), secret_values(ch, env))
        tail = err[-200:].strip()
        return Delivery(False, retry=True, error=f"{ch.command[0]} exit {p.returncode}: {tail}")
    return Delivery(True)


DELIVERERS = {
    "pagerduty": deliver_pagerduty,
    "webhook": deliver_webhook,
    "smtp": deliver_smtp,
    "command": deliver_command,
}


def deliver(ch: Channel, msg: Mapping, env: Mapping[str, str] | None = None) -> Delivery:
    """Deliver ``msg`` over ``ch``; unknown channel types fail permanently."""
    fn = DELIVERERS.get(ch.type)
    if fn is None:
        return Delivery(False, error=f"channel {ch.id}: type={ch.type!r} is not one of "
                        f"{', '.join(DELIVERERS)}")
    env = os.environ if env is None else env
    result = fn(ch, msg, env)
    if result.error:
        secrets = secret_values(ch, env)
        if secrets:
            result = dataclasses.replace(result, error=scrub(result.error, secrets))
    return result


@dataclasses.dataclass(frozen=True, slots=True)
class HeartbeatResult:
    """Outcome of one dead-man's-switch heartbeat."""

    ok: bool
    error: str = ""


HEAD_FIELDS = ("seq", "row_id", "hash", "at", "key", "sig")  # of a witness checkpoint


def heartbeat_url(url: str, head: dict | None) -> str:
    """``url`` with the witnessed chain head appended as query parameters ``chain_<field>``
    (row id, hash, time, the checkpoint's seq, public key and signature), so the dead-man's
    switch keeps a copy of the head outside the site."""
    if not head:
        return url
    query = urllib.parse.urlencode({f"chain_{k}": head[k] for k in HEAD_FIELDS if k in head})
    return url + ("&" if "?" in url else "?") + query


def send_heartbeat(paging: PagingCfg, *, timeout_s: float = 10.0,
                   head: dict | None = None) -> HeartbeatResult:
    """Ping the dead-man's switch (GET heartbeat_url and/or run heartbeat_command).

    ``head`` (the latest witness checkpoint) goes with it: in the URL's query
    (:func:`heartbeat_url`) and in the command's environment as ``FACILITY_CHAIN_<FIELD>``.
    Never raises: the service logs a failure and tries again next ``heartbeat_s``.
    """
    errors: list[str] = []
    if not paging.heartbeat_url and not paging.heartbeat_command:
        return HeartbeatResult(False, "no heartbeat_url or heartbeat_command configured")
    if paging.heartbeat_url:
        try:
            with urllib.request.urlopen(heartbeat_url(paging.heartbeat_url, head),
                                        timeout=timeout_s) as r:
                r.read()
        except Exception as e:  # noqa: BLE001 - a heartbeat must never crash the service
            errors.append(f"{paging.heartbeat_url}: {e}")
    if paging.heartbeat_command:
        try:
            env = dict(os.environ, **{f"FACILITY_CHAIN_{k.upper()}": str(head[k])
                                      for k in HEAD_FIELDS if head and k in head})
            p = subprocess.run(list(paging.heartbeat_command), capture_output=True,
                               timeout=timeout_s, env=env)
            if p.returncode != 0:
                errors.append(f"{paging.heartbeat_command[0]} exit {p.returncode}")
        except Exception as e:  # noqa: BLE001
            errors.append(f"{paging.heartbeat_command[0]}: {e}")
    return HeartbeatResult(not errors, "; ".join(errors))
