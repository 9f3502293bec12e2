"""Adaptive exploration against a synthetic oracle (a known map with seed noise): budgets, no
cell measured twice, determinism, the stop rule, inference on known maps, cost-awareness."""

from __future__ import annotations

import json

import pytest
from explore_oracle import Oracle

from tprm.analysis.explore import explore
from tprm.analysis.explore_infer import UNKNOWN, infer_map
from tprm.analysis.explore_lattice import (Budget, Lattice, lattice_for, parse_budget, product_design,
                                           start_design, temperature_neighbours)
from tprm.analysis.explore_report import render_exploration
from tprm.analysis.explore_select import Candidate, choose_round, middle

TEMPS = [8, 16, 24, 32, 40, 48, 56, 64]
DENS = [0.05, 0.07, 0.1, 0.14, 0.2, 0.3, 0.5, 0.8]


def lattice(knob: str = "epochs") -> Lattice:
    hotter = "fewer" if knob in ("epochs", "batch_size") else "larger"
    return lattice_for(TEMPS, DENS, knob, hotter, dense_seeds=2, retrain_seeds=2)


@pytest.mark.parametrize("budget", ["10", "19", "30%", "50%", "60r", "101r"])
def test_budget_is_respected_and_no_cell_is_measured_twice(budget):
    lat = lattice()
    oracle = Oracle(lat)
    chosen = parse_budget(budget, lat.size)
    ex = explore(lat, oracle, chosen)
    asked = oracle.measured
    assert len(asked) == len(set(asked)) == len(ex.measured)
    assert chosen.allows(len(asked), len(asked) * lat.cell_retrainings)
    assert ex.retrainings == len(asked) * 4
    assert ex.stop == "budget" and "budget spent" in ex.stop_reason
    cap = chosen.as_cells(lat)
    assert len(asked) == cap  # a budget below convergence is used up, not left over


def test_a_budget_below_one_cell_measures_nothing_and_says_so():
    lat = lattice()
    oracle = Oracle(lat)
    ex = explore(lat, oracle, parse_budget("3r", lat.size))
    assert oracle.calls == [] and ex.stop == "budget" and "does not pay for one cell" in ex.stop_reason
    assert all(ex.to_json()["cells"][k]["regime"] == UNKNOWN for k in range(lat.size))


def test_same_results_give_the_same_choices():
    lat = lattice()
    first, second = Oracle(lat, seed=1), Oracle(lat, seed=1)
    a, b = explore(lat, first, Budget(cells=30)), explore(lat, second, Budget(cells=30))
    assert first.calls == second.calls
    assert json.dumps(a.to_json(), sort_keys=True) == json.dumps(b.to_json(), sort_keys=True)
    other = Oracle(lat, seed=1, cold_edge=1)  # a different map: different choices after the start
    explore(lat, other, Budget(cells=30))
    assert other.calls[0] == first.calls[0] and other.calls != first.calls


def test_without_budget_it_converges_to_the_true_map_and_best_temperatures():
    lat = lattice()
    oracle = Oracle(lat)
    ex = explore(lat, oracle)
    assert ex.stop == "converged" and ex.stop_reason.startswith("converged")
    assert len(ex.measured) < lat.size  # it stopped before measuring everything
    assert all(ex.regime(c) == oracle.regime(*c) for c in lat.cells())
    assert [b.best for b in ex.bests] == [oracle.best(j) for j in range(len(DENS))]
    assert all(not b.open for b in ex.bests)
    out = ex.to_json()
    inferred = [c for c in out["cells"] if not c["measured"]]
    assert inferred and all(c["rule"].startswith("enclosed along") for c in inferred)
    assert out["measured_cells"] == len(ex.measured) and out["total_retrainings"] == 256


def test_noise_keeps_exploring_where_errors_tie():
    """With test errors that differ by less than seed noise, more temperatures stay candidates."""
    lat = lattice()
    clean = explore(lat, Oracle(lat, noise=0.0005, curvature=0.01))
    tied = explore(lat, Oracle(lat, noise=0.02, curvature=0.0005))
    assert len(tied.measured) > len(clean.measured)


