"""Cross-checks of a built configuration: references, uniqueness, register maps, limits.

Each check yields ``(key path, message)``; the loader turns them into one line each.
Legal Modbus combinations are a table (``REGISTERS``), not an if-chain.
"""

from __future__ import annotations

import difflib
import grp
import ipaddress
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from facility.config import schema as cs
from facility.config.schema import Config, Device, LimitSpec, Point
from facility.domain.vocab import (
    ALARM_KINDS,
    LIMIT_NAMES,
    PRIORITIES,
    ROLES,
    SERVICE_ACTORS,
    SHARED_LOGINS,
    ZONE_MODES,
)

# type -> (registers, tables it may live in). Coils and discrete inputs hold single bits.
REGISTERS: dict[str, tuple[int, tuple[str, ...]]] = {
    "bool": (1, ("coil", "discrete", "holding", "input")),
    "int16": (1, ("holding", "input")),
    "uint16": (1, ("holding", "input")),
    "int32": (2, ("holding", "input")),
    "uint32": (2, ("holding", "input")),
    "int64": (4, ("holding", "input")),
    "uint64": (4, ("holding", "input")),
    "float32": (2, ("holding", "input")),
    "float64": (4, ("holding", "input")),
    "string": (0, ("holding", "input")),  # count registers, 2 ASCII chars each
}
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
TABLES = ("holding", "input", "coil", "discrete")
ISA_PRIORITIES = PRIORITIES[::-1]  # messages list them least urgent first
ZONE_KINDS = ("cleanroom", "gas_room", "store", "service", "corridor", "gowning", "utility")
MODES = ZONE_MODES
CHANNEL_TYPES = ("pagerduty", "webhook", "smtp", "command")
DG_CLASSES = ("1", "2.1", "2.2", "2.3", "3", "3A", "4.1", "4.2", "4.3", "5.1", "5.2", "6.1",
              "8", "9")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
CONFIG_ALARM_KINDS = (*ALARM_KINDS, "door_open")
"""Alarm kinds a config may name (``latching``, ``[alarms.priorities]``, route ``kinds``):
``vocab.ALARM_KINDS`` and ``door_open`` (a door held open past ``door_open_max_s``)."""
HIDE_LIMITS = {"max_shelve_s": 28800, "max_shelve_critical_s": 3600, "max_suppress_s": 28800,
               "max_oos_critical_s": 3600}
"""``[alarms]`` maxima on hiding an alarm (docs/ARCHITECTURE.md "Critical alarms"), each with
the shipped value the error message suggests."""


# ---------------------------------------------------------------- one rule per key
# Every key of every section has one entry below: a range for a number (NaN and infinity
# are never allowed), a form or a list of words for a string. The loader applies them while
# building, so each problem is one line with the file, line and key.
DAY = 86400.0
WEEK = 7 * DAY


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def did_you_mean(value: str, known) -> str:
    """``"did you mean 'x'? "`` for the closest known word, else ``""``."""
    known = [str(k) for k in known]
    same = [k for k in known if k.lower() == str(value).lower()]
    hit = same or difflib.get_close_matches(str(value), known, n=1, cutoff=0.6)
    return f"did you mean {hit[0]!r}? " if hit else ""


