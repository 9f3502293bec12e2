"""Execute a group of compatible jobs on this machine (in a thread or a spawned worker process).

A worker never opens the database: it reads its inputs from artifact files, writes its outputs
as artifact files (atomically) and returns small result dicts that the runner records. A group of
dense or retrain jobs with the same architecture, data and batch schedule is trained as ONE fused
computation (`tprm.science.train.train`); each job still gets its own artifacts and result.
"""

from __future__ import annotations

import json
import platform
import resource
import socket
import time
import traceback
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import torch

import tprm
from tprm.engine import rundir
from tprm.engine.artifacts import ArtifactError, Artifacts
from tprm.engine.cpumemory import keep_freed_memory
from tprm.engine.cputhreads import ThreadGovernor
from tprm.engine.modelimport import search_path
from tprm.engine.plan import JobSpec, PruneSpec

# The dtype models and data are held in per execution.precision (bf16: float32 master weights, autocast)
RESUME = "resume"  # the artifact name of a training job's resumable state (removed when the job is done)
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bf16": torch.float32}


class Cancelled(Exception):
    """Raised inside a job's progress callback when its run was asked to stop."""


def resolve_device(device: str, worker_index: int = 0) -> str:
    """`auto` -> a GPU when there is one (round-robin over GPUs by worker index), else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return f"cuda:{worker_index % torch.cuda.device_count()}"
        return "cpu"
    if device == "cuda" and torch.cuda.is_available():
        return f"cuda:{worker_index % torch.cuda.device_count()}"
    return device


class Progress:
    """Throttled progress reporter: writes a small JSON file the runner and the TUI read (and
    hands the same payload to `sink` when set, e.g. a Ray actor), and raises Cancelled when the
    run's cancel file appears or `stop` says so (a Ray task: the driver's request, via its actor)."""

    sink: Callable[[dict], None] | None = None
    stop: Callable[[], bool] | None = None
    governor: ThreadGovernor | None = None  # execution.threads: auto re-measures the machine here

    def __init__(self, path: Path | None, cancel_path: Path | None, label: str, hashes: list[str]):
        self.path, self.cancel_path = path, cancel_path
        self.label, self.hashes = label, hashes
        self.started = time.time()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.governor is not None:
            self.governor.tick()
        now = time.time()
        if now - self._last < 0.5 and done < total:
            return
        self._last = now
        if (self.cancel_path is not None and self.cancel_path.exists()) or (self.stop is not None and self.stop()):
            raise Cancelled("cancelled by request")
        payload = {"label": self.label, "hashes": self.hashes, "done": done, "total": total,
                   "started": self.started, "updated": now}
        if self.sink is not None:
            self.sink(payload)
        if self.path is not None:
            rundir.write_progress(self.path, payload)


class JobLogs:
    """Appends timestamped lines to each job's log file as the job runs (start, every epoch's
    loss and error), so `tprm logs` and the TUI show a running job, not only a finished one."""

    def __init__(self, artifacts: Artifacts | None, jobs: list[dict]):
        self.paths = [artifacts.log_path(j["hash"]) for j in jobs] if artifacts else []
        self.labels = [j["label"] for j in jobs]

    def write(self, k: int, text: str, stamp: str = "%Y-%m-%d %H:%M:%S") -> None:
        if k < len(self.paths):
            with open(self.paths[k], "a") as fh:
                fh.write(f"{time.strftime(stamp)} {text}\n")

    def epoch(self, k: int, row: dict) -> None:
        """One short line (fits an 80-column log pane): the day is on the job's start line."""
        def f(key: str) -> str:
            v = row.get(key)
            return "-" if v is None else f"{v:.4f}"
        self.write(k, f"epoch {row['epoch']}: train loss {f('train_loss')} err {f('train_error')}"
                      f", test loss {f('test_loss')} err {f('test_error')}", stamp="%H:%M:%S")


_DATA_CACHE: dict = {}


