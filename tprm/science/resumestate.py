"""Resumable training: what ``train`` keeps so that a run stopped mid-way continues, when run again,
with the very bits an uninterrupted run produces (on the CPU; per device type elsewhere).

Why: a long retraining (or dense training) that is cancelled at 76 % should not start again from
epoch 0. One state per model (a job): its flat weights, momentum buffer and BatchNorm buffers,
whether it diverged, its two random streams (data order, augmentation) with the current epoch's
permutation, the epoch's running loss/error sums and first-step learning rate, the global torch RNG
(dropout on the one-by-one path), the step reached and everything recorded so far (curves,
checkpoints). A state may be taken after any step, not only at an epoch's end.

When (``ResumeFiles``): after a step once ``every_s`` seconds passed since the training began or the
last state was written, and when training is stopped by its progress callback (a cancel) if the
training is expected to last at least ``min(MIN_WORTH_S, every_s)`` seconds (its wall time so far
divided by its fraction done). So a job shorter than ``every_s`` never writes a periodic state, and
a cancelled job expected under a minute writes none: restarting it costs less than the write.
Where: the caller's ``load(k)`` / ``save(k, state)`` (the engine keeps them with the job's artifacts).

Models of one group resume in lockstep only from the same step; ``in_parts`` trains models with
different saved steps (e.g. a one-by-one group stopped after its first model) as separate calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

FORMAT = 1
MIN_WORTH_S = 60.0  # a training expected to last less than this writes no state when stopped

State = dict[str, Any]


@dataclass
class Position:
    """Where the driver loop of K models is: the step reached, the epoch being run (1-based), and that
    epoch's first-step learning rates and running sums (``epoch_lr`` None: the epoch has not begun)."""

    k: int
    device: torch.device
    step: int = 0
    epoch: int = 1
    epoch_lr: list[float] | None = None
    loss_sum: Tensor = field(init=False)
    wrong_sum: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.begin_epoch(None)

    def begin_epoch(self, lrs: list[float] | None) -> None:
        self.epoch_lr = lrs
        self.loss_sum = torch.zeros(self.k, dtype=torch.float64, device=self.device)
        self.wrong_sum = torch.zeros_like(self.loss_sum)


def fit_check(model: torch.nn.Module, schedule, seed: int, n_train: int) -> dict:
    """What a state must match to be resumed by this model's training (else it is ignored)."""
    params = list(model.parameters())
    return {"format": FORMAT, "n_train": n_train, "schedule": repr(schedule), "seed": seed,
            "size": sum(p.numel() for p in params), "dtype": str(params[0].dtype),
            "device": params[0].device.type, "buffers": sorted(n for n, _ in model.named_buffers())}


def capture(slots, k: int, stream, result, pos: Position, dead: set[int], check: dict) -> State:
    """Model k's resumable state (CPU tensors, plain containers)."""
    cpu = lambda t: t.detach().to("cpu", copy=True)  # noqa: E731
    state: State = {
        "check": check, "step": pos.step, "epoch": pos.epoch,
        "epoch_lr": None if pos.epoch_lr is None else pos.epoch_lr[k],
        "loss_sum": float(pos.loss_sum[k]), "wrong_sum": float(pos.wrong_sum[k]),
        "w": cpu(slots.w[k]), "buf": None if slots.buf is None else cpu(slots.buf[k]),
        "buffers": {n: cpu(b[k]) for n, b in slots.buffers.items()}, "alive": bool(slots.alive[k]),
        "order": stream.order.get_state(), "augment": stream.augment.get_state(), "perm": cpu(stream.perm),
        "rng": torch.get_rng_state(), "dead": k in dead,
        "curves": {key: list(values) for key, values in result.curves.items()},
        "checkpoints": dict(result.checkpoints), "diverged": result.diverged, "diverged_at": result.diverged_at,
    }
    if slots.device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(slots.device)
    return state


