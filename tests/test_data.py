"""tprm.science.data: mnist1d generation/cache, torchvision formats, normalisation, augmentation."""

from __future__ import annotations

import hashlib
import json
import os
import random

import numpy as np
import pytest
import torch

from fakedata import write_fake_cifar10, write_fake_cifar100, write_fake_svhn
from tprm.science.data import DataMissingError, DataSpec, TensorData, data_identity, load_data

SMALL = DataSpec(name="mnist1d", num_samples=200, seed=3)
FAKE_WRITERS = {"cifar10": write_fake_cifar10, "cifar100": write_fake_cifar100, "svhn": write_fake_svhn}


@pytest.fixture(scope="module")
def mnist_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mnist1d-cache")


# --- mnist1d -----------------------------------------------------------------------------------------


def test_mnist1d_shapes_classes_dtypes_match_the_generator(mnist_cache):
    from mnist1d.data import get_dataset_args, make_dataset

    data = load_data(SMALL, mnist_cache)
    assert (data.name, data.num_classes, data.input_shape) == ("mnist1d", 10, (1, 40))
    assert (data.n_train, data.n_test) == (160, 40)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert set(data.y_train.tolist()) == set(range(10))
    args = get_dataset_args()
    args.seed, args.num_samples = 3, 200
    reference = make_dataset(args)
    x, y = data.plain("train")
    assert x.shape == (160, 1, 40)
    assert torch.equal(x[:, 0], torch.from_numpy(reference["x"]).float())
    assert torch.equal(y, torch.from_numpy(reference["y"]))
    assert torch.equal(data.y_test, torch.from_numpy(reference["y_test"]))
    exact = load_data(SMALL, mnist_cache, dtype=torch.float64)
    assert exact.plain("test")[0].dtype == torch.float64
    assert torch.equal(exact.plain("test")[0][:, 0], torch.from_numpy(reference["x_test"]))


