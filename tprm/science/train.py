"""SGD (+ momentum, weight decay, optional SAM) training of K models side by side, fused when possible.

Why fused: the models of a pruning study are small and many (retrain seeds x densities x
temperatures). When K models share an architecture, batch size and budget, their parameters (and
BatchNorm running statistics) are stacked into ``[K, ...]`` tensors and one step of all K is ONE
batched computation (``torch.func.vmap`` over ``functional_call`` + ``grad``): BatchNorm in training
mode uses each model's own batch statistics and updates each model's own running statistics (momentum
update), as separate training would. Then one vectorised SGD update with per-model lr / weight decay /
SAM rho runs on all parameters of all K models held in one flat ``[K, N]`` tensor (a few whole-tensor
ops, no host synchronisation inside an epoch). Otherwise each model is trained on its own (the loop
path, K = 1, the module's parameters re-pointed into the flat tensor). Both paths run the same update
code, so they give the same weights to float tolerance. Which path runs is chosen per device
(:func:`fusion_pays`: on the CPU a vmapped 2-D convolution is slower than K plain steps, so BatchNorm
models train one by one there). Speed options that leave the algorithm alone: bf16 autocast,
channels_last inputs, CUDA graphs (``train``'s ``precision`` / ``channels_last`` / ``compile``;
docs/speed.md says what each does to results).

Update rule (as ``torch.optim.SGD`` with dampening 0, no Nesterov, one parameter group, so weight decay
also applies to biases and BatchNorm affine parameters): ``d = g + wd * w; buf = momentum * buf + d;
w = w - lr * buf``. Masked weights: the gradient is zeroed at masked positions before anything else and
``w`` is reset to exactly 0.0 there after every update, so they stay 0.0 through momentum, weight decay
and SAM's perturbed pass.

SAM (Foret et al. 2021), when ``sam_rho > 0``: gradient g at w (masked); ``e = rho * g / (||g|| + 1e-12)``
with the global L2 norm over all of the model's parameters; gradient at ``w + e`` with BatchNorm running
statistics frozen (saved and restored); w restored exactly; SGD step with that second gradient. The
train loss/error recorded for a step are those of the first pass (at w).

Randomness: model k's data order (a fresh ``randperm`` each epoch, last partial batch dropped) and its
augmentation come from two generators seeded from ``seeds[k]`` through :func:`stream_seed`, so a model
sees the same batches whether it is trained alone, in a loop or inside a fused group (on one device
type: augmentation is drawn on the data's device).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from tprm.science.grouped import GroupedSlots, widen
from tprm.science.metrics import EVAL_BATCH_SIZE
from tprm.science.resumestate import Position, Resume, in_parts
from tprm.science.slots import (
    SAM_EPS,
    Masks,
    _Compute,
    _FusedSlots,
    _ModuleSlot,
    _Slots,
    sam_perturbation,
)

__all__ = [
    "CURVE_KEYS",
    "PRECISIONS",
    "SAM_EPS",
    "Schedule",
    "TrainResult",
    "bytes_per_model",
    "fusable",
    "fuses_on",
    "grouped_pays",
    "fusion_pays",
    "sam_perturbation",
    "stream_seed",
    "train",
]

# train(precision=...): None or the models' own dtype name = no autocast (the default, unchanged);
# "bf16" = bfloat16 autocast with float32 master weights and float32 BatchNorm statistics.
PRECISIONS = ("float32", "float64", "bf16")
FUSE_CHOICES = (True, False, "always", "grouped", "vmap")
CURVE_KEYS = ("epoch", "lr", "train_loss", "train_error", "test_loss", "test_error")


@dataclass(frozen=True)
class Schedule:
    """One model's optimiser settings and budget.

    The budget is ``epochs`` (iterations = epochs * (n_train // batch_size)) or ``iterations`` (the
    batch-size knob: a fixed number of SGD steps; epochs follow, the last one possibly partial).
    The LR is multiplied by ``gamma`` at every milestone: from the first iteration ``i`` (0-based) with
    ``i >= milestone * total_iterations`` on (a per-iteration schedule).
    """

    lr: float
    batch_size: int
    epochs: int | None = None
    iterations: int | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    sam_rho: float = 0.0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))
        except (TypeError, ValueError):
            raise ValueError(
                f"Schedule.milestones: a list of fractions in [0, 1], got {self.milestones!r}"
            ) from None
        if (self.epochs is None) == (self.iterations is None):
            raise ValueError(
                f"Schedule: give exactly one of epochs / iterations, got epochs={self.epochs!r}, "
                f"iterations={self.iterations!r}"
            )
        for name in ("batch_size", "epochs", "iterations"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"Schedule.{name}: must be an integer >= 1, got {value!r}")
        checks = (
            ("lr", self.lr, lambda v: v > 0, "> 0"),
            ("momentum", self.momentum, lambda v: 0 <= v < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay, lambda v: v >= 0, ">= 0"),
            ("gamma", self.gamma, lambda v: v > 0, "> 0"),
            ("sam_rho", self.sam_rho, lambda v: v >= 0, ">= 0"),
        )
        for name, value, ok, allowed in checks:
            number = not isinstance(value, bool) and isinstance(value, (int, float))
            if not number or not math.isfinite(value) or not ok(value):
                raise ValueError(f"Schedule.{name}: must be a finite number {allowed}, got {value!r}")
        if any(not 0 <= m <= 1 for m in self.milestones):
            raise ValueError(
                f"Schedule.milestones: fractions of the budget in [0, 1], got {list(self.milestones)}"
            )

    def iterations_per_epoch(self, n_train: int) -> int:
        """Full batches per pass over ``n_train`` samples (drop_last)."""
        if self.batch_size > n_train:
            raise ValueError(
                f"Schedule.batch_size: {self.batch_size} exceeds the {n_train} training samples; "
                f"use at most {n_train}"
            )
        return n_train // self.batch_size

    def total_iterations(self, n_train: int) -> int:
        """SGD steps in the whole budget."""
        per_epoch = self.iterations_per_epoch(n_train)
        return self.epochs * per_epoch if self.epochs is not None else int(self.iterations)

    def num_epochs(self, n_train: int) -> int:
        """Epochs (curve points) in the budget; a final partial epoch counts."""
        return -(-self.total_iterations(n_train) // self.iterations_per_epoch(n_train))

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate of iteration ``step`` (0-based) out of ``total``."""
        decays = sum(1 for m in self.milestones if step >= m * total)
        return self.lr * self.gamma**decays


@dataclass
class TrainResult:
    """What one model's training produced (tensors on the CPU)."""

    state: dict[str, Tensor]
    checkpoints: dict[int, dict[str, Tensor]] = field(default_factory=dict)
    # per epoch, keys CURVE_KEYS; test values are None for epochs that were not evaluated
    curves: dict[str, list] = field(default_factory=lambda: {key: [] for key in CURVE_KEYS})
    diverged: bool = False
    diverged_at: int | None = None


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for one named random stream of a training seed (e.g. "order", "augment")."""
    digest = hashlib.sha256(f"tprm/{int(seed)}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class _BatchStream:
    """Model k's batches: a fresh permutation each epoch (drop_last) plus its augmentation generator."""

    def __init__(self, seed: int, n_train: int, batch_size: int, device: torch.device | str = "cpu") -> None:
        # The order is drawn on the CPU (one permutation per epoch, moved once); augmentation is drawn
        # on the data's device, so an accelerator never waits for the host inside an epoch. A CUDA
        # generator draws other numbers than a CPU one: a run is reproducible per device type.
        self.device = torch.device(device)
        self.order = torch.Generator().manual_seed(stream_seed(seed, "order"))
        self.augment = torch.Generator(device=self.device).manual_seed(stream_seed(seed, "augment"))
        self.n_train, self.batch_size = n_train, batch_size
        self.per_epoch = n_train // batch_size
        self.perm = torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> Tensor:
        """The sample indices of iteration ``step``; steps must be asked for in order."""
        i = step % self.per_epoch
        if i == 0:
            self.perm = torch.randperm(self.n_train, generator=self.order).to(self.device)
        return self.perm[i * self.batch_size : (i + 1) * self.batch_size]

    def batch(self, step: int, data) -> tuple[Tensor, Tensor]:
        """The batch of iteration ``step``; steps must be asked for in order."""
        return data.train_batch(self.indices(step), self.augment)


def _stacked_batches(streams: Sequence[_BatchStream], step: int, data) -> tuple[Tensor, Tensor]:
    """The K models' batches of iteration ``step`` as ``[K, B, ...]`` and ``[K, B]``. Without
    augmentation (nothing drawn per model) one gather and one normalisation serve all K models:
    the same values as K calls of ``train_batch`` (elementwise), without K small copies per step."""
    if getattr(data, "crop_padding", 1) == 0 and getattr(data, "flip", True) is False and len(streams) > 1:
        idx = torch.stack([stream.indices(step) for stream in streams])
        x, y = data.train_batch(idx.flatten(), None)
        return x.view(*idx.shape, *x.shape[1:]), y.view(idx.shape)
    batches = [stream.batch(step, data) for stream in streams]
    return torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])


