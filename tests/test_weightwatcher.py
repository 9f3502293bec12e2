"""metrics.weightwatcher: the [ww] extra's data-free metrics (alpha, alpha-weighted, log spectral
norm) of the dense, pruned and retrained models, measured by the weightwatcher package on a real
tiny run; masked zeros passed as they are; job keys of recipes without the setting unchanged; a
missing package is one line and exit 2 (`make test` installs the extra)."""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, TINY_RECIPE, call, tprm_cmd
from test_gpu_check import SITECUSTOMIZE

WW_RECIPE = TINY_RECIPE.replace("name: tiny", "name: tinyww").replace(
    "cka: {samples: 200}}", "cka: {samples: 200}, weightwatcher: true}")
STAGES = ("", "dense_", "pruned_")


def _recipe(text: str):
    from tprm.engine.recipe import parse_recipe

    return parse_recipe(text, "tinyww.yaml")


def test_only_the_ww_jobs_are_added_and_other_keys_stay():
    from tprm.engine.plan import build_plan

    ident = {"generator": "fixed", "seed": 1}
    plain, ww = _recipe(TINY_RECIPE), _recipe(WW_RECIPE)
    off = _recipe(WW_RECIPE.replace("weightwatcher: true", "weightwatcher: false"))
    assert ww.metrics.weightwatcher and not plain.metrics.weightwatcher
    assert off.hash == plain.hash != ww.hash  # unset and false hash alike: stored recipes keep theirs
    p_plain, p_ww = build_plan(plain, ident), build_plan(ww, ident)
    ww_jobs = {h for h, j in p_ww.jobs.items() if j.kind == "ww"}
    assert set(p_ww.jobs) - ww_jobs == set(p_plain.jobs)  # every other job keeps its key
    assert len(ww_jobs) == len(p_ww.cells) == 4  # one per pruned model
    for cell in p_ww.cells:
        assert set(p_ww.jobs[cell.ww].deps) == {cell.dense, cell.prune, *cell.retrains}
    assert all(c.ww is None for c in p_plain.cells)


def _tiny_model(widths=(8, 8, 8)):
    from tprm.science.models import build_model

    torch.manual_seed(0)
    return build_model("conv1d", 10, (1, 40), widths=list(widths))


def test_masked_zeros_are_measured_as_they_are_and_stay_zero():
    from tprm.science import prune
    from tprm.science.spectral import ww_summary

    dense = _tiny_model()
    pruned = _tiny_model()
    params = prune.prunable_parameters(pruned)
    masks = prune.magnitude_masks(pruned, 0.2, params)
    prune.apply_masks(pruned, masks)
    before = {k: v.clone() for k, v in pruned.state_dict().items()}
    got_dense, got_pruned = ww_summary(dense), ww_summary(pruned)
    for name, mask in masks.items():  # measuring copies: the weights, and their zeros, are untouched
        assert torch.equal(pruned.state_dict()[name], before[name])
        assert (pruned.state_dict()[name][mask == 0] == 0.0).all()
    # the two pruned 8-channel conv layers (5 kernel-position slices of 8 x 8: 40 eigenvalues each)
    # and the classifier are analysed; the first conv (1 input channel: 5 eigenvalues) is skipped
    assert got_dense["layers"] == got_pruned["layers"] == 3
    for key in ("alpha", "alpha_weighted", "log_spectral_norm"):
        assert math.isfinite(got_dense[key]) and math.isfinite(got_pruned[key])
    # 80 % of the conv weights set to exactly 0.0 shrink the spectral norms: the masked matrices
    # (zeros included) are what is measured, not the dense ones
    assert got_pruned["log_spectral_norm"] < got_dense["log_spectral_norm"]
    assert got_pruned["alpha"] != got_dense["alpha"]


@pytest.mark.filterwarnings("ignore:Passing a dict to DataFrame.from_records")  # weightwatcher's own
def test_a_conv1d_is_analysed_as_its_kernel_slices():
    """weightwatcher alone reads a Conv1d weight as one matrix of kernel-size eigenvalues and skips
    it; shown as the Conv2d it equals, each conv layer with enough channels is analysed."""
    from tprm.science.spectral import conv1d_as_conv2d, load_weightwatcher, ww_summary

    model = _tiny_model()
    view = conv1d_as_conv2d(model)
    assert isinstance(view.features[2], torch.nn.Conv2d)
    assert torch.equal(view.features[2].weight[:, :, 0, :], model.features[2].weight)
    assert isinstance(model.features[2], torch.nn.Conv1d)  # the model itself is left alone
    ww = load_weightwatcher()
    with_plain_model = ww.WeightWatcher(model=model).analyze()
    assert len(with_plain_model) == 1  # only the classifier, which pruning keeps dense
    assert ww_summary(model)["layers"] == 3


