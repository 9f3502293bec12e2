"""Pilot at 80x24 on real tiny stores: a cell opened from Plot and Results, and a Cases screen whose
answers belong to the request shown, whose tab labels are its keys and whose inputs are labelled."""

from __future__ import annotations

from pathlib import Path

import io
import os

import pytest
from conftest import ROOT, TINY_RECIPE, prepare_tiny_store
from rich.console import Console
from textual.widgets import DataTable, Label, Select, TabbedContent
from textual.widgets._tabbed_content import ContentTab
from test_tui_flows import SIZE, select_recipe, static_text, wait_for

from tprm.service import Service
from tprm.tui.app import TprmApp
from tprm.tui.screens.cell import CellScreen
from tprm.tui.screens.plot import PlotScreen
from tprm.tui.screens.results import ResultsScreen
from tprm.tui.widgets.case_panel import CASES, CasePanel, indented

BROKEN = (TINY_RECIPE.replace("name: tiny", "name: broken")
          .replace("model: {name: conv1d, kwargs: {widths: [8, 8, 8]}}",
                   f"model: {{import: 'user_models:train_fails', path: '{Path(__file__).resolve().parent}'}}"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    work = tmp_path_factory.mktemp("tui-cell")
    store = prepare_tiny_store(work)
    (store / "recipes" / "broken.yaml").write_text(BROKEN)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)  # detached case studies run `python -m tprm...` here: make the package importable
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        yield store


def footer_keys(app: TprmApp) -> dict[str, str]:
    return {b.key: b.description for b in (x.binding for x in app.screen.active_bindings.values()) if b.show}


async def test_plot_inspector_and_results_row_open_the_cell(store) -> None:
    app = TprmApp(str(store))
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "tiny")
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, PlotScreen) and app.screen.plot_text, 60, "a plot")
        plot = app.screen
        await wait_for(pilot, lambda: plot.selected_cell() is not None, 30, "the inspector cursor")
        assert footer_keys(app).get("o") == "Open cell"
        await pilot.press("right")  # the second temperature
        t, d = plot.selected_cell()
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, CellScreen) and app.screen.view, 60, "the cell view")
        view = app.screen.view
        assert (view["temperature"], view["density"]) == (t, d)
        want = Service(store).results.cell("tiny", t, d)
        shown = static_text(app, "#cell-text")
        assert want["text"].splitlines()[0] in shown and "LMC retrain seeds 0-1" in shown
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, PlotScreen), 10, "back on Plot")

        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen) and app.screen.shown, 60, "results")
        results = app.screen
        assert footer_keys(app).get("o") == "Open cell"
        await pilot.press("down", "down")
        row = results.shown[results.query_one("#results-table", DataTable).cursor_row]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CellScreen) and app.screen.view, 60, "the row's cell")
        assert (app.screen.view["temperature"], app.screen.view["density"]) == (row["temperature"], row["density"])
        await pilot.press("q")  # q closes the cell view, not the app
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), 10, "back on Results")


async def open_cases(pilot, app: TprmApp) -> CasePanel:
    """Recipes -> tiny -> Cases (5), once the direction inputs hold tiny's values."""
    await select_recipe(pilot, app, "tiny")
    await pilot.press("5")
    panel = app.screen.query_one("#case-direction", CasePanel)
    await wait_for(pilot, lambda: panel.recipe_values, 30, "the direction inputs")
    return panel


async def test_cases_tabs_keys_labels_and_first_tab_enter(store) -> None:
    app = TprmApp(str(store))
    async with app.run_test(size=SIZE) as pilot:
        await open_cases(pilot, app)
        await pilot.press("tab", "enter")  # the first Tab+Enter opens the recipe dropdown
        await wait_for(pilot, lambda: app.screen.query_one("#direction-recipe", Select).expanded, 5,
                       "the recipe dropdown")
        await pilot.press("escape", "escape")
        tabs = app.screen.query_one("#case-tabs", TabbedContent)
        for kind, case in CASES.items():  # each tab's label starts with the key that opens it
            label = str(app.screen.query_one(f"#--content-tab-tab-{kind}", ContentTab).label)
            assert label.split()[0] == case["key"]
            await pilot.press(case["key"])
            assert tabs.active == f"tab-{kind}"
            labels = [str(w.render()) for w in app.screen.query_one(f"#case-{kind}", CasePanel).query(Label)]
            assert "recipe:" in labels and "density:" in labels


async def test_a_failed_case_never_sits_under_the_previous_answer(store) -> None:
    app = TprmApp(str(store))
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_cases(pilot, app)
        await pilot.press("r")
        await wait_for(pilot, lambda: panel.report is not None, 240, "the direction decision")
        assert static_text(app, "#direction-decision").startswith("Decision:")

        panel.query_one("#direction-recipe", Select).value = "broken"
        await wait_for(pilot, lambda: panel.recipe_values and panel._values_for == "broken", 30, "broken's inputs")
        await pilot.press("r")
        await wait_for(pilot, lambda: static_text(app, "#direction-status").startswith("failed:"), 240,
                       "the failure")
        status = static_text(app, "#direction-status")
        assert "train_fails cannot train" in status and "dense seed=0" in status
        assert panel.report is None
        for part in ("decision", "report", "numbers"):
            assert static_text(app, f"#direction-{part}").strip() == ""


def test_wrapped_answer_lines_keep_their_indentation() -> None:
    text = "Head line\n    evidence: " + " ".join(["word"] * 30) + "\n  thresholds:"
    console = Console(width=40, record=True, file=io.StringIO())
    console.print(indented(text))
    lines = [line.rstrip() for line in console.export_text().rstrip("\n").splitlines()]
    assert lines[0] == "Head line" and lines[-1] == "  thresholds:"
    body = lines[1:-1]
    assert len(body) > 1 and all(line.startswith("    ") and line[4] != " " for line in body)
