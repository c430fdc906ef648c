"""``facility central``: the campus's Sparkplug B primary host application.

Central publishes its STATE (retained, with an offline will), consumes every configured edge
node, and keeps one mirror database per site, written through the same ``Store`` as a site's
own, so the store's read API (and the commands built on it) work on a mirror. It checks each
edge's cycle chain (``Records/Previous cycle``) and sample counts, and asks the edge to resend
what it missed (``Node Control/Resend``); it asks for a rebirth when it sees data from a node
whose birth it did not see. It mirrors each cycle's event rows once (``campus_events`` maps the
edge's event ids to the mirror's), and paces each edge's replay of a backlog with the
``Node Control/History rate`` command: AIMD on the lag of the edge's live cycles and of its
own inbox (:class:`Pace`). docs/ARCHITECTURE.md "Campus (Sparkplug B)".
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from facility.campus import sparkplug as sp
from facility.campus.uplink import ALARM_ALIAS, NODE_DEVICE, NODE_METRICS, make_client
from facility.campus.watch import NodeWatch
from facility.config.paths import mirror_path  # also importable from here
from facility.config.schema import CentralSite, Config
from facility.domain.model import PointInfo, Quality, Sample, now_ms
from facility.store import Cycle, Store
from facility.store.rows import EVENT_COLUMNS

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
    """
    CREATE TABLE campus_events (
        edge_event INTEGER PRIMARY KEY, event_id INTEGER NOT NULL, edge_cycle INTEGER NOT NULL
    );
    """,
]
"""The mirror's own bookkeeping: which edge cycles arrived, the node's last known state
(online, bdSeq, the edge's chain head), and which edge event rows it holds (under which of
its own event ids), so a resent cycle adds no event twice."""

RESEND_AFTER_S = 10.0  # ask again for a range still missing after this long
PACE_PERIOD_S = 0.5  # how often each edge's replay rate is reconsidered
PACE_WINDOW_S = 5.0  # live lags of this long ago and newer make the p95
PACE_HOLD_S = 1.0  # after a cut, lags must come from the new rate before the next one
PACE_STEP_S = 20.0  # additive increase: from the floor to the ceiling in this long at least
PACE_START = 0.1  # a session's replay starts at this fraction of the edge's ceiling
PACE_REFRESH_S = 5.0  # the rate is sent again this often (commands are QoS 0)
ALIAS_NAMES = {**{alias: name for name, (alias, _) in NODE_METRICS.items()},
               ALARM_ALIAS: "Alarms/Changed"}


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
    pace: "Pace | None" = None  # this session's replay pacing (None: the edge is not paced)

    def open(self) -> Store:
        if self.store is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.store = Store(self.path)
            self.store.add_migrations(CAMPUS_NAMESPACE, CAMPUS_MIGRATIONS)
            self.received = {r for (r,) in self.store.conn.execute(
                "SELECT edge_cycle FROM campus_cycles")}
            self.origin = min(self.received) if self.received else None
        return self.store


@dataclass
class Pace:
    """How fast one edge may replay its backlog (``Node Control/History rate``), by AIMD.

    Central's lag is the p95, over the last :data:`PACE_WINDOW_S`, of the edge's live cycles
    from their publish at the edge to their commit in the mirror, less the least such lag
    seen (so an offset between the edge's clock and central's does not count), and how long
    the message central takes from its inbox waited there. While both stay under ``[central]
    live_lag_ms`` and the edge replays at half the allowed rate or more, the rate grows by
    ceiling / :data:`PACE_STEP_S` per second; above it, it halves (once per
    :data:`PACE_HOLD_S`, and only lags measured after a cut count towards the next). Always
    within ``[central] history_floor`` and the edge's ceiling (its ``history_rate``, which
    its birth certificate declares)."""

    ceiling: float
    floor: float
    rate: float
    lags: deque = field(default_factory=lambda: deque(maxlen=10_000))  # (monotonic, ms)
    history: deque = field(default_factory=lambda: deque(maxlen=100_000))  # (monotonic, n)
    cut_at: float = -1e9
    stepped_at: float | None = None
    sent: float | None = None
    sent_at: float = -1e9
    cuts: int = 0

    def update(self, now: float, target_ms: float, inbox_ms: float) -> float:
        """Reconsider the rate at ``now`` (``time.monotonic()``); returns it."""
        since = max(now - PACE_WINDOW_S, self.cut_at)
        base = min((ms for _t, ms in self.lags), default=0.0)
        window = [ms - base for t, ms in self.lags if t >= since]
        p95 = sorted(window)[int(0.95 * (len(window) - 1))] if window else None
        dt = 0.0 if self.stepped_at is None else now - self.stepped_at
        self.stepped_at = now
        if (p95 is not None and p95 > target_ms) or inbox_ms > target_ms:
            if now - self.cut_at >= PACE_HOLD_S:
                cut = max(self.floor, self.rate / 2)
                self.cuts += cut < self.rate
                self.rate, self.cut_at = cut, now
            return self.rate
        used = sum(n for t, n in self.history if t >= now - 1.0)
        if used >= 0.5 * self.rate:  # the edge replays at this rate: it may go faster
            self.rate = min(self.ceiling, self.rate + self.ceiling * dt / PACE_STEP_S)
        return self.rate


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
        self._inbox_ms = 0.0  # how long the message handled last waited in the inbox
        self._paced_at = 0.0
        self.stats = {"messages": 0, "samples": 0, "cycles": 0, "resend_requests": 0,
                      "rebirth_requests": 0}
        self.on_cycle = None  # hook for tests and benchmarks: (mirror, edge cycle, historical)
        self.watch = NodeWatch(cfg, {m.site.id: m.group for m in self.mirrors.values()},
                               connected=self._connected.is_set)  # offline alarms, paged

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
        client.on_message = lambda c, u, m: self._inbox.put((m.topic, m.payload,
                                                             time.monotonic()))
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
                    topic, payload, arrived = self._inbox.get(timeout=0.2)
                except queue.Empty:
                    self._inbox_ms = 0.0
                    self._ask_again()
                    self._pace()
                    self.watch.tick()
                    continue
                t = time.monotonic()
                self._inbox_ms = (t - arrived) * 1000.0
                self.handle(topic, payload)
                if t - self._paced_at >= PACE_PERIOD_S:
                    self._pace()
                self.watch.tick()
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
        self.watch.close()

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
        if t.kind not in ("NBIRTH", "NDEATH"):
            self.watch.heard(m.site.id)
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
        self.watch.birth(m.site.id)
        m.aliases = {}
        m.last_seq = p.seq
        m.edge_head = {"id": values.get("Records/Chain head id"),
                       "hash": values.get("Records/Chain head hash")}
        self._node_state(m, online=True, bdseq=m.bdseq, since_ms=now_ms(),
                         edge_head=m.edge_head)
        if values.get("Records/Signed checkpoint"):
            self._checkpoint(m, values["Records/Signed checkpoint"])
        m.pace = None
        ceiling = values.get("Node Control/History rate")
        c = self.cfg.central
        if c.history_control and isinstance(ceiling, float) and ceiling > 0:
            floor = min(c.history_floor, ceiling)
            m.pace = Pace(ceiling, floor, max(floor, ceiling * PACE_START))
            self._send_pace(m, time.monotonic())  # before the replay starts at its ceiling
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
        self.watch.death(m.site.id)
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
        events = self._new_events(m, values.get("Records/Events"))
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
            if events:  # the cycle's events are the newest rows: this transaction's own
                mine = [r for (r,) in conn.execute(
                    "SELECT id FROM events ORDER BY id DESC LIMIT ?", (len(events),))][::-1]
                conn.executemany("INSERT INTO campus_events VALUES (?, ?, ?)",
                                 [(int(e["id"]), eid, cid) for e, eid in zip(events, mine)])
        m.store.write_cycle(Cycle(samples=samples, alarms=alarms, extra=[mark],
                                  events=[{c: e.get(c) for c in EVENT_COLUMNS}
                                          for e in events]))
        if m.pace is not None and historical:
            m.pace.history.append((time.monotonic(), len(samples)))
        elif m.pace is not None and p.timestamp:  # a live cycle: its lag since the edge sent it
            m.pace.lags.append((time.monotonic(), now_ms() - int(p.timestamp)))
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

    def _new_events(self, m: Mirror, text) -> list[dict]:
        """The edge event rows of a ``Records/Events`` metric not yet in the mirror."""
        if not text:
            return []
        try:
            rows = [e for e in json.loads(text) if isinstance(e, dict)
                    and isinstance(e.get("id"), int) and e.get("alarm_id")]
        except (ValueError, TypeError):
            log.warning("site %s: unreadable Records/Events ignored", m.site.id)
            return []
        if not rows:
            return []
        ids = [e["id"] for e in rows]
        have = {r for (r,) in m.store.conn.execute(
            "SELECT edge_event FROM campus_events WHERE edge_event BETWEEN ? AND ?",
            (min(ids), max(ids)))}
        return sorted((e for e in rows if e["id"] not in have), key=lambda e: e["id"])

    # -- replay pacing ----------------------------------------------------------------------
    def _pace(self) -> None:
        """Reconsider every paced edge's replay rate (:class:`Pace`) and send what changed."""
        now = time.monotonic()
        if now - self._paced_at < PACE_PERIOD_S:
            return
        self._paced_at = now
        target = self.cfg.central.live_lag_ms
        for m in self.mirrors.values():
            if m.pace is None or not (m.born and m.online):
                continue
            rate = m.pace.update(now, target, self._inbox_ms)
            sent = m.pace.sent
            if sent is None or abs(rate - sent) > 0.05 * sent or (
                    now - m.pace.sent_at >= PACE_REFRESH_S):
                self._send_pace(m, now)

    def _send_pace(self, m: Mirror, now: float) -> None:
        self._command(m, {"Node Control/History rate": (sp.DOUBLE, float(m.pace.rate))})
        m.pace.sent, m.pace.sent_at = m.pace.rate, now

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
