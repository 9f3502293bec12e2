"""Grouped-convolution fusion (science/grouped.py): K models as one wide model give the results of
separate training (float64 to 1e-10), keep masked weights +0.0, and fall back to vmap where a model
cannot be widened."""

from __future__ import annotations

import copy

import pytest
import torch

from fakedata import write_fake_cifar10
from tprm.science import grouped
from tprm.science.data import DataSpec, load_data
from tprm.science.grouped import widen
from tprm.science.models import build_model, seeded
from tprm.science.prune import magnitude_masks, prunable_parameters, random_masks
from tprm.science.train import Schedule, grouped_pays, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data64(tmp_path_factory):
    return load_data(DataSpec(num_samples=500), tmp_path_factory.mktemp("mnist1d"), dtype=torch.float64)


def conv_nets(data, dtype=torch.float64, **kwargs):
    out = []
    for s in (0, 1, 2):
        with seeded(s):
            out.append(build_model("conv1d", data.num_classes, data.input_shape, widths=(4, 6), **kwargs).to(dtype))
    return out


def used_grouped(monkeypatch) -> list:
    """Records every wide model train builds (so a test knows the grouped path really ran)."""
    built: list = []

    def spy(models, probe):
        wide = widen(models, probe)
        built.append(wide)
        return wide

    monkeypatch.setattr("tprm.science.train.widen", spy)
    return built


def assert_same(a, b, tol):
    for ra, rb in zip(a, b):
        for name in ra.state:
            if ra.state[name].is_floating_point():
                torch.testing.assert_close(ra.state[name], rb.state[name], rtol=0, atol=tol)
            else:
                assert torch.equal(ra.state[name], rb.state[name]), name
        for key in ra.curves:
            assert ra.curves[key] == pytest.approx(rb.curves[key], abs=tol), key


@pytest.mark.parametrize("batchnorm", [False, True])
def test_grouped_float64_equals_separate_with_masks_sam_and_lrs(batchnorm, data64, monkeypatch):
    built = used_grouped(monkeypatch)
    models = conv_nets(data64, batchnorm=batchnorm)
    params = prunable_parameters(models[0])
    masks = [magnitude_masks(models[0], 0.2, params), random_masks(models[1], 0.5, params, seed=3), None]
    schedules = [Schedule(lr=0.05, batch_size=40, epochs=3, weight_decay=5e-4),
                 Schedule(lr=0.1, batch_size=40, epochs=3, sam_rho=0.05, milestones=(0.3,)),
                 Schedule(lr=0.02, batch_size=40, epochs=3, gamma=0.5)]
    copies = [copy.deepcopy(m) for m in models]
    fused = train(models, data64, schedules, [10, 11, 12], masks, fuse="grouped", checkpoint_epochs=(2,))
    alone = train(copies, data64, schedules, [10, 11, 12], masks, fuse=False, checkpoint_epochs=(2,))
    assert len(built) == 1 and built[0] is not None  # the wide model was built and used
    assert_same(fused, alone, 1e-10)
    for result, mask in zip(fused, masks):
        for name, keep in (mask or {}).items():
            w = result.state[name][~keep]
            assert (w == 0.0).all() and not torch.signbit(w).any(), name  # exactly +0.0


def test_grouped_float32_preresnet_step_matches_vmap_to_float_rounding(tmp_path):
    write_fake_cifar10(tmp_path, n_train=16, n_test=8)
    data = load_data(DataSpec(name="cifar10", root=str(tmp_path)), tmp_path)
    models = []
    for s in (0, 1):
        with seeded(s):
            models.append(build_model("preresnet", 10, (3, 32, 32), depth=20))
    copies = [copy.deepcopy(m) for m in models]
    schedules = [Schedule(lr=0.01, batch_size=8, epochs=1)] * 2
    a = train(models, data, schedules, [0, 1], fuse="grouped")
    b = train(copies, data, schedules, [0, 1], fuse="vmap")
    for ra, rb in zip(a, b):
        for name in ra.state:
            torch.testing.assert_close(ra.state[name], rb.state[name], rtol=1e-3, atol=1e-4)


