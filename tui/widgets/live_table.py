"""A DataTable that takes whole row lists each refresh and redraws only the cells that changed.

Rebuilding a table every second would reset the cursor and repaint everything; instead
cells are compared with what was last shown and replaced in place, and the table is
rebuilt only when the set or order of rows changes (keeping the cursor on its row).

Textual's own ``update_cell`` invalidates every render cache of the table (they are keyed
on one update count) and repaints the whole widget, so a table where one value a second
changes re-renders every visible cell each second. :meth:`LiveTable.sync` instead writes
the changed cells into the table's data, drops only their rows' cached renderings and
repaints only their lines where they are in view: a row scrolled out of view costs a
comparison, not a rendering (docs/ARCHITECTURE.md "The technician's terminal").

A changed line is then drawn through shorter forms of DataTable's own line and cell paths
(the values that are the same for every line of a paint looked up once; a cell's rendering
reused when the same text, width and styles were drawn before). They read DataTable's
internal caches and produce its segments exactly: tests/tui/test_live_table.py compares
them with a plain DataTable, so a Textual upgrade that changes those internals fails there.
"""

from __future__ import annotations

from collections import Counter
from itertools import chain
from typing import Any

from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._segment_tools import line_crop
from textual.cache import LRUCache
from textual.color import Color
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.renderables.styled import Styled
from textual.strip import Strip
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey, RowKey

from facility.domain.text import clean_terminal


def plain(cell: Any) -> Any:
    """A cell as shown: text is data, never markup (a reason "[/x]" is four characters, not
    a closing tag) and never a terminal control sequence (docs/ARCHITECTURE.md "Hostile
    input"); Rich Text built by the views keeps its styles."""
    if isinstance(cell, Text):
        return cell
    return Text(clean_terminal(str(cell)))


def _sig(cell: Any) -> Any:
    """What decides how a cell looks: a Text's characters, styles and alignment; anything
    else by its string (shown through :func:`plain`)."""
    if isinstance(cell, Text):
        return (cell.plain, cell.style, tuple(cell.spans), cell.justify, cell.overflow,
                cell.no_wrap)
    return str(cell)


def update_static(static: Static, content: Any) -> None:
    """``static.update(content)`` unless it already shows exactly that.

    An update lays the whole screen out again (a Static's size follows its content), which
    costs more than the rest of a refresh; most of a screen's one-line labels read the same
    from one second to the next. Strings stay markup as with ``Static.update``.
    """
    sig = (type(content), _sig(content))
    if getattr(static, "_shown_sig", None) != sig:
        static._shown_sig = sig
        static.update(content)


class _CountingCache(LRUCache):
    """DataTable's cell-render cache, counting every cell stored in it: a cell is stored
    exactly when it has been rendered, so the count is the table's rendering work."""

    __slots__ = ("rendered",)

    def __init__(self, maxsize: int, rendered: Counter):
        super().__init__(maxsize)
        self.rendered = rendered

    def set(self, key, value) -> None:
        row_key, column_key = key[0], key[1]
        self.rendered[(row_key.value, column_key.value)] += 1
        super().set(key, value)

    __setitem__ = set


