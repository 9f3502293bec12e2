"""Tests of tprm.science.metrics: exact math on known inputs, real models on real MNIST-1D."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from tprm.science import metrics
from tprm.science.data import DataSpec, TensorData, load_data
from tprm.science.hessian import hessian_top_eigenvalue, hessian_trace, hutchinson_trace, hvp, power_iteration
from tprm.science.metrics import (
    cka_outputs,
    evaluate,
    linear_cka,
    lmc,
    mc_from_curve,
    model_outputs,
    recompute_bn,
)
from tprm.science.models import build_model


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> TensorData:
    """Real MNIST-1D, small: 480 train / 120 test samples."""
    torch.set_num_threads(1)
    return load_data(DataSpec(name="mnist1d", num_samples=600), cache_dir=tmp_path_factory.mktemp("mnist1d"))


BN_CONV = {"widths": (16, 16), "batchnorm": True}  # a small conv1d that has BatchNorm running stats


def _model(name: str, data: TensorData, seed: int, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, data.num_classes, data.input_shape, **kwargs)


def _sgd(model: nn.Module, data: TensorData, steps: int, seed: int, lr: float = 0.05) -> nn.Module:
    """A few plain SGD steps so the model is not at its random init (keeps the tests meaningful)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, data.n_train, (64,), generator=generator)
        x, y = data.train_batch(idx, generator)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    now = model.state_dict()
    assert now.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(now[key], value), key


# --------------------------------------------------------------------------------------------- CKA


def _hsic_direct(k: torch.Tensor, l: torch.Tensor) -> float:
    n = k.shape[0]
    h = torch.eye(n, dtype=torch.float64) - torch.full((n, n), 1.0 / n, dtype=torch.float64)
    return float(torch.trace(k @ h @ l @ h)) / (n - 1) ** 2


def _cka_direct(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double(), y.double()
    k, l = x @ x.T, y @ y.T
    return _hsic_direct(k, l) / math.sqrt(_hsic_direct(k, k) * _hsic_direct(l, l))


def test_cka_of_features_with_themselves_is_one() -> None:
    x = torch.randn(200, 7, generator=torch.Generator().manual_seed(0))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(150, 6, generator=g)
    y = x @ torch.randn(6, 5, generator=g) + 0.5 * torch.randn(150, 5, generator=g)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    base = linear_cka(x, y)
    assert 0.2 < base < 0.999
    assert linear_cka(x, y.double() @ q) == pytest.approx(base, rel=1e-9)
    assert linear_cka(3.7 * x, 0.01 * y) == pytest.approx(base, rel=1e-9)
    assert linear_cka(x + 5.0, y - 2.0) == pytest.approx(base, rel=1e-6)  # centring


@pytest.mark.parametrize("n, dx, dy", [(60, 5, 3), (12, 30, 20)])  # feature form and Gram form
def test_cka_matches_the_direct_hsic_formula(n: int, dx: int, dy: int) -> None:
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, dx, generator=g) * torch.linspace(0.1, 3.0, dx)
    y = torch.tanh(x[:, :1] * torch.randn(1, dy, generator=g)) + torch.randn(n, dy, generator=g)
    assert linear_cka(x, y) == pytest.approx(_cka_direct(x, y), rel=1e-9)


def test_cka_of_unrelated_random_features_is_clearly_below_one() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(1000, 10, generator=g), torch.randn(1000, 10, generator=g)
    assert linear_cka(x, y) < 0.2


def test_cka_rejects_mismatched_samples_and_flags_constant_features() -> None:
    with pytest.raises(ValueError, match="samples"):
        linear_cka(torch.randn(10, 3), torch.randn(11, 3))
    assert math.isnan(linear_cka(torch.ones(10, 3), torch.randn(10, 3)))


