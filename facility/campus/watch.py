"""Central's watch over the edge nodes: a site whose edge node dies pages once per outage.

docs/ARCHITECTURE.md "Campus (Sparkplug B)" and "Paging". Each mirrored site has one alarm,
``campus:<site>:offline``, with the ISA-18.2 lifecycle every alarm has (``alarms.lifecycle``
through the service's ``AlarmBook``), its rows, events and pages in central's own database
(``[storage] path`` of central's configuration), paged through central's own ``[paging]``
by the same ``Pager`` and ``Dispatcher`` a site uses.

* **Offline** is an NDEATH of the node's session (the broker's will when the edge died or
  lost its connection, or the edge's own when it stopped), or ``[central] silence_s``
  without any message from it (a hung edge may keep its MQTT session and never die).
* **Grace.** The alarm is raised only once the node has stayed offline for
  ``offline_grace_s`` (onset: when it went offline), so an uplink restart or a rebirth pages
  nothing.
* **Hysteresis.** It returns to normal only once the node has been back (NBIRTH, or a
  message after a silence) for ``online_hold_s``; a node that keeps dropping out and coming
  back within that time stays one raised occurrence, one page. Past that, the pager's own
  repeat control and chattering rules apply (``alarms.paging``: a return is paged after
  60 s unless the alarm raises again first).
* **Blind central.** While central's own MQTT session is down nothing is judged, and the
  silence and grace clocks start again when it is back (a broker that shuts down delivers
  its clients' NDEATH wills first): a broker outage is not N node outages.
* **Records.** Every change of a node between offline and online is an audit row
  (``node_offline`` / ``node_online``, actor ``central``), beside the alarm's own rows and
  events, so the outage history is kept even when the grace meant no alarm.
* **Operator actions.** Central answers on the action socket of its own database
  (``facility.service.socket``, ``socket_path([storage] path)``), as a site service does:
  ``facility ack campus:<site>:offline --config central.toml`` (and reset, comment, shelve,
  suppress ...) goes through the service's ``ActionHandler``, which checks the login against
  central's own ``[[operators]]``, refuses a superseded occurrence, and audits accepted and
  refused actions alike in central's own chain. An acknowledged alarm that has returned is
  normal again, so the next outage is a new occurrence and pages again. The socket is served
  on a thread of its own; each request is applied on central's thread (:meth:`NodeWatch.tick`),
  where the alarm book and the database live, and answered once its rows are written.
* **Timers.** A shelve or a suppression of a node alarm ends when its time is up, as at a
  site (an event and, for a suppression, an audit row).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from alarms.dispatcher import Dispatcher
from alarms.lifecycle import Event
from alarms.outbox import OUTBOX_MIGRATIONS, OUTBOX_NAMESPACE
from alarms.paging import AlarmContext, Pager
from facility.config.schema import CentralSite, Config
from facility.domain.display import local_time
from facility.domain.model import now_ms as wall_ms
from facility.service.alarm_book import AlarmBook, AlarmMeta
from facility.service.operator_actions import ActionContext, ActionHandler
from facility.service.socket import ActionServer, socket_path
from facility.store import Cycle, Store
from facility.store.keys import audit_key

log = logging.getLogger("facility.central.watch")

KIND = "offline"
"""The kind of the node alarm (``campus:<site>:offline``)."""

JUDGE_S = 0.2
"""How often the nodes are judged; central's loop calls :meth:`NodeWatch.tick` far more often."""

PAGER_TICK_S = 1.0
"""How often the pager looks at what is due (escalations, repeats, held returns), the period of
a site service's cycle."""

DISPATCHER_STOP_S = 15.0
"""At close, how long the dispatcher may finish the deliveries it has started."""

ACTION_WAIT_S = 8.0
"""How long a request waits for central's thread to take it up (it looks every loop round,
at most 0.2 s apart while the inbox is idle); past that it is answered that nothing was done,
before the command line's own 10 s are up."""

ACTIONS_STOP_S = 3.0
"""At close, how long the requests being answered may take to finish."""


def alarm_id(site: CentralSite) -> str:
    """``campus:<site>:offline``."""
    return f"campus:{site.id}:{KIND}"


