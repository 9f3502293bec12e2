"""Pruning methods by name: each is ONE function registered with ``@method("name")``.

The recipe schema offers exactly these names (``pruning.method``) and the executor calls the
function; adding a method is adding one function here. torch is imported inside each function,
so reading the names (e.g. to validate a recipe) stays fast.

A method gets the model (a dense checkpoint loaded), the data, the target density, the names of
the prunable parameters and the recipe's pruning settings, and returns bool masks (True = keep).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PruneSettings:
    """What a method may use besides the model: recipe settings and the job's seed."""

    scope: str = "layerwise"
    seed: int = 0
    rounds: int = 1
    schedule: Any = None          # tprm.science.train.Schedule of the retraining (imp only)


@dataclass(frozen=True)
class PruningMethod:
    name: str
    masks: Callable[..., dict]    # masks(model, data, density, params, settings) -> masks
    seeded: bool = False          # its masks depend on the seed (recorded in the provenance)


METHODS: dict[str, PruningMethod] = {}


def method(name: str, seeded: bool = False) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Register a pruning method under `name`."""
    def register(fn: Callable[..., dict]) -> Callable[..., dict]:
        METHODS[name] = PruningMethod(name, fn, seeded)
        return fn
    return register


@method("magnitude")
def magnitude(model, data, density: float, params: list[str], s: PruneSettings) -> dict:
    """One-shot L1 magnitude pruning (layer-wise or global)."""
    from tprm.science.prune import magnitude_masks

    return magnitude_masks(model, density, params, scope=s.scope)


@method("random", seeded=True)
def random(model, data, density: float, params: list[str], s: PruneSettings) -> dict:
    """Random masks at the same density in every layer (a baseline)."""
    from tprm.science.prune import random_masks

    return random_masks(model, density, params, seed=s.seed)


@method("imp")
def imp(model, data, density: float, params: list[str], s: PruneSettings) -> dict:
    """Iterative magnitude pruning with rewinding over ``rounds`` rounds."""
    from tprm.science.prune import imp_rewind

    return imp_rewind(model, data, density, params, s.schedule, s.rounds, s.seed, scope=s.scope)


METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
