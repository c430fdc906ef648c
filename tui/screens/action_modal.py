"""The operator action dialog: who you are, a mandatory reason, then the service's answer.

The request goes to the service over its Unix socket (``facility.service.socket.request``) in a
worker thread; the service identifies the operator from the socket's peer credentials, so
the login shown here is for the operator's information, never sent as a claim. A refusal
(unknown login, missing role, superseded occurrence) is shown in the dialog.

Several alarms at once (docs/ARCHITECTURE.md "Alarm lifecycle", a shift acknowledging what
came in overnight): one reason, then one request per occurrence, each on its own through the
service's ordinary action path, so each is audited on its own and a superseded occurrence is
refused on its own while the others go through. Accepted ones leave the dialog; refused ones
stay in it with the service's words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from facility.domain.display import person
from facility.domain.vocab import ZONE_MODES as MODES
from facility.domain.vocab import parse_duration
from facility.service.socket import ActionRefused, ServiceNotRunning, request
from tui.widgets.live_table import plain

TITLES = {"ack": "Acknowledge", "reset": "Reset", "shelve": "Shelve", "unshelve": "Unshelve",
          "suppress": "Suppress", "comment": "Comment on", "mode": "Change mode of"}
TIMED = ("shelve", "suppress")
"""Actions that always take a duration (docs/ARCHITECTURE.md "Critical alarms": every hide
has an end)."""


@dataclass
class ActionOutcome:
    """What the dialog returns: the payload sent and the service's reply.

    For several alarms, ``results`` holds one outcome per occurrence sent (in order) and
    ``payload`` the shared part (action and reason); ``ok`` only when every one was accepted.
    """

    ok: bool
    message: str
    payload: dict
    reply: dict | None = None
    results: list[ActionOutcome] = field(default_factory=list)

    @property
    def accepted(self) -> list[ActionOutcome]:
        """The occurrences the service accepted (a batch), or this one."""
        return [r for r in self.results if r.ok] if self.results else [self] if self.ok else []


def batch_outcome(action: str, reason: str, results: list[ActionOutcome]) -> ActionOutcome:
    """One outcome summing up a batch: ``ack 3 of 4 alarms; refused: X#2 superseded ...``."""
    ok = [r for r in results if r.ok]
    bad = [r for r in results if not r.ok]
    text = f"{len(ok)} of {len(results)} alarms done"
    if bad:
        text += "; " + "; ".join(
            f"{r.payload.get('alarm')}#{r.payload.get('occurrence')}: {r.message}" for r in bad)
    return ActionOutcome(not bad, text, {"action": action, "alarm": f"{len(results)} alarms",
                                         "reason": reason}, results=list(results))


