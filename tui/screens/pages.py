"""Pages: what the on-call engineer was sent (the demo's pane, key 6 or p).

One row per page per channel from the paging outbox, newest first, read through the store's
read API (``StoreReaders.pages``) on a worker thread while the screen is in view; the
highlighted page's whole text below. ``facility pages`` prints the same list.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from facility.store import Store
from tui.data import Snapshot
from tui.fmt import local_time
from tui.screens.base import DataScreen
from tui.views.common import site_tz
from tui.widgets.live_table import LiveTable, plain

PAGE_COLUMNS = ("time", "delivery", "priority", "event", "alarm", "channel", "text")
PAGE_LIMIT = 200  # the newest pages shown; `facility pages --limit 0` lists them all
TEXT_CHARS = 60  # of a page's title in its row; the whole text is under the table


def delivery(row: dict) -> str:
    """``sent``, ``queued`` (not tried yet), ``retrying`` or ``failed``."""
    if row["state"] == "pending":
        return "retrying" if row["attempts"] else "queued"
    return row["state"]


def page_rows(rows: list[dict], tz: str) -> list[tuple[str, list]]:
    """``(key, cells)`` per page, newest first."""
    out = []
    for r in rows:
        msg = r["message"] if isinstance(r["message"], dict) else {}
        details = msg.get("custom_details") if isinstance(msg.get("custom_details"), dict) else {}
        text = str(msg.get("title") or msg.get("summary", ""))  # the short form
        alarm = f"{r['alarm_id']}#{r['occurrence']}" if r["alarm_id"] else "-"
        out.append((str(r["id"]), [
            local_time(r["created_ms"], tz)[11:19], delivery(r),
            r["priority"] or details.get("priority") or "-", msg.get("event") or r["action"],
            alarm, r["channel"], text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS - 1] + "…",
        ]))
    return out


class PagesScreen(DataScreen):
    """The outbox, newest first; refreshed with each snapshot while in view."""

    MODE = "pages"

    def body(self) -> ComposeResult:
        yield Static("pages sent to the on-call engineer, newest first"
                     " (facility pages lists them all)", id="pages-title")
        yield LiveTable(PAGE_COLUMNS, id="page-list")
        yield Static("", id="page-detail")

    def on_mount(self) -> None:
        self._reading = False
        self.rows: list[dict] = []
        self.error: str | None = None
        self.query_one("#page-list", LiveTable).focus()

    def show_body(self, snap: Snapshot) -> None:
        if self._reading:
            return
        self._reading = True
        self.run_worker(self._read, thread=True, group="pages", exit_on_error=False)

    def _read(self) -> None:
        """Worker thread: read the outbox, then draw on the UI thread."""
        try:
            with Store(self.app.db_path, readonly=True) as store:
                rows, error = store.pages(limit=PAGE_LIMIT), None
        except Exception as exc:  # noqa: BLE001 - shown on the screen, retried next refresh
            rows, error = [], f"{type(exc).__name__}: {exc}"
        try:
            self.app.call_from_thread(self._draw, rows, error)
        except RuntimeError:  # the app is shutting down
            pass

    def _draw(self, rows: list[dict] | None, error: str | None) -> None:
        self._reading = False
        if not self.is_mounted:
            return
        self.rows, self.error = rows or [], error
        tz = site_tz(self.app.cfg, None)
        self.query_one("#page-list", LiveTable).sync(page_rows(self.rows, tz))
        self._detail()

    def _detail(self) -> None:
        detail = self.query_one("#page-detail", Static)
        if self.error is not None:
            detail.update(plain(f"cannot read the pages: {self.error}"))
            return
        key = self.query_one("#page-list", LiveTable).current_key
        r = next((r for r in self.rows if str(r["id"]) == key), None)
        if r is None:
            detail.update("no pages yet")
            return
        msg = r["message"] if isinstance(r["message"], dict) else {}
        error = f" · last error: {r['last_error']}" if r["last_error"] else ""
        detail.update(plain(f"{msg.get('summary', '')}{error}"))

    def on_data_table_row_highlighted(self, event) -> None:
        if event.data_table.id == "page-list":
            self._detail()