def test_cka_outputs_of_a_model_with_itself_and_softmax_outputs(data: TensorData) -> None:
    model = _model("mlp", data, seed=0)
    probs = model_outputs(model, data, samples=100_000)
    assert probs.shape == (data.n_train, data.num_classes)  # capped at the train-set size
    assert torch.allclose(probs.sum(dim=1), torch.ones(data.n_train), atol=1e-5)
    logits = model_outputs(model, data, samples=50, kind="logits")
    x, _ = data.plain("train", 0, 50)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(logits, model(x))
    same = cka_outputs(model, copy.deepcopy(model), data, samples=300)
    assert same["samples"] == 300
    assert same["cka_softmax"] == pytest.approx(1.0, abs=1e-9)
    assert same["cka_logits"] == pytest.approx(1.0, abs=1e-9)
    other = cka_outputs(model, _model("mlp", data, seed=1), data, samples=300)
    assert other["cka_logits"] < 0.99
    with pytest.raises(ValueError, match="kind"):
        model_outputs(model, data, kind="probs")


# --------------------------------------------------------------------------------------------- mc


def test_mc_from_hand_made_curves() -> None:
    assert mc_from_curve([0.1, 0.5, 0.9, 0.5, 0.1]) == pytest.approx(-0.8)  # barrier
    assert mc_from_curve([0.2] * 11) == 0.0  # flat
    assert mc_from_curve([0.3, 0.1, 0.05, 0.2, 0.3]) == pytest.approx(0.25)  # convex dip
    # endpoint extreme: the largest deviation from the endpoint mean is an endpoint itself
    assert mc_from_curve([0.0, 0.39, 0.41, 0.4, 0.8]) == pytest.approx(0.4 - 0.0)
    assert mc_from_curve(torch.tensor([0.1, 0.3, 0.1])) == pytest.approx(-0.2)
    assert math.isnan(mc_from_curve([0.1, float("nan"), 0.1]))
    with pytest.raises(ValueError, match="values"):
        mc_from_curve([0.1])


# ----------------------------------------------------------------------------------- evaluation


def test_evaluate_matches_a_direct_computation_and_restores_modes(data: TensorData) -> None:
    model = _sgd(_model("conv1d", data, seed=0, **BN_CONV), data, steps=20, seed=0)
    model.train()
    before = _state_copy(model)
    result = evaluate(model, data, "test", batch_size=7)
    x, y = data.plain("test")
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert result["loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert result["error"] == pytest.approx(float((logits.argmax(1) != y).float().mean()))
    model.train()
    evaluate(model, data, "train")
    assert all(m.training for m in model.modules())
    _assert_same_state(model, before)  # BN running stats untouched
    with pytest.raises(ValueError, match="split"):
        evaluate(model, data, "valid")


# ------------------------------------------------------------------------------------ BN recompute


def _feature_data(x: torch.Tensor) -> TensorData:
    """A real TensorData holding float64 features as (N, C, 1) signals (labels unused by BN)."""
    labels = torch.zeros(len(x), dtype=torch.long)
    return TensorData("features", x[:, :, None], labels, x[:2, :, None], labels[:2], 2, dtype=torch.float64)


def test_bn_recompute_gives_data_mean_and_average_of_batch_variances() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5]) + 3.0
    x[48:] += 1.0  # batches differ, so the between-batch term matters
    bn = nn.BatchNorm1d(3, momentum=0.3).double()
    model = nn.Sequential(nn.Flatten(), bn, nn.Dropout(0.5), nn.Linear(3, 2)).double()
    model.eval()
    bn.running_mean.fill_(7.0)
    recompute_bn(model, _feature_data(x), batch_size=32)
    batches = x.split(32)
    assert torch.allclose(bn.running_mean, x.mean(0), rtol=0, atol=1e-12)
    expected_var = torch.stack([b.var(0, unbiased=True) for b in batches]).mean(0)
    assert torch.allclose(bn.running_var, expected_var, rtol=0, atol=1e-12)
    assert not torch.allclose(bn.running_var, x.var(0), atol=1e-3)  # not the full-data variance
    assert int(bn.num_batches_tracked) == 3
    assert bn.momentum == 0.3 and not any(m.training for m in model.modules())

    extra = torch.cat([x, torch.full((1, 3), 100.0, dtype=torch.float64)])
    recompute_bn(model, _feature_data(extra), batch_size=32)  # a trailing 1-sample batch is skipped
    assert torch.allclose(bn.running_mean, x.mean(0), rtol=0, atol=1e-12)
    assert torch.allclose(bn.running_var, expected_var, rtol=0, atol=1e-12)

    recompute_bn(model, _feature_data(x), batch_size=len(x))  # one batch: the exact unbiased variance
    assert torch.allclose(bn.running_var, x.var(0, unbiased=True), rtol=0, atol=1e-12)
    assert torch.allclose(bn.running_mean, x.mean(0), rtol=0, atol=1e-12)


