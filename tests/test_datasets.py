"""The dataset registry's sets (issue 23, items 9 and 10): MNIST, Fashion-MNIST, KMNIST, STL-10 and
imagefolder read from tiny files in their real formats, trained on for a real step; official
checksums flag files that differ (in `data list`, fetch, the job log and the report)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch

from conftest import run_tprm
from fakedata import tiny_factory, write_fake_cifar10, write_fake_imagefolder, write_fake_mnist, write_fake_stl10
from tprm.science import datasets_registry
from tprm.science.data import DataMissingError, DataSpec, data_identity, dataset_status, load_data

MNIST_FOLDERS = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "kmnist": "KMNIST"}
IDENTITY = {"mnist": (0.0,), "fashionmnist": (0.0,), "kmnist": (0.0,), "stl10": (0.0, 0.0, 0.0)}


def _write(name: str, root, seed: int = 0) -> dict:
    if name == "stl10":
        return write_fake_stl10(root, seed=seed)
    return write_fake_mnist(root, MNIST_FOLDERS[name], seed=seed)


def _one_sgd_step(data) -> None:
    """One real training step of a small model on the loaded set: finite loss, weights move."""
    torch.manual_seed(0)
    model = tiny_factory(num_classes=data.num_classes, input_shape=data.input_shape)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = data.train_batch(torch.arange(min(8, data.n_train)), torch.Generator().manual_seed(1))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("name", ["mnist", "fashionmnist", "kmnist", "stl10"])
def test_file_formats_read_exactly_and_train_a_step(tmp_path, name):
    written = _write(name, tmp_path)
    spec = DataSpec(name=name, root=str(tmp_path), mean=IDENTITY[name], std=tuple(1.0 for _ in IDENTITY[name]))
    data = load_data(spec, tmp_path / "cache", dtype=torch.float64)
    shape = (3, 96, 96) if name == "stl10" else (1, 28, 28)
    assert (data.num_classes, data.input_shape, data.x_train.dtype) == (10, shape, torch.uint8)
    for key in ("x_train", "x_test", "y_train", "y_test"):
        assert np.array_equal(getattr(data, key).numpy(), written[key]), key
    assert torch.equal(data.plain("test")[0], torch.from_numpy(written["x_test"]).double() / 255)
    _one_sgd_step(load_data(DataSpec(name=name, root=str(tmp_path)), tmp_path / "cache"))


def test_mnist_root_may_be_its_own_folder_and_missing_files_are_named(tmp_path):
    written = write_fake_mnist(tmp_path, "KMNIST", n_train=10, n_test=10)
    for inner in (tmp_path / "KMNIST", tmp_path / "KMNIST" / "raw"):
        data = load_data(DataSpec(name="kmnist", root=str(inner)), tmp_path / "cache")
        assert np.array_equal(data.y_train.numpy(), written["y_train"])
    with pytest.raises(DataMissingError, match=r"missing train-images-idx3-ubyte.gz.* in .*MNIST/raw"):
        load_data(DataSpec(name="mnist", root=str(tmp_path)), tmp_path / "cache")


@pytest.mark.parametrize("test_dir", ["test", "val"])
def test_imagefolder_resizes_labels_by_class_folder_and_trains(tmp_path, test_dir):
    colours = write_fake_imagefolder(tmp_path, per_class=2, test_dir=test_dir)
    spec = DataSpec(name="imagefolder", root=str(tmp_path), size=8)
    assert (spec.num_classes, spec.input_shape) == (3, (3, 8, 8))
    data = load_data(spec, tmp_path / "cache")
    assert (data.n_train, data.n_test, data.num_classes, data.input_shape) == (6, 6, 3, (3, 8, 8))
    assert data.y_train.tolist() == [0, 0, 1, 1, 2, 2] == data.y_test.tolist()
    for label, colour in enumerate(colours.values()):  # a solid colour stays itself through the resize
        solid = torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1).expand(3, 8, 8)
        assert torch.equal(data.x_test[2 * label], solid)
    _one_sgd_step(data)
    identity = data_identity(spec)
    assert len(identity["files"]) == 12 and f"{test_dir}/cat/img1.png" in identity["files"]
    (tmp_path / "train" / "dog").mkdir()  # a new class folder is a new data set
    assert DataSpec(name="imagefolder", root=str(tmp_path)).num_classes == 4


def test_imagefolder_without_its_folders_says_what_is_expected(tmp_path, capsys, monkeypatch):
    from conftest import call

    with pytest.raises(DataMissingError, match="train/ and test/"):
        assert DataSpec(name="imagefolder", root=str(tmp_path)).num_classes > 0
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "b").mkdir()
    with pytest.raises(DataMissingError, match="no test or val folder"):
        load_data(DataSpec(name="imagefolder", root=str(tmp_path)), tmp_path)
    recipe = tmp_path / "imf.yaml"
    recipe.write_text("name: imf\ndataset: {name: imagefolder, root: .}\nmodel: {name: mlp}\n")
    code, _, err = call(capsys, monkeypatch, "run", str(recipe), "--dry-run", "--store", str(tmp_path / "s"))
    assert code == 2 and "has no test or val folder" in err and err.strip().count("\n") == 0, err
    with pytest.raises(ValueError, match="only imagefolder images are resized"):
        DataSpec(name="mnist", size=16).resolved()


def test_every_registry_entry_is_complete_and_listed(tmp_path):
    rows = {r["name"]: r for r in json.loads(run_tprm("data", "list", "--json", "--store", str(tmp_path)).stdout)}
    assert list(rows) == list(datasets_registry.DATASET_NAMES)
    for name, entry in datasets_registry.REGISTRY.items():
        spec = DataSpec(name=name).resolved()
        assert len(spec.mean) == len(spec.std) == spec.input_shape[0]
        if entry.reader not in ("mnist1d", "imagefolder"):
            assert set(entry.official_md5) == set(entry.file_names) and entry.torchvision
            assert all(len(md5) == 32 for md5 in entry.official_md5.values())
            assert rows[name]["note"] == "not downloaded" and rows[name]["official"] is None


# --- official checksums (item 10) ---------------------------------------------------------------------


def test_a_fake_set_is_flagged_and_matching_md5s_are_not(tmp_path, monkeypatch):
    write_fake_cifar10(tmp_path / "src", n_train=10, n_test=5)
    store = tmp_path / "store"
    fetched = run_tprm("data", "fetch", "cifar10", "--from", str(tmp_path / "src"), "--store", str(store))
    assert fetched.returncode == 0, fetched.stderr
    assert "not the official files (checksum differs)" in fetched.stdout + fetched.stderr
    listed = run_tprm("data", "list", "--store", str(store))
    assert "cifar10      not the official files (checksum differs)" in listed.stdout
    data = load_data(DataSpec(name="cifar10", root=str(store / "data")), tmp_path)
    assert data.files_note == "CIFAR-10: not the official files (checksum differs)"
    _one_sgd_step(data)  # differing files stay usable

    folder = store / "data" / "cifar-10-batches-py"
    official = datasets_registry.REGISTRY["cifar10"]
    matching = {f: hashlib.md5((folder / f).read_bytes()).hexdigest() for f in official.file_names}
    entry = dataclasses.replace(official, files=tuple(matching.items()))
    monkeypatch.setitem(datasets_registry.REGISTRY, "cifar10", entry)
    status = dataset_status("cifar10", store / "data")
    assert (status["official"], status["note"]) == (True, "present")
    assert load_data(DataSpec(name="cifar10", root=str(store / "data")), tmp_path).files_note is None
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes() + b"\0")  # one byte more
    assert dataset_status("cifar10", store / "data")["official"] is False


def test_fetch_of_the_mnist_family_and_stl10_from_a_folder(tmp_path):
    write_fake_mnist(tmp_path / "src", "FashionMNIST", n_train=10, n_test=10)
    write_fake_stl10(tmp_path / "src", n_train=4, n_test=4)
    store = tmp_path / "store"
    for name, src in (("fashionmnist", tmp_path / "src" / "FashionMNIST" / "raw"), ("stl10", tmp_path / "src")):
        fetched = run_tprm("data", "fetch", name, "--from", str(src), "--store", str(store))
        assert fetched.returncode == 0 and "present" in fetched.stdout, fetched.stderr
    assert load_data(DataSpec(name="stl10", root=str(store / "data")), tmp_path).n_train == 4
    assert (store / "data" / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").is_file()
    bad = run_tprm("data", "fetch", "imagefolder", "--from", str(tmp_path), "--store", str(store))
    assert bad.returncode == 2 and "dataset.root" in bad.stderr and "Traceback" not in bad.stderr


def test_a_run_on_unofficial_mnist_files_says_so_in_its_logs_and_report(tmp_path, capsys, monkeypatch):
    """A real (tiny) run on a new dataset: its job logs and its report's provenance flag the files."""
    from conftest import TINY_RECIPE, call

    write_fake_mnist(tmp_path / "data", n_train=100, n_test=50)
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(TINY_RECIPE.replace("dataset: {name: mnist1d, seed: 3, num_samples: 500}",
                                          f"dataset: {{name: mnist, root: '{tmp_path / 'data'}'}}")
                      .replace("{name: conv1d, kwargs: {widths: [8, 8, 8]}}", "{name: mlp, kwargs: {widths: [16]}}")
                      .replace("cka: {samples: 200}", "cka: {samples: 40}"))
    store = tmp_path / "store"
    code, _, err = call(capsys, monkeypatch, "run", str(recipe), "--store", str(store))
    assert code == 0, err
    logs = [p.read_text() for p in (store / "logs").glob("*.log")]
    assert logs and all("data: MNIST: not the official files (checksum differs)" in text for text in logs
                        if "started on" in text)
    code, _, err = call(capsys, monkeypatch, "report", str(recipe), "--store", str(store), "--out", str(tmp_path / "r"))
    assert code == 0, err
    report = (tmp_path / "r" / "report.md").read_text()
    assert "| data files | MNIST: not the official files (checksum differs) |" in report
