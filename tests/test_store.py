"""The store: atomic multi-process transactions, leases, ownership, migration, gc, bundles."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import filelock
import pytest
import torch

import tprm
from tprm.engine.store import (
    DB_NAME,
    SCHEMA_VERSION,
    Store,
    StoreError,
    default_store_dir,
    make_owner,
)

REPO = Path(tprm.__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def h(i: int) -> str:
    return f"{i:064x}"


def jobs_for(n: int, start: int = 0, kind: str = "retrain") -> list[dict]:
    return [{"hash": h(i), "kind": kind, "label": f"{kind} T=16 d=0.10 s={i}", "deps": [],
             "spec": {"seed": i, "density": 0.1}} for i in range(start, start + n)]


def owner(run_id: str = "run-a") -> dict:
    return make_owner(run_id)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "store")


# -- atomicity and concurrency ---------------------------------------------------------------------
READER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from tprm.engine.store import Store, StoreError
    root, stop = Path(sys.argv[1]), Path(sys.argv[2])
    store, reads, errors = Store(root), 0, []
    (root / "reader-ready").touch()
    while not stop.exists():
        try:
            json.loads((root / "tprm.db.json").read_bytes() or b"{}")
            store.get_jobs()
            reads += 1
        except FileNotFoundError:
            pass
        except (ValueError, StoreError) as exc:
            errors.append(str(exc)[:200])
    print(json.dumps({"reads": reads, "errors": errors}))
""")


def test_readers_never_see_a_half_written_file(store, tmp_path):
    store.add_jobs(jobs_for(400), "r0")  # ~200 kB, so a non-atomic write would be caught mid-way
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(store.root), str(stop)],
                              env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while not (store.root / "reader-ready").exists() and time.time() < deadline:
            time.sleep(0.01)
        for i in range(60):
            store.add_jobs(jobs_for(5, start=1000 + 5 * i), f"r{i}")
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=30)
    report = json.loads(out)
    assert report["errors"] == []
    assert report["reads"] > 5  # the reader really ran while the writes happened
    assert len(store.get_jobs()) == 400 + 300


WORKER = textwrap.dedent("""
    import json, random, sys, time
    from pathlib import Path
    from tprm.engine.store import Store, make_owner
    root, wid = Path(sys.argv[1]), int(sys.argv[2])
    store, own, rng = Store(root), make_owner(f"worker-{wid}"), random.Random(wid)
    (root / f"ready-{wid}").touch()
    while not (root / "go").exists():
        time.sleep(0.005)
    claimed = []
    while True:
        free = sorted(k for k, j in store.get_jobs().items() if j["state"] == "queued")
        if not free:
            break
        pick = free[:12]
        rng.shuffle(pick)
        got = store.claim(pick[:6], own, lease_s=60)
        for k in got:
            assert store.finish(k, own, "done", result={"worker": wid})
        claimed += got
    print(json.dumps(claimed))
""")


def test_two_processes_claim_each_job_exactly_once(store):
    store.add_jobs(jobs_for(200), "r")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(store.root), str(w)],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in (0, 1)]
    deadline = time.time() + 60
    while not all((store.root / f"ready-{w}").exists() for w in (0, 1)) and time.time() < deadline:
        time.sleep(0.01)
    (store.root / "go").touch()  # both start together, so their transactions interleave
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    claimed = [json.loads(out) for out, _ in outs]
    assert all(claimed), "both workers must have claimed something for the test to mean anything"
    assert not set(claimed[0]) & set(claimed[1])
    assert sorted(claimed[0] + claimed[1]) == sorted(h(i) for i in range(200))
    json.loads(store.db_path.read_text())  # the file parses
    jobs, results = store.get_jobs(), store.results()
    assert {j["state"] for j in jobs.values()} == {"done"}
    assert {j["attempts"] for j in jobs.values()} == {1}
    for w, hashes in enumerate(claimed):
        assert all(results[k] == {"worker": w} for k in hashes)
        assert all(jobs[k]["owner"]["run_id"] == f"worker-{w}" for k in hashes)


