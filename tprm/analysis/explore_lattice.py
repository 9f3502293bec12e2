"""The candidate lattice of an adaptive exploration: the recipe's temperature values x densities,
what measuring a cell costs, the budget, and the designs (coarse start, uniform sub-grid).

Cells are index pairs ``(i, j)``: ``i`` into the temperatures ordered coldest first (as in
analysis/phase.py, so i - 1 is the colder neighbour), ``j`` into the densities ascending.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tprm.analysis.phase import order_temperatures

Cell = tuple[int, int]


@dataclass(frozen=True)
class Lattice:
    """The (temperature, density) plane an exploration may measure, and its cost model.

    ``shared_dense``: one dense run per seed covers every temperature (the epochs knob: its
    checkpoints are the temperatures); otherwise a temperature column not measured yet costs one
    dense training per dense seed before any of its cells can be pruned.
    """

    temperatures: tuple[float, ...]   # coldest first
    densities: tuple[float, ...]      # ascending
    knob: str
    hotter: str
    dense_seeds: int = 1
    retrain_seeds: int = 2
    shared_dense: bool = True

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.temperatures), len(self.densities)

    @property
    def size(self) -> int:
        return len(self.temperatures) * len(self.densities)

    @property
    def cell_retrainings(self) -> int:
        """Retrainings one cell needs: one per retrain seed of each dense seed's pruned model."""
        return self.dense_seeds * self.retrain_seeds

    def cells(self) -> list[Cell]:
        """Every cell, in a fixed order (density-major)."""
        nt, nd = self.shape
        return [(i, j) for j in range(nd) for i in range(nt)]

    def point(self, cell: Cell) -> tuple[float, float]:
        """The (temperature, density) values of a cell."""
        return self.temperatures[cell[0]], self.densities[cell[1]]

    def dense_cost(self, cell: Cell, measured: Iterable[Cell]) -> int:
        """Dense trainings a cell adds given the cells measured (or chosen) before it."""
        if self.shared_dense:
            return 0 if any(True for _ in measured) else self.dense_seeds
        return 0 if any(m[0] == cell[0] for m in measured) else self.dense_seeds


def lattice_for(temperatures: Sequence[float], densities: Sequence[float], knob: str, hotter: str,
                dense_seeds: int, retrain_seeds: int) -> Lattice:
    """A lattice with the axes ordered (temperatures coldest first, densities ascending)."""
    temps = order_temperatures(temperatures, hotter)
    return Lattice(tuple(temps), tuple(sorted(set(float(d) for d in densities))), knob, hotter,
                   dense_seeds, retrain_seeds, shared_dense=knob == "epochs")


def temperature_neighbours(i: int, count: int) -> list[int]:
    """Indices of the colder and hotter neighbours of temperature ``i`` (those on the lattice).

    The one definition of "neighbour" along the temperature axis: case study 1 compares a cell
    with these, and the exploration settles a density's best temperature once these are measured
    (explore_infer.gap_beside)."""
    return [k for k in (i - 1, i + 1) if 0 <= k < count]


def spread_indices(count: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(count)``, both ends included (k >= 2)."""
    k = max(1, min(k, count))
    if k == 1:
        return [0]
    return sorted({round(n * (count - 1) / (k - 1)) for n in range(k)})


def product_design(lattice: Lattice, max_cells: int | None) -> list[Cell]:
    """The largest evenly spread sub-grid (kT x kD, ends included) of at most ``max_cells``
    cells: most cells first, then the most balanced, then more temperatures. None: every other
    value on each axis. This is both the exploration's start design (with half the budget) and
    the uniform baseline it is compared with (with all of it)."""
    nt, nd = lattice.shape
    if max_cells is None:
        kt, kd = (math.ceil((n + 1) / 2) for n in (nt, nd))
    else:
        options = [(a, b) for a in range(1, nt + 1) for b in range(1, nd + 1) if a * b <= max(1, max_cells)]
        kt, kd = max(options, key=lambda ab: (ab[0] * ab[1], -abs(ab[0] - ab[1]), ab[0]))
    return [(i, j) for j in spread_indices(nd, kd) for i in spread_indices(nt, kt)]


def start_design(lattice: Lattice, budget_cells: int | None) -> list[Cell]:
    """The coarse start: an evenly spread product design, corners included, of about a third of
    the budget (at least the 2 x 2 corners; with no budget, 3 values per axis), leaving two
    thirds for the rounds that follow what it finds. Corners first, so every later cell lies
    between measured ones and the inference rule can speak for it."""
    cap = 9 if budget_cells is None else max(4, budget_cells // 3)
    design = product_design(lattice, min(cap, lattice.size))
    nt, nd = lattice.shape
    corners = {(0, 0), (nt - 1, 0), (0, nd - 1), (nt - 1, nd - 1)}
    return sorted(design, key=lambda c: (c not in corners, c[1], c[0]))


@dataclass(frozen=True)
class Budget:
    """How much an exploration may measure: cells, retrainings, or neither (until it converges)."""

    cells: int | None = None
    retrainings: int | None = None

    def describe(self) -> str:
        if self.cells is not None:
            return f"{self.cells} cells"
        if self.retrainings is not None:
            return f"{self.retrainings} retrainings"
        return "no budget (until converged)"

    def as_cells(self, lattice: Lattice) -> int | None:
        """The budget in cells (retrainings divided by a cell's retrainings)."""
        if self.cells is not None:
            return self.cells
        if self.retrainings is not None:
            return self.retrainings // lattice.cell_retrainings
        return None

    def allows(self, cells: int, retrainings: int) -> bool:
        """Whether measuring up to ``cells`` cells / ``retrainings`` retrainings stays within it."""
        return ((self.cells is None or cells <= self.cells)
                and (self.retrainings is None or retrainings <= self.retrainings))


_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|r|c)?\s*$")


def parse_budget(text: str | int | None, total_cells: int) -> Budget:
    """``20`` or ``20c``: cells; ``60r``: retrainings; ``30%``: that share of the lattice's cells;
    None or empty: no budget. ValueError (one line, what is valid) otherwise."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return Budget()
    m = _BUDGET.match(str(text))
    if not m or (m.group(2) != "%" and "." in m.group(1)):
        raise ValueError(f"budget: {text!r} is not valid; use a number of cells (20), retrainings (60r) "
                         "or a percentage of the cells (30%)")
    value, unit = float(m.group(1)), m.group(2) or "c"
    if unit == "%":
        if not 0 < value <= 100:
            raise ValueError(f"budget: {text!r} is not valid; a percentage must be in (0, 100]")
        return Budget(cells=max(1, round(total_cells * value / 100)))
    if value < 1:
        raise ValueError(f"budget: {text!r} is not valid; use at least 1")
    return Budget(cells=int(value)) if unit == "c" else Budget(retrainings=int(value))
