"""The CLI's edges (issue 15): start-up without torch, literal printing of user text, inputs that
cannot hang or escape, model settings checked before a run, diverged parents, help texts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import call, ROOT, prepare_tiny_store

# Runs the CLI's entry point in a fresh interpreter, then says whether torch was imported.
PROBE = ("import sys\n"
         "sys.argv = ['tprm'] + sys.argv[1:]\n"
         "from tprm.cli import main\n"
         "try:\n"
         "    main()\n"
         "except SystemExit as exc:\n"
         "    code = exc.code or 0\n"
         "else:\n"
         "    code = 0\n"
         "sys.stderr.write('\\nEXIT=%s TORCH=%s\\n' % (code, 'torch' in sys.modules))\n")


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory) -> Path:
    return prepare_tiny_store(tmp_path_factory.mktemp("finished"))


def probe(*args: str, cwd: Path) -> tuple[int, bool, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                       cwd=cwd, env=env, timeout=120)
    tail = p.stderr.strip().splitlines()[-1]
    assert tail.startswith("EXIT="), p.stderr
    code, torch = tail.split()
    return int(code.split("=")[1]), torch == "TORCH=True", p.stdout


@pytest.mark.parametrize("args", [
    ("status", "--json"), ("status",), ("results", "tiny", "--json"), ("results", "tiny"),
    ("recipes", "list"), ("recipes", "validate", "tiny"), ("plot", "tiny", "--no-table"),
    ("plot", "tiny", "--metric", "mc", "--json"),
])
def test_read_only_commands_do_not_import_torch(finished_store, args):
    code, torch, out = probe(*args, "--store", str(finished_store), cwd=finished_store.parent)
    assert code == 0 and out.strip()
    assert not torch, f"`tprm {' '.join(args)}` imported torch"


def test_a_rejected_recipe_does_not_import_torch(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndensities: [2]\n")
    code, torch, _ = probe("recipes", "validate", str(bad), cwd=tmp_path)
    assert code == 2 and not torch


# -- user text printed literally (item 2) ---------------------------------------------------------



@pytest.mark.parametrize("line", [100, 1234])
def test_line_numbers_are_not_emoji_codes(tmp_path, capsys, monkeypatch, line):
    path = tmp_path / f"l{line}.yaml"
    path.write_text("#\n" * (line - 2) + "name: ok\ndensities: [2]\n")
    code, _, err = call(capsys, monkeypatch, "recipes", "validate", str(path))
    assert code == 2
    assert f"l{line}.yaml:{line}: densities[0]: " in err, err
    code, _, err = call(capsys, monkeypatch, "run", str(path), "--store", str(tmp_path / "s"))
    assert code == 2 and f"l{line}.yaml:{line}: densities[0]: " in err


def test_names_with_markup_print_literally(tmp_path, capsys, monkeypatch):
    from conftest import TINY_RECIPE

    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "[bold]bad.yaml").write_text("name: [bold]x\n")
    good = tmp_path / "[bold]good :100:.yaml"
    good.write_text(TINY_RECIPE)
    code, out, _ = call(capsys, monkeypatch, "recipes", "list", "--store", str(tmp_path / "s"))
    assert code == 0 and "[bold]bad" in out  # markup would have swallowed the brackets
    code, out, _ = call(capsys, monkeypatch, "recipes", "validate", str(good))
    assert code == 0 and f"ok  {good}" in out


# -- inputs that cannot hang or escape (items 3, 4) ----------------------------------------------
def _alias_bomb(levels: int = 12) -> str:
    lines = ["name: bomb", "model:", "  name: conv1d", "  kwargs:", "    a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, levels):
        lines.append(f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_rejected_quickly(tmp_path):
    """9**12 leaves if expanded: validate and list must answer within seconds, one line, exit 2."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "bomb.yaml").write_text(_alias_bomb())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "tprm", "recipes", "validate", "recipes/bomb.yaml"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=30)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "recipes/bomb.yaml:6: model.kwargs: YAML alias '*a0' is not supported, allowed: the value "
        "written out (recipes take no anchors or aliases)"]
    r = subprocess.run([sys.executable, "-m", "tprm", "recipes", "list", "--json", "--store",
                        str(tmp_path / "s")], capture_output=True, text=True, cwd=tmp_path, env=env,
                       timeout=30)
    row = next(x for x in json.loads(r.stdout) if x["name"] == "bomb")
    assert r.returncode == 0 and not row["valid"] and "alias" in row["error"]


def test_alias_anywhere_names_its_field_and_line():
    from tprm.engine.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError) as exc:
        parse_recipe("name: x\ndensities: &d [0.1]\ndense: {epochs: 2}\nretrain: {seeds: *d}\n", "a.yaml")
    assert (exc.value.line, exc.value.field) == (4, "retrain.seeds")