def test_lock_timeout_is_a_clear_error(tmp_path):
    store = Store(tmp_path, lock_timeout=0.2)
    other = filelock.FileLock(store.lock_path)
    with other:
        with pytest.raises(StoreError, match="lock.*0.2 s"):
            store.add_jobs(jobs_for(1), "r")
    assert store.add_jobs(jobs_for(1), "r") == 1


# -- jobs ----------------------------------------------------------------------------------------
def test_add_jobs_is_idempotent_and_records_recipe_hashes(store):
    assert store.get_jobs() == {}  # no file yet: reads are fine
    assert store.add_jobs(jobs_for(3), "recipe-a") == 3
    assert store.meta()["schema_version"] == SCHEMA_VERSION
    assert store.add_jobs(jobs_for(3), "recipe-a") == 0
    assert store.add_jobs(jobs_for(4), "recipe-b") == 1
    jobs = store.get_jobs()
    assert [jobs[h(i)]["recipes"] for i in range(4)] == [["recipe-a", "recipe-b"]] * 3 + [["recipe-b"]]
    assert jobs[h(0)]["state"] == "queued" and jobs[h(0)]["attempts"] == 0
    assert jobs[h(0)]["label"] == "retrain T=16 d=0.10 s=0" and jobs[h(0)]["spec"]["seed"] == 0
    assert set(store.get_jobs([h(1), h(9)])) == {h(1)}
    assert set(store.get_jobs(recipe_hash="recipe-a")) == {h(0), h(1), h(2)}
    # re-adding never resets progress
    own = owner()
    store.claim([h(0)], own)
    store.finish(h(0), own, "done", result={"test_error": 0.2})
    store.add_jobs(jobs_for(3), "recipe-c")
    assert store.get_jobs([h(0)])[h(0)]["state"] == "done"


def test_add_jobs_validates_input(store):
    with pytest.raises(StoreError, match="kind"):
        store.add_jobs([{"hash": h(0)}], "r")
    with pytest.raises(StoreError, match=r"jobs\[0\].hash"):
        store.add_jobs([{"hash": "../etc", "kind": "dense"}], "r")
    with pytest.raises(StoreError, match="deps must be a list"):
        store.add_jobs([{"hash": h(0), "kind": "prune", "deps": h(1)}], "r")
    with pytest.raises(StoreError, match=f"job {h(0)}: spec.*JSON"):
        store.add_jobs([{"hash": h(0), "kind": "dense", "spec": {"x": object()}}], "r")
    assert not store.db_path.exists()  # nothing was written by the refused calls
    store.add_jobs([{"hash": h(0), "kind": "dense", "spec": {"lr": torch.tensor(0.5)}}], "r")
    assert store.get_jobs()[h(0)]["spec"] == {"lr": 0.5}  # tensor / numpy scalars become numbers


def test_claim_is_exclusive_and_records_owner_and_attempts(store):
    store.add_jobs(jobs_for(3), "r")
    a, b = owner("a"), owner("b")
    assert store.claim([h(0), h(1), h(7)], a, lease_s=60) == [h(0), h(1)]
    assert store.claim([h(0), h(1), h(2)], b) == [h(2)]
    job = store.get_jobs()[h(0)]
    assert job["state"] == "running" and job["owner"] == a and job["attempts"] == 1
    assert job["lease_until"] > time.time() + 50 and job["started"] is not None


def test_finish_by_a_non_owner_is_refused_and_writes_nothing(store):
    store.add_jobs(jobs_for(2), "r")
    a = owner("a")
    store.claim([h(0)], a)
    before = store.db_path.read_bytes()
    assert store.finish(h(0), owner("b"), "done", result={"test_error": 0.1}) is False
    assert store.finish(h(1), a, "done", result={"test_error": 0.1}) is False  # never claimed
    assert store.db_path.read_bytes() == before
    assert store.results() == {}
    assert store.finish(h(0), a, "done", result={"test_error": 0.1}) is True
    assert store.finish(h(0), a, "failed", error="late") is False  # already finished
    assert store.results() == {h(0): {"test_error": 0.1}}


