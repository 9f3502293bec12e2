"""Issue 22's newcomer walk through the TUI at 80x24 (Pilot, and tmux for what only a real
terminal shows), on real stores and a real tiny run.

Each test follows a sequence a new user met: an error a screen meets shows once, in place, and
every key (q too) keeps working; a new recipe is the selected one; the whole-run log opens at its
end; keys that arrive in one burst all count; the recipe list and header fit 80 columns.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY_RECIPE
from test_tui_e2e import Terminal
from test_tui_flows import problem, select_recipe, static_text, wait_for
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select

from tprm.service import Service
from tprm.tui.app import TprmApp
from tprm.tui.screens.editor import EditorScreen
from tprm.tui.screens.error import ErrorModal
from tprm.tui.screens.help import HelpScreen
from tprm.tui.screens.plot import PlotScreen
from tprm.tui.screens.results import ResultsScreen
from tprm.tui.screens.runs import RunsScreen
from tprm.tui.viewmodel import run_name

SIZE = (80, 24)
BAD_RECIPE = TINY_RECIPE.replace("name: tiny", "name: bad").replace(
    "dense: {epochs: 2, batch_size: 50, lr: 0.05", "dense: {epochs: 2, batch_size: 50, lr: fast")
CIFAR = "cifar10-preresnet20-batchsize-quick"  # shipped; its data is not on a fresh machine


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory):
    """A store where tiny ran to the end, with a recipe that does not validate beside it."""
    work = tmp_path_factory.mktemp("tui-newcomer")
    store = work / "store"
    (store / "recipes").mkdir(parents=True)
    # 12 dense epochs: the dense job's log is longer than the log view (so it is shown scrolled)
    (store / "recipes" / "tiny.yaml").write_text(TINY_RECIPE.replace("dense: {epochs: 2,", "dense: {epochs: 12,"))
    (store / "recipes" / "bad.yaml").write_text(BAD_RECIPE)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        assert Service(store).runs.run("tiny")["state"] == "done"
        # detached runs are `python -m tprm run` in this cwd: make the package importable there
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        yield store
        if (store / "recipes" / "fresh.yaml").exists():
            Service(store).runs.cancel("fresh")  # never leave a detached run behind


def navbar(app: TprmApp) -> str:
    return static_text(app, "#navbar").rstrip("\n")


async def burst(pilot: Pilot, key: str, count: int) -> None:
    """`count` presses of `key` handed to the app at once, as keys of one SSH packet arrive
    (Pilot's press waits for the screen between keys: that hides the defect)."""
    app = pilot.app
    for _ in range(count):
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(app)
        app._driver.send_message(event)
    await pilot.pause()


async def quits_within(pilot: Pilot, seconds: float) -> float:
    """Press q; the time until the app has exited (fails after `seconds`)."""
    start = time.monotonic()
    await pilot.press("q")
    while pilot.app.is_running and time.monotonic() - start < seconds:
        await pilot.pause(0.05)
    assert not pilot.app.is_running, f"q did not quit within {seconds}s (screens {pilot.app.screen_stack})"
    return time.monotonic() - start


async def test_invalid_recipe_error_shows_in_place_and_q_quits(walk) -> None:
    """bad (dense.lr: fast) selected, 4 then 3: the error shows once on the screen, with what to
    do; Enter and Escape change nothing, Runs shows no other recipe's progress, and q quits."""
    app = TprmApp(str(walk), poll_interval=0.25)
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "tiny")
        await pilot.press("2")  # tiny's finished run is on the monitor first
        await wait_for(pilot, lambda: "17/17 jobs" in static_text(app, "#run-eta"), 30, "tiny's progress")
        await pilot.press("1")
        await select_recipe(pilot, app, "bad")
        for key, screen in (("4", PlotScreen), ("3", ResultsScreen)):
            await pilot.press(key)
            await wait_for(pilot, lambda kind=screen: isinstance(app.screen, kind) and "dense.lr" in problem(app),
                           30, f"the error on {screen.__name__}")
            shown = problem(app)
            assert "bad.yaml:5: dense.lr" in shown and "press e to fix it" in shown, shown
            for _ in range(3):
                await pilot.press("enter", "escape")
            await pilot.pause(0.5)
            assert app.screen_stack == [app.screen] and not isinstance(app.screen, ErrorModal)
            assert problem(app) == shown  # once, in place: not a dialog that comes back
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and problem(app), 30, "the Runs problem")
        runs = app.screen
        assert runs.query_one("#job-table", DataTable).row_count == 0  # not tiny's 17 jobs
        assert "17/17" not in static_text(app, "#run-eta")
        await quits_within(pilot, 3)


