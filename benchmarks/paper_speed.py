"""The paper's workload (PreResNet-20 on CIFAR-10-format data): tprm vs an authors'-style baseline.

Baseline = what the authors' scripts do: a torchvision CIFAR10 dataset with PIL transforms (random
crop 32/pad 4, flip, ToTensor, Normalize), a DataLoader with worker processes, torch.optim.SGD
(lr 0.1, momentum 0.9, wd 1e-4), fp32, eager, one model at a time; LMC point by point with a
size-weighted BatchNorm update (update_bn) through DataLoaders. tprm = tprm.science (train, lmc,
cka_outputs) on the same data and device. Every row is measured in this one run; the table prints
seconds and the ratio baseline / tprm (> 1: tprm faster).

    python benchmarks/paper_speed.py [--device cpu|cuda] [--small | --tiny] [--data ROOT]
        [--ks 1,8,32,64] [--retrain-batch 64] [--workers 4] [--threads 1] [--epoch-fraction 0.5]
        [--channels-last auto|on|off] [--extras]

CPU defaults: 1 torch thread for both sides (the recipes' execution.threads default; 2 threads on 2
shared cores collapse when another process runs), DataLoader workers 0 (workers only compete for the
2 cores), tprm with channels_last inputs (the CPU's fast layout for 2-D convolutions, 1.6x), BatchNorm
models retrained one by one (fusion_pays: vmapped convolutions are slower on the CPU).
Without --data it writes its own CIFAR-10-format fake data: 50,000/10,000 images, or with --small
2,000/1,000 (the CPU size), --tiny 256/128 (a dry run of every code path). Section 4 extrapolates
`cifar10-preresnet20-epochs-quick` (one 40-epoch dense run, 40 retrainings of 20 epochs in one
group, 20 pairs) from the measured slices to 50,000 images.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tprm.science.data import DataSpec, TensorData, load_data
from tprm.science.metrics import cka_outputs, cka_pairs, lmc, lmc_pairs
from tprm.science.models import build_model, seeded
from tprm.science.prune import magnitude_masks, prunable_parameters
from tprm.science.train import Schedule, fusion_pays, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakedata import write_fake_cifar10  # noqa: E402 -- the tests' CIFAR-10-format writer


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def preresnet(seed: int, device: str):
    with seeded(seed):
        return build_model("preresnet", 10, (3, 32, 32), depth=20).to(device)


# --- the authors'-style baseline -----------------------------------------------------------------------


def loaders(root: Path, data: TensorData, batch: int, workers: int, augment: bool):
    from torchvision import datasets, transforms

    class FakeOk(datasets.CIFAR10):  # fake data has no official checksums
        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            self.classes = [f"c{i}" for i in range(10)]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    plain = [transforms.ToTensor(), transforms.Normalize(data.mean, data.std)]  # tprm's (the paper's) statistics
    aug = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if augment else []
    train_set = FakeOk(str(root), train=True, transform=transforms.Compose(aug + plain))
    test_set = FakeOk(str(root), train=False, transform=transforms.Compose(plain))
    kw = dict(num_workers=workers, persistent_workers=workers > 0, pin_memory=False)
    return (torch.utils.data.DataLoader(train_set, batch_size=batch, shuffle=augment, **kw),
            torch.utils.data.DataLoader(test_set, batch_size=256 if augment else batch, **kw))


def baseline_epoch(model, train_loader, test_loader, device: str, masks=None, steps: int | None = None) -> None:
    """One epoch as the authors' train loop (+ mask re-applied after each step) and a test pass
    (``steps``: only the first steps of the epoch)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    params = dict(model.named_parameters())
    model.train()
    for i, (x, y) in enumerate(train_loader):
        if steps is not None and i == steps:
            break
        x, y = x.to(device), y.to(device)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if masks:
            with torch.no_grad():
                for name, m in masks.items():
                    params[name].mul_(m)
    baseline_eval(model, test_loader, device)


