"""The service's rooms: a recipe reference resolved once into a LoadedRecipe that carries its
file, regime sources without a side table, the one input-error conversion, and the one cancel
protocol of detached runs and case studies (real stores, real files, no mocks)."""

from __future__ import annotations

import os
import socket

import pytest

from tests.conftest import TINY_RECIPE
from tprm.engine.recipe import parse_recipe
from tprm.service import BadInput, LoadedRecipe, Service

REGIMES = TINY_RECIPE + "regimes: {cka_threshold: 0.9}\n"


def test_resolve_once_carries_the_file(tmp_path, tiny_recipe) -> None:
    svc = Service(tmp_path / "store")
    loaded = svc.recipes.resolve(str(tiny_recipe))
    assert isinstance(loaded, LoadedRecipe) and loaded.source == str(tiny_recipe)
    assert svc.recipes.resolve(loaded) is loaded  # never read twice
    sub = loaded.sub_grid({"densities": [0.2]})
    assert sub.source == loaded.source and sub.recipe.densities == (0.2,)
    assert sub.hash != loaded.hash


def test_regime_sources_name_the_file_or_the_recipe(tmp_path) -> None:
    path = tmp_path / "recipes" / "tiny.yaml"
    path.parent.mkdir()
    path.write_text(REGIMES)
    svc = Service(tmp_path / "store")
    from_file = svc.results.regime_settings(str(path)).sources
    assert from_file["cka_threshold"] == "recipe tiny.yaml regimes.cka_threshold"
    assert from_file["mc_threshold"] == "tprm default"
    # a Recipe built in code (not loaded through the service) still names what its text set
    in_code = svc.results.regime_settings(parse_recipe(REGIMES, "<text>")).sources
    assert in_code["cka_threshold"] == "recipe tiny regimes.cka_threshold"
    assert in_code["mc_threshold"] == "tprm default"


def test_engine_input_errors_become_one_line_bad_input(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_RECIPE.replace("densities: [0.2, 0.8]", "densities: [2.0]"))
    svc = Service(tmp_path / "store")
    for call in (lambda: svc.recipes.resolve(str(bad)), lambda: svc.results.cells(str(bad)),
                 lambda: svc.recipes.plan_summary(str(bad))):
        with pytest.raises(BadInput) as exc:
            call()
        assert exc.value.exit_code == 2 and "\n" not in str(exc.value) and "densities" in str(exc.value)
    assert not (tmp_path / "store").exists()  # nothing written


def test_cancel_protocol_touches_the_runs_of_a_case_process(tmp_path, tiny_recipe) -> None:
    from tprm.engine.casedir import new_case
    from tprm.engine.detached import cancel_folder, cancel_recipe, cancel_requested
    from tprm.engine.rundir import cancel_path

    svc = Service(tmp_path / "store")
    store = svc.workspace.store
    loaded = svc.recipes.resolve(str(tiny_recipe))
    mine = store.start_run("tiny", loaded.hash, os.getpid(), socket.gethostname(), None)
    other = store.start_run("other", "0" * 64, os.getppid(), socket.gethostname(), None)
    _, folder = new_case(svc.store_dir, "select", "tiny", str(tiny_recipe), {"density": 0.2})
    assert not cancel_requested(folder)
    cancel_folder(folder, store, os.getpid())
    assert cancel_requested(folder)
    assert cancel_path(svc.store_dir, mine).exists() and not cancel_path(svc.store_dir, other).exists()
    assert cancel_recipe(store, "other") == 1  # the db flag, and the run's cancel file
    assert store.cancel_requested(other) and cancel_path(svc.store_dir, other).exists()
