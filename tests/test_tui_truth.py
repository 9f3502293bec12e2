"""What the screen says must be true: detached case studies that stop in seconds, offline planning
without the network, forms that keep their values, visible focus, footer keys, palette, export.

Pilot-driven at 80x24 on real stores; case studies are real detached `python -m tprm.service.case_job`
processes training the tiny recipes.
"""

from __future__ import annotations

import os
import socket
import time

import pytest
from conftest import ROOT, TINY_RECIPE
from rich.style import Style
from test_tui_flows import SAM_RECIPE, SIZE, SLOW_RECIPE, run_line, select_recipe, static_text, wait_for
from textual.color import Color
from textual.filter import NoColor
from textual.widgets import DataTable, Input, Select

from tprm.service import Service
from tprm.tui.app import TprmApp
from tprm.tui.colors import MIN_CONTRAST, ReadableMonochrome, readable_grey
from tprm.tui.screens.confirm import ConfirmModal
from tprm.tui.screens.editor import EditorScreen
from tprm.tui.screens.plot import PlotScreen
from tprm.tui.screens.prompt import PromptModal
from tprm.tui.screens.results import ResultsScreen
from tprm.tui.widgets.case_panel import CasePanel


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory):
    """A store with tiny (run to the end), slow and tiny-sam; detached processes import this tree."""
    work = tmp_path_factory.mktemp("tui-truth")
    store = work / "store"
    (store / "recipes").mkdir(parents=True)
    for name, text in (("tiny", TINY_RECIPE), ("slow", SLOW_RECIPE), ("tiny-sam", SAM_RECIPE)):
        (store / "recipes" / f"{name}.yaml").write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        assert Service(store).runs.run("tiny")["state"] == "done"
        yield work, store
        svc = Service(store)
        for case in svc.cases.list():
            svc.cases.cancel(case["id"])
        svc.runs.cancel("slow")


def footer_keys(app: TprmApp) -> set[str]:
    """The keys the footer shows right now."""
    return {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show and b.enabled}


async def test_case_study_is_detached_and_stops_within_seconds(work) -> None:
    """r on Cases starts a detached process (not the TUI's pid); x (in the footer) stops it in
    seconds through the runner's cancel path: jobs cancelled, never stale or failed; Runs never
    calls the live run STALE; quitting says it keeps running."""
    _, store = work
    app = TprmApp(str(store), poll_interval=0.25)
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "slow")
        await pilot.press("5", "n")  # the Select tab: trains every temperature at one density
        panel = app.screen.query_one("#case-select", CasePanel)
        await wait_for(pilot, lambda: panel.recipe == "slow" and panel.recipe_values, 30, "the select inputs")
        assert "x" in footer_keys(app)
        await pilot.press("r")
        await wait_for(pilot, lambda: panel.case_pid is not None, 30, "the case-study process")
        assert panel.case_pid != os.getpid()
        svc = Service(store)
        await wait_for(pilot, lambda: any(j["state"] == "running" for j in svc.runs.status("slow")["jobs"]), 60,
                       "a running job")
        status = static_text(app, "#select-status")
        assert "detached" in status and f"pid {panel.case_pid}" in status

        await pilot.press("2")  # Runs: the case's run is alive, so it is running, not STALE
        await wait_for(pilot, lambda: "running" in run_line(app), 30, "the case's run on Runs")
        assert "STALE" not in run_line(app) and f"pid {panel.case_pid}" in run_line(app)

        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), 10, "the quit question")
        assert "select (pid" in app.screen.question and "keeps running in the background" in app.screen.question
        assert "quitting stops it" not in app.screen.question
        await pilot.press("n")

        await pilot.press("5")
        await wait_for(pilot, lambda: app.screen.query_one("#case-select", CasePanel).running, 10, "Cases again")
        stop_pressed = time.monotonic()
        await pilot.press("x")
        assert "stopping" in static_text(app, "#select-status")  # says so at once
        await wait_for(pilot, lambda: "stopped" in static_text(app, "#select-status"), 20, "the stop")
        took = time.monotonic() - stop_pressed
        assert took < 15, f"stop took {took:.1f}s"
        assert "resumable" in static_text(app, "#select-status")
    status = Service(store).runs.status("slow")
    states = {j["state"] for j in status["jobs"]}
    assert "cancelled" in states and not states & {"stale", "failed", "running"}, states
    assert status["runs"][-1]["state"] == "cancelled"


