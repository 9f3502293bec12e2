"""Recipe schema: loading, one-line errors with file:line:field, defaults, hashing, round trip."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tprm.engine.recipe import (DATASET_NAMES, HOTTER, MODEL_NAMES, Recipe, RecipeError, find_recipe,
                                hotter_order, known_recipes, load_recipe, parse_recipe)

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "recipes"
SHIPPED = sorted(RECIPES.glob("*.yaml"))
ERROR_LINE = re.compile(r"^.+:\d+: [\w.\[\]]+: .+")

RICH = """\
name: rich-1
description: many non-defaults
dataset:
  name: cifar10
  train_subset: 1000
  augment: {crop_padding: 2, flip: false}
  normalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}
model:
  import: mypkg.nets:make_net
  kwargs: {widths: [8, 16], opts: {act: relu, gain: 1.5}}
dense:
  epochs: null
  iterations: 500
  batch_size: 32
  lr: 1e-2
  weight_decay: 0
  milestones: [0.75, 0.25]
temperature: {knob: batch_size, values: [64, 16, 32]}
densities: [0.5, 0.1, 1]
pruning: {method: imp, scope: global, layers: ["conv*", "fc.weight"], imp_rounds: 2}
retrain: {epochs: 6, seeds: [3, 1, 2], last_epochs: 2, sam_rho: 0.05}
dense_seeds: [7, 5]
metrics: {lmc: {points: 5, test: false}, cka: {samples: 100}, hessian: {enabled: true, probes: 4}}
regimes: {mc_on: loss, cka_threshold: 0.9, split: median}
cases: {select_retrain_epochs: 3, sam_rho_max: 1}
execution: {device: "cuda:1", jobs: 2, precision: float64, on_error: stop, fuse: false}
"""


def error_of(text: str, source: str = "t.yaml", **kwargs) -> str:
    with pytest.raises(RecipeError) as info:
        parse_recipe(text, source, **kwargs)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and ERROR_LINE.match(message), message
    return message


# ------------------------------------------------------------------------------------ shipped recipes


def test_all_gpu_recipes_are_shipped():
    names = {p.stem for p in SHIPPED}
    for knob in ("epochs", "batchsize", "sam"):
        assert f"cifar10-preresnet20-{knob}" in names and f"cifar10-preresnet20-{knob}-quick" in names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_recipe_loads_and_round_trips(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    assert recipe.description.strip()
    again = parse_recipe(recipe.to_yaml(), "resolved.yaml")
    assert again == recipe and again.hash == recipe.hash


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_recipe_is_accepted_by_the_science_layer(path):
    models = pytest.importorskip("tprm.science.models")
    recipe = load_recipe(path)
    spec = recipe.data_spec().resolved()   # validates channels, subsets, augmentation
    assert spec.name == recipe.dataset.name
    if recipe.model.import_ is None:
        model = models.build_model(recipe.model.name, 10, spec.info.input_shape, **recipe.model.kwargs)
        assert sum(p.numel() for p in model.parameters()) > 0


def test_paper_grids_match_the_paper():
    epochs = load_recipe(RECIPES / "cifar10-preresnet20-epochs.yaml")
    assert (epochs.dense.epochs, epochs.dense.checkpoint_every, epochs.dense.batch_size) == (160, 10, 64)
    assert epochs.temperature.values == tuple(range(10, 161, 10))
    assert epochs.densities == (0.05, 0.06, 0.07, 0.08, 0.10, 0.14, 0.20, 0.40, 0.80)
    assert (epochs.dense.lr, epochs.dense.weight_decay, epochs.dense.milestones) == (0.1, 1e-4, (0.5, 0.75))
    assert (epochs.retrain.epochs, epochs.retrain.lr, len(epochs.retrain.seeds)) == (160, 0.1, 3)
    assert len(epochs.dense_seeds) == 3 and epochs.regimes.cka_threshold == 0.95
    assert epochs.dataset.normalize.std == (0.2023, 0.1994, 0.2010)
    batch = load_recipe(RECIPES / "cifar10-preresnet20-batchsize.yaml")
    assert batch.temperature.values == (16, 32, 64, 128, 256, 512)
    assert (batch.dense.iterations, batch.dense.epochs, batch.dense.lr) == (62400, None, 0.1)
    sam = load_recipe(RECIPES / "cifar10-preresnet20-sam.yaml")
    assert sam.temperature.values == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    assert sam.retrain.sam_rho == 0.0
    for knob in ("epochs", "batchsize", "sam"):
        full = load_recipe(RECIPES / f"cifar10-preresnet20-{knob}.yaml")
        quick = load_recipe(RECIPES / f"cifar10-preresnet20-{knob}-quick.yaml")
        assert quick.temperature.knob == full.temperature.knob
        assert 4 <= len(quick.temperature.values) <= 5 and len(quick.densities) == 4
        assert len(quick.retrain.seeds) == 2 and len(quick.dense_seeds) == 1
        assert quick.retrain.epochs < full.retrain.epochs


def test_names_match_the_science_layer():
    models = pytest.importorskip("tprm.science.models")
    data = pytest.importorskip("tprm.science.data")
    assert set(MODEL_NAMES) == set(models.MODEL_NAMES)
    assert set(DATASET_NAMES) == set(data.DATASET_NAMES)


# ------------------------------------------------------------------------------------------ defaults


def test_defaults_equal_the_architecture_contract():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    block = text.split("### recipe.py")[1].split("```yaml")[1].split("```")[0]
    assert parse_recipe(block, "ARCHITECTURE.md") == parse_recipe("name: quickstart")
    assert parse_recipe("name: quickstart") == Recipe(name="quickstart")


def test_only_name_is_required():
    recipe = parse_recipe("name: a")
    assert recipe.dense.epochs == 64 and recipe.retrain.seeds == (0, 1) and recipe.temperature.knob == "epochs"
    assert error_of("description: x\n") == "t.yaml:1: name: missing, allowed: a recipe name like 'my-recipe' " \
                                           "(lower-case letters, digits, '-' and '_')"


def test_numbers_are_normalised_and_grids_sorted():
    r = parse_recipe(RICH)
    assert r.densities == (0.1, 0.5, 1.0) and all(type(d) is float for d in r.densities)
    assert r.dense.lr == 0.01 and type(r.dense.weight_decay) is float
    assert r.dense.milestones == (0.25, 0.75) and r.temperature.values == (16, 32, 64)
    assert all(type(v) is int for v in r.temperature.values)
    assert r.retrain.seeds == (1, 2, 3) and r.dense_seeds == (5, 7)
    assert r.pruning.layers == ("conv*", "fc.weight")       # patterns keep their order
    assert r.model.name == "make_net" and r.model.import_ == "mypkg.nets:make_net"
    assert r.model.kwargs == {"widths": (8, 16), "opts": {"act": "relu", "gain": 1.5}}
    lr_recipe = parse_recipe("name: a\ntemperature: {knob: lr, values: [1, 0.1]}\n")
    assert lr_recipe.temperature.values == (0.1, 1.0) and type(lr_recipe.temperature.values[1]) is float


def test_recipe_is_immutable_hashable_and_picklable():
    r = parse_recipe(RICH)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.name = "other"
    with pytest.raises(TypeError):
        r.model.kwargs["widths"] = (1,)
    assert pickle.loads(pickle.dumps(r)) == r and copy.deepcopy(r) == r
    assert len({r, parse_recipe(r.to_yaml())}) == 1


# ------------------------------------------------------------------------------ round trip and hash


def test_round_trip_of_every_setting():
    r = parse_recipe(RICH)
    text = r.to_yaml()
    assert parse_recipe(text) == r
    assert "import: mypkg.nets:make_net" in text and "weight_decay: 0.0" in text
    # every setting is written out, defaults included
    assert "max_endpoint_gap: 0.05" in text and "power_iters: 20" in text


def test_hash_is_stable_and_ignores_name_description_and_order():
    r = parse_recipe(RICH)
    assert re.fullmatch(r"[0-9a-f]{64}", r.hash)
    assert parse_recipe(r.to_yaml()).hash == r.hash
    renamed = parse_recipe(RICH.replace("name: rich-1", "name: rich-2").replace("many non", "other"))
    assert renamed.hash == r.hash and renamed != r
    reordered = parse_recipe(RICH.replace("[0.5, 0.1, 1]", "[1.0, 0.5, 0.10]"))
    assert reordered == r and reordered.hash == r.hash


@pytest.mark.parametrize("override", [
    {"dense": {"lr": 0.02}}, {"densities": [0.1, 0.5]}, {"retrain": {"seeds": [1, 2]}},
    {"execution": {"precision": "float32"}}, {"model": {"kwargs": {"widths": [8, 17]}}},
    {"regimes": {"cka_threshold": 0.91}},
])
def test_hash_changes_with_any_setting(override):
    r = parse_recipe(RICH)
    assert r.with_overrides(override).hash != r.hash


# --------------------------------------------------------------------------------------- overrides


def test_with_overrides_deep_merges_and_revalidates():
    r = parse_recipe("name: a")
    sub = r.with_overrides({"dense": {"lr": 0.2}, "densities": [0.3], "name": "a-sub"})
    assert (sub.dense.lr, sub.dense.batch_size, sub.densities, sub.name) == (0.2, 128, (0.3,), "a-sub")
    assert r.dense.lr == 0.05      # the original is untouched
    with pytest.raises(RecipeError, match=r"^<overrides>:\d+: dense.lr: -1 is out of range, allowed: > 0$"):
        r.with_overrides({"dense": {"lr": -1}})
    with pytest.raises(RecipeError, match=r"dense.bogus: unknown key"):
        r.with_overrides({"dense": {"bogus": 1}})


def test_with_overrides_clears_the_partner_key_like_a_file():
    r = parse_recipe("name: a\ntemperature: {knob: lr, values: [0.1]}\n")
    counted = r.with_overrides({"dense": {"iterations": 100}})
    assert (counted.dense.epochs, counted.dense.iterations) == (None, 100)
    assert counted.with_overrides({"dense": {"epochs": 3}}).dense.iterations is None
    imported = r.with_overrides({"model": {"import_": "pkg.mod:build"}})
    assert (imported.model.name, imported.model.import_) == ("build", "pkg.mod:build")
    builtin = imported.with_overrides({"model": {"name": "mlp"}})
    assert (builtin.model.name, builtin.model.import_) == ("mlp", None)


def test_with_overrides_rejects_unwritable_values():
    with pytest.raises(RecipeError, match=r"^<overrides>:1: overrides: expected a mapping"):
        parse_recipe("name: a").with_overrides([("dense", 1)])
    message = str(pytest.raises(RecipeError, parse_recipe("name: a").with_overrides, {"dense": {"lr": object()}})
                  .value)
    assert message.startswith("<overrides>:1: overrides: cannot write") and len(message.splitlines()) == 1


# ------------------------------------------------------------------------------------------ errors

ERRORS = [
    # (text, line, field, expected part of the message)
    ("name: [a\n", 1, "yaml", "invalid YAML"),  # the unclosed bracket, not where the text ran out
    ("name: a\n  b: c\nd\n", 2, "yaml", "invalid YAML: mapping values are not allowed here"),
    ("- a\n- b\n", 1, "recipe", "expected a mapping of settings"),
    ("", 1, "recipe", "the file is empty"),
    ("name: a\ndense:\n  lrr: 0.1\n", 3, "dense.lrr", "unknown key 'lrr' (did you mean 'lr'?), allowed: epochs,"),
    ("name: a\nnmae: b\n", 2, "nmae", "unknown key 'nmae' (did you mean 'name'?)"),
    ("name: a\ndense:\n  lr: abc\n", 3, "dense.lr", "expected a number, got 'abc'"),
    ("name: a\ndense:\n  lr: true\n", 3, "dense.lr", "expected a number, got true"),
    ("name: a\ndense:\n  batch_size: 1e3\n", 3, "dense.batch_size", "expected an integer, got 1e3"),
    ("name: a\ndense:\n  batch_size: 128.0\n", 3, "dense.batch_size", "expected an integer, got 128.0"),
    ("name: a\ndense: {epochs: yes}\n", 2, "dense.epochs", "expected an integer or null, got yes (a boolean)"),
    ("name: a\ndensities: [0.1, 1.5]\n", 2, "densities[1]", "1.5 is out of range, allowed: (0, 1]"),
    ("name: a\ndensities:\n  - 0.1\n  - 0\n", 4, "densities[1]", "0 is out of range, allowed: (0, 1]"),
    ("name: a\ndense: {lr: 0}\n", 2, "dense.lr", "0 is out of range, allowed: > 0"),
    ("name: a\ndense: {momentum: 1}\n", 2, "dense.momentum", "1 is out of range, allowed: [0, 1)"),
    ("name: a\ndense: {lr: .nan}\n", 2, "dense.lr", "nan is not a finite number"),
    ("name: a\ndense_seeds: [-1]\n", 2, "dense_seeds[0]", "-1 is out of range, allowed: [0, 4294967295]"),
    ("name: a\nretrain: {seeds: [0, 1.5]}\n", 2, "retrain.seeds[1]", "expected an integer, got 1.5"),
    ("name: a\nregimes: {mc_threshold: 0.1}\n", 2, "regimes.mc_threshold", "allowed: <= 0"),
    ("name: a\nregimes: {cka_threshold: 1.1}\n", 2, "regimes.cka_threshold", "allowed: [0, 1]"),
    ("name: a\ntemperature: {values: []}\n", 2, "temperature.values", "empty list"),
    ("name: a\ndensities: []\n", 2, "densities", "empty list"),
    ("name: a\ndense_seeds: []\n", 2, "dense_seeds", "empty list"),
    ("name: a\ndensities: [0.1, 0.2, 0.1]\n", 2, "densities[2]", "0.1 appears twice (also densities[0])"),
    ("name: a\ntemperature:\n  values: [4, 8, 4]\n", 3, "temperature.values[2]", "appears twice"),
    ("name: a\nretrain:\n  seeds: [0]\n", 3, "retrain.seeds", "at least 2 seeds"),
    ("name: a\ndense: {iterations: 100, epochs: 10}\n", 2, "dense.iterations", "exactly one"),
    ("name: a\nretrain:\n  epochs: null\n", 2, "retrain", "neither epochs nor iterations is set"),
    ("name: a\ndataset: {name: cifar11}\n", 2, "dataset.name", "unknown value 'cifar11' (did you mean 'cifar10'?)"),
    ("name: a\nmodel:\n  name: resnet\n", 3, "model.name", "unknown model 'resnet' (did you mean 'resnet18'?)"),
    ("name: a\nmodel: {import: os.system}\n", 2, "model.import", "allowed: 'package.module:factory' or null"),
    ("name: a\ntemperature: {knob: temp}\n", 2, "temperature.knob", "allowed: epochs, batch_size, lr, weight_decay"),
    ("name: a\npruning: {method: l1}\n", 2, "pruning.method", "allowed: magnitude, random, imp"),
    ("name: a\nexecution: {device: gpu}\n", 2, "execution.device", "allowed: auto, cpu, cuda, cuda:N or mps"),
    ("name: a\nexecution: {device: 'cuda:x'}\n", 2, "execution.device", "is not valid"),
    ("name: a\nexecution:\n  precision: bf32\n", 3, "execution.precision", "allowed: float32, float64, bf16"),
    ("name: a\nexecution: {channels_last: 1}\n", 2, "execution.channels_last", "expected true or false"),
    ("name: a\nexecution: {compile: max}\n", 2, "execution.compile", "expected true or false"),
    ("name: a\ntemperature:\n  values:\n    - 4\n    - 100\n", 5, "temperature.values[1]",
     "100 epochs is more than dense.epochs (64)"),
    ("name: a\ndense: {checkpoint_every: 4}\ntemperature: {values: [4, 6]}\n", 3, "temperature.values[1]",
     "6 is not a multiple of dense.checkpoint_every (4)"),
    ("name: a\ntemperature: {values: [4, 8.5]}\n", 2, "temperature.values[1]", "expected an integer epochs value"),
    ("name: a\ndense: {epochs: null, iterations: 10}\ntemperature: {values: [4]}\n", 3, "temperature.knob",
     "knob epochs needs dense.epochs"),
    ("name: a\ntemperature: {knob: batch_size, values: [16, 32]}\n", 2, "temperature.knob",
     "knob batch_size needs a fixed iteration count"),
    ("name: a\ntemperature: {knob: sam_rho, values: [0.1, -0.2]}\n", 2, "temperature.values[1]", "allowed: >= 0"),
    ("name: a\ntemperature: {knob: lr, values: [0.1, 0]}\n", 2, "temperature.values[1]", "allowed: > 0"),
    ("name: a\ntemperature: {knob: lr}\n", 2, "temperature.values", "missing for knob 'lr'"),
    ("name: My Recipe\n", 1, "name", "'My Recipe' is not valid, allowed: lower-case letters"),
    ("name: !!python/object/apply:os.system ['echo x']\n", 1, "name", "unsupported YAML tag"),
    ("!!python/object:os.system {name: a}\n", 1, "recipe", "unsupported YAML tag"),
    ("name: a\nname: b\n", 2, "name", "duplicate key 'name' (first at line 1)"),
    ("name: a\ndense: [1]\n", 2, "dense", "expected a mapping for the dense section"),
    ("name: a\ndataset: {name: cifar10, normalize: {mean: [0.5]}}\n", 2, "dataset.normalize.mean",
     "allowed: one per channel (3)"),
    ("name: a\nmodel: {kwargs: {num_classes: 3}}\n", 2, "model.kwargs", "set by tprm from the dataset"),
    ("name: a\nretrain: {epochs: 3, last_epochs: 5}\n", 2, "retrain.last_epochs", "more than retrain.epochs"),
    ("name: a\ncases: {sam_rho_min: 0.5, sam_rho_max: 0.5}\n", 2, "cases.sam_rho_max", "not above"),
    ("name: a\ndense: {init: missing.pt}\n", 2, "dense.init", "file 'missing.pt' not found"),
    ("name: a\npruning: {layers: all}\n", 2, "pruning.layers", "expected 'default' or a list"),
]


@pytest.mark.parametrize("text,line,field,part", ERRORS, ids=[f"{e[2]}-{i}" for i, e in enumerate(ERRORS)])
def test_error_is_one_line_with_file_line_and_field(text, line, field, part):
    message = error_of(text, "dir/t.yaml")
    assert message.startswith(f"dir/t.yaml:{line}: {field}: "), message
    assert part in message, message


def test_yaml_tags_never_construct_objects(tmp_path):
    marker = tmp_path / "ran"
    error_of(f"name: a\ndescription: !!python/object/apply:os.system ['touch {marker}']\n")
    assert not marker.exists()


def test_init_path_is_relative_to_the_recipe_file(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.pt").write_bytes(b"x")
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("name: r\ndense:\n  init: weights/w.pt\n")
    recipe = load_recipe(recipe_file)
    assert recipe.dense.init == str((tmp_path / "weights" / "w.pt").resolve())
    assert parse_recipe(recipe.to_yaml()) == recipe        # absolute, so it means the same file anywhere
    recipe_file.write_text("name: r\ndense:\n  init: weights/nope.pt\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe_file)
    assert str(info.value).startswith(f"{recipe_file}:3: dense.init: file 'weights/nope.pt' not found")


def test_load_recipe_of_a_missing_file(tmp_path):
    with pytest.raises(RecipeError, match=r"nope.yaml:1: recipe: no such file"):
        load_recipe(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- finding and ordering


def test_find_recipe(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    (first / "one.yaml").write_text("name: one\n")
    (second / "one.yaml").write_text("name: one\n")
    (second / "two.yaml").write_text("name: two\n")
    assert find_recipe("one", [first, second]) == first / "one.yaml"
    assert find_recipe("two", [first, second]) == second / "two.yaml"
    assert find_recipe(str(second / "one.yaml"), [first]) == second / "one.yaml"
    assert set(known_recipes([first, second])) == {"one", "two"}
    with pytest.raises(RecipeError) as info:
        find_recipe("tow", [first, second])
    assert str(info.value) == "no recipe named 'tow' (did you mean 'two'?); known: one, two"


@pytest.mark.parametrize("knob,values,coldest_first", [
    ("epochs", "[8, 2, 4]", [8, 4, 2]),
    ("batch_size", "[16, 512, 64]", [512, 64, 16]),
    ("lr", "[0.1, 0.01]", [0.01, 0.1]),
    ("weight_decay", "[0.001, 0]", [0.0, 0.001]),
    ("sam_rho", "[0.5, 0.1]", [0.1, 0.5]),
])
def test_hotter_order(knob, values, coldest_first):
    budget = "dense: {epochs: null, iterations: 50}\n" if knob == "batch_size" else ""
    recipe = parse_recipe(f"name: a\n{budget}temperature: {{knob: {knob}, values: {values}}}\n")
    assert hotter_order(recipe) == coldest_first
    assert HOTTER[knob] in ("fewer", "smaller", "larger")


def test_docs_describe_every_field():
    doc = (ROOT / "docs" / "recipes.md").read_text()

    def paths(tree: dict, prefix: str = ""):
        for key, value in tree.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict) and path != "model.kwargs":
                yield from paths(value, path + ".")
            else:
                yield path

    missing = [p for p in paths(parse_recipe("name: a").to_dict()) if f"`{p}`" not in doc]
    assert not missing
    assert "weight_decay" in doc and "larger (ours)" in doc
    # the README's recipe reference (the resolved default recipe, commented) names every field too
    readme = (ROOT / "README.md").read_text().split("## Recipe reference", 1)[1].split("\n## ", 1)[0]
    keys = {line.split(":")[0].strip() for line in readme.splitlines() if ":" in line}
    assert not [p for p in paths(parse_recipe("name: a").to_dict()) if p.rpartition(".")[2] not in keys]


# ------------------------------------------------------------------------------ mutated recipes

BASE = parse_recipe(RICH.replace("import: mypkg.nets:make_net", "name: preresnet").replace(
    "{widths: [8, 16], opts: {act: relu, gain: 1.5}}", "{depth: 8, width: 0.5}")).to_dict()
KEY_NAMES = sorted({k for text in (RICH, parse_recipe("name: a").to_yaml()) for k in re.findall(r"(\w+):", text)})
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 200), st.integers(), st.floats(), st.text(max_size=8),
    st.sampled_from(["1e-4", "1e3", "abc", "cuda:1", "epochs", "default", "0.5", "imp", "~", "- x", "a: b",
                     "!!python/name:os.system", "2001-12-14", "yes", "0x1F", ".inf"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(KEY_NAMES)), inner,
                                        max_size=3), max_leaves=8)
KEYS = st.one_of(st.sampled_from(KEY_NAMES), st.text(max_size=10))
TEXT_EDITS = [":", "-", " ", "\n", "[", "{", "\t", "'", "&a ", "*a", "!!python/object:os.system ", "? ", "#",
              "\x07", "\ufeff", "---\n"]


def _slots(tree):
    """(container, key) for every dict entry and list element in the tree."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in list(items):
        yield tree, key
        yield from _slots(value)


