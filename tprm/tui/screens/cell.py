"""One cell opened (the TUI's `tprm show`): its numbers, LMC and training curves, from
svc.results.cell; opened from the Plot screen's inspector and from a Results row."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from tprm.tui.colors import is_dumb
from tprm.tui.viewmodel import fmt_value, one_line
from tprm.tui.widgets.tables import KeyVerticalScroll


class CellScreen(ModalScreen[None]):
    """The cell view, scrollable (j/k, PgUp/PgDn); Escape or q closes it."""

    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, recipe: str, temperature: float, density: float) -> None:
        super().__init__(classes="modal")
        self.recipe, self.temperature, self.density = recipe, temperature, density
        self.view: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with KeyVerticalScroll(id="cell-body", classes="dialog wide"):
            yield Label(f"{self.recipe}: cell T={fmt_value(self.temperature)}, density "
                        f"{100 * self.density:.4g}%  (Escape closes, j/k scroll)", classes="dialog-title")
            yield Static("reading the cell's numbers and curves...", id="cell-text", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#cell-body").focus()
        width = max(40, min(int(self.app.size.width * 0.95) - 6, 120))  # the dialog, less border and padding
        height = max(12, int(self.app.size.height * 0.95) - 4)
        color = not (is_dumb() or getattr(self.app, "no_color", False))
        self.app.call_service(self.app.svc.results.cell, self.recipe, self.temperature,  # type: ignore[attr-defined]
                              self.density, width=width, height=height, color=color,
                              done=self._loaded, on_error=self._failed, group="cell-view")

    def _loaded(self, view: dict[str, Any]) -> None:
        self.view = view
        self.query_one("#cell-text", Static).update(Text.from_ansi(view["text"], no_wrap=True, overflow="crop"))

    def _failed(self, exc: BaseException) -> None:
        self.query_one("#cell-text", Static).update(f"cannot open the cell: {one_line(exc)}")

    def action_close(self) -> None:
        self.dismiss(None)
