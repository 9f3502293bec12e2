"""Execution options in the engine (precision bf16, channels_last, compile) and how the runner
sizes groups per device (engine/grouping.py): real runs of tiny recipes on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tprm.engine.artifacts import Artifacts
from tprm.engine.executors.local import _train_options
from tprm.engine.grouping import CPU_SPLIT_REASON, GroupSizer, balanced_chunks, fused_group_size
from tprm.engine.plan import build_plan
from tprm.engine.recipe import parse_recipe
from tprm.engine.store import Store
from tprm.service import Service

from conftest import TINY_RECIPE, call, run_tprm

# The tiny recipe with BatchNorm in its 1-D conv net: on the CPU such models do not fuse.
BN_RECIPE = TINY_RECIPE.replace("name: tiny", "name: tiny-bn").replace(
    "kwargs: {widths: [8, 8, 8]}", "kwargs: {widths: [8, 8, 8], batchnorm: true}")
IDENT = {"generator": "mnist1d", "seed": 3}
GiB = 2**30


def write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace("name: tiny-bn", f"name: {name}").replace("name: tiny\n", f"name: {name}\n"))
    return path


def retrain_models(store: Path, recipe) -> dict[str, dict]:
    plan = Service(store).recipes.plan(recipe)
    return {j.label: Artifacts(store).load(h, "model") for h, j in plan.jobs.items() if j.kind == "retrain"}


# --- group sizes ----------------------------------------------------------------------------------


def test_fused_group_size_fits_the_free_memory_less_headroom():
    assert fused_group_size(10 * GiB, GiB, 128, headroom=0.2) == 8
    assert fused_group_size(10 * GiB, GiB, 5, headroom=0.2) == 5        # capped by max_fused
    assert fused_group_size(GiB // 2, GiB, 128) == 1                    # too big: alone, still runs
    assert fused_group_size(0, GiB, 128) == 1
    assert fused_group_size(100 * GiB, 3 * GiB, 128, headroom=0.0) == 33


def test_balanced_chunks_keep_order_and_spread_over_workers():
    assert balanced_chunks(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert balanced_chunks(list(range(10)), 128, at_least=4) == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert balanced_chunks([1, 2], 128, at_least=4) == [[1], [2]]
    assert balanced_chunks([], 3) == []


def _retrain_specs(text: str, **execution):
    recipe = parse_recipe(text, "t.yaml")
    if execution:
        recipe = recipe.with_overrides({"execution": execution})
    return [j for j in build_plan(recipe, IDENT).jobs.values() if j.kind == "retrain"]


def test_cpu_groups_split_batchnorm_models_and_keep_fused_ones_whole():
    bn, plain = _retrain_specs(BN_RECIPE), _retrain_specs(TINY_RECIPE)
    sizer = GroupSizer("cpu", 2, 128, True)
    assert sizer.split("retrain", "bn", bn, [j.spec for j in bn]) == [[j] for j in bn]
    assert sizer.split("retrain", "plain", plain, [j.spec for j in plain]) == [plain[:4], plain[4:]]
    assert sizer.take_notes() == ["split retrain x8 into 2 fused groups of 4-4: 2 CPU workers, each with "
                                  + CPU_SPLIT_REASON]   # spread over the workers, and logged why
    assert GroupSizer("cpu", 1, 128, True).split("retrain", "p", plain, [j.spec for j in plain]) == [plain]
    assert GroupSizer("cpu", 1, 3, True).split("retrain", "p", plain, [j.spec for j in plain]) == [
        plain[:3], plain[3:6], plain[6:]]                        # max_fused chunks, as before
    never = GroupSizer("cpu", 2, 128, False)                      # execution.fuse: false
    assert never.split("retrain", "plain", plain, [j.spec for j in plain]) == [[j] for j in plain]
    # one-by-one kinds (prune, pairs) are spread over the workers; one worker: one group as before
    assert [len(g) for g in sizer.split("pairs", "k", list(range(5)), [None] * 5)] == [3, 2]
    assert GroupSizer("cpu", 1, 128, True).split("pairs", "k", list(range(5)), [None] * 5) == [list(range(5))]


def test_a_model_that_cannot_be_built_keeps_max_fused_for_the_worker_to_report():
    plain = _retrain_specs(TINY_RECIPE)

    def broken(spec):
        raise RuntimeError("factory failed")

    sizer = GroupSizer("cpu", 2, 5, True, probe=broken)
    assert [len(g) for g in sizer.split("retrain", "p", plain, [j.spec for j in plain])] == [4, 4]


# --- execution options reach train/lmc/cka ----------------------------------------------------------


def test_train_options_come_from_the_spec_and_the_run():
    spec = _retrain_specs(BN_RECIPE, precision="bf16", channels_last=True)[0].spec
    assert _train_options(spec, {"compile": True}) == {"precision": "bf16", "channels_last": True,
                                                       "compile": True}
    plain = _retrain_specs(BN_RECIPE)[0].spec
    assert _train_options(plain, {}) == {"precision": "float32", "channels_last": False, "compile": False}


def test_bad_execution_value_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, TINY_RECIPE.replace("execution: {device: cpu, threads: 1}",
                                               "execution:\n  device: cpu\n  precision: fp16"), "bad")
    code, out, err = call(capsys, monkeypatch, "run", str(path), "--store", str(tmp_path / "s"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"{path}:13: execution.precision:" in err and "allowed: float32, float64, bf16" in err, err
    assert not (tmp_path / "s" / "tprm.db.json").exists()


# --- end to end ------------------------------------------------------------------------------------


def test_batchnorm_grid_runs_jobs_in_parallel_with_the_same_results(tmp_path):
    """--jobs 2 on the CPU: every retrain job of a BatchNorm grid is its own group (group_size 1) and
    the results are those of --jobs 1 at the same thread count (the tiny recipe pins threads: 1;
    threads: auto would give the one worker of --jobs 1 two threads, and CPU sums over 2 threads
    round differently: docs/speed.md); bf16 in the same store runs end to end as other jobs."""
    assert "threads: 1" in BN_RECIPE
    path = write(tmp_path, BN_RECIPE, "tiny-bn")
    one, two = tmp_path / "one", tmp_path / "two"
    assert Service(one).runs.run(path)["state"] == "done"
    r = run_tprm("run", str(path), "--jobs", "2", "--store", str(two))
    assert r.returncode == 0, r.stderr[-2000:]
    jobs = Store(two).get_jobs()
    retrains = [j for j in jobs.values() if j["kind"] == "retrain"]
    assert len(retrains) == 8 and all(j["provenance"]["group_size"] == 1 for j in retrains)
    assert Service(two).results.cells(path) == Service(one).results.cells(path)
    a, b = retrain_models(one, path), retrain_models(two, path)
    assert all(torch.equal(a[label][n], b[label][n]) for label in a for n in a[label])

    bf16 = write(tmp_path, BN_RECIPE.replace("execution: {device: cpu, threads: 1}",
                                             "execution: {device: cpu, threads: 1, precision: bf16}"), "tiny-bn")
    summary = Service(one).runs.run(bf16)
    assert summary["state"] == "done" and summary["executed"] == 17  # other keys: all new jobs
    rows = Service(one).results.cells(bf16)
    assert len(rows) == 4 and all(r["state"] == "done" and r["mc"] is not None for r in rows)
    c = retrain_models(one, bf16)
    assert all(t.dtype == torch.float32 for m in c.values() for t in m.values() if t.is_floating_point())
    # autocast really ran: the float32 master weights moved by bf16 rounding
    assert any(not torch.equal(a[label][n], c[label][n]) for label in a for n in a[label])
    f32 = {(r["temperature"], r["density"]): r["test_error"] for r in Service(one).results.cells(path)}
    assert all(abs(r["test_error"] - f32[(r["temperature"], r["density"])]) < 0.15 for r in rows)


def test_plain_groups_still_fuse(tiny_recipe, store_dir):
    assert Service(store_dir).runs.run(tiny_recipe)["state"] == "done"
    retrains = [j for j in Store(store_dir).get_jobs().values() if j["kind"] == "retrain"]
    assert [j["provenance"]["group_size"] for j in retrains] == [8] * 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_groups_are_sized_by_free_memory():
    plain = _retrain_specs(TINY_RECIPE)
    sizer = GroupSizer("cuda", 2, 3, True)
    groups = sizer.split("retrain", "p", plain, [j.spec for j in plain])
    assert [len(g) for g in groups] == [3, 3, 2]   # max_fused 3 bounds; small models always fit
    assert sizer._free_per_group() <= torch.cuda.mem_get_info(0)[0]


def test_pairs_jobs_batched_two_per_pass_give_the_results_of_one_pair_at_a_time(tmp_path, monkeypatch):
    """A group of pairs jobs with batched metrics (fuse "always": what an accelerator does), two jobs of
    3 pairs x 5 points per vmapped pass, records each job's own results and curves: those of the
    CPU's pair by pair path, to float tolerance."""
    import shutil

    from tprm.engine.executors.local import execute_group
    from tprm.science import metrics

    path = write(tmp_path, BN_RECIPE.replace("seeds: [0, 1],", "seeds: [0, 1, 2],"), "tiny-bn3")
    store, other = tmp_path / "store", tmp_path / "other"
    assert Service(store).runs.run(path)["state"] == "done"
    shutil.copytree(store, other)
    pairs = [j for j in Service(store).recipes.plan(path).ordered() if j.kind == "pairs"]
    assert len(pairs) == 4 and all(len(j.spec.pairs) == 3 for j in pairs)
    monkeypatch.setattr(metrics, "LMC_BATCHED_POINTS", 30)
    out = execute_group({"store_root": str(other), "device": "cpu", "fuse": "always"}, "pairs",
                        [dict(j.record(), spec=j.spec) for j in pairs])
    stored = Store(store).results([j.hash for j in pairs])
    assert [r["hash"] for r in out] == [j.hash for j in pairs] and all(r["state"] == "done" for r in out)
    for r in out:
        want = stored[r["hash"]]
        # mc_loss left out: on these nearly flat loss curves float rounding moves its argmax point
        for key in ("mc", "cka", "cka_logits", "endpoint_gap"):
            assert r["result"][key] == pytest.approx(want[key], abs=1e-5), key
        assert r["result"]["mc_pairs"] == pytest.approx(want["mc_pairs"], abs=1e-5)
    assert len({round(r["result"]["mc"], 6) for r in out}) > 1  # jobs not mixed up: cells differ
    for job in pairs:
        batched = torch.load(Artifacts(other).path(job.hash, "lmc"))["payload"]  # rewritten outside the store
        alone = Artifacts(store).load(job.hash, "lmc")
        assert [c["pair"] for c in batched] == [list(p) for p in job.spec.pairs]
        for b, a in zip(batched, alone):
            for key in ("train_loss", "train_error", "test_loss", "test_error"):
                assert b[key] == pytest.approx(a[key], abs=1e-5), key
