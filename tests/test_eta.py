"""ETA from measured throughput in model-steps (tprm.engine.eta), and logs that stream during a run."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tprm.engine.eta import MIN_FRACTION, estimate, job_work
from tprm.service import Service

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from eta_trace import replay, score  # noqa: E402

TRACE = Path(__file__).parent / "data" / "eta_trace_quickstart.json"
MNIST = {"name": "mnist1d", "num_samples": 2500}


def test_work_counts_model_steps_per_kind():
    sched = {"batch_size": 128, "epochs": 20, "iterations": None, "sam_rho": 0.0}
    retrain = job_work("retrain", {"data": MNIST, "schedule": sched})
    assert retrain == pytest.approx(2 + 20 * (2000 // 128))
    dense = job_work("dense", {"data": MNIST, "schedule": dict(sched, epochs=64)})
    assert dense - 2 == pytest.approx(64 / 20 * (retrain - 2))
    sam = job_work("dense", {"data": MNIST, "schedule": dict(sched, epochs=64, sam_rho=0.05)})
    assert sam - 2 == pytest.approx(2 * (dense - 2))  # a SAM step is two passes
    assert job_work("prune", {"data": MNIST, "pruning": {"method": "magnitude"}}) < 5
    pairs = job_work("pairs", {"data": MNIST, "pairs": [[0, 1]], "lmc": {"points": 11, "test": True},
                               "cka": {"samples": 2000}})
    assert 50 < pairs < retrain  # LMC + CKA of a pair: forward passes, cheaper than a retrain


def job(work, state, ended=None, started=None, progress=None):
    return {"work": work, "state": state, "ended": ended, "started": started, "progress": progress}


def test_estimating_before_ten_percent_then_rate_times_work_left():
    # 100 s into a run: 5 of 100 units done -> estimating
    early = estimate([job(5, "done", 90, 0), job(95, "queued")], started=0, now=100)
    assert early.seconds is None and early.text == "estimating" and early.fraction == pytest.approx(0.05)
    # a steady 1 unit/s: 20 done in 20 s, 80 left -> 80 s
    jobs = [job(1, "done", ended=k + 1, started=k) for k in range(20)] + [job(1, "queued")] * 80
    e = estimate(jobs, started=0, now=20)
    assert e.fraction == pytest.approx(0.2) and e.seconds == pytest.approx(80, rel=0.01)
    # a running group's progress counts (half of 40 units done over the last 20 s)
    e = estimate([job(20, "done", 10, 0), job(40, "running", progress={"done": 50, "total": 100,
                                                                       "started": 10}),
                  job(40, "queued")], started=0, now=30)
    assert e.fraction == pytest.approx(0.4)
    # window = the last 15 s: 15 of the group's 20 units fall in it (spread over its 20 s) -> 1/s
    assert e.seconds == pytest.approx(60, rel=0.01)
    done = estimate([job(3, "done", 5, 0)], started=0, now=6)
    assert done.fraction == 1.0 and done.text == "done"


def test_work_done_before_the_run_is_not_throughput():
    # 90 units done yesterday; this run did 5 of the last 10 in 50 s -> 5 left at 0.1/s
    jobs = [job(90, "done", ended=-1000, started=-2000), job(5, "done", ended=50, started=0),
            job(5, "queued")]
    e = estimate(jobs, started=0, now=50)
    assert e.fraction == pytest.approx(0.95) and e.seconds == pytest.approx(50, rel=0.01)


def test_the_rate_follows_a_faster_later_phase():
    # slow phase: 10 units over 100 s, then fast: 100 units in the last 20 s; 100 units left
    jobs = [job(10, "done", ended=100, started=0), job(100, "done", ended=120, started=100),
            job(100, "queued")]
    e = estimate(jobs, started=0, now=120)
    whole_run = 100 / (110 / 120)  # what a whole-run average would say: ~109 s
    # window = the last 60 s: 4 units of the slow job (its last 40 of 100 s) + the fast 100
    assert e.seconds < whole_run / 1.8 and e.seconds == pytest.approx(100 / (104 / 60), rel=0.01)


def test_recorded_quickstart_trace_is_within_a_factor_of_two_after_ten_percent():
    """A real quickstart run (recorded with benchmarks/eta_trace.py under the heavy-work lock)."""
    trace = json.loads(TRACE.read_text())
    assert trace["state"] == "done" and len(trace["jobs"]) == 162
    rows = replay(trace)
    before = [eta for fraction, eta, _ in rows if fraction < MIN_FRACTION]
    assert before and all(eta is None for eta in before)
    after = [(f, eta, truth) for f, eta, truth in rows if f >= MIN_FRACTION and truth > 10]
    assert len(after) > 100
    for fraction, eta, truth in after:
        assert eta is not None and 0.5 <= eta / truth <= 2.0, (fraction, eta, truth)
    marks = {round(r["mark"], 2): r["ratio"] for r in score(trace)}
    assert set(marks) >= {0.1, 0.25, 0.5}


def test_logs_stream_while_the_run_runs_and_the_snapshot_has_a_model_step_eta(tmp_path, tiny_recipe):
    # dense and retrain jobs long enough (seconds each, even on a fast quiet CPU) that the
    # twice-a-second display sees each of them running
    tiny_recipe.write_text(tiny_recipe.read_text().replace("dense: {epochs: 2,", "dense: {epochs: 300,")
                           .replace("values: [1, 2]", "values: [150, 300]")
                           .replace("retrain: {epochs: 1,", "retrain: {epochs: 40,"))
    svc = Service(tmp_path / "store")
    seen: list[dict] = []

    def display(snap: dict) -> None:
        if snap["counts"].get("running"):
            seen.append({"run_log": svc.runs.logs(tiny_recipe), "eta": snap["eta"]})
            hashes = [g["hashes"][0] for g in snap["running"]]
            if hashes:
                seen[-1]["job_log"] = svc.runs.logs(tiny_recipe, job=hashes[0])

    summary = svc.runs.run(tiny_recipe, progress=display)
    assert summary["state"] == "done" and seen
    assert all("of tiny: 17 jobs" in s["run_log"] for s in seen)  # written when the run began
    assert any("start retrain x" in s["run_log"] for s in seen)
    assert any("started on cpu" in s.get("job_log", "") for s in seen)
    fractions = [s["eta"]["fraction"] for s in seen]
    assert fractions == sorted(fractions) and 0 <= fractions[0] < 1
    run_log = svc.runs.logs(tiny_recipe)
    assert f"run {summary['run_id']}: done" in run_log and "done pairs" in run_log
    retrain = next(j for j in svc.runs.status(tiny_recipe)["jobs"] if j["kind"] == "retrain")
    job_log = svc.runs.logs(tiny_recipe, job=retrain["hash"])
    assert re.search(r"\d\d:\d\d:\d\d epoch 1: train loss \d\.\d{4} err \d\.\d{4}, test loss \d\.\d{4} err \d\.\d{4}\n", job_log)
    assert retrain["work"] == pytest.approx(2 + 40 * (400 // 50))  # 40 epochs of 400 samples, batch 50
