"""The ISA-18.2 alarm lifecycle as one pure transition table plus ``step``.

DESIGN.md "Alarm lifecycle (ISA-18.2) and paging" and reference/standards.md §6: the
states are NORM, UNACK, ACKED, RTNUN, SHLVD, DSUPR, OOSRV. ``TRANSITIONS`` is the whole
``(state, event) -> state`` table for a non-latching alarm; a pair that is absent is
refused. Two documented refinements live in ``step`` (not in a second table):

* **Latching** (``AlarmState.latching``): a latched alarm does not leave UNACK/ACKED when
  its condition clears; it needs ``ack`` *and* ``reset`` (ISA-18.2 "latched alarms").
* **True state**: leaving SHLVD / DSUPR / OOSRV goes to ``TRUE_STATE``, i.e. the state the
  alarm would show had it never been hidden (raise/clear/ack bookkeeping continues while it
  is hidden). Precedence of the hidden layers: OOSRV > SHLVD > DSUPR.

Nothing here does I/O or reads a clock: callers pass ``now_ms`` and get back the new
state and a list of ``Effect`` telling them what to page and audit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from facility.config.schema import AlarmsCfg, Operator


class State(enum.Enum):
    """ISA-18.2 alarm states (reference/standards.md §6)."""

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
    OOS = "oos"
    RETURN = "return"  # back in service


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
    (_S, _E.OOS): _O,
    # suppressed
    (_D, _E.RAISE): _D,
    (_D, _E.CLEAR): _D,
    (_D, _E.SUPPRESS): _D,  # a second reason (e.g. mode while by design)
    (_D, _E.UNSUPPRESS): TRUE_STATE,  # stays DSUPR while another reason remains
    (_D, _E.OOS): _O,
    # out of service
    (_O, _E.RAISE): _O,
    (_O, _E.CLEAR): _O,
    (_O, _E.SHELVE_EXPIRED): _O,
    (_O, _E.SUPPRESS): _O,
    (_O, _E.UNSUPPRESS): _O,
    (_O, _E.RETURN): TRUE_STATE,
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
    critical: bool = False  # DESIGN.md's critical list: never mode-suppressed or folded
    shelved_until_ms: int | None = None
    shelved_by: str | None = None
    suppressed_by: frozenset[str] = field(default_factory=frozenset)
    oos: bool = False
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
    ``resolve`` (the occurrence reached NORM or was hidden), ``update`` (returned to normal
    while unacknowledged: "returned at T, not acknowledged") or ``audit`` (an operator
    action: who, when, why).
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
    shelve; ``by`` names the suppression source ("mode", "design", "operator"); ``onset_ms``
    is the rule's onset for raise/clear; ``cfg`` supplies the shelve maxima;
    ``occurrence`` is the occurrence an operator request names (DESIGN.md: a request for a
    superseded occurrence is refused, and the caller audits the refusal).
    """
    cfg = cfg or AlarmsCfg()
    target = TRANSITIONS.get((alarm.state, event))
    a = alarm
    if occurrence is not None and occurrence != alarm.occurrence:
        return _refuse(event, a, f"occurrence #{occurrence} is superseded by "
                       f"#{alarm.occurrence}")
    # -- refinements that the (state, event) table cannot see -------------------------
    if event is Event.SHELVE and target is not None:
        err = _check_shelve(a, actor, duration_s, cfg)
        if err:
            return _refuse(event, a, err)
    if event in (Event.SUPPRESS, Event.UNSUPPRESS) and target is not None:
        if by not in SUPPRESSION_SOURCES:
            return _refuse(event, a, f'by="{by}" is not one of {", ".join(SUPPRESSION_SOURCES)}')
        if event is Event.SUPPRESS and a.critical and by == "mode":
            return _refuse(event, a, "a critical alarm is never suppressed by a mode")
        if event is Event.SUPPRESS and a.critical and by == "operator" and not _has(
            actor, "shelve_critical"
        ):
            return _refuse(event, a, "suppressing a critical alarm needs role shelve_critical")
        if event is Event.SUPPRESS and by in a.suppressed_by:
            return _refuse(event, a, f"already suppressed by {by}")
        if event is Event.UNSUPPRESS and by not in a.suppressed_by:
            return _refuse(event, a, f"not suppressed by {by}")
    if target is not None and event is Event.RAISE and a.active:
        return _refuse(event, a, "the condition is already active")
    if target is not None and event is Event.CLEAR and not a.active:
        return _refuse(event, a, "the condition is not active")
    if a.latching and a.state in (State.UNACK, State.ACKED):
        if event is Event.CLEAR:
            target = a.state if a.active else None  # latched: stays until ack and reset
        elif event is Event.RAISE:
            target = State.UNACK if not a.active else None
        elif event is Event.RESET:
            if a.state is State.UNACK:
                return _refuse(event, a, "acknowledge it first")
            if a.active:
                return _refuse(event, a, "the condition is still active")
            target = State.NORM
    elif event is Event.RESET and target is not None:
        return _refuse(event, a, "the alarm does not latch")
    elif alarm.state is State.ACKED and event is Event.RAISE:
        target = None  # a non-latched ACKED alarm is already active
    if target is None:
        return _refuse(event, a)

    # -- bookkeeping --------------------------------------------------------------------
    if event is Event.RAISE:
        if not a.active and a.acked and (not a.latched or a.state is State.ACKED):
            a = replace(a, occurrence=a.occurrence + 1, acked=False, onset_ms=onset_ms,
                        returned_ms=None, latched=False)
        a = replace(a, active=True, latched=False, onset_ms=a.onset_ms or onset_ms)
    elif event is Event.CLEAR:
        a = replace(a, active=False, latched=a.latching, returned_ms=onset_ms or now_ms)
    elif event is Event.ACK:
        a = replace(a, acked=True)
    elif event is Event.RESET:
        a = replace(a, latched=False)
    elif event is Event.SHELVE:
        until = now_ms + int(round(float(duration_s or 0) * 1000))
        a = replace(a, shelved_until_ms=until, shelved_by=actor.login if actor else None)
    elif event in (Event.UNSHELVE, Event.SHELVE_EXPIRED):
        a = replace(a, shelved_until_ms=None, shelved_by=None)
    elif event is Event.SUPPRESS:
        a = replace(a, suppressed_by=a.suppressed_by | {by})
    elif event is Event.UNSUPPRESS:
        a = replace(a, suppressed_by=a.suppressed_by - {by})
    elif event is Event.OOS:
        a = replace(a, oos=True)
    elif event is Event.RETURN:
        a = replace(a, oos=False)
    # the one place states are assigned: the table's target (or the true state)
    new_state = true_state(a) if target == TRUE_STATE else target
    a = replace(a, state=new_state, changed_ms=now_ms)
    return a, _effects(alarm, a, event, now_ms, actor, reason, by)


