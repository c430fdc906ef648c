"""A small facility, a real simulator, a real page receiver: the parts service tests share.

Everything listens on 127.0.0.1 with ephemeral ports; the database is a real SQLite file
in the test's tmp folder.
"""

from __future__ import annotations

import json
import time

from facility.actions import current_login
from facility.config import parse_config
from facility.demo import Inbox

TEMPLATE = """
[facility]
id = "t"

[storage]
path = "{db}"

[[sites]]
id = "S"
timezone = "Asia/Hong_Kong"

[[zones]]
id = "Z1"
site = "S"
iso_class = 5
area_m2 = 10
reference = "Z2"
min_dp_pa = 10
door_grace_s = 0

[[zones]]
id = "Z2"
site = "S"
iso_class = 7
area_m2 = 10

[[devices]]
id = "DP-1"
site = "S"
zone = "Z1"
host = "127.0.0.1"
port = {dp_port}
scan_s = 0.5
timeout_s = 0.3
profile = "dp-transmitter"
[[devices.points]]
name = "dp"
measures = "Z1 - Z2"

[[devices]]
id = "GD-1"
site = "S"
zone = "Z2"
host = "127.0.0.1"
port = {gd_port}
scan_s = 0.5
timeout_s = 0.3
profile = "gas-detector"
gas = "arsine"
monitor = "room"

[[operators]]
login = "{login}"
name = "Test Technician"
roles = ["technician"]

[alarms]
alert_fraction = 0.7
live_window_s = 300

[paging]
heartbeat_s = {heartbeat_s}
heartbeat_url = "{url}/heartbeat"
base_backoff_s = 0.2
max_backoff_s = 1.0

[[paging.channels]]
id = "hook"
type = "webhook"
url = "{url}/pages"

[[paging.routes]]
priorities = ["critical", "high", "medium"]
levels = [{{ after_s = 0, channels = ["hook"] }}]
"""


class Receiver(Inbox):
    """The demo's loopback inbox: pages (POST) and heartbeats (GET) with arrival times."""

    def actions_for(self, alarm: str) -> list[str]:
        """Event actions paged for one alarm, in order."""
        out = []
        for p in self.pages:
            body = p.get("payload", p)
            text = json.dumps(p)
            if alarm in text:
                out.append(p.get("event_action") or p.get("action") or body.get("action"))
        return out


def config_text(db: str, url: str, dp_port: int = 15020, gd_port: int = 15021,
                heartbeat_s: float = 60.0, login: str | None = None) -> str:
    """The test facility's TOML."""
    return TEMPLATE.format(db=db, url=url, dp_port=dp_port, gd_port=gd_port,
                           heartbeat_s=heartbeat_s, login=login or current_login())


def make_config(tmp_path, url: str, **kw):
    """A validated Config for the test facility."""
    return parse_config(config_text(str(tmp_path / "fms.db"), url, **kw), base_dir=str(tmp_path))


def wait_for(predicate, timeout_s: float = 20.0, step_s: float = 0.1):
    """Poll ``predicate`` until true; returns its last value (falsy on time-out)."""
    end = time.monotonic() + timeout_s
    value = predicate()
    while not value and time.monotonic() < end:
        time.sleep(step_s)
        value = predicate()
    return value
