"""Loss-landscape metrics of trained models: evaluation, LMC and CKA (curvature: hessian.py).

These are the measurements behind the three-regime model (see PAPER.md "Metrics"):
linear mode connectivity (mc) between two retrained models, linear CKA between their
outputs (the optional Hessian trace / top eigenvalue are in hessian.py). Everything works on any
``nn.Module`` and any data object with the TensorData methods ``plain``,
``plain_batches``, ``n_train`` and ``n_test``. Error values are fractions (0.12 = 12 %).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

SPLITS = ("train", "test")
OUTPUT_KINDS = ("softmax", "logits")
MC_CURVES = ("error", "loss")
# Evaluation batch: large enough to amortise per-call overhead, small enough that the activations
# of a CIFAR ResNet stay in cache-friendly sizes (1000 cost 1.4x in page faults on the CPU).
EVAL_BATCH_SIZE = 256
# Batched LMC: interpolation points per vmapped pass (whole pairs: 11 points -> 11 pairs of a grid row)
LMC_BATCHED_POINTS = 128
# ... and at least this many images per evaluation batch of such a pass (or eval_batch_size when
# smaller): at 121 points the share of 256 would be 23 images, a launch-bound pass (issue 24)
LMC_MIN_EVAL_BATCH = 64



# ----------------------------------------------------------------------------- helpers


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode and restore each one's own training flag afterwards."""
    saved = [(module, module.training) for module in model.modules()]
    try:
        for module, _ in saved:
            module.training = False
        yield
    finally:
        for module, flag in saved:
            module.training = flag


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (cpu for a stateless model)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def nhwc(x: Tensor, channels_last: bool) -> Tensor:
    """With ``channels_last`` a 4-D batch in NHWC layout (2-D convolutions then run in that layout:
    1.6x faster on the CPU, measured; the same numbers to float rounding); else ``x`` as it is."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def _layout(x: Tensor, device: torch.device, channels_last: bool) -> Tensor:
    """A batch on ``device`` in the chosen layout (``nhwc``)."""
    return nhwc(x.to(device), channels_last)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split: {split!r} is not valid; use one of {', '.join(SPLITS)}")


def check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")


def _split_size(data: Any, split: str) -> int:
    return int(data.n_train if split == "train" else data.n_test)


def batch_norm_layers(model: nn.Module) -> list[_BatchNorm]:
    """BatchNorm layers of ``model`` that keep running statistics (the ones LMC must recompute)."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


# ----------------------------------------------------------------------------- evaluation


def evaluate(model: nn.Module, data: Any, split: str = "test", batch_size: int = EVAL_BATCH_SIZE,
             channels_last: bool = False) -> dict[str, float]:
    """Mean cross-entropy and error fraction of ``model`` on an un-augmented split.

    Runs in eval mode without gradients; each submodule's training flag is restored.
    ``channels_last``: NHWC input batches (a speed option, see ``_layout``).
    """
    _check_split(split)
    check_positive("batch_size", batch_size)
    if _split_size(data, split) < 1:
        raise ValueError(f"split: the {split} split of the data is empty")
    device = model_device(model)
    total_loss = 0.0
    wrong = 0
    count = 0
    with eval_mode(model), torch.no_grad():
        for x, y in data.plain_batches(split, batch_size):
            x, y = _layout(x, device, channels_last), y.to(device)
            logits = model(x)
            total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
            wrong += int((logits.argmax(dim=1) != y).sum())
            count += int(y.numel())
    return {"loss": total_loss / count, "error": wrong / count}


def recompute_bn(model: nn.Module, data: Any, batch_size: int = 64, channels_last: bool = False) -> None:
    """Reset every BatchNorm's running statistics and recompute them on the un-augmented train set.

    Running stats are a cumulative average over batches in data order, each batch weighted by its
    size (momentum ``b / (n + b)`` after ``n`` samples, as the authors' ``update_bn``): the
    ``running_mean`` is the exact data mean, the ``running_var`` the size-weighted average of the
    per-batch unbiased variances (the paper's convention; it omits the between-batch term). A last
    batch smaller than ``batch_size`` therefore counts for its share of samples only. Only the
    BatchNorm layers are in train mode during the passes; every other module (dropout, ...) is in
    eval mode, so the passes are deterministic. A batch of a single sample is skipped (its unbiased
    variance is undefined). Momentum and every module's mode are restored. No-op without BN.
    """
    check_positive("batch_size", batch_size)
    layers = batch_norm_layers(model)
    if not layers:
        return
    if data.n_train < 2:
        raise ValueError("data: BatchNorm recompute needs at least 2 training samples")
    device = model_device(model)
    with eval_mode(model), torch.no_grad():
        for layer in layers:
            layer.reset_running_stats()
            layer.training = True
        _cumulative_bn_passes(layers, data, batch_size, lambda x: model(_layout(x, device, channels_last)))