async def test_missing_data_error_shows_in_place_and_q_quits(walk) -> None:
    """The shipped CIFAR recipe on a machine without CIFAR-10, then 4: one in-place error saying
    how to get the data; the keys keep working and q quits."""
    app = TprmApp(str(walk))
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, CIFAR)
        await pilot.press("4")
        await wait_for(pilot, lambda: "not downloaded" in problem(app), 60, "the missing-data error")
        assert "tprm data fetch cifar10" in problem(app) and "Cannot plot regime" in problem(app)
        for key in ("enter", "escape", "escape"):
            await pilot.press(key)
        assert isinstance(app.screen, PlotScreen) and len(app.screen_stack) == 1
        await pilot.press("1")  # every screen stays usable: back to the list, another recipe
        await select_recipe(pilot, app, "tiny")
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, PlotScreen) and app.screen.plot_data
                       and app.screen.plot_data.get("metric") == "regime", 60, "tiny's plot")
        assert problem(app) == ""  # the other recipe's error is gone
        await pilot.press("1")
        await select_recipe(pilot, app, CIFAR)
        await pilot.press("4")
        await wait_for(pilot, lambda: "not downloaded" in problem(app), 60, "the error again")
        await quits_within(pilot, 3)


async def test_error_dialog_lets_q_quit(walk) -> None:
    """A dialog (an editor's error) hides the app's keys: q on it still quits."""
    app = TprmApp(str(walk))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.recipe, 30, "the recipe list")
        app.show_error("a problem")  # on a task screen an error is shown in place
        assert not isinstance(app.screen, ErrorModal) and "a problem" in problem(app)
        app.push_screen(ErrorModal("something failed"))
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), 10, "the dialog")
        await quits_within(pilot, 3)


async def test_new_recipe_is_selected_and_r_runs_it(walk) -> None:
    """n -> name -> template -> ctrl+s: the new recipe is selected (cursor, header), and r runs it."""
    app = TprmApp(str(walk))
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "tiny")
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen.query_one("#name", Input), 10, "the new-recipe dialog")
        app.screen.query_one("#template", Select).value = "tiny"
        await pilot.press(*"fresh", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), 30, "the editor")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, EditorScreen), 30, "the saved recipe")
        table = app.screen.query_one("#recipe-table", DataTable)
        await wait_for(pilot, lambda: "fresh" in [k.value for k in table.rows], 30, "fresh in the list")
        await pilot.pause(0.5)  # every reload the save started has answered
        await app.workers.wait_for_complete()
        assert app.recipe == "fresh"
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "fresh"
        assert "recipe: fresh" in navbar(app)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 30, "the run monitor")
        svc = Service(walk)
        await wait_for(pilot, lambda: any(run_name(r) == "fresh" for r in svc.runs.status()["runs"]), 60,
                       "the run of fresh recorded")
        assert {run_name(r) for r in svc.runs.status()["runs"]} <= {"tiny", "fresh"}  # never quickstart


async def test_whole_run_log_opens_at_its_end(walk) -> None:
    """2, a job's log, then l on the finished run: the run log shows its last line."""
    app = TprmApp(str(walk))
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "tiny")
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen._rows) == 17, 30,
                       "the finished run's jobs")
        log = app.screen.query_one("#job-log")
        await wait_for(pilot, lambda: "dense seed=0: done" in "\n".join(log.lines) and log.scroll_y > 0, 30,
                       "the dense job's log, longer than the view")
        await pilot.press("l")
        await wait_for(pilot, lambda: "executed 17" in "\n".join(log.lines), 30, "the run log")
        await pilot.pause(0.5)
        assert log.line_count > log.scrollable_content_region.height  # longer than the view
        assert log.scroll_y == log.max_scroll_y > 0, (log.scroll_y, log.max_scroll_y)
        assert "executed 17" in log.lines[-1]


