"""Unstructured pruning masks: one-shot L1 magnitude (layer-wise or global), random, and IMP with rewinding.

Why: the paper's load knob is the density of a one-shot, unstructured, L1-magnitude pruned model with the
same density in every pruned layer; the final classifier, biases and BatchNorm are not pruned and
density is counted over the pruned layers. Masks are plain dicts ``param name -> bool tensor`` (True =
keep), so they can be saved, compared and handed to :func:`tprm.science.train.train`, which keeps
masked weights exactly 0.0.

Tie-breaking is deterministic: among equal magnitudes the weight with the lower flat index (in the
order the layers are given, for global scope) is kept.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "SCOPES",
    "apply_masks",
    "classifier_weight",
    "density_report",
    "imp_rewind",
    "layer_weights",
    "magnitude_masks",
    "prunable_parameters",
    "random_masks",
]

SCOPES = ("layerwise", "global")
_PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def prunable_parameters(model: nn.Module, layers: str | Sequence[str] = "default",
                        keep_dense: Sequence[str] | None = None) -> list[str]:
    """Names of the parameters to prune, in ``named_parameters`` order.

    ``"default"``: the weight of every Conv1d/2d/3d and Linear module except the final classifier (the
    last ``nn.Linear``); never biases or BatchNorm. Otherwise a list of fnmatch patterns over parameter
    names (e.g. ``["features.*.weight"]``); each pattern must match at least one parameter.
    ``keep_dense``: fnmatch patterns of the weights kept dense INSTEAD of the final classifier (for a
    model that does not end in ``nn.Linear``); each must match a candidate weight.
    """
    names = [name for name, _ in model.named_parameters()]
    if isinstance(layers, str):
        if layers != "default":
            raise ValueError(f"pruning layers: expected 'default' or a list of name patterns, got {layers!r}")
        weights = layer_weights(model)
        dense = {classifier_weight(model)} if keep_dense is None else set()
        chosen = {w for w in weights if w not in dense}
    else:
        chosen = set(_matching(list(layers), names, "pruning layers"))
    if keep_dense is not None:
        chosen -= set(_matching(list(keep_dense), sorted(chosen), "pruning keep_dense"))
    return [n for n in names if n in chosen]


def layer_weights(model: nn.Module) -> list[str]:
    """The weight of every Conv1d/2d/3d and Linear module, in module order (what can be pruned)."""
    return [f"{mod_name}.weight" if mod_name else "weight" for mod_name, module in model.named_modules()
            if isinstance(module, _PRUNABLE_TYPES) and module.weight is not None]


def classifier_weight(model: nn.Module) -> str | None:
    """The weight of the last ``nn.Linear`` module (the classifier the default keeps dense), or None."""
    last = None
    for mod_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = f"{mod_name}.weight" if mod_name else "weight"
    return last


def _matching(patterns: list[str], names: list[str], what: str) -> list[str]:
    """The names that fnmatch any pattern; ValueError for a pattern that matches none."""
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"{what}: expected a non-empty list of name patterns, got {patterns!r}")
    chosen: set[str] = set()
    for pattern in patterns:
        hits = fnmatch.filter(names, pattern)
        if not hits:
            raise ValueError(f"{what}: pattern {pattern!r} matches no parameter; parameters: {', '.join(names)}")
        chosen.update(hits)
    return [n for n in names if n in chosen]


def _check_density(density: float) -> float:
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
        raise ValueError(f"density: must be a fraction in (0, 1], got {density!r}")
    return float(density)


def _weights(model: nn.Module, params: Sequence[str]) -> dict[str, Tensor]:
    available = dict(model.named_parameters())
    if not params:
        raise ValueError("params: no parameters to prune (empty list)")
    missing = [p for p in params if p not in available]
    if missing:
        raise ValueError(f"params: {', '.join(missing)} not in the model; parameters: {', '.join(available)}")
    return {p: available[p].detach() for p in params}


def _keep_count(density: float, n: int) -> int:
    """round(density * n), half up, at least one weight per layer."""
    return max(1, math.floor(density * n + 0.5))


def _top_mask(scores: Tensor, keep: int) -> Tensor:
    """Bool mask (flat) keeping the ``keep`` largest scores; ties go to the lower index."""
    order = torch.sort(scores, descending=True, stable=True).indices
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    mask[order[:keep]] = True
    return mask


def magnitude_masks(
    model: nn.Module,
    density: float,
    params: Sequence[str],
    scope: str = "layerwise",
    *,
    within: dict[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """One-shot L1 magnitude masks keeping a ``density`` fraction of the weights in ``params``.

    ``scope="layerwise"`` keeps round(density * n) largest |w| in every layer (the paper's default);
    ``"global"`` keeps the round(density * N) largest |w| over all listed layers together (one
    threshold). ``within`` (optional masks) restricts the kept weights to those already kept, as in
    iterative pruning; the density is still relative to the full layer.
    """
    density = _check_density(density)
    if scope not in SCOPES:
        raise ValueError(f"pruning scope: {scope!r} is not one of {', '.join(SCOPES)}")
    weights = _weights(model, params)
    scores = {}
    for name, w in weights.items():
        score = w.abs().flatten().double()
        if within is not None and name in within:
            score = torch.where(within[name].flatten().to(score.device), score, torch.full_like(score, -1.0))
        scores[name] = score
    if scope == "layerwise":
        return {
            name: _top_mask(s, _keep_count(density, s.numel())).view_as(weights[name])
            for name, s in scores.items()
        }
    flat = torch.cat([s.cpu() for s in scores.values()])
    kept = _top_mask(flat, _keep_count(density, flat.numel())).split([s.numel() for s in scores.values()])
    return {name: k.to(weights[name].device).view_as(weights[name]) for name, k in zip(scores, kept)}


def random_masks(model: nn.Module, density: float, params: Sequence[str], seed: int) -> dict[str, Tensor]:
    """Layer-wise random masks (the usual control): round(density * n) uniformly chosen weights per layer."""
    density = _check_density(density)
    generator = torch.Generator().manual_seed(int(seed))
    masks = {}
    for name, w in _weights(model, params).items():
        keep = torch.randperm(w.numel(), generator=generator)[: _keep_count(density, w.numel())]
        mask = torch.zeros(w.numel(), dtype=torch.bool)
        mask[keep] = True
        masks[name] = mask.view_as(w).to(w.device)
    return masks


def _check_masks(model: nn.Module, masks: dict[str, Tensor]) -> dict[str, Tensor]:
    available: dict[str, Tensor] = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in available:
            raise ValueError(f"masks: {name!r} is not a parameter; parameters: {', '.join(available)}")
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != available[name].shape:
            raise ValueError(f"masks[{name!r}]: must be a bool tensor of shape {tuple(available[name].shape)}")
    return available


def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Set masked weights to exactly 0.0, in place."""
    available = _check_masks(model, masks)
    with torch.no_grad():
        for name, mask in masks.items():
            available[name].masked_fill_(~mask.to(available[name].device), 0.0)


def density_report(model: nn.Module, masks: dict[str, Tensor]) -> dict:
    """Kept fractions: over the pruned (masked) layers, over all parameters, and per pruned layer.

    Returns ``{"pruned_layers": x, "whole_model": y, "per_layer": {name: d}, "kept": n, "pruned_total":
    n_layers_total, "model_total": n_params}``, from the masks (not from zero-valued weights).
    """
    available = _check_masks(model, masks)
    per_layer = {name: mask.sum().item() / mask.numel() for name, mask in masks.items()}
    kept = sum(int(mask.sum()) for mask in masks.values())
    pruned_total = sum(mask.numel() for mask in masks.values())
    model_total = sum(p.numel() for p in available.values())
    return {
        "pruned_layers": kept / pruned_total if pruned_total else 1.0,
        "whole_model": (model_total - (pruned_total - kept)) / model_total,
        "per_layer": per_layer,
        "kept": kept,
        "pruned_total": pruned_total,
        "model_total": model_total,
    }


def imp_rewind(
    model: nn.Module,
    data,
    density: float,
    params: Sequence[str],
    schedule,
    rounds: int,
    seed: int,
    scope: str = "layerwise",
) -> dict[str, Tensor]:
    """Iterative magnitude pruning with learning-rate rewinding (Renda et al. 2020).

    Starting from the model's current (trained) weights, round r = 1..rounds prunes by magnitude, among
    the weights still kept, to density ``density ** (r / rounds)``; between rounds the pruned model is
    retrained with the full ``schedule`` (weights continue, the LR schedule restarts from the start) by
    :func:`tprm.science.train.train` with seed ``seed + r``. There is no retraining after the last round:
    the returned masks are for the usual retrain stage. The model is left pruned (masked weights 0.0)
    with its weights after the last pruning. ``rounds=1`` is one-shot magnitude pruning.
    """
    from tprm.science.train import train  # train does not import prune; kept local to stay light

    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"imp rounds: must be an integer >= 1, got {rounds!r}")
    density = _check_density(density)
    masks: dict[str, Tensor] = {}
    for r in range(1, rounds + 1):
        masks = magnitude_masks(model, density ** (r / rounds), params, scope, within=masks)
        apply_masks(model, masks)
        if r < rounds:
            result = train([model], data, [schedule], [int(seed) + r], [masks], fuse=False)[0]
            if result.diverged:
                raise RuntimeError(f"imp_rewind: retraining diverged in round {r} (epoch {result.diverged_at})")
    return masks