def test_finish_many_writes_states_and_results_together(store):
    store.add_jobs(jobs_for(4), "r")
    a = owner("a")
    store.claim([h(0), h(1), h(2)], a)
    out = store.finish_many([
        {"hash": h(0), "owner": a, "state": "done", "result": {"test_error": 0.1},
         "provenance": {"device": "cpu", "seconds": 1.5}},
        {"hash": h(1), "owner": a, "state": "failed", "error": "RuntimeError: boom\nsecond line",
         "traceback": "Traceback...\nRuntimeError: boom"},
        {"hash": h(2), "owner": owner("b"), "state": "done", "result": {"test_error": 0.3}},
        {"hash": h(3), "owner": a, "state": "done"},
    ])
    assert out == [True, True, False, False]
    jobs = store.get_jobs()
    assert jobs[h(0)]["state"] == "done" and jobs[h(0)]["provenance"]["device"] == "cpu"
    assert jobs[h(1)]["state"] == "failed" and jobs[h(1)]["error"] == "RuntimeError: boom"
    assert "Traceback" in jobs[h(1)]["traceback"]
    assert jobs[h(2)]["state"] == "running"
    assert store.results() == {h(0): {"test_error": 0.1}}
    with pytest.raises(StoreError, match="finish state"):
        store.finish(h(2), a, "finished")


def test_failed_jobs_are_claimable_only_on_retry(store):
    store.add_jobs(jobs_for(1), "r")
    a = owner()
    store.claim([h(0)], a)
    store.finish(h(0), a, "diverged", result={"diverged_at": 3}, error="loss is nan")
    assert store.claim([h(0)], a) == []
    assert store.claim([h(0)], a, retry_failed=True) == [h(0)]
    job = store.get_jobs()[h(0)]
    assert job["attempts"] == 2 and job["error"] is None
    store.finish(h(0), a, "failed", error="again")
    assert store.results() == {}  # the old attempt's result does not survive a new outcome


def test_release_only_returns_own_jobs(store):
    store.add_jobs(jobs_for(2), "r")
    a, b = owner("a"), owner("b")
    store.claim([h(0)], a)
    store.claim([h(1)], b)
    assert store.release([h(0), h(1)], a, "cancelled") == [h(0)]
    jobs = store.get_jobs()
    assert jobs[h(0)]["state"] == "cancelled" and jobs[h(1)]["state"] == "running"
    assert store.claim([h(0)], b) == [h(0)]  # cancelled jobs are claimable again
    with pytest.raises(StoreError, match="release state"):
        store.release([h(1)], b, "done")


def test_expired_lease_is_stale_and_reclaimable(store):
    store.add_jobs(jobs_for(1), "r")
    a, b = owner("a"), owner("b")
    assert store.claim([h(0)], a, lease_s=0.3) == [h(0)]
    assert store.get_jobs()[h(0)]["state"] == "running"
    assert store.claim([h(0)], b) == []
    time.sleep(0.45)
    assert store.get_jobs()[h(0)]["state"] == "stale"
    assert store.claim([h(0)], b, lease_s=60) == [h(0)]
    assert store.get_jobs()[h(0)]["attempts"] == 2
    assert store.heartbeat([h(0)], a, 60) == []  # a lost it: no renewal
    assert store.finish(h(0), a, "done", result={"test_error": 0.9}) is False
    assert store.finish(h(0), b, "done", result={"test_error": 0.1}) is True
    assert store.results() == {h(0): {"test_error": 0.1}}


def test_heartbeat_renews_leases_and_run(store):
    store.add_jobs(jobs_for(2), "r")
    run_id = store.start_run("quick", "r", os.getpid(), socket.gethostname(), None)
    a = make_owner(run_id)
    store.claim([h(0), h(1)], a, lease_s=0.3)
    beat = store.get_runs()[0]["heartbeat"]
    time.sleep(0.15)
    assert store.heartbeat([h(1), h(0), h(5)], a, lease_s=60) == [h(1), h(0)]
    time.sleep(0.3)
    assert {j["state"] for j in store.get_jobs().values()} == {"running"}
    assert store.get_runs()[0]["heartbeat"] > beat


