"""Grouped-convolution fusion: K same-shaped models trained as ONE wider model.

Why: a vmapped convolution pays vmap's per-op bookkeeping on top of the grouped kernel it lowers to;
writing the K models directly as one wide model (the idea of HFTA, Wang et al. 2021) calls the
kernels straight away: every ``ConvNd(c_in, c_out, groups=g)`` becomes ``ConvNd(K c_in, K c_out,
groups=K g)`` (model k owns channel block k), every BatchNorm over ``c`` channels one over ``K c``
channels (BatchNorm is per channel, so each model keeps its own batch and running statistics), and
every ``Linear`` a per-model batched matrix product (:class:`WideLinear`). Activations are laid out
``[B, K * C, ...]``: model k's channels are block k, so channel-agnostic operations (ReLU, pooling,
residual additions, ``flatten(1)``) need no change. Measured on the 2-core CPU (MNIST-1D conv net,
80 models): 2.16 vs 3.41 ms per step on 1 thread against vmap (docs/speed.md).

The wide model is checked against the K models themselves on a few inputs before it is used
(:func:`widen`): a model whose forward depends on its channel count in some other way (an explicit
``view(-1, C)``) fails the check and trains through vmap instead.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from tprm.science.gconv import PhasedConv1d
from tprm.science.slots import Masks, _Compute, _float_batchnorm, _FusedSlots

if TYPE_CHECKING:  # train imports this module
    from tprm.science.train import Schedule

__all__ = ["GroupedSlots", "WideLinear", "grouped_tensors", "wide_model", "widen"]

# Leaf modules that hold no parameters and treat channels alike (they pass through unchanged).
_PASS_THROUGH = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Identity,
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
)


class WideLinear(nn.Module):
    """K linear layers applied to K blocks of features: input ``[B, K * F]`` (model k's features are
    block k), output ``[B, K * O]``; weight ``[K, O, F]`` and bias ``[K, O]`` (model k's own)."""

    def __init__(self, k: int, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.k = k
        self.weight = nn.Parameter(torch.empty(k, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(k, out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[0]
        per_model = x.reshape(batch, self.k, -1).transpose(0, 1)  # [K, B, F]
        if self.bias is None:
            out = torch.bmm(per_model, self.weight.transpose(1, 2))
        else:
            out = torch.baddbmm(self.bias.unsqueeze(1), per_model, self.weight.transpose(1, 2))
        return out.transpose(0, 1).reshape(batch, -1)


def _wide_conv(conv: _ConvNd, k: int) -> nn.Module | None:
    if conv.transposed or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return None
    layer: type[nn.Module] = PhasedConv1d if isinstance(conv, nn.Conv1d) else type(conv)
    return layer(conv.in_channels * k, conv.out_channels * k, conv.kernel_size, stride=conv.stride,
                      padding=conv.padding, dilation=conv.dilation, groups=conv.groups * k,
                      bias=conv.bias is not None, device="meta")


def _wide_batchnorm(bn: _BatchNorm, k: int) -> nn.Module | None:
    if bn.momentum is None or not bn.track_running_stats:
        return None
    wide = type(bn)(bn.num_features * k, eps=bn.eps, momentum=bn.momentum, affine=bn.affine, device="meta")
    # the step counters stay per model ([K], counted by the slots): the wide layer needs none
    wide.register_buffer("num_batches_tracked", None)
    return wide


def _widened(module: nn.Module, k: int) -> nn.Module | None:
    """A wide replacement for one leaf module, the module itself when it passes through, or None."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return _wide_conv(module, k)
    if isinstance(module, _BatchNorm):
        return _wide_batchnorm(module, k)
    if isinstance(module, nn.Linear):
        return WideLinear(k, module.in_features, module.out_features, module.bias is not None).to("meta")
    if isinstance(module, nn.Flatten):
        return module if module.start_dim == 1 and module.end_dim == -1 else None
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return module if module.p == 0 else None
    return module if isinstance(module, _PASS_THROUGH) else None


def _replace_leaves(module: nn.Module, k: int) -> bool:
    """Swap every leaf of ``module`` (in place) for its wide form; False when one has none."""
    if next(module.parameters(recurse=False), None) is not None and list(module.children()):
        return False  # a container with parameters of its own: its forward is unknown
    for name, child in list(module.named_children()):
        if list(child.children()):
            if not _replace_leaves(child, k):
                return False
            continue
        wide = _widened(child, k)
        if wide is None:
            return False
        setattr(module, name, wide)
    return True


def grouped_tensors(wide: nn.Module, stacked: dict[str, Tensor]) -> dict[str, Tensor]:
    """The wide model's tensors from K models' stacked ``[K, ...]`` tensors (parameters or running
    statistics; step counters are left out): per-model linear weights as they are, everything else
    as ``[K * C, ...]`` (a view where the stacked tensor is contiguous, so running statistics are
    updated in place)."""
    linear = {f"{n}.{p}" if n else p for n, m in wide.named_modules() if isinstance(m, WideLinear)
              for p in ("weight", "bias")}
    return {name: t if name in linear else t.reshape(-1, *t.shape[2:])
            for name, t in stacked.items() if not name.endswith("num_batches_tracked")}


def grouped_input(x: Tensor) -> Tensor:
    """K models' own batches ``[K, B, C, ...]`` as one wide batch ``[B, K * C, ...]``."""
    return x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])


def shared_input(x: Tensor, k: int) -> Tensor:
    """One batch ``[B, C, ...]`` seen by all K models: ``[B, K * C, ...]``."""
    return x.repeat(1, k, *([1] * (x.dim() - 2)))


def per_model_logits(out: Tensor, k: int) -> Tensor:
    """The wide model's output ``[B, K * O]`` as ``[K, B, O]``."""
    return out.view(out.shape[0], k, -1).transpose(0, 1)


def wide_model(base: nn.Module, k: int, device: torch.device, dtype: torch.dtype) -> nn.Module | None:
    """The wide form of ``k`` copies of ``base`` (its tensors left empty: callers pass theirs to
    ``functional_call``), or None when a layer has no wide form. Not checked: see :func:`widen`."""
    wide = copy.deepcopy(base).to("meta")
    if not _replace_leaves(wide, k):
        return None
    return wide.to_empty(device=device).to(dtype)


def widen(models: Sequence[nn.Module], probe: Tensor) -> nn.Module | None:
    """The wide model of ``models`` (same architecture), or None when it cannot be built or does not
    compute what the K models compute on ``probe`` (a few inputs ``[B, C, ...]``, eval mode)."""
    k = len(models)
    wide = wide_model(models[0], k, probe.device, probe.dtype)
    if wide is None:
        return None
    stacked = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models])
               for n, _ in models[0].named_parameters()}
    stacked.update({n: torch.stack([dict(m.named_buffers())[n].detach() for m in models])
                    for n, _ in models[0].named_buffers()})
    tensors = grouped_tensors(wide, stacked)
    if set(tensors) != {n for n, _ in wide.named_parameters()} | {n for n, _ in wide.named_buffers()}:
        return None
    was = [m.training for m in models]
    try:
        with torch.no_grad():
            for m in models:
                m.eval()
            wide.eval()
            got = per_model_logits(torch.func.functional_call(wide, tensors, (shared_input(probe, k),)), k)
            want = torch.stack([m(probe) for m in models])
    except Exception:  # noqa: BLE001 - a forward that needs its own channel count: use vmap
        return None
    finally:
        for m, mode in zip(models, was):
            m.train(mode)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        return None
    return wide


