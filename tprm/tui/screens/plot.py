"""Phase plot: a metric (or the regime map) over temperature x density, with a cell inspector."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import DataTable, Label, Select, Static

from tprm.tui.screens.base import TaskScreen
from tprm.tui.screens.cell import CellScreen
from tprm.tui.viewmodel import PLOT_METRICS, cell_details, fmt_num, fmt_value, grid_lookup, group_records


def plot_metrics(svc: Any, records: Any = ()) -> tuple[str, ...]:
    """The metrics the service can plot for these cell records (weightwatcher's only where the
    recipe measures them), the regime map first."""
    metrics = tuple(svc.results.present_metrics(records))
    return ("regime", *[m for m in metrics if m != "regime"]) if "regime" in metrics else metrics


INSPECTED_METRICS = ("test_error", "mc", "cka", "dense_test_error")


def fetch_cells(svc: Any, recipe: str) -> dict[str, Any]:
    """What the inspector shows, from one read of the results: the grids the plot uses, and the records."""
    records = svc.results.cells(recipe)
    means, spreads = {}, {}
    for metric in INSPECTED_METRICS:
        grid = svc.results.grid(recipe, metric, cells=records)
        means[metric], spreads[metric] = grid_lookup(grid, "mean"), grid_lookup(grid, "spread")
    try:
        regimes = svc.results.grid(recipe, "regime", cells=records)
    except Exception:  # e.g. a median split on an incomplete grid: the inspector still shows the numbers
        regimes = None
    return {"mean": means, "spread": spreads, "regime": grid_lookup(regimes, "regime"),
            "reason": grid_lookup(regimes, "reason"), "records": group_records(records),
            "metrics": plot_metrics(svc, records)}


def color_depth() -> str:
    """Coloured heat-map blocks (Textual maps 24-bit colour down to what the terminal has), or the
    plain glyph + number grid under NO_COLOR or TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return "none"
    return "truecolor"


def fetch_plot(svc: Any, recipe: str, metric: str, width: int, height: int, page: int = 0) -> dict[str, Any]:
    """The plot text at this size and the metric's grid values for the inspector table."""
    depth = color_depth()
    text = svc.results.plot(recipe, metric, width=width, height=height, table=False, color=depth != "none",
                    page=page, depth=depth)
    grid = svc.results.grid(recipe, metric)
    field = "regime" if metric == "regime" else "mean"
    temps = [float(t) for t in _field(grid, "temperatures") or []]
    dens = [float(d) for d in _field(grid, "densities") or []]
    return {"text": text, "values": grid_lookup(grid, field), "temperatures": temps, "densities": dens,
            "metric": metric, "page": page}


def _field(grid: Any, name: str) -> Any:
    return grid.get(name) if isinstance(grid, dict) else getattr(grid, name, None)


