"""Grids over the temperature x density plane from synthetic cell records."""

import json
import math
import statistics

import pytest

from tprm.analysis.phase import (axis_label, build_grid, grid_to_json, normalized_error_grid,
                                 order_temperatures)


def record(t, d, seed=0, state="done", **metrics):
    base = {"temperature": t, "density": d, "dense_seed": seed, "state": state}
    base.update(metrics)
    return base


def test_order_temperatures_coldest_first():
    # fewer epochs / smaller batch is hotter: the largest value is the coldest
    assert order_temperatures([8, 64, 16, 64.0], "fewer") == [64, 16, 8]
    assert order_temperatures([512, 16, 128], "smaller") == [512, 128, 16]
    # larger lr / rho is hotter: smallest first
    assert order_temperatures([0.4, 0.1, 0.2], "larger") == [0.1, 0.2, 0.4]
    assert axis_label("epochs", "fewer") == "epochs (fewer = hotter)"
    with pytest.raises(ValueError, match="hotter"):
        order_temperatures([1, 2], "hotter")
    with pytest.raises(ValueError, match="temperature"):
        order_temperatures([1, "a"], "larger")


def test_pair_metric_averages_pairs_within_dense_seed_first():
    # seed 0 has three pairs, seed 1 one: averaging all four pairs at once would give -0.25
    cells = [record(16, 0.1, 0, mc=-0.2, mc_pairs=[-0.1, -0.2, -0.3], cka_pairs=[0.9, 0.94]),
             record(16, 0.1, 1, mc=-0.4, mc_pairs=[-0.4], cka_pairs=[0.98])]
    mc = build_grid(cells, "mc", [16], [0.1], "epochs", "fewer")
    assert mc.mean[0][0] == pytest.approx(-0.3)
    assert mc.spread[0][0] == pytest.approx(statistics.stdev([-0.2, -0.4]))
    assert mc.n[0][0] == 2
    assert mc.values[0][0] == pytest.approx([-0.2, -0.4])
    cka = build_grid(cells, "cka", [16], [0.1], "epochs", "fewer")
    assert cka.mean[0][0] == pytest.approx((0.92 + 0.98) / 2)


def test_scalar_metric_spread_and_n_over_two_dense_seeds():
    cells = [record(8, 0.2, 0, test_error=0.20, test_error_seeds=[0.19, 0.21]),
             record(8, 0.2, 1, test_error=None, test_error_seeds=[0.25, 0.27]),  # error from its seeds
             record(8, 0.4, 0, test_error=0.10)]
    g = build_grid(cells, "test_error", [8], [0.2, 0.4], "epochs", "fewer")
    assert g.mean[0][0] == pytest.approx(0.23)
    assert g.spread[0][0] == pytest.approx(statistics.stdev([0.20, 0.26]))
    assert (g.n[0][0], g.n[0][1]) == (2, 1)
    assert g.spread[0][1] is None  # one dense seed: no spread


def test_axes_order_and_cell_placement():
    temps, dens = [4, 8, 16, 32], [0.05, 0.1, 0.4]
    cells = [record(t, d, test_error=0.3) for t in temps for d in dens if (t, d) != (8, 0.1)]
    cells.append(record(8, 0.1, test_error=0.777))
    g = build_grid(cells, "test_error", None, None, "epochs", "fewer")
    assert g.temperatures == [32, 16, 8, 4]
    assert g.densities == [0.05, 0.1, 0.4]
    i, j = g.index(8, 0.1)
    assert (i, j) == (2, 1)
    assert g.mean[i][j] == 0.777
    assert g.at(8.0, 0.1) == 0.777  # 8 and 8.0 are the same coordinate
    with pytest.raises(KeyError, match="temperature"):
        g.index(5, 0.1)
    lr = build_grid([record(0.1, 0.5, test_error=0.1), record(0.01, 0.5, test_error=0.2)],
                    "test_error", None, None, "lr", "larger")
    assert lr.temperatures == [0.01, 0.1] and lr.mean == [[0.2], [0.1]]


def test_states_missing_diverged_partial():
    cells = [record(16, 0.1, 0, state="diverged", test_error=0.9),
             record(16, 0.1, 1, test_error=0.3),
             record(8, 0.1, 0, state="partial", test_error=0.4),
             record(8, 0.2, 0, state="missing")]
    g = build_grid(cells, "test_error", [16, 8], [0.1, 0.2], "epochs", "fewer")
    assert g.state == [["diverged", "missing"], ["partial", "missing"]]
    # the diverged seed's value is not used; the other dense seed's is
    assert g.mean[0][0] == 0.3 and g.n[0][0] == 1
    assert g.mean[1][1] is None and g.n[1][1] == 0 and g.values[1][1] == []
    with pytest.raises(ValueError, match="state"):
        build_grid([record(16, 0.1, state="weird")], "test_error", None, None, "epochs", "fewer")


def test_nan_and_missing_values_are_no_data():
    cells = [record(16, 0.1, 0, hessian_trace=math.nan), record(16, 0.1, 1, hessian_trace=None)]
    g = build_grid(cells, "hessian_trace", None, None, "epochs", "fewer")
    assert g.mean == [[None]] and g.n == [[0]]


def test_normalized_error_grid_zero_marks_best_temperature():
    errs = {(64, 0.1): 0.30, (16, 0.1): 0.25, (4, 0.1): 0.28, (64, 0.8): 0.10, (16, 0.8): 0.12}
    cells = [record(t, d, test_error=e) for (t, d), e in errs.items()]
    g = build_grid(cells, "test_error", [4, 16, 64], [0.1, 0.8], "epochs", "fewer")
    norm = normalized_error_grid(g)
    assert norm.metric == "normalized_test_error"
    col_01 = [norm.mean[i][0] for i in range(3)]
    assert col_01 == pytest.approx([0.05, 0.0, 0.03])  # rows: 64, 16, 4
    assert norm.mean[0][1] == pytest.approx(0.0) and norm.mean[1][1] == pytest.approx(0.02)
    assert norm.mean[2][1] is None
    assert g.mean[0][0] == 0.30  # the input grid is not modified
    with pytest.raises(ValueError, match="test_error grid"):
        normalized_error_grid(build_grid(cells, "mc", None, None, "epochs", "fewer"))


def test_grid_to_json_is_plain_json():
    cells = [record(16, 0.1, 0, test_error=0.2), record(16, 0.1, 1, test_error=0.3)]
    g = build_grid(cells, "test_error", None, None, "epochs", "fewer")
    data = json.loads(json.dumps(grid_to_json(g), allow_nan=False))
    assert data["metric"] == "test_error" and data["hotter"] == "fewer"
    assert data["mean"] == [[pytest.approx(0.25)]] and data["n"] == [[2]]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="metric"):
        build_grid([], "accuracy", [1], [0.1], "epochs", "fewer")
    with pytest.raises(ValueError, match="density"):
        build_grid([], "mc", [1], [1.5], "epochs", "fewer")
    with pytest.raises(ValueError, match="temperature"):
        build_grid([{"density": 0.1}], "mc", None, [0.1], "epochs", "fewer")
