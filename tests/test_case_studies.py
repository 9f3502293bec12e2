"""The three case studies through the real CLI on a tiny real grid."""

from __future__ import annotations

import json

from conftest import TINY_RECIPE, run_tprm

TINY_SAM = (TINY_RECIPE.replace("name: tiny", "name: tiny-sam")
            .replace("temperature: {knob: epochs, values: [1, 2]}",
                     "temperature: {knob: sam_rho, values: [0.05, 0.1, 0.2]}"))


def case(*args):
    r = run_tprm("case", *args, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_direction_measures_only_the_cell_then_scores_the_grid(tiny_recipe, store_dir):
    one = case("direction", str(tiny_recipe), "-t", "2", "-d", "20", "--store", str(store_dir))
    assert one["regime"] in ("I", "II-A", "II-B") and one["direction"] in ("raise", "lower", "keep")
    assert one["trainings_run"] == 5  # dense, prune, two retrains, pairs: nothing else
    assert "cka_threshold" in one["thresholds"] and one["sources"]
    ev = case("direction", str(tiny_recipe), "--evaluate", "--store", str(store_dir))
    assert set(ev["scores"]) == {"regime rule", "always hotter", "always colder", "always keep",
                                 "dense test error"}
    for score in ev["scores"].values():
        lo, hi = score["ci_low"], score["ci_high"]
        assert score["n"] == len(ev["rows"]) and 0 <= lo <= score["accuracy"] <= hi <= 1
    assert "track_record" not in one  # the grid was not complete when the cell was asked about
    keep = ev["comparisons"]["always keep"]
    assert keep["ci_low"] <= keep["difference"] <= keep["ci_high"] and keep["verdict"] in (
        "better", "worse", "not distinguishable")
    shown = run_tprm("case", "direction", str(tiny_recipe), "--evaluate", "--store", str(store_dir)).stdout
    assert "verdict:" in shown and "regimes of the scored cells" in shown
    # now that the whole grid is in the store, a single cell's answer carries the rule's track record
    again = case("direction", str(tiny_recipe), "-t", "2", "-d", "20", "--store", str(store_dir))
    assert again["trainings_run"] == 0 and again["track_record"]["scores"] == ev["scores"]
    shown = run_tprm("case", "direction", str(tiny_recipe), "-t", "2", "-d", "20", "--store", str(store_dir)).stdout
    assert "track record on this recipe's grid" in shown and "verdict:" in shown


def test_direction_rejects_a_point_off_the_grid(tiny_recipe, store_dir):
    r = run_tprm("case", "direction", str(tiny_recipe), "-t", "3", "-d", "0.2", "--store", str(store_dir))
    assert r.returncode == 2 and "temperature" in r.stderr and "valid: " in r.stderr


def test_select_reports_every_picker_with_regret_and_cost(tiny_recipe, store_dir):
    sel = case("select", str(tiny_recipe), "-d", "0.8", "--store", str(store_dir))
    picks = sel["picks"]
    assert {"regime-aware", "dense accuracy", "pruned error", "oracle"} <= set(picks)
    assert picks["oracle"]["regret"] == 0
    assert all(p["regret"] >= 0 for p in picks.values())
    assert picks["dense accuracy"]["trainings"] < picks["regime-aware"]["trainings"]


def test_sam_walk_then_grid_comparison(tmp_path, store_dir):
    path = tmp_path / "tiny-sam.yaml"
    path.write_text(TINY_SAM)
    walk = case("sam", str(path), "-d", "0.2", "--rho", "0.1", "--store", str(store_dir))
    assert walk["path"][0]["rho"] == 0.1 and 1 <= len(walk["path"]) <= 3
    assert walk["stop"] and walk["jobs"]["run"] > 0 and walk["grid_search"] is None
    assert run_tprm("run", str(path), "--store", str(store_dir)).returncode == 0
    again = case("sam", str(path), "-d", "0.2", "--rho", "0.1", "--store", str(store_dir))
    assert again["jobs"]["run"] == 0  # everything reused
    assert again["grid_search"]["best_rho"] in (0.05, 0.1, 0.2)
    r = run_tprm("case", "sam", str(path), "-d", "0.2", "--rho", "0.1", "--store", str(store_dir))
    assert "grid" in r.stdout.lower()
    for p in again["path"]:  # the text says what was measured at each visited rho, as --json does
        assert f"rho={p['rho']:g}: regime {p['regime']}" in r.stdout
        assert f"mc {p['mc']:.3f}, CKA {p['cka']:.3f}" in r.stdout
    assert " 1 trainings" not in r.stdout


def test_sam_needs_a_sam_recipe(tiny_recipe, store_dir):
    r = run_tprm("case", "sam", str(tiny_recipe), "-d", "0.2", "--rho", "0.1", "--store", str(store_dir))
    assert r.returncode == 2 and "sam_rho" in r.stderr


def test_sam_walk_in_doubt_measures_one_more_dense_seed_then_stays(tmp_path, store_dir):
    # near_mc 1.0: every cell is "near" the mc threshold, so the start is always in doubt
    path = tmp_path / "tiny-sam-doubt.yaml"
    path.write_text(TINY_SAM.replace("name: tiny-sam", "name: tiny-sam-doubt") + "cases: {near_mc: 1.0}\n")
    walk = case("sam", str(path), "-d", "0.2", "--rho", "0.1", "--store", str(store_dir))
    (point,) = walk["path"]
    assert point["rho"] == 0.1 and point["extra_seeds"] == 1 and point["dense_seeds"] == 2
    assert point["doubts"] and "within 1 of the threshold" in point["doubts"][0]
    assert "coin flip" in walk["stop"] and "stayed at rho=0.1" in walk["stop"]
    # dense seed 0 and the extra dense seed 1: dense, prune, two retrains, pairs each
    assert walk["jobs"]["run"] == 10 and walk["trainings"] == 6
    assert walk["settings"]["extra_dense_seeds"] == 1
    r = run_tprm("case", "sam", str(path), "-d", "0.2", "--rho", "0.1", "--store", str(store_dir))
    assert r.returncode == 0 and "was in doubt: measured 1 more dense seed(s) (2 in all)" in r.stdout


def test_sam_walk_margin_out_of_range_is_a_recipe_error(tmp_path, store_dir):
    path = tmp_path / "tiny-sam-bad.yaml"
    path.write_text(TINY_SAM.replace("name: tiny-sam", "name: tiny-sam-bad") + "cases: {near_cka: 2}\n")
    r = run_tprm("case", "sam", str(path), "-d", "0.2", "--rho", "0.1", "--store", str(store_dir))
    assert r.returncode == 2 and "near_cka" in r.stderr and "Traceback" not in r.stderr
