"""Case study 2's candidates: one per temperature at the target density, with the probe's
measurements (mc, CKA, test error: from a shortened retrain when one was run) and the full
retrains' truth that the oracle uses."""

from __future__ import annotations

from collections.abc import Sequence

from tprm.analysis.case_stats import standard_error
from tprm.analysis.phase import aggregate


def selection_candidates(cells: list[dict], probe_cells: list[dict] | None,
                         temperatures: Sequence[float], knob: str, cka_metric: str) -> list[dict]:
    """One candidate per temperature from `cells` (full retrains) and `probe_cells` (a shortened
    retrain; None: the full retrains are the probe). `cka_metric`: the CKA field the regime
    settings classify on."""
    candidates, dense_seen = [], set()
    for t in temperatures:
        full = [c for c in cells if c["temperature"] == t]
        probe = [c for c in (probe_cells or cells) if c["temperature"] == t]
        n_retrains = sum(len(c["test_error_seeds"]) for c in probe)
        cand = {"label": f"{knob}={t:g}",
                "mc": aggregate(probe, "mc")[0],
                "mc_loss": aggregate(probe, "mc_loss")[0],
                "cka": aggregate(probe, cka_metric)[0],
                "endpoint_gap": aggregate(probe, "endpoint_gap")[0],
                "test_error": aggregate(probe, "test_error")[0],
                "test_error_se": standard_error(probe),
                "dense_test_error": aggregate(full, "dense_test_error")[0],
                "trainings": n_retrains,
                # checkpoints of one run (epochs knob) share it: count each dense job once
                "dense_trainings": len({c["jobs"]["dense"] for c in full} - dense_seen),
                "true_test_error": aggregate(full, "test_error")[0],
                "true_test_error_se": standard_error(full),
                "true_trainings": sum(len(c["test_error_seeds"]) for c in full)}
        dense_seen |= {c["jobs"]["dense"] for c in full}
        candidates.append(cand)
    return candidates
