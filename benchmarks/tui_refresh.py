"""How long one refresh of the TUI's run monitor and results screen takes on a 5,000-job store.

Builds a store through the real engine/service APIs (plan, add_jobs, claim, finish_many: the
same calls a runner makes, with synthetic result numbers instead of training), then times

  monitor  one poll of the Runs screen: svc.runs.status + svc.runs.logs (its data path) and the job rows,
           then filling the job table in a headless app (first fill and a steady-state update);
  results  the Results screen: svc.results.table + the normalized-error grid, filter/sort and
           cell formatting, then filling its table;

against a baseline measured in the same run: a bare json.load of the store's db file (the
least any refresh that reads the store must pay). Target: a steady-state refresh < 200 ms.

    python benchmarks/tui_refresh.py [--jobs-per-cell 5] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tprm.service import Service  # noqa: E402
from tprm.tui.app import TprmApp  # noqa: E402
from tprm.tui.screens.results import ResultsScreen, fetch_results  # noqa: E402
from tprm.tui.screens.runs import RunsScreen  # noqa: E402
from tprm.tui.viewmodel import display_cells, filter_rows, job_rows, overall_progress, sort_rows  # noqa: E402

# 20 temperatures x 10 densities x 5 dense seeds = 1,000 cells; with 3 retrain seeds that is
# 5 dense + 1,000 prune + 3,000 retrain + 1,000 pairs = 5,005 jobs.
RECIPE = """\
name: bench
dataset: {name: mnist1d, num_samples: 400}
model: {name: conv1d, kwargs: {widths: [8, 8, 8]}}
dense: {epochs: 20, batch_size: 64, lr: 0.05, checkpoint_every: 1}
temperature: {knob: epochs, values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}
densities: [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
retrain: {epochs: 1, batch_size: 64, lr: 0.05, seeds: [0, 1, 2], last_epochs: 1}
dense_seeds: [0, 1, 2, 3, 4]
execution: {device: cpu}
"""


def fake_result(kind: str, rng: random.Random, epochs: int) -> dict:
    """Numbers shaped like a runner's results for a job of this kind."""
    if kind == "dense":
        return {"checkpoints": {str(e): {"test_error": rng.uniform(0.1, 0.9), "test_loss": rng.uniform(0.3, 2),
                                         "train_loss": rng.uniform(0.1, 2), "train_error": rng.uniform(0, 0.9)}
                                for e in range(1, epochs + 1)}}
    if kind == "prune":
        return {"pruned_layers": 0.2, "whole_model": 0.5, "kept": 100, "pruned_total": 400, "model_total": 500}
    if kind == "retrain":
        err = rng.uniform(0.1, 0.6)
        return {"test_error": err, "test_loss": rng.uniform(0.3, 2), "train_loss": rng.uniform(0.1, 1.5),
                "train_error": rng.uniform(0, 0.5), "final_test_error": err, "diverged_at": None}
    mc = rng.uniform(-0.4, 0.05)
    cka = rng.uniform(0.8, 1.0)
    return {"mc": mc, "mc_pairs": [mc] * 3, "mc_loss": mc * 2, "endpoint_gap": rng.uniform(0, 0.1),
            "cka": cka, "cka_pairs": [cka] * 3, "cka_logits": cka}


def build_store(root: Path, done_fraction: float = 0.9, running: int = 8) -> tuple[Service, str, int]:
    """A store holding the bench recipe's plan: most jobs done, a few running under a live run."""
    recipes = root / "store" / "recipes"
    recipes.mkdir(parents=True)
    (recipes / "bench.yaml").write_text(RECIPE)
    svc = Service(root / "store")
    recipe = svc.recipes.resolve("bench")
    plan = svc.recipes.plan(recipe)
    store = svc.workspace.store
    store.put_recipe(recipe.name, recipe.hash, str(recipes / "bench.yaml"), RECIPE)
    jobs = list(plan.ordered())
    store.add_jobs([{k: v for k, v in j.record().items() if k != "spec"} for j in jobs], recipe.hash)  # as the runner does
    run_id = store.start_run(recipe.name, recipe.hash, os.getpid(), socket.gethostname(), None)
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id}
    n_done = int(len(jobs) * done_fraction)
    rng = random.Random(0)
    finished = [j.hash for j in jobs[:n_done]]
    store.claim(finished, owner, 3600)
    store.finish_many([{"hash": j.hash, "owner": owner, "state": "done",
                        "result": fake_result(j.kind, rng, recipe.recipe.dense.epochs)} for j in jobs[:n_done]])
    store.claim([j.hash for j in jobs[n_done:n_done + running]], owner, 3600)
    store.heartbeat([j.hash for j in jobs[n_done:n_done + running]], owner, 3600)
    return svc, recipe.name, len(jobs)


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median wall time (ms) of `repeat` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def monitor_data(svc: Service, recipe: str, job: str | None) -> tuple:
    """One poll when the selected job's log can have changed (it is running): status + log + rows."""
    status = svc.runs.status(recipe)
    log = svc.runs.logs(recipe, job=job)
    return job_rows(status["jobs"]), overall_progress(status), log


