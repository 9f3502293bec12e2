"""Case studies of a workspace: the service wires runs (measure callbacks) to the decision
procedures of tprm.analysis (case_direction, case_select, case_sam), in the foreground or as a
detached process (the protocol of tprm.engine.detached; its entry point is case_job.py here)."""

from __future__ import annotations

import builtins
from pathlib import Path

from tprm.service.errors import BadInput, RunCancelled, RunFailed, converting_input_errors
from tprm.service.results import Results, axes, density_value, match
from tprm.service.runs import Runs
from tprm.service.workspace import LoadedRecipe, Workspace


CASE_ENTRY = "tprm.service.case_job"  # the module a detached case study runs (python -m)


def check_run(name: str, summary: dict) -> None:
    """Stop a case study whose run did not finish: RunCancelled when it was stopped, RunFailed
    naming the first failed job and its error otherwise, so no answer is built from missing
    numbers (a diverged job is a result, not a failure)."""
    if summary["state"] == "cancelled":  # a stopped case study must not go on measuring
        raise RunCancelled(f"{name}: case study stopped; finished jobs are kept and "
                           "running it again reuses them")
    if summary["state"] == "done":
        return
    failed = summary.get("failed") or []
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        error = str(first.get("error") or "no error recorded").splitlines()[0]
        raise RunFailed(f"{name}: case study stopped, job '{first['label']}' failed{more}: {error}")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items()))
    raise RunFailed(f"{name}: case study stopped, its jobs did not finish ({counts}); "
                    f"see `tprm status {name}`")


