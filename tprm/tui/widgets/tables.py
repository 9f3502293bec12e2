"""Lists and scroll areas with the keys users of lazygit/k9s/less expect: j/k, g/G, Home/End."""

from __future__ import annotations

from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer, VerticalScroll
from textual.widgets import DataTable

VIM_ROWS: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False),
    Binding("k", "cursor_up", "Up", show=False),
    Binding("g,home", "first_row", "First", show=False),
    Binding("G,end", "last_row", "Last", show=False),
]


class ListTable(DataTable):
    """A DataTable whose cursor also moves with j/k, g/Home (first row) and G/End (last row)."""

    BINDINGS = VIM_ROWS

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)


VIM_SCROLL: list[BindingType] = [
    Binding("j", "scroll_down", "Down", show=False),
    Binding("k", "scroll_up", "Up", show=False),
    Binding("g", "scroll_home", "Top", show=False),
    Binding("G", "scroll_end", "Bottom", show=False),
]


class KeyScroll(ScrollableContainer):
    """A scroll area that also scrolls with j/k and g/G (Home/End are built in)."""

    BINDINGS = VIM_SCROLL


class KeyVerticalScroll(VerticalScroll):
    """A vertical scroll area that also scrolls with j/k and g/G."""

    BINDINGS = VIM_SCROLL
