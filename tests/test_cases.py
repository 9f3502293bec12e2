"""The three case studies as decision procedures on hand-built cell records."""

import json
import math

import pytest

from tprm.analysis.cases import (direction_for_cell, evaluate_direction_rule, format_direction,
                                 format_direction_evaluation, format_sam_walk, format_selection,
                                 grid_search_best, regime_doubts, sam_walk, select_model,
                                 wilson_interval)
from tprm.analysis.regimes import RegimeSettings

I = {"mc": -0.3, "cka": 0.97}
A = {"mc": 0.0, "cka": 0.90}
B = {"mc": 0.0, "cka": 0.97}


def record(t, d, err, seed=0, state="done", seeds=None, **metrics):
    base = {"temperature": t, "density": d, "dense_seed": seed, "state": state, "test_error": err,
            "test_error_seeds": seeds if seeds is not None else [err, err], "endpoint_gap": 0.0}
    base.update(metrics)
    return base


def dumps(result):
    return json.dumps(result.to_json(), allow_nan=False)


def test_wilson_interval_known_values():
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-9) and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)


def _row(errors, regimes, dense=None, density=0.1, temps=(64, 32, 16, 8)):
    """One density row, temperatures coldest -> hottest (epochs: 64 is coldest)."""
    dense = dense or [0.1] * len(errors)
    return [record(t, density, e, dense_test_error=de, **r) for t, e, r, de in zip(temps, errors, regimes, dense)]


def test_ground_truth_neighbours_edges_and_scores():
    # coldest edge: hotter neighbour much better -> raise; middle cell best -> keep;
    # third: hotter better -> raise; hottest edge: itself best -> keep
    cells = _row([0.30, 0.20, 0.25, 0.10], [I, B, I, A], dense=[0.05, 0.06, 0.07, 0.065])
    ev = evaluate_direction_rule(cells, knob="epochs", hotter="fewer")
    assert [r.temperature for r in ev.rows] == [64, 32, 16, 8]
    assert [r.truth for r in ev.rows] == ["raise", "keep", "raise", "keep"]
    assert [r.recommendation for r in ev.rows] == ["raise", "keep", "raise", "lower"]
    assert [r.correct for r in ev.rows] == [True, True, True, False]
    assert ev.rows[0].gain == pytest.approx(0.10)
    sc = ev.scores
    assert (sc["regime rule"].correct, sc["regime rule"].n) == (3, 4)
    assert sc["regime rule"].accuracy == 0.75
    assert (sc["regime rule"].ci_low, sc["regime rule"].ci_high) == pytest.approx(wilson_interval(3, 4))
    assert sc["always hotter"].correct == 2 and sc["always keep"].correct == 2 and sc["always colder"].correct == 0
    # dense baseline: move toward a neighbour with lower dense error, keep when none is lower
    assert [r.baselines["dense test error"] for r in ev.rows] == ["keep", "lower", "lower", "keep"]
    assert sc["dense test error"].correct == 1
    text = format_direction_evaluation(ev, rows=True)
    assert "regime rule" in text and "75.0%" in text and "(3/4" in text and "-0.05" in text
    dumps(ev)


def test_noise_floor_and_seed_noise_make_small_gains_keep():
    cells = _row([0.2010, 0.2000], [A, B], temps=(64, 32))
    # the hotter cell is 0.001 better: below the default floor 0.002 -> keep
    assert [r.truth for r in evaluate_direction_rule(cells, hotter="fewer").rows] == ["keep", "keep"]
    # with a smaller floor the same gain counts
    assert evaluate_direction_rule(cells, noise_floor=0.0005, hotter="fewer").rows[0].truth == "raise"
    # noisy retrain seeds (SE of the difference ~0.07) swamp a 0.05 gain
    noisy = [record(64, 0.1, 0.25, seeds=[0.15, 0.35], **A), record(32, 0.1, 0.20, seeds=[0.10, 0.30], **B)]
    rows = evaluate_direction_rule(noisy, noise_floor=0.0, hotter="fewer").rows
    assert rows[0].truth == "keep" and rows[0].noise == pytest.approx(math.hypot(0.1, 0.1))
    with pytest.raises(ValueError, match="noise_floor"):
        evaluate_direction_rule(cells, noise_floor=-1, hotter="fewer")


