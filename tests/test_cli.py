"""The CLI as a user meets it: exit codes, one-line errors, no tracebacks, JSON that parses."""

from __future__ import annotations

import json
import re

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st


from conftest import call, TINY_RECIPE, run_tprm

ERROR_LINE = re.compile(r"^error: .+:\d+: [\w.\[\]]+: .+$")



def test_bad_recipe_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_RECIPE.replace("densities: [0.2, 0.8]", "densities: [0.2, 1.8]"))
    code, out, err = call(capsys, monkeypatch, "run", str(bad), "--store", str(tmp_path / "s"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(f"error: {bad}:") and "densities" in lines[0]
    assert not (tmp_path / "s" / "tprm.db.json").exists()  # nothing written for bad input


def test_unknown_key_suggests_the_right_one(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "typo.yaml"
    bad.write_text(TINY_RECIPE.replace("densities:", "densites:"))
    code, _, err = call(capsys, monkeypatch, "recipes", "validate", str(bad))
    assert code == 2 and "did you mean 'densities'" in err and len(err.strip().splitlines()) == 1


def test_unknown_recipe_name_and_bad_device(tmp_path, capsys, monkeypatch):
    code, _, err = call(capsys, monkeypatch, "status", "no-such-recipe", "--store", str(tmp_path))
    assert code == 2 and "no-such-recipe" in err and len(err.strip().splitlines()) == 1
    code, _, err = call(capsys, monkeypatch, "run", "quickstart", "--device", "gpu7",
                        "--store", str(tmp_path))
    assert code == 2 and "--device" in err and "cuda:N" in err


def test_corrupt_store_is_refused_and_kept(tiny_recipe, tmp_path, capsys, monkeypatch):
    store = tmp_path / "s"
    store.mkdir()
    db = store / "tprm.db.json"
    db.write_text('{"jobs": {"1": {"hash": ')
    code, _, err = call(capsys, monkeypatch, "run", str(tiny_recipe), "--store", str(store))
    assert code == 2 and str(db) in err and "Traceback" not in err
    assert db.read_text() == '{"jobs": {"1": {"hash": '


def test_usage_error_exits_2(capsys, monkeypatch):
    code, _, err = call(capsys, monkeypatch, "run")
    assert code == 2


def test_recipes_list_show_new(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = call(capsys, monkeypatch, "recipes", "list", "--json", "--store", str(tmp_path / "s"))
    names = {r["name"] for r in json.loads(out)}
    assert code == 0 and {"quickstart", "cifar10-preresnet20-epochs"} <= names
    code, out, _ = call(capsys, monkeypatch, "recipes", "new", "mine", "--store", str(tmp_path / "s"))
    assert code == 0 and (tmp_path / "s" / "recipes" / "mine.yaml").exists()  # no ./recipes: the store's
    code, out, _ = call(capsys, monkeypatch, "recipes", "show", "mine", "--resolved", "--store", str(tmp_path / "s"))
    assert code == 0 and yaml.safe_load(out)["name"] == "mine"
    code, _, err = call(capsys, monkeypatch, "recipes", "new", "mine", "--store", str(tmp_path / "s"))
    assert code == 2 and "already exists" in err


def test_full_cycle_results_plot_json(tiny_recipe, store_dir, capsys, monkeypatch):
    code, _, _ = call(capsys, monkeypatch, "run", str(tiny_recipe), "--store", str(store_dir))
    assert code == 0
    code, out, _ = call(capsys, monkeypatch, "results", str(tiny_recipe), "--json", "--store", str(store_dir))
    rows = json.loads(out)
    assert code == 0 and len(rows) == 4 and {r["regime"] for r in rows} <= {"I", "II-A", "II-B"}
    code, out, _ = call(capsys, monkeypatch, "results", str(tiny_recipe), "--csv", "--store", str(store_dir))
    assert out.splitlines()[0].startswith("temperature,density,dense_seed") and len(out.splitlines()) == 5
    code, out, _ = call(capsys, monkeypatch, "plot", str(tiny_recipe), "--metric", "mc", "--json",
                        "--store", str(store_dir))
    grid = json.loads(out)
    assert grid["densities"] == [0.2, 0.8] and grid["temperatures"] == [2, 1]  # coldest first
    code, out, _ = call(capsys, monkeypatch, "plot", str(tiny_recipe), "--metric", "regime",
                        "--no-color", "--store", str(store_dir))
    assert code == 0 and "epochs (fewer = hotter)" in out and "80%" in out and "< -0.05" in out and ">= 0.95" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    code, _, err = call(capsys, monkeypatch, "plot", str(tiny_recipe), "--metric", "nope",
                        "--store", str(store_dir))
    assert code == 2 and "test_error" in err
    code, out, _ = call(capsys, monkeypatch, "run", str(tiny_recipe), "--dry-run", "--store", str(store_dir))
    assert "17 jobs, 17 done" in out


def _mutations():
    keys = ["dense", "retrain", "densities", "temperature", "metrics", "regimes", "execution", "dataset"]
    scalars = st.one_of(st.integers(-5, 500), st.floats(-2, 2, allow_nan=False), st.text(max_size=6),
                        st.booleans(), st.none(), st.lists(st.integers(-1, 3), max_size=3))
    return st.tuples(st.sampled_from(keys), st.sampled_from(["drop", "replace", "rename", "inner"]), scalars)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_mutations())
def test_mutated_recipes_exit_0_or_2_with_one_line(tmp_path, capsys, monkeypatch, mutation):
    key, how, value = mutation
    doc = yaml.safe_load(TINY_RECIPE)
    if how == "drop":
        doc.pop(key, None)
    elif how == "replace":
        doc[key] = value
    elif how == "rename":
        doc[key + "x"] = doc.pop(key, {})
    elif isinstance(doc.get(key), dict) and doc[key]:
        inner = sorted(doc[key])[0]
        doc[key][inner] = value
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, out, err = call(capsys, monkeypatch, "recipes", "validate", str(path))
    assert "Traceback" not in err
    if code == 0:
        code2, resolved, _ = call(capsys, monkeypatch, "recipes", "show", str(path), "--resolved")
        again = tmp_path / "again.yaml"
        again.write_text(resolved)
        assert call(capsys, monkeypatch, "recipes", "show", str(again), "--resolved")[1] == resolved
    else:
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and re.match(r"^.+:\d+: [\w.\[\]]+: .+$", lines[0]), lines


def test_entry_point_runs_as_a_process(tmp_path):
    r = run_tprm("recipes", "validate", "quickstart", "--store", str(tmp_path))
    assert r.returncode == 0 and "ok" in r.stdout


def test_store_migrate_through_the_cli(tmp_path, capsys, monkeypatch):
    from test_store import write_v1_store

    store = tmp_path / "old"
    write_v1_store(store)
    code, out, _ = call(capsys, monkeypatch, "store", "migrate", "--store", str(store))
    assert code == 0 and out.strip() == "store schema version 1 -> 2"
    doc = json.loads((store / "tprm.db.json").read_text())
    assert all(j["state"] != "finished" for j in doc["jobs"].values())
    code, out, _ = call(capsys, monkeypatch, "store", "gc", "--dry-run", "--store", str(store))
    assert code == 0 and "would move 0 orphaned file(s)" in out