def test_dead_owner_is_stale_immediately(store):
    store.add_jobs(jobs_for(2), "r")
    gone = {"pid": dead_pid(), "host": socket.gethostname(), "run_id": "old"}
    elsewhere = {"pid": gone["pid"], "host": "another-host.example", "run_id": "remote"}
    store.claim([h(0)], gone, lease_s=3600)
    store.claim([h(1)], elsewhere, lease_s=3600)
    jobs = store.get_jobs()
    assert jobs[h(0)]["state"] == "stale"
    assert jobs[h(1)]["state"] == "running"  # a pid on another host cannot be checked: lease rules
    assert store.claim([h(0), h(1)], owner("new")) == [h(0)]


def test_results_lookup(store):
    store.add_jobs(jobs_for(3), "r")
    a = owner()
    store.claim([h(0), h(1)], a)
    store.finish_many([{"hash": h(i), "owner": a, "state": "done", "result": {"i": i}}
                       for i in (0, 1)])
    assert store.results([h(1), h(2)]) == {h(1): {"i": 1}}
    assert store.results() == {h(0): {"i": 0}, h(1): {"i": 1}}


def test_many_jobs_add_and_get(store, capsys):
    jobs = jobs_for(5000)
    t0 = time.perf_counter()
    assert store.add_jobs(jobs, "r") == 5000
    t1 = time.perf_counter()
    got = store.get_jobs()
    t2 = time.perf_counter()
    assert len(got) == 5000 and got[h(4999)]["spec"] == {"seed": 4999, "density": 0.1}
    with capsys.disabled():
        print(f"\n[store benchmark] add_jobs(5000) {t1 - t0:.3f} s, get_jobs() {t2 - t1:.3f} s, "
              f"file {store.db_path.stat().st_size / 1e6:.2f} MB")


# -- runs and recipes ------------------------------------------------------------------------------
def test_runs_lifecycle_cancel_and_stale(tmp_path):
    store = Store(tmp_path, run_stale_after=0.3)
    host = socket.gethostname()
    live = store.start_run("quick", "rh", os.getpid(), host, tmp_path / "run.log")
    gone = store.start_run("quick", "rh", dead_pid(), host, None)
    other = store.start_run("other", "rh2", os.getpid(), host, None)
    runs = {r["run_id"]: r for r in store.get_runs()}
    assert runs[live]["state"] == "running" and runs[gone]["state"] == "stale"
    assert runs[live]["log"] == str(tmp_path / "run.log")
    assert [r["run_id"] for r in store.get_runs("other")] == [other]
    assert store.request_cancel("quick") == 2  # stored state of both is running
    assert store.cancel_requested(live) and not store.cancel_requested(other)
    assert store.request_cancel("quick") == 0  # already asked
    store.update_run(live, state="cancelled", counts={"done": 3})
    run = next(r for r in store.get_runs() if r["run_id"] == live)
    assert run["state"] == "cancelled" and run["ended"] is not None and run["counts"] == {"done": 3}
    time.sleep(0.35)
    assert next(r for r in store.get_runs() if r["run_id"] == other)["state"] == "stale"
    with pytest.raises(StoreError, match="no such run"):
        store.update_run("nope", state="done")
    with pytest.raises(StoreError, match="state"):
        store.update_run(other, state="exploded")


def test_recipes_put_get_list(store):
    assert store.get_recipe("quick") is None and store.list_recipes() == []
    store.put_recipe("quick", "h1", "/tmp/quick.yaml", "name: quick\n")
    added = store.get_recipe("quick")["added"]
    store.put_recipe("quick", "h2", "/tmp/quick.yaml", "name: quick\nseeds: [1]\n")
    store.put_recipe("alpha", "h3", None, "name: alpha\n")
    rec = store.get_recipe("quick")
    assert rec["hash"] == "h2" and rec["yaml"].endswith("[1]\n") and rec["added"] == added
    assert [r["name"] for r in store.list_recipes()] == ["alpha", "quick"]


