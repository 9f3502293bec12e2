"""What resumable states cost: training a fused group of K retrains with a state written after every
epoch (through the engine's real artifact writer) against the same training without states.

Why: execution.resume_every trades a write every few minutes for not losing the work of a cancelled
or killed job; this measures the write against the training it protects, in one run, as ratios:
the cost of one state write in epochs of training, and the slowdown of a run that writes one per
epoch (resume_every is minutes, so a real run writes far fewer).

    python benchmarks/resume_overhead.py [--k 16] [--epochs 4] [--widths 32,32,32] [--threads 1]
        [--samples 5000] [--batch-size 128] [--repeats 2]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch

from tprm.engine.artifacts import Artifacts
from tprm.science.data import DataSpec, load_data
from tprm.science.models import build_model, seeded
from tprm.science.prune import magnitude_masks, prunable_parameters
from tprm.science.resumestate import Resume, ResumeFiles
from tprm.science.train import Schedule, train


class EpochClock:
    """A clock that says "due" once an epoch: it jumps a day whenever the step count says so."""

    def __init__(self, steps_per_epoch: int) -> None:
        self.calls, self.per_epoch = 0, steps_per_epoch

    def __call__(self) -> float:
        self.calls += 1
        return float(self.calls // self.per_epoch) * 86400.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16, help="models in the fused group")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--widths", default="32,32,32", help="conv1d channel widths")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=5000, help="MNIST-1D num_samples")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per variant (best is reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    widths = tuple(int(w) for w in args.widths.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        data = load_data(DataSpec(num_samples=args.samples), cache_dir=tmp)
        models = []
        for seed in range(args.k):
            with seeded(seed):
                models.append(build_model("conv1d", data.num_classes, data.input_shape, widths=widths))
        masks = [magnitude_masks(m, 0.2, prunable_parameters(m)) for m in models]
        schedule = Schedule(lr=0.05, batch_size=args.batch_size, epochs=args.epochs)
        per_epoch = schedule.iterations_per_epoch(data.n_train)
        art = Artifacts(Path(tmp) / "store")
        writes: list[float] = []

        def save(k: int, state: dict) -> None:
            started = time.perf_counter()
            art.save(f"job{k:04d}", "resume", state)
            writes.append(time.perf_counter() - started)

        def run(with_states: bool) -> float:
            resume = (Resume(ResumeFiles(lambda k: None, save, 1.0, clock=EpochClock(per_epoch + 1)))
                      if with_states else None)
            started = time.perf_counter()
            train(copy.deepcopy(models), data, [schedule] * args.k, list(range(args.k)), masks, resume=resume)
            return time.perf_counter() - started

        plain = min(run(False) for _ in range(args.repeats))
        writes.clear()
        stated = min(run(True) for _ in range(args.repeats))
    group_write = sum(writes) / args.repeats
    epoch = plain / args.epochs
    states = len(writes) // args.repeats // args.k
    print(f"fused group of {args.k} conv1d {args.widths} retrains, {args.epochs} epochs of {per_epoch} steps, "
          f"{args.threads} thread(s)")
    print(f"  no states: {plain:.2f} s ({epoch:.3f} s an epoch)")
    print(f"  a state of the group after every epoch ({states} writes of {args.k} files): {stated:.2f} s "
          f"= {stated / plain:.3f}x")
    print(f"  one write of the group's state: {group_write / max(states, 1):.3f} s "
          f"= {group_write / max(states, 1) / epoch:.3f} epochs of training")
    print(f"  at resume_every 5 (a write per 300 s of training): {group_write / max(states, 1) / 300:.5f}x extra")


if __name__ == "__main__":
    main()
