"""Run a recipe's plan: pick the executor, record the recipe, drive the Runner; and the process
entry point of a detached run, `python -m tprm.engine.launch RECIPE --store DIR --log FILE ...`
(started by `start_detached` in its own session, so it survives the terminal and the SSH link).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from tprm.engine import detached, rundir
from tprm.engine.inputerrors import first_line, input_errors
from tprm.engine.modelimport import code_bundle, import_roots, search_path
from tprm.engine.plan import Plan
from tprm.engine.planner import Planner
from tprm.engine.store import Store


def executor_for(recipe, device: str, jobs: int | None, backend: str | None = None,
                 address: str | None = None):
    """None for the local backend; a RayExecutor for ray (BackendError when Ray is missing)."""
    ex = recipe.execution
    if (backend or ("ray" if address else ex.backend)) != "ray":
        return None
    from tprm.engine.executors.ray import RayExecutor, RaySettings

    settings = {f: getattr(ex.ray, f) for f in ("address", "cpus_per_group", "gpus_per_group",
                                                "max_retries", "max_groups", "ship_code")}
    if address is not None:
        settings["address"] = address
    return RayExecutor(RaySettings(**settings), device=device, jobs=jobs, code=code_bundle(recipe))


def run_recipe(store: Store, planner: Planner, recipe, owner, owner_path: str | None, *, device: str | None = None,
             jobs: int | None = None, progress: Callable[[dict], None] | None = None,
             log_path: str | None = None, backend: str | None = None,
             address: str | None = None, select: Callable[[Plan], Plan] | None = None) -> dict:
    """Run `recipe`'s plan (downloading its data if the recipe allows), recorded as part of
    `owner`: the recipe itself, or the full recipe a case study measures a sub-grid of (read from
    `owner_path` when given); `select` narrows the plan to the jobs to run (an exploration's
    cells: engine/cellplan.py). Returns the run summary as a dict."""
    from tprm.engine.installhint import check_extras
    from tprm.engine.runner import Runner

    check_extras(recipe)  # every way in (CLI, TUI, case studies, detached): a missing extra, one line
    ex = recipe.execution
    executor = executor_for(recipe, device or ex.device, jobs, backend, address)
    plan = planner.plan(recipe, download=True)
    assert plan is not None  # the identity is computed (or read) when asked to
    if select is not None:
        plan = select(plan)
    if executor is not None:
        executor.connect()  # the cluster is unreachable or too small: BackendError
    store.put_recipe(owner.name, owner.hash, owner_path,
                     Path(owner_path).read_text() if owner_path else owner.to_yaml())
    roots = import_roots(recipe)
    runner = Runner(store, plan, owner.name, owner.hash,
                    replace(ex, device=device or ex.device, jobs=jobs or ex.jobs),
                    log_path=log_path, display=progress,
                    runtime={"init_path": recipe.dense.init, "import_paths": roots}, executor=executor)
    try:
        with search_path(roots):  # this process too builds the model (sizing fused groups)
            summary = runner.run()
    finally:
        if executor is not None:
            executor.close()
    return {"run_id": summary.run_id, "state": summary.state, "counts": summary.counts,
            "executed": summary.executed, "failed": summary.failed,
            "diverged": summary.diverged, "exit_code": summary.exit_code,
            "elapsed_s": round(summary.elapsed_s, 1)}


def summary_lines(summary: dict) -> tuple[str, list[str]]:
    """A run summary as text: the result line, and the failure / divergence lines (for stderr)."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items()))
    head = f"run {summary['run_id']}: {summary['state']} ({counts}; executed {summary['executed']})"
    if summary.get("elapsed_s") is not None:
        head += f" in {summary['elapsed_s']:.1f} s"
    notes = [f"  failed: {f['label']}: {f['error']}" for f in summary["failed"][:10]]
    diverged, skipped = summary.get("diverged") or [], summary["counts"].get("skipped", 0)
    if diverged or skipped:
        labels = ", ".join(d["label"] for d in diverged[:5]) + (", ..." if len(diverged) > 5 else "")
        notes.append(f"warning: {summary['counts'].get('diverged', len(diverged))} job(s) diverged "
                     f"(non-finite loss: too hot){': ' + labels if labels else ''}; {skipped} "
                     "dependent job(s) skipped; their cells show x (diverged)")
    return head, notes


def start_detached(store_dir: Path, recipe_path: str, recipe_name: str, device: str | None = None,
                   jobs: int | None = None, backend: str | None = None,
                   address: str | None = None) -> dict:
    """Start this module's `main` detached (tprm.engine.detached); {"pid", "log", "recipe"}."""
    log = rundir.detached_log_path(store_dir, recipe_name)
    args = [str(Path(recipe_path).resolve()), "--store", str(store_dir), "--log", str(log)]
    for flag, value in (("--device", device), ("--jobs", jobs), ("--backend", backend),
                        ("--address", address)):
        if value:
            args += [flag, str(value)]
    proc = detached.start_process("tprm.engine.launch", args, log)
    return {"pid": proc.pid, "log": str(log), "recipe": recipe_name}


def main(argv: list[str]) -> int:
    """A detached run: one-line errors (exit 2 bad input, 1 failed run), the summary at the end."""
    from tprm.engine.recipe import load_recipe

    p = argparse.ArgumentParser(prog="python -m tprm.engine.launch")
    p.add_argument("recipe")
    p.add_argument("--store", required=True)
    p.add_argument("--log")
    p.add_argument("--device")
    p.add_argument("--jobs", type=int)
    p.add_argument("--backend")
    p.add_argument("--address")
    a = p.parse_args(argv)
    try:
        recipe = load_recipe(a.recipe)
        store = Store(Path(a.store))
        summary = run_recipe(store, Planner(store.root), recipe, recipe, a.recipe, device=a.device,
                           jobs=a.jobs, log_path=a.log, backend=a.backend, address=a.address)
    except input_errors() as exc:
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    head, notes = summary_lines(summary)
    print(head)
    for line in notes:
        print(line, file=sys.stderr)
    return summary["exit_code"]


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