def test_diverged_and_missing_cells_are_not_options():
    cells = [record(64, 0.1, 0.30, **I), record(32, 0.1, 0.25, **A),
             record(16, 0.1, None, state="diverged"), record(8, 0.1, 0.05, **A),
             record(64, 0.2, 0.30, **I)]  # density 0.2 has one cell only: no neighbour
    ev = evaluate_direction_rule(cells, hotter="fewer", temperatures=[64, 32, 16, 8], densities=[0.1, 0.2])
    by_t = {(r.temperature, r.density): r for r in ev.rows}
    # 32's hotter neighbour diverged: only the colder one is an option -> keep (the cell is best)
    assert by_t[32, 0.1].truth == "keep"
    # 8's colder neighbour diverged: no option left -> skipped
    skipped = {(s["temperature"], s["density"]): s["why"] for s in ev.skipped}
    assert "no neighbour" in skipped[8, 0.1] and "diverged" in skipped[16, 0.1]
    assert "no neighbour" in skipped[64, 0.2] and "missing" in skipped[32, 0.2]
    assert ev.scores["regime rule"].n == 2


def test_abstaining_rule_counts_as_wrong():
    cells = _row([0.30, 0.20], [{"mc": None, "cka": None}, B], temps=(64, 32))
    ev = evaluate_direction_rule(cells, hotter="fewer")
    assert ev.rows[0].recommendation is None and ev.rows[0].correct is False


def test_direction_for_cell_evidence_in_knob_terms():
    d = direction_for_cell(record(64, 0.05, 0.3, **I), RegimeSettings(sources={"mc_threshold": "recipe x.yaml"}),
                           knob="epochs", hotter="fewer")
    assert d.regime == "I" and d.direction == "raise" and d.recommendation == "train for fewer epochs"
    assert d.mc == -0.3 and d.thresholds["mc_threshold"] == -0.05
    text = format_direction(d)
    assert "train for fewer epochs" in text and "recipe x.yaml" in text and "mc -0.300" in text
    two_seeds = [record(0.2, 0.1, 0.2, seed=0, mc=0.0, cka=0.90, endpoint_gap=0.2),
                 record(0.2, 0.1, 0.2, seed=1, mc=0.0, cka=0.92, endpoint_gap=0.0)]
    d2 = direction_for_cell(two_seeds, knob="sam_rho", hotter="larger")
    assert d2.regime == "II-A" and d2.uncertain and d2.recommendation == "use a smaller SAM rho"
    assert d2.cka == pytest.approx(0.91)
    dumps(d2)


FAMILY = [
    {"label": "cold", "mc": -0.30, "cka": 0.97, "endpoint_gap": 0.0, "test_error": 0.20,
     "dense_test_error": 0.10, "trainings": 2, "true_test_error": 0.24},
    {"label": "warm", "mc": -0.01, "cka": 0.93, "endpoint_gap": 0.0, "test_error": 0.22,
     "dense_test_error": 0.12, "trainings": 2, "true_test_error": 0.23},
    {"label": "hot", "mc": -0.02, "cka": 0.96, "endpoint_gap": 0.0, "test_error": 0.25,
     "dense_test_error": 0.15, "trainings": 2, "true_test_error": 0.19},
]


def test_select_model_pickers_regret_and_cost():
    sel = select_model(FAMILY)
    picks = {name: p.label for name, p in sel.picks.items()}
    assert picks == {"regime-aware": "hot", "dense accuracy": "cold", "pruned error": "cold", "oracle": "hot"}
    assert sel.picks["regime-aware"].regret == 0.0
    assert sel.picks["dense accuracy"].regret == pytest.approx(0.05)
    assert sel.picks["pruned error"].test_error == pytest.approx(0.24)  # scored on the true error
    assert sel.picks["dense accuracy"].trainings == 3  # one dense training per candidate
    assert sel.picks["regime-aware"].trainings == sel.picks["pruned error"].trainings == 9
    text = format_selection(sel)
    assert "regime-aware" in text and "hot" in text and "+0.0500" in text
    dumps(sel)


def test_select_model_without_true_errors_and_none_connected():
    family = [{k: v for k, v in c.items() if k != "true_test_error"} for c in FAMILY]
    sel = select_model(family)
    assert sel.picks["oracle"].label == "cold" and sel.picks["regime-aware"].regret == pytest.approx(0.05)
    # nobody well connected: the least poorly connected (highest mc) wins, not the highest CKA
    poor = [dict(c, mc=m) for c, m in zip(family, (-0.3, -0.1, -0.2))]
    assert select_model(poor).picks["regime-aware"].label == "warm"
    # mc on train loss reads mc_loss
    loss = [dict(c, mc_loss=m) for c, m in zip(family, (0.0, -0.5, -0.5))]
    assert select_model(loss, RegimeSettings(mc_on="loss")).picks["regime-aware"].label == "cold"


