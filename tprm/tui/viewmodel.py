"""Pure view-model helpers for the TUI: service data in, display rows/text out.

Kept free of Textual so the screens stay thin, the benchmark can time the exact data path
the screens use, and the logic can be tested without a terminal.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

# one list of each, one CSV writer, one density format (CLI and TUI)
from tprm.service import METRICS, RESULT_COLUMNS, WW_COLUMNS, density_text, rows_csv

# Metrics offered by the phase-plot selector, in menu order: the service's, the regime map first.
PLOT_METRICS: tuple[str, ...] = ("regime", *[m for m in METRICS if m != "regime"])

# Job states in the order the run monitor counts them (what needs attention first).
STATE_ORDER = {"running": 0, "stale": 1, "failed": 2, "diverged": 3, "queued": 4,
               "cancelled": 5, "done": 6}
# States a job does not leave by itself (a cancelled or stale job runs again on resume).
FINISHED_STATES = frozenset({"done", "diverged", "failed", "skipped"})  # skipped: parent diverged
ACTIVE_RUN_STATES = frozenset({"running"})

# Short headers so the results table fits an 80-column terminal.
RESULT_HEADERS = {
    "temperature": "T", "density": "dens", "dense_seed": "seed", "state": "state",
    "regime": "regime", "test_error": "test_err", "spread": "±", "normalized_error": "norm",
    "mc": "mc", "cka": "cka", "train_loss": "trn_loss", "dense_test_error": "dense_err",
    # weightwatcher's (metrics.weightwatcher): retrained, dense (d_) and pruned (p_) models
    "alpha": "alpha", "alpha_weighted": "alpha_w", "log_spectral_norm": "log_sn",
    "dense_alpha": "d_alpha", "dense_alpha_weighted": "d_alpha_w", "dense_log_spectral_norm": "d_log_sn",
    "pruned_alpha": "p_alpha", "pruned_alpha_weighted": "p_alpha_w", "pruned_log_spectral_norm": "p_log_sn",
}
# Every column a results row can have (the weightwatcher ones only for recipes that measure them).
ALL_COLUMNS: tuple[str, ...] = RESULT_COLUMNS + WW_COLUMNS


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number as a short fixed-width string; blanks for missing values."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and 1 <= abs(value) < 1e6:
            return str(int(value))
        if abs(value) >= 1000:
            return f"{value:.0f}" if abs(value) < 1e6 else f"{value:.3g}"
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.2g}"
        return f"{value:.{digits}f}"
    return str(value)


def fmt_value(value: Any) -> str:
    """A temperature/density/rho value as the user wrote it (0.05, 16, 1e-4)."""
    if isinstance(value, float) and value == int(value) and abs(value) < 1e6:
        return str(int(value)) if abs(value) >= 1 else repr(value)
    return str(value)


def one_line(exc: BaseException | str) -> str:
    """The first line of an error's message.

    Service errors (TprmError) and input errors (ValueError) are written for users and shown
    as they are; anything else is a bug somewhere, so its class name is kept in front.
    """
    from tprm.service import TprmError

    if isinstance(exc, str):
        text = exc
    else:
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, (TprmError, ValueError)):
            text = f"{type(exc).__name__}: {text}"
    return text.strip().splitlines()[0] if text.strip() else "unknown error"


def problem_hint(message: str) -> str:
    """What a user can do about an error a screen met (shown under it, in place)."""
    if "tprm data fetch" in message:
        return "get the data as it says, then f5 tries again; or pick another recipe on 1 Recipes"
    if re.search(r"\.ya?ml:\d+:", message):
        return "the recipe does not validate: on 1 Recipes press e to fix it, or pick another recipe"
    return "f5 tries again; 1 Recipes picks another recipe; q quits"


def ellipsize(text: str, width: int) -> str:
    """`text` in at most `width` characters: a longer one loses its middle to an ellipsis, so
    names that differ only at the end stay apart ("cifar10-…ize-quick", "cifar10-…batchsize")."""
    if len(text) <= width:
        return text
    if width < 2:
        return "…"[:width]
    head = (width - 1) // 2  # the end is where names differ: it keeps the odd character
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


# ---------------------------------------------------------------------------- run monitor

def job_progress(job: Mapping[str, Any]) -> float:
    """A job's progress as a fraction 0..1 (done jobs 1, unknown 0)."""
    if job.get("state") in FINISHED_STATES:
        return 1.0
    progress = job.get("progress")
    if isinstance(progress, Mapping):
        done, total = progress.get("done") or 0, progress.get("total") or 0
        return min(max(done / total, 0.0), 1.0) if total else 0.0
    if isinstance(progress, (int, float)) and not isinstance(progress, bool):
        return min(max(float(progress), 0.0), 1.0)
    return 0.0