class ActionModal(ModalScreen[ActionOutcome | None]):
    """Compose a payload, send it in a thread, show the reply or refusal."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    class Answer(Message):
        """Posted by the worker thread with the service's answer."""

        def __init__(self, outcome: ActionOutcome):
            super().__init__()
            self.outcome = outcome

    class Progress(Message):
        """Posted by the worker thread after each occurrence of a batch."""

        def __init__(self, done: int, total: int):
            super().__init__()
            self.done, self.total = done, total

    def __init__(self, action: str, db_path: str, login: str, operator: str | None, *,
                 alarm: dict | None = None, alarms: list[dict] | None = None,
                 zone: str | None = None, current_mode: str | None = None):
        super().__init__()
        self.action = action
        self.db_path = db_path
        self.login = login
        self.operator = operator
        self.alarm = alarm
        self.batch: list[dict] | None = list(alarms) if alarms is not None else None
        self.done: list[ActionOutcome] = []  # accepted occurrences of a batch, so far
        self.zone = zone
        self.current_mode = current_mode
        self.sending = False

    @property
    def subject(self) -> str:
        """What the action is about, as shown in the title."""
        if self.batch is not None:
            return f"{len(self.batch)} alarm{'s' if len(self.batch) != 1 else ''}"
        if self.alarm is not None:
            return f"{self.alarm['id']} #{self.alarm.get('occurrence')}"
        return f"zone {self.zone} (now {self.current_mode})"

    def _batch_list(self) -> str:
        """The occurrences of a batch, one a line (the first 8, then how many more)."""
        items = [f"{a['id']} #{a.get('occurrence')}" for a in self.batch or ()]
        more = len(items) - 8
        return "\n".join(items[:8] + ([f"… and {more} more"] if more > 0 else []))

    def compose(self) -> ComposeResult:
        who = (person(self.operator, self.login) if self.operator else
               f"{self.login} — not in [[operators]]: the service will refuse")
        with Vertical(id="action-box"):
            yield Label(self._title(), id="action-title")
            yield Label(f"You are: {who}", id="action-who", markup=False)
            if self.batch is not None:
                yield Static(plain(self._batch_list()), id="action-batch")
            if self.action in TIMED:
                yield Input(placeholder="for how long, e.g. 30m or 2h", id="duration")
            if self.action == "mode":
                other = [m for m in MODES if m != self.current_mode] or list(MODES)
                yield Select([(m, m) for m in MODES], value=other[0], allow_blank=False,
                             id="mode")
            yield Input(placeholder="reason (required)", id="reason")
            yield Static("", id="action-result")
            with Horizontal(id="action-buttons"):
                yield Button("Send", variant="primary", id="send")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        first = "#duration" if self.action in TIMED else "#reason"
        self.query_one(first, Input).focus()

    def _result(self, text: str, ok: bool | None) -> None:
        res = self.query_one("#action-result", Static)
        res.set_class(ok is False, "refused")
        res.set_class(ok is True, "accepted")
        res.update(plain(text))

    def payload(self, alarm: dict | None = None) -> dict:
        """The request (for ``alarm``, else the dialog's own); raises ValueError naming what
        is missing."""
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            raise ValueError("a reason is required")
        if self.action == "mode":
            mode = self.query_one("#mode", Select).value
            return {"action": "mode", "zone": self.zone, "mode": mode, "reason": reason}
        alarm = alarm if alarm is not None else self.alarm
        p = {"action": self.action, "alarm": alarm["id"],
             "occurrence": alarm.get("occurrence"), "reason": reason}
        if self.action in TIMED:
            p["duration_s"] = parse_duration(self.query_one("#duration", Input).value)
        return p

    def payloads(self) -> list[dict]:
        """One request per occurrence (a batch), or the dialog's one request."""
        if self.batch is None:
            return [self.payload()]
        if not self.batch:
            raise ValueError("no alarm left to send")
        return [self.payload(a) for a in self.batch]

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "duration":
            self.query_one("#reason", Input).focus()
        else:
            self.send()

    @on(Button.Pressed, "#send")
    def _send_pressed(self) -> None:
        self.send()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def send(self) -> None:
        """Validate and send in a worker thread (the UI stays live meanwhile)."""
        if self.sending:
            return
        try:
            payloads = self.payloads()
        except ValueError as exc:
            self._result(str(exc), False)
            return
        self.sending = True
        self._result("sending…", None)
        self.run_worker(partial(self._request_all, payloads), thread=True, group="action",
                        exit_on_error=False)

    def _request_all(self, payloads: list[dict]) -> None:
        """Worker thread: one request per payload, in order; then post the answer."""
        if self.batch is None:
            self.post_message(self.Answer(self._request(payloads[0])))
            return
        results = []
        for i, p in enumerate(payloads):
            results.append(self._request(p))
            self.post_message(self.Progress(i + 1, len(payloads)))
        self.post_message(self.Answer(batch_outcome(self.action, payloads[0]["reason"],
                                                    results)))

    def _request(self, payload: dict) -> ActionOutcome:
        """Talk to the service once (worker thread; never touches widgets)."""
        try:
            reply = request(self.db_path, payload)
            return ActionOutcome(True, reply.get("message") or "done", payload, reply)
        except ActionRefused as exc:
            return ActionOutcome(False, f"refused: {exc}", payload)
        except ServiceNotRunning as exc:
            return ActionOutcome(False, str(exc), payload)
        except OSError as exc:
            return ActionOutcome(False, f"could not reach the service: {exc}", payload)

    def on_action_modal_progress(self, message: Progress) -> None:
        self._result(f"sending… {message.done} of {message.total}", None)

    def on_action_modal_answer(self, message: Answer) -> None:
        self.sending = False
        out = message.outcome
        if self.batch is not None:
            self.done.extend(out.accepted)
            sent = {(r.payload["alarm"], r.payload["occurrence"]) for r in out.accepted}
            self.batch = [a for a in self.batch if (a["id"], a.get("occurrence")) not in sent]
            self.query_one("#action-batch", Static).update(plain(self._batch_list()))
            self.query_one("#action-title", Label).update(self._title())
            if out.ok:
                self.dismiss(self._summary(out))
            else:
                self._result(out.message, False)
            return
        if out.ok:
            self.dismiss(out)
        else:
            self._result(out.message, False)

    def _summary(self, last: ActionOutcome) -> ActionOutcome:
        """The whole batch: what was accepted in every send, and the last send's refusals."""
        refused = [r for r in last.results if not r.ok]
        return batch_outcome(self.action, last.payload.get("reason", ""), self.done + refused)

    def _title(self) -> Text:
        title = Text(f"{TITLES.get(self.action, self.action)} ", style="bold")
        return title.append(self.subject, style="")

    def action_cancel(self) -> None:
        if self.batch is not None and self.done:  # some went through: say so
            self.dismiss(batch_outcome(self.action, "", list(self.done)))
            return
        self.dismiss(None)
