"""Device memory of one fused training step, measured (not derived from element sizes).

Why measured: under bf16 autocast BatchNorm computes in float32 and autograd keeps both the bf16 and
the float32 copies, so a bf16 step needs MORE memory than a float32 one (issue 24: halving the
activations estimated 77 MiB per model where a step took 165). And vmap's batching rules keep more
than one model's forward would (on the CPU a fused PreResNet-20 step holds 2x a single model's).
So the estimate runs the very step the fused slots run (:class:`tprm.science.slots._FusedSlots`,
two copies of the model, the precision's autocast and float32 BatchNorm) at two small batch sizes on
the CPU, records the peak of the bytes it allocates (:class:`LiveBytes`) and extrapolates linearly.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from tprm.science.slots import _Compute, _FusedSlots

if TYPE_CHECKING:  # train imports this module
    from tprm.science.train import Schedule

PROBE_BATCHES = (2, 4)  # two batch sizes (BatchNorm in training mode needs 2+ samples): a line


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the storages the ops run inside it create (each counted once, freed when the last
    tensor on it dies): what an allocator would hold at most, on any device."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage address -> [bytes, tensors on it]
        self.now = self.peak = 0

    def _track(self, t: object) -> None:
        if not isinstance(t, Tensor):
            return
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key == 0:
            return
        entry = self.live.get(key)
        if entry is None:
            self.live[key] = [storage.nbytes(), 1]
            self.now += storage.nbytes()
            self.peak = max(self.peak, self.now)
        else:
            entry[1] += 1
        weakref.finalize(t, self._drop, key)

    def _drop(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                self.now -= entry[0]
                del self.live[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            self._track(t)
        return out


def step_peak_bytes(model: nn.Module, batch_size: int, input_shape: Sequence[int], k: int = 2,
                    precision: str | None = None, num_classes: int | None = None) -> int:
    """Peak bytes allocated by one fused gradient pass of ``k`` copies of ``model`` (on the CPU, on
    copies) at ``batch_size``: the forward's saved tensors, the gradients and the backward's
    temporaries, in the precision's dtypes."""
    models = [copy.deepcopy(model).to("cpu") for _ in range(k)]
    dtype = next((p.dtype for p in models[0].parameters()), torch.float32)
    compute = _Compute(torch.bfloat16 if precision == "bf16" else None)
    # what the slots read of a schedule (the step's memory does not depend on its values)
    schedule = cast("Schedule", SimpleNamespace(momentum=0.9, weight_decay=1e-4, sam_rho=0.0))
    slots = _FusedSlots(models, [{} for _ in models], [schedule] * k, compute)
    x = torch.zeros((k, batch_size, *input_shape), dtype=dtype)
    with torch.no_grad():
        classes = num_classes or int(models[0](x[0, :2].clone()).shape[-1])
    y = torch.arange(k * batch_size).remainder(classes).view(k, batch_size)
    try:
        with LiveBytes() as live:
            slots._grads(slots.params, x, y)
    finally:
        slots.release()
    return live.peak


def activation_bytes(model: nn.Module, batch_size: int, input_shape: Sequence[int],
                     precision: str | None = None) -> int:
    """Bytes one model of a fused group allocates in a training step at ``batch_size``, extrapolated
    from two measured small batches (:func:`step_peak_bytes`; linear in the batch size)."""
    small, big = PROBE_BATCHES
    k = 2
    at_small = step_peak_bytes(model, small, input_shape, k, precision) / k
    at_big = step_peak_bytes(model, big, input_shape, k, precision) / k
    slope = max(0.0, (at_big - at_small) / (big - small))
    return int(max(at_small, at_small + slope * (batch_size - small)))
