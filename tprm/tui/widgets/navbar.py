"""One-line tab strip: the five task screens with their keys, and the recipe in focus."""

from __future__ import annotations

from textual.widgets import Static

SCREENS: tuple[tuple[str, str, str], ...] = (
    ("1", "recipes", "Recipes"),
    ("2", "runs", "Runs"),
    ("3", "results", "Results"),
    ("4", "plot", "Plot"),
    ("5", "cases", "Cases"),
)


class NavBar(Static):
    """Shows where you are and how to get elsewhere (keys 1-5), plus the current recipe."""

    def __init__(self, active: str) -> None:
        super().__init__(id="navbar", markup=True)
        self.active = active

    def on_mount(self) -> None:
        self.watch(self.app, "recipe", self._show, init=True)

    def _show(self, recipe: str | None = None) -> None:
        parts = []
        for key, mode, title in SCREENS:
            label = f" {key} {title} "
            parts.append(f"[reverse b]{label}[/]" if mode == self.active else f"[dim]{label}[/]")
        recipe_text = recipe or "none"
        self.update("".join(parts) + f" [b]recipe:[/] {_escape(recipe_text)}  [dim]? help[/]")


def _escape(text: str) -> str:
    return text.replace("[", r"\[")
