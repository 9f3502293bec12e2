"""A user's own model (`model.import`), as a researcher uses it: the module sits next to the recipe
(tests/user_models.py copied there as mynet.py), never on the Python path of the test.

Job keys follow the model's code and its local imports (or model.version); import problems fail
validate, --dry-run and run with one line and exit 2; a model that ends in a convolution is caught
unless pruning.keep_dense names its output layer; the module is found from any folder, in a
detached run with spawned workers, and the recipe run by path is listed with its path.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from conftest import TINY_RECIPE, call, run_tprm
from tprm.service import Service

HERE = Path(__file__).resolve().parent
BUILT_IN = "model: {name: conv1d, kwargs: {widths: [8, 8, 8]}}"


def _project(tmp_path: Path, model: str, extra: str = "", name: str = "mine") -> Path:
    """tmp/proj/{mynet.py, NAME.yaml}: the tiny recipe with `model` (a YAML line) and `extra` lines."""
    proj = tmp_path / "proj"
    proj.mkdir(exist_ok=True)
    shutil.copy(HERE / "user_models.py", proj / "mynet.py")
    path = proj / f"{name}.yaml"
    path.write_text(TINY_RECIPE.replace("name: tiny", f"name: {name}").replace(BUILT_IN, model) + extra)
    return path


def _keys(store: Path, recipe: Path) -> list[str]:
    return sorted(Service(store).recipes.plan(recipe).jobs)


# -- 1: keys follow the code ---------------------------------------------------------------------
def test_job_keys_follow_the_model_code_and_its_local_imports(tmp_path):
    recipe = _project(tmp_path, "model: {import: 'mynet:net'}")
    proj, store = recipe.parent, tmp_path / "store"
    (proj / "blocks.py").write_text("from torch import nn\n\ndef act():\n    return nn.ReLU()\n")
    (proj / "mynet.py").write_text("import math\n\nfrom torch import nn\n\nfrom blocks import act\n\n\n"
                                   "def net(num_classes, input_shape):\n    return nn.Sequential(nn.Flatten(), "
                                   "nn.Linear(math.prod(input_shape), 8), act(), nn.Linear(8, num_classes))\n")
    (proj / "notes.py").write_text("x = 1\n")  # in the folder, imported by nothing
    first = _keys(store, recipe)
    (proj / "blocks.py").write_text((proj / "blocks.py").read_text().replace("ReLU", "Tanh"))
    after_local = _keys(store, recipe)
    assert not set(first) & set(after_local)  # every job depends on the model: every key moves
    (proj / "mynet.py").write_text((proj / "mynet.py").read_text().replace(", 8)", ", 16)").replace("(8,", "(16,"))
    after_module = _keys(store, recipe)
    assert not set(after_module) & set(after_local)
    (proj / "notes.py").write_text("x = 2\n")
    assert _keys(store, recipe) == after_module  # not part of the model
    recipe.write_text(recipe.read_text().replace("model: {import: 'mynet:net'}",
                                                 "model: {import: 'mynet:net', version: 'v1'}"))
    pinned = _keys(store, recipe)
    (proj / "blocks.py").write_text((proj / "blocks.py").read_text().replace("Tanh", "GELU"))
    assert _keys(store, recipe) == pinned != after_module  # model.version replaces the code hash
    recipe.write_text(recipe.read_text().replace("'v1'", "'v2'"))
    assert not set(_keys(store, recipe)) & set(pinned)


def test_a_built_in_model_has_no_code_in_its_keys(tmp_path, tiny_recipe):
    plan = Service(tmp_path / "store").recipes.plan(tiny_recipe)
    assert all("code" not in job.spec["model"] for job in plan.jobs.values())
    assert all("keep_dense" not in job.spec["pruning"] for job in plan.jobs.values() if job.kind == "prune")


# -- 2: problems before the run ------------------------------------------------------------------
@pytest.mark.parametrize("model, field, words", [
    ("{import: 'mynett:tiny_net'}", "model.import", "no module 'mynett'"),
    ("{import: 'mynet:tiny_nett'}", "model.import", "did you mean 'tiny_net'"),
    ("{import: 'mynet:tiny_net', kwargs: {widht: 8}}", "model.kwargs.widht", "did you mean 'width'"),
    ("{import: 'mynet:picky_net', kwargs: {width: 7}}", "model.kwargs", "width must be even, got 7"),
])
def test_import_problems_fail_validation_with_one_line(tmp_path, capsys, monkeypatch, model, field, words):
    recipe = _project(tmp_path, f"model: {model}")
    code, out, err = call(capsys, monkeypatch, "recipes", "validate", str(recipe))
    assert code == 2 and out == "", err
    assert err.strip().count("\n") == 0 and err.startswith(f"{recipe}:4: {field}: "), err
    assert words in err and "Traceback" not in err


def test_dry_run_and_run_refuse_a_broken_import_and_leave_the_store_alone(tmp_path, capsys, monkeypatch):
    recipe = _project(tmp_path, "model: {import: 'mynet:tiny_net', kwargs: {widht: 8}}")
    store = tmp_path / "store"
    for args in (["--dry-run"], [], ["--detach"]):
        code, out, err = call(capsys, monkeypatch, "run", str(recipe), "--store", str(store), *args)
        assert code == 2 and err.startswith(f"error: {recipe}:4: model.kwargs.widht: "), (args, err)
        assert err.strip().count("\n") == 0
    assert not (store / "tprm.db.json").exists()


def test_a_hanging_import_is_stopped_at_the_time_limit(tmp_path, capsys, monkeypatch):
    recipe = _project(tmp_path, "model: {import: 'hang:net'}")
    (recipe.parent / "hang.py").write_text("import time\n\ntime.sleep(600)\n\n\ndef net(num_classes, input_shape):\n"
                                           "    pass\n")
    monkeypatch.setenv("TPRM_MODEL_CHECK_S", "2")
    code, _, err = call(capsys, monkeypatch, "recipes", "validate", str(recipe))
    assert code == 2 and f"{recipe}:4: model.import: " in err and "did not finish within 2 s" in err, err


# -- 3: the output layer -------------------------------------------------------------------------
def test_a_model_ending_in_a_conv_needs_keep_dense_and_then_prunes_only_the_rest(tmp_path, capsys, monkeypatch):
    recipe = _project(tmp_path, "model: {import: 'mynet:conv_head'}")
    code, _, err = call(capsys, monkeypatch, "recipes", "validate", str(recipe))
    assert code == 2 and "last layer '2' is a Conv1d" in err and "pruning.keep_dense" in err, err
    recipe.write_text(recipe.read_text().replace("densities: [0.2, 0.8]", "densities: [0.2]\n"
                                                 "pruning: {keep_dense: ['2.*']}"))
    store = tmp_path / "store"
    code, out, err = call(capsys, monkeypatch, "run", str(recipe), "--dry-run", "--store", str(store))
    assert code == 0, err
    assert "pruned: 0.weight\n" in out and "kept dense: 2.weight\n" in out
    assert Service(store).runs.run(recipe)["state"] == "done"
    from tprm.engine.store import Store

    prunes = [j for j in Store(store).get_jobs().values() if j["kind"] == "prune"]
    results = Store(store).results()
    assert prunes and all(list(results[j["hash"]]["per_layer"]) == ["0.weight"] for j in prunes)


# -- 4 and 5: found from anywhere, listed with its path -------------------------------------------
@pytest.fixture(scope="module")
def by_path(tmp_path_factory):
    """(store, recipe, log): mycifar.yaml with mynet.py beside it, run detached (as the TUI launches)
    with two spawned workers from another folder, the module on no Python path; waited for."""
    tmp = tmp_path_factory.mktemp("by-path")
    recipe = _project(tmp, "model: {import: 'mynet:tiny_net', kwargs: {width: 6}}", name="mycifar").resolve()
    recipe.write_text(recipe.read_text().replace("execution: {device: cpu}", "execution: {device: cpu, jobs: 2}"))
    elsewhere, store = tmp / "elsewhere", tmp / "store"
    elsewhere.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(elsewhere)
        svc = Service(store)
        log = Path(svc.runs.start_detached(str(recipe))["log"])
        counts, deadline = None, time.time() + 600
        while time.time() < deadline:
            counts = svc.runs.status(str(recipe))["recipes"].get("mycifar", {}).get("counts")
            if counts == {"done": 17} or (counts or {}).get("failed"):
                break
            time.sleep(0.5)
    assert counts == {"done": 17}, log.read_text()[-2000:]
    return store, recipe, elsewhere


def test_module_next_to_the_recipe_runs_detached_with_workers_and_is_listed(by_path):
    store, recipe, elsewhere = by_path
    r = run_tprm("recipes", "list", "--json", "--store", str(store), cwd=elsewhere)
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["mycifar"]["path"] == str(recipe) and rows["mycifar"]["jobs_done"] == 17
    assert rows["mycifar"]["run_by_path"] and not rows["quickstart"]["run_by_path"]
    table = run_tprm("recipes", "list", "--store", str(store), cwd=elsewhere, env={"COLUMNS": "500"}).stdout
    assert any(line.split()[:1] == ["mycifar"] and line.rstrip().endswith(str(recipe)) for line in table.splitlines())


async def test_the_tui_lists_it_with_its_path_and_launches_an_imported_model(by_path, monkeypatch):
    from test_tui_flows import RunsScreen, select_recipe, static_text, wait_for
    from tprm.tui.app import TprmApp

    store, recipe, elsewhere = by_path
    (store / "recipes").mkdir(exist_ok=True)  # a second recipe in the store's folder, its model beside it
    shutil.copy(recipe.parent / "mynet.py", store / "recipes" / "mynet.py")
    (store / "recipes" / "mine.yaml").write_text(recipe.read_text().replace("name: mycifar", "name: mine")
                                                 .replace("width: 6", "width: 4"))
    monkeypatch.chdir(elsewhere)
    app = TprmApp(str(store), poll_interval=0.25)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_recipe(pilot, app, "mycifar")
        await wait_for(pilot, lambda: "plan: 17/17 jobs done" in static_text(app, "#plan-summary"), 60, "its plan")
        assert f"run from {recipe}" in static_text(app, "#plan-summary").replace("\n", "")
        await select_recipe(pilot, app, "mine")
        await wait_for(pilot, lambda: "plan: 0/17 jobs done" in static_text(app, "#plan-summary"), 60, "its plan")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 60, "the run monitor")
        await wait_for(pilot, lambda: "last run: done" in static_text(app, "#run-line"), 600, "the run to finish")
    assert Service(store).runs.status("mine")["recipes"]["mine"]["counts"] == {"done": 17}


def test_model_path_names_the_folder_of_the_module(tmp_path):
    recipe = _project(tmp_path, "model: {import: 'mynet:tiny_net', path: lib}")
    lib = recipe.parent / "lib"
    with pytest.raises(Exception, match=r"mine.yaml:4: model.path: folder .*lib not found"):
        Service(tmp_path / "store").recipes.resolve(recipe)
    lib.mkdir()
    (recipe.parent / "mynet.py").rename(lib / "mynet.py")
    svc = Service(tmp_path / "store")
    assert svc.recipes.model_layers(recipe)["dense"] == ["3.weight"]
    assert len(svc.recipes.plan(recipe).jobs) == 17


def test_validate_in_a_new_process_prints_one_line(tmp_path):
    recipe = _project(tmp_path, "model: {import: 'mynet:tiny_nett'}")
    r = run_tprm("recipes", "validate", str(recipe), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"{recipe}:4: model.import: module 'mynet' has no 'tiny_nett'")