async def test_offline_cifar_recipe_plans_without_network(work, monkeypatch) -> None:
    """A shipped CIFAR recipe (download: true) with no data: no socket is opened, the arrow keys
    keep working, and the summary names the missing data set and the command that fetches it."""
    _, store = work
    opened: list[object] = []

    def no_connect(self, address):  # any connection attempt is recorded and refused
        opened.append(address)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", no_connect)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: no_connect(None, a[0] if a else None))
    app = TprmApp(str(store))
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "cifar10-preresnet20-epochs-quick")
        await wait_for(pilot, lambda: "not downloaded" in static_text(app, "#plan-summary"), 20, "the data state")
        summary = static_text(app, "#plan-summary")
        assert "CIFAR-10 not downloaded: run `tprm data fetch cifar10` or set dataset.root" in summary
        assert "does not validate" not in summary
        started = time.monotonic()
        await pilot.press("down")
        await wait_for(pilot, lambda: app.recipe != "cifar10-preresnet20-epochs-quick", 3, "the next recipe")
        assert time.monotonic() - started < 3
    assert opened == []


async def test_case_inputs_keep_values_escape_and_digits(work) -> None:
    """rho typed on the SAM tab survives 2 then 5; Esc leaves the field; digits in a form are input."""
    _, store = work
    app = TprmApp(str(store))
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "tiny")
        await pilot.press("5", "n", "n")
        panel = app.screen.query_one("#case-sam", CasePanel)
        await wait_for(pilot, lambda: panel.recipe == "tiny-sam" and panel.recipe_values, 30, "the SAM inputs")
        rho = app.screen.query_one("#sam-rho", Input)
        rho.focus()
        rho.value = ""
        await pilot.press(*"0.02")
        assert rho.value == "0.02"
        assert footer_keys(app) >= {"escape", "enter"}  # the footer is not blank inside a field
        await pilot.press("2")  # inside the field: input, not a screen switch
        assert app.current_mode == "cases" and rho.value == "0.022"
        await pilot.press("backspace", "escape")
        assert not rho.has_focus and app.current_mode == "cases"
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_mode == "runs", 5, "Runs")
        await pilot.press("5")
        await wait_for(pilot, lambda: app.current_mode == "cases", 5, "Cases")
        await pilot.pause(1.0)  # the values reload on resume: they must not reset the inputs
        assert app.screen.query_one("#sam-rho", Input).value == "0.02"

        density = app.screen.query_one("#sam-density", Select)
        density.focus()
        await pilot.pause()
        await pilot.press("3")  # a form's select has focus: digits do not switch screens
        assert app.current_mode == "cases"
        assert "escape" in footer_keys(app)  # "Leave form" is shown
        await pilot.press("escape")
        assert not density.has_focus
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "results", 5, "Results")


async def test_focus_is_visible_and_footer_shows_every_key(work) -> None:
    """Focused compact form widgets look different; E, f5, l, x are in the footers."""
    _, store = work
    app = TprmApp(str(store))
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "tiny")
        assert {"r", "e", "E", "n", "v", "f5"} <= footer_keys(app)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_mode == "runs", 5, "Runs")
        assert {"r", "c", "l", "f5"} <= footer_keys(app)
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "results", 5, "Results")
        assert {"s", "slash", "x", "f5"} <= footer_keys(app)
        await pilot.press("5")
        await wait_for(pilot, lambda: app.current_mode == "cases", 5, "Cases")
        assert {"r", "n", "x"} <= footer_keys(app)
        panel = app.screen.query_one("#case-direction", CasePanel)
        await wait_for(pilot, lambda: panel.recipe_values, 30, "the direction inputs")
        for selector in ("#direction-density", "#direction-evaluate"):
            widget = app.screen.query_one(selector)
            inner = widget.query_one("SelectCurrent") if isinstance(widget, Select) else widget
            before = inner.styles.background
            widget.focus()
            await pilot.pause()
            assert inner.styles.background != before, f"{selector}: focus does not show"
            assert footer_keys(app)  # never blank


