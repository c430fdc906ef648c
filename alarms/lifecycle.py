"""The ISA-18.2 alarm lifecycle as one pure transition table plus ``step``.

docs/ARCHITECTURE.md "Alarm lifecycle" and ISA-18.2 / EEMUA 191: the
states are NORM, UNACK, ACKED, RTNUN, SHLVD, DSUPR, OOSRV. ``TRANSITIONS`` is the whole
``(state, event) -> state`` table for a non-latching alarm; a pair that is absent is
refused. ``step`` checks an allowed pair with the event's guard (``_GUARDS``) and applies two
documented refinements (not a second table):

* **Latching** (``AlarmState.latching``, in ``_refine``): a latched alarm does not leave
  UNACK/ACKED when its condition clears; it needs ``ack`` *and* ``reset`` (ISA-18.2
  "latched alarms").
* **True state** (``true_state``): leaving SHLVD / DSUPR / OOSRV goes to ``TRUE_STATE``, i.e. the state the
  alarm would show had it never been hidden (raise/clear/ack bookkeeping continues while it
  is hidden). Precedence of the hidden layers: OOSRV > SHLVD > DSUPR.

Hiding is bounded (docs/ARCHITECTURE.md "Critical alarms"): a shelve, an operator
suppression and an out-of-service of a critical alarm each carry an end time, and the
``*_expired`` events bring the alarm back. A critical alarm is never suppressed, and hiding
never pages ``resolve``: the channels get an ``update`` naming who, why and until when, and
the incident is resolved only when the occurrence itself reaches NORM.

Nothing here does I/O or reads a clock: callers pass ``now_ms`` and get back the new
state and a list of ``Effect`` telling them what to page and audit.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Final, Literal

from facility.config.schema import AlarmsCfg, Operator
from facility.domain.model import iso_ms
from facility.domain.vocab import has_role


class State(enum.Enum):
    """ISA-18.2 alarm states (ISA-18.2 / EEMUA 191)."""

    NORM = "NORM"  # normal
    UNACK = "UNACK"  # active, unacknowledged
    ACKED = "ACKED"  # active (or latched), acknowledged
    RTNUN = "RTNUN"  # returned to normal, unacknowledged
    SHLVD = "SHLVD"  # shelved by an operator, with an expiry
    DSUPR = "DSUPR"  # suppressed by design (mode, alert under action) or by an operator
    OOSRV = "OOSRV"  # out of service (instrument under maintenance)


class Event(enum.Enum):
    """What can happen to an alarm: process changes, operator actions, timers."""

    RAISE = "raise"  # the process condition became active
    CLEAR = "clear"  # the process condition returned to normal
    ACK = "ack"
    RESET = "reset"  # latched alarm, after return to normal and acknowledgement
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    SHELVE_EXPIRED = "shelve_expired"
    SUPPRESS = "suppress"
    UNSUPPRESS = "unsuppress"
    SUPPRESS_EXPIRED = "suppress_expired"  # an operator suppression reached its end time
    OOS = "oos"
    RETURN = "return"  # back in service
    OOS_EXPIRED = "oos_expired"  # an out-of-service with an end time reached it


TRUE_STATE: Final = "TRUE_STATE"
"""Table target meaning "the alarm's true state" (see ``true_state``)."""

Target = State | Literal["TRUE_STATE"]

_N, _U, _A, _R = State.NORM, State.UNACK, State.ACKED, State.RTNUN
_S, _D, _O = State.SHLVD, State.DSUPR, State.OOSRV
_E = Event

TRANSITIONS: dict[tuple[State, Event], Target] = {
    # visible states
    (_N, _E.RAISE): _U,
    (_N, _E.SHELVE): _S,
    (_N, _E.SUPPRESS): _D,
    (_N, _E.OOS): _O,
    (_U, _E.CLEAR): _R,  # latched: stays UNACK
    (_U, _E.ACK): _A,
    (_U, _E.SHELVE): _S,
    (_U, _E.SUPPRESS): _D,
    (_U, _E.OOS): _O,
    (_A, _E.RAISE): _U,  # only a latched, already returned alarm: a new occurrence
    (_A, _E.CLEAR): _N,  # latched: stays ACKED until reset
    (_A, _E.RESET): _N,  # only a latched alarm whose condition has returned
    (_A, _E.SHELVE): _S,
    (_A, _E.SUPPRESS): _D,
    (_A, _E.OOS): _O,
    (_R, _E.RAISE): _U,  # re-alarm of the same, still unacknowledged occurrence
    (_R, _E.ACK): _N,
    (_R, _E.SHELVE): _S,
    (_R, _E.SUPPRESS): _D,
    (_R, _E.OOS): _O,
    # shelved: process changes are tracked, not annunciated
    (_S, _E.RAISE): _S,
    (_S, _E.CLEAR): _S,
    (_S, _E.UNSHELVE): TRUE_STATE,
    (_S, _E.SHELVE_EXPIRED): TRUE_STATE,
    (_S, _E.SUPPRESS): _S,
    (_S, _E.UNSUPPRESS): _S,
    (_S, _E.SUPPRESS_EXPIRED): _S,
    (_S, _E.OOS): _O,
    # suppressed
    (_D, _E.RAISE): _D,
    (_D, _E.CLEAR): _D,
    (_D, _E.SUPPRESS): _D,  # a second reason (e.g. mode while by design)
    (_D, _E.UNSUPPRESS): TRUE_STATE,  # stays DSUPR while another reason remains
    (_D, _E.SUPPRESS_EXPIRED): TRUE_STATE,
    (_D, _E.OOS): _O,
    # out of service
    (_O, _E.RAISE): _O,
    (_O, _E.CLEAR): _O,
    (_O, _E.SHELVE_EXPIRED): _O,
    (_O, _E.SUPPRESS): _O,
    (_O, _E.UNSUPPRESS): _O,
    (_O, _E.SUPPRESS_EXPIRED): _O,
    (_O, _E.RETURN): TRUE_STATE,
    (_O, _E.OOS_EXPIRED): TRUE_STATE,
}

HIDDEN: Final = frozenset({State.SHLVD, State.DSUPR, State.OOSRV})
SUPPRESSION_SOURCES: Final = ("mode", "design", "operator")


@dataclass(frozen=True, slots=True)
class AlarmState:
    """Everything the lifecycle knows about one alarm ``<subject>:<kind>``.

    ``active`` is the process condition; ``acked`` whether the current occurrence was
    acknowledged; ``latched`` whether a latching alarm is waiting for its reset. Both are
    kept up to date while the alarm is hidden so that it can show its true state later.
    """

    id: str
    state: State = State.NORM
    active: bool = False
    acked: bool = True  # NORM counts as "nothing left to acknowledge"
    latching: bool = False  # configuration: AlarmsCfg.latching contains the kind
    latched: bool = False  # a latching alarm that returned and waits for reset
    occurrence: int = 0  # #n, incremented by each raise from (true) NORM
    priority: str = "low"  # low | medium | high | critical
    critical: bool = False  # docs/ARCHITECTURE.md's critical list: never mode-suppressed or folded
    shelved_until_ms: int | None = None
    shelved_by: str | None = None
    suppressed_by: frozenset[str] = field(default_factory=frozenset)
    suppressed_until_ms: int | None = None  # end of the operator suppression
    oos: bool = False
    oos_until_ms: int | None = None  # end of the out-of-service (None: until `return`)
    onset_ms: int | None = None  # onset of the current occurrence (from the engine)
    returned_ms: int | None = None  # when the current occurrence's condition returned
    changed_ms: int | None = None

    @property
    def kind(self) -> str:
        """The alarm kind, the part after the last ``:`` of the id."""
        return self.id.rsplit(":", 1)[-1]


@dataclass(frozen=True, slots=True)
class Refused:
    """An event that is illegal in the alarm's state; ``message`` says why, in one line."""

    message: str

    def __bool__(self) -> bool:  # so ``if not result:`` reads naturally
        return False


