"""execution.threads: auto (engine/cputhreads.py): the share of the cores on an idle machine, fewer
threads while other processes compute, a fixed number when the recipe sets one."""

from __future__ import annotations

import torch

from tprm.engine import cputhreads
from tprm.engine.cputhreads import ThreadGovernor, threads_for
from tprm.engine.recipe import parse_recipe

from conftest import TINY_RECIPE


def test_threads_follow_what_other_processes_use(monkeypatch):
    monkeypatch.setattr(cputhreads, "cores", lambda: 2)
    assert threads_for(2, 0.0) == 2 and threads_for(2, 0.4) == 2   # idle: the whole share
    assert threads_for(2, 1.0) == 1 and threads_for(2, 2.0) == 1   # one core busy: one thread
    assert threads_for(2, None) == 2                               # nothing measured: the share
    monkeypatch.setattr(cputhreads, "cores", lambda: 8)
    assert threads_for(4, 3.0) == 4 and threads_for(8, 3.0) == 5


def test_governor_sets_a_fixed_number_and_measures_under_auto():
    before = torch.get_num_threads()
    try:
        fixed = ThreadGovernor(1, workers=1)
        assert fixed.start() == 1 and torch.get_num_threads() == 1
        auto = ThreadGovernor("auto", workers=1)
        assert 1 <= auto.start() <= cputhreads.cores()
        assert torch.get_num_threads() == auto.current
        many = ThreadGovernor("auto", workers=64)   # more workers than cores: one thread each
        assert many.start() == 1
    finally:
        torch.set_num_threads(before)


def test_threads_auto_is_the_default_and_keeps_the_recipe_hash():
    unpinned = TINY_RECIPE.replace("execution: {device: cpu, threads: 1}", "execution: {device: cpu}")
    assert unpinned != TINY_RECIPE  # the tests' tiny recipe pins threads: 1 (conftest.py)
    recipe = parse_recipe(unpinned, "t.yaml")
    assert recipe.execution.threads == "auto"
    one = recipe.with_overrides({"execution": {"threads": 1}})
    two = recipe.with_overrides({"execution": {"threads": 2}})
    assert one.execution.threads == 1 and one.hash == recipe.hash   # auto hashes as the old default 1
    assert two.hash != recipe.hash
