"""A newcomer's walk through the CLI (issue 22): runs listed under their own recipe, logs of the
run that did the work, an interrupt that says what was kept, every validation error at once, a
recipe copied from a template, results before any run, the paper's grid in 80 columns."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest
from conftest import TINY_RECIPE, call, prepare_tiny_store, run_tprm, tprm_cmd

from tprm.service import Service


def _owners(status_text: str) -> dict[str, str]:
    """{run id: the recipe whose line the run is listed under} of `tprm status` output."""
    owners, current = {}, None
    for line in status_text.splitlines():
        if not line.startswith((" ", "store:")) and ":" in line:
            current = line.split(":")[0]
        m = re.match(r"  run (\S+?)( \[case study\])?: ", line)
        if m:
            owners[m.group(1)] = current
    return owners


def test_status_groups_runs_under_their_recipe_and_logs_show_the_run_that_worked(tmp_path, capsys, monkeypatch):
    store = prepare_tiny_store(tmp_path)
    monkeypatch.chdir(tmp_path)
    (store / "recipes" / "a-copy.yaml").write_text(TINY_RECIPE.replace("name: tiny", "name: a-copy"))
    code, out, _ = call(capsys, monkeypatch, "run", "a-copy", "--store", str(store))
    assert code == 0 and "executed 0" in out  # same jobs as tiny: all reused
    call(capsys, monkeypatch, "case", "direction", "tiny", "--evaluate", "--store", str(store))
    runs = Service(store).runs.status()["runs"]
    tiny_runs = [r for r in runs if r["recipe_name"] == "tiny"]
    work, case = tiny_runs[0], tiny_runs[-1]
    assert work["executed"] > 0 and "purpose" not in work
    assert case["purpose"] == "case study" and case["executed"] == 0

    code, out, _ = call(capsys, monkeypatch, "status", "--store", str(store))
    assert code == 0
    assert _owners(out) == {r["run_id"]: r["recipe_name"] for r in runs}  # each under its own recipe
    assert f"run {case['run_id']} [case study]: done" in out
    assert f"run {work['run_id']}: done" in out

    code, out, err = call(capsys, monkeypatch, "logs", "tiny", "--store", str(store))
    assert code == 0 and f" run {work['run_id']} of tiny:" in out.splitlines()[0]  # the run that worked
    assert case["run_id"] not in out and "--latest" in err and case["run_id"] in err
    code, out, _ = call(capsys, monkeypatch, "logs", "tiny", "--latest", "--store", str(store))
    assert code == 0 and f" run {case['run_id']} of tiny:" in out.splitlines()[0]


SLOW_RECIPE = TINY_RECIPE.replace("retrain: {epochs: 1,", "retrain: {epochs: 5000,")  # minutes of retraining


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_says_what_was_kept_and_how_to_resume(tmp_path, sig, code):
    store = tmp_path / "store"
    (store / "recipes").mkdir(parents=True)
    recipe = store / "recipes" / "tiny.yaml"  # read by path below: the name could resolve elsewhere from this cwd
    recipe.write_text(SLOW_RECIPE)
    # Ctrl+C's default action restored in the child: a suite started in the background (`make test &`,
    # some CI runners) ignores SIGINT, and a child inherits that (seen here: the run went on to its end)
    proc = subprocess.Popen(tprm_cmd("run", "tiny", "--store", str(store), "--jobs", "1"), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:  # a condition, not a guess of speed
            if (store / "tprm.db.json").exists():
                done = Service(store).runs.status(str(recipe))["recipes"].get("tiny", {}).get("counts", {})
                if done.get("done", 0) >= 1:
                    break
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    m = re.search(r"^interrupted: (\d+) of (\d+) jobs done and kept; rerun `tprm run tiny` to resume$", err, re.M)
    assert m, err
    summary = Service(store).recipes.plan_summary(str(recipe))
    assert int(m.group(1)) == summary["done"] >= 1 and int(m.group(2)) == summary["total"] > summary["done"]


BAD = "name: bad\ndense: {lr: fast, epochs: -1}\nretrain:\n  lr: slow\ndensities: [2]\n"


def test_validation_reports_every_error_on_its_own_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    store = tmp_path / "store"
    code, out, err = call(capsys, monkeypatch, "recipes", "validate", str(bad), "--store", str(store))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert [re.match(r"(.*?):(\d+): (\S+): ", ln).groups() for ln in lines] == [
        (str(bad), "2", "dense.lr"), (str(bad), "2", "dense.epochs"), (str(bad), "4", "retrain.lr"),
        (str(bad), "5", "densities[0]")]
    code, out, err = call(capsys, monkeypatch, "run", str(bad), "--store", str(store))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "and 3 more" in err and "Traceback" not in err
    assert not (store / "tprm.db.json").exists()  # the store is untouched


@pytest.mark.parametrize("text, line", [
    ("name: x\ndense:\n  epochs 16\n  lr: 0.1\n", 3),           # a key without its colon
    ("name: x\ndense: {epochs: 16, lr: [0.1\nretrain: {}\n", 2),  # a bracket never closed
    ("name: x\ndense:\n  epochs: 16\n lr: 0.1\n", 4),            # a line indented to no level
])
def test_yaml_errors_point_at_the_line_of_the_mistake(tmp_path, capsys, monkeypatch, text, line):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    code, _, err = call(capsys, monkeypatch, "recipes", "validate", str(path))
    assert code == 2 and err.startswith(f"{path}:{line}: yaml: ")


def test_new_recipe_marks_the_templates_description(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "tiny.yaml").write_text(TINY_RECIPE)
    code, out, _ = call(capsys, monkeypatch, "recipes", "new", "mine", "--from", "tiny",
                        "--store", str(tmp_path / "store"))
    assert code == 0
    svc = Service(tmp_path / "store")
    mine, tiny = svc.recipes.resolve("mine").recipe, svc.recipes.resolve("tiny").recipe
    assert mine.description.startswith("[copied from template tiny: describes tiny's settings")
    assert mine.description.endswith("a seconds-long recipe for tests")
    assert mine.hash == tiny.hash  # the same settings: the same jobs
    changed = {ln for ln in (tmp_path / "recipes" / "mine.yaml").read_text().splitlines()} ^ set(
        TINY_RECIPE.splitlines())
    assert {ln.split(":")[0] for ln in changed} == {"name", "description"}


def test_results_before_any_run_say_how_to_get_them(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    (store / "recipes").mkdir(parents=True)
    (store / "recipes" / "tiny.yaml").write_text(TINY_RECIPE)
    code, out, _ = call(capsys, monkeypatch, "results", "tiny", "--store", str(store))
    assert code == 0
    assert "no results" in out and "`tprm run tiny`" in out and "missing" not in out
    assert len(out.strip().splitlines()) == 1


PAPER_DENSITIES = (0.05, 0.06, 0.07, 0.08, 0.1, 0.14, 0.2, 0.4, 0.8)


def test_paper_grid_shows_at_once_in_plot_and_the_tui_plot_screen(tmp_path, monkeypatch):
    from test_compare import make_store, recipe_text, value_a

    from tprm.analysis.gridtext import strip_ansi
    from tprm.tui.screens.plot import fetch_plot

    monkeypatch.chdir(tmp_path)
    temps = list(range(1, 17))
    svc = make_store(tmp_path / "store", {"big": (recipe_text("big", temps=temps, dens=PAPER_DENSITIES), value_a)})
    r = run_tprm("plot", "big", "--metric", "mc", "--width", "80", "--no-table", "--store", str(svc.store_dir),
                 cwd=tmp_path)
    tui = strip_ansi(fetch_plot(svc, "big", "mc", 80, 20)["text"])
    for text in (r.stdout, tui):
        lines = text.splitlines()
        assert "page" not in text and all(len(line) <= 80 for line in lines)
        ticks = next(line for line in lines if line.startswith("density"))
        assert ticks.split("│")[1].split() == [str(t) for t in reversed(temps)]  # all 16 at once
        assert sum("%" in line.split("│")[0] for line in lines if "│" in line) == 9
        assert any(line.startswith("compact cells:") for line in lines)


def test_density_is_a_percentage_in_the_cli_and_the_tui_results(tmp_path, capsys, monkeypatch):
    from tprm.tui.viewmodel import RESULT_COLUMNS, display_cells

    row = {c: None for c in RESULT_COLUMNS} | {"temperature": 16.0, "density": 0.125, "dense_seed": 0,
                                               "state": "done"}
    shown = dict(zip(RESULT_COLUMNS, display_cells(row)))
    assert shown["density"] == "12.5%" and shown["temperature"] == "16"
    store = prepare_tiny_store(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, _ = call(capsys, monkeypatch, "results", "tiny", "--store", str(store))
    assert code == 0 and {"20%", "80%"} <= set(out.split())