# -- schema versions and damaged files -------------------------------------------------------------
def write_v1_store(root: Path) -> None:
    """A store as tprm wrote it at schema 1: no meta version, "finished" jobs, no attempts."""
    root.mkdir(parents=True, exist_ok=True)
    v1 = {
        "recipes": {"1": {"name": "quick", "hash": "rh", "path": "q.yaml", "yaml": "name: quick\n",
                          "added": 1.7e9}},
        "runs": {"1": {"run_id": "20240101-000000-abcdef", "recipe_name": "quick",
                       "recipe_hash": "rh", "state": "done", "pid": 1, "host": "h",
                       "log": None, "started": 1.7e9, "ended": 1.7e9 + 60,
                       "heartbeat": 1.7e9 + 60, "cancel_requested": False}},
        "jobs": {"1": {"hash": h(0), "kind": "dense", "label": "dense s=0", "deps": [], "spec": {},
                       "recipes": ["rh"], "state": "finished", "owner": None, "lease_until": None,
                       "error": None, "traceback": None, "provenance": None, "created": 1.7e9,
                       "started": 1.7e9, "ended": 1.7e9 + 30},
                 "2": {"hash": h(1), "kind": "prune", "label": "prune d=0.1", "deps": [h(0)],
                       "spec": {}, "recipes": ["rh"], "state": "queued", "owner": None,
                       "lease_until": None, "error": None, "traceback": None, "provenance": None,
                       "created": 1.7e9, "started": None, "ended": None}},
        "results": {"1": {"hash": h(0), "values": {"test_error": 0.2}, "updated": 1.7e9}},
    }
    (root / DB_NAME).write_text(json.dumps(v1))


def test_v1_store_reads_refuses_writes_and_migrates(tmp_path):
    write_v1_store(tmp_path)
    store = Store(tmp_path)
    assert store.meta()["schema_version"] == 1
    jobs = store.get_jobs()  # reads see the upgraded shape without touching the file
    assert jobs[h(0)]["state"] == "done" and jobs[h(1)]["attempts"] == 0
    raw_before = store.db_path.read_bytes()
    with pytest.raises(StoreError, match="tprm store migrate"):
        store.add_jobs(jobs_for(1, start=5), "rh")
    assert store.db_path.read_bytes() == raw_before
    assert store.migrate() == (1, 2)
    assert (tmp_path / f"{DB_NAME}.v1.bak").read_bytes() == raw_before
    raw = json.loads(store.db_path.read_text())
    assert raw["jobs"]["1"]["state"] == "done" and raw["jobs"]["1"]["attempts"] == 0
    assert store.meta()["schema_version"] == SCHEMA_VERSION
    assert store.results() == {h(0): {"test_error": 0.2}}
    assert store.get_recipe("quick")["hash"] == "rh"
    assert store.claim([h(1)], owner()) == [h(1)]  # writable now
    assert store.migrate() == (2, 2)


def test_newer_schema_is_refused(tmp_path):
    (tmp_path / DB_NAME).write_text(json.dumps({"meta": {"1": {"schema_version": SCHEMA_VERSION + 1}},
                                                "jobs": {}}))
    store = Store(tmp_path)
    for call in (store.get_jobs, lambda: store.add_jobs(jobs_for(1), "r"), store.migrate):
        with pytest.raises(StoreError, match="upgrade tprm"):
            call()


@pytest.mark.parametrize("text", ['{"jobs": {"1": {"hash": ', "[1, 2, 3]", '{"jobs": [1]}'])
def test_corrupt_store_raises_and_is_never_overwritten(tmp_path, text):
    (tmp_path / DB_NAME).write_text(text)
    store = Store(tmp_path)
    calls = [store.get_jobs, store.list_recipes, store.migrate, lambda: store.gc(),
             lambda: store.add_jobs(jobs_for(1), "r"), lambda: store.claim([h(0)], owner())]
    for call in calls:
        with pytest.raises(StoreError) as err:
            call()
        assert str(tmp_path / DB_NAME) in str(err.value) and "not a valid tprm store" in str(err.value)
        assert "\n" not in str(err.value)
    assert (tmp_path / DB_NAME).read_text() == text
    if text.startswith('{"jobs": {"1"'):
        assert "line 1" in str(err.value)


