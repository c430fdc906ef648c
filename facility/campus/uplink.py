"""``facility uplink``: a site as a Sparkplug B 3.0 edge node, with store and forward.

The uplink runs beside ``facility run`` and reads only committed cycles, through the store's
read API (``cycle_digests``, ``cycle_samples``), on a read-only connection: it can never block
acquisition, and it keeps its own cursor. Each cycle goes out as one DDATA per instrument
(the Sparkplug devices; metrics are points) followed by an NDATA that closes the cycle
(``Records/Cycle``, ``Records/Previous cycle``, ``Records/Cycle samples``, the audit chain
head, changed alarm rows, the cycle's event rows). Central checks the cycle chain and asks for
what it missed with the ``Node Control/Resend`` command, so a QoS 0 message lost on the wire
is repaired end to end.

While the broker or central is away the cursor stays; on return the backlog is replayed as
historical metrics, while live cycles keep going first, at the rate central allows with the
``Node Control/History rate`` command (central adapts it to its own lag), never above
``[uplink] history_rate`` nor below ``history_floor``, and slower on its own while the MQTT
client's out-queue is not drained. docs/ARCHITECTURE.md "Campus (Sparkplug B)" has the whole
design.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from google.protobuf.message import DecodeError

from facility.campus import sparkplug as sp
from facility.config.schema import BrokerCfg, Config
from facility.domain.errors import RuntimeFailure, UsageError
from facility.domain.model import Quality, now_ms
from facility.store import Store

log = logging.getLogger("facility.uplink")

NODE_METRICS = {  # name -> (alias, datatype); point aliases start above these
    "bdSeq": (1, sp.INT64),
    "Node Control/Rebirth": (2, sp.BOOLEAN),
    "Node Control/Resend": (3, sp.STRING),
    "Records/Cycle": (4, sp.INT64),
    "Records/Previous cycle": (5, sp.INT64),
    "Records/Cycle samples": (6, sp.INT64),
    "Records/Chain head id": (7, sp.INT64),
    "Records/Chain head hash": (8, sp.STRING),
    "Records/Command result": (9, sp.STRING),
    "Zones/Modes": (10, sp.STRING),
    "Node Control/Action": (12, sp.STRING),
    "Records/Signed checkpoint": (13, sp.STRING),
    "Records/Events": (14, sp.STRING),
    "Node Control/History rate": (15, sp.DOUBLE),
}
NODE_ALIASES = {alias: name for name, (alias, _) in NODE_METRICS.items()}
POINT_ALIAS_BASE = 1000
HISTORY_SLOT_S = 0.1  # history is sent in slots this long, then live cycles are looked at again
HISTORY_BURST_S = 0.25  # the replay's token bucket holds this many seconds of its rate
HISTORY_STEP_S = 10.0  # without a drain stall, the own rate climbs to the ceiling in this long
RELAYED = ("action", "alarm", "occurrence", "device", "zone", "mode", "reason", "duration_s")
"""The request fields central may relay to a site's service (never on_behalf_of or via)."""
ALARM_ALIAS = 11  # "Alarms/Changed": JSON rows of the alarms a cycle changed
NODE_DEVICE = "_node"  # points without an instrument (derived, system) go under this device


class UplinkError(RuntimeFailure):
    """The uplink cannot run (no database yet, unreadable state file)."""


