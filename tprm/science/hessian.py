"""Local curvature of a trained model (PAPER.md, optional metrics of the predecessor work):
Hessian trace by Hutchinson's estimator and top eigenvalue by power iteration, both on Hessian-vector
products (double backprop) over a fixed data subset."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tprm.science.metrics import check_positive, eval_mode, model_device

HvpFn = Callable[[list[Tensor]], list[Tensor]]


def hvp(loss_fn: Callable[[], Tensor], params: Sequence[Tensor], vec: Sequence[Tensor]) -> list[Tensor]:
    """Hessian-vector product ``H v`` of the scalar ``loss_fn()`` w.r.t. ``params`` (double backprop)."""
    loss = loss_fn()
    grads = torch.autograd.grad(loss, list(params), create_graph=True, allow_unused=True, materialize_grads=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vec))
    return [h.detach() for h in torch.autograd.grad(dot, list(params), allow_unused=True, materialize_grads=True)]


def _random_vectors(
    shapes: Sequence[torch.Size | tuple[int, ...]], generator: torch.Generator, rademacher: bool,
    dtype: torch.dtype, device: torch.device | str,
) -> list[Tensor]:
    """Probe vectors drawn on the generator's device (cpu by default), then moved."""
    vectors = []
    for shape in shapes:
        if rademacher:
            v = torch.randint(0, 2, tuple(shape), generator=generator, device=generator.device) * 2 - 1
        else:
            v = torch.randn(tuple(shape), generator=generator, device=generator.device)
        vectors.append(v.to(device=device, dtype=dtype))
    return vectors


def _dot(u: Sequence[Tensor], v: Sequence[Tensor]) -> float:
    return float(sum((a.double() * b.double()).sum() for a, b in zip(u, v)))


def hutchinson_trace(
    hvp_fn: HvpFn, shapes: Sequence[torch.Size | tuple[int, ...]], probes: int, generator: torch.Generator,
    *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """Hutchinson estimate of tr(H) with Rademacher probes: (mean of v^T H v, its standard error).

    ``hvp_fn`` maps a list of tensors shaped like ``shapes`` to H times them. The standard
    error is NaN with a single probe.
    """
    check_positive("probes", probes)
    samples = []
    for _ in range(probes):
        v = _random_vectors(shapes, generator, True, dtype, device)
        samples.append(_dot(v, hvp_fn(v)))
    mean = sum(samples) / probes
    if probes == 1:
        return mean, float("nan")
    variance = sum((s - mean) ** 2 for s in samples) / (probes - 1)
    return mean, math.sqrt(variance / probes)


def power_iteration(
    matvec: HvpFn, shapes: Sequence[torch.Size | tuple[int, ...]], iters: int, generator: torch.Generator,
    *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
) -> float:
    """Eigenvalue of largest magnitude of a symmetric operator by ``iters`` power iterations.

    Starts from a Gaussian vector; returns the Rayleigh quotient of the last iterate
    (0.0 if the operator maps it to zero).
    """
    check_positive("iters", iters)
    v = _random_vectors(shapes, generator, False, dtype, device)
    norm = math.sqrt(_dot(v, v))
    v = [t / norm for t in v]
    eigenvalue = 0.0
    for _ in range(iters):
        w = matvec(v)
        eigenvalue = _dot(v, w)
        norm = math.sqrt(_dot(w, w))
        if norm == 0.0:
            return 0.0
        v = [t / norm for t in w]
    return eigenvalue


def _subset_hvp(model: nn.Module, data: Any, samples: int, batch_size: int | None) -> tuple[HvpFn, list[Tensor], int]:
    """HVP of the mean cross-entropy over the first ``samples`` un-augmented train samples.

    With ``batch_size`` the subset is processed in chunks whose HVPs are summed with weights
    chunk_size / samples (the same mean loss, less memory).
    """
    check_positive("samples", samples)
    count = min(samples, int(data.n_train))
    if count < 1:
        raise ValueError("data: the training split is empty")
    chunk = count if batch_size is None else batch_size
    check_positive("batch_size", chunk)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model: has no parameters that require gradients")
    device = model_device(model)
    batches = []
    for start in range(0, count, chunk):
        x, y = data.plain("train", start, min(start + chunk, count))
        batches.append((x.to(device), y.to(device)))

    def hvp_fn(vec: list[Tensor]) -> list[Tensor]:
        total = [torch.zeros_like(p) for p in params]
        for x, y in batches:
            weight = x.shape[0] / count
            part = hvp(lambda: F.cross_entropy(model(x), y), params, vec)
            for acc, h in zip(total, part):
                acc.add_(h, alpha=weight)
        return total

    return hvp_fn, params, count


def hessian_trace(
    model: nn.Module, data: Any, samples: int = 512, probes: int = 64, seed: int = 0,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Hutchinson trace of the loss Hessian w.r.t. all trainable parameters (Yang et al. 2021).

    Loss: mean cross-entropy over the first ``samples`` un-augmented training samples with the
    model in eval mode (BN uses running stats). Probes come from a cpu generator seeded with
    ``seed``. ``batch_size`` (None = one batch) only trades memory for time.
    """
    with eval_mode(model):
        hvp_fn, params, count = _subset_hvp(model, data, samples, batch_size)
        generator = torch.Generator().manual_seed(seed)
        trace, std_error = hutchinson_trace(hvp_fn, [p.shape for p in params], probes, generator,
                                            dtype=params[0].dtype, device=params[0].device)
    return {"trace": trace, "trace_std_error": std_error, "samples": count, "probes": probes}


def hessian_top_eigenvalue(
    model: nn.Module, data: Any, samples: int = 512, iters: int = 20, seed: int = 0,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Top (largest-magnitude) Hessian eigenvalue by power iteration, same loss as ``hessian_trace``."""
    with eval_mode(model):
        hvp_fn, params, count = _subset_hvp(model, data, samples, batch_size)
        generator = torch.Generator().manual_seed(seed)
        eigenvalue = power_iteration(hvp_fn, [p.shape for p in params], iters, generator,
                                     dtype=params[0].dtype, device=params[0].device)
    return {"eigenvalue": eigenvalue, "iters": iters, "samples": count}
