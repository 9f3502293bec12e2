"""Grids of one metric over the temperature x density plane, built from cell records.

Pure: cell records (one per temperature, density and dense seed; see docs/ARCHITECTURE.md
"analysis") in, a :class:`Grid` out. Temperatures are ordered coldest -> hottest so that
"colder neighbour" / "hotter neighbour" are simply the previous / next column, whatever the
knob's hotter direction is.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from tprm.engine.plan import WW_FIELDS

# Per-seed-pair metrics: a record may carry the per-pair list "<metric>_pairs"; pairs are
# averaged within the dense seed first, then across dense seeds.
PAIR_METRICS = ("mc", "mc_loss", "cka", "cka_logits", "endpoint_gap")
METRICS = ("test_error", "train_loss", "train_error", "test_loss", *PAIR_METRICS,
           "dense_test_error", "hessian_trace", "hessian_top", *WW_FIELDS)
HOTTER_DIRECTIONS = ("fewer", "smaller", "larger")
CELL_STATES = ("done", "partial", "diverged", "failed", "missing")
# Records in these states can carry measured values (a "partial" cell has some retrain seeds).
_MEASURED_STATES = ("done", "partial")


@dataclass
class Grid:
    """One metric over temperatures (coldest first) x densities (ascending).

    ``mean[i][j]`` is the cell at ``temperatures[i]``, ``densities[j]``; ``spread`` is the std
    over dense seeds (None with fewer than two), ``n`` the number of dense seeds with a value,
    ``values`` those per-dense-seed values, ``state`` the cell's aggregate state.
    """

    metric: str
    knob: str
    hotter: str
    temperatures: list[float]
    densities: list[float]
    mean: list[list[float | None]]
    spread: list[list[float | None]]
    n: list[list[int]]
    values: list[list[list[float]]]
    state: list[list[str]]

    def index(self, temperature: float, density: float) -> tuple[int, int]:
        """Row/column of a (temperature, density) point; KeyError when it is not on the grid."""
        i = _find(self.temperatures, temperature, "temperature")
        j = _find(self.densities, density, "density")
        return i, j

    def at(self, temperature: float, density: float) -> float | None:
        """Mean value at a point (None when the cell has no data)."""
        i, j = self.index(temperature, density)
        return self.mean[i][j]


def _find(values: Sequence[float], value: float, name: str) -> int:
    for k, v in enumerate(values):
        if same_value(v, value):
            return k
    raise KeyError(f"{name} {value!r} is not on the grid; valid: {list(values)}")


def same_value(a: float, b: float) -> bool:
    """Grid coordinates match when equal to 1e-9 relative (YAML may give 0.1 or 1e-1, 16 or 16.0)."""
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def check_hotter(hotter: str) -> str:
    """Validate a hotter direction ("fewer" | "smaller" | "larger")."""
    if hotter not in HOTTER_DIRECTIONS:
        raise ValueError(f"hotter: {hotter!r} is not valid; use one of {', '.join(HOTTER_DIRECTIONS)}")
    return hotter


def order_temperatures(values: Iterable[float], hotter: str) -> list[float]:
    """Temperature values coldest first, duplicates removed.

    "fewer"/"smaller" is hotter (epochs, batch_size): the largest value is the coldest, so the
    list is descending; "larger" is hotter (lr, weight_decay, sam_rho): ascending.
    """
    check_hotter(hotter)
    unique: list[float] = []
    for v in values:
        if finite_number(v) is None:
            raise ValueError(f"temperature: {v!r} is not a number")
        if not any(same_value(v, u) for u in unique):
            unique.append(v)
    return sorted(unique, key=float, reverse=hotter in ("fewer", "smaller"))


def axis_label(knob: str, hotter: str) -> str:
    """Human axis title stating the hotter direction, e.g. "epochs (fewer = hotter)"."""
    return f"{knob} ({check_hotter(hotter)} = hotter)"


def format_density(density: float) -> str:
    """A density fraction as a percentage label ("5%", "12.5%")."""
    return f"{100 * float(density):.4g}%"


def finite_number(x: object) -> float | None:
    """``x`` as a float when it is a finite real number (not bool), else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def seed_value(record: dict, metric: str) -> float | None:
    """One dense seed's value of ``metric``: pair lists are averaged; None when not measured."""
    if record.get("state", "done") not in _MEASURED_STATES:
        return None
    pairs = record.get(f"{metric}_pairs") if metric in PAIR_METRICS else None
    if isinstance(pairs, (list, tuple)):
        finite = [v for v in (finite_number(p) for p in pairs) if v is not None]
        if finite:
            return statistics.fmean(finite)
    value = finite_number(record.get(metric))
    if value is None and metric == "test_error":
        seeds = [v for v in (finite_number(s) for s in record.get("test_error_seeds") or []) if v is not None]
        if seeds:
            return statistics.fmean(seeds)
    return value


def aggregate(records: Sequence[dict], metric: str) -> tuple[float | None, float | None, int, list[float]]:
    """(mean, std over dense seeds, n, per-seed values) of one cell's records."""
    values = [v for v in (seed_value(r, metric) for r in records) if v is not None]
    if not values:
        return None, None, 0, []
    spread = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), spread, len(values), values


