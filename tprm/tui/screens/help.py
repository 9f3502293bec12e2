"""Help screen: how to get from nothing to a regime map and case-study answers, and every binding."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

GETTING_STARTED = """\
tprm runs the three-regime experiment of Zhou et al. (ICML 2023): train a dense model at several
"temperatures" (e.g. epochs), prune it to several densities, retrain each pruned model with two
seeds, and measure how the retrained pairs connect (LMC "mc") and how similar they are (CKA).
The (temperature, density) plane splits into regimes I, II-A and II-B; the regime says which way
to move a hyperparameter.

Getting started (no mouse needed):
 1 Recipes  pick "quickstart" (a tiny CPU recipe) and press r to run it.
 2 Runs     watch the jobs finish. Runs are detached: quitting the UI or losing SSH does not stop them.
 3 Results  the numbers per cell; s sorts by the cursor column, / filters (e.g. "density<0.5 mc<0").
 4 Plot     the phase map; m picks the metric, arrow keys move the cell inspector.
 5 Cases    the three case studies: which way to move a hyperparameter, which model to prune,
            how to tune SAM's rho.
Ctrl+P opens the command palette with every action. Escape closes dialogs and this help."""


class HelpScreen(ModalScreen[None]):
    """Scrollable help: a short guide and a table of every key binding, per screen."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__(classes="modal")
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body", classes="dialog wide"):
            yield Label("tprm help  (Escape to close, arrows/PgDn to scroll)", classes="dialog-title")
            yield Static(Text(GETTING_STARTED), id="help-guide")
            yield Static(self._bindings_table(), id="help-bindings")

    def _bindings_table(self) -> Table:
        table = Table(show_header=True, header_style="bold", box=None, expand=True, pad_edge=False)
        table.add_column("key", no_wrap=True)
        table.add_column("action")
        for title, rows in self.sections:
            table.add_row(Text(title, style="bold underline"), "")
            for key, description in rows:
                table.add_row(key, description)
        return table

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
