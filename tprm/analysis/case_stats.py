"""What the three case studies share: interval statistics over cell records and their text
helpers (percent densities, threshold lines)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from tprm.analysis.phase import aggregate, finite_number, format_density
from tprm.analysis.regimes import describe_thresholds
from tprm.engine.recipe import CasesSection

CASES = CasesSection()  # the recipe schema holds every case-study default (docs/recipes.md)

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


def as_records(cell: dict | Sequence[dict]) -> list[dict]:
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



def count(n: int, noun: str) -> str:
    """`n noun`, with the noun in the plural unless n is 1 ("1 training", "3 trainings")."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def pct(density: float | None) -> str:
    return "?" if density is None else format_density(density)


def threshold_lines(thresholds: dict, sources: dict) -> list[str]:
    return ["  thresholds:"] + [f"    {line}" for line in describe_thresholds(thresholds, sources)]