@pytest.fixture(scope="module")
def ww_store(tmp_path_factory):
    """A store in which the tiny recipe with metrics.weightwatcher ran to the end (and the plain tiny
    recipe beside it)."""
    from tprm.service import Service

    work = tmp_path_factory.mktemp("ww")
    store = work / "store"
    (store / "recipes").mkdir(parents=True)
    (store / "recipes" / "tinyww.yaml").write_text(WW_RECIPE)
    (store / "recipes" / "tiny.yaml").write_text(TINY_RECIPE)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        assert Service(store).runs.run("tinyww")["state"] == "done"
        assert Service(store).runs.run("tiny")["state"] == "done"
    return store


def test_a_real_run_stores_finite_metrics_per_job_and_cell(ww_store):
    from tprm.service import Service

    svc = Service(ww_store)
    plan = svc.recipes.plan("tinyww")
    cells = svc.results.cells("tinyww")
    assert len(cells) == 4
    results = svc.workspace.store.results([c.ww for c in plan.cells])
    for cell, rec in zip(plan.cells, cells):
        job = results[cell.ww]
        assert len(job["retrained"]) == 2 and job["weightwatcher"]
        for model in (job["dense"], job["pruned"], *job["retrained"]):
            assert model["layers"] == 3
            assert all(math.isfinite(model[k]) for k in ("alpha", "alpha_weighted", "log_spectral_norm"))
        # aggregated as the other per-job metrics are: retrain seeds averaged, dense/pruned as they are
        assert rec["alpha"] == pytest.approx(sum(r["alpha"] for r in job["retrained"]) / 2)
        assert rec["dense_log_spectral_norm"] == job["dense"]["log_spectral_norm"]
        assert rec["pruned_alpha_weighted"] == job["pruned"]["alpha_weighted"]
    # one dense checkpoint, two densities: the same dense numbers, different pruned ones
    by_t = {}
    for rec in cells:
        by_t.setdefault(rec["temperature"], []).append(rec)
    for pair in by_t.values():
        assert pair[0]["dense_alpha"] == pair[1]["dense_alpha"]
        assert pair[0]["pruned_log_spectral_norm"] != pair[1]["pruned_log_spectral_norm"]


def test_views_show_the_metrics_only_for_recipes_that_have_them(ww_store, capsys, monkeypatch):
    from tprm.service import RESULT_COLUMNS, WW_COLUMNS, Service
    from tprm.tui.screens.compare import fetch_comparison
    from tprm.tui.screens.plot import fetch_cells

    svc = Service(ww_store)
    header = next(csv.reader(io.StringIO(svc.results.csv("tinyww"))))
    assert tuple(header) == RESULT_COLUMNS + WW_COLUMNS
    assert tuple(next(csv.reader(io.StringIO(svc.results.csv("tiny"))))) == RESULT_COLUMNS
    assert "alpha" in fetch_cells(svc, "tinyww")["metrics"]
    same = fetch_comparison(svc, "tinyww", "tinyww", "pruned_alpha", 80)
    assert same["ok"] and "pruned_alpha" in same["metrics"] and "alpha" in same["metrics"]
    mixed = fetch_comparison(svc, "tinyww", "tiny", "test_error", 80)
    assert mixed["ok"] and not set(WW_COLUMNS) & set(mixed["metrics"])  # offered only when both have them
    assert not set(WW_COLUMNS) & set(fetch_cells(svc, "tiny")["metrics"])
    grid = svc.results.grid("tinyww", "pruned_alpha")
    assert all(v is not None and math.isfinite(v) for row in grid.mean for v in row)
    code, out, err = call(capsys, monkeypatch, "plot", "tinyww", "--store", str(ww_store), "--metric", "alpha",
                          "--no-color")
    assert code == 0 and "alpha" in out, err
    code, out, _ = call(capsys, monkeypatch, "results", "tinyww", "--store", str(ww_store))
    assert code == 0 and "alpha" in out.splitlines()[0]
    code, out, _ = call(capsys, monkeypatch, "results", "tiny", "--store", str(ww_store))
    assert code == 0 and "alpha" not in out and "0." in out  # the plain recipe: its rows, no such column
    code, out, err = call(capsys, monkeypatch, "compare", "tinyww", "tinyww", "--store", str(ww_store),
                          "--metric", "log_spectral_norm")
    assert code == 0, err


