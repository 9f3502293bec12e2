"""Case study 3: tuning SAM's rho by walking the regime rule, against a grid search."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from tprm.analysis.case_stats import CASES, as_records, count, threshold_lines
from tprm.analysis.phase import aggregate, cell_state, finite_number, same_value
from tprm.analysis.regimes import RegimeSettings, classify_records, direction



@dataclass
class WalkPoint:
    rho: float
    regime: str
    uncertain: bool
    test_error: float | None
    mc: float | None
    cka: float | None
    trainings: int
    dense_seeds: int = 1           # dense seeds behind the point (extra ones included)
    extra_seeds: int = 0           # dense seeds added because the point was in doubt
    doubts: list[str] = field(default_factory=list)  # why the regime is a coin flip (empty: it is not)


@dataclass
class SamWalk:
    path: list[WalkPoint]
    best: WalkPoint | None         # lowest test error visited
    stop: str                      # why the walk ended
    trainings: int
    thresholds: dict
    sources: dict
    settings: dict = field(default_factory=dict)  # ladder / bounds / max_steps used

    @property
    def final(self) -> WalkPoint:
        return self.path[-1]

    def to_json(self) -> dict:
        return asdict(self)


def record_trainings(records: Sequence[dict]) -> int:
    """Trainings behind a cell: its records' "trainings" field when present, else one dense
    training plus one per retrain seed (len of test_error_seeds) per record."""
    total = 0
    for r in records:
        if finite_number(r.get("trainings")) is not None:
            total += int(r["trainings"])
        else:
            total += 1 + len(r.get("test_error_seeds") or [])
    return total


def regime_doubts(records: Sequence[dict], settings: RegimeSettings | None = None,
                  near_mc: float = CASES.near_mc, near_cka: float = CASES.near_cka) -> list[str]:
    """Why a cell's regime is a coin flip; empty when it is not.

    In doubt when the (dense-seed mean) mc lies within ``near_mc`` of the mc threshold, when a
    well-connected cell's CKA lies within ``near_cka`` of the CKA threshold, or when the dense
    seeds, each classified on its own, fall in different regimes.
    """
    s = settings or RegimeSettings()
    _check_margins(near_mc, near_cka)
    records = list(records)
    c = classify_records(records, s)
    if c["regime"] not in ("I", "II-A", "II-B"):
        return []
    doubts = []
    if abs(c["mc"] - s.mc_limit) <= near_mc:
        doubts.append(f"mc {c['mc']:.3f} is within {near_mc:g} of the threshold {s.mc_limit:g}")
    elif c["regime"] != "I" and c["cka"] is not None and abs(c["cka"] - s.cka_threshold) <= near_cka:
        doubts.append(f"CKA {c['cka']:.3f} is within {near_cka:g} of the threshold {s.cka_threshold:.4g}")
    per_seed = [(r.get("dense_seed"), classify_records(r, s)["regime"]) for r in records]
    if len({reg for _, reg in per_seed if reg in ("I", "II-A", "II-B")}) > 1:
        doubts.append("dense seeds disagree (" + ", ".join(f"seed {seed}: {reg}" for seed, reg in per_seed) + ")")
    return doubts


def _check_margins(near_mc: float, near_cka: float) -> None:
    for name, value in (("cases.near_mc", near_mc), ("cases.near_cka", near_cka)):
        if finite_number(value) is None or value < 0:
            raise ValueError(f"{name}: {value!r} is not valid; use a number >= 0")


def sam_walk(measure: Callable[..., dict | Sequence[dict]], start_rho: float,
             ladder: Sequence[float] | None = None, rho_min: float = CASES.sam_rho_min,
             rho_max: float = CASES.sam_rho_max, max_steps: int = CASES.sam_max_steps,
             settings: RegimeSettings | None = None, *, near_mc: float = CASES.near_mc,
             near_cka: float = CASES.near_cka, extra_seeds: int = CASES.extra_dense_seeds) -> SamWalk:
    """Walk rho by the regime rule: up in Regime I, down in II-A (and after divergence).

    Moves one rung of ``ladder`` (sorted values) or, without a ladder, x2 / /2 clamped to
    [rho_min, rho_max]. Stops at II-B, at an unknown regime, when I and II-A flip (either
    order), at a value already visited, at a bound / the ladder's end, or after ``max_steps``
    moves (so at most max_steps + 1 rho values). ``measure(rho)`` returns the cell record(s)
    at the target density; the service runs or reuses the jobs.

    A point in doubt (`regime_doubts`: near a threshold, or its dense seeds disagree) is not a
    basis for a move: the walk first takes the cheaper step of measuring one more dense seed
    there (``measure(rho, extra_seeds=k)`` returns the records with k more dense seeds), up to
    ``extra_seeds`` of them; if still in doubt it stays at that rho and says why.
    """
    s = settings or RegimeSettings()
    rungs = _walk_rungs(start_rho, ladder, rho_min, rho_max, max_steps, extra_seeds, near_mc, near_cka)
    rho = float(start_rho)
    path: list[WalkPoint] = []
    previous: str | None = None
    while True:
        point, c = _walk_point(measure, rho, s, near_mc, near_cka, extra_seeds)
        path.append(point)
        stop, nxt = _walk_step(point, c, previous, path, max_steps, rungs, rho_min, rho_max)
        if stop or nxt is None:
            break
        previous, rho = point.regime, nxt
    scored = [p for p in path if p.test_error is not None]
    best = min(scored, key=lambda p: p.test_error) if scored else None
    return SamWalk(path=path, best=best, stop=stop, trainings=sum(p.trainings for p in path),
                   thresholds=s.thresholds(), sources=s.threshold_sources(),
                   settings={"start_rho": start_rho, "ladder": rungs, "rho_min": rho_min, "rho_max": rho_max,
                             "max_steps": max_steps, "near_mc": near_mc, "near_cka": near_cka,
                             "extra_dense_seeds": extra_seeds})


def _walk_rungs(start_rho: float, ladder: Sequence[float] | None, rho_min: float, rho_max: float,
                max_steps: int, extra_seeds: int, near_mc: float, near_cka: float) -> list[float] | None:
    """The walk's settings checked (ValueError naming the bad one); the sorted ladder, if any."""
    if not isinstance(max_steps, int) or max_steps < 0:
        raise ValueError(f"cases.sam_max_steps: {max_steps!r} is not valid; use an integer >= 0")
    if not isinstance(extra_seeds, int) or isinstance(extra_seeds, bool) or extra_seeds < 0:
        raise ValueError(f"cases.extra_dense_seeds: {extra_seeds!r} is not valid; use an integer >= 0")
    _check_margins(near_mc, near_cka)
    if ladder is None:
        if not (0 < rho_min <= rho_max):
            raise ValueError(f"sam rho bounds: need 0 < rho_min <= rho_max, got {rho_min!r}, {rho_max!r}")
        if not rho_min <= start_rho <= rho_max:
            raise ValueError(f"sam start_rho: {start_rho!r} is outside [rho_min, rho_max] = [{rho_min}, {rho_max}]")
        return None
    rungs = sorted(float(r) for r in ladder)
    if not rungs or any(r <= 0 for r in rungs):
        raise ValueError(f"sam ladder: {list(ladder)!r} is not valid; use positive rho values")
    if not any(same_value(start_rho, r) for r in rungs):
        raise ValueError(f"sam start_rho: {start_rho!r} is not on the ladder {rungs}")
    return rungs


