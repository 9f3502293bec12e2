"""`tprm explore`'s drawing: a progress bar over the exploration (cells measured of its limit,
the round) and one over the round running now (the runner's share of the work, with its ETA)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from tprm.cli_display import ProgressBars

if TYPE_CHECKING:
    from rich.progress import TaskID


class ExploreDisplay(ProgressBars):
    """Rich progress of an exploration; called with svc.explore.run's progress events."""

    def __init__(self, console: Console):
        super().__init__(console)
        self.overall: TaskID | None = None
        self.round: TaskID | None = None
        self.measured = 0

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        if kind in ("round", "measured"):
            self._overall(event)
        if kind == "round":
            self._round(f"round {event['round']}: {len(event['cells'])} cell(s)", 0.0, "starting")
        elif kind == "run":
            snap = event["snapshot"]
            eta = snap.get("eta") or {}
            self._round(None, eta.get("fraction", 0.0), f"ETA {eta.get('text', 'estimating')}")

    def _overall(self, event: dict) -> None:
        limit, self.measured = event["limit"], event["measured"]
        if self.overall is None:
            self.overall = self.progress.add_task("", total=limit, right="")
        eta = event.get("eta") or {}
        right = "ETA estimating" if eta.get("seconds") is None else f"at most {eta['text']} left"
        self.progress.update(self.overall, completed=self.measured, right=right,
                             description=f"[bold]explore: {self.measured}/{limit} cells, round {event['round']}")

    def _round(self, description: str | None, fraction: float, right: str) -> None:
        if self.round is None:
            self.round = self.progress.add_task("", total=1000, right="")
        fields: dict = {"completed": round(1000 * fraction), "right": right}
        if description is not None:
            fields["description"] = "  " + escape(description)
        self.progress.update(self.round, **fields)

