"""Runs of a workspace: run in the foreground or detached, cancel, status and logs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tprm.service.errors import BadInput, TprmError, converting_input_errors
from tprm.service.workspace import LoadedRecipe, Workspace


@converting_input_errors
class Runs:
    """`svc.runs`: start, watch and stop the runs of a store."""

    def __init__(self, ws: Workspace):
        self._ws = ws

    def run(self, ref, device: str | None = None, jobs: int | None = None,
            progress: Callable[[dict], None] | None = None, log_path: str | None = None,
            backend: str | None = None, address: str | None = None) -> dict:
        """Run (or resume) a recipe in the foreground; returns the run summary.
        `backend`/`address` override execution.backend / execution.ray.address."""
        loaded = self._ws.resolve(ref)
        self._ws.check_model(loaded)  # an imported model that cannot be built: one line, no run
        return self.run_part(loaded, loaded, device, jobs, progress, log_path, backend, address)

    def run_part(self, part: LoadedRecipe, owner: LoadedRecipe, device=None, jobs=None,
                 progress=None, log_path=None, backend=None, address=None,
                 purpose: str | None = None) -> dict:
        """Run `part`'s jobs, recorded as part of `owner` (the recipe itself, or the full recipe
        a case study measures a sub-grid of); `purpose` ("case study") is kept on the run's
        record so status and logs can tell such runs from the user's own."""
        from tprm.engine.launch import run_recipe

        summary = run_recipe(self._ws.store, self._ws.planner, part.recipe, owner.recipe, owner.source,
                             device=device, jobs=jobs, progress=progress, log_path=log_path,
                             backend=backend, address=address)
        if purpose:
            self._ws.store.update_run(summary["run_id"], purpose=purpose)
        return summary

    def start_detached(self, ref, device: str | None = None, jobs: int | None = None,
                       backend: str | None = None, address: str | None = None) -> dict:
        """Start the run in its own session (`python -m tprm.engine.launch`) so it survives the
        terminal (and the SSH link)."""
        from tprm.engine.launch import start_detached

        loaded = self._ws.resolve(ref)
        self._ws.check_model(loaded)
        return start_detached(self._ws.store_dir, self._ws.source_file(loaded), loaded.name, device, jobs,
                              backend, address)

    @staticmethod
    def summary_lines(summary: dict) -> tuple[str, list[str]]:
        """A run summary as text: the result line and the failure/divergence lines (stderr)."""
        from tprm.engine.launch import summary_lines

        return summary_lines(summary)

    @staticmethod
    def check_device(device: str) -> str:
        """A --device value checked by the recipe schema (execution.device): BadInput otherwise."""
        from tprm.engine.recipe import check_setting

        return check_setting("execution.device", device, "--device")

    def cancel(self, ref) -> int:
        """Stop every run of a recipe (see tprm.engine.detached); the number of jobs asked to stop."""
        from tprm.engine.detached import cancel_recipe

        return cancel_recipe(self._ws.store, self._ws.resolve(ref).name)

    def status(self, ref=None) -> dict:
        """Runs, job counts per state and per-job progress (for one recipe or every stored one)."""
        from tprm.engine.plan import skipped_jobs
        from tprm.engine.rundir import job_progress
        from tprm.engine.status import recipe_status

        out: dict = {"store": str(self._ws.store_dir), "runs": [], "recipes": {}, "jobs": []}
        if not self._ws.store_dir.exists():
            return out
        loaded = self._ws.resolve(ref) if ref is not None else None
        store = self._ws.store
        out["runs"] = runs = store.get_runs(loaded.name if loaded else None)
        all_jobs = store.get_jobs()
        stored = {r["name"]: r for r in store.list_recipes()}
        progress = job_progress(self._ws.store_dir, runs)
        skipped = skipped_jobs(all_jobs)  # behind a diverged job: settled, shown as "skipped"
        for name in [loaded.name] if loaded else sorted(stored):
            rec = stored.get(name, {})
            plan = self._status_plan(loaded, rec)
            hashes = ([j.hash for j in plan.ordered()] if plan is not None else
                      [h for h, j in all_jobs.items() if rec.get("hash") in (j.get("recipes") or [])])
            out["recipes"][name], rows = recipe_status(name, rec, hashes, all_jobs, skipped,
                                                       progress, self._job_work(plan), runs)
            out["jobs"] += rows
        return out

    def _status_plan(self, loaded: LoadedRecipe | None, rec: dict):
        """A recipe's plan: the file as it is now, else the text stored at its last run; None when
        no plan can be made without reading data (its jobs are then those tagged with its hash)."""
        from tprm.engine.inputerrors import input_errors
        from tprm.engine.recipe import parse_recipe

        errors: tuple[type[Exception], ...] = (TprmError, KeyError, *input_errors())
        try:
            r = loaded if loaded is not None else parse_recipe(
                rec["yaml"], rec.get("path") or rec["name"],
                base_dir=Path(rec["path"]).parent if rec.get("path") else None)  # model.import's folder
            return self._ws.plan(r, compute_identity=False)
        except errors:
            return None

    def _job_work(self, plan) -> dict[str, float]:
        """Model-steps of each job of a plan (see tprm.engine.eta); plans are cached: so is this."""
        from tprm.engine.eta import job_work

        if plan is None:  # no plan without reading the data: every job counts as one step
            return {}
        cache = self._ws.work_tables
        if id(plan) not in cache:
            cache[id(plan)] = (plan, {h: job_work(j.kind, j.spec) for h, j in plan.jobs.items()})
        return cache[id(plan)][1]

    def log_run(self, ref, latest: bool = False) -> dict:
        """Which run `logs` shows: {"run", "latest", "note"}. The latest run when it is still
        running or `latest` is asked; otherwise the last run that executed jobs (a case study
        that only reused finished jobs does not hide the run that did the work), with a note
        naming the newer run it passed over. "run" is None when the recipe has no run log."""
        runs = [r for r in self._ws.store.get_runs(self._ws.resolve(ref).name) if r.get("log")]
        if not runs:
            return {"run": None, "latest": None, "note": None}
        last = runs[-1]
        if latest or last.get("state") == "running":
            return {"run": last, "latest": last, "note": None}
        worked = [r for r in runs if r.get("executed", 1)]  # older records lack the count: keep them
        chosen = worked[-1] if worked else last
        note = None
        if chosen is not last:
            note = (f"run {chosen['run_id']} (the last that executed jobs); newer: run {last['run_id']}"
                    f"{' (' + last['purpose'] + ')' if last.get('purpose') else ''}, executed 0; "
                    "--latest shows it")
        return {"run": chosen, "latest": last, "note": note}

    def logs(self, ref, job: str | None = None, latest: bool = False) -> str:
        """A recipe's run log (the run `log_run` picks), or one job's log (job hash prefix or label)."""
        from tprm.engine.artifacts import Artifacts

        loaded = self._ws.resolve(ref)
        if job is None:
            run = self.log_run(loaded, latest)["run"]
            log = Path(run["log"]) if run else None
            return log.read_text() if log is not None and log.exists() else ""
        plan = self._ws.plan(loaded)
        matches = [j for j in plan.jobs.values() if j.hash.startswith(job) or j.label == job]
        if not matches:
            raise BadInput(f"job: no job '{job}' in recipe {loaded.name}; give a hash prefix or a label")
        path = Artifacts(self._ws.store_dir).log_path(matches[0].hash)
        return path.read_text() if path.exists() else ""
