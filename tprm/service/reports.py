"""Reports and comparisons of a workspace: written from the store only, never training."""

from __future__ import annotations

from pathlib import Path

from tprm.service.errors import BadInput, converting_input_errors
from tprm.service.recipes import write_atomic
from tprm.service.results import METRICS, Results, axes, density_text, density_value, match
from tprm.service.workspace import LoadedRecipe, Workspace

REPORT_METRICS = ("test_error", "normalized_error", "mc", "cka", "hessian_trace", "hessian_top",
                  "alpha", "alpha_weighted", "log_spectral_norm", "pruned_alpha", "dense_alpha")
# measured only when the recipe asks (metrics.hessian, metrics.weightwatcher): left out when empty
OPTIONAL_METRICS = ("hessian_trace", "hessian_top", *REPORT_METRICS[REPORT_METRICS.index("alpha"):])


@converting_input_errors
class Reports:
    """`svc.reports`: a recipe against another (`compare`) and the written report (`report`)."""

    def __init__(self, ws: Workspace, results: Results, cases):
        self._ws, self._results, self._case_studies = ws, results, cases

    def compare(self, a, b, metric: str = "test_error", other=None, width: int = 80,
                color: bool = False) -> dict:
        """Recipe `a` against `b` (read from `other`'s store, a Service, when given) on `metric`
        and regimes.

        Returns the aligned grids, the difference map B - A, the regime changes and the terminal
        text; BadInput (one line naming the axis) when the grids cannot be aligned.
        """
        from tprm.analysis.compare import AxisMismatch, compare_grids, differing_settings

        if metric == "regime":
            raise BadInput("--metric: compare always shows the regime maps; choose a numeric metric "
                           f"({', '.join(m for m in METRICS if m != 'regime')})")
        res_b = other.results if other is not None else self._results
        la = self._ws.resolve(a)
        lb = other.recipes.resolve(b) if other is not None else self._ws.resolve(b)
        cells_a, cells_b = self._results.cells(la), res_b.cells(lb)
        self._results.require(la, cells_a)
        res_b.require(lb, cells_b)
        ga, gb = self._results.grid(la, metric, cells_a), res_b.grid(lb, metric, cells_b)
        try:  # e.g. a median split on an incomplete grid: the metric still compares
            ra, rb = self._results.grid(la, "regime", cells_a), res_b.grid(lb, "regime", cells_b)
        except BadInput:
            ra = rb = None
        try:
            return compare_grids((la.name, lb.name), metric, ga, gb, ra, rb, width, color,
                                 differing_settings(la.recipe.to_dict(), lb.recipe.to_dict()))
        except AxisMismatch as exc:
            raise BadInput(f"compare {la.name} {lb.name}: {exc}") from None

    def report(self, ref, out: str | Path | None = None, fmt: str = "md", compare=None,
               other=None, metric: str = "test_error", cells: str | None = None) -> dict:
        """Write report.md (or report.html), one PNG + SVG per figure, from the store only.

        Never starts training. `compare` adds the comparison with another recipe (read from
        `other`'s store when given). `cells` "T,D;T,D" names the cells whose numbers and curves
        the report shows (None: one per regime; "none": no such section). Returns {"dir",
        "report", "files"}.
        """
        from tprm.analysis.figures import report_figures
        from tprm.analysis.report import METRIC_TITLES, report_markdown

        if fmt not in ("md", "html"):
            raise BadInput(f"--format: '{fmt}' is not a report format; use md or html")
        loaded = self._ws.resolve(ref)
        records = self._results.require(loaded, self._results.cells(loaded), "a report never starts training")
        try:
            regimes, regime_error = self._results.grid(loaded, "regime", records), None
        except BadInput as exc:  # e.g. a median split on an incomplete grid: the metrics still report
            regimes, regime_error = None, str(exc)
        views = self._cell_views(loaded, regimes, parse_cells(cells), records)  # bad --cells: nothing written
        folder = Path(out) if out else Path.cwd() / "reports" / loaded.name
        folder.mkdir(parents=True, exist_ok=True)
        grids = self._grids(loaded, records)
        files, figs, regime_fig, threshold_lines = report_figures(
            grids, regimes, folder, loaded.name, len(loaded.recipe.dense_seeds), METRIC_TITLES)
        comparison = None
        if compare is not None:
            comparison_files, comparison = self._comparison(loaded, compare, other, metric, folder)
            files += comparison_files
        ctx = self._context(loaded, records, grids, regimes, regime_error, figs, regime_fig,
                            threshold_lines, comparison)
        ctx["cell_views"] = views
        report_path = _write_report(folder, fmt, report_markdown(ctx), loaded.name)
        files.append(report_path)
        return {"dir": str(folder), "report": str(report_path), "files": [str(f) for f in files]}

    def _cell_views(self, loaded: LoadedRecipe, regimes, chosen: list[tuple[float, float]] | None,
                    records: list[dict]) -> dict | None:
        """The report's "Inside cells" section: the named cells, else one per regime on the map."""
        from tprm.analysis.cellview import cells_per_regime

        if chosen == []:
            return None
        if chosen is None:
            note = ("One cell per regime found on the map (its clearest case), as `tprm show` draws it; "
                    "`tprm report --cells T,D;T,D` chooses others.")
            chosen = cells_per_regime(regimes) if regimes is not None else []
        else:
            note = "The cells named by `--cells`, as `tprm show` draws them."
            ax = axes(loaded.recipe)
            chosen = [(match(t, ax["temperatures"], "cells"), match(density_value(d), ax["densities"], "cells"))
                      for t, d in chosen]
        views = [self._results.cell(loaded, t, d, records=records) for t, d in chosen]
        return {"note": note if views else "No cell has a regime yet.",
                "cells": [{"title": f"{v['knob']}={v['temperature']:g}, density {density_text(v['density'])}: "
                                    f"regime {v['regime']}", "text": v["text"]} for v in views]}

    def _grids(self, loaded: LoadedRecipe, cells: list[dict]) -> dict:
        """{grid metric name: Grid} of the report's metrics (Hessian, weightwatcher ones only when
        measured)."""
        grids = {}
        for metric in REPORT_METRICS:
            g = self._results.grid(loaded, metric, cells)
            if metric in OPTIONAL_METRICS and all(v is None for row in g.mean for v in row):
                continue
            grids[g.metric] = g
        return grids

    def _provenance(self, loaded: LoadedRecipe) -> dict:
        """Versions, devices, hosts, dates and compute time from the recipe's job records."""
        from tprm.analysis.provenance import provenance_summary

        plan = self._ws.plan(loaded, compute_identity=False)
        hashes = list(plan.jobs) if plan is not None else []
        jobs = self._ws.store.get_jobs(hashes) if hashes else {}
        from tprm.engine.datasets import files_note

        return provenance_summary(jobs, len(hashes),
                                  self._ws.planner.data_identity(loaded.recipe, compute=False, download=False),
                                  files_note(loaded.recipe, self._ws.store_dir / "data"))

    def _case_section(self, loaded: LoadedRecipe, cells: list[dict]) -> tuple[str | None, str]:
        """Case study 1 scored on the stored grid (pure analysis, no training) when it is complete."""
        from tprm.analysis.case_direction import format_direction_evaluation

        if not cells or any(c["state"] != "done" for c in cells):
            return None, ("Case study 1 (direction rule scored on the grid) needs a complete grid; "
                          "case studies 2 and 3 run their own trainings: see `tprm case --help`.")
        try:
            ev = self._case_studies.evaluation(loaded, cells)
        except ValueError as exc:
            return None, f"Case study 1 could not be scored: {exc}"
        return format_direction_evaluation(ev, rows=False), (
            "Case study 1: the direction rule scored on every cell of the stored grid (computed from "
            "the store, no training). Case studies 2 and 3 train their own models: `tprm case --help`.")

    def _comparison(self, loaded: LoadedRecipe, compare, other, metric: str, folder: Path) -> tuple[list, dict]:
        """The report's comparison figure files and its comparison section."""
        from tprm.analysis.figures import comparison_figures

        c = self.compare(loaded, compare, metric, other=other, width=100)
        files, figs = comparison_figures(c, folder, metric)
        return files, {"other": c["b"], "text": c["text"], "figures": figs}

    def _context(self, loaded: LoadedRecipe, cells, grids, regimes, regime_error, figs, regime_fig,
                 threshold_lines, comparison) -> dict:
        """What report_markdown renders."""
        recipe = loaded.recipe
        cases, cases_note = self._case_section(loaded, cells)
        return {"recipe": {"name": recipe.name, "description": recipe.description, "hash": recipe.hash,
                           "text": loaded.text(), "source": loaded.source, "knob": recipe.temperature.knob,
                           "settings": recipe.to_dict(),
                           "hotter": axes(recipe)["hotter"],
                           "temperatures": list(recipe.temperature.values),
                           "densities": list(recipe.densities), "dense_seeds": list(recipe.dense_seeds),
                           "retrain_seeds": list(recipe.retrain.seeds)},
                "cells_done": sum(c["state"] == "done" for c in cells), "cells_total": len(cells),
                "grids": grids, "regimes": regimes, "regime_error": regime_error,
                "figures": figs, "regime_figure": regime_fig,
                "threshold_lines": threshold_lines, "cases": cases, "cases_note": cases_note,
                "comparison": comparison, "provenance": self._provenance(loaded)}


def parse_cells(text: str | None) -> list[tuple[float, float]] | None:
    """`--cells` "T,D;T,D" as (temperature, density) pairs (a density may be a percent); None
    when not given, [] for "none"; BadInput naming what is wrong otherwise."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return []
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        try:
            t, d = (float(x) for x in part.split(","))
        except ValueError:
            raise BadInput(f"--cells: '{part}' is not T,D; use e.g. '16,20;64,5' (temperature, density "
                           "as a fraction or percent), or 'none'") from None
        out.append((t, d))
    if not out:
        raise BadInput("--cells: no cell given; use e.g. '16,20;64,5', or 'none'")
    return out


def _write_report(folder: Path, fmt: str, text: str, name: str) -> Path:
    """report.md, or report.html with the figures inlined."""
    from tprm.analysis.report import markdown_to_html

    if fmt == "html":
        page = markdown_to_html(text, lambda f: (folder / f).read_bytes(), f"tprm report: {name}")
        return write_atomic(folder / "report.html", page)
    return write_atomic(folder / "report.md", text)