def test_recipes_new_refuses_a_path_traversal_name(tmp_path, capsys, monkeypatch):
    work = tmp_path / "a" / "b" / "c"
    (work / "recipes").mkdir(parents=True)  # ./recipes exists: new recipes are written there
    monkeypatch.chdir(work)
    for name in ("x #/../../../evil2", "../evil", "x/../../evil", "Evil", "a b"):
        code, _, err = call(capsys, monkeypatch, "recipes", "new", name, "--store", str(tmp_path / "s"))
        assert code == 2 and len(err.strip().splitlines()) == 1 and "NAME" in err, (name, err)
    assert sorted(p.name for p in tmp_path.rglob("*.yaml")) == []
    code, out, _ = call(capsys, monkeypatch, "recipes", "new", "fine-1", "--store", str(tmp_path / "s"))
    assert code == 0 and (work / "recipes" / "fine-1.yaml").exists()


# -- model settings checked at validation time (item 5) -----------------------------------------
@pytest.mark.parametrize("value, shown", [
    ("not-a-valid-value", "'not-a-valid-value'"), ("-7", "-7"), ("{a: 1}", "a mapping"),
    ("[24, 1" + "0" * 400 + ", 24]", "[24, 1000"), ("[24, 0, 24]", "[24, 0, 24]"),
    ("[24, 2.5, 24]", "[24, 2.5, 24]"), ("[]", "[]"), ("[24, true]", "[24, True]"),
])
def test_bad_model_widths_rejected_by_validate(tmp_path, capsys, monkeypatch, value, shown):
    path = tmp_path / "k.yaml"
    path.write_text(f"name: k\nmodel:\n  name: conv1d\n  kwargs:\n    kernel: 5\n    widths: {value}\n")
    code, out, err = call(capsys, monkeypatch, "recipes", "validate", str(path))
    assert code == 2 and not out
    assert err.strip().splitlines() == [
        f"{path}:6: model.kwargs.widths: {shown}" + err.split(shown, 1)[1].rstrip()]
    assert "allowed: a non-empty list of integers in [1, 65536]" in err


@pytest.mark.parametrize("model, kwargs, field", [
    ("conv1d", "{kernel: 0}", "model.kwargs.kernel"), ("conv1d", "{batchnorm: 1}", "model.kwargs.batchnorm"),
    ("conv1d", "{stride: 1, widths: [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8], kernel: 7, padding: 0}",
     "model.kwargs.widths"),
    ("mlp", "{depth: 3}", "model.kwargs.depth"), ("mlp", "{widths: [8, -1]}", "model.kwargs.widths"),
])
def test_other_bad_model_settings_name_their_field(model, kwargs, field):
    from tprm.engine.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError) as exc:
        parse_recipe(f"name: k\nmodel: {{name: {model}, kwargs: {kwargs}}}\n", "k.yaml")
    assert exc.value.field == field and exc.value.line == 2


def test_image_model_on_a_signal_dataset_is_rejected():
    from tprm.engine.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError) as exc:
        parse_recipe("name: k\nmodel: {name: vgg11, kwargs: {width: 0.5}}\n", "k.yaml")
    assert exc.value.field == "model.name" and "images" in str(exc.value)


def test_model_settings_table_matches_the_builders():
    """modelspec (torch-free) lists exactly each builder's keyword arguments and defaults."""
    import inspect

    from tprm.science import models
    from tprm.science.modelspec import MODEL_SETTINGS

    assert set(MODEL_SETTINGS) == set(models.MODEL_NAMES)
    for name, builder in models._REGISTRY.items():
        params = {k: p.default for k, p in inspect.signature(builder).parameters.items()
                  if k not in ("self", "num_classes", "input_shape")}
        assert {k: d for k, (d, _) in MODEL_SETTINGS[name].items()} == params, name


def test_valid_model_settings_build(tmp_path):
    """What validate accepts, the builder builds (a check that is too strict would show here)."""
    from tprm.engine.recipe import parse_recipe
    from tprm.science.models import build_model

    for model, kwargs, data in (("conv1d", "{widths: [8, 8], kernel: 3, stride: 1, padding: 0, batchnorm: true}", "mnist1d"),
                                ("mlp", "{widths: [4]}", "mnist1d"),
                                ("densenet", "{depth: 10, growth_rate: 2, compression: 1}", "cifar10"),
                                ("preresnet", "{depth: 8, width: 0.25}", "cifar10")):
        r = parse_recipe(f"name: k\ndataset: {{name: {data}}}\nmodel: {{name: {model}, kwargs: {kwargs}}}\n")
        build_model(model, 10, r.data_spec().input_shape, **dict(r.model.kwargs))


# -- a diverged parent (item 7) ------------------------------------------------------------------
def _hot_recipe(tmp_path: Path) -> Path:
    from conftest import TINY_RECIPE

    path = tmp_path / "hot.yaml"
    path.write_text(TINY_RECIPE.replace("name: tiny", "name: hot").replace(
        "temperature: {knob: epochs, values: [1, 2]}", "temperature: {knob: lr, values: [0.05, 10000]}"))
    return path


