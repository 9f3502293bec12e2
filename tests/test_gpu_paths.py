"""The CUDA path's bookkeeping, checked on the CPU (issue 24): the buffer restore as one op over one
store (the CUDA branch forced), the memory estimate measured (bf16 is not half of float32), TF32 /
cuDNN / device settings per group, the job-by-job retry after its failed group is freed, the batched
LMC evaluation batch's floor."""

from __future__ import annotations

import copy
import sys
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tprm.science.memory import LiveBytes
from tprm.science.models import build_model, seeded
from tprm.science.slots import _Compute, _FusedSlots
from tprm.science.train import Schedule, bytes_per_model

torch.set_num_threads(1)


def _preresnet(width: float = 0.5):
    with seeded(0):
        return build_model("preresnet", 10, (3, 32, 32), depth=20, width=width)


class _CountOps(TorchDispatchMode):
    """Counts the ops dispatched inside it, except while ``paused``."""

    def __init__(self) -> None:
        super().__init__()
        self.count, self.paused = 0, False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.paused:
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_the_step_bookkeeping_is_a_few_ops_on_the_accelerator_branch():
    """A PreResNet-20 (57 BatchNorm buffers) step's ops besides its gradient passes, with the branch an
    accelerator takes (no host reads): the update plus one save and one restore of the buffer store,
    not two ops per buffer (115+ before). The restore still works: a model whose loss is not finite
    keeps its buffers from before the step, the other model's move."""
    models = [_preresnet(), _preresnet()]
    s = Schedule(lr=0.1, batch_size=4, iterations=1)
    slots = _FusedSlots(models, [{}, {}], [s, s], _Compute())
    slots.host = False  # the CUDA branch: every bookkeeping op runs, no host read decides
    assert len(slots.buffers) == 57
    counter = _CountOps()
    grads = slots._grads

    def uncounted(*args):
        counter.paused = True
        try:
            return grads(*args)
        finally:
            counter.paused = False

    slots._grads = uncounted
    x = torch.randn(2, 4, 3, 32, 32)
    y = torch.randint(0, 10, (2, 4))
    before = {n: b.clone() for n, b in slots.buffers.items()}
    x[1, 0, 0, 0, 0] = float("nan")  # model 1's loss is NaN: it must keep its buffers
    with counter:
        slots.step(x, y, slots._vector([0.1, 0.1]))
    assert counter.count <= 30, counter.count
    assert not bool(slots.alive[1]) and bool(slots.alive[0])
    moved = [n for n, b in slots.buffers.items() if not torch.equal(b[0], before[n][0])]
    assert len(moved) == 57 and all(torch.equal(b[1], before[n][1]) for n, b in slots.buffers.items())
    slots.release()


def _fused_group_bytes(model, k: int, batch: int, precision: str | None) -> float:
    """What a fused group of k models allocates on the CPU (its state and two steps), per model."""
    compute = _Compute(torch.bfloat16 if precision == "bf16" else None)
    s = Schedule(lr=0.1, batch_size=batch, iterations=2)
    x = torch.randn(k, batch, 3, 32, 32)
    y = torch.randint(0, 10, (k, batch))
    with LiveBytes() as live:
        models = [copy.deepcopy(model) for _ in range(k)]
        slots = _FusedSlots(models, [{}] * k, [s] * k, compute)
        for _ in range(2):
            slots.step(x, y, slots._vector([0.1] * k))
        slots.release()
    return live.peak / k


def test_the_memory_estimate_is_measured_and_bf16_is_not_half():
    """bytes_per_model against what a fused group of 2 PreResNet-20 at batch 32 really allocates (its
    weights, optimiser state, buffers and two steps), per model, within 25 %, for float32 and bf16;
    bf16 autocast keeps float32 BatchNorm copies, so its estimate is not half of float32's (issue 24:
    the halved one was 77 MiB where a step took 165)."""
    model = _preresnet()
    estimates = {}
    for precision in (None, "bf16"):
        estimates[precision] = bytes_per_model(model, 32, (3, 32, 32), precision=precision)
        used = _fused_group_bytes(model, 2, 32, precision)
        assert 0.75 * used <= estimates[precision] <= 1.25 * used, (precision, estimates[precision] / 2**20,
                                                                      used / 2**20)
    assert estimates["bf16"] > 0.8 * estimates[None]
    assert not model._forward_pre_hooks and not any(m._forward_pre_hooks for m in model.modules())


