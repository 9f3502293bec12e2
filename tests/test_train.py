"""train.py: exact masking (SGD and SAM), fused == separate, seeded streams, schedules, divergence, BN."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from fakedata import learnable_images, write_fake_cifar10
from tprm.science.data import DataSpec, load_data
from tprm.science.models import build_model, seeded
from tprm.science.prune import magnitude_masks, prunable_parameters, random_masks
from tprm.science.train import Schedule, fusable, fusion_pays, sam_perturbation, stream_seed, train

torch.set_num_threads(1)
SPEC = DataSpec(num_samples=500)  # 400 train / 100 test


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mnist1d")


@pytest.fixture(scope="module")
def data64(cache):
    return load_data(SPEC, cache, dtype=torch.float64)


@pytest.fixture(scope="module")
def data32(cache):
    return load_data(SPEC, cache)


def tiny(name: str, seed: int, data, dtype=torch.float64, **kwargs) -> nn.Module:
    defaults = {"conv1d": {"widths": (4, 6)}, "mlp": {"widths": (12,)}}[name]
    with seeded(seed):
        return build_model(name, data.num_classes, data.input_shape, **{**defaults, **kwargs}).to(dtype)


def clone(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def assert_masked_zero(state: dict, masks: dict) -> None:
    for name, mask in masks.items():
        assert (state[name][~mask] == 0.0).all(), name
        assert (state[name][mask] != 0.0).any(), name


# --- fused vs separate ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["conv1d", "mlp"])
def test_fused_equals_separate_with_masks_lrs_and_sam(arch, data64):
    models = [tiny(arch, s, data64) for s in (0, 1, 2)]
    params = prunable_parameters(models[0])
    masks = [magnitude_masks(models[0], 0.2, params), random_masks(models[1], 0.5, params, seed=3), None]
    schedules = [
        Schedule(lr=0.05, batch_size=40, epochs=3, weight_decay=5e-4),
        Schedule(lr=0.1, batch_size=40, epochs=3, weight_decay=0.0, milestones=(0.3,), sam_rho=0.05),
        Schedule(lr=0.02, batch_size=40, epochs=3, gamma=0.5),
    ]
    assert fusable(models, schedules, data64.n_train)
    copies = [clone(m) for m in models]
    fused = train(models, data64, schedules, [10, 11, 12], masks, fuse="always", checkpoint_epochs=(0, 2))
    loop = train(copies, data64, schedules, [10, 11, 12], masks, fuse=False, checkpoint_epochs=(0, 2))
    for k, (a, b) in enumerate(zip(fused, loop)):
        for name in a.state:
            torch.testing.assert_close(a.state[name], b.state[name], rtol=0, atol=1e-10)
            torch.testing.assert_close(a.checkpoints[2][name], b.checkpoints[2][name], rtol=0, atol=1e-10)
            assert torch.equal(a.checkpoints[0][name], b.checkpoints[0][name])
        for key in a.curves:
            assert a.curves[key] == pytest.approx(b.curves[key], abs=1e-10), key
        assert len(a.curves["epoch"]) == 3 and not a.diverged
        # the modules passed in hold the final weights
        for name, tensor in models[k].state_dict().items():
            assert torch.equal(tensor, a.state[name])
        if masks[k]:
            assert_masked_zero(a.state, masks[k])
    assert not torch.allclose(fused[0].state[params[0]], fused[2].state[params[0]])


def test_fused_equals_separate_with_augmentation(tmp_path):
    """Per-model augmentation streams (crop + flip on fake CIFAR) are the same alone and fused."""
    write_fake_cifar10(tmp_path, n_train=40, n_test=10)
    data = load_data(DataSpec(name="cifar10", root=str(tmp_path)), tmp_path, dtype=torch.float64)
    models = []
    for s in (0, 1):
        with seeded(s):
            models.append(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).double())
    copies = [clone(m) for m in models]
    schedules = [Schedule(lr=0.01, batch_size=8, epochs=2)] * 2
    fused = train(models, data, schedules, [0, 1], fuse="always")
    loop = train(copies, data, schedules, [0, 1], fuse=False)
    for a, b in zip(fused, loop):
        for name in a.state:
            torch.testing.assert_close(a.state[name], b.state[name], rtol=0, atol=1e-10)


# fp32 without SAM and with small lrs (SAM and lr 0.1 amplify fp32 round-off to ~1e-3 within a few
# steps on random labels); fp64 with SAM on model 1: fused and separate agree to round-off (~1e-16).
@pytest.mark.parametrize("dtype, tol, rho", [(torch.float32, 1e-3, 0.0), (torch.float64, 1e-10, 0.1)])
def test_fused_preresnet20_with_batchnorm_equals_separate(dtype, tol, rho, tmp_path):
    """PreResNet-20 (BatchNorm in training mode) fused == one by one: weights, running statistics
    (momentum update per model), curves and test evaluation (eval mode uses each model's own stats);
    with SAM, its perturbed pass must leave the running statistics alone in both paths."""
    write_fake_cifar10(tmp_path, n_train=32, n_test=8)
    data = load_data(DataSpec(name="cifar10", root=str(tmp_path)), tmp_path, dtype=dtype)
    models = []
    for s in (0, 1, 2):
        with seeded(s):
            models.append(build_model("preresnet", 10, (3, 32, 32), depth=20).to(dtype))
    params = prunable_parameters(models[0])
    masks = [magnitude_masks(models[0], 0.2, params), None, random_masks(models[2], 0.4, params, seed=1)]
    schedules = [
        Schedule(lr=0.05, batch_size=8, epochs=2),
        Schedule(lr=0.04, batch_size=8, epochs=2, sam_rho=rho, weight_decay=5e-4),
        Schedule(lr=0.02, batch_size=8, epochs=2, milestones=(0.5,)),
    ]
    assert fusable(models, schedules, data.n_train)
    copies = [clone(m) for m in models]
    fused = train(models, data, schedules, [3, 4, 5], masks, fuse="always", checkpoint_epochs=(1,))
    loop = train(copies, data, schedules, [3, 4, 5], masks, fuse=False, checkpoint_epochs=(1,))
    for k, (a, b) in enumerate(zip(fused, loop)):
        assert a.state.keys() == b.state.keys()
        for name in a.state:
            for got, want in ((a.state[name], b.state[name]), (a.checkpoints[1][name], b.checkpoints[1][name])):
                if got.is_floating_point():
                    torch.testing.assert_close(got, want, rtol=tol, atol=tol, msg=lambda m, k=k, name=name: f"model {k} {name}: {m}")
                else:
                    assert torch.equal(got, want), name
        assert int(a.state["bn.num_batches_tracked"]) == schedules[k].total_iterations(data.n_train)
        for key in a.curves:
            assert a.curves[key] == pytest.approx(b.curves[key], abs=tol), key
        for name, tensor in models[k].state_dict().items():  # the modules hold the final state
            assert torch.equal(tensor, a.state[name])
        if masks[k]:
            assert_masked_zero(a.state, masks[k])
    # the running statistics really moved, and differ between models (each model has its own)
    assert not torch.allclose(fused[0].state["bn.running_mean"], fused[1].state["bn.running_mean"])
    assert not torch.allclose(fused[0].state["bn.running_var"], torch.ones(64, dtype=dtype))


def test_update_matches_torch_optim_sgd(data64):
    """The loop path's update is torch.optim.SGD (momentum, coupled weight decay) on the seeded batches."""
    model = tiny("conv1d", 0, data64)
    reference = clone(model)
    s = Schedule(lr=0.05, batch_size=50, epochs=2, weight_decay=1e-3, momentum=0.8, milestones=(0.5,))
    train([model], data64, [s], [7])
    opt = torch.optim.SGD(reference.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    order = torch.Generator().manual_seed(stream_seed(7, "order"))
    augment = torch.Generator().manual_seed(stream_seed(7, "augment"))
    total, per_epoch = s.total_iterations(data64.n_train), data64.n_train // s.batch_size
    for step in range(total):
        if step % per_epoch == 0:
            perm = torch.randperm(data64.n_train, generator=order)
        i = step % per_epoch
        x, y = data64.train_batch(perm[i * s.batch_size : (i + 1) * s.batch_size], augment)
        for group in opt.param_groups:
            group["lr"] = s.lr_at(step, total)
        opt.zero_grad()
        nn.functional.cross_entropy(reference(x), y).backward()
        opt.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12, msg=name)


# --- masks stay exactly zero -------------------------------------------------------------------------


@pytest.mark.parametrize("fuse", ["always", False])
@pytest.mark.parametrize("rho", [0.0, 0.1])
def test_masked_weights_stay_exactly_zero(fuse, rho, data32):
    models = [tiny("conv1d", s, data32, dtype=torch.float32) for s in (0, 1)]
    params = prunable_parameters(models[0]) + ["fc.bias"]
    masks = [magnitude_masks(m, 0.3, params) for m in models]
    s = Schedule(lr=0.2, batch_size=50, epochs=2, momentum=0.9, weight_decay=1e-2, sam_rho=rho)
    results = train(models, data32, [s, s], [0, 1], masks, fuse=fuse)
    for r, mask in zip(results, masks):
        assert not r.diverged
        assert_masked_zero(r.state, mask)


def test_sam_perturbation_is_masked_and_has_norm_rho():
    grads = {"a": torch.randn(3, 4, 5, dtype=torch.float64), "b": torch.randn(3, 7, dtype=torch.float64)}
    masks = {"a": torch.rand(3, 4, 5) > 0.5}
    grads["a"].masked_fill_(~masks["a"], 0.0)
    rho = torch.tensor([0.1, 0.5, 0.0], dtype=torch.float64)
    e = sam_perturbation(grads, rho, masks)
    assert (e["a"][~masks["a"]] == 0.0).all()
    norms = torch.sqrt(sum(t.flatten(1).pow(2).sum(1) for t in e.values()))
    torch.testing.assert_close(norms, rho)
    nan_grads = {"a": torch.full((1, 4, 5), math.inf, dtype=torch.float64)}  # non-finite norm
    e = sam_perturbation(nan_grads, rho[:1], {"a": masks["a"][:1]})
    assert (e["a"][~masks["a"][:1]] == 0.0).all()


def test_sam_second_pass_sees_zero_masked_weights_and_frozen_bn_stats(data32):
    """Inside training: both passes see masked weights at 0.0, the perturbed pass is at distance rho
    (global norm of the masked gradient), and BN running stats move once per step (first pass only)."""
    model = tiny("conv1d", 0, data32, dtype=torch.float32, batchnorm=True)
    assert fusable([model, clone(model)], [Schedule(lr=0.1, batch_size=50, epochs=1)] * 2, data32.n_train)
    bn = model.features[1]
    masks = magnitude_masks(model, 0.25, prunable_parameters(model))
    seen = []
    model.register_forward_pre_hook(lambda mod, inp: seen.append((
        {n: p.detach().clone() for n, p in mod.named_parameters()},
        bn.running_mean.clone(),
        int(bn.num_batches_tracked),
    )) if mod.training else None)
    rho = 0.5
    s = Schedule(lr=0.1, batch_size=50, epochs=1, sam_rho=rho)
    steps = s.total_iterations(data32.n_train)
    [result] = train([model], data32, [s], [0], [masks])
    assert len(seen) == 2 * steps  # first pass + perturbed pass per step
    for weights, _, _ in seen:
        for name, keep in masks.items():
            assert (weights[name][~keep] == 0.0).all()
    for t in range(steps):
        (w1, mean1, n1), (w2, mean2, n2) = seen[2 * t], seen[2 * t + 1]
        distance = torch.sqrt(sum((w2[n] - w1[n]).double().pow(2).sum() for n in w1))
        assert distance.item() == pytest.approx(rho, rel=1e-4)  # e = rho * g / ||g||, g masked
        assert n2 == n1 + 1 == t + 1  # the first pass updated the running stats once
        if t + 1 < steps:
            _, mean_next, n_next = seen[2 * t + 2]
            assert n_next == n2 and torch.equal(mean_next, mean2)  # the perturbed pass changed nothing
    assert int(result.state["features.1.num_batches_tracked"]) == steps
    assert torch.equal(result.state["features.1.running_mean"], bn.running_mean)
    assert_masked_zero(result.state, masks)


# --- seeded streams ------------------------------------------------------------------------------------


def first_batches(model: nn.Module) -> list[torch.Tensor]:
    inputs: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda mod, inp: inputs.append(inp[0].clone()) if mod.training else None)
    return inputs


