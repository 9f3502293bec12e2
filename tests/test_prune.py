"""prune.py: which layers are pruned, exact densities, magnitude order, ties, random masks, IMP."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tprm.science.data import DataSpec, load_data
from tprm.science.models import build_model, seeded
from tprm.science.prune import (
    apply_masks,
    density_report,
    imp_rewind,
    magnitude_masks,
    prunable_parameters,
    random_masks,
)
from tprm.science.train import Schedule

torch.set_num_threads(1)


def conv1d(seed: int = 0, **kwargs) -> nn.Module:
    with seeded(seed):
        return build_model("conv1d", 10, (1, 40), **{"widths": (8, 12, 6), **kwargs})


def test_default_prunable_layers_exclude_classifier_biases_and_bn():
    assert prunable_parameters(conv1d()) == ["features.0.weight", "features.2.weight", "features.4.weight"]
    assert prunable_parameters(conv1d(batchnorm=True)) == [
        "features.0.weight", "features.3.weight", "features.6.weight"
    ]
    with seeded(0):
        mlp = build_model("mlp", 10, (1, 40), widths=(16, 8))
    assert prunable_parameters(mlp) == ["1.weight", "3.weight"]  # 5.weight is the classifier
    with seeded(0):
        resnet = build_model("preresnet", 10, (3, 32, 32), depth=8)
    names = prunable_parameters(resnet)
    assert "fc.weight" not in names and not any("bn" in n or n.endswith("bias") for n in names)
    assert sum(isinstance(m, nn.Conv2d) for m in resnet.modules()) == len(names)


def test_pattern_layers_and_bad_patterns():
    model = conv1d()
    assert prunable_parameters(model, ["features.*.weight", "fc.weight"]) == [
        "features.0.weight", "features.2.weight", "features.4.weight", "fc.weight"
    ]
    assert prunable_parameters(model, ["fc.*"]) == ["fc.weight", "fc.bias"]
    with pytest.raises(ValueError, match="pattern 'conv.*' matches no parameter"):
        prunable_parameters(model, ["conv.*"])
    with pytest.raises(ValueError, match="expected 'default' or a list"):
        prunable_parameters(model, "all")


@settings(max_examples=25, deadline=None)
@given(
    density=st.floats(min_value=0.01, max_value=1.0),
    widths=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=3),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_layerwise_magnitude_density_is_exact_per_layer(density, widths, seed):
    model = conv1d(seed, widths=tuple(widths))
    params = prunable_parameters(model)
    masks = magnitude_masks(model, density, params)
    weights = dict(model.named_parameters())
    for name in params:
        mask, w = masks[name], weights[name].detach().abs()
        assert mask.dtype == torch.bool and mask.shape == w.shape
        assert abs(int(mask.sum()) - density * mask.numel()) <= 1
        if not mask.all():
            assert w[mask].min() >= w[~mask].max()  # the largest magnitudes are kept
    report = density_report(model, masks)
    assert all(abs(d - density) * masks[n].numel() <= 1 for n, d in report["per_layer"].items())


def test_global_magnitude_uses_one_threshold():
    model = conv1d(3)
    with torch.no_grad():
        model.features[0].weight.mul_(10.0)  # a layer with larger weights keeps more of them
    params = prunable_parameters(model)
    masks = magnitude_masks(model, 0.1, params, scope="global")
    weights = dict(model.named_parameters())
    kept = torch.cat([weights[n].detach().abs()[masks[n]] for n in params])
    pruned = torch.cat([weights[n].detach().abs()[~masks[n]] for n in params])
    assert kept.min() >= pruned.max()
    total = sum(masks[n].numel() for n in params)
    report = density_report(model, masks)
    assert abs(report["kept"] - 0.1 * total) <= 1
    assert report["pruned_layers"] == pytest.approx(report["kept"] / total)
    assert report["per_layer"]["features.0.weight"] > 0.5 > report["per_layer"]["features.2.weight"]


def test_ties_are_broken_deterministically_by_index():
    model = nn.Sequential(nn.Linear(4, 5, bias=False), nn.Linear(5, 2))
    with torch.no_grad():
        model[0].weight.fill_(0.5)
    masks = magnitude_masks(model, 0.25, ["0.weight"])
    assert masks["0.weight"].flatten().tolist() == [True] * 5 + [False] * 15
    assert torch.equal(magnitude_masks(model, 0.25, ["0.weight"])["0.weight"], masks["0.weight"])
    global_masks = magnitude_masks(model, 0.25, ["0.weight"], scope="global")
    assert torch.equal(global_masks["0.weight"], masks["0.weight"])


def test_random_masks_are_seeded_and_exact():
    model = conv1d()
    params = prunable_parameters(model)
    a, b, c = (random_masks(model, 0.3, params, seed=s) for s in (1, 1, 2))
    assert all(torch.equal(a[n], b[n]) for n in params)
    assert any(not torch.equal(a[n], c[n]) for n in params)
    for n in params:
        assert abs(int(a[n].sum()) - 0.3 * a[n].numel()) <= 1


def test_apply_masks_and_whole_model_density():
    model = conv1d()
    before = copy.deepcopy(model.state_dict())
    params = prunable_parameters(model)
    masks = magnitude_masks(model, 0.2, params)
    apply_masks(model, masks)
    state = model.state_dict()
    for name in state:
        if name in masks:
            assert (state[name][~masks[name]] == 0.0).all()
            assert torch.equal(state[name][masks[name]], before[name][masks[name]])
        else:
            assert torch.equal(state[name], before[name])
    report = density_report(model, masks)
    n_all = sum(p.numel() for p in model.parameters())
    n_pruned = sum(m.numel() for m in masks.values())
    assert report["whole_model"] == pytest.approx((n_all - n_pruned + report["kept"]) / n_all)
    assert report["pruned_layers"] < report["whole_model"] < 1.0
    with pytest.raises(ValueError, match="bool tensor of shape"):
        apply_masks(model, {"fc.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="density: must be a fraction in"):
        magnitude_masks(model, 1.5, params)
    with pytest.raises(ValueError, match="scope: 'local' is not one of"):
        magnitude_masks(model, 0.5, params, scope="local")


def test_imp_rewind_reaches_the_density_through_nested_masks(tmp_path):
    data = load_data(DataSpec(num_samples=300), tmp_path)
    model = conv1d()
    params = prunable_parameters(model)
    one_shot = magnitude_masks(model, 0.1, params)
    schedule = Schedule(lr=0.1, batch_size=20, epochs=2)
    assert all(
        torch.equal(m, one_shot[n])
        for n, m in imp_rewind(copy.deepcopy(model), data, 0.1, params, schedule, 1, seed=0).items()
    )
    masks = imp_rewind(model, data, 0.1, params, schedule, rounds=3, seed=0)
    for name in params:
        assert abs(int(masks[name].sum()) - 0.1 * masks[name].numel()) <= 1
        assert (dict(model.named_parameters())[name][~masks[name]] == 0.0).all()
    assert any(not torch.equal(masks[n], one_shot[n]) for n in params)  # retraining moved magnitudes
    with pytest.raises(ValueError, match="imp rounds"):
        imp_rewind(model, data, 0.1, params, schedule, rounds=0, seed=0)


def test_within_keeps_only_previously_kept_weights():
    model = conv1d()
    params = prunable_parameters(model)
    half = magnitude_masks(model, 0.5, params)
    with torch.no_grad():  # make the pruned weights the largest: they must still not come back
        for name, p in model.named_parameters():
            if name in half:
                p[~half[name]] = 100.0
    nested = magnitude_masks(model, 0.2, params, within=half)
    for name in params:
        assert not (nested[name] & ~half[name]).any()
        assert abs(int(nested[name].sum()) - 0.2 * nested[name].numel()) <= 1
