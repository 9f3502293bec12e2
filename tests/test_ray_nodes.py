"""A two-node local Ray cluster (Ray's own test cluster: a head and a second raylet on this machine, one
CPU each) whose second node is killed while it trains a group of `tprm run --backend ray`: the run
completes, the terminal shows one tprm line for the loss and none of Ray's own log lines, which go to
the run's folder (runs/<id>/ray.log). And a cancel stops a task running on the second node."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import tprm_cmd
from test_ray import (LONG_RECIPE, SLOW_RECIPE, _assert_each_job_recorded_once, _cancel_and_wait, _dense_early,
                      _progress, _wait_for)


def _cluster(head_cpus: int):
    """(the cluster, its second node) of a fresh two-node cluster, shut down afterwards."""
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    cluster = cluster_utils.Cluster(initialize_head=True,
                                    head_node_args={"num_cpus": head_cpus, "include_dashboard": False})
    try:
        second = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster, second
    finally:
        cluster.shutdown()


@pytest.fixture
def two_nodes():
    """A head and a second node, one CPU each."""
    yield from _cluster(head_cpus=1)


@pytest.fixture
def tasks_on_second_node():
    """A head with no CPU (the driver connects there; no task can run there) and a second node."""
    yield from _cluster(head_cpus=0)


def _hold_head(cluster):
    """(ray, an actor holding the head's one CPU): Ray prefers the driver's node while it is idle, so
    without it whether a training group ever starts on the second node is up to timing."""
    import logging

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.ERROR)

    @ray.remote(num_cpus=1)
    class Hold:
        def ready(self) -> bool:
            return True

    where = NodeAffinitySchedulingStrategy(cluster.head_node.node_id, soft=False)
    holder = Hold.options(scheduling_strategy=where).remote()
    ray.get(holder.ready.remote(), timeout=120)
    return ray, holder


def test_second_node_killed_mid_run_is_one_line_and_ray_logs_go_to_the_run_folder(two_nodes, tmp_path):
    cluster, second = two_nodes
    recipe = tmp_path / "slow.yaml"
    recipe.write_text(SLOW_RECIPE)
    store = tmp_path / "store"
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    ray, holder = _hold_head(cluster)  # the run starts on the second node
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(tprm_cmd("run", str(recipe), "--store", str(store), "--backend", "ray",
                                         "--address", cluster.address), stdout=fo, stderr=fe)
        try:
            node = second.node_id[:12]
            victim = _wait_for(lambda: next((p for p in _progress(store) if p.get("node_id") == node
                                             and p["label"].startswith(("dense", "retrain"))), None),
                               240, "a training group on the second node")
            ray.kill(holder)  # the head takes the retried group
            cluster.remove_node(second, allow_graceful=False)  # its raylet and workers are killed
            proc.wait(300)
        finally:
            if proc.poll() is None:
                proc.kill()
            ray.shutdown()
    shown = out.read_text() + err.read_text()
    assert proc.returncode == 0, shown[-3000:]
    assert "executed 17" in shown
    _assert_each_job_recorded_once(store, 17)
    labels = victim["label"].split(": ", 1)[1]
    notes = [ln for ln in shown.splitlines() if " lost; group " in ln]
    assert len(notes) == 1, shown[-3000:]
    assert re.fullmatch(rf"node \S+ lost; group {re.escape(labels)}.* retried \(\d+ retr(y|ies) left\)",
                        notes[0].strip()), notes
    assert "raylet" not in shown and "worker_pool" not in shown and "\x1b[33m" not in shown, shown[-3000:]
    (run_dir,) = (p.parent for p in store.glob("runs/*/run.log"))
    ray_log = (run_dir / "ray.log").read_text()
    assert "node it was running on is dead" in ray_log  # Ray's own account, kept for the curious
    assert notes[0].strip() in (run_dir / "run.log").read_text()
    runs = json.loads(subprocess.run(tprm_cmd("status", str(recipe), "--store", str(store), "--json"),
                                     capture_output=True, text=True, timeout=120).stdout)["runs"]
    assert runs[-1]["state"] == "done" and len(runs[-1]["ray"]["nodes"]) == 2


def test_cancel_stops_a_task_running_on_another_node_within_seconds(tasks_on_second_node, tmp_path):
    """The stop request reaches a task on a node that is not the driver's (the cancel file is on the
    driver's disk: the task learns it through the progress actor)."""
    from tprm.engine.store import Store

    cluster, second = tasks_on_second_node
    recipe = tmp_path / "slow.yaml"
    recipe.write_text(LONG_RECIPE)
    store = tmp_path / "store"
    proc = subprocess.Popen(tprm_cmd("run", str(recipe), "--store", str(store), "--backend", "ray",
                                     "--address", cluster.address),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = _wait_for(lambda: _dense_early(store), 240, "the dense task early in its work")
        assert seen["node_id"] == second.node_id[:12]
        assert _cancel_and_wait(recipe, store, proc) < 15
    finally:
        if proc.poll() is None:
            proc.kill()
    jobs = Store(store).get_jobs()
    assert all(jobs[h]["state"] == "cancelled" for h in seen["hashes"])
    assert "running" not in {j["state"] for j in jobs.values()}
