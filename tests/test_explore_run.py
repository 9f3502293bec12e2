"""Exploration on real runs: the cells' sub-plan (same job hashes as the full plan), a tiny real
exploration that survives kill -9 and continues, and a later full run that reuses its jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tprm.engine.cellplan import cell_subplan
from tprm.engine.plan import build_plan
from tprm.engine.recipe import parse_recipe

ROOT = Path(__file__).resolve().parent.parent

EXPLORE_RECIPE = """\
name: tiny-explore
description: a seconds-long 3 x 3 lattice for exploration tests
dataset: {name: mnist1d, seed: 3, num_samples: 400}
model: {name: conv1d, kwargs: {widths: [6, 6, 6]}}
dense: {epochs: 3, batch_size: 50, lr: 0.05, checkpoint_every: 1}
temperature: {knob: epochs, values: [1, 2, 3]}
densities: [0.1, 0.4, 0.8]
retrain: {epochs: 1, batch_size: 50, lr: 0.05, seeds: [0, 1], last_epochs: 1}
dense_seeds: [0]
metrics: {lmc: {points: 3}, cka: {samples: 100}}
execution: {device: cpu, threads: 1}
"""


def test_cell_subplan_keeps_the_full_plans_jobs():
    recipe = parse_recipe(EXPLORE_RECIPE.replace("knob: epochs", "knob: lr").replace(
        "values: [1, 2, 3]", "values: [0.01, 0.05, 0.1]"), "x.yaml")
    plan = build_plan(recipe, {"identity": "test"})
    sub = cell_subplan(plan, [(0.05, 0.4), (0.1, 0.8)])
    assert {(c.temperature, c.density) for c in sub.cells} == {(0.05, 0.4), (0.1, 0.8)}
    assert all(plan.jobs[h] is job for h, job in sub.jobs.items())
    assert all(d in sub.jobs for job in sub.jobs.values() for d in job.deps)  # closed under deps
    kinds = [job.kind for job in sub.ordered()]
    assert kinds.count("dense") == 2 and kinds.count("prune") == 2 and kinds.count("retrain") == 4
    assert kinds == sorted(kinds, key=["dense", "prune", "retrain", "pairs", "hessian"].index)
    with pytest.raises(ValueError, match=r"cell \(temperature 0.2, density 0.4\) is not on the recipe's grid"):
        cell_subplan(plan, [(0.2, 0.4)])
    epochs = build_plan(parse_recipe(EXPLORE_RECIPE, "x.yaml"), {"identity": "test"})
    one = cell_subplan(epochs, [(2, 0.4)])
    assert [j.kind for j in one.ordered()] == ["dense", "prune", "retrain", "retrain", "pairs"]


def _jobs(store: Path) -> dict:
    return json.loads((store / "tprm.db.json").read_text()).get("jobs", {})


def _explore_script(store: Path, recipe: Path, budget: str) -> list[str]:
    code = ("import json, sys; from tprm.service import Service; "
            f"r = Service({str(store)!r}).explore.run({str(recipe)!r}, {budget!r}, round_size=2); "
            "print(json.dumps({k: r[k] for k in ('measured_cells', 'jobs_executed', 'stop', 'rounds')}))")
    return [sys.executable, "-c", code]


def test_tiny_exploration_resumes_after_kill_and_a_full_run_reuses_it(tmp_path):
    recipe = tmp_path / "tiny-explore.yaml"
    recipe.write_text(EXPLORE_RECIPE)
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(_explore_script(store, recipe, "6"), env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # kill -9 once a retraining is done
        if (store / "tprm.db.json").exists() and any(
                j.get("kind") == "retrain" and j.get("state") == "done" for j in _jobs(store).values()):
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the exploration ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = {h for h, j in _jobs(store).items() if j.get("state") == "done"}
    assert done_at_kill

    rerun = subprocess.run(_explore_script(store, recipe, "6"), env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    first = json.loads(rerun.stdout)
    assert first["measured_cells"] == 6 and first["stop"] == "budget" and first["jobs_executed"] > 0
    jobs = _jobs(store)
    assert all(jobs[h].get("attempts") == 1 for h in done_at_kill)  # finished work is never redone
    explored = {h: j.get("attempts") for h, j in jobs.items() if j.get("state") == "done"}

    again = subprocess.run(_explore_script(store, recipe, "6"), env=env, capture_output=True, text=True, timeout=120)
    replay = json.loads(again.stdout)
    assert replay["jobs_executed"] == 0 and replay["rounds"] == first["rounds"]  # same results, same choices

    from tprm.service import Service

    svc = Service(store)
    full = svc.runs.run(str(recipe))
    total = len(svc.recipes.plan(str(recipe)).jobs)
    assert full["state"] == "done" and full["executed"] == total - len(explored)
    after = _jobs(store)
    assert all(after[h].get("attempts") == n for h, n in explored.items())  # the full run reran none


def test_a_bad_budget_is_one_line_and_leaves_the_store_untouched(tmp_path):
    from tprm.service import BadInput, Service

    recipe = tmp_path / "tiny-explore.yaml"
    recipe.write_text(EXPLORE_RECIPE)
    store = tmp_path / "store"
    with pytest.raises(BadInput) as exc:
        Service(store).explore.run(str(recipe), "lots")
    assert str(exc.value) == ("--budget: 'lots' is not valid; use a number of cells (20), retrainings (60r) "
                              "or a percentage of the cells (30%)")
    assert not (store / "tprm.db.json").exists()


@pytest.mark.parametrize("budget, valid", [("lots", "a number of cells (20)"), ("150%", "(0, 100]"),
                                           ("0", "at least 1")])
def test_cli_bad_budget_exits_2_with_one_line(tmp_path, budget, valid):
    recipe = tmp_path / "tiny-explore.yaml"
    recipe.write_text(EXPLORE_RECIPE)
    store = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-m", "tprm", "explore", str(recipe), "--store", str(store),
                           "--budget", budget], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"error: --budget: '{budget}' is not valid") and valid in lines[0]
    assert not (store / "tprm.db.json").exists()
