"""`dataset.import` (issue 23, item 8): a user's data factory next to the recipe (tests/user_data.py
copied there as mydata.py) returns tensors or torch Datasets plus num_classes and input shape.
Validation imports and runs it once (one line, exit 2 for a bad module, factory or result); job keys
follow the data's content, or the recipe's dataset.identity string instead."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from conftest import TINY_RECIPE, call
from tprm.science.data import DataSpec, data_identity, load_data
from tprm.service import Service

HERE = Path(__file__).resolve().parent
MNIST1D = "dataset: {name: mnist1d, seed: 3, num_samples: 500}"
MODEL = "model: {name: conv1d, kwargs: {widths: [8, 8, 8]}}"


def _project(tmp_path: Path, dataset: str, model: str = "model: {name: mlp, kwargs: {widths: [16]}}") -> Path:
    proj = tmp_path / "proj"
    proj.mkdir(exist_ok=True)
    shutil.copy(HERE / "user_data.py", proj / "mydata.py")
    path = proj / "mine.yaml"
    path.write_text(TINY_RECIPE.replace("name: tiny", "name: mine").replace(MNIST1D, dataset).replace(MODEL, model))
    return path


def test_tensors_and_datasets_load_with_their_own_facts(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    data = load_data(DataSpec(import_="user_data:signals"), HERE / "unused")
    assert (data.name, data.num_classes, data.input_shape, data.n_train, data.n_test) == ("import", 3, (1, 20), 60, 30)
    assert data.x_train.dtype == torch.float32 and data.plain("train")[0].shape == (60, 1, 20)
    images = load_data(DataSpec(import_="user_data:image_sets"), HERE / "unused", dtype=torch.float64)
    assert (images.num_classes, images.input_shape, images.x_train.dtype) == (4, (3, 8, 8), torch.uint8)
    assert torch.equal(images.plain("test")[0], images.x_test.double() / 255)  # no normalisation by default
    a = data_identity(DataSpec(import_="user_data:signals"))
    b = data_identity(DataSpec(import_="user_data:image_sets"))
    assert a["sha256"] != b["sha256"] and (a["num_classes"], a["input_shape"]) == (3, [1, 20])
    named = data_identity(DataSpec(import_="user_data:signals", identity="v1"))
    assert named["identity"] == "v1" and "sha256" not in named


@pytest.mark.parametrize("dataset, words", [
    ("{import: 'mydataa:signals'}", "no module 'mydataa'"),
    ("{import: 'mydata:signalz'}", "did you mean 'signals'"),
    ("{import: 'mydata:wrong_shape'}", "expected (N, 1, 21)"),
    ("{import: 'mydata:bad_labels'}", "labels must be integers in [0, 2]"),
    ("{import: 'mydata:broken'}", "RuntimeError: the data server is down"),
])
def test_problems_fail_validation_with_one_line(tmp_path, capsys, monkeypatch, dataset, words):
    recipe = _project(tmp_path, f"dataset: {dataset}")
    code, out, err = call(capsys, monkeypatch, "recipes", "validate", str(recipe))
    assert code == 2 and out == "", err
    assert err.strip().count("\n") == 0 and err.startswith(f"{recipe}:3: dataset.import: "), err
    assert words in err and "Traceback" not in err


def test_a_built_in_model_is_checked_against_the_imported_shape(tmp_path, capsys, monkeypatch):
    recipe = _project(tmp_path, "dataset: {import: 'mydata:image_sets'}", MODEL)  # conv1d on images
    code, _, err = call(capsys, monkeypatch, "recipes", "validate", str(recipe))
    assert code == 2 and "model." in err and err.strip().count("\n") == 0, err


def test_keys_follow_the_data_content_or_the_identity_string(tmp_path, capsys, monkeypatch):
    recipe = _project(tmp_path, "dataset: {import: 'mydata:signals'}")
    store = tmp_path / "store"
    code, _, err = call(capsys, monkeypatch, "recipes", "validate", str(recipe))
    assert code == 0, err
    first = Service(store).recipes.plan(recipe)
    dense = next(j for j in first.jobs.values() if j.kind == "dense")
    assert (dense.spec["data"]["classes"], list(dense.spec["data"]["shape"])) == (3, [1, 20])
    code, out, err = call(capsys, monkeypatch, "run", str(recipe), "--store", str(store))
    assert code == 0, err
    mod = recipe.parent / "mydata.py"
    mod.write_text(mod.read_text().replace("edited by the tests", "edited by the tests (same data)"))
    assert sorted(Service(store).recipes.plan(recipe).jobs) == sorted(first.jobs)  # same content, same keys
    mod.write_text(mod.read_text().replace("SHIFT = 0", "SHIFT = 1"))
    shifted = Service(store).recipes.plan(recipe)
    assert not set(shifted.jobs) & set(first.jobs)  # new data: every job reruns
    recipe.write_text(recipe.read_text().replace("'mydata:signals'", "'mydata:signals', identity: 'v1'"))
    pinned = sorted(Service(store).recipes.plan(recipe).jobs)
    mod.write_text(mod.read_text().replace("SHIFT = 1", "SHIFT = 2"))
    assert sorted(Service(store).recipes.plan(recipe).jobs) == pinned  # the string, not the content, keys it


def test_dry_run_and_run_refuse_a_broken_data_factory_and_leave_the_store_alone(tmp_path, capsys, monkeypatch):
    recipe = _project(tmp_path, "dataset: {import: 'mydata:broken'}")
    store = tmp_path / "store"
    for args in (["--dry-run"], []):
        code, _, err = call(capsys, monkeypatch, "run", str(recipe), "--store", str(store), *args)
        assert code == 2 and err.startswith(f"error: {recipe}:3: dataset.import: "), (args, err)
        assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert not (store / "tprm.db.json").exists()


@pytest.mark.parametrize("dataset, field", [
    ("{import: 'mydata:signals', root: data}", "dataset.root"),
    ("{import: 'mydata:signals', size: 16}", "dataset.size"),
    ("{name: cifar10, identity: v1}", "dataset.identity"),
    ("{import: 'mydata:signals', path: nowhere}", "dataset.path"),
])
def test_settings_that_do_not_go_with_dataset_import_are_refused(dataset, field):
    from tprm.engine.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match=field.replace(".", r"\.")):
        parse_recipe(f"name: a\ndataset: {dataset}\n", base_dir=HERE)
