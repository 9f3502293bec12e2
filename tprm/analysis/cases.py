"""The paper's three case studies as measured decision procedures on cell records.

Nothing here trains: the service runs (or reuses) jobs, then hands the cell records to these
functions, which decide, score the decision against ground truth and format a short report.
Every result is a plain dataclass whose ``to_json()`` is JSON-serialisable.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from tprm.analysis.phase import (aggregate, build_grid, cell_state, finite_number, format_density,
                                 group_cells, same_value)
from tprm.analysis.regimes import (RegimeSettings, classify_records, describe_thresholds, direction,
                                   recommendation_text, regime_grid)
from tprm.engine.recipe import CasesSection

_CASES = CasesSection()  # the recipe schema holds every case-study default (docs/recipes.md)

MOVES = ("raise", "lower", "keep")


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95 % by default); (0, 1) when n == 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference_interval(both: int, only_first: int, only_second: int, neither: int,
                               z: float = 1.959963984540054) -> tuple[float, float, float]:
    """Difference of two paired proportions (first minus second) with its 95 % interval.

    Newcombe's hybrid score interval (1998, method 10) from the 2x2 table of paired outcomes:
    both right, only the first right, only the second right, neither. Returns (difference, low,
    high); (0, -1, 1) when there is nothing to compare.
    """
    counts = (both, only_first, only_second, neither)
    if any(not isinstance(c, int) or c < 0 for c in counts):
        raise ValueError(f"paired_difference_interval: counts must be integers >= 0, got {counts}")
    n = sum(counts)
    if n == 0:
        return 0.0, -1.0, 1.0
    p1, p2 = (both + only_first) / n, (both + only_second) / n
    l1, u1 = wilson_interval(both + only_first, n, z)
    l2, u2 = wilson_interval(both + only_second, n, z)
    margins = (both + only_first) * (only_second + neither) * (both + only_second) * (only_first + neither)
    phi = (both * neither - only_first * only_second) / math.sqrt(margins) if margins else 0.0
    diff = p1 - p2
    low = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = diff + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return diff, max(-1.0, low), min(1.0, high)


def _records(cell: dict | Sequence[dict]) -> list[dict]:
    return [cell] if isinstance(cell, dict) else list(cell)


def standard_error(records: Sequence[dict]) -> float:
    """Standard error of a cell's mean pruned test error.

    Pools the retrain seeds' errors over dense seeds (sample std / sqrt(count)); with fewer than
    two seed values it falls back to the dense seeds' spread, else 0 (noise floor only).
    """
    pooled = [float(v) for r in records if r.get("state", "done") in ("done", "partial")
              for v in (r.get("test_error_seeds") or []) if finite_number(v) is not None]
    if len(pooled) >= 2:
        return statistics.stdev(pooled) / math.sqrt(len(pooled))
    _, spread, n, _ = aggregate(records, "test_error")
    return spread / math.sqrt(n) if spread is not None else 0.0


# ---------------------------------------------------------------- 1. which way to move

@dataclass
class Decision:
    """A direction recommendation for one cell, with its evidence."""

    temperature: float | None
    density: float | None
    knob: str
    regime: str
    uncertain: bool
    reason: str
    mc: float | None
    cka: float | None
    endpoint_gap: float | None
    direction: str | None          # raise | lower | keep (temperature), None when unknown
    recommendation: str            # in the knob's terms, e.g. "train for fewer epochs"
    thresholds: dict
    sources: dict

    def to_json(self) -> dict:
        return asdict(self)


def direction_for_cell(cell: dict | Sequence[dict], settings: RegimeSettings | None = None, *,
                       knob: str = "temperature", hotter: str = "larger") -> Decision:
    """Classify one cell (its record, or its records per dense seed) and recommend a move."""
    records = _records(cell)
    if not records:
        raise ValueError("direction_for_cell: cell has no records")
    c = classify_records(records, settings)
    move = direction(c["regime"])
    return Decision(temperature=records[0].get("temperature"), density=records[0].get("density"), knob=knob,
                    regime=c["regime"], uncertain=c["uncertain"], reason=c["reason"], mc=c["mc"], cka=c["cka"],
                    endpoint_gap=c["endpoint_gap"], direction=move,
                    recommendation=recommendation_text(move, knob, hotter),
                    thresholds=c["thresholds"], sources=c["sources"])


def format_direction(decision: Decision) -> str:
    d = decision
    flag = " (uncertain)" if d.uncertain else ""
    lines = [f"{d.knob}={d.temperature}, density={_pct(d.density)}: regime {d.regime}{flag}"
             f" -> {d.recommendation}",
             f"  evidence: {d.reason}"]
    lines += _threshold_lines(d.thresholds, d.sources)
    return "\n".join(lines)


@dataclass
class DirectionRow:
    temperature: float
    density: float
    regime: str
    uncertain: bool
    recommendation: str | None
    truth: str
    correct: bool
    test_error: float
    gain: float                    # cell error minus best option's error (>= 0)
    noise: float                   # the threshold the gain had to beat
    baselines: dict[str, str | None]


@dataclass
class MethodScore:
    correct: int
    n: int
    accuracy: float | None
    ci_low: float
    ci_high: float


@dataclass
class Comparison:
    """The rule against one baseline on the same cells: paired accuracy difference (rule minus
    baseline) with its 95 % interval; ``verdict`` is "better" / "worse" when the interval
    excludes 0, else "not distinguishable"."""

    baseline: str
    rule_only: int                 # cells the rule got right and the baseline wrong
    baseline_only: int             # and the other way round
    difference: float
    ci_low: float
    ci_high: float
    verdict: str


@dataclass
class DirectionEvaluation:
    knob: str
    hotter: str
    noise_floor: float
    rows: list[DirectionRow]
    scores: dict[str, MethodScore]  # "regime rule" and each baseline
    skipped: list[dict]             # cells not scored, with why
    thresholds: dict
    sources: dict
    comparisons: dict[str, Comparison] = field(default_factory=dict)  # per baseline

    @property
    def beats_every_baseline(self) -> bool:
        """True when the rule is better than every baseline with 95 % confidence."""
        return bool(self.comparisons) and all(c.verdict == "better" for c in self.comparisons.values())

    def to_json(self) -> dict:
        return asdict(self)


BASELINES = ("always hotter", "always colder", "always keep", "dense test error")


def evaluate_direction_rule(cells: Sequence[dict], settings: RegimeSettings | None = None,
                            noise_floor: float = 0.002, *, hotter: str, knob: str = "temperature",
                            temperatures: Sequence[float] | None = None,
                            densities: Sequence[float] | None = None) -> DirectionEvaluation:
    """Score "regime -> direction" against ground truth on a full grid.

    Truth for a cell: the best of {colder neighbour, the cell, hotter neighbour} (same density)
    by mean pruned test error; "keep" unless the best neighbour beats the cell by more than
    max(standard error of the difference, noise_floor). Neighbours without data or diverged are
    not options; edge cells have two options. Cells without their own test error, or with no
    usable neighbour, are skipped (listed with the reason). A rule that abstains (regime
    unknown) counts as wrong. Baselines: always hotter, always colder, always keep, and move
    toward the neighbour whose dense model has a lower dense_test_error (keep if none is lower).
    """
    if finite_number(noise_floor) is None or noise_floor < 0:
        raise ValueError(f"cases.noise_floor: {noise_floor!r} is not valid; use a number >= 0")
    s = settings or RegimeSettings()
    cells = list(cells)
    err = build_grid(cells, "test_error", temperatures, densities, knob, hotter)
    dense = build_grid(cells, "dense_test_error", err.temperatures, err.densities, knob, hotter)
    regimes = regime_grid(cells, err.temperatures, err.densities, knob, hotter, s)
    groups = group_cells(cells, err.temperatures, err.densities)
    rows: list[DirectionRow] = []
    skipped: list[dict] = []
    nt = len(err.temperatures)
    for j, density in enumerate(err.densities):
        for i, temp in enumerate(err.temperatures):
            where = {"temperature": temp, "density": density}
            usable = [k for k in (i - 1, i, i + 1)
                      if 0 <= k < nt and err.mean[k][j] is not None and err.state[k][j] != "diverged"]
            if i not in usable:
                skipped.append({**where, "why": f"no test error ({err.state[i][j]})"})
                continue
            if len(usable) == 1:
                skipped.append({**where, "why": "no neighbour with data"})
                continue
            best = min(usable, key=lambda k: (err.mean[k][j], k != i))
            gain = err.mean[i][j] - err.mean[best][j]
            noise = max(math.hypot(standard_error(groups[i][j]), standard_error(groups[best][j])), noise_floor)
            truth = "keep" if best == i or gain <= noise else ("raise" if best > i else "lower")
            rule = direction(regimes.regime[i][j])
            baselines = {"always hotter": "raise", "always colder": "lower", "always keep": "keep",
                         "dense test error": _dense_move(dense.mean, i, j, nt)}
            rows.append(DirectionRow(temperature=temp, density=density, regime=regimes.regime[i][j],
                                     uncertain=regimes.uncertain[i][j], recommendation=rule, truth=truth,
                                     correct=rule == truth, test_error=err.mean[i][j], gain=gain, noise=noise,
                                     baselines=baselines))
    scores = {"regime rule": _score([r.correct for r in rows])}
    for name in BASELINES:
        scores[name] = _score([r.baselines[name] == r.truth for r in rows])
    comparisons = {name: compare_to_baseline(rows, name) for name in BASELINES}
    return DirectionEvaluation(knob=knob, hotter=hotter, noise_floor=noise_floor, rows=rows, scores=scores,
                               skipped=skipped, thresholds=regimes.thresholds, sources=regimes.sources,
                               comparisons=comparisons)


def compare_to_baseline(rows: Sequence[DirectionRow], baseline: str) -> Comparison:
    """Paired comparison of the rule with one baseline over the same scored cells."""
    table = [0, 0, 0, 0]  # both right, rule only, baseline only, neither
    for r in rows:
        other = r.baselines[baseline] == r.truth
        table[(0 if other else 1) if r.correct else (2 if other else 3)] += 1
    diff, lo, hi = paired_difference_interval(*table)
    verdict = "better" if lo > 0 else ("worse" if hi < 0 else "not distinguishable")
    return Comparison(baseline=baseline, rule_only=table[1], baseline_only=table[2], difference=diff,
                      ci_low=lo, ci_high=hi, verdict=verdict)


def verdict_lines(result: DirectionEvaluation) -> list[str]:
    """Plain sentences on whether the rule beats each baseline here, from the paired intervals."""
    comps = result.comparisons
    if not comps or not result.rows:
        return ["  verdict: no cell could be scored, so nothing can be said about the rule here"]
    if result.beats_every_baseline:
        return ["  verdict: the regime rule beats every baseline here (each paired 95% interval is above 0)"]
    lines = ["  verdict: the regime rule is NOT shown better than every baseline here:"]
    for c in comps.values():
        if c.verdict == "better":
            continue
        how = "worse than" if c.verdict == "worse" else "not distinguishable from"
        lines.append(f"    {how} '{c.baseline}': rule minus baseline {c.difference:+.0%} "
                     f"(95% CI {c.ci_low:+.0%} to {c.ci_high:+.0%}; rule alone right in {c.rule_only} "
                     f"cell(s), baseline alone in {c.baseline_only})")
    keep = comps.get("always keep")
    if keep is not None and keep.verdict != "better":
        lines.append("    so on this grid, keeping the setting is as good a guide as the regime rule"
                     + (" (or better)" if keep.verdict == "worse" else ""))
    lines += _why_lines(result.rows)
    return lines


def _why_lines(rows: Sequence[DirectionRow]) -> list[str]:
    """Why the rule does as it does: the regimes it saw and its wrong calls, counted."""
    seen = Counter(r.regime for r in rows)
    wrong = Counter((r.regime, r.recommendation or "no call", r.truth) for r in rows if not r.correct)
    lines = ["    regimes of the scored cells: " + ", ".join(f"{k} {v}" for k, v in sorted(seen.items()))]
    if wrong:
        lines.append("    the rule's wrong calls: " + "; ".join(
            f"{n} x {reg} -> {rule} where {truth} was best" for (reg, rule, truth), n in wrong.most_common()))
    return lines


def track_record_lines(result: DirectionEvaluation, temperature: float | None = None,
                       density: float | None = None) -> list[str]:
    """A single-cell decision's context: how the rule did on this recipe's whole grid, and (given
    the cell) what the measured neighbours say was the best move there."""
    rule, keep = result.scores.get("regime rule"), result.scores.get("always keep")
    if rule is None or not rule.n:
        return []
    lines = []
    cell = [r for r in result.rows if temperature is not None and density is not None
            and same_value(r.temperature, temperature) and same_value(r.density, density)]
    if cell:
        r = cell[0]
        if r.truth != "keep":
            why = f"that neighbour is better by {r.gain:.3f}, beyond the noise {r.noise:.3f}"
        elif r.gain > 0:
            why = f"the best neighbour is better by only {r.gain:.3f}, within the noise {r.noise:.3f}"
        else:
            why = "no neighbour is better"
        lines.append(f"  measured on the grid: the best move here was {r.truth} ({why}), so the rule's call "
                     f"is {'right' if r.correct else 'wrong'} at this cell")
    head = (f"  track record on this recipe's grid: the rule was right in {rule.correct}/{rule.n} cells "
            f"(95% CI {rule.ci_low:.0%}-{rule.ci_high:.0%})")
    if keep is not None:
        head += f", 'always keep' in {keep.correct}/{keep.n}"
    return lines + [head] + verdict_lines(result)


def _dense_move(dense: list[list[float | None]], i: int, j: int, nt: int) -> str:
    here = dense[i][j]
    options = [(dense[k][j], k) for k in (i - 1, i + 1) if 0 <= k < nt and dense[k][j] is not None]
    if not options:
        return "keep"
    value, k = min(options)
    if here is not None and value >= here:
        return "keep"
    return "raise" if k > i else "lower"


def _score(outcomes: list[bool]) -> MethodScore:
    k, n = sum(outcomes), len(outcomes)
    lo, hi = wilson_interval(k, n)
    return MethodScore(correct=k, n=n, accuracy=k / n if n else None, ci_low=lo, ci_high=hi)


def format_direction_evaluation(result: DirectionEvaluation, rows: bool = False) -> str:
    """Accuracy table of the rule and baselines; with ``rows`` the per-cell decisions too."""
    lines = [f"Direction rule on {result.knob} ({result.hotter} = hotter): "
             f"{len(result.rows)} cells scored, {len(result.skipped)} skipped, noise floor {result.noise_floor:g}"]
    for name, sc in result.scores.items():
        acc = "  n/a" if sc.accuracy is None else f"{sc.accuracy:5.1%}"
        lines.append(f"  {name:<17} {acc}  ({sc.correct}/{sc.n}, 95% CI {sc.ci_low:.0%}-{sc.ci_high:.0%})")
    lines += verdict_lines(result)
    lines += _threshold_lines(result.thresholds, result.sources)
    if rows:
        lines.append(f"  {result.knob:>8} {'density':>7} {'regime':<8} {'rule':<6} {'truth':<6} ok")
        for r in result.rows:
            regime = r.regime + ("~" if r.uncertain else "")
            lines.append(f"  {r.temperature!s:>8} {_pct(r.density):>7} {regime:<8} {r.recommendation or '-':<6} "
                         f"{r.truth:<6} {'yes' if r.correct else 'no'}")
    return "\n".join(lines)


# ---------------------------------------------------------------- 2. which model to prune

@dataclass
class Pick:
    picker: str
    label: str
    test_error: float              # the pick's pruned test error (true_test_error when given)
    regret: float                  # minus the oracle's
    trainings: int                 # trainings this picker needed
    why: str


@dataclass
class Selection:
    picks: dict[str, Pick]
    candidates: list[dict]
    thresholds: dict
    sources: dict

    def to_json(self) -> dict:
        return asdict(self)


def select_model(candidates: Sequence[dict], settings: RegimeSettings | None = None) -> Selection:
    """Pick a dense model to prune by several rules and score each against the oracle.

    Candidate: {label, mc, cka, endpoint_gap, test_error, dense_test_error, trainings} and
    optional mc_loss (used when mc_on is "loss"), true_test_error / true_trainings (full-length
    retrains for scoring) and dense_trainings (default 1). Pickers: "regime-aware" (well
    connected first, then higher CKA; if none is well connected, the highest mc), "dense
    accuracy" (lowest dense_test_error; needs dense trainings only), "pruned error" (lowest
    test_error of the same retrains; same cost as regime-aware), "oracle" (lowest true error).
    Ties go to the first candidate.
    """
    s = settings or RegimeSettings()
    cands = [_check_candidate(c, k, s) for k, c in enumerate(candidates)]
    if not cands:
        raise ValueError("select_model: candidates is empty; give at least one candidate")
    labels = [c["label"] for c in cands]
    if len(set(labels)) != len(labels):
        raise ValueError(f"select_model: candidate labels must be unique, got {labels}")
    use_true = all(c.get("true_test_error") is not None for c in cands)
    truth = {c["label"]: float(c["true_test_error"] if use_true else c["test_error"]) for c in cands}
    dense_cost = sum(int(c.get("dense_trainings", 1)) for c in cands)
    retrain_cost = dense_cost + sum(int(c["trainings"]) for c in cands)
    oracle_cost = dense_cost + sum(int(c.get("true_trainings", c["trainings"]) if use_true else c["trainings"])
                                   for c in cands)
    mc_key = s.mc_metric

    def regime_key(c: dict) -> tuple:
        mc, cka = finite_number(c.get(mc_key)), finite_number(c.get("cka"))
        connected = mc is not None and mc >= s.mc_limit
        if connected:
            return (0, -(cka if cka is not None else -math.inf))
        return (1, -(mc if mc is not None else -math.inf))

    choices = {
        "regime-aware": (min(cands, key=regime_key), retrain_cost),
        "dense accuracy": (min(cands, key=lambda c: c["dense_test_error"]), dense_cost),
        "pruned error": (min(cands, key=lambda c: c["test_error"]), retrain_cost),
        "oracle": (min(cands, key=lambda c: truth[c["label"]]), oracle_cost),
    }
    best = min(truth.values())
    picks = {}
    for name, (c, cost) in choices.items():
        picks[name] = Pick(picker=name, label=c["label"], test_error=truth[c["label"]],
                           regret=truth[c["label"]] - best, trainings=cost, why=_pick_reason(name, c, s))
    return Selection(picks=picks, candidates=[dict(c) for c in cands], thresholds=s.thresholds(),
                     sources=s.threshold_sources())


def _check_candidate(c: dict, k: int, s: RegimeSettings) -> dict:
    if not isinstance(c, dict) or "label" not in c:
        raise ValueError(f"select_model: candidate {k} needs a 'label'")
    for key in ("test_error", "dense_test_error", "trainings"):
        if finite_number(c.get(key)) is None:
            raise ValueError(f"select_model: candidate {c['label']!r} field {key!r} must be a number, "
                             f"got {c.get(key)!r}")
    return c


def _pick_reason(name: str, c: dict, s: RegimeSettings) -> str:
    if name == "regime-aware":
        mc, cka = finite_number(c.get(s.mc_metric)), finite_number(c.get("cka"))
        connected = mc is not None and mc >= s.mc_limit
        mc_txt = "n/a" if mc is None else f"{mc:.3f}"
        cka_txt = "n/a" if cka is None else f"{cka:.3f}"
        return (f"{'well connected' if connected else 'none well connected'}: mc {mc_txt}, CKA {cka_txt}")
    if name == "dense accuracy":
        return f"dense test error {c['dense_test_error']:.4f}"
    if name == "pruned error":
        return f"pruned test error {c['test_error']:.4f}"
    return "lowest true pruned test error"


def format_selection(result: Selection) -> str:
    lines = [f"Model selection over {len(result.candidates)} candidates:"]
    for p in result.picks.values():
        lines.append(f"  {p.picker:<15} -> {p.label:<14} error {p.test_error:.4f}  regret {p.regret:+.4f}"
                     f"  {p.trainings} trainings")
        lines.append(f"  {'':<15}    {p.why}")
    lines += _threshold_lines(result.thresholds, result.sources)
    return "\n".join(lines)


# ---------------------------------------------------------------- 3. tuning SAM's rho

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
                  near_mc: float = _CASES.near_mc, near_cka: float = _CASES.near_cka) -> list[str]:
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
             ladder: Sequence[float] | None = None, rho_min: float = _CASES.sam_rho_min,
             rho_max: float = _CASES.sam_rho_max, max_steps: int = _CASES.sam_max_steps,
             settings: RegimeSettings | None = None, *, near_mc: float = _CASES.near_mc,
             near_cka: float = _CASES.near_cka, extra_seeds: int = _CASES.extra_dense_seeds) -> SamWalk:
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
    if not isinstance(max_steps, int) or max_steps < 0:
        raise ValueError(f"cases.sam_max_steps: {max_steps!r} is not valid; use an integer >= 0")
    if not isinstance(extra_seeds, int) or isinstance(extra_seeds, bool) or extra_seeds < 0:
        raise ValueError(f"cases.extra_dense_seeds: {extra_seeds!r} is not valid; use an integer >= 0")
    _check_margins(near_mc, near_cka)
    rungs = None
    if ladder is not None:
        rungs = sorted(float(r) for r in ladder)
        if not rungs or any(r <= 0 for r in rungs):
            raise ValueError(f"sam ladder: {list(ladder)!r} is not valid; use positive rho values")
        if not any(same_value(start_rho, r) for r in rungs):
            raise ValueError(f"sam start_rho: {start_rho!r} is not on the ladder {rungs}")
    else:
        if not (0 < rho_min <= rho_max):
            raise ValueError(f"sam rho bounds: need 0 < rho_min <= rho_max, got {rho_min!r}, {rho_max!r}")
        if not rho_min <= start_rho <= rho_max:
            raise ValueError(f"sam start_rho: {start_rho!r} is outside [rho_min, rho_max] = [{rho_min}, {rho_max}]")
    rho = float(start_rho)
    path: list[WalkPoint] = []
    previous: str | None = None
    stop = ""
    while True:
        records = _records(measure(rho))
        doubts, extra = regime_doubts(records, s, near_mc, near_cka), 0
        while doubts and extra < extra_seeds:  # the cheaper safe step: one more dense seed here
            extra += 1
            records = _records(measure(rho, extra_seeds=extra))
            doubts = regime_doubts(records, s, near_mc, near_cka)
        c = classify_records(records, s)
        te = aggregate(records, "test_error")[0]
        path.append(WalkPoint(rho=rho, regime=c["regime"], uncertain=c["uncertain"] or bool(doubts), test_error=te,
                              mc=c["mc"], cka=c["cka"], trainings=record_trainings(records),
                              dense_seeds=len(records), extra_seeds=extra, doubts=doubts))
        regime = c["regime"]
        if doubts:
            added = f" after {extra} more dense seed(s)" if extra else ""
            stop = (f"regime {regime} at rho={rho:g} is a coin flip{added} ({'; '.join(doubts)}): "
                    f"stayed at rho={rho:g} rather than move on it")
            break
        if regime == "II-B":
            stop = f"reached II-B at rho={rho:g}"
            break
        if regime == "unknown":
            stop = f"regime unknown at rho={rho:g} ({c['reason']})"
            break
        if {previous, regime} == {"I", "II-A"}:
            stop = f"regime flipped back ({previous} -> {regime}) at rho={rho:g}"
            break
        if len(path) - 1 >= max_steps:
            stop = f"reached max_steps={max_steps}"
            break
        move = direction(regime)
        nxt = _next_rho(rho, move, rungs, rho_min, rho_max)
        if nxt is None:
            end = "ladder end" if rungs else ("rho_max" if move == "raise" else "rho_min")
            stop = f"at the {end} (rho={rho:g}) and the rule says {move}"
            break
        if any(same_value(nxt, p.rho) for p in path):
            stop = f"next rho={nxt:g} was already visited"
            break
        previous, rho = regime, nxt
    scored = [p for p in path if p.test_error is not None]
    best = min(scored, key=lambda p: p.test_error) if scored else None
    return SamWalk(path=path, best=best, stop=stop, trainings=sum(p.trainings for p in path),
                   thresholds=s.thresholds(), sources=s.threshold_sources(),
                   settings={"start_rho": start_rho, "ladder": rungs, "rho_min": rho_min, "rho_max": rho_max,
                             "max_steps": max_steps, "near_mc": near_mc, "near_cka": near_cka,
                             "extra_dense_seeds": extra_seeds})


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


def format_sam_walk(result: SamWalk, grid: GridSearch | None = None) -> str:
    steps = " -> ".join(f"{p.rho:g} ({p.regime}{'~' if p.uncertain else ''})" for p in result.path)
    lines = [f"SAM rho walk: {steps}", f"  stopped: {result.stop}"]
    for p in result.path:
        if p.extra_seeds:
            outcome = "still in doubt" if p.doubts else f"settled: {p.regime}"
            lines.append(f"  rho={p.rho:g} was in doubt: measured {p.extra_seeds} more dense seed(s) "
                         f"({p.dense_seeds} in all), {outcome}")
    if result.best is not None:
        lines.append(f"  best visited: rho={result.best.rho:g}, pruned test error {result.best.test_error:.4f}"
                     f"; {result.trainings} trainings")
    else:
        lines.append(f"  no visited point has a test error; {result.trainings} trainings")
    if grid is not None and grid.best_rho is not None:
        lines.append(f"  grid search: rho={grid.best_rho:g}, pruned test error {grid.best_test_error:.4f}; "
                     f"{grid.trainings} trainings over {len(grid.points)} values")
    lines += _threshold_lines(result.thresholds, result.sources)
    return "\n".join(lines)


# ---------------------------------------------------------------- shared text helpers

def _pct(density: float | None) -> str:
    return "?" if density is None else format_density(density)


def _threshold_lines(thresholds: dict, sources: dict) -> list[str]:
    return ["  thresholds:"] + [f"    {line}" for line in describe_thresholds(thresholds, sources)]