# --- driver ------------------------------------------------------------------------------------------


def _run(slots: _Slots, schedules: Sequence[Schedule], streams: Sequence[_BatchStream], data, *,
         checkpoint_epochs: frozenset[int], eval_every: int, eval_batch_size: int, tick: Callable[[int], None],
         on_epoch: Callable[[int, dict], None] | None = None, resume: Resume | None = None) -> list[TrainResult]:
    """Train the K slots over their (shared) budget, recording curves, checkpoints and divergence;
    from (and into) resumable states with ``resume`` (tprm.science.resumestate)."""
    k_models, n_train = slots.k, data.n_train
    total = schedules[0].total_iterations(n_train)
    per_epoch = schedules[0].iterations_per_epoch(n_train)
    n_epochs = schedules[0].num_epochs(n_train)
    results = [TrainResult(state={}) for _ in range(k_models)]
    if 0 in checkpoint_epochs:
        for k in range(k_models):
            results[k].checkpoints[0] = slots.state_dict(k)
    dead: set[int] = set()
    pos = Position(k_models, slots.device)
    if resume is not None:  # continue from saved states; write new ones as the ticks go
        tick = resume.attach(slots, streams, results, pos, dead, tick)
    lr_values: tuple[float, ...] = ()
    lr = slots._vector([0.0] * k_models)
    while pos.epoch <= n_epochs and len(dead) < k_models:
        epoch, end = pos.epoch, min(pos.epoch * per_epoch, total)
        if pos.epoch_lr is None:
            pos.begin_epoch([s.lr_at(pos.step, total) for s in schedules])
        while pos.step < end:
            values = tuple(s.lr_at(pos.step, total) for s in schedules)
            if values != lr_values:
                lr_values, lr = values, slots._vector(values)
            x, y = _stacked_batches(streams, pos.step, data)
            x, y = x.to(slots.device, slots.dtype), y.to(slots.device)
            loss, wrong = slots.step(x, y, lr)
            pos.loss_sum += loss.double()
            pos.wrong_sum += wrong.double()
            pos.step += 1
            tick(k_models - len(dead))
        alive = slots.alive.tolist()
        evaluate = (epoch % eval_every == 0 or epoch == n_epochs) and any(alive)
        test_loss, test_error = _test_values(slots, data, eval_batch_size, evaluate)
        steps_in_epoch = end - (epoch - 1) * per_epoch
        rows = list(zip(pos.epoch_lr, (pos.loss_sum / steps_in_epoch).tolist(),
                        (pos.wrong_sum / steps_in_epoch).tolist(), test_loss, test_error))
        _record_epoch(slots, results, epoch, rows, alive, dead, checkpoint_epochs, on_epoch)
        pos.epoch += 1
        pos.begin_epoch(None)
    if resume is not None:
        resume.end()
    for k in range(k_models):
        results[k].state = slots.state_dict(k)
    return results