@dataclass(frozen=True, slots=True)
class Effect:
    """Something the caller must do after a transition.

    ``kind`` is one of ``trigger`` (page a new UNACK occurrence), ``acknowledge``,
    ``resolve`` (the occurrence reached NORM), ``update`` (returned to normal while
    unacknowledged: "returned at T, not acknowledged"; or hidden: ``hidden`` is then the
    word for how, ``text`` says who, why and until when, and ``until_ms`` is the end time,
    None when it has none) or ``audit`` (an operator action: who, when, why).
    """

    kind: str
    alarm_id: str
    occurrence: int
    priority: str
    critical: bool
    at_ms: int
    text: str = ""
    actor: str | None = None
    reason: str | None = None
    hidden: str | None = None  # "shelved" | "suppressed" | "out of service" (an update)
    until_ms: int | None = None


def true_state(a: AlarmState) -> State:
    """The state ``a`` shows given its hidden layers and process/ack bookkeeping."""
    if a.oos:
        return State.OOSRV
    if a.shelved_until_ms is not None:
        return State.SHLVD
    if a.suppressed_by:
        return State.DSUPR
    return _visible(a)


def _visible(a: AlarmState) -> State:
    if a.active or a.latched:
        return State.ACKED if a.acked else State.UNACK
    return State.NORM if a.acked else State.RTNUN