@dataclass
class UplinkState:
    """What survives a restart: the bdSeq of the last CONNECT and which cycles went out.

    ``sent`` holds disjoint closed intervals of digest audit ids; ``origin`` is the cycle the
    uplink started from on its very first run (earlier cycles are not its to send)."""

    bdseq: int = -1
    origin: int | None = None
    sent: list[list[int]] = field(default_factory=list)

    @classmethod
    def load(cls, path: str) -> "UplinkState":
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise UplinkError(f"{path}: unreadable uplink state ({exc}); move it aside to"
                              " start over (the backlog is then resent from the newest cycle)")
        return cls(int(doc.get("bdseq", -1)), doc.get("origin"),
                   [list(map(int, iv)) for iv in doc.get("sent", [])])

    def save(self, path: str) -> None:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"bdseq": self.bdseq, "origin": self.origin, "sent": self.sent}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def mark(self, cid: int, prev: int = 0) -> None:
        """Record cycle ``cid`` as sent; when its previous cycle ``prev`` was sent too, the ids
        between them (other audit rows) join the interval, so the list stays short."""
        lo = prev if prev and self.is_sent(prev) else cid
        ivs = sorted(self.sent + [[lo, cid]])
        merged: list[list[int]] = []
        for iv in ivs:
            if merged and iv[0] <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], iv[1])
            else:
                merged.append(list(iv))
        self.sent = merged

    def gaps(self, head: int) -> list[tuple[int, int]]:
        """Id ranges in ``origin..head`` not yet sent, oldest first."""
        lo, out = self.origin or 1, []
        for a, b in self.sent:
            if b < lo:
                continue
            if a > lo:
                out.append((lo, min(a - 1, head)))
            lo = max(lo, b + 1)
            if lo > head:
                break
        if lo <= head:
            out.append((lo, head))
        return [(a, b) for a, b in out if a <= b]

    def unmark(self, lo: int, hi: int) -> None:
        """Forget that cycles ``lo..hi`` went out (central asked for them again)."""
        out: list[list[int]] = []
        for a, b in self.sent:
            if b < lo or a > hi:
                out.append([a, b])
                continue
            if a < lo:
                out.append([a, lo - 1])
            if b > hi:
                out.append([hi + 1, b])
        self.sent = out

    def is_sent(self, cid: int) -> bool:
        return any(a <= cid <= b for a, b in self.sent)


def password(broker: BrokerCfg) -> str | None:
    """The broker password from the environment variable the config names."""
    if not broker.password_env:
        return None
    value = os.environ.get(broker.password_env)
    if value is None:
        raise UsageError(f"environment variable {broker.password_env} (broker.password_env) is"
                         " not set")
    return value