def _test_values(slots: _Slots, data, batch_size: int, evaluate: bool) -> tuple[list, list]:
    """Test loss and error of the K slots, or None each when not evaluated this epoch."""
    if not evaluate:
        return [None] * slots.k, [None] * slots.k
    t_loss, t_error = slots.evaluate(data, batch_size)
    return t_loss.tolist(), t_error.tolist()


def _record_epoch(slots: _Slots, results: list[TrainResult], epoch: int, rows: list[tuple], alive: list[bool],
                  dead: set[int], checkpoint_epochs: frozenset[int],
                  on_epoch: Callable[[int, dict], None] | None) -> None:
    """Append each live model's curve row (lr, train loss/error, test loss/error) of ``epoch``; a model
    that diverged in it is marked (no test values, no checkpoint) and joins ``dead``."""
    for k, row in enumerate(rows):
        if k in dead:
            continue
        curves = results[k].curves
        for key, value in zip(CURVE_KEYS, (epoch, *row)):
            curves[key].append(value if key == "epoch" or value is None else float(value))
        if on_epoch is not None:
            on_epoch(k, {key: curves[key][-1] for key in CURVE_KEYS})
        if not alive[k]:
            curves["test_loss"][-1] = curves["test_error"][-1] = None
            results[k].diverged, results[k].diverged_at = True, epoch
            dead.add(k)
        elif epoch in checkpoint_epochs:
            results[k].checkpoints[epoch] = slots.state_dict(k)


