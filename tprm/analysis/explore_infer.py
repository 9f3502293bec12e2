"""What an exploration knows: the measured cells (regime by analysis/regimes.py, seed noise), the
regime of unmeasured cells by a stated enclosure rule, and the best temperature per density.

Inference rule (the only one): look at the nearest known cells on both sides of an unmeasured
cell along the temperature axis (same density) and along the density axis (same temperature).
The cell takes regime R when some axis's pair both have R and every other axis's pair includes
R (a boundary crossing that axis then runs on past the cell, not through it). Known cells are
the measured ones first; then, pass by pass, cells inferred in earlier passes. A cell no pair
encloses, or whose pairs do not agree on one regime, is "?": never a guess.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from tprm.analysis.cases import standard_error
from tprm.analysis.explore_lattice import Cell, temperature_neighbours
from tprm.analysis.phase import aggregate, cell_state, finite_number
from tprm.analysis.regimes import RegimeSettings, classify_records

UNKNOWN = "?"
_AXES = (("temperature", (1, 0)), ("density", (0, 1)))
INFERENCE_RULE = ("an unmeasured cell takes regime R when the nearest known cells on both sides along "
                  "temperature or along density have R and none disagree (measured cells first, then "
                  "cells inferred in earlier passes); cells between measured cells that disagree, or not "
                  "enclosed, are '?'")


@dataclass(frozen=True)
class Noise:
    """Noise floors (the recipe's ``cases:`` margins): seed noise below these is not trusted."""

    near_mc: float = 0.02
    near_cka: float = 0.01
    noise_floor: float = 0.002


@dataclass(frozen=True)
class Measured:
    """One measured cell: its regime, the metrics behind it and their seed noise."""

    regime: str
    uncertain: bool
    reason: str
    mc: float | None
    cka: float | None
    doubtful: bool            # mc or CKA within seed noise of its threshold
    test_error: float | None
    error_se: float           # standard error of the mean test error (0: noise floor only)


def _pooled_spread(records: Sequence[dict], metric: str) -> float:
    """Std over every seed-pair value of ``metric`` (pairs pooled across dense seeds)."""
    values = []
    for r in records:
        pairs = r.get(f"{metric}_pairs")
        found = [v for v in (finite_number(p) for p in pairs or []) if v is not None]
        values += found or [v for v in [finite_number(r.get(metric))] if v is not None]
    return statistics.stdev(values) if len(values) > 1 else 0.0


def measured_cell(records: Sequence[dict], settings: RegimeSettings, noise: Noise) -> Measured:
    """Summarise one cell's records (one per dense seed) for the exploration."""
    c = classify_records(list(records), settings)
    doubtful = False
    if c["regime"] in ("I", "II-A", "II-B"):
        mc_margin = max(noise.near_mc, _pooled_spread(records, settings.mc_metric))
        doubtful = abs(c["mc"] - settings.mc_limit) <= mc_margin
        if c["regime"] != "I" and c["cka"] is not None:
            cka_margin = max(noise.near_cka, _pooled_spread(records, settings.cka_metric))
            doubtful = doubtful or abs(c["cka"] - settings.cka_threshold) <= cka_margin
    diverged = cell_state(list(records)) == "diverged"
    error = None if diverged else aggregate(list(records), "test_error")[0]
    return Measured(regime=c["regime"], uncertain=c["uncertain"], reason=c["reason"], mc=c["mc"],
                    cka=c["cka"], doubtful=doubtful, test_error=error, error_se=standard_error(records))


def nearest_known(cell: Cell, step: tuple[int, int], known: dict[Cell, str], shape: tuple[int, int]
                  ) -> Cell | None:
    """The first cell of ``known`` from ``cell`` in direction ``step`` (None at the edge)."""
    i, j = cell[0] + step[0], cell[1] + step[1]
    while 0 <= i < shape[0] and 0 <= j < shape[1]:
        if (i, j) in known:
            return i, j
        i, j = i + step[0], j + step[1]
    return None


def enclosure(cell: Cell, known: dict[Cell, str], shape: tuple[int, int]) -> dict[str, tuple[Cell, Cell]]:
    """Per axis with known cells on both sides of ``cell``: that pair (nearest first)."""
    out = {}
    for axis, (di, dj) in _AXES:
        lo = nearest_known(cell, (-di, -dj), known, shape)
        hi = nearest_known(cell, (di, dj), known, shape)
        if lo is not None and hi is not None:
            out[axis] = (lo, hi)
    return out


def boundary_pairs(cell: Cell, measured: dict[Cell, str], shape: tuple[int, int]) -> list[tuple[Cell, Cell]]:
    """The pairs of nearest measured cells enclosing ``cell`` that disagree on the regime."""
    return [pair for pair in enclosure(cell, measured, shape).values()
            if measured[pair[0]] != measured[pair[1]]]


@dataclass(frozen=True)
class Inferred:
    regime: str          # a regime, or "?"
    rule: str            # why (measured, enclosed by ..., or why "?")


def enclosed_regime(cell: Cell, known: dict[Cell, str], shape: tuple[int, int]) -> tuple[str, list[str]] | None:
    """The regime the rule gives ``cell`` from ``known`` and the axes that enclose it with that
    regime, or None when it gives none."""
    pairs = enclosure(cell, known, shape)
    agreed = {axis: known[a] for axis, (a, b) in pairs.items() if known[a] == known[b]}
    options = set(agreed.values())
    if len(options) != 1:
        return None
    (regime,) = options
    if any(regime not in (known[a], known[b]) for a, b in pairs.values()):
        return None
    return regime, sorted(agreed)


def infer_map(measured: dict[Cell, str], shape: tuple[int, int]) -> dict[Cell, Inferred]:
    """The regime of every cell by the module's rule (measured cells keep their own)."""
    out = {c: Inferred(r, "measured") for c, r in measured.items()}
    open_cells = [(i, j) for j in range(shape[1]) for i in range(shape[0]) if (i, j) not in measured]
    known = dict(measured)
    for step in range(1, len(open_cells) + 1):
        found = {}
        for c in open_cells:
            got = enclosed_regime(c, known, shape)
            if got is not None:
                regime, axes = got
                source = "measured" if step == 1 else "known"
                found[c] = Inferred(regime, f"enclosed along {' and '.join(axes)} by {source} cells of regime "
                                    f"{regime}" + ("" if step == 1 else f" (pass {step})"))
        if not found:
            break
        out.update(found)
        known.update({c: inf.regime for c, inf in found.items()})
        open_cells = [c for c in open_cells if c not in found]
    for c in open_cells:
        why = ("measured neighbours disagree (a boundary runs here)" if boundary_pairs(c, measured, shape)
               else "no enclosing cells of one regime")
        out[c] = Inferred(UNKNOWN, why)
    return out


def error_noise(a: Measured, b: Measured, floor: float) -> float:
    """How much two cells' mean test errors may differ by seed noise alone (as case study 1)."""
    return max(math.hypot(a.error_se, b.error_se), floor)


@dataclass(frozen=True)
class Best:
    """The best measured temperature at one density and what could still beat it."""

    density_index: int
    best: int | None              # temperature index; None: nothing measured here
    support: list[int]            # measured temperatures within seed noise of the best
    open: list[int]               # unmeasured temperatures that could still be the best


def gap_beside(i: int, column: Collection[int], count: int) -> list[list[int]]:
    """The runs of unmeasured temperature indices beside measured ``i`` in one column, starting at
    its colder and hotter neighbours (``column``: the measured indices)."""
    runs = []
    for k in temperature_neighbours(i, count):
        step, run = k - i, []
        while 0 <= k < count and k not in column:
            run.append(k)
            k += step
        if run:
            runs.append(sorted(run))
    return runs


def best_temperatures(measured: dict[Cell, Measured], shape: tuple[int, int], floor: float) -> list[Best]:
    """Per density: the measured temperature with the lowest mean test error, the measured ones
    within seed noise of it, and the unmeasured ones that could still be best: those beside a
    candidate (between it and the next measured temperature), or all when none is measured."""
    out = []
    for j in range(shape[1]):
        column = sorted(i for (i, jj), m in measured.items() if jj == j)
        scored = [i for i in column if measured[i, j].test_error is not None]
        if not scored:
            out.append(Best(j, None, [], [i for i in range(shape[0]) if i not in column]))
            continue
        best = min(scored, key=lambda i: (measured[i, j].test_error, i))
        b = measured[best, j]
        support = [i for i in scored if measured[i, j].test_error - b.test_error
                   <= error_noise(measured[i, j], b, floor)]
        open_ = sorted({k for i in support for run in gap_beside(i, column, shape[0]) for k in run})
        out.append(Best(j, best, support, open_))
    return out