def _has(actor: Operator | None, role: str) -> bool:
    return actor is not None and (role in actor.roles or "admin" in actor.roles)


def _check_shelve(
    a: AlarmState, actor: Operator | None, duration_s: float | None, cfg: AlarmsCfg
) -> str | None:
    if duration_s is None or duration_s <= 0:
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
_HIDE_WORD = {State.SHLVD: "shelved", State.DSUPR: "suppressed", State.OOSRV: "out of service"}


def _effects(
    old: AlarmState, new: AlarmState, event: Event, now_ms: int,
    actor: Operator | None, reason: str | None, by: str,
) -> list[Effect]:
    out: list[Effect] = []

    def eff(kind: str, src: AlarmState, text: str = "") -> None:
        out.append(Effect(kind, src.id, src.occurrence, src.priority, src.critical, now_ms,
                          text, actor.login if actor else None, reason))

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
    elif new.state is State.RTNUN and old.state is State.UNACK:
        eff("update", new, "returned to normal, not acknowledged")
    elif new.state is State.NORM and old.state is not State.NORM:
        eff("resolve", new)
    elif new.state in HIDDEN and old.state in (State.UNACK, State.ACKED, State.RTNUN):
        eff("resolve", new, _HIDE_WORD[new.state])
    if event in _OPERATOR_EVENTS or (
        event in (Event.SUPPRESS, Event.UNSUPPRESS) and by == "operator"
    ):
        eff("audit", new, f"{event.value}: {old.state.value} -> {new.state.value}")
    return out


def shelve_expired(a: AlarmState, now_ms: int) -> bool:
    """Whether the caller should send ``Event.SHELVE_EXPIRED`` to ``a`` now."""
    return a.shelved_until_ms is not None and now_ms >= a.shelved_until_ms


def mode_suppressed(
    rule_mode: str, zone_mode: str, *, at_rest_since_ms: int | None, now_ms: int,
    recovery_s: float,
) -> bool:
    """Whether a rule compiled for ``rule_mode`` is DSUPR by mode right now.

    The inactive mode's rules are suppressed; after in_operation -> at_rest the at-rest
    rules stay suppressed for ``recovery_s`` (Annex 1 clean-up time, DESIGN.md).
    Critical alarms must not be passed to ``step(SUPPRESS, by="mode")`` (it refuses).
    """
    if rule_mode != zone_mode:
        return True
    if rule_mode == "at_rest" and at_rest_since_ms is not None:
        return now_ms < at_rest_since_ms + int(recovery_s * 1000)
    return False
