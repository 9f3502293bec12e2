"""A grouped 1-D convolution whose input gradient is computed as forward convolutions.

Why: on the CPU, oneDNN's backward-data kernel for the wide grouped convolutions of
:mod:`tprm.science.grouped` (80 quickstart models: ``groups=80``, 24 channels per group) took 4-5x
the time of the forward kernel for the same arithmetic (46.8 vs 10.1 ms, 2 threads). The input
gradient of a convolution with stride ``s`` splits into ``s`` phases (input positions ``i`` with
``i mod s = r``), each a stride-1 convolution of the output gradient with every ``s``-th tap of the
kernel, flipped and with input and output channels swapped. Those run on the fast forward kernel.
The weight and bias gradients stay aten's.

A layer with ONE input channel per group (the first layer of a net on 1-channel signals: 80 models
x 24 filters over MNIST-1D) is also slow forward there (28.5 ms, 2 threads): it runs as one batched
matrix product of the K filter banks with the K models' input windows instead (2.0 ms), its weight
gradient likewise. Same results to float rounding (tested in float64 against aten to 1e-12).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PhasedConv1d", "input_gradient", "thin_conv1d"]


def input_gradient(grad: Tensor, weight: Tensor, groups: int, stride: int, padding: int, length: int) -> Tensor:
    """The gradient w.r.t. the input ``[B, groups * c_in, length]`` of
    ``conv1d(x, weight, stride=stride, padding=padding, groups=groups)`` given the output's ``grad``."""
    batch, _, out_len = grad.shape
    c_out_all, c_in, taps = weight.shape
    c_out = c_out_all // groups
    swapped = weight.view(groups, c_out, c_in, taps).transpose(1, 2)  # [G, c_in, c_out, taps]
    result = grad.new_zeros(batch, groups * c_in, length)
    for r in range(min(stride, length)):
        # input i = s*m + r gets output l through tap t = i + p - s*l: the taps t = q, q + s, ...
        q = (r + padding) % stride
        n_taps, n_out = len(range(q, taps, stride)), len(range(r, length, stride))
        if n_taps == 0:
            continue
        kernel = swapped[..., q::stride].flip(-1).reshape(groups * c_in, c_out, n_taps)
        first = (r + padding - q) // stride - n_taps + 1  # output index under kernel tap 0 for m = 0
        left, right = max(0, -first), max(0, first + n_out + n_taps - 1 - out_len)
        window = F.pad(grad[..., max(first, 0):], (left, right)) if left or right else grad[..., max(first, 0):]
        result[..., r::stride] = F.conv1d(window, kernel, None, 1, 0, 1, groups)[..., :n_out]
    return result


def _windows(x: Tensor, groups: int, taps: int, stride: int, padding: int) -> Tensor:
    """One input channel per group: each group's input windows ``[G, taps, B * L_out]``."""
    windows = F.pad(x, (padding, padding)).unfold(2, taps, stride)  # [B, G, L_out, taps]
    return windows.permute(1, 3, 0, 2).reshape(groups, taps, -1)


def thin_conv1d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int, groups: int) -> Tensor:
    """``conv1d`` of a layer with one input channel per group as one batched matrix product."""
    windows = _windows(x, groups, weight.shape[-1], stride, padding)
    return _thin_product(windows, weight, bias, x.shape[0], groups)


def _thin_product(windows: Tensor, weight: Tensor, bias: Tensor | None, batch: int, groups: int) -> Tensor:
    c_out_all, _, taps = weight.shape
    c_out = c_out_all // groups
    filters = weight.view(groups, c_out, taps)
    out = (torch.bmm(filters, windows) if bias is None
           else torch.baddbmm(bias.view(groups, c_out, 1), filters, windows))  # [G, c_out, B * L_out]
    return out.view(groups, c_out, batch, -1).permute(2, 0, 1, 3).reshape(batch, c_out_all, -1)


def _thin_weight_gradient(grad: Tensor, windows: Tensor, groups: int) -> Tensor:
    batch, c_out_all, out_len = grad.shape
    per_group = grad.view(batch, groups, -1, out_len).permute(1, 2, 0, 3).reshape(groups, -1, batch * out_len)
    return torch.bmm(per_group, windows.transpose(1, 2)).view(c_out_all, 1, windows.shape[1])


class _PhasedConv1dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride: int, padding: int, groups: int):
        ctx.conv = (stride, padding, groups, bias is not None)
        if weight.shape[1] == 1:  # the windows are kept for the weight gradient (not cut again)
            windows = _windows(x, groups, weight.shape[-1], stride, padding)
            ctx.save_for_backward(x, weight, windows)
            return _thin_product(windows, weight, bias, x.shape[0], groups)
        ctx.save_for_backward(x, weight, None)
        return F.conv1d(x, weight, bias, stride, padding, 1, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight, windows = ctx.saved_tensors
        stride, padding, groups, has_bias = ctx.conv
        grad = grad.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = input_gradient(grad, weight, groups, stride, padding, x.shape[-1])
        if ctx.needs_input_grad[1] and windows is not None:
            gw = _thin_weight_gradient(grad, windows, groups)
        elif ctx.needs_input_grad[1]:
            gw = torch.ops.aten.convolution_backward(grad, x, weight, None, [stride], [padding], [1], False,
                                                     [0], groups, [False, True, False])[1]
        if has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum((0, 2))
        return gx, gw, gb, None, None, None


class PhasedConv1d(nn.Conv1d):
    """``nn.Conv1d`` whose input gradient runs as forward convolutions (module docstring); used for
    the wide grouped layers, where dilation is 1 and padding is zeros."""

    def forward(self, x: Tensor) -> Tensor:
        if self.dilation != (1,) or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        return _PhasedConv1dFunction.apply(x, self.weight, self.bias, self.stride[0], self.padding[0], self.groups)
