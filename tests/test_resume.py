"""Resumable training (tprm.science.resumestate, execution.resume_every): a training stopped mid-way
and run again ends with the bits of an uninterrupted run, for fused groups, one-by-one groups
(BatchNorm, augmentation) and through the runner's real cancel path."""

from __future__ import annotations

import copy
import itertools
import time

import pytest
import torch

from fakedata import write_fake_cifar10
from tprm.science.data import DataSpec, load_data
from tprm.science.models import build_model, seeded
from tprm.science.prune import magnitude_masks, prunable_parameters
from tprm.science.resumestate import MIN_WORTH_S, Resume, ResumeFiles
from tprm.science.train import Schedule, train

torch.set_num_threads(1)


class Stop(Exception):
    """What a cancel raises from the progress callback."""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_data(DataSpec(num_samples=500), tmp_path_factory.mktemp("mnist1d"))  # 400 train


def conv_nets(data, k: int, **kwargs) -> list:
    out = []
    for seed in range(k):
        with seeded(seed):
            out.append(build_model("conv1d", data.num_classes, data.input_shape, widths=(4, 6), **kwargs))
    return out


class Saved:
    """An in-memory state store with a clock that moves `tick_s` per reading (no real waiting)."""

    def __init__(self, every_s: float = 1e9, tick_s: float = 10.0) -> None:
        self.states: dict[int, dict] = {}
        self.history: list[tuple[int, dict]] = []
        ticks = itertools.count()
        self.files = ResumeFiles(self.states.get, self.save, every_s, clock=lambda: tick_s * next(ticks))

    def save(self, k: int, state: dict) -> None:
        self.states[k] = state
        self.history.append((k, copy.deepcopy(state)))

    def resume(self) -> Resume:
        return Resume(self.files)


def stop_at(model_steps: int):
    def progress(done, _total):
        if done >= model_steps:
            raise Stop
    return progress


def fresh_files(states: dict[int, dict]) -> Resume:
    return Resume(ResumeFiles(dict(states).get, lambda k, s: None, 1e9))


def assert_same(ref, out) -> None:
    """Bit for bit: weights, checkpoints, curves (repr: exact floats, NaN equal to NaN), divergence."""
    assert len(ref) == len(out)
    for a, b in zip(ref, out):
        assert a.state.keys() == b.state.keys()
        assert all(torch.equal(a.state[n], b.state[n]) for n in a.state)
        assert repr(a.curves) == repr(b.curves) and (a.diverged, a.diverged_at) == (b.diverged, b.diverged_at)
        assert a.checkpoints.keys() == b.checkpoints.keys()
        for e in a.checkpoints:
            assert all(torch.equal(a.checkpoints[e][n], b.checkpoints[e][n]) for n in a.checkpoints[e])


def test_fused_group_cancelled_mid_epoch_resumes_bit_identical(data):
    models = conv_nets(data, 3)
    masks = [magnitude_masks(m, 0.3, prunable_parameters(m)) for m in models]
    scheds = [Schedule(lr=0.05, batch_size=32, epochs=3), Schedule(lr=0.1, batch_size=32, epochs=3, sam_rho=0.05),
              Schedule(lr=0.02, batch_size=32, epochs=3, weight_decay=0.0)]
    args = (data, scheds, [0, 1, 2], masks)
    ref = train(copy.deepcopy(models), *args, checkpoint_epochs=[1, 2])
    saved = Saved()
    with pytest.raises(Stop):  # 12 steps an epoch: stopped in the middle of epoch 2
        train(copy.deepcopy(models), *args, checkpoint_epochs=[1, 2], progress=stop_at(3 * 17),
              resume=saved.resume())
    assert sorted(saved.states) == [0, 1, 2] and {s["step"] for s in saved.states.values()} == {17}
    out = train(copy.deepcopy(models), *args, checkpoint_epochs=[1, 2], resume=fresh_files(saved.states))
    assert_same(ref, out)
    for res, mask in zip(out, masks):  # masked weights exactly 0.0 after the resume too
        assert all(bool((res.state[n][~m] == 0).all()) for n, m in mask.items())


def test_fused_group_with_states_of_two_steps_resumes_as_two_fused_parts(data):
    """Jobs of one vmapped group that come back with states of different steps (two saved mid-way,
    two new) train as two fused parts, each in lockstep, with the bits of the uninterrupted group."""
    models = conv_nets(data, 4)
    scheds = [Schedule(lr=0.05 * (k + 1), batch_size=40, epochs=2) for k in range(4)]
    ref = train(copy.deepcopy(models), data, scheds, [0, 1, 2, 3], fuse="vmap")
    saved = Saved()
    with pytest.raises(Stop):
        train(copy.deepcopy(models), data, scheds, [0, 1, 2, 3], progress=stop_at(4 * 13), resume=saved.resume(),
              fuse="vmap")
    calls = []
    out = train(copy.deepcopy(models), data, scheds, [0, 1, 2, 3], progress=lambda d, t: calls.append((d, t)),
                resume=fresh_files({k: saved.states[k] for k in (0, 1)}), fuse="vmap")
    assert_same(ref, out)
    assert calls[-1] == (4 * 20, 4 * 20) and calls[0][0] < 2 * 20  # one progress scale over both parts


