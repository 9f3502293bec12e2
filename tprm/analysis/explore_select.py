"""Which cells an exploration measures next: boundary cells (the regime map may change there)
and transition cells (the best temperature at a density may change there), cheapest first
among cells of equal value. Pure and deterministic: the same measurements give the same picks.

Boundary cells are the cells whose regime cannot be inferred ("?"), valued by how many "?" cells
measuring one would settle, and the middles of gaps (runs of unmeasured cells on one row or
column between two measured cells) next to a cell whose mc or CKA is within seed noise of its
threshold, valued by the gap's length. Transition cells bisect the gaps beside each temperature
whose test error is within seed noise of the best at its density. The pick in a gap is its
middle cell (of two middle cells, the cheaper)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tprm.analysis.explore_infer import UNKNOWN, Best, Inferred, Measured, enclosure, gap_beside, infer_map
from tprm.analysis.explore_lattice import Budget, Cell, Lattice


@dataclass(frozen=True)
class Candidate:
    cell: Cell
    kind: str        # "boundary" | "transition"
    value: float     # cells (boundary) or temperatures (transition) it may settle
    rank: int        # 0 beats 1 at equal value (transition: a gap beside the best itself)
    why: str


def cell_cost(lattice: Lattice, cell: Cell, taken: Iterable[Cell]) -> int:
    """Trainings a cell adds: its retrainings, plus the dense trainings of a new column."""
    return lattice.cell_retrainings + lattice.dense_cost(cell, taken)


def middle(run: list[Cell], lattice: Lattice, taken: Iterable[Cell]) -> Cell:
    """The middle cell of a gap; of two middle cells, the cheaper (then the first)."""
    taken = list(taken)
    n = len(run)
    options = [run[(n - 1) // 2], run[n // 2]]
    return min(options, key=lambda c: (cell_cost(lattice, c, taken), options.index(c)))


def _gaps(measured: dict[Cell, Measured], shape: tuple[int, int]):
    """(a, b, run, axis) for every run of unmeasured cells between two measured cells on a line."""
    nt, nd = shape
    lines = [("temperature", [(i, j) for i in range(nt)]) for j in range(nd)]
    lines += [("density", [(i, j) for j in range(nd)]) for i in range(nt)]
    for axis, line in lines:
        marks = [k for k, c in enumerate(line) if c in measured]
        for a, b in zip(marks, marks[1:]):
            if b - a > 1:
                yield line[a], line[b], line[a + 1:b], axis


def resolved_by(cell: Cell, measured: dict[Cell, str], unknown: set[Cell], shape: tuple[int, int]) -> float:
    """How many "?" cells measuring ``cell`` settles (itself included), averaged over the regimes
    it could turn out to have (those of the measured cells enclosing it)."""
    outcomes = sorted({measured[a] for pair in enclosure(cell, measured, shape).values() for a in pair}
                      or {UNKNOWN})
    total = 0
    for regime in outcomes:
        after = infer_map({**measured, cell: regime}, shape)
        total += sum(1 for c in unknown if after[c].regime != UNKNOWN)
    return total / len(outcomes)


def boundary_candidates(lattice: Lattice, measured: dict[Cell, Measured],
                        inferred: dict[Cell, Inferred]) -> list[Candidate]:
    """Every "?" cell, valued by the "?" cells measuring it would settle; and the middle of each
    gap next to a cell in doubt (mc or CKA within seed noise of a threshold), valued by its length."""
    regimes = {c: m.regime for c, m in measured.items()}
    unknown = {c for c, inf in inferred.items() if inf.regime == UNKNOWN}
    found: dict[Cell, Candidate] = {}
    for c in sorted(unknown, key=lambda c: (c[1], c[0])):
        found[c] = Candidate(c, "boundary", resolved_by(c, regimes, unknown, lattice.shape), 0,
                             f"regime unknown: {inferred[c].rule}")
    for a, b, run, axis in _gaps(measured, lattice.shape):
        if measured[a].regime == measured[b].regime and (measured[a].doubtful or measured[b].doubtful):
            cell = middle(run, lattice, measured)
            if cell not in found or len(run) > found[cell].value:
                found[cell] = Candidate(cell, "boundary", len(run), 1,
                                        f"next to a cell within seed noise of a threshold (along {axis})")
    return list(found.values())


def transition_candidates(lattice: Lattice, measured: dict[Cell, Measured],
                          bests: list[Best]) -> list[Candidate]:
    """Per density: the middle of each gap beside a temperature that could be the best; at a
    density with nothing measured, the temperature the neighbouring densities' best suggest."""
    nt, _ = lattice.shape
    out = []
    for b in bests:
        j = b.density_index
        if b.best is None:
            out.append(Candidate((_predicted(bests, j, nt), j), "transition", nt, 0,
                                 "no temperature measured at this density; start where its neighbours' best is"))
            continue
        column = sorted(i for (i, jj) in measured if jj == j)
        for i in b.support:
            for run in gap_beside(i, column, nt):
                cell = middle([(k, j) for k in run], lattice, measured)
                rank = 0 if i == b.best else 1
                out.append(Candidate(cell, "transition", len(run), rank,
                                     "beside the best temperature" if rank == 0
                                     else "beside a temperature within seed noise of the best"))
    return out


def _predicted(bests: list[Best], j: int, nt: int) -> int:
    """The best temperature index at the nearest densities with one (their mean), else the middle."""
    near = []
    for step in (-1, 1):
        k = j + step
        while 0 <= k < len(bests) and bests[k].best is None:
            k += step
        if 0 <= k < len(bests):
            near.append(bests[k].best)
    return round(sum(near) / len(near)) if near else (nt - 1) // 2


# A round takes two transition cells per boundary cell: the best temperature is a question per
# density (each needs its own search), while one boundary cell settles several through inference.
TURNS = ("transition", "boundary", "transition")


def choose_round(lattice: Lattice, candidates: list[Candidate], measured: Iterable[Cell], budget: Budget,
                 round_size: int) -> list[Candidate]:
    """Up to ``round_size`` candidates taken in ``TURNS`` order (the other kind when one runs
    out), each kind ordered by value (then rank, then cost: cheap first among equal value, then
    lattice order); stops before a pick that would overspend the budget."""
    taken = list(measured)
    order = {c: k for k, c in enumerate(lattice.cells())}

    def key(c: Candidate):
        return (-c.value, c.rank, cell_cost(lattice, c.cell, taken), order[c.cell])

    queues = {kind: sorted((c for c in candidates if c.kind == kind), key=key) for kind in ("boundary", "transition")}
    picks: list[Candidate] = []
    turn = 0
    while len(picks) < round_size and any(queues.values()):
        kind = TURNS[turn % len(TURNS)]
        turn += 1
        queue = queues[kind] or queues["boundary" if kind == "transition" else "transition"]
        c = queue.pop(0)
        if c.cell in taken:
            continue
        if not budget.allows(len(taken) + 1, (len(taken) + 1) * lattice.cell_retrainings):
            break
        picks.append(c)
        taken.append(c.cell)
    return picks
