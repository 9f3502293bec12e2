"""The part of a recipe's plan that measures chosen (temperature, density) cells: their cells'
jobs (dense, prune, retrain, pairs, hessian) and every job those depend on, with the plan's own
job objects, so the hashes are the full plan's: a later full run of the recipe reuses them all,
and running a sub-plan twice runs nothing the second time."""

from __future__ import annotations

import math
from collections.abc import Iterable

from tprm.engine.plan import Plan


def _same(a: float, b: float) -> bool:
    """Grid coordinates match to 1e-9 relative, as analysis/phase.same_value (YAML 0.1 vs 1e-1)."""
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def cell_subplan(plan: Plan, points: Iterable[tuple[float, float]]) -> Plan:
    """The sub-plan of ``plan`` for the cells at ``points`` (every dense seed of each), in the
    plan's order. ValueError naming the first point that is not on the plan's lattice."""
    points = list(points)
    for t, d in points:
        if not any(_same(c.temperature, t) and _same(c.density, d) for c in plan.cells):
            temps = sorted({c.temperature for c in plan.cells})
            dens = sorted({c.density for c in plan.cells})
            raise ValueError(f"cell (temperature {t:g}, density {d:g}) is not on the recipe's grid; "
                             f"temperatures {temps}, densities {dens}")
    cells = [c for c in plan.cells if any(_same(c.temperature, t) and _same(c.density, d) for t, d in points)]
    wanted: set[str] = set()
    stack = [h for c in cells for h in (c.pairs, *c.retrains, c.prune, c.dense, *c.hessians,
                                       *([c.ww] if c.ww else []))]
    while stack:
        h = stack.pop()
        if h not in wanted:
            wanted.add(h)
            stack.extend(plan.jobs[h].deps)
    sub = Plan(plan.recipe_name)
    for job in plan.ordered():
        if job.hash in wanted:
            sub.add(job)
    sub.cells = cells
    return sub