class PlotScreen(TaskScreen):
    """The plot comes from the service as text; the grid below it is the inspector's cursor."""

    MODE = "plot"
    HELP_TITLE = "4 Plot"
    BINDINGS = [
        Binding("m", "pick_metric", "Metric", tooltip="choose the metric (regime, test_error, mc, cka, ...)"),
        Binding("right_square_bracket", "next_metric(1)", "Next metric", show=False, tooltip="next metric"),
        Binding("left_square_bracket", "next_metric(-1)", "Prev metric", show=False,
                tooltip="previous metric"),
        Binding("i", "inspect", "Inspect", tooltip="move the cell cursor (arrow keys) over the grid"),
        Binding("o", "open_cell", "Open cell",
                tooltip="open the inspected cell: numbers per seed, LMC and training curves (also Enter)"),
        Binding("z", "zoom", "Zoom", tooltip="hide/show the inspector (a taller plot)"),
        Binding("p", "next_page", "Page", show=False, tooltip="next page of a grid too large for the screen"),
        Binding("f5", "reload", "Reload", show=False, tooltip="reload the plot"),
        Binding("w", "write_report", "Report", tooltip="write the report (report.md, PNG and SVG figures)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.metric = "regime"
        self.page = 0
        self.metrics: tuple[str, ...] = PLOT_METRICS
        self.cells: dict[str, Any] = {}
        self.plot_data: dict[str, Any] = {}
        self.plot_text = ""
        self._plot_size: tuple[int, int] = (0, 0)
        self._inspected: tuple[float, float] | None = None  # kept across metric changes and reloads

    def compose_body(self) -> Iterable[Widget]:
        self.metrics = plot_metrics(self.tprm.svc)
        with Horizontal(id="plot-bar"):
            yield Label("metric ", id="metric-label")
            yield Select([(m, m) for m in self.metrics], value=self.metric, allow_blank=False,
                         id="metric-select", compact=True)
            yield Static("", id="plot-note", markup=False)
        yield Static("", id="plot-view")
        with Horizontal(id="inspector"):
            grid: DataTable[str] = DataTable(id="cell-grid", cursor_type="cell")
            yield grid
            yield Static("", id="cell-info", markup=False)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#cell-grid", DataTable).focus()

    def reload(self) -> None:
        recipe = self.tprm.recipe
        if recipe is None:
            return
        self.call_service(fetch_cells, self.tprm.svc, recipe, done=self._cells_loaded, group="plot-cells",
                          on_error=lambda _exc: None)  # the plot call reports the same problem
        self._plot_size = (0, 0)
        self.call_after_refresh(self._load_plot)

    def action_reload(self) -> None:
        self.reload()

    def on_resize(self) -> None:
        self.call_after_refresh(self._load_plot, True)

    def _load_plot(self, only_if_resized: bool = False) -> None:
        recipe = self.tprm.recipe
        view = self.query_one("#plot-view", Static)
        size = (max(view.content_size.width, 20), max(view.content_size.height, 4))
        if recipe is None or (only_if_resized and size == self._plot_size):
            return
        self._plot_size = size
        self.query_one("#plot-note", Static).update(f" building the {self.metric} plot...")
        self.call_service(fetch_plot, self.tprm.svc, recipe, self.metric, size[0], size[1], self.page,
                          done=self._plot_loaded, group="plot-build", on_error=self._plot_failed)

    def _plot_failed(self, exc: BaseException) -> None:
        if self.page and "page" in str(exc):  # went past the last page: wrap around
            self.page = 0
            self._plot_size = (0, 0)
            self._load_plot()
            return
        self.query_one("#plot-note", Static).update(f" cannot plot {self.metric}")
        self.show_problem(exc, title=f"Cannot plot {self.metric}")

    def _plot_loaded(self, data: dict[str, Any]) -> None:
        if data["metric"] != self.metric:
            return
        self.plot_data = data
        self.plot_text = data["text"]
        text = Text.from_ansi(data["text"], no_wrap=True, overflow="crop")
        self.query_one("#plot-view", Static).update(text)
        self.query_one("#plot-note", Static).update(" m metric  arrows inspect  o open cell  z zoom")
        self._fill_grid()

    def _cells_loaded(self, cells: dict[str, Any]) -> None:
        self.cells = cells
        if cells["metrics"] != self.metrics:  # the recipe's own metrics (weightwatcher's or not)
            self.metrics = cells["metrics"]
            if self.metric not in self.metrics:
                self.metric = "regime"
            select = self.query_one("#metric-select", Select)
            select.set_options([(m, m) for m in self.metrics])
            select.value = self.metric
        self._show_cell()

    def _fill_grid(self) -> None:
        """Inspector grid: rows = densities (highest first, like the plot), columns = temperatures."""
        table = self.query_one("#cell-grid", DataTable)
        keep = self._inspected
        table.clear(columns=True)
        temps, dens, values = self.plot_data["temperatures"], self.plot_data["densities"], self.plot_data["values"]
        rows = sorted(dens, reverse=True)
        table.add_column("dens", key="density")
        for t in temps:  # widths from the texts: never cut a value ("-0.106", not "-0.10")
            width = max([5, len(fmt_value(t))] + [len(_grid_text(values.get((t, d)))) for d in dens])
            table.add_column(fmt_value(t), key=str(t), width=width)
        for d in rows:
            table.add_row(f"{100 * d:.4g}%", *[_grid_text(values.get((t, d))) for t in temps], key=str(d))
        if table.row_count:
            row, col = 0, 1
            if keep is not None and keep[0] in temps and keep[1] in rows:
                row, col = rows.index(keep[1]), temps.index(keep[0]) + 1
            table.cursor_coordinate = Coordinate(row, col)
            self._inspected = self.selected_cell()
        self._show_cell()

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        if event.data_table.id != "cell-grid":
            return
        current = event.data_table.cursor_coordinate  # events can be stale (a clear, then a restore)
        if current.column == 0 and len(event.data_table.columns) > 1:
            event.data_table.cursor_coordinate = current._replace(column=1)  # labels are not cells
            return
        if self.plot_data and event.data_table.row_count:
            self._inspected = self.selected_cell()
        self._show_cell()

    def selected_cell(self) -> tuple[float, float] | None:
        """(temperature, density) under the inspector's cursor."""
        table = self.query_one("#cell-grid", DataTable)
        if not self.plot_data or table.row_count == 0:
            return None
        row, col = table.cursor_coordinate
        temps = self.plot_data["temperatures"]
        dens = sorted(self.plot_data["densities"], reverse=True)
        if col < 1 or col > len(temps) or row >= len(dens):
            return None
        return temps[col - 1], dens[row]

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        if event.data_table.id == "cell-grid":
            event.stop()
            self.action_open_cell()

    def action_open_cell(self) -> None:
        """Open the inspected cell (the TUI's `tprm show`)."""
        point, recipe = self.selected_cell(), self.tprm.recipe
        if point is None or recipe is None:
            self.notify("move the inspector's cursor onto a cell first (i, then arrow keys)", title="Open cell")
            return
        self.app.push_screen(CellScreen(recipe, *point))

    def _show_cell(self) -> None:
        point = self.selected_cell()
        info = self.query_one("#cell-info", Static)
        if point is None or not self.cells:
            info.update("move the cursor over the grid to inspect a cell")
            return
        text = cell_details(point, self.cells)
        if self.metric not in ("regime", *INSPECTED_METRICS):
            text = f"{self.metric} {_grid_text(self.plot_data['values'].get(point))}\n" + text
        info.update(text)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "metric-select" and isinstance(event.value, str) and event.value != self.metric:
            self.metric = event.value
            self.page = 0
            self._plot_size = (0, 0)
            self._load_plot()

    def action_pick_metric(self) -> None:
        select = self.query_one("#metric-select", Select)
        select.focus()
        select.expanded = True

    def action_next_metric(self, step: int) -> None:
        index = (self.metrics.index(self.metric) + step) % len(self.metrics)
        self.query_one("#metric-select", Select).value = self.metrics[index]

    def action_next_page(self) -> None:
        self.page += 1
        self._plot_size = (0, 0)
        self._load_plot()

    def action_inspect(self) -> None:
        self.query_one("#inspector").display = True
        self.query_one("#cell-grid", DataTable).focus()

    def action_zoom(self) -> None:
        inspector = self.query_one("#inspector")
        inspector.display = not inspector.display
        # redraw for the new size once the layout has settled (the heat map's blocks grow)
        self.set_timer(0.05, lambda: self._load_plot(True))

    def action_write_report(self) -> None:
        """Write the recipe's report folder (from the store; no training) and show its path."""
        recipe = self.tprm.recipe
        if recipe is None:
            return
        self.query_one("#plot-note", Static).update(" writing the report...")
        self.call_service(self.tprm.svc.reports.report, recipe, done=self._report_written, group="plot-report")

    def _report_written(self, info: dict[str, Any]) -> None:
        import os

        self.report_path = info["report"]
        note = self.query_one("#plot-note", Static)
        shown = os.path.relpath(info["report"]) if info["report"].startswith(os.getcwd()) else info["report"]
        room = max(note.size.width - 9, 12)
        if len(shown) > room:  # keep the end of the path (the folder and file names) on one line
            shown = "…" + shown[-(room - 1):]
        note.update(f" report: {shown}")
        self.notify(f"{len(info['files'])} files in {info['dir']}", title="Report written")


_REGIME_SHORT = {"unknown": "?", "diverged": "x"}


def _grid_text(value: Any) -> str:
    """A grid cell as the inspector table shows it: regime names short, numbers to 3 decimals."""
    if value is None:
        return "·"
    if isinstance(value, str):
        return _REGIME_SHORT.get(value, value)
    return fmt_num(value)
