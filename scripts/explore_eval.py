"""How well adaptive exploration recovers a full grid's answers at a fraction of its cells.

Runs the recipe's full grid once (reusing every finished job of the store), then explores it at
each budget and, at the same budget, measures a uniform sub-grid (the largest evenly spread
kT x kD design, ends included) read with the same inference rule. Job results are deterministic
and keyed by content hash, so an exploration's ``measure`` reads the finished cells' records from
the full grid instead of running them again: the same records a fresh exploration would produce.

    PYTHONPATH=. python scripts/explore_eval.py recipes/quickstart-fine.yaml --store /tmp/explore-full \
        --budgets 30 40 50 [--markdown]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from tprm.analysis.explore import Exploration, explore
from tprm.analysis.explore_infer import Measured, Noise, best_temperatures, infer_map, measured_cell
from tprm.analysis.explore_lattice import Budget, Lattice, product_design
from tprm.analysis.phase import group_cells
from tprm.analysis.regimes import regime_grid
from tprm.service import Service


def truth(lattice: Lattice, cells: list[dict], settings, noise: Noise) -> dict:
    """The full grid's regime per cell, best temperature index per density, and per density the
    temperatures within seed noise of that best (the same noise rule the exploration uses)."""
    temps, dens = list(lattice.temperatures), list(lattice.densities)
    regimes = regime_grid(cells, temps, dens, lattice.knob, lattice.hotter, settings)
    groups = group_cells(cells, temps, dens)
    full = {c: measured_cell(groups[c[0]][c[1]], settings, noise) for c in lattice.cells()}
    bests = best_temperatures(full, lattice.shape, noise.noise_floor)
    return {"regime": {(i, j): regimes.regime[i][j] for i, j in lattice.cells()},
            "best": [b.best for b in bests], "ties": [set(b.support) for b in bests]}


def score(lattice: Lattice, regime_of, best_of: list[int | None], truth_: dict, measured: int) -> dict:
    """Agreement with the full grid: cells with the same regime ("?" disagrees), densities whose
    best temperature is the same (exact), at most one lattice step away, or one whose full-grid
    test error is within seed noise of the full grid's best (statistically as good)."""
    true_regime, true_best, ties = truth_["regime"], truth_["best"], truth_["ties"]
    same = sum(regime_of(c) == r for c, r in true_regime.items())
    exact = sum(b == t for b, t in zip(best_of, true_best))
    near = sum(b is not None and abs(b - t) <= 1 for b, t in zip(best_of, true_best))
    tied = sum(b is not None and b in tie for b, tie in zip(best_of, ties))
    unknown = sum(regime_of(c) == "?" for c in true_regime)
    return {"cells": measured, "retrainings": measured * lattice.cell_retrainings, "regime_agree": same,
            "unknown": unknown, "best_exact": exact, "best_within_1": near, "best_within_noise": tied}


def halves(lattice: Lattice, cells: list[dict], settings, noise: Noise) -> dict:
    """How far the full grid agrees with itself: dense seed A's grid against dense seed B's."""
    seeds = sorted({c["dense_seed"] for c in cells})
    if len(seeds) < 2:
        return {}
    one, two = ([c for c in cells if c["dense_seed"] == s] for s in seeds[:2])
    a, b = truth(lattice, one, settings, noise), truth(lattice, two, settings, noise)
    out = score(lattice, lambda c: a["regime"][c], a["best"], b, lattice.size)
    out["retrainings"] = lattice.size * lattice.retrain_seeds  # one dense seed's grid
    return {**out, "seeds": seeds[:2], "best_a": [lattice.temperatures[i] for i in a["best"]],
            "best_b": [lattice.temperatures[i] for i in b["best"]]}


def uniform(lattice: Lattice, by_cell: dict, settings, noise: Noise, budget_cells: int) -> tuple:
    design = product_design(lattice, budget_cells)
    measured: dict[tuple[int, int], Measured] = {c: measured_cell(by_cell[c], settings, noise) for c in design}
    inferred = infer_map({c: m.regime for c, m in measured.items()}, lattice.shape)
    bests = best_temperatures(measured, lattice.shape, noise.noise_floor)
    return (lambda c: inferred[c].regime), [b.best for b in bests], len(design)


