"""`tprm`: the command line. Thin calls of tprm.service; exit 0 ok, 1 run failed, 2 bad input."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Optional

import typer
from rich.console import Console

from tprm.service import BadInput, Service, TprmError

app = typer.Typer(help="tprm: experiments on the three-regime model of network pruning.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
recipes_app = typer.Typer(help="Browse, check and create recipes.", no_args_is_help=True)
store_app = typer.Typer(help="Maintain the store.", no_args_is_help=True)
case_app = typer.Typer(help="The three case studies.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
app.add_typer(store_app, name="store")
app.add_typer(case_app, name="case")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

StoreOpt = Annotated[Optional[str], typer.Option("--store", help="Store directory (default: $TPRM_HOME, else ~/.local/share/tprm).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RecipeArg = Annotated[str, typer.Argument(help="Recipe name or path to a YAML file.")]


def _json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _svc(store: str | None) -> Service:
    return Service(store)


# -- recipes -------------------------------------------------------------------------------------
@recipes_app.command("list")
def recipes_list(store: StoreOpt = None, as_json: JsonOpt = False):
    """List the recipes found in ./recipes, the store and the shipped set."""
    rows = _svc(store).list_recipes()
    if as_json:
        _json(rows)
        return
    from rich.table import Table

    t = Table(box=None)
    t.add_column("name", no_wrap=True)
    t.add_column("knob", no_wrap=True)
    t.add_column("hotter", no_wrap=True)
    t.add_column("TxD", no_wrap=True)
    t.add_column("jobs", no_wrap=True)
    for r in rows:
        if not r["valid"]:
            t.add_row(r["name"], "[red]invalid[/]", "", "", r["error"])
            continue
        done = "-" if r["jobs_total"] is None else f"{r['jobs_done']}/{r['jobs_total']}"
        t.add_row(r["name"], r["knob"], r["hotter"], r["grid"], done)
    out.print(t)


@recipes_app.command("show")
def recipes_show(recipe: RecipeArg, store: StoreOpt = None,
                 resolved: Annotated[bool, typer.Option(help="Show every default filled in.")] = False):
    """Print a recipe's YAML (as written, or resolved with every default)."""
    svc = _svc(store)
    text = svc.load_recipe(recipe).to_yaml() if resolved else svc.recipe_text(recipe)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@recipes_app.command("validate")
def recipes_validate(paths: Annotated[list[str], typer.Argument(help="Recipe files or names.")],
                     store: StoreOpt = None, as_json: JsonOpt = False):
    """Check recipes; one line per problem, exit 2 when any is invalid."""
    rows = _svc(store).validate(paths)
    if as_json:
        _json(rows)
    else:
        for r in rows:
            if r["ok"]:
                out.print(f"ok  {r['path']}  ({r['name']}, hash {r['hash'][:12]})")
            else:
                err.print(r["error"], markup=False)
    if not all(r["ok"] for r in rows):
        raise typer.Exit(2)


@recipes_app.command("new")
def recipes_new(name: str, template: Annotated[str, typer.Option("--from", help="Template recipe.")] = "quickstart",
                store: StoreOpt = None):
    """Create recipes/NAME.yaml from a template recipe."""
    path = _svc(store).new_recipe(name, template)
    out.print(f"created {path}")


# -- running -------------------------------------------------------------------------------------
class RunDisplay:
    """Rich progress: an overall bar with ETA plus one bar per running (fused) job group."""

    def __init__(self, console: Console):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, transient=False)
        self.overall = None
        self.groups: dict[str, int] = {}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def __call__(self, snap: dict) -> None:
        done = snap["counts"].get("done", 0)
        finished = done + sum(snap["counts"].get(s, 0) for s in ("failed", "diverged"))
        if self.overall is None:
            self.overall = self.progress.add_task(f"[bold]{snap['recipe']}: jobs", total=snap["total"])
        self.progress.update(self.overall, completed=finished)
        live = set()
        for g in snap["running"]:
            key = g["hashes"][0]
            live.add(key)
            if key not in self.groups:
                self.groups[key] = self.progress.add_task("  " + g["label"][:48], total=g["total"])
            self.progress.update(self.groups[key], completed=g["done"], total=g["total"])
        for key in list(self.groups):
            if key not in live:
                self.progress.remove_task(self.groups.pop(key))


