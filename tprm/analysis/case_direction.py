"""Case study 1: which way to move the temperature knob, decided per cell and scored on a grid
against baselines."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from tprm.analysis.case_stats import (as_records, paired_difference_interval, pct,
                                      standard_error, threshold_lines, wilson_interval)
from tprm.analysis.explore_lattice import temperature_neighbours
from tprm.analysis.phase import aggregate, build_grid, finite_number, group_cells, same_value
from tprm.analysis.regimes import (RegimeSettings, classify_records, direction,
                                   recommendation_text, regime_grid)


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
    records = as_records(cell)
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
    lines = [f"{d.knob}={d.temperature}, density={pct(d.density)}: regime {d.regime}{flag}"
             f" -> {d.recommendation}",
             f"  evidence: {d.reason}"]
    lines += threshold_lines(d.thresholds, d.sources)
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
            usable = [k for k in sorted([i, *temperature_neighbours(i, nt)])
                      if err.mean[k][j] is not None and err.state[k][j] != "diverged"]
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
    options = [(dense[k][j], k) for k in temperature_neighbours(i, nt) if dense[k][j] is not None]
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
    lines += threshold_lines(result.thresholds, result.sources)
    if rows:
        lines.append(f"  {result.knob:>8} {'density':>7} {'regime':<8} {'rule':<6} {'truth':<6} ok")
        for r in result.rows:
            regime = r.regime + ("~" if r.uncertain else "")
            lines.append(f"  {r.temperature!s:>8} {pct(r.density):>7} {regime:<8} {r.recommendation or '-':<6} "
                         f"{r.truth:<6} {'yes' if r.correct else 'no'}")
    return "\n".join(lines)


def evaluate_on_plane(cells: Sequence[dict], settings: RegimeSettings, noise_floor: float,
                      axes: dict) -> DirectionEvaluation:
    """The rule scored on every cell of a recipe's plane (`axes`: temperatures, densities, knob,
    hotter); ValueError when it cannot be."""
    return evaluate_direction_rule(cells, settings, noise_floor, hotter=axes["hotter"], knob=axes["knob"],
                                   temperatures=axes["temperatures"], densities=axes["densities"])


def evaluation_answer(ev: DirectionEvaluation, recipe_name: str, run: dict) -> dict:
    """Case 1 evaluated on the whole grid, as JSON + text (`run`: the summary of the grid's run)."""
    out = ev.to_json()
    out.update(kind="direction-evaluation", recipe=recipe_name, run=run,
               text=format_direction_evaluation(ev, rows=True))
    return out


def direction_answer(cells: Sequence[dict], settings: RegimeSettings, axes: dict, recipe_name: str,
                     executed: int, record: DirectionEvaluation | None, at: tuple[float, float]) -> dict:
    """Case 1 at one cell `at` = (temperature, density) as JSON + text: the decision, the trainings
    run for it and, when the whole grid is measured, the rule's track record there."""
    decision = direction_for_cell(cells, settings, knob=axes["knob"], hotter=axes["hotter"])
    out = decision.to_json()
    out.update(kind="direction", recipe=recipe_name, trainings_run=executed,
               test_error=aggregate(cells, "test_error")[0],
               text=format_direction(decision) + f"\n  jobs run now: {executed} "
               f"(the rest reused from the store)")
    if record is not None:
        out.update(track_record=record.to_json(),
                   text=out["text"] + "\n" + "\n".join(track_record_lines(record, *at)))
    return out