def test_select_model_bad_input():
    with pytest.raises(ValueError, match="empty"):
        select_model([])
    with pytest.raises(ValueError, match="unique"):
        select_model([FAMILY[0], FAMILY[0]])
    with pytest.raises(ValueError, match="dense_test_error"):
        select_model([{k: v for k, v in FAMILY[0].items() if k != "dense_test_error"}])


def measure_by(regime_of, error_of=lambda rho: 0.3 - 0.1 * rho):
    """A synthetic measure(rho) -> cell record; counts its calls."""
    calls = []

    def measure(rho):
        calls.append(rho)
        regime = regime_of(rho)
        if regime == "diverged":
            return record(rho, 0.1, None, state="diverged")
        return record(rho, 0.1, error_of(rho), **{"I": I, "II-A": A, "II-B": B}[regime])
    measure.calls = calls
    return measure


def test_sam_walk_climbs_to_regime_ii_b():
    m = measure_by(lambda r: "I" if r < 0.2 else ("II-B" if r < 0.8 else "II-A"))
    walk = sam_walk(m, 0.05)
    assert [p.rho for p in walk.path] == [0.05, 0.1, 0.2] and m.calls == [0.05, 0.1, 0.2]
    assert walk.final.regime == "II-B" and "II-B" in walk.stop
    assert walk.best.rho == 0.2 and walk.trainings == 3 * 3  # 1 dense + 2 retrains per point
    down = sam_walk(measure_by(lambda r: "I" if r < 0.2 else ("II-B" if r < 0.8 else "II-A")), 1.6)
    assert [p.rho for p in down.path] == [1.6, 0.8, 0.4]
    text = format_sam_walk(walk, grid_search_best([record(r, 0.1, 0.3 - r / 10) for r in (0.1, 0.2, 0.4)]))
    assert "0.05 (I) -> 0.1 (I) -> 0.2 (II-B)" in text and "grid search: rho=0.4" in text
    dumps(walk)


def test_sam_walk_stops_when_regime_flips_back():
    walk = sam_walk(measure_by(lambda r: "I" if r < 0.3 else "II-A"), 0.1)
    assert [p.regime for p in walk.path] == ["I", "I", "II-A"] and "flipped back" in walk.stop


def test_sam_walk_stops_at_a_revisited_value():
    # I at 0.1 says raise; 0.2 diverged says lower -> back to 0.1, already visited
    walk = sam_walk(measure_by(lambda r: "I" if r < 0.15 else "diverged"), 0.1, ladder=[0.4, 0.1, 0.2])
    assert [p.rho for p in walk.path] == [0.1, 0.2] and "already visited" in walk.stop
    assert walk.best.rho == 0.1  # the diverged point has no test error


def test_sam_walk_respects_max_steps_bounds_and_ladder_end():
    always_i = measure_by(lambda r: "I")
    walk = sam_walk(always_i, 0.01, max_steps=2, rho_max=100.0)
    assert [p.rho for p in walk.path] == [0.01, 0.02, 0.04] and "max_steps=2" in walk.stop
    clamped = sam_walk(measure_by(lambda r: "I"), 0.5, rho_max=1.5)
    assert [p.rho for p in clamped.path] == [0.5, 1.0, 1.5] and "rho_max" in clamped.stop
    low = sam_walk(measure_by(lambda r: "II-A"), 0.04, rho_min=0.01)
    assert [p.rho for p in low.path] == [0.04, 0.02, 0.01] and "rho_min" in low.stop
    ladder = sam_walk(measure_by(lambda r: "II-A"), 0.1, ladder=[0.1, 0.2, 0.4])
    assert [p.rho for p in ladder.path] == [0.1] and "ladder end" in ladder.stop
    with pytest.raises(ValueError, match="not on the ladder"):
        sam_walk(measure_by(lambda r: "I"), 0.3, ladder=[0.1, 0.2])
    with pytest.raises(ValueError, match="outside"):
        sam_walk(measure_by(lambda r: "I"), 5.0)


def test_grid_search_best_mean_over_dense_seeds_and_cost():
    cells = [record(0.1, 0.1, 0.30, seed=0), record(0.1, 0.1, 0.20, seed=1),
             record(0.2, 0.1, 0.24, seed=0), record(0.2, 0.1, 0.24, seed=1),
             record(0.4, 0.1, None, state="diverged"), record(0.4, 0.2, 0.01)]
    with pytest.raises(ValueError, match="density"):
        grid_search_best(cells)
    g = grid_search_best(cells, density=0.1)
    assert g.best_rho == 0.2 and g.best_test_error == pytest.approx(0.24)
    assert [p["test_error"] for p in g.points][2] is None
    assert g.trainings == 4 * 3 + 1 + 2  # diverged record: its dense training + 2 listed seeds
    dumps(g)