def test_the_report_has_the_metrics(ww_store, tmp_path):
    from tprm.service import Service

    report = Service(ww_store).reports.report("tinyww", out=tmp_path / "r", cells="none")
    text = (tmp_path / "r" / "report.md").read_text() if report else ""
    assert "weightwatcher alpha" in text and "weightwatcher log spectral norm" in text


@pytest.mark.parametrize("verb", [("recipes", "validate"), ("run",), ("run", "--dry-run")])
def test_without_the_extra_one_line_and_exit_2(tmp_path, verb):
    hook = tmp_path / "hook"  # the bare-machine hook of the GPU rehearsal, hiding weightwatcher
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    recipe = tmp_path / "tinyww.yaml"
    recipe.write_text(WW_RECIPE)
    store = tmp_path / "store"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook), str(ROOT)]), TPRM_HOME=str(store),
               TPRM_BARE_MISSING="weightwatcher", TPRM_SITE=str(hook))  # found only in hook/: not at all
    probe = subprocess.run([sys.executable, "-c", "import weightwatcher"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode != 0  # the hook hides the package
    run = subprocess.run(tprm_cmd(*verb, str(recipe)), env=env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.strip()]
    assert run.returncode == 2, run.stdout + run.stderr
    error = [ln for ln in lines if "metrics.weightwatcher" in ln]
    assert len(error) == 1 and "Traceback" not in run.stderr, lines
    assert f"{recipe}:" in error[0] and error[0].rstrip().endswith("[ww]'")  # ends in the install command
    assert "pip install" in error[0]
    assert not (store / "tprm.db.json").exists()  # nothing recorded


async def test_the_tui_cycles_to_the_metrics_and_shows_their_columns(ww_store, monkeypatch) -> None:
    from test_tui_flows import SIZE, select_recipe, wait_for
    from textual.widgets import DataTable

    from tprm.service import WW_COLUMNS
    from tprm.tui.app import TprmApp
    from tprm.tui.screens.plot import PlotScreen
    from tprm.tui.screens.results import ResultsScreen

    monkeypatch.chdir(ww_store.parent)
    app = TprmApp(str(ww_store))
    async with app.run_test(size=SIZE) as pilot:
        await select_recipe(pilot, app, "tinyww")
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, PlotScreen) and "alpha" in app.screen.metrics, 60,
                       "the plot with the recipe's weightwatcher metrics")
        plot = app.screen
        for _ in range(len(plot.metrics)):  # the metric cycle (]) reaches alpha
            if plot.metric == "alpha":
                break
            await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: plot.plot_data.get("metric") == "alpha", 30, "the alpha plot")
        assert "alpha" in plot.plot_text and any(v is not None for v in plot.plot_data["values"].values())
        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen) and app.screen.rows, 30, "results")
        table = app.screen.query_one("#results-table", DataTable)
        await wait_for(pilot, lambda: [str(c.value) for c in table.columns][-len(WW_COLUMNS):] == list(WW_COLUMNS),
                       30, "the weightwatcher columns")
        assert table.get_row_at(0)[-len(WW_COLUMNS)] not in ("-", "")  # alpha, measured
        await pilot.press("1")
        await select_recipe(pilot, app, "tiny")  # without the setting
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, PlotScreen) and app.screen.cells, 60, "the plain plot")
        assert not set(WW_COLUMNS) & set(app.screen.metrics)


def test_weightwatcher_is_imported_only_where_it_measures(ww_store):
    """Not by the service or the CLI, not to read, plot or validate: only the ww job's worker."""
    code = ("import sys\nimport tprm.cli\nfrom tprm.service import Service\n"
            f"svc = Service({str(ww_store)!r})\nsvc.results.plot('tinyww', 'alpha')\nsvc.results.csv('tinyww')\n"
            "svc.recipes.validate(['tinyww'])\nprint('weightwatcher' in sys.modules, 'pandas' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ww_store.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "False"]
