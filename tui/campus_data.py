"""Read-only access to central's mirrors for the campus overview (``facility tui --config
central.toml``; docs/ARCHITECTURE.md "Campus (Sparkplug B)" and "The technician's terminal").

``facility central`` keeps one mirror database per site, written through the same ``Store`` as
a site's own, so each mirror is read like a site database: one :class:`~tui.data.DbReader`
per mirror, one read transaction per refresh. Central's own record of the edge node (table
``campus_node``: ``online``, ``since_ms``, ``bdseq``, ``edge_head``, ``trust`` and whatever
keys central adds later, through ``Store.campus_node``) is read in the same transaction. A
mirror that does not exist yet, or cannot be read, becomes that site's state; the other
sites are still shown. Central's own database (``[storage] path`` of central's
configuration) holds central's own alarms, ``campus:<site>:offline`` (an edge node died);
they are read beside the mirrors (:class:`CentralReader`), read-only too.

:func:`mirror_config` describes a mirrored site as a configuration (its sites, zones and
devices, from the mirror's points and alarms), so the site screens of the TUI (overview,
alarms, zone, devices) show a mirror as they show a site database.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass, field

from facility.config.paths import mirror_path
from facility.config.schema import Config, Device, Site, Zone
from facility.store import Store
from tui.data import DbReader, LockedReader, ReadRequest, Snapshot


@dataclass(eq=False)
class SiteState:
    """One mirrored site as read at one refresh."""

    id: str  # the site's id in [[central.sites]]
    node_id: str  # its Sparkplug edge node
    path: str  # the mirror database
    exists: bool = False  # False: central has not written this mirror yet
    snapshot: Snapshot | None = None  # the mirror read like a site database
    node: dict = field(default_factory=dict)  # campus_node: key -> value (JSON decoded)
    node_updated_ms: dict = field(default_factory=dict)  # campus_node: key -> updated_ms

    @property
    def error(self) -> str | None:
        """Why the mirror could not be read (None when it was, or does not exist yet)."""
        return None if self.snapshot is None else self.snapshot.error


@dataclass(eq=False)
class CampusSnapshot:
    """Every configured site's state, in [[central.sites]] order."""

    now_ms: int
    sites: list[SiteState] = field(default_factory=list)
    central_alarms: list[dict] = field(default_factory=list)  # central's own alarm rows
    central_error: str | None = None  # central's own database could not be read

    def site(self, site_id: str | None) -> SiteState | None:
        return next((s for s in self.sites if s.id == site_id), None)


@dataclass(eq=False)
class SiteSnapshot(Snapshot):
    """What the campus app hands its screens: the open site's mirror read like a site
    database (empty while no site is open), with the whole campus beside it."""

    site: str | None = None  # the site the snapshot's own fields belong to
    campus: CampusSnapshot | None = None


def read_node(store: Store) -> tuple[dict, dict]:
    """``campus_node`` as (key -> value, key -> updated_ms); empty when central has not
    created the table. A value that is not JSON is kept as its text."""
    node = store.campus_node()
    return ({k: v["value"] for k, v in node.items()},
            {k: v["updated_ms"] for k, v in node.items()})


class CentralReader(LockedReader):
    """Central's own database, read-only: its alarm rows at each refresh (none while central
    has not created it)."""

    def read(self) -> tuple[list[dict], str | None]:
        """(central's alarm rows, why they could not be read or None)."""
        with self._lock:
            if not os.path.exists(self.db_path):
                self._close()
                return [], None
            try:
                if self.store is None:
                    self.store = Store(self.db_path, readonly=True)
                return self.store.alarms(), None
            except Exception as exc:  # noqa: BLE001 - the mirrors are still shown; it says why
                self._close()
                return [], f"{type(exc).__name__}: {exc}"


class MirrorReader(DbReader):
    """A :class:`DbReader` over one mirror that also reads ``campus_node`` in the same read
    transaction (so the node state and the data shown belong together)."""

    def __init__(self, db_path: str):
        super().__init__(db_path)
        self.node: dict = {}
        self.node_updated_ms: dict = {}

    def read(self, now_ms: int, req: ReadRequest | None = None) -> Snapshot:
        self.node, self.node_updated_ms = {}, {}
        return super().read(now_ms, req)

    def _read(self, store: Store, now_ms: int, req: ReadRequest) -> Snapshot:
        snap = super()._read(store, now_ms, req)
        self.node, self.node_updated_ms = read_node(store)
        return snap


