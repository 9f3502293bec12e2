"""Command-palette provider (ctrl+p): every main action of the app by name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tprm.tui.screens.plot import plot_metrics

if TYPE_CHECKING:
    from tprm.tui.app import TprmApp


async def _on_screen(app: "TprmApp", mode: str, action: str | None = None, *args: Any) -> None:
    """Switch to a task screen, then run one of its actions."""
    if app.current_mode != mode:
        await app.switch_mode(mode)
    if action is not None:
        await app.screen.run_action(action if not args else f"{action}({', '.join(map(repr, args))})")


def palette_commands(app: "TprmApp") -> list[tuple[str, str, Callable[[], Awaitable[None]]]]:
    """(name, help, callback) for every palette command."""
    go = partial(_on_screen, app)
    commands: list[tuple[str, str, Callable[[], Awaitable[None]]]] = [
        ("Recipes: list", "pick the recipe the other screens show", partial(go, "recipes")),
        ("Recipes: new from template", "create a recipe from a template", partial(go, "recipes", "new")),
        ("Recipes: edit", "edit the selected recipe (saved only if valid)", partial(go, "recipes", "edit")),
        ("Recipes: edit in $EDITOR", "edit the selected recipe in your editor",
         partial(go, "recipes", "edit_external")),
        ("Recipes: validate all", "check every recipe file", partial(go, "recipes", "validate")),
        ("Run: launch or resume the recipe", "detached: survives quitting the UI or losing SSH",
         partial(go, "runs", "launch")),
        ("Explore: the recipe's plane", "regime map from a fraction of the grid (asks for a budget)",
         partial(go, "recipes", "explore")),
        ("Run: cancel", "stop the recipe's running run (asks first)", partial(go, "runs", "cancel")),
        ("Run: monitor", "jobs, progress, ETA and logs", partial(go, "runs")),
        ("Results: table", "sortable, filterable cell results", partial(go, "results")),
        ("Results: export CSV/JSON", "write the rows shown to a file", partial(go, "results", "export")),
        ("Plot: regime map", "regimes I / II-A / II-B over temperature x density",
         partial(_plot_metric, app, "regime")),
        ("Plot: write report", "report.md + PNG/SVG figures of the recipe (key w on the Plot screen)",
         partial(go, "plot", "write_report")),
        ("Compare: two recipes", "maps side by side, difference B - A, regime changes", partial(go, "compare")),
    ]
    for name in app.recipe_names:
        commands.append((f"Recipe: {name}", f"show {name} on every screen", partial(_recipe, app, name)))
    for metric in [m for m in plot_metrics(app.svc) if m != "regime"]:
        commands.append((f"Plot: {metric}", f"phase plot of {metric}", partial(_plot_metric, app, metric)))
    for kind, title in (("direction", "which way to move a hyperparameter"),
                        ("select", "which model of a family to prune"), ("sam", "tuning SAM's rho")):
        commands.append((f"Case study: {kind}", title, partial(_case, app, kind)))
    commands += [
        ("Help: keys and getting started", "every binding", partial(_help, app)),
        ("Theme: toggle light/dark", "switch between the light and dark theme", partial(_theme, app)),
    ]
    return commands


async def _plot_metric(app: "TprmApp", metric: str) -> None:
    await _on_screen(app, "plot")
    from textual.widgets import Select

    app.screen.query_one("#metric-select", Select).value = metric


async def _recipe(app: "TprmApp", name: str) -> None:
    app.recipe = name  # every screen follows the app's recipe


async def _case(app: "TprmApp", kind: str) -> None:
    await _on_screen(app, "cases")
    from textual.widgets import TabbedContent

    app.screen.query_one("#case-tabs", TabbedContent).active = f"tab-{kind}"


async def _help(app: "TprmApp") -> None:
    app.action_help()


async def _theme(app: "TprmApp") -> None:
    app.action_toggle_theme()


class TprmCommands(Provider):
    """Offers the app's actions in the command palette (discoverable with an empty query)."""

    async def startup(self) -> None:
        app: "TprmApp" = self.app  # type: ignore[assignment]
        if not app.recipe_names:  # the Recipes screen fills this; before it has, ask the service
            import asyncio

            try:
                rows = await asyncio.to_thread(app.svc.recipes.list)
            except Exception:  # noqa: BLE001 -- the palette still offers every other command
                rows = []
            app.recipe_names = [r["name"] for r in rows]

    async def discover(self) -> Hits:
        for name, help_text, callback in palette_commands(self.app):
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in palette_commands(self.app):
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
