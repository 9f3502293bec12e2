"""Base class of the five task screens: nav bar on top, footer of bindings at the bottom."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from tprm.tui.colors import is_dumb
from tprm.tui.widgets.navbar import NavBar

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
        yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> Iterable[Widget]:
        return ()

    def on_mount(self) -> None:
        self.watch(self.app, "recipe", self._recipe_changed, init=False)

    def on_screen_resume(self) -> None:
        self._size_classes()
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
            self.reload()

    def reload(self) -> None:
        """Fetch this screen's data again (off the event loop)."""

    def call_service(self, fn: Callable[..., Any], *args: Any, done: Callable[[Any], None] | None = None,
                     group: str | None = None, **kwargs: Any) -> None:
        """Run a service call in a worker thread; errors go to the error modal."""
        self.tprm.call_service(fn, *args, done=done, group=group or f"{self.MODE}-service", **kwargs)
