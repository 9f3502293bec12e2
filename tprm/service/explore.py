"""Explorations of a workspace: `svc.explore` wires analysis/explore.py's loop to the runner.

Wiring only: the recipe is resolved once, each round's cells run as an ordinary run of their
jobs (`run_recipe(select=cell_subplan(...))`, so the exploration is resumable and a later
`tprm run` reuses every job), and the loop gets the measure callback; the algorithm, the map and
the figure are tprm.analysis.explore*.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from tprm.service.errors import BadInput, RunCancelled, converting_input_errors
from tprm.service.results import Results
from tprm.service.workspace import LoadedRecipe, Workspace

Progress = Callable[[dict], None]


def recipe_lattice(recipe):
    """The recipe's temperature values x densities as an exploration lattice."""
    from tprm.analysis.explore_lattice import lattice_for
    from tprm.engine.recipe import HOTTER

    return lattice_for(recipe.temperature.values, recipe.densities, recipe.temperature.knob,
                       HOTTER[recipe.temperature.knob], len(recipe.dense_seeds), len(recipe.retrain.seeds))


@converting_input_errors
class Explore:
    """`svc.explore`: explore a recipe's temperature x density plane round by round."""

    def __init__(self, ws: Workspace, results: Results):
        self._ws, self._results = ws, results
        self._stops: dict[str, threading.Event] = {}  # recipe name -> "stop before the next round"

    def lattice(self, ref):
        """The exploration lattice of a recipe (its temperatures x densities)."""
        return recipe_lattice(self._ws.resolve(ref).recipe)

    def run(self, ref, budget: str | int | None = None, progress: Progress | None = None, *,
            round_size: int = 4, device: str | None = None, jobs: int | None = None,
            backend: str | None = None, address: str | None = None, color_depth: str = "none",
            width: int = 80, figure: str | Path | None = None) -> dict:
        """Explore within ``budget`` ("20" cells, "60r" retrainings, "30%" of the cells, None:
        until converged). Returns the exploration's JSON plus "recipe", "jobs_executed" (jobs
        trained now; the rest were reused), "text" (the map at ``width``/``color_depth``) and
        "figures" (PNG + SVG written under ``figure``, a folder). ``progress`` gets the loop's
        "round" and "measured" events (the latter with "text", the map so far) and, while a
        round runs, {"event": "run", "snapshot": the runner's snapshot with its ETA}; every event
        carries "limit" (the most cells the exploration may measure). ``device``, ``jobs``,
        ``backend``, ``address`` are `tprm run`'s; each round runs its cells in parallel on them."""
        from tprm.analysis.explore import explore
        from tprm.analysis.explore_infer import Noise
        from tprm.analysis.explore_lattice import parse_budget
        from tprm.analysis.explore_report import exploration_figure, render_exploration

        loaded = self._ws.resolve(ref)
        lattice = recipe_lattice(loaded.recipe)
        try:
            chosen = parse_budget(budget, lattice.size)
        except ValueError as exc:
            raise BadInput(f"--{exc}") from None
        if round_size < 1:
            raise BadInput(f"--round-size: {round_size} is not valid; use at least 1 cell per round")
        limit = min(lattice.size, chosen.as_cells(lattice) or lattice.size)
        self._stops[loaded.name] = stop = threading.Event()
        tell = _relay(progress, limit, width, color_depth)
        executed: list[int] = []
        measure = self._measure(loaded, stop, executed, tell,
                                dict(device=device, jobs=jobs, backend=backend, address=address))
        c = loaded.recipe.cases
        ex = explore(lattice, measure, chosen, self._results.regime_settings(loaded),
                     Noise(c.near_mc, c.near_cka, c.noise_floor), round_size=round_size, progress=tell)
        out = ex.to_json()
        files = exploration_figure(ex, Path(figure) / f"{loaded.name}-explore") if figure else []
        out.update(recipe=loaded.name, jobs_executed=sum(executed), figures=[str(f) for f in files],
                   text=render_exploration(ex, width=width, depth=color_depth))
        return out

    def _measure(self, loaded: LoadedRecipe, stop: threading.Event, executed: list[int],
                 tell: Progress | None, overrides: dict) -> Callable[[list[tuple[float, float]]], list[dict]]:
        """The loop's measure callback: run the cells' jobs (reusing finished ones), read their
        records; RunCancelled when a stop was asked (before a round, or during one)."""
        from tprm.engine.cellplan import cell_subplan
        from tprm.engine.launch import run_recipe
        from tprm.engine.results import cell_records

        ws = self._ws
        stopped = RunCancelled(f"{loaded.name}: exploration stopped; finished jobs are kept and running "
                               "it again continues where it stopped")

        def snapshot(snap: dict) -> None:
            if tell:
                tell({"event": "run", "snapshot": snap})

        def measure(points: list[tuple[float, float]]) -> list[dict]:
            if stop.is_set():
                raise stopped
            summary = run_recipe(ws.store, ws.planner, loaded.recipe, loaded.recipe, loaded.source,
                                 progress=snapshot, select=lambda plan: cell_subplan(plan, points), **overrides)
            if summary["state"] == "cancelled" or stop.is_set():
                raise stopped
            executed.append(summary["executed"])
            return cell_records(ws.store, cell_subplan(ws.plan(loaded), points))
        return measure

    def cancel(self, ref) -> int:
        """Stop a recipe's exploration in this process: no further round starts, and the running
        round's jobs stop at their next progress tick (recorded cancelled, resumable). The number
        of runs asked to stop."""
        from tprm.engine.detached import cancel_recipe

        loaded = self._ws.resolve(ref)
        stop = self._stops.get(loaded.name)
        if stop is not None:
            stop.set()
        return cancel_recipe(self._ws.store, loaded.name) if self._ws.store_dir.exists() else 0


def _relay(progress: Progress | None, limit: int, width: int, depth: str) -> Progress | None:
    """The loop's events for a view: "limit" added, "eta" (at most the time the cells left to the
    limit take at the pace so far: {"seconds", "text"}), a "measured" event's map as "text"."""
    if progress is None:
        return None
    import time

    started = time.monotonic()

    def tell(event: dict) -> None:
        from tprm.analysis.explore_report import render_exploration
        from tprm.engine.eta import duration

        event = dict(event, limit=limit)
        if "measured" in event:
            done = event["measured"]
            left = (limit - done) * (time.monotonic() - started) / done if done else None
            event["eta"] = {"seconds": left, "text": "estimating" if left is None else duration(left)}
        ex = event.pop("exploration", None)
        if ex is not None:
            event["text"] = render_exploration(ex, width=width, depth=depth)
        progress(event)
    return tell