def results_data(svc: Service, recipe: str) -> list:
    rows, _ = fetch_results(svc, recipe)
    return view_share(rows)


def view_share(rows: list) -> list:
    """The TUI's own part of a results refresh, on rows the service already built: filter, sort, cells."""
    return [display_cells(r) for r in sort_rows(filter_rows(rows, "density<0.5"), "test_error")]


async def table_timings(svc: Service, recipe: str, repeat: int) -> dict[str, float]:
    """Fill the real screens' tables in a headless app: first fill and steady-state update."""
    app = TprmApp(service=svc, poll_interval=3600)
    app.recipe = recipe
    out: dict[str, float] = {}
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.app.workers.wait_for_complete()
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        status = svc.runs.status(recipe)
        log = svc.runs.logs(recipe)
        runs._rows.clear()
        t0 = time.perf_counter()
        runs._apply(recipe, status, log)
        out["monitor table, first fill"] = (time.perf_counter() - t0) * 1000
        out["monitor table, update"], _ = timed(lambda: runs._apply(recipe, status, None), repeat)
        await pilot.press("3")
        await pilot.app.workers.wait_for_complete()
        results = app.screen
        assert isinstance(results, ResultsScreen)
        data = fetch_results(svc, recipe)

        def fill() -> None:
            results._loaded(data)

        out["results table fill"], _ = timed(fill, repeat)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (median reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        svc, recipe, n_jobs = build_store(Path(tmp))
        print(f"store: {n_jobs} jobs, built in {time.perf_counter() - t0:.1f}s "
              f"({(svc.store_dir / 'tprm.db.json').stat().st_size / 1e6:.1f} MB db)")
        db = svc.store_dir / "tprm.db.json"
        baseline, _ = timed(lambda: json.loads(db.read_text()), args.repeat)
        status = svc.runs.status(recipe)
        running = next(j["hash"] for j in status["jobs"] if j["state"] == "running")
        monitor, _ = timed(lambda: monitor_data(svc, recipe, running), args.repeat)
        status_only, _ = timed(lambda: svc.runs.status(recipe), args.repeat)
        results, cells = timed(lambda: results_data(svc, recipe), args.repeat)
        rows = svc.results.rows(recipe)["rows"]
        own, _ = timed(lambda: (job_rows(status["jobs"]), view_share(rows)), args.repeat)
        tables = asyncio.run(table_timings(svc, recipe, args.repeat))
        print(f"{'baseline: json.load of the db file':<44} {baseline:8.1f} ms   1.0x")
        rows = [("svc.runs.status alone", status_only),
                ("monitor data path (status + logs + rows)", monitor),
                ("results data path (results + grid + rows)", results),
                ("TUI's own share (job rows, filter, sort, cells)", own),
                *tables.items(),
                ("monitor refresh = data + table update", monitor + tables["monitor table, update"]),
                ("results refresh = data + table fill", results + tables["results table fill"])]
        for name, ms in rows:
            print(f"{name:<44} {ms:8.1f} ms {ms / baseline:6.1f}x")
        worst = max(monitor + tables["monitor table, update"], results + tables["results table fill"])
        print(f"steady-state refresh: worst {worst:.0f} ms (target < 200 ms): {'OK' if worst < 200 else 'SLOW'}")
        print(f"({len(cells)} result rows shown after the filter)")


if __name__ == "__main__":
    main()