def _refuse(event: Event, a: AlarmState, why: str | None = None) -> Refused:
    return Refused(f"cannot {event.value} {a.id}: {why or f'alarm is {a.state.value}'}")


@dataclass(frozen=True, slots=True)
class _Ask:
    """The arguments of one ``step`` call that the guards and the bookkeeping read."""

    now_ms: int
    actor: Operator | None
    duration_s: float | None
    by: str
    onset_ms: int | None
    cfg: AlarmsCfg


def step(
    alarm: AlarmState,
    event: Event,
    *,
    now_ms: int,
    actor: Operator | None = None,
    reason: str | None = None,
    duration_s: float | None = None,
    by: str = "operator",
    onset_ms: int | None = None,
    cfg: AlarmsCfg | None = None,
    occurrence: int | None = None,
) -> tuple[AlarmState, list[Effect]] | Refused:
    """Apply ``event`` to ``alarm`` at ``now_ms``; return (new state, effects) or Refused.

    ``actor`` is the operator for operator actions (ack, reset, shelve, unshelve,
    suppress/unsuppress by "operator", oos, return); ``duration_s`` is mandatory for
    shelve, for an operator suppress and for oos of a critical alarm (optional for other
    oos); ``by`` names the suppression source ("mode", "design", "operator"); ``onset_ms``
    is the rule's onset for raise/clear; ``cfg`` supplies the maxima on hiding;
    ``occurrence`` is the occurrence an operator request names (docs/ARCHITECTURE.md: a request for a
    superseded occurrence is refused, and the caller audits the refusal).

    Four steps, each a table or a named function: the occurrence check, the event's
    guard (``_GUARDS``, only for a pair the table allows), the refinements the table
    cannot see (``_refine``: latching), then the event's bookkeeping (``_BOOKKEEPING``)
    and the one assignment of the state.
    """
    if occurrence is not None and occurrence != alarm.occurrence:
        return _refuse(event, alarm, f"occurrence #{occurrence} is superseded by "
                       f"#{alarm.occurrence}")
    ask = _Ask(now_ms, actor, duration_s, by, onset_ms, cfg or AlarmsCfg())
    target: Target | None | Refused = TRANSITIONS.get((alarm.state, event))
    guard = _GUARDS.get(event)
    if target is not None and guard is not None:
        why = guard(alarm, ask)
        if why:
            return _refuse(event, alarm, why)
    target = _refine(alarm, event, target)
    if isinstance(target, Refused):
        return target
    if target is None:
        return _refuse(event, alarm)
    a = _BOOKKEEPING[event](alarm, ask)
    # the one place states are assigned: the table's target (or the true state)
    new_state = true_state(a) if target == TRUE_STATE else target
    a = replace(a, state=new_state, changed_ms=now_ms)
    return a, _effects(alarm, a, event, now_ms, actor, reason, by)


# -- guards: why an allowed (state, event) pair is still refused --------------------------

def _guard_raise(a: AlarmState, ask: _Ask) -> str | None:
    return "the condition is already active" if a.active else None


def _guard_clear(a: AlarmState, ask: _Ask) -> str | None:
    return "the condition is not active" if not a.active else None


def _guard_shelve(a: AlarmState, ask: _Ask) -> str | None:
    return _check_shelve(a, ask.actor, ask.duration_s, ask.cfg)


def _guard_source(by: str) -> str | None:
    if by not in SUPPRESSION_SOURCES:
        return f'by="{by}" is not one of {", ".join(SUPPRESSION_SOURCES)}'
    return None


def _guard_suppress(a: AlarmState, ask: _Ask) -> str | None:
    """A critical alarm is never suppressed, by a mode, by design or by anyone
    (docs/ARCHITECTURE.md "Critical alarms"); an operator suppression needs a duration of
    at most ``max_suppress_s``; each source suppresses once."""
    why = _guard_source(ask.by)
    if why:
        return why
    if a.critical and ask.by == "mode":
        return "a critical alarm is never suppressed by a mode"
    if a.critical:
        return ("a critical alarm cannot be suppressed; shelve it instead (role shelve_critical,"
                " at most max_shelve_critical_s)")
    if ask.by in a.suppressed_by:
        return f"already suppressed by {ask.by}"
    if ask.by == "operator":
        return _check_duration("a suppression", ask.duration_s, "max_suppress_s",
                               ask.cfg.max_suppress_s)
    return None


