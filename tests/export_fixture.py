"""A small real data set for the export/verify/report tests, written through the Store API."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from facility.config import load_config
from facility.model import PointInfo, Quality, Sample
from facility.store import Cycle, Store

CONFIG = """
[facility]
id = "t-exp"
name = "Export test site"

[storage]
path = "var/facility.db"
audit_key_env = "T_EXPORT_AUDIT_KEY"

[[sites]]
id = "S"
timezone = "Asia/Hong_Kong"

[[zones]]
id = "Z1"
site = "S"
iso_class = 5
area_m2 = 4
reference = "Z2"
min_dp_pa = 10

[[zones]]
id = "Z2"
site = "S"
iso_class = 7
area_m2 = 2

[[devices]]
id = "PC-1"
site = "S"
zone = "Z1"
host = "127.0.0.1"
port = 15101
scan_s = 2.0
timeout_s = 1.0
profile = "particle-counter"
location = "bench north"

[[devices]]
id = "PC-2"
site = "S"
zone = "Z1"
host = "127.0.0.1"
port = 15102
scan_s = 2.0
timeout_s = 1.0
profile = "particle-counter"
location = "bench south"

[[devices]]
id = "PC-3"
site = "S"
zone = "Z2"
host = "127.0.0.1"
port = 15103
scan_s = 2.0
timeout_s = 1.0
profile = "particle-counter"
location = "corridor"

[[devices]]
id = "DP-1"
site = "S"
zone = "Z1"
host = "127.0.0.1"
port = 15104
[[devices.points]]
name = "dp"
table = "holding"
address = 0
type = "float32"
unit = "Pa"
quantity = "pressure_diff"
measures = "Z1 - Z2"

[alarms]
alert_fraction = 0.7

[[hazmat.substances]]
id = "ipa"
name = "Isopropanol"
un = "UN1219"
class = "3"
unit = "L"

[[hazmat.stores]]
id = "DGS"
site = "S"
premises = "industrial"
licence = "DG-1"
licensed_max = { "3" = 400.0 }
compartments = ["flammables"]
"""

PC = ["PC-1", "PC-2", "PC-3"]
SIZES = ["0_3um", "0_5um", "5_0um"]
MIN = 60_000


def day0() -> datetime:
    """UTC midnight two days ago: two whole past partitions."""
    now = datetime.now(tz=timezone.utc)
    return datetime(now.year, now.month, now.day, tzinfo=timezone.utc) - timedelta(days=2)


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def build(tmp_path, key: bytes | None = None, minutes: int = 60):
    """Write config + database; return (cfg, db_path, t0_ms)."""
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(CONFIG)
    cfg = load_config(str(cfg_path))
    points = [PointInfo(f"{d}.pc_{s}", d, "S", "Z1" if d != "PC-3" else "Z2", "particle_conc",
                        "count/m3", 1) for d in PC for s in SIZES]
    points.append(PointInfo("DP-1.dp", "DP-1", "S", "Z1", "pressure_diff", "Pa", 1))
    points.append(PointInfo("Z1.dp_cascade", "Z1", "S", "Z1", "pressure_diff_zone", "Pa", 1,
                            kind="derived"))
    t0 = ms(day0())
    with Store(cfg.db_path, key=key) as store:
        store.register_points(points)
        store.record_config(cfg.text, cfg.sha256)
        for day in (0, 1):
            base = t0 + day * 86_400_000
            for m in range(minutes):
                ts = base + m * MIN
                samples = []
                for d in PC:
                    for j, s in enumerate(SIZES):
                        v = [1000.0, 500.0, 2.0][j] * (1 + (m % 5) / 10)
                        if d == "PC-3":
                            v *= 100
                        q = Quality.GOOD
                        if d == "PC-2" and 10 <= m < 15:
                            v, q = None, Quality.COMM
                        samples.append(Sample(f"{d}.pc_{s}", ts, v, q))
                for k in range(6):
                    dp = 12.5 if not (20 <= m < 25 and day == 0) else 7.5
                    samples.append(Sample("DP-1.dp", ts + k * 10_000, dp))
                    samples.append(Sample("Z1.dp_cascade", ts + k * 10_000, dp))
                cycle = Cycle(samples=samples)
                if day == 0 and m == 20:
                    cycle.events.append({"alarm_id": "Z1.dp_cascade:action_low", "occurrence": 1,
                                         "event": "raise", "state_from": "NORM",
                                         "state_to": "UNACK", "ts_ms": ts, "detected_ms": ts + 500,
                                         "value": 7.5, "limit": 10.0,
                                         "source": "zones[Z1].min_dp_pa=+10 Pa vs Z2"})
                    cycle.alarms.append({"id": "Z1.dp_cascade:action_low", "state": "UNACK",
                                         "priority": "critical", "occurrence": 1, "active": 1,
                                         "zone": "Z1", "site": "S", "point": "Z1.dp_cascade"})
                if day == 0 and m == 22:
                    cycle.events.append({"alarm_id": "Z1.dp_cascade:action_low", "occurrence": 1,
                                         "event": "ack", "state_from": "UNACK",
                                         "state_to": "ACKED", "ts_ms": ts, "actor": "engineer",
                                         "reason": "door propped open for a delivery"})
                    cycle.audit.append({"action": "ack", "actor": "engineer",
                                        "subject": "Z1.dp_cascade:action_low#1",
                                        "reason": "door propped open for a delivery"})
                if day == 0 and m == 25:
                    cycle.events.append({"alarm_id": "Z1.dp_cascade:action_low", "occurrence": 1,
                                         "event": "clear", "state_from": "ACKED",
                                         "state_to": "NORM", "ts_ms": ts, "detected_ms": ts + 400,
                                         "value": 12.5, "limit": 10.0})
                store.write_cycle(cycle)
        try:
            from hazmat import ledger

            store.add_migrations(ledger.NAMESPACE, ledger.LEDGER_MIGRATIONS)
            ledger.receive(store.conn, cfg.hazmat, actor="engineer", container="IPA-0001",
                           substance="ipa", quantity=20.0, unit="L", store="DGS",
                           compartment="flammables", reason="delivery note 4711", key=key,
                           ts_ms=t0 + 30 * MIN)
        except ImportError:
            pass
    return cfg, cfg.db_path, t0


def key_file(tmp_path) -> tuple[str, bytes]:
    path = tmp_path / "audit.key"
    key = b"0123456789abcdef0123456789abcdef"
    path.write_bytes(key + b"\n")
    os.chmod(path, 0o600)
    return str(path), key
