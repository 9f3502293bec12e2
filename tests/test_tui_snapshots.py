"""SVG snapshots of the main TUI screens at 80x24 on a prepared store (pytest-textual-snapshot).

The store is prepared once per module by a real foreground run of the tiny recipe. Screens
are captured after every worker has finished, with no clock or ETA text on screen (the run
is finished; the logs' timestamps, run id and pid are replaced), so the pictures are deterministic.
Update them with `pytest tests/test_tui_snapshots.py --snapshot-update` after a deliberate
UI change, and look at the report before committing.
"""

from __future__ import annotations

import re

import pytest
from conftest import prepare_tiny_store
from textual.pilot import Pilot

from tprm.tui.app import TprmApp

SIZE = (80, 24)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):
    """A store where the tiny recipe ran to the end (and a cwd without recipes of its own)."""
    work = tmp_path_factory.mktemp("tui-snapshots")
    store = prepare_tiny_store(work)
    fixed_logs(store)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        yield store


def fixed_logs(store) -> None:
    """Run and job logs with the clock, run id and pid replaced, so the log views are deterministic."""
    for log in [*store.glob("runs/*/run.log"), *store.glob("logs/*.log")]:
        text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "2026-01-01 00:00:00", log.read_text())
        text = re.sub(r"\d{8}-\d{6}-[0-9a-f]{6}", "20260101-000000-000000", text)
        log.write_text(re.sub(r"pid \d+ on \S+", "pid 1 on host", text))


async def settle(pilot: Pilot) -> None:
    """Wait until no worker runs and the screen has repainted (twice in a row, as callbacks chain)."""
    quiet = 0
    while quiet < 3:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.1)
        quiet = quiet + 1 if not any(w.is_running for w in pilot.app.workers) else 0


def app_on(store, recipe: str = "tiny") -> TprmApp:
    app = TprmApp(str(store), poll_interval=3600)  # one poll on entry, then none during the capture
    app.recipe = recipe
    return app


def before(*keys: str, ready=lambda screen: True):
    """run_before: settle, press keys (settling after each, and until `ready(screen)` holds), settle."""
    async def run(pilot: Pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
            for _ in range(100):
                if ready(pilot.app.screen):
                    break
                await pilot.pause(0.1)
            await settle(pilot)
    return run


def plot_ready(screen) -> bool:
    """The plot, the inspector grid and the cell details are all in."""
    return bool(getattr(screen, "plot_data", None) and getattr(screen, "cells", None)
                and screen.query_one("#cell-grid").row_count)


def test_recipes_screen(snap_compare, prepared) -> None:
    assert snap_compare(app_on(prepared), terminal_size=SIZE, run_before=before())


def test_runs_screen(snap_compare, prepared) -> None:
    assert snap_compare(app_on(prepared), terminal_size=SIZE, run_before=before("2", "l"))


def table_ready(screen) -> bool:
    """The results table holds its rows and has applied their column widths (done when idle: on a
    loaded machine a capture right after the fill showed header-wide, cut-off columns), and the
    layout has placed the horizontal scrollbar those widths call for."""
    tables = screen.query("#results-table")
    if not tables or not tables.first().row_count or tables.first()._require_update_dimensions:
        return False
    table = tables.first()
    for i, column in enumerate(table.ordered_columns):  # every column as wide as its widest cell
        if column.content_width < max(len(str(v)) for v in table.get_column_at(i)):
            return False
    # and the layout has caught up: the horizontal scrollbar shown iff needed
    return table.show_horizontal_scrollbar == (table.virtual_size.width > table.scrollable_content_region.width)


def test_results_screen(snap_compare, prepared) -> None:
    assert snap_compare(app_on(prepared), terminal_size=SIZE, run_before=before("3", ready=table_ready))


def test_plot_screen(snap_compare, prepared) -> None:
    assert snap_compare(app_on(prepared), terminal_size=SIZE, run_before=before("4", "down", ready=plot_ready))


def test_plot_screen_heat_map_80x24(snap_compare, prepared) -> None:
    """The test-error heat map (coloured blocks, values inside, colour bar) at 80x24."""
    assert snap_compare(app_on(prepared), terminal_size=SIZE,
                        run_before=before("4", "right_square_bracket", ready=plot_ready))


def test_plot_screen_heat_map_120x40(snap_compare, prepared) -> None:
    """The same heat map grows with the terminal; the regime map too."""
    assert snap_compare(app_on(prepared), terminal_size=(120, 40),
                        run_before=before("4", "right_square_bracket", ready=plot_ready))


def test_plot_screen_regimes_120x40(snap_compare, prepared) -> None:
    assert snap_compare(app_on(prepared), terminal_size=(120, 40), run_before=before("4", ready=plot_ready))


def test_cases_screen(snap_compare, prepared) -> None:
    assert snap_compare(app_on(prepared), terminal_size=SIZE, run_before=before("5"))


def test_help_screen(snap_compare, prepared) -> None:
    assert snap_compare(app_on(prepared), terminal_size=SIZE, run_before=before("question_mark"))


def test_cases_screen_at_60x20(snap_compare, prepared) -> None:
    """The case form packs into two rows and the question folds away: Run and the results stay visible."""
    assert snap_compare(app_on(prepared), terminal_size=(60, 20), run_before=before("5"))