def _check_inputs(models, data, schedules, seeds, masks, checkpoint_epochs, eval_every) -> list[Masks]:
    k = len(models)
    if k == 0:
        raise ValueError("train: models is empty; give at least one nn.Module")
    lists = [("schedules", schedules), ("seeds", seeds)] + ([("masks", masks)] if masks is not None else [])
    for name, seq in lists:
        if len(seq) != k:
            raise ValueError(f"train: {name} has {len(seq)} entries, expected one per model ({k})")
    if len({id(m) for m in models}) != k:
        raise ValueError("train: models: the same nn.Module object appears more than once")
    for i, s in enumerate(schedules):
        if not isinstance(s, Schedule):
            raise TypeError(f"train: schedules[{i}] must be a Schedule, got {type(s).__name__}")
        s.total_iterations(data.n_train)  # validates batch_size against the data
    for i, seed in enumerate(seeds):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"train: seeds[{i}] must be an int, got {seed!r}")
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
        raise ValueError(f"train: eval_every must be an integer >= 1, got {eval_every!r}")
    for i, s in enumerate(schedules):
        n_epochs = s.num_epochs(data.n_train)
        for e in checkpoint_epochs:
            if isinstance(e, bool) or not isinstance(e, int) or not 0 <= e <= n_epochs:
                raise ValueError(
                    f"train: checkpoint_epochs: {e!r} is not an epoch in 0..{n_epochs} of model {i}"
                )
    out: list[Masks] = []
    for i, model in enumerate(models):
        mask = (masks[i] if masks is not None else None) or {}
        params = dict(model.named_parameters())
        frozen = [name for name, p in params.items() if not p.requires_grad]
        if frozen:
            raise ValueError(
                f"train: models[{i}]: {frozen[0]!r} has requires_grad=False; every parameter is trained"
            )
        checked: Masks = {}
        for name, m in mask.items():
            if name not in params:
                raise ValueError(f"train: masks[{i}]: {name!r} is not a parameter; valid: {', '.join(params)}")
            if not isinstance(m, Tensor) or m.dtype != torch.bool or m.shape != params[name].shape:
                raise ValueError(
                    f"train: masks[{i}][{name!r}]: must be a bool tensor of shape {tuple(params[name].shape)}"
                )
            checked[name] = m.to(params[name].device)
        out.append(checked)
    return out


def _signature(model: nn.Module) -> tuple:
    tensors = [(n, tuple(p.shape), p.dtype, p.device) for n, p in model.named_parameters()]
    tensors += [(n, tuple(b.shape), b.dtype, b.device) for n, b in model.named_buffers()]
    return type(model), str(model), tuple(tensors)


