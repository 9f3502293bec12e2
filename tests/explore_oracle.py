"""A synthetic oracle for the exploration tests: a known map of mc, CKA and test error over
(T, D) with seed noise, answering ``measure(points)`` with cell records shaped as
engine/results.py makes them, and counting what it was asked."""

from __future__ import annotations

import random

from tprm.analysis.explore_lattice import Lattice


class Oracle:
    """Regime I where cold (i <= cold_edge) and sparse (j <= sparse_edge); II-A where hot
    (i >= hot_edge); II-B elsewhere. Test error is a parabola in T whose minimum moves from
    hot (low density) to cold (high density), plus seeded noise of ``noise`` per retrain seed."""

    def __init__(self, lattice: Lattice, cold_edge: int = 3, sparse_edge: int = 3, hot_edge: int = 6,
                 noise: float = 0.001, seed: int = 0, curvature: float = 0.01):
        self.lattice, self.noise, self.seed, self.curvature = lattice, noise, seed, curvature
        self.cold_edge, self.sparse_edge, self.hot_edge = cold_edge, sparse_edge, hot_edge
        self.calls: list[list[tuple[float, float]]] = []

    def regime(self, i: int, j: int) -> str:
        if i <= self.cold_edge and j <= self.sparse_edge:
            return "I"
        return "II-A" if i >= self.hot_edge else "II-B"

    def best(self, j: int) -> int:
        """The best temperature index at density j: hottest at the lowest density, coldest at the highest."""
        nt, nd = self.lattice.shape
        return round((nt - 1) * (1 - j / max(1, nd - 1)))

    def error(self, i: int, j: int) -> float:
        return 0.1 + 0.02 * (1 - j / 8) + self.curvature * (i - self.best(j)) ** 2

    def records(self, i: int, j: int) -> list[dict]:
        t, d = self.lattice.point((i, j))
        regime = self.regime(i, j)
        out = []
        for ds in range(self.lattice.dense_seeds):
            rng = random.Random(hash((self.seed, i, j, ds)) & 0xFFFF)
            errs = [self.error(i, j) + rng.gauss(0, self.noise) for _ in range(self.lattice.retrain_seeds)]
            mc = (-0.2 if regime == "I" else 0.0) + rng.gauss(0, 0.002)
            cka = (0.9 if regime == "II-A" else 0.98) + rng.gauss(0, 0.001)
            out.append({"temperature": t, "density": d, "dense_seed": ds, "state": "done",
                        "test_error": sum(errs) / len(errs), "test_error_seeds": errs, "mc": mc,
                        "mc_pairs": [mc], "cka": cka, "cka_pairs": [cka], "endpoint_gap": 0.0})
        return out

    def __call__(self, points: list[tuple[float, float]]) -> list[dict]:
        self.calls.append(list(points))
        lat = self.lattice
        index = {lat.point(c): c for c in lat.cells()}
        return [r for p in points for r in self.records(*index[p])]

    @property
    def measured(self) -> list[tuple[float, float]]:
        return [p for call in self.calls for p in call]
