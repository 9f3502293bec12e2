"""Recipes screen: list, YAML details with the expanded plan, validate, new, edit, launch."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Static

from tprm.tui.screens.base import TaskScreen
from tprm.tui.screens.editor import EditorScreen
from tprm.tui.screens.external_edit import ExternalEdit
from tprm.tui.screens.new_recipe import NewRecipeModal
from tprm.tui.viewmodel import ellipsize
from tprm.tui.widgets.tables import KeyScroll, ListTable

PLAN_KINDS = ("dense", "prune", "retrain", "pairs", "hessian", "ww")
NAME_WIDTH = 18
KNOB_WIDTH = 10


class RecipesScreen(TaskScreen):
    """Pick the recipe the other screens show; create, edit, validate and launch recipes."""

    MODE = "recipes"
    HELP_TITLE = "1 Recipes"
    BINDINGS = [
        Binding("r", "run", "Run", tooltip="launch the recipe as a detached run (or resume it)"),
        Binding("x", "explore", "Explore", tooltip="explore the recipe's plane adaptively (asks for a budget)"),
        Binding("e", "edit", "Edit", tooltip="edit the YAML in the built-in editor (saved only if valid)"),
        Binding("E", "edit_external", "$EDITOR",
                tooltip="edit the YAML in $EDITOR (saved only if valid)"),
        Binding("n", "new", "New", tooltip="new recipe from a template"),
        Binding("v", "validate", "Validate", tooltip="validate every recipe"),
        Binding("f5", "reload", "Reload", tooltip="reload the recipe list"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.recipes: list[dict[str, Any]] = []
        self.external = ExternalEdit(self)  # E: $EDITOR, with the draft of a rejected edit
        self._filling = False
        self._list_calls = 0
        self._detail_name: str | None = None
        self._yaml_text = ""

    def compose_body(self) -> Iterable[Widget]:
        with Horizontal(id="recipes-body"):
            with Vertical(id="recipes-left"):
                table: DataTable[str] = ListTable(id="recipe-table", cursor_type="row", zebra_stripes=True)
                table.add_column("name", width=NAME_WIDTH)
                table.add_column("knob", width=KNOB_WIDTH)
                table.add_column("grid", width=5)
                table.add_column("jobs", width=7)
                yield table
                yield Static("loading the recipes...", id="plan-summary")
            with KeyScroll(id="recipe-yaml-box"):
                yield Static("", id="recipe-yaml")

    # ---------------------------------------------------------------- data

    def reload(self) -> None:
        self._list_calls += 1
        call = self._list_calls  # only the newest list is shown: an older reply may miss a new recipe
        self.call_service(self.tprm.svc.recipes.list, group="recipes-list",
                          done=lambda recipes: call == self._list_calls and self._show_recipes(recipes))

    def action_reload(self) -> None:
        self.reload()

    def _show_recipes(self, recipes: list[dict[str, Any]]) -> None:
        self.recipes = recipes
        self.tprm.recipe_names = [r["name"] for r in recipes]
        table = self.query_one("#recipe-table", DataTable)
        self._filling = True  # the highlight events of a refill are not user choices
        table.clear()
        for rec in recipes:
            table.add_row(*recipe_cells(rec), key=rec["name"])  # one line each: long names end in "…"
        if not recipes:
            self.query_one("#plan-summary", Static).update(
                "No recipes yet: press n to create one from a template.")
            return
        names = [r["name"] for r in recipes]
        if self.tprm.recipe not in names:
            valid = [r["name"] for r in recipes if r.get("valid", True)] or names
            self.tprm.recipe = "quickstart" if "quickstart" in valid else valid[0]
        table.move_cursor(row=names.index(self.tprm.recipe))
        self.call_after_refresh(self._filled)
        self._show_details(self.tprm.recipe)

    def _filled(self) -> None:
        """After the layout pass: the chosen recipe's row is scrolled into view (also on the first fill)."""
        table = self.query_one("#recipe-table", DataTable)
        table.move_cursor(row=table.cursor_row, scroll=True)
        self._filling = False

    def _recipe_changed(self, recipe: str | None) -> None:
        """Another screen (or the palette) chose a recipe: follow it without reloading the list."""
        self.clear_problem()
        names = [r["name"] for r in self.recipes]
        if recipe in names:
            table = self.query_one("#recipe-table", DataTable)
            if table.cursor_row != names.index(recipe):
                table.move_cursor(row=names.index(recipe))
            if recipe != self._detail_name:
                self._show_details(recipe)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if (event.data_table.id != "recipe-table" or event.row_key.value is None or self._filling
                or event.cursor_row != event.data_table.cursor_row):  # a stale event: the cursor moved on
            return
        name = str(event.row_key.value)
        if name != self.tprm.recipe:
            self.tprm.recipe = name  # the other screens follow
        self._show_details(name)

    def _current(self) -> dict[str, Any] | None:
        return next((r for r in self.recipes if r["name"] == self.tprm.recipe), None)

    def _show_details(self, name: str) -> None:
        rec = next((r for r in self.recipes if r["name"] == name), None)
        if rec is None:
            return
        self._detail_name = name
        path = rec.get("path") or name
        current = lambda fn: (lambda arg: self._detail_name == name and fn(arg))  # noqa: E731 - drop late replies
        self.call_service(self.tprm.svc.recipes.text, path, done=current(self._show_yaml), group="recipes-yaml")
        self.query_one("#plan-summary", Static).update(f"{name}: expanding the plan...")
        if rec.get("valid", True):
            # planning never downloads (download=False): missing data is reported, not fetched
            self.call_service(self.tprm.svc.recipes.plan_summary, name, download=False,
                              done=current(lambda s: self._show_plan(rec, s)),
                              group="recipes-plan", on_error=current(lambda e: self._show_plan_error(rec, e)))
        else:
            self._show_plan_error(rec, rec.get("error") or "invalid recipe")

    def on_mount(self) -> None:
        super().on_mount()
        self.watch(self.app, "theme", lambda _theme: self._yaml_text and self._show_yaml(self._yaml_text), init=False)

    def _show_yaml(self, text: str) -> None:
        """The recipe's YAML, highlighted with the terminal's own palette (light or dark theme)."""
        self._yaml_text = text
        current = self.app.current_theme
        theme = "ansi_dark" if current.dark else "ansi_light"
        # the theme's own background, never the terminal's default (a dark terminal under the light theme)
        background = self.query_one("#recipe-yaml", Static).styles.background
        self.query_one("#recipe-yaml", Static).update(
            Syntax(text, "yaml", theme=theme, background_color=background.hex if background.a else current.background,
                   line_numbers=False, word_wrap=True))

    def _show_plan(self, rec: dict[str, Any], summary: dict[str, Any]) -> None:
        lines = [Text(f"{rec['name']}", style="bold"),
                 Text(f"knob {rec.get('knob', '?')} (hotter: {rec.get('hotter', '?')}), grid {rec.get('grid', '?')}")]
        if rec.get("run_by_path"):  # outside the recipe folders: where its file is
            lines.insert(1, Text(f"run from {rec['path']}", style="dim"))
        total = done = 0
        parts = []
        kinds = summary.get("kinds", summary)
        for kind in PLAN_KINDS:
            counts = kinds.get(kind)
            if isinstance(counts, dict) and counts.get("total"):
                parts.append(f"{kind} {counts.get('done', 0)}/{counts['total']}")
                total += int(counts["total"])
                done += int(counts.get("done", 0))
        lines.append(Text(f"plan: {done}/{total} jobs done"))
        lines.append(Text(" " + ", ".join(parts)))
        lines.append(Text("r runs it detached; ? shows every key", style="dim"))
        self.query_one("#plan-summary", Static).update(Text("\n").join(lines))

    def _show_plan_error(self, rec: dict[str, Any], error: Any) -> None:
        from tprm.service import DataNotFetched
        from tprm.tui.viewmodel import one_line

        if isinstance(error, DataNotFetched):  # a valid recipe whose data is not on disk yet
            self.query_one("#plan-summary", Static).update(Text.assemble(
                (f"{rec['name']}\n", "bold"), (one_line(error), "bold"),
                ("\nthe plan is shown once the data is there; `tprm data list` shows what is", "dim")))
            return
        self.query_one("#plan-summary", Static).update(
            Text(f"{rec['name']} does not validate:\n{one_line(error)}\npress e to fix it"))

    # ---------------------------------------------------------------- actions

    def action_run(self) -> None:
        name = self.tprm.recipe
        if not name:
            self.tprm.show_error("no recipe selected: pick one in the list first")
            return
        self.call_service(self.tprm.svc.runs.start_detached, name, done=lambda info: self._started(name, info),
                          group="recipes-run")

    def action_explore(self) -> None:
        """Ask for a budget, then open the Explore screen (it runs the exploration)."""
        from tprm.tui.screens.explore import ExploreScreen
        from tprm.tui.screens.prompt import PromptModal

        name = self.tprm.recipe
        if not name:
            self.tprm.show_error("no recipe selected: pick one in the list first")
            return

        def start(budget: str | None) -> None:
            if budget is not None:
                self.app.push_screen(ExploreScreen(name, None if budget == "none" else budget))

        self.app.push_screen(PromptModal(
            f"Explore {name}: budget", "50%", hint="cells (20), retrainings (60r), a share of the cells "
            "(30%) or none (until converged)"), start)

    def _started(self, name: str, info: dict[str, Any]) -> None:
        self.app.notify(f"{name}: run started (pid {info.get('pid', '?')}). It is detached: quitting the "
                        "UI or closing SSH does not stop it.", title="Run started", timeout=8)
        self.tprm.action_show("runs")

    def action_new(self) -> None:
        templates = [r["name"] for r in self.recipes if r.get("valid", True)]

        def create(answer: tuple[str, str] | None) -> None:
            if answer:
                name, template = answer
                self.call_service(self.tprm.svc.recipes.new, name, template=template,
                                  done=lambda path: self._created(name, path), group="recipes-new")

        def ask(folder: Path) -> None:  # the dialog says where the file goes before it is written
            self.app.push_screen(NewRecipeModal(templates, folder=str(folder)), create)

        self.call_service(self.tprm.svc.recipes.user_dir, done=ask, group="recipes-new")

    def _created(self, name: str, path: Path) -> None:
        self.app.notify(f"created {path}", title="New recipe")
        self.tprm.recipe = name
        self.reload()
        self._open_editor(str(path))

    def action_edit(self) -> None:
        rec = self._current()
        if rec is not None:
            self._open_editor(str(rec.get("path") or rec["name"]))

    def _open_editor(self, path: str) -> None:
        svc = self.tprm.svc

        def load() -> tuple[str, str]:
            return svc.recipes.text(path), str(svc.recipes.save_path(path))

        def loaded(answer: tuple[str, str]) -> None:
            text, target = answer
            self.app.push_screen(EditorScreen(path, text, target), lambda saved: saved and self.reload())

        self.call_service(load, done=loaded, group="recipes-edit")

    def action_edit_external(self) -> None:
        """Edit in $EDITOR (app suspended); the text is saved only if it validates."""
        rec = self._current()
        if rec is None:
            return
        path = str(rec.get("path") or rec["name"])
        self.call_service(self.tprm.svc.recipes.text, path, group="recipes-edit",
                          done=lambda text: self.external.edit(path, text))

    def action_validate(self) -> None:
        paths = [str(r.get("path") or r["name"]) for r in self.recipes]
        self.call_service(self.tprm.svc.recipes.validate, paths, done=self._validated, group="recipes-validate")

    def _validated(self, reports: list[dict[str, Any]]) -> None:
        bad = [r for r in reports if not r.get("ok")]
        if not bad:
            self.app.notify(f"{len(reports)} recipe(s) valid", title="Validate")
        else:
            self.tprm.show_error("; ".join(str(r.get("error")) for r in bad),
                                 title=f"{len(bad)} of {len(reports)} recipe(s) do not validate")
        self.reload()


def recipe_cells(rec: dict[str, Any]) -> tuple[str, str, str, str]:
    """The table cells of one list_recipes() entry."""
    if not rec.get("valid", True):
        jobs = "invalid"
    elif rec.get("jobs_total") is None:
        jobs = "-"  # the plan needs the data identity, computed on first use
    else:
        jobs = f"{rec.get('jobs_done', 0)}/{rec['jobs_total']}"
    return (ellipsize(rec["name"], NAME_WIDTH), ellipsize(str(rec.get("knob") or "-"), KNOB_WIDTH),
            str(rec.get("grid") or "-"), jobs)
