"""`tprm run quickstart` against a plain PyTorch script of the same grid, as whole processes in turn.

    python benchmarks/quickstart_vs_plain.py --runs 3        # A B A B A B, medians and the ratio

The plain side is what one would write by hand (inside this file, `--plain`): a DataLoader over a
TensorDataset, `torch.optim.SGD` + `MultiStepLR`, `torch.nn.utils.prune.l1_unstructured` hooks,
each model trained alone, LMC point by point, linear CKA on softmax outputs, the default torch
threads. Same data (MNIST-1D as tprm generates it), architecture, schedules and grid as
recipes/quickstart.yaml. The tprm side runs `tprm run quickstart` into an empty private store.
Each run is timed as a whole process (wall clock, including Python and torch start-up); the ratio is
plain / tprm (> 1: tprm faster). Load averages before each run are printed: time it on a quiet
machine (under `flock /tmp/tprm-heavy.lock` where others share it). `--lean` adds a third side:
the plain script with tensor-index batches instead of the DataLoader (a leaner hand-written loop).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# recipes/quickstart.yaml, written out for the plain script
DENSE_SEEDS, RETRAIN_SEEDS = (0, 1), (0, 1)
CHECKPOINTS = (8, 16, 32, 64)
DENSITIES = (0.05, 0.1, 0.2, 0.4, 0.8)
DENSE = {"epochs": 64, "lr": 0.05, "weight_decay": 5e-4}
RETRAIN = {"epochs": 20, "lr": 0.1, "weight_decay": 5e-4}
BATCH, WIDTH, POINTS, CKA_SAMPLES = 128, 24, 11, 2000
LEAN = False  # --lean: the plain script with tensor-index batches instead of a DataLoader


def _plain_data():
    import torch
    from torch.utils.data import TensorDataset

    from tprm.science.data import DataSpec, load_data

    with tempfile.TemporaryDirectory() as cache:
        data = load_data(DataSpec(num_samples=2500), Path(cache))
        train, test = data.plain("train"), data.plain("test")
    return TensorDataset(*train), TensorDataset(*test), torch


def _net(torch, seed: int):
    from torch import nn

    torch.manual_seed(seed)
    layers, channels, length = [], 1, 40
    for _ in range(3):
        layers += [nn.Conv1d(channels, WIDTH, 5, stride=2, padding=2), nn.ReLU()]
        channels, length = WIDTH, (length - 1) // 2 + 1
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(WIDTH * length, 10))


def _fit(torch, model, train_set, settings: dict, seed: int, keep=None) -> dict:
    """SGD with momentum, LR x0.1 at 50% and 75% of the epochs; states at the `keep` epochs."""
    from torch.utils.data import DataLoader

    loader = (_tensor_batches(torch, train_set, seed) if LEAN else
              DataLoader(train_set, batch_size=BATCH, shuffle=True, drop_last=True,
                         generator=torch.Generator().manual_seed(seed)))
    opt = torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=0.9,
                          weight_decay=settings["weight_decay"])
    epochs = settings["epochs"]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [epochs // 2, epochs * 3 // 4], 0.1)
    states = {}
    for epoch in range(1, epochs + 1):
        model.train()
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        sched.step()
        if keep and epoch in keep:
            states[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
    return states


def _tensor_batches(torch, train_set, seed: int):
    """The lean side's batches: a fresh permutation per epoch, each batch one index into the tensors
    (no per-sample fetch and collation)."""
    x, y = train_set.tensors
    g = torch.Generator().manual_seed(seed)

    class Epochs:
        def __iter__(self):
            order = torch.randperm(len(y), generator=g)
            for i in range(0, len(y) - BATCH + 1, BATCH):
                yield x[order[i:i + BATCH]], y[order[i:i + BATCH]]
    return Epochs()


def _errors(torch, model, dataset) -> tuple[float, float]:
    from torch.utils.data import DataLoader

    model.eval()
    loss = wrong = 0.0
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=500):
            out = model(x)
            loss += torch.nn.functional.cross_entropy(out, y, reduction="sum").item()
            wrong += (out.argmax(1) != y).sum().item()
    return loss / len(dataset), wrong / len(dataset)


def _cka(torch, a, b) -> float:
    a, b = a - a.mean(0), b - b.mean(0)
    return float((b.T @ a).norm() ** 2 / ((a.T @ a).norm() * (b.T @ b).norm()))


def _pair(torch, models, train_set, test_set) -> dict:
    """LMC (11 points, train and test error and loss) and softmax CKA of two retrained models."""
    curve = []
    states = [m.state_dict() for m in models]
    probe = _net(torch, 0)
    for t in torch.linspace(0, 1, POINTS).tolist():
        probe.load_state_dict({k: (1 - t) * states[0][k] + t * states[1][k] for k in states[0]})
        curve.append((_errors(torch, probe, train_set), _errors(torch, probe, test_set)))
    errors = [c[0][1] for c in curve]
    mid = (errors[0] + errors[-1]) / 2
    mc = mid - max(errors, key=lambda e: abs(mid - e))
    x = train_set.tensors[0][:CKA_SAMPLES]
    with torch.no_grad():
        outs = [torch.softmax(m.eval()(x), 1).double() for m in models]
    return {"mc": mc, "cka": _cka(torch, *outs)}


def plain() -> None:
    """The quickstart grid the usual way (see the module docstring)."""
    train_set, test_set, torch = _plain_data()
    from torch.nn.utils import prune

    results = []
    for dense_seed in DENSE_SEEDS:
        checkpoints = _fit(torch, _net(torch, dense_seed), train_set, DENSE, dense_seed, CHECKPOINTS)
        for epoch in CHECKPOINTS:
            for density in DENSITIES:
                retrained = []
                for seed in RETRAIN_SEEDS:
                    model = _net(torch, 0)
                    model.load_state_dict(checkpoints[epoch])
                    for layer in model:
                        if isinstance(layer, torch.nn.Conv1d):
                            prune.l1_unstructured(layer, "weight", amount=1 - density)
                    _fit(torch, model, train_set, RETRAIN, 1000 + seed)
                    for layer in model:
                        if isinstance(layer, torch.nn.Conv1d):
                            prune.remove(layer, "weight")
                    retrained.append(model)
                results.append(_pair(torch, retrained, train_set, test_set))
    print(f"plain: {len(results)} cells, mean mc {statistics.mean(r['mc'] for r in results):+.3f}")


def _timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each side, alternating (default 3)")
    parser.add_argument("--plain", action="store_true", help="run the plain script once (a side)")
    parser.add_argument("--lean", action="store_true",
                        help="with --plain: tensor-index batches; without: also time that third side")
    parser.add_argument("--tprm", default=str(Path(sys.executable).with_name("tprm")),
                        help="the tprm console script")
    args = parser.parse_args()
    if args.plain:
        global LEAN
        LEAN = args.lean
        return plain()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    commands = {"tprm": [args.tprm, "run", "quickstart"], "plain": [sys.executable, __file__, "--plain"]}
    if args.lean:
        commands["plain-lean"] = [sys.executable, __file__, "--plain", "--lean"]
    times: dict[str, list[float]] = {side: [] for side in commands}
    for i in range(args.runs):
        for side, cmd in commands.items():
            load = os.getloadavg()[0]
            with tempfile.TemporaryDirectory() as home:
                seconds = _timed(cmd, dict(env, TPRM_HOME=home))
            times[side].append(seconds)
            print(f"run {i + 1} {side:10s} {seconds:7.1f} s  (load before {load:.2f})", flush=True)
    med = {side: statistics.median(v) for side, v in times.items()}
    print(f"\n| side | median wall s (of {args.runs}) | runs |\n| --- | --- | --- |")
    for side in sorted(commands, key=lambda s: s == "tprm"):
        print(f"| {side} | {med[side]:.1f} | {', '.join(f'{t:.1f}' for t in times[side])} |")
    for side in (s for s in commands if s != "tprm"):
        print(f"\nratio {side} / tprm = {med[side] / med['tprm']:.2f}x (> 1: tprm faster; bar: 2x against plain)")


if __name__ == "__main__":
    main()