def baseline_eval(model, loader, device: str) -> tuple[float, float]:
    model.eval()
    loss = wrong = n = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss += float(F.cross_entropy(out, y, reduction="sum"))
            wrong += int((out.argmax(1) != y).sum())
            n += len(y)
    return loss / n, wrong / n


def baseline_lmc_cka(a, b, bn_loader, eval_train, eval_test, device: str, points: int = 11) -> list[float]:
    """Point-by-point LMC (update_bn with momentum b/(n+b)) + CKA of softmax outputs, authors' style."""
    errors = []
    for i in range(points):
        t = i / (points - 1)
        model = copy.deepcopy(a)
        with torch.no_grad():
            for p, pa, pb in zip(model.parameters(), a.parameters(), b.parameters()):
                p.copy_((1 - t) * pa + t * pb)
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for m in bns:
            m.reset_running_stats()
        model.train()
        seen = 0
        with torch.no_grad():
            for x, _ in bn_loader:
                for m in bns:
                    m.momentum = len(x) / (seen + len(x))
                model(x.to(device))
                seen += len(x)
        errors.append(baseline_eval(model, eval_train, device)[1])
        baseline_eval(model, eval_test, device)
    outs = []
    for model in (a, b):
        model.eval()
        with torch.no_grad():
            chunks = [torch.softmax(model(x.to(device)), 1) for x, _ in eval_train]
        outs.append(torch.cat(chunks)[:6400].double().cpu())
    x, y = (o - o.mean(0) for o in outs)
    _ = (y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm())
    return errors


# --- tprm ------------------------------------------------------------------------------------------------


def warm_data(data: TensorData) -> TensorData:
    """The same training split with a 256-image test split: warm-ups compile the step's shapes
    without paying a full test evaluation per model."""
    return TensorData(data.name, data.x_train, data.y_train, data.x_test[:256], data.y_test[:256],
                      data.num_classes, mean=data.mean, std=data.std, crop_padding=data.crop_padding,
                      flip=data.flip, dtype=data.dtype)


def masked_models(k: int, device: str, first: int = 0):
    models, masks = [], []
    for i in range(first, first + k):
        model = preresnet(i, device)
        masks.append(magnitude_masks(model, 0.2, prunable_parameters(model)))
        models.append(model)
    return models, masks


def _machine_worker(root: str, cache: str, first: int, k: int, batch: int, steps: int, opts: dict,
                    barrier, out) -> None:
    """One `tprm run --jobs N` worker (execution.threads 1): its share of the K retrains, one by one."""
    torch.set_num_threads(1)
    data = load_data(DataSpec(name="cifar10", root=root), Path(cache), device="cpu")
    models, masks = masked_models(k, "cpu", first)
    train([copy.deepcopy(models[0])], warm_data(data), [Schedule(lr=0.1, batch_size=batch, iterations=3)],
          [first], masks[:1], **opts)
    barrier.wait()  # every worker starts training at the same moment
    start = time.time()
    train(models, data, [Schedule(lr=0.1, batch_size=batch, iterations=steps)] * k,
          list(range(first, first + k)), masks, **opts)
    out.put((start, time.time()))


