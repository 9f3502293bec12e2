"""Time left in a run, from the measured throughput of the work done, in model-steps.

A job's work is what it costs in model-steps (one SGD step of one model): a dense or retrain
job is its schedule's steps; the cheap kinds are converted by what they compute (a forward pass
over a sample costs about a third of a training step on it). Counting jobs instead would make
a 2-model dense run and a prune job equal, which is how an ETA swings between minutes and days.

The rate is measured, never assumed: work finished (plus the progress of running groups) over
a recent window of the run, so a slow first phase (2 fused dense models) does not dominate a
fast later one (80 fused retrains). Before `MIN_FRACTION` of the run's work is done the answer
is "estimating".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tprm.science.datasets_registry import REGISTRY

MIN_FRACTION = 0.10   # below this share of the run's work done: "estimating"
WINDOW = 0.5          # the rate is measured over the last half of the run's elapsed time
FORWARD = 1.0 / 3.0   # a forward pass over a sample ~ a third of a training step on it
PER_JOB = 2.0         # fixed cost of any job (loading inputs, writing artifacts), in model-steps

N_TRAIN = {name: e.n_train for name, e in REGISTRY.items()}
N_TEST = {name: e.n_test for name, e in REGISTRY.items()}


def data_sizes(data: dict) -> tuple[int, int]:
    """(train, test) sample counts of a job's data settings, without loading the data."""
    name = data.get("name", "mnist1d")
    if name == "mnist1d":
        n = int(data.get("num_samples") or 5000)
        train, test = int(n * 0.8), n - int(n * 0.8)
    else:
        train, test = N_TRAIN.get(name, 50000), N_TEST.get(name, 10000)
    return (min(train, data.get("train_subset") or train),
            min(test, data.get("test_subset") or test))


def schedule_steps(sched: dict, n_train: int) -> int:
    """SGD steps of one model under a job's schedule (SAM steps count twice: two passes)."""
    per_epoch = max(1, n_train // int(sched["batch_size"]))
    steps = sched["epochs"] * per_epoch if sched.get("epochs") else int(sched["iterations"])
    return steps * (2 if sched.get("sam_rho") else 1)


def job_work(kind: str, spec: Mapping[str, Any]) -> float:
    """Model-steps of one job (see the module docstring)."""
    n_train, n_test = data_sizes(spec.get("data") or {})
    if kind in ("dense", "retrain"):
        return PER_JOB + schedule_steps(spec["schedule"], n_train)
    batch = 128
    if kind == "prune":
        p = spec.get("pruning") or {}
        if p.get("method") == "imp":
            return PER_JOB + p.get("rounds", 1) * schedule_steps(p["schedule"], n_train)
        return PER_JOB
    if kind == "pairs":
        lmc, n_pairs = spec.get("lmc") or {}, len(spec.get("pairs") or [])
        # per point: BN recompute + train eval (+ test eval); CKA: outputs of both models
        per_point = 2 * n_train + (n_test if lmc.get("test", True) else 0)
        samples = n_pairs * (lmc.get("points", 11) * per_point + 2 * (spec.get("cka") or {}).get("samples", 0))
        return PER_JOB + FORWARD * samples / batch
    if kind == "hessian":
        samples = spec.get("samples", 512) * (spec.get("probes", 64) + spec.get("power_iters", 20))
        return PER_JOB + 2 * samples / batch   # a Hessian-vector product ~ two backward passes
    return PER_JOB


@dataclass(frozen=True)
class Eta:
    """What a progress line says: the share of work done and, once measurable, seconds left."""
    fraction: float           # 0..1 of the run's work (work done before the run counts as done)
    seconds: float | None     # None while estimating
    rate: float | None        # model-steps per second over the window

    @property
    def text(self) -> str:
        if self.fraction >= 1.0:
            return "done"
        if self.seconds is None:
            return "estimating"
        return duration(self.seconds)


def duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def estimate(jobs: list[dict], started: float, now: float) -> Eta:
    """ETA of one run from its jobs' records.

    Each job: `work` (model-steps), `state`, `started` and `ended` (when it was claimed and when it
    finished, for done/failed/diverged jobs) and, while running, `progress` {"done", "total",
    "started"} of its group (shared by the group's members; the group's share is spread over them
    by work).
    """
    total = sum(j["work"] for j in jobs) or 1.0
    before = 0.0        # work finished before this run started
    done_now = 0.0      # work finished by this run, including partial progress
    window_start = now - WINDOW * max(0.0, now - started)
    in_window = 0.0
    for j in jobs:
        state, work, ended = j.get("state"), j["work"], j.get("ended")
        if state in ("done", "failed", "diverged") and ended is not None:
            if ended < started:
                before += work
                continue
            done_now += work
            begun = ended if j.get("started") is None else j["started"]  # spread over its run time
            if ended >= window_start:
                ran = ended - max(begun, started)
                in_window += work if ran <= 0 else work * min(1.0, (ended - window_start) / ran)
        elif state == "running" and j.get("progress"):
            p = j["progress"]
            share = work * min(1.0, p["done"] / p["total"]) if p.get("total") else 0.0
            done_now += share
            since = max(p.get("started", started), started)
            if since >= window_start:
                in_window += share
            elif now > since:
                in_window += share * (now - window_start) / (now - since)
    left = max(0.0, total - before - done_now)
    fraction = 1.0 - left / total
    run_share = done_now / max(total - before, 1e-9)
    span = now - window_start
    rate = in_window / span if span > 0 else None
    if left <= 0:
        return Eta(1.0, 0.0, rate)
    if run_share < MIN_FRACTION or not rate:
        return Eta(fraction, None, rate)
    return Eta(fraction, left / rate, rate)