class CampusReader:
    """Every mirror of a central configuration, read in one worker thread per refresh.

    Duck-types :class:`DbReader` for the app (``read``, ``close``): ``read`` returns a
    :class:`SiteSnapshot` of ``open_site`` (set from the UI thread) with the whole campus.
    Only the open site's read carries the screens' request (trends, histories); the others
    read the basics.
    """

    def __init__(self, cfg: Config):
        self.sites = [(s, mirror_path(cfg, s)) for s in cfg.central.sites]
        self.readers = {s.id: MirrorReader(path) for s, path in self.sites}
        self.central = CentralReader(cfg.db_path)
        self.open_site: str | None = None

    def close(self) -> None:
        for r in self.readers.values():
            r.close()
        self.central.close()

    def read(self, now_ms: int, req: ReadRequest | None = None) -> SiteSnapshot:
        open_site = self.open_site
        campus = CampusSnapshot(now_ms)
        campus.central_alarms, campus.central_error = self.central.read()
        for s, path in self.sites:
            state = SiteState(s.id, s.node_id, path)
            campus.sites.append(state)
            reader = self.readers[s.id]
            if not os.path.exists(path):
                reader.close()  # central may remove and re-create a mirror
                continue
            state.exists = True
            try:
                state.snapshot = reader.read(now_ms, req if s.id == open_site else None)
            except Exception as exc:  # noqa: BLE001 - one unreadable mirror must not blank the others
                state.snapshot = Snapshot(now_ms=now_ms, error=f"{type(exc).__name__}: {exc}")
            state.node, state.node_updated_ms = reader.node, reader.node_updated_ms
        opened = campus.site(open_site)
        base = opened.snapshot if opened is not None and opened.snapshot is not None else None
        if base is None:
            error = None
            if opened is not None and not opened.exists:
                error = f"no mirror of site {opened.id} yet: run `facility central`"
            return SiteSnapshot(now_ms=now_ms, error=error, site=open_site, campus=campus)
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(Snapshot)}
        return SiteSnapshot(**fields, site=open_site, campus=campus)


def mirror_tz(cfg: Config, state: SiteState) -> str:
    """The IANA zone a mirrored site's times are shown in: central's [[sites]] entry with the
    site's id, else the one the mirror's points name, else central's first site (UTC without
    sites)."""
    by_id = {s.id: s.timezone for s in cfg.sites}
    if state.id in by_id:
        return by_id[state.id]
    snap = state.snapshot
    if snap is not None:
        for row in snap.points.values():
            if row.get("site") in by_id:
                return by_id[row["site"]]
    return cfg.sites[0].timezone if cfg.sites else "UTC"


def mirror_config(cfg: Config, state: SiteState) -> Config:
    """Central's configuration with the sites, zones and devices of one mirror, as the
    mirror's points and alarms name them, for the site screens.

    A mirror carries no zone classes, limits or device settings: zones show ``-`` as class
    and their configured mode defaults to in operation; limits come from the active alarm
    rows (what the site's engine used, ``tui.limits``)."""
    snap = state.snapshot or Snapshot(now_ms=0)
    tz = mirror_tz(cfg, state)
    zone_site: dict[str, str] = {}
    dev_site: dict[str, str] = {}
    dev_zones: dict[str, Counter] = {}
    for row in snap.points.values():
        site = row.get("site") or state.id
        if row.get("zone"):
            zone_site.setdefault(row["zone"], site)
        if row.get("device"):
            dev_site.setdefault(row["device"], site)
            dev_zones.setdefault(row["device"], Counter())[row.get("zone")] += 1
    for a in snap.alarms:
        if a.get("zone"):
            zone_site.setdefault(a["zone"], a.get("site") or state.id)
    site_ids = sorted(set(zone_site.values()) | set(dev_site.values())
                      | {a["site"] for a in snap.alarms if a.get("site")}) or [state.id]
    central_tz = {s.id: s.timezone for s in cfg.sites}
    sites = tuple(Site(id=s, name=f"{state.id} / {s}" if s != state.id else s,
                       timezone=central_tz.get(s, tz)) for s in site_ids)
    zones = tuple(Zone(id=z, site=zone_site[z]) for z in sorted(zone_site))
    devices = []
    for d in sorted(dev_site):
        zone = next((z for z, _n in dev_zones[d].most_common() if z), None)
        devices.append(Device(id=d, site=dev_site[d], host="", port=0, zone=zone,
                              description=f"mirrored from {state.id}"))
    return dataclasses.replace(cfg, sites=sites, zones=zones, devices=tuple(devices))