async def test_key_bursts_all_count(walk) -> None:
    """10 x j handed over at once scroll 10 lines in the YAML preview, the help and the run log."""
    app = TprmApp(str(walk))
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "quickstart")  # the longest YAML
        box = app.screen.query_one("#recipe-yaml-box")
        await wait_for(pilot, lambda: box.max_scroll_y > 20, 30, "the YAML preview")
        await pilot.press("tab")
        assert app.focused is box
        await burst(pilot, "j", 10)
        await wait_for(pilot, lambda: box.scroll_y == 10, 10, f"10 lines scrolled (at {box.scroll_y})")
        await burst(pilot, "k", 4)
        await wait_for(pilot, lambda: box.scroll_y == 6, 10, f"4 lines back (at {box.scroll_y})")

        await pilot.press("question_mark")
        help_body = app.screen.query_one("#help-body")
        assert isinstance(app.screen, HelpScreen) and app.focused is help_body
        await burst(pilot, "j", 10)
        await wait_for(pilot, lambda: help_body.scroll_y == 10, 10, f"help at line 10 ({help_body.scroll_y})")
        await pilot.press("escape", "shift+tab")  # back to the list
        await select_recipe(pilot, app, "tiny")
        await pilot.press("2", "l")
        log = app.screen.query_one("#job-log")
        await wait_for(pilot, lambda: "executed 17" in "\n".join(log.lines) and log.scroll_y == log.max_scroll_y,
                       30, "the run log at its end")
        log.focus()
        end = log.scroll_y
        await burst(pilot, "k", 10)
        await wait_for(pilot, lambda: log.scroll_y == max(end - 10, 0), 10, f"10 lines up ({log.scroll_y})")


def many_recipes_store(root) -> str:
    """A store with 15 recipes of its own (listed before the shipped ones), two with long names."""
    store = root / "store"
    (store / "recipes").mkdir(parents=True)
    names = [f"sweep-{i:02d}" for i in range(13)] + ["a-very-long-recipe-name-that-ends-in-one",
                                                      "a-very-long-recipe-name-that-ends-in-two"]
    for name in names:
        (store / "recipes" / f"{name}.yaml").write_text(TINY_RECIPE.replace("name: tiny", f"name: {name}"))
    return str(store)


