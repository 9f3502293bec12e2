"""The case-study screens state, from the measured numbers, whether the rule beats keeping the setting."""

import pytest

from tprm.analysis.cases import (compare_to_baseline, evaluate_direction_rule, format_direction_evaluation,
                                 paired_difference_interval, track_record_lines)
from tprm.tui.viewmodel import decision_headline, key_numbers

I = {"mc": -0.3, "cka": 0.97}
A = {"mc": 0.0, "cka": 0.90}
B = {"mc": 0.0, "cka": 0.97}


def record(t, d, err, **metrics):
    return {"temperature": t, "density": d, "dense_seed": 0, "state": "done", "test_error": err,
            "test_error_seeds": [err, err], "endpoint_gap": 0.0, "dense_test_error": 0.1, **metrics}


def test_paired_interval_values_and_limits():
    diff, lo, hi = paired_difference_interval(12, 9, 2, 21)
    assert diff == pytest.approx(7 / 44) and 0 < lo < diff < hi < 0.35
    assert paired_difference_interval(20, 0, 0, 0)[0] == 0  # identical outcomes: no difference
    d, lo, hi = paired_difference_interval(0, 20, 0, 0)
    assert d == 1 and lo > 0.7 and hi == 1
    assert paired_difference_interval(0, 0, 0, 0) == (0.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="counts"):
        paired_difference_interval(1, -1, 0, 0)


def _grid(rows_per_density):
    """Cells over temperatures 64 (coldest), 32, 16 at several densities."""
    cells = []
    for k, (errors, regimes) in enumerate(rows_per_density):
        cells += [record(t, 0.1 * (k + 1), e, **r) for t, e, r in zip((64, 32, 16), errors, regimes)]
    return cells


def test_a_rule_no_better_than_keep_is_said_plainly_with_its_numbers():
    # every cell is its own best (truth keep) but the rule reads I/II-A and moves: keep wins
    cells = _grid([([0.10, 0.10, 0.10], [I, A, I])] * 4)
    ev = evaluate_direction_rule(cells, hotter="fewer", knob="epochs")
    keep = ev.comparisons["always keep"]
    assert ev.scores["always keep"].correct == 12 and ev.scores["regime rule"].correct == 0
    assert keep.verdict == "worse" and keep.difference == -1 and keep.baseline_only == 12
    assert not ev.beats_every_baseline
    text = format_direction_evaluation(ev)
    assert "NOT shown better than every baseline" in text and "worse than 'always keep'" in text
    assert "keeping the setting is as good a guide as the regime rule (or better)" in text
    assert "regimes of the scored cells: I 8, II-A 4" in text and "8 x I -> raise where keep was best" in text
    report = {"kind": "direction-evaluation", **ev.to_json()}
    assert "NOT shown better than keeping the setting" in decision_headline(report)
    single = {"kind": "direction", "recommendation": "keep", "regime": "II-B", "track_record": ev.to_json()}
    assert "NOT shown better than keeping" in decision_headline(single)
    assert track_record_lines(ev)[0].startswith("  track record on this recipe's grid: the rule was right in 0/12")
    here = track_record_lines(ev, 64, 0.1)
    assert here[0] == ("  measured on the grid: the best move here was keep (no neighbour is better), "
                       "so the rule's call is wrong at this cell") and "0/12" in here[1]


def test_a_rule_that_wins_everywhere_is_credited():
    # hotter is better at every density and every cell is Regime I (raise) except the hottest (II-B: keep)
    rows = [([0.30, 0.20, 0.10], [I, I, B])] * 8
    ev = evaluate_direction_rule(_grid(rows), hotter="fewer", knob="epochs", noise_floor=0.0)
    assert ev.scores["regime rule"].correct == 24
    assert {b: c.verdict for b, c in ev.comparisons.items()} == {
        "always hotter": "better", "always colder": "better", "always keep": "better", "dense test error": "better"}
    assert ev.beats_every_baseline and "beats every baseline" in format_direction_evaluation(ev)
    assert "NOT" not in decision_headline({"kind": "direction-evaluation", **ev.to_json()})
    assert compare_to_baseline(ev.rows, "always hotter").rule_only == 8  # the hottest cells: keep
    assert track_record_lines(ev, 64, 0.1)[0] == (
        "  measured on the grid: the best move here was raise (that neighbour is better by 0.100, beyond the "
        "noise 0.000), so the rule's call is right at this cell")


def test_sam_key_numbers_mark_extra_seeds_and_doubt():
    report = {"kind": "sam", "path": [{"rho": 0.1, "regime": "I", "test_error": 0.2, "extra_seeds": 1,
                                       "doubts": ["dense seeds disagree"]}]}
    (name, value), = key_numbers(report)
    assert name == "rho 0.1" and "+1 dense seed(s)" in value and "in doubt: stayed" in value
