"""CUDA-only tests, skipped without a GPU (the compiled ones last: they take longest).

benchmarks/gpu_check.sh runs this file first, on a bare device machine, with ``--noconftest``: it
needs torch, pytest and tprm.science only (no store, no YAML, no MNIST-1D); the data are written here
(tests/fakedata.py) or made of tensors."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from fakedata import learnable_images, write_fake_cifar10
from tprm.science.data import DataSpec, load_data
from tprm.science.models import build_model, seeded
from tprm.science.prune import magnitude_masks, prunable_parameters
from tprm.science.train import Schedule, bytes_per_model, fusion_pays, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only (benchmarks/gpu_check.sh runs it)")


def _preresnets(tmp_path, n_train=64, seeds=(0, 1)):
    write_fake_cifar10(tmp_path, n_train=n_train, n_test=16)
    data = load_data(DataSpec(name="cifar10", root=str(tmp_path)), tmp_path, device="cuda")
    models = []
    for s in seeds:
        with seeded(s):
            models.append(build_model("preresnet", 10, (3, 32, 32), depth=20, width=0.5).cuda())
    return data, models


def test_cuda_fused_bn_equals_one_by_one(tmp_path):
    """On a GPU (where BN models fuse by default): fused == one by one to float tolerance."""
    data, models = _preresnets(tmp_path)
    s = Schedule(lr=0.02, batch_size=16, epochs=2)
    assert fusion_pays(models, "cuda")
    fused = train([copy.deepcopy(m) for m in models], data, [s, s], [0, 1])
    loop = train([copy.deepcopy(m) for m in models], data, [s, s], [0, 1], fuse=False)
    for a, b in zip(fused, loop):
        for name in a.state:
            if a.state[name].is_floating_point():
                torch.testing.assert_close(a.state[name], b.state[name], rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("fuse", ["always", False])
def test_cuda_bf16_learns_as_float32_does(fuse):
    """bf16 autocast (+ NHWC) on a learnable task: the final test error is within 0.08 of float32's
    (200 test images) after both learnt (chance 0.9); masks stay 0.0, state stays float32."""
    data = learnable_images(320, 200).to("cuda")
    with seeded(0):
        base = build_model("preresnet", 10, (3, 32, 32), depth=8, width=0.5).cuda()
    models = [base, copy.deepcopy(base)]
    masks = [magnitude_masks(m, 0.4, prunable_parameters(m)) for m in models]
    s = Schedule(lr=0.1, batch_size=16, epochs=4)
    full = train([copy.deepcopy(m) for m in models], data, [s, s], [0, 1], masks, fuse=fuse)
    half = train(models, data, [s, s], [0, 1], masks, fuse=fuse, precision="bf16", channels_last=True)
    for a, b, mask in zip(full, half, masks):
        assert a.curves["test_error"][-1] < 0.7
        assert abs(a.curves["test_error"][-1] - b.curves["test_error"][-1]) < 0.08
        assert all(t.dtype == torch.float32 for t in b.state.values() if t.is_floating_point())
        for name, m in mask.items():
            assert (b.state[name].cpu()[~m.cpu()] == 0.0).all(), name


@pytest.mark.parametrize("precision", [None, "bf16"])
def test_cuda_memory_estimate_is_within_a_quarter_of_a_fused_step(precision):
    """bytes_per_model (measured on the CPU) against the memory a fused group of 4 PreResNet-20 at
    batch 32 really takes on the GPU (its peak above the models' own tensors), per model."""
    with seeded(0):
        model = build_model("preresnet", 10, (3, 32, 32), depth=20)
    estimate = bytes_per_model(model, 32, (3, 32, 32), precision=precision)
    k = 4
    data = learnable_images(32 * 4, 32).to("cuda")
    models = [copy.deepcopy(model).cuda() for _ in range(k)]
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    train(models, data, [Schedule(lr=0.1, batch_size=32, iterations=2)] * k, list(range(k)), fuse="always",
          precision=precision)
    used = (torch.cuda.max_memory_allocated() - before) / k
    assert 0.75 * used <= estimate <= 1.25 * used, (estimate / 2**20, used / 2**20)


@pytest.mark.parametrize("fuse", ["always", False])
def test_cuda_compiled_step_is_compiled_graphed_and_matches_eager(fuse, tmp_path):
    """CUDA graphs (torch.compile reduce-overhead) give the eager weights to float tolerance, AND they
    really ran: Dynamo compiled a frame, no CUDA-graph skip (BatchNorm's mutated buffers are static
    addresses) and no fallback to eager (train warns when compilation fails)."""
    from torch._dynamo.utils import counters

    data, models = _preresnets(tmp_path)
    s = Schedule(lr=0.02, batch_size=16, epochs=2)
    eager = train([copy.deepcopy(m) for m in models], data, [s, s], [0, 1], fuse=fuse)
    torch._dynamo.reset()
    counters.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graphed = train([copy.deepcopy(m) for m in models], data, [s, s], [0, 1], fuse=fuse, compile=True)
    assert not [w for w in caught if "torch.compile failed" in str(w.message)], [str(w.message) for w in caught]
    assert counters["stats"]["unique_graphs"] >= 1, dict(counters["stats"])
    assert not counters["inductor"].get("cudagraph_skips"), dict(counters["inductor"])
    for a, b in zip(eager, graphed):
        for name in a.state:
            if a.state[name].is_floating_point():
                torch.testing.assert_close(b.state[name], a.state[name], rtol=2e-3, atol=2e-3)
