"""Case studies: a guided walk through the three questions the regime model answers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Button, Input, Select, TabbedContent, TabPane

from tprm.tui.screens.base import TaskScreen
from tprm.tui.widgets.case_panel import CASES, CasePanel

KINDS = tuple(CASES)


def in_form(widget: Widget | None) -> bool:
    """True when `widget` is an input of a form (there, digits and letters are not screen keys)."""
    return widget is not None and any(w.has_class("form") for w in widget.ancestors_with_self
                                      if isinstance(w, Widget))


def fetch_grid_values(svc: Any, recipe: str) -> tuple[list[Any], list[Any]]:
    """The recipe's temperature values and densities (the choices the case inputs offer)."""
    loaded = svc.recipes.resolve(recipe)
    return list(loaded.recipe.temperature.values), list(loaded.recipe.densities)


class CasesScreen(TaskScreen):
    """Three tabs (direction, select, SAM rho); each runs its case study in a worker thread."""

    MODE = "cases"
    HELP_TITLE = "5 Cases"
    BINDINGS = [
        Binding("r", "run_case", "Run case", tooltip="run the case study of the open tab"),
        Binding("n", "next_case", "Next case", tooltip="next case study tab"),
        *[Binding(CASES[k]["key"], f"open_case('{k}')", CASES[k]["title"][2:], show=False,
                  tooltip=f"the {CASES[k]['title'][2:]} case study (its tab's key)") for k in CASES],
        Binding("x", "cancel_case", "Stop", tooltip="stop the running case study (jobs kept as cancelled)"),
        Binding("escape", "leave_form", "Leave form", tooltip="leave the case inputs (digits switch screens again)"),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_form":  # shown (and active) only while a form widget has focus
            return in_form(self.focused)
        return True

    def action_leave_form(self) -> None:
        self.query_one(f"#{self.panel.kind}-result").focus()

    def compose_body(self) -> Iterable[Widget]:
        with TabbedContent(id="case-tabs", initial="tab-direction"):
            for kind in KINDS:
                with TabPane(CASES[kind]["title"], id=f"tab-{kind}"):
                    yield CasePanel(kind)

    @property
    def panel(self) -> CasePanel:
        active = self.query_one("#case-tabs", TabbedContent).active
        return self.query_one(f"#case-{active.removeprefix('tab-')}", CasePanel)

    def reload(self) -> None:
        self.call_service(self.tprm.svc.recipes.list, done=self._recipes_loaded, group="cases-recipes")
        self.call_service(self.tprm.svc.cases.list, done=self._studies_loaded, group="cases-studies")

    def _studies_loaded(self, studies: list[dict[str, Any]]) -> None:
        """Re-attach to detached case studies (started before, maybe in an earlier session)."""
        for panel in self.query(CasePanel):
            mine = [s for s in studies if s.get("kind") == panel.kind]
            if not mine or panel.running:
                continue
            latest = mine[-1]
            if latest.get("state") == "running":
                panel.attach(latest)
            elif panel.case_id is None and panel.report is None and latest.get("state") == "done":
                panel.case_id = str(latest["id"])
                panel.show_state(latest)

    def _recipes_loaded(self, recipes: list[dict[str, Any]]) -> None:
        valid = [r for r in recipes if r.get("valid", True)]
        followed = getattr(self, "_followed", None)  # the app recipe the panels last followed
        self._followed = self.tprm.recipe
        for panel in self.query(CasePanel):
            # the SAM walk moves rho, so it needs a recipe whose temperature knob is sam_rho
            names = [r["name"] for r in valid if panel.kind != "sam" or r.get("knob") == "sam_rho"]
            # a recipe chosen elsewhere (Recipes, palette) wins; else the panel keeps its own choice
            current = self.tprm.recipe if followed != self.tprm.recipe else (panel.recipe or self.tprm.recipe)
            panel.set_recipes(names, current)
            if panel.recipe:
                self._load_values(panel)

    def _load_values(self, panel: CasePanel) -> None:
        recipe = panel.recipe
        if recipe is None:
            return
        self.call_service(fetch_grid_values, self.tprm.svc, recipe, group=f"cases-values-{panel.kind}",
                          done=lambda tv: panel.recipe == recipe and panel.set_recipe_values(*tv))

    def on_select_changed(self, event: Select.Changed) -> None:
        select_id = event.select.id or ""
        if select_id.endswith("-recipe"):
            panel = self.query_one(f"#case-{select_id.removesuffix('-recipe')}", CasePanel)
            self._load_values(panel)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_run_case()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if (event.button.id or "").endswith("-run"):
            event.stop()
            self.action_run_case()

    def action_run_case(self) -> None:
        self.panel.start(self.tprm.svc, self.tprm.call_service, self.tprm.show_error)

    def action_cancel_case(self) -> None:
        self.panel.cancel()

    def action_open_case(self, kind: str) -> None:
        self.query_one("#case-tabs", TabbedContent).active = f"tab-{kind}"

    def action_next_case(self) -> None:
        tabs = self.query_one("#case-tabs", TabbedContent)
        kind = tabs.active.removeprefix("tab-")
        tabs.active = f"tab-{KINDS[(KINDS.index(kind) + 1) % len(KINDS)]}"

    def on_case_panel_finished(self, event: CasePanel.Finished) -> None:
        self.query_one(f"#{event.kind}-result").focus()