def _walk_point(measure: Callable[..., dict | Sequence[dict]], rho: float, s: RegimeSettings,
                near_mc: float, near_cka: float, extra_seeds: int) -> tuple[WalkPoint, dict]:
    """One point of the walk, measured; a point in doubt first gets up to `extra_seeds` more
    dense seeds (the cheaper safe step). The point and its classification."""
    records = as_records(measure(rho))
    doubts, extra = regime_doubts(records, s, near_mc, near_cka), 0
    while doubts and extra < extra_seeds:
        extra += 1
        records = as_records(measure(rho, extra_seeds=extra))
        doubts = regime_doubts(records, s, near_mc, near_cka)
    c = classify_records(records, s)
    te = aggregate(records, "test_error")[0]
    return WalkPoint(rho=rho, regime=c["regime"], uncertain=c["uncertain"] or bool(doubts), test_error=te,
                     mc=c["mc"], cka=c["cka"], trainings=record_trainings(records),
                     dense_seeds=len(records), extra_seeds=extra, doubts=doubts), c


def _walk_step(point: WalkPoint, c: dict, previous: str | None, path: list[WalkPoint], max_steps: int,
               rungs: list[float] | None, rho_min: float, rho_max: float) -> tuple[str, float | None]:
    """Why the walk stops at `point` ("" when it goes on) and the next rho."""
    rho, regime = point.rho, point.regime
    if point.doubts:
        added = f" after {point.extra_seeds} more dense seed(s)" if point.extra_seeds else ""
        return (f"regime {regime} at rho={rho:g} is a coin flip{added} ({'; '.join(point.doubts)}): "
                f"stayed at rho={rho:g} rather than move on it"), None
    if regime == "II-B":
        return f"reached II-B at rho={rho:g}", None
    if regime == "unknown":
        return f"regime unknown at rho={rho:g} ({c['reason']})", None
    if {previous, regime} == {"I", "II-A"}:
        return f"regime flipped back ({previous} -> {regime}) at rho={rho:g}", None
    if len(path) - 1 >= max_steps:
        return f"reached max_steps={max_steps}", None
    move = direction(regime)
    nxt = _next_rho(rho, move, rungs, rho_min, rho_max)
    if nxt is None:
        end = "ladder end" if rungs else ("rho_max" if move == "raise" else "rho_min")
        return f"at the {end} (rho={rho:g}) and the rule says {move}", None
    if any(same_value(nxt, p.rho) for p in path):
        return f"next rho={nxt:g} was already visited", None
    return "", nxt