class LiveTable(DataTable):
    """Row-cursor table synchronised from ``(key, cells)`` lists."""

    def __init__(self, columns: tuple[str, ...], **kwargs: Any):
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", False)
        super().__init__(**kwargs)
        self._columns = columns
        self._keys: list[str] = []
        self._index: dict[str, int] = {}
        self._shown: dict[str, list[Any]] = {}
        self.rendered: Counter[tuple[str | None, str | None]] = Counter()
        """Cells rendered since mount, per ``(row key, column index)`` of the rows shown now
        (the header's row key is None): what a refresh cost, counted rather than timed."""
        self.rebuilds = 0
        """Times the rows were cleared and added again (the set or order of keys changed)."""
        self._cell_render_cache = _CountingCache(self._cell_render_cache.maxsize, self.rendered)
        self._pass: dict[str, Any] | None = None  # see render_lines
        self._by_content: LRUCache[tuple, tuple[list, bool]] = LRUCache(4096)
        """Cell renderings by what the cell shows, its width and styles, without the
        row/column meta DataTable puts on every segment (for mouse clicks): a reading that
        comes back to a value shown before, in any row, is not rendered again."""

    def on_mount(self) -> None:
        for i, label in enumerate(self._columns):
            self.add_column(label, key=str(i))

    def render_lines(self, crop: Region) -> list[Strip]:
        """Render the lines in ``crop`` with what stays the same for all of them (the base
        style, size, scroll offset, cursor and column widths) looked up once, not per line."""
        self._pass = {}
        try:
            return super().render_lines(crop)
        finally:
            self._pass = None

    def _simple(self) -> dict[str, Any] | None:
        """The values of this render pass for the layout LiveTable uses (no fixed rows or
        columns, no row labels); None outside a pass or for any other layout."""
        p = self._pass
        if p is None or self.fixed_rows or self.fixed_columns or self._should_render_row_labels:
            return None
        if not p:
            p["base"] = self.rich_style
            p["top"] = self.header_height if self.show_header else 0
            p["scroll"] = self.scroll_offset
            p["width"] = self.size.width
            p["cursor"] = self.cursor_coordinate
            p["hover"] = self.hover_coordinate
            p["columns"] = [(i, c.get_render_width(self)) for i, c in enumerate(self.ordered_columns)]
            p["background"] = self.background_colors[1]
        return p

    def render_line(self, y: int) -> Strip:
        """DataTable's ``render_line`` with the pass's values (see :meth:`render_lines`)."""
        p = self._simple()
        if p is None:
            return super().render_line(y)
        scroll_x, scroll_y = p["scroll"]
        if y >= p["top"]:
            y += scroll_y
        return self._render_line(y, scroll_x, scroll_x + p["width"], p["base"])

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """DataTable's ``_render_line`` (same cache, same strip) with the pass's values."""
        p = self._simple()
        if p is None:
            return super()._render_line(y, x1, x2, base_style)
        width = p["width"]
        try:
            row_key, y_offset_in_row = self._get_offsets(y)
        except LookupError:
            return Strip.blank(width, base_style)
        cursor, hover = p["cursor"], p["hover"]
        cache_key = (y, x1, x2, width, cursor, hover, base_style, self.cursor_type,
                     self._show_hover_cursor, self._update_count, self._pseudo_class_state)
        line_cache = self._line_cache
        if cache_key in line_cache:
            return line_cache[cache_key]
        fixed, scrollable = self._render_line_in_row(
            row_key, y_offset_in_row, base_style, cursor_location=cursor, hover_location=hover)
        fixed_line: list[Segment] = list(chain.from_iterable(fixed)) if fixed else []
        segments = fixed_line + line_crop(list(chain.from_iterable(scrollable)), x1, x2, width)
        strip = Strip(segments).adjust_cell_length(width, base_style).simplify()
        line_cache[cache_key] = strip
        return strip

    def _render_line_in_row(self, row_key: RowKey, line_no: int, base_style: Style,
                            cursor_location: Coordinate, hover_location: Coordinate):
        """DataTable's ``_render_line_in_row`` (same cache, same segments) with the pass's
        column widths and background, for the layout of :meth:`_simple`."""
        p = self._simple()
        if p is None:
            return super()._render_line_in_row(row_key, line_no, base_style, cursor_location,
                                               hover_location)
        cursor_type = self.cursor_type
        show_cursor = self.show_cursor
        cache_key = (row_key, line_no, base_style, cursor_location, hover_location, cursor_type,
                     show_cursor, self._show_hover_cursor, self._update_count,
                     self._pseudo_class_state)
        row_cache = self._row_render_cache
        if cache_key in row_cache:
            return row_cache[cache_key]
        should_highlight = self._should_highlight
        render_cell = self._render_cell
        row_index = self._row_locations.get(row_key) if row_key in self._row_locations else -1
        row_style = self._get_row_style(row_index, base_style)
        scrollable_row = []
        table_width = 0
        for column_index, width in p["columns"]:
            cell_location = Coordinate(row_index, column_index)
            scrollable_row.append(render_cell(
                row_index, column_index, row_style, width,
                cursor=should_highlight(cursor_location, cell_location, cursor_type),
                hover=should_highlight(hover_location, cell_location, cursor_type))[line_no])
            table_width += width
        remaining_space = max(0, p["width"] - table_width)
        if cursor_type == "row":
            extend_style, _ = self._get_styles_to_render_cell(
                row_index == -1, False, False,
                should_highlight(hover_location, Coordinate(row_index or 0, 0), cursor_type),
                row_index == cursor_location.row, show_cursor, self._show_hover_cursor,
                False, False)
            extend_style = row_style + extend_style
        elif row_style.bgcolor is not None:
            faded_color = Color.from_rich_color(row_style.bgcolor).blend(
                p["background"], factor=0.25)
            extend_style = Style.from_color(color=row_style.color,
                                            bgcolor=faded_color.rich_color)
        else:
            extend_style = Style.from_color(row_style.color, row_style.bgcolor)
        extend_style += Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
        scrollable_row.append([Segment(" " * remaining_space, extend_style)])
        row_pair = ([], scrollable_row)
        row_cache[cache_key] = row_pair
        return row_pair

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False):
        """DataTable's cell rendering, for a one-line data cell through :attr:`_by_content`.

        The lines are what DataTable renders (the cell padded, the row's and the cursor's
        styles layered around the cell's own), then the cell's ``row``/``column`` meta added
        to each segment; a cell whose own styles carry meta, the header, row labels and
        taller rows take DataTable's own path.
        """
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        cell_cache_key = (row_key, column_key, base_style, cursor, hover,
                          self._show_hover_cursor, self._update_count, self._pseudo_class_state)
        cache = self._cell_render_cache
        if cell_cache_key in cache:
            return cache[cell_cache_key]
        row = self.rows[row_key]
        cell = self._get_row_renderables(row_index).cells[column_index]
        if row.height != 1 or not isinstance(cell, Text) or base_style._meta:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        component_style, post_style = self._get_styles_to_render_cell(
            False, False, row_index < self.fixed_rows or column_index < self.fixed_columns,
            hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        content_key = (_sig(cell), cell.end, width, base_style, component_style, post_style,
                       self.cell_padding)
        entry = self._by_content.get(content_key)
        if entry is None:
            options = self.app.console_options.update_dimensions(width, 1).update(no_wrap=True)
            lines = self.app.console.render_lines(
                Styled(Padding(cell, (0, self.cell_padding)),
                       pre_style=base_style + component_style, post_style=post_style), options)
            has_meta = any(seg.style is not None and seg.style._meta
                           for line in lines for seg in line)
            entry = (lines, has_meta)
            self._by_content[content_key] = entry
        lines, has_meta = entry
        if has_meta:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        meta = Style.from_meta({"row": row_index, "column": column_index})
        out = [[Segment(text, None if style is None else style + meta, control)
                for text, style, control in line] for line in lines]
        cache[cell_cache_key] = out
        return out

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

        A DataTable measures new rows when its message queue runs empty (LiveTable measures
        the rows of a rebuild at once when mounted), so rows added otherwise can be drawn for
        a while at the widths from before; tests that compare pictures wait for this. (Reads DataTable's pending-work fields: an upgrade of Textual
        that renames them fails here loudly rather than making the wait pass.)
        """
        return not self._require_update_dimensions and not self._new_rows \
            and not self._updated_cells

    def select_key(self, key: str) -> None:
        """Move the cursor to a row by key (no-op when absent)."""
        if key in self._index:
            self.move_cursor(row=self._index[key])

    def sync(self, rows: list[tuple[str, list]]) -> None:
        """Show exactly ``rows``; update in place when only cell contents changed."""
        keys = [k for k, _ in rows]
        if keys != self._keys:
            self._rebuild(rows, keys)
            return
        changed: dict[str, list[tuple[int, Text]]] = {}
        shown = self._shown
        for key, cells in rows:
            old = shown[key]
            for i, cell in enumerate(cells):
                sig = _sig(cell)
                if old[i] != sig:
                    old[i] = sig
                    changed.setdefault(key, []).append((i, plain(cell)))
        if changed:
            self._replace_cells(changed)

    def _rebuild(self, rows: list[tuple[str, list]], keys: list[str]) -> None:
        current = self.current_key
        self.clear()
        self.rebuilds += 1
        self._keys = keys
        self._index = {k: i for i, k in enumerate(keys)}
        self._shown = {}
        for gone in [k for k in self.rendered if k[0] is not None and k[0] not in self._index]:
            del self.rendered[gone]
        for key, cells in rows:
            self.add_row(*[plain(c) for c in cells], key=key)
            self._shown[key] = [_sig(c) for c in cells]
        if self.is_mounted and self._new_rows:
            # measured now, as DataTable would when idle: the rows are not drawn once at
            # the old column widths and then again at the measured ones
            new_rows = set(self._new_rows)
            self._new_rows.clear()
            self._require_update_dimensions = False
            self._update_dimensions(new_rows)
        if current in self._index:
            self.move_cursor(row=self._index[current], animate=False)

    def _replace_cells(self, changed: dict[str, list[tuple[int, Text]]]) -> None:
        """Put new contents into cells and drop only their cached renderings.

        DataTable keeps four render caches: cells (keyed by row and column key), rows'
        lines (by row key), the table's lines (by y) and rows' renderables (by update count
        and row index). Entries of the changed rows go; the rest stay valid because the
        update count is left alone. Column widths stay as measured when the rows were added
        (as with ``update_cell`` without ``update_width``).
        """
        data = self._data
        update_count = self._update_count
        cells: set[tuple[str, str]] = set()
        for key, items in changed.items():
            row = data[RowKey(key)]
            for i, cell in items:
                column_key = ColumnKey(str(i))
                row[column_key] = cell
                cells.add((key, column_key.value))
            self._row_renderable_cache.discard((update_count, self._index[key]))
        cell_cache = self._cell_render_cache
        for k in [k for k in cell_cache.keys() if (k[0].value, k[1].value) in cells]:
            cell_cache.discard(k)
        row_cache = self._row_render_cache
        for k in [k for k in row_cache.keys() if k[0].value in changed]:
            row_cache.discard(k)
        top = self.header_height if self.show_header else 0
        ys = {top + y for y, (row_key, _line) in enumerate(self._y_offsets)
              if row_key.value in changed}
        line_cache = self._line_cache
        for k in [k for k in line_cache.keys() if k[0] in ys]:
            line_cache.discard(k)
        self._refresh_lines(ys)

    def _refresh_lines(self, ys: set[int]) -> None:
        """Repaint the lines (table y, header included) that are in view, in runs."""
        width, height = self.size
        if not ys or not width or not height:
            return
        fixed = sum(self.get_row_height(self._row_locations.get_key(i))
                    for i in range(self.fixed_rows))
        if self.show_header:
            fixed += self.header_height
        scroll_y = self.scroll_offset.y
        regions: list[Region] = []
        start = None
        for screen_y in range(height + 1):
            dirty = screen_y < height and (
                screen_y if screen_y < fixed else screen_y + scroll_y) in ys
            if dirty and start is None:
                start = screen_y
            elif not dirty and start is not None:
                regions.append(Region(0, start, width, screen_y - start))
                start = None
        if regions:
            self.refresh(*regions)