def _guard_suppress_expired(a: AlarmState, ask: _Ask) -> str | None:
    if "operator" not in a.suppressed_by or a.suppressed_until_ms is None:
        return "no operator suppression with an end time"
    if ask.now_ms < a.suppressed_until_ms:
        return f"suppressed until {iso_ms(a.suppressed_until_ms)}"
    return None


def _guard_oos(a: AlarmState, ask: _Ask) -> str | None:
    """Out of service hides every alarm of a device; for a critical one that needs role
    shelve_critical and an end time within ``max_oos_critical_s`` (docs/ARCHITECTURE.md
    "Critical alarms"). Without a duration a non-critical alarm stays out until ``return``."""
    if a.critical:
        if not _has(ask.actor, "shelve_critical"):
            who = ask.actor.login if ask.actor else "nobody"
            return f"{who} lacks role shelve_critical needed to take a critical alarm out of service"
        return _check_duration("out of service of a critical alarm", ask.duration_s,
                               "max_oos_critical_s", ask.cfg.max_oos_critical_s)
    if ask.duration_s is not None:
        return _check_duration("out of service", ask.duration_s, None, None)
    return None


def _guard_oos_expired(a: AlarmState, ask: _Ask) -> str | None:
    if a.oos_until_ms is None:
        return "out of service without an end time"
    if ask.now_ms < a.oos_until_ms:
        return f"out of service until {iso_ms(a.oos_until_ms)}"
    return None


def _guard_unsuppress(a: AlarmState, ask: _Ask) -> str | None:
    why = _guard_source(ask.by)
    if why:
        return why
    if ask.by not in a.suppressed_by:
        return f"not suppressed by {ask.by}"
    return None


_GUARDS: dict[Event, Callable[[AlarmState, _Ask], str | None]] = {
    Event.RAISE: _guard_raise,
    Event.CLEAR: _guard_clear,
    Event.SHELVE: _guard_shelve,
    Event.SUPPRESS: _guard_suppress,
    Event.UNSUPPRESS: _guard_unsuppress,
    Event.SUPPRESS_EXPIRED: _guard_suppress_expired,
    Event.OOS: _guard_oos,
    Event.OOS_EXPIRED: _guard_oos_expired,
}


# -- refinements: latching, which the (state, event) table cannot see ---------------------

def _latched_clear(a: AlarmState) -> Target | None | Refused:
    return a.state if a.active else None  # latched: stays until ack and reset


def _latched_raise(a: AlarmState) -> Target | None | Refused:
    return State.UNACK if not a.active else None  # a new occurrence of a returned latch


def _latched_reset(a: AlarmState) -> Target | None | Refused:
    if a.state is State.UNACK:
        return _refuse(Event.RESET, a, "acknowledge it first")
    if a.active:
        return _refuse(Event.RESET, a, "the condition is still active")
    return State.NORM


_LATCHED: dict[Event, Callable[[AlarmState], Target | None | Refused]] = {
    Event.CLEAR: _latched_clear,
    Event.RAISE: _latched_raise,
    Event.RESET: _latched_reset,
}
"""A latching alarm in UNACK/ACKED: these events replace the table's target."""


def _refine(a: AlarmState, event: Event, target: Target | None) -> Target | None | Refused:
    """The table's target, corrected for latching (ISA-18.2 "latched alarms")."""
    if a.latching and a.state in (State.UNACK, State.ACKED):
        latched = _LATCHED.get(event)
        return latched(a) if latched is not None else target
    if event is Event.RESET and target is not None:
        return _refuse(event, a, "the alarm does not latch")
    if a.state is State.ACKED and event is Event.RAISE:
        return None  # a non-latched ACKED alarm is already active
    return target


# -- bookkeeping: what each event changes besides the state -------------------------------

def _book_raise(a: AlarmState, ask: _Ask) -> AlarmState:
    """A raise from (true) NORM, or of a returned latch, starts a new occurrence."""
    if not a.active and a.acked and (not a.latched or a.state is State.ACKED):
        a = replace(a, occurrence=a.occurrence + 1, acked=False, onset_ms=ask.onset_ms,
                    returned_ms=None, latched=False)
    return replace(a, active=True, latched=False, onset_ms=a.onset_ms or ask.onset_ms)