@dataclass
class Node:
    """What central knows of one edge node's liveness."""

    site: CentralSite
    group: str
    alarm: str
    heard_ms: int = 0  # the last message but NDEATH, or when central's session began
    dead_ms: int | None = None  # an NDEATH of its session, and no NBIRTH since
    silent: bool = False  # no message for silence_s
    back_ms: int | None = None  # continuously back since (None: offline, or not seen yet)
    why: str = ""  # how it went offline, in words

    @property
    def down(self) -> bool:
        return self.dead_ms is not None or self.silent


class _NodeBook(AlarmBook):
    """The service's alarm book with the words of a node alarm (no point, no room)."""

    def __init__(self, cfg: Config, metas: dict[str, AlarmMeta], config_version: int | None,
                 words: Callable[[str], AlarmContext]):
        super().__init__(cfg, metas, config_version)
        self._node_words = words

    def context(self, aid: str, value: float | None = None,
                value_ms: int | None = None) -> AlarmContext:
        return self._node_words(aid)


class _Delivery:
    """The ``Dispatcher`` on an event loop of its own thread (central itself is threaded)."""

    def __init__(self, db_path: str, cfg: Config):
        self.loop = asyncio.new_event_loop()
        self.dispatcher = Dispatcher(db_path, cfg.paging)
        self.thread = threading.Thread(target=self._main, name="central-paging", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.dispatcher.run())

    def wake(self) -> None:
        self.loop.call_soon_threadsafe(self.dispatcher.wake)

    def close(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.dispatcher.stop)
            self.thread.join(DISPATCHER_STOP_S)
        if self.thread.is_alive():
            log.error("paging dispatcher did not stop within %.0f s", DISPATCHER_STOP_S)
            return
        self.dispatcher.close()
        self.loop.close()