def _data(spec: JobSpec, store_root: Path, device: str, logs: JobLogs | None = None):
    """The job's data (one loaded set cached per process); the job logs say when its files are
    not the official ones."""
    from tprm.science.data import DataSpec, load_data

    fields = dict(spec.data)
    for key in ("mean", "std"):
        if fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    if fields.get("root") is None:
        fields["root"] = str(store_root / "data")
    dtype = DTYPES[spec.precision]
    cache_key = (json.dumps(fields, sort_keys=True, default=str), device, str(dtype))
    if cache_key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[cache_key] = load_data(DataSpec(**fields), store_root / "cache", device=device,
                                           dtype=dtype)
    data = _DATA_CACHE[cache_key]
    if logs is not None and data.files_note:
        for k in range(len(logs.labels)):
            logs.write(k, f"data: {data.files_note}")
    return data


def _model(spec: JobSpec, data, seed: int, device: str):
    from tprm.science.models import build_model, load_factory, seeded

    m = spec.model
    with seeded(seed):
        if m.get("import"):
            model = load_factory(m["import"])(num_classes=data.num_classes,
                                              input_shape=data.input_shape, **m["kwargs"])
        else:
            model = build_model(m["name"], data.num_classes, data.input_shape, **m["kwargs"])
    return model.to(device=device, dtype=DTYPES[spec.precision])


def model_for(spec: JobSpec, data, device: str = "cpu"):
    """A fresh model of the job's architecture (init seed 0); ``data`` may be a DataSpec: only its
    ``num_classes`` and ``input_shape`` are read (the runner sizes groups without loading data)."""
    return _model(spec, data, 0, device)


def _cpu(state: dict) -> dict:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _mean_last(values: list[float], n: int) -> float:
    tail = [v for v in values[-n:] if v is not None]
    return float(sum(tail) / len(tail)) if tail else float("nan")


def _train_options(spec: JobSpec, ctx: dict) -> dict:
    """train()'s execution options: precision and channels_last from the spec (they are in the job
    key), compile from the run (CUDA only, a no-op elsewhere; not in the key, like the device)."""
    return {"precision": spec.precision, "channels_last": spec.channels_last,
            "compile": bool(ctx.get("compile", False))}


def _resume_for(jobs: list[dict], ctx: dict):
    """The resumable states of a training group, kept with each job's artifacts (None when
    execution.resume_every is 0): loaded if a stopped run left them, written as the science layer
    decides (tprm.science.resumestate: every resume_every minutes, and on cancel when worth it)."""
    every = float(ctx.get("resume_every") or 0)
    if every <= 0:
        return None
    from tprm.science.resumestate import Resume, ResumeFiles

    art, logs, hashes = ctx["artifacts"], ctx["logs"], [j["hash"] for j in jobs]

    def load(k: int):
        if not art.exists(hashes[k], RESUME):
            return None
        try:
            state = art.load(hashes[k], RESUME, map_location="cpu")
        except ArtifactError as exc:  # a damaged state is no reason to fail: train from the start
            logs.write(k, f"resumable state ignored: {exc}")
            return None
        logs.write(k, f"found a resumable state at step {state.get('step')}")
        return state

    def save(k: int, state) -> None:
        art.save(hashes[k], RESUME, state)
        logs.write(k, f"resumable state saved at step {state['step']}", stamp="%H:%M:%S")

    return Resume(ResumeFiles(load, save, every * 60.0))


def _done_with_resume(jobs: list[dict], ctx: dict) -> None:
    """The group's outputs are written: its resumable states are no longer needed."""
    for job in jobs:
        ctx["artifacts"].remove(job["hash"], RESUME)