def cell_state(records: Sequence[dict]) -> str:
    """Aggregate state of a cell's dense-seed records.

    No records or all missing -> "missing"; any diverged -> "diverged" (a temperature at which a
    dense seed diverges is too hot); only failed (or missing) -> "failed"; all done -> "done";
    otherwise "partial".
    """
    states = [r.get("state", "done") for r in records]
    for s in states:
        if s not in CELL_STATES:
            raise ValueError(f"state: {s!r} is not valid; use one of {', '.join(CELL_STATES)}")
    if not states or all(s == "missing" for s in states):
        return "missing"
    if "diverged" in states:
        return "diverged"
    if "failed" in states and set(states) <= {"failed", "missing"}:
        return "failed"
    if all(s == "done" for s in states):
        return "done"
    return "partial"


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric: {metric!r} is not valid; use one of {', '.join(METRICS)}")
    return metric


def _coordinate(record: dict, key: str) -> float:
    value = record.get(key)
    if finite_number(value) is None:
        raise ValueError(f"cell record {key}: {value!r} is not a number")
    return value  # type: ignore[return-value]


def group_cells(cells: Iterable[dict], temperatures: Sequence[float], densities: Sequence[float]
                ) -> list[list[list[dict]]]:
    """Records grouped as groups[i][j] for the given coordinates; records off the grid are ignored."""
    groups: list[list[list[dict]]] = [[[] for _ in densities] for _ in temperatures]
    for record in cells:
        t, d = _coordinate(record, "temperature"), _coordinate(record, "density")
        i = next((k for k, v in enumerate(temperatures) if same_value(v, t)), None)
        j = next((k for k, v in enumerate(densities) if same_value(v, d)), None)
        if i is not None and j is not None:
            groups[i][j].append(record)
    return groups


def grid_axes(cells: Sequence[dict], temperatures: Iterable[float] | None,
              densities: Iterable[float] | None, hotter: str) -> tuple[list[float], list[float]]:
    """Ordered axes: the given values (or those found in the records), coldest first / ascending."""
    temps = order_temperatures(
        temperatures if temperatures is not None else (_coordinate(r, "temperature") for r in cells), hotter)
    dens_raw = list(densities) if densities is not None else [_coordinate(r, "density") for r in cells]
    dens: list[float] = []
    for d in dens_raw:
        if finite_number(d) is None or not 0 < float(d) <= 1:
            raise ValueError(f"density: {d!r} is not valid; use a fraction in (0, 1]")
        if not any(same_value(d, u) for u in dens):
            dens.append(d)
    return temps, sorted(dens, key=float)


def build_grid(cells: Sequence[dict], metric: str, temperatures: Iterable[float] | None,
               densities: Iterable[float] | None, knob: str, hotter: str) -> Grid:
    """Grid of ``metric`` over the plane; axes default to the values present in ``cells``."""
    check_metric(metric)
    cells = list(cells)
    temps, dens = grid_axes(cells, temperatures, densities, hotter)
    groups = group_cells(cells, temps, dens)
    rows = [[aggregate(groups[i][j], metric) for j in range(len(dens))] for i in range(len(temps))]
    return Grid(
        metric=metric, knob=knob, hotter=hotter, temperatures=temps, densities=dens,
        mean=[[c[0] for c in row] for row in rows],
        spread=[[c[1] for c in row] for row in rows],
        n=[[c[2] for c in row] for row in rows],
        values=[[c[3] for c in row] for row in rows],
        state=[[cell_state(groups[i][j]) for j in range(len(dens))] for i in range(len(temps))],
    )


def normalized_error_grid(grid: Grid) -> Grid:
    """Per density, mean test error minus its minimum over temperatures (0 marks the best one).

    Spread and n are unchanged (a shift does not change the spread across seeds).
    """
    if grid.metric != "test_error":
        raise ValueError(f"normalized_error_grid: grid metric is {grid.metric!r}; it needs a test_error grid")
    mean = [row[:] for row in grid.mean]
    values = [[cell[:] for cell in row] for row in grid.values]
    for j in range(len(grid.densities)):
        column = [grid.mean[i][j] for i in range(len(grid.temperatures)) if grid.mean[i][j] is not None]
        if not column:
            continue
        best = min(column)
        for i in range(len(grid.temperatures)):
            if mean[i][j] is not None:
                mean[i][j] = mean[i][j] - best
                values[i][j] = [v - best for v in values[i][j]]
    return Grid(metric="normalized_test_error", knob=grid.knob, hotter=grid.hotter,
                temperatures=list(grid.temperatures), densities=list(grid.densities), mean=mean,
                spread=[row[:] for row in grid.spread], n=[row[:] for row in grid.n], values=values,
                state=[row[:] for row in grid.state])


def grid_to_json(grid: Grid) -> dict:
    """Plain dict (JSON-serialisable: no NaN, only lists/numbers/strings/None)."""
    return asdict(grid)
