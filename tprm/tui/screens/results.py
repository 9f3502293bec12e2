"""Results screen: sortable, filterable table of cell records; export to CSV or JSON."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static

from tprm.service import result_columns

from tprm.tui.screens.base import TaskScreen
from tprm.tui.screens.cell import CellScreen
from tprm.tui.screens.confirm import ConfirmModal
from tprm.tui.screens.prompt import PromptModal
from tprm.tui.viewmodel import (
    RESULT_COLUMNS, RESULT_HEADERS, display_cells, export_rows, filter_error, filter_rows, sort_rows,
)
from tprm.tui.widgets.tables import ListTable


def fetch_results(svc: Any, recipe: str) -> tuple[list[dict[str, Any]], str | None]:
    """The screen's whole data path: service calls -> display rows (+ a note when a part is missing).

    Each row carries its own dense seed's regime (svc.results.table) and its cell's normalized
    error (the service's normalized_error grid built from the same records).
    """
    data = svc.results.rows(recipe)  # the same rows `tprm results --csv` writes
    return data["rows"], data["note"]


class ResultsScreen(TaskScreen):
    """One row per (temperature, density, dense seed) cell, as measured so far."""

    MODE = "results"
    HELP_TITLE = "3 Results"
    BINDINGS = [
        Binding("o", "open_cell", "Open cell",
                tooltip="open the row's cell: numbers per seed, LMC and training curves (also Enter)"),
        Binding("s", "sort", "Sort", tooltip="sort by the cursor's column (again: reverse)"),
        Binding("slash", "filter", "Filter", tooltip="filter: text, or column<op>value (e.g. mc<0 T>=16)"),
        Binding("x", "export", "Export", tooltip="export the rows shown to a .csv or .json file"),
        Binding("escape", "leave_filter", "Table", tooltip="from the filter back to the table"),
        Binding("f5", "reload", "Reload", tooltip="reload the results"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.shown: list[dict[str, Any]] = []
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.note: str | None = None
        self.columns: tuple[str, ...] = RESULT_COLUMNS  # plus weightwatcher's for a recipe with them

    def compose_body(self) -> Iterable[Widget]:
        yield Input(placeholder="/ filter: text or column<op>value, e.g. density<0.5 mc<0", id="results-filter",
                    compact=True)
        table: DataTable[str] = ListTable(id="results-table", cursor_type="cell", zebra_stripes=True)
        self._add_columns(table)
        yield table
        yield Static("", id="results-status", markup=False)

    def _add_columns(self, table: DataTable) -> None:
        for col in self.columns:
            table.add_column(RESULT_HEADERS[col], key=col)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#results-table", DataTable).focus()

    def reload(self) -> None:
        recipe = self.tprm.recipe
        if recipe is None:
            return
        self.call_service(fetch_results, self.tprm.svc, recipe, done=self._loaded, group="results-load")

    def action_reload(self) -> None:
        self.reload()

    def _loaded(self, data: tuple[list[dict[str, Any]], str | None]) -> None:
        self.rows, self.note = data
        columns = result_columns(self.rows)
        if columns != self.columns:  # a recipe with weightwatcher's columns, or back without them
            self.columns = columns
            table = self.query_one("#results-table", DataTable)
            table.clear(columns=True)
            self._add_columns(table)
            if self.sort_column not in columns:
                self.sort_column = None
        self.refresh_table()

    def refresh_table(self) -> None:
        """Apply the filter and sort to the rows and rebuild the table."""
        query = self.query_one("#results-filter", Input).value
        error = filter_error(query)  # a bad filter is reported, not silently matched against nothing
        shown = filter_rows(self.rows, "" if error else query)
        if self.sort_column:
            shown = sort_rows(shown, self.sort_column, self.sort_reverse)
        self.shown = list(shown)
        table = self.query_one("#results-table", DataTable)
        cursor = table.cursor_coordinate
        table.clear()
        table.add_rows([display_cells(r, self.columns) for r in self.shown])
        if self.shown:
            table.cursor_coordinate = cursor
        sort = (f"sorted by {RESULT_HEADERS[self.sort_column]} {'desc' if self.sort_reverse else 'asc'}"
                if self.sort_column else "unsorted")
        status = f"{len(self.shown)} of {len(self.rows)} cells, {sort}"
        if self.note:
            status += f"; {self.note}"
        if error:
            status = f"{error} (showing all {len(self.rows)} cells)"
        line = self.query_one("#results-status", Static)
        line.update(status)
        line.set_class(bool(error), "error")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "results-filter":
            self.refresh_table()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "results-filter":
            self.query_one("#results-table", DataTable).focus()

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        if event.data_table.id == "results-table":
            event.stop()
            self.action_open_cell()

    def action_open_cell(self) -> None:
        """Open the selected row's cell (the TUI's `tprm show`)."""
        table, recipe = self.query_one("#results-table", DataTable), self.tprm.recipe
        if not self.shown or recipe is None or table.cursor_row >= len(self.shown):
            self.notify("no row selected", title="Open cell")
            return
        row = self.shown[table.cursor_row]
        self.app.push_screen(CellScreen(recipe, row["temperature"], row["density"]))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        self._sort_by(str(event.column_key.value))

    def action_sort(self) -> None:
        table = self.query_one("#results-table", DataTable)
        self._sort_by(self.columns[table.cursor_column])

    def _sort_by(self, column: str) -> None:
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self.refresh_table()

    def action_filter(self) -> None:
        self.query_one("#results-filter", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_filter":  # shown (and active) only while the filter field has focus
            return getattr(self.focused, "id", None) == "results-filter"
        return True

    def action_leave_filter(self) -> None:
        self.query_one("#results-table", DataTable).focus()

    def action_export(self) -> None:
        recipe = self.tprm.recipe or "results"
        default = str(Path.cwd() / f"{recipe}-results.csv")

        def write(path: str) -> None:
            rows = list(self.shown)
            self.call_service(export_rows, rows, path, group="results-export",
                              done=lambda p: self.app.notify(f"{len(rows)} rows written to {p}", title="Export"))

        def chosen(path: str | None) -> None:
            if not path:
                return
            target = Path(path).expanduser()
            if not target.exists():
                write(path)
                return
            self.app.push_screen(ConfirmModal(
                f"{target} already exists ({target.stat().st_size} bytes). Overwrite it with the "
                f"{len(self.shown)} rows shown?", title="Overwrite?", yes="Overwrite", no="Keep it"),
                lambda yes: yes and write(path))

        self.app.push_screen(PromptModal(
            "Export results", value=default,
            hint=f"Writes the {len(self.shown)} rows shown (the filter applies). "
                 "The file name decides the format: .csv or .json."), chosen)