def test_bn_recompute_weights_a_short_last_batch_by_its_size() -> None:
    """100 samples in batches of 32 (32, 32, 32, 4): as the authors' update_bn (momentum b / (n + b))."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(100, 2, generator=g, dtype=torch.float64) * 2.0 + 1.0
    x[96:] += 5.0  # the short batch is far off: equal batch weights would move the stats a lot
    bn = nn.BatchNorm1d(2).double()
    model = nn.Sequential(nn.Flatten(), bn).double()
    recompute_bn(model, _feature_data(x), batch_size=32)
    # by hand, from the definition of the per-batch unbiased variance
    sizes, means, variances = [], [], []
    for start in (0, 32, 64, 96):
        b = x[start:start + 32]
        n = b.shape[0]
        mu = b.sum(0) / n
        sizes.append(n)
        means.append(mu)
        variances.append(((b - mu) ** 2).sum(0) / (n - 1))
    total = sum(sizes)
    hand_mean = sum(n * m for n, m in zip(sizes, means)) / total
    hand_var = sum(n * v for n, v in zip(sizes, variances)) / total
    assert sizes == [32, 32, 32, 4]
    assert torch.allclose(bn.running_mean, hand_mean, rtol=0, atol=1e-12)
    assert torch.allclose(bn.running_mean, x.mean(0), rtol=0, atol=1e-12)  # the exact data mean
    assert torch.allclose(bn.running_var, hand_var, rtol=0, atol=1e-12)
    equal_weights = sum(variances) / 4
    assert not torch.allclose(bn.running_var, equal_weights, atol=1e-2)  # the old rule differs
    assert bn.momentum == 0.1


def test_bn_recompute_of_an_inner_layer_and_of_a_model_without_bn() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g, dtype=torch.float64)
    linear = nn.Linear(4, 5).double()
    bn = nn.BatchNorm1d(5).double()
    model = nn.Sequential(nn.Flatten(), linear, bn, nn.ReLU(), nn.Linear(5, 2)).double()
    model.train()
    recompute_bn(model, _feature_data(x), batch_size=16)
    with torch.no_grad():
        h = linear(x)
    assert torch.allclose(bn.running_mean, h.mean(0), atol=1e-12)
    assert torch.allclose(bn.running_var, torch.stack([b.var(0) for b in h.split(16)]).mean(0), atol=1e-12)
    assert all(m.training for m in model.modules())

    plain = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).double()
    before = _state_copy(plain)
    recompute_bn(plain, _feature_data(x))
    _assert_same_state(plain, before)


# --------------------------------------------------------------------------------------------- LMC


def test_lmc_of_a_model_with_itself_is_flat_and_zero(data: TensorData) -> None:
    model = _sgd(_model("conv1d", data, seed=0, **BN_CONV), data, steps=30, seed=0)
    result = lmc(model, model, data, points=5)
    assert result["t"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert result["points"] == 5
    for key in ("train_error", "train_loss", "test_error", "test_loss"):
        assert len(result[key]) == 5
        assert max(result[key]) - min(result[key]) < 1e-6, key
    assert result["train_error"][0] < 0.85  # really trained a little
    assert result["mc"] == 0.0 and abs(result["mc_loss"]) < 1e-6 and result["endpoint_gap"] == 0.0


def test_lmc_leaves_its_inputs_untouched_and_recomputes_bn_at_the_endpoints(data: TensorData) -> None:
    a = _sgd(_model("conv1d", data, seed=0, **BN_CONV), data, steps=30, seed=0)
    b = _sgd(_model("conv1d", data, seed=1, **BN_CONV), data, steps=30, seed=1)
    a.train()
    b.eval()
    state_a, state_b = _state_copy(a), _state_copy(b)
    result = lmc(a, b, data, points=3, bn_batch_size=64, test=False, on="loss")
    _assert_same_state(a, state_a)
    _assert_same_state(b, state_b)
    assert all(m.training for m in a.modules()) and not any(m.training for m in b.modules())
    assert all(p.requires_grad for p in a.parameters())
    assert result["test_error"] == [] and result["test_loss"] == []
    assert result["mc_selected"] == result["mc_loss"]

    for model, index in ((a, 0), (b, -1)):
        twin = copy.deepcopy(model)
        recompute_bn(twin, data, batch_size=64)
        expected = evaluate(twin, data, "train")
        assert result["train_error"][index] == pytest.approx(expected["error"])
        assert result["train_loss"][index] == pytest.approx(expected["loss"], rel=1e-6)
    assert result["endpoint_gap"] == pytest.approx(abs(result["train_error"][0] - result["train_error"][-1]))
    assert result["mc"] == pytest.approx(mc_from_curve(result["train_error"]))


def test_lmc_midpoint_is_the_average_of_the_weights(data: TensorData) -> None:
    a = _sgd(_model("mlp", data, seed=0), data, steps=30, seed=0)
    b = _sgd(_model("mlp", data, seed=1), data, steps=30, seed=1)
    assert not metrics.batch_norm_layers(a)
    middle = copy.deepcopy(a)
    with torch.no_grad():
        for p, pa, pb in zip(middle.parameters(), a.parameters(), b.parameters()):
            p.copy_((pa + pb) / 2)
    result = lmc(a, b, data, points=3)
    for split in ("train", "test"):
        expected = evaluate(middle, data, split)
        assert result[f"{split}_loss"][1] == pytest.approx(expected["loss"], rel=1e-5)
        assert result[f"{split}_error"][1] == pytest.approx(expected["error"])
    assert result["train_loss"][1] != pytest.approx(result["train_loss"][0], rel=1e-3)


def test_lmc_rejects_bad_arguments(data: TensorData) -> None:
    a = _model("mlp", data, seed=0)
    with pytest.raises(ValueError, match="model_b"):
        lmc(a, _model("conv1d", data, seed=0, **BN_CONV), data)
    with pytest.raises(ValueError, match="points"):
        lmc(a, a, data, points=1)
    with pytest.raises(ValueError, match="on"):
        lmc(a, a, data, on="accuracy")


# ----------------------------------------------------------------------------------------- Hessian


def _dense_symmetric(eigenvalues: list[float], seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T


def test_hvp_and_hutchinson_on_a_quadratic_form_with_a_dense_matrix() -> None:
    a = _dense_symmetric([5.0, 3.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.0], seed=0)
    w = torch.randn(8, dtype=torch.float64, requires_grad=True)
    v = torch.randn(8, dtype=torch.float64)
    loss_fn = lambda: 0.5 * w @ a @ w  # noqa: E731
    (hv,) = hvp(loss_fn, [w], [v])
    assert torch.allclose(hv, a @ v, atol=1e-12)
    generator = torch.Generator().manual_seed(0)
    trace, std_error = hutchinson_trace(lambda vec: hvp(loss_fn, [w], vec), [w.shape], 200, generator,
                                        dtype=torch.float64)
    exact = float(torch.trace(a))
    assert std_error > 0.05  # off-diagonal entries make single probes noisy
    assert abs(trace - exact) < 4 * std_error


def _flat_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        params = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    return loss, torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.fixture(scope="module")
def tiny_net(data: TensorData):
    """A trained 40-4-10 tanh net and its exact loss Hessian on the first 64 train samples."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(40, 4), nn.Tanh(), nn.Linear(4, 10))
    _sgd(model, data, steps=40, seed=0)
    x, y = data.plain("train", 0, 64)
    loss, flat = _flat_loss(model, x, y)
    return model, torch.autograd.functional.hessian(loss, flat)


