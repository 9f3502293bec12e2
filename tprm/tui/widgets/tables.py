"""Lists and scroll areas with the keys users of lazygit/k9s/less expect: j/k, g/G, Home/End."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.actions import SkipAction
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer, VerticalScroll
from textual.widgets import DataTable, Log

if TYPE_CHECKING:
    from textual.widget import Widget as _ScrollingWidget
else:
    _ScrollingWidget = object

VIM_ROWS: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False),
    Binding("k", "cursor_up", "Up", show=False),
    Binding("g,home", "first_row", "First", show=False),
    Binding("G,end", "last_row", "Last", show=False),
]


class ListTable(DataTable):
    """A DataTable whose cursor also moves with j/k, g/Home (first row) and G/End (last row),
    and whose cursor row stays on screen when the table shrinks (a pane beside it grew)."""

    BINDINGS = VIM_ROWS

    def on_resize(self) -> None:
        # row lists only: re-placing a cell cursor mid-layout squeezed the Results columns
        if self.row_count and self.cursor_type == "row":
            self.call_after_refresh(self._cursor_into_view)

    def _cursor_into_view(self) -> None:
        # the row as it is now: a key handled since the resize (g, G) must not be undone
        if self.row_count:
            self.move_cursor(row=self.cursor_row, scroll=True)

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


class BurstScroll(_ScrollingWidget):
    """Scroll actions that count every key of a burst (keys pasted or sent together over SSH).

    Textual's own scroll_down reads the scroll target now but moves only after the next refresh,
    so ten `j` handled before one refresh all aim at the same line (one line moved, not ten).
    These move at once, without animation, from the target the previous key set. (A mixin, put
    first: Textual takes a widget's CSS from its first widget base, which must stay the container.)
    """

    def _scroll_by(self, dy: float) -> None:
        if not self.allow_vertical_scroll:
            raise SkipAction()
        self.scroll_to(y=self.scroll_target_y + dy, animate=False, immediate=True)

    def action_scroll_down(self) -> None:
        self._scroll_by(1)

    def action_scroll_up(self) -> None:
        self._scroll_by(-1)

    def action_page_down(self) -> None:
        self._scroll_by(self.scrollable_content_region.height)

    def action_page_up(self) -> None:
        self._scroll_by(-self.scrollable_content_region.height)

    def action_scroll_home(self) -> None:
        self.scroll_to(y=0, animate=False, immediate=True)

    def action_scroll_end(self) -> None:
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)


class KeyScroll(BurstScroll, ScrollableContainer):
    """A scroll area that also scrolls with j/k and g/G (Home/End are built in); bursts count."""

    BINDINGS = VIM_SCROLL


class KeyVerticalScroll(BurstScroll, VerticalScroll):
    """A vertical scroll area that also scrolls with j/k and g/G; bursts count."""

    BINDINGS = VIM_SCROLL


class KeyLog(BurstScroll, Log):
    """A log view that scrolls with j/k and g/G too; bursts count."""

    BINDINGS = VIM_SCROLL