def _mutate(tree, data):
    slots = list(_slots(tree))
    if not slots:
        return
    container, key = data.draw(st.sampled_from(slots))
    op = data.draw(st.sampled_from(["delete", "rename", "replace", "replace", "nest", "unnest", "move"]))
    value = container[key]
    if op == "delete":
        del container[key]
    elif op == "rename" and isinstance(container, dict):
        container[data.draw(KEYS)] = container.pop(key)
    elif op == "nest":
        container[key] = data.draw(st.sampled_from([[value], {data.draw(KEYS): value}]))
    elif op == "unnest" and isinstance(value, (dict, list)) and value:
        container[key] = list(value.values())[0] if isinstance(value, dict) else value[0]
    elif op == "move" and isinstance(container, dict):
        targets = [c[k] for c, k in slots if isinstance(c[k], dict) and c[k] is not container]
        if targets:
            data.draw(st.sampled_from(targets))[key] = container.pop(key)
    else:
        container[key] = data.draw(VALUES)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_recipes_give_a_recipe_or_a_one_line_error(data):
    tree = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate(tree, data)
    text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True, default_flow_style=data.draw(st.booleans()))
    if data.draw(st.integers(0, 3)) == 0:
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + data.draw(st.sampled_from(TEXT_EDITS)) + text[at:]
    try:
        recipe = parse_recipe(text, "mutant.yaml")
    except RecipeError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1 and ERROR_LINE.match(message), message
        line = int(message.split(":")[1])
        assert 1 <= line <= len(text.splitlines()) + 1, message
        event(f"error in {message.split(': ')[1].split('[')[0]}")
    else:
        event("valid recipe")
        again = parse_recipe(recipe.to_yaml(), "resolved.yaml")
        assert again == recipe and again.hash == recipe.hash