def test_hessian_trace_of_a_small_net_agrees_with_the_exact_trace(data: TensorData, tiny_net) -> None:
    model, exact_hessian = tiny_net
    exact = float(torch.trace(exact_hessian))
    off_diagonal = exact_hessian - torch.diag(torch.diagonal(exact_hessian))
    assert float(off_diagonal.abs().max()) > 1e-3  # a genuinely non-diagonal Hessian
    model.train()
    result = hessian_trace(model, data, samples=64, probes=64, seed=3, batch_size=24)
    assert result["samples"] == 64 and result["probes"] == 64
    assert abs(result["trace"] - exact) < 4 * result["trace_std_error"]
    assert result["trace_std_error"] < 0.5 * abs(exact)
    assert all(m.training for m in model.modules())
    again = hessian_trace(model, data, samples=64, probes=64, seed=3)  # one batch, same seed: same probes
    assert again["trace"] == pytest.approx(result["trace"], rel=1e-4)


def test_power_iteration_finds_the_top_eigenvalue() -> None:
    a = _dense_symmetric([9.0, 4.0, 3.0, 1.0, 0.5, 0.0], seed=1)
    generator = torch.Generator().manual_seed(0)
    top = power_iteration(lambda v: [a @ v[0]], [(6,)], 30, generator, dtype=torch.float64)
    assert top == pytest.approx(9.0, rel=1e-9)