def _book_clear(a: AlarmState, ask: _Ask) -> AlarmState:
    return replace(a, active=False, latched=a.latching, returned_ms=ask.onset_ms or ask.now_ms)


def _until(ask: _Ask) -> int | None:
    """The end time of a hide that lasts ``duration_s`` from now (None: no end time)."""
    if ask.duration_s is None:
        return None
    return ask.now_ms + int(round(float(ask.duration_s) * 1000))


def _book_shelve(a: AlarmState, ask: _Ask) -> AlarmState:
    return replace(a, shelved_until_ms=_until(ask),
                   shelved_by=ask.actor.login if ask.actor else None)


def _book_suppress(a: AlarmState, ask: _Ask) -> AlarmState:
    a = replace(a, suppressed_by=a.suppressed_by | {ask.by})
    return replace(a, suppressed_until_ms=_until(ask)) if ask.by == "operator" else a


def _book_unsuppress(a: AlarmState, ask: _Ask) -> AlarmState:
    a = replace(a, suppressed_by=a.suppressed_by - {ask.by})
    return replace(a, suppressed_until_ms=None) if ask.by == "operator" else a


_BOOKKEEPING: dict[Event, Callable[[AlarmState, _Ask], AlarmState]] = {
    Event.RAISE: _book_raise,
    Event.CLEAR: _book_clear,
    Event.ACK: lambda a, ask: replace(a, acked=True),
    Event.RESET: lambda a, ask: replace(a, latched=False),
    Event.SHELVE: _book_shelve,
    Event.UNSHELVE: lambda a, ask: replace(a, shelved_until_ms=None, shelved_by=None),
    Event.SHELVE_EXPIRED: lambda a, ask: replace(a, shelved_until_ms=None, shelved_by=None),
    Event.SUPPRESS: _book_suppress,
    Event.UNSUPPRESS: _book_unsuppress,
    Event.SUPPRESS_EXPIRED: lambda a, ask: replace(
        a, suppressed_by=a.suppressed_by - {"operator"}, suppressed_until_ms=None),
    Event.OOS: lambda a, ask: replace(a, oos=True, oos_until_ms=_until(ask)),
    Event.RETURN: lambda a, ask: replace(a, oos=False, oos_until_ms=None),
    Event.OOS_EXPIRED: lambda a, ask: replace(a, oos=False, oos_until_ms=None),
}
"""Every event's bookkeeping (raise/clear/ack continue while hidden: see ``true_state``)."""


def _has(actor: Operator | None, role: str) -> bool:
    return actor is not None and has_role(actor.roles, role)


def _check_duration(what: str, duration_s: float | None, key: str | None,
                    max_s: float | None) -> str | None:
    """Why ``duration_s`` is no good for ``what`` (at most ``key`` = ``max_s``), or None;
    NaN and infinity are refused too (a comparison with NaN is always false)."""
    if duration_s is None or not math.isfinite(duration_s) or duration_s <= 0:
        bound = f", at most {key}={max_s:g} s" if key is not None and max_s is not None else ""
        return f"{what} needs a duration > 0 (e.g. --for 30m{bound})"
    if key is not None and max_s is not None and duration_s > max_s:
        return f"duration {duration_s:g} s exceeds {key}={max_s:g}"
    return None


def _check_shelve(
    a: AlarmState, actor: Operator | None, duration_s: float | None, cfg: AlarmsCfg
) -> str | None:
    if duration_s is None or not math.isfinite(duration_s) or duration_s <= 0:
        return "a shelve needs a duration > 0 (e.g. --for 30m)"
    if a.critical:
        if not _has(actor, "shelve_critical"):
            who = actor.login if actor else "nobody"
            return f"{who} lacks role shelve_critical needed to shelve a critical alarm"
        if duration_s > cfg.max_shelve_critical_s:
            return (f"duration {duration_s:g} s exceeds max_shelve_critical_s="
                    f"{cfg.max_shelve_critical_s:g}")
    elif duration_s > cfg.max_shelve_s:
        return f"duration {duration_s:g} s exceeds max_shelve_s={cfg.max_shelve_s:g}"
    return None


_OPERATOR_EVENTS = frozenset(
    {Event.ACK, Event.RESET, Event.SHELVE, Event.UNSHELVE, Event.OOS, Event.RETURN}
)
_HIDE_EVENTS = {Event.SHELVE: "shelved", Event.SUPPRESS: "suppressed",
                Event.OOS: "out of service"}