def make_client(client_id: str, broker: BrokerCfg) -> mqtt.Client:
    """A paho-mqtt 2 client for ``broker`` (credentials and TLS from the config)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if broker.username:
        c.username_pw_set(broker.username, password(broker))
    if broker.tls:
        c.tls_set(ca_certs=broker.ca_file or None)
    return c


def edge_ids(cfg: Config) -> tuple[str, str]:
    """(group_id, edge node id) of this site."""
    u = cfg.uplink
    return (u.group_id or cfg.facility.id,
            u.node_id or (cfg.sites[0].id if cfg.sites else cfg.facility.id))


class Uplink:
    """One edge node session manager: connect, birth, forward, replay, answer commands."""

    def __init__(self, cfg: Config, *, poll_s: float = 0.2):
        self.cfg = cfg
        self.group, self.node = edge_ids(cfg)
        u = cfg.uplink
        self.state_path = u.state_path and os.path.join(cfg.base_dir, u.state_path) or \
            os.path.join(os.path.dirname(cfg.db_path), "uplink.state.json")
        self.state = UplinkState.load(self.state_path)
        self.poll_s = poll_s
        self.seq = sp.Seq()
        self._lock = threading.Lock()  # seq and publish order across the paho thread
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._lost = threading.Event()
        self._host_online = threading.Event()
        self._host_ts = -1
        self._rebirth = threading.Event()
        self._resend: list[tuple[int, int]] = []
        self._actions: list[dict] = []  # operator actions relayed from central
        self._allowed: float | None = None  # central's Node Control/History rate, this session
        self._own_rate = 0.0  # the rate the out-queue allows (see _history_rate)
        self._sent_checkpoint: str | None = None
        self._last_info = None  # the last publish, to see when the client's queue drained
        self._last_pub_t = 0.0  # when it was made (time.monotonic())
        self._rate_t: float | None = None
        self._cut_at = 0.0
        self._witness_stamp: int | None = None
        self._live_from: int | None = None  # cycles above this are live in this session
        self._live_last = 0
        self._last_sent_cycle = 0
        self._birth_head = 0  # the committed head when the last birth sequence began
        self._store: Store | None = None
        self._points: dict[str, dict] = {}
        self._alias: dict[str, int] = {}
        self._client: mqtt.Client | None = None
        self.stats = {"live_cycles": 0, "history_cycles": 0, "samples": 0, "bytes": 0,
                      "messages": 0, "sessions": 0, "history_rate": 0.0}

    # -- the store ----------------------------------------------------------------------------
    def _open(self) -> Store:
        if self._store is None:
            if not os.path.exists(self.cfg.db_path):
                raise UplinkError(f"{self.cfg.db_path}: no database yet; start `facility run`"
                                  " first")
            self._store = Store(self.cfg.db_path, readonly=True)
        return self._store

    def _head(self) -> int:
        return self._open().cycle_head()

    # -- MQTT session -------------------------------------------------------------------------
    def _will(self, bdseq: int) -> bytes:
        p = sp.Payload()
        p.timestamp = now_ms()
        sp.add_metric(p, name="bdSeq", ts_ms=p.timestamp, datatype=sp.INT64, value=bdseq)
        return p.SerializeToString()

    def _connect(self) -> bool:
        """One CONNECT with a fresh bdSeq and its NDEATH will; True once CONNACK arrived."""
        b = self.cfg.uplink.broker
        self.state.bdseq = (self.state.bdseq + 1) % 256  # tck-id-topics-nbirth-bdseq-increment
        self.state.save(self.state_path)
        client = make_client(f"fms-edge-{self.group}-{self.node}", b)
        client.will_set(sp.topic(self.group, "NDEATH", self.node), self._will(self.state.bdseq),
                        qos=1, retain=False)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._connected.clear()
        self._lost.clear()
        self._host_online.clear()
        try:
            client.connect(b.host, b.port, keepalive=max(5, int(b.keepalive_s)))
        except OSError as exc:
            log.warning("broker %s:%s unreachable: %s", b.host, b.port, exc)
            return False
        client.loop_start()
        self._client = client
        if not self._connected.wait(10) or self._lost.is_set():
            self._drop()
            return False
        self.stats["sessions"] += 1
        return True

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            self._lost.set()
            self._connected.set()
            return
        client.subscribe(sp.topic(self.group, "NCMD", self.node), qos=1)
        client.subscribe(sp.topic(self.group, "DCMD", self.node) + "/+", qos=1)
        if self.cfg.uplink.primary_host_id:
            client.subscribe(sp.state_topic(self.cfg.uplink.primary_host_id), qos=1)
        else:
            self._host_online.set()
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        self._lost.set()

    def _on_message(self, client, userdata, msg):
        host = self.cfg.uplink.primary_host_id
        if host and msg.topic == sp.state_topic(host):
            try:
                doc = json.loads(msg.payload or b"{}")
                online, ts = bool(doc.get("online")), int(doc.get("timestamp") or 0)
            except (ValueError, TypeError):
                return
            if online:
                self._host_ts = max(self._host_ts, ts)
                self._host_online.set()
            elif ts >= self._host_ts:  # tck-id-operational-behavior-edge-node-termination-host-offline
                self._host_online.clear()  # the session ends: NDEATH, disconnect, reconnect
            return
        try:
            payload = sp.Payload.FromString(msg.payload)
        except DecodeError:  # a malformed command is ignored (and logged), never a crash
            log.warning("ignored a malformed command on %s", msg.topic)
            return
        for m in payload.metrics:
            name = m.name or NODE_ALIASES.get(m.alias, "")
            if name == "Node Control/Rebirth" and sp.metric_value(m):
                self._rebirth.set()
            elif name == "Node Control/History rate":
                try:
                    rate = float(sp.metric_value(m))
                except (TypeError, ValueError):
                    continue
                if rate > 0 and rate == rate:  # NaN and non-positive rates are ignored
                    self._allowed = rate
            elif name == "Node Control/Resend":
                self._resend.extend(_ranges(str(sp.metric_value(m) or "")))
            elif name == "Node Control/Action":
                try:
                    req = json.loads(str(sp.metric_value(m) or ""))
                except ValueError:
                    req = None
                if isinstance(req, dict):
                    self._actions.append(req)

    def _drop(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            try:
                self._client.disconnect()
            except OSError as exc:  # the socket is already gone: nothing left to close
                log.info("disconnect: %s", exc)
            self._client = None

    def _publish(self, topic: str, payload, qos: int = 0) -> bool:
        data = payload.SerializeToString()
        info = self._client.publish(topic, data, qos=qos, retain=False)
        ok = info.rc == mqtt.MQTT_ERR_SUCCESS
        if ok:
            self.stats["bytes"] += len(data)
            self.stats["messages"] += 1
            self._last_info = info
            self._last_pub_t = time.monotonic()
        return ok

    def _drained(self) -> bool:
        """Whether everything published so far has left the client for the socket. QoS 0
        publishes queue inside the client when the wire is slower than the replay; history
        waits for the queue to drain, so live cycles never queue behind a backlog."""
        info = self._last_info
        try:
            return info is None or info.is_published()
        except (ValueError, RuntimeError):
            return True  # that publish failed; the session's loss handling takes over

    # -- birth --------------------------------------------------------------------------------
    def _load_points(self) -> None:
        store = self._open()
        self._points = {p["point"]: p for p in store.points()}
        self._alias = {name: POINT_ALIAS_BASE + int(p["id"]) for name, p in self._points.items()}

    def _limits(self) -> dict[str, dict[str, float]]:
        from facility.catalogue import build_catalogue

        out: dict[str, dict[str, float]] = {}
        for r in build_catalogue(self.cfg).rules:
            if r.point and r.limit is not None:
                key = r.limit_name + (f"@{r.mode}" if r.mode else "")
                out.setdefault(r.point, {})[key] = r.limit
        return out

    def birth(self) -> bool:
        """NBIRTH then one DBIRTH per instrument: every metric with datatype, unit, limits and
        alias, the current value and quality (tck-id-topics-nbirth-*, tck-id-topics-dbirth-*)."""
        self._load_points()
        store = self._open()
        now = now_ms()
        self._birth_head = self._head()  # cycles committed after this one are live
        with self._lock:
            p = sp.Payload()
            p.timestamp = now
            p.seq = self.seq.birth()
            head = store.audit_head() or {"id": 0, "hash": ""}
            checkpoint = self._checkpoint()  # what the birth carries counts as sent
            for name, value in (("bdSeq", self.state.bdseq), ("Node Control/Rebirth", False),
                                ("Node Control/Resend", ""),
                                ("Records/Cycle", self._last_sent_cycle or self._birth_head),
                                ("Records/Previous cycle", 0), ("Records/Cycle samples", 0),
                                ("Records/Chain head id", head["id"]),
                                ("Records/Chain head hash", head["hash"]),
                                ("Records/Command result", ""),
                                ("Node Control/Action", ""),
                                ("Records/Events", "[]"),
                                ("Node Control/History rate", self.cfg.uplink.history_rate),
                                ("Records/Signed checkpoint", checkpoint or ""),
                                ("Zones/Modes", json.dumps(store.zone_modes(), sort_keys=True))):
                alias, dt = NODE_METRICS[name]
                sp.add_metric(p, name=name, alias=alias, ts_ms=now, datatype=dt, value=value)
            sp.add_metric(p, name="Alarms/Changed", alias=ALARM_ALIAS, ts_ms=now,
                          datatype=sp.STRING, value=json.dumps(_alarm_rows(store.alarms())))
            by_dev = self._by_device(self._points)
            if not self._publish(sp.topic(self.group, "NBIRTH", self.node), p):
                return False
            self._sent_checkpoint = checkpoint
            latest = {r["point"]: r for r in store.latest()}
            limits = self._limits()
            for dev, names in sorted(by_dev.items()):
                d = sp.Payload()
                d.timestamp = now
                d.seq = self.seq.next()
                for name in names:
                    pt = self._points[name]
                    row = latest.get(name) or {}
                    q = row.get("quality", Quality.STALE)
                    props = {"Quality": (sp.INT32, sp.quality_code(q)),
                             "fms.quality": (sp.INT32, int(q)),
                             "engUnit": (sp.STRING, pt.get("unit") or ""),
                             "fms.quantity": (sp.STRING, pt.get("quantity") or ""),
                             "fms.zone": (sp.STRING, pt.get("zone") or ""),
                             "fms.site": (sp.STRING, pt.get("site") or ""),
                             "fms.kind": (sp.STRING, pt.get("kind") or ""),
                             "fms.decimals": (sp.INT32, pt.get("decimals") or 0),
                             "fms.limits": (sp.STRING, json.dumps(limits.get(name, {}),
                                                                  sort_keys=True))}
                    sp.add_metric(d, name=name, alias=self._alias[name],
                                  ts_ms=int(row.get("ts_ms") or now), datatype=sp.DOUBLE,
                                  value=row.get("value"), properties=props)
                if not self._publish(sp.topic(self.group, "DBIRTH", self.node, dev), d):
                    return False
        return True

    @staticmethod
    def _by_device(points: dict[str, dict]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, p in points.items():
            out.setdefault(p.get("device") or NODE_DEVICE, []).append(name)
        return out

    # -- data ---------------------------------------------------------------------------------
    def send_cycle(self, cid: int, ts_ms: int, details: dict, prev: int,
                   historical: bool) -> int | None:
        """One committed cycle: a DDATA per instrument, then the NDATA that closes it. Returns
        the number of samples sent, or None when the broker took not all of it."""
        store = self._open()
        rows = store.cycle_samples(details)
        if any(r.point not in self._alias for r in rows):
            self._load_points()
            if any(r.point not in self._alias for r in rows):
                return None
            self._rebirth.set()  # a new point: a new birth certificate before more data
            return None
        now = now_ms()
        by_dev: dict[str, list] = {}
        for r in rows:
            by_dev.setdefault(self._points[r.point].get("device") or NODE_DEVICE, []).append(r)
        with self._lock:
            for dev, rs in sorted(by_dev.items()):
                d = sp.Payload()
                d.timestamp = now
                d.seq = self.seq.next()
                for r in rs:
                    props = None
                    if r.quality != Quality.GOOD:
                        props = {"Quality": (sp.INT32, sp.quality_code(r.quality)),
                                 "fms.quality": (sp.INT32, int(r.quality))}
                    sp.add_metric(d, alias=self._alias[r.point], ts_ms=r.ts_ms,
                                  datatype=sp.DOUBLE, value=r.value, historical=historical,
                                  properties=props)
                if not self._publish(sp.topic(self.group, "DDATA", self.node, dev), d):
                    return None
            n = sp.Payload()
            n.timestamp = now
            n.seq = self.seq.next()
            head = store.audit_head() or {"id": 0, "hash": ""}
            for name, value in (("Records/Cycle", cid), ("Records/Previous cycle", prev),
                                ("Records/Cycle samples", len(rows)),
                                ("Records/Chain head id", head["id"]),
                                ("Records/Chain head hash", head["hash"])):
                alias, dt = NODE_METRICS[name]
                sp.add_metric(n, alias=alias, ts_ms=ts_ms, datatype=dt, value=value,
                              historical=historical)
            changed = sorted((details.get("alarms") or {}).keys())
            if changed:
                rows_a = [a for a in store.alarms() if a["id"] in set(changed)]
                sp.add_metric(n, alias=ALARM_ALIAS, ts_ms=ts_ms, datatype=sp.STRING,
                              value=json.dumps(_alarm_rows(rows_a)), historical=historical)
            events = store.cycle_events(details)
            if events:  # the cycle's event rows as stored: central's mirror has the same
                alias, dt = NODE_METRICS["Records/Events"]
                sp.add_metric(n, alias=alias, ts_ms=ts_ms, datatype=dt,
                              value=json.dumps(events, sort_keys=True), historical=historical)
            if not self._publish(sp.topic(self.group, "NDATA", self.node), n):
                return None
        self.stats["samples"] += len(rows)
        return len(rows)

    def _prev_of(self, cid: int) -> int:
        return self._open().previous_cycle(cid)

    def _backlog(self, head: int, limit: int) -> list[tuple[int, int, dict]]:
        """Unsent cycles from ``origin`` to ``head`` (oldest first), at most ``limit``."""
        out: list[tuple[int, int, dict]] = []
        for a, b in self.state.gaps(head):
            out.extend(self._open().cycle_digests(a - 1, limit - len(out), upto_id=b))
            if len(out) >= limit:
                break
        return out

    def run(self, until: float | None = None) -> None:
        """Sessions until :meth:`stop` (or ``until``, a ``time.monotonic()`` deadline)."""
        backoff = 0.5
        while not self._stop.is_set() and (until is None or time.monotonic() < until):
            if self.state.origin is None:  # the first run starts at the newest cycle
                self.state.origin = self._head() or 1
                self.state.save(self.state_path)
            if not self._connect():
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.5
            try:
                self._session(until)
            finally:
                if self._client is not None and not self._lost.is_set():
                    self._ndeath()  # tck-id-payloads-ndeath-will-message-publisher
                self._drop()
        self.close()

    def _ndeath(self) -> None:
        info = self._client.publish(sp.topic(self.group, "NDEATH", self.node),
                                    self._will(self.state.bdseq), qos=1, retain=False)
        try:
            info.wait_for_publish(5)
        except (RuntimeError, ValueError) as exc:  # the broker sends the will instead
            log.warning("NDEATH before disconnect not sent (%s); the broker's will stands", exc)

    def _session(self, until: float | None) -> None:
        while not self._host_online.wait(0.2):  # tck-id-operational-behavior-edge-node-birth-sequence-wait
            if self._stop.is_set() or self._lost.is_set() or (
                    until is not None and time.monotonic() >= until):
                return
        self._allowed = None  # central says anew in this session, once it saw the birth
        if not self.birth():
            return
        self._live_from = self._birth_head  # not the head now: a cycle committed during the
        # birth sequence is live, not history
        self._own_rate, self._cut_at, self._rate_t = self._floor(), 0.0, None
        bucket, last = 0.0, time.monotonic()
        while not self._stop.is_set() and not self._lost.is_set() and (
                until is None or time.monotonic() < until):
            if not self._host_online.is_set():
                return
            if self._rebirth.is_set():  # tck-id-operational-behavior-data-commands-rebirth-action-1/2
                self._rebirth.clear()
                if not self.birth():
                    return
            while self._actions:
                if not self._answer(self._actions.pop(0)):
                    return
            if not self._send_checkpoint():
                return
            while self._resend:
                lo, hi = self._resend.pop(0)
                self.state.unmark(lo, hi)
                self.state.save(self.state_path)
            # live first: every committed cycle above the live mark
            sent_any = False
            for cid, ts, details in self._open().cycle_digests(self._live_from, 200):
                prev = self._live_from
                if self.send_cycle(cid, ts, details, prev, False) is None:
                    return
                self._live_from = cid
                self._last_sent_cycle = cid
                self.state.mark(cid, prev)
                self.stats["live_cycles"] += 1
                sent_any = True
            if sent_any:
                self.state.save(self.state_path)
            # then history, in the gaps, at the rate allowed now
            t = time.monotonic()
            rate = self._history_rate(t)
            bucket = min(bucket + (t - last) * rate, max(rate * HISTORY_BURST_S, 1.0))
            last = t
            slot = t + HISTORY_SLOT_S
            backlog = self._backlog(self._live_from, 20)
            replayed = 0
            for cid, ts, details in backlog:
                if bucket <= 0 or not self._drained() or time.monotonic() > slot:
                    break
                prev = self._prev_of(cid)
                n = self.send_cycle(cid, ts, details, prev, True)
                if n is None:
                    return
                bucket -= max(1, n)
                self.state.mark(cid, prev)
                self.stats["history_cycles"] += 1
                replayed += 1
            if replayed:  # once a slot: a crash before it only means a cycle is sent twice
                self.state.save(self.state_path)
            if replayed < len(backlog) or len(backlog) == 20:
                # more history waits: come back when the bucket has tokens again, and look
                # at live cycles at least every half slot meanwhile
                wait = -bucket / rate if bucket <= 0 else 0.0
                self._stop.wait(min(self.poll_s, HISTORY_SLOT_S / 2, max(0.005, wait)))
            else:
                self._stop.wait(self.poll_s)

    def _floor(self) -> float:
        u = self.cfg.uplink
        return min(u.history_floor, u.history_rate)

    def _history_rate(self, t: float) -> float:
        """The replay rate now, samples/s: central's ``Node Control/History rate`` (until it
        says, the ceiling), and the rate the client's out-queue allows, which halves when
        what was published a slot ago is still queued and climbs back while it drains,
        bounded by ``[uplink] history_floor`` and ``history_rate`` (the ceiling)."""
        u = self.cfg.uplink
        floor, ceiling = self._floor(), u.history_rate
        dt = 0.0 if self._rate_t is None else t - self._rate_t
        self._rate_t = t
        stalled = not self._drained() and t - self._last_pub_t > HISTORY_SLOT_S
        if stalled and t - self._cut_at > 4 * HISTORY_SLOT_S:
            self._own_rate = max(floor, self._own_rate / 2)
            self._cut_at = t
        elif not stalled:
            self._own_rate = min(ceiling, self._own_rate + ceiling * dt / HISTORY_STEP_S)
        allowed = ceiling if self._allowed is None else self._allowed
        rate = max(floor, min(ceiling, allowed, self._own_rate))
        self.stats["history_rate"] = rate
        return rate

    def _checkpoint(self) -> str | None:
        """The witness file's newest signed checkpoint line (JSON), if there is one."""
        from facility.store.witness import WitnessError, last_checkpoint, witness_path

        try:
            line = last_checkpoint(witness_path(self.cfg))
        except (WitnessError, OSError) as exc:
            log.warning("chain witness unreadable: %s", exc)
            return None
        return json.dumps(line, sort_keys=True) if line else None

    def _send_checkpoint(self) -> bool:
        """A new signed checkpoint since the last one sent: one NDATA carrying it, so central
        can compare its mirror with the head the site signed."""
        from facility.store.witness import witness_path

        try:  # the file changes once a minute: read it only when it did
            stamp = os.stat(witness_path(self.cfg)).st_mtime_ns
        except OSError:
            return True
        if stamp == self._witness_stamp:
            return True
        self._witness_stamp = stamp
        line = self._checkpoint()
        if not line or line == self._sent_checkpoint:
            return True
        with self._lock:
            n = sp.Payload()
            n.timestamp = now_ms()
            n.seq = self.seq.next()
            alias, dt = NODE_METRICS["Records/Signed checkpoint"]
            sp.add_metric(n, alias=alias, ts_ms=n.timestamp, datatype=dt, value=line)
            if not self._publish(sp.topic(self.group, "NDATA", self.node), n):
                return False
        self._sent_checkpoint = line
        return True

    def relay(self, req: dict) -> dict:
        """Apply an operator action sent by central through this site's own service: the
        service checks the operator's roles and audits it "via central"; the reply is its."""
        from facility.service.socket import ActionRefused, ServiceNotRunning, request

        payload = {k: req[k] for k in RELAYED if k in req}
        payload.update(on_behalf_of=str(req.get("operator") or ""), via="central")
        try:
            reply = request(self.cfg.db_path, payload)
            return {"ok": True, "message": str(reply.get("message") or "done")}
        except ActionRefused as exc:
            return {"ok": False, "message": str(exc)}
        except ServiceNotRunning as exc:
            return {"ok": False, "message": f"the site's service is not running ({exc})"}

    def _answer(self, req: dict) -> bool:
        result = {"request_id": str(req.get("request_id") or ""), **self.relay(req)}
        with self._lock:
            n = sp.Payload()
            n.timestamp = now_ms()
            n.seq = self.seq.next()
            alias, dt = NODE_METRICS["Records/Command result"]
            sp.add_metric(n, alias=alias, ts_ms=n.timestamp, datatype=dt,
                          value=json.dumps(result, sort_keys=True))
            return self._publish(sp.topic(self.group, "NDATA", self.node), n)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def _alarm_rows(rows: list[dict]) -> list[dict]:
    keep = ("id", "state", "priority", "occurrence", "active", "acked", "onset_ms",
            "detected_ms", "limit", "source", "zone", "site", "point", "ack_by", "ack_reason",
            "ack_ms", "shelved_until_ms", "updated_ms")
    return [{k: a.get(k) for k in keep} for a in rows]


def _ranges(text: str) -> list[tuple[int, int]]:
    """``"5-9,12-12"`` -> [(5, 9), (12, 12)]; malformed parts are ignored."""
    out = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        try:
            lo, hi = int(a), int(b or a)
        except ValueError:
            continue
        if 0 < lo <= hi:
            out.append((lo, hi))
    return out