def test_inference_on_known_maps():
    shape = (3, 3)
    corners = {(0, 0): "I", (2, 0): "I", (0, 2): "I", (2, 2): "I"}
    got = infer_map(corners, shape)
    assert {c: got[c].regime for c in got} == {(i, j): "I" for i in range(3) for j in range(3)}
    assert got[1, 1].rule.endswith("(pass 2)") and got[0, 1].rule.startswith("enclosed along density")
    split = {(0, 0): "I", (2, 0): "II-B", (0, 2): "I", (2, 2): "II-B"}
    got = infer_map(split, shape)
    assert got[0, 1].regime == "I" and got[2, 1].regime == "II-B"
    # between I and II-B along temperature: the middle row cannot be told
    assert [got[1, j].regime for j in range(3)] == [UNKNOWN] * 3
    assert "disagree" in got[1, 0].rule
    # a boundary across one axis runs on past a cell the other axis encloses in one regime
    line = {(0, 1): "I", (2, 1): "II-B", (1, 0): "II-B", (1, 2): "II-B"}
    assert infer_map(line, shape)[1, 1].regime == "II-B"
    line[1, 2] = "II-A"  # now neither axis agrees
    assert infer_map(line, shape)[1, 1].regime == UNKNOWN
    assert infer_map({(0, 0): "I"}, shape)[2, 2].regime == UNKNOWN  # nothing encloses it


def test_cost_awareness_prefers_cells_in_measured_columns():
    lat = lattice("batch_size")  # each temperature column is its own dense training per seed
    measured = [(0, 0), (3, 0)]
    assert middle([(1, 0), (2, 0)], lat, measured) == (1, 0)  # tie: the first middle
    measured.append((2, 5))  # column 2 is trained now: its cell is the cheaper middle
    assert middle([(1, 0), (2, 0)], lat, measured) == (2, 0)
    epochs = lattice("epochs")
    assert middle([(1, 0), (2, 0)], epochs, [(0, 0)]) == (1, 0)  # shared dense run: no preference
    cheap, dear = (2, 3), (1, 3)
    picks = choose_round(lat, [Candidate(dear, "transition", 2, 0, "x"), Candidate(cheap, "transition", 2, 0, "x")],
                         measured, Budget(), 1)
    assert [p.cell for p in picks] == [cheap]
    valued = choose_round(lat, [Candidate(dear, "transition", 3, 0, "x"), Candidate(cheap, "transition", 2, 0, "x")],
                          measured, Budget(), 1)
    assert [p.cell for p in valued] == [dear]  # more value beats cheaper


def test_cost_aware_exploration_trains_fewer_dense_columns():
    lat = lattice("batch_size")
    ex = explore(lat, Oracle(lat), Budget(cells=26))
    assert ex.dense_trainings < lat.dense_seeds * len(TEMPS)
    assert ex.to_json()["total_dense_trainings"] == 16


def test_designs_and_budget_parsing():
    lat = lattice()
    start = start_design(lat, 32)
    assert len(start) <= 32 // 3 and {(0, 0), (7, 0), (0, 7), (7, 7)} <= set(start[:4])
    assert len(product_design(lat, 32)) == 32 and len(product_design(lat, None)) == 25
    assert parse_budget("20", 64) == Budget(cells=20) == parse_budget("20c", 64)
    assert parse_budget("60r", 64) == Budget(retrainings=60)
    assert parse_budget("50%", 64) == Budget(cells=32)
    assert parse_budget(None, 64) == Budget()
    for bad in ("abc", "0", "150%", "2.5"):
        with pytest.raises(ValueError, match="budget: .* use a number of cells|must be|at least 1"):
            parse_budget(bad, 64)
    assert temperature_neighbours(0, 3) == [1] and temperature_neighbours(1, 3) == [0, 2]


def test_render_tells_measured_from_inferred_and_unknown():
    lat = lattice()
    ex = explore(lat, Oracle(lat), Budget(cells=20))
    text = render_exploration(ex)
    grid = "\n".join(text.splitlines()[2:10])
    assert "II-B" in grid and "ii-b" in grid and " ? " in grid
    assert "measured 20 of 64 cells (80 of 256 retrainings" in text and "budget spent" in text
    cells = ex.to_json()["cells"]
    assert sum(c["measured"] for c in cells) == 20
    assert any(c["regime"] == UNKNOWN and not c["measured"] for c in cells)


def test_figure_frames_the_measured_cells(tmp_path):
    from tprm.analysis.explore_report import exploration_figure

    lat = lattice()
    ex = explore(lat, Oracle(lat), Budget(cells=20))
    png, svg = exploration_figure(ex, tmp_path / "explored")
    assert png.stat().st_size > 0
    text = svg.read_text()
    assert "framed: measured" in text and "measured 20 of 64 cells" in text