def test_tf32_is_a_recipe_setting_off_by_default_and_hashed_only_when_set():
    from tprm.engine.recipe import parse_recipe

    base = parse_recipe("name: a\ndataset: {name: mnist1d}\nmodel: {name: mlp}\n")
    assert base.execution.tf32 is False
    on = base.with_overrides({"execution": {"tf32": True}})
    assert on.execution.tf32 is True and on.hash != base.hash
    assert base.with_overrides({"execution": {"tf32": False}}).hash == base.hash


def test_a_gpu_group_sets_its_device_cudnn_tf32_and_resets_the_peak(monkeypatch):
    """cuda_settings before a group on cuda:1: set_device(cuda:1), cudnn.benchmark on, TF32 as asked
    (both ways), the peak counter reset; nothing on the CPU."""
    from tprm.engine.executors import local

    calls = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", str(d))))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d=None: calls.append(("reset", str(d))))
    flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        local.cuda_settings("cpu", True)
        assert calls == []
        for tf32 in (True, False):
            local.cuda_settings("cuda:1", tf32)
            assert calls[-2:] == [("set_device", "cuda:1"), ("reset", "cuda:1")]
            assert torch.backends.cudnn.benchmark
            assert torch.backends.cudnn.allow_tf32 is tf32 and torch.backends.cuda.matmul.allow_tf32 is tf32
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = flags


def test_a_failed_group_is_retried_job_by_job_once_it_is_freed(monkeypatch, tmp_path):
    """A group of several jobs that raises (an OOM on a GPU) is retried one job at a time OUTSIDE the
    exception handler: by then the group's tensors are freed (nothing left to hold their memory) and
    no exception is being handled."""
    from tprm.engine.executors import local

    held: list = []
    seen: list = []

    def runner(jobs, ctx, progress):
        if len(jobs) > 1:
            big = torch.zeros(1000)
            held.append(weakref.ref(big))
            raise RuntimeError("out of memory (simulated)")
        seen.append((held[0]() is None, sys.exc_info()[0]))
        return [local._result(jobs[0], "done", {"ok": 1})]

    monkeypatch.setitem(local.RUNNERS, "pairs", runner)
    jobs = [{"hash": f"{i:064x}", "label": f"job {i}", "spec": {"seed": None}} for i in range(2)]
    ctx = {"store_root": str(tmp_path), "device": "cpu", "fuse": True}
    results = local.execute_group(ctx, "pairs", jobs)
    assert [r["state"] for r in results] == ["done", "done"]
    assert seen == [(True, None), (True, None)]
    assert all(r["provenance"]["tf32"] is None for r in results)


def test_the_batched_lmc_evaluation_batch_has_a_floor():
    """11 pairs of 11 points in one batched pass (121 models): each evaluation batch holds at least 64
    images (256 * 11 / 121 = 23 before), never more than eval_batch_size."""
    from tprm.science import metrics
    from tprm.science.data import TensorData

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (300, 3, 8, 8), generator=g, dtype=torch.uint8)
    y = torch.arange(300) % 10
    data = TensorData("t", x[:200], y[:200], x[200:], y[200:], 10, mean=(0.5,) * 3, std=(0.3,) * 3)
    with seeded(0):
        models = [build_model("mlp", 10, (3, 8, 8), widths=(8,)) for _ in range(2)]
    sizes: list[int] = []
    plain_batches = data.plain_batches

    def recording(split, batch_size, limit=None):
        sizes.append(batch_size)
        return plain_batches(split, batch_size, limit)

    data.plain_batches = recording  # type: ignore[method-assign]
    for eval_batch, want in ((256, 64), (16, 16)):
        sizes.clear()
        metrics.lmc_pairs(models, [(0, 1)] * 11, data, points=11, eval_batch_size=eval_batch, batched=True)
        assert sizes and min(sizes) == want, sizes