def restore(slots, k: int, stream, result, pos: Position, dead: set[int], state: State) -> None:
    """Put model k's saved state back into the slots, its stream, result and the loop position."""
    with torch.no_grad():
        slots.w[k].copy_(state["w"])
        if slots.buf is not None:
            slots.buf[k].copy_(state["buf"])
        for name, b in slots.buffers.items():
            b[k].copy_(state["buffers"][name])
        slots.alive[k] = bool(state["alive"])
    stream.order.set_state(state["order"])
    stream.augment.set_state(state["augment"])
    stream.perm = state["perm"].to(stream.device)
    pos.step, pos.epoch = state["step"], state["epoch"]
    if state["epoch_lr"] is not None:
        if pos.epoch_lr is None:
            pos.epoch_lr = [0.0] * pos.k
        pos.epoch_lr[k] = state["epoch_lr"]
    pos.loss_sum[k], pos.wrong_sum[k] = state["loss_sum"], state["wrong_sum"]
    if state["dead"]:
        dead.add(k)
    result.curves = {key: list(values) for key, values in state["curves"].items()}
    result.checkpoints = dict(state["checkpoints"])
    result.diverged, result.diverged_at = state["diverged"], state["diverged_at"]
    torch.set_rng_state(state["rng"])
    if "cuda_rng" in state and slots.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], slots.device)