def _cumulative_bn_passes(layers: list[_BatchNorm], data: Any, batch_size: int, forward: Callable) -> None:
    """``forward(x)`` over the un-augmented train batches, every layer's momentum set to ``b / (n + b)``
    before a batch of ``b`` after ``n`` samples (a size-weighted cumulative average; batches of one
    sample skipped). The layers' momenta are restored."""
    momenta = [layer.momentum for layer in layers]
    try:
        seen = 0
        for x, _ in data.plain_batches("train", batch_size):
            size = int(x.shape[0])
            if size < 2:
                continue
            for layer in layers:
                layer.momentum = size / (seen + size)
            forward(x)
            seen += size
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


# ----------------------------------------------------------------------------- LMC


def mc_from_curve(values: Sequence[float] | Tensor) -> float:
    """Mode connectivity of an interpolation curve: ``m - v(t*)`` with ``m`` the endpoint mean.

    ``t* = argmax_t |m - v(t)|`` over all points, endpoints included (first on ties).
    Negative: a barrier above the endpoints; ~0: well connected; positive: a dip below them.
    A curve with a non-finite value gives NaN (the metric is undefined there).
    """
    curve = [float(v) for v in (values.tolist() if isinstance(values, Tensor) else values)]
    if len(curve) < 2:
        raise ValueError(f"values: need at least 2 curve points, got {len(curve)}")
    if not all(math.isfinite(v) for v in curve):
        return float("nan")
    middle = (curve[0] + curve[-1]) / 2
    deviations = [abs(middle - v) for v in curve]
    t_star = deviations.index(max(deviations))
    return middle - curve[t_star]


def _interpolated_entries(
    scratch: nn.Module, model_a: nn.Module, model_b: nn.Module
) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
    """{state key: (scratch, a, b) tensors} for every entry on the line; checks that the models match.

    On the line: every floating-point parameter and every floating-point buffer that is not a
    BatchNorm running statistic (those are recomputed). Non-floating entries such as
    ``num_batches_tracked`` keep model_a's values (already in the scratch copy).
    """
    state_a = model_a.state_dict()
    state_b = model_b.state_dict()
    if state_a.keys() != state_b.keys():
        missing = sorted(set(state_a) ^ set(state_b))
        raise ValueError(f"model_b: state entries differ from model_a's (e.g. {missing[0]!r}); "
                         "use two models of the same architecture")
    recomputed = set()
    for name, module in scratch.named_modules():
        if isinstance(module, _BatchNorm) and module.track_running_stats:
            prefix = f"{name}." if name else ""
            recomputed |= {f"{prefix}running_mean", f"{prefix}running_var"}
    state_s = scratch.state_dict()
    entries = {}
    for key, a in state_a.items():
        b = state_b[key]
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(f"model_b: entry {key!r} has shape {tuple(b.shape)} {b.dtype}, model_a has "
                             f"{tuple(a.shape)} {a.dtype}; use two models of the same architecture")
        if a.is_floating_point() and key not in recomputed:
            entries[key] = (state_s[key], a, b.to(a.device))
    return entries


def lmc(
    model_a: nn.Module,
    model_b: nn.Module,
    data: Any,
    points: int = 11,
    bn_batch_size: int = 64,
    test: bool = True,
    on: str = "error",
    eval_batch_size: int = EVAL_BATCH_SIZE,
    batched: bool | None = None,
    channels_last: bool = False,
) -> dict[str, Any]:
    """Linear mode connectivity of two models along ``w(t) = (1 - t) w_a + t w_b``.

    At each of ``points`` evenly spaced t in [0, 1] the interpolated weights go into one
    scratch copy of model_a (updated in place), BatchNorm statistics are recomputed on the
    un-augmented train set (``bn_batch_size``), and train (and, with ``test``, test) error
    and loss are measured. ``mc``/``mc_loss`` come from the train error/loss curves;
    ``on`` ("error" | "loss") picks which of the two is also returned as ``mc_selected``.
    ``endpoint_gap`` is |e(0) - e(1)| on train error. The input models are not modified.
    Without ``test`` the test curves are empty lists.

    ``batched``: compute all points as ONE vmapped model (one pass over the data for the BatchNorm
    recompute of every point, one per evaluated split); the same numbers to float tolerance.
    ``None`` picks it where it pays: on an accelerator, and on the CPU for models without buffers
    (the quickstart's conv net: 94 vs 150 ms per 11-point pair, 2 threads); BatchNorm nets go point by
    point on the CPU (a vmapped 2-D convolution is a grouped one there, measured 2x slower per point).
    ``channels_last``: NHWC input batches on the point-by-point path (1.6x faster on the CPU for 2-D
    convolutions, measured; the same curve to float rounding); the batched path ignores it.
    """
    return lmc_pairs([model_a, model_b], [(0, 1)], data, points, bn_batch_size, test, on, eval_batch_size,
                     batched, channels_last)[0]


