"""The one API both views (CLI and TUI) call.

Everything here returns plain data and raises `TprmError` subclasses with one-line messages:
`BadInput` (a recipe, argument or store file is wrong: exit code 2) or `RunFailed` (exit 1).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable

import tprm

PACKAGE_RECIPES = Path(tprm.__file__).resolve().parent.parent / "recipes"


class TprmError(Exception):
    """An error a user can act on; str() is one line."""

    exit_code = 1


class BadInput(TprmError):
    exit_code = 2


class RunFailed(TprmError):
    exit_code = 1


class RunCancelled(RunFailed):
    """A run (or a case study's run) stopped on request; finished jobs are kept."""


class DataNotFetched(BadInput):
    """A recipe's torchvision data set is not on disk (and planning never downloads)."""

    def __init__(self, message: str, dataset: str):
        super().__init__(message)
        self.dataset = dataset


# The columns of a results row, in the order the TUI table, its export and `tprm results --csv` use.
RESULT_COLUMNS: tuple[str, ...] = (
    "temperature", "density", "dense_seed", "state", "regime", "test_error", "spread",
    "normalized_error", "mc", "cka", "train_loss", "dense_test_error",
)
# The metrics grid/plot take ("regime" is the regime map), in the order the CLI lists them.
METRICS: tuple[str, ...] = (
    "test_error", "normalized_error", "mc", "cka", "regime", "train_loss", "train_error", "test_loss",
    "mc_loss", "cka_logits", "endpoint_gap", "dense_test_error", "hessian_trace", "hessian_top")
CSV_DIGITS = 6  # decimals kept in CSV (0.46599999999999997 -> 0.466)


def rows_csv(rows, columns: tuple[str, ...] = RESULT_COLUMNS) -> str:
    """Result rows as CSV text: floats rounded to CSV_DIGITS decimals, blanks for missing values.
    The one CSV writer of results (TUI export and `tprm results --csv`)."""
    def cell(value):
        if value is None:
            return ""
        if isinstance(value, float):
            return repr(round(value, CSV_DIGITS)) if value == value else "nan"
        return value

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _bad_input(exc: Exception) -> BadInput:
    return BadInput(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _converted(exc: Exception) -> BadInput:
    """The service error for an engine/science input error (DataNotFetched keeps its data set)."""
    from tprm.engine.planner import DataNotFetchedError

    if isinstance(exc, DataNotFetchedError):
        return DataNotFetched(str(exc), exc.dataset)
    return _bad_input(exc)


def _input_errors():
    """Exception types that mean the user's input (recipe, data, store file) is at fault."""
    from tprm.engine.artifacts import ArtifactError
    from tprm.engine.executors.ray import BackendError
    from tprm.engine.planner import DataNotFetchedError
    from tprm.engine.recipe import RecipeError
    from tprm.engine.store import StoreError
    from tprm.engine.datasets import DataMissingError

    return (RecipeError, StoreError, ArtifactError, DataMissingError, DataNotFetchedError, BackendError)


def _converting_input_errors(cls):
    """Wrap every public method so recipe/store/data/artifact errors surface as BadInput."""
    import functools

    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except TprmError:
                raise
            except _input_errors() as exc:
                raise _converted(exc) from None
        return call

    for name, fn in list(vars(cls).items()):
        if isinstance(fn, staticmethod) and not name.startswith("_"):
            setattr(cls, name, staticmethod(wrap(fn.__func__)))
        elif callable(fn) and not name.startswith("_") and not isinstance(fn, type):
            setattr(cls, name, wrap(fn))
    return cls


@_converting_input_errors
class Service:
    """Recipes, runs, results, plots and case studies over one store directory."""

    def __init__(self, store_dir: str | Path | None = None):
        from tprm.engine.planner import Planner
        from tprm.engine.store import default_store_dir

        self.store_dir = Path(default_store_dir(store_dir)).expanduser()
        self._store = None
        self._sources: dict[tuple[str, str], str | None] = {}
        self.planner = Planner(self.store_dir)

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def store(self):
        if self._store is None:
            from tprm.engine.store import Store

            try:
                self._store = Store(self.store_dir)
            except _input_errors() as exc:
                raise _bad_input(exc) from None
        return self._store

    def recipe_dirs(self) -> list[Path]:
        """Where recipes are found, first match wins: ./recipes (when it is not the shipped folder),
        the store's recipes/ ($TPRM_HOME/recipes), then the shipped recipes."""
        local = Path.cwd() / "recipes"
        dirs = [*([] if local.resolve() == PACKAGE_RECIPES else [local]), self.store_dir / "recipes",
                PACKAGE_RECIPES]
        seen, out = set(), []
        for d in dirs:
            if d.resolve() not in seen:
                seen.add(d.resolve())
                out.append(d)
        return out

    # -- recipes -------------------------------------------------------------------------------
    def recipe_path(self, name_or_path: str | Path) -> Path:
        from tprm.engine.recipe import find_recipe

        if isinstance(name_or_path, Path) or Path(str(name_or_path)).suffix in (".yaml", ".yml"):
            p = Path(name_or_path)
            if p.exists():
                return p
        try:
            return find_recipe(str(name_or_path), self.recipe_dirs())
        except _input_errors() as exc:
            stored = self.store.get_recipe(str(name_or_path)) if self.store_dir.exists() else None
            if stored and stored.get("path") and Path(stored["path"]).exists():
                return Path(stored["path"])
            raise _bad_input(exc) from None

    def load_recipe(self, recipe):
        """A Recipe object, a recipe name, or a path -> a validated Recipe."""
        from tprm.engine.recipe import Recipe, load_recipe

        if isinstance(recipe, Recipe):
            return recipe
        path = self.recipe_path(recipe)
        r = load_recipe(path)
        self._sources[(r.name, r.hash)] = str(path)
        return r

    @staticmethod
    def check_device(device: str) -> str:
        """A --device value checked by the recipe schema (execution.device): BadInput otherwise."""
        from tprm.engine.recipe import check_setting

        return check_setting("execution.device", device, "--device")

    def recipe_text(self, recipe) -> str:
        return self.recipe_path(recipe).read_text()

    def list_recipes(self) -> list[dict]:
        """Every recipe file of recipe_dirs() (the first of a name wins), valid or not, with its
        grid and how many of its jobs are done."""
        rows, seen = [], set()
        jobs = self.store.get_jobs() if self.store_dir.exists() else {}
        for d in self.recipe_dirs():
            for path in sorted(d.glob("*.y*ml")) if d.exists() else []:
                if path.stem not in seen:
                    seen.add(path.stem)
                    rows.append(self._recipe_row(path, jobs))
        return rows

    def _recipe_row(self, path: Path, jobs: dict) -> dict:
        from tprm.engine.recipe import HOTTER, load_recipe

        row = {"name": path.stem, "path": str(path), "valid": True, "error": None,
               "knob": None, "hotter": None, "grid": None, "jobs_done": 0, "jobs_total": None}
        try:
            r = load_recipe(path)
            row.update(name=r.name, knob=r.temperature.knob, hotter=HOTTER[r.temperature.knob],
                       grid=f"{len(r.temperature.values)}x{len(r.densities)}")
            hashes = self._job_hashes(r)
            if hashes is not None:
                row["jobs_total"] = len(hashes)
                row["jobs_done"] = sum(1 for h in hashes if jobs.get(h, {}).get("state") == "done")
        except _input_errors() as exc:
            row.update(valid=False, error=str(exc).splitlines()[0])
        return row

    def validate(self, paths: list[str | Path]) -> list[dict]:
        from tprm.engine.recipe import load_recipe

        out = []
        for p in paths:
            try:
                r = load_recipe(self.recipe_path(p))
                out.append({"path": str(p), "ok": True, "error": None, "name": r.name,
                            "hash": r.hash})
            except TprmError as exc:
                out.append({"path": str(p), "ok": False, "error": str(exc)})
            except _input_errors() as exc:
                out.append({"path": str(p), "ok": False, "error": str(exc).splitlines()[0]})
        return out

    def user_recipe_dir(self) -> Path:
        """Where new recipes (and copies of edited shipped ones) are written: ./recipes when that
        folder exists (and is not the shipped one), else the store's recipes/ ($TPRM_HOME/recipes)."""
        local = Path.cwd() / "recipes"
        if local.is_dir() and local.resolve() != PACKAGE_RECIPES:
            return local
        return self.store_dir / "recipes"

    def is_shipped(self, path: str | Path) -> bool:
        """True for a recipe file installed with tprm (edits are saved as a copy, never in place)."""
        return Path(path).resolve().parent == PACKAGE_RECIPES

    def recipe_save_path(self, path: str | Path) -> Path:
        """The file a save of recipe `path` writes: the file itself, or for a shipped recipe a copy
        of the same name in user_recipe_dir() (found before the shipped one from then on)."""
        return self.user_recipe_dir() / Path(path).name if self.is_shipped(path) else Path(path)

    def new_recipe(self, name: str, template: str = "quickstart", directory: Path | None = None) -> Path:
        from tprm.engine.recipe import NAME_PATTERN, parse_recipe, renamed

        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):  # as given, before any YAML
            raise BadInput(f"NAME: {name!r} is not a recipe name, allowed: lower-case letters, digits, "
                           "'-' and '_', starting with a letter or digit (max 64)")
        src = self.recipe_path(template)
        target_dir = Path(directory) if directory else self.user_recipe_dir()
        target = target_dir / f"{name}.yaml"
        if target.resolve().parent != target_dir.resolve():
            raise BadInput(f"NAME: {name!r} would write {target.resolve()}, outside {target_dir.resolve()}; "
                           "allowed: a plain recipe name")
        if target.exists():
            raise BadInput(f"{target}: already exists; choose another name or edit it")
        text = renamed(src.read_text(), name)
        parse_recipe(text, str(target))
        return self._write_atomic(target, text)

    def save_recipe(self, path: str | Path, text: str):
        """Validate `text` and only then replace the file: a bad recipe never overwrites a good one."""
        from tprm.engine.recipe import parse_recipe

        if self.is_shipped(path):
            raise BadInput(f"{path}: a shipped recipe is not edited in place; save to "
                           f"{self.recipe_save_path(path)} instead")
        recipe = parse_recipe(text, str(path))
        self._write_atomic(Path(path), text)
        return recipe

    @staticmethod
    def _write_atomic(path: Path, text: str) -> Path:
        from tprm.engine.artifacts import atomic_write

        return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))

    # -- plans ---------------------------------------------------------------------------------
    def data_identity(self, recipe, compute: bool = True, download: bool = False) -> dict | None:
        """The data's content identity, cached per recipe (see tprm.engine.planner)."""
        return self.planner.data_identity(recipe, compute=compute, download=download)

    def source_path(self, recipe) -> str | None:
        """The YAML file a loaded recipe (or a sub-grid of it) came from, if any."""
        return self._sources.get((recipe.name, recipe.hash))

    def plan(self, recipe, compute_identity: bool = True, download: bool = False):
        """The recipe's job plan. Only a run downloads data (download=True, as the recipe allows);
        anywhere else a missing data set raises DataNotFetched at once, never touching the network."""
        return self.planner.plan(self.load_recipe(recipe), compute_identity, download)

    def _job_hashes(self, recipe) -> list[str] | None:
        plan = self.plan(recipe, compute_identity=False)
        return None if plan is None else list(plan.jobs)

    def plan_summary(self, recipe, download: bool = False) -> dict:
        plan = self.plan(recipe, download=download)
        states = self.store.get_jobs(list(plan.jobs)) if self.store_dir.exists() else {}
        kinds: dict[str, dict] = {}
        jobs = []
        for job in plan.ordered():
            state = states.get(job.hash, {}).get("state", "new")
            k = kinds.setdefault(job.kind, {"total": 0, "done": 0})
            k["total"] += 1
            k["done"] += state == "done"
            jobs.append({"hash": job.hash, "kind": job.kind, "label": job.label, "state": state})
        return {"recipe": plan.recipe_name, "kinds": kinds, "jobs": jobs, "total": len(jobs),
                "done": sum(k["done"] for k in kinds.values())}

    # -- data sets ---------------------------------------------------------------------------
    def data_root(self) -> Path:
        """Where recipes without dataset.root read (and `data fetch` puts) torchvision sets."""
        return self.store_dir / "data"

    def data_list(self, root: str | Path | None = None) -> list[dict]:
        """Every data set tprm knows and whether its files are in the data folder."""
        from tprm.engine.datasets import dataset_rows

        return dataset_rows(Path(root) if root else self.data_root())

    def data_fetch(self, name: str, source: str | Path | None = None, root: str | Path | None = None,
                   progress: Callable[[str], None] | None = None) -> dict:
        """Put data set `name` into the data folder: from `source` (a folder or .tar.gz) or downloaded."""
        from tprm.engine.datasets import DATASET_NAMES, fetch

        if name not in DATASET_NAMES:
            raise BadInput(f"data set: '{name}' is not one of {', '.join(DATASET_NAMES)}")
        if source is not None and not Path(source).expanduser().exists():
            raise BadInput(f"--from: {source}: no such file or folder")
        return fetch(name, Path(root) if root else self.data_root(), source, progress)

    # -- runs ----------------------------------------------------------------------------------
    def run(self, recipe, device: str | None = None, jobs: int | None = None,
            progress: Callable[[dict], None] | None = None, log_path: str | None = None,
            backend: str | None = None, address: str | None = None) -> dict:
        """Run (or resume) a recipe in the foreground; returns the run summary.
        `backend`/`address` override execution.backend / execution.ray.address."""
        recipe = self.load_recipe(recipe)
        return self._run_plan(recipe, recipe, device, jobs, progress, log_path, backend, address)

    def _run_plan(self, recipe, owner, device=None, jobs=None, progress=None, log_path=None,
                  backend=None, address=None) -> dict:
        """Run `recipe`'s jobs, recorded as part of `owner` (the recipe itself, or the full
        recipe a case study measures a sub-grid of)."""
        from tprm.engine.launch import run_recipe

        return run_recipe(self.store, self.planner, recipe, owner, self.source_path(owner),
                          device=device, jobs=jobs, progress=progress, log_path=log_path,
                          backend=backend, address=address)

    def start_detached(self, recipe, device: str | None = None, jobs: int | None = None,
                       backend: str | None = None, address: str | None = None) -> dict:
        """Start the run in its own session (`python -m tprm.engine.launch`) so it survives the
        terminal (and the SSH link)."""
        from tprm.engine.launch import start_detached

        recipe = self.load_recipe(recipe)
        path = self.source_path(recipe) or str(self.recipe_path(recipe.name))
        return start_detached(self.store_dir, path, recipe.name, device, jobs, backend, address)

    @staticmethod
    def run_summary_lines(summary: dict) -> tuple[str, list[str]]:
        """A run summary as text: the result line and the failure/divergence lines (stderr)."""
        from tprm.engine.launch import summary_lines

        return summary_lines(summary)

    def cancel(self, recipe) -> int:
        from tprm.engine.rundir import request_cancel

        recipe = self.load_recipe(recipe)
        n = self.store.request_cancel(recipe.name)
        for run in self.store.get_runs(recipe.name):
            if run.get("state") == "running":
                request_cancel(self.store_dir, run["run_id"])
        return n

    def status(self, recipe=None) -> dict:
        """Runs, job counts per state and per-job progress (for one recipe or every stored one)."""
        from tprm.engine.plan import skipped_jobs
        from tprm.engine.rundir import job_progress
        from tprm.engine.status import recipe_status

        out = {"store": str(self.store_dir), "runs": [], "recipes": {}, "jobs": []}
        if not self.store_dir.exists():
            return out
        names = [self.load_recipe(recipe).name] if recipe is not None else None
        out["runs"] = runs = self.store.get_runs(names[0] if names else None)
        all_jobs = self.store.get_jobs()
        stored = {r["name"]: r for r in self.store.list_recipes()}
        progress = job_progress(self.store_dir, runs)
        skipped = skipped_jobs(all_jobs)  # behind a diverged job: settled, shown as "skipped"
        for name in names or sorted(stored):
            rec = stored.get(name, {})
            hashes = self._status_hashes(recipe if names else None, rec, all_jobs)
            work = self._job_work(recipe if names else None, rec)
            out["recipes"][name], rows = recipe_status(name, rec, hashes, all_jobs, skipped,
                                                       progress, work, runs)
            out["jobs"] += rows
        return out

    def _job_work(self, recipe, rec: dict) -> dict[str, float]:
        """Model-steps of each job of a recipe's plan (see tprm.engine.eta)."""
        from tprm.engine.eta import job_work
        from tprm.engine.recipe import parse_recipe

        try:
            r = self.load_recipe(recipe) if recipe is not None else parse_recipe(
                rec["yaml"], rec.get("path") or rec["name"])
            plan = self.plan(r, compute_identity=False)
        except (TprmError, *_input_errors(), KeyError):
            return {}
        if plan is None:  # no plan without reading the data: every job counts as one step
            return {}
        cache = self.__dict__.setdefault("_work_tables", {})  # plans are cached: so is their work
        if id(plan) not in cache:
            cache[id(plan)] = (plan, {h: job_work(j.kind, j.spec) for h, j in plan.jobs.items()})
        return cache[id(plan)][1]

    def _status_hashes(self, recipe, rec: dict, all_jobs: dict) -> list[str]:
        """A recipe's jobs: its plan (the file as it is now, else the text stored at its last
        run); jobs tagged with its hash when no plan can be made without reading data."""
        from tprm.engine.recipe import parse_recipe

        try:
            r = self.load_recipe(recipe) if recipe is not None else parse_recipe(
                rec["yaml"], rec.get("path") or rec["name"])
            plan = self.plan(r, compute_identity=False)
        except (TprmError, *_input_errors(), KeyError):
            plan = None
        if plan is not None:
            return [j.hash for j in plan.ordered()]
        return [h for h, j in all_jobs.items() if rec.get("hash") in (j.get("recipes") or [])]

    def logs(self, recipe, job: str | None = None) -> str:
        """The latest run log of a recipe, or one job's log (job hash prefix or label)."""
        from tprm.engine.artifacts import Artifacts

        recipe = self.load_recipe(recipe)
        if job is None:
            runs = [r for r in self.store.get_runs(recipe.name) if r.get("log")]
            if not runs:
                return ""
            log = Path(runs[-1]["log"])
            return log.read_text() if log.exists() else ""
        plan = self.plan(recipe)
        matches = [j for j in plan.jobs.values() if j.hash.startswith(job) or j.label == job]
        if not matches:
            raise BadInput(f"job: no job '{job}' in recipe {recipe.name}; give a hash prefix or a label")
        path = Artifacts(self.store_dir).log_path(matches[0].hash)
        return path.read_text() if path.exists() else ""

    # -- results -------------------------------------------------------------------------------
    def results(self, recipe) -> list[dict]:
        """One record per (temperature, density, dense seed) cell (see docs/ARCHITECTURE.md)."""
        from tprm.engine.results import cell_records

        plan = self.plan(self.load_recipe(recipe))
        return cell_records(self.store if self.store_dir.exists() else None, plan)

    def results_table(self, recipe) -> list[dict]:
        """Cell records, each with the regime of that dense seed's own measurements."""
        from tprm.analysis.regimes import classify_records

        recipe = self.load_recipe(recipe)
        settings = self.regime_settings(recipe)
        return [dict(r, regime=None if r["state"] == "failed" else classify_records(r, settings)["regime"])
                for r in self.results(recipe)]

    def result_rows(self, recipe) -> dict:
        """{"rows", "note"}: one row per cell record under RESULT_COLUMNS, with its dense seed's
        regime, the spread (max - min) of its retrain seeds' test errors and its cell's
        normalized error; `note` says why a column is empty (e.g. no test errors yet)."""
        records = self.results_table(recipe)
        note, norm = None, None
        try:
            norm = self.grid(recipe, "normalized_error", cells=records)
        except (TprmError, ValueError, KeyError) as exc:
            note = f"no normalized error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        rows = []
        for rec in records:
            seeds = [e for e in rec.get("test_error_seeds") or [] if isinstance(e, (int, float))]
            row = {c: rec.get(c) for c in RESULT_COLUMNS}
            row["spread"] = (max(seeds) - min(seeds)) if len(seeds) > 1 else None
            if row.get("normalized_error") is None and norm is not None:
                try:
                    row["normalized_error"] = norm.at(rec["temperature"], rec["density"])
                except KeyError:
                    pass
            rows.append(row)
        return {"rows": rows, "note": note}

    def results_csv(self, recipe) -> str:
        return rows_csv(self.result_rows(recipe)["rows"])

    # -- analysis ------------------------------------------------------------------------------
    def regime_settings(self, recipe):
        """The recipe's regime thresholds, each with where it came from (the file that set it, as
        the parsed recipe remembers, or the default)."""
        from tprm.analysis.regimes import settings_from_section

        recipe = self.load_recipe(recipe)
        path = self.source_path(recipe)
        where = Path(path).name if path else recipe.name
        return settings_from_section(recipe.regimes, lambda f: bool(path) and recipe.set_in_file(f"regimes.{f}"),
                                     f"recipe {where}")

    def _axes(self, recipe) -> dict:
        from tprm.engine.recipe import HOTTER

        return {"temperatures": list(recipe.temperature.values),
                "densities": list(recipe.densities), "knob": recipe.temperature.knob,
                "hotter": HOTTER[recipe.temperature.knob]}

    METRICS = METRICS

    def grid(self, recipe, metric: str, cells: list[dict] | None = None):
        """A Grid (or, for metric "regime", a RegimeGrid) over the recipe's plane."""
        from tprm.analysis.phase import build_grid, normalized_error_grid
        from tprm.analysis.regimes import regime_grid

        if metric not in self.METRICS:
            raise BadInput(f"--metric: '{metric}' is not a metric; use one of {', '.join(self.METRICS)}")
        recipe = self.load_recipe(recipe)
        cells = self.results(recipe) if cells is None else cells
        ax = self._axes(recipe)
        try:
            if metric == "regime":
                return regime_grid(cells, ax["temperatures"], ax["densities"], ax["knob"],
                                   ax["hotter"], self.regime_settings(recipe))
            if metric == "normalized_error":
                return normalized_error_grid(build_grid(cells, "test_error", **ax))
            return build_grid(cells, metric, **ax)
        except ValueError as exc:
            raise BadInput(str(exc)) from None

    def grid_json(self, recipe, metric: str) -> dict:
        g = self.grid(recipe, metric)
        from dataclasses import asdict

        return asdict(g)

    @staticmethod
    def color_depth(color_system: str | None) -> str:
        """The plot's colour depth (truecolor | 256 | 16 | none) for a terminal's colour system."""
        from tprm.analysis.colors import depth_of

        return depth_of(color_system)

    def plot(self, recipe, metric: str = "regime", width: int = 80, height: int = 20,
             table: bool = True, color: bool = True, page: int = 0, depth: str | None = None) -> str:
        """The metric over the temperature x density plane as terminal text (plus its numbers).

        ``depth`` "truecolor" | "256" | "16" draws a heat map of coloured blocks; "none" plain text."""
        from tprm.analysis.plots import render_grid, render_table

        g = self.grid(recipe, metric)
        text = render_grid(g, width=width, height=height, color=color, page=page, depth=depth)
        if table:
            text += "\n" + render_table(g, width=width)
        return text

    def demo_check(self, recipe) -> dict:
        """The (a)-(c) criteria of the quickstart on what was run (see analysis/checks.py)."""
        from tprm.analysis.checks import phenomenon_checks

        recipe = self.load_recipe(recipe)
        cells = self.results(recipe)
        s = self.regime_settings(recipe)
        return phenomenon_checks(self.grid(recipe, s.mc_metric, cells),
                                 self.grid(recipe, "test_error", cells), s.mc_limit)

    # -- case studies --------------------------------------------------------------------------
    def _measure(self, recipe, overrides: dict, progress=None) -> tuple[list[dict], dict]:
        """Run (or reuse) the jobs of a sub-grid of `recipe`; its cell records and run summary."""
        sub = recipe.with_overrides(overrides)
        self._sources[(sub.name, sub.hash)] = self.source_path(recipe)
        summary = self._run_plan(sub, recipe, progress=progress)
        if summary["state"] == "cancelled":  # a stopped case study must not go on measuring
            raise RunCancelled(f"{recipe.name}: case study stopped; finished jobs are kept and "
                               "running it again reuses them")
        return self.results(sub), summary

    @staticmethod
    def _match(value, values, what: str):
        from tprm.analysis.phase import same_value

        for v in values:
            if same_value(v, value):
                return v
        raise BadInput(f"--{what}: {value:g} is not on the recipe's grid; valid: "
                       + ", ".join(f"{v:g}" for v in values))

    @staticmethod
    def _density(value: float | None) -> float:
        """Accept 0.1 or 10 (percent)."""
        if value is None or value <= 0 or value > 100:
            raise BadInput(f"--density: {value} is not a density; use a fraction in (0, 1] or a percent")
        return value / 100 if value > 1 else value

    def case_direction(self, recipe, temperature: float | None, density: float | None,
                       evaluate: bool = False, progress=None) -> dict:
        """Case 1: which way to move the temperature knob (one cell, or the rule scored on all)."""
        from tprm.analysis.cases import direction_for_cell, format_direction, track_record_lines
        from tprm.analysis.phase import aggregate

        recipe = self.load_recipe(recipe)
        if evaluate:
            return self._direction_evaluation_report(recipe, progress)
        ax, settings = self._axes(recipe), self.regime_settings(recipe)
        t = self._match(temperature, ax["temperatures"], "temperature")
        d = self._match(self._density(density), ax["densities"], "density")
        cells, summary = self._measure(recipe, {"temperature": {"values": [t]}, "densities": [d]},
                                       progress)
        decision = direction_for_cell(cells, settings, knob=ax["knob"], hotter=ax["hotter"])
        out = decision.to_json()
        out.update(kind="direction", recipe=recipe.name, trainings_run=summary["executed"],
                   test_error=aggregate(cells, "test_error")[0],
                   text=format_direction(decision) + f"\n  jobs run now: {summary['executed']} "
                   f"(the rest reused from the store)")
        record = self._track_record(recipe)  # the rule's record on the whole grid, if run
        if record is not None:
            out.update(track_record=record.to_json(),
                       text=out["text"] + "\n" + "\n".join(track_record_lines(record, t, d)))
        return out

    def _direction_evaluation(self, recipe, cells: list[dict]):
        """Case study 1's rule scored on every cell of `cells` (ValueError when it cannot be)."""
        from tprm.analysis.cases import evaluate_direction_rule

        ax = self._axes(recipe)
        return evaluate_direction_rule(cells, self.regime_settings(recipe), recipe.cases.noise_floor,
                                       hotter=ax["hotter"], knob=ax["knob"],
                                       temperatures=ax["temperatures"], densities=ax["densities"])

    def _direction_evaluation_report(self, recipe, progress=None) -> dict:
        """Case 1 evaluated: run the whole grid (reusing what is done), then score the rule."""
        from tprm.analysis.cases import format_direction_evaluation

        summary = self.run(recipe, progress=progress)
        if summary["state"] == "cancelled":
            raise RunCancelled(f"{recipe.name}: case study stopped; finished jobs are kept")
        ev = self._direction_evaluation(recipe, self.results(recipe))
        out = ev.to_json()
        out.update(kind="direction-evaluation", recipe=recipe.name, run=summary,
                   text=format_direction_evaluation(ev, rows=True))
        return out

    def _track_record(self, recipe):
        """Case 1 scored on the recipe's full grid when every cell is done in the store, else None."""
        full = self.results(recipe)
        if not full or any(c["state"] != "done" for c in full):
            return None
        return self._direction_evaluation(recipe, full)

    def case_select(self, recipe, density: float, progress=None) -> dict:
        """Case 2: which dense model (temperature) to prune at a target density."""
        from tprm.analysis.candidates import selection_candidates
        from tprm.analysis.cases import format_selection, select_model

        recipe = self.load_recipe(recipe)
        ax, settings = self._axes(recipe), self.regime_settings(recipe)
        d = self._match(self._density(density), ax["densities"], "density")
        cells, summary = self._measure(recipe, {"densities": [d]}, progress)
        short = recipe.cases.select_retrain_epochs
        short_cells = self._measure(recipe, {"densities": [d], "retrain": {
            "epochs": short, "iterations": None,
            "last_epochs": min(short, recipe.retrain.last_epochs)}}, progress)[0] if short else None
        candidates = selection_candidates(cells, short_cells, ax["temperatures"], ax["knob"],
                                          settings.cka_metric)
        try:
            sel = select_model(candidates, settings)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        out = sel.to_json()
        out.update(kind="select", recipe=recipe.name, density=d, short_retrain_epochs=short,
                   trainings_run=summary["executed"],
                   text=format_selection(sel) + "\n  " + _select_note(short, recipe.retrain.epochs))
        return out

    def case_sam(self, recipe, density: float, rho: float, progress=None) -> dict:
        """Case 3: walk SAM's rho by the regime rule at a target density."""
        from tprm.analysis.cases import sam_walk

        recipe = self.load_recipe(recipe)
        if recipe.temperature.knob != "sam_rho":
            raise BadInput(f"temperature.knob: case sam needs a recipe whose knob is sam_rho, "
                           f"{recipe.name} uses {recipe.temperature.knob}")
        d = self._match(self._density(density), list(recipe.densities), "density")
        ladder = list(recipe.temperature.values)
        on_ladder = any(abs(v - rho) < 1e-12 for v in ladder)
        run_counts = {"run": 0, "reused": 0}
        c = recipe.cases
        try:
            walk = sam_walk(self._sam_measure(recipe, d, run_counts, progress), rho,
                            ladder if on_ladder else None, c.sam_rho_min, c.sam_rho_max, c.sam_max_steps,
                            self.regime_settings(recipe), near_mc=c.near_mc, near_cka=c.near_cka,
                            extra_seeds=c.extra_dense_seeds)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        return self._sam_report(recipe, walk, d, run_counts)

    def _sam_measure(self, recipe, d: float, run_counts: dict, progress=None):
        """Case 3's measurement at density `d`: measure(rho, extra_seeds) -> cells, counting jobs."""
        def measure(r: float, extra_seeds: int = 0) -> list[dict]:
            seeds = list(recipe.dense_seeds)  # a point in doubt gets `extra_seeds` more dense seeds
            seeds += [max(seeds) + k for k in range(1, extra_seeds + 1)]
            cells, summary = self._measure(recipe, {"temperature": {"values": [r]}, "densities": [d],
                                                    "dense_seeds": seeds}, progress)
            run_counts["run"] += summary["executed"]
            run_counts["reused"] += sum(summary["counts"].values()) - summary["executed"]
            return cells
        return measure

    def _sam_report(self, recipe, walk, d: float, run_counts: dict) -> dict:
        """Case 3's walk as JSON + text, beside the grid search over rho once that is measured."""
        from tprm.analysis.cases import format_sam_walk, grid_search_best

        full = [x for x in self.results(recipe) if abs(x["density"] - d) < 1e-12]
        grid = grid_search_best(full, d) if all(x["state"] == "done" for x in full) else None
        out = walk.to_json()
        out.update(kind="sam", recipe=recipe.name, density=d, jobs=run_counts,
                   grid_search=grid.to_json() if grid else None,
                   text=format_sam_walk(walk, grid) + f"\n  jobs run now: {run_counts['run']}, "
                   f"reused: {run_counts['reused']}" + ("" if grid else
                   "\n  grid search: not all rho values are measured at this density yet "
                   f"(run `tprm run {recipe.name}` for the comparison)"))
        return out

    # -- detached case studies -----------------------------------------------------------------
    # A case study started from the TUI runs as its own process (`python -m tprm.case_job DIR`)
    # in its own session, like `start_detached`: quitting the UI does not stop it. Its folder
    # store/cases/<id>/ holds request.json, progress.json (the runner's latest snapshot),
    # report.json (the answer, or {"error"} / {"cancelled"}), cancel (stop request) and log.
    CASE_KINDS = ("direction", "select", "sam")

    def start_case(self, kind: str, recipe, **args) -> dict:
        """Start case study `kind` detached; returns its record (id, pid, dir, log)."""
        from tprm.engine.casedir import new_case, start_process

        if kind not in self.CASE_KINDS:
            raise BadInput(f"case: '{kind}' is not a case study; use one of {', '.join(self.CASE_KINDS)}")
        recipe = self.load_recipe(recipe)
        path = self.source_path(recipe) or str(self.recipe_path(recipe.name))
        request, folder = new_case(self.store_dir, kind, recipe.name, path, args)
        proc = start_process(folder, self.store_dir)
        self._case_procs = getattr(self, "_case_procs", {})
        self._case_procs[request["id"]] = proc  # polled, so a finished child is reaped (not a zombie)
        return dict(request, pid=proc.pid, dir=str(folder), log=str(folder / "log"), state="running")

    def case_state(self, case_id: str) -> dict:
        """A detached case study now: state running|done|cancelled|failed, progress, report, error."""
        from tprm.engine.casedir import cases_root, read_case

        state = read_case(cases_root(self.store_dir) / case_id, lambda pid: self._case_alive(case_id, pid))
        if state is None:
            raise BadInput(f"case {case_id}: no such case study in {cases_root(self.store_dir)}")
        return state

    def _case_alive(self, case_id: str, pid) -> bool:
        proc = getattr(self, "_case_procs", {}).get(case_id)
        if proc is not None:
            return proc.poll() is None
        from tprm.engine.storebase import pid_alive

        return pid_alive(pid)

    @staticmethod
    def write_case_file(folder: str | Path, name: str, data: dict) -> None:
        """Replace `name` (progress.json / report.json) of a case study's folder atomically."""
        from tprm.engine.casedir import write_json

        write_json(Path(folder) / name, data)

    def case_studies(self, kind: str | None = None) -> list[dict]:
        """Every detached case study of this store (of one kind), oldest first, with its state."""
        from tprm.engine.casedir import case_ids

        out = [self.case_state(i) for i in case_ids(self.store_dir) if kind is None or i.startswith(f"{kind}-")]
        return sorted(out, key=lambda c: c.get("started") or 0)

    def cancel_case(self, case_id: str) -> bool:
        """Stop a detached case study through the runner's cancel path: its running jobs stop at
        their next progress tick and are recorded as cancelled (resumable). False if not running."""
        state = self.case_state(case_id)
        if state["state"] != "running":
            return False
        Path(state["dir"], "cancel").touch()
        self.cancel_runs_of_pid(state["pid"])
        return True

    def cancel_runs_of_pid(self, pid) -> int:
        """Touch the cancel file of every running run of process `pid` (what `cancel` does per recipe)."""
        if not self.store_dir.exists() or pid is None:
            return 0
        from tprm.engine.rundir import request_cancel

        n = 0
        for run in self.store.get_runs():
            if run.get("pid") == pid and run.get("state") in ("running", "stale"):
                request_cancel(self.store_dir, run["run_id"])
                n += 1
        return n

    # -- store maintenance ---------------------------------------------------------------------
    def migrate(self) -> dict:
        return self.store.migrate()

    def gc(self, dry_run: bool = False, force: bool = False, purge: bool = False,
           max_fraction: float | None = None) -> dict:
        """Collect unowned files into the store's trash (see Store.gc); `purge` then empties it."""
        from tprm.engine.store import GC_MAX_FRACTION

        if max_fraction is not None and not 0 <= max_fraction <= 1:
            raise BadInput(f"--max-fraction: {max_fraction} must be between 0 and 1")
        moved = self.store.gc(dry_run=dry_run, force=force,
                              max_fraction=GC_MAX_FRACTION if max_fraction is None else max_fraction)
        purged = self.store.purge_trash(dry_run=dry_run) if purge else 0
        return {"moved": [str(p) for p in moved], "purged": purged, "dry_run": dry_run,
                "trash": str(self.store_dir / "trash")}

    def store_check(self, deep: bool = True) -> dict:
        """The store's health report (db, records, artifacts); reads only."""
        return self.store.check(deep=deep)

    def store_repair(self) -> dict:
        """Rebuild the job index from the artifact metadata and the newest valid backup."""
        return self.store.repair()

    def export(self, recipe, path: str | Path) -> Path:
        recipe = self.load_recipe(recipe)
        self.store.export_recipe(recipe.name, Path(path))
        return Path(path)

    def import_bundle(self, path: str | Path) -> dict:
        if not Path(path).exists():
            raise BadInput(f"{path}: no such file; give a bundle written by `tprm export`")
        return self.store.import_bundle(Path(path))

    # -- reports and comparisons ---------------------------------------------------------------
    REPORT_METRICS = ("test_error", "normalized_error", "mc", "cka", "hessian_trace", "hessian_top")

    def _report_grids(self, recipe, cells: list[dict]) -> dict:
        """{grid metric name: Grid} of the report's metrics (Hessian ones only when measured)."""
        grids = {}
        for metric in self.REPORT_METRICS:
            g = self.grid(recipe, metric, cells)
            if metric.startswith("hessian") and all(v is None for row in g.mean for v in row):
                continue
            grids[g.metric] = g
        return grids

    def _report_provenance(self, recipe) -> dict:
        """Versions, devices, hosts, dates and compute time from the recipe's job records."""
        from tprm.analysis.provenance import provenance_summary

        plan = self.plan(recipe, compute_identity=False)
        hashes = list(plan.jobs) if plan is not None else []
        jobs = self.store.get_jobs(hashes) if hashes else {}
        return provenance_summary(jobs, len(hashes), self.data_identity(recipe, compute=False))

    def _report_cases(self, recipe, cells: list[dict]) -> tuple[str | None, str]:
        """Case study 1 scored on the stored grid (pure analysis, no training) when it is complete."""
        from tprm.analysis.cases import format_direction_evaluation

        if not cells or any(c["state"] != "done" for c in cells):
            return None, ("Case study 1 (direction rule scored on the grid) needs a complete grid; "
                          "case studies 2 and 3 run their own trainings: see `tprm case --help`.")
        try:
            ev = self._direction_evaluation(recipe, cells)
        except ValueError as exc:
            return None, f"Case study 1 could not be scored: {exc}"
        return format_direction_evaluation(ev, rows=False), (
            "Case study 1: the direction rule scored on every cell of the stored grid (computed from "
            "the store, no training). Case studies 2 and 3 train their own models: `tprm case --help`.")

    def compare(self, a, b, metric: str = "test_error", other: "Service | None" = None,
                width: int = 80, color: bool = False) -> dict:
        """Recipe `a` against `b` (read from `other`'s store when given) on `metric` and regimes.

        Returns the aligned grids, the difference map B - A, the regime changes and the terminal
        text; BadInput (one line naming the axis) when the grids cannot be aligned.
        """
        from tprm.analysis.compare import AxisMismatch, compare_grids

        if metric == "regime":
            raise BadInput("--metric: compare always shows the regime maps; choose a numeric metric "
                           f"({', '.join(m for m in self.METRICS if m != 'regime')})")
        svc_b = other or self
        ra_recipe, rb_recipe = self.load_recipe(a), svc_b.load_recipe(b)
        cells_a, cells_b = self.results(ra_recipe), svc_b.results(rb_recipe)
        self._require_results(ra_recipe, cells_a)
        svc_b._require_results(rb_recipe, cells_b)
        ga, gb = self.grid(ra_recipe, metric, cells_a), svc_b.grid(rb_recipe, metric, cells_b)
        try:  # e.g. a median split on an incomplete grid: the metric still compares
            ra, rb = self.grid(ra_recipe, "regime", cells_a), svc_b.grid(rb_recipe, "regime", cells_b)
        except BadInput:
            ra = rb = None
        try:
            return compare_grids((ra_recipe.name, rb_recipe.name), metric, ga, gb, ra, rb, width, color)
        except AxisMismatch as exc:
            raise BadInput(f"compare {ra_recipe.name} {rb_recipe.name}: {exc}") from None

    def report(self, recipe, out: str | Path | None = None, fmt: str = "md", compare=None,
               other: "Service | None" = None, metric: str = "test_error") -> dict:
        """Write report.md (or report.html), one PNG + SVG per figure, from the store only.

        Never starts training. `compare` adds the comparison with another recipe (read from
        `other`'s store when given). Returns {"dir", "report", "files"}.
        """
        from tprm.analysis.figures import report_figures
        from tprm.analysis.report import METRIC_TITLES, report_markdown

        if fmt not in ("md", "html"):
            raise BadInput(f"--format: '{fmt}' is not a report format; use md or html")
        recipe = self.load_recipe(recipe)
        cells = self._require_results(recipe, self.results(recipe), "a report never starts training")
        folder = Path(out) if out else Path.cwd() / "reports" / recipe.name
        folder.mkdir(parents=True, exist_ok=True)
        grids = self._report_grids(recipe, cells)
        try:
            regimes, regime_error = self.grid(recipe, "regime", cells), None
        except BadInput as exc:  # e.g. a median split on an incomplete grid: the metrics still report
            regimes, regime_error = None, str(exc)
        files, figs, regime_fig, threshold_lines = report_figures(
            grids, regimes, folder, recipe.name, len(recipe.dense_seeds), METRIC_TITLES)
        comparison = None
        if compare is not None:
            comparison_files, comparison = self._report_comparison(recipe, compare, other, metric, folder)
            files += comparison_files
        ctx = self._report_context(recipe, cells, grids, regimes, regime_error, figs, regime_fig,
                                   threshold_lines, comparison)
        report_path = self._write_report(folder, fmt, report_markdown(ctx), recipe.name)
        files.append(report_path)
        return {"dir": str(folder), "report": str(report_path), "files": [str(f) for f in files]}

    def _report_comparison(self, recipe, compare, other, metric: str, folder: Path) -> tuple[list, dict]:
        """The report's comparison figure files and its comparison section."""
        from tprm.analysis.figures import comparison_figures

        c = self.compare(recipe, compare, metric, other=other, width=100)
        files, figs = comparison_figures(c, folder, metric)
        return files, {"other": c["b"], "text": c["text"], "figures": figs}

    def _write_report(self, folder: Path, fmt: str, text: str, name: str) -> Path:
        """report.md, or report.html with the figures inlined."""
        from tprm.analysis.report import markdown_to_html

        if fmt == "html":
            page = markdown_to_html(text, lambda f: (folder / f).read_bytes(), f"tprm report: {name}")
            return self._write_atomic(folder / "report.html", page)
        return self._write_atomic(folder / "report.md", text)

    def _require_results(self, recipe, cells: list[dict], why: str | None = None) -> list[dict]:
        """`cells` (the recipe's records); BadInput when nothing of it has run yet."""
        if not any(c["state"] in ("done", "partial", "diverged") for c in cells):
            raise BadInput(f"{recipe.name}: no results in {self.store_dir} yet; run `tprm run "
                           f"{recipe.name}` first" + (f" ({why})" if why else ""))
        return cells

    def _report_context(self, recipe, cells, grids, regimes, regime_error, figs, regime_fig,
                        threshold_lines, comparison) -> dict:
        """What report_markdown renders."""
        cases, cases_note = self._report_cases(recipe, cells)
        source = self.source_path(recipe)
        return {"recipe": {"name": recipe.name, "description": recipe.description, "hash": recipe.hash,
                           "text": Path(source).read_text() if source else recipe.to_yaml(),
                           "source": source, "knob": recipe.temperature.knob,
                           "hotter": self._axes(recipe)["hotter"],
                           "temperatures": list(recipe.temperature.values),
                           "densities": list(recipe.densities), "dense_seeds": list(recipe.dense_seeds),
                           "retrain_seeds": list(recipe.retrain.seeds)},
                "cells_done": sum(c["state"] == "done" for c in cells), "cells_total": len(cells),
                "grids": grids, "regimes": regimes, "regime_error": regime_error,
                "figures": figs, "regime_figure": regime_fig,
                "threshold_lines": threshold_lines, "cases": cases, "cases_note": cases_note,
                "comparison": comparison, "provenance": self._report_provenance(recipe)}

def _select_note(short: int | None, epochs: int | None) -> str:
    """Case 2's note on how mc/CKA were measured."""
    if short:
        return (f"mc/CKA measured after a shortened retrain of {short} epochs (full: {epochs or 0}); "
                "the oracle uses the full retrains")
    return ("mc/CKA measured on the full retrains (set cases.select_retrain_epochs to measure "
            "after a shortened retrain)")