def _fusable_buffers(model: nn.Module) -> bool:
    """Every buffer is a BatchNorm running statistic with a momentum (vmap keeps those per model; a
    cumulative average, ``momentum=None``, reads its counter on the host)."""
    allowed = set()
    for prefix, module in model.named_modules():
        if isinstance(module, _BatchNorm) and module.momentum is not None:
            allowed |= {f"{prefix}.{n}" if prefix else n for n, _ in module.named_buffers(recurse=False)}
    return all(name in allowed for name, _ in model.named_buffers())


def _fusable_alone(model: nn.Module) -> bool:
    """What one model needs for fusion: buffers vmap can keep per model, no active dropout (its
    randomness would differ from separate training)."""
    dropout = any(isinstance(mod, nn.modules.dropout._DropoutNd) and mod.p > 0 for mod in model.modules())
    return _fusable_buffers(model) and not dropout


def fusable(models: Sequence[nn.Module], schedules: Sequence[Schedule], n_train: int) -> bool:
    """Whether ``models`` can be trained as one vmapped computation.

    Needs: 2+ models with the same type, module tree (``str``) and parameter and buffer names/shapes/
    dtypes/device; buffers only as BatchNorm running statistics with a momentum (each model keeps its
    own); no active dropout (its randomness would differ from separate training); the same batch size,
    number of iterations and momentum. lr, weight decay, milestones, gamma and SAM rho may differ.
    """
    if len(models) < 2:
        return False
    first = _signature(models[0])
    if any(_signature(m) != first for m in models[1:]):
        return False
    if not all(_fusable_alone(m) for m in models):
        return False
    keys = {(s.batch_size, s.total_iterations(n_train), s.momentum) for s in schedules}
    return len(keys) == 1


def fusion_pays(models: Sequence[nn.Module], device: torch.device | str) -> bool:
    """Whether fusing these (fusable) models is the faster strategy on ``device``.

    On an accelerator: always (one batched kernel per layer instead of K). On the CPU only for models
    without buffers (small MLP / 1-D conv nets, as before): a vmapped BatchNorm / 2-D convolution is a
    grouped convolution there, measured 2x slower per model than K plain steps, so BatchNorm models
    train one after another on the lean path (docs/speed.md).
    """
    if torch.device(device).type != "cpu":
        return True
    return all(next(m.buffers(), None) is None for m in models)


def grouped_pays(device: torch.device | str) -> bool:
    """Whether ``fuse=True`` trains a fused group as one wide grouped-convolution model rather than
    through vmap: on the CPU (where fused groups are buffer-free nets, :func:`fusion_pays`).

    CPU: the wide model calls the convolution kernels directly (no vmap bias additions and layout
    copies), its 1-D layers take their input gradient from forward kernels and a one-channel first
    layer is a batched matrix product (:mod:`tprm.science.gconv`); measured faster per model-step
    than vmap on the quickstart's groups (80 retrains and the 2 dense seeds, docs/speed.md). Both
    forms round with the size of the group (measured: a model trained in a group of 4 and of 8
    differs by ~3e-8 after 3 epochs either way). Accelerators: not yet measured (vmap;
    benchmarks/gpu_check.sh has the rows).
    """
    return torch.device(device).type == "cpu"


def _grouped(fuse: bool | str, device) -> bool:
    """Whether a fused group takes the grouped form under ``fuse`` (else vmap: ``"always"`` is the
    accelerator's path wherever it runs, which is how the CPU tests prove it)."""
    return fuse == "grouped" or (fuse is True and grouped_pays(device))


def _fused_slots(models, masks, schedules, compute, data, fuse) -> _Slots:
    """The fused slots of ``fuse``'s form: grouped where chosen and the wide model checks out."""
    if _grouped(fuse, data.device):
        x, _ = data.plain("train", 0, 4)
        wide = widen(models, x.to(data.device, next(models[0].parameters()).dtype))
        if wide is not None:
            return GroupedSlots(models, masks, schedules, compute, wide)
    return _FusedSlots(models, masks, schedules, compute)