def _next_rho(rho: float, move: str | None, rungs: list[float] | None, lo: float, hi: float) -> float | None:
    step = 1 if move == "raise" else -1
    if rungs is not None:
        k = next(k for k, r in enumerate(rungs) if same_value(r, rho)) + step
        return rungs[k] if 0 <= k < len(rungs) else None
    if (step > 0 and same_value(rho, hi)) or (step < 0 and same_value(rho, lo)):
        return None
    return min(rho * 2, hi) if step > 0 else max(rho / 2, lo)


@dataclass
class GridSearch:
    best_rho: float | None
    best_test_error: float | None
    points: list[dict]              # rho, test_error, trainings (coldest first)
    trainings: int

    def to_json(self) -> dict:
        return asdict(self)


def grid_search_best(cells: Sequence[dict], density: float | None = None) -> GridSearch:
    """The grid-search baseline for sam_walk: lowest mean test error over all temperatures at
    one density, and the trainings the whole grid cost."""
    cells = list(cells)
    dens = sorted({float(c["density"]) for c in cells})
    if density is None:
        if len(dens) != 1:
            raise ValueError(f"grid_search_best: cells span densities {dens}; pass density=")
        density = dens[0]
    chosen = [c for c in cells if same_value(c["density"], density)]
    if not chosen:
        raise ValueError(f"grid_search_best: density {density!r} not in the cells; valid: {dens}")
    rhos: list[float] = []
    for c in chosen:
        if not any(same_value(c["temperature"], r) for r in rhos):
            rhos.append(c["temperature"])
    points = []
    for rho in sorted(rhos, key=float):
        group = [c for c in chosen if same_value(c["temperature"], rho)]
        te = aggregate(group, "test_error")[0] if cell_state(group) != "diverged" else None
        points.append({"rho": rho, "test_error": te, "trainings": record_trainings(group)})
    scored = [p for p in points if p["test_error"] is not None]
    best = min(scored, key=lambda p: p["test_error"]) if scored else None
    return GridSearch(best_rho=best and best["rho"], best_test_error=best and best["test_error"], points=points,
                      trainings=sum(p["trainings"] for p in points))


