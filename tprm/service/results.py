"""Results of a workspace: cell records, the results table and CSV, grids and terminal plots."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tprm.engine.plan import WW_FIELDS
from tprm.service.errors import BadInput, TprmError, converting_input_errors
from tprm.service.workspace import LoadedRecipe, Workspace

# The columns of a results row, in the order the TUI table, its export and `tprm results --csv` use.
RESULT_COLUMNS: tuple[str, ...] = (
    "temperature", "density", "dense_seed", "state", "regime", "test_error", "spread",
    "normalized_error", "mc", "cka", "train_loss", "dense_test_error",
)
# The metrics grid/plot take ("regime" is the regime map), in the order the CLI lists them.
METRICS: tuple[str, ...] = (
    "test_error", "normalized_error", "mc", "cka", "regime", "train_loss", "train_error", "test_loss",
    "mc_loss", "cka_logits", "endpoint_gap", "dense_test_error", "hessian_trace", "hessian_top", *WW_FIELDS)
# weightwatcher's columns and metrics (metrics.weightwatcher): shown only for recipes that have them
WW_COLUMNS: tuple[str, ...] = WW_FIELDS
CSV_DIGITS = 6  # decimals kept in CSV (0.46599999999999997 -> 0.466)


def rows_csv(rows, columns: tuple[str, ...] | None = None) -> str:
    """Result rows as CSV text: floats rounded to CSV_DIGITS decimals, blanks for missing values;
    `columns` None: the rows' own (result_columns). The one CSV writer of results (TUI export and
    `tprm results --csv`)."""
    rows = list(rows)
    columns = result_columns(rows) if columns is None else columns
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


def result_columns(records) -> tuple[str, ...]:
    """The columns of these cell records' rows: RESULT_COLUMNS, and WW_COLUMNS where the records
    carry weightwatcher fields (their recipe asks for them; measured or not yet)."""
    has_ww = any(WW_COLUMNS[0] in rec for rec in records)
    return RESULT_COLUMNS + WW_COLUMNS if has_ww else RESULT_COLUMNS


def density_text(density: float) -> str:
    """A density as every view shows it: a percentage ("10%", "12.5%"), the CLI's results and
    plots and the TUI's Results table alike (the one density format)."""
    from tprm.analysis.phase import format_density

    return format_density(density)


def axes(recipe) -> dict:
    """The plane of a recipe: temperatures, densities, the knob and which way is hotter."""
    from tprm.engine.recipe import HOTTER

    return {"temperatures": list(recipe.temperature.values),
            "densities": list(recipe.densities), "knob": recipe.temperature.knob,
            "hotter": HOTTER[recipe.temperature.knob]}


def match(value, values, what: str):
    """The grid value equal to `value` (float tolerance); BadInput naming the flag otherwise."""
    from tprm.analysis.phase import same_value

    for v in values:
        if same_value(v, value):
            return v
    raise BadInput(f"--{what}: {value:g} is not on the recipe's grid; valid: "
                   + ", ".join(f"{v:g}" for v in values))


def density_value(value: float | None) -> float:
    """Accept 0.1 or 10 (percent)."""
    if value is None or value <= 0 or value > 100:
        raise BadInput(f"--density: {value} is not a density; use a fraction in (0, 1] or a percent")
    return value / 100 if value > 1 else value