def test_same_seed_same_weights_different_seed_different_order(data64):
    runs = {}
    for label, seed in (("a", 5), ("b", 5), ("c", 6)):
        model = tiny("mlp", 0, data64)
        inputs = first_batches(model)
        [r] = train([model], data64, [Schedule(lr=0.05, batch_size=40, epochs=2)], [seed])
        runs[label] = (r.state, inputs)
    for name in runs["a"][0]:
        assert torch.equal(runs["a"][0][name], runs["b"][0][name])
    assert all(torch.equal(x, y) for x, y in zip(runs["a"][1], runs["b"][1]))
    assert not torch.equal(runs["a"][1][0], runs["c"][1][0])
    assert not torch.equal(runs["a"][0]["1.weight"], runs["c"][0]["1.weight"])
    # each epoch is a fresh permutation of all samples (drop_last: 400 / 40 = 10 batches)
    per_epoch = 10
    epoch1 = torch.cat(runs["a"][1][:per_epoch])
    epoch2 = torch.cat(runs["a"][1][per_epoch:])
    assert epoch1.shape[0] == data64.n_train == epoch2.shape[0]
    assert not torch.equal(epoch1, epoch2)
    torch.testing.assert_close(epoch1.sum(0), epoch2.sum(0))  # same samples, another order