def evaluate(recipe_path: str, store: str, budgets: list[float], round_size: int) -> dict:
    svc = Service(store)
    loaded = svc.recipes.resolve(recipe_path)
    recipe = loaded.recipe
    started = time.monotonic()
    summary = svc.runs.run(loaded)
    run_s = time.monotonic() - started
    cells = svc.results.cells(loaded)
    lattice = svc.explore.lattice(loaded)
    settings = svc.results.regime_settings(loaded)
    c = recipe.cases
    noise = Noise(c.near_mc, c.near_cka, c.noise_floor)
    truth_ = truth(lattice, cells, settings, noise)
    groups = group_cells(cells, list(lattice.temperatures), list(lattice.densities))
    by_cell = {(i, j): groups[i][j] for i, j in lattice.cells()}
    point_cell = {lattice.point(cell): cell for cell in lattice.cells()}

    def measure(points):
        return [r for p in points for r in by_cell[point_cell[p]]]

    rows = []
    for pct in budgets:
        budget_cells = max(1, round(lattice.size * pct / 100))
        ex: Exploration = explore(lattice, measure, Budget(cells=budget_cells), settings, noise, round_size=round_size)
        adaptive = score(lattice, ex.regime, [b.best for b in ex.bests], truth_, len(ex.measured))
        regime_of, best_of, n = uniform(lattice, by_cell, settings, noise, budget_cells)
        rows.append({"budget_pct": pct, "budget_cells": budget_cells, "stop": ex.stop, "adaptive": adaptive,
                     "uniform": score(lattice, regime_of, best_of, truth_, n)})
    free = explore(lattice, measure, Budget(), settings, noise, round_size=round_size)
    converged = score(lattice, free.regime, [b.best for b in free.bests], truth_, len(free.measured))
    return {"recipe": recipe.name, "cells": lattice.size, "densities": len(lattice.densities),
            "full_run": {"state": summary["state"], "executed": summary["executed"], "seconds": round(run_s, 1)},
            "true_best": [lattice.temperatures[i] for i in truth_["best"]],
            "true_ties": [[lattice.temperatures[i] for i in sorted(t)] for t in truth_["ties"]], "rows": rows,
            "unlimited": {"stop": free.stop, **converged}, "halves": halves(lattice, cells, settings, noise)}


def _row(budget: str, name: str, s: dict, n: int, nd: int) -> str:
    return (f"| {budget} | {name} | {s['cells']} ({s['retrainings']}) | {s['regime_agree']}/{n} "
            f"({100 * s['regime_agree'] / n:.0f} %) | {s['unknown']} | {s['best_exact']}/{nd} | "
            f"{s['best_within_1']}/{nd} | {s['best_within_noise']}/{nd} |")


def markdown(result: dict) -> str:
    n, nd = result["cells"], result["densities"]
    lines = ["| budget | design | cells (retrainings) | regime agreement | '?' cells | best T exact | "
             "best T within 1 step | best T within seed noise |", "|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        budget = f"{row['budget_pct']:g} % ({row['budget_cells']} cells)"
        lines += [_row(budget, name, row[name], n, nd) for name in ("adaptive", "uniform")]
    u = result["unlimited"]
    lines.append(_row(f"none ({u['stop']})", "adaptive", u, n, nd))
    h = result.get("halves")
    if h:
        lines.append(_row("full grid, one dense seed", f"seed {h['seeds'][0]} vs seed {h['seeds'][1]}", h, n, nd))
    lines.append("")
    lines.append("full grid's best temperature per density: " + ", ".join(f"{t:g}" for t in result["true_best"]))
    lines.append("within its seed noise: " + "; ".join("/".join(f"{t:g}" for t in ts) for ts in result["true_ties"]))
    if h:
        lines.append(f"dense seed {h['seeds'][0]} alone: " + ", ".join(f"{t:g}" for t in h["best_a"])
                     + f"; dense seed {h['seeds'][1]} alone: " + ", ".join(f"{t:g}" for t in h["best_b"]))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipe", nargs="?", default="recipes/quickstart-fine.yaml")
    p.add_argument("--store", required=True, help="store holding (or to hold) the full grid")
    p.add_argument("--budgets", type=float, nargs="+", default=[30, 40, 50], help="percent of the cells")
    p.add_argument("--round-size", type=int, default=4)
    p.add_argument("--markdown", action="store_true", help="print the table for docs/explore.md")
    a = p.parse_args(argv)
    result = evaluate(a.recipe, a.store, a.budgets, a.round_size)
    print(markdown(result) if a.markdown else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