def test_a_diverged_parent_settles_its_dependents(tmp_path, capsys, monkeypatch):
    from tprm.service import Service

    recipe, store = _hot_recipe(tmp_path), tmp_path / "s"
    code, out, err = call(capsys, monkeypatch, "run", str(recipe), "--store", str(store))
    assert code == 0, err
    assert ": done (diverged 1, done 9, skipped 8; executed 9)" in out
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "1 job(s) diverged" in warning[0] and "8 dependent job(s) skipped" in warning[0]
    # a rerun has nothing to do and stays ok (before: the dependents stayed queued, exit 1)
    code, out, err = call(capsys, monkeypatch, "run", str(recipe), "--store", str(store))
    assert code == 0 and "executed 0" in out
    svc = Service(store)
    cells = svc.results.table(str(recipe))
    hot = [c for c in cells if c["temperature"] == 10000]
    assert len(hot) == 2 and all(c["state"] == "diverged" and c["regime"] == "diverged" for c in hot)
    assert all(c["job_states"]["dense"] == "diverged" and c["job_states"]["prune"] == "skipped" for c in hot)
    assert all(c["state"] == "done" for c in cells if c["temperature"] == 0.05)
    s = svc.runs.status()
    assert s["recipes"]["hot"]["counts"] == {"done": 9, "diverged": 1, "skipped": 8}
    assert {j["reason"] for j in s["jobs"] if j["state"] == "skipped"} == {"parent diverged"}
    code, out, _ = call(capsys, monkeypatch, "status", "--store", str(store))
    assert "8 job(s) skipped (parent diverged)" in out and "since" not in out  # finished runs
    lines = out.splitlines()
    below = lines[next(i for i, ln in enumerate(lines) if ln.startswith("hot: ")) + 1]
    assert below.startswith("  run ") and ": done at " in below  # the run, under its own recipe
    plot = svc.results.plot(str(recipe), "regime", color=False, table=False)
    rows = [line.split("│")[1].split() for line in plot.splitlines() if "%" in line and "│" in line]
    assert rows == [["B", "x"], ["B", "x"]] or (len(rows) == 2 and all(r[-1] == "x" for r in rows)), plot
    grid = svc.results.grid(str(recipe), "test_error")
    assert grid.state[grid.temperatures.index(10000)] == ["diverged", "diverged"]


def test_a_failed_dense_seed_shows_failed(tmp_path):
    """A cell whose dense job failed says `failed` (not missing/unknown)."""
    from conftest import TINY_RECIPE
    from tprm.service import Service

    init = tmp_path / "init.pt"
    init.write_bytes(b"not a checkpoint")
    path = tmp_path / "broken.yaml"
    path.write_text(TINY_RECIPE.replace("name: tiny", "name: broken").replace(
        "checkpoint_every: 1}", f"checkpoint_every: 1, init: {init}}}"))
    svc = Service(tmp_path / "s")
    summary = svc.runs.run(str(path))
    assert summary["exit_code"] == 1 and summary["counts"].get("failed") == 1
    rows = svc.results.table(str(path))
    assert rows and all(r["state"] == "failed" and r["regime"] is None for r in rows)
    grid = svc.results.grid(str(path), "test_error")
    assert {s for row in grid.state for s in row} == {"failed"}


# -- help texts (item 9) -------------------------------------------------------------------------
@pytest.mark.parametrize("args, text", [
    (("recipes", "new"), "NAME"), (("recipes", "new"), "./recipes/NAME.yaml"),
    (("logs",), "Keep printing new lines"), (("export",), ".tar.gz, .tgz or .zip"),
    (("import",), "written by `tprm export`"), (("case", "direction"), "on the recipe's grid"),
    (("store", "gc"), "Only list what would be moved"),
])
def test_help_texts(capsys, monkeypatch, args, text):
    monkeypatch.setenv("COLUMNS", "300")
    code, out, _ = call(capsys, monkeypatch, *args, "--help")
    assert code == 0 and text in " ".join(out.split()), out


def test_store_migrate_prints_plain_versions(tmp_path, capsys, monkeypatch):
    from test_store import write_v1_store

    write_v1_store(tmp_path / "old")
    code, out, _ = call(capsys, monkeypatch, "store", "migrate", "--store", str(tmp_path / "old"))
    assert code == 0 and out.strip() == "store schema version 1 -> 2"
    code, out, _ = call(capsys, monkeypatch, "store", "migrate", "--store", str(tmp_path / "old"))
    assert code == 0 and out.strip() == "store schema version 2: already up to date"


def test_skipped_jobs_follow_a_divergence_down_the_graph():
    from tprm.engine.plan import skipped_jobs

    recs = {"d1": {"state": "diverged"}, "d2": {"state": "done"},
            "p1": {"state": "queued", "deps": ["d1"]}, "p2": {"state": "diverged", "deps": ["d2"]},
            "p3": {"state": "queued", "deps": ["d2"]},
            "r1": {"state": "failed", "deps": ["p1"]}, "r2": {"state": "queued", "deps": ["p2"]},
            "r3": {"state": "queued", "deps": ["p3"]}, "x": {"state": "queued", "deps": ["r2", "r3"]}}
    assert skipped_jobs(recs) == {"p1", "r1", "r2", "x"}
