"""Run recipes/cifar10-preresnet20-gpu.yaml on one device and print its regime map and case study 1.

    python benchmarks/gpu_case_studies.py [--device cuda] [--store DIR] [--cifar10-dir DIR] [--tiny]

Data: the store's data folder is used when it holds CIFAR-10; else --cifar10-dir (a folder holding
cifar-10-batches-py) is copied in; else FAKE full-size CIFAR-10-format data (50,000/10,000 random
images, from tests/fakedata.py) is written and every result is labelled FAKE (timing only: the maps
of random images mean nothing). --tiny shrinks the recipe to seconds (CPU check of this code path).
Everything runs through tprm itself (`python -m tprm run / plot / case`). Prints the plan's
model-epochs, the run's wall time, the regime / mc / CKA / normalised-error maps and case study 1's
table.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RECIPE = ROOT / "recipes" / "cifar10-preresnet20-gpu.yaml"
FAKE_MARK = "FAKE-DATA"
# issue 12's GPU figures (one H100/H200), seconds: its targets and what it measured on main before it
TARGET = {"dense_epoch": 4.0, "retrain_model_epoch": 1.0, "pair": 3.0}
MEASURED_BEFORE = {"dense_epoch": 12.6, "retrain_model_epoch": 15.6, "pair": 28.0}

TINY = {  # the shipped-recipe test's shrink: 2 temperatures, 2 densities, 1-epoch retrains, few images
    "temperature": {"values": [1, 2]}, "dense": {"epochs": 2, "checkpoint_every": 1},
    "densities": [0.05, 0.8], "dense_seeds": [0, 1],
    "retrain": {"epochs": 1, "last_epochs": 1, "batch_size": 16},
    "dataset": {"train_subset": 64, "test_subset": 32},
    "metrics": {"cka": {"samples": 32}, "lmc": {"points": 3, "bn_batch_size": 16}},
}


ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def maps(svc, path: Path, metrics: tuple[str, ...]) -> str:
    """The plain-text maps `tprm plot --no-table` prints when piped (in this process: no new torch start-up)."""
    return "\n".join(svc.results.plot(str(path), m, width=80, height=20, table=False, color=False).rstrip() for m in metrics)


def run_with_budget(args: list[str], budget_s: float) -> tuple[int | str, str]:
    """`tprm ARGS` stopped gracefully (SIGINT: the runner cancels, finished jobs stay in the store)
    once ``budget_s`` has passed; returns (exit code or "stopped", the last lines of its output)."""
    with open(os.devnull, "w") as null, subprocess.Popen(
            [sys.executable, "-m", "tprm", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=null, text=True, env=ENV) as proc:
        try:
            out, _ = proc.communicate(timeout=budget_s)
            return proc.returncode, "\n".join(out.strip().splitlines()[-3:])
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            return "stopped", "\n".join((out or "").strip().splitlines()[-3:])


def prepare_data(svc, cifar10_dir: str | None, tiny: bool) -> str:
    """Make sure the store's data folder holds CIFAR-10; returns "real" or "FAKE"."""
    root = svc.admin.data_root()
    if next(row for row in svc.admin.data_list() if row["name"] == "cifar10")["present"]:
        return "FAKE" if (root / FAKE_MARK).exists() else "real"
    if cifar10_dir:
        svc.admin.data_fetch("cifar10", source=cifar10_dir)
        return "real"
    sys.path.insert(0, str(ROOT / "tests"))
    from fakedata import write_fake_cifar10

    n_train, n_test = (64, 32) if tiny else (50_000, 10_000)
    print(f"no CIFAR-10 in {root} and no --cifar10-dir: writing FAKE data ({n_train}/{n_test} random images)")
    write_fake_cifar10(root, n_train=n_train, n_test=n_test)
    (root / FAKE_MARK).write_text("written by benchmarks/gpu_case_studies.py: random images, timing only\n")
    return "FAKE"


