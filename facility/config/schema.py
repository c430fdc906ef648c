"""The shape of ``config.toml`` as frozen dataclasses, one per section.

Every field has a comment saying what it is for; the loader in ``facility.config.loader``
builds these from TOML generically (unknown keys, missing keys and wrong types are
found by reading the dataclass fields), then runs the cross-checks.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LimitSpec:
    """One limit of a point (docs/ARCHITECTURE.md "Limit rules"); explicit values replace only this limit."""

    limit: float
    deadband: float = 0.0  # >= 0, in the point's unit
    on_delay_s: float = 0.0  # >= 0
    off_delay_s: float = 0.0  # >= 0
    m_of_n: tuple[int, ...] | None = None  # [M, N], 1 <= M <= N; not with on_delay_s > 0
    max_gap_s: float | None = None  # default: the point's stale_after_s
    justification: str | None = None  # required for a delay on GMP pressure or gas rules


@dataclass(frozen=True)
class FacilityCfg:
    """The installation: its id prefixes every paging dedup key."""

    id: str
    name: str = ""


@dataclass(frozen=True)
class StorageCfg:
    """Where the database lives and how long raw partitions are kept."""

    path: str = "var/facility.db"  # relative to the config file's folder
    retention_days: int = 400  # raw partitions older than this may be purged (GMP: archived first)
    audit_key_env: str = "FACILITY_AUDIT_KEY_FILE"  # env var naming the HMAC key file
    signing_key_env: str = "FACILITY_SIGNING_KEY_FILE"  # env var naming the Ed25519 key file
    free_disk_min_mb: int = 1024  # below this a system alarm is raised
    group: str | None = None  # owns the db files (0640) and socket (0660); None: the process's


@dataclass(frozen=True)
class Site:
    """A site (campus) with its IANA time zone; reports and the TUI show local time."""

    id: str
    name: str = ""
    timezone: str = "UTC"


@dataclass(frozen=True)
class Zone:
    """A room or area: its cleanliness standard, mode and pressure reference."""

    id: str
    site: str
    name: str = ""
    kind: str = "cleanroom"  # cleanroom | gas_room | store | service | corridor
    iso_class: float | None = None  # ISO 14644-1 class 1-9, decimals allowed
    gmp_grade: str | None = None  # EU GMP Annex 1 grade A-D
    occupancy: str = "in_operation"  # the initial mode, one of facility.domain.vocab.ZONE_MODES
    area_m2: float | None = None  # for ISO 14644-1 classification (number of locations)
    reference: str | None = None  # the zone min_dp_pa is measured against ("ambient" allowed)
    min_dp_pa: float | None = None  # signed: >0 room must be higher, <0 room kept below
    dp_deadband_pa: float = 1.0
    max_skew_s: float | None = None  # cascade from two transmitters: default 2 x the slower scan_s
    door_grace_s: float = 30.0  # on-delay of the pressure alarm while a door is open
    door_open_max_s: float = 120.0  # a door open longer than this is its own alarm
    recovery_s: float | None = None  # clean-up time after in_operation -> at_rest
    justification: str | None = None  # why a pressure alarm delay is acceptable (Annex 1 4.16)
    schedule: tuple[str, ...] = ()  # e.g. ["Mon-Fri 08:00 in_operation", "Mon-Fri 18:00 at_rest"]


@dataclass(frozen=True)
class Point:
    """A point of a device: an inline register map entry, or limits for a profile point."""

    name: str
    table: str | None = None  # holding | input | coil | discrete (None: from the profile)
    address: int | None = None  # zero-based protocol address
    type: str = "uint16"  # bool int16 uint16 int32 uint32 int64 uint64 float32 float64 string
    order: str = "ABCD"  # ABCD | CDAB | BADC | DCBA
    count: int | None = None  # registers, for strings (and a check against the type)
    bit: int | None = None  # a single bit of a 16-bit register (0-15)
    scale: float = 1.0
    offset: float = 0.0
    decimals: int | None = None  # derived from scale unless given
    unit: str = ""
    quantity: str = ""  # particle_conc | pressure_diff | temperature | humidity | gas_conc | ...
    measures: str | None = None  # pressure: "ZONE-A - ZONE-B" or "ZONE - ambient"
    between: str | None = None  # door contact: "ZONE-A - ZONE-B"
    nan: tuple[int, ...] = ()  # raw sentinels meaning "no reading" -> quality bad
    stale_after_s: float | None = None  # default 3 x scan_s
    limits: dict[str, LimitSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class Device:
    """A Modbus/TCP instrument (or a unit behind a gateway)."""

    id: str
    site: str
    host: str
    port: int
    zone: str | None = None
    unit: int = 1  # Modbus unit / device id 0-247
    scan_s: float = 1.0
    timeout_s: float = 0.5  # summed over units sharing a connection, must stay below scan_s
    retries: int = 1
    profile: str | None = None  # built-in register map under sensors/profiles/
    description: str = ""
    location: str | None = None  # particle counters: sampling location
    sample_s: float | None = None  # particle counters: sample time set on the instrument (s);
    # with a 1 CFM flow it gives the record volume (low-count M-of-N default) and stale time
    clock: str = "utc"  # record-based instruments: their clock is utc | local
    gas: str | None = None  # gas detectors: gas name in the gas table
    monitor: str | None = None  # gas detectors: room | cabinet
    cabinet: str | None = None  # gas detectors: the gas cabinet it watches
    store: str | None = None  # dangerous-goods store monitors: the store id
    setpoints: dict[str, float] = field(default_factory=dict)
    """Gas detectors: ``low`` / ``high`` alarm set points replacing the computed ones, in ppm
    (in % of the LEL for a gas with no toxic limit, e.g. hydrogen). Each must be a positive
    finite number, low below high (ACGIH TLV "Detector set-point
    conventions")."""
    setpoints_justification: str | None = None
    """Why this detector's ``setpoints`` are above what ACGIH TLV supports
    (room: TLV-TWA / STEL or 2 x TLV; cabinet: up to the lower of 1/2 IDLH and 3 x PEL);
    check-config refuses such values without it."""
    comm_delay_s: float | None = None
    """Seconds of continuous failure before the device's comm alarm raises. Default the larger
    of 3 x ``scan_s`` and 10 s (ISA-18.2 on-delay against nuisance alarms, the standards
    §6); a toxic-gas detector's is 5 s and at most 10 s without ``comm_justification``, since
    a blind toxic-gas detector is a critical condition (docs/ARCHITECTURE.md "Critical alarms")."""
    comm_clear_s: float | None = None
    """Seconds of continuous good reads before the comm alarm clears; default ``comm_delay_s``:
    the device must prove it is back for as long as it took to decide it was gone, so a
    flapping link raises once instead of chattering (ISA-18.2 off-delay)."""
    comm_justification: str | None = None
    """Why a toxic-gas detector's ``comm_delay_s`` may exceed 10 s (check-config asks)."""
    calibrated_on: datetime.date | None = None
    """Date of the last calibration, ``"YYYY-MM-DD"`` (ISO 21501-4 for particle counters)."""
    calibration_due: datetime.date | None = None
    """Date the next calibration is due, ``"YYYY-MM-DD"``; the day after, the service raises a
    ``calibration`` alarm (low unless ``[alarms.priorities] calibration``), and in the 30 days
    before, check-config, the TUI and the report say "due soon" (docs/ARCHITECTURE.md
    "Calibration tracking")."""
    points: tuple[Point, ...] = ()


@dataclass(frozen=True)
class Operator:
    """An OS login allowed to act, with roles from ``facility.domain.vocab.ROLES``."""

    login: str
    name: str
    """The person's name as records show it beside the login ("Chan Tai Man (tmchan)")."""
    roles: tuple[str, ...] = ("technician",)
    shared: bool = False
    """True for a login several people use (e.g. ``root``). check-config refuses a well-known
    shared or role-named login unless this is set with a ``justification``, because its
    records cannot say which person acted (Part 11 §11.10(e), ALCOA+ "attributable")."""
    justification: str = ""
    """Why a shared login must be an operator; required with ``shared = true``."""


@dataclass(frozen=True)
class AlarmsCfg:
    """Site-wide alarm settings. Alert levels are a site choice (Annex 1 9.9)."""

    alert_fraction: float | None = None  # alert = fraction x action, where a standard gives one
    defaults: dict[str, dict[str, LimitSpec]] = field(default_factory=dict)  # per quantity
    max_shelve_s: float = 8 * 3600.0
    max_shelve_critical_s: float = 3600.0
    max_suppress_s: float = 8 * 3600.0
    """Longest operator suppression, in seconds; a suppression always has an end. Default one
    shift, like ``max_shelve_s``: ISA-18.2 (ISA-18.2 / EEMUA 191) wants every hidden
    alarm under a time limit, and the number is a site choice. Critical alarms cannot be
    suppressed at all (docs/ARCHITECTURE.md "Critical alarms")."""
    max_oos_critical_s: float = 3600.0
    """Longest out-of-service of a device that has critical alarms, in seconds; it then returns
    to service by itself. Default 1 h, the same bound as ``max_shelve_critical_s``: both hide a
    critical alarm, so both get the limit docs/ARCHITECTURE.md "Critical alarms" sets."""
    recovery_s: float = 1200.0  # Annex 1 clean-up time, 15-20 min
    skipped_runs_max: int = 3
    """``system.<devices>:skipped_runs`` raises when one poll connection skipped more than this
    many scans in the last 60 s: one late run is scheduler jitter, a connection that keeps
    missing its turn is a device or gateway too slow for its ``scan_s`` (ISA-18.2 asks for
    alarms that need a response, ISA-18.2 / EEMUA 191)."""
    clock_tolerance_s: float = 120.0
    live_window_s: float = 300.0  # samples older than this when processed are backfill
    latching: tuple[str, ...] = ()  # vocab.ALARM_KINDS that latch until reset (e.g. "gas_high")
    priorities: dict[str, str] = field(default_factory=dict)  # alarm kind -> vocab.PRIORITIES


@dataclass(frozen=True)
class Channel:
    """A paging channel. Secrets are named by environment variable, never stored."""

    id: str
    type: str  # pagerduty | webhook | smtp | command
    url: str | None = None
    routing_key_env: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str | None = None
    to: tuple[str, ...] = ()
    username_env: str | None = None
    password_env: str | None = None
    starttls: bool = False
    command: tuple[str, ...] = ()
    timeout_s: float = 10.0
    env: tuple[str, ...] = ("PATH",)
    """Environment variables a command channel's command receives (default only ``PATH``;
    e.g. ``["PATH", "SMS_TOKEN"]``); it gets no others, so the service's secrets stay with
    the service, and the values of those not plainly public are scrubbed from its stderr."""


@dataclass(frozen=True)
class EscalationLevel:
    """Notify these channels once an occurrence has been unacknowledged for after_s."""

    after_s: float
    channels: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    """Which alarms page whom: matching is by priority, site, zone and kind (empty = any)."""

    levels: tuple[EscalationLevel, ...]
    priorities: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    repeat_s: float = 4 * 3600.0


@dataclass(frozen=True)
class PagingCfg:
    """Paging, flood control and the dead-man's switch for the monitoring itself."""

    channels: tuple[Channel, ...] = ()
    routes: tuple[Route, ...] = ()
    flood_max: int = 10  # ISA-18.2 flood: more than 10 alarms in 10 minutes
    """A site is in flood once more than this many new alarms below critical arrived within
    ``flood_window_s``; the flood ends when fewer than ``flood_max / 2`` remain in the window.
    Default ISA-18.2's 10 in 10 minutes (ISA-18.2 / EEMUA 191); an integer >= 1."""
    flood_window_s: float = 600.0
    """The window of the flood rate, in seconds (ISA-18.2: 10 minutes)."""
    min_repage_s: float = 300.0
    """A chattering alarm (ISA-18.2: 3 or more raises in 60 s) pages at most once per this
    many seconds, critical alarms included; also the least time between two summaries of one
    flood. Default 300 s, Alertmanager's group_interval (PagerDuty Events v2 / Alertmanager)."""
    heartbeat_s: float = 60.0
    heartbeat_url: str | None = None
    heartbeat_command: tuple[str, ...] = ()
    base_backoff_s: float = 2.0
    max_backoff_s: float = 300.0


@dataclass(frozen=True)
class Substance:
    """A dangerous good: UN number, primary class, subsidiary classes, "special" flag."""

    id: str
    name: str
    un: str
    dg_class: str  # FSD class since 31 Mar 2022: 2.1 2.2 2.3 3 3A 4.1 4.2 4.3 5.1 5.2 6.1 8 9
    subsidiary: tuple[str, ...] = ()
    special: bool = False  # a "special" 5.1 / 6.1 / 8 substance (exempt 250 / 1000)
    unit: str = "L"  # L | kg | L_wc (litres water capacity of cylinders)
    legacy_category: str | None = None  # repealed Cap. 295B category, label only


@dataclass(frozen=True)
class Store:
    """A dangerous-goods store with its FSD licence (or none) and compartments."""

    id: str
    site: str
    zone: str | None = None
    premises: str = "industrial"  # general | industrial
    licence: str | None = None  # licence number; None = must stay within exempt quantities
    licensed_max: dict[str, float] = field(default_factory=dict)  # class -> quantity
    compartments: tuple[str, ...] = ("main",)
    alert_fraction: float = 0.8  # stock alert at this fraction of the licensed maximum


@dataclass(frozen=True)
class Cabinet:
    """A gas cabinet: gas, cylinder size, its detectors and exhaust sensor."""

    id: str
    site: str
    zone: str
    gas: str
    cylinder_l_wc: float = 47.0
    detectors: tuple[str, ...] = ()  # device ids
    exhaust: str | None = None  # point id of the exhaust flow / pressure
    exhaust_min: float | None = None  # below this the exhaust has failed (point's unit)


@dataclass(frozen=True)
class HazmatCfg:
    """Dangerous goods: substances, stores and gas cabinets."""

    substances: tuple[Substance, ...] = ()
    stores: tuple[Store, ...] = ()
    cabinets: tuple[Cabinet, ...] = ()


@dataclass(frozen=True)
class TuiCfg:
    """The technician's terminal (``[tui]``): how it draws attention."""

    bell: bool = True
    """Ring the terminal bell once when a new critical alarm occurrence appears, so a
    technician looking away from the screen hears it (EEMUA 191: critical alarms need an
    audible annunciation); false for a terminal in a quiet room with its own annunciator."""


@dataclass(frozen=True)
class BrokerCfg:
    """An MQTT broker connection (docs/ARCHITECTURE.md "Campus (Sparkplug B)")."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""  # per-site credentials; the broker's ACL limits a site to its own node
    password_env: str = ""  # env var holding the password (never the password itself)
    tls: bool = False
    ca_file: str = ""  # CA bundle for TLS; empty: the system's
    keepalive_s: float = 30.0  # MQTT keep-alive; the broker sends NDEATH after 1.5 x this


@dataclass(frozen=True)
class UplinkCfg:
    """``facility uplink``: this site as a Sparkplug B edge node (docs/ARCHITECTURE.md
    "Campus (Sparkplug B)")."""

    broker: BrokerCfg = field(default_factory=BrokerCfg)
    group_id: str = ""  # Sparkplug group; empty: the installation id ([facility] id)
    node_id: str = ""  # Sparkplug edge node id; empty: the first site's id
    primary_host_id: str = ""  # wait for this host's STATE online before the birth sequence
    history_rate: float = 5000.0  # samples/s at most when replaying a backlog (live goes first):
    # the ceiling of the rate central allows with "Node Control/History rate"
    history_floor: float = 100.0  # samples/s the replay never goes below, so a backlog drains
    state_path: str = ""  # cursor and bdSeq; empty: uplink.state.json beside the database


@dataclass(frozen=True)
class CentralSite:
    """One edge node central mirrors, and where its mirror database lives."""

    id: str
    node_id: str
    group_id: str = ""  # empty: central's group_id
    path: str = ""  # mirror database; empty: mirror/<id>.db beside central's database
    trust: str = ""  # fingerprint of the site's signing key (`facility keys show` there)


@dataclass(frozen=True)
class CentralCfg:
    """``facility central``: the primary host application of the campus."""

    broker: BrokerCfg = field(default_factory=BrokerCfg)
    host_id: str = "central"  # STATE topic spBv1.0/STATE/<host_id>
    group_id: str = ""  # default group of the sites; empty: the installation id
    sites: tuple[CentralSite, ...] = ()
    history_control: bool = True  # pace each edge's replay ("Node Control/History rate");
    # false: every edge replays at its own history_rate
    live_lag_ms: float = 250.0  # the replay slows when live data's p95 lag (edge publish to
    # mirror commit, above the quickest seen) or central's inbox wait exceeds this
    history_floor: float = 100.0  # samples/s central never asks an edge to go below
    offline_grace_s: float = 60.0
    """How long a site's edge node must stay offline (NDEATH, or ``silence_s`` without a
    message) before its alarm ``campus:<site>:offline`` is raised and paged, so an uplink
    restart or a rebirth pages nothing (docs/ARCHITECTURE.md "Campus (Sparkplug B)")."""
    silence_s: float = 90.0
    """A node that sends nothing for this long is offline even without NDEATH (a hung edge
    may keep its MQTT session); default 3 x the default keep-alive. 0: only NDEATH counts.
    The uplink sends once per committed cycle, so a site whose service is stopped falls
    silent too."""
    online_hold_s: float = 120.0
    """How long a node must stay back before its offline alarm returns to normal: a node that
    keeps dropping out pages once, not once per flap (ISA-18.2 off-delay)."""
    offline_priority: str = "high"
    """The offline alarm's priority (``[paging]`` routes decide who is paged). A dead edge
    node blinds the central console; the site still pages its own alarms itself."""


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    facility: FacilityCfg
    storage: StorageCfg = field(default_factory=StorageCfg)
    sites: tuple[Site, ...] = ()
    zones: tuple[Zone, ...] = ()
    devices: tuple[Device, ...] = ()
    operators: tuple[Operator, ...] = ()
    alarms: AlarmsCfg = field(default_factory=AlarmsCfg)
    paging: PagingCfg = field(default_factory=PagingCfg)
    hazmat: HazmatCfg = field(default_factory=HazmatCfg)
    tui: TuiCfg = field(default_factory=TuiCfg)
    uplink: UplinkCfg = field(default_factory=UplinkCfg)
    central: CentralCfg = field(default_factory=CentralCfg)
    # Filled by the loader, not from TOML:
    source: str = field(default="config.toml", metadata={"internal": True})
    text: str = field(default="", metadata={"internal": True})
    sha256: str = field(default="", metadata={"internal": True})
    base_dir: str = field(default=".", metadata={"internal": True})

    def site(self, site_id: str) -> Site:
        """The site with this id (KeyError if absent)."""
        return next(s for s in self.sites if s.id == site_id)

    def zone(self, zone_id: str) -> Zone:
        """The zone with this id (StopIteration if absent)."""
        return next(z for z in self.zones if z.id == zone_id)

    def device(self, device_id: str) -> Device:
        """The device with this id (StopIteration if absent)."""
        return next(d for d in self.devices if d.id == device_id)

    @property
    def db_path(self) -> str:
        """Absolute database path (storage.path is relative to the config's folder)."""
        import os

        return os.path.normpath(os.path.join(self.base_dir, self.storage.path))