def test_hessian_top_eigenvalue_of_a_small_net(data: TensorData, tiny_net) -> None:
    model, exact_hessian = tiny_net
    eigenvalues = torch.linalg.eigvalsh(exact_hessian)
    dominant = float(eigenvalues[eigenvalues.abs().argmax()])
    result = hessian_top_eigenvalue(model, data, samples=64, iters=100, seed=0)
    assert result["iters"] == 100 and result["samples"] == 64
    assert result["eigenvalue"] == pytest.approx(dominant, rel=1e-3)


@pytest.mark.parametrize("arch, kwargs", [("conv1d", BN_CONV), ("mlp", {})])
def test_batched_lmc_gives_the_point_by_point_curves(arch, kwargs, data: TensorData) -> None:
    """All points as one vmapped model == one point at a time (BN recomputed per point, a short
    last BN batch included: 480 = 7 x 64 + 32)."""
    a = _sgd(_model(arch, data, seed=0, **kwargs), data, steps=30, seed=0)
    b = _sgd(_model(arch, data, seed=1, **kwargs), data, steps=30, seed=1)
    state_a = _state_copy(a)
    loop = lmc(a, b, data, points=5, batched=False, eval_batch_size=100)
    fused = lmc(a, b, data, points=5, batched=True, eval_batch_size=100)
    _assert_same_state(a, state_a)
    for key in ("train_error", "train_loss", "test_error", "test_loss"):
        assert fused[key] == pytest.approx(loop[key], abs=1e-5), key
    assert fused["mc"] == pytest.approx(loop["mc"], abs=1e-6)
    assert max(loop["train_loss"][1:-1]) > loop["train_loss"][0] + 1e-3  # a real, non-flat curve


