"""`tprm show`: one cell opened on a real tiny store (numbers, LMC and training curves)."""

from __future__ import annotations

import json

import pytest

from conftest import prepare_tiny_store, run_tprm
from tprm.analysis.cellview import lmc_entry, render_cell, t_star


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    return prepare_tiny_store(tmp_path_factory.mktemp("show"))


def show(store, *args):
    return run_tprm("show", "tiny", *args, "--store", str(store), cwd=store.parent)


def test_show_prints_the_cells_numbers_and_curves_within_80_columns(tiny_store):
    from tprm.service import Service

    (record,) = [r for r in Service(tiny_store).results.cells("tiny")
                 if r["temperature"] == 1 and r["density"] == 0.2]
    r = show(tiny_store, "-t", "1", "-d", "20")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "\x1b[" not in text  # plain text when piped
    assert all(len(line) <= 80 for line in text.splitlines())
    assert f"mc {record['mc']:.3f}, CKA {record['cka']:.3f}" in text
    for seed, err in zip((0, 1), record["test_error_seeds"]):
        assert f"seed {seed} {err:.4f}" in text
    assert f"dense test error {record['dense_test_error']:.4f} at checkpoint epoch 1" in text
    assert "LMC retrain seeds 0-1" in text and "t*=" in text and "endpoints' mean" in text
    assert "training, dense seed 0" in text
    blocks = text.split("\n\n")
    assert len(blocks) == 3 and all(len(b.splitlines()) <= 24 for b in blocks)  # one plot a screenful


def test_show_json_holds_curves_and_marks_t_star(tiny_store):
    r = show(tiny_store, "-t", "2", "-d", "0.8", "--json")
    assert r.returncode == 0, r.stderr
    view = json.loads(r.stdout)
    assert view["temperature"] == 2 and view["density"] == 0.8 and view["regime"] in ("I", "II-A", "II-B")
    (seed,) = view["seeds"]
    (pair,) = seed["lmc"]
    errs = pair["train_error"]
    mean = (errs[0] + errs[-1]) / 2
    far = max(range(len(errs)), key=lambda k: abs(mean - errs[k]))
    assert pair["t_star"] == pytest.approx(pair["t"][far]) and pair["train_mean"] == pytest.approx(mean)
    assert pair["mc"] == pytest.approx(mean - errs[far])
    assert max(seed["dense_curve"]["epoch"]) == seed["checkpoint_epoch"] == 2
    assert [c["seed"] for c in seed["retrain_curves"]] == [0, 1]
    assert [c["test_error"][-1] for c in seed["retrain_curves"]] == [x["test_error"] for x in seed["retrains"]]


def test_show_off_the_grid_is_one_line_exit_2(tiny_store):
    r = show(tiny_store, "-t", "3", "-d", "20")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "valid: 1, 2" in r.stderr
    assert "Traceback" not in r.stderr


def test_t_star_is_where_the_stored_mc_was_measured():
    curve = {"t": [0, 0.25, 0.5, 0.75, 1], "train_error": [0.1, 0.3, 0.5, 0.2, 0.1], "mc": -0.4,
             "test_error": [0.2, 0.4, 0.6, 0.3, 0.2], "pair": [0, 1]}
    assert t_star(curve) == 0.5
    assert t_star(dict(curve, mc=0.0)) == 0  # no barrier: the first point at the mean
    entry = lmc_entry(curve, [3, 7])
    assert entry["pair"] == [3, 7] and entry["test_mean"] == pytest.approx(0.2)
    view = {"recipe": "r", "knob": "epochs", "hotter": "fewer", "temperature": 4, "density": 0.1,
            "regime": "I", "uncertain": False, "reason": "mc -0.400 < -0.05", "mc": -0.4, "cka": 0.5,
            "endpoint_gap": 0.0, "seeds": [{
                "dense_seed": 0, "state": "done", "checkpoint_epoch": -1, "dense_test_error": 0.1,
                "test_error": 0.2, "retrains": [], "mc": -0.4, "cka": 0.5, "regime": "I", "uncertain": False,
                "lmc": [entry], "dense_curve": None, "retrain_curves": [], "missing": []}]}
    text = render_cell(view, width=60, height=16, color=False)
    assert "mc -0.400 at t*=0.50" in text and "retrain seeds 3-7" in text and "final epoch" in text
    assert all(len(line) <= 60 for line in text.splitlines())