def _print_run_summary(summary: dict) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items()))
    out.print(f"run {summary['run_id']}: {summary['state']} ({counts}; executed {summary['executed']})")
    for f in summary["failed"][:10]:
        err.print(f"  failed: {f['label']}: {f['error']}", markup=False)


@app.command()
def run(recipe: RecipeArg, store: StoreOpt = None,
        device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda | cuda:N (default: the recipe's).")] = None,
        jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Parallel workers (default: the recipe's).")] = None,
        backend: Annotated[Optional[str], typer.Option(help="local | ray (default: the recipe's execution.backend).")] = None,
        address: Annotated[Optional[str], typer.Option(help="Ray cluster: auto | HOST:PORT | ray://HOST:PORT (implies --backend ray).")] = None,
        detach: Annotated[bool, typer.Option(help="Run in the background, surviving the terminal.")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and what is already done.")] = False,
        log: Annotated[Optional[str], typer.Option(hidden=True)] = None):
    """Run (or resume) a recipe: dense -> prune -> retrain -> pair metrics."""
    if device is not None:
        _check_device(device)
    _check_backend(backend, address)
    svc = _svc(store)
    if dry_run:
        s = svc.plan_summary(recipe)
        out.print(f"plan for {s['recipe']}: {s['total']} jobs, {s['done']} done")
        for kind, k in s["kinds"].items():
            out.print(f"  {kind:8s} {k['total']:5d} jobs  {k['done']:5d} done")
        return
    if detach:
        info = svc.start_detached(recipe, device, jobs, backend, address)
        out.print(f"started {info['recipe']} in the background (pid {info['pid']}); it keeps running "
                  f"after this terminal closes.\nlog: {info['log']}\nwatch: tprm status {info['recipe']}")
        return
    console = Console(stderr=True) if log else err
    loaded = svc.load_recipe(recipe)  # a bad recipe fails here, before any progress display
    with RunDisplay(console) as display:
        summary = svc.run(loaded, device=device, jobs=jobs, progress=display, log_path=log,
                          backend=backend, address=address)
    _print_run_summary(summary)
    raise typer.Exit(summary["exit_code"])


def _check_device(device: str) -> None:
    import re

    if not re.fullmatch(r"auto|cpu|cuda|cuda:\d+|mps", device):
        raise BadInput(f"--device: '{device}' is not a device; use auto, cpu, cuda or cuda:N")


def _check_backend(backend: str | None, address: str | None) -> None:
    import re

    if backend is not None and backend not in ("local", "ray"):
        raise BadInput(f"--backend: '{backend}' is not a backend; use local or ray")
    if address is not None and not re.fullmatch(r"auto|(ray://)?[A-Za-z0-9_.\[\]:-]+:\d{1,5}", address):
        raise BadInput(f"--address: '{address}' is not a Ray address; use auto, HOST:PORT or "
                       "ray://HOST:PORT")
    if backend == "local" and address is not None:
        raise BadInput("--address: only used with --backend ray")


@app.command()
def status(recipe: Annotated[Optional[str], typer.Argument(help="Recipe name or path (default: all).")] = None,
           store: StoreOpt = None, as_json: JsonOpt = False):
    """Runs and job states."""
    s = _svc(store).status(recipe)
    if as_json:
        _json(s)
        return
    out.print(f"store: {s['store']}")
    if not s["recipes"]:
        out.print("no runs yet: try `tprm run quickstart`")
    for name, r in s["recipes"].items():
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()))
        out.print(f"{name}: {r['total']} jobs ({counts})")
    for run_ in s["runs"][-5:]:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run_.get("started", 0)))
        out.print(f"  run {run_['run_id']} {run_['recipe_name']}: {run_['state']} since {started} "
                  f"(pid {run_.get('pid')} on {run_.get('host')}){_cluster_text(run_)}")
    for j in s["jobs"]:
        if j["state"] == "running" and j.get("progress"):
            p = j["progress"]
            on = f" on {j['node']}" if j.get("node") else ""
            out.print(f"  running {j['label']}: {p['done']}/{p['total']}{on}")
        elif j["state"] in ("failed", "stale"):
            out.print(f"  {j['state']} {j['label']}: {j.get('error') or ''}")


