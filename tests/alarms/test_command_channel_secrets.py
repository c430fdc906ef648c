"""Secrets stay secret: a command channel's command sees only the variables it is configured
to pass, and what it writes to stderr reaches the outbox and the log scrubbed of secrets.

A real command (this Python, running a script) is the channel; the outbox is real SQLite.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import pytest

from alarms.dispatcher import Dispatcher
from alarms.lifecycle import Event
from alarms.paging import Pager
from alarms.paging_channels import REDACTED, command_env, deliver, scrub, secret_values
from facility.config.schema import Channel
from tests.alarms.test_paging import INST, Alarm, cfg_for, db  # noqa: F401 - db is a fixture

SMS_TOKEN = "sms-tok-5ecr3t-4711"
PAGER_KEY = "pd-routing-key-0815"
SMTP_PASSWORD = "smtp-pw-hunter2"
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SMS_TOKEN": SMS_TOKEN,
       "PAGER_KEY": PAGER_KEY, "SMTP_PASSWORD": SMTP_PASSWORD,
       "FACILITY_AUDIT_KEY_FILE": "/etc/facility/audit.key", "HOME": "/root"}


def script(env_out) -> str:
    """Record the environment it was given, then fail echoing every secret it can find."""
    return (
        "import json, os, sys\n"
        f"open({str(env_out)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
        "sys.stdin.read()\n"
        "sys.stderr.write('auth failed for token ' + os.environ.get('SMS_TOKEN', '-') +"
        " ' key ' + os.environ.get('PAGER_KEY', '-') + '\\n')\n"
        "sys.exit(2)\n"
    )


def sms(env_out, env=("PATH", "SMS_TOKEN")) -> Channel:
    return Channel(id="sms", type="command", command=(sys.executable, "-c", script(env_out)),
                   timeout_s=20, env=env)


def given_env(path) -> set[str]:
    # PEP 538: Python itself may add LC_CTYPE to its own environment under the C locale.
    return set(json.loads(path.read_text())) - {"LC_CTYPE"}


def test_command_gets_only_the_configured_variables(tmp_path):
    out = tmp_path / "env.json"
    result = deliver(sms(out), {"summary": "x"}, ENV)
    assert not result.ok and result.retry
    assert given_env(out) == {"PATH", "SMS_TOKEN"}
    assert SMS_TOKEN not in result.error and REDACTED in result.error
    assert "auth failed for token" in result.error  # the rest of the message is kept


def test_default_is_path_only(tmp_path):
    out = tmp_path / "env.json"
    ch = Channel(id="sms", type="command", command=(sys.executable, "-c", script(out)))
    deliver(ch, {"summary": "x"}, ENV)
    assert given_env(out) == {"PATH"}
    assert command_env(ch, ENV) == {"PATH": ENV["PATH"]}


def test_secret_values_are_the_channels_env_settings_and_passed_variables():
    ch = Channel(id="mail", type="smtp", password_env="SMTP_PASSWORD", username_env="NOPE",
                 env=("PATH", "HOME", "LC_ALL", "SMS_TOKEN"))
    assert secret_values(ch, {**ENV, "LC_ALL": "C"}) == sorted([SMS_TOKEN, SMTP_PASSWORD],
                                                              key=len, reverse=True)
    assert scrub(f"x {SMTP_PASSWORD} y {SMS_TOKEN}{SMS_TOKEN}", [SMS_TOKEN, SMTP_PASSWORD]) == (
        f"x {REDACTED} y {REDACTED}{REDACTED}")


def test_a_long_stderr_is_scrubbed_before_it_is_cut(tmp_path):
    # The secret straddles the 200-character cut: neither half may survive.
    code = ("import os, sys; sys.stderr.write('x' * 190 + os.environ['SMS_TOKEN'] + 'y' * 5);"
            " sys.exit(1)")
    ch = Channel(id="sms", type="command", command=(sys.executable, "-c", code),
                 env=("SMS_TOKEN",), timeout_s=20)
    result = deliver(ch, {}, ENV)
    assert not result.ok
    assert "sms-tok" not in result.error and "4711" not in result.error
    assert result.error.endswith(REDACTED + "yyyyy")


async def test_outbox_and_log_never_hold_the_secret(db, tmp_path, caplog):  # noqa: F811
    path, conn = db
    out = tmp_path / "env.json"
    cfg = cfg_for([sms(out)])
    Alarm(Pager(cfg, INST), conn, "MEC-GC-01:exhaust_fail", priority="critical")(
        Event.RAISE, 1_700_000_000_000)
    d = Dispatcher(path, cfg, env=ENV)
    with caplog.at_level(logging.DEBUG):
        await d.run_once()
    d.close()
    (attempts, err) = conn.execute("SELECT attempts, last_error FROM page_outbox").fetchone()
    assert attempts == 1 and "exit 2" in err and REDACTED in err
    stored = "\n".join(str(v) for row in conn.execute("SELECT * FROM page_outbox") for v in row)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "exit 2" in logged  # the failure was logged ...
    for secret in (SMS_TOKEN, PAGER_KEY, SMTP_PASSWORD):
        assert secret not in stored and secret not in logged  # ... without a secret
    assert given_env(out) == {"PATH", "SMS_TOKEN"}


def test_env_is_a_channel_key_in_the_configuration(tmp_path):
    from facility.config import ConfigError, parse_config
    from tests.fixtures.config import facility_toml

    def channel(**extra):
        return facility_toml(storage={"path": str(tmp_path / "fms.db")}, paging={"channels": [
            {"id": "sms", "type": "command", "command": ["/usr/local/bin/sms"], **extra}]})

    cfg = parse_config(channel(env=["PATH", "SMS_TOKEN"]), base_dir=str(tmp_path))
    assert cfg.paging.channels[0].env == ("PATH", "SMS_TOKEN")
    assert parse_config(channel(), base_dir=str(tmp_path)).paging.channels[0].env == ("PATH",)
    with pytest.raises(ConfigError) as exc:
        parse_config(channel(env=[1, 2]), base_dir=str(tmp_path))
    assert any(".env" in p for p in exc.value.problems), exc.value.problems
