"""The operator action dialog: who you are, a mandatory reason, then the service's answer.

The request goes to the service over its Unix socket (``facility.service.socket.request``) in a
worker thread; the service identifies the operator from the socket's peer credentials, so
the login shown here is for the operator's information, never sent as a claim. A refusal
(unknown login, missing role, superseded occurrence) is shown in the dialog.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

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
    """What the dialog returns: the payload sent and the service's reply."""

    ok: bool
    message: str
    payload: dict
    reply: dict | None = None


class ActionModal(ModalScreen[ActionOutcome | None]):
    """Compose a payload, send it in a thread, show the reply or refusal."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    class Answer(Message):
        """Posted by the worker thread with the service's answer."""

        def __init__(self, outcome: ActionOutcome):
            super().__init__()
            self.outcome = outcome

    def __init__(self, action: str, db_path: str, login: str, operator: str | None, *,
                 alarm: dict | None = None, zone: str | None = None,
                 current_mode: str | None = None):
        super().__init__()
        self.action = action
        self.db_path = db_path
        self.login = login
        self.operator = operator
        self.alarm = alarm
        self.zone = zone
        self.current_mode = current_mode
        self.sending = False

    @property
    def subject(self) -> str:
        """What the action is about, as shown in the title."""
        if self.alarm is not None:
            return f"{self.alarm['id']} #{self.alarm.get('occurrence')}"
        return f"zone {self.zone} (now {self.current_mode})"

    def compose(self) -> ComposeResult:
        who = (f"{self.login} ({self.operator})" if self.operator else
               f"{self.login} — not in [[operators]]: the service will refuse")
        with Vertical(id="action-box"):
            yield Label(f"[b]{TITLES.get(self.action, self.action)}[/b] {self.subject}",
                        id="action-title")
            yield Label(f"You are: {who}", id="action-who")
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

    def payload(self) -> dict:
        """The request; raises ValueError naming what is missing."""
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            raise ValueError("a reason is required")
        if self.action == "mode":
            mode = self.query_one("#mode", Select).value
            return {"action": "mode", "zone": self.zone, "mode": mode, "reason": reason}
        p = {"action": self.action, "alarm": self.alarm["id"],
             "occurrence": self.alarm.get("occurrence"), "reason": reason}
        if self.action in TIMED:
            p["duration_s"] = parse_duration(self.query_one("#duration", Input).value)
        return p

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
            payload = self.payload()
        except ValueError as exc:
            self._result(str(exc), False)
            return
        self.sending = True
        self._result("sending…", None)
        self.run_worker(partial(self._request, payload), thread=True, group="action",
                        exit_on_error=False)

    def _request(self, payload: dict) -> None:
        """Worker thread: talk to the service, then post the answer (never touch widgets)."""
        try:
            reply = request(self.db_path, payload)
            out = ActionOutcome(True, reply.get("message") or "done", payload, reply)
        except ActionRefused as exc:
            out = ActionOutcome(False, f"refused: {exc}", payload)
        except ServiceNotRunning as exc:
            out = ActionOutcome(False, str(exc), payload)
        except OSError as exc:
            out = ActionOutcome(False, f"could not reach the service: {exc}", payload)
        self.post_message(self.Answer(out))

    def on_action_modal_answer(self, message: Answer) -> None:
        self.sending = False
        out = message.outcome
        if out.ok:
            self.dismiss(out)
        else:
            self._result(out.message, False)

    def action_cancel(self) -> None:
        self.dismiss(None)
