"""`tprm status` and `tprm logs`, and what `tprm run` says when it is interrupted: the commands
that tell a user what their runs did (registered on the app by cli.py)."""

from __future__ import annotations

import signal
import sys
import time
from contextlib import contextmanager
from typing import Annotated, Optional

import typer

from tprm.cli_common import JsonOpt, RecipeArg, StoreOpt, err, out
from tprm.cli_common import print_json as _json
from tprm.cli_common import service as _svc

RUNS_PER_RECIPE = 3  # the latest runs `tprm status` lists under each recipe


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl+C would be so the runner stops and records the same way."""


@contextmanager
def interrupt_line(svc, loaded, typed: str):
    """Around a foreground run: Ctrl+C (exit 130) and SIGTERM (exit 143) end it with one line
    saying how much is done and kept and how to resume, instead of a bare "interrupted"."""
    def on_term(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except KeyboardInterrupt as exc:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut this line short
        try:
            kept = svc.recipes.plan_summary(loaded)  # what the store holds now
            err.print(f"interrupted: {kept['done']} of {kept['total']} jobs done and kept; rerun `tprm run {typed}` "
                      "to resume", markup=False)
        except Exception:  # noqa: BLE001 -- the store is unreadable now: still say how to resume
            err.print(f"interrupted; rerun `tprm run {typed}` to resume", markup=False)
        raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _when(run_: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run_.get("started", 0)))
    if run_.get("state") == "running":
        return f"since {started}"
    ended = run_.get("ended")  # finished: say when it ended, not "failed since"
    return (f"at {time.strftime('%Y-%m-%d %H:%M', time.localtime(ended))} (started {started})"
            if isinstance(ended, (int, float)) else f"(started {started})")


def run_line(run_: dict) -> str:
    """One run as a status line: id, state, when, where; case-study runs and the jobs executed."""
    purpose = f" [{run_['purpose']}]" if run_.get("purpose") else ""
    executed = f", executed {run_['executed']}" if isinstance(run_.get("executed"), int) else ""
    return (f"  run {run_.get('run_id')}{purpose}: {run_.get('state')} {_when(run_)} "
            f"(pid {run_.get('pid')} on {run_.get('host')}{executed}){_cluster_text(run_)}")


def _cluster_text(run_: dict) -> str:
    """'; ray: 2 nodes, 8 CPU, 1 GPU' for a run on a Ray cluster, '' for a local one."""
    ray = run_.get("ray") or {}
    if run_.get("backend") != "ray":
        return ""
    res = ray.get("resources") or {}
    return (f"; ray {ray.get('address')}: {len(ray.get('nodes') or [])} node(s), "
            f"{res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU")


def status(recipe: Annotated[Optional[str], typer.Argument(help="Recipe name or path (default: all).")] = None,
           store: StoreOpt = None, as_json: JsonOpt = False):
    """Runs and job states, each recipe with its own latest runs (case-study runs marked)."""
    s = _svc(store).runs.status(recipe)
    if as_json:
        _json(s)
        return
    out.print(f"store: {s['store']}")
    if not s["recipes"]:
        out.print("no runs yet: try `tprm run quickstart`")
    by_recipe: dict[str, list[dict]] = {}
    for run_ in s["runs"]:
        by_recipe.setdefault(run_.get("recipe_name") or "?", []).append(run_)
    for name, r in s["recipes"].items():
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()))
        out.print(f"{name}: {r['total']} jobs ({counts})")
        if r.get("eta"):  # a running run: share of the work in model-steps, time left
            out.print(f"  work {100 * r['eta']['fraction']:.0f}% done, ETA {r['eta']['text']}")
        for run_ in by_recipe.pop(name, [])[-RUNS_PER_RECIPE:]:
            out.print(run_line(run_), markup=False)
    for name, runs in by_recipe.items():  # runs of a recipe the store no longer lists
        out.print(f"{name}: (recipe not in the store)")
        for run_ in runs[-RUNS_PER_RECIPE:]:
            out.print(run_line(run_), markup=False)
    _job_lines(s)


def _job_lines(s: dict) -> None:
    for j in s["jobs"]:
        if j["state"] == "running" and j.get("progress"):
            p = j["progress"]
            on = f" on {j['node']}" if j.get("node") else ""
            out.print(f"  running {j['label']}: {p['done']}/{p['total']}{on}")
        elif j["state"] in ("failed", "stale"):
            out.print(f"  {j['state']} {j['label']}: {j.get('error') or ''}")
        elif j["state"] == "diverged":
            out.print(f"  diverged {j['label']}: {j.get('error') or 'non-finite loss'}")
    skipped = sum(r["counts"].get("skipped", 0) for r in s["recipes"].values())
    if skipped:
        out.print(f"  {skipped} job(s) skipped (parent diverged)")


def logs(recipe: RecipeArg, job: Annotated[Optional[str], typer.Argument(help="Job hash prefix or label.")] = None,
         store: StoreOpt = None,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")] = False,
         latest: Annotated[bool, typer.Option("--latest", help="The latest run's log, even one that executed no jobs (a case study reusing results).")] = False):
    """The run log of a recipe (the last run that executed jobs, or one running now), or one
    job's log; what exists so far while it runs."""
    svc = _svc(store)
    if job is None:
        note = svc.runs.log_run(recipe, latest)["note"]
        if note:
            err.print(f"note: {note}", markup=False)
    shown = 0
    while True:
        text = svc.runs.logs(recipe, job, latest)
        if len(text) < shown:  # a new run (or job attempt) started a new log
            shown = 0
        sys.stdout.write(text[shown:])
        sys.stdout.flush()
        shown = len(text)
        if not follow:
            if not text:
                err.print(f"no log yet for {recipe}" + (f" job {job}" if job else ""), markup=False)
            return
        runs = svc.runs.status(recipe)["runs"]
        if runs and runs[-1].get("state") != "running":
            text = svc.runs.logs(recipe, job, latest)
            sys.stdout.write(text[shown:] if len(text) >= shown else text)
            sys.stdout.flush()
            return
        time.sleep(1.0)
