"""`tprm`: the command line. Thin calls of tprm.service.

Exit codes: 0 ok (a run whose only non-done jobs diverged, with their dependents skipped, is ok:
divergence is a result, reported by a warning line); 1 a job failed or the run was cancelled;
2 bad input (recipe, argument, store file); 130 interrupted."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from tprm.cli_common import JsonOpt, RecipeArg, StoreOpt, err, out
from tprm.cli_common import print_json as _json
from tprm.cli_common import service as _svc
from tprm.cli_display import RunDisplay, wrap_lines
from tprm.cli_help import plain_help
from tprm.cli_runs import interrupt_line, logs, status
from tprm.cli_show import show
from tprm.cli_store import data_app, store_app
from tprm.service import BadInput, TprmError, density_text
from tprm.service.results import Results
from tprm.service.runs import Runs

plain_help()  # no `<bool>` after flags, RECIPE (not `{recipe}`) in usage lines
app = typer.Typer(help="tprm: experiments on the three-regime model of network pruning. Exit codes: "
                       "0 ok (diverged jobs are a result, reported by a warning), 1 a job failed or "
                       "the run was cancelled, 2 bad input, 130 interrupted.",
                  no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False)
recipes_app = typer.Typer(help="Browse, check and create recipes.", no_args_is_help=True)
case_app = typer.Typer(help="The three case studies.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
app.add_typer(store_app, name="store")
app.add_typer(case_app, name="case")
app.add_typer(data_app, name="data")


# -- recipes -------------------------------------------------------------------------------------
@recipes_app.command("list")
def recipes_list(store: StoreOpt = None, as_json: JsonOpt = False):
    """List the recipes found in ./recipes, the store and the shipped set."""
    rows = _svc(store).recipes.list()
    if as_json:
        _json(rows)
        return
    from rich.table import Table
    from rich.text import Text

    t = Table(box=None)
    t.add_column("name", no_wrap=True)
    t.add_column("knob", no_wrap=True)
    t.add_column("hotter", no_wrap=True)
    t.add_column("TxD", no_wrap=True)
    t.add_column("jobs", no_wrap=True)
    by_path = any(r["run_by_path"] for r in rows)  # recipes outside the recipe folders: say where
    if by_path:
        t.add_column("path")
    for r in rows:
        where = [r["path"] if r["run_by_path"] else ""] if by_path else []
        if not r["valid"]:
            t.add_row(r["name"], Text("invalid", style="red"), "", "", r["error"], *where)
            continue
        done = "-" if r["jobs_total"] is None else f"{r['jobs_done']}/{r['jobs_total']}"
        t.add_row(r["name"], r["knob"], r["hotter"], r["grid"], done, *where)
    out.print(t)


@recipes_app.command("show")
def recipes_show(recipe: RecipeArg, store: StoreOpt = None,
                 resolved: Annotated[bool, typer.Option(help="Show every default filled in.")] = False):
    """Print a recipe's YAML (as written, or resolved with every default)."""
    svc = _svc(store)
    text = svc.recipes.resolve(recipe).recipe.to_yaml() if resolved else svc.recipes.text(recipe)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@recipes_app.command("validate")
def recipes_validate(paths: Annotated[list[str], typer.Argument(help="Recipe files or names.")],
                     store: StoreOpt = None, as_json: JsonOpt = False):
    """Check recipes; one line per problem, exit 2 when any is invalid."""
    rows = _svc(store).recipes.validate(paths)
    if as_json:
        _json(rows)
    else:
        for r in rows:
            if r["ok"]:
                out.print(f"ok  {r['path']}  ({r['name']}, hash {r['hash'][:12]})")
            else:
                for line in r["errors"]:  # every problem of the file, each on its own line
                    err.print(line, markup=False)
    if not all(r["ok"] for r in rows):
        raise typer.Exit(2)


@recipes_app.command("new")
def recipes_new(name: Annotated[str, typer.Argument(help="Name of the new recipe: lower-case letters, digits, '-' and '_' (writes ./recipes/NAME.yaml).")],
                template: Annotated[str, typer.Option("--from", help="Template recipe.")] = "quickstart",
                store: StoreOpt = None):
    """Create NAME.yaml from a template: in ./recipes if it exists, else in the store's recipes/."""
    path = _svc(store).recipes.new(name, template)
    out.print(f"created {path}")


