"""Job keys are stable across code changes: every shipped recipe plans the same job keys (and has
the same recipe hash) as the code that wrote tests/data/plan_keys.json (main before the execution
options channels_last/compile/bf16 were added). A key that changes silently would make every
store recompute its jobs.

Regenerate (only when keys are MEANT to change, e.g. a SCIENCE_VERSION bump):
    PYTHONPATH=<checkout> python tests/test_plan_keys.py > tests/data/plan_keys.json
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STORED = ROOT / "tests" / "data" / "plan_keys.json"
IDENT = {"generator": "fixed-for-key-test", "seed": 1}


def keys_of(path: Path) -> dict:
    from tprm.engine.plan import build_plan
    from tprm.engine.recipe import load_recipe

    recipe = load_recipe(path)
    keys = [j.hash for j in build_plan(recipe, IDENT).ordered()]
    return {"recipe_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "recipe_hash": recipe.hash, "jobs": len(keys), "first": keys[:3],
            "keys_sha256": hashlib.sha256("\n".join(keys).encode()).hexdigest()}


STORED_KEYS: dict = json.loads(STORED.read_text())


@pytest.mark.parametrize("name", sorted(STORED_KEYS))
def test_shipped_recipe_plans_the_stored_job_keys(name):
    path = ROOT / "recipes" / f"{name}.yaml"
    stored = STORED_KEYS[name]
    if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != stored["recipe_sha256"]:
        pytest.skip(f"recipes/{name}.yaml changed since the keys were stored (regenerate them)")
    assert keys_of(path) == stored


def test_every_shipped_recipe_has_stored_keys():
    assert {p.stem for p in (ROOT / "recipes").glob("*.yaml")} <= set(STORED_KEYS)


if __name__ == "__main__":
    print(json.dumps({p.stem: keys_of(p) for p in sorted((ROOT / "recipes").glob("*.yaml"))},
                     indent=1, sort_keys=True))
