"""The runner on real TinyDB stores, real training and real processes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tprm.engine.artifacts import Artifacts
from tprm.engine.store import Store
from tprm.service import Service

from conftest import TINY_RECIPE, run_tprm, tprm_cmd


def done_lines(store: Path, svc: Service, recipe) -> dict[str, int]:
    """How many times each job of the recipe was recorded done (from its job log)."""
    arts = Artifacts(store)
    counts = {}
    for h, job in svc.recipes.plan(recipe).jobs.items():
        log = arts.log_path(h)
        text = log.read_text() if log.exists() else ""
        counts[h] = sum(1 for line in text.splitlines() if line.endswith(": done"))
    return counts


def test_run_then_rerun_does_no_work(tiny_recipe, store_dir):
    svc = Service(store_dir)
    first = svc.runs.run(tiny_recipe)
    assert first["state"] == "done" and first["exit_code"] == 0
    assert first["executed"] == 17
    again = svc.runs.run(tiny_recipe)
    assert again["executed"] == 0 and again["state"] == "done"
    rows = svc.results.cells(tiny_recipe)
    assert len(rows) == 4 and all(r["state"] == "done" for r in rows)
    for r in rows:
        assert 0.0 <= r["test_error"] <= 1.0 and r["mc"] <= 1e-9 + 1.0
        assert r["dense_test_error"] is not None and 0 <= r["cka"] <= 1 + 1e-9


def test_adding_a_density_runs_only_the_new_jobs(tiny_recipe, store_dir):
    svc = Service(store_dir)
    svc.runs.run(tiny_recipe)
    tiny_recipe.write_text(TINY_RECIPE.replace("densities: [0.2, 0.8]", "densities: [0.2, 0.5, 0.8]"))
    more = svc.runs.run(tiny_recipe)
    assert more["executed"] == 2 * 4  # per temperature: prune + 2 retrains + pairs


def test_same_job_twice_gives_identical_weights(tiny_recipe, tmp_path):
    stores = [tmp_path / "a", tmp_path / "b"]
    for s in stores:
        Service(s).runs.run(tiny_recipe)
    plan = Service(stores[0]).recipes.plan(tiny_recipe)
    for h, job in plan.jobs.items():
        if job.kind != "retrain":
            continue
        a, b = (Artifacts(s).load(h, "model") for s in stores)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_failed_job_is_recorded_and_the_rest_still_runs(tmp_path, store_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    path = tmp_path / "flaky.yaml"
    path.write_text(TINY_RECIPE.replace("name: tiny", "name: flaky")
                    .replace("model: {name: conv1d, kwargs: {widths: [8, 8, 8]}}",
                             "model: {import: 'factories:flaky_factory', kwargs: {broken_seed: 1}}")
                    .replace("dense_seeds: [0]", "dense_seeds: [0, 1]"))
    svc = Service(store_dir)
    summary = svc.runs.run(path)
    assert summary["exit_code"] == 1 and summary["state"] == "failed"
    assert summary["counts"]["failed"] == 1
    assert summary["counts"]["done"] == 17  # seed 0's whole chain
    status = svc.runs.status(path)
    failed = [j for j in status["jobs"] if j["state"] == "failed"]
    assert len(failed) == 1 and "broken on purpose" in failed[0]["error"]
    log = Artifacts(store_dir).log_path(failed[0]["hash"]).read_text()
    assert "Traceback" in log
    again = svc.runs.run(path)  # a new run retries a failed job once (it fails again) and redoes nothing else
    assert again["executed"] == 0 and len(again["failed"]) == 1 and again["exit_code"] == 1
    log = Artifacts(store_dir).log_path(failed[0]["hash"]).read_text()
    assert sum(line.endswith(": failed") for line in log.splitlines()) == 2


def _spawn_run(recipe: Path, store: Path) -> subprocess.Popen:
    return subprocess.Popen(tprm_cmd("run", str(recipe), "--store", str(store)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(tiny_recipe, store_dir):
    rng = random.Random(7)
    svc = Service(store_dir)
    at_kills = []  # (jobs recorded done, done lines per job) right after each kill
    for _ in range(3):
        proc = _spawn_run(tiny_recipe, store_dir)
        time.sleep(rng.uniform(2.5, 7.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        jobs = Store(store_dir).get_jobs() if (store_dir / "tprm.db.json").exists() else {}
        at_kills.append(({h for h, j in jobs.items() if j["state"] == "done"},
                         done_lines(store_dir, svc, tiny_recipe)))
    final = run_tprm("run", str(tiny_recipe), "--store", str(store_dir))
    assert final.returncode == 0, final.stderr[-2000:]
    json.loads((store_dir / "tprm.db.json").read_text())  # the db parses
    counts = done_lines(store_dir, svc, tiny_recipe)
    assert min(counts.values()) == 1, counts  # every job done and logged
    for done, lines in at_kills:  # a recorded job never runs again; one logged but not recorded may
        assert all(counts[h] == lines[h] for h in done), counts
    logged_unrecorded = {h for done, lines in at_kills for h in lines if lines[h] and h not in done}
    assert all(counts[h] == 1 or h in logged_unrecorded for h in counts), counts
    arts = Artifacts(store_dir)
    for h, job in svc.recipes.plan(tiny_recipe).jobs.items():  # no artifact truncated
        name = {"dense": "checkpoints", "prune": "pruned", "retrain": "model", "pairs": "lmc"}[job.kind]
        arts.load(h, name)


@pytest.mark.slow
def test_two_runners_on_one_store_do_every_job_once(tiny_recipe, store_dir):
    procs = [_spawn_run(tiny_recipe, store_dir) for _ in range(2)]
    codes = [p.wait(timeout=300) for p in procs]
    assert codes == [0, 0]
    svc = Service(store_dir)
    counts = done_lines(store_dir, svc, tiny_recipe)
    assert set(counts.values()) == {1}, counts


@pytest.mark.slow
def test_status_json_polled_while_a_run_writes(tiny_recipe, store_dir):
    proc = _spawn_run(tiny_recipe, store_dir)
    polls = 0
    try:
        while proc.poll() is None:
            r = run_tprm("status", "--json", "--store", str(store_dir))
            assert r.returncode == 0, r.stderr
            json.loads(r.stdout)
            polls += 1
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0 and polls >= 2
    s = json.loads(run_tprm("status", "--json", "--store", str(store_dir)).stdout)
    assert s["recipes"]["tiny"]["counts"] == {"done": 17}


def _wait_for(predicate, timeout=120.0, every=0.3):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(every)
    return False


@pytest.mark.slow
def test_cancel_stops_cleanly_and_resume_finishes(tmp_path, store_dir):
    slow = tmp_path / "slow.yaml"
    slow.write_text(TINY_RECIPE.replace("name: tiny", "name: slow")
                    .replace("retrain: {epochs: 1,", "retrain: {epochs: 40,"))
    proc = subprocess.Popen(tprm_cmd("run", str(slow), "--store", str(store_dir)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    svc = Service(store_dir)
    assert _wait_for(lambda: any(j["kind"] == "retrain" and j["state"] == "running"
                                 for j in svc.runs.status(slow)["jobs"]))
    r = run_tprm("cancel", str(slow), "--store", str(store_dir))
    assert r.returncode == 0 and "1 running run" in r.stdout
    assert proc.wait(timeout=120) == 1
    status = svc.runs.status(slow)
    states = {j["state"] for j in status["jobs"]}
    assert "cancelled" in states and "running" not in states
    assert status["runs"][-1]["state"] == "cancelled"
    assert svc.runs.run(slow)["state"] == "done"


@pytest.mark.slow
def test_detached_run_outlives_its_caller(tiny_recipe, store_dir):
    r = run_tprm("run", str(tiny_recipe), "--detach", "--store", str(store_dir))
    assert r.returncode == 0 and "log:" in r.stdout
    log = Path(r.stdout.split("log:")[1].split()[0])
    svc = Service(store_dir)
    assert _wait_for(lambda: svc.runs.status(tiny_recipe)["recipes"].get("tiny", {}).get("counts") == {"done": 17},
                     timeout=240)
    # the detached process ends by writing its summary to its log
    assert _wait_for(lambda: log.exists() and ": done (done 17" in log.read_text(), timeout=60)


@pytest.mark.slow
def test_spawned_workers_run_the_recipe(tiny_recipe, store_dir):
    r = run_tprm("run", str(tiny_recipe), "--jobs", "2", "--store", str(store_dir))
    assert r.returncode == 0, r.stderr[-2000:]
    svc = Service(store_dir)
    assert all(c["state"] == "done" for c in svc.results.cells(tiny_recipe))
    provs = [j.get("provenance") or {} for j in Store(store_dir).get_jobs().values()]
    assert all(p.get("torch") == torch.__version__ and "host" in p for p in provs)
    dense = [j["provenance"] for j in Store(store_dir).get_jobs().values() if j["kind"] == "dense"]
    assert dense[0]["seeds"]["init"] == 0 and dense[0]["seeds"]["order"] != dense[0]["seeds"]["augment"]


def test_export_then_import_into_a_fresh_store(tiny_recipe, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    Service(a).runs.run(tiny_recipe)
    bundle = tmp_path / "tiny.tar.gz"
    assert run_tprm("export", str(tiny_recipe), str(bundle), "--store", str(a)).returncode == 0
    r = run_tprm("import", str(bundle), "--store", str(b))
    assert r.returncode == 0, r.stderr
    assert Service(b).runs.run(tiny_recipe)["executed"] == 0  # everything arrived
    assert Service(b).results.cells(tiny_recipe) == Service(a).results.cells(tiny_recipe)


def test_hessian_metrics_when_enabled(tmp_path, store_dir):
    path = tmp_path / "hess.yaml"
    path.write_text(TINY_RECIPE.replace("name: tiny", "name: hess").replace(
        "metrics: {lmc: {points: 5}, cka: {samples: 200}}",
        "metrics: {lmc: {points: 3}, cka: {samples: 100}, "
        "hessian: {enabled: true, samples: 64, probes: 4, power_iters: 3}}"))
    svc = Service(store_dir)
    summary = svc.runs.run(path)
    assert summary["state"] == "done" and summary["counts"]["done"] == 17 + 8
    rows = svc.results.cells(path)
    assert all(r["hessian_trace"] is not None and r["hessian_top"] is not None for r in rows)
    grid = svc.results.grid(path, "hessian_top")
    assert all(v is not None for row in grid.mean for v in row)


def test_an_outcome_another_runner_took_over_is_noted_and_progress_stays_until_recorded(tiny_recipe, store_dir):
    from tprm.engine import rundir
    from tprm.engine.runner import Runner, RunSummary

    plan = Service(store_dir).recipes.plan(tiny_recipe)
    store = Store(store_dir)
    job = plan.ordered()[0]
    store.add_jobs([{k: v for k, v in job.record().items() if k != "spec"}], "r" * 32)
    first, second = ({"pid": 1, "host": "elsewhere", "run_id": run} for run in ("a", "b"))
    assert store.claim([job.hash], first, lease_s=0.05) == [job.hash]
    time.sleep(0.1)  # the first runner's lease lapses and a second runner takes the job over
    assert store.claim([job.hash], second, lease_s=60) == [job.hash]
    runner, summary = Runner(store, plan, "tiny", "r" * 32), RunSummary("a", "done")
    progress = rundir.progress_file(store_dir / "progress", job.hash)
    progress.parent.mkdir()
    outcome = [{"state": "done", "result": {"test_err": 0.5}}]

    for owner in (first, second):
        rundir.write_progress(progress, {"hashes": [job.hash], "done": 3, "total": 4})
        runner._record_group([job], outcome, owner, summary, progress.parent)
        assert not progress.exists()
    log = Artifacts(store_dir).log_path(job.hash).read_text().splitlines()
    assert log[0].endswith(": done") and log[2] == "  not recorded: another runner holds this job"
    assert log[3].endswith(": done") and summary.executed == 1  # only the holder's outcome counts
    assert store.get_jobs([job.hash])[job.hash]["owner"]["run_id"] == "b"
    assert store.get_jobs([job.hash])[job.hash]["state"] == "done"