# -- running -------------------------------------------------------------------------------------
def _print_run_summary(summary: dict) -> None:
    head, notes = Runs.summary_lines(summary)
    out.print(head, markup=False)
    for line in notes:
        err.print(line, markup=False)


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
    svc = _svc(store)
    if device is not None:
        svc.runs.check_device(device)
    _check_backend(backend, address)
    if dry_run:
        layers = svc.recipes.model_layers(recipe)  # the model built once: a bad import is exit 2
        s = svc.recipes.plan_summary(recipe)
        out.print(f"plan for {s['recipe']}: {s['total']} jobs, {s['done']} done")
        for kind, k in s["kinds"].items():
            out.print(f"  {kind:8s} {k['total']:5d} jobs  {k['done']:5d} done")
        out.print(f"pruned: {', '.join(layers['pruned'])}\nkept dense: {', '.join(layers['dense']) or '(none)'}")
        return
    if detach:
        info = svc.runs.start_detached(recipe, device, jobs, backend, address)
        out.print(f"started {info['recipe']} in the background (pid {info['pid']}); it keeps running "
                  f"after this terminal closes.\nlog: {info['log']}\nwatch: tprm status {info['recipe']}")
        return
    console = Console(stderr=True, emoji=False, markup=False) if log else err
    loaded = svc.recipes.resolve(recipe)  # a bad recipe fails here, before any progress display
    svc.recipes.check_model(loaded)  # ... and so does an imported model that cannot be built
    with interrupt_line(svc, loaded, recipe), RunDisplay(console) as display:
        summary = svc.runs.run(loaded, device=device, jobs=jobs, progress=display, log_path=log,
                          backend=backend, address=address)
    _print_run_summary(summary)
    raise typer.Exit(summary["exit_code"])


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
def explore(recipe: RecipeArg, store: StoreOpt = None,
            budget: Annotated[Optional[str], typer.Option(help="Cells (20 or 20c), retrainings (60r) or a share of the cells (30%); default: until converged.")] = None,
            round_size: Annotated[int, typer.Option("--round-size", min=1, help="Cells per round (they run in parallel).")] = 4,
            jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Parallel workers (default: the recipe's).")] = None,
            backend: Annotated[Optional[str], typer.Option(help="local | ray (default: the recipe's execution.backend).")] = None,
            address: Annotated[Optional[str], typer.Option(help="Ray cluster: auto | HOST:PORT | ray://HOST:PORT (implies --backend ray).")] = None,
            figure: Annotated[Optional[str], typer.Option("--figure", help="Also write the map as PNG + SVG into this folder.")] = None,
            as_json: JsonOpt = False):
    """Map the regimes and the best temperature per density from a fraction of the grid: measure
    a coarse design, then round by round only the cells that can still change the answers."""
    from tprm.cli_explore import ExploreDisplay

    svc = _svc(store)
    _check_backend(backend, address)
    loaded = svc.recipes.resolve(recipe)  # a bad recipe fails here, before any progress display
    tty = sys.stdout.isatty() and not as_json
    depth = Results.color_depth(out.color_system) if tty and not out.no_color else "none"
    with ExploreDisplay(err) as display:
        result = svc.explore.run(loaded, budget, display, round_size=round_size, jobs=jobs, backend=backend,
                                 address=address, figure=figure, color_depth=depth,
                                 width=out.size.width if tty else 80)
    if as_json:
        _json({k: v for k, v in result.items() if k != "text"})
        return
    sys.stdout.write(wrap_lines(result["text"], out.size.width if tty else 80) + "\n")
    for f in result["figures"]:
        out.print(f"figure: {f}", markup=False)


app.command()(status)
app.command()(logs)


@app.command()
def cancel(recipe: RecipeArg, store: StoreOpt = None):
    """Ask a recipe's running runs to stop; running jobs stop cleanly and are recorded cancelled."""
    n = _svc(store).runs.cancel(recipe)
    out.print(f"cancel requested for {n} running run(s)")


@app.command()
def results(recipe: RecipeArg, store: StoreOpt = None, as_json: JsonOpt = False,
            as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False):
    """One row per (temperature, density, dense seed) cell."""
    svc = _svc(store)
    if as_csv:
        sys.stdout.write(svc.results.csv(recipe))
        return
    rows = svc.results.table(recipe)
    if as_json:
        _json(rows)
        return
    empty = svc.results.empty_note(recipe, rows)
    if empty is not None:  # not a table of "missing" rows: say how to get results
        out.print(f"{empty} (`tprm run {recipe} --detach` runs it in the background)", markup=False)
        return
    from rich.table import Table

    ww = "alpha" in rows[0]  # weightwatcher's alpha (retrained models; the rest: --csv, --json)
    t = Table("T", "density", "seed", "state", "test err", "train loss", "mc", "CKA", "regime",
              *(("alpha",) if ww else ()), box=None)
    f = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731
    for r in rows:
        t.add_row(f(r["temperature"], "g"), density_text(r["density"]),
                  str(r["dense_seed"]), r["state"], f(r["test_error"], ".3f"),
                  f(r["train_loss"], ".3f"), f(r["mc"], "+.3f"), f(r["cka"], ".3f"),
                  r.get("regime") or "",
                  *((f(r["alpha"], ".2f"),) if ww else ()))
    out.print(t)


@app.command()
def plot(recipe: RecipeArg, store: StoreOpt = None,
         metric: Annotated[str, typer.Option(help="test_error | normalized_error | mc | cka | regime | train_loss | ... | alpha (weightwatcher)")] = "regime",
         as_json: JsonOpt = False,
         table: Annotated[bool, typer.Option("--table/--no-table", help="Print the numbers under the plot.")] = True,
         width: Annotated[Optional[int], typer.Option(min=40, max=400, help="Columns (default: the terminal's, 80 when piped).")] = None,
         height: Annotated[Optional[int], typer.Option(min=10, max=200, help="Lines of the map (default: the terminal's, 20 when piped).")] = None,
         color: Annotated[bool, typer.Option("--color/--no-color", help="Coloured heat map in a terminal (NO_COLOR and TERM=dumb also turn it off).")] = True,
         page: Annotated[int, typer.Option(min=0, help="Page of a grid too large for the terminal.")] = 0):
    """Plot a metric over the temperature x density plane: a coloured heat map in a terminal,
    plain text when piped."""
    svc = _svc(store)
    if as_json:
        _json(svc.results.grid_json(recipe, metric))
        return
    tty = sys.stdout.isatty()
    depth = "none"
    if color and tty:
        depth = "none" if out.no_color else Results.color_depth(out.color_system)  # NO_COLOR, TERM=dumb
    size = out.size if tty else None
    width = width or (min(size.width, 400) if size else 80)
    height = height or (max(10, min(size.height - 2, 200)) if size else 20)
    sys.stdout.write(svc.results.plot(recipe, metric, width=width, height=height, table=table,
                              color=depth != "none", page=page, depth=depth) + "\n")


app.command("show")(show)


# -- reports and comparisons ---------------------------------------------------------------------
@app.command("report")
def report_cmd(recipe: RecipeArg, store: StoreOpt = None,
               out_dir: Annotated[Optional[str], typer.Option("--out", help="Folder to write (default: ./reports/RECIPE).")] = None,
               fmt: Annotated[str, typer.Option("--format", help="md (report.md + PNG/SVG files) | html (one file, images inlined).")] = "md",
               compare_with: Annotated[Optional[str], typer.Option("--compare", help="Add the comparison with recipe B.")] = None,
               metric: Annotated[str, typer.Option(help="Metric of the comparison.")] = "test_error",
               store_b: Annotated[Optional[str], typer.Option("--store-b", help="Read --compare's recipe from this store.")] = None,
               cells: Annotated[Optional[str], typer.Option("--cells", help="Cells whose numbers and LMC/training curves the report shows, 'T,D;T,D' (default: one per regime; 'none': no such section).")] = None,
               as_json: JsonOpt = False):
    """Write a report folder: report.md, one PNG and SVG per figure (reads the store; trains nothing)."""
    info = _svc(store).reports.report(recipe, out_dir, fmt=fmt, compare=compare_with, metric=metric,
                              other=_svc(store_b) if store_b else None, cells=cells)
    if as_json:
        _json(info)
        return
    out.print(f"report: {info['report']}")
    for f in info["files"]:
        out.print(f"  {f}", markup=False)


@app.command("compare")
def compare_cmd(a: Annotated[str, typer.Argument(help="Recipe A (name or path).")],
                b: Annotated[str, typer.Argument(help="Recipe B (name or path).")],
                store: StoreOpt = None,
                store_b: Annotated[Optional[str], typer.Option("--store-b", help="Read B from this store (default: the same).")] = None,
                metric: Annotated[str, typer.Option(help="test_error | normalized_error | mc | cka | ...")] = "test_error",
                width: Annotated[int, typer.Option(min=40, max=400, help="Width of the side-by-side text in columns.")] = 80,
                as_json: JsonOpt = False):
    """A and B side by side, the difference map B - A and the regime maps (changed cells marked)."""
    svc = _svc(store)
    c = svc.reports.compare(a, b, metric, other=_svc(store_b) if store_b else None, width=width,
                    color=sys.stdout.isatty() and not as_json)
    if as_json:
        from dataclasses import asdict, is_dataclass

        _json({k: asdict(v) if is_dataclass(v) else v for k, v in c.items()
               if k != "text"})
        return
    sys.stdout.write(c["text"] + "\n")


# -- case studies --------------------------------------------------------------------------------
def _report(report: dict, as_json: bool) -> None:
    if as_json:
        _json({k: v for k, v in report.items() if k != "text"})
    else:
        width = out.size.width if sys.stdout.isatty() else 80
        sys.stdout.write(wrap_lines(report["text"].rstrip(), width) + "\n")


@case_app.command("direction")
def case_direction(recipe: RecipeArg, store: StoreOpt = None,
                   temperature: Annotated[Optional[float], typer.Option("--temperature", "-t", help="A temperature value on the recipe's grid (in the knob's unit, e.g. epochs or lr).")] = None,
                   density: Annotated[Optional[float], typer.Option("--density", "-d", help="Fraction (0.1) or percent (10).")] = None,
                   evaluate: Annotated[bool, typer.Option(help="Score the rule on every cell of a complete grid.")] = False,
                   as_json: JsonOpt = False):
    """Case 1: which way to move the temperature knob at (T, density)."""
    svc = _svc(store)
    if not evaluate and (temperature is None or density is None):
        raise BadInput("case direction: give --temperature and --density, or --evaluate")
    with RunDisplay(err) as display:
        report = svc.cases.direction(recipe, temperature, density, evaluate=evaluate, progress=display)
    _report(report, as_json)


@case_app.command("select")
def case_select(recipe: RecipeArg, density: Annotated[float, typer.Option("--density", "-d", help="Target density: fraction (0.1) or percent (10).")],
                store: StoreOpt = None, as_json: JsonOpt = False):
    """Case 2: which dense model of a family to prune at a target density."""
    svc = _svc(store)
    with RunDisplay(err) as display:
        report = svc.cases.select(recipe, density, progress=display)
    _report(report, as_json)


@case_app.command("sam")
def case_sam(recipe: RecipeArg, density: Annotated[float, typer.Option("--density", "-d", help="Target density: fraction (0.1) or percent (10).")],
             rho: Annotated[float, typer.Option("--rho", help="Starting SAM rho.")],
             store: StoreOpt = None, as_json: JsonOpt = False):
    """Case 3: tune SAM's rho for pruning by walking the regimes."""
    svc = _svc(store)
    with RunDisplay(err) as display:
        report = svc.cases.sam(recipe, density, rho, progress=display)
    _report(report, as_json)


@app.command("export")
def export(recipe: RecipeArg,
           path: Annotated[str, typer.Argument(help="Bundle file to write; its name ends in .tar.gz, .tgz or .zip.")],
           store: StoreOpt = None):
    """Write a recipe's jobs, results and artifacts to a bundle file."""
    p = _svc(store).admin.export(recipe, path)
    out.print(f"exported to {p}")


@app.command("import")
def import_(path: Annotated[str, typer.Argument(help="Bundle file written by `tprm export` (.tar.gz, .tgz or .zip).")],
            store: StoreOpt = None):
    """Merge a bundle written by `tprm export` into this store."""
    info = _svc(store).admin.import_bundle(path)
    out.print(f"imported: {info}", markup=False)


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
    out.print(f"[bold]tprm demo[/]: {escape(recipe)} (store {escape(str(svc.store_dir))})", markup=True)
    with RunDisplay(err) as display:
        summary = svc.runs.run(recipe, progress=display)
    _print_run_summary(summary)
    for metric in ("test_error", "normalized_error", "mc", "cka", "regime"):
        out.print()
        sys.stdout.write(svc.results.plot(recipe, metric, width=80, height=18, table=True,
                                  color=sys.stdout.isatty()) + "\n")
    check = svc.results.demo_check(recipe)
    out.print()
    sys.stdout.write(check["text"].rstrip() + "\n")
    raise typer.Exit(0 if summary["exit_code"] == 0 else 1)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    err.print(f"warning: {message}", markup=False)


def main() -> None:
    """Entry point: one-line errors, exit 2 for bad input, no tracebacks."""
    import warnings

    warnings.showwarning = _show_warning  # one line per warning (e.g. a skipped store record)
    try:
        app(prog_name="tprm")  # standalone mode: usage errors exit 2; `tprm` names the completion
    except TprmError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