def whole_machine(root: Path, cache: Path, k: int, cores: int, batch: int, steps: int, opts: dict) -> float:
    """Wall seconds of K retrains spread over `cores` worker processes of one thread each."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(cores), ctx.Queue()
    shares = [len(part) for part in np.array_split(np.arange(k), cores)]
    procs = [ctx.Process(target=_machine_worker, args=(str(root), str(cache), sum(shares[:i]), n, batch, steps,
                                                       opts, barrier, out)) for i, n in enumerate(shares)]
    for proc in procs:
        proc.start()
    spans = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    return max(end for _, end in spans) - min(start for start, _ in spans)


def grouped_vs_vmap(row, k: int, device: str, data, schedule, scale: float, opts: dict) -> None:
    """One row: K masked PreResNet-20 retrains fused through vmap against the same K as one wide
    grouped-convolution model (tprm.science.grouped), per model-epoch; ratio > 1: grouped faster."""
    seconds = {}
    for form in ("vmap", "grouped"):
        models, masks = masked_models(k, device)
        run_opts = dict(opts, fuse=form)
        warm = Schedule(lr=0.1, batch_size=schedule.batch_size, iterations=3)
        train([copy.deepcopy(m) for m in models], warm_data(data), [warm] * k, list(range(k)), masks,
              **run_opts)  # warm-up: the shapes that will run
        seconds[form], _ = timed(lambda: train(models, data, [schedule] * k, list(range(k)), masks, **run_opts),
                                 device)
    row(f"  K={k}: vmap vs grouped conv (per model-epoch)", seconds["vmap"] * scale / k,
        seconds["grouped"] * scale / k, "(ratio > 1: grouped faster)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="2,000/1,000 images (the CPU size)")
    parser.add_argument("--tiny", action="store_true", help="256/128 images, K <= 2: a dry run of every path")
    parser.add_argument("--train", type=int, default=None, help="fake training images (overrides)")
    parser.add_argument("--data", default=None, help="a real CIFAR-10 root instead of fake data")
    parser.add_argument("--ks", default=None, help="retrain group sizes (default 1,8,32,64; CPU 1,8)")
    parser.add_argument("--retrain-batch", type=int, default=None, help="default 64 (CPU: 16)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 4, CPU 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU default 1, as execution.threads)")
    parser.add_argument("--epoch-fraction", type=float, default=1.0,
                        help="time this fraction of a retrain epoch and scale up (a short GPU slot)")
    parser.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                        help="tprm's input layout (auto: on for the CPU, where it pays 1.6x)")
    parser.add_argument("--eval-batch", type=int, default=None, help="tprm's evaluation batch (CPU 64, else 256)")
    parser.add_argument("--extras", action="store_true", help="also bf16 (+ compile on CUDA) rows at the largest K")
    parser.add_argument("--skip-dense", action="store_true")
    parser.add_argument("--no-machine", action="store_true",
                        help="skip the CPU whole-machine row (all cores: a threaded loop vs --jobs <cores>)")
    args = parser.parse_args()
    device, cpu = args.device, args.device == "cpu"
    if args.threads or cpu:
        torch.set_num_threads(args.threads or 1)
    ks = [int(k) for k in (args.ks or ("1,2" if args.tiny else "1,8" if cpu else "1,8,32,64")).split(",")]
    rbatch = args.retrain_batch or (16 if cpu else 64)
    workers = args.workers if args.workers is not None else (0 if cpu else 4)
    n_train = args.train or (256 if args.tiny else 2000 if args.small else 50000)
    n_test = max(n_train // 2, 100) if args.small or args.tiny or args.train else 10000
    cl = args.channels_last == "on" or (args.channels_last == "auto" and cpu)
    # evaluation batch: on the CPU 64 NHWC images stay in cache (0.87 vs 1.15 ms per image at 256)
    eval_batch = args.eval_batch or (64 if cpu else 256)
    opts = dict(channels_last=cl, eval_batch_size=eval_batch)
    tag = "NHWC" if cl else "NCHW"
    rows: list[tuple[str, float, float, str]] = []

    def row(name: str, base: float, ours: float, note: str = "") -> None:
        rows.append((name, base, ours, note))
        print(f"  {name}: baseline {base:.2f} s, tprm {ours:.2f} s, ratio {base / ours:.2f} {note}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data) if args.data else Path(tmp)
        if not args.data:
            write_fake_cifar10(root, n_train, n_test)
        data = load_data(DataSpec(name="cifar10", root=str(root)), Path(tmp) / "cache", device=device)
        print(f"device {device} ({torch.cuda.get_device_name(device) if not cpu else 'cpu'}), threads "
              f"{torch.get_num_threads()}, data {data.n_train}/{data.n_test}, tprm fp32 {tag}, eval batch "
              f"{eval_batch}", flush=True)
        warm = Schedule(lr=0.1, batch_size=rbatch, iterations=3)

        # 1. one dense epoch
        dense_epoch = {}
        for batch in ([] if args.skip_dense else [64, 128]):
            tl, te = loaders(root, data, batch, workers, augment=True)
            base_model, ours = preresnet(0, device), preresnet(0, device)
            baseline_epoch(base_model, tl, te, device, steps=3)  # warm-up (workers, kernels)
            t_base, _ = timed(lambda: baseline_epoch(base_model, tl, te, device), device)
            s = Schedule(lr=0.1, batch_size=batch, epochs=1)
            train([ours], warm_data(data), [Schedule(lr=0.1, batch_size=batch, iterations=3)], [0], **opts)
            t_ours, _ = timed(lambda: train([ours], data, [s], [1], **opts), device)
            dense_epoch[batch] = (t_base, t_ours)
            row(f"dense epoch, batch {batch}", t_base, t_ours)

        # 2. K masked retrains, time per model-epoch (optionally a measured fraction of an epoch)
        per_epoch = data.n_train // rbatch
        steps = max(1, round(per_epoch * args.epoch_fraction))
        scale = per_epoch / steps
        s = Schedule(lr=0.1, batch_size=rbatch, iterations=steps)
        tl, te = loaders(root, data, rbatch, workers, augment=True)
        base_model, base_mask = masked_models(1, device)
        baseline_epoch(base_model[0], tl, te, device, base_mask[0], steps=3)
        t_base_retrain, _ = timed(lambda: baseline_epoch(base_model[0], tl, te, device, base_mask[0],
                                                         steps=None if steps == per_epoch else steps), device)
        t_base_retrain *= scale
        per_model: dict[int, float] = {}
        for k in ks:
            models, masks = masked_models(k, device)
            w = k if fusion_pays(models, device) else 1  # warm-up: the shapes that will run
            train([copy.deepcopy(m) for m in models[:w]], warm_data(data), [warm] * w, list(range(w)), masks[:w],
                  **opts)
            t_fused, _ = timed(lambda: train(models, data, [s] * k, list(range(k)), masks, **opts), device)
            per_model[k] = t_fused * scale / k
            how = "fused" if k > 1 and fusion_pays(models, device) else "one by one"
            row(f"retrain K={k} ({how}), batch {rbatch}, per model-epoch", t_base_retrain, per_model[k])
            smallest = min((k for k in ks if k > 1), default=None)
            if k == smallest and fusion_pays(models, device):  # the smallest group only
                models, masks = masked_models(k, device)
                t_loop, _ = timed(lambda: train(models, data, [s] * k, list(range(k)), masks, fuse=False, **opts),
                                  device)
                row(f"  K={k}: tprm one by one vs tprm fused (per model-epoch)", t_loop * scale / k, per_model[k],
                    "(ratio = fusion gain)")
            if k > 1:  # issue 26: the two fused forms, forced, on this device
                grouped_vs_vmap(row, k, device, data, s, scale, opts)

        # 2b. the whole machine (CPU): the loop with a thread per core against `tprm run --jobs <cores>`
        cores = os.cpu_count() or 1
        k_machine = max((k for k in ks if k >= cores), default=None)
        if cpu and cores > 1 and k_machine and not args.no_machine:
            torch.set_num_threads(cores)
            baseline_epoch(base_model[0], tl, te, device, base_mask[0], steps=3)
            t_base_all, _ = timed(lambda: baseline_epoch(base_model[0], tl, te, device, base_mask[0],
                                                         steps=None if steps == per_epoch else steps), device)
            torch.set_num_threads(args.threads or 1)
            t_all = whole_machine(root, Path(tmp) / "cache", k_machine, cores, rbatch, steps, opts)
            row(f"retrain K={k_machine} on all {cores} cores (baseline loop {cores} threads; tprm --jobs {cores}, "
                f"1 thread each), per model-epoch", t_base_all * scale, t_all * scale / k_machine)

        # 3. LMC (11 points) + CKA of one pair
        a, b = preresnet(0, device), preresnet(1, device)
        for model, seed in ((a, 0), (b, 1)):  # a little training so the curve is not flat noise
            train([model], data, [Schedule(lr=0.05, batch_size=64, iterations=20)], [seed])
        bn_loader = loaders(root, data, 64, workers, augment=False)[0]
        eval_train, eval_test = loaders(root, data, 256, workers, augment=False)
        t_base, base_curve = timed(lambda: baseline_lmc_cka(a, b, bn_loader, eval_train, eval_test, device),
                                   device)

        def ours_lmc(batched=None):
            out = lmc(a, b, data, batched=batched, channels_last=cl, eval_batch_size=eval_batch)
            cka_outputs(a, b, data, channels_last=cl)
            return out

        t_ours, ours_curve = timed(ours_lmc, device)
        diff = max(abs(u - v) for u, v in zip(base_curve, ours_curve["train_error"]))
        path = "batched" if device != "cpu" else f"point by point, {tag}"
        row(f"LMC 11 points + CKA, one pair (tprm {path})", t_base, t_ours, f"(max |curve diff| {diff:.1e})")
        if not cpu or args.tiny:  # on the CPU batched is 2x slower (grouped convolutions); a test proves it equal
            t_other, other_curve = timed(lambda: ours_lmc(False), device)
            diff = max(abs(u - v) for u, v in zip(other_curve["train_error"], ours_curve["train_error"]))
            row("  LMC+CKA: tprm point-by-point vs tprm batched", t_other, t_ours, f"(max |curve diff| {diff:.1e})")
            # the pairs of a grid row (one model and data set) share each batched pass
            c = preresnet(2, device)
            train([c], data, [Schedule(lr=0.05, batch_size=64, iterations=20)], [2])
            row_pairs = [(0, 1), (0, 2), (1, 2)] * 2
            t_row, row_curves = timed(lambda: (lmc_pairs([a, b, c], row_pairs, data, eval_batch_size=eval_batch),
                                               cka_pairs([a, b, c], row_pairs, data))[0], device)
            diff = max(abs(u - v) for u, v in zip(row_curves[0]["train_error"], ours_curve["train_error"]))
            row(f"  LMC+CKA per pair: one pair vs a grid row of {len(row_pairs)} pairs batched", t_ours,
                t_row / len(row_pairs), f"(max |curve diff| {diff:.1e})")

        # 4. cifar10-preresnet20-epochs-quick, extrapolated to full size
        size = 50000 / data.n_train
        k_big = max(k for k in ks if k <= 40)
        base_dense = dense_epoch.get(64, (t_base_retrain, t_base_retrain))[0]
        ours_dense = dense_epoch.get(64, (per_model[1], per_model[1]))[1]
        base_total = size * (40 * base_dense + 800 * t_base_retrain + 20 * t_base)
        ours_total = size * (40 * ours_dense + 800 * per_model[k_big] + 20 * t_ours)
        row(f"epochs-quick recipe (extrapolated to 50k images, retrain K={k_big})", base_total, ours_total)

        # 5. execution options (CUDA): bf16 autocast, CUDA graphs, at K = 1 and the largest K
        if args.extras:
            variants = [("bf16 NCHW", dict(precision="bf16", channels_last=False)),
                        ("bf16 NHWC", dict(precision="bf16", channels_last=True))]
            if not cpu:  # compile acts on CUDA only
                variants.append(("compiled", dict(compile=True)))
            for label, extra in variants:
                extra = {**opts, **extra}
                for k in sorted({1, max(ks)}) if not cpu else [max(ks)]:
                    models, masks = masked_models(k, device)
                    w = k if fusion_pays(models, device) else 1
                    train([copy.deepcopy(m) for m in models[:w]], warm_data(data), [warm] * w, list(range(w)),
                          masks[:w], **extra)
                    t_opt, _ = timed(lambda: train(models, data, [s] * k, list(range(k)), masks, **extra), device)
                    row(f"retrain K={k}, {label}, per model-epoch", t_base_retrain, t_opt * scale / k)

    print(f"\n| what ({device}, {data.n_train} train images, tprm fp32 {tag}) | baseline s | tprm s | ratio |")
    print("| --- | --- | --- | --- |")
    for name, base, ours, note in rows:
        print(f"| {name} {note} | {base:.2f} | {ours:.2f} | {base / ours:.2f} |")


if __name__ == "__main__":
    main()
