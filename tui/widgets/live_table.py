"""A DataTable that takes whole row lists each refresh and changes only what changed.

Rebuilding a table every second would reset the cursor and repaint everything; instead
cells are compared with what was last shown and updated in place, and the table is
rebuilt only when the set or order of rows changes (keeping the cursor on its row).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from facility.domain.text import clean_terminal


def plain(cell: Any) -> Any:
    """A cell as shown: text is data, never markup (a reason "[/x]" is four characters, not
    a closing tag) and never a terminal control sequence (docs/ARCHITECTURE.md "Hostile
    input"); Rich Text built by the views keeps its styles."""
    if isinstance(cell, Text):
        return cell
    return Text(clean_terminal(str(cell)))


def _sig(cell: Any) -> tuple:
    if isinstance(cell, Text):
        return (cell.plain, str(cell.style), tuple((s.start, s.end, str(s.style)) for s in cell.spans))
    return (str(cell),)


class LiveTable(DataTable):
    """Row-cursor table synchronised from ``(key, cells)`` lists."""

    def __init__(self, columns: tuple[str, ...], **kwargs: Any):
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", False)
        super().__init__(**kwargs)
        self._columns = columns
        self._keys: list[str] = []
        self._shown: dict[str, list[tuple]] = {}

    def on_mount(self) -> None:
        for i, label in enumerate(self._columns):
            self.add_column(label, key=str(i))

    @property
    def current_key(self) -> str | None:
        """The key of the row under the cursor (None when empty)."""
        if not self._keys or self.cursor_row < 0 or self.cursor_row >= len(self._keys):
            return None
        return self._keys[self.cursor_row]

    def _update_dimensions(self, new_rows) -> None:
        """DataTable measures new rows when idle, but lines it drew before at the old column
        widths stay in its render caches (keyed on an update count the measurement leaves
        alone): the overview then kept its zone names cut to the header's width. Bumping
        the count after each measurement redraws them at the measured widths."""
        super()._update_dimensions(new_rows)
        self._update_count += 1
        self.refresh()

    @property
    def measured(self) -> bool:
        """Whether the column widths account for every row added and cell changed.

        A DataTable measures new rows when its message queue runs empty, so on a busy
        machine rows can be drawn for a while at the widths from before; tests that compare
        pictures wait for this. (Reads DataTable's pending-work fields: an upgrade of Textual
        that renames them fails here loudly rather than making the wait pass.)
        """
        return not self._require_update_dimensions and not self._new_rows \
            and not self._updated_cells

    def select_key(self, key: str) -> None:
        """Move the cursor to a row by key (no-op when absent)."""
        if key in self._keys:
            self.move_cursor(row=self._keys.index(key))

    def sync(self, rows: list[tuple[str, list]]) -> None:
        """Show exactly ``rows``; update in place when only cell contents changed."""
        keys = [k for k, _ in rows]
        if keys == self._keys:
            for key, cells in rows:
                old = self._shown[key]
                for i, cell in enumerate(map(plain, cells)):
                    sig = _sig(cell)
                    if old[i] != sig:
                        self.update_cell(key, str(i), cell)
                        old[i] = sig
            return
        current = self.current_key
        self.clear()
        self._keys = keys
        self._shown = {}
        for key, cells in rows:
            cells = [plain(c) for c in cells]
            self.add_row(*cells, key=key)
            self._shown[key] = [_sig(c) for c in cells]
        if current in keys:
            self.move_cursor(row=keys.index(current), animate=False)
