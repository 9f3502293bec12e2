"""One-line tab strip: the task screens with their keys, and the recipe in focus.

It stays one line at any width: a long recipe name pushes "? help" out, then is cut with an
ellipsis (the Recipes screen shows it whole), so the screens below never move.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tprm.tui.viewmodel import ellipsize

SCREENS: tuple[tuple[str, str, str], ...] = (
    ("1", "recipes", "Recipes"),
    ("2", "runs", "Runs"),
    ("3", "results", "Results"),
    ("4", "plot", "Plot"),
    ("5", "cases", "Cases"),
    ("6", "compare", "Compare"),
)
HELP = "  ? help"


class NavBar(Static):
    """Shows where you are and how to get elsewhere (keys 1-6), plus the current recipe."""

    DEFAULT_CSS = "NavBar { height: 1; }"

    def __init__(self, active: str) -> None:
        super().__init__(id="navbar", markup=False)
        self.active = active
        self.recipe: str | None = None

    def on_mount(self) -> None:
        self.watch(self.app, "recipe", self._show, init=True)

    def on_resize(self) -> None:
        self._show(self.recipe)

    def _show(self, recipe: str | None = None) -> None:
        self.recipe = recipe
        self.update(navbar_text(self.active, recipe, self.size.width or self.app.size.width))


def navbar_text(active: str, recipe: str | None, width: int) -> Text:
    """The tab strip for `width` columns: never longer than one line."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for key, mode, title in SCREENS:  # one space between tabs: six tabs and a name fit 80 columns
        if mode == active:
            text.append(f" {key} {title} ", style="reverse bold")
        else:
            text.append(f"{'' if text.plain.endswith(' ') else ' '}{key} {title}", style="dim")
    text.append(" recipe: ", style="bold")
    name = recipe or "none"
    room = width - text.cell_len
    if len(name) + len(HELP) <= room:
        text.append(name)
        text.append(HELP, style="dim")  # the footer shows "? Help" too: it is the first to go
    else:
        text.append(ellipsize(name, max(room, 1)))
    text.truncate(width)
    return text
