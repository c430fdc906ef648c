"""LiveTable: in-place updates keep the cursor on its row key, redraw only the cells that
changed, and look exactly as Textual's own DataTable draws the same rows (Textual Pilot on a
real app; the table's own render counter, never timing)."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widgets import DataTable, Static

from tests.fixtures.wait import pilot_until
from tui.widgets.live_table import LiveTable, update_static

COLUMNS = ("Point", "Value", "Note")


def rows(n: int, value=lambda i: f"{20 + i / 10:.1f} °C") -> list[tuple[str, list]]:
    return [(f"p{i:02d}", [Text(f"P-{i:02d}"), Text(value(i), style="green" if i % 2 else "red"),
                           f"note {i}"]) for i in range(n)]


class TableApp(App):
    """A LiveTable and, for comparison, a plain DataTable of the same size."""

    CSS = """
    LiveTable, DataTable { height: 12; width: 60; }
    """

    def compose(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="live")
        yield DataTable(id="plain", cursor_type="row", zebra_stripes=False)
        yield CountingStatic("", id="label")


class CountingStatic(Static):
    """A Static that counts its updates (each one lays the screen out again)."""

    updates = 0

    def update(self, content="", *, layout: bool = True) -> None:
        self.updates += 1
        super().update(content, layout=layout)


async def settled(pilot, table: LiveTable) -> None:
    await pilot_until(pilot, lambda: table.row_count > 0 and table.measured, "the table measured")
    await pilot.pause()


def segments(table: DataTable) -> list[list[tuple]]:
    """What the widget draws, line by line: (text, style, control) of every segment."""
    width, height = table.size
    return [[(s.text, s.style, s.control) for s in strip]
            for strip in table.render_lines(Region(0, 0, width, height))]


async def test_a_changed_value_keeps_the_cursor_on_its_row_key():
    app = TableApp()
    async with app.run_test(size=(80, 40)) as pilot:
        table = app.query_one("#live", LiveTable)
        table.sync(rows(8))
        await settled(pilot, table)
        table.select_key("p05")
        await pilot_until(pilot, lambda: table.current_key == "p05", "cursor on p05")
        table.sync(rows(8, value=lambda i: f"{30 + i:.1f} °C"))
        await pilot.pause()
        assert table.current_key == "p05" and table.cursor_row == 5
        assert table.get_cell("p05", "1").plain == "35.0 °C"
        assert table.rebuilds == 1  # only the first sync built the rows


async def test_rows_added_or_removed_before_the_cursor_keep_it_on_its_key():
    app = TableApp()
    async with app.run_test(size=(80, 40)) as pilot:
        table = app.query_one("#live", LiveTable)
        table.sync(rows(6))
        await settled(pilot, table)
        table.select_key("p03")
        await pilot_until(pilot, lambda: table.current_key == "p03", "cursor on p03")
        extra = ("p00a", [Text("new"), Text("1.0 °C"), "added"])
        table.sync([rows(6)[0], extra, *rows(6)[1:]])  # a row before the cursor's
        await pilot.pause()
        assert table.current_key == "p03" and table.cursor_row == 4
        table.sync([r for r in rows(6) if r[0] not in ("p00", "p01")])  # two rows removed
        await pilot.pause()
        assert table.current_key == "p03" and table.cursor_row == 1
        assert table.rebuilds == 3


async def test_only_the_changed_cell_is_rendered_again():
    app = TableApp()
    async with app.run_test(size=(80, 40)) as pilot:
        table = app.query_one("#live", LiveTable)
        table.sync(rows(8))
        await settled(pilot, table)
        await pilot_until(pilot, lambda: table.rendered[("p07", "2")] > 0, "the rows drawn")
        before = table.rendered.copy()
        changed = rows(8)
        changed[3][1][1] = Text("99.9 °C", style="bold red")
        table.sync(changed)
        await pilot_until(pilot, lambda: table.rendered != before, "the changed cell drawn")
        await pilot.pause()
        await pilot.pause()
        new = table.rendered - before
        assert set(new) == {("p03", "1")}, new
        assert table.rebuilds == 1
        # the same rows again: nothing to draw
        table.sync(changed)
        await pilot.pause()
        await pilot.pause()
        assert table.rendered - before == new


async def test_a_row_out_of_view_is_updated_but_not_drawn():
    app = TableApp()
    async with app.run_test(size=(80, 40)) as pilot:
        table = app.query_one("#live", LiveTable)
        table.sync(rows(40))  # 12 lines tall: most rows are below the view
        await settled(pilot, table)
        await pilot_until(pilot, lambda: table.rendered[("p05", "1")] > 0, "the rows drawn")
        before = table.rendered.copy()
        changed = rows(40)
        changed[30][1][1] = Text("-5.0 °C")
        changed[2][1][1] = Text("-6.0 °C")
        table.sync(changed)
        await pilot_until(pilot, lambda: table.rendered != before, "the visible change drawn")
        await pilot.pause()
        new = table.rendered - before
        assert set(new) == {("p02", "1")}, new
        assert table.get_cell("p30", "1").plain == "-5.0 °C"


async def test_operator_text_stays_text():
    app = TableApp()
    async with app.run_test(size=(80, 40)) as pilot:
        table = app.query_one("#live", LiveTable)
        table.sync([("a", ["[bold]x[/bold]", "[/y]", "esc\x1b[31mred"])])
        await settled(pilot, table)
        assert table.get_cell("a", "0").plain == "[bold]x[/bold]"
        table.sync([("a", ["[bold]x[/bold]", "[link=http://h]go[/link]", "esc\x1b[31mred"])])
        await pilot.pause()
        assert table.get_cell("a", "1").plain == "[link=http://h]go[/link]"
        drawn = "".join(text for line in segments(table) for text, _style, _c in line)
        assert "[bold]x[/bold]" in drawn and "\x1b" not in drawn


def _fill_plain(plain: DataTable, data: list[tuple[str, list]]) -> None:
    from tui.widgets.live_table import plain as as_shown

    if not plain.columns:
        for i, label in enumerate(COLUMNS):
            plain.add_column(label, key=str(i))
    plain.clear()
    for key, cells in data:
        plain.add_row(*[as_shown(c) for c in cells], key=key)


async def test_draws_exactly_what_datatable_draws_before_and_after_an_update():
    """The faster line and cell paths of LiveTable give DataTable's own segments: styles,
    spans, wide characters, cropped text and the cursor row, then a value updated in place
    against a DataTable holding the new value."""
    data = rows(10)
    data[1][1][0] = Text("µm³ 中文 wide", style="bold")
    data[2][1][1] = Text.assemble(("3 700", "red"), " /m³")
    data[3][1][2] = "a long note that the column was measured for, nothing cut"
    data[4][1][1] = Text("right", justify="right", style="on blue")
    app = TableApp()
    async with app.run_test(size=(80, 40)) as pilot:
        live = app.query_one("#live", LiveTable)
        plain = app.query_one("#plain", DataTable)
        live.sync(data)
        _fill_plain(plain, data)
        await settled(pilot, live)
        await pilot_until(pilot, lambda: not plain._require_update_dimensions
                          and not plain._new_rows, "the plain table measured")
        for table in (live, plain):
            table.move_cursor(row=2, animate=False)
        await pilot.pause()

        async def compare() -> None:
            live.focus()
            await pilot.pause()
            drawn_live = segments(live)
            plain.focus()
            await pilot.pause()
            assert drawn_live == segments(plain)

        await compare()
        data = [(k, list(cells)) for k, cells in data]
        data[2][1][1] = Text.assemble(("4 100", "bold red"), " /m³")
        data[6][1][1] = Text("21.0 °C", style="yellow")
        data[7][1][1] = Text("20.5 °C", style="green")  # p05's value: drawn before, other row
        live.sync(data)
        for key, col in (("p02", "1"), ("p06", "1"), ("p07", "1")):
            plain.update_cell(key, col, data[int(key[1:])][1][int(col)])
        await compare()


async def test_update_static_skips_content_already_shown():
    app = TableApp()
    async with app.run_test(size=(80, 40)) as pilot:
        label = app.query_one("#label", CountingStatic)
        update_static(label, Text("3 UNACK", style="red"))
        update_static(label, Text("3 UNACK", style="red"))
        assert label.updates == 1
        update_static(label, Text("3 UNACK", style="yellow"))  # same text, other colour
        update_static(label, "3 UNACK")
        assert label.updates == 3
        await pilot.pause()
        assert label.content == "3 UNACK"
