"""Does a finished grid show the paper's phenomenon? The three criteria `make demo` prints.

(a) at least two cells at density <= 20 % whose mean mc is below the threshold and whose
    dense-seed range excludes 0 (every dense seed's mc < 0, at least two seeds);
(b) mc above -0.02 at the highest density, at every temperature;
(c) the best temperature (lowest mean pruned test error) at the lowest density is strictly
    hotter than the best temperature at the highest density.
The criteria are fixed here, not tuned to a result: a grid that does not show it says FAIL.
"""

from __future__ import annotations

from tprm.analysis.phase import Grid

LOW_DENSITY = 0.20
HIGH_DENSITY_MC = -0.02


def _best_row(grid: Grid, j: int) -> int | None:
    column = [(grid.mean[i][j], i) for i in range(len(grid.temperatures)) if grid.mean[i][j] is not None]
    return min(column)[1] if column else None


def phenomenon_checks(mc: Grid, test_error: Grid, mc_threshold: float) -> dict:
    """Evaluate (a)-(c) on an mc grid and a test-error grid over the same axes (coldest first)."""
    barrier_cells = []
    for i, t in enumerate(mc.temperatures):
        for j, d in enumerate(mc.densities):
            vals = mc.values[i][j]
            if (d <= LOW_DENSITY + 1e-12 and mc.mean[i][j] is not None and mc.mean[i][j] < mc_threshold
                    and len(vals) >= 2 and max(vals) < 0):
                barrier_cells.append({"temperature": t, "density": d, "mc": mc.mean[i][j],
                                      "range": [min(vals), max(vals)]})
    a = len(barrier_cells) >= 2

    top = len(mc.densities) - 1
    high = [mc.mean[i][top] for i in range(len(mc.temperatures))]
    b = bool(high) and all(v is not None and v > HIGH_DENSITY_MC for v in high)

    lo, hi = _best_row(test_error, 0), _best_row(test_error, len(test_error.densities) - 1)
    c = lo is not None and hi is not None and lo > hi  # rows run coldest -> hottest
    best_low = test_error.temperatures[lo] if lo is not None else None
    best_high = test_error.temperatures[hi] if hi is not None else None

    lines = [
        f"{'PASS' if a else 'FAIL'} (a) {len(barrier_cells)} cell(s) at density <= 20% with mean mc < "
        f"{mc_threshold:g} and every dense seed's mc < 0 (need >= 2)",
        f"{'PASS' if b else 'FAIL'} (b) mc at the highest density ({mc.densities[top]:.0%}) > "
        f"{HIGH_DENSITY_MC:g} at every temperature: "
        + ", ".join("n/a" if v is None else f"{v:+.3f}" for v in high),
        f"{'PASS' if c else 'FAIL'} (c) best {mc.knob} at {test_error.densities[0]:.0%} density is "
        f"{best_low}, at {test_error.densities[-1]:.0%} it is {best_high} "
        f"(need the first strictly hotter; {mc.hotter} {mc.knob} = hotter)",
    ]
    return {"a": a, "b": b, "c": c, "passed": a and b and c, "barrier_cells": barrier_cells,
            "high_density_mc": high, "best_low_density": best_low,
            "best_high_density": best_high, "text": "\n".join(lines)}