# -- maintenance ----------------------------------------------------------------------------------
def test_gc_removes_only_orphans_and_old_temp_files(store):
    store.add_jobs(jobs_for(1), "r")
    arts = store.artifacts
    keep = [arts.save(h(0), "state", [1]), arts.save(h(0), "mask", [2])]
    gone = "ff" * 32  # a job no longer in the store, in a shard of its own
    orphans = [arts.save(gone, "state", [3]), arts.save(gone, "mask", [4])]
    keep_log = arts.log_path(h(0))
    keep_log.write_text("ok\n")
    orphan_log = arts.log_path(gone)
    orphan_log.write_text("old\n")
    run_log = keep_log.with_name("run-quick-20240101-000000.log")  # run logs are never collected
    run_log.write_text("run\n")
    old_tmp = arts.path(h(0), "state").with_name(f".{h(0)}.state.pt.123.abcd.tmp")
    fresh_tmp = old_tmp.with_name(f".{h(0)}.state.pt.456.ef01.tmp")
    old_db_tmp = store.root / f".{DB_NAME}.123.abcd.tmp"
    for p in (old_tmp, fresh_tmp, old_db_tmp):
        p.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    for p in (old_tmp, old_db_tmp):
        os.utime(p, (two_hours_ago, two_hours_ago))
    expected = sorted(orphans + [orphan_log, old_tmp, old_db_tmp])
    with pytest.raises(StoreError, match="refusing to collect 2 of 4 artifact files"):
        store.gc(dry_run=True)  # half the artifacts: more than the 10 % gc takes without --force
    assert sorted(store.gc(dry_run=True, force=True)) == expected
    assert all(p.exists() for p in expected)
    assert sorted(store.gc(force=True)) == expected
    assert not any(p.exists() for p in expected)
    trashed = sorted(p for p in (store.root / "trash").rglob("*") if p.is_file())
    assert sorted(p.name for p in trashed) == sorted(p.name for p in expected)  # moved, not deleted
    assert all(p.exists() for p in keep + [keep_log, run_log, fresh_tmp])
    assert not (store.artifacts.dir / "ff").exists()  # the emptied shard directory went too
    assert store.gc() == []
    assert store.purge_trash(dry_run=True) == 5 and (store.root / "trash").exists()
    assert store.purge_trash() == 5 and not (store.root / "trash").exists()


def make_finished_store(root: Path) -> Store:
    store = Store(root)
    store.put_recipe("quick", "rh", "quick.yaml", "name: quick\n")
    dense = {"hash": h(100), "kind": "dense", "label": "dense s=0", "deps": [], "spec": {"s": 0}}
    store.add_jobs([dense], "rh-old")  # a dependency added by an earlier version of the recipe
    store.add_jobs([{**j, "deps": [h(100)]} for j in jobs_for(3)], "rh")
    store.add_jobs(jobs_for(1, start=50), "unrelated")
    a = owner()
    store.claim([h(100), h(0), h(1)], a)
    store.finish_many([{"hash": k, "owner": a, "state": "done", "result": {"test_error": 0.1 * i},
                        "provenance": {"seconds": i}} for i, k in enumerate([h(100), h(0), h(1)])])
    store.artifacts.save(h(100), "state", {"w": torch.arange(6.0)})
    store.artifacts.save(h(0), "state", {"w": torch.ones(3)})
    store.artifacts.save(h(50), "state", {"w": torch.zeros(3)})
    store.claim([h(2)], owner("busy"))  # still running when exported
    return store


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_export_then_import_reproduces_jobs_results_artifacts(tmp_path, suffix):
    src = make_finished_store(tmp_path / "a")
    bundle = src.export_recipe("quick", tmp_path / f"quick{suffix}")
    assert bundle.is_file() and not list(tmp_path.glob(".*.tmp"))
    dst = Store(tmp_path / "b")
    counts = dst.import_bundle(bundle)
    assert counts["jobs_added"] == 4 and counts["recipes_added"] == 1
    assert counts["artifacts_copied"] == 2 and counts["conflicts"] == []
    wanted = [h(100), h(0), h(1)]
    assert set(dst.get_jobs()) == {*wanted, h(2)}  # the unrelated job stays behind
    assert _sans_files(src.get_jobs(wanted)) == _sans_files(dst.get_jobs(wanted))
    # the import records the files as installed here (size, checksum) for later checks
    assert set(dst.get_jobs()[h(100)]["artifacts"]) == {"state"}
    running = dst.get_jobs()[h(2)]  # a job running over there arrives as queued, with no owner
    assert running["state"] == "queued" and running["owner"] is None
    assert dst.results() == src.results(wanted)
    assert torch.equal(dst.artifacts.load(h(100), "state")["w"], torch.arange(6.0))
    assert not dst.artifacts.exists(h(50), "state")
    assert dst.get_recipe("quick")["yaml"] == "name: quick\n"
    again = dst.import_bundle(bundle)  # importing twice changes nothing
    assert again["jobs_added"] == 0 and again["jobs_kept"] == 4 and again["artifacts_copied"] == 0
    assert _sans_files(dst.get_jobs(wanted)) == _sans_files(src.get_jobs(wanted))


