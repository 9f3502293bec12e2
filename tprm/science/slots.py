"""The K model slots of a training run: K models' weights as one flat ``[K, N]`` tensor plus the
optimiser state, and how their gradients are computed (one vmapped model, or one module alone).

Why a module of its own: :mod:`tprm.science.train` owns the schedule, the driver loop and the
strategy; this module owns the lean update (a few whole-tensor ops per step, see train's docstring
for the rule) shared by every strategy, so the vmap, grouped-convolution and one-module paths run the
very same update code.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from tprm.science.metrics import nhwc

if TYPE_CHECKING:  # train imports this module
    from tprm.science.train import Schedule

SAM_EPS = 1e-12  # added to SAM's gradient norm
Masks = dict[str, Tensor]

# --- flat state: all of a model's tensors as views into one [K, N] tensor ----------------------------


class _Flat:
    """Tensors of K models (one floating dtype) as column views of one contiguous [K, N] tensor.

    Why: the optimiser update, the masking and the divergence guard become a handful of whole-tensor
    ops over every parameter of every model (a lean step), instead of a few ops per parameter.
    """

    def __init__(self, tensors: dict[str, Tensor]) -> None:
        if len({t.dtype for t in tensors.values()}) != 1:
            raise ValueError("train: all parameters of a model must have one floating dtype")
        self.names = list(tensors)
        self.shapes = {n: t.shape for n, t in tensors.items()}
        self.k = next(iter(tensors.values())).shape[0]
        self.flat = torch.cat([t.detach().reshape(self.k, -1) for t in tensors.values()], 1)
        self.views = self.layout(self.flat)

    def gather(self, tensors: dict[str, Tensor]) -> Tensor:
        """Tensors named like the views, as one [K, N] tensor in the same layout."""
        return torch.cat([tensors[n].reshape(self.k, -1) for n in self.names], 1)

    def layout(self, flat: Tensor) -> dict[str, Tensor]:
        """Views of a [K, N] tensor in this layout (e.g. perturbed weights)."""
        out, offset = {}, 0
        for n in self.names:
            size = self.shapes[n][1:].numel()
            out[n] = flat[:, offset : offset + size].view(self.shapes[n])
            offset += size
        return out


class _BufferStore:
    """K models' buffers (any dtypes) as contiguous ``[K, ...]`` views of ONE flat byte tensor.

    Why: a step saves the buffers (a model that diverges keeps its old BatchNorm statistics; SAM's
    perturbed pass must leave them unchanged) and restores them per model. Over one byte store that is
    one copy to save and one masked select to restore, not two ops per buffer (a PreResNet-20 has 57
    buffers: 115 of a step's launches, issue 24). Bytes are exact for every dtype.
    """

    def __init__(self, buffers: dict[str, Tensor], k: int, device: torch.device) -> None:
        regions, total = [], 0
        for name, b in buffers.items():
            nbytes = b.numel() * b.element_size()
            regions.append((name, total, nbytes))
            total += -(-nbytes // 8) * 8  # 8-byte aligned: every dtype can view its region
        self.bytes = torch.zeros(total, dtype=torch.uint8, device=device)
        owner = torch.zeros(total, dtype=torch.long)  # the model each byte belongs to
        self.views: dict[str, Tensor] = {}
        for name, start, nbytes in regions:
            b = buffers[name]
            view = self.bytes[start : start + nbytes].view(b.dtype).view(b.shape)
            view.copy_(b)
            self.views[name] = view
            owner[start : start + nbytes] = torch.arange(k).repeat_interleave(nbytes // k)
        self.owner = owner.to(device)

    def __bool__(self) -> bool:
        return self.bytes.numel() > 0

    def save(self, into: Tensor) -> None:
        """Copy every buffer into ``into`` (a tensor like ``self.bytes``): one op."""
        into.copy_(self.bytes)

    def load(self, saved: Tensor) -> None:
        """Every buffer back to ``saved``: one op."""
        self.bytes.copy_(saved)

    def keep_alive(self, saved: Tensor, alive: Tensor) -> None:
        """Models not ``alive`` ([K] bool) get their buffers back from ``saved``; the others keep theirs."""
        torch.where(alive[self.owner], self.bytes, saved, out=self.bytes)


def _per_model(vec: Tensor, like: Tensor) -> Tensor:
    """Broadcast a [K] vector against a [K, ...] tensor."""
    return vec.view((-1,) + (1,) * (like.dim() - 1))


def _mask_(tensors: dict[str, Tensor], masks: Masks) -> None:
    """Set masked positions to exactly 0.0, in place (also over NaN/inf)."""
    for name, mask in masks.items():
        tensors[name].masked_fill_(~mask, 0.0)


def sam_perturbation(grads: dict[str, Tensor], rho: Tensor, masks: Masks) -> dict[str, Tensor]:
    """SAM's ascent step ``e = rho * g / (||g|| + SAM_EPS)`` for each of K models ([K, ...] tensors).

    ``grads`` must already be masked; ``e`` is additionally zeroed at masked positions so that
    ``w + e`` is exactly 0.0 there even if the norm is not finite.
    """
    scale = _sam_scale(grads, rho)
    e = {name: g * _per_model(scale, g) for name, g in grads.items()}
    _mask_(e, masks)
    return e


def _sam_scale(grads: dict[str, Tensor], rho: Tensor) -> Tensor:
    """``rho / (||g|| + SAM_EPS)`` per model [K]; the norm sums per-tensor squares in parameter order."""
    squares = [g.flatten(1).pow(2).sum(1) for g in grads.values()]
    norm = torch.stack(squares).sum(0).sqrt()
    return rho / (norm + SAM_EPS)


# --- how the slots compute: autocast, memory format, compilation ------------------------------------


@dataclass(frozen=True)
class _Compute:
    """Execution options that change speed, not the algorithm (see docs/speed.md for their effect).

    ``autocast``: run forward passes under ``torch.autocast`` in this dtype (bf16); parameters, the
    optimiser state, the loss and BatchNorm running statistics stay float32. ``channels_last``: 4-D
    inputs are laid out NHWC (convolutions then run in that layout; a no-op for 1-D/flat inputs).
    ``compile``: ``torch.compile(mode="reduce-overhead")`` (CUDA graphs) of the step, CUDA only.
    """

    autocast: torch.dtype | None = None
    channels_last: bool = False
    compile: bool = False

    def context(self, device: torch.device):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast)

    def layout(self, x: Tensor) -> Tensor:
        """One model's input batch [B, ...] in the chosen memory format."""
        return nhwc(x, self.channels_last)

    def static(self, tensors: Sequence[Tensor], device: torch.device) -> None:
        """Mark tensors a compiled step reads at fixed addresses (the flat weights' views, the buffer
        store's views, which BatchNorm mutates) as static inputs: CUDA graphs then read and update them
        in place, instead of refusing them ("skipping cudagraphs due to mutated inputs") or copying
        them into the graph's own buffers at every replay."""
        if self.compile and device.type == "cuda":
            for t in tensors:
                torch._dynamo.mark_static_address(t)

    def compiled(self, fn: Callable, device: torch.device) -> Callable:
        """``fn`` compiled for CUDA graphs on a CUDA device (eager elsewhere); a compile failure falls
        back to eager with one warning."""
        if not self.compile or device.type != "cuda":
            return fn
        compiled = torch.compile(fn, mode="reduce-overhead", dynamic=False)
        state = {"fn": compiled}

        def call(*args):
            if state["fn"] is fn:
                return fn(*args)
            try:
                return compiled(*args)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: run eagerly instead
                warnings.warn(f"train: torch.compile failed ({type(exc).__name__}: {exc}); running eagerly",
                              stacklevel=2)
                state["fn"] = fn
                return fn(*args)

        return call


# --- the K model slots: fused (one vmapped model) or one module ----------------------------------------


class _Slots:
    """K models' weights as one flat [K, N] tensor plus optimiser state; subclasses compute gradients.

    The update of all K models is a few whole-tensor ops (``torch.optim.SGD``'s rule, see the module
    docstring): mask the gradient, ``d = g + wd * w``, ``buf = momentum * buf + d``, ``w -= lr * buf``,
    mask ``w``. A model whose loss turns non-finite is frozen from that step on (weights, momentum and
    BatchNorm statistics stay as they were before the failing step).
    """

    def __init__(
        self,
        params: dict[str, Tensor],
        buffers: dict[str, Tensor],
        masks: Masks,
        schedules: Sequence[Schedule],
        compute: _Compute = _Compute(),
    ) -> None:
        self.compute = compute
        self.flat = _Flat(params)
        self.w = self.flat.flat
        self.params = self.flat.views
        self.k = self.w.shape[0]
        self.device, self.dtype = self.w.device, self.w.dtype
        # [K, ...] each, contiguous (BatchNorm's in-place running-statistics update under vmap needs
        # it), all in one byte store (a step's save and restore are one op each)
        self.store = _BufferStore(buffers, self.k, self.device)
        self.buffers = self.store.views
        self.keep = torch.ones_like(self.w, dtype=torch.bool)
        keep_views = self.flat.layout(self.keep)
        for name, mask in masks.items():
            keep_views[name].copy_(mask)
        self.masked = bool(masks)
        self.momentum = schedules[0].momentum
        self.wd = self._vector([s.weight_decay for s in schedules]).unsqueeze(1)
        self.rho = self._vector([s.sam_rho for s in schedules])
        self.sam = any(s.sam_rho > 0 for s in schedules)
        self.buf = torch.zeros_like(self.w) if self.momentum else None
        self.alive = torch.ones(self.k, dtype=torch.bool, device=self.device)
        self.drop = ~self.keep
        self.w.masked_fill_(self.drop, 0.0)
        # On the CPU a bool-mask kernel (masked_fill_/where) costs 20x a float multiply, and a host
        # read is free: mask by multiplying (guarded against inf/NaN) and restore BatchNorm buffers
        # only after a step that froze a model. Elsewhere: masked_fill_ and where, no host read.
        self.host = self.device.type == "cpu"
        self.keep_f = self.keep.to(self.dtype) if self.host and self.masked else None
        # buffers before the step (a diverged model keeps them) and, with SAM, after its first pass
        # (the perturbed pass leaves the BatchNorm running statistics unchanged)
        self.saved_buffers = self.store.bytes.clone()
        self.sam_buffers = self.store.bytes.clone()

    def _mask(self, t: Tensor) -> Tensor:
        """``t`` ([K, N]) with masked positions set to exactly +0.0, in place.

        CPU: ``t * keep`` (1.0 / 0.0) leaves kept values bit for bit and turns masked finite values
        into +/-0.0; a gradient's -0.0 never reaches the weights (``+0.0 - x * (-0.0)`` is +0.0), so
        masked weights stay +0.0 as with masked_fill_. inf/NaN times 0 is NaN: when the sum is not
        finite the masked positions are filled as elsewhere (kept NaN stay, as before).
        """
        if self.keep_f is None:
            return t.masked_fill_(self.drop, 0.0)
        t.mul_(self.keep_f)
        if not bool(torch.isfinite(t.sum())):
            t.masked_fill_(self.drop, 0.0)
        return t

    def _vector(self, values: Sequence[float]) -> Tensor:
        return torch.tensor(values, dtype=self.dtype, device=self.device)

    def _grads(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Unmasked flat gradients [K, N] at ``params`` (train mode), loss [K] and error [K] of the batch
        (the pass updates the BatchNorm running statistics in place, as training does)."""
        raise NotImplementedError

    def _perturbed(self, e: Tensor) -> dict[str, Tensor]:
        """Parameters at ``w + e`` for SAM's second pass."""
        raise NotImplementedError

    def _after_sam(self) -> None:
        """Undo what the perturbed pass changed (nothing when the perturbed weights were a copy)."""

    def step(self, x: Tensor, y: Tensor, lr: Tensor) -> tuple[Tensor, Tensor]:
        """One SGD (or SAM) step of all K models on x [K, B, ...], y [K, B]; returns loss, error [K]."""
        store = self.store
        if store:
            store.save(self.saved_buffers)
        g, loss, wrong = self._grads(self.params, x, y)
        if self.masked:
            self._mask(g)
        finite = torch.isfinite(loss)
        if self.sam:
            # global norm per model, summed tensor by tensor (the same rounding as per-tensor SAM)
            e = g * _sam_scale(self.flat.layout(g), self.rho).unsqueeze(1)
            if self.masked:
                self._mask(e)
            if store:
                store.save(self.sam_buffers)
            g, loss2, _ = self._grads(self._perturbed(e), x, y)
            self._after_sam()
            if store:
                store.load(self.sam_buffers)
            if self.masked:
                self._mask(g)
            finite &= torch.isfinite(loss2)
        self.alive &= finite
        alive = self.alive.unsqueeze(1)
        # The elementwise op order of the per-tensor update this replaced, so results stay bit-identical:
        # no fused multiply-add (addcmul / add(alpha=) may round differently).
        d = g + self.wd * self.w
        if self.buf is not None:
            d = self.buf * self.momentum + d
            self.buf.copy_(torch.where(alive, d, self.buf))
        self.w.copy_(torch.where(alive, self.w - lr.unsqueeze(1) * d, self.w))
        if self.masked:
            self._mask(self.w)
        if store and (not self.host or not bool(self.alive.all())):
            store.keep_alive(self.saved_buffers, self.alive)
        return loss, wrong

    def evaluate(self, data, batch_size: int) -> tuple[Tensor, Tensor]:
        """Test loss and error [K] over the whole test split (un-augmented, eval mode)."""
        loss_sum = torch.zeros(self.k, dtype=torch.float64, device=self.device)
        wrong_sum = torch.zeros(self.k, dtype=torch.float64, device=self.device)
        with torch.no_grad():
            for x, y in data.plain_batches("test", batch_size):
                x, y = x.to(self.device, self.dtype), y.to(self.device)
                with self.compute.context(self.device):
                    logits = self._eval_logits(x)  # [K, N, C]
                if self.compute.autocast is not None:
                    logits = logits.float()
                losses = F.cross_entropy(logits.flatten(0, 1), y.repeat(self.k), reduction="none")
                loss_sum += losses.view(self.k, -1).sum(1).double()
                wrong_sum += (logits.argmax(-1) != y).sum(1).double()
        return loss_sum / data.n_test, wrong_sum / data.n_test

    def _eval_logits(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def state_dict(self, k: int) -> dict[str, Tensor]:
        """Model k's current state_dict on the CPU."""
        raise NotImplementedError

    def release(self) -> None:
        """Leave each model holding its final state in tensors of its own."""


def _loss_and_error(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    loss = F.cross_entropy(logits, y)
    return loss, (logits.argmax(-1) != y).to(logits.dtype).mean()


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()}


def _stacked_masks(names: Sequence[str], per_model: Sequence[dict[str, Tensor]], masks: Sequence[Masks]) -> Masks:
    out: Masks = {}
    for n in names:
        if any(n in m for m in masks):
            out[n] = torch.stack(
                [m[n] if n in m else torch.ones_like(per_model[0][n], dtype=torch.bool) for m in masks]
            )
    return out


def _float_input(module: nn.Module, args: tuple) -> tuple:
    return (args[0].float(), *args[1:])


def _float_batchnorm(model: nn.Module, compute: _Compute) -> list:
    """Under autocast, every BatchNorm layer computes in float32 (input cast up; the next layer casts
    back down). Why: vmap's BatchNorm rule rejects a bf16 input with float32 statistics ("expected
    scalar type BFloat16 but found Float"), and the fused and the one-by-one path must compute alike."""
    if compute.autocast is None:
        return []
    return [m.register_forward_pre_hook(_float_input) for m in model.modules() if isinstance(m, _BatchNorm)]


class _FusedSlots(_Slots):
    """K same-architecture models as one vmapped computation on stacked parameters and buffers.

    BatchNorm in training mode computes each model's own batch statistics (vmap keeps the models
    apart) and updates each model's own running statistics in place, exactly as separate training.
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        masks: Sequence[Masks],
        schedules: Sequence[Schedule],
        compute: _Compute = _Compute(),
    ) -> None:
        self.models = list(models)
        self.base = models[0]
        names = [name for name, _ in self.base.named_parameters()]
        per_model = [dict(m.named_parameters()) for m in models]
        params = {n: torch.stack([pm[n].detach() for pm in per_model]) for n in names}
        per_model_buffers = [dict(m.named_buffers()) for m in models]
        buffers = {n: torch.stack([pb[n].detach() for pb in per_model_buffers]).contiguous()
                   for n, _ in self.base.named_buffers()}
        super().__init__(params, buffers, _stacked_masks(names, per_model, masks), schedules, compute)
        base = self.base

        def loss_fn(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor, y: Tensor):
            logits = functional_call(base, (p, b), (x,))
            loss, wrong = _loss_and_error(logits if compute.autocast is None else logits.float(), y)
            return loss, (loss, wrong)

        self._hooks = _float_batchnorm(base, compute)
        compute.static([*self.params.values(), *self.buffers.values()], self.device)
        self._sam_w: Tensor | None = None  # SAM's perturbed weights: one tensor, a fixed address
        self._sam_params: dict[str, Tensor] = {}
        self._grad_fn = compute.compiled(vmap(grad(loss_fn, has_aux=True)), self.device)
        self._forward = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))

    def _grads(self, params, x, y):
        self.base.train()
        with self.compute.context(self.device):
            grads, (loss, wrong) = self._grad_fn(params, self.buffers, x, y)
        # (cloned: outputs of a CUDA-graph replay are overwritten by the next replay, e.g. SAM's pass)
        return self.flat.gather(grads), loss.detach().clone(), wrong.detach().clone()

    def _perturbed(self, e):
        if self._sam_w is None:
            self._sam_w = torch.empty_like(self.w)
            self._sam_params = self.flat.layout(self._sam_w)
            self.compute.static(list(self._sam_params.values()), self.device)
        torch.add(self.w, e, out=self._sam_w)
        return self._sam_params

    def _eval_logits(self, x):
        was_training = self.base.training
        self.base.eval()
        try:
            return self._forward(self.params, self.buffers, x)
        finally:
            self.base.train(was_training)

    def _load(self, k: int, model: nn.Module) -> None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(self.params[name][k])
            for name, b in model.named_buffers():
                b.copy_(self.buffers[name][k])

    def release(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for k, model in enumerate(self.models):
            self._load(k, model)

    def state_dict(self, k):
        self._load(k, self.models[k])
        return _cpu_state(self.models[k])


class _ModuleSlot(_Slots):
    """One model trained through its own module (any architecture): K = 1.

    The module's parameters and buffers are re-pointed into the flat state and the buffer store for
    the run (so the update is the same few ops as for K models) and get tensors of their own again in
    ``release``.
    """

    def __init__(self, model: nn.Module, masks: Masks, schedule: Schedule, compute: _Compute = _Compute()) -> None:
        self.model = model
        named = dict(model.named_parameters())
        self.plist = list(named.values())
        super().__init__(
            {n: p.detach().unsqueeze(0) for n, p in named.items()},
            {n: b.detach().unsqueeze(0) for n, b in model.named_buffers()},
            {n: m.unsqueeze(0) for n, m in masks.items()},
            [schedule],
            compute,
        )
        for n, p in named.items():
            p.data = self.params[n][0]
        self.blist = list(model.buffers())
        for n, b in model.named_buffers():  # the module computes with (and updates) the store's bytes
            b.data = self.buffers[n][0]
        self._saved_w: Tensor | None = None
        self._call = compute.compiled(model, self.device)
        self._hooks = _float_batchnorm(model, compute)

    def _grads(self, params, x, y):
        self.model.train()
        with self.compute.context(self.device):
            logits = self._call(self.compute.layout(x[0]))
        if self.compute.autocast is not None:
            logits = logits.float()
        loss, wrong = _loss_and_error(logits, y[0])
        grads = torch.autograd.grad(loss, self.plist, allow_unused=True)
        flat = self.flat.gather({n: torch.zeros_like(p) if g is None else g
                                 for n, p, g in zip(self.flat.names, self.plist, grads)})
        return flat, loss.detach().view(1), wrong.detach().view(1)

    def _perturbed(self, e):
        # The module computes with its own weights: perturb them in place, remember them exactly.
        self._saved_w = self.w.clone()
        with torch.no_grad():
            self.w.add_(e)
        return self.params

    def _after_sam(self):
        with torch.no_grad():
            self.w.copy_(self._saved_w)
        self._saved_w = None

    def _eval_logits(self, x):
        was_training = self.model.training
        self.model.eval()
        try:
            return self.model(self.compute.layout(x)).unsqueeze(0)
        finally:
            self.model.train(was_training)

    def state_dict(self, k):
        return _cpu_state(self.model)

    def release(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for t in self.plist + self.blist:
            t.data = t.data.clone()