def _run_dense(jobs, ctx, progress):
    from tprm.science.train import train

    spec0 = jobs[0]["spec"]
    data = _data(spec0, ctx["store_root"], ctx["device"], ctx.get("logs"))
    models = []
    for job in jobs:
        model = _model(job["spec"], data, job["spec"].seed, ctx["device"])
        init_path = (job.get("runtime") or {}).get("init_path")
        if init_path:
            model.load_state_dict(torch.load(init_path, map_location=ctx["device"],
                                             weights_only=True))
        models.append(model)
    checkpoints = sorted({e for e in spec0.checkpoints if e > 0})
    results = train(models, data, [j["spec"].schedule.to_science() for j in jobs],
                    [j["spec"].seed for j in jobs], checkpoint_epochs=checkpoints,
                    fuse=ctx["fuse"], progress=progress, on_epoch=ctx["logs"].epoch,
                    resume=_resume_for(jobs, ctx), **_train_options(spec0, ctx))
    out = []
    for job, res in zip(jobs, results):
        states = {int(e): _cpu(s) for e, s in res.checkpoints.items()}
        if -1 in job["spec"].checkpoints:
            states[-1] = _cpu(res.state)
        ctx["artifacts"].save(job["hash"], "checkpoints", states)
        ctx["artifacts"].save(job["hash"], "curves", res.curves)
        curves = res.curves
        by_epoch = {int(e): i for i, e in enumerate(curves["epoch"])}
        summary = {}
        for e in job["spec"].checkpoints:
            i = by_epoch.get(e, len(curves["epoch"]) - 1) if e != -1 else len(curves["epoch"]) - 1
            if i < 0:
                continue
            summary[str(e)] = {k: curves[k][i] for k in ("test_error", "test_loss", "train_loss",
                                                         "train_error")}
        out.append(_result(job, "diverged" if res.diverged else "done",
                           {"checkpoints": summary, "diverged_at": res.diverged_at}))
    _done_with_resume(jobs, ctx)
    return out


def _one_by_one(measure):
    """A group runner for cheap jobs: each in turn, with progress per job."""
    def run(jobs, ctx, progress):
        out = []
        for i, job in enumerate(jobs):
            data = _data(job["spec"], ctx["store_root"], ctx["device"], ctx.get("logs") if i == 0 else None)
            out.append(_result(job, "done", measure(job, job["spec"], data, ctx)))
            progress(i + 1, len(jobs))
        return out
    return run


@_one_by_one
def _run_prune(job, spec, data, ctx):
    from tprm.science import prune
    from tprm.science.pruning_methods import METHODS, PruneSettings

    model = _model(spec, data, spec.seed, ctx["device"])
    model.load_state_dict(ctx["artifacts"].load(spec.dense, "checkpoints")[spec.epoch])
    p = spec.pruning
    params = prune.prunable_parameters(model, p["layers"], p.get("keep_dense"))
    settings = PruneSettings(scope=p["scope"], seed=spec.seed, rounds=p.get("rounds", 1),
                             schedule=p["schedule"].to_science() if "schedule" in p else None)
    masks = METHODS[p["method"]].masks(model, data, spec.density, params, settings)
    prune.apply_masks(model, masks)
    ctx["artifacts"].save(job["hash"], "pruned", {"state": _cpu(model.state_dict()),
                                                  "masks": {k: v.cpu() for k, v in masks.items()}})
    return prune.density_report(model, masks)


def _run_retrain(jobs, ctx, progress):
    from tprm.science.train import train

    spec0 = jobs[0]["spec"]
    data = _data(spec0, ctx["store_root"], ctx["device"], ctx.get("logs"))
    models, masks = [], []
    for job in jobs:
        pruned = ctx["artifacts"].load(job["spec"].pruned, "pruned")
        model = _model(job["spec"], data, 0, ctx["device"])
        model.load_state_dict(pruned["state"])
        models.append(model)
        masks.append({k: v.to(ctx["device"]) for k, v in pruned["masks"].items()})
    results = train(models, data, [j["spec"].schedule.to_science() for j in jobs],
                    [j["spec"].seed for j in jobs], masks, fuse=ctx["fuse"], progress=progress,
                    on_epoch=ctx["logs"].epoch, resume=_resume_for(jobs, ctx), **_train_options(spec0, ctx))
    out = []
    for job, res in zip(jobs, results):
        ctx["artifacts"].save(job["hash"], "model", _cpu(res.state))
        ctx["artifacts"].save(job["hash"], "curves", res.curves)
        n = job["spec"].last_epochs
        c = res.curves
        summary = {k: _mean_last(c[k], n) for k in ("test_error", "test_loss", "train_loss",
                                                    "train_error")}
        summary.update({f"final_{k}": (c[k][-1] if c[k] else None)
                        for k in ("test_error", "train_loss")})
        summary["diverged_at"] = res.diverged_at
        out.append(_result(job, "diverged" if res.diverged else "done", summary))
    _done_with_resume(jobs, ctx)
    return out