def _sans_files(jobs: dict) -> dict:
    return {k: {f: v for f, v in j.items() if f != "artifacts"} for k, j in jobs.items()}


def test_import_keeps_local_done_jobs_and_reports_conflicts(tmp_path):
    src = make_finished_store(tmp_path / "a")
    bundle = src.export_recipe("quick", tmp_path / "quick.tar.gz")
    dst = Store(tmp_path / "b")
    dst.put_recipe("quick", "rh-local", None, "name: quick\n# edited\n")
    dst.add_jobs(jobs_for(3), "rh-local")
    a = owner("local")
    dst.claim([h(0), h(1)], a)
    dst.finish(h(0), a, "done", result={"test_error": 0.55})  # done here, differently
    dst.finish(h(1), a, "failed", error="oom")                # failed here, done in the bundle
    dst.artifacts.save(h(0), "state", {"w": torch.full((3,), 7.0)})
    counts = dst.import_bundle(bundle)
    jobs = dst.get_jobs()
    assert jobs[h(0)]["state"] == "done" and dst.results([h(0)]) == {h(0): {"test_error": 0.55}}
    assert torch.equal(dst.artifacts.load(h(0), "state")["w"], torch.full((3,), 7.0))
    assert jobs[h(1)]["state"] == "done" and dst.results([h(1)]) == {h(1): {"test_error": 0.2}}
    assert jobs[h(1)]["recipes"] == ["rh-local", "rh"]
    assert counts["jobs_updated"] == 1 and counts["jobs_added"] == 1 and counts["jobs_kept"] == 2
    assert any("recipe quick" in c for c in counts["conflicts"])
    assert any(h(0) in c and "different results" in c for c in counts["conflicts"])
    assert dst.get_recipe("quick")["hash"] == "rh-local"


def test_bad_bundles_and_unknown_recipes_raise(tmp_path, store):
    with pytest.raises(StoreError, match="not in store"):
        store.export_recipe("nope", tmp_path / "x.tar.gz")
    store.put_recipe("quick", "rh", None, "name: quick\n")
    with pytest.raises(StoreError, match=r"\.tar\.gz, \.tgz or \.zip"):
        store.export_recipe("quick", tmp_path / "x.rar")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not gzip")
    with pytest.raises(StoreError, match="unreadable bundle"):
        store.import_bundle(junk)
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(store.db_path, arcname="bundle.json")
    with pytest.raises(StoreError, match="format"):
        store.import_bundle(evil)


# -- store location ------------------------------------------------------------------------------
def test_default_store_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("TPRM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert default_store_dir() == tmp_path / "home"
    monkeypatch.delenv("TPRM_HOME")
    assert default_store_dir() == tmp_path / "xdg" / "tprm"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/path")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_store_dir() == tmp_path / "user" / ".local" / "share" / "tprm"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_store_dir() == tmp_path / "user" / ".local" / "share" / "tprm"
