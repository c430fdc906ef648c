"""``facility central``: the campus's Sparkplug B primary host application.

Central publishes its STATE (retained, with an offline will), consumes every configured edge
node, and keeps one mirror database per site, written through the same ``Store`` as a site's
own, so the store's read API (and the commands built on it) work on a mirror. It checks each
edge's cycle chain (``Records/Previous cycle``) and sample counts, and asks the edge to resend
what it missed (``Node Control/Resend``); it asks for a rebirth when it sees data from a node
whose birth it did not see. docs/ARCHITECTURE.md "Campus (Sparkplug B)".
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from facility.campus import sparkplug as sp
from facility.campus.uplink import ALARM_ALIAS, NODE_DEVICE, NODE_METRICS, make_client
from facility.config.schema import CentralSite, Config
from facility.domain.model import PointInfo, Quality, Sample, now_ms
from facility.store import Cycle, Store

log = logging.getLogger("facility.central")

CAMPUS_NAMESPACE = "campus"
CAMPUS_MIGRATIONS = [
    """
    CREATE TABLE campus_cycles (
        edge_cycle INTEGER PRIMARY KEY, prev INTEGER, samples INTEGER NOT NULL,
        historical INTEGER NOT NULL, received_ms INTEGER NOT NULL
    );
    CREATE TABLE campus_node (
        key TEXT PRIMARY KEY, value TEXT, updated_ms INTEGER NOT NULL
    );
    """,
]
"""The mirror's own bookkeeping: which edge cycles arrived, and the node's last known state
(online, bdSeq, the edge's chain head)."""

RESEND_AFTER_S = 10.0  # ask again for a range still missing after this long
ALIAS_NAMES = {**{alias: name for name, (alias, _) in NODE_METRICS.items()},
               ALARM_ALIAS: "Alarms/Changed"}


def mirror_path(cfg: Config, site: CentralSite) -> str:
    """Where a site's mirror database lives."""
    if site.path:
        return os.path.normpath(os.path.join(cfg.base_dir, site.path))
    return os.path.join(os.path.dirname(cfg.db_path), "mirror", f"{site.id}.db")


@dataclass
class Mirror:
    """Central's view of one edge node and its mirror store."""

    site: CentralSite
    group: str
    path: str
    store: Store | None = None
    online: bool = False
    bdseq: int | None = None
    born: bool = False
    aliases: dict[int, str] = field(default_factory=dict)
    devices: dict[str, set[str]] = field(default_factory=dict)
    pending: list[Sample] = field(default_factory=list)
    received: set[int] = field(default_factory=set)
    origin: int | None = None
    asked: dict[tuple[int, int], float] = field(default_factory=dict)
    edge_head: dict = field(default_factory=dict)
    last_seq: int | None = None
    heads: dict[int, str] = field(default_factory=dict)  # edge chain head id -> hash seen
    trust: dict = field(default_factory=dict)  # the last signed-checkpoint comparison

    def open(self) -> Store:
        if self.store is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.store = Store(self.path)
            self.store.add_migrations(CAMPUS_NAMESPACE, CAMPUS_MIGRATIONS)
            self.received = {r for (r,) in self.store.conn.execute(
                "SELECT edge_cycle FROM campus_cycles")}
            self.origin = min(self.received) if self.received else None
        return self.store


class Central:
    """The primary host: one MQTT session, one mirror per configured site."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        c = cfg.central
        self.host_id = c.host_id
        group = c.group_id or cfg.facility.id
        self.mirrors: dict[tuple[str, str], Mirror] = {}
        for s in c.sites:
            g = s.group_id or group
            self.mirrors[(g, s.node_id)] = Mirror(s, g, mirror_path(cfg, s))
        self._inbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._client = None
        self._connected = threading.Event()
        self._born_ms = 0
        self.stats = {"messages": 0, "samples": 0, "cycles": 0, "resend_requests": 0,
                      "rebirth_requests": 0}
        self.on_cycle = None  # hook for tests and benchmarks: (mirror, edge cycle, historical)

    # -- session ----------------------------------------------------------------------------
    def connect(self) -> None:
        b = self.cfg.central.broker
        client = make_client(f"fms-central-{self.host_id}", b)
        self._born_ms = now_ms()
        # tck-id-host-topic-phid-death-*: the will is the offline STATE, retained, QoS 1,
        # with the same timestamp as the online STATE of this session
        client.will_set(sp.state_topic(self.host_id), sp.state_payload(False, self._born_ms),
                        qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_message = lambda c, u, m: self._inbox.put((m.topic, m.payload))
        client.on_disconnect = lambda *a: self._connected.clear()
        client.reconnect_delay_set(0.5, 5)
        client.connect_async(b.host, b.port, keepalive=max(5, int(b.keepalive_s)))
        client.loop_start()
        self._client = client

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            log.warning("broker refused central: %s", reason)
            return
        for group in sorted({m.group for m in self.mirrors.values()}):
            client.subscribe(f"{sp.NAMESPACE}/{group}/#", qos=0)
        # tck-id-host-topic-phid-birth-*: subscribe first, then the retained online STATE
        client.publish(sp.state_topic(self.host_id), sp.state_payload(True, self._born_ms),
                       qos=1, retain=True)
        self._connected.set()

    def run(self, until: float | None = None) -> None:
        """Handle messages until :meth:`stop` (or the ``time.monotonic()`` deadline)."""
        if self._client is None:
            self.connect()
        try:
            while not self._stop.is_set() and (until is None or time.monotonic() < until):
                try:
                    topic, payload = self._inbox.get(timeout=0.2)
                except queue.Empty:
                    self._ask_again()
                    continue
                self.handle(topic, payload)
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self._client is not None:
            c, self._client = self._client, None
            info = c.publish(sp.state_topic(self.host_id), sp.state_payload(False, now_ms()),
                             qos=1, retain=True)
            try:
                info.wait_for_publish(3)
            except (RuntimeError, ValueError) as exc:  # the broker publishes the will instead
                log.warning("offline STATE before disconnect not sent (%s); the will stands",
                            exc)
            c.disconnect()
            c.loop_stop()
        for m in self.mirrors.values():
            if m.store is not None:
                m.store.close()
                m.store = None

    # -- messages ---------------------------------------------------------------------------
    def handle(self, topic: str, data: bytes) -> None:
        t = sp.parse_topic(topic)
        if t is None:
            return
        m = self.mirrors.get((t.group, t.node))
        if m is None or t.kind in ("NCMD", "DCMD"):
            return  # not a configured site, or a command (ours)
        try:
            payload = sp.Payload.FromString(data)
        except DecodeError:
            log.warning("ignored a malformed payload on %s", topic)
            return
        self.stats["messages"] += 1
        m.open()
        if t.kind == "NBIRTH":
            self._nbirth(m, payload)
        elif t.kind == "NDEATH":
            self._ndeath(m, payload)
        elif not m.born:
            self._command(m, {"Node Control/Rebirth": (sp.BOOLEAN, True)})
            self.stats["rebirth_requests"] += 1
        elif t.kind == "DBIRTH":
            self._dbirth(m, t.device or NODE_DEVICE, payload)
        elif t.kind == "DDATA":
            self._ddata(m, payload)
        elif t.kind == "NDATA":
            self._ndata(m, payload)

    def _node_state(self, m: Mirror, **values) -> None:
        now = now_ms()

        def write(conn):
            for k, v in values.items():
                conn.execute("INSERT INTO campus_node (key, value, updated_ms) VALUES (?, ?, ?)"
                             " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                             " updated_ms = excluded.updated_ms", (k, json.dumps(v), now))
        m.store.write_cycle(Cycle(extra=[write]))

    def _nbirth(self, m: Mirror, p) -> None:
        values = {}
        for metric in p.metrics:
            if metric.name:
                values[metric.name] = sp.metric_value(metric)
        m.bdseq = values.get("bdSeq")
        m.born, m.online, m.pending = True, True, []
        m.aliases = {}
        m.last_seq = p.seq
        m.edge_head = {"id": values.get("Records/Chain head id"),
                       "hash": values.get("Records/Chain head hash")}
        self._node_state(m, online=True, bdseq=m.bdseq, since_ms=now_ms(),
                         edge_head=m.edge_head)
        if values.get("Records/Signed checkpoint"):
            self._checkpoint(m, values["Records/Signed checkpoint"])
        edge_cycle = int(values.get("Records/Cycle") or 0)
        if m.origin is None:
            m.origin = edge_cycle or None
        elif edge_cycle:
            top = max(m.received) if m.received else m.origin
            if edge_cycle > top:
                self._ask(m, top + 1, edge_cycle)

    def _ndeath(self, m: Mirror, p) -> None:
        bd = next((sp.metric_value(x) for x in p.metrics if x.name == "bdSeq"), None)
        if m.bdseq is not None and bd is not None and bd != m.bdseq:
            return  # an old session's will (tck-id-host-topic-... bdSeq correlation)
        m.online, m.born = False, False
        self._node_state(m, online=False, since_ms=now_ms())

    def _dbirth(self, m: Mirror, device: str, p) -> None:
        points = []
        for metric in p.metrics:
            props = sp.properties(metric)
            m.aliases[metric.alias] = metric.name
            m.devices.setdefault(device, set()).add(metric.name)
            points.append(PointInfo(
                metric.name, "" if device == NODE_DEVICE else device,
                props["fms.site"] if "fms.site" in props else m.site.id,
                props.get("fms.zone") or None,
                props.get("fms.quantity") or "", props.get("engUnit") or "",
                int(props.get("fms.decimals") or 3), kind=props.get("fms.kind") or "measured"))
        m.store.register_points(points)

    def _ddata(self, m: Mirror, p) -> None:
        for metric in p.metrics:
            name = m.aliases.get(metric.alias) or metric.name
            if not name:
                continue
            props = sp.properties(metric) if metric.properties.keys else {}
            q = props.get("fms.quality")
            if q is None:
                code = props.get("Quality", sp.SP_GOOD)
                q = {sp.SP_GOOD: Quality.GOOD, sp.SP_STALE: Quality.STALE}.get(code, Quality.BAD)
            m.pending.append(Sample(name, int(metric.timestamp), sp.metric_value(metric),
                                    Quality(int(q))))

    def _ndata(self, m: Mirror, p) -> None:
        values, historical = {}, False
        for metric in p.metrics:
            name = metric.name or ALIAS_NAMES.get(metric.alias)
            values[name] = sp.metric_value(metric)
            historical = historical or metric.is_historical
        if values.get("Records/Signed checkpoint"):
            self._checkpoint(m, values["Records/Signed checkpoint"])
        cid = values.get("Records/Cycle")
        if cid is None:
            return
        cid, prev = int(cid), int(values.get("Records/Previous cycle") or 0)
        expected = int(values.get("Records/Cycle samples") or 0)
        samples, m.pending = m.pending, []
        if len(samples) != expected:  # a DDATA of this cycle was lost on the wire
            self._ask(m, cid, cid)
            return
        alarms = []
        if values.get("Alarms/Changed"):
            try:
                alarms = [a for a in json.loads(values["Alarms/Changed"]) if a.get("id")]
            except ValueError:
                alarms = []
        if values.get("Records/Chain head id") is not None:
            m.edge_head = {"id": values.get("Records/Chain head id"),
                           "hash": values.get("Records/Chain head hash")}
            m.heads[int(m.edge_head["id"])] = str(m.edge_head["hash"])
            if len(m.heads) > 100_000:
                for k in sorted(m.heads)[:50_000]:
                    del m.heads[k]
        now = now_ms()

        def mark(conn):
            conn.execute("INSERT OR REPLACE INTO campus_cycles VALUES (?, ?, ?, ?, ?)",
                         (cid, prev, expected, int(historical), now))
        m.store.write_cycle(Cycle(samples=samples, alarms=alarms, extra=[mark]))
        m.received.add(cid)
        self.stats["samples"] += len(samples)
        self.stats["cycles"] += 1
        for key in [k for k in m.asked if k[0] <= cid <= k[1]]:
            if all(c in m.received for c in (key[0], key[1])):
                m.asked.pop(key, None)
        if m.origin is None:
            m.origin = cid
        if prev and prev >= (m.origin or prev) and prev not in m.received:
            below = [c for c in m.received if c < prev]
            self._ask(m, (max(below) + 1) if below else prev, prev)
        if self.on_cycle:
            self.on_cycle(m, cid, historical)

    def _checkpoint(self, m: Mirror, text: str) -> None:
        """Compare the edge's signed chain checkpoint with what central mirrored: a signature
        that does not verify, a key that is not the trusted one, or a chain head hash that
        differs from the one central received for that row is flagged in the mirror
        (``campus_node`` key ``trust``) and logged (docs/ARCHITECTURE.md "Campus (Sparkplug B)")."""
        from facility.store.keys import fingerprint, signature_ok
        from facility.store.witness import signed_bytes

        try:
            line = json.loads(text)
            sig_ok = signature_ok(line["key"], signed_bytes(line), line["sig"])
            row, head = int(line["row_id"]), str(line["hash"])
            fp = fingerprint(bytes.fromhex(line["key"]))
        except (ValueError, KeyError, TypeError):
            sig_ok, row, head, fp = False, 0, "", ""
        why = ""
        if not sig_ok:
            why = "the signed checkpoint's signature does not verify (forged or damaged)"
        elif m.site.trust and fp != m.site.trust:
            why = f"the checkpoint is signed by key {fp}, not the trusted {m.site.trust}"
        elif row in m.heads and m.heads[row] != head:
            why = (f"the mirror differs from the edge's signed head at audit row {row}"
                   f" (mirrored {m.heads[row][:12]}..., signed {head[:12]}...)")
        m.trust = {"ok": not why, "why": why, "row_id": row, "key": fp,
                   "origin": "trusted key" if m.site.trust and not why else
                   "integrity only (no trusted key configured)" if not why else "",
                   "checked_ms": now_ms()}
        if why:
            log.warning("site %s: %s", m.site.id, why)
        self._node_state(m, trust=m.trust, signed_checkpoint=text)

    # -- commands ---------------------------------------------------------------------------
    def _command(self, m: Mirror, metrics: dict) -> None:
        if self._client is None:
            return
        p = sp.Payload()
        p.timestamp = now_ms()
        for name, (dt, value) in metrics.items():
            sp.add_metric(p, name=name, ts_ms=p.timestamp, datatype=dt, value=value)
        self._client.publish(sp.topic(m.group, "NCMD", m.site.node_id), p.SerializeToString(),
                             qos=0)

    def _ask(self, m: Mirror, lo: int, hi: int) -> None:
        if lo > hi:
            return
        key = (lo, hi)
        if time.monotonic() - m.asked.get(key, -1e9) < RESEND_AFTER_S:
            return
        m.asked[key] = time.monotonic()
        self.stats["resend_requests"] += 1
        self._command(m, {"Node Control/Resend": (sp.STRING, f"{lo}-{hi}")})

    def _ask_again(self) -> None:
        """Repeat resend requests that are still open after RESEND_AFTER_S."""
        for m in self.mirrors.values():
            for (lo, hi), at in list(m.asked.items()):
                if hi in m.received or not m.online:
                    continue
                if time.monotonic() - at >= RESEND_AFTER_S:
                    m.asked.pop((lo, hi))
                    self._ask(m, lo, hi)


def site_of(cfg: Config, *, alarm: str | None = None, device: str | None = None,
            zone: str | None = None, site: str | None = None) -> CentralSite:
    """The mirrored site an action is for: named, or the one whose mirror knows the alarm,
    device or zone (an id two sites share needs ``--site``)."""
    from facility.domain.errors import UsageError

    sites = cfg.central.sites
    if site:
        found = [s for s in sites if s.id == site]
        if not found:
            raise UsageError(f"unknown site {site!r}; central mirrors "
                             + ", ".join(s.id for s in sites))
        return found[0]
    hits = []
    for s in sites:
        path = mirror_path(cfg, s)
        if not os.path.exists(path):
            continue
        with Store(path, readonly=True) as m:
            if alarm and any(a["id"] == alarm for a in m.alarms()):
                hits.append(s)
            elif (device or zone) and any(p.get("device") == device or p.get("zone") == zone
                                          for p in m.points()):
                hits.append(s)
    what = alarm or device or zone
    if not hits:
        raise UsageError(f"no mirrored site knows {what!r}; list alarms with `facility alarms`")
    if len(hits) > 1:
        raise UsageError(f"{what!r} is known at " + ", ".join(h.id for h in hits)
                         + "; name one with --site")
    return hits[0]


def relay_action(cfg: Config, site: CentralSite, payload: dict, login: str,
                 timeout_s: float = 30.0) -> dict:
    """Send an operator action to a site as a Sparkplug command and wait for the site's own
    service to answer (``Records/Command result``). The site checks the operator's roles and
    audits the action "via central"; central decides nothing."""
    import uuid

    from facility.domain.errors import RuntimeFailure

    group = site.group_id or cfg.central.group_id or cfg.facility.id
    rid = uuid.uuid4().hex
    done, box = threading.Event(), {}
    alias = NODE_METRICS["Records/Command result"][0]

    def on_message(client, userdata, msg):
        try:
            p = sp.Payload.FromString(msg.payload)
        except DecodeError:  # not Sparkplug: not the answer waited for
            return
        for m in p.metrics:
            if m.alias == alias or m.name == "Records/Command result":
                try:
                    doc = json.loads(sp.metric_value(m) or "{}")
                except ValueError:
                    continue
                if doc.get("request_id") == rid:
                    box.update(doc)
                    done.set()

    subscribed = threading.Event()
    client = make_client(f"fms-central-cmd-{rid[:12]}", cfg.central.broker)
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe(sp.topic(group, "NDATA", site.node_id), qos=0)
    b = cfg.central.broker
    try:
        client.connect(b.host, b.port, keepalive=max(5, int(b.keepalive_s)))
    except OSError as exc:
        raise RuntimeFailure(f"broker {b.host}:{b.port} unreachable: {exc}") from None
    client.loop_start()
    try:
        if not subscribed.wait(timeout_s):
            raise RuntimeFailure(f"broker {b.host}:{b.port} did not accept the subscription")
        p = sp.Payload()
        p.timestamp = now_ms()
        sp.add_metric(p, name="Node Control/Action", ts_ms=p.timestamp, datatype=sp.STRING,
                      value=json.dumps({**payload, "operator": login, "request_id": rid}))
        client.publish(sp.topic(group, "NCMD", site.node_id), p.SerializeToString(), qos=1)
        if not done.wait(timeout_s):
            raise RuntimeFailure(f"site {site.id} did not answer within {timeout_s:g} s (is its"
                                 " `facility uplink` running and connected?)")
    finally:
        client.loop_stop()
        client.disconnect()
    return box