@converting_input_errors
class Results:
    """`svc.results`: what the store holds of a recipe, as records, rows, grids and plots."""

    METRICS = METRICS

    @staticmethod
    def present_metrics(records) -> tuple[str, ...]:
        """METRICS less the weightwatcher ones where these cell records have none (a recipe without
        metrics.weightwatcher): what a plot's metric selector offers."""
        has_ww = result_columns(records) != RESULT_COLUMNS
        return METRICS if has_ww else tuple(m for m in METRICS if m not in WW_COLUMNS)

    def __init__(self, ws: Workspace):
        self._ws = ws

    def cells(self, ref) -> list[dict]:
        """One record per (temperature, density, dense seed) cell (see docs/ARCHITECTURE.md)."""
        from tprm.engine.results import cell_records

        return cell_records(self._ws.store if self._ws.store_dir.exists() else None, self._ws.plan(ref))

    def frame(self, ref):
        """The results table (cell records with their regime) as a pandas DataFrame; pandas is not
        a dependency of tprm: BadInput with the install command when it is missing."""
        try:
            import pandas as pd
        except ImportError:
            raise BadInput("results as a DataFrame need pandas, which is not installed: pip install "
                           "pandas (or use svc.results.table(recipe): the same records as dicts)") from None
        return pd.DataFrame(self.table(ref))

    def curves(self, ref, temperature: float, density: float, dense_seed: int = 0) -> dict:
        """One cell's curves as numpy arrays: "lmc" (per retrain-seed pair: t, train_error,
        train_loss, test_error, test_loss), "dense" (per epoch of the dense run; the cell is its
        checkpoint "dense_epoch") and "retrain" (per retrain seed); None where not run yet."""
        import math

        import numpy as np

        from tprm.engine.results import cell_curves

        plan = self._ws.plan(ref)
        cell = next((c for c in plan.cells if c.dense_seed == dense_seed and math.isclose(c.density, density)
                     and math.isclose(float(c.temperature), float(temperature))), None)
        if cell is None:
            r = self._ws.resolve(ref).recipe
            raise BadInput(f"{plan.recipe_name} has no cell T={temperature:g} d={density:g} seed={dense_seed}, "
                           f"allowed: T in {list(r.temperature.values)}, d in {list(r.densities)}, "
                           f"seed in {list(r.dense_seeds)}")

        def arrays(curves: dict | None) -> dict | None:
            return None if curves is None else {
                k: np.asarray(v, dtype=float) if isinstance(v, list) else v for k, v in curves.items()}

        raw = cell_curves(self._ws.store_dir, cell)
        return {"temperature": cell.temperature, "density": cell.density, "dense_seed": dense_seed,
                "dense_epoch": cell.epoch, "lmc": [arrays(c) for c in raw["lmc"]],
                "dense": arrays(raw["dense"]), "retrain": [arrays(c) for c in raw["retrain"]]}

    def table(self, ref) -> list[dict]:
        """Cell records, each with the regime of that dense seed's own measurements."""
        from tprm.analysis.regimes import classify_records

        loaded = self._ws.resolve(ref)
        settings = self.regime_settings(loaded)
        return [dict(r, regime=None if r["state"] == "failed" else classify_records(r, settings)["regime"])
                for r in self.cells(loaded)]

    def rows(self, ref) -> dict:
        """{"rows", "note", "columns"}: one row per cell record under `columns` (RESULT_COLUMNS, plus
        WW_COLUMNS for a recipe with metrics.weightwatcher), with its dense seed's regime, the
        spread (max - min) of its retrain seeds' test errors and its cell's normalized error;
        `note` says why a column is empty (e.g. no test errors yet)."""
        records = self.table(ref)
        columns = result_columns(records)
        note, norm = None, None
        try:
            norm = self.grid(ref, "normalized_error", cells=records)
        except (TprmError, ValueError, KeyError) as exc:
            note = f"no normalized error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        rows = []
        for rec in records:
            seeds = [e for e in rec.get("test_error_seeds") or [] if isinstance(e, (int, float))]
            row = {c: rec.get(c) for c in columns}
            row["spread"] = (max(seeds) - min(seeds)) if len(seeds) > 1 else None
            if row.get("normalized_error") is None and norm is not None:
                try:
                    row["normalized_error"] = norm.at(rec["temperature"], rec["density"])
                except KeyError:
                    pass
            rows.append(row)
        return {"rows": rows, "note": note, "columns": columns}

    def csv(self, ref) -> str:
        data = self.rows(ref)
        return rows_csv(data["rows"], data["columns"])

    def regime_settings(self, ref):
        """The recipe's regime thresholds, each with where it came from: the file that set it (as
        the parsed recipe remembers; the recipe's name when it has no file), or the default."""
        from tprm.analysis.regimes import settings_from_section

        loaded: LoadedRecipe = self._ws.resolve(ref)
        recipe = loaded.recipe
        where = Path(loaded.source).name if loaded.source else recipe.name
        return settings_from_section(recipe.regimes, lambda f: recipe.set_in_file(f"regimes.{f}"),
                                     f"recipe {where}")

    def grid(self, ref, metric: str, cells: list[dict] | None = None):
        """A Grid (or, for metric "regime", a RegimeGrid) over the recipe's plane."""
        from tprm.analysis.phase import build_grid, normalized_error_grid
        from tprm.analysis.regimes import regime_grid

        if metric not in METRICS:
            raise BadInput(f"--metric: '{metric}' is not a metric; use one of {', '.join(METRICS)}")
        loaded = self._ws.resolve(ref)
        cells = self.cells(loaded) if cells is None else cells
        ax = axes(loaded.recipe)
        try:
            if metric == "regime":
                return regime_grid(cells, ax["temperatures"], ax["densities"], ax["knob"],
                                   ax["hotter"], self.regime_settings(loaded))
            if metric == "normalized_error":
                return normalized_error_grid(build_grid(cells, "test_error", **ax))
            return build_grid(cells, metric, **ax)
        except ValueError as exc:
            raise BadInput(str(exc)) from None

    def grid_json(self, ref, metric: str) -> dict:
        from dataclasses import asdict

        return asdict(self.grid(ref, metric))

    @staticmethod
    def color_depth(color_system: str | None) -> str:
        """The plot's colour depth (truecolor | 256 | 16 | none) for a terminal's colour system."""
        from tprm.analysis.colors import depth_of

        return depth_of(color_system)

    def plot(self, ref, metric: str = "regime", width: int = 80, height: int = 20,
             table: bool = True, color: bool = True, page: int = 0, depth: str | None = None) -> str:
        """The metric over the temperature x density plane as terminal text (plus its numbers).

        ``depth`` "truecolor" | "256" | "16" draws a heat map of coloured blocks; "none" plain text."""
        from tprm.analysis.plots import render_grid, render_table
        from tprm.analysis.regimes import barrier_for

        loaded = self._ws.resolve(ref)
        g = self.grid(loaded, metric)
        barrier = barrier_for(metric, self.regime_settings(loaded).thresholds())
        text = render_grid(g, width=width, height=height, color=color, page=page, depth=depth,
                           barrier=barrier)
        if table:
            text += "\n" + render_table(g, width=width)
        return text

    def cell(self, ref, temperature: float, density: float, width: int = 80, height: int = 24,
             color: bool = False, records: list[dict] | None = None) -> dict:
        """One cell opened (`tprm show`, the TUI's cell view, the report's curves): its numbers,
        regime with the reason, LMC and training curves (tprm.analysis.cellview), plus "text"
        drawn for a `width` x `height` terminal. `density` may be a percent (10 = 0.1).
        `records`: the recipe's cell records when the caller holds them (a report opens several cells)."""
        from tprm.analysis.cellview import cell_view, render_cell, seed_view
        from tprm.analysis.phase import same_value

        loaded = self._ws.resolve(ref)
        ax, settings = axes(loaded.recipe), self.regime_settings(loaded)
        t = match(temperature, ax["temperatures"], "temperature")
        d = match(density_value(density), ax["densities"], "density")
        plan = self._ws.plan(loaded)
        records = [r for r in (self.cells(loaded) if records is None else records)
                   if same_value(r["temperature"], t) and same_value(r["density"], d)]
        epochs = {c.dense_seed: c.epoch for c in plan.cells if c.temperature == t and c.density == d}
        seeds = list(loaded.recipe.retrain.seeds)
        view = cell_view(loaded.name, records, [
            seed_view(r, self._cell_artifacts(r), seeds, epochs.get(r["dense_seed"], -1), settings)
            for r in records], ax, settings)
        view["text"] = render_cell(view, width=width, height=height, color=color)
        if not any(r["state"] in ("done", "partial", "diverged", "failed") for r in records):
            view["text"] += (f"\nnot measured yet: `tprm case direction {loaded.name} -t {t:g} -d {d:g}` "
                             f"measures this cell alone, `tprm run {loaded.name}` the whole grid")
        return view

    def _cell_artifacts(self, record: dict) -> dict:
        """The curves a cell record's jobs stored: "lmc", "dense", "retrains", and "missing"
        (what could not be read, one line each)."""
        from tprm.engine.artifacts import ArtifactError, Artifacts

        art, jobs, states = Artifacts(self._ws.store_dir), record["jobs"], record.get("job_states") or {}
        out: dict = {"missing": []}

        def load(job_hash: str, name: str, state: str | None):
            if state not in ("done", "diverged"):
                return None
            try:
                return art.load(job_hash, name)
            except ArtifactError as exc:
                out["missing"].append(str(exc).splitlines()[0])
                return None
        hashes = [jobs["dense"], jobs["prune"], *jobs["retrains"], jobs["pairs"]]
        for rec in self._ws.store.get_jobs(hashes).values() if "failed" in states.values() else ():
            if rec.get("state") == "failed":
                out["missing"].append(f"job '{rec.get('label')}' failed: "
                                      + str(rec.get("error") or "no error recorded").splitlines()[0])
        out["lmc"] = load(jobs["pairs"], "lmc", states.get("pairs"))
        out["dense"] = load(jobs["dense"], "curves", states.get("dense"))
        out["retrains"] = [load(h, "curves", states.get(f"retrain{k}")) for k, h in enumerate(jobs["retrains"])]
        return out

    def demo_check(self, ref) -> dict:
        """The (a)-(c) criteria of the quickstart on what was run (see analysis/checks.py)."""
        from tprm.analysis.checks import phenomenon_checks

        loaded = self._ws.resolve(ref)
        cells = self.cells(loaded)
        s = self.regime_settings(loaded)
        return phenomenon_checks(self.grid(loaded, s.mc_metric, cells),
                                 self.grid(loaded, "test_error", cells), s.mc_limit)

    def empty_note(self, ref, cells: list[dict]) -> str | None:
        """What to say when nothing of the recipe has run yet (None once anything has): that there
        are no results in this store and the command that makes them."""
        if any(c["state"] in ("done", "partial", "diverged") for c in cells):
            return None
        name = self._ws.resolve(ref).name
        return f"{name}: no results in {self._ws.store_dir} yet; run `tprm run {name}` first"

    def require(self, loaded: LoadedRecipe, cells: list[dict], why: str | None = None) -> list[dict]:
        """`cells` (the recipe's records); BadInput when nothing of it has run yet."""
        note = self.empty_note(loaded, cells)
        if note is not None:
            raise BadInput(note + (f" ({why})" if why else ""))
        return cells
