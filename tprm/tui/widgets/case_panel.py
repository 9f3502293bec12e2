"""One case study as a guided panel: the question, its inputs, a run with progress, the decision."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, ProgressBar, Select, Static

from tprm.tui.viewmodel import FINISHED_STATES, decision_headline, fmt_value, key_numbers, one_line
from tprm.tui.widgets.tables import KeyScroll

CASES: dict[str, dict[str, str]] = {
    "direction": {
        "title": "d Direction", "key": "d",
        "question": (
            "Which way should I move a hyperparameter? Pick a point of the grid (temperature T, density). "
            "tprm prunes and retrains it with two seeds, measures connectivity (mc) and similarity (CKA) "
            "and classifies the regime: I -> make training hotter, II-A -> colder, II-B -> keep. "
            "'whole grid' instead runs the whole grid and scores the rule (accuracy with an interval) "
            "against always hotter / colder / keep and following the dense model's error."),
    },
    "select": {
        "title": "s Select", "key": "s",
        "question": (
            "Which model of a family should I prune? The recipe's dense models (one per temperature) are "
            "the candidates; the target is a density. The regime rule picks a well-connected model, then "
            "the one with the higher CKA; it is compared with picking by dense accuracy and by the pruned "
            "error of the same retrains: the error of each pick, its regret and the trainings used."),
    },
    "sam": {
        "title": "a SAM rho", "key": "a",
        "question": (
            "How should I tune SAM's rho for pruning? rho acts as the temperature. Starting from rho, tprm "
            "reads the regime at the target density and moves rho up (Regime I) or down (II-A) until the "
            "regime is II-B, a value repeats or the regime flips back; it reports the rho found, its "
            "pruned error and trainings, next to a grid search over rho."),
    },
}


NO_RECIPE = {"sam": "recipe: the SAM walk needs a recipe whose temperature knob is sam_rho; "
                   "create one on Recipes (1) with n"}


class CaseInput(Input):
    """A number field of a case form: Enter runs the case, Escape leaves the field (both in the footer)."""

    BINDINGS = [
        Binding("escape", "leave", "Leave field", tooltip="leave the field (keys work again)"),
        Binding("enter", "submit", "Run case"),
    ]

    def action_leave(self) -> None:
        leave = getattr(self.screen, "action_leave_form", None)
        if leave is not None:
            leave()
        else:
            self.screen.set_focus(None)


class CasePanel(Vertical):
    """Inputs -> a detached case-study process (svc.cases.start) -> polled progress -> the answer.

    The study runs in its own process, like a run started with `r`: quitting the UI does not
    stop it, and coming back re-attaches to it. `x` stops it through the runner's cancel path.
    """

    class Finished(Message):
        """Posted when a case study produced a report."""

        def __init__(self, kind: str, report: dict[str, Any]) -> None:
            super().__init__()
            self.kind, self.report = kind, report

    def __init__(self, kind: str) -> None:
        super().__init__(id=f"case-{kind}", classes="case-panel")
        self.kind = kind
        self.recipe_values: dict[str, Any] = {}
        self.report: dict[str, Any] | None = None
        self.running = False
        self.case_id: str | None = None
        self.case_pid: int | None = None
        self.has_recipes = True
        self.pending: tuple[Any, Callable[..., None], Callable[[BaseException | str], None]] | None = None
        self._values_for: str | None = None  # the recipe whose grid values the inputs hold
        self._polling = False
        self._stop_asked: float | None = None

    def compose(self) -> ComposeResult:
        yield Static(CASES[self.kind]["question"], classes="case-question", markup=False)
        with Horizontal(classes="case-inputs form"):
            yield Label("recipe:", classes="case-label")
            yield Select([], prompt="recipe", id=f"{self.kind}-recipe", compact=True, classes="case-recipe")
            if self.kind == "direction":
                yield Label("T:", classes="case-label")
                yield Select([], prompt="T", id="direction-temperature", compact=True, classes="case-value")
            yield Label("density:", classes="case-label")
            yield Select([], prompt="density", id=f"{self.kind}-density", compact=True, classes="case-value")
            if self.kind == "sam":
                yield Label("rho:", classes="case-label")
                yield CaseInput("0.1", id="sam-rho", compact=True, classes="case-rho", type="number")
            if self.kind == "direction":
                yield Checkbox("whole grid", id="direction-evaluate", compact=True)
            yield Button("Run", id=f"{self.kind}-run", compact=True, variant="primary")
        with Horizontal(classes="case-progress-row"):
            yield ProgressBar(total=1, show_eta=False, id=f"{self.kind}-progress")
            yield Static("press r (or Run) to answer", id=f"{self.kind}-status", markup=False,
                         classes="case-status")
        with KeyScroll(id=f"{self.kind}-result", classes="case-result"):
            yield Static("", id=f"{self.kind}-decision", markup=False, classes="case-decision")
            yield Static("", id=f"{self.kind}-report", markup=False, classes="case-report")
            yield Static("", id=f"{self.kind}-numbers", classes="case-numbers")

    def on_mount(self) -> None:
        registry = getattr(self.app, "case_panels", None)
        if registry is not None:
            registry.add(self)

    # ---------------------------------------------------------------- inputs

    def set_recipes(self, names: list[str], current: str | None) -> None:
        select = self.query_one(f"#{self.kind}-recipe", Select)
        select.set_options([(n, n) for n in names])
        # the SAM tab offers only sam_rho recipes: prefer the current recipe's SAM sibling
        preferred = [n for n in (current, f"{current}-sam", "quickstart-sam") if n in names]
        if preferred or names:
            select.value = (preferred or names)[0]
        self.has_recipes = bool(names)
        if not names:
            self._set_status(NO_RECIPE.get(self.kind, "no valid recipe yet"), None)

    def set_recipe_values(self, temperatures: list[Any], densities: list[Any]) -> None:
        """Offer the recipe's grid values; defaults: the middle temperature and the lowest density.

        Values the user chose are kept when the same recipe's values arrive again (screen switches).
        """
        values = {"temperatures": temperatures, "densities": densities}
        if self._values_for == self.recipe and self.recipe_values == values:
            self._start_pending()
            return
        self._values_for = self.recipe
        self.recipe_values = values
        dens = self.query_one(f"#{self.kind}-density", Select)
        dens.set_options([(fmt_value(d), d) for d in densities])
        if densities:
            dens.value = min(densities)
        if self.kind == "direction":
            temps = self.query_one("#direction-temperature", Select)
            temps.set_options([(fmt_value(t), t) for t in temperatures])
            if temperatures:
                temps.value = temperatures[len(temperatures) // 2]
        if self.kind == "sam" and temperatures:  # start the walk on the recipe's own rho ladder
            self.query_one("#sam-rho", Input).value = fmt_value(temperatures[len(temperatures) // 2])
        self._start_pending()

    def _start_pending(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.start(*pending)

    @property
    def recipe(self) -> str | None:
        value = self.query_one(f"#{self.kind}-recipe", Select).value
        return value if isinstance(value, str) else None

    def arguments(self) -> dict[str, Any]:
        """The service call's arguments; ValueError with a one-line message when an input is missing."""
        recipe = self.recipe
        if recipe is None:
            raise ValueError("recipe: choose a recipe first")
        density = self.query_one(f"#{self.kind}-density", Select).value
        if not isinstance(density, (int, float)):
            raise ValueError("density: choose one of the recipe's densities")
        args: dict[str, Any] = {"recipe": recipe, "density": density}
        if self.kind == "direction":
            temperature = self.query_one("#direction-temperature", Select).value
            if not isinstance(temperature, (int, float)):
                raise ValueError("temperature: choose one of the recipe's temperature values")
            args["temperature"] = temperature
            args["evaluate"] = self.query_one("#direction-evaluate", Checkbox).value
        if self.kind == "sam":
            text = self.query_one("#sam-rho", Input).value.strip()
            try:
                rho = float(text)
            except ValueError:
                raise ValueError(f"rho: {text!r} is not a number; give a positive value such as 0.1") from None
            if rho <= 0:
                raise ValueError(f"rho: {rho:g} must be > 0 (e.g. 0.1)")
            args["rho"] = rho
        return args

    # ---------------------------------------------------------------- running

    def start(self, svc: Any, call: Callable[..., None], on_error: Callable[[BaseException | str], None]) -> None:
        """Start the case study as a detached process (through the app's service caller).

        Pressed before the recipe's values have loaded, the run starts as soon as they arrive.
        """
        if self.running:
            self.app.notify(f"the {self.kind} case study is already running; x stops it", title="Case study")
            return
        if not self.recipe_values:
            if not self.has_recipes:
                on_error(NO_RECIPE.get(self.kind, "recipe: there is no valid recipe; create one on Recipes (1)"))
                return
            self.pending = (svc, call, on_error)
            self._set_status("loading the recipe's values; the case runs as soon as they are in", None)
            return
        try:
            args = self.arguments()
        except ValueError as exc:
            on_error(str(exc))
            return
        recipe = args.pop("recipe")
        self.clear_answer()  # an answer belongs to the request shown: the previous one goes now
        self.running = True
        self._stop_asked = None
        self._set_status("starting the case-study process...", 0.0)
        self.query_one(f"#{self.kind}-run", Button).disabled = True

        def failed(exc: BaseException) -> None:
            self._done()
            self._set_status(f"failed: {one_line(exc)}", None)
            on_error(exc)

        call(svc.cases.start, self.kind, recipe, done=self._started, on_error=failed, **args)

    def _started(self, info: dict[str, Any]) -> None:
        self.attach(info)
        self.app.notify(f"{self.kind} case study started (pid {info.get('pid', '?')}): it runs detached, so "
                        "quitting the UI does not stop it; x stops it.", title="Case study", timeout=6)

    def attach(self, info: dict[str, Any]) -> None:
        """Follow a running detached case study (just started, or found when the UI came back)."""
        self.case_id, self.case_pid = str(info["id"]), info.get("pid")
        self.running = True
        self.query_one(f"#{self.kind}-run", Button).disabled = True
        self._set_status(self._running_text(info.get("progress")), None)
        if not getattr(self, "_timer", None):
            self._timer = self.set_interval(0.5, self.poll)
        self.poll()

    def poll(self) -> None:
        if not self.running or self.case_id is None or self._polling:
            return
        self._polling = True
        case_id = self.case_id

        def done(state: dict[str, Any]) -> None:
            self._polling = False
            if case_id != self.case_id:
                return
            try:
                self.show_state(state)
            except Exception as exc:  # noqa: BLE001 -- shown, never a panel waiting forever
                self._done()
                self._set_status(f"failed: cannot show the answer: {one_line(exc)} "
                                 f"(log: {state.get('log')})", None)

        def failed(exc: BaseException) -> None:
            self._polling = False
            self._set_status(f"cannot read the case study's state: {one_line(exc)}", None)

        self.app.call_service(self.app.svc.cases.state, case_id, done=done,  # type: ignore[attr-defined]
                              on_error=failed, group=f"case-poll-{self.kind}")

    def _running_text(self, progress: dict[str, Any] | None) -> str:
        fraction, text = _progress_fraction((progress,), {}) if progress else (None, "starting")
        if self._stop_asked is not None:
            return (f"stopping ({time.monotonic() - self._stop_asked:.0f}s): the job in progress stops at its "
                    f"next step and is kept as cancelled; {text}")
        return f"{text} · pid {self.case_pid} · detached: keeps running if you quit · x stops it"

    def show_state(self, state: dict[str, Any]) -> None:
        """Show a case study's state (from svc.cases.state)."""
        progress = state.get("progress")
        if state.get("state") == "running":
            self.running = True
            self.query_one(f"#{self.kind}-run", Button).disabled = True
            fraction = _progress_fraction((progress,), {})[0] if progress else None
            self._set_status(self._running_text(progress), fraction)
            return
        self._done()
        counts = (progress or {}).get("counts") or {}
        if state.get("state") == "done" and state.get("report"):
            self._finished(state["report"])
        elif state.get("state") == "cancelled":
            self.clear_answer()
            kept = counts.get("done", 0)
            self._set_status(f"stopped: {kept} finished job(s) kept, unfinished ones cancelled "
                             "(resumable); r runs it again and reuses them", None)
            self.app.notify(f"{self.kind} case study stopped", title="Case study")
        else:
            self.clear_answer()
            self._set_status(f"failed: {state.get('error') or 'unknown error'} (log: {state.get('log')})", None)

    def cancel(self) -> None:
        """Stop the running case study through the runner's cancel path (takes effect in seconds)."""
        if not self.running or self.case_id is None:
            self.app.notify(f"no {self.kind} case study is running", title="Stop")
            return
        self._stop_asked = time.monotonic()
        self._set_status(self._running_text(None), None)
        self.app.call_service(self.app.svc.cases.cancel, self.case_id,  # type: ignore[attr-defined]
                              group=f"case-cancel-{self.kind}", done=lambda _ok: self.poll())

    def clear_answer(self) -> None:
        """Forget the shown answer (a new request started, or this one failed or stopped)."""
        self.report = None
        for part in ("decision", "report", "numbers"):
            self.query_one(f"#{self.kind}-{part}", Static).update("")

    def _set_status(self, text: str, fraction: float | None) -> None:
        self.query_one(f"#{self.kind}-status", Static).update(text)
        if fraction is not None:
            self.query_one(f"#{self.kind}-progress", ProgressBar).update(total=1, progress=fraction)

    def _done(self) -> None:
        self.running = False
        self._stop_asked = None
        self.query_one(f"#{self.kind}-run", Button).disabled = False

    def _finished(self, report: dict[str, Any]) -> None:
        self._done()
        self.report = report
        self._set_status(f"done: the answer below is for {report.get('recipe', 'the recipe')}", 1.0)
        self.query_one(f"#{self.kind}-decision", Static).update(decision_headline(report))
        self.query_one(f"#{self.kind}-report", Static).update(indented(str(report.get("text", "")).rstrip()))
        self.query_one(f"#{self.kind}-numbers", Static).update(_numbers_table(report))
        self.post_message(self.Finished(self.kind, report))