def seeded_measure(per_seed_metrics, error=0.2):
    """measure(rho, extra_seeds=k): records of dense seeds 0, 1 (+ k more) from
    per_seed_metrics(rho, seed); records every call as (rho, k)."""
    calls = []

    def measure(rho, extra_seeds=0):
        calls.append((rho, extra_seeds))
        return [record(rho, 0.1, error, seed=seed, **per_seed_metrics(rho, seed)) for seed in range(2 + extra_seeds)]
    measure.calls = calls
    return measure


def test_regime_doubts_near_thresholds_and_disagreeing_seeds():
    assert regime_doubts([record(0.1, 0.1, 0.2, mc=-0.3, cka=0.9)]) == []
    near_mc = regime_doubts([record(0.1, 0.1, 0.2, mc=-0.06, cka=0.9)])
    assert len(near_mc) == 1 and "mc -0.060 is within 0.02 of the threshold -0.05" in near_mc[0]
    assert regime_doubts([record(0.1, 0.1, 0.2, mc=-0.06, cka=0.9)], near_mc=0.005) == []
    near_cka = regime_doubts([record(0.1, 0.1, 0.2, mc=0.0, cka=0.955)])
    assert len(near_cka) == 1 and "CKA 0.955" in near_cka[0]
    # a poorly connected cell's CKA does not matter
    assert regime_doubts([record(0.1, 0.1, 0.2, mc=-0.3, cka=0.955)]) == []
    split = regime_doubts([record(0.1, 0.1, 0.2, seed=0, mc=-0.3, cka=0.97),
                           record(0.1, 0.1, 0.2, seed=1, mc=0.0, cka=0.97)])
    assert split == ["dense seeds disagree (seed 0: I, seed 1: II-B)"]
    assert regime_doubts([record(0.1, 0.1, None, state="diverged")]) == []
    with pytest.raises(ValueError, match="cases.near_cka"):
        regime_doubts([], near_cka=-0.1)


def test_sam_walk_measures_one_more_seed_at_a_doubtful_start_then_moves():
    # rho 0.1: mean mc -0.06 on two seeds (near -0.05); a third seed settles it at I (-0.13 mean)
    def metrics(rho, seed):
        if rho < 0.15:
            return {"mc": -0.06 if seed < 2 else -0.27, "cka": 0.97}
        return B
    m = seeded_measure(metrics)
    walk = sam_walk(m, 0.1, ladder=[0.05, 0.1, 0.2])
    assert m.calls == [(0.1, 0), (0.1, 1), (0.2, 0)]
    first = walk.path[0]
    assert (first.regime, first.extra_seeds, first.dense_seeds, first.doubts) == ("I", 1, 3, [])
    assert [p.rho for p in walk.path] == [0.1, 0.2] and walk.final.regime == "II-B"
    assert walk.trainings == 3 * 3 + 2 * 3  # the extra seed's dense + 2 retrains are counted once
    assert "was in doubt: measured 1 more dense seed(s) (3 in all), settled: I" in format_sam_walk(walk)


def test_sam_walk_stays_when_the_seeds_keep_disagreeing():
    m = seeded_measure(lambda rho, seed: I if seed % 2 == 0 else B)
    walk = sam_walk(m, 0.1)
    assert m.calls == [(0.1, 0), (0.1, 1)] and len(walk.path) == 1
    p = walk.final
    assert p.uncertain and p.extra_seeds == 1 and "seed 2: I" in p.doubts[0]
    assert "coin flip after 1 more dense seed(s)" in walk.stop and "stayed at rho=0.1" in walk.stop
    # without extra seeds allowed it stays at once, and says so
    m0 = seeded_measure(lambda rho, seed: I if seed % 2 == 0 else B)
    stay = sam_walk(m0, 0.1, extra_seeds=0)
    assert m0.calls == [(0.1, 0)] and "coin flip (" in stay.stop and stay.settings["extra_dense_seeds"] == 0
    # margins of 0 and agreeing seeds: the old behaviour, no extra measurement
    sure = seeded_measure(lambda rho, seed: {"mc": -0.06, "cka": 0.97} if rho < 0.15 else B)
    assert [p.rho for p in sam_walk(sure, 0.1, near_mc=0.0).path] == [0.1, 0.2] and sure.calls == [(0.1, 0), (0.2, 0)]
    with pytest.raises(ValueError, match="extra_dense_seeds"):
        sam_walk(m, 0.1, extra_seeds=-1)
    dumps(walk)
