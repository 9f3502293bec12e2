"""The paper's workload (PreResNet-20 on CIFAR-10-format data): tprm vs an authors'-style baseline.

Baseline = what the authors' scripts do (benchmarks/speed_baseline.py): a torchvision CIFAR10 dataset
with PIL transforms, a DataLoader with worker processes, torch.optim.SGD, fp32, eager, one model at a
time; LMC point by point with update_bn. tprm = tprm.science (train, lmc, cka_outputs) on the same data
and device. Every row is measured in this one run; the table prints seconds and the ratio
baseline / tprm (> 1: tprm faster). Rows print as they finish and go to ``--rows-file`` (JSON lines).

    python benchmarks/paper_speed.py [--device cpu|cuda] [--small | --tiny] [--data ROOT]
        [--sections dense,retrain,machine,lmc,recipe] [--ks 1,8,32,64] [--retrain-batch 64]
        [--workers 4] [--lmc-workers N] [--mp-context spawn] [--threads 1] [--epoch-fraction 0.5]
        [--steps 20] [--channels-last auto|on|off] [--extras] [--rows-file ROWS.jsonl]

Sections (run in the order given): ``data`` (nothing measured: the data written and loaded), ``compiled`` (fused K = the largest K, eager fp32 vs
torch.compile), ``bf16`` (fused, fp32 vs bf16 NCHW / NHWC), ``grouped`` (vmap vs grouped convolutions
at every K > 1), ``dense`` (one dense epoch at batch 64 and 128 vs the baseline), ``retrain`` (K masked
retrains per model-epoch vs the baseline's one), ``machine`` (CPU: all cores), ``lmc`` (LMC 11 points +
CKA of one pair; batched vs point by point), ``recipe`` (`cifar10-preresnet20-epochs-quick`
extrapolated to 50,000 images from the dense / retrain / lmc rows). Default:
dense,retrain,machine,lmc,recipe (``--extras`` adds bf16,compiled). The compiled / bf16 / grouped
rows time ``--steps`` steps after a warm-up inside one training call (compilation and CUDA-graph
recording excluded), scaled to a model-epoch.

CPU defaults: 1 torch thread for both sides, DataLoader workers 0, tprm with channels_last inputs,
BatchNorm models retrained one by one (fusion_pays). Without --data it writes its own CIFAR-10-format
fake data: 50,000/10,000 images, --small 2,000/1,000 (the CPU size), --tiny 256/128 (a dry run).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tprm.science.data import DataSpec, TensorData, load_data
from tprm.science.metrics import cka_outputs, cka_pairs, lmc, lmc_pairs
from tprm.science.models import build_model, seeded
from tprm.science.prune import magnitude_masks, prunable_parameters
from tprm.science.train import Schedule, fusion_pays, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakedata import write_fake_cifar10  # noqa: E402 -- the tests' CIFAR-10-format writer
from speed_baseline import baseline_epoch, baseline_lmc_cka, loaders  # noqa: E402
from speed_table import append_row, row_line, table  # noqa: E402

DEFAULT_SECTIONS = "dense,retrain,machine,lmc,recipe"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


MODEL = {"width": 1.0}  # --width: a narrower PreResNet-20 makes a dry run of every path fast


def preresnet(seed: int, device: str):
    with seeded(seed):
        return build_model("preresnet", 10, (3, 32, 32), depth=20, width=MODEL["width"]).to(device)


def warm_data(data: TensorData) -> TensorData:
    """The same training split with a 256-image test split: warm-ups and step timings compile and run
    the step's shapes without paying a full test evaluation per model."""
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


@dataclass
class Bench:
    """One benchmark run: its settings, data, measured rows and the numbers later sections reuse."""

    args: argparse.Namespace
    device: str
    data: TensorData
    root: Path
    tmp: Path
    ks: list[int]
    rbatch: int
    workers: int
    opts: dict
    tag: str
    rows: list[dict] = field(default_factory=list)
    seen: dict = field(default_factory=dict)  # numbers of earlier sections (dense epoch, retrain, lmc)

    @property
    def cpu(self) -> bool:
        return self.device == "cpu"

    def row(self, name: str, base: float, ours: float, note: str = "") -> None:
        self.rows.append({"name": name, "base": base, "ours": ours, "note": note})
        append_row(self.args.rows_file, name, base, ours, note)
        print(row_line(name, base, ours, note), flush=True)

    def loaders(self, batch: int, augment: bool, workers: int | None = None, train_images: int | None = None):
        return loaders(self.root, self.data, batch, self.workers if workers is None else workers, augment,
                       self.args.mp_context, train_images)

    def retrain_steps(self) -> tuple[Schedule, float]:
        """The retrain slice (a fraction of an epoch) and the factor that scales it to an epoch."""
        per_epoch = self.data.n_train // self.rbatch
        steps = max(1, round(per_epoch * self.args.epoch_fraction))
        return Schedule(lr=0.1, batch_size=self.rbatch, iterations=steps), per_epoch / steps