"""The events that hide an alarm, and the word a page uses for each."""
_HIDE_WORD = {State.SHLVD: "shelved", State.DSUPR: "suppressed", State.OOSRV: "out of service"}
_BY_DESIGN = {"mode": "suppressed by mode (until the zone's mode changes)",
              "design": "suppressed by design (while a related alarm stands for it)"}


def _hide_text(event: Event, new: AlarmState, actor: Operator | None, reason: str | None,
               by: str) -> tuple[str, int | None]:
    """What an update says about a hide: who, why and until when; and the end time."""
    if event is Event.SUPPRESS and by != "operator":
        return _BY_DESIGN.get(by, f"suppressed by {by}"), None
    until = {Event.SHELVE: new.shelved_until_ms, Event.SUPPRESS: new.suppressed_until_ms,
             Event.OOS: new.oos_until_ms}[event]
    when = (f" until {iso_ms(until)}" if until is not None
            else " until returned to service" if event is Event.OOS else "")
    who = actor.login if actor else "nobody"
    return f"{_HIDE_EVENTS[event]} by {who}{when}" + (f": {reason}" if reason else ""), until


def _effects(
    old: AlarmState, new: AlarmState, event: Event, now_ms: int,
    actor: Operator | None, reason: str | None, by: str,
) -> list[Effect]:
    """The pages and audit of one transition.

    Hiding (shelve, suppress, out of service) never resolves: the incident stays open with
    an ``update`` (who, why, until when) while the occurrence is still to be handled, and is
    resolved when the occurrence reaches NORM, hidden or not (docs/ARCHITECTURE.md
    "Critical alarms"). Showing again pages what the true state calls for: UNACK
    re-triggers the same incident, RTNUN updates it, NORM resolves it unless that was
    done while it was hidden.
    """
    out: list[Effect] = []

    def eff(kind: str, src: AlarmState, text: str = "", hidden: str | None = None,
            until_ms: int | None = None) -> None:
        out.append(Effect(kind, src.id, src.occurrence, src.priority, src.critical, now_ms,
                          text, actor.login if actor else None, reason, hidden, until_ms))

    before, after = _visible(old), _visible(new)  # the states under any hidden layer
    if new.occurrence != old.occurrence and old.occurrence and old.state is State.ACKED:
        eff("resolve", old, "superseded by a new occurrence")
    if new.state is State.UNACK and (
        old.state is not State.UNACK or new.occurrence != old.occurrence
    ):
        eff("trigger", new)
    elif new.state is State.UNACK and old.active and not new.active:
        eff("update", new, "returned to normal, not acknowledged (latched)")
    elif new.state is State.ACKED and old.state is not State.ACKED:
        if old.state in (State.UNACK, State.RTNUN):
            eff("acknowledge", new)
    elif new.state is State.RTNUN and (old.state is State.UNACK or old.state in HIDDEN):
        eff("update", new, "returned to normal, not acknowledged")
    elif new.state is State.NORM and old.state is not State.NORM:
        if old.state not in HIDDEN or before is not State.NORM:
            eff("resolve", new)
    elif new.state in HIDDEN and before is not State.NORM and after is State.NORM:
        eff("resolve", new, f"returned to normal while {_HIDE_WORD[new.state]}")
    elif event in _HIDE_EVENTS and after is not State.NORM and (
        new.state is not old.state or by == "operator"
    ):
        text, until = _hide_text(event, new, actor, reason, by)
        eff("update", new, text, hidden=_HIDE_EVENTS[event], until_ms=until)
    if event in _OPERATOR_EVENTS or (
        event in (Event.SUPPRESS, Event.UNSUPPRESS) and by == "operator"
    ):
        eff("audit", new, f"{event.value}: {old.state.value} -> {new.state.value}")
    return out


def mode_suppressed(
    rule_mode: str, zone_mode: str, *, at_rest_since_ms: int | None, now_ms: int,
    recovery_s: float,
) -> bool:
    """Whether a rule compiled for ``rule_mode`` is DSUPR by mode right now.

    The inactive mode's rules are suppressed; after in_operation -> at_rest the at-rest
    rules stay suppressed for ``recovery_s`` (Annex 1 clean-up time, docs/ARCHITECTURE.md).
    Critical alarms must not be passed to ``step(SUPPRESS, by="mode")`` (it refuses).
    """
    if rule_mode != zone_mode:
        return True
    if rule_mode == "at_rest" and at_rest_since_ms is not None:
        return now_ms < at_rest_since_ms + int(recovery_s * 1000)
    return False
