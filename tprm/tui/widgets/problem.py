"""The problem line of a task screen: an error it met, shown once in place with what to do.

A modal error dialog over a screen that reloads when it comes back loops (dismiss -> reload ->
the same error -> dialog again), and a modal swallows the app's keys (q). An error shown on
the screen itself leaves every key working: the user reads it, picks another recipe or quits.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tprm.tui.viewmodel import problem_hint


class ProblemLine(Static):
    """Hidden until a screen meets an error; then the error (one line) and a hint below it."""

    DEFAULT_CSS = """
    ProblemLine {
        display: none;
        height: auto;
        max-height: 5;
        padding: 0 1;
        border-left: thick $error;
        background: $error 15%;
    }
    ProblemLine.-shown { display: block; }
    """

    def __init__(self) -> None:
        super().__init__("", id="screen-problem", markup=False)

    def show(self, message: str, title: str | None = None, hint: str | None = None) -> None:
        """Show `title: message` and the hint (by default one that fits the message)."""
        head = f"{title}: {message}" if title and title != "Error" else message
        self.update(Text.assemble((head, "bold"), "\n", (hint or problem_hint(message), "italic")))
        self.add_class("-shown")

    def clear(self) -> None:
        self.update("")
        self.remove_class("-shown")
