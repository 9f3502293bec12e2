"""Explore screen: a recipe's regime map filling in as an exploration's rounds finish.

The exploration (svc.explore.run) runs in a worker thread of this process; its progress events
come back on the event loop: the round's progress bar and ETA, then the map so far (measured
cells filled, inferred ones in lower case, '?' where nothing can be inferred). `x` stops it
(finished jobs are kept: exploring again continues), escape goes back, q quits (stopping it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Static

from tprm.tui.widgets.tables import KeyScroll

if TYPE_CHECKING:
    from tprm.tui.app import TprmApp


class ExploreScreen(Screen[None]):
    """One exploration of `recipe` within `budget`, started when the screen opens."""

    BINDINGS = [
        Binding("x", "stop", "Stop", tooltip="stop the exploration (finished jobs are kept)"),
        Binding("escape", "back", "Back", tooltip="back to the recipes (stops a running exploration)"),
        Binding("q", "quit_explore", "Quit", tooltip="stop the exploration and quit"),
    ]

    def __init__(self, recipe: str, budget: str | None) -> None:
        super().__init__()
        self.recipe, self.budget = recipe, budget
        self.running = False
        self.result: dict[str, Any] | None = None
        self.map_text = ""
        self.maps_shown = 0  # how many times the map was redrawn (once per finished round, then the end)
        self._round: Any = "?"
        self._cells = "?"  # "measured/limit cells", as the last event said

    @property
    def tprm(self) -> "TprmApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(f" explore {self.recipe} (budget {self.budget or 'none: until converged'})",
                     id="explore-title", markup=False)
        with Horizontal(id="explore-progress-row"):
            yield ProgressBar(total=1000, show_eta=False, id="explore-progress")
            yield Static("starting...", id="explore-status", markup=False)
        with KeyScroll(id="explore-map-box"):
            yield Static("", id="explore-map")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        from tprm.tui.screens.plot import color_depth

        app, svc, recipe = self.tprm, self.tprm.svc, self.recipe
        depth = color_depth()
        width = max(self.app.size.width - 2, 40)
        self.running = True

        def progress(event: dict[str, Any]) -> None:
            app._from_thread(self._event, event)

        app.call_service(svc.explore.run, recipe, self.budget, progress, color_depth=depth, width=width,
                         group="explore", done=self._finished, on_error=self._failed)

    # ---------------------------------------------------------------- events (event loop)

    def _event(self, event: dict[str, Any]) -> None:
        if not self.is_attached:  # the screen was left while the exploration stopped
            return
        status = self.query_one("#explore-status", Static)
        bar = self.query_one("#explore-progress", ProgressBar)
        if "measured" in event:
            self._cells = f"{event['measured']}/{event['limit']}"
        if "round" in event:
            self._round = event["round"]
        head = f"{self._cells} cells"
        if event.get("event") == "round":
            bar.update(progress=0)
            status.update(f"round {event['round']}: {len(event['cells'])} cell(s); {head}")
        elif event.get("event") == "run":
            eta = event["snapshot"].get("eta") or {}
            bar.update(progress=round(1000 * eta.get("fraction", 0.0)))
            status.update(f"round {self._round}: ETA {eta.get('text', 'estimating')}; {head}")
        elif event.get("event") == "measured":
            bar.update(progress=1000)
            self._show_map(event["text"])
            status.update(f"round {event['round']} measured; {head}; ETA of the rest at most "
                          f"{(event.get('eta') or {}).get('text', '?')}")

    def _show_map(self, text: str) -> None:
        self.map_text = text
        self.maps_shown += 1
        self.query_one("#explore-map", Static).update(Text.from_ansi(text, no_wrap=True, overflow="crop"))

    def _finished(self, result: dict[str, Any]) -> None:
        self.running = False
        if not self.is_attached:
            return
        self.result = result
        self._show_map(result["text"])
        self.query_one("#explore-progress", ProgressBar).update(progress=1000)
        self.query_one("#explore-status", Static).update(f"{result['summary']}; {result['stop']}")

    def _failed(self, exc: BaseException) -> None:
        from tprm.service import RunCancelled
        from tprm.tui.viewmodel import one_line

        self.running = False
        if not self.is_attached:
            return
        self.query_one("#explore-status", Static).update(one_line(exc))
        if not isinstance(exc, RunCancelled):
            self.tprm.show_error(exc, title="Exploration failed")

    # ---------------------------------------------------------------- actions

    def action_stop(self) -> None:
        if self.running:
            self.query_one("#explore-status", Static).update("stopping: the running jobs stop at their next tick...")
            self.tprm.call_service(self.tprm.svc.explore.cancel, self.recipe, group="explore-cancel")

    def action_back(self) -> None:
        self.action_stop()
        self.app.pop_screen()

    def action_quit_explore(self) -> None:
        if self.running:
            self.tprm.svc.explore.cancel(self.recipe)
        self.app.exit()
