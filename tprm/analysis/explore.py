"""Adaptive exploration of the temperature x density plane: measure a coarse design, then round
by round the cells that can still change the regime map or the best temperature per density
(explore_select.py), until none can (converged) or the budget is spent.

The loop only calls ``measure(points) -> cell records`` (one record per dense seed, as
engine/results.py makes them), so the service wires it to the runner and tests to an oracle.
Deterministic: the same records give the same choices, so a rerun over a store whose jobs are
done replays the finished rounds without training and continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tprm.analysis.explore_infer import (UNKNOWN, Best, Inferred, Measured, Noise, best_temperatures,
                                         infer_map, measured_cell)
from tprm.analysis.explore_lattice import Budget, Cell, Lattice, start_design
from tprm.analysis.explore_report import exploration_json
from tprm.analysis.explore_select import Candidate, boundary_candidates, choose_round, transition_candidates
from tprm.analysis.phase import same_value
from tprm.analysis.regimes import RegimeSettings

Measure = Callable[[list[tuple[float, float]]], Sequence[dict]]


@dataclass
class Exploration:
    """The state and outcome of one exploration (``to_json`` for --json)."""

    lattice: Lattice
    settings: RegimeSettings
    budget: Budget
    measured: dict[Cell, Measured] = field(default_factory=dict)
    rounds: list[dict] = field(default_factory=list)
    inferred: dict[Cell, Inferred] = field(default_factory=dict)
    bests: list[Best] = field(default_factory=list)
    stop: str = ""              # "converged" | "budget"
    stop_reason: str = ""

    @property
    def retrainings(self) -> int:
        return len(self.measured) * self.lattice.cell_retrainings

    @property
    def dense_trainings(self) -> int:
        lat = self.lattice
        if lat.shared_dense:
            return lat.dense_seeds if self.measured else 0
        return lat.dense_seeds * len({i for i, _ in self.measured})

    def regime(self, cell: Cell) -> str:
        """The cell's regime, measured or inferred ("?" when it cannot be inferred)."""
        return self.inferred[cell].regime if cell in self.inferred else UNKNOWN

    def summary_line(self) -> str:
        lat = self.lattice
        total_dense = lat.dense_seeds * (1 if lat.shared_dense else len(lat.temperatures))
        return (f"measured {len(self.measured)} of {lat.size} cells ({self.retrainings} of "
                f"{lat.size * lat.cell_retrainings} retrainings, {self.dense_trainings} of {total_dense} "
                f"dense trainings)")

    def to_json(self) -> dict:
        return exploration_json(self)


def _records_by_cell(lattice: Lattice, cells: list[Cell], records: Sequence[dict]) -> dict[Cell, list[dict]]:
    out: dict[Cell, list[dict]] = {c: [] for c in cells}
    for r in records:
        for c in cells:
            t, d = lattice.point(c)
            if same_value(r.get("temperature"), t) and same_value(r.get("density"), d):
                out[c].append(r)
    return out


def _affordable(lattice: Lattice, cells: list[Cell], budget: Budget) -> list[Cell]:
    k = 0
    while k < len(cells) and budget.allows(k + 1, (k + 1) * lattice.cell_retrainings):
        k += 1
    return cells[:k]


def explore(lattice: Lattice, measure: Measure, budget: Budget | None = None,
            settings: RegimeSettings | None = None, noise: Noise | None = None, *, round_size: int = 4,
            progress: Callable[[dict], None] | None = None) -> Exploration:
    """Explore ``lattice``: the start design, then rounds of at most ``round_size`` cells.

    ``measure(points)`` gets [(temperature, density), ...] and returns their cell records.
    ``progress(event)`` is called before each round ({"event": "round", "round", "cells",
    "measured", "total", "budget"}) and after it ({"event": "measured", ..., "map": the
    exploration's JSON so far, "exploration": the Exploration itself}).
    """
    ex = Exploration(lattice, settings or RegimeSettings(), budget or Budget())
    noise = noise or Noise()
    pending = [(c, "start design") for c in _affordable(lattice, start_design(lattice, ex.budget.as_cells(lattice)),
                                                       ex.budget)]
    if not pending:
        ex.stop, ex.stop_reason = "budget", f"budget spent ({ex.budget.describe()}): it does not pay for one cell"
    while pending:
        _measure_round(ex, measure, pending, noise, progress)
        picks = _next_round(ex, max(1, round_size))
        if picks is None:
            break
        pending = [(c.cell, f"{c.kind}: {c.why}") for c in picks]
    return ex


def _measure_round(ex: Exploration, measure: Measure, pending: list[tuple[Cell, str]], noise: Noise,
                   progress: Callable[[dict], None] | None) -> None:
    lat = ex.lattice
    cells = [c for c, _ in pending]
    points = [lat.point(c) for c in cells]
    event = {"round": len(ex.rounds) + 1, "cells": points, "measured": len(ex.measured), "total": lat.size,
             "budget": ex.budget.describe()}
    if progress:
        progress({"event": "round", **event})
    by_cell = _records_by_cell(lat, cells, measure(points))
    for c in cells:
        ex.measured[c] = measured_cell(by_cell[c], ex.settings, noise)
    ex.rounds.append({"round": event["round"], "cells": [
        {"temperature": t, "density": d, "why": why} for (t, d), (_, why) in zip(points, pending)]})
    ex.inferred = infer_map({c: m.regime for c, m in ex.measured.items()}, lat.shape)
    ex.bests = best_temperatures(ex.measured, lat.shape, noise.noise_floor)
    if progress:  # the map so far (as JSON and as the object), so a view can redraw it as rounds finish
        progress({"event": "measured", **event, "measured": len(ex.measured), "map": ex.to_json(),
                  "exploration": ex})


def _next_round(ex: Exploration, round_size: int) -> list[Candidate] | None:
    """The next round's picks, or None after setting why the exploration stops."""
    lat = ex.lattice
    candidates = (boundary_candidates(lat, ex.measured, ex.inferred)
                  + transition_candidates(lat, ex.measured, ex.bests))
    if not candidates:
        ex.stop, ex.stop_reason = "converged", ("converged: no unmeasured cell can change the regime map "
                                                "or the best temperatures")
        return None
    picks = choose_round(lat, candidates, ex.measured, ex.budget, round_size)
    if not picks:
        ex.stop, ex.stop_reason = "budget", (f"budget spent ({ex.budget.describe()}): {len(candidates)} "
                                             "cell(s) could still change the answers")
        return None
    return picks
