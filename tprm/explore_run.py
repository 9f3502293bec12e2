"""`tprm explore`'s driver until it moves into the service package: explore a recipe's plane by
running only the chosen cells' jobs (engine/cellplan.py) through the ordinary runner, in the
recipe's own store, so an exploration is resumable (its rounds replay from finished jobs) and a
later `tprm run` of the recipe reuses every job it ran.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tprm.analysis.explore_report import regime_grid_of, render_exploration
from tprm.service import BadInput, RunCancelled, Service

__all__ = ["explore_recipe", "recipe_lattice", "regime_grid_of", "render_exploration"]


def recipe_lattice(recipe):
    """The recipe's temperature values x densities as an exploration lattice."""
    from tprm.analysis.explore_lattice import lattice_for
    from tprm.engine.recipe import HOTTER

    return lattice_for(recipe.temperature.values, recipe.densities, recipe.temperature.knob,
                       HOTTER[recipe.temperature.knob], len(recipe.dense_seeds), len(recipe.retrain.seeds))


def explore_recipe(service_or_store_dir: Service | str | Path | None, recipe, budget: str | int | None = None,
                   progress: Callable[[dict], None] | None = None, *, round_size: int = 4,
                   device: str | None = None, jobs: int | None = None, backend: str | None = None,
                   address: str | None = None, color_depth: str = "none") -> dict:
    """Explore ``recipe`` within ``budget`` ("20" cells, "60r" retrainings, "30%" of the cells,
    None: until converged). Returns the exploration's JSON plus "recipe", "jobs_executed" (jobs
    trained now; the rest were reused) and "text" (the rendered map). ``progress`` gets the
    exploration's round events and, while a round runs, {"event": "run", "snapshot": ...} (the
    runner's snapshot of that round, with its ETA). ``device``, ``jobs``, ``backend`` and
    ``address`` are `tprm run`'s overrides; each round runs its cells in parallel on them."""
    from tprm.analysis.explore import explore
    from tprm.analysis.explore_infer import Noise
    from tprm.analysis.explore_lattice import parse_budget
    from tprm.engine.cellplan import cell_subplan
    from tprm.engine.launch import run_recipe
    from tprm.engine.results import cell_records

    svc = service_or_store_dir if isinstance(service_or_store_dir, Service) else Service(service_or_store_dir)
    recipe = svc.load_recipe(recipe)
    lattice = recipe_lattice(recipe)
    try:
        chosen = parse_budget(budget, lattice.size)
    except ValueError as exc:
        raise BadInput(f"--{exc}") from None
    executed: list[int] = []

    def snapshot(snap: dict) -> None:
        if progress:
            progress({"event": "run", "snapshot": snap})

    def measure(points: list[tuple[float, float]]) -> list[dict]:
        summary = run_recipe(svc.store, svc.planner, recipe, recipe, svc.source_path(recipe), device=device,
                             jobs=jobs, progress=snapshot, backend=backend, address=address,
                             select=lambda plan: cell_subplan(plan, points))
        if summary["state"] == "cancelled":
            raise RunCancelled(f"{recipe.name}: exploration stopped; finished jobs are kept and running it "
                               "again continues where it stopped")
        executed.append(summary["executed"])
        return cell_records(svc.store, cell_subplan(svc.plan(recipe), points))

    c = recipe.cases
    ex = explore(lattice, measure, chosen, svc.regime_settings(recipe), Noise(c.near_mc, c.near_cka, c.noise_floor),
                 round_size=round_size, progress=progress)
    out = ex.to_json()
    out.update(recipe=recipe.name, jobs_executed=sum(executed), text=render_exploration(ex, depth=color_depth))
    return out