def _cluster_text(run_: dict) -> str:
    """'; ray: 2 nodes, 8 CPU, 1 GPU' for a run on a Ray cluster, '' for a local one."""
    ray = run_.get("ray") or {}
    if run_.get("backend") != "ray":
        return ""
    res = ray.get("resources") or {}
    return (f"; ray {ray.get('address')}: {len(ray.get('nodes') or [])} node(s), "
            f"{res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU")


@app.command()
def logs(recipe: RecipeArg, job: Annotated[Optional[str], typer.Argument(help="Job hash prefix or label.")] = None,
         store: StoreOpt = None, follow: Annotated[bool, typer.Option("--follow", "-f")] = False):
    """The run log of a recipe, or one job's log."""
    svc = _svc(store)
    shown = 0
    while True:
        text = svc.logs(recipe, job)
        sys.stdout.write(text[shown:])
        sys.stdout.flush()
        shown = len(text)
        if not follow:
            return
        time.sleep(1.0)


@app.command()
def cancel(recipe: RecipeArg, store: StoreOpt = None):
    """Ask a recipe's running runs to stop; running jobs stop cleanly and are recorded cancelled."""
    n = _svc(store).cancel(recipe)
    out.print(f"cancel requested for {n} running run(s)")


@app.command()
def results(recipe: RecipeArg, store: StoreOpt = None, as_json: JsonOpt = False,
            as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False):
    """One row per (temperature, density, dense seed) cell."""
    svc = _svc(store)
    if as_csv:
        sys.stdout.write(svc.results_csv(recipe))
        return
    rows = svc.results_table(recipe)
    if as_json:
        _json(rows)
        return
    from rich.table import Table

    t = Table("T", "density", "seed", "state", "test err", "train loss", "mc", "CKA", "regime",
              box=None)
    f = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731
    for r in rows:
        t.add_row(f(r["temperature"], "g"), f"{r['density'] * 100:g}%",
                  str(r["dense_seed"]), r["state"], f(r["test_error"], ".3f"),
                  f(r["train_loss"], ".3f"), f(r["mc"], "+.3f"), f(r["cka"], ".3f"),
                  r.get("regime") or "")
    out.print(t)


@app.command()
def plot(recipe: RecipeArg, store: StoreOpt = None,
         metric: Annotated[str, typer.Option(help="test_error | normalized_error | mc | cka | regime | train_loss | ...")] = "regime",
         as_json: JsonOpt = False,
         table: Annotated[bool, typer.Option("--table/--no-table", help="Print the numbers under the plot.")] = True,
         width: Annotated[int, typer.Option(min=40, max=400)] = 80,
         height: Annotated[int, typer.Option(min=10, max=200)] = 20,
         color: Annotated[bool, typer.Option("--color/--no-color")] = True,
         page: Annotated[int, typer.Option(min=0, help="Page of a grid too large for the terminal.")] = 0):
    """Plot a metric over the temperature x density plane in the terminal."""
    svc = _svc(store)
    if as_json:
        _json(svc.grid_json(recipe, metric))
        return
    sys.stdout.write(svc.plot(recipe, metric, width=width, height=height, table=table,
                              color=color and sys.stdout.isatty(), page=page) + "\n")


# -- case studies --------------------------------------------------------------------------------
def _report(report: dict, as_json: bool) -> None:
    if as_json:
        _json({k: v for k, v in report.items() if k != "text"})
    else:
        sys.stdout.write(report["text"].rstrip() + "\n")