async def test_recipe_list_fits_80x24(tmp_path) -> None:
    """Names stay on one line (an ellipsis, the whole name in the detail pane), the selected row
    is on screen from the start, the header is one line with a long name, Compare is a tab."""
    app = TprmApp(many_recipes_store(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one("#recipe-table", DataTable)
        await wait_for(pilot, lambda: table.row_count > 20 and app.recipe == "quickstart", 30, "the list")
        await wait_for(pilot, lambda: "jobs done" in static_text(app, "#plan-summary"), 60,
                       "the plan (it takes rows from the list)")
        assert table.cursor_row > 15  # far down a list longer than the screen ...

        def cursor_on_screen() -> bool:
            rows = table.scrollable_content_region.height - 1  # less the header row
            return table.scroll_y <= table.cursor_row < table.scroll_y + rows

        await wait_for(pilot, cursor_on_screen, 10, "the selected row on screen",
                       explain=lambda: f"scroll_y {table.scroll_y}, cursor row {table.cursor_row}")
        assert all(row.height == 1 for row in table.rows.values())
        names = [str(table.get_cell_at((r, 0))) for r in range(table.row_count)]
        long_ones = [n for n in names if "…" in n]
        assert len(long_ones) >= 2 and len(set(names)) == len(names), names  # cut, still told apart
        assert "6 Compare" in navbar(app) and "1 Recipes" in navbar(app)

        await select_recipe(pilot, app, "a-very-long-recipe-name-that-ends-in-two")
        await wait_for(pilot, lambda: "a-very-long-recipe-name-that-ends-in-two" in static_text(app, "#plan-summary"),
                       30, "the whole name in the detail pane")
        bar = app.screen.query_one("#navbar")
        assert bar.size.height == 1 and len(navbar(app)) <= SIZE[0], navbar(app)
        assert "recipe: a-very" in navbar(app) and navbar(app).endswith("in-two")
        await pilot.press("6")
        assert "6 Compare" in navbar(app) and app.screen.query_one("#navbar").size.height == 1


def tui_in_tmux(store: Path, cwd: Path, name: str, env: str = "") -> Terminal:
    """`tprm tui` on `store` in a tmux session at 80x24 (tmux is required, as in test_tui_e2e)."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.fail("tmux is not installed (apt-get install -y tmux); the end-to-end test needs a real terminal")
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    command = (f"env PYTHONPATH={shlex.quote(pythonpath)} TERM=xterm-256color {env} "
               f"{shlex.quote(sys.executable)} -m tprm tui --store {shlex.quote(str(store))}")
    return Terminal(tmux, f"tprm-{name}-{os.getpid()}", command, cwd)


def wait_screen(term: Terminal, condition, what: str, timeout: float = 30.0) -> str:
    """The screen once `condition(screen)` holds; fail with the last screen after `timeout`."""
    deadline, screen = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        screen = term.screen()
        if condition(screen):
            return screen
        time.sleep(0.2)
    pytest.fail(f"{what}: not seen within {timeout:.0f}s; the screen was:\n{screen}")


def settled(term: Terminal, timeout: float = 30.0) -> str:
    """The screen once two captures 0.3 s apart agree (the app has drawn what it had to)."""
    last, deadline = term.screen(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = term.screen()
        if now == last:
            return now
        last = now
    pytest.fail(f"the screen kept changing for {timeout:.0f}s; last:\n{last}")


def test_tmux_burst_of_keys_scrolls_as_far_as_single_keys(walk) -> None:
    """At 80x24 the header is one line with every tab and the selected row is on screen; in the
    YAML preview one `tmux send-keys` of 10 x j scrolls as far as 10 single j's."""
    term = tui_in_tmux(walk, walk.parent, "burst")
    try:
        screen = term.wait_for(r"plan: \d+/\d+ jobs done", 60)  # quickstart is selected and shown
        lines = screen.splitlines()
        assert "6 Compare" in lines[0] and "recipe: quickstart" in lines[0], lines[0]
        assert "? help" in lines[0] and "? help" not in lines[1]
        assert re.search(r"^\s*quickstart\s+epochs", screen, re.M), screen  # its row, on screen
        term.keys("Tab")  # focus: the YAML preview
        top = settled(term)
        for step in range(10):  # one key at a time, each seen on the screen
            before = term.screen()
            term.keys("j")
            wait_screen(term, lambda now, before=before: now != before, f"j number {step + 1} scrolling")
        ten = settled(term)
        term.keys("g")
        wait_screen(term, lambda now: now == top, "g back at the top")
        term.keys(*["j"] * 10)  # one burst
        wait_screen(term, lambda now: now == ten, "the burst of 10 j at the same place as 10 single j", 15)
    finally:
        term.close()


EDITOR_SCRIPT = """#!/bin/sh
# first edit: break the dense learning rate; on the reopened draft: fix it
if grep -q 'lr: fast' "$1"; then sed -i 's/lr: fast/lr: 0.07/' "$1"
else sed -i '0,/lr: 0.05/s//lr: fast/' "$1"; fi
"""


def test_tmux_rejected_editor_edit_keeps_a_draft_that_E_reopens(tmp_path) -> None:
    """E with an edit that does not validate: the screen says where the draft is and that E
    reopens it; the recipe file is untouched; E again opens the draft, and its fix is saved."""
    store = tmp_path / "store"
    (store / "recipes").mkdir(parents=True)
    recipe = store / "recipes" / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    editor = tmp_path / "editor.sh"
    editor.write_text(EDITOR_SCRIPT)
    editor.chmod(0o755)
    drafts = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))  # short: the path fits one line
    term = tui_in_tmux(store, tmp_path, "draft", f"EDITOR={editor} VISUAL= TMPDIR={drafts}")
    try:
        term.wait_for(r"plan: \d+/\d+ jobs done", 60)
        term.keys("g")  # the store's own recipe is listed first
        term.wait_for(r"recipe: tiny", 30)
        term.keys("E")
        screen = term.wait_for(r"press E to\W+reopen", 60)  # \W: the line may break there
        [draft] = drafts.glob("tprm-tiny-draft-*.yaml")
        assert "Not saved" in screen and "dense.lr" in screen and str(draft) in screen, screen
        assert "lr: fast" in draft.read_text() and recipe.read_text() == TINY_RECIPE
        term.keys("E")
        wait_screen(term, lambda _screen: "lr: 0.07" in recipe.read_text(), "the fixed draft saved", 60)
        wait_screen(term, lambda now: "kept in" not in now, "the problem answered")
        assert not draft.exists()
    finally:
        term.close()
        shutil.rmtree(drafts, ignore_errors=True)
