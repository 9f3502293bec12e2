"""Every shipped recipe runs end to end on the CPU with a tiny override (fake CIFAR files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tprm.engine.recipe import load_recipe
from tprm.service import Service

from fakedata import write_fake_cifar10

RECIPES = sorted((Path(__file__).resolve().parent.parent / "recipes").glob("*.yaml"))


def tiny_overrides(recipe, data_root: Path) -> dict:
    """Shrink a recipe to seconds: 2 temperatures, 2 densities, 1-epoch retrains, few samples."""
    knob = recipe.temperature.knob
    temps = list(recipe.temperature.values)[:2]
    over = {
        "densities": sorted({recipe.densities[0], recipe.densities[-1]}),
        "retrain": {"epochs": 1, "iterations": None, "last_epochs": 1, "seeds": [0, 1], "batch_size": 16},
        "dense_seeds": [0],
        "metrics": {"cka": {"samples": 32}, "lmc": {"points": 3, "bn_batch_size": 16}},
        "execution": {"device": "cpu"},
    }
    if knob == "epochs":
        over["dense"] = {"epochs": 2, "checkpoint_every": 1}
        over["temperature"] = {"values": [1, 2]}
    elif knob == "batch_size":
        over["dense"] = {"iterations": 3}
        over["temperature"] = {"values": [8, 16]}
    else:
        over["dense"] = {"epochs": 1, "batch_size": 16}
        over["temperature"] = {"values": temps}
    if recipe.dataset.name == "mnist1d":
        over["dataset"] = {"num_samples": 300}
    else:
        over["dataset"] = {"root": str(data_root), "download": False, "train_subset": 64,
                           "test_subset": 32}
    return over


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipe_runs_end_to_end(path, tmp_path):
    recipe = load_recipe(path)
    data_root = tmp_path / "data"
    if recipe.dataset.name == "cifar10":
        write_fake_cifar10(data_root, n_train=64, n_test=32)
    small = recipe.with_overrides(tiny_overrides(recipe, data_root))
    svc = Service(tmp_path / "store")
    summary = svc.runs.run(small)
    assert summary["state"] == "done", summary
    rows = svc.results.cells(small)
    assert len(rows) == 2 * len(small.densities) and all(r["state"] == "done" for r in rows)
    assert all(r["mc"] is not None and r["cka"] is not None for r in rows)
    assert svc.results.plot(small, "regime", color=False)