def per_model_loss(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy and error fraction of each of K models: logits ``[K, B, O]``, y ``[K, B]``."""
    k, batch = y.shape
    losses = F.cross_entropy(logits.reshape(k * batch, -1), y.reshape(-1), reduction="none")
    wrong = (logits.argmax(-1) != y).to(logits.dtype).mean(1)
    return losses.view(k, batch).mean(1), wrong


class GroupedSlots(_FusedSlots):
    """K models trained as one wide model (:func:`widen`); the update, masks, SAM, divergence and the
    state of each model are the fused slots' own (only the gradient and evaluation passes differ)."""

    def __init__(self, models: Sequence[nn.Module], masks: Sequence[Masks], schedules: Sequence[Schedule],
                 compute: _Compute, wide: nn.Module) -> None:
        super().__init__(models, masks, schedules, compute)
        self.wide = wide
        self.wide_buffers = grouped_tensors(wide, self.buffers)
        self.counters = [b for n, b in self.buffers.items() if n.endswith("num_batches_tracked")]
        self._hooks += _float_batchnorm(wide, compute)

    def _grads(self, params, x, y):
        self.wide.train()
        leaves = {n: t.detach().requires_grad_() for n, t in params.items()}
        tensors = {**grouped_tensors(self.wide, leaves), **self.wide_buffers}
        with self.compute.context(self.device):
            out = torch.func.functional_call(self.wide, tensors, (grouped_input(x),))
        logits = per_model_logits(out, self.k)
        loss, wrong = per_model_loss(logits if self.compute.autocast is None else logits.float(), y)
        grads = torch.autograd.grad(loss.sum(), list(leaves.values()))
        for counter in self.counters:  # BatchNorm's step count, per model (restored with the buffers)
            counter.add_(1)
        return self.flat.gather(dict(zip(leaves, grads))), loss.detach(), wrong.detach()

    def _eval_logits(self, x):
        was_training = self.wide.training
        self.wide.eval()
        try:
            tensors = {**grouped_tensors(self.wide, self.params), **self.wide_buffers}
            with torch.no_grad():
                out = torch.func.functional_call(self.wide, tensors, (shared_input(x, self.k),))
            return per_model_logits(out, self.k)
        finally:
            self.wide.train(was_training)