def test_a_model_that_cannot_be_widened_trains_through_vmap(data64, monkeypatch):
    class Reshaped(torch.nn.Module):  # its forward names its own channel count: no wide form
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 4, 5, stride=4)
            self.fc = torch.nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(self.conv(x).view(x.shape[0], 4, -1).mean(-1))

    built = used_grouped(monkeypatch)
    models = []
    for s in (0, 1):
        with seeded(s):
            models.append(Reshaped().double())
    copies = [copy.deepcopy(m) for m in models]
    schedules = [Schedule(lr=0.05, batch_size=40, epochs=2)] * 2
    fused = train(models, data64, schedules, [0, 1], fuse="grouped")
    assert built == [None]
    assert_same(fused, train(copies, data64, schedules, [0, 1], fuse=False), 1e-10)


def test_widen_builds_the_registry_conv_nets_and_refuses_densenet():
    probe = torch.randn(2, 3, 32, 32)
    for name in ("preresnet", "vgg11"):
        assert widen([build_model(name, 10, (3, 32, 32)) for _ in range(2)], probe) is not None, name
    assert widen([build_model("densenet", 10, (3, 32, 32)) for _ in range(2)], probe) is None
    assert grouped_pays("cpu") and not grouped_pays("cuda")  # the CPU's fused form; vmap elsewhere


def test_wide_linear_is_k_linear_layers():
    layers = [torch.nn.Linear(6, 3) for _ in range(4)]
    wide = grouped.WideLinear(4, 6, 3, bias=True)
    with torch.no_grad():
        wide.weight.copy_(torch.stack([m.weight for m in layers]))
        wide.bias.copy_(torch.stack([m.bias for m in layers]))
    x = torch.randn(5, 4, 6)
    want = torch.stack([m(x[:, k]) for k, m in enumerate(layers)], 1)
    torch.testing.assert_close(wide(x.reshape(5, 24)).view(5, 4, 3), want)


def test_stacked_batches_without_augmentation_are_each_models_own(data64):
    from tprm.science.train import _BatchStream, _stacked_batches

    def streams():
        return [_BatchStream(seed, data64.n_train, 40) for seed in (3, 4, 5)]

    one_gather, each = streams(), streams()
    for step in range(data64.n_train // 40 + 2):  # across an epoch boundary (a new permutation)
        x, y = _stacked_batches(one_gather, step, data64)
        for k, stream in enumerate(each):
            xk, yk = stream.batch(step, data64)
            assert torch.equal(x[k], xk) and torch.equal(y[k], yk)


def test_phased_conv1d_gives_atens_outputs_and_gradients():
    """gconv.PhasedConv1d (input gradient as forward convolutions, a one-channel layer as a batched
    matrix product) against nn.Conv1d in float64, over strides, paddings (wider than the kernel
    too), kernels, lengths, groups, channels and bias."""
    import itertools

    from tprm.science.gconv import PhasedConv1d

    torch.manual_seed(0)
    worst, cases = 0.0, 0
    for s, p, k, n, g, ci, co, bias in itertools.product((1, 2, 3), (0, 2, 3), (1, 3, 5), (4, 7, 20), (1, 3),
                                                          (1, 2), (1, 3), (True, False)):
        if (n + 2 * p - k) // s + 1 < 1:
            continue
        ref = torch.nn.Conv1d(g * ci, g * co, k, s, p, groups=g, bias=bias).double()
        new = PhasedConv1d(g * ci, g * co, k, s, p, groups=g, bias=bias).double()
        new.load_state_dict(ref.state_dict())
        x = torch.randn(3, g * ci, n, dtype=torch.float64, requires_grad=True)
        y_ref, y_new = ref(x), new(x)
        grad = torch.randn_like(y_ref)
        want = torch.autograd.grad(y_ref, [x, *ref.parameters()], grad)
        got = torch.autograd.grad(y_new, [x, *new.parameters()], grad)
        worst = max([worst, (y_ref - y_new).abs().max().item()] + [(a - b).abs().max().item() for a, b in zip(want, got)])
        cases += 1
    assert cases > 400 and worst < 1e-12


def test_the_wide_conv1d_layers_are_phased():
    wide = grouped.wide_model(build_model("conv1d", 10, (1, 40), widths=(8, 8)), 3, torch.device("cpu"), torch.float32)
    convs = [m for m in wide.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 2 and all(type(m).__name__ == "PhasedConv1d" for m in convs)
    assert [m.groups for m in convs] == [3, 3]
