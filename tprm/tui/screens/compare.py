"""Compare: two recipes' maps side by side, the difference map B - A and the regime maps."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Label, Select, Static

from tprm.tui.screens.base import TaskScreen
from tprm.tui.widgets.tables import KeyVerticalScroll


def default_pair(recipes: list[dict[str, Any]], current: str | None) -> tuple[str | None, str | None]:
    """A = the recipe in focus (else the first with results); B = another with results, same knob first."""
    valid = [r for r in recipes if r.get("valid", True)]
    measured = [r for r in valid if r.get("jobs_done")]
    names = [r["name"] for r in valid]
    a = current if current in names else (measured or valid or [{"name": None}])[0]["name"]
    knob = next((r.get("knob") for r in valid if r["name"] == a), None)
    others = sorted((r for r in valid if r["name"] != a),
                    key=lambda r: (not r.get("jobs_done"), r.get("knob") != knob))
    return a, (others[0]["name"] if others else None)


COMPARED = ("test_error", "normalized_error", "mc", "cka", "train_loss", "dense_test_error")
# weightwatcher's, offered when both recipes measure them (metrics.weightwatcher)
COMPARED_WW = ("alpha", "alpha_weighted", "log_spectral_norm", "pruned_alpha", "dense_alpha")


def fetch_comparison(svc: Any, a: str, b: str, metric: str, width: int) -> dict[str, Any]:
    """The comparison text (or the one-line reason the grids do not align) and the metrics the
    selector offers for this pair."""
    try:
        c = svc.reports.compare(a, b, metric, width=width)
        both = set(svc.results.present_metrics(svc.results.cells(a))) & set(
            svc.results.present_metrics(svc.results.cells(b)))
    except Exception as exc:  # a mismatch is an answer here, not a crash
        from tprm.tui.viewmodel import one_line

        return {"a": a, "b": b, "metric": metric, "text": f"cannot compare: {one_line(exc)}", "ok": False,
                "metrics": COMPARED}
    return {"a": a, "b": b, "metric": metric, "text": c["text"], "ok": True, "note": c["note"],
            "metrics": COMPARED + tuple(m for m in COMPARED_WW if m in both)}


class CompareScreen(TaskScreen):
    """Pick recipes A and B and a metric; the comparison scrolls when larger than the screen."""

    MODE = "compare"
    HELP_TITLE = "6 Compare"
    DEFAULT_CSS = """
    #compare-bar { height: 1; }
    #compare-bar Label { padding: 0 1; }
    #compare-a, #compare-b { width: 22; }
    #compare-metric { width: 20; }
    #compare-scroll { height: 1fr; padding: 0 1; }
    #compare-view { width: auto; }
    """
    BINDINGS = [
        Binding("a", "pick('compare-a')", "Pick A", tooltip="choose recipe A"),
        Binding("b", "pick('compare-b')", "Pick B", tooltip="choose recipe B"),
        Binding("m", "pick('compare-metric')", "Metric", tooltip="choose the metric compared"),
        Binding("s", "swap", "Swap", tooltip="swap A and B"),
        Binding("f5", "reload", "Reload", show=False, tooltip="compare again"),
    ]

    METRICS = COMPARED

    def __init__(self) -> None:
        super().__init__()
        self.pair: tuple[str | None, str | None] = (None, None)
        self.metric = "test_error"
        self.metrics: tuple[str, ...] = COMPARED  # plus weightwatcher's for a pair that has them
        self.result: dict[str, Any] = {}

    def compose_body(self) -> Iterable[Widget]:
        with Horizontal(id="compare-bar"):
            yield Label("A")
            yield Select([], id="compare-a", compact=True, prompt="recipe A")
            yield Label("B")
            yield Select([], id="compare-b", compact=True, prompt="recipe B")
            yield Select([(m, m) for m in self.METRICS], value=self.metric, allow_blank=False,
                         id="compare-metric", compact=True)
        with KeyVerticalScroll(id="compare-scroll", can_focus=True):
            yield Static("choose two recipes with results (a, b)", id="compare-view", markup=False)

    def reload(self) -> None:
        self.call_service(self.tprm.svc.recipes.list, done=self._recipes_loaded, group="compare-recipes")

    def _recipes_loaded(self, recipes: list[dict[str, Any]]) -> None:
        names = [r["name"] for r in recipes if r.get("valid", True)]
        a, b = self.pair if all(self.pair) else default_pair(recipes, self.tprm.recipe)
        self.pair = (a, b)
        with self.prevent(Select.Changed):
            for sid, value in (("compare-a", a), ("compare-b", b)):
                select = self.query_one(f"#{sid}", Select)
                select.set_options([(n, n) for n in names])
                if value in names:
                    select.value = value
        self.compare()

    def compare(self) -> None:
        a, b = self.pair
        if not a or not b:
            return
        view = self.query_one("#compare-scroll")
        width = max(view.content_size.width - 2, 60)
        self.query_one("#compare-view", Static).update(f"comparing {a} and {b} ({self.metric})...")
        self.call_service(fetch_comparison, self.tprm.svc, a, b, self.metric, width,
                          done=self._compared, group="compare-build")

    def _compared(self, result: dict[str, Any]) -> None:
        if (result["a"], result["b"], result["metric"]) != (*self.pair, self.metric):
            return  # an older request
        self.result = result
        self.query_one("#compare-view", Static).update(Text(result["text"], no_wrap=True))
        if result["metrics"] != self.metrics:  # weightwatcher's metrics came or went with the pair
            self.metrics = result["metrics"]
            keep = self.metric in self.metrics
            with self.prevent(Select.Changed):
                select = self.query_one("#compare-metric", Select)
                select.set_options([(m, m) for m in self.metrics])
                select.value = self.metric if keep else COMPARED[0]
            if not keep:
                self.metric = COMPARED[0]
                self.compare()

    def on_select_changed(self, event: Select.Changed) -> None:
        value = event.value if isinstance(event.value, str) else None
        if event.select.id == "compare-a" and value:
            self.pair = (value, self.pair[1])
        elif event.select.id == "compare-b" and value:
            self.pair = (self.pair[0], value)
        elif event.select.id == "compare-metric" and value:
            self.metric = value
        else:
            return
        self.compare()

    def action_pick(self, select_id: str) -> None:
        select = self.query_one(f"#{select_id}", Select)
        select.focus()
        select.expanded = True

    def action_swap(self) -> None:
        a, b = self.pair
        self.pair = (b, a)
        with self.prevent(Select.Changed):
            self.query_one("#compare-a", Select).value = b or Select.BLANK
            self.query_one("#compare-b", Select).value = a or Select.BLANK
        self.compare()

    def action_reload(self) -> None:
        self.reload()