def fuses_on(model: nn.Module, device: torch.device | str) -> bool:
    """Whether copies of ``model`` that share a batch schedule train as ONE fused computation on
    ``device`` under ``fuse=True`` (:func:`fusable` for copies of it and :func:`fusion_pays`); when
    not, ``train`` runs them one after another, so a scheduler should rather run them in parallel."""
    return _fusable_alone(model) and fusion_pays([model], device)


def bytes_per_model(model: nn.Module, batch_size: int, input_shape: Sequence[int], *, sam: bool = False,
                    precision: str | None = None) -> int:
    """Estimated device memory one model of a fused group needs for one training step, in bytes.

    For the scheduler: a group of K models needs about ``K * bytes_per_model`` (choose K, or several
    groups per device, by the free memory). Counted: parameters, momentum and the update's
    temporaries (6 copies of the weights, 7 with SAM), BatchNorm buffers (twice: saved for the
    divergence guard), and what the step itself allocates, MEASURED by running the fused step at two
    small batch sizes on the CPU in ``precision`` ("bf16": autocast with float32 BatchNorm, which needs
    more than float32, not half; :mod:`tprm.science.memory`) and extrapolating to ``batch_size``.
    An estimate, not a bound: allocator slack and cuDNN workspaces come on top (keep ~20% free).
    """
    from tprm.science.memory import activation_bytes

    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return int(params * (7 if sam else 6) + 2 * buffers + activation_bytes(model, batch_size, input_shape, precision))


def _compute_options(models: Sequence[nn.Module], precision: str | None, channels_last: bool,
                     compile: bool) -> _Compute:
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"train: precision {precision!r} is not valid; use one of {', '.join(PRECISIONS)}")
    dtypes = {p.dtype for m in models for p in m.parameters()}
    if precision == "bf16" and dtypes != {torch.float32}:
        raise ValueError("train: precision 'bf16' needs float32 models (master weights), "
                         f"got {sorted(map(str, dtypes))}")
    if precision in ("float32", "float64") and dtypes != {getattr(torch, precision)}:
        raise ValueError(f"train: precision {precision!r} but the models hold {sorted(map(str, dtypes))}")
    for name, flag in (("channels_last", channels_last), ("compile", compile)):
        if not isinstance(flag, bool):
            raise TypeError(f"train: {name} must be true or false, got {flag!r}")
    return _Compute(torch.bfloat16 if precision == "bf16" else None, channels_last, compile)