def lmc_pairs(
    models: Sequence[nn.Module],
    pairs: Sequence[tuple[int, int]],
    data: Any,
    points: int = 11,
    bn_batch_size: int = 64,
    test: bool = True,
    on: str = "error",
    eval_batch_size: int = EVAL_BATCH_SIZE,
    batched: bool | None = None,
    channels_last: bool = False,
    max_batched: int = LMC_BATCHED_POINTS,
) -> list[dict[str, Any]]:
    """``lmc(models[a], models[b], ...)`` of every ``(a, b)`` in ``pairs`` (models of one architecture
    on one data set, e.g. the pairs of a grid row).

    Batched, the points of several pairs form ONE vmapped model (up to ``max_batched`` points per
    pass, whole pairs): one pass over the training data recomputes the BatchNorm statistics of every
    point of every pair, one pass per split evaluates them all. Same numbers as pair by pair.
    """
    check_positive("points", points)
    if points < 2:
        raise ValueError(f"points: need at least 2 interpolation points, got {points}")
    check_positive("bn_batch_size", bn_batch_size)
    check_positive("max_batched", max_batched)
    if on not in MC_CURVES:
        raise ValueError(f"on: {on!r} is not valid; use one of {', '.join(MC_CURVES)}")
    for a, b in pairs:
        if not (0 <= a < len(models) and 0 <= b < len(models)):
            raise ValueError(f"pairs: ({a}, {b}) is not a pair of the {len(models)} models")
    if not pairs:
        return []
    ts = [i / (points - 1) for i in range(points)]
    if batched is None:
        first = models[pairs[0][0]]
        batched = model_device(first).type != "cpu" or next(first.buffers(), None) is None
    per_pass = max(1, max_batched // points) if batched else 1
    out = []
    with torch.no_grad():
        for start in range(0, len(pairs), per_pass):
            chunk = pairs[start:start + per_pass]
            scratch = copy.deepcopy(models[chunk[0][0]])
            for parameter in scratch.parameters():
                parameter.requires_grad_(False)
            lines = [_interpolated_entries(scratch, models[a], models[b]) for a, b in chunk]
            if batched:
                curves = _batched_curves(scratch, [models[a] for a, _ in chunk], lines, ts, data, bn_batch_size,
                                         test, eval_batch_size)
            else:
                curves = [_pointwise_curves(scratch, lines[0], ts, data, bn_batch_size, test, eval_batch_size,
                                            channels_last)]
            out += [_lmc_summary(c, ts, on) for c in curves]
    return out


def _pointwise_curves(scratch: nn.Module, entries: dict[str, tuple[Tensor, Tensor, Tensor]], ts: list[float],
                      data: Any, bn_batch_size: int, test: bool, eval_batch_size: int,
                      channels_last: bool) -> dict[str, list[float]]:
    """The LMC curves of one pair, one point after another in the scratch model."""
    curves = _empty_curves()
    for t in ts:
        for target, a, b in entries.values():
            torch.lerp(a, b, t, out=target)
        recompute_bn(scratch, data, bn_batch_size, channels_last)
        for split in SPLITS if test else ("train",):
            result = evaluate(scratch, data, split, eval_batch_size, channels_last)
            curves[f"{split}_error"].append(result["error"])
            curves[f"{split}_loss"].append(result["loss"])
    return curves


def _empty_curves() -> dict[str, list[float]]:
    return {"train_error": [], "train_loss": [], "test_error": [], "test_loss": []}


def _lmc_summary(curves: dict[str, list[float]], ts: list[float], on: str) -> dict[str, Any]:
    mc = mc_from_curve(curves["train_error"])
    mc_loss = mc_from_curve(curves["train_loss"])
    return {
        "t": ts,
        **curves,
        "mc": mc,
        "mc_loss": mc_loss,
        "on": on,
        "mc_selected": mc if on == "error" else mc_loss,
        "endpoint_gap": abs(curves["train_error"][0] - curves["train_error"][-1]),
        "points": len(ts),
    }


def _stacked_line_states(scratch: nn.Module, starts: list[nn.Module],
                         lines: list[dict[str, tuple[Tensor, Tensor, Tensor]]], ts: list[float]) -> dict[str, Tensor]:
    """Every point of every pair's line as one state of [pairs * points, ...] tensors, BatchNorm
    statistics reset for their recompute. Entries off the line (non-float buffers) are each pair's
    ``starts`` model's."""
    weights = torch.tensor(ts, dtype=torch.float64)
    stacked: dict[str, Tensor] = {}
    own = [dict(start.state_dict(keep_vars=True)) for start in starts]
    for name, tensor in [*scratch.named_parameters(), *scratch.named_buffers()]:
        parts = []
        for entries, state in zip(lines, own):
            if name in entries:
                _, a, b = entries[name]
                w = weights.to(a.device, a.dtype).view((-1,) + (1,) * a.dim())
                parts.append(torch.lerp(a.expand(len(ts), *a.shape), b.expand(len(ts), *b.shape), w))
            else:  # recomputed statistics (reset below) and non-float entries (the pair's first model's)
                value = state.get(name, tensor).detach().to(tensor.device)
                parts.append(value.expand(len(ts), *value.shape))
        stacked[name] = torch.cat(parts).contiguous()
    prefixes = {id(m): n for n, m in scratch.named_modules()}
    for layer in batch_norm_layers(scratch):
        prefix = prefixes[id(layer)]
        dot = f"{prefix}." if prefix else ""
        stacked[f"{dot}running_mean"].zero_()
        stacked[f"{dot}running_var"].fill_(1.0)
        if layer.num_batches_tracked is not None:
            stacked[f"{dot}num_batches_tracked"].zero_()
    return stacked


def _batched_curves(
    scratch: nn.Module,
    starts: list[nn.Module],
    lines: list[dict[str, tuple[Tensor, Tensor, Tensor]]],
    ts: list[float],
    data: Any,
    bn_batch_size: int,
    test: bool,
    eval_batch_size: int,
) -> list[dict[str, list[float]]]:
    """The LMC curves of every point of every pair at once: the weights stacked as [pairs * points, ...]
    tensors and one ``vmap``-ed ``functional_call`` of the scratch module (same recompute and
    evaluation rules)."""
    from torch.func import functional_call, vmap

    total = len(lines) * len(ts)
    stacked = _stacked_line_states(scratch, starts, lines, ts)
    layers = batch_norm_layers(scratch)
    forward = vmap(lambda state, x: functional_call(scratch, state, (x,)), in_dims=(0, None))
    device = model_device(scratch)
    # as many image-model evaluations per pass as one pair's points at eval_batch_size
    eval_batch = max(min(eval_batch_size, LMC_MIN_EVAL_BATCH), eval_batch_size * len(ts) // total)
    with eval_mode(scratch):
        if layers:
            if data.n_train < 2:
                raise ValueError("data: BatchNorm recompute needs at least 2 training samples")
            try:
                for layer in layers:
                    layer.training = True
                _cumulative_bn_passes(layers, data, bn_batch_size, lambda x: forward(stacked, x.to(device)))
            finally:
                for layer in layers:
                    layer.training = False
        curves = [_empty_curves() for _ in lines]
        for split in SPLITS if test else ("train",):
            loss = torch.zeros(total, dtype=torch.float64, device=device)
            wrong = torch.zeros(total, dtype=torch.float64, device=device)
            count = 0
            for x, y in data.plain_batches(split, eval_batch):
                x, y = x.to(device), y.to(device)
                logits = forward(stacked, x)  # [pairs * points, B, C]
                losses = F.cross_entropy(logits.flatten(0, 1), y.repeat(total), reduction="none")
                loss += losses.view(total, -1).double().sum(1)
                wrong += (logits.argmax(-1) != y).double().sum(1)
                count += int(y.numel())
            for q, (pair_loss, pair_wrong) in enumerate(zip((loss / count).view(len(lines), -1).tolist(),
                                                            (wrong / count).view(len(lines), -1).tolist())):
                curves[q][f"{split}_loss"], curves[q][f"{split}_error"] = pair_loss, pair_wrong
    return curves


# ----------------------------------------------------------------------------- CKA


def _as_features(name: str, x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape [n, d], got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name}: expected shape [n, d], got {tuple(x.shape)}")
    return x.detach().reshape(x.shape[0], -1).to("cpu", torch.float64)


CROSS_CHUNK_ELEMENTS = 1 << 22  # products held at once by _cross_products (32 MiB of float64)


def _cross_products(a: Tensor, b: Tensor) -> Tensor:
    """``a.T @ b`` summed sample by sample in a fixed order (elementwise products, then one reduction
    per chunk of samples) instead of a BLAS GEMM, whose float64 sums can differ in the last bits
    between processes (memory alignment, thread setup): CKA is then bit-identical wherever it runs
    (a Ray worker and the driver included)."""
    rows = max(1, CROSS_CHUNK_ELEMENTS // max(1, a.shape[1] * b.shape[1]))
    out = torch.zeros(a.shape[1], b.shape[1], dtype=a.dtype, device=a.device)
    for start in range(0, a.shape[0], rows):
        out += (a[start:start + rows].unsqueeze(2) * b[start:start + rows].unsqueeze(1)).sum(0)
    return out


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA (Kornblith et al. 2019) between feature matrices ``x`` [n, d1] and ``y`` [n, d2].

    Biased HSIC on centred Gram matrices, computed in float64 in the cheaper of the two equal
    forms: ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on column-centred features when
    n >= d, else the centred Gram matrices. Extra dims are flattened. NaN when either input
    has zero variance (CKA is undefined).
    """
    fx, fy = _as_features("x", x), _as_features("y", y)
    if fx.shape[0] != fy.shape[0]:
        raise ValueError(f"y: has {fy.shape[0]} samples but x has {fx.shape[0]}; use the same samples")
    if fx.shape[0] < 2:
        raise ValueError(f"x: need at least 2 samples, got {fx.shape[0]}")
    fx = fx - fx.mean(dim=0, keepdim=True)
    fy = fy - fy.mean(dim=0, keepdim=True)
    n = fx.shape[0]
    if n >= max(fx.shape[1], fy.shape[1]):
        cross = torch.linalg.matrix_norm(_cross_products(fy, fx)) ** 2
        norm_x = torch.linalg.matrix_norm(_cross_products(fx, fx))
        norm_y = torch.linalg.matrix_norm(_cross_products(fy, fy))
    else:
        gram_x, gram_y = fx @ fx.T, fy @ fy.T  # centred features give centred Gram matrices
        cross = (gram_x * gram_y).sum()
        norm_x = torch.linalg.matrix_norm(gram_x)
        norm_y = torch.linalg.matrix_norm(gram_y)
    denominator = float(norm_x * norm_y)
    if denominator == 0.0:
        return float("nan")
    return float(cross) / denominator


def model_outputs(
    model: nn.Module, data: Any, samples: int = 6400, kind: str = "softmax", batch_size: int = EVAL_BATCH_SIZE,
    channels_last: bool = False,
) -> Tensor:
    """Softmax probabilities or logits on the first ``samples`` un-augmented training samples.

    Eval mode, no gradients; ``samples`` is capped at the training-set size.
    """
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"kind: {kind!r} is not valid; use one of {', '.join(OUTPUT_KINDS)}")
    check_positive("samples", samples)
    check_positive("batch_size", batch_size)
    count = min(samples, int(data.n_train))
    if count < 1:
        raise ValueError("data: the training split is empty")
    device = model_device(model)
    chunks = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, count, batch_size):
            x, _ = data.plain("train", start, min(start + batch_size, count))
            chunks.append(model(_layout(x, device, channels_last)))
    logits = torch.cat(chunks)
    return torch.softmax(logits, dim=1) if kind == "softmax" else logits


def cka_outputs(model_a: nn.Module, model_b: nn.Module, data: Any, samples: int = 6400,
                channels_last: bool = False) -> dict[str, Any]:
    """Linear CKA between two models' softmax outputs and logits on the same training samples."""
    return cka_pairs([model_a, model_b], [(0, 1)], data, samples, channels_last)[0]


def cka_pairs(models: Sequence[nn.Module], pairs: Sequence[tuple[int, int]], data: Any, samples: int = 6400,
              channels_last: bool = False) -> list[dict[str, Any]]:
    """``cka_outputs(models[a], models[b], ...)`` of every ``(a, b)`` in ``pairs``; each model's outputs
    are computed once, however many pairs it is in."""
    logits = {i: model_outputs(models[i], data, samples, kind="logits", channels_last=channels_last)
              for i in dict.fromkeys(i for pair in pairs for i in pair)}
    return [{"cka_softmax": linear_cka(torch.softmax(logits[a], dim=1), torch.softmax(logits[b], dim=1)),
             "cka_logits": linear_cka(logits[a], logits[b]),
             "samples": int(logits[a].shape[0])} for a, b in pairs]