async def test_palette_switches_recipes_and_plots_from_anywhere(work) -> None:
    """Recipe: NAME switches the recipe; Plot: regime map works while already on Plot."""
    _, store = work
    app = TprmApp(str(store))
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "tiny")
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "results", 5, "Results")
        await pilot.press("ctrl+p", *"Recipe: slow")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.recipe == "slow", 10, "the palette's recipe switch")
        assert app.current_mode == "results"
        app.recipe = "tiny"
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, PlotScreen), 10, "Plot")
        app.screen.query_one("#metric-select", Select).value = "mc"
        await wait_for(pilot, lambda: app.screen.metric == "mc", 10, "the mc plot")
        await pilot.press("ctrl+p", *"Plot: regime map")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.metric == "regime", 10, "the regime map from Plot")


async def test_export_asks_before_overwriting_and_bad_filter_says_so(work, tmp_path) -> None:
    _, store = work
    app = TprmApp(str(store))
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "tiny")
        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen) and len(app.screen.rows) == 4, 30,
                       "four result rows")
        await pilot.press("slash", *"mc<<0")
        status = static_text(app, "#results-status")
        assert "'<0' is not a number" in status and "0 of 4" not in status
        await pilot.press("escape")
        app.screen.query_one("#results-filter", Input).value = ""

        target = tmp_path / "out.csv"
        target.write_text("precious\n")
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptModal), 10, "the export dialog")
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), 10, "the overwrite question")
        assert "already exists" in app.screen.question
        await pilot.press("n")
        await pilot.pause(0.5)
        assert target.read_text() == "precious\n"  # kept
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptModal), 10, "the export dialog")
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), 10, "the overwrite question")
        await pilot.press("y")
        await wait_for(pilot, lambda: target.read_text().startswith("temperature"), 10, "the overwrite")


async def test_vim_keys_in_lists(work) -> None:
    """j/k move, G/End go to the last row and g/Home to the first, in the recipe list."""
    _, store = work
    app = TprmApp(str(store))
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one("#recipe-table", DataTable)
        await wait_for(pilot, lambda: table.row_count > 3 and app.recipe is not None, 30, "the recipe list")
        table.focus()
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1


async def test_editing_a_shipped_recipe_saves_a_copy(work) -> None:
    """e on a shipped recipe says where the copy goes; the installed file is never written."""
    work_dir, store = work
    shipped = ROOT / "recipes" / "quickstart.yaml"
    original = shipped.read_text()
    app = TprmApp(str(store))
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "quickstart")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), 30, "the editor")
        copy = store / "recipes" / "quickstart.yaml"
        assert f"saves a copy to {copy}" in static_text(app, "#editor-title")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: copy.exists(), 30, "the copy")
    assert shipped.read_text() == original and copy.read_text() == original
    assert Service(store).recipes.path("quickstart") == copy  # the copy is found first from now on
    copy.unlink()


def test_dumb_terminal_gets_no_colour_and_no_color_stays_readable(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert any(isinstance(f, NoColor) for f in TprmApp("/nonexistent-store")._filters)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("NO_COLOR", "1")
    filters = TprmApp("/nonexistent-store")._filters
    assert any(isinstance(f, ReadableMonochrome) for f in filters)
    dark = Color(20, 20, 20)
    muted = readable_grey(Style(color="rgb(60,60,60)"), dark)  # dim text on a dark background
    grey = Color.from_rich_color(muted.color)
    assert abs(grey.brightness - dark.brightness) >= MIN_CONTRAST and grey.r == grey.g == grey.b
