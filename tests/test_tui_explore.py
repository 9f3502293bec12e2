"""The TUI's Explore at 80x24 on a real store: x on the Recipes screen asks for a budget, the map
fills in round by round from real (tiny) runs, and the app stays usable (escape, quit)."""

from __future__ import annotations

import re

import pytest
from test_explore_run import EXPLORE_RECIPE
from test_tui_flows import select_recipe, wait_for

from tprm.tui.app import TprmApp
from tprm.tui.screens.explore import ExploreScreen
from tprm.tui.screens.recipes import RecipesScreen


@pytest.fixture
def store(tmp_path, monkeypatch):
    root = tmp_path / "store"
    (root / "recipes").mkdir(parents=True)
    (root / "recipes" / "tiny-explore.yaml").write_text(EXPLORE_RECIPE)
    monkeypatch.chdir(tmp_path)
    return root


async def test_explore_fills_the_map_round_by_round(store) -> None:
    app = TprmApp(str(store), poll_interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_recipe(pilot, app, "tiny-explore")
        key = app.screen.active_bindings.get("x")  # shown in the footer as "Explore"
        assert key is not None and key.binding.action == "explore" and key.binding.show
        await pilot.press("x")
        await wait_for(pilot, lambda: app.screen.query_one("#prompt-input").value == "50%", 10, "the budget prompt")
        app.screen.query_one("#prompt-input").value = "5"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExploreScreen), 10, "the explore screen")
        screen = app.screen
        assert isinstance(screen, ExploreScreen)
        await wait_for(pilot, lambda: screen.result is not None, 120, "the exploration's end")
        result = screen.result
        assert result is not None and result["measured_cells"] == 5 and result["stop"] == "budget"
        # the map was drawn after each round (start design of 4, then 1 cell) and at the end
        assert screen.maps_shown >= 3
        text = screen.map_text
        assert "measured 5 of 9 cells" in text and "budget spent" in text
        rows = [ln for ln in text.splitlines() if re.match(r"\s+\d+% │", ln)]
        assert len(rows) == 3
        marks = " ".join(rows)
        # measured cells in upper case; the 4 unmeasured ones inferred (lower case) or '?'
        assert len(re.findall(r"\b(?:I|II-A|II-B)\b", marks)) == 5
        assert len(re.findall(r"(?<![\w-])(?:i|ii-a|ii-b|\?)(?![\w-])", marks)) == 4
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipesScreen), 10, "back on the recipes")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, 20, "the app to quit")
