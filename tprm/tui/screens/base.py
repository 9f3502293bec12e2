"""Base class of the task screens: nav bar on top, a problem line under it, footer at the bottom."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from tprm.tui.colors import is_dumb
from tprm.tui.viewmodel import one_line
from tprm.tui.widgets.navbar import NavBar
from tprm.tui.widgets.problem import ProblemLine

if TYPE_CHECKING:
    from tprm.tui.app import TprmApp


class TaskScreen(Screen[None]):
    """A screen for one task; subclasses set MODE and implement compose_body/reload."""

    MODE = ""
    HELP_TITLE = ""

    @property
    def tprm(self) -> "TprmApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield ProblemLine()
        yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> Iterable[Widget]:
        return ()

    def on_mount(self) -> None:
        self.watch(self.app, "recipe", self._recipe_changed, init=False)

    def on_screen_resume(self) -> None:
        self._size_classes()
        self.clear_problem()  # the reload shows it again if it is still there
        self.reload()

    def on_resize(self) -> None:
        self._size_classes()

    def _size_classes(self) -> None:
        """`narrow` below 80 columns and `short` below 24 rows: the CSS packs the screen tighter."""
        width, height = self.app.size
        self.set_class(width < 80, "narrow")
        self.set_class(height < 24, "short")
        self.set_class(is_dumb() or bool(getattr(self.app, "no_color", False)), "mono")

    def _recipe_changed(self, recipe: str | None) -> None:
        if self.is_current:
            self.clear_problem()
            self.reload()

    def show_problem(self, error: BaseException | str, title: str | None = None, hint: str | None = None) -> None:
        """Show an error on this screen (in place, keys keep working): never a dialog that loops."""
        for line in self.query(ProblemLine):  # none once the app has closed the screen
            line.show(one_line(error), title, hint)

    def clear_problem(self) -> None:
        for line in self.query(ProblemLine):
            line.clear()

    def reload(self) -> None:
        """Fetch this screen's data again (off the event loop)."""

    def call_service(self, fn: Callable[..., Any], *args: Any, done: Callable[[Any], None] | None = None,
                     group: str | None = None, on_error: Callable[[BaseException], None] | None = None,
                     **kwargs: Any) -> None:
        """Run a service call in a worker thread; errors show on this screen's problem line."""
        self.tprm.call_service(fn, *args, done=done, group=group or f"{self.MODE}-service",
                               on_error=on_error or self.show_problem, **kwargs)