def job_rows(jobs: Iterable[Mapping[str, Any]]) -> list[tuple[str, tuple[str, str, str, str]]]:
    """Rows (key, (kind, label, state, progress)) for the job table, in the service's (plan) order.

    The order is stable while states change, so the table can be updated in place and the
    cursor stays on the job the user selected.
    """
    rows = []
    for job in jobs:
        state = str(job.get("state", "?"))
        frac = job_progress(job)
        progress = "" if state in FINISHED_STATES or (state != "running" and frac == 0) else f"{frac:4.0%}"
        rows.append((str(job.get("hash", job.get("label"))),
                     (str(job.get("kind", "")), str(job.get("label", "")), state, progress)))
    return rows


def overall_progress(status: Mapping[str, Any]) -> tuple[float, int, int]:
    """(fraction, finished jobs, total jobs) of a status snapshot; the service's numbers when it gives them."""
    jobs = status.get("jobs") or []
    progress = status.get("progress") or {}
    total = progress.get("total") if isinstance(progress, Mapping) else None
    done = progress.get("done") if isinstance(progress, Mapping) else None
    if total is None:
        total = len(jobs)
    if done is None:
        done = sum(1 for j in jobs if j.get("state") in FINISHED_STATES)
    if jobs:
        fraction = sum(job_progress(j) for j in jobs) / len(jobs)
    else:
        fraction = (done / total) if total else 0.0
    return fraction, int(done), int(total)


