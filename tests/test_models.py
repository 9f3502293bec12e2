"""tprm.science.models: every registry model trains a step, seeded init, classifier lookup, factories."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fakedata
from tprm.science.models import MODEL_NAMES, build_model, classifier_parameter, load_factory, seeded

# Tiny settings per model so the whole parametrised sweep stays fast; input shapes are the smallest
# each architecture accepts (VGG's five max-pools need 32x32).
TINY: dict[str, tuple[tuple, dict]] = {
    "mlp": ((1, 40), {"widths": [8, 8]}),
    "conv1d": ((1, 40), {"widths": [4, 4, 4], "batchnorm": True}),
    "preresnet": ((3, 16, 16), {"depth": 8, "width": 0.25}),
    "resnet18": ((3, 8, 8), {}),
    "vgg11": ((3, 32, 32), {"width": 0.0625}),
    "vgg16": ((3, 32, 32), {"width": 0.0625}),
    "densenet": ((3, 16, 16), {"depth": 10, "growth_rate": 4}),
}


def test_registry_lists_every_model():
    assert set(MODEL_NAMES) == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_builds_runs_and_backprops(name):
    shape, kwargs = TINY[name]
    with seeded(0):
        model = build_model(name, 7, shape, **kwargs)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))
    out = model(x)
    assert out.shape == (3, 7)
    nn.functional.cross_entropy(out, torch.tensor([0, 3, 6])).backward()
    params = dict(model.named_parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params.values())
    head = classifier_parameter(model)
    assert isinstance(params[head], nn.Parameter) and params[head].shape[0] == 7
    assert params[head].grad.abs().sum() > 0


def test_default_settings_build_the_named_architectures():
    conv = build_model("conv1d", 10, (1, 40))
    convs = [m for m in conv.modules() if isinstance(m, nn.Conv1d)]
    assert [c.out_channels for c in convs] == [32, 32, 32] and convs[0].kernel_size == (5,)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in conv.modules())  # fusable by default
    assert conv(torch.zeros(2, 1, 40)).shape == (2, 10)
    assert [m.out_features for m in build_model("mlp", 10, (1, 40)).modules() if isinstance(m, nn.Linear)] == [64, 64, 10]
    pre = build_model("preresnet", 10, (3, 32, 32))
    convs3 = [m for m in pre.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == 19  # depth 20 = 19 conv layers + the classifier
    assert sorted({c.out_channels for c in convs3}) == [16, 32, 64]
    assert classifier_parameter(pre) == "fc.weight"
    r18 = build_model("resnet18", 10, (3, 32, 32))
    assert r18.conv1.kernel_size == (3, 3) and r18.conv1.stride == (1, 1) and isinstance(r18.maxpool, nn.Identity)
    assert classifier_parameter(r18) == "fc.weight"
    vgg = build_model("vgg16", 10, (3, 32, 32))
    assert sum(isinstance(m, nn.Conv2d) for m in vgg.modules()) == 13
    assert sum(isinstance(m, nn.BatchNorm2d) for m in vgg.modules()) == 13
    dense = build_model("densenet", 100, (3, 32, 32))
    assert sum(p.numel() for p in dense.parameters()) < 400_000  # DenseNet-BC-40, k=12: small


def test_seeded_init_is_reproducible_and_isolated():
    def weights(seed):
        with seeded(seed):
            return build_model("preresnet", 10, (3, 32, 32), depth=8).state_dict()

    a, b, c = weights(3), weights(3), weights(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    weights(5)
    assert torch.equal(torch.rand(3), expected)


def test_classifier_parameter_picks_the_last_linear():
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Sequential(nn.Linear(5, 6), nn.Linear(6, 2)))
    assert classifier_parameter(model) == "2.1.weight"
    assert classifier_parameter(nn.Linear(3, 2)) == "weight"
    with pytest.raises(ValueError, match="no nn.Linear"):
        classifier_parameter(nn.Conv1d(1, 1, 3))


def test_bad_names_and_settings_are_reported():
    with pytest.raises(ValueError, match=r"unknown model 'resnet50'; known: mlp, conv1d, preresnet"):
        build_model("resnet50", 10, (3, 32, 32))
    with pytest.raises(ValueError, match=r"unknown setting 'depth' for model 'mlp'; allowed: widths"):
        build_model("mlp", 10, (1, 40), depth=3)
    with pytest.raises(ValueError, match="depth must be 6n\\+2"):
        build_model("preresnet", 10, (3, 32, 32), depth=21)
    with pytest.raises(ValueError, match="H, W >= 32"):
        build_model("vgg11", 10, (3, 16, 16))
    with pytest.raises(ValueError, match="widths"):
        build_model("conv1d", 10, (1, 40), widths=[])


def test_load_factory_imports_a_user_model():
    factory = load_factory(f"{fakedata.__name__}:tiny_factory")
    with seeded(0):
        model = factory(num_classes=3, input_shape=(1, 40), hidden=5)
    assert model(torch.zeros(2, 1, 40)).shape == (2, 3)
    assert classifier_parameter(model) == "head.weight"
    assert load_factory(f"{fakedata.__name__}:TinyUserNet") is fakedata.TinyUserNet
    with pytest.raises(ValueError, match="cannot import module 'no_such_pkg_xyz.models'"):
        load_factory("no_such_pkg_xyz.models:net")
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        load_factory(f"{fakedata.__name__}:missing")
    with pytest.raises(ValueError, match="expected 'package.module:factory'"):
        load_factory("fakedata.tiny_factory")


def _preresnet_out_of_place(model, x):
    """PreResNet's forward written with out-of-place ReLU and residual adds (the reference)."""
    out = model.conv1(x)
    for block in model.layers:
        h = block.conv1(torch.relu(block.bn1(out)))
        h = block.conv2(torch.relu(block.bn2(h)))
        out = h + (out if block.downsample is None else block.downsample(out))
    out = torch.relu(model.bn(out))
    return model.fc(model.pool(out).flatten(1))


@pytest.mark.parametrize("training", [True, False])
def test_preresnet_in_place_ops_keep_outputs_and_gradients(training):
    torch.manual_seed(0)
    model = build_model("preresnet", 10, (3, 16, 16), depth=14, width=0.5).double()
    twin = copy.deepcopy(model)
    assert any(isinstance(m, nn.ReLU) and m.inplace for m in model.modules())
    model.train(training)
    twin.train(training)
    x = torch.randn(6, 3, 16, 16, dtype=torch.float64)
    y = torch.arange(6) % 10
    out = model(x)
    ref = _preresnet_out_of_place(twin, x)
    assert torch.allclose(out, ref, rtol=0, atol=1e-12)
    grads = torch.autograd.grad(F.cross_entropy(out, y), list(model.parameters()))
    ref_grads = torch.autograd.grad(F.cross_entropy(ref, y), list(twin.parameters()))
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=0, atol=1e-12)
    for a, b in zip(model.buffers(), twin.buffers()):  # the same running-statistics updates
        assert torch.equal(a, b)