def train(
    models: list[nn.Module],
    data,
    schedules: list[Schedule],
    seeds: list[int],
    masks: list[Masks | None] | None = None,
    *,
    checkpoint_epochs: Sequence[int] = (),
    fuse: bool | str = True,
    progress: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    eval_every: int = 1,
    eval_batch_size: int = EVAL_BATCH_SIZE,
    precision: str | None = None,
    channels_last: bool = False,
    compile: bool = False,
    resume: Resume | None = None,
) -> list[TrainResult]:
    """Train ``models[k]`` with ``schedules[k]`` on ``data`` (a TensorData) from seed ``seeds[k]``.

    ``masks[k]`` (param name -> bool tensor, True = keep) is applied at the start and kept exactly.
    Curves per epoch: lr at the epoch's first step, running mean train loss/error over the epoch's
    batches, test loss/error every ``eval_every`` epochs and at the last one (None when not evaluated).
    A model whose loss becomes non-finite stops there (``diverged_at`` = that epoch, its curves end
    there, no later checkpoints; its state is the last weights before the failing step).
    ``progress(done, total)`` counts model-steps and is called after every step; an exception raised
    by it propagates (cancel). Final weights are left in the modules; ``on_epoch(k, row)`` gets each
    epoch's curve values of model k.

    Strategy (same results to float tolerance either way): ``fuse=True`` fuses :func:`fusable` models
    where :func:`fusion_pays`, as one wide grouped-convolution model where :func:`grouped_pays` and
    the model widens (:func:`tprm.science.grouped.widen`), else vmapped; ``"always"`` fuses whenever
    fusable, vmapped (the accelerator's form); ``"grouped"`` / ``"vmap"`` also pick the form;
    ``False`` never fuses.
    Execution options (docs/speed.md): ``precision`` None (the models' dtype) or "bf16" (autocast),
    ``channels_last`` (NHWC 2-D inputs), ``compile`` (CUDA graphs, CUDA only).
    ``resume`` (tprm.science.resumestate): continue from the models' saved states and write new ones.
    """
    checked_masks = _check_inputs(models, data, schedules, seeds, masks, checkpoint_epochs, eval_every)
    if fuse not in FUSE_CHOICES:
        raise ValueError(f"train: fuse must be true, false, 'always', 'grouped' or 'vmap', got {fuse!r}")
    compute = _compute_options(models, precision, channels_last, compile)
    n_train = data.n_train
    counter = _Progress(progress, sum(s.total_iterations(n_train) for s in schedules))
    fused = _fuses(models, schedules, n_train, fuse, data.device)
    form = fused and ("grouped" if _grouped(fuse, data.device) else "vmap")
    if resume is not None and len(groups := resume.prepare(models, schedules, seeds, n_train, form, counter)) > 1:
        options = dict(checkpoint_epochs=checkpoint_epochs, fuse=fuse, eval_every=eval_every, compile=compile,
                       eval_batch_size=eval_batch_size, precision=precision, channels_last=channels_last)
        return in_parts(train, groups, models, data, schedules, seeds, masks, progress, on_epoch, resume, options)
    common = dict(checkpoint_epochs=frozenset(checkpoint_epochs), eval_every=eval_every,
                  eval_batch_size=eval_batch_size, tick=counter.tick, resume=resume, fuse=fuse)
    modes = [m.training for m in models]
    try:
        strategy = _all_at_once if fused else _one_by_one
        return strategy(models, checked_masks, schedules, seeds, data, compute, counter, on_epoch, common)
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)


def _all_at_once(models, masks, schedules, seeds, data, compute, counter, on_epoch, common) -> list[TrainResult]:
    """The models trained as one fused computation (the fused path; ``common["fuse"]`` picks its form)."""
    streams = [_BatchStream(seed, data.n_train, s.batch_size, data.device) for seed, s in zip(seeds, schedules)]
    slots = _fused_slots(models, masks, schedules, compute, data, common.pop("fuse"))
    try:
        results = _run(slots, schedules, streams, data, on_epoch=on_epoch, **common)
    finally:
        slots.release()
    counter.settle(counter.total)
    return results


def _fuses(models, schedules, n_train: int, fuse: bool | str, device) -> bool:
    """Whether ``train`` takes the fused path for these models (see its docstring)."""
    if not (fuse and fusable(models, schedules, n_train)):
        return False
    return fuse != True or fusion_pays(models, device)  # noqa: E712 - True, not truthy


def _one_by_one(models, masks, schedules, seeds, data, compute, counter, on_epoch, common) -> list[TrainResult]:
    """Each model trained alone through its own module (the loop path)."""
    common = {k: v for k, v in common.items() if k != "fuse"}
    results, resume = [], common["resume"]
    for i, (model, mask, s, seed) in enumerate(zip(models, masks, schedules, seeds)):
        end = counter.done + s.total_iterations(data.n_train)
        stream = _BatchStream(seed, data.n_train, s.batch_size, data.device)
        hook = None if on_epoch is None else (lambda _k, row, i=i: on_epoch(i, row))
        slot = _ModuleSlot(model, mask, s, compute)
        if resume is not None:  # a finished model's state waits for the next write
            common = dict(common, resume=resume.subset([i]))
            common["resume"].keep_finished = i < len(models) - 1
        try:
            results += _run(slot, [s], [stream], data, on_epoch=hook, **common)
        finally:
            slot.release()
        counter.settle(end)  # a diverged model stops early: count its skipped steps as done
    return results


class _Progress:
    """Counts model-steps and reports them to the caller's callback (which may raise to cancel)."""

    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0

    def tick(self, n: int) -> None:
        self.settle(self.done + n)

    def settle(self, done: int) -> None:
        if done == self.done:
            return
        self.done = done
        if self.callback is not None:
            self.callback(done, self.total)