class ResumeFiles:
    """The states of one ``train`` call's K models: where they are read and written (the caller's
    ``load(k)`` -> state or None, ``save(k, state)``) and when (see the module docstring)."""

    def __init__(self, load: Callable[[int], State | None], save: Callable[[int, State], None],
                 every_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not every_s > 0:
            raise ValueError(f"ResumeFiles: every_s must be > 0 seconds, got {every_s!r}")
        self._load, self._save, self.every_s, self.clock = load, save, float(every_s), clock
        self.loaded: dict[int, State | None] = {}
        self.pending: dict[int, State] = {}  # finished models of a one-by-one group not yet written
        self.started = self.last = clock()
        self.fraction: Callable[[], float] = lambda: 0.0
        self.written = 0  # states written (for tests and the job log)

    def state(self, k: int) -> State | None:
        if k not in self.loaded:
            self.loaded[k] = self._load(k)
        return self.loaded[k]

    def due(self) -> bool:
        return self.clock() - self.last >= self.every_s

    def worth(self) -> bool:
        """Whether the training is expected to last long enough for a state to pay off."""
        elapsed, fraction = self.clock() - self.started, self.fraction()
        expected = elapsed / fraction if fraction > 0 else 0.0
        return expected >= min(MIN_WORTH_S, self.every_s)

    def write(self, states: dict[int, State]) -> None:
        for k, state in {**self.pending, **states}.items():
            self._save(k, state)
            self.written += 1
        self.pending.clear()
        self.last = self.clock()


class Resume:
    """The view of ``ResumeFiles`` that one training call (or part of one) uses: models ``index``."""

    def __init__(self, files: ResumeFiles, index: Sequence[int] | None = None) -> None:
        self.files, self.index = files, None if index is None else list(index)
        self.checks: list[dict] = []  # fit_check of each model (set by prepare)
        self.snapshot: Callable[[], dict[int, State]] = dict  # every model's state now (set by attach)
        self.keep_finished = False  # one-by-one: a finished model's state waits for the next write

    def _global(self, k: int) -> int:
        return k if self.index is None else self.index[k]

    def subset(self, index: Sequence[int]) -> Resume:
        sub = Resume(self.files, [self._global(i) for i in index])
        sub.checks = [self.checks[i] for i in index] if self.checks else []
        return sub

    def prepare(self, models: Sequence, schedules: Sequence, seeds: Sequence[int], n_train: int,
                fused: bool | str, counter) -> list[list[int]]:
        """Set up for one training call (its models' fit checks, its progress ``counter`` with ``done``
        and ``total`` model-steps for ``worth``); the parts it must be trained in (``parts``)."""
        self.checks = [fit_check(m, s, seed, n_train) for m, s, seed in zip(models, schedules, seeds)]
        self.files.fraction = lambda: counter.done / counter.total
        self.files.started = self.files.last = self.files.clock()  # the training starts now
        return parts(self, fused)

    def attach(self, slots, streams, results, pos: Position, dead: set[int],
               tick: Callable[[int], None]) -> Callable[[int], None]:
        """Start the driver loop from the saved states (``restore``); the ``tick`` to use, which
        writes the states as due (``ticker``)."""
        self.restore(slots, streams, results, pos, dead)
        self.snapshot = lambda: {k: capture(slots, k, streams[k], results[k], pos, dead, self.checks[k])
                                 for k in range(slots.k)}
        return self.ticker(tick, self.snapshot)

    def end(self) -> None:
        """The loop finished: keep the finished states of a one-by-one group for the next write."""
        if self.keep_finished:
            self.files.pending.update({self._global(k): s for k, s in self.snapshot().items()})

    def states(self, k_models: int) -> list[State | None]:
        return [self.files.state(self._global(k)) for k in range(k_models)]

    def restore(self, slots, streams, results, pos: Position, dead: set[int]) -> None:
        """Continue from the saved states when every model has one that fits its check."""
        states = self.states(slots.k)
        if any(s is None or s.get("check") != c for s, c in zip(states, self.checks)):
            return
        steps = {s["step"] for s in states if s is not None}
        if len(steps) != 1:
            return
        for k, state in enumerate(states):
            restore(slots, k, streams[k], results[k], pos, dead, state)

    def ticker(self, tick: Callable[[int], None], snapshot: Callable[[], dict[int, State]]):
        """``tick`` that writes the states when due, and when the tick raises (a cancel) if worth it."""
        files = self.files

        def run(n: int) -> None:
            try:
                tick(n)
            except Exception:
                if files.worth():
                    self.write(snapshot())
                raise
            if files.due():
                self.write(snapshot())

        return run

    def write(self, states: dict[int, State]) -> None:
        self.files.write({self._global(k): s for k, s in states.items()})


def parts(resume: Resume, fused: bool | str) -> list[list[int]]:
    """Model indices grouped by the step their usable saved state reached (0 without one), in the order
    of their first model: each part resumes in lockstep.

    ``fused`` is False (one by one: any cut is exact), "vmap" or "grouped" (the fused form). A vmapped
    group is cut only into parts of 2+ models (they fuse too, and a vmapped model gets the same bits in
    any group); a part of one would train on the one-module path, whose rounding differs, and a
    grouped-convolution model rounds differently with its group's size: then the whole group starts
    again from step 0 (exact, at the price of the saved progress).
    """
    by_step: dict[int, list[int]] = {}
    for k, (state, check) in enumerate(zip(resume.states(len(resume.checks)), resume.checks)):
        step = state["step"] if state is not None and state.get("check") == check else 0
        by_step.setdefault(step, []).append(k)
    groups = sorted(by_step.values(), key=lambda ks: ks[0])
    if len(groups) > 1 and (fused == "grouped" or (fused and min(map(len, groups)) < 2)):
        return [list(range(len(resume.checks)))]
    return groups


def in_parts(train: Callable[..., list], groups: list[list[int]], models: list, data, schedules: list,
             seeds: list, masks: list | None, progress: Callable[[int, int], None] | None,
             on_epoch: Callable[[int, dict], None] | None, resume: Resume, options: dict[str, Any]) -> list:
    """``train`` called once per part of the models (``parts``), results in the models' order."""
    results: list = [None] * len(models)
    steps = [s.total_iterations(data.n_train) for s in schedules]
    grand, offset = sum(steps), 0
    for ks in groups:
        pick = lambda seq, ks=ks: [seq[k] for k in ks]  # noqa: E731
        sub_progress = None if progress is None else (
            lambda done, _total, base=offset: progress(base + done, grand))
        sub_epoch = None if on_epoch is None else (lambda k, row, ks=ks: on_epoch(ks[k], row))
        out = train(pick(models), data, pick(schedules), pick(seeds), None if masks is None else pick(masks),
                    progress=sub_progress, on_epoch=sub_epoch, resume=resume.subset(ks), **options)
        for k, res in zip(ks, out):
            results[k] = res
        offset += sum(steps[k] for k in ks)
    return results