def state_counts(jobs: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Job count per state, in display order."""
    counts: dict[str, int] = defaultdict(int)
    for job in jobs:
        counts[str(job.get("state", "?"))] += 1
    return dict(sorted(counts.items(), key=lambda kv: STATE_ORDER.get(kv[0], 9)))


def run_name(run: Mapping[str, Any]) -> str:
    """The recipe name of a run record."""
    return str(run.get("recipe_name") or run.get("recipe") or "?")


def run_summary(run: Mapping[str, Any] | None) -> tuple[str, bool]:
    """(one-line description of a run, whether it is stale); no clock values, so snapshots stay stable."""
    if not run:
        return "no run yet: press r to launch this recipe (detached: it survives quitting or SSH loss)", False
    state = str(run.get("state", "?"))
    stale = bool(run.get("stale")) or state == "stale"
    where = f"pid {run.get('pid', '?')} on {run.get('host', '?')}{cluster_text(run)}"
    if stale:
        return f"last run is STALE: its process ({where}) stopped reporting; r resumes it", True
    if state in ACTIVE_RUN_STATES:
        return f"running ({where}), detached: it keeps going if you quit or lose SSH; c cancels", False
    return f"last run: {state}{cluster_text(run)}; r runs it again (only unfinished jobs run)", False


def cluster_text(run: Mapping[str, Any]) -> str:
    """'; ray: 2 nodes, 8 CPU, 1 GPU' for a run on a Ray cluster, '' for a local run."""
    if run.get("backend") != "ray":
        return ""
    ray = run.get("ray") or {}
    res = ray.get("resources") or {}
    n = len(ray.get("nodes") or [])
    return f"; ray: {n} node{'s' if n != 1 else ''}, {res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU"


def log_title(label: str, node: str | None) -> str:
    """The job log's title; names the node when the job runs (or ran) on a Ray cluster."""
    return f"log of {label}{f' (on {node})' if node else ''}  (l: whole run)"


def latest_run(status: Mapping[str, Any], recipe: str | None) -> Mapping[str, Any] | None:
    """The newest run of `recipe` in a status snapshot (the service lists runs oldest first)."""
    runs = [r for r in status.get("runs") or [] if r and (recipe is None or run_name(r) in (recipe, "?"))]
    return runs[-1] if runs else None


def active_runs(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Runs whose process is still working (not finished, not stale)."""
    return [r for r in status.get("runs") or []
            if str(r.get("state")) in ACTIVE_RUN_STATES and not r.get("stale")]


# ---------------------------------------------------------------------------- results

def grid_lookup(grid: Any, field: str = "mean") -> dict[tuple[float, float], Any]:
    """Map (temperature, density) -> value of a service Grid/RegimeGrid (or its to_json dict).

    Grids index ``field[i][j]`` by temperature i and density j; cells without a value are left out.
    """
    if grid is None:
        return {}
    get = (lambda k: grid.get(k)) if isinstance(grid, Mapping) else (lambda k: getattr(grid, k, None))
    temps, dens, values = get("temperatures"), get("densities"), get(field)
    if temps is None or dens is None or values is None:
        return {}
    out = {}
    for i, t in enumerate(temps):
        for j, d in enumerate(dens):
            v = values[i][j]
            if v is not None:
                out[(float(t), float(d))] = v
    return out


def group_records(records: Sequence[Mapping[str, Any]]) -> dict[tuple[float, float], list[Mapping[str, Any]]]:
    """Cell records (one per dense seed) grouped by (temperature, density)."""
    groups: dict[tuple[float, float], list[Mapping[str, Any]]] = defaultdict(list)
    for rec in records:
        groups[(float(rec["temperature"]), float(rec["density"]))].append(rec)
    return dict(groups)


def display_cells(row: Mapping[str, Any], columns: Sequence[str] = RESULT_COLUMNS) -> tuple[str, ...]:
    """A result row as table cell strings (`columns`: the table's, result_columns of the rows)."""
    return tuple(density_text(row[c]) if c == "density" else fmt_value(row[c]) if c == "temperature"
                 else fmt_num(row.get(c)) for c in columns)


_TERM = re.compile(r"^(?P<col>[a-z_]+)(?P<op><=|>=|!=|=|<|>)(?P<val>.+)$")


def parse_filter(query: str) -> list[tuple[str | None, str, str]]:
    """Filter terms: `col<op>value` (op one of < <= > >= = !=) or free text matched anywhere.

    Column names may be the full name or the short header (T, dens, test_err...).
    """
    terms: list[tuple[str | None, str, str]] = []
    aliases = {v.lower(): k for k, v in RESULT_HEADERS.items()}
    for token in query.split():
        m = _TERM.match(token.lower()) if not token.startswith("=") else None
        if m and (m["col"] in ALL_COLUMNS or m["col"] in aliases):
            terms.append((aliases.get(m["col"], m["col"]), m["op"], m["val"]))
        else:
            terms.append((None, "~", token.lower()))
    return terms


TEXT_COLUMNS = frozenset({"state", "regime"})
_OPERATOR = re.compile(r"[<>!=]")


def filter_error(query: str) -> str | None:
    """A one-line message when the filter query cannot mean what it says, else None.

    Caught: a comparison on an unknown column (`foo<3`), a number column compared with a
    non-number (`mc<<0`, `T>=abc`), a missing value (`mc<`).
    """
    aliases = {v.lower(): k for k, v in RESULT_HEADERS.items()}
    names = ", ".join(RESULT_HEADERS[c] for c in RESULT_COLUMNS)  # the weightwatcher ones also work
    for token in query.split():
        if not _OPERATOR.search(token) or token.startswith("="):
            continue
        m = re.match(r"^(?P<col>[A-Za-z_±]+)(?P<op><=|>=|!=|=|<|>)(?P<val>.*)$", token)
        if m is None:
            return f"filter {token!r}: write column<op>value, e.g. mc<0 (op: < <= > >= = !=)"
        col = aliases.get(m["col"].lower(), m["col"].lower())
        if col not in ALL_COLUMNS:
            return f"filter {token!r}: no column {m['col']!r}; columns: {names}"
        if not m["val"]:
            return f"filter {token!r}: give a value after {m['op']}, e.g. {m['col']}{m['op']}0"
        if col not in TEXT_COLUMNS:
            try:
                float(m["val"])
            except ValueError:
                return f"filter {token!r}: {m['val']!r} is not a number ({m['col']} holds numbers)"
    return None


def filter_rows(rows: Sequence[Mapping[str, Any]], query: str) -> list[Mapping[str, Any]]:
    """Rows that satisfy every term of the filter query (see parse_filter)."""
    terms = parse_filter(query)
    if not terms:
        return list(rows)
    return [row for row in rows if all(_match(row, t) for t in terms)]


def _match(row: Mapping[str, Any], term: tuple[str | None, str, str]) -> bool:
    col, op, val = term
    if col is None:
        return any(val in fmt_num(v).lower() or val in str(v).lower() for v in row.values())
    cell = row.get(col)
    try:
        a, b = float(cell), float(val)
    except (TypeError, ValueError):
        a, b = str(cell).lower(), val  # type: ignore[assignment]
    try:
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "=": a == b, "!=": a != b}[op]
    except TypeError:
        return False


def sort_rows(rows: Sequence[Mapping[str, Any]], column: str, reverse: bool = False) -> list[Mapping[str, Any]]:
    """Rows sorted by one column; missing values always last, numbers before text."""
    present = [r for r in rows if r.get(column) is not None]
    missing = [r for r in rows if r.get(column) is None]

    def key(r: Mapping[str, Any]) -> tuple[int, Any]:
        v = r[column]
        return (0, float(v)) if isinstance(v, (int, float)) else (1, str(v))
    return sorted(present, key=key, reverse=reverse) + missing


def export_rows(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write rows as CSV or JSON (by the file suffix); returns the resolved path.

    Raises ValueError with a one-line message when the suffix is neither .csv nor .json.
    """
    target = Path(path).expanduser()
    suffix = target.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ValueError(f"export path {str(target)!r}: use a .csv or .json file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        target.write_text(json.dumps(list(rows), indent=1, default=str) + "\n")
    else:
        target.write_text(rows_csv(rows))
    return target.resolve()


# ---------------------------------------------------------------------------- cell inspector

def cell_details(point: tuple[float, float], cells: Mapping[str, Any]) -> str:
    """Multi-line text about one (temperature, density) cell for the plot's inspector.

    `cells` holds per-metric lookups of the service's grids ("mean"/"spread": {metric: {point: v}}),
    the regime map ("regime", "reason") and the raw records per point ("records"): means and the
    spread over dense seeds come from the same grids the plot shows; retrain-seed errors and job
    states from the records.
    """
    records = cells.get("records", {}).get(point) or []
    if not records:
        return "no results for this cell yet"

    def mean(metric: str) -> str:
        return fmt_num(cells["mean"].get(metric, {}).get(point))

    spread = cells["spread"].get("test_error", {}).get(point)
    retrain = [e for r in records for e in (r.get("test_error_seeds") or [])]
    states = state_counts({"state": s} for r in records for s in (r.get("job_states") or {}).values())
    lines = [
        f"T={fmt_value(point[0])} density={density_text(point[1])} regime {cells['regime'].get(point, '-')}",
        f"test error {mean('test_error')}" + (f" sd {fmt_num(spread)} over dense seeds" if spread is not None
                                              else ""),
        f" per retrain: {' '.join(fmt_num(e) for e in retrain[:4]) or '-'}" + (" ..." if len(retrain) > 4 else ""),
        f"mc {mean('mc')}  cka {mean('cka')}  dense error {mean('dense_test_error')}",
        f"dense seeds: {', '.join(str(r.get('dense_seed')) for r in records)}",
        "jobs: " + (", ".join(f"{n} {s}" for s, n in states.items()) or "-"),
    ]
    reason = cells.get("reason", {}).get(point)
    if reason:
        lines.append(f"why: {reason}")
    return "\n".join(lines)


def scalar_items(report: Mapping[str, Any], limit: int = 16) -> list[tuple[str, str]]:
    """Top-level scalar fields of a report as (name, value) pairs (the generic key numbers)."""
    items = []
    for key, value in report.items():
        if key == "text":
            continue
        if isinstance(value, (str, int, float, bool)) or value is None:
            items.append((key, fmt_num(value)))
        if len(items) >= limit:
            break
    return items


def _pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "-"


def _keep_not_beaten(comparisons: Mapping[str, Any] | None) -> bool:
    """True when the rule's comparison with "always keep" is there and not a win."""
    keep = (comparisons or {}).get("always keep")
    return bool(keep) and keep.get("verdict") != "better"


def decision_headline(report: Mapping[str, Any]) -> str:
    """The answer of a case-study report in one line (its evidence is in the report's text)."""
    kind = report.get("kind")
    if kind == "direction":
        flag = ", uncertain" if report.get("uncertain") else ""
        text = f"Decision: {report.get('recommendation')} (regime {report.get('regime')}{flag})"
        if _keep_not_beaten((report.get("track_record") or {}).get("comparisons")):
            text += "; on this recipe's grid the rule is NOT shown better than keeping the setting"
        return text
    if kind == "direction-evaluation":
        scores = report.get("scores") or {}
        rule = scores.get("regime rule") or {}
        others = {k: v for k, v in scores.items() if k != "regime rule" and v.get("accuracy") is not None}
        top = max(others.items(), key=lambda kv: kv[1]["accuracy"], default=None)
        text = (f"Regime rule right in {_pct(rule.get('accuracy'))} of {rule.get('n', 0)} cells "
                f"[{_pct(rule.get('ci_low'))}, {_pct(rule.get('ci_high'))}]")
        text += f"; best baseline {top[0]}: {_pct(top[1]['accuracy'])}" if top else ""
        if _keep_not_beaten(report.get("comparisons")):
            text += " -- NOT shown better than keeping the setting here (see the verdict below)"
        return text
    if kind == "select":
        picks = report.get("picks") or {}
        pick, oracle = picks.get("regime-aware") or {}, picks.get("oracle") or {}
        return (f"Decision: prune {pick.get('label')} (error {fmt_num(pick.get('test_error'), 4)}, "
                f"regret {fmt_num(pick.get('regret'), 4)}); the oracle picks {oracle.get('label')}")
    if kind == "sam":
        best, grid = report.get("best") or {}, report.get("grid_search") or {}
        text = (f"Decision: rho={fmt_value(best.get('rho'))} (pruned error {fmt_num(best.get('test_error'), 4)}, "
                f"trainings: {report.get('trainings', '?')}; {report.get('stop', '')})")
        if grid.get("best_rho") is not None:
            text += f"; grid search: rho={fmt_value(grid['best_rho'])} (trainings: {grid.get('trainings')})"
        return text
    return "Decision: see below"


def key_numbers(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, value) rows summarising a case-study report: the comparison against the baselines."""
    kind = report.get("kind")
    if kind == "direction":
        keys = ("regime", "direction", "mc", "cka", "endpoint_gap", "test_error", "trainings_run")
        return [(k, fmt_num(report.get(k))) for k in keys if k in report]
    if kind == "direction-evaluation":
        return [(name, f"{_pct(s.get('accuracy'))} [{_pct(s.get('ci_low'))}, {_pct(s.get('ci_high'))}] "
                       f"({s.get('correct')}/{s.get('n')})")
                for name, s in (report.get("scores") or {}).items()]
    if kind == "select":
        return [(name, f"{p.get('label')}  error {fmt_num(p.get('test_error'), 4)}  regret "
                       f"{fmt_num(p.get('regret'), 4)}" + (f" ± {fmt_num(p['noise'], 4)}" if p.get("noise") else "")
                       + f"  trainings: {p.get('trainings')}")
                for name, p in (report.get("picks") or {}).items()]
    if kind == "sam":
        rows = [(f"rho {fmt_value(p.get('rho'))}", f"{p.get('regime')}  error {fmt_num(p.get('test_error'), 4)}"
                 + (f"  +{p['extra_seeds']} dense seed(s)" if p.get("extra_seeds") else "")
                 + ("  in doubt: stayed" if p.get("doubts") else ""))
                for p in report.get("path") or []]
        grid = report.get("grid_search") or {}
        if grid:
            rows.append(("grid search", f"rho {fmt_value(grid.get('best_rho'))}  error "
                                        f"{fmt_num(grid.get('best_test_error'), 4)}  "
                                        f"trainings: {grid.get('trainings')}"))
        return rows
    return scalar_items(report)