class _ActionSocket:
    """The action socket of central's own database on an event loop of its own thread.

    A request is only handed over here: it is queued with a future, central's thread applies
    it (:meth:`NodeWatch.tick` via :meth:`take`), and the reply comes back through the
    future. So the alarm book and the database are only ever touched by central's thread,
    and no lock guards them.
    """

    def __init__(self, path: str, group: str | None):
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        self.closing = False
        self.server = ActionServer(path, self._handle, group=group)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="central-actions",
                                       daemon=True)
        self.thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(
                ACTIONS_STOP_S)
        except BaseException:
            self._end()
            raise

    async def _handle(self, login: str, req: dict) -> dict:
        """On the socket's loop: queue the request for central's thread, await its reply."""
        if self.closing:
            return {"ok": False, "message": "central is stopping: nothing was done; try again"
                    " once `facility central` runs"}
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.requests.put((login, req, fut))
        reply = asyncio.wrap_future(fut)
        try:
            return await asyncio.wait_for(asyncio.shield(reply), ACTION_WAIT_S)
        except asyncio.TimeoutError:
            if fut.cancel():  # central's thread never took it up
                return {"ok": False, "message": f"central did not take the request up within"
                        f" {ACTION_WAIT_S:g} s: nothing was done; try again"}
            return await reply  # being applied now: its own reply

    def take(self) -> tuple[str, dict, concurrent.futures.Future] | None:
        """The next request waiting, if any (central's thread)."""
        try:
            return self.requests.get_nowait()
        except queue.Empty:
            return None

    def close(self, serve: Callable[[], None]) -> None:
        """Stop accepting, answer what was asked (``serve`` applies queued requests), and end
        the socket's thread; requests arriving meanwhile are told central is stopping."""
        self.closing = True
        stopped = asyncio.run_coroutine_threadsafe(self._stop(), self.loop)
        deadline = time.monotonic() + 2 * ACTIONS_STOP_S
        while time.monotonic() < deadline:
            serve()
            try:
                stopped.result(0.02)
                break
            except concurrent.futures.TimeoutError:
                continue
            except Exception as exc:  # noqa: BLE001 - shutdown must finish; the log says why
                log.error("action socket did not close cleanly: %s", exc)
                break
        serve()
        self._end()

    async def _stop(self) -> None:
        await self.server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if tasks:  # the connections still being answered
            _done, late = await asyncio.wait(tasks, timeout=ACTIONS_STOP_S)
            for t in late:
                t.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def _end(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(ACTIONS_STOP_S)
        if self.thread.is_alive():
            log.error("action socket thread did not stop within %.0f s", ACTIONS_STOP_S)
            return
        self.loop.close()


class NodeWatch:
    """One offline alarm per mirrored site (see the module docstring).

    Central calls :meth:`birth`, :meth:`death` and :meth:`heard` from its message handling,
    :meth:`tick` from its loop and :meth:`close` at the end, all from its one thread; the
    operator actions that reach the action socket are applied in :meth:`tick` too.
    """

    def __init__(self, cfg: Config, groups: dict[str, str], *,
                 connected: Callable[[], bool] = lambda: True,
                 clock: Callable[[], int] = wall_ms):
        """``groups``: site id -> the Sparkplug group of its edge node; ``connected``: whether
        central's MQTT session is up now."""
        c = cfg.central
        self.cfg = cfg
        self.connected = connected
        self.clock = clock
        self.grace_ms = int(c.offline_grace_s * 1000)
        self.silence_ms = int(c.silence_s * 1000)
        self.hold_ms = int(c.online_hold_s * 1000)
        self.nodes: dict[str, Node] = {
            s.id: Node(s, groups.get(s.id, ""), alarm_id(s)) for s in c.sites}
        self._by_alarm = {n.alarm: n for n in self.nodes.values()}
        self._sites = {s.id: s for s in cfg.sites}
        self.metas = {n.alarm: self._meta(n) for n in self.nodes.values()}
        self.store: Store | None = None
        self.book: _NodeBook | None = None
        self.pager = Pager(cfg.paging, cfg.facility.id)
        self.delivery: _Delivery | None = None
        self.actions: ActionHandler | None = None  # operator actions on the node alarms
        self.socket: _ActionSocket | None = None  # where they arrive (None: not served)
        self._runner: asyncio.AbstractEventLoop | None = None  # runs handle() on this thread
        self.judged_ms = 0  # when the nodes were last judged (tests wait on it)
        self._paged_ms = 0
        self._tried_ms = 0
        self._blind = True  # until central's session is first up
        self._sight_ms = 0  # when central's session last came up
        self._notes: list[dict] = []  # offline/online audit rows not written yet
        self._held: list[Cycle] = []  # writes that failed, tried again first
        self._failing = False

    def _meta(self, n: Node) -> AlarmMeta:
        c = self.cfg.central
        silence = f", or silence_s={c.silence_s:g} s without a message" if self.silence_ms else ""
        return AlarmMeta(
            n.alarm, None, None, n.site.id, None,
            f"edge node offline (NDEATH{silence}) for offline_grace_s={c.offline_grace_s:g} s",
            c.offline_priority, c.offline_priority == "critical", KIND, device=n.site.node_id)

    # -- what central hears ------------------------------------------------------------
    def birth(self, site_id: str) -> None:
        """An NBIRTH of the site's node: it is online."""
        n = self.nodes.get(site_id)
        if n is None:
            return
        now = self.clock()
        was = n.down or n.back_ms is None
        n.dead_ms, n.silent, n.heard_ms = None, False, now
        if was:
            n.back_ms = now
            self._note(n, "online", now, "NBIRTH")

    def death(self, site_id: str) -> None:
        """An NDEATH of the node's current session: it is offline."""
        n = self.nodes.get(site_id)
        if n is None or n.dead_ms is not None:
            return
        now = self.clock()
        was_down = n.silent
        n.dead_ms, n.back_ms = now, None
        n.why = "NDEATH: its MQTT session ended"
        if not was_down:
            self._note(n, "offline", now, n.why)

    def heard(self, site_id: str) -> None:
        """Any other message from the node: it is alive (though not born, after an NDEATH)."""
        n = self.nodes.get(site_id)
        if n is None:
            return
        now = self.clock()
        n.heard_ms = now
        if n.silent:
            n.silent = False
            if n.dead_ms is None:
                n.back_ms = now
                self._note(n, "online", now, "a message after the silence")
        elif n.back_ms is None and n.dead_ms is None:
            n.back_ms = now

    def _note(self, n: Node, what: str, at_ms: int, why: str) -> None:
        self._notes.append({
            "action": f"node_{what}", "actor": "central", "subject": f"campus:{n.site.id}",
            "reason": why, "details": {"site": n.site.id, "node": n.site.node_id,
                                       "group": n.group, "at_ms": at_ms}})
        log.warning("site %s: edge node %s %s (%s)", n.site.id, n.site.node_id, what, why)

    # -- the loop ----------------------------------------------------------------------
    def tick(self) -> None:
        """Apply the operator actions waiting (every call), judge the nodes (at most every
        :data:`JUDGE_S`), end shelves and suppressions whose time is up, write and page what
        changed, and let the pager escalate and repeat (every :data:`PAGER_TICK_S`)."""
        if self.socket is not None:
            self._serve_actions()
        now = self.clock()
        if now - self._tried_ms < JUDGE_S * 1000:
            return
        self._tried_ms = now
        try:
            if self.store is None:
                self._open()
            self._timers(now)
            self._judge(now)
            self.judged_ms = now
            pending = self.book.pending
            if (pending.alarms or pending.events or pending.effects or self._notes
                    or now - self._paged_ms >= PAGER_TICK_S * 1000):
                self._write(now)
        except Exception as exc:  # noqa: BLE001 - mirroring goes on; the log says why
            if not self._failing:
                log.error("node watch: %s", exc)
            self._failing = True
        else:
            self._failing = False

    def _open(self) -> None:
        store = Store(self.cfg.db_path, key=audit_key(self.cfg, create=True),
                      group=self.cfg.storage.group)
        try:
            store.add_migrations(OUTBOX_NAMESPACE, OUTBOX_MIGRATIONS)
            version = store.record_config(self.cfg.text, self.cfg.sha256, actor="central")
            rows = store.alarms()
        except BaseException:
            store.close()
            raise
        self.store = store
        self.book = _NodeBook(self.cfg, self.metas, version, self.context)
        self.book.restore(rows)
        self.delivery = _Delivery(self.cfg.db_path, self.cfg)
        self.actions = ActionHandler(ActionContext(
            cfg=self.cfg, book=self.book, modes={}, resuppress=lambda now: None,
            flush=self._flush))
        self._runner = asyncio.new_event_loop()
        path = socket_path(self.cfg.db_path)
        try:
            self.socket = _ActionSocket(path, self.cfg.storage.group)
        except Exception as exc:  # noqa: BLE001 - the watch still pages; the log says why
            log.error("action socket %s not served (%s): central's own alarms cannot be"
                      " acknowledged until central restarts", path, exc)

    # -- operator actions --------------------------------------------------------------
    def _serve_actions(self) -> None:
        """Apply every request waiting on the socket, in arrival order, each answered once
        its rows are written (``ActionHandler`` through ``_flush``)."""
        while (item := self.socket.take()) is not None:
            login, req, fut = item
            if not fut.set_running_or_notify_cancel():
                continue  # the socket gave up waiting and said nothing was done
            try:
                # handle() is a coroutine (a service awaits its writer thread in flush); here
                # flush writes on this thread, so it runs to its end on a loop of this thread
                reply = self._runner.run_until_complete(self.actions.handle(login, req))
            except Exception as exc:  # noqa: BLE001 - answered as an internal error; logged
                log.error("operator action %r from %s failed: %s", req.get("action"), login,
                          exc)
                fut.set_exception(exc)
            else:
                fut.set_result(reply)

    async def _flush(self) -> None:
        """``ActionContext.flush``: write what is pending (the action's rows) now."""
        self._write(self.clock())

    def _timers(self, now: int) -> None:
        """Shelves, operator suppressions and out-of-service periods whose time is up end,
        as at a site (``ActionHandler.expire``)."""
        for aid in self.book.due_shelves(now):
            self.book.apply(aid, Event.SHELVE_EXPIRED, now_ms=now, by="timer")
        self.actions.expire(now)

    def _judge(self, now: int) -> None:
        if not self.connected():
            self._blind = True
            return
        if self._blind:  # central's session (re)started: every silence clock starts now
            self._blind = False
            self._sight_ms = now
            for n in self.nodes.values():
                if not n.silent:
                    n.heard_ms = max(n.heard_ms, now)
        book = self.book
        for n in self.nodes.values():
            if self.silence_ms and not n.silent and now - n.heard_ms > self.silence_ms:
                n.silent = True
                if n.dead_ms is None:
                    n.back_ms = None
                    n.why = f"no message for silence_s={self.silence_ms / 1000:g} s"
                    self._note(n, "offline", now, n.why)
            active = book.states[n.alarm].active
            if n.down:
                since = n.dead_ms if n.dead_ms is not None else n.heard_ms + self.silence_ms
                # the grace counts while central could see: the NDEATHs a broker sends as
                # it shuts down are not outages of their nodes, unless they last
                if not active and now - max(since, self._sight_ms) >= self.grace_ms:
                    book.apply(n.alarm, Event.RAISE, now_ms=now, ts_ms=since, by="central",
                               detail={"why": n.why})
            elif active and n.back_ms is not None and now - n.back_ms >= self.hold_ms:
                book.apply(n.alarm, Event.CLEAR, now_ms=now, ts_ms=n.back_ms, by="central",
                           detail={"back_ms": n.back_ms})

    def _write(self, now: int) -> None:
        """The alarm rows, events, audit rows and pages of what changed, in one transaction
        (a page exists if and only if its event was committed), then the pager's tick."""
        pending = self.book.pending.take()
        notes, self._notes = self._notes, []
        batch = self.book.page_batch(pending.effects, now)
        cycle = Cycle(alarms=list(pending.alarms.values()), events=pending.events,
                      audit=pending.audit + notes,
                      extra=[functools.partial(batch.write, self.pager)], actor="central")
        self._paged_ms = now
        if pending.alarms or pending.events or notes or pending.effects or not self._held:
            self._held.append(cycle)  # a bare tick waits for nothing: held writes tick too
        while self._held:
            self.store.write_cycle(self._held[0])  # raises: kept, tried again next tick
            self._held.pop(0)
        if pending.effects:
            self.delivery.wake()

    # -- words -------------------------------------------------------------------------
    def context(self, aid: str) -> AlarmContext:
        """The page's words for a node alarm as it is now."""
        n = self._by_alarm[aid]
        st = self.book.states[aid]
        site = self._sites.get(n.site.id)
        tz = site.timezone if site is not None else "UTC"
        name = site.name if site is not None and site.name else ""
        label = f"{name} ({n.site.id})" if name and name != n.site.id else n.site.id
        node = f"{n.group}/{n.site.node_id}" if n.group else n.site.node_id
        onset = local_time(st.onset_ms, tz) if st.onset_ms else "an unknown time"
        if st.active:
            what = f"edge node {node} offline since {onset} ({n.why or 'offline'})"
        else:
            what = f"edge node {node} was offline from {onset}"
        summary = (f"{st.priority.upper()} {label}: {what}; central does not see this site,"
                   f" which still pages its own alarms; {st.state.value}")
        details = {"edge node": node}
        if n.heard_ms:
            details["last message"] = local_time(n.heard_ms, tz)
        return AlarmContext(
            site=n.site.id, device=n.site.node_id, summary=summary, details=details,
            site_name=name, timezone=tz, instrument=f"edge node {node} (facility uplink)",
            source=self.metas[aid].source, onset_ms=st.onset_ms, state=st.state.value,
            active=st.active)

    # -- the end -----------------------------------------------------------------------
    def close(self) -> None:
        """Answer the actions asked and close the socket, write what is pending, let the
        dispatcher finish its round, close the database."""
        if self.store is None:
            return
        if self.socket is not None:
            self.socket.close(self._serve_actions)
            self.socket = None
        try:
            self._write(self.clock())
        except Exception as exc:  # noqa: BLE001 - shutdown must finish; the log says why
            log.error("node watch: final write failed: %s", exc)
        if self.delivery is not None:
            self.delivery.close()
            self.delivery = None
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        self.store.close()
        self.store = None