@converting_input_errors
class Cases:
    """`svc.cases`: the three case studies, foreground (direction/select/sam) or detached."""

    KINDS = ("direction", "select", "sam")

    def __init__(self, ws: Workspace, runs: Runs, results: Results):
        self._ws, self._runs, self._results = ws, runs, results
        self._procs: dict = {}  # case id -> Popen, polled so a finished child is reaped

    # -- measuring ----------------------------------------------------------------------------
    def _measure(self, loaded: LoadedRecipe, overrides: dict, progress=None) -> tuple[list[dict], dict]:
        """Run (or reuse) the jobs of a sub-grid of `loaded`; its cell records and run summary."""
        sub = loaded.sub_grid(overrides)
        summary = self._runs.run_part(sub, loaded, progress=progress, purpose="case study")
        check_run(loaded.name, summary)
        return self._results.cells(sub), summary

    def _full_grid(self, loaded: LoadedRecipe, progress=None) -> tuple[list[dict], dict]:
        """Run the whole grid (reusing what is done); its cell records and run summary."""
        summary = self._runs.run_part(loaded, loaded, progress=progress, purpose="case study")
        check_run(loaded.name, summary)
        return self._results.cells(loaded), summary

    def evaluation(self, ref, cells: list[dict]):
        """Case study 1's rule scored on every cell of `cells` (ValueError when it cannot be)."""
        from tprm.analysis.case_direction import evaluate_on_plane

        loaded = self._ws.resolve(ref)
        return evaluate_on_plane(cells, self._results.regime_settings(loaded), loaded.recipe.cases.noise_floor,
                                 axes(loaded.recipe))

    # -- the three case studies ---------------------------------------------------------------
    def direction(self, ref, temperature: float | None, density: float | None,
                  evaluate: bool = False, progress=None) -> dict:
        """Case 1: which way to move the temperature knob (one cell, or the rule scored on all)."""
        from tprm.analysis.case_direction import direction_answer, evaluation_answer

        loaded = self._ws.resolve(ref)
        if evaluate:
            cells, summary = self._full_grid(loaded, progress)
            return evaluation_answer(self.evaluation(loaded, cells), loaded.name, summary)
        ax, settings = axes(loaded.recipe), self._results.regime_settings(loaded)
        t = match(temperature, ax["temperatures"], "temperature")
        d = match(density_value(density), ax["densities"], "density")
        cells, summary = self._measure(loaded, {"temperature": {"values": [t]}, "densities": [d]}, progress)
        full = self._results.cells(loaded)  # the rule's record on the whole grid, if run
        record = None if not full or any(c["state"] != "done" for c in full) else self.evaluation(loaded, full)
        return direction_answer(cells, settings, ax, loaded.name, summary["executed"], record, (t, d))

    def select(self, ref, density: float, progress=None) -> dict:
        """Case 2: which dense model (temperature) to prune at a target density."""
        from tprm.analysis.case_select import selection_answer

        loaded = self._ws.resolve(ref)
        recipe = loaded.recipe
        ax = axes(recipe)
        d = match(density_value(density), ax["densities"], "density")
        cells, summary = self._measure(loaded, {"densities": [d]}, progress)
        short = recipe.cases.select_retrain_epochs
        short_cells = self._measure(loaded, {"densities": [d], "retrain": {
            "epochs": short, "iterations": None,
            "last_epochs": min(short, recipe.retrain.last_epochs)}}, progress)[0] if short else None
        try:
            return selection_answer(cells, short_cells, ax, self._results.regime_settings(loaded),
                                    loaded.name, d, short, recipe.retrain.epochs, summary["executed"])
        except ValueError as exc:
            raise BadInput(str(exc)) from None

    def sam(self, ref, density: float, rho: float, progress=None) -> dict:
        """Case 3: walk SAM's rho by the regime rule at a target density."""
        from tprm.analysis.case_sam import sam_answer, sam_walk_of

        loaded = self._ws.resolve(ref)
        recipe = loaded.recipe
        if recipe.temperature.knob != "sam_rho":
            raise BadInput(f"temperature.knob: case sam needs a recipe whose knob is sam_rho, "
                           f"{recipe.name} uses {recipe.temperature.knob}")
        d = match(density_value(density), list(recipe.densities), "density")
        run_counts = {"run": 0, "reused": 0}

        def measure(overrides: dict) -> list[dict]:
            cells, summary = self._measure(loaded, overrides, progress)
            run_counts["run"] += summary["executed"]
            run_counts["reused"] += sum(summary["counts"].values()) - summary["executed"]
            return cells
        try:
            walk = sam_walk_of(measure, recipe, d, rho, self._results.regime_settings(loaded))
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        return sam_answer(walk, self._results.cells(loaded), recipe.name, d, run_counts)

    # -- detached case studies ----------------------------------------------------------------
    def start(self, kind: str, ref, **args) -> dict:
        """Start case study `kind` detached; returns its record (id, pid, dir, log)."""
        from tprm.engine.casedir import new_case, start_process

        if kind not in self.KINDS:
            raise BadInput(f"case: '{kind}' is not a case study; use one of {', '.join(self.KINDS)}")
        loaded = self._ws.resolve(ref)
        request, folder = new_case(self._ws.store_dir, kind, loaded.name, self._ws.source_file(loaded), args)
        proc = start_process(folder, self._ws.store_dir, CASE_ENTRY)
        self._procs[request["id"]] = proc
        return dict(request, pid=proc.pid, dir=str(folder), log=str(folder / "log"), state="running")

    def state(self, case_id: str) -> dict:
        """A detached case study now: state running|done|cancelled|failed, progress, report, error."""
        from tprm.engine.casedir import cases_root, read_case

        state = read_case(cases_root(self._ws.store_dir) / case_id, lambda pid: self._alive(case_id, pid))
        if state is None:
            raise BadInput(f"case {case_id}: no such case study in {cases_root(self._ws.store_dir)}")
        return state

    def _alive(self, case_id: str, pid) -> bool:
        proc = self._procs.get(case_id)
        if proc is not None:
            return proc.poll() is None
        from tprm.engine.storebase import pid_alive

        return pid_alive(pid)

    def list(self, kind: str | None = None) -> builtins.list[dict]:
        """Every detached case study of this store (of one kind), oldest first, with its state."""
        from tprm.engine.casedir import case_ids

        out = [self.state(i) for i in case_ids(self._ws.store_dir) if kind is None or i.startswith(f"{kind}-")]
        return sorted(out, key=lambda c: c.get("started") or 0)

    def cancel(self, case_id: str) -> bool:
        """Stop a detached case study through the runner's cancel path (tprm.engine.detached): its
        running jobs stop at their next progress tick, recorded as cancelled (resumable). False if
        it is not running."""
        from tprm.engine.detached import cancel_folder

        state = self.state(case_id)
        if state["state"] != "running":
            return False
        cancel_folder(Path(state["dir"]), self._ws.store if self._ws.store_dir.exists() else None,
                      state["pid"])
        return True
