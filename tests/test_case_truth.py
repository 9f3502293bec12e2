"""Case studies that never hide a failure, and say what they measured with its noise."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import TINY_RECIPE, run_tprm
from tprm.analysis.case_sam import WalkPoint, point_line
from tprm.analysis.case_select import format_selection, select_model
from tprm.analysis.case_stats import count

TESTS = Path(__file__).resolve().parent
# builds and passes validation (engine/modelprobe.py), fails as soon as a job trains it
BROKEN_MODEL = f"model: {{import: 'user_models:train_fails', path: '{TESTS}'}}"
CAUSE = "train_fails cannot train"


def broken(tmp_path, name: str, knob: str = "temperature: {knob: epochs, values: [1, 2]}"):
    """A tiny recipe whose model fails when a job trains it."""
    text = (TINY_RECIPE.replace("name: tiny", f"name: {name}")
            .replace("model: {name: conv1d, kwargs: {widths: [8, 8, 8]}}", BROKEN_MODEL)
            .replace("temperature: {knob: epochs, values: [1, 2]}", knob))
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("kind,args,knob", [
    ("direction", ["-t", "1", "-d", "20"], "temperature: {knob: epochs, values: [1, 2]}"),
    ("select", ["-d", "20"], "temperature: {knob: epochs, values: [1, 2]}"),
    ("sam", ["-d", "20", "--rho", "0.1"], "temperature: {knob: sam_rho, values: [0.05, 0.1]}"),
])
def test_a_case_whose_job_fails_names_the_job_and_cause_and_exits_1(tmp_path, store_dir, kind, args, knob):
    path = broken(tmp_path, f"typo-{kind}", knob)
    r = run_tprm("case", kind, str(path), *args, "--store", str(store_dir))
    assert r.returncode == 1, r.stdout + r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    assert CAUSE in errors[0]
    assert "job 'dense " in errors[0] and "seed=0' failed" in errors[0]
    assert "Traceback" not in r.stderr
    # no answer from missing numbers
    for answer in ("regime unknown", "no recommendation", "regret", "best visited", "jobs run now"):
        assert answer not in r.stdout


def test_a_detached_case_whose_job_fails_is_failed_with_the_cause(tmp_path, store_dir):
    from tprm.service import Service

    svc = Service(store_dir)
    info = svc.cases.start("direction", str(broken(tmp_path, "typo-detached")), temperature=1, density=0.2)
    deadline = time.monotonic() + 240  # a generous wait on a condition (a loaded CI machine)
    state = svc.cases.state(info["id"])
    while state["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = svc.cases.state(info["id"])
    assert state["state"] == "failed" and state["report"] is None
    assert CAUSE in state["error"]
    assert "dense seed=0" in state["error"] and "\n" not in state["error"]


def test_select_regret_comes_with_its_noise_in_words():
    family = [
        {"label": "cold", "mc": -0.30, "cka": 0.97, "test_error": 0.20, "test_error_se": 0.003,
         "dense_test_error": 0.10, "trainings": 2},
        {"label": "warm", "mc": -0.01, "cka": 0.93, "test_error": 0.202, "test_error_se": 0.004,
         "dense_test_error": 0.12, "trainings": 2},
        {"label": "hot", "mc": -0.3, "cka": 0.96, "test_error": 0.25, "test_error_se": 0.001,
         "dense_test_error": 0.15, "trainings": 2},
    ]
    sel = select_model(family)
    assert sel.picks["oracle"].label == "cold" and sel.picks["oracle"].noise == 0.0
    warm = sel.picks["regime-aware"]
    assert warm.label == "warm" and warm.noise == pytest.approx(0.005)  # hypot(0.003, 0.004)
    text = format_selection(sel)
    assert "regret +0.0020 ± 0.0050 (1 s.e.; within the noise)" in text
    hot = select_model([dict(c, dense_test_error=0.3 if c["label"] != "hot" else 0.01) for c in family])
    assert hot.picks["dense accuracy"].label == "hot"
    assert "regret +0.0500 ± 0.0032 (1 s.e.; beyond the noise)" in format_selection(hot)
    assert "regret 0 (as good as the oracle's pick)" in text
    unknown = select_model([{k: v for k, v in c.items() if k != "test_error_se"} for c in family])
    assert "(noise unknown)" in format_selection(unknown)


def test_counts_are_spelled_in_plain_english():
    assert count(1, "training") == "1 training" and count(0, "training") == "0 trainings"
    assert count(3, "dense seed") == "3 dense seeds"
    point = WalkPoint(rho=0.1, regime="I", uncertain=False, test_error=0.25, mc=-0.12, cka=0.91,
                      trainings=1, dense_seeds=1)
    assert point_line(point) == "rho=0.1: regime I, mc -0.120, CKA 0.910, pruned test error 0.2500"
    doubt = WalkPoint(rho=0.2, regime="II-A", uncertain=True, test_error=None, mc=0.0, cka=None,
                      trainings=6, dense_seeds=2)
    assert point_line(doubt) == ("rho=0.2: regime II-A (in doubt), mc 0.000, CKA n/a, pruned test error n/a "
                                 "(2 dense seeds)")