def step_seconds(bench: Bench, k: int, **options) -> float:
    """Seconds per fused step of K masked PreResNet-20 retrains after a warm-up of a third of the steps
    (compilation, CUDA-graph recording, cuDNN autotuning) inside ONE training call: the progress
    callback synchronises the device at the warm-up's end and at the last step."""
    steps = max(3, bench.args.steps)
    warm = max(2, steps // 3)
    marks: dict[int, float] = {}
    models, masks = masked_models(k, bench.device)

    def progress(done: int, _total: int) -> None:
        if done in (warm * k, steps * k):
            sync(bench.device)
            marks[done] = time.perf_counter()

    s = Schedule(lr=0.1, batch_size=bench.rbatch, iterations=steps)
    train(models, warm_data(bench.data), [s] * k, list(range(k)), masks, progress=progress,
          **{**bench.opts, "fuse": "always", **options})
    return (marks[steps * k] - marks[warm * k]) / (steps - warm)


def per_model_epoch(bench: Bench, k: int, seconds_per_step: float) -> float:
    return seconds_per_step * (bench.data.n_train // bench.rbatch) / k


def section_compiled(bench: Bench) -> None:
    """Fused K = the largest K: eager float32 vs torch.compile (CUDA graphs on CUDA; a no-op elsewhere)."""
    k = max(bench.ks)
    eager = step_seconds(bench, k)
    compiled = step_seconds(bench, k, compile=True)
    bench.row(f"retrain K={k} fused, batch {bench.rbatch}: eager vs compiled (per model-epoch)",
              per_model_epoch(bench, k, eager), per_model_epoch(bench, k, compiled), "(ratio = compile gain)")


def section_bf16(bench: Bench) -> None:
    """Fused K = the largest K: float32 vs bf16 autocast, NCHW and NHWC inputs."""
    k = max(bench.ks)
    fp32 = per_model_epoch(bench, k, step_seconds(bench, k, channels_last=False))
    for label, cl in (("NCHW", False), ("NHWC", True)):
        ours = per_model_epoch(bench, k, step_seconds(bench, k, precision="bf16", channels_last=cl))
        bench.row(f"retrain K={k} fused, batch {bench.rbatch}: fp32 NCHW vs bf16 {label} (per model-epoch)",
                  fp32, ours, "(ratio = bf16 gain)")


def section_grouped(bench: Bench) -> None:
    """Every K > 1: K retrains fused through vmap vs as one wide grouped-convolution model (issue 26)."""
    for k in (k for k in bench.ks if k > 1):
        vmap = per_model_epoch(bench, k, step_seconds(bench, k, fuse="vmap"))
        grouped = per_model_epoch(bench, k, step_seconds(bench, k, fuse="grouped"))
        bench.row(f"retrain K={k}, batch {bench.rbatch}: vmap vs grouped conv (per model-epoch)", vmap, grouped,
                  "(ratio > 1: grouped faster)")


def section_dense(bench: Bench) -> None:
    """One dense epoch (train + test pass) at batch 64 and 128: the baseline vs tprm."""
    for batch in bench.args.dense_batches:
        tl, te = bench.loaders(batch, augment=True)
        base_model, ours = preresnet(0, bench.device), preresnet(0, bench.device)
        baseline_epoch(base_model, tl, te, bench.device, steps=3)  # warm-up (workers, kernels)
        t_base, _ = timed(lambda: baseline_epoch(base_model, tl, te, bench.device), bench.device)
        s = Schedule(lr=0.1, batch_size=batch, epochs=1)
        train([ours], warm_data(bench.data), [Schedule(lr=0.1, batch_size=batch, iterations=3)], [0], **bench.opts)
        t_ours, _ = timed(lambda: train([ours], bench.data, [s], [1], **bench.opts), bench.device)
        bench.seen.setdefault("dense_epoch", {})[batch] = (t_base, t_ours)
        bench.row(f"dense epoch, batch {batch}", t_base, t_ours)


def baseline_retrain(bench: Bench, threads: int | None = None) -> float:
    """The baseline's masked retrain, seconds per model-epoch (a measured slice scaled up)."""
    s, scale = bench.retrain_steps()
    tl, te = bench.loaders(bench.rbatch, augment=True)
    model, mask = masked_models(1, bench.device)
    if threads:
        torch.set_num_threads(threads)
    baseline_epoch(model[0], tl, te, bench.device, mask[0], steps=3)
    full = s.iterations == bench.data.n_train // bench.rbatch
    t, _ = timed(lambda: baseline_epoch(model[0], tl, te, bench.device, mask[0], steps=None if full else s.iterations),
                 bench.device)
    if threads:
        torch.set_num_threads(bench.args.threads or 1)
    return t * scale


def section_retrain(bench: Bench) -> None:
    """K masked retrains (fused where fusion pays), per model-epoch, against the baseline's one."""
    s, scale = bench.retrain_steps()
    base = bench.seen["retrain_base"] = baseline_retrain(bench)
    per_model = bench.seen.setdefault("retrain", {})
    smallest = min((k for k in bench.ks if k > 1), default=None)
    for k in bench.ks:
        models, masks = masked_models(k, bench.device)
        pays = fusion_pays(models, bench.device)
        w = k if pays else 1  # warm-up: the shapes that will run
        warm = Schedule(lr=0.1, batch_size=bench.rbatch, iterations=3)
        train([copy.deepcopy(m) for m in models[:w]], warm_data(bench.data), [warm] * w, list(range(w)), masks[:w],
              **bench.opts)
        t, _ = timed(lambda: train(models, bench.data, [s] * k, list(range(k)), masks, **bench.opts), bench.device)
        per_model[k] = t * scale / k
        how = "fused" if k > 1 and pays else "one by one"
        bench.row(f"retrain K={k} ({how}), batch {bench.rbatch}, per model-epoch", base, per_model[k])
        if k == smallest and pays:  # the smallest group only
            models, masks = masked_models(k, bench.device)
            t_loop, _ = timed(lambda: train(models, bench.data, [s] * k, list(range(k)), masks, fuse=False,
                                            **bench.opts), bench.device)
            bench.row(f"  K={k}: tprm one by one vs tprm fused (per model-epoch)", t_loop * scale / k, per_model[k],
                      "(ratio = fusion gain)")


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


def section_machine(bench: Bench) -> None:
    """CPU: K retrains with all cores, the baseline loop with a thread per core vs `--jobs <cores>`."""
    import multiprocessing

    cores = os.cpu_count() or 1
    k = max((k for k in bench.ks if k >= cores), default=None)
    if not bench.cpu or cores < 2 or not k:
        return
    s, scale = bench.retrain_steps()
    base = baseline_retrain(bench, threads=cores)
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(cores), ctx.Queue()
    shares = [len(part) for part in np.array_split(np.arange(k), cores)]
    procs = [ctx.Process(target=_machine_worker, args=(str(bench.root), str(bench.tmp / "cache"), sum(shares[:i]), n,
                                                       bench.rbatch, s.iterations, bench.opts, barrier, out))
             for i, n in enumerate(shares)]
    for proc in procs:
        proc.start()
    spans = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    bench.row(f"retrain K={k} on all {cores} cores (baseline loop {cores} threads; tprm --jobs {cores}, "
              f"1 thread each), per model-epoch", base, wall * scale / k)


def _trained_pair(bench: Bench, n: int = 2):
    models = [preresnet(seed, bench.device) for seed in range(n)]
    steps = 2 if bench.args.tiny else 20
    for seed, model in enumerate(models):  # a little training so the curve is not flat noise
        train([model], bench.data, [Schedule(lr=0.05, batch_size=64, iterations=steps)], [seed])
    return models


def section_lmc(bench: Bench) -> None:
    """LMC (11 points) + CKA of one pair: the baseline vs tprm (batched off the CPU), then tprm's two
    paths and a grid row of pairs sharing each batched pass."""
    cl, eval_batch, device = bench.opts["channels_last"], bench.opts["eval_batch_size"], bench.device
    a, b, c = _trained_pair(bench, 3)
    data = lmc_data(bench)
    workers = bench.args.lmc_workers
    bn_loader = bench.loaders(64, augment=False, workers=workers, train_images=data.n_train)[0]
    eval_train, eval_test = bench.loaders(256, augment=False, workers=workers, train_images=data.n_train)
    t_base, base_curve = timed(lambda: baseline_lmc_cka(a, b, bn_loader, eval_train, eval_test, device), device)

    def ours_lmc(batched=None):
        out = lmc(a, b, data, batched=batched, channels_last=cl, eval_batch_size=eval_batch)
        cka_outputs(a, b, data, channels_last=cl)
        return out

    batched = not bench.cpu or bench.args.tiny  # on the CPU batched is 2x slower (a dry run takes that path)
    t_ours, ours_curve = timed(lambda: ours_lmc(batched), device)
    bench.seen["lmc"] = (t_base, t_ours)
    diff = max(abs(u - v) for u, v in zip(base_curve, ours_curve["train_error"]))
    path = "batched" if batched else f"point by point, {bench.tag}"
    bench.row(f"LMC 11 points + CKA, one pair, {data.n_train} train images (tprm {path})", t_base, t_ours, f"(max |curve diff| {diff:.1e})")
    if not batched:  # a test proves the two paths equal
        return
    t_other, other_curve = timed(lambda: ours_lmc(False), device)
    diff = max(abs(u - v) for u, v in zip(other_curve["train_error"], ours_curve["train_error"]))
    bench.row("  LMC+CKA: tprm point-by-point vs tprm batched", t_other, t_ours, f"(max |curve diff| {diff:.1e})")
    row_pairs = [(0, 1), (0, 2), (1, 2)] * (1 if bench.args.tiny else 2)  # a grid row's pairs share each pass
    t_row, row_curves = timed(lambda: (lmc_pairs([a, b, c], row_pairs, data, eval_batch_size=eval_batch),
                                       cka_pairs([a, b, c], row_pairs, data))[0], device)
    diff = max(abs(u - v) for u, v in zip(row_curves[0]["train_error"], ours_curve["train_error"]))
    bench.row(f"  LMC+CKA per pair: one pair vs a grid row of {len(row_pairs)} pairs batched", t_ours,
              t_row / len(row_pairs), f"(max |curve diff| {diff:.1e})")


def lmc_data(bench: Bench) -> TensorData:
    """The LMC section's data: the first ``--lmc-images`` training images (all by default)."""
    n, d = bench.args.lmc_images, bench.data
    if not n or n >= d.n_train:
        return d
    return TensorData(d.name, d.x_train[:n], d.y_train[:n], d.x_test, d.y_test, d.num_classes, mean=d.mean,
                      std=d.std, crop_padding=d.crop_padding, flip=d.flip, dtype=d.dtype)


def section_recipe(bench: Bench) -> None:
    """`cifar10-preresnet20-epochs-quick` (one 40-epoch dense run, 40 retrainings of 20 epochs in one
    group, 20 pairs) extrapolated to 50,000 images from the rows measured before it."""
    retrain, lmc_times = bench.seen.get("retrain"), bench.seen.get("lmc")
    if not retrain or not lmc_times:
        print("  (recipe row skipped: it needs the retrain and lmc sections)", flush=True)
        return
    size = 50000 / bench.data.n_train
    if lmc_data(bench).n_train != bench.data.n_train:
        print("  (recipe row skipped: the lmc section ran on a subset, --lmc-images)", flush=True)
        return
    k_big = max(k for k in retrain if k <= 40)
    base_retrain = bench.seen["retrain_base"]
    base_dense, ours_dense = bench.seen.get("dense_epoch", {}).get(64, (base_retrain, retrain[min(retrain)]))
    base_total = size * (40 * base_dense + 800 * base_retrain + 20 * lmc_times[0])
    ours_total = size * (40 * ours_dense + 800 * retrain[k_big] + 20 * lmc_times[1])
    bench.row(f"epochs-quick recipe (extrapolated to 50k images, retrain K={k_big})", base_total, ours_total)


def section_data(bench: Bench) -> None:
    """Nothing measured: the data are written and loaded (gpu_check.sh does it first, under its own limit)."""
    print(f"  data ready: {bench.data.n_train}/{bench.data.n_test} images in {bench.root}", flush=True)


SECTIONS = {"data": section_data, "compiled": section_compiled, "bf16": section_bf16, "grouped": section_grouped,
            "dense": section_dense, "retrain": section_retrain, "machine": section_machine,
            "lmc": section_lmc, "recipe": section_recipe}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add("--small", action="store_true", help="2,000/1,000 images (the CPU size)")
    add("--tiny", action="store_true", help="256/128 images, K <= 2: a dry run of every path")
    add("--train", type=int, default=None, help="fake training images (overrides)")
    add("--data", default=None, help="a CIFAR-10 root (real data; fake data is written there when it has none)")
    add("--sections", default=None, help=f"comma-separated, in order (default {DEFAULT_SECTIONS})")
    add("--ks", default=None, help="retrain group sizes (default 1,8,32,64; CPU 1,8)")
    add("--retrain-batch", type=int, default=None, help="default 64 (CPU: 16)")
    add("--dense-batches", default="64,128", help="the dense section's batch sizes")
    add("--workers", type=int, default=None, help="DataLoader workers (default 4, CPU 0)")
    add("--lmc-workers", type=int, default=None, help="the LMC baseline's DataLoader workers (default --workers)")
    add("--lmc-images", type=int, default=None, help="the lmc section's training images (default: all)")
    add("--mp-context", default=None, choices=("fork", "spawn", "forkserver"),
        help="DataLoader workers' start method (default: the platform's)")
    add("--threads", type=int, default=None, help="torch threads (CPU default 1, as execution.threads)")
    add("--epoch-fraction", type=float, default=1.0,
        help="time this fraction of a retrain epoch and scale up (a short GPU slot)")
    add("--steps", type=int, default=30, help="steps of the compiled / bf16 / grouped timings (a third warm-up)")
    add("--channels-last", choices=("auto", "on", "off"), default="auto",
        help="tprm's input layout (auto: on for the CPU, where it pays 1.6x)")
    add("--eval-batch", type=int, default=None, help="tprm's evaluation batch (CPU 64, else 256)")
    add("--extras", action="store_true", help="also the bf16 and compiled sections (at the largest K)")
    add("--skip-dense", action="store_true")
    add("--no-machine", action="store_true", help="skip the CPU whole-machine section")
    add("--width", type=float, default=1.0, help="PreResNet-20's width factor (a dry run: 0.5)")
    add("--rows-file", default=None, help="append each row to this JSON-lines file as it is measured")
    return parser.parse_args()


def sections_of(args: argparse.Namespace) -> list[str]:
    names = (args.sections or DEFAULT_SECTIONS + (",bf16,compiled" if args.extras else "")).split(",")
    names = [n for n in names if not (n == "dense" and args.skip_dense) and not (n == "machine" and args.no_machine)]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise SystemExit(f"paper_speed.py: --sections: unknown {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    return names


def make_bench(args: argparse.Namespace, tmp: Path) -> Bench:
    device, cpu = args.device, args.device == "cpu"
    MODEL["width"] = args.width
    if args.threads or cpu:
        torch.set_num_threads(args.threads or 1)
    n_train = args.train or (256 if args.tiny else 2000 if args.small else 50000)
    n_test = max(n_train // 2, 100) if args.small or args.tiny or args.train else 10000
    root = Path(args.data) if args.data else tmp
    if not (root / "cifar-10-batches-py").exists():  # a --data folder without data: fake data written there
        write_fake_cifar10(root, n_train, n_test)
        print(f"fake CIFAR-10 data written: {n_train}/{n_test} images in {root}", flush=True)
    data = load_data(DataSpec(name="cifar10", root=str(root)), tmp / "cache", device=device)
    cl = args.channels_last == "on" or (args.channels_last == "auto" and cpu)
    # evaluation batch: on the CPU 64 NHWC images stay in cache (0.87 vs 1.15 ms per image at 256)
    opts = dict(channels_last=cl, eval_batch_size=args.eval_batch or (64 if cpu else 256))
    workers = args.workers if args.workers is not None else (0 if cpu else 4)
    args.lmc_workers = workers if args.lmc_workers is None else args.lmc_workers
    args.dense_batches = [int(b) for b in str(args.dense_batches).split(",")]
    ks = [int(k) for k in (args.ks or ("1,2" if args.tiny else "1,8" if cpu else "1,8,32,64")).split(",")]
    return Bench(args, device, data, root, tmp, ks, args.retrain_batch or (16 if cpu else 64), workers, opts,
                 "NHWC" if cl else "NCHW")


def main() -> None:
    args = parse_args()
    names = sections_of(args)
    with tempfile.TemporaryDirectory() as tmp:
        bench = make_bench(args, Path(tmp))
        name = torch.cuda.get_device_name(bench.device) if not bench.cpu else "cpu"
        print(f"device {bench.device} ({name}), threads {torch.get_num_threads()}, PreResNet-20 width {args.width}, "
              f"data {bench.data.n_train}/"
              f"{bench.data.n_test}, tprm fp32 {bench.tag}, eval batch {bench.opts['eval_batch_size']}, "
              f"sections {','.join(names)}", flush=True)
        for section in names:
            SECTIONS[section](bench)
    print()
    print(table(bench.rows, f"what ({bench.device}, {bench.data.n_train} train images, tprm fp32 {bench.tag})"))


if __name__ == "__main__":
    main()
