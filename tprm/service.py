"""The one API both views (CLI and TUI) call.

Everything here returns plain data and raises `TprmError` subclasses with one-line messages:
`BadInput` (a recipe, argument or store file is wrong: exit code 2) or `RunFailed` (exit 1).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
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


def _bad_input(exc: Exception) -> BadInput:
    return BadInput(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _input_errors():
    """Exception types that mean the user's input (recipe, data, store file) is at fault."""
    from tprm.engine.artifacts import ArtifactError
    from tprm.engine.recipe import RecipeError
    from tprm.engine.store import StoreError
    from tprm.science.data import DataMissingError

    return (RecipeError, StoreError, ArtifactError, DataMissingError)


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
                raise _bad_input(exc) from None
        return call

    for name, fn in list(vars(cls).items()):
        if callable(fn) and not name.startswith("_") and not isinstance(fn, type):
            setattr(cls, name, wrap(fn))
    return cls


@_converting_input_errors
class Service:
    """Recipes, runs, results, plots and case studies over one store directory."""

    def __init__(self, store_dir: str | Path | None = None):
        from tprm.engine.store import default_store_dir

        self.store_dir = Path(default_store_dir(store_dir)).expanduser()
        self._store = None
        self._sources: dict[tuple[str, str], str | None] = {}
        self._plans: dict[tuple, object] = {}
        self._explicit_regimes: dict[tuple, set] = {}

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
        dirs = [Path.cwd() / "recipes", self.store_dir / "recipes", PACKAGE_RECIPES]
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

    def recipe_text(self, recipe) -> str:
        return self.recipe_path(recipe).read_text()

    def list_recipes(self) -> list[dict]:
        from tprm.engine.recipe import HOTTER, load_recipe

        rows, seen = [], set()
        jobs = self.store.get_jobs() if self.store_dir.exists() else {}
        for d in self.recipe_dirs():
            for path in sorted(d.glob("*.y*ml")) if d.exists() else []:
                if path.stem in seen:
                    continue
                seen.add(path.stem)
                row = {"name": path.stem, "path": str(path), "valid": True, "error": None,
                       "knob": None, "hotter": None, "grid": None, "jobs_done": 0, "jobs_total": None}
                try:
                    r = load_recipe(path)
                    row.update(name=r.name, knob=r.temperature.knob,
                               hotter=HOTTER[r.temperature.knob],
                               grid=f"{len(r.temperature.values)}x{len(r.densities)}")
                    hashes = self._job_hashes(r)
                    if hashes is not None:
                        row["jobs_total"] = len(hashes)
                        row["jobs_done"] = sum(1 for h in hashes
                                               if jobs.get(h, {}).get("state") == "done")
                except _input_errors() as exc:
                    row.update(valid=False, error=str(exc).splitlines()[0])
                rows.append(row)
        return rows

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

    def new_recipe(self, name: str, template: str = "quickstart", directory: Path | None = None) -> Path:
        from tprm.engine.recipe import parse_recipe

        src = self.recipe_path(template)
        target_dir = Path(directory) if directory else Path.cwd() / "recipes"
        target = target_dir / f"{name}.yaml"
        if target.exists():
            raise BadInput(f"{target}: already exists; choose another name or edit it")
        text = src.read_text()
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("name:"):
                lines[i] = f"name: {name}"
                break
        else:
            lines.insert(0, f"name: {name}")
        text = "\n".join(lines) + "\n"
        parse_recipe(text, str(target))
        return self._write_atomic(target, text)

    def save_recipe(self, path: str | Path, text: str):
        """Validate `text` and only then replace the file: a bad recipe never overwrites a good one."""
        from tprm.engine.recipe import parse_recipe

        recipe = parse_recipe(text, str(path))
        self._write_atomic(Path(path), text)
        return recipe

    @staticmethod
    def _write_atomic(path: Path, text: str) -> Path:
        from tprm.engine.artifacts import atomic_write

        return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))

    # -- plans ---------------------------------------------------------------------------------
    def _identity_cache(self, recipe) -> Path:
        return self.store_dir / "identity" / f"{recipe.hash}.json"

    def data_identity(self, recipe, compute: bool = True) -> dict | None:
        """The data's content identity (generator settings or file checksums), cached per recipe."""
        from tprm.science.data import data_identity

        cache = self._identity_cache(recipe)
        if cache.exists():
            return json.loads(cache.read_text())
        if not compute:
            return None
        spec = recipe.data_spec()
        if spec.root is None:
            from dataclasses import replace

            spec = replace(spec, root=str(self.store_dir / "data"))
        ident = data_identity(spec)
        self._write_atomic(cache, json.dumps(ident, sort_keys=True))
        return ident

    @staticmethod
    def _init_checksum(recipe) -> str | None:
        """Content hash of the dense init file (recipes store its path absolute)."""
        if not recipe.dense.init:
            return None
        import hashlib

        return hashlib.sha256(Path(recipe.dense.init).read_bytes()).hexdigest()

    def source_path(self, recipe) -> str | None:
        """The YAML file a loaded recipe (or a sub-grid of it) came from, if any."""
        return self._sources.get((recipe.name, recipe.hash))

    def plan(self, recipe, compute_identity: bool = True):
        from tprm.engine.plan import build_plan

        recipe = self.load_recipe(recipe)
        ident = self.data_identity(recipe, compute=compute_identity)
        if ident is None:
            return None
        init = self._init_checksum(recipe)
        key = (recipe.name, recipe.hash, json.dumps(ident, sort_keys=True), init)
        if key not in self._plans:  # plans are pure functions of these: polls reuse them
            self._plans[key] = build_plan(recipe, ident, init)
        return self._plans[key]

    def _job_hashes(self, recipe) -> list[str] | None:
        plan = self.plan(recipe, compute_identity=False)
        return None if plan is None else list(plan.jobs)

    def plan_summary(self, recipe) -> dict:
        plan = self.plan(recipe)
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

    # -- runs ----------------------------------------------------------------------------------
    def run(self, recipe, device: str | None = None, jobs: int | None = None,
            progress: Callable[[dict], None] | None = None, log_path: str | None = None,
            backend: str | None = None, address: str | None = None) -> dict:
        """Run (or resume) a recipe in the foreground; returns the run summary.
        `backend`/`address` override execution.backend / execution.ray.address."""
        recipe = self.load_recipe(recipe)
        return self._run_plan(recipe, recipe, device, jobs, progress, log_path, backend, address)

    @staticmethod
    def _executor(recipe, device: str, jobs: int | None, backend: str | None = None,
                  address: str | None = None):
        """None for the local backend; a RayExecutor for ray (BadInput when Ray is missing)."""
        ex = recipe.execution
        if (backend or ("ray" if address else ex.backend)) != "ray":
            return None
        from tprm.engine.executors.ray import BackendError, RayExecutor, RaySettings

        settings = {f: getattr(ex.ray, f) for f in ("address", "cpus_per_group", "gpus_per_group",
                                                    "max_retries", "max_groups", "ship_code")}
        if address is not None:
            settings["address"] = address
        try:
            return RayExecutor(RaySettings(**settings), device=device, jobs=jobs)
        except BackendError as exc:
            raise BadInput(str(exc)) from None

    def _run_plan(self, recipe, owner, device=None, jobs=None, progress=None, log_path=None,
                  backend=None, address=None) -> dict:
        """Run `recipe`'s jobs, recorded as part of `owner` (the recipe itself, or the full
        recipe a case study measures a sub-grid of)."""
        from tprm.engine.runner import Runner

        ex = recipe.execution
        executor = self._executor(recipe, device or ex.device, jobs, backend, address)
        plan = self.plan(recipe)
        if executor is not None:
            from tprm.engine.executors.ray import BackendError

            try:
                executor.connect()  # the cluster is unreachable or too small: bad input
            except BackendError as exc:
                raise BadInput(str(exc)) from None
        path = self.source_path(owner)
        self.store.put_recipe(owner.name, owner.hash, path,
                              Path(path).read_text() if path else owner.to_yaml())
        runner = Runner(self.store, plan, owner.name, owner.hash,
                        device=device or ex.device, jobs=jobs or ex.jobs, on_error=ex.on_error,
                        fuse=ex.fuse, max_fused=ex.max_fused, log_path=log_path,
                        display=progress, runtime={"init_path": recipe.dense.init},
                        executor=executor)
        try:
            summary = runner.run()
        finally:
            if executor is not None:
                executor.close()
        return {"run_id": summary.run_id, "state": summary.state, "counts": summary.counts,
                "executed": summary.executed, "failed": summary.failed,
                "exit_code": summary.exit_code}

    def start_detached(self, recipe, device: str | None = None, jobs: int | None = None,
                       backend: str | None = None, address: str | None = None) -> dict:
        """Start `tprm run` in its own session so it survives the terminal (and the SSH link)."""
        recipe = self.load_recipe(recipe)
        path = self.source_path(recipe) or str(self.recipe_path(recipe.name))
        logs = self.store_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"run-{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        cmd = [sys.executable, "-m", "tprm", "run", str(Path(path).resolve()),
               "--store", str(self.store_dir), "--log", str(log)]
        if device:
            cmd += ["--device", device]
        if jobs:
            cmd += ["--jobs", str(jobs)]
        if backend:
            cmd += ["--backend", backend]
        if address:
            cmd += ["--address", address]
        with open(log, "ab") as fh:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh,
                                    start_new_session=True, cwd=os.getcwd())
        return {"pid": proc.pid, "log": str(log), "recipe": recipe.name}

    def cancel(self, recipe) -> int:
        recipe = self.load_recipe(recipe)
        n = self.store.request_cancel(recipe.name)
        for run in self.store.get_runs(recipe.name):
            if run.get("state") == "running":
                d = self.store_dir / "runs" / run["run_id"]
                d.mkdir(parents=True, exist_ok=True)
                (d / "cancel").touch()
        return n

    def status(self, recipe=None) -> dict:
        """Runs, job counts per state and per-job progress (for one recipe or every stored one)."""
        if not self.store_dir.exists():
            return {"store": str(self.store_dir), "runs": [], "recipes": {}, "jobs": []}
        names = [self.load_recipe(recipe).name] if recipe is not None else None
        runs = self.store.get_runs(names[0] if names else None)
        all_jobs = self.store.get_jobs()
        out = {"store": str(self.store_dir), "runs": runs, "recipes": {}, "jobs": []}
        stored = {r["name"]: r for r in self.store.list_recipes()}
        progress = self._progress(runs)
        for name in names or sorted(stored):
            rec = stored.get(name, {})
            hashes = self._status_hashes(recipe if names else None, rec, all_jobs)
            counts: dict[str, int] = {}
            for h in hashes:
                state = all_jobs.get(h, {}).get("state", "new")
                counts[state] = counts.get(state, 0) + 1
            out["recipes"][name] = {"hash": rec.get("hash"), "total": len(hashes), "counts": counts}
            for h in hashes:
                j = all_jobs.get(h)
                if j is not None:
                    out["jobs"].append({"hash": h, "recipe": name, "kind": j["kind"],
                                        "label": j.get("label"), "state": j["state"],
                                        "error": j.get("error"), "progress": progress.get(h),
                                        "node": _node_of(progress.get(h), j)})
        return out

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

    def _progress(self, runs: list[dict]) -> dict[str, dict]:
        out = {}
        for run in runs:
            if run.get("state") != "running":
                continue
            for f in (self.store_dir / "runs" / run["run_id"] / "progress").glob("*.json"):
                try:
                    p = json.loads(f.read_text())
                except (OSError, ValueError):
                    continue
                for h in p.get("hashes", []):
                    out[h] = {"done": p["done"], "total": p["total"], "started": p["started"],
                              "updated": p["updated"], "node": p.get("node")}
        return out

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
        recipe = self.load_recipe(recipe)
        plan = self.plan(recipe)
        jobs = self.store.get_jobs(list(plan.jobs)) if self.store_dir.exists() else {}
        res = self.store.results(list(plan.jobs)) if self.store_dir.exists() else {}
        return [self._cell_record(cell, jobs, res) for cell in plan.cells]

    @staticmethod
    def _cell_record(cell, jobs: dict, res: dict) -> dict:
        def state(h):
            return jobs.get(h, {}).get("state", "new")

        rec = {"temperature": cell.temperature, "density": cell.density,
               "dense_seed": cell.dense_seed, "state": "missing"}
        dense = res.get(cell.dense) or {}
        ck = (dense.get("checkpoints") or {}).get(str(cell.epoch)) or {}
        rec["dense_test_error"] = ck.get("test_error")
        retrains = [res.get(h) for h in cell.retrains]
        done = [r for r, h in zip(retrains, cell.retrains) if r and state(h) == "done"]
        errs = [r["test_error"] for r in done]
        rec["test_error_seeds"] = errs
        for key in ("test_error", "train_loss", "train_error", "test_loss"):
            vals = [r[key] for r in done if r.get(key) is not None]
            rec[key] = sum(vals) / len(vals) if vals else None
        pairs = res.get(cell.pairs) if state(cell.pairs) == "done" else None
        for key in ("mc", "mc_pairs", "mc_loss", "endpoint_gap", "cka", "cka_pairs", "cka_logits"):
            rec[key] = pairs.get(key) if pairs else None
        hs = [res.get(h) for h in cell.hessians if state(h) == "done"]
        rec["hessian_trace"] = (sum(h["hessian_trace"] for h in hs) / len(hs)) if hs else None
        rec["hessian_top"] = (sum(h["hessian_top"] for h in hs) / len(hs)) if hs else None
        all_states = [state(h) for h in (cell.dense, cell.prune, *cell.retrains, cell.pairs)]
        if "diverged" in all_states:
            rec["state"] = "diverged"
        elif all(s == "done" for s in all_states):
            rec["state"] = "done"
        elif any(s == "done" for s in all_states):
            rec["state"] = "partial"
        rec["jobs"] = {"dense": cell.dense, "prune": cell.prune, "retrains": list(cell.retrains),
                       "pairs": cell.pairs}
        rec["job_states"] = dict(zip(("dense", "prune", *[f"retrain{i}" for i in range(len(cell.retrains))], "pairs"), all_states))
        return rec

    def results_table(self, recipe) -> list[dict]:
        """Cell records, each with the regime of that dense seed's own measurements."""
        from tprm.analysis.regimes import classify_records

        recipe = self.load_recipe(recipe)
        settings = self.regime_settings(recipe)
        return [dict(r, regime=classify_records(r, settings)["regime"])
                for r in self.results(recipe)]

    def results_csv(self, recipe) -> str:
        cols = ["temperature", "density", "dense_seed", "state", "test_error", "train_loss",
                "mc", "cka", "regime", "dense_test_error"]
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        for r in self.results_table(recipe):
            w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])
        return buf.getvalue()

    # -- analysis ------------------------------------------------------------------------------
    def regime_settings(self, recipe):
        """The recipe's regime thresholds, each with where it came from."""
        import yaml

        from tprm.analysis.regimes import RegimeSettings

        recipe = self.load_recipe(recipe)
        path = self.source_path(recipe)
        explicit: dict = {}
        if path:
            try:
                key = (path, Path(path).stat().st_mtime_ns)
                if key not in self._explicit_regimes:  # polls must not re-parse the file
                    doc = yaml.safe_load(Path(path).read_text()) or {}
                    self._explicit_regimes[key] = set(doc.get("regimes") or {})
                explicit = self._explicit_regimes[key]
            except (OSError, yaml.YAMLError, AttributeError, TypeError):
                explicit = set()
        where = Path(path).name if path else recipe.name
        r = recipe.regimes
        fields = ("mc_on", "mc_threshold", "mc_loss_threshold", "cka_threshold", "cka_output",
                  "split", "max_endpoint_gap")
        sources = {f: (f"recipe {where} regimes.{f}" if f in explicit else "tprm default")
                   for f in fields}
        return RegimeSettings(**{f: getattr(r, f) for f in fields}, sources=sources)

    def _axes(self, recipe) -> dict:
        from tprm.engine.recipe import HOTTER

        return {"temperatures": list(recipe.temperature.values),
                "densities": list(recipe.densities), "knob": recipe.temperature.knob,
                "hotter": HOTTER[recipe.temperature.knob]}

    METRICS = ("test_error", "normalized_error", "mc", "cka", "regime", "train_loss",
               "train_error", "test_loss", "mc_loss", "cka_logits", "endpoint_gap",
               "dense_test_error", "hessian_trace", "hessian_top")

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

    def plot(self, recipe, metric: str = "regime", width: int = 80, height: int = 20,
             table: bool = True, color: bool = True, page: int = 0) -> str:
        """The metric over the temperature x density plane as terminal text (plus its numbers)."""
        from tprm.analysis.plots import render_grid, render_table

        g = self.grid(recipe, metric)
        text = render_grid(g, width=width, height=height, color=color, page=page)
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
    def _density(value: float) -> float:
        """Accept 0.1 or 10 (percent)."""
        if value is None or value <= 0 or value > 100:
            raise BadInput(f"--density: {value} is not a density; use a fraction in (0, 1] or a percent")
        return value / 100 if value > 1 else value

    def case_direction(self, recipe, temperature: float | None, density: float | None,
                       evaluate: bool = False, progress=None) -> dict:
        """Case 1: which way to move the temperature knob (one cell, or the rule scored on all)."""
        from tprm.analysis.cases import (direction_for_cell, evaluate_direction_rule,
                                         format_direction, format_direction_evaluation)
        from tprm.analysis.phase import aggregate

        recipe = self.load_recipe(recipe)
        ax, settings = self._axes(recipe), self.regime_settings(recipe)
        if evaluate:
            summary = self.run(recipe, progress=progress)
            cells = self.results(recipe)
            ev = evaluate_direction_rule(cells, settings, recipe.cases.noise_floor,
                                         hotter=ax["hotter"], knob=ax["knob"],
                                         temperatures=ax["temperatures"], densities=ax["densities"])
            out = ev.to_json()
            out.update(kind="direction-evaluation", recipe=recipe.name, run=summary,
                       text=format_direction_evaluation(ev, rows=True))
            return out
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
        return out

    def case_select(self, recipe, density: float, progress=None) -> dict:
        """Case 2: which dense model (temperature) to prune at a target density."""
        from tprm.analysis.cases import format_selection, select_model
        from tprm.analysis.phase import aggregate

        recipe = self.load_recipe(recipe)
        ax, settings = self._axes(recipe), self.regime_settings(recipe)
        d = self._match(self._density(density), ax["densities"], "density")
        cells, summary = self._measure(recipe, {"densities": [d]}, progress)
        short_cells = None
        short = recipe.cases.select_retrain_epochs
        if short:
            short_cells, _ = self._measure(recipe, {"densities": [d], "retrain": {
                "epochs": short, "iterations": None,
                "last_epochs": min(short, recipe.retrain.last_epochs)}}, progress)
        epochs = recipe.retrain.epochs or 0
        candidates, dense_seen = [], set()
        for t in ax["temperatures"]:
            full = [c for c in cells if c["temperature"] == t]
            probe = [c for c in (short_cells or cells) if c["temperature"] == t]
            n_retrains = sum(len(c["test_error_seeds"]) for c in probe)
            cand = {"label": f"{ax['knob']}={t:g}",
                    "mc": aggregate(probe, "mc")[0],
                    "mc_loss": aggregate(probe, "mc_loss")[0],
                    "cka": aggregate(probe, settings.cka_metric)[0],
                    "endpoint_gap": aggregate(probe, "endpoint_gap")[0],
                    "test_error": aggregate(probe, "test_error")[0],
                    "dense_test_error": aggregate(full, "dense_test_error")[0],
                    "trainings": n_retrains,
                    # checkpoints of one run (epochs knob) share it: count each dense job once
                    "dense_trainings": len({c["jobs"]["dense"] for c in full} - dense_seen),
                    "true_test_error": aggregate(full, "test_error")[0],
                    "true_trainings": sum(len(c["test_error_seeds"]) for c in full)}
            dense_seen |= {c["jobs"]["dense"] for c in full}
            candidates.append(cand)
        try:
            sel = select_model(candidates, settings)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        out = sel.to_json()
        note = (f"mc/CKA measured after a shortened retrain of {short} epochs "
                f"(full: {epochs}); the oracle uses the full retrains" if short else
                "mc/CKA measured on the full retrains (set cases.select_retrain_epochs to "
                "measure after a shortened retrain)")
        out.update(kind="select", recipe=recipe.name, density=d, short_retrain_epochs=short,
                   trainings_run=summary["executed"],
                   text=format_selection(sel) + "\n  " + note)
        return out

    def case_sam(self, recipe, density: float, rho: float, progress=None) -> dict:
        """Case 3: walk SAM's rho by the regime rule at a target density."""
        from tprm.analysis.cases import format_sam_walk, grid_search_best, sam_walk

        recipe = self.load_recipe(recipe)
        if recipe.temperature.knob != "sam_rho":
            raise BadInput(f"temperature.knob: case sam needs a recipe whose knob is sam_rho, "
                           f"{recipe.name} uses {recipe.temperature.knob}")
        settings = self.regime_settings(recipe)
        d = self._match(self._density(density), list(recipe.densities), "density")
        ladder = list(recipe.temperature.values)
        on_ladder = any(abs(v - rho) < 1e-12 for v in ladder)
        run_counts = {"run": 0, "reused": 0}

        def measure(r: float) -> list[dict]:
            cells, summary = self._measure(recipe, {"temperature": {"values": [r]},
                                                    "densities": [d]}, progress)
            run_counts["run"] += summary["executed"]
            run_counts["reused"] += sum(summary["counts"].values()) - summary["executed"]
            return cells

        c = recipe.cases
        try:
            walk = sam_walk(measure, rho, ladder if on_ladder else None, c.sam_rho_min,
                            c.sam_rho_max, c.sam_max_steps, settings)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
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

    # -- store maintenance ---------------------------------------------------------------------
    def migrate(self) -> dict:
        return self.store.migrate()

    def gc(self, dry_run: bool = False) -> list[str]:
        return [str(p) for p in self.store.gc(dry_run=dry_run)]

    def export(self, recipe, path: str | Path) -> Path:
        recipe = self.load_recipe(recipe)
        self.store.export_recipe(recipe.name, Path(path))
        return Path(path)

    def import_bundle(self, path: str | Path) -> dict:
        if not Path(path).exists():
            raise BadInput(f"{path}: no such file; give a bundle written by `tprm export`")
        return self.store.import_bundle(Path(path))


def _node_of(progress: dict | None, job: dict) -> str | None:
    """Where a job runs (its progress report) or ran (its provenance): a host name."""
    if progress and progress.get("node"):
        return progress["node"]
    if job.get("state") in ("done", "failed", "diverged", "cancelled"):
        return (job.get("provenance") or {}).get("host")
    return None