def test_mnist1d_cache_is_reused_without_calling_the_generator(tmp_path, monkeypatch):
    import mnist1d.data

    first = load_data(SMALL, tmp_path)
    files = list(tmp_path.glob("mnist1d-*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns

    def refuse(*_args, **_kwargs):
        raise AssertionError("generator called although the cache exists")

    monkeypatch.setattr(mnist1d.data, "make_dataset", refuse)
    second = load_data(SMALL, tmp_path)
    assert files[0].stat().st_mtime_ns == mtime
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    with pytest.raises(AssertionError, match="generator called"):
        load_data(DataSpec(num_samples=200, seed=4), tmp_path)  # a new setting does need the generator


def test_mnist1d_generation_leaves_global_rngs_alone(tmp_path):
    random.seed(1)
    np.random.seed(1)
    expected = (random.random(), np.random.rand())
    random.seed(1)
    np.random.seed(1)
    load_data(SMALL, tmp_path)
    assert (random.random(), np.random.rand()) == expected


def test_mnist1d_seed_changes_data_and_identity(mnist_cache):
    a = load_data(SMALL, mnist_cache)
    b = load_data(DataSpec(num_samples=200, seed=5), mnist_cache)
    assert not torch.equal(a.x_train, b.x_train)
    id_a, id_b = data_identity(SMALL), data_identity(DataSpec(num_samples=200, seed=5))
    assert id_a != id_b and id_a["generator"]["seed"] == 3
    assert id_a == data_identity(DataSpec(num_samples=200, seed=3, flip=False, mean=[0.0]))
    assert json.loads(json.dumps(id_a)) == id_a
    assert data_identity(DataSpec(num_samples=200, seed=3, train_subset=50)) != id_a


def test_subsets_keep_the_first_samples(mnist_cache):
    full = load_data(SMALL, mnist_cache)
    sub = load_data(DataSpec(num_samples=200, seed=3, train_subset=30, test_subset=7), mnist_cache)
    assert (sub.n_train, sub.n_test) == (30, 7)
    assert torch.equal(sub.x_train, full.x_train[:30]) and torch.equal(sub.y_test, full.y_test[:7])
    with pytest.raises(ValueError, match="train_subset"):
        load_data(DataSpec(num_samples=200, seed=3, train_subset=161), mnist_cache)


def test_plain_batches_are_ordered_and_respect_limit(mnist_cache):
    data = load_data(SMALL, mnist_cache)
    batches = list(data.plain_batches("train", 64))
    assert [len(y) for _, y in batches] == [64, 64, 32]
    assert torch.equal(torch.cat([x for x, _ in batches]), data.plain("train")[0])
    limited = list(data.plain_batches("test", 16, limit=20))
    assert [len(y) for _, y in limited] == [16, 4]
    assert torch.equal(limited[1][1], data.y_test[16:20])
    with pytest.raises(ValueError, match="split"):
        data.plain("valid")


# --- torchvision formats ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn"])
def test_torchvision_formats_round_trip_pixels_exactly(tmp_path, name):
    written = FAKE_WRITERS[name](tmp_path, n_train=24, n_test=10, seed=1)
    spec = DataSpec(name=name, root=str(tmp_path), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    data = load_data(spec, tmp_path / "cache", dtype=torch.float64)
    assert data.num_classes == (100 if name == "cifar100" else 10)
    assert data.input_shape == (3, 32, 32) and data.x_train.dtype == torch.uint8
    assert np.array_equal(data.x_train.numpy(), written["x_train"])
    assert np.array_equal(data.x_test.numpy(), written["x_test"])
    assert np.array_equal(data.y_train.numpy(), written["y_train"])
    assert np.array_equal(data.y_test.numpy(), written["y_test"])
    x, _ = data.plain("test")
    assert torch.equal(x, torch.from_numpy(written["x_test"]).double() / 255)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn"])
def test_missing_files_raise_with_the_expected_path(tmp_path, name):
    with pytest.raises(DataMissingError) as err:
        load_data(DataSpec(name=name, root=str(tmp_path)), tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and "download: true" in message and "\n" not in message
    with pytest.raises(DataMissingError):
        data_identity(DataSpec(name=name, root=str(tmp_path)))


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_root_may_be_the_data_sets_own_folder(tmp_path, name):
    """dataset.root pointing at cifar-10-batches-py itself reads the same files (issue 23, item 7)."""
    from tprm.science.data import dataset_status

    written = FAKE_WRITERS[name](tmp_path, n_train=10, n_test=5, seed=2)
    inner = tmp_path / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    data = load_data(DataSpec(name=name, root=str(inner)), tmp_path / "cache")
    assert np.array_equal(data.x_train.numpy(), written["x_train"])
    assert dataset_status(name, inner)["present"] and dataset_status(name, inner)["folder"] == str(inner)
    assert data_identity(DataSpec(name=name, root=str(inner)))["files"] == \
        data_identity(DataSpec(name=name, root=str(tmp_path)))["files"]


def test_default_normalisation_on_known_pixels(tmp_path):
    written = write_fake_cifar10(tmp_path, n_train=10, n_test=5)
    data = load_data(DataSpec(name="cifar10", root=str(tmp_path)), tmp_path, dtype=torch.float64)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    x, _ = data.plain("train", 2, 3)
    for c, h, w in [(0, 0, 0), (1, 5, 7), (2, 31, 31)]:
        v = int(written["x_train"][2, c, h, w])
        assert x[0, c, h, w].item() == (v / 255 - mean[c]) / std[c]
    svhn_root = tmp_path / "svhn"
    svhn_written = write_fake_svhn(svhn_root, n_train=4, n_test=4)
    svhn = load_data(DataSpec(name="svhn", root=str(svhn_root)), tmp_path, dtype=torch.float64)
    v = int(svhn_written["x_train"][1, 2, 3, 4])
    assert svhn.plain("train", 1, 2)[0][0, 2, 3, 4].item() == (v / 255 - 0.4728) / 0.1970
    assert (svhn.crop_padding, svhn.flip, data.crop_padding, data.flip) == (4, False, 4, True)


def test_identity_hashes_files_and_caches_digests(tmp_path):
    write_fake_cifar10(tmp_path, n_train=10, n_test=5)
    spec = DataSpec(name="cifar10", root=str(tmp_path))
    folder = tmp_path / "cifar-10-batches-py"
    identity = data_identity(spec)
    expected = hashlib.sha256((folder / "data_batch_1").read_bytes()).hexdigest()
    assert identity["files"]["data_batch_1"] == expected and len(identity["files"]) == 7
    assert identity["normalisation"]["std"] == [0.2023, 0.1994, 0.2010]
    assert identity["augmentation"] == {"crop_padding": 4, "flip": True}
    cache_file = folder / ".tprm-sha256.json"
    cache = json.loads(cache_file.read_text())
    cache["test_batch"]["sha256"] = "cached-value"  # a matching (size, mtime) entry is trusted, not rehashed
    cache_file.write_text(json.dumps(cache))
    assert data_identity(spec)["files"]["test_batch"] == "cached-value"
    st = (folder / "test_batch").stat()
    os.utime(folder / "test_batch", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert data_identity(spec)["files"]["test_batch"] == identity["files"]["test_batch"]
    write_fake_cifar10(tmp_path, n_train=10, n_test=5, seed=9)
    assert data_identity(spec)["files"] != identity["files"]


# --- augmentation -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_fake_cifar10(root, n_train=40, n_test=8, seed=2)
    return load_data(DataSpec(name="cifar10", root=str(root)), root, dtype=torch.float64)


def _batch(data, seed, idx=torch.arange(40)):
    return data.train_batch(idx, torch.Generator().manual_seed(seed))


def test_augmentation_is_a_function_of_the_generator_seed(cifar):
    x1, y1 = _batch(cifar, 7)
    x2, _ = _batch(cifar, 7)
    x3, _ = _batch(cifar, 8)
    assert x1.shape == (40, 3, 32, 32) and torch.equal(y1, cifar.y_train)
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    assert not torch.equal(x1, cifar.plain("train")[0])
    assert torch.equal(cifar.train_batch(torch.arange(40), None)[0], cifar.plain("train")[0])


def test_crop_and_flip_are_windows_of_the_zero_padded_image(cifar):
    x, _ = _batch(cifar, 11)
    raw = cifar.x_train
    padded = torch.zeros(40, 3, 40, 40, dtype=torch.uint8)
    padded[:, :, 4:36, 4:36] = raw
    padded = cifar.normalise(padded)
    seen_offsets, seen_flips = set(), set()
    for i in range(40):
        matches = [
            (dy, dx, flipped)
            for dy in range(9)
            for dx in range(9)
            for flipped in (False, True)
            if torch.equal(x[i], (lambda w: w.flip(-1) if flipped else w)(padded[i, :, dy:dy + 32, dx:dx + 32]))
        ]
        assert len(matches) == 1, f"sample {i} is not one crop/flip of its padded image"
        seen_offsets.add(matches[0][:2])
        seen_flips.add(matches[0][2])
    assert seen_flips == {False, True} and len(seen_offsets) > 10


def test_flip_only_and_one_dimensional_crop(mnist_cache):
    flip = load_data(DataSpec(num_samples=200, seed=3, crop_padding=0, flip=True), mnist_cache)
    x, _ = flip.train_batch(torch.arange(50), torch.Generator().manual_seed(0))
    plain = flip.plain("train", 0, 50)[0]
    flipped = [torch.equal(x[i], plain[i].flip(-1)) for i in range(50)]
    kept = [torch.equal(x[i], plain[i]) for i in range(50)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    crop = load_data(DataSpec(num_samples=200, seed=3, crop_padding=3), mnist_cache)
    x, _ = crop.train_batch(torch.arange(50), torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(crop.plain("train", 0, 50)[0], (3, 3))
    for i in range(50):
        assert any(torch.equal(x[i], padded[i, :, s:s + 40]) for s in range(7))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_generator_drives_augmentation_of_cuda_data(cifar):
    gpu = cifar.to("cuda")
    xg, yg = gpu.train_batch(torch.arange(40), torch.Generator().manual_seed(7))
    xc, yc = _batch(cifar, 7)
    assert xg.device.type == "cuda" and torch.allclose(xg.cpu(), xc) and torch.equal(yg.cpu(), yc)


# --- spec ---------------------------------------------------------------------------------------------


def test_resolved_fills_dataset_defaults_and_validates():
    r = DataSpec(name="cifar100").resolved()
    assert (r.num_classes, r.input_shape, DataSpec().input_shape) == (100, (3, 32, 32), (1, 40))
    assert (r.crop_padding, r.flip, r.mean, r.std) == (4, True, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
    assert DataSpec(name="svhn", flip=True).resolved().flip is True
    assert DataSpec().resolved().mean == (0.0,)
    assert DataSpec(mean=[0.5]) == DataSpec(mean=(0.5,))
    with pytest.raises(ValueError, match="unknown dataset 'mnist2d'; allowed: mnist1d, cifar10"):
        DataSpec(name="mnist2d").resolved()
    with pytest.raises(ValueError, match="DataSpec.mean: cifar10 has 3 channel"):
        DataSpec(name="cifar10", mean=(0.5,)).resolved()
    with pytest.raises(ValueError, match="crop_padding"):
        DataSpec(crop_padding=-1).resolved()


def test_tensor_data_from_user_tensors_normalises_per_channel():
    x = torch.full((4, 2, 3), 3, dtype=torch.float64)
    data = TensorData(
        "mine", x, torch.zeros(4), x[:2], torch.zeros(2), 2, mean=(1.0, 2.0), std=(2.0, 0.5), dtype=torch.float64
    )
    out, _ = data.plain("train")
    assert torch.equal(out[:, 0], torch.full((4, 3), 1.0, dtype=torch.float64))
    assert torch.equal(out[:, 1], torch.full((4, 3), 2.0, dtype=torch.float64))
