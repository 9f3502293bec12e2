"""Fused vs looped training of K small conv1d retrains on MNIST-1D: wall times and speed ratio.

Why: fusing K same-architecture models into one vmapped computation is the engine's main speed lever
for small models; this measures it on the current machine, in one run, so the ratio is comparable.

    python benchmarks/fused_training.py [--k 24] [--epochs 2] [--widths 32,32,32] [--threads 1]
        [--device cpu] [--samples 5000] [--batch-size 128] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from tprm.science.data import DataSpec, load_data
from tprm.science.models import build_model, seeded
from tprm.science.prune import magnitude_masks, prunable_parameters
from tprm.science.train import Schedule, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=24, help="number of retrains (models)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--widths", default="32,32,32", help="conv1d channel widths")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samples", type=int, default=5000, help="MNIST-1D num_samples")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per path (best is reported)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    widths = tuple(int(w) for w in args.widths.split(","))
    with tempfile.TemporaryDirectory() as cache:
        data = load_data(DataSpec(num_samples=args.samples), cache_dir=cache, device=args.device)

    def retrains() -> list[torch.nn.Module]:
        """K pruned copies of one dense init at different densities (as a retrain group is)."""
        with seeded(0):
            dense = build_model("conv1d", data.num_classes, data.input_shape, widths=widths).to(args.device)
        models, masks = [], []
        for k in range(args.k):
            model = build_model("conv1d", data.num_classes, data.input_shape, widths=widths).to(args.device)
            model.load_state_dict(dense.state_dict())
            density = (0.05, 0.1, 0.2, 0.4)[k % 4]
            masks.append(magnitude_masks(model, density, prunable_parameters(model)))
            models.append(model)
        return models, masks

    schedules = [Schedule(lr=0.1, batch_size=args.batch_size, epochs=args.epochs)] * args.k
    seeds = list(range(args.k))
    # Warm-up: the first torch.func call of a process costs about a second (one-off initialisation),
    # and the first convolutions build oneDNN kernels; pay both before timing either path.
    warm = Schedule(lr=0.1, batch_size=args.batch_size, iterations=2)
    for fuse in (True, False):
        models, masks = retrains()
        train(models[:2], data, [warm] * 2, seeds[:2], masks[:2], fuse=fuse)
    times: dict[str, list[float]] = {"fused": [], "loop": []}
    cpu: dict[str, list[float]] = {"fused": [], "loop": []}
    errors: dict[str, list[float]] = {}
    for _ in range(args.repeats):  # interleaved, so a busy machine slows both paths alike
        for label, fuse in (("fused", True), ("loop", False)):
            models, masks = retrains()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start, start_cpu = time.perf_counter(), time.process_time()
            results = train(models, data, schedules, seeds, masks, fuse=fuse)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times[label].append(time.perf_counter() - start)
            cpu[label].append(time.process_time() - start_cpu)
            errors[label] = [r.curves["test_error"][-1] for r in results]
    gap = max(abs(a - b) for a, b in zip(errors["fused"], errors["loop"]))
    steps = schedules[0].total_iterations(data.n_train)
    print(f"device={data.device} torch_threads={torch.get_num_threads()} K={args.k} widths={widths} "
          f"epochs={args.epochs} steps/model={steps} batch={args.batch_size} n_train={data.n_train}")
    wall = {label: min(values) for label, values in times.items()}
    proc = {label: min(values) for label, values in cpu.items()}
    print(f"best of {args.repeats}: fused {wall['fused']:.2f} s wall ({proc['fused']:.2f} s cpu)   "
          f"loop {wall['loop']:.2f} s wall ({proc['loop']:.2f} s cpu)")
    print(f"speed ratio loop/fused: {wall['loop'] / wall['fused']:.2f}x wall, "
          f"{proc['loop'] / proc['fused']:.2f}x cpu")
    print(f"max |test error fused - loop| over models: {gap:.4f}")


if __name__ == "__main__":
    main()
