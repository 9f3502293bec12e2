"""Help screen: how to get from nothing to a regime map and case-study answers, and every binding."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Label, Static
from tprm.tui.widgets.tables import KeyVerticalScroll

INTRO = (
    "tprm runs the three-regime experiment of Zhou et al. (ICML 2023): train a dense model at several "
    "\"temperatures\" (e.g. epochs), prune it to several densities, retrain each pruned model with two "
    "seeds, and measure how the retrained pairs connect (LMC, \"mc\") and how similar they are (CKA). "
    "The (temperature, density) plane splits into regimes I, II-A and II-B, and the regime says which "
    "way to move a hyperparameter."
)

GETTING_STARTED: tuple[tuple[str, str], ...] = (
    ("1 Recipes", "pick \"quickstart\" (a small CPU recipe) and press r to run it."),
    ("2 Runs", "watch the jobs finish. Runs are detached: quitting the UI or losing the SSH "
               "connection does not stop them; r resumes an interrupted run."),
    ("3 Results", "the numbers per cell: s sorts by the cursor's column, / filters "
                  "(e.g. density<0.5 mc<0), x exports CSV/JSON."),
    ("4 Plot", "the regime map and every metric; m picks the metric, arrow keys move the cell "
               "inspector."),
    ("5 Cases", "the three case studies: which way to move a hyperparameter, which model to prune, "
                "how to tune SAM's rho (on a recipe whose temperature is rho, e.g. quickstart-sam; "
                "run it on Runs first to compare with a grid search)."),
)


class HelpScreen(ModalScreen[None]):
    """Scrollable help: a short guide and a table of every key binding, per screen."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__(classes="modal")
        self.sections = sections

    def compose(self) -> ComposeResult:
        with KeyVerticalScroll(id="help-body", classes="dialog wide"):
            yield Label("tprm help  (Escape to close, arrows/PgDn to scroll)", classes="dialog-title")
            yield Static(Text(INTRO), id="help-intro")
            yield Static(self._guide_table(), id="help-guide")
            yield Static(self._bindings_table(), id="help-bindings")

    @staticmethod
    def _guide_table() -> Table:
        table = Table(show_header=False, box=None, expand=True, pad_edge=False, title="Getting started",
                      title_justify="left", title_style="bold")
        table.add_column(no_wrap=True)
        table.add_column(ratio=1)
        for screen, text in GETTING_STARTED:
            table.add_row(screen, text)
        table.add_row("ctrl+p", "the command palette: every action by name.")
        return table

    def _bindings_table(self) -> Table:
        table = Table(show_header=False, box=None, expand=True, pad_edge=False, title="Keys",
                      title_justify="left", title_style="bold")
        table.add_column(no_wrap=True)
        table.add_column(ratio=1)
        for title, rows in self.sections:
            table.add_row(Text(title, style="bold underline"), "")
            for key, description in rows:
                table.add_row(key, description)
        return table

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