def test_grouped_group_with_states_of_two_steps_starts_again_exactly(data):
    """The CPU's default fused form (one wide grouped model) rounds with its group's size: a group whose
    jobs come back with states of different steps trains again from step 0, as one group, with the
    bits of the uninterrupted group (the saved progress is the price)."""
    models = conv_nets(data, 4)
    scheds = [Schedule(lr=0.05 * (k + 1), batch_size=40, epochs=2) for k in range(4)]
    ref = train(copy.deepcopy(models), data, scheds, [0, 1, 2, 3])
    saved = Saved()
    with pytest.raises(Stop):
        train(copy.deepcopy(models), data, scheds, [0, 1, 2, 3], progress=stop_at(4 * 13), resume=saved.resume())
    calls = []
    out = train(copy.deepcopy(models), data, scheds, [0, 1, 2, 3], progress=lambda d, t: calls.append((d, t)),
                resume=fresh_files({k: saved.states[k] for k in (0, 1)}))
    assert_same(ref, out)
    assert calls[0] == (4, 4 * 20) and len(calls) == 20  # every step again, all four models at once


def test_periodic_states_resume_from_any_write_and_a_diverged_model(data):
    """A killed run resumes from its last periodic state, whichever step that was; a model that
    diverged before the state stays diverged."""
    models = conv_nets(data, 2)
    scheds = [Schedule(lr=0.05, batch_size=40, epochs=3), Schedule(lr=1e6, batch_size=40, epochs=3)]
    ref = train(copy.deepcopy(models), data, scheds, [0, 1])
    assert ref[1].diverged and not ref[0].diverged
    saved = Saved(every_s=45.0)  # the clock moves 10 s a reading, one a step: a write every 5th step
    train(copy.deepcopy(models), data, scheds, [0, 1], resume=saved.resume())
    steps = sorted({s["step"] for _, s in saved.history})
    assert len(steps) >= 3 and any(s % 10 == 0 for s in steps) and any(s % 10 for s in steps)
    for step in (steps[0], next(s for s in steps if s % 10 == 0), steps[-1]):
        states = {k: s for k, s in saved.history if s["step"] == step}
        out = train(copy.deepcopy(models), data, scheds, [0, 1], resume=fresh_files(states))
        assert_same(ref, out)


def test_one_by_one_batchnorm_group_resumes_in_parts(tmp_path):
    """BatchNorm models on the CPU train one after another: stopped during the second, the first
    resumes as finished (not retrained) and the second from its step, with augmentation streams."""
    write_fake_cifar10(tmp_path, n_train=32, n_test=16)
    images = load_data(DataSpec(name="cifar10", root=str(tmp_path)), tmp_path)
    models = []
    for seed in (0, 1, 2):
        with seeded(seed):
            models.append(build_model("preresnet", 10, (3, 32, 32), depth=8, width=0.5))
    scheds = [Schedule(lr=0.05, batch_size=8, epochs=3)] * 3  # 4 steps an epoch, 12 a model
    ref = train(copy.deepcopy(models), images, scheds, [0, 1, 2])
    saved = Saved()
    with pytest.raises(Stop):
        train(copy.deepcopy(models), images, scheds, [0, 1, 2], progress=stop_at(12 + 6), resume=saved.resume())
    assert {k: s["step"] for k, s in saved.states.items()} == {0: 12, 1: 6}
    out = train(copy.deepcopy(models), images, scheds, [0, 1, 2], resume=fresh_files(saved.states))
    assert_same(ref, out)


def test_state_of_other_settings_is_ignored(data):
    models = conv_nets(data, 2)
    scheds = [Schedule(lr=0.05, batch_size=40, epochs=2)] * 2
    saved = Saved()
    with pytest.raises(Stop):
        train(copy.deepcopy(models), data, scheds, [0, 1], progress=stop_at(2 * 15), resume=saved.resume())
    assert saved.states
    ref = train(copy.deepcopy(models), data, scheds, [5, 1])
    out = train(copy.deepcopy(models), data, scheds, [5, 1], resume=fresh_files(saved.states))  # other seed
    assert_same(ref, out)


def test_short_training_writes_no_state(data):
    """A training expected to last under a minute writes no state when stopped (real clock)."""
    models = conv_nets(data, 2)
    files = ResumeFiles(lambda k: None, lambda k, s: pytest.fail("a state was written"), 300.0)
    with pytest.raises(Stop):
        train(models, data, [Schedule(lr=0.05, batch_size=40, epochs=2)] * 2, [0, 1],
              progress=stop_at(2 * 15), resume=Resume(files))
    assert files.written == 0 and MIN_WORTH_S == 60.0
    with pytest.raises(ValueError, match="every_s must be > 0"):
        ResumeFiles(lambda k: None, lambda k, s: None, 0)


