"""The tprm Textual app: five task screens (modes) over the service layer.

The app never opens the store or calls torch: every piece of data comes from a `Service`
method, called in a worker thread so the UI stays responsive during long calls.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive

from tprm.service import Service
from tprm.tui.colors import apply_color_policy
from tprm.tui.commands import TprmCommands
from tprm.tui.screens.cases import CasesScreen
from tprm.tui.screens.compare import CompareScreen
from tprm.tui.screens.base import TaskScreen
from tprm.tui.screens.confirm import ConfirmModal
from tprm.tui.screens.error import ErrorModal
from tprm.tui.screens.help import HelpScreen
from tprm.tui.screens.plot import PlotScreen
from tprm.tui.screens.recipes import RecipesScreen
from tprm.tui.screens.results import ResultsScreen
from tprm.tui.screens.runs import RunsScreen
from tprm.tui.viewmodel import active_runs, one_line, run_name

TASK_SCREENS = {
    "recipes": RecipesScreen,
    "runs": RunsScreen,
    "results": ResultsScreen,
    "plot": PlotScreen,
    "cases": CasesScreen,
    "compare": CompareScreen,
}


class TprmApp(App[None]):
    """Recipes -> runs -> results -> phase plot -> case studies, keyboard only, 80x24 friendly."""

    CSS_PATH = "tprm.tcss"
    TITLE = "tprm"
    MODES = dict(TASK_SCREENS)
    DEFAULT_MODE = "recipes"
    COMMANDS = App.COMMANDS | {TprmCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "show('recipes')", "Recipes", show=False),
        Binding("2", "show('runs')", "Runs", show=False),
        Binding("3", "show('results')", "Results", show=False),
        Binding("4", "show('plot')", "Plot", show=False),
        Binding("5", "show('cases')", "Cases", show=False),
        Binding("6", "show('compare')", "Compare", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+t", "toggle_theme", "Light/dark", show=False),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    recipe: reactive[str | None] = reactive(None)
    """The recipe every screen shows (chosen on the Recipes screen)."""

    def __init__(self, store_dir: str | None = None, service: Service | None = None,
                 poll_interval: float = 1.0) -> None:
        super().__init__()
        apply_color_policy(self)  # TERM=dumb: no colour; NO_COLOR: readable greys
        self.svc = service if service is not None else Service(store_dir)
        self.poll_interval = poll_interval
        self.left_running: list[Mapping[str, Any]] = []
        self.recipe_names: list[str] = []  # for the palette's "Recipe: NAME" entries
        self.case_panels: set[Any] = set()  # CasePanels register here, so quitting can name their studies

    # ------------------------------------------------------------------ service calls

    def call_service(self, fn: Callable[..., Any], *args: Any, done: Callable[[Any], None] | None = None,
                     group: str = "service", on_error: Callable[[BaseException], None] | None = None,
                     **kwargs: Any) -> None:
        """Call a service method in a worker thread; deliver the result (or error) on the event loop."""

        def work() -> None:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:  # every service error is shown (never a crash)
                self._from_thread(on_error or self.show_error, exc)
                return
            if done is not None:
                self._from_thread(done, result)

        self.run_worker(work, thread=True, group=group, exit_on_error=False)

    def _from_thread(self, callback: Callable[..., Any], *args: Any) -> None:
        try:
            self.call_from_thread(callback, *args)
        except RuntimeError:  # the app closed while the call ran
            pass

    def show_error(self, error: BaseException | str, title: str = "Error") -> None:
        """Show a one-line error: in place on a task screen (a dialog over a screen that reloads
        when it comes back would loop), else in a modal (once: the same message is not stacked twice)."""
        top = self.screen
        if isinstance(top, TaskScreen):
            top.show_problem(error, title)
            return
        message = one_line(error)
        if isinstance(top, ErrorModal) and top.message == message:
            return
        self.push_screen(ErrorModal(message, title=title))

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Digits switch screens, except while a form's input has focus (there they are input)."""
        if action == "show":
            from tprm.tui.screens.cases import in_form

            return not in_form(self.screen.focused)
        return True

    def action_show(self, mode: str) -> None:
        if mode in TASK_SCREENS and self.current_mode != mode:
            self.switch_mode(mode)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.binding_sections()))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    async def action_quit(self) -> None:
        """Quit; when a run is still going, say that it keeps running and ask first."""
        if isinstance(self.screen, ConfirmModal):
            return
        self.call_service(self.svc.runs.status, done=self._quit_checked, on_error=lambda _exc: self.exit())

    def _quit_checked(self, status: dict[str, Any]) -> None:
        running = active_runs(status)
        studies = [p for p in self.case_panels if p.running]
        if not running and not studies:
            self.exit()
            return
        parts = []
        if running:
            names = ", ".join(sorted({run_name(r) for r in running}))
            parts.append(f"The run of {names} keeps running in the background after you quit: it is "
                         "detached, so closing the UI or the SSH connection does not stop it. Run `tprm tui` "
                         "again to watch it, or cancel it on the Runs screen (c).")
        if studies:
            names = ", ".join(f"{p.kind} (pid {p.case_pid})" for p in studies)
            parts.append(f"The {names} case study keeps running in the background after you quit: it is "
                         "detached, and its answer is shown on Cases (5) when you come back.")
        question = " ".join(parts) + " Quit the UI now?"

        def answer(quit_now: bool | None) -> None:
            if quit_now:
                self.left_running = list(running) + [
                    {"recipe": f"{p.kind} case study", "pid": p.case_pid} for p in studies]
                self.exit()

        self.push_screen(ConfirmModal(question, title="Still working", yes="Quit", no="Stay"), answer)

    # ------------------------------------------------------------------ help

    def binding_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Every binding of the app and its task screens, for the help screen."""
        sections = [("Everywhere", _binding_rows(self, self.BINDINGS) + [
            ("ctrl+p", "command palette: every action by name"),
            ("tab / shift+tab", "move focus between widgets"),
            ("escape", "close a dialog / leave a text field"),
        ])]
        for screen_cls in TASK_SCREENS.values():
            sections.append((screen_cls.HELP_TITLE, _binding_rows(self, screen_cls.BINDINGS)))
        return sections


def _binding_rows(app: App[Any], bindings: list[BindingType]) -> list[tuple[str, str]]:
    rows = []
    for item in bindings:
        binding = item if isinstance(item, Binding) else Binding(*item)
        keys = ", ".join(app.get_key_display(Binding(k.strip(), binding.action))
                         for k in binding.key.split(","))
        rows.append((keys, binding.tooltip or binding.description or binding.action))
    return rows


def run_app(store_dir: str | None = None) -> int:
    """Entry point of `tprm tui`: run the app on the store; return an exit code (2: bad store)."""
    try:
        app = TprmApp(store_dir)
    except Exception as exc:
        print(f"tprm tui: {one_line(exc)}", file=sys.stderr)
        return 2
    app.run()
    for run in app.left_running:
        print(f"tprm: the run of {run_name(run)} keeps running in the background "
              f"(pid {run.get('pid', '?')}); `tprm status` or `tprm tui` shows its progress.")
    return 0


if __name__ == "__main__":  # pragma: no cover - manual launch
    raise SystemExit(run_app(sys.argv[1] if len(sys.argv) > 1 else None))
