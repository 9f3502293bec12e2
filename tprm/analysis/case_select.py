"""Case study 2: which dense model (temperature) to prune at a target density."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tprm.analysis.candidates import selection_candidates
from tprm.analysis.case_stats import count, threshold_lines
from tprm.analysis.phase import finite_number
from tprm.analysis.regimes import RegimeSettings


@dataclass
class Pick:
    picker: str
    label: str
    test_error: float              # the pick's pruned test error (true_test_error when given)
    regret: float                  # minus the oracle's
    trainings: int                 # trainings this picker needed
    why: str
    noise: float | None = None     # standard error of the regret (retrain seeds); None: unknown


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
    spread = {c["label"]: finite_number(c.get("true_test_error_se" if use_true else "test_error_se"))
              for c in cands}
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
    oracle = choices["oracle"][0]["label"]
    best = truth[oracle]
    picks = {}
    for name, (c, cost) in choices.items():
        picks[name] = Pick(picker=name, label=c["label"], test_error=truth[c["label"]],
                           regret=truth[c["label"]] - best, trainings=cost, why=_pick_reason(name, c, s),
                           noise=_regret_noise(spread, c["label"], oracle))
    return Selection(picks=picks, candidates=[dict(c) for c in cands], thresholds=s.thresholds(),
                     sources=s.threshold_sources())


def _regret_noise(spread: dict[str, float | None], label: str, oracle: str) -> float | None:
    """Standard error of a pick's regret: of the difference of two means (0 for the oracle's own
    pick); None when a candidate's spread is unknown."""
    if label == oracle:
        return 0.0
    a, b = spread.get(label), spread.get(oracle)
    return None if a is None or b is None else math.hypot(a, b)


def regret_words(p: Pick) -> str:
    """A pick's regret with its noise, in plain words."""
    if p.regret == 0:
        return "regret 0 (as good as the oracle's pick)"
    if p.noise is None:
        return f"regret {p.regret:+.4f} (noise unknown)"
    if p.noise == 0:
        return f"regret {p.regret:+.4f} (noise not measurable: one retrain seed)"
    within = "within" if abs(p.regret) <= 2 * p.noise else "beyond"
    return f"regret {p.regret:+.4f} ± {p.noise:.4f} (1 s.e.; {within} the noise)"


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
        lines.append(f"  {p.picker:<15} -> {p.label:<14} error {p.test_error:.4f}  "
                     f"{count(p.trainings, 'training')}")
        if p.picker != "oracle":
            lines.append(f"  {'':<15}    {regret_words(p)}")
        lines.append(f"  {'':<15}    {p.why}")
    lines.append("  regret: the pick's pruned test error minus the oracle's; noise: the standard error of "
                 "that difference over retrain seeds (within 2 s.e.: not a measurable loss)")
    lines += threshold_lines(result.thresholds, result.sources)
    return "\n".join(lines)


def select_note(short: int | None, epochs: int | None) -> str:
    """Case 2's note on how mc/CKA were measured."""
    if short:
        return (f"mc/CKA measured after a shortened retrain of {short} epochs (full: {epochs or 0}); "
                "the oracle uses the full retrains")
    return ("mc/CKA measured on the full retrains (set cases.select_retrain_epochs to measure "
            "after a shortened retrain)")


def selection_answer(cells: Sequence[dict], short_cells: Sequence[dict] | None, axes: dict,
                     settings: RegimeSettings, recipe_name: str, density: float, short: int | None,
                     epochs: int | None, executed: int) -> dict:
    """Case 2 at one density as JSON + text, from the measured cells (and the shortened
    retrains' cells when mc/CKA are measured on those); ValueError when no model qualifies."""
    candidates = selection_candidates(cells, short_cells, axes["temperatures"], axes["knob"],
                                      settings.cka_metric)
    sel = select_model(candidates, settings)
    out = sel.to_json()
    out.update(kind="select", recipe=recipe_name, density=density, short_retrain_epochs=short,
               trainings_run=executed, text=format_selection(sel) + "\n  " + select_note(short, epochs))
    return out