# --- schedule and budget -------------------------------------------------------------------------------


def test_lr_schedule_decays_at_milestone_fractions(data64):
    s = Schedule(lr=0.1, batch_size=100, epochs=8, milestones=(0.5, 0.75), gamma=0.1)
    total = s.total_iterations(data64.n_train)
    assert total == 8 * 4
    assert [s.lr_at(i, total) for i in (0, 15, 16, 23, 24, 31)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    [r] = train([tiny("mlp", 0, data64)], data64, [s], [0], eval_every=4)
    assert r.curves["epoch"] == list(range(1, 9))
    assert r.curves["lr"] == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    evaluated = [v is not None for v in r.curves["test_error"]]
    assert evaluated == [False, False, False, True, False, False, False, True]


def test_iteration_budget_sets_the_number_of_steps(data64):
    """Batch-size knob: a fixed iteration count; the last, partial epoch still records its end."""
    s = Schedule(lr=0.05, batch_size=60, iterations=17)  # 400 // 60 = 6 per epoch -> 6 + 6 + 5
    model = tiny("mlp", 0, data64)
    inputs = first_batches(model)
    calls = []
    [r] = train([model], data64, [s], [0], checkpoint_epochs=(3,), progress=lambda d, t: calls.append((d, t)))
    assert len(inputs) == 17 and all(x.shape[0] == 60 for x in inputs)
    assert r.curves["epoch"] == [1, 2, 3]
    for name in r.state:
        assert torch.equal(r.checkpoints[3][name], r.state[name])
    assert calls[-1] == (17, 17) and all(t == 17 for _, t in calls) and len(calls) == 17
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_progress_can_cancel(data64):
    class Cancelled(Exception):
        pass

    def progress(done, total):
        if done >= 3:
            raise Cancelled

    models = [tiny("mlp", s, data64) for s in (0, 1)]
    with pytest.raises(Cancelled):
        train(models, data64, [Schedule(lr=0.05, batch_size=40, epochs=2)] * 2, [0, 1], progress=progress)


# --- divergence ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fuse", ["always", False])
def test_divergence_stops_one_model_and_spares_the_others(fuse, data64):
    models = [tiny("conv1d", s, data64) for s in (0, 1, 2)]
    alone = clone(models[2])
    good = Schedule(lr=0.05, batch_size=40, epochs=3, weight_decay=0.0)
    bad = Schedule(lr=1e300, batch_size=40, epochs=3, weight_decay=0.0)
    results = train(models, data64, [good, bad, good], [0, 1, 2], fuse=fuse, checkpoint_epochs=(3,))
    assert results[1].diverged and results[1].diverged_at is not None
    assert len(results[1].curves["epoch"]) == results[1].diverged_at
    assert math.isnan(results[1].curves["train_loss"][-1]) or math.isinf(results[1].curves["train_loss"][-1])
    assert 3 not in results[1].checkpoints and results[1].curves["test_error"][-1] is None
    assert not results[0].diverged and not results[2].diverged
    [reference] = train([alone], data64, [good], [2])
    for name in reference.state:
        torch.testing.assert_close(results[2].state[name], reference.state[name], rtol=0, atol=1e-10)
    assert results[2].curves["test_error"] == pytest.approx(reference.curves["test_error"], abs=1e-10)


# --- learning, inputs ----------------------------------------------------------------------------------


def test_small_conv_net_learns_mnist1d(cache):
    data = load_data(DataSpec(num_samples=2000), cache)
    model = tiny("conv1d", 0, data, dtype=torch.float32, widths=(16, 16))
    s = Schedule(lr=0.1, batch_size=32, epochs=6, weight_decay=5e-4)
    [r] = train([model], data, [s], [0])
    assert r.curves["test_error"][-1] < 0.6  # chance is 0.9
    assert r.curves["train_loss"][-1] < r.curves["train_loss"][0]


def test_bad_inputs_raise_one_line_messages(data64):
    with pytest.raises(ValueError, match="exactly one of epochs / iterations"):
        Schedule(lr=0.1, batch_size=10)
    with pytest.raises(ValueError, match="Schedule.lr"):
        Schedule(lr=-1.0, batch_size=10, epochs=1)
    with pytest.raises(ValueError, match="Schedule.momentum"):
        Schedule(lr=0.1, batch_size=10, epochs=1, momentum=1.0)
    model = tiny("mlp", 0, data64)
    with pytest.raises(ValueError, match="batch_size: 1000 exceeds the 400"):
        train([model], data64, [Schedule(lr=0.1, batch_size=1000, epochs=1)], [0])
    with pytest.raises(ValueError, match="'nope' is not a parameter"):
        train([model], data64, [Schedule(lr=0.1, batch_size=40, epochs=1)], [0], [{"nope": torch.ones(1).bool()}])
    with pytest.raises(ValueError, match="checkpoint_epochs: 5"):
        train([model], data64, [Schedule(lr=0.1, batch_size=40, epochs=1)], [0], checkpoint_epochs=(5,))
    with pytest.raises(ValueError, match="seeds has 2 entries"):
        train([model], data64, [Schedule(lr=0.1, batch_size=40, epochs=1)], [0, 1])


# --- strategy and execution options ----------------------------------------------------------------------


def _preresnets(tmp_path, n_train=32, seeds=(0, 1)):
    write_fake_cifar10(tmp_path, n_train=n_train, n_test=16)
    data = load_data(DataSpec(name="cifar10", root=str(tmp_path)), tmp_path)
    models = []
    for s in seeds:
        with seeded(s):
            models.append(build_model("preresnet", 10, (3, 32, 32), depth=20, width=0.5))
    return data, models


def test_fusion_pays_on_the_cpu_only_for_buffer_free_models(data32, tmp_path):
    """The CPU strategy: vmap for buffer-free nets (as before), one by one for BatchNorm models."""
    plain = [tiny("conv1d", s, data32, dtype=torch.float32) for s in (0, 1)]
    bn = [tiny("conv1d", s, data32, dtype=torch.float32, batchnorm=True) for s in (0, 1)]
    assert fusion_pays(plain, "cpu") and not fusion_pays(bn, "cpu")
    assert fusion_pays(bn, "cuda") and fusion_pays(bn, "meta")
    # fuse=True on the CPU trains the BN models one by one: bit-identical to fuse=False
    s = Schedule(lr=0.05, batch_size=50, epochs=1)
    copies = [clone(m) for m in bn]
    auto = train(bn, data32, [s, s], [0, 1], fuse=True)
    loop = train(copies, data32, [s, s], [0, 1], fuse=False)
    for a, b in zip(auto, loop):
        for name in a.state:
            assert torch.equal(a.state[name], b.state[name]), name


def test_channels_last_gives_the_same_training_to_float_rounding(tmp_path):
    """NHWC inputs (a speed option) change only float rounding: same weights, BN stats and curves."""
    data, models = _preresnets(tmp_path)
    masks = [magnitude_masks(m, 0.3, prunable_parameters(m)) for m in models]
    s = Schedule(lr=0.02, batch_size=8, epochs=2)
    copies = [clone(m) for m in models]
    nchw = train(models, data, [s, s], [0, 1], masks, fuse=False)
    nhwc = train(copies, data, [s, s], [0, 1], masks, fuse=False, channels_last=True)
    for a, b, mask in zip(nchw, nhwc, masks):
        for name in a.state:
            if a.state[name].is_floating_point():
                torch.testing.assert_close(b.state[name], a.state[name], rtol=1e-3, atol=1e-4)
        assert b.curves["test_error"] == pytest.approx(a.curves["test_error"], abs=1e-6)
        assert_masked_zero(b.state, mask)


@pytest.mark.parametrize("fuse", ["always", False])
def test_bf16_changes_final_test_error_by_less_than_the_tolerance(fuse, tmp_path):
    """bf16 autocast (float32 master weights, float32 BN statistics): a tiny run's final test error
    moves by < 0.08 (absolute fraction; 200 test images, i.e. at most 16 of them; measured 0.025
    after 80 steps) against float32,
    the masks stay exactly 0.0 and every state tensor stays float32."""
    data = learnable_images(320, 200)
    with seeded(0):
        base = build_model("preresnet", 10, (3, 32, 32), depth=8, width=0.5)
    models = [base, clone(base)]
    masks = [magnitude_masks(m, 0.4, prunable_parameters(m)) for m in models]
    s = Schedule(lr=0.1, batch_size=16, epochs=4)
    full = train([clone(m) for m in models], data, [s, s], [0, 1], masks, fuse=fuse)
    half = train(models, data, [s, s], [0, 1], masks, fuse=fuse, precision="bf16")
    for a, b, mask in zip(full, half, masks):
        assert a.curves["test_error"][-1] < 0.7  # learnt something (chance: 0.9): the comparison is not two chance levels
        assert abs(a.curves["test_error"][-1] - b.curves["test_error"][-1]) < 0.08
        assert all(t.dtype == torch.float32 for t in b.state.values() if t.is_floating_point())
        assert not torch.equal(a.state["conv1.weight"], b.state["conv1.weight"])  # bf16 really ran
        assert_masked_zero(b.state, mask)
    # no hook left behind: the modules compute in float32 again
    assert not any(m._forward_pre_hooks for m in models[0].modules())


def test_execution_options_are_checked(data32, data64):
    model = tiny("conv1d", 0, data64)
    s = Schedule(lr=0.1, batch_size=50, epochs=1)
    with pytest.raises(ValueError, match="precision 'bf16' needs float32"):
        train([model], data64, [s], [0], precision="bf16")
    with pytest.raises(ValueError, match="precision 'float32' but the models hold"):
        train([model], data64, [s], [0], precision="float32")
    with pytest.raises(ValueError, match="use one of float32, float64, bf16"):
        train([model], data64, [s], [0], precision="fp8")
    with pytest.raises(ValueError, match="fuse must be"):
        train([model], data64, [s], [0], fuse="sometimes")


def test_compile_is_a_no_op_off_cuda(data32):
    """compile=True only acts on a CUDA device: on the CPU the run is bit-identical to eager."""
    models = [tiny("conv1d", s, data32, dtype=torch.float32) for s in (0, 1)]
    copies = [clone(m) for m in models]
    s = Schedule(lr=0.1, batch_size=50, epochs=1)
    a = train(models, data32, [s, s], [0, 1], compile=True)
    b = train(copies, data32, [s, s], [0, 1])
    for x, y in zip(a, b):
        assert all(torch.equal(x.state[n], y.state[n]) for n in x.state)


def test_cpu_float_mask_gives_plus_zero_and_guards_non_finite_values():
    """The CPU step masks by a float multiply: masked positions == 0.0 (-x gives -0.0, which never
    reaches the weights; inf/NaN are filled with +0.0), kept values bit for bit (a kept NaN stays:
    the divergence guard must see it)."""
    from tprm.science.train import _ModuleSlot

    model = nn.Linear(3, 2)
    mask = {"weight": torch.tensor([[True, False, True], [False, True, True]])}
    slot = _ModuleSlot(model, mask, Schedule(lr=0.1, batch_size=2, epochs=1))
    assert slot.keep_f is not None  # the CPU path
    drop = slot.drop
    for masked_value, kept_value in ((-2.5, 1.25), (float("inf"), -3.0), (float("nan"), float("nan"))):
        t = torch.full_like(slot.w, kept_value)
        t[drop] = masked_value
        before = t.clone()
        slot._mask(t)
        assert torch.all(t[drop] == 0.0)
        assert torch.signbit(t[drop]).all() == (masked_value == -2.5)
        kept = t[~drop]
        assert torch.equal(kept.nan_to_num(7.0), before[~drop].nan_to_num(7.0))
    slot.release()


def test_masked_weights_stay_plus_zero_through_training_with_sam_and_batchnorm(data32):
    with seeded(1):
        models = [build_model("conv1d", 10, data32.input_shape, widths=[8, 8], batchnorm=True)]
    masks = [magnitude_masks(models[0], 0.3, prunable_parameters(models[0]))]
    res = train(models, data32, [Schedule(lr=0.1, batch_size=50, epochs=2, sam_rho=0.05)], [0], masks)[0]
    for name, m in masks[0].items():
        w = res.state[name][~m]
        assert torch.all(w == 0.0) and not torch.signbit(w).any()
        assert res.state[name][m].ne(0).all()
