"""Schedule a plan's jobs: claim ready groups under the store lock, execute them, record results.

Resuming is running the recipe again: done jobs are skipped, jobs left `running` by a dead runner
(or with an expired lease) are stale and claimed again. Two runners on one store never run the
same job: claims are atomic, leases are renewed by a heartbeat thread.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

from tprm.engine import rundir
from tprm.engine.artifacts import Artifacts
from tprm.engine.eta import estimate, job_work
from tprm.engine.executors.local import LocalExecutor, LocalPool, execute_group
from tprm.engine.grouping import GroupSizer
from tprm.engine.plan import DenseSpec, Job, PairsSpec, Plan, RetrainSpec, plain_json, skipped_jobs
from tprm.engine.recipe import ExecutionSection
from tprm.engine.store import Store

LEASE_S = 60.0


@dataclass
class RunSummary:
    run_id: str
    state: str                      # done | failed | cancelled
    counts: dict[str, int] = field(default_factory=dict)
    executed: int = 0
    failed: list[dict] = field(default_factory=list)
    diverged: list[dict] = field(default_factory=list)   # a result (too hot), not a failure
    elapsed_s: float = 0.0          # wall time of the run's job loop (what `tprm demo` reports)

    @property
    def exit_code(self) -> int:
        """0 when every job is done, or diverged / skipped behind a divergence; 1 otherwise."""
        return 0 if self.state == "done" else 1


def group_key(job: Job) -> str:
    """Jobs with equal keys can run as one fused computation."""
    spec = job.spec
    shared: list = [spec.model, spec.data, spec.precision, spec.channels_last]
    if isinstance(spec, PairsSpec):
        shared += [spec.lmc, spec.cka]
    elif isinstance(spec, DenseSpec):
        sched = {k: v for k, v in spec.schedule.items() if k not in ("lr", "weight_decay", "sam_rho")}
        shared += [sched, spec.checkpoints, spec.init]
    elif isinstance(spec, RetrainSpec):
        shared += [spec.schedule]
    return job.kind + json.dumps(shared, sort_keys=True, default=plain_json)


@dataclass
class _Run:
    """The state of one `Runner.run` call: its record, files, worker pool and groups in flight."""
    run_id: str
    owner: dict
    progress_dir: Path
    cancel_path: Path
    ctx: dict
    summary: RunSummary
    started: float = 0.0
    pool: Any = None
    running: dict[Future, list[Job]] = field(default_factory=dict)
    slots: dict[Future, int] = field(default_factory=dict)  # worker slot of each group (i: GPU i % n)
    stop_claiming: bool = False


class Runner:
    """Runs one recipe's plan against a store. `display(snapshot)` is called about twice a second.

    `execution` is the recipe's typed section (device, jobs, on_error, fuse, max_fused, threads,
    compile); callers apply command-line overrides with ``dataclasses.replace(execution, ...)``.
    """

    def __init__(self, store: Store, plan: Plan, recipe_name: str, recipe_hash: str,
                 execution: ExecutionSection | None = None, *, log_path: str | None = None,
                 display: Callable[[dict], None] | None = None, runtime: dict | None = None,
                 executor=None):
        ex = execution or ExecutionSection()
        self.store, self.plan = store, plan
        self.recipe_name, self.recipe_hash = recipe_name, recipe_hash
        self.execution = ex
        self.device, self.workers = ex.device, max(1, ex.jobs)
        self.on_error, self.fuse, self.max_fused = ex.on_error, ex.fuse, max(1, ex.max_fused)
        self.log_path, self.display, self.runtime = log_path, display, runtime or {}
        self.threads = ex.threads  # torch threads per worker; None: the cores split among workers
        self.executor = executor  # None: LocalExecutor(jobs); else another (e.g. RayExecutor)
        self.compile = ex.compile  # torch.compile of training steps (CUDA only)
        self.tf32 = ex.tf32  # TF32 on CUDA (recorded in provenance)
        self.artifacts = Artifacts(store.root)
        self._held: set[str] = set()
        self._retry: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._work: dict[str, float] | None = None
        self.sizer: GroupSizer | None = None  # set by run() once the pool's slots are known

    # -- helpers -------------------------------------------------------------------------------
    def _ready_groups(self, states: dict[str, dict]) -> list[list[Job]]:
        groups: dict[str, list[Job]] = defaultdict(list)
        for job in self.plan.ordered():
            rec = states.get(job.hash, {})
            if not self._runnable(job.hash, rec.get("state")):
                continue
            if all(states.get(d, {}).get("state") == "done" for d in job.deps):
                groups[group_key(job)].append(job)
        assert self.sizer is not None  # run() sets it before the first scan
        # sized per device: unfused groups split, GPU groups by memory (engine/grouping.py)
        out = [group for key, members in groups.items()
               for group in self.sizer.split(members[0].kind, key, members, [j.spec for j in members])]
        for note in self.sizer.take_notes():  # why a group was split (engine/grouping.py)
            self._log_run(note)
        return out

    def _heartbeat(self, owner: dict, cancel_path: Path) -> None:
        while not self._stop.wait(min(5.0, LEASE_S / 4)):
            with self._lock:
                held = list(self._held)
            try:
                self.store.heartbeat(held, owner, LEASE_S)
                if self.store.cancel_requested(owner["run_id"]):
                    cancel_path.touch()
            except Exception:  # noqa: BLE001 -- a missed heartbeat only shortens the lease
                pass

    def _counts(self, states: dict[str, dict]) -> dict[str, int]:
        """Jobs per state; jobs behind a diverged one count as "skipped" (they will not run)."""
        skipped = skipped_jobs({h: dict(states.get(h) or {}, deps=j.deps)
                                for h, j in self.plan.jobs.items()})
        counts: dict[str, int] = defaultdict(int)
        for h in self.plan.jobs:
            counts["skipped" if h in skipped else states.get(h, {}).get("state", "queued")] += 1
        return dict(counts)

    def _snapshot(self, progress_dir: Path, started: float) -> dict:
        states = self.store.get_jobs(list(self.plan.jobs))
        counts = self._counts(states)
        running = rundir.read_groups(progress_dir)
        progress = {h: g for g in running for h in g.get("hashes", [])}
        if self._work is None:
            self._work = {h: job_work(j.kind, j.spec) for h, j in self.plan.jobs.items()}
        eta = estimate([dict(states.get(h, {}), work=w, progress=progress.get(h))
                        for h, w in self._work.items()], started, time.time())
        return {"recipe": self.recipe_name, "total": len(self.plan.jobs), "counts": dict(counts),
                "running": running, "elapsed": time.time() - started,
                "eta": {"fraction": eta.fraction, "seconds": eta.seconds, "text": eta.text}}

    def _log_job(self, job: Job, res: dict) -> None:
        with self._job_log(job) as fh:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            fh.write(f"{stamp} {job.label}: {res['state']}\n")
            if res.get("result"):
                fh.write(f"  result: {json.dumps(res['result'], default=str)[:2000]}\n")
            if res.get("error"):
                fh.write(f"  error: {res['error']}\n")
            if res.get("traceback"):
                fh.write(res["traceback"] + "\n")

    def _note_job(self, job: Job, text: str) -> None:
        with self._job_log(job) as fh:
            fh.write(f"  {text}\n")

    def _job_log(self, job: Job) -> IO[str]:
        path = self.artifacts.log_path(job.hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a")

    def _record_group(self, group: list[Job], results: list[dict], owner: dict,
                      summary: RunSummary, progress_dir: Path) -> bool:
        """Log a finished group, record it in the store; True when the run should stop claiming.

        The log first: a runner killed in between leaves the outcome line of a job it did not record
        (the next run executes it again and logs it again: both executions are in the log), never a
        recorded job without its line. Progress files go after recording, so the shown progress
        never drops while the store still says running.
        """
        for job, res in zip(group, results):
            self._log_job(job, res)
            self._log_run(f"{res['state']} {job.label}" + (f": {res['error']}" if res.get("error") else ""))
        accepted = self.store.finish_many([
            {"hash": job.hash, "owner": owner, "state": res["state"], "result": res.get("result"),
             "error": res.get("error"), "traceback": res.get("traceback"),
             "provenance": res.get("provenance")} for job, res in zip(group, results)])
        stop = False
        for job, res, ok in zip(group, results, accepted):
            if not ok:  # another runner took the job over (a lapsed lease): its outcome counts
                self._note_job(job, "not recorded: another runner holds this job")
                continue
            if res["state"] == "done":
                summary.executed += 1
            elif res["state"] in ("failed", "diverged"):
                (summary.diverged if res["state"] == "diverged" else summary.failed).append(
                    {"label": job.label, "error": res.get("error")})
                stop = stop or (self.on_error == "stop" and res["state"] == "failed")
        for job in group:  # a fused group that failed over to single jobs left one file each
            rundir.clear_progress(progress_dir, job.hash)
        return stop

    def _log_run(self, text: str) -> None:
        """One timestamped line in the run log (written as the run goes, so it can be followed)."""
        if not self.log_path:
            return
        try:
            with open(self.log_path, "a") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        except OSError:
            pass  # a full disk must not fail the run; the job logs and the store still hold it

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Run every runnable job of the plan (claiming, executing, recording) until nothing more
        can happen or the run is cancelled; returns the summary (also kept in the store)."""
        r = self._begin()
        beat = threading.Thread(target=self._heartbeat, args=(r.owner, r.cancel_path), daemon=True)
        beat.start()
        r.started = time.time()
        self._open_pool(r)
        try:
            while True:
                states = self.store.get_jobs(list(self.plan.jobs))
                if r.cancel_path.exists():
                    r.stop_claiming = True
                if not r.stop_claiming and len(r.running) < self.workers:
                    self._submit_ready(r, states)
                if not r.running:
                    if self._blocked(states) or r.stop_claiming:
                        break
                    time.sleep(1.0)  # another runner holds what we wait for
                    continue
                self._collect_done(r)
                notes = r.pool.take_notes()  # e.g. a lost Ray node: one line for the user
                for note in notes:
                    self._log_run(note)
                if self.display:  # after recording: a finished group's progress file is gone
                    self.display(dict(self._snapshot(r.progress_dir, r.started), notes=notes))
        except KeyboardInterrupt:
            self._interrupted(r)
            raise
        finally:
            self._end(r)
        return r.summary

    def _begin(self) -> _Run:
        """Add the plan's jobs, re-queue broken finished ones, record the run; its state."""
        host = socket.gethostname()
        self.store.add_jobs([{k: v for k, v in j.record().items() if k != "spec"}
                             for j in self.plan.ordered()], self.recipe_hash)
        # A finished job whose files were deleted or damaged is queued again (sizes checked for
        # all, checksums for the ones this run will read).
        before = self.store.get_jobs(list(self.plan.jobs))
        self.store.requeue_broken(list(self.plan.jobs), deep={
            d for j in self.plan.ordered() if before.get(j.hash, {}).get("state") != "done"
            for d in j.deps})
        run_id = self.store.start_run(self.recipe_name, self.recipe_hash, os.getpid(), host,
                                      self.log_path)
        owner = {"pid": os.getpid(), "host": host, "run_id": run_id}
        progress_dir = rundir.progress_dir(self.store.root, run_id)
        progress_dir.mkdir(parents=True, exist_ok=True)
        if not self.log_path:  # every run has a log: its own file when no --log was given
            self.log_path = str(rundir.run_log_path(self.store.root, run_id))
            self.store.update_run(run_id, log=self.log_path)
        self._log_run(f"run {run_id} of {self.recipe_name}: {len(self.plan.jobs)} jobs, "
                      f"pid {os.getpid()} on {host}")
        cancel_path = rundir.cancel_path(self.store.root, run_id)
        ctx = {"store_root": str(self.store.root), "device": self.device, "fuse": self.fuse,
               "progress_dir": str(progress_dir), "cancel_path": str(cancel_path),
               "compile": self.compile, "tf32": self.tf32, "resume_every": self.execution.resume_every,
               "import_paths": list(self.runtime.get("import_paths", ()))}
        self._retry = {h for h, rec in self.store.get_jobs(list(self.plan.jobs)).items()
                       if rec.get("state") == "failed"}
        return _Run(run_id, owner, progress_dir, cancel_path, ctx, RunSummary(run_id, "done"))

    def _open_pool(self, r: _Run) -> None:
        """Open the executor's pool; size worker threads and fused groups by its slots."""
        # any backend: open(ctx) gives a concurrent.futures-style pool with slots and describe()
        r.pool = (self.executor or LocalExecutor(self.workers)).open(r.ctx)
        self.workers = r.pool.slots
        if info := r.pool.describe():  # e.g. the Ray cluster's resources and nodes
            self.store.update_run(r.run_id, **info)
        r.ctx["threads"] = self.threads or "auto"  # auto: engine/cputhreads.py, per worker
        r.ctx["workers"] = self.workers
        self.sizer = GroupSizer(self.device, self.workers, self.max_fused, self.fuse,
                                local=isinstance(r.pool, LocalPool))

    def _submit_ready(self, r: _Run, states: dict[str, dict]) -> None:
        """Claim ready groups and submit them while worker slots are free."""
        busy = {j.hash for js in r.running.values() for j in js}
        for group in self._ready_groups(states):
            if len(r.running) >= self.workers:
                break
            group = [j for j in group if j.hash not in busy]
            claimed = set(self.store.claim([j.hash for j in group], r.owner, LEASE_S,
                                           retry_failed=True))
            self._retry.difference_update(claimed)  # one retry per run
            group = [j for j in group if j.hash in claimed]
            if not group:
                continue
            with self._lock:
                self._held.update(j.hash for j in group)
            free = min(set(range(self.workers)) - set(r.slots.values()), default=0)
            gctx = dict(r.ctx, worker_index=free)
            fut = r.pool.submit(execute_group, gctx, group[0].kind, [self._record(j) for j in group])
            r.running[fut] = group
            r.slots[fut] = free
            self._log_run(f"start {group[0].kind} x{len(group)}: "
                          f"{', '.join(j.label for j in group[:3])}{' ...' if len(group) > 3 else ''}")

    def _collect_done(self, r: _Run) -> None:
        """Wait up to half a second for groups to finish; record those that did."""
        done, _ = wait(list(r.running), timeout=0.5, return_when=FIRST_COMPLETED)
        for fut in done:
            group = r.running.pop(fut)
            r.slots.pop(fut, None)
            r.stop_claiming |= self._record_group(group, self._collect(fut, group), r.owner,
                                                  r.summary, r.progress_dir)
            with self._lock:
                self._held.difference_update(j.hash for j in group)

    def _interrupted(self, r: _Run) -> None:
        """Ctrl-C: ask the workers to stop, wait for them, give their jobs back as cancelled."""
        r.cancel_path.touch()
        for fut, group in r.running.items():
            try:
                fut.result()
            except Exception:  # noqa: BLE001
                pass
            self.store.release([j.hash for j in group], r.owner, "cancelled")
        r.summary.state = "cancelled"

    def _end(self, r: _Run) -> None:
        """Stop the heartbeat and the pool; settle and record the run's final state and counts."""
        self._stop.set()
        if r.pool is not None:
            r.pool.shutdown(wait=True, cancel_futures=True)
        summary = r.summary
        counts = self._counts(self.store.get_jobs(list(self.plan.jobs)))
        summary.counts = counts
        settled = sum(counts.get(s, 0) for s in ("done", "diverged", "skipped"))
        if summary.state != "cancelled":
            if r.cancel_path.exists():
                summary.state = "cancelled"
            elif settled != len(self.plan.jobs):
                summary.state = "failed"
        summary.elapsed_s = time.time() - r.started
        self.store.update_run(r.run_id, state=summary.state, ended=time.time(),
                              counts=summary.counts, executed=summary.executed)
        self._log_run(f"run {r.run_id}: {summary.state} ("
                      + ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items()))
                      + f"; executed {summary.executed})")
        if self.display:
            self.display(self._snapshot(r.progress_dir, r.started))

    def _record(self, job: Job) -> dict:
        """What a worker needs to execute a job: its key, label and full (typed) spec."""
        rec = dict(job.record(), spec=job.spec)
        if job.kind == "dense" and self.runtime.get("init_path"):
            rec["runtime"] = {"init_path": self.runtime["init_path"]}
        return rec

    def _collect(self, fut: Future, group: list[Job]) -> list[dict]:
        try:
            return fut.result()
        except Exception as exc:  # noqa: BLE001 -- a dead worker fails its group, not the run
            msg = f"worker died: {type(exc).__name__}: {exc}".splitlines()[0][:300]
            return [{"hash": j.hash, "state": "failed", "error": msg} for j in group]

    def _runnable(self, job_hash: str, state: str | None) -> bool:
        """Claimable by this run: new, abandoned or cancelled jobs, and jobs that failed before
        this run started (each retried once per run; a diverged job is a result, not retried)."""
        return state in ("queued", "stale", "cancelled") or (state == "failed"
                                                             and job_hash in self._retry)

    def _blocked(self, states: dict[str, dict]) -> bool:
        """True when nothing more can happen: every job is finished or sits behind a failed one."""
        dead: set[str] = set()
        for job in self.plan.ordered():
            state = states.get(job.hash, {}).get("state")
            if state == "running" or (self._runnable(job.hash, state)
                                      and not any(d in dead for d in job.deps)):
                return False  # runnable now or later, or another runner is on it
            if state != "done":
                dead.add(job.hash)
        return True
