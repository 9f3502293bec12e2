"""Job identity: what changes a key and what does not (plan level, no training)."""

from __future__ import annotations

from tprm.engine.plan import LEGACY_DEFAULTS, build_plan, job_key
from tprm.engine.recipe import parse_recipe

from conftest import TINY_RECIPE

IDENT = {"generator": "mnist1d", "seed": 3}


def plan_of(overrides: dict | None = None, text: str = TINY_RECIPE):
    recipe = parse_recipe(text, "tiny.yaml")
    if overrides:
        recipe = recipe.with_overrides(overrides)
    return build_plan(recipe, IDENT)


def kinds(plan, kind):
    return {j.hash for j in plan.jobs.values() if j.kind == kind}


def test_grid_expands_to_expected_job_counts():
    p = plan_of()
    by = {k: len(v) for k, v in p.by_kind().items()}
    # epochs knob: ONE dense run per dense seed; 2 temps x 2 densities pruned; 2 retrain seeds each
    assert by == {"dense": 1, "prune": 4, "retrain": 8, "pairs": 4, "hessian": 0, "ww": 0}
    assert len(p.cells) == 4
    order = [j.kind for j in p.ordered()]
    assert order.index("dense") < order.index("prune") < order.index("retrain") < order.index("pairs")


def test_adding_a_density_adds_only_new_jobs():
    base, more = plan_of(), plan_of({"densities": [0.2, 0.5, 0.8]})
    assert set(base.jobs) < set(more.jobs)
    new = set(more.jobs) - set(base.jobs)
    assert {more.jobs[h].kind for h in new} == {"prune", "retrain", "pairs"}
    assert len(new) == 2 * (1 + 2 + 1)  # per temperature: prune, two retrains, pairs


def test_adding_a_temperature_never_retrains_the_dense_model():
    base = plan_of()
    more = plan_of({"temperature": {"values": [1, 2, 3]}, "dense": {"epochs": 3}})
    assert kinds(base, "dense") != kinds(more, "dense")  # a longer budget is another dense run
    same_budget = plan_of({"temperature": {"values": [2]}})
    assert kinds(same_budget, "dense") == kinds(base, "dense")
    assert set(same_budget.jobs) < set(base.jobs)


def test_changing_retraining_reuses_dense_and_pruned_models():
    base, other = plan_of(), plan_of({"retrain": {"epochs": 3}})
    assert kinds(base, "dense") == kinds(other, "dense")
    assert kinds(base, "prune") == kinds(other, "prune")
    assert kinds(base, "retrain").isdisjoint(kinds(other, "retrain"))
    assert kinds(base, "pairs").isdisjoint(kinds(other, "pairs"))


def test_two_recipes_sharing_a_dense_model_share_the_job():
    a = plan_of()
    b = plan_of(text=TINY_RECIPE.replace("name: tiny", "name: other").replace(
        "densities: [0.2, 0.8]", "densities: [0.1]"))
    assert kinds(a, "dense") == kinds(b, "dense")
    assert kinds(a, "prune").isdisjoint(kinds(b, "prune"))


def test_precision_data_and_seed_are_part_of_the_key():
    base = plan_of()
    assert kinds(plan_of({"execution": {"precision": "float64"}}), "dense") != kinds(base, "dense")
    assert kinds(build_plan(parse_recipe(TINY_RECIPE, "t.yaml"), {"other": 1}), "dense") != kinds(base, "dense")
    assert kinds(plan_of({"dense_seeds": [1]}), "dense") != kinds(base, "dense")


def test_device_and_workers_are_not_part_of_the_key():
    base = plan_of()
    other = plan_of({"execution": {"device": "cuda:1", "jobs": 4, "max_fused": 3}})
    assert set(base.jobs) == set(other.jobs)


def test_a_field_at_its_legacy_value_keeps_old_keys():
    spec = {"model": "m", "seed": 0}
    field, legacy = next(iter(LEGACY_DEFAULTS["dense"].items()))
    assert job_key("dense", {**spec, field: legacy}) == job_key("dense", spec)
    assert job_key("dense", {**spec, field: "something-else"}) != job_key("dense", spec)


def test_other_knobs_train_one_dense_model_per_value():
    text = TINY_RECIPE.replace("temperature: {knob: epochs, values: [1, 2]}",
                               "temperature: {knob: lr, values: [0.01, 0.1, 0.2]}")
    p = plan_of(text=text)
    assert len(kinds(p, "dense")) == 3
    lrs = sorted(j.spec["schedule"]["lr"] for j in p.jobs.values() if j.kind == "dense")
    assert lrs == [0.01, 0.1, 0.2]


def test_channels_last_enters_every_key_only_when_set():
    base = plan_of()
    nhwc = plan_of({"execution": {"channels_last": True}})
    assert set(base.jobs).isdisjoint(nhwc.jobs)  # it changes rounding: every job is another one
    assert all("channels_last" not in dict(j.spec) and j.spec.channels_last is False
               for j in base.jobs.values())  # unset: the spec (record, key) is as before the field
    assert all(dict(j.spec)["channels_last"] is True for j in nhwc.jobs.values())


def test_bf16_enters_the_key_and_compile_does_not():
    base = plan_of()
    assert set(base.jobs).isdisjoint(plan_of({"execution": {"precision": "bf16"}}).jobs)
    assert set(base.jobs) == set(plan_of({"execution": {"compile": True}}).jobs)