# --- through the runner: execution.resume_every and the real cancel path -------------------------------

RESUMABLE_RECIPE = """\
name: resumable
dataset: {name: mnist1d, seed: 3, num_samples: 4000}
model: {name: conv1d, kwargs: {widths: [8, 8, 8]}}
dense: {epochs: 4, batch_size: 50, lr: 0.05, checkpoint_every: 2}
temperature: {knob: epochs, values: [2, 4]}
densities: [0.2]
retrain: {epochs: 40, batch_size: 50, lr: 0.05, seeds: [0, 1], last_epochs: 1}
dense_seeds: [0]
metrics: {lmc: {points: 3}, cka: {samples: 200}}
execution: {device: cpu, threads: 1, resume_every: EVERY}
"""


def _resume_files(store) -> list:
    return sorted(store.glob("artifacts/*/*.resume.pt"))


def test_cancelled_run_resumes_its_fused_retrain_group_and_ends_as_an_uninterrupted_run(tmp_path):
    """A run cancelled (`Service.runs.cancel`, the path `tprm cancel` and the TUI take) while its fused
    group of 4 retrains has written states; run again, the group continues from them, the results and
    artifact files are those of a run with resume_every 0, and no state file is left."""
    import threading

    from tprm.engine.store import Store
    from tprm.service import Service

    ref_recipe, recipe = tmp_path / "ref.yaml", tmp_path / "resumable.yaml"
    ref_recipe.write_text(RESUMABLE_RECIPE.replace("EVERY", "0"))
    recipe.write_text(RESUMABLE_RECIPE.replace("EVERY", "0.01"))  # minutes: a state every 0.6 s
    ref, store = tmp_path / "ref", tmp_path / "store"
    assert Service(ref).runs.run(str(ref_recipe))["state"] == "done"
    assert not _resume_files(ref)

    def cancel_once_the_group_has_states() -> None:
        end = time.monotonic() + 300
        while len(_resume_files(store)) < 4 and time.monotonic() < end:  # only the retrain group has 4
            time.sleep(0.05)
        Service(store).runs.cancel(str(recipe))

    watcher = threading.Thread(target=cancel_once_the_group_has_states)
    watcher.start()
    first = Service(store).runs.run(str(recipe))
    watcher.join()
    assert first["state"] == "cancelled" and first["executed"] == 3, first  # dense and 2 prunes
    states = {p.name.split(".")[0] for p in _resume_files(store)}
    assert len(states) == 4 and {j["state"] for j in Store(store).get_jobs(list(states)).values()} == {"cancelled"}

    second = Service(store).runs.run(str(recipe))
    assert second["state"] == "done" and second["executed"] == 6, second  # 4 retrains, 2 pairs
    for h in states:
        log = (store / "logs" / f"{h}.log").read_text()
        found = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "found a resumable state" in line]
        assert len(found) == 1 and 0 < found[0] < 40 * 64, log  # continued mid-way, not from step 0
    assert not _resume_files(store)
    assert Store(store).results() == Store(ref).results()
    ref_files = {p.name: p.read_bytes() for p in ref.glob("artifacts/*/*.pt")}
    files = {p.name: p.read_bytes() for p in store.glob("artifacts/*/*.pt")}
    assert files.keys() == ref_files.keys() and all(files[n] == ref_files[n] for n in files)


def test_resume_every_is_checked_and_leaves_job_keys_and_recipe_hash_alone():
    from tprm.engine.plan import build_plan
    from tprm.engine.recipe import RecipeError, parse_recipe

    text = RESUMABLE_RECIPE.replace(", resume_every: EVERY", "")
    default = parse_recipe(text, "r.yaml")
    assert default.execution.resume_every == 5.0
    explicit = parse_recipe(text.replace("threads: 1", "threads: 1, resume_every: 5"), "r.yaml")
    assert explicit.hash == default.hash  # a recipe that leaves it at 5 keeps its stored hash
    off = parse_recipe(text.replace("threads: 1", "threads: 1, resume_every: 0"), "r.yaml")
    ident = {"generator": "fixed", "seed": 1}
    assert [j.hash for j in build_plan(off, ident).ordered()] == [j.hash for j in build_plan(default, ident).ordered()]
    for value, needle in (("-1", "out of range, allowed: >= 0"), ("soon", "expected a number")):
        with pytest.raises(RecipeError) as err:
            parse_recipe(text.replace("threads: 1", f"threads: 1, resume_every: {value}"), "r.yaml")
        assert str(err.value).startswith("r.yaml:10: execution.resume_every: ") and needle in str(err.value)
        assert "\n" not in str(err.value)