def _load_trained(job_hash, spec, data, ctx):
    model = _model(spec, data, 0, ctx["device"])
    model.load_state_dict(ctx["artifacts"].load(job_hash, "model"))
    return model


def _mean(xs: list[float]) -> float:
    return float(sum(xs) / len(xs))


def _run_pairs(jobs: list[dict], ctx: dict, progress: Callable) -> list[dict]:
    """LMC and CKA of every pair of every job. Batched, the pairs of consecutive jobs with the same
    settings (a grid row: one model and data set) share each vmapped pass, up to LMC_BATCHED_POINTS
    points: on an accelerator, with fuse "always", and on the CPU for nets without BatchNorm (where
    ``metrics.lmc_pairs`` decides); fuse false measures job after job, pair after pair."""
    from tprm.science.metrics import LMC_BATCHED_POINTS

    batched = True if ctx["fuse"] == "always" or not str(ctx["device"]).startswith("cpu") else (
        None if ctx["fuse"] else False)
    budget = 0 if batched is False else LMC_BATCHED_POINTS
    out: list[dict] = []
    for chunk in _pair_chunks(jobs, budget):
        out += _measure_pairs(chunk, ctx, batched, budget)
        progress(len(out), len(jobs))
    return out


def _pair_chunks(jobs: list[dict], budget: int):
    """Consecutive jobs (one group: the same model, data and measurement settings), whole jobs, at
    most `budget` points (one job at least)."""
    chunk: list[dict] = []
    used = 0
    for job in jobs:
        cost = len(job["spec"].pairs) * job["spec"].lmc["points"]
        if chunk and used + cost > budget:
            yield chunk
            chunk, used = [], 0
        chunk.append(job)
        used += cost
    if chunk:
        yield chunk


def _measure_pairs(jobs: list[dict], ctx: dict, batched: bool | None, budget: int) -> list[dict]:
    from tprm.science.metrics import cka_pairs, lmc_pairs

    spec = jobs[0]["spec"]
    data = _data(spec, ctx["store_root"], ctx["device"], ctx.get("logs"))
    models, pairs, firsts = [], [], []  # firsts: each job's first index into pairs
    for job in jobs:
        first = len(models)
        firsts.append(len(pairs))
        models += [_load_trained(h, job["spec"], data, ctx) for h in job["spec"].retrains]
        pairs += [(first + a, first + b) for a, b in job["spec"].pairs]
    all_curves = lmc_pairs(models, pairs, data, points=spec.lmc["points"], bn_batch_size=spec.lmc["bn_batch_size"],
                           test=spec.lmc["test"], batched=batched, channels_last=spec.channels_last,
                           max_batched=max(budget, 1))
    all_sims = cka_pairs(models, pairs, data, samples=spec.cka["samples"], channels_last=spec.channels_last)
    out = []
    for job, first in zip(jobs, firsts):
        mine = slice(first, first + len(job["spec"].pairs))
        curves = [{**c, "pair": list(pair)} for c, pair in zip(all_curves[mine], job["spec"].pairs)]
        sims = all_sims[mine]
        ctx["artifacts"].save(job["hash"], "lmc", curves)
        mcs, ckas = [c["mc"] for c in curves], [x["cka_softmax"] for x in sims]
        out.append(_result(job, "done", {
            "mc": _mean(mcs), "mc_pairs": mcs, "mc_loss": _mean([c["mc_loss"] for c in curves]),
            "endpoint_gap": _mean([c["endpoint_gap"] for c in curves]),
            "cka": _mean(ckas), "cka_pairs": ckas,
            "cka_logits": _mean([x["cka_logits"] for x in sims])}))
    return out


@_one_by_one
def _run_hessian(job, spec, data, ctx):
    from tprm.science.hessian import hessian_top_eigenvalue, hessian_trace

    model = _load_trained(spec.model_job, spec, data, ctx)
    tr = hessian_trace(model, data, samples=spec.samples, probes=spec.probes)
    top = hessian_top_eigenvalue(model, data, samples=spec.samples, iters=spec.power_iters)
    return {"hessian_trace": tr["trace"], "hessian_trace_se": tr.get("trace_std_error"),
            "hessian_top": top["eigenvalue"], "hessian_samples": spec.samples,
            "hessian_probes": spec.probes}