@case_app.command("direction")
def case_direction(recipe: RecipeArg, store: StoreOpt = None,
                   temperature: Annotated[Optional[float], typer.Option("--temperature", "-t")] = None,
                   density: Annotated[Optional[float], typer.Option("--density", "-d", help="Fraction (0.1) or percent (10).")] = None,
                   evaluate: Annotated[bool, typer.Option(help="Score the rule on every cell of a complete grid.")] = False,
                   as_json: JsonOpt = False):
    """Case 1: which way to move the temperature knob at (T, density)."""
    svc = _svc(store)
    if not evaluate and (temperature is None or density is None):
        raise BadInput("case direction: give --temperature and --density, or --evaluate")
    with RunDisplay(err) as display:
        report = svc.case_direction(recipe, temperature, density, evaluate=evaluate, progress=display)
    _report(report, as_json)


@case_app.command("select")
def case_select(recipe: RecipeArg, density: Annotated[float, typer.Option("--density", "-d")],
                store: StoreOpt = None, as_json: JsonOpt = False):
    """Case 2: which dense model of a family to prune at a target density."""
    svc = _svc(store)
    with RunDisplay(err) as display:
        report = svc.case_select(recipe, density, progress=display)
    _report(report, as_json)


@case_app.command("sam")
def case_sam(recipe: RecipeArg, density: Annotated[float, typer.Option("--density", "-d")],
             rho: Annotated[float, typer.Option("--rho", help="Starting SAM rho.")],
             store: StoreOpt = None, as_json: JsonOpt = False):
    """Case 3: tune SAM's rho for pruning by walking the regimes."""
    svc = _svc(store)
    with RunDisplay(err) as display:
        report = svc.case_sam(recipe, density, rho, progress=display)
    _report(report, as_json)


# -- store ---------------------------------------------------------------------------------------
@store_app.command("migrate")
def store_migrate(store: StoreOpt = None):
    """Upgrade an older store to this version's schema."""
    info = _svc(store).migrate()
    out.print(f"store schema version {info[0]} -> {info[1]} ({info})")


@store_app.command("gc")
def store_gc(store: StoreOpt = None, dry_run: Annotated[bool, typer.Option("--dry-run")] = False):
    """Remove artifact files no job refers to."""
    removed = _svc(store).gc(dry_run=dry_run)
    out.print(f"{'would remove' if dry_run else 'removed'} {len(removed)} orphaned file(s)")


@app.command("export")
def export(recipe: RecipeArg, path: str, store: StoreOpt = None):
    """Write a recipe's jobs, results and artifacts to a bundle file."""
    p = _svc(store).export(recipe, path)
    out.print(f"exported to {p}")


@app.command("import")
def import_(path: str, store: StoreOpt = None):
    """Merge a bundle written by `tprm export` into this store."""
    info = _svc(store).import_bundle(path)
    out.print(f"imported: {info}")


@app.command()
def tui(store: StoreOpt = None):
    """Open the terminal UI."""
    from tprm.tui.app import run_app

    raise typer.Exit(run_app(store) or 0)


@app.command()
def demo(store: StoreOpt = None,
         recipe: Annotated[str, typer.Option(help="Recipe to demonstrate.")] = "quickstart"):
    """Run the quickstart on the CPU, show the results and phase plots, check the phenomenon."""
    svc = _svc(store)
    out.print(f"[bold]tprm demo[/]: {recipe} (store {svc.store_dir})")
    with RunDisplay(err) as display:
        summary = svc.run(recipe, progress=display)
    _print_run_summary(summary)
    for metric in ("test_error", "normalized_error", "mc", "cka", "regime"):
        out.print()
        sys.stdout.write(svc.plot(recipe, metric, width=80, height=18, table=True,
                                  color=sys.stdout.isatty()) + "\n")
    check = svc.demo_check(recipe)
    out.print()
    sys.stdout.write(check["text"].rstrip() + "\n")
    raise typer.Exit(0 if summary["exit_code"] == 0 else 1)


def main() -> None:
    """Entry point: one-line errors, exit 2 for bad input, no tracebacks."""
    try:
        app()  # Typer's standalone mode: usage errors exit 2, typer.Exit carries its code
    except TprmError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
