"""The seeded recipe mutation fuzzer (tests/recipe_fuzz.py), fast: every rejected mutant of a
shipped recipe gets one line in the `file:line: field: ...` form naming the field that broke."""

from __future__ import annotations

import pytest

from conftest import ROOT
from recipe_fuzz import fuzz, related


@pytest.mark.parametrize("seed", [11, 12])
def test_mutated_shipped_recipes_are_rejected_naming_the_field(seed):
    o = fuzz(n=120, seed=seed)
    assert o.tracebacks == [] and o.bad_form == [] and o.wrong_field == []
    assert o.rejected > 60 and o.valid > 0  # the mutations reach both outcomes


def test_the_field_check_can_fail():
    """A message naming an unrelated field is counted (the check is not vacuous)."""
    assert not related("densities[0]", "dense.lr", "x: 5 is out of range", "range")
    assert related("dense.lr", "dense.lr", "x", "range") and related("yaml", "dense.lr", "x", "odd")


def test_defaulted_model_or_dataset_names_the_missing_name():
    import yaml

    from tprm.engine.recipe import RecipeError, parse_recipe

    doc = yaml.safe_load((ROOT / "recipes" / "cifar10-preresnet20-epochs-quick.yaml").read_text())
    del doc["model"]["name"]
    with pytest.raises(RecipeError) as exc:
        parse_recipe(yaml.safe_dump(doc), "m.yaml")
    assert exc.value.field == "model.name" and "default conv1d" in str(exc.value)
    doc = yaml.safe_load((ROOT / "recipes" / "cifar10-preresnet20-epochs-quick.yaml").read_text())
    del doc["dataset"]["name"]
    with pytest.raises(RecipeError) as exc:
        parse_recipe(yaml.safe_dump(doc), "m.yaml")
    assert exc.value.field == "dataset.name"


def test_defaulted_knob_names_the_knob():
    """Values of another knob under the defaulted `epochs` knob: the fix is the knob, so it is named."""
    from tprm.engine.recipe import RecipeError, parse_recipe

    text = "name: k\ntemperature:\n  values: [0.1, 0.2]\n"
    with pytest.raises(RecipeError) as exc:
        parse_recipe(text, "k.yaml")
    assert exc.value.field == "temperature.knob" and "default epochs" in str(exc.value)
    with pytest.raises(RecipeError) as exc:
        parse_recipe(text.replace("temperature:\n", "temperature:\n  knob: epochs\n"), "k.yaml")
    assert exc.value.field == "temperature.values[0]"