@_one_by_one
def _run_ww(job, spec, data, ctx):
    """weightwatcher's layer averages of the cell's dense checkpoint, pruned model (masked zeros as
    they are) and retrained models, on the CPU (science/spectral.py)."""
    from tprm.science.spectral import version, ww_summary

    art = ctx["artifacts"]
    states = [art.load(spec.dense, "checkpoints")[spec.epoch], art.load(spec.pruned, "pruned")["state"],
              *[art.load(h, "model") for h in spec.retrains]]
    measured = []
    for state in states:
        model = _model(spec, data, 0, "cpu")
        model.load_state_dict(state)
        measured.append(ww_summary(model))
    return {"dense": measured[0], "pruned": measured[1], "retrained": measured[2:],
            "weightwatcher": version()}


RUNNERS = {"dense": _run_dense, "prune": _run_prune, "retrain": _run_retrain,
           "pairs": _run_pairs, "hessian": _run_hessian, "ww": _run_ww}


def _result(job, state, result):
    return {"hash": job["hash"], "state": state, "result": result}


def _stream_seeds(kind: str, spec: JobSpec) -> dict:
    """The seed of every random stream a job drew from."""
    from tprm.science.pruning_methods import METHODS
    from tprm.science.train import stream_seed

    seed = spec.get("seed")
    if seed is None or kind in ("pairs", "hessian"):
        return {"hutchinson_and_power_iteration": 0} if kind == "hessian" else {}
    seeds = {"job_seed": seed}
    if kind == "dense":
        seeds["init"] = seed
    if kind in ("dense", "retrain"):
        seeds.update(order=stream_seed(seed, "order"), augment=stream_seed(seed, "augment"))
    if isinstance(spec, PruneSpec) and METHODS[spec.pruning["method"]].seeded:
        seeds["random_masks"] = seed
    return seeds


def cuda_settings(device: str, tf32: bool) -> None:
    """Before a group on a GPU: this worker's device is the current one (its own context only, no
    allocation on GPU 0), cuDNN picks its fastest kernels for the group's fixed shapes
    (``cudnn.benchmark``), TF32 as ``execution.tf32`` says (cuDNN convolutions default to TF32: left
    alone, "float32" results would silently be TF32 ones), and the peak-memory counter starts at 0,
    so ``peak_gpu_mb`` is this group's peak, not the process's."""
    if not device.startswith("cuda"):
        return
    torch.cuda.set_device(torch.device(device))
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.cuda.reset_peak_memory_stats(device)