@dataclass(frozen=True)
class Num:
    """A number key's range: ``lo`` / ``hi`` inclusive unless ``lo_open`` / ``hi_open``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    unit: str = ""  # shown after the range, e.g. " s"
    why: str = ""  # replaces "allowed <range>" in the message
    msg: str = ""  # a whole message: {r} is repr(value), {g} the value as written
    msg_hi: str = ""  # the message for a finite value above ``hi`` (default: ``msg``)

    def allowed(self) -> str:
        if self.lo is not None and self.hi is not None and not (self.lo_open or self.hi_open):
            return f"{_num(self.lo)}-{_num(self.hi)}{self.unit}"
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {_num(self.lo)}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {_num(self.hi)}")
        return " and ".join(parts) + self.unit if parts else "any finite number"

    def problem(self, v) -> str | None:
        ok = math.isfinite(v) and not (
            self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)) and not (
            self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))
        if ok:
            return None
        msg = self.msg_hi if self.msg_hi and math.isfinite(v) and v > 0 else self.msg
        if msg:
            return msg.format(r=repr(v), g=_num(v) if math.isfinite(v) else repr(v))
        shown = str(v) if isinstance(v, int) else repr(v)
        what = self.why or f"allowed {self.allowed()}"
        if not math.isfinite(v):
            return f"={shown} is not a finite number; {what}"
        return f"={shown} is out of range; {what}"


HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                  r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
LOGIN = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._@-]*\$?$")
EMAIL = re.compile(r"^[^@\s<>,;]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
# The forms checked by one regular expression: (pattern, what the value is not).
PATTERN_FORMS = {
    "id": (ID, "is not a valid id; use letters, digits, '-' and '_'{eg}"),
    "login": (LOGIN, "is not an OS login name{eg}"),
    "env": (ENV_NAME, "must name an environment variable{eg}, not hold a value"),
    "email": (EMAIL, "is not an e-mail address{eg}"),
}
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def host_problem(v: str) -> str | None:
    """A host name (RFC 1123) or an IP address, without scheme or port."""
    try:
        ipaddress.ip_address(v)
        return None
    except ValueError:
        pass
    if HOST.match(v) and not v.replace(".", "").isdigit():
        return None
    if "://" in v or ":" in v:
        return (f"={v!r} is not a host name or IP address; give only the host (e.g. 127.0.0.1"
                " or plc-7.example.org), the port goes in its own key")
    return f"={v!r} is not a host name or IP address, e.g. 127.0.0.1 or plc-7.example.org"


def url_problem(v: str) -> str | None:
    """An absolute http(s) URL with a valid host."""
    try:
        u = urlsplit(v)
        port = u.port
    except ValueError as exc:
        return f"={v!r} is not a valid URL ({exc}); write e.g. https://hc.example.org/ping/ID"
    if u.scheme not in ("http", "https") or not u.hostname or host_problem(u.hostname):
        return (f"={v!r} is not an http(s) URL with a host; write e.g."
                " https://hc.example.org/ping/ID")
    if port == 0:
        return f"={v!r} has port 0; ports are 1-65535"
    return None


@dataclass(frozen=True)
class Text:
    """A string key: its ``form``, or the ``words`` it may be (with "did you mean")."""

    form: str = "text"  # text | nonblank | id | login | host | url | env | path | email
    words: tuple[str, ...] = ()
    example: str = ""
    msg: str = ""  # a whole message for a word not in ``words``: {r} repr(value), {dym} a hint
    empty: str = ""  # the message for a blank value (default: "='' is empty; give a value")

    def problem(self, v: str) -> str | None:
        if CONTROL.search(v):
            return f"={v!r} contains a control character; remove it"
        if self.words:
            if v in self.words:
                return None
            if self.msg:
                return self.msg.format(r=repr(v), dym=did_you_mean(v, self.words))
            return f"={v!r} is not allowed; {did_you_mean(v, self.words)}use one of {', '.join(self.words)}"
        eg = f", e.g. {self.example}" if self.example else ""
        if self.form == "text":
            return None
        if self.form == "host":
            return host_problem(v)
        if not v.strip():
            return self.empty or f"={v!r} is empty; give a value{eg}"
        if self.form == "nonblank":
            return None
        if self.form == "url":
            return url_problem(v)
        if self.form == "path":
            return None if "\x00" not in v else f"={v!r} is not a file path"
        if self.form not in PATTERN_FORMS:
            raise ValueError(f"unknown form {self.form!r}")  # a bug in the table, not user input
        pattern, problem = PATTERN_FORMS[self.form]
        return None if pattern.match(v) else f"={v!r} {problem.format(eg=eg)}"


SECONDS = " s"
PORT = Num(1, 65535, why="ports are 1-65535")
NAME = Text("nonblank")
JUSTIFY = Text("nonblank", example='"door transit, SOP-114"')
ID_ = Text("id")
HIDE = ("={r} must be a finite number of seconds > 0 (a hidden alarm always has an end),"
        " e.g. {eg}")


def _hide(eg: int, hi: float) -> Num:
    return Num(0, hi, lo_open=True, unit=SECONDS, msg=HIDE.replace("{eg}", str(eg)),
               msg_hi="={r} is out of range; at most " + _num(hi) + " s (a hidden alarm always"
               " has an end), e.g. " + str(eg))


FIELD_RULES: dict[type, dict[str, Num | Text | None]] = {
    cs.LimitSpec: dict(
        limit=Num(-1e12, 1e12), deadband=Num(0, msg="={r} is negative; must be >= 0"),
        on_delay_s=Num(0, DAY, unit=SECONDS), off_delay_s=Num(0, DAY, unit=SECONDS),
        m_of_n=Num(1, 10_000, why="M and N are whole numbers of samples, 1-10000"),
        max_gap_s=Num(0, WEEK, lo_open=True, unit=SECONDS), justification=JUSTIFY),
    cs.FacilityCfg: dict(id=Text("id", example='"hk-reind"'), name=Text()),
    cs.StorageCfg: dict(
        path=Text("path", example='"var/facility.db"'),
        retention_days=Num(1, 36500, unit=" days"),
        audit_key_env=Text("env", example="FACILITY_AUDIT_KEY_FILE"),
        signing_key_env=Text("env", example="FACILITY_SIGNING_KEY_FILE"),
        free_disk_min_mb=Num(1, 1e9, unit=" MB"),
        group=Text("nonblank", example='"facility-readers"')),
    cs.Site: dict(id=ID_, name=Text(), timezone=Text("nonblank", example="Asia/Hong_Kong")),
    cs.Zone: dict(
        id=ID_, site=ID_, name=Text(), kind=Text(words=ZONE_KINDS),
        iso_class=Num(1, 9, msg="={g} is out of range; ISO 14644-1 classes are 1-9"),
        gmp_grade=Text(words=("A", "B", "C", "D"),
                       msg="={r} is not allowed; EU GMP grades are A, B, C, D"),
        occupancy=Text(words=MODES), area_m2=Num(0, 1e6, lo_open=True, unit=" m2"),
        reference=Text("nonblank"), min_dp_pa=Num(-1000, 1000, unit=" Pa"),
        dp_deadband_pa=Num(0, 100, unit=" Pa"), max_skew_s=Num(0, 3600, lo_open=True, unit=SECONDS),
        door_grace_s=Num(0, 3600, unit=SECONDS), door_open_max_s=Num(0, DAY, unit=SECONDS),
        recovery_s=Num(0, DAY, lo_open=True, unit=SECONDS), justification=JUSTIFY,
        schedule=Text("nonblank")),
    cs.Point: dict(
        name=Text("id", example='"dp"'), table=Text(words=TABLES), address=Num(0, 65535),
        type=Text(words=tuple(REGISTERS)), order=Text(words=ORDERS), count=Num(1, 125),
        bit=Num(0, 15), scale=Num(msg="={r} is not a finite number; e.g. 0.1"),
        offset=Num(-1e12, 1e12), decimals=Num(0, 12), unit=Text(), quantity=Text(),
        measures=Text("nonblank"), between=Text("nonblank"),
        nan=Num(-(2 ** 63), 2 ** 64 - 1, why="raw register values"),
        stale_after_s=Num(0, WEEK, lo_open=True, unit=SECONDS)),
    cs.Device: dict(
        id=ID_, site=ID_, host=Text("host"), port=PORT, zone=ID_,
        unit=Num(0, 247, why="Modbus units are 0-247"),
        scan_s=Num(0, 3600, lo_open=True, unit=SECONDS),
        timeout_s=Num(0, 60, lo_open=True, unit=SECONDS), retries=Num(0, 10),
        profile=Text("nonblank"), description=Text(), location=Text(),
        sample_s=Num(0, 3600, lo_open=True, unit=SECONDS), clock=Text(words=("utc", "local")),
        gas=Text("nonblank"), monitor=Text(words=("room", "cabinet")), cabinet=ID_, store=ID_,
        setpoints=Num(0, 1e6, lo_open=True,
                      msg="={r} must be a positive finite alarm level, e.g. 0.3"),
        setpoints_justification=Text("nonblank",
                                     empty="is empty; say why the set points are acceptable"),
        comm_delay_s=Num(0, DAY, lo_open=True, unit=SECONDS),
        comm_clear_s=Num(0, DAY, lo_open=True, unit=SECONDS),
        comm_justification=Text("nonblank",
                                empty="is empty; say why the longer comm delay is acceptable")),
    cs.BrokerCfg: dict(host=Text("host"), port=PORT, username=Text(),
                       password_env=Text("env", example="MQTT_PASSWORD"),
                       ca_file=Text("path", example='"/etc/ssl/campus-ca.pem"'),
                       keepalive_s=Num(5, 3600, unit=SECONDS)),
    cs.UplinkCfg: dict(group_id=ID_, node_id=ID_, primary_host_id=ID_,
                       history_rate=Num(1, 10_000_000, unit=" samples/s"),
                       history_floor=Num(0, 10_000_000, lo_open=True, unit=" samples/s"),
                       state_path=Text("path", example='"var/uplink.state.json"')),
    cs.CentralSite: dict(id=ID_, node_id=ID_, group_id=ID_,
                         path=Text("path", example='"var/mirror/mec.db"'), trust=Text()),
    cs.CentralCfg: dict(host_id=ID_, group_id=ID_,
                        live_lag_ms=Num(0, 3_600_000, lo_open=True, unit=" ms"),
                        history_floor=Num(0, 10_000_000, lo_open=True, unit=" samples/s"),
                        offline_grace_s=Num(0, DAY, unit=SECONDS),
                        silence_s=Num(0, DAY, unit=SECONDS),
                        online_hold_s=Num(0, DAY, unit=SECONDS),
                        offline_priority=Text(words=ISA_PRIORITIES)),
    cs.Operator: dict(login=Text("login", example='"ctm"'), name=Text(),
                      roles=Text(words=ROLES), justification=Text()),
    cs.AlarmsCfg: dict(
        alert_fraction=Num(0, 1, lo_open=True, hi_open=True),
        max_shelve_s=_hide(28800, WEEK), max_shelve_critical_s=_hide(3600, DAY),
        max_suppress_s=_hide(28800, WEEK), max_oos_critical_s=_hide(3600, DAY),
        recovery_s=Num(0, DAY, lo_open=True, unit=SECONDS),
        skipped_runs_max=Num(0, 59, msg="={r} must be a whole number of scans from 0 to 59"
                                        " (per 60 s); default 3"),
        clock_tolerance_s=Num(0, DAY, lo_open=True, unit=SECONDS),
        live_window_s=Num(0, WEEK, lo_open=True, unit=SECONDS),
        latching=Text(words=CONFIG_ALARM_KINDS, msg="={r} is not an alarm kind; {dym}use one of "
                      + ", ".join(CONFIG_ALARM_KINDS)),
        priorities=Text(words=ISA_PRIORITIES)),
    cs.Channel: dict(
        id=ID_, type=Text(words=CHANNEL_TYPES), url=Text("url"),
        routing_key_env=Text("env", example="PAGER_KEY"), smtp_host=Text("host"),
        smtp_port=PORT, smtp_from=Text("email", example="fms@example.org"),
        to=Text("nonblank"), username_env=Text("env", example="SMTP_USER"),
        password_env=Text("env", example="SMTP_PASSWORD"), command=Text("path"),
        env=Text("env", example="SMS_GATEWAY_URL"),
        timeout_s=Num(0, 300, lo_open=True, unit=SECONDS)),
    cs.EscalationLevel: dict(after_s=Num(0, WEEK, unit=SECONDS), channels=ID_),
    cs.Route: dict(priorities=Text(words=ISA_PRIORITIES), sites=ID_, zones=ID_,
                   kinds=Text(words=CONFIG_ALARM_KINDS),
                   repeat_s=Num(0, WEEK, lo_open=True, unit=SECONDS)),
    cs.PagingCfg: dict(
        flood_max=Num(1, 100_000, msg="={r} must be a whole number >= 1, e.g. 10 (ISA-18.2)"),
        flood_window_s=Num(0, DAY, lo_open=True,
                           msg="={r} must be a finite number of seconds > 0, e.g. 600"),
        min_repage_s=Num(0, DAY, lo_open=True,
                         msg="={r} must be a finite number of seconds > 0, e.g. 300"),
        heartbeat_s=Num(0, DAY, lo_open=True, unit=SECONDS), heartbeat_url=Text("url"),
        heartbeat_command=Text("path"), base_backoff_s=Num(0, 3600, lo_open=True, unit=SECONDS),
        max_backoff_s=Num(0, DAY, lo_open=True, unit=SECONDS)),
    cs.Substance: dict(
        id=ID_, name=NAME, un=Text("nonblank"), dg_class=Text(
            words=DG_CLASSES, msg="={r} is not an FSD class; {dym}use one of " + ", ".join(DG_CLASSES)),
        subsidiary=Text(words=DG_CLASSES, msg="={r} is not an FSD class; {dym}use one of "
                        + ", ".join(DG_CLASSES)),
        unit=Text(words=("L", "kg", "L_wc")), legacy_category=Text()),
    cs.Store: dict(
        id=ID_, site=ID_, zone=ID_, premises=Text(words=("general", "industrial")),
        licence=NAME, licensed_max=Num(0, 1e9, unit=" (L or kg)"), compartments=NAME,
        alert_fraction=Num(0, 1, lo_open=True, hi_open=True)),
    cs.Cabinet: dict(
        id=ID_, site=ID_, zone=ID_, gas=NAME, cylinder_l_wc=Num(0, 1000, lo_open=True, unit=" L"),
        detectors=ID_, exhaust=Text("nonblank"), exhaust_min=Num(-1e6, 1e6)),
}
"""The one rule of each key (its range or form), by section and key. Keys whose value is a
section (``points``, ``limits``, ``levels``...) have none; their section has its own rules."""


def rule_of(cls: type, name: str) -> Num | Text | None:
    """The rule of key ``name`` of section ``cls`` (None for a key holding sections)."""
    return FIELD_RULES.get(cls, {}).get(name)


def _dupes(items, path: str, what: str) -> Iterator[tuple[str, str]]:
    seen: dict[str, int] = {}
    for i, key in enumerate(items):
        if key in seen:
            yield f"{path}[{i}]", f"duplicate {what} {key!r} (also at {path}[{seen[key]}]); ids must be unique"
        else:
            seen[key] = i


def parse_pair(text: str) -> tuple[str, str] | None:
    """Split ``"A - B"`` into ``("A", "B")``; None if malformed."""
    parts = [p.strip() for p in text.split(" - ")]
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


def check_limits(limits: dict[str, LimitSpec], path: str) -> Iterator[tuple[str, str]]:
    """Explicit limits: names, non-negative deadbands and delays, M-of-N, ordering."""
    for name, spec in limits.items():
        p = f"{path}.{name}"
        if name not in LIMIT_NAMES:
            yield p, f"unknown limit; {did_you_mean(name, LIMIT_NAMES)}allowed: {', '.join(LIMIT_NAMES)}"
            continue
        if spec.m_of_n is not None:
            mn = spec.m_of_n
            if len(mn) != 2 or not 1 <= mn[0] <= mn[1]:
                yield f"{p}.m_of_n", f"={list(mn)} is invalid; use [M, N] with 1 <= M <= N"
            elif spec.on_delay_s > 0:
                yield f"{p}.m_of_n", "cannot be combined with on_delay_s > 0; use one or the other"
    yield from check_order({k: v for k, v in limits.items() if k in LIMIT_NAMES},
                           {k: path for k in limits})


def check_order(limits: dict[str, LimitSpec], sources: dict[str, str]) -> Iterator[tuple[str, str]]:
    """action_low < alert_low < alert_high < action_high and L_high-D_high > L_low+D_low."""
    order = [n for n in reversed(LIMIT_NAMES) if n in limits]  # lowest limit first
    for lo, hi in zip(order, order[1:]):
        if not limits[lo].limit < limits[hi].limit:
            yield (sources[hi] + f".{hi}",
                   f"{hi}={limits[hi].limit} ({sources[hi]}) must be above {lo}={limits[lo].limit}"
                   f" ({sources[lo]}); order is action_low < alert_low < alert_high < action_high")
    for hi in ("alert_high", "action_high"):
        for lo in ("alert_low", "action_low"):
            if hi in limits and lo in limits:
                h, l_ = limits[hi], limits[lo]
                if not h.limit - h.deadband > l_.limit + l_.deadband:
                    yield (sources[hi] + f".{hi}",
                           f"{hi}={h.limit} minus deadband {h.deadband} ({sources[hi]}) must stay above"
                           f" {lo}={l_.limit} plus deadband {l_.deadband} ({sources[lo]})")


def _check_point(dev: Device, pt: Point, path: str, cfg: Config) -> Iterator[tuple[str, str]]:
    inline = dev.profile is None
    if inline and (pt.table is None or pt.address is None):
        yield path, "inline points need table and address (or give the device a profile)"
    if pt.type in REGISTERS:
        needed, tables = REGISTERS[pt.type]
        if pt.table in TABLES and pt.table not in tables:
            yield f"{path}.type", f"={pt.type!r} cannot be read from table {pt.table!r}; allowed tables: {', '.join(tables)}"
        if pt.type == "string" and not pt.count:
            yield f"{path}.count", "type='string' needs count (registers, 2 characters each)"
        if pt.count is not None and needed and pt.count != needed:
            yield f"{path}.count", f"type={pt.type!r} needs {needed} registers but count={pt.count}"
        span = pt.count or needed or 1
        if pt.address is not None and not 0 <= pt.address <= 65536 - span:
            yield f"{path}.address", f"={pt.address} is out of range; 0-{65536 - span} for {pt.type}"
    if pt.scale == 0:
        yield f"{path}.scale", "must not be 0"
    zone_ids = {z.id for z in cfg.zones}
    for key in ("measures", "between"):
        text = getattr(pt, key)
        if text is None:
            continue
        pair = parse_pair(text)
        if pair is None:
            yield f"{path}.{key}", f"={text!r} is malformed; write \"ZONE-A - ZONE-B\" or \"ZONE - ambient\""
            continue
        for z in pair:
            if z != "ambient" and z not in zone_ids:
                yield f"{path}.{key}", (f"zone {z!r} does not exist; {did_you_mean(z, zone_ids)}"
                                        f"known zones: {', '.join(sorted(zone_ids))}")
    yield from check_limits(pt.limits, f"{path}.limits")
    zone = next((z for z in cfg.zones if z.id == dev.zone), None)
    gmp = zone is not None and zone.gmp_grade is not None
    for name, spec in pt.limits.items():
        delayed = spec.on_delay_s > 0
        if delayed and not spec.justification and (
            (gmp and pt.quantity == "pressure_diff") or pt.quantity == "gas_conc"
        ):
            what = "GMP pressure" if pt.quantity == "pressure_diff" else "gas"
            yield (f"{path}.limits.{name}.on_delay_s",
                   f"a delay on a {what} alarm needs a justification (Annex 1 4.16); add justification = \"...\"")


def _check_setpoints(dev: Device, p: str) -> Iterator[tuple[str, str]]:
    """A gas detector's ``setpoints`` are alarm levels: low/high, positive, finite, ordered.

    Whether they are within what the gas table supports (else a justification is needed) is
    the gas policy's check (``hazmat.gas.detector_policies``), which knows the gas table.
    """
    sp = dev.setpoints
    if sp and not dev.gas:
        yield f"{p}.setpoints", "apply only to gas detectors; give gas = \"...\" or remove them"
    for key in sp:
        if key not in ("low", "high"):
            yield f"{p}.setpoints.{key}", (f"unknown set point; {did_you_mean(key, ('low', 'high'))}"
                                           "use low and/or high")
    lo, hi = sp.get("low"), sp.get("high")
    if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi) and not lo < hi:
        yield f"{p}.setpoints.high", f"={hi:g} must be above setpoints.low={lo:g}"


def _check_comm_timing(dev: Device, p: str) -> Iterator[tuple[str, str]]:
    """``comm_delay_s`` / ``comm_clear_s``: finite seconds > 0. The 10 s cap of a toxic-gas
    detector needs the gas table, so the catalogue checks it (``facility.catalogue``)."""
    if dev.comm_delay_s is not None and dev.comm_clear_s is not None \
            and dev.comm_clear_s > 100 * dev.comm_delay_s:
        yield f"{p}.comm_clear_s", (f"={dev.comm_clear_s:g} is more than 100 x comm_delay_s"
                                    f" ({dev.comm_delay_s:g}); a comm alarm would hardly clear")


def _check_devices(cfg: Config) -> Iterator[tuple[str, str]]:
    site_ids = {s.id for s in cfg.sites}
    zone_ids = {z.id for z in cfg.zones}
    yield from _dupes([d.id for d in cfg.devices], "devices", "device id")
    conns: dict[tuple[str, int], list[int]] = defaultdict(list)
    units: dict[tuple[str, int, int], int] = {}
    for i, dev in enumerate(cfg.devices):
        p = f"devices[{i}]"
        yield from unknown(f"{p}.site", dev.site, site_ids, "configured site")
        yield from unknown(f"{p}.zone", dev.zone, zone_ids, "configured zone")
        if 0 < dev.timeout_s < math.inf and 0 < dev.scan_s < math.inf \
                and dev.timeout_s >= dev.scan_s:
            yield f"{p}.timeout_s", (f"={dev.timeout_s:g} s is not below scan_s={dev.scan_s:g} s;"
                                     " a read must end before the next scan is due")
        yield from unknown(f"{p}.cabinet", dev.cabinet, {c.id for c in cfg.hazmat.cabinets},
                           "configured gas cabinet")
        yield from unknown(f"{p}.store", dev.store, {s.id for s in cfg.hazmat.stores},
                           "configured dangerous-goods store")
        yield from _check_setpoints(dev, p)
        yield from _check_comm_timing(dev, p)
        if dev.profile is None and not dev.points:
            yield p, "has neither a profile nor points; give profile = \"...\" or [[devices.points]]"
        key = (dev.host, dev.port, dev.unit)
        if key in units:
            yield p, (f"{dev.host}:{dev.port} unit {dev.unit} is also used by devices[{units[key]}];"
                      " each host:port:unit is one device")
        units.setdefault(key, i)
        conns[(dev.host, dev.port)].append(i)
        yield from _dupes([pt.name for pt in dev.points], f"{p}.points", "point name")
        for j, pt in enumerate(dev.points):
            yield from _check_point(dev, pt, f"{p}.points[{j}]", cfg)
    for (host, port), idx in conns.items():
        devs = [cfg.devices[i] for i in idx]
        total = sum(d.timeout_s for d in devs)
        fastest = min(d.scan_s for d in devs)
        if len(devs) > 1 and total >= fastest and math.isfinite(total):
            yield (f"devices[{idx[-1]}].timeout_s",
                   f"units sharing {host}:{port} have timeouts summing to {total:g} s, not below the"
                   f" smallest scan_s {fastest:g} s; lower timeout_s or raise scan_s")


def _check_zones(cfg: Config) -> Iterator[tuple[str, str]]:
    site_ids = {s.id for s in cfg.sites}
    zone_ids = {z.id for z in cfg.zones}
    yield from _dupes([s.id for s in cfg.sites], "sites", "site id")
    for i, site in enumerate(cfg.sites):
        try:
            ZoneInfo(site.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            yield f"sites[{i}].timezone", f"={site.timezone!r} is not an IANA time zone (e.g. Asia/Hong_Kong)"
    yield from _dupes([z.id for z in cfg.zones], "zones", "zone id")
    for i, z in enumerate(cfg.zones):
        p = f"zones[{i}]"
        yield from unknown(f"{p}.site", z.site, site_ids, "configured site")
        if z.reference is not None and z.reference != "ambient":
            yield from unknown(f"{p}.reference", z.reference, zone_ids, 'configured zone (or "ambient")')
        if z.reference == z.id:
            yield f"{p}.reference", f"={z.reference!r} is the zone itself; name the zone it is against"
        if z.min_dp_pa is not None and z.reference is None:
            yield f"{p}.min_dp_pa", "needs reference = \"ZONE\" (or \"ambient\") to say what it is against"
        for j, entry in enumerate(z.schedule):
            if not re.match(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)(-(Mon|Tue|Wed|Thu|Fri|Sat|Sun))? "
                            rf"([01]\d|2[0-3]):[0-5]\d ({'|'.join(MODES)})$", entry):
                yield f"{p}.schedule[{j}]", f"={entry!r} is malformed; write \"Mon-Fri 08:00 in_operation\""


def _check_operators(cfg: Config) -> Iterator[tuple[str, str]]:
    """Each operator is one person: records must say who acted (Part 11 §11.10(e), ALCOA+
    "attributable"; docs/ARCHITECTURE.md "Audit trail")."""
    yield from _dupes([o.login for o in cfg.operators], "operators", "login")
    for i, op in enumerate(cfg.operators):
        p = f"operators[{i}]"
        if op.login in SERVICE_ACTORS:
            yield f"{p}.login", (f"={op.login!r} is a name the service acts under"
                                 f" ({', '.join(sorted(SERVICE_ACTORS))}); use the person's login")
        elif op.shared and not op.justification.strip():
            yield f"{p}.justification", ("is required with shared = true: say why a login several"
                                         " people use must act")
        elif op.login.lower() in SHARED_LOGINS and not op.shared:
            yield f"{p}.login", (f"={op.login!r} is a shared or role login, so its records cannot"
                                 " say which person acted; give each person a named login, or"
                                 " set shared = true with a justification")


def _check_people_and_alarms(cfg: Config) -> Iterator[tuple[str, str]]:
    yield from _check_operators(cfg)
    a = cfg.alarms
    for quantity, limits in a.defaults.items():
        yield from check_limits(limits, f"alarms.defaults.{quantity}")
    for kind in a.priorities:
        yield from unknown(f"alarms.priorities.{kind}", kind, CONFIG_ALARM_KINDS + LIMIT_NAMES,
                           "known alarm kind", listed=True)
    # The bounds on hiding an alarm (FIELD_RULES): a critical one at most as long as others.
    if 0 < a.max_shelve_s < a.max_shelve_critical_s < math.inf:
        yield "alarms.max_shelve_critical_s", (f"={a.max_shelve_critical_s:g} is above"
                                               f" max_shelve_s={a.max_shelve_s:g}; a critical"
                                               " alarm is never hidden longer than others")
    pg = cfg.paging
    yield from _dupes([c.id for c in pg.channels], "paging.channels", "channel id")
    channel_ids = {c.id for c in pg.channels}
    for i, ch in enumerate(pg.channels):
        p = f"paging.channels[{i}]"
        need = {"pagerduty": ("url", "routing_key_env"), "webhook": ("url",),
                "smtp": ("smtp_host", "smtp_from", "to"), "command": ("command",)}.get(ch.type, ())
        for attr in need:
            if not getattr(ch, attr):
                yield f"{p}.{attr}", f"is required for a {ch.type} channel"
        if ch.type == "smtp":
            for j, addr in enumerate(ch.to):
                if not EMAIL.match(addr):
                    yield f"{p}.to[{j}]", f"={addr!r} is not an e-mail address"
        if ch.type == "command" and ch.command and not ch.command[0].strip():
            yield f"{p}.command[0]", "is empty; the first word is the program to run"
    site_ids = {s.id for s in cfg.sites}
    zone_ids = {z.id for z in cfg.zones}
    for i, route in enumerate(pg.routes):
        r = f"paging.routes[{i}]"
        if not route.levels:
            yield f"{r}.levels", "needs at least one escalation level"
        for j, site in enumerate(route.sites):
            yield from unknown(f"{r}.sites[{j}]", site, site_ids, "configured site")
        for j, z in enumerate(route.zones):
            yield from unknown(f"{r}.zones[{j}]", z, zone_ids, "configured zone")
        for j, lvl in enumerate(route.levels):
            for k, ch in enumerate(lvl.channels):
                if ch not in channel_ids:
                    yield (f"{r}.levels[{j}].channels[{k}]",
                           f"channel {ch!r} is not configured; {did_you_mean(ch, channel_ids)}"
                           f"known: {', '.join(sorted(channel_ids)) or 'none'}")
        after = [lvl.after_s for lvl in route.levels]
        if after != sorted(after):
            yield f"{r}.levels", f"after_s {after} must not decrease from one level to the next"
    if pg.max_backoff_s < pg.base_backoff_s:
        yield "paging.max_backoff_s", (f"={pg.max_backoff_s:g} is below base_backoff_s="
                                       f"{pg.base_backoff_s:g}")
    path = cfg.storage.path
    if path.strip() and (path.endswith(("/", "\\")) or os.path.isdir(cfg.db_path)):
        yield "storage.path", f"={path!r} is a folder; name the database file, e.g. var/facility.db"
    group = cfg.storage.group
    if group is not None and group.strip() and not CONTROL.search(group):
        try:
            grp.getgrnam(group)
        except KeyError:
            yield "storage.group", (f"={group!r}: no such group on this host; create it"
                                    f" (groupadd {group}) or leave group out")


def _check_hazmat(cfg: Config) -> Iterator[tuple[str, str]]:
    hz = cfg.hazmat
    site_ids = {s.id for s in cfg.sites}
    zone_ids = {z.id for z in cfg.zones}
    device_ids = {d.id for d in cfg.devices}
    yield from _dupes([s.id for s in hz.substances], "hazmat.substances", "substance id")
    for i, sub in enumerate(hz.substances):
        p = f"hazmat.substances[{i}]"
        if sub.special and sub.dg_class not in ("5.1", "6.1", "8"):
            yield f"{p}.special", "only 5.1, 6.1 and 8 substances can be \"special\""
    yield from _dupes([s.id for s in hz.stores], "hazmat.stores", "store id")
    for i, st in enumerate(hz.stores):
        p = f"hazmat.stores[{i}]"
        yield from unknown(f"{p}.site", st.site, site_ids, "configured site")
        yield from unknown(f"{p}.zone", st.zone, zone_ids, "configured zone")
        for cls in st.licensed_max:
            if cls not in DG_CLASSES and cls != "2":
                yield f"{p}.licensed_max.{cls}", (f"{cls!r} is not an FSD class; "
                                                  f"{did_you_mean(cls, DG_CLASSES)}use one of"
                                                  f" {', '.join(DG_CLASSES)}")
        yield from _dupes(list(st.compartments), f"{p}.compartments", "compartment")
    yield from _dupes([c.id for c in hz.cabinets], "hazmat.cabinets", "cabinet id")
    for i, cab in enumerate(hz.cabinets):
        p = f"hazmat.cabinets[{i}]"
        yield from unknown(f"{p}.site", cab.site, site_ids, "configured site")
        yield from unknown(f"{p}.zone", cab.zone, zone_ids, "configured zone")
        for j, det in enumerate(cab.detectors):
            yield from unknown(f"{p}.detectors[{j}]", det, device_ids, "configured device")
        if cab.exhaust is not None:
            dev_id, dot, name = cab.exhaust.partition(".")
            if not dot or not name:
                yield f"{p}.exhaust", (f"={cab.exhaust!r} is not a point id; write"
                                       ' "<device id>.<point name>", e.g. "MEC-IO-01.exhaust_gc01"')
            else:
                yield from unknown(f"{p}.exhaust", dev_id, device_ids, "configured device",
                                   shown=cab.exhaust)
        if cab.exhaust_min is not None and cab.exhaust is None:
            yield f"{p}.exhaust_min", "needs exhaust = \"<device>.<point>\" to watch"


def unknown(path: str, value: str | None, known, what: str, *, listed: bool = False,
            shown: str | None = None) -> Iterator[tuple[str, str]]:
    """One problem if ``value`` names no known ``what``: with "did you mean" and the list."""
    if value is None or value in known:
        return
    names = sorted(str(k) for k in known)
    listing = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "") if names else "none"
    head = "is not" if listed else f"={shown or value!r} is not"
    if listed:
        head = f"{value!r} is not"
    yield path, f"{head} a {what}; {did_you_mean(value, names)}known: {listing}"


def cross_check(cfg: Config) -> Iterator[tuple[str, str]]:
    """Every cross-section problem of a configuration, as (key path, message)."""
    if not cfg.sites:
        yield "sites", "at least one [[sites]] entry is required"
    yield from _check_zones(cfg)
    yield from _check_devices(cfg)
    yield from _check_people_and_alarms(cfg)
    yield from _check_hazmat(cfg)


# -- Warnings from the compiled catalogue (check-config; docs/ARCHITECTURE.md "Particle counts")
# The catalogue is a floor above this one: these functions read its points and rules as plain
# attributes (``points``: quantity, size_um, device, zone, record_volume_l; ``rules``: point,
# limit_name, limit, mode, source) and import nothing from there.

MIN_SAMPLE_COUNTS = 20.0
"""ISO 14644-1 A.4.4: a single sample must hold at least 20 particles at the class limit of the
largest considered size, Vs = 20 / Cn,m x 1000 litres."""
MIN_SAMPLE_L = 2.0
"""ISO 14644-1 A.4.4: and at least 2 L (the 1 minute minimum is not checked here)."""
CFM_L_PER_MIN = 28.3168
"""1 ft3/min in litres per minute (ISO 14644-1; a "1 CFM" counter samples 28.3 L/min)."""


def min_sample_volume(limit_per_m3: float) -> float:
    """ISO 14644-1 A.4.4 minimum single sample volume in litres for a class limit Cn,m."""
    return max(MIN_SAMPLE_L, MIN_SAMPLE_COUNTS / limit_per_m3 * 1000.0)


def sample_volume_warnings(cfg: Config, cat) -> list[str]:
    """A particle counter whose record volume (nominal 1 CFM x ``sample_s``) is below the
    ISO 14644-1 A.4.4 minimum sample volume for its zone's limit at the largest considered
    size: the largest channel with an action limit, the lowest over the zone's modes (ISO
    14644-1:2015 class, or EU GMP Annex 1 Table 5). One line per counter, with the numbers and
    the ``sample_s`` that would do."""
    index = {d.id: i for i, d in enumerate(cfg.devices)}
    points = {p.id: p for p in cat.points if p.quantity == "particle_conc"
              and p.size_um is not None and p.record_volume_l}
    best: dict[str, tuple[float, float, str, float]] = {}  # device -> size, limit, source, vol
    for r in cat.rules:
        p = points.get(r.point)
        if p is None or r.limit_name != "action_high" or not r.limit or r.limit <= 0:
            continue
        cur = best.get(p.device)
        key = (p.size_um, -r.limit)
        if cur is None or key > (cur[0], -cur[1]):
            best[p.device] = (p.size_um, r.limit, r.source.split(";")[0], p.record_volume_l)
    out = []
    for dev_id, (size, limit, source, volume) in sorted(best.items(), key=lambda kv: index[kv[0]]):
        need = min_sample_volume(limit)
        if volume + 1e-9 >= need:
            continue
        dev = cfg.devices[index[dev_id]]
        sample = volume / CFM_L_PER_MIN * 60.0
        need_s = math.ceil(need / CFM_L_PER_MIN * 60.0)
        out.append(f"devices[{index[dev_id]}].sample_s: {dev_id} samples {volume:.2f} L per record"
                   f" ({sample:g} s at 1 CFM), below the {need:.2f} L minimum sample volume of"
                   f" ISO 14644-1 A.4.4 (20 / {limit:g} /m3 x 1000 L: {source} in zone"
                   f" {dev.zone}); set sample_s >= {need_s} on the instrument and here")
    return out


def gmp_limit_warnings(cfg: Config, cat) -> list[str]:
    """A GMP zone with particle counters and no particle action limit in a mode: EU GMP Annex 1
    Table 5 leaves it to the site ("—": grade D in operation), so without the site's own
    limit that mode's counts are recorded but never alarmed."""
    counters = {p.id: p for p in cat.points if p.quantity == "particle_conc" and p.zone}
    limited: set[tuple[str, str | None]] = set()  # (zone, mode) with an action limit
    for r in cat.rules:
        p = counters.get(r.point)
        if p is not None and r.limit_name == "action_high":
            limited.add((p.zone, r.mode))
    zones_with = {p.zone for p in counters.values()}
    out = []
    for i, z in enumerate(cfg.zones):
        if z.gmp_grade is None or z.id not in zones_with:
            continue
        for mode in ZONE_MODES:
            if (z.id, mode) in limited or (z.id, None) in limited:
                continue
            out.append(f"zones[{i}].gmp_grade: {z.id} grade {z.gmp_grade} has no particle limit"
                       f" {mode.replace('_', ' ')}: EU GMP Annex 1 Table 5 leaves it to the site"
                       " (\"—\"), so its counts are recorded, not alarmed, in that mode; set the"
                       " site's limit as [devices.points.limits] on the zone's counters' pc_0_5um"
                       " and pc_5_0um points")
    return out


def calibration_warnings(cfg: Config, status_of) -> list[str]:
    """One line per device whose calibration is overdue or due within 30 days;
    ``status_of(device) -> (status, days)`` is ``facility.catalogue.calibration_status`` at
    the device's site's date (docs/ARCHITECTURE.md "Calibration tracking")."""
    out = []
    for i, dev in enumerate(cfg.devices):
        status, days = status_of(dev)
        if status == "ok" or days is None:
            continue
        last = f", calibrated {dev.calibrated_on.isoformat()}" if dev.calibrated_on else ""
        if status == "overdue":
            out.append(f"devices[{i}].calibration_due: {dev.id} calibration overdue by {-days} day"
                       f"{'s' if days != -1 else ''} (due {dev.calibration_due.isoformat()}{last});"
                       " calibrate it and update calibrated_on / calibration_due")
        else:
            when = "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"
            out.append(f"devices[{i}].calibration_due: {dev.id} calibration due soon: {when}"
                       f" ({dev.calibration_due.isoformat()}{last})")
    return out