def point_line(p: WalkPoint) -> str:
    """One visited rho in words: its regime, mc, CKA and pruned test error."""
    def num(v: float | None, digits: int) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}"
    return (f"rho={p.rho:g}: regime {p.regime}{' (in doubt)' if p.uncertain else ''}, mc {num(p.mc, 3)}, "
            f"CKA {num(p.cka, 3)}, pruned test error {num(p.test_error, 4)}"
            + (f" ({count(p.dense_seeds, 'dense seed')})" if p.dense_seeds > 1 else ""))


def format_sam_walk(result: SamWalk, grid: GridSearch | None = None) -> str:
    steps = " -> ".join(f"{p.rho:g} ({p.regime}{'~' if p.uncertain else ''})" for p in result.path)
    lines = [f"SAM rho walk: {steps}", f"  stopped: {result.stop}",
             "  measured at each visited rho (mean over dense seeds):"]
    lines += [f"    {point_line(p)}" for p in result.path]
    for p in result.path:
        if p.extra_seeds:
            outcome = "still in doubt" if p.doubts else f"settled: {p.regime}"
            lines.append(f"  rho={p.rho:g} was in doubt: measured {p.extra_seeds} more dense seed(s) "
                         f"({p.dense_seeds} in all), {outcome}")
    if result.best is not None:
        lines.append(f"  best visited: rho={result.best.rho:g}, pruned test error {result.best.test_error:.4f}"
                     f"; {count(result.trainings, 'training')}")
    else:
        lines.append(f"  no visited point has a test error; {count(result.trainings, 'training')}")
    if grid is not None and grid.best_rho is not None:
        lines.append(f"  grid search: rho={grid.best_rho:g}, pruned test error {grid.best_test_error:.4f}; "
                     f"{count(grid.trainings, 'training')} over {len(grid.points)} values")
    lines += threshold_lines(result.thresholds, result.sources)
    return "\n".join(lines)



def sam_walk_of(measure: Callable[[dict], list[dict]], recipe, density: float, rho: float,
                settings: RegimeSettings) -> SamWalk:
    """Case 3 on a recipe at `density`, starting at `rho`: the walk over its rho ladder (when
    `rho` is on it) with the recipe's case settings. ``measure(overrides)`` runs (or reuses) the
    sub-grid those recipe overrides describe and returns its cell records."""
    ladder = list(recipe.temperature.values)
    on_ladder = any(abs(v - rho) < 1e-12 for v in ladder)
    base_seeds = list(recipe.dense_seeds)

    def at(r: float, extra_seeds: int = 0) -> list[dict]:
        seeds = base_seeds + [max(base_seeds) + k for k in range(1, extra_seeds + 1)]
        return measure({"temperature": {"values": [r]}, "densities": [density], "dense_seeds": seeds})
    c = recipe.cases
    return sam_walk(at, rho, ladder if on_ladder else None, c.sam_rho_min, c.sam_rho_max, c.sam_max_steps,
                    settings, near_mc=c.near_mc, near_cka=c.near_cka, extra_seeds=c.extra_dense_seeds)


def sam_answer(walk: SamWalk, full: Sequence[dict], recipe_name: str, density: float,
               run_counts: dict) -> dict:
    """Case 3's walk as JSON + text, beside the grid search over rho once the recipe's grid
    (`full`: its cell records) is measured at that density."""
    at_d = [x for x in full if abs(x["density"] - density) < 1e-12]
    grid = grid_search_best(at_d, density) if all(x["state"] == "done" for x in at_d) else None
    out = walk.to_json()
    out.update(kind="sam", recipe=recipe_name, density=density, jobs=run_counts,
               grid_search=grid.to_json() if grid else None,
               text=format_sam_walk(walk, grid) + f"\n  jobs run now: {run_counts['run']}, "
               f"reused: {run_counts['reused']}" + ("" if grid else
               "\n  grid search: not all rho values are measured at this density yet "
               f"(run `tprm run {recipe_name}` for the comparison)"))
    return out