def model_epochs(svc, recipe) -> dict:
    """Dense and retraining model-epochs and LMC/CKA pairs of the recipe's plan."""
    plan = svc.recipes.plan(recipe)
    n_train = recipe.dataset.train_subset or 50_000
    out = {"dense": 0.0, "retrain": 0.0, "pairs": 0, "dense_jobs": 0, "retrain_jobs": 0}
    for job in plan.jobs.values():
        if job.kind in ("dense", "retrain"):
            s = job.spec["schedule"]
            epochs = s["epochs"] if s["epochs"] else s["iterations"] * s["batch_size"] / n_train
            out[job.kind] += epochs
            out[f"{job.kind}_jobs"] += 1
        elif job.kind == "pairs":
            out["pairs"] += 1
    return out


def estimate(me: dict, per: dict) -> float:
    """Seconds: dense epochs (one model at a time), retraining model-epochs, pairs."""
    return me["dense"] * per["dense_epoch"] + me["retrain"] * per["retrain_model_epoch"] + me["pairs"] * per["pair"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--store", default=os.environ.get("STORE", "/tmp/tprm-gpu-cases"))
    ap.add_argument("--cifar10-dir", default=os.environ.get("CIFAR10_DIR"))
    ap.add_argument("--tiny", action="store_true", help="shrink the recipe to seconds (CPU check)")
    ap.add_argument("--budget-s", type=float, default=float(os.environ.get("BUDGET_S", 540)),
                    help="stop the run gracefully after this many seconds (it resumes on the next call)")
    a = ap.parse_args(argv)

    from tprm.cli import wrap_lines
    from tprm.service import Service

    store = Path(a.store)
    store.mkdir(parents=True, exist_ok=True)
    svc = Service(store)
    data = prepare_data(svc, a.cifar10_dir, a.tiny)
    recipe = svc.recipes.resolve(str(RECIPE)).recipe
    over = {"execution": {"device": a.device}, "dataset": {"download": False}}
    if a.tiny:
        over = {**TINY, "execution": {"device": a.device}, "dataset": {**TINY["dataset"], "download": False}}
    recipe = recipe.with_overrides(over)
    path = store / "recipes" / f"{recipe.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(recipe.to_yaml())

    me = model_epochs(svc, recipe)
    grid = (f"{len(recipe.temperature.values)} temperatures x {len(recipe.densities)} densities x "
            f"{len(recipe.dense_seeds)} dense seeds x {len(recipe.retrain.seeds)} retrain seeds")
    print(f"recipe {recipe.name}{' (TINY override)' if a.tiny else ''}: {grid}; data: {data}")
    print(f"plan: {me['dense_jobs']} dense jobs = {me['dense']:g} model-epochs, {me['retrain_jobs']} retrainings = "
          f"{me['retrain']:g} model-epochs, {me['pairs']} LMC/CKA pairs")
    if not a.tiny:
        for label, per in (("issue 12 targets", TARGET), ("main before issue 12", MEASURED_BEFORE)):
            print(f"estimate at {label} ({per['dense_epoch']:g} s/dense epoch, {per['retrain_model_epoch']:g} s/"
                  f"retrain model-epoch, {per['pair']:g} s/pair): {estimate(me, per) / 60:.1f} min")

    start = time.time()
    rc, tail = run_with_budget(["run", str(path), "--store", str(store)], a.budget_s)
    wall = time.time() - start
    print(tail)
    if rc == "stopped":
        print(f"\nPARTIAL: stopped after {wall:.0f} s (--budget-s {a.budget_s:g}); finished jobs are kept in "
              f"{store}: run the same command again to resume. Maps of what is done so far:")
        print(maps(svc, path, ("regime",)))
        return 3
    if rc != 0:
        print(f"RUN FAILED (exit {rc}) after {wall:.0f} s")
        return 1
    print(f"\nrun wall time: {wall:.1f} s ({wall / 60:.1f} min) on {a.device}"
          f"{' -- FAKE DATA: timing only, the maps below are of random images' if data == 'FAKE' else ''}")
    print(maps(svc, path, ("regime", "mc", "cka", "normalized_error")))
    print(wrap_lines(svc.cases.direction(str(path), None, None, evaluate=True)["text"].rstrip(), 80))
    print(f"\nsummary: device {a.device}, data {data}, run {wall:.1f} s, "
          f"{me['dense'] + me['retrain']:g} model-epochs, {me['pairs']} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