def provenance(device: str, jobs: list[dict], wall: float) -> dict:
    """What a job's numbers depend on besides its settings (recorded, not hashed)."""
    prov = {
        "tprm": tprm.__version__, "science_version": tprm.SCIENCE_VERSION,
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(), "host": socket.gethostname(), "device": device,
        "device_name": (torch.cuda.get_device_name(torch.device(device))
                        if device.startswith("cuda") else platform.processor() or "cpu"),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        # TF32 convolutions / matrix products (execution.tf32; CUDA only, None elsewhere)
        "tf32": torch.backends.cudnn.allow_tf32 if device.startswith("cuda") else None,
        "threads": torch.get_num_threads(), "group_size": len(jobs),
        "group_wall_s": round(wall, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device.startswith("cuda"):
        prov["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return prov


def _run_group(kind: str, jobs: list[dict], worker: dict, progress: Progress) -> list[dict] | None:
    """The group's results (failures recorded), or None when a group of several failed: then each job
    is retried alone, by the caller, once this frame and the exception (which hold the group's
    tensors) are gone."""
    try:
        return RUNNERS[kind](jobs, worker, progress)
    except Cancelled:
        return [_result(j, "cancelled", None) for j in jobs]
    except Exception as exc:  # noqa: BLE001 -- a failing job is recorded, not raised
        if len(jobs) > 1:  # find the culprit: one bad model must not fail its fused partners
            return None
        tb = traceback.format_exc()
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            message = "out of memory: " + message
        return [dict(_result(j, "failed", None), error=message, traceback=tb) for j in jobs]


def _start(ctx: dict, kind: str, jobs: list[dict]) -> tuple[dict, Progress]:
    """The worker's context (artifacts, device, logs) and the group's progress reporter."""
    store_root = Path(ctx["store_root"])
    worker = dict(ctx, store_root=store_root, artifacts=Artifacts(store_root))
    worker["device"] = resolve_device(ctx["device"], ctx.get("worker_index", 0))
    hashes = [j["hash"] for j in jobs]
    progress = Progress(rundir.progress_file(ctx["progress_dir"], hashes[0]) if ctx.get("progress_dir")
                        else None, Path(ctx["cancel_path"]) if ctx.get("cancel_path") else None,
                        f"{kind} x{len(jobs)}: {jobs[0]['label']}", hashes)
    worker["logs"] = logs = JobLogs(worker["artifacts"], jobs)
    for k in range(len(jobs)):
        logs.write(k, f"{jobs[k]['label']}: started on {worker['device']} (group of {len(jobs)} "
                      f"{kind} job(s))")
    progress.sink, progress.stop = ctx.get("progress_sink"), ctx.get("stop_requested")
    return worker, progress


def execute_group(ctx: dict, kind: str, jobs: list[dict]) -> list[dict]:
    """Run one group of same-kind jobs; never raises: failures come back as job results."""
    threads_before = torch.get_num_threads()  # process-wide: restored below (in-thread runs)
    governor = ThreadGovernor(ctx.get("threads"), ctx.get("workers", 1)) if ctx.get("threads") else None
    worker, progress = _start(ctx, kind, jobs)
    if governor is not None:
        progress.governor = governor
        governor.start()
    cuda_settings(worker["device"], bool(ctx.get("tf32", False)))
    if worker["device"] == "cpu":
        keep_freed_memory()  # no page faults for the same activations every step (engine/cpumemory.py)
    started = time.time()
    with search_path(ctx.get("import_paths") or ()):  # model.import's folders (engine/modelimport.py)
        results = _run_group(kind, jobs, worker, progress)
    if results is None:  # the failed group is freed by now: give its memory back, then job by job
        if worker["device"].startswith("cuda"):
            torch.cuda.empty_cache()
        out = [r for job in jobs for r in execute_group(ctx, kind, [job])]
        torch.set_num_threads(threads_before)
        return out
    wall = time.time() - started
    prov = provenance(worker["device"], jobs, wall)
    if ctx.get("compile"):
        prov["compile"] = worker["device"].startswith("cuda")  # asked for; applied on CUDA only
    for job, res in zip(jobs, results):
        res["provenance"] = dict(prov, seeds=_stream_seeds(kind, job["spec"]))
        if res["state"] == "diverged":
            res["error"] = "diverged: non-finite loss"
    torch.set_num_threads(threads_before)
    return results


class LocalPool(Executor):
    """This machine's pool: one thread for one worker, else spawned worker processes."""

    def __init__(self, workers: int):
        self.slots = workers
        self._pool: Executor = (ThreadPoolExecutor(max_workers=1) if workers == 1 else
                                ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")))

    def describe(self) -> dict:
        """Nothing to add to the run record (the Ray pool records its cluster)."""
        return {}

    def take_notes(self) -> list[str]:
        """Nothing happens here that the user must be told between progress updates (a Ray pool
        says which node was lost)."""
        return []

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


class LocalExecutor:
    """The runner's executor on this machine; the same interface as RayExecutor: `connect()`,
    `open(ctx)` -> a pool with `slots`, `describe()`, `take_notes()`, `submit(fn, ctx, kind, jobs)`,
    `shutdown()`; `close()`."""

    name = "local"

    def __init__(self, workers: int = 1):
        self.workers = max(1, workers)

    def connect(self) -> None:
        pass

    def open(self, ctx: dict) -> LocalPool:
        return LocalPool(self.workers)

    def close(self) -> None:
        pass