def indented(text: str) -> Group:
    """Report text whose wrapped lines keep their line's indentation (a line wrapped by the panel
    otherwise starts its continuation at column 0 and the report's structure is lost)."""
    parts = []
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        body = Text(line.lstrip() or " ")
        parts.append(Padding(body, (0, 0, 0, indent)) if indent else body)
    return Group(*parts)


def _progress_fraction(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float | None, str]:
    """Understand a service progress report: a runner snapshot dict, or (done, total) numbers.

    A runner snapshot is {"total": jobs, "counts": {state: n}, "running": [{"done", "total",
    "hashes"}, ...]}: finished jobs count whole, running ones by their step progress.
    """
    snap = args[0] if len(args) == 1 and isinstance(args[0], dict) else kwargs
    if snap:
        total = snap.get("total")
        counts = snap.get("counts")
        if isinstance(counts, dict) and isinstance(total, (int, float)) and total:
            finished = sum(n for state, n in counts.items() if state in FINISHED_STATES)
            partial = 0.0
            for job in snap.get("running") or []:
                if isinstance(job, dict) and job.get("total"):
                    partial += len(job.get("hashes") or [0]) * min(job.get("done", 0) / job["total"], 1.0)
            return min((finished + partial) / total, 1.0), f"jobs {finished}/{int(total)} finished"
        done = snap.get("done")
        if isinstance(done, (int, float)) and isinstance(total, (int, float)) and total:
            return done / total, f"{int(done)}/{int(total)}"
        return None, "running"
    if len(args) >= 2 and all(isinstance(a, (int, float)) for a in args[:2]) and args[1]:
        return args[0] / args[1], f"{int(args[0])}/{int(args[1])}"
    return None, "running"


def _numbers_table(report: dict[str, Any]) -> Table | Text:
    items = key_numbers(report)
    if not items:
        return Text("")
    table = Table(show_header=False, box=None, pad_edge=False, title="key numbers", title_justify="left",
                  title_style="bold")
    table.add_column(no_wrap=True)
    table.add_column()
    for name, value in items:
        table.add_row(name, value)
    return table