def test_the_cpu_batches_lmc_by_default_for_nets_without_buffers_only(data: TensorData, monkeypatch) -> None:
    """batched=None on the CPU: a buffer-free net's points go through one vmapped pass (it pays there),
    a BatchNorm net's one by one."""
    from tprm.science import metrics

    passes = []
    real = metrics._batched_curves
    monkeypatch.setattr(metrics, "_batched_curves", lambda *a, **k: passes.append(1) or real(*a, **k))
    plain = [_model("conv1d", data, seed=s) for s in (0, 1)]
    with_bn = [_model("conv1d", data, seed=s, **BN_CONV) for s in (0, 1)]
    lmc(*plain, data, points=3)
    assert passes == [1]
    lmc(*with_bn, data, points=3)
    assert passes == [1]


def test_channels_last_lmc_and_cka_give_the_same_numbers_on_a_2d_bn_net() -> None:
    """NHWC batches (the CPU's fast layout for 2-D convolutions) give the same LMC curve and CKA."""
    from tprm.science.models import seeded

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (200, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (200,), generator=g)
    data = TensorData("rgb", images[:136], labels[:136], images[136:], labels[136:], 10,
                      mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    models = []
    for seed in (0, 1):
        with seeded(seed):
            models.append(_sgd(build_model("preresnet", 10, (3, 32, 32), depth=8, width=0.5), data, 10, seed))
    nchw = lmc(*models, data, points=4, batched=False, eval_batch_size=50)
    nhwc = lmc(*models, data, points=4, batched=False, eval_batch_size=50, channels_last=True)
    for key in ("train_error", "train_loss", "test_error", "test_loss"):
        assert nhwc[key] == pytest.approx(nchw[key], abs=1e-4), key
    assert max(nchw["train_loss"]) > min(nchw["train_loss"]) + 1e-3  # a real curve
    cka = cka_outputs(*models, data, samples=100)
    cka_cl = cka_outputs(*models, data, samples=100, channels_last=True)
    assert cka_cl["cka_softmax"] == pytest.approx(cka["cka_softmax"], abs=1e-5)


def test_the_pairs_of_a_grid_row_batched_in_one_pass_give_each_pairs_own_curves(data: TensorData) -> None:
    """lmc_pairs over 3 pairs of 3 BN models, batched in chunks (2 pairs, then 1) == lmc of each pair
    point by point; cka_pairs == cka_outputs of each pair."""
    from tprm.science.metrics import cka_pairs, lmc_pairs

    models = [_sgd(_model("conv1d", data, seed=s, **BN_CONV), data, steps=20 + 10 * s, seed=s) for s in range(3)]
    pairs = [(0, 1), (2, 0), (1, 2)]
    states = [_state_copy(m) for m in models]
    rows = lmc_pairs(models, pairs, data, points=4, batched=True, eval_batch_size=100, max_batched=8)
    for model, state in zip(models, states):
        _assert_same_state(model, state)
    assert len(rows) == 3
    for (a, b), row in zip(pairs, rows):
        alone = lmc(models[a], models[b], data, points=4, batched=False, eval_batch_size=100)
        for key in ("train_error", "train_loss", "test_error", "test_loss"):
            assert row[key] == pytest.approx(alone[key], abs=1e-5), (a, b, key)
        assert row["mc"] == pytest.approx(alone["mc"], abs=1e-6)
    assert rows[0]["train_loss"] != pytest.approx(rows[2]["train_loss"], abs=1e-3)  # pairs not mixed up
    sims = cka_pairs(models, pairs, data, samples=200)
    assert [s["cka_softmax"] for s in sims] == [cka_outputs(models[a], models[b], data, samples=200)["cka_softmax"]
                                                for a, b in pairs]
    with pytest.raises(ValueError, match=r"pairs: \(0, 3\)"):
        lmc_pairs(models, [(0, 3)], data)
