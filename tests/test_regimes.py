"""Regime classification: boundaries, flags, grids, median split, directions."""

import json

import pytest

from tprm.analysis.regimes import (RegimeSettings, classify_cell, classify_records, direction,
                                   recommendation_text, regime_grid)


def record(t, d, seed=0, state="done", **metrics):
    base = {"temperature": t, "density": d, "dense_seed": seed, "state": state}
    base.update(metrics)
    return base


def test_boundaries_of_the_fixed_thresholds():
    s = RegimeSettings()
    assert classify_cell(-0.0501, 0.99, 0.0, s)["regime"] == "I"
    assert classify_cell(-0.05, 0.90, 0.0, s)["regime"] == "II-A"  # mc == threshold is connected
    assert classify_cell(-0.01, 0.95, 0.0, s)["regime"] == "II-B"  # cka == threshold is II-B
    assert classify_cell(-0.01, 0.9499, 0.0, s)["regime"] == "II-A"
    custom = RegimeSettings(mc_threshold=-0.2, cka_threshold=0.9)
    assert classify_cell(-0.1, 0.91, None, custom)["regime"] == "II-B"


def test_uncertain_when_endpoints_differ():
    s = RegimeSettings(max_endpoint_gap=0.05)
    assert classify_cell(-0.3, None, 0.051, s)["uncertain"] is True
    assert classify_cell(-0.3, None, 0.05, s)["uncertain"] is False
    out = classify_cell(0.0, 0.97, 0.2, s)
    assert out["regime"] == "II-B" and out["uncertain"] and "endpoint gap" in out["reason"]


def test_diverged_and_unknown():
    assert classify_cell(None, None, None, diverged=True)["regime"] == "diverged"
    assert classify_cell(None, 0.97, 0.0)["regime"] == "unknown"
    assert classify_cell(float("nan"), 0.97, 0.0)["regime"] == "unknown"
    assert classify_cell(0.0, None, 0.0)["regime"] == "unknown"  # connected but no CKA: cannot split
    assert classify_cell(-0.3, None, 0.0)["regime"] == "I"      # Regime I needs no CKA


def test_loss_based_mc_and_logit_cka_read_their_own_fields():
    cell = record(16, 0.1, mc=0.0, mc_loss=-0.5, cka=0.97, cka_logits=0.80, endpoint_gap=0.0)
    assert classify_records(cell, RegimeSettings())["regime"] == "II-B"
    loss = classify_records(cell, RegimeSettings(mc_on="loss", mc_loss_threshold=-0.4))
    assert loss["regime"] == "I" and loss["thresholds"]["mc_loss_threshold"] == -0.4
    assert classify_records(cell, RegimeSettings(mc_on="loss", mc_loss_threshold=-0.6))["regime"] == "II-B"
    assert classify_records(cell, RegimeSettings(cka_output="logits"))["regime"] == "II-A"


def test_records_averaged_over_dense_seeds_and_diverged_state():
    seeds = [record(16, 0.1, 0, mc=-0.02, cka=0.99), record(16, 0.1, 1, mc=-0.10, cka=0.99)]
    assert classify_records(seeds)["mc"] == pytest.approx(-0.06)
    assert classify_records(seeds)["regime"] == "I"
    assert classify_records([record(16, 0.1, state="diverged")])["regime"] == "diverged"


def test_results_carry_thresholds_and_sources():
    s = RegimeSettings(cka_threshold=0.9, sources={"cka_threshold": "recipe quickstart.yaml regimes.cka_threshold"})
    out = classify_cell(0.0, 0.92, 0.0, s)
    assert out["thresholds"]["cka_threshold"] == 0.9
    assert out["sources"]["cka_threshold"] == "recipe quickstart.yaml regimes.cka_threshold"
    assert out["sources"]["mc_threshold"] == "default"
    json.dumps(out, allow_nan=False)


def test_settings_validation():
    with pytest.raises(ValueError, match="mc_on"):
        RegimeSettings(mc_on="accuracy")
    with pytest.raises(ValueError, match="split"):
        RegimeSettings(split="mean")
    with pytest.raises(ValueError, match="cka_threshold"):
        RegimeSettings(cka_threshold=float("nan"))
    with pytest.raises(ValueError, match="max_endpoint_gap"):
        RegimeSettings(max_endpoint_gap=-1)
    with pytest.raises(ValueError, match="sources"):
        RegimeSettings(sources={"cka": "x"})


def _plane(skip=()):
    """4 epochs x 2 densities; colder + sparse -> I, hot -> II-A, cold + dense -> II-B."""
    metrics = {
        (64, 0.05): (-0.4, 0.97), (16, 0.05): (-0.2, 0.96), (8, 0.05): (-0.01, 0.90), (4, 0.05): (0.0, 0.89),
        (64, 0.8): (-0.01, 0.98), (16, 0.8): (0.0, 0.96), (8, 0.8): (0.0, 0.93), (4, 0.8): (-0.02, 0.91),
    }
    return [record(t, d, mc=mc, cka=cka, endpoint_gap=0.01) for (t, d), (mc, cka) in metrics.items()
            if (t, d) not in skip]


def test_regime_grid_labels_cells_in_grid_order():
    rg = regime_grid(_plane(), None, None, "epochs", "fewer")
    assert rg.temperatures == [64, 16, 8, 4] and rg.densities == [0.05, 0.8]
    assert [row[0] for row in rg.regime] == ["I", "I", "II-A", "II-A"]
    assert [row[1] for row in rg.regime] == ["II-B", "II-B", "II-A", "II-A"]
    assert rg.thresholds["cka_threshold"] == 0.95 and rg.sources["split"] == "default"
    json.dumps(rg.to_json(), allow_nan=False)
    partial = regime_grid(_plane(skip={(8, 0.8)}), None, None, "epochs", "fewer")
    assert partial.regime[2][1] == "unknown"


def test_median_split_on_complete_grid_only():
    s = RegimeSettings(split="median", sources={"split": "recipe r.yaml regimes.split"})
    rg = regime_grid(_plane(), None, None, "epochs", "fewer", s)
    connected = [0.90, 0.89, 0.98, 0.96, 0.93, 0.91]  # cka of cells with mc >= -0.05
    median = sorted(connected)[2:4]
    assert rg.thresholds["cka_threshold"] == pytest.approx(sum(median) / 2)
    assert "median" in rg.sources["cka_threshold"] and "r.yaml" in rg.sources["cka_threshold"]
    labels = [label for row in rg.regime for label in row if label in ("II-A", "II-B")]
    assert labels.count("II-B") == 3 and labels.count("II-A") == 3
    with pytest.raises(ValueError, match="complete grid"):
        regime_grid(_plane(skip={(8, 0.8)}), None, None, "epochs", "fewer", s)
    with pytest.raises(ValueError, match="complete grid"):  # a listed temperature with no records
        regime_grid(_plane(), [64, 16, 8, 4, 2], None, "epochs", "fewer", s)


def test_direction_and_recommendation_text():
    assert [direction(r) for r in ("I", "II-A", "II-B", "diverged", "unknown")] == \
        ["raise", "lower", "keep", "lower", None]
    with pytest.raises(ValueError, match="regime"):
        direction("III")
    assert recommendation_text("raise", "epochs", "fewer") == "train for fewer epochs"
    assert recommendation_text("lower", "epochs", "fewer") == "train for more epochs"
    assert recommendation_text("raise", "batch_size", "smaller") == "use a smaller batch size"
    assert recommendation_text("lower", "sam_rho", "larger") == "use a smaller SAM rho"
    assert recommendation_text("keep", "lr", "larger") == "keep the learning rate"
