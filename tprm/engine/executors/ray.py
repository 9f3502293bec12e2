"""Run job groups as Ray tasks on a cluster (`execution.backend: ray`, see docs/cluster.md).

The driver (the process running the Runner) stays the only writer of the store and its artifact
folder; the workers need no shared filesystem. Each job group becomes one Ray task with a resource
request (`cpus_per_group`, `gpus_per_group`, fractions allowed). Its inputs, the artifact files of
its jobs' dependencies (and a dense init file), go out through Ray's object store; on the worker
the ordinary `execute_group` runs in a scratch folder, and the task returns its results together
with the bytes of the artifact files it wrote. The driver installs those files atomically
(`Artifacts.put_file`) before it resolves the group's future, so the runner records the jobs
exactly as it records local results.

Faults: a worker process or node that dies makes Ray rerun the task (`max_retries`); after that
the jobs come back failed with Ray's reason. Progress goes through one small actor that tasks
report to and the driver reads; the driver writes it into the run's progress folder, where the
CLI bar, `tprm status` and the TUI already look. What runs inside a task is raytask.py.

Cancel: the run's cancel file is on the driver's disk, which a worker on another node cannot see,
so the driver raises the board's stop flag; a running task learns it in the answer to its next
progress report and stops within a second or so, returning its jobs "cancelled". Queued
tasks are dropped with `ray.cancel`. A task still running FORCE_CANCEL_AFTER_S later (stuck where
it reports no progress) has its worker process killed (`ray.cancel(force=True)`).
"""

from __future__ import annotations

import io
import logging
import math
import socket
import threading
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tprm
from tprm.engine import rundir
from tprm.engine.artifacts import Artifacts, split_file_name
from tprm.engine.executors.raylogs import NodeLossWatch, RayLogRouter
from tprm.engine.executors.raytask import Board, bundle_digest, run_group

RAY_MISSING = "--backend ray needs Ray, which is not installed: "  # + the install command
PROGRESS_EVERY_S = 0.5       # how often the driver copies the progress actor's board to disk
NODES_EVERY_S = 5.0          # how often the driver asks the GCS which nodes are alive (Ray's own
                             # failure line, seen at once, usually tells first)
FORCE_CANCEL_AFTER_S = 10.0  # a task still running this long after a cancel request is killed


class BackendError(Exception):
    """Ray is missing, the cluster cannot be reached, or a group cannot fit on any node (bad input)."""


def import_ray():
    """The `ray` module, or BackendError saying how to install it."""
    try:
        import ray
    except ImportError:
        from tprm.engine.installhint import install_command

        raise BackendError(RAY_MISSING + install_command("ray")) from None
    return ray


@dataclass(frozen=True)
class RaySettings:
    """execution.ray of a recipe (defaults documented in docs/recipes.md)."""

    address: str | None = None
    cpus_per_group: float = 1.0
    gpus_per_group: float | None = None
    max_retries: int = 3
    max_groups: int | None = None
    ship_code: bool = True


class RayExecutor:
    """The runner's executor for a Ray cluster: `connect()` first (bad input surfaces there),
    then the runner calls `open(ctx)` for a concurrent.futures-style pool."""

    name = "ray"

    def __init__(self, settings: RaySettings, device: str = "auto", jobs: int | None = None,
                 code: dict[str, bytes] | None = None):
        self.ray = import_ray()
        self.settings, self.device, self.jobs = settings, device, jobs
        self.code = code or {}  # the recipe's own model code (engine/modelimport.code_bundle)
        self.owns = False
        self.gpus = 0.0
        self.router = RayLogRouter()  # Ray's own driver-side output -> the run's ray.log

    def connect(self) -> None:
        """Join the cluster (or start a private local instance when address is null)."""
        ray, s = self.ray, self.settings
        if not ray.is_initialized():
            _check_reachable(s.address)
            kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
            if s.ship_code:  # Ray uploads the package once per content hash (no shared disk)
                kwargs["runtime_env"] = {"py_modules": [str(Path(tprm.__file__).resolve().parent)]}
            try:
                if s.address is None:  # "local": a private instance, never a stale `ray start` one
                    ray.init(address="local", include_dashboard=False, **kwargs)
                else:
                    ray.init(address=s.address, **kwargs)
            except Exception as exc:  # noqa: BLE001 -- Ray raises ConnectionError, ValueError, ...
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise BackendError(f"execution.ray.address {s.address or 'null'}: cannot start or "
                                   f"reach Ray ({type(exc).__name__}: {first}); start a cluster "
                                   "with `ray start --head` or fix --address") from None
            self.owns = True
        self.router.install()
        resources = ray.cluster_resources()
        gpus = s.gpus_per_group
        if gpus is None:
            gpus = 1.0 if self.device != "cpu" and resources.get("GPU", 0) > 0 else 0.0
        self.gpus = float(gpus)
        nodes = _alive_nodes(ray)
        for what, need, key in (("cpus_per_group", s.cpus_per_group, "CPU"),
                                ("gpus_per_group", self.gpus, "GPU")):
            most = max((n["resources"].get(key, 0.0) for n in nodes), default=0.0)
            if need > most:
                self.close()
                raise BackendError(f"execution.ray.{what} {need:g}: no node of the Ray cluster has "
                                   f"{need:g} {key} (the largest has {most:g}); lower it")

    def slots(self) -> int:
        """How many groups to keep submitted at once."""
        if self.jobs:
            return self.jobs
        if self.settings.max_groups:
            return self.settings.max_groups
        res = self.ray.cluster_resources()
        n = math.floor(res.get("CPU", 1.0) / self.settings.cpus_per_group + 1e-9)
        if self.gpus > 0:
            n = min(n, math.floor(res.get("GPU", 0.0) / self.gpus + 1e-9))
        return max(1, n)

    def describe(self) -> dict:
        """What the run record keeps: the backend, the cluster's resources and nodes."""
        ray, s = self.ray, self.settings
        res = ray.cluster_resources()
        nodes = [{"node_id": n["node_id"], "ip": n["ip"], "host": n["host"],
                  "CPU": n["resources"].get("CPU", 0.0), "GPU": n["resources"].get("GPU", 0.0)}
                 for n in _alive_nodes(ray)]
        try:
            address = ray.get_runtime_context().gcs_address
        except Exception:  # noqa: BLE001 -- Ray Client has no GCS address
            address = s.address
        return {"backend": "ray",
                "ray": {"address": address,
                        "resources": {"CPU": res.get("CPU", 0.0), "GPU": res.get("GPU", 0.0),
                                      "memory_gb": round(res.get("memory", 0.0) / 2**30, 1)},
                        "nodes": nodes, "cpus_per_group": s.cpus_per_group,
                        "gpus_per_group": self.gpus, "max_retries": s.max_retries,
                        "slots": self.slots()}}

    def open(self, ctx: dict) -> RayPool:
        return RayPool(self, ctx)

    def close(self) -> None:
        if self.owns and self.ray.is_initialized():
            self.ray.shutdown()
        self.owns = False
        self.router.uninstall()


def _check_reachable(address: str | None, timeout: float = 10.0) -> None:
    """Fail fast (Ray itself retries for minutes) when HOST:PORT does not accept connections."""
    if address is None or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise BackendError(f"execution.ray.address {address}: nothing answers there "
                           f"({type(exc).__name__}: {exc}); start the cluster with "
                           "`ray start --head` or fix --address") from None


def _alive_nodes(ray) -> list[dict]:
    return [{"node_id": n["NodeID"][:12], "ip": n.get("NodeManagerAddress"),
             "host": n.get("NodeManagerHostname"), "resources": n.get("Resources") or {}}
            for n in ray.nodes() if n.get("Alive")]



# -- driver side ---------------------------------------------------------------------------------

class RayPool(Executor):
    """submit(fn, ctx, kind, jobs) -> a Future of the group's results, like the local pools.

    A collector thread waits on the tasks, installs their artifact files, publishes progress and
    turns a cancel request into the board's stop flag (then ray.cancel). Every future is resolved (results, failures or
    cancellations): never left hanging, never resolved twice.
    """

    def __init__(self, executor: RayExecutor, ctx: dict):
        self.ex, self.ray = executor, executor.ray
        self.artifacts = Artifacts(ctx["store_root"])
        self.progress_dir = Path(ctx["progress_dir"]) if ctx.get("progress_dir") else None
        self.cancel_path = Path(ctx["cancel_path"]) if ctx.get("cancel_path") else None
        self.slots = executor.slots()
        self.threads = max(1, int(executor.settings.cpus_per_group))
        ray = self.ray
        self.board = ray.remote(num_cpus=0, max_restarts=-1)(Board).remote()
        self.task = ray.remote(run_group).options(
            num_cpus=executor.settings.cpus_per_group, num_gpus=executor.gpus,
            max_retries=executor.settings.max_retries, retry_exceptions=False)
        # the model's own code goes through the object store once, like the artifacts: it reaches
        # the workers however Ray was started (a task's runtime_env cannot upload local files)
        code = executor.code if executor.settings.ship_code else {}
        self.code = (bundle_digest(code), ray.put(code)) if code else None
        self._pending: dict[Any, tuple[Future, list[dict], list]] = {}
        self._inputs: dict[tuple, list] = {}     # key -> [ObjectRef, users]
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._cancel_at: float | None = None
        self._forced = False
        self._dropped: set = set()  # the refs ray.cancel was called on (once each, until forced)
        if self.progress_dir is not None:
            executor.router.open(rundir.ray_log_path(self.progress_dir))
        self.notes: list[str] = []  # one line per event the user should see (a node lost)
        self.watch = NodeLossWatch(executor.settings.max_retries)
        executor.router.listeners.append(self.watch.ray_line)
        self.watch.nodes(self._alive_nodes())
        self._thread = threading.Thread(target=self._loop, name="tprm-ray-collector", daemon=True)
        self._thread.start()

    def describe(self) -> dict:
        return self.ex.describe()

    # -- submitting --------------------------------------------------------------------------
    def submit(self, fn, /, *args, **kwargs) -> Future:
        ctx, kind, jobs = args
        fut: Future = Future()
        fut.set_running_or_notify_cancel()
        try:
            inputs = self._acquire_inputs(jobs)
        except Exception as exc:  # noqa: BLE001 -- an unreadable input fails the group
            fut.set_result(_failed(jobs, f"cannot send inputs to Ray: {type(exc).__name__}: {exc}"))
            return fut
        local = ("progress_dir", "cancel_path") + (("import_paths",) if self.code else ())
        wctx = {k: v for k, v in ctx.items() if k not in local}  # shipped code: no local folders
        if self.code:
            wctx["code"] = self.code
        wctx["threads"] = self.threads
        wctx["resume_every"] = 0  # a task's scratch folder is wiped on retry: a state would not survive
        try:
            ref = self.task.remote(fn, wctx, kind, jobs, inputs, self.board)
        except Exception as exc:  # noqa: BLE001 -- e.g. the cluster went away
            self._release_inputs(inputs)
            fut.set_result(_failed(jobs, f"ray: cannot submit: {type(exc).__name__}: {exc}"))
            return fut
        with self._lock:
            self._pending[ref] = (fut, jobs, inputs)
        return fut

    def _acquire_inputs(self, jobs: list[dict]) -> list:
        """(kind, key, ObjectRef) for every file the group reads; each file is put once while
        some submitted group still needs it."""
        wanted: list[tuple] = []
        for job in jobs:
            for dep in job.get("deps") or []:
                for p in self.artifacts.files_of(dep):
                    h, name = split_file_name(p)
                    wanted.append(("artifact", (h, name), p))
            init = (job.get("runtime") or {}).get("init_path")
            if init:
                wanted.append(("init", job["hash"], Path(init)))
        out, seen = [], set()
        with self._lock:
            for kind, key, path in wanted:
                if (kind, key) in seen:
                    continue
                seen.add((kind, key))
                entry = self._inputs.get((kind, key, str(path)))
                if entry is None:
                    entry = self._inputs[(kind, key, str(path))] = [self.ray.put(path.read_bytes()), 0]
                entry[1] += 1
                out.append((kind, key, entry[0]))
        return out

    def _release_inputs(self, inputs: list) -> None:
        with self._lock:
            for kind, key, ref in inputs:
                for k, entry in list(self._inputs.items()):
                    if k[0] == kind and k[1] == key and entry[0] == ref:
                        entry[1] -= 1
                        if entry[1] <= 0:
                            del self._inputs[k]

    # -- collecting --------------------------------------------------------------------------
    def take_notes(self) -> list[str]:
        """The lines for the user since the last call (e.g. "node 10.0.0.2 lost; group ... retried")."""
        with self._lock:
            notes, self.notes = self.notes, []
        return notes

    def _alive_nodes(self) -> dict[str, str]:
        try:
            return {n["NodeID"]: n.get("NodeManagerAddress") or "?" for n in self.ray.nodes() if n.get("Alive")}
        except Exception:  # noqa: BLE001 -- the GCS is busy or gone: look again later
            return dict(self.watch.alive or {})

    def _check_nodes(self, look: bool) -> None:
        """Say which running groups a node that died took with it (one line each); ``look``: ask
        the GCS which nodes are alive first."""
        if look:
            self.watch.nodes(self._alive_nodes())
        with self._lock:
            running = {jobs[0]["hash"] for _, jobs, _ in self._pending.values()}
        notes = self.watch.notes(running)
        with self._lock:
            self.notes += notes

    def _loop(self) -> None:
        last_progress = last_nodes = 0.0
        while True:
            with self._lock:
                refs = list(self._pending)
            if not refs:
                if self._closed.is_set():
                    return
                self._closed.wait(0.2)
                continue
            try:
                ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0.3)
            except Exception:  # noqa: BLE001 -- Ray shutting down under us: fail what is left
                ready = refs
            for ref in ready:
                self._finish(ref)
            self._check_cancel(refs)
            if time.time() - last_progress >= PROGRESS_EVERY_S:
                last_progress = time.time()
                self._publish()
            look = time.time() - last_nodes >= NODES_EVERY_S
            if look:
                last_nodes = time.time()
            self._check_nodes(look)

    def _finish(self, ref) -> None:
        with self._lock:
            fut, jobs, inputs = self._pending.pop(ref)
        self._dropped.discard(ref)
        try:
            results = self._install(self.ray.get(ref), jobs)
        except BaseException as exc:  # noqa: BLE001 -- every outcome is recorded, never raised
            results = self._outcome_of(exc, jobs)
        self._release_inputs(inputs)
        try:
            self.board.drop.remote(jobs[0]["hash"])
        except Exception:  # noqa: BLE001
            pass
        fut.set_result(results)

    def _install(self, out: dict, jobs: list[dict]) -> list[dict]:
        """Write the task's artifact files (atomically, driver side) and return its results."""
        if out.get("science_version") != tprm.SCIENCE_VERSION:
            return _failed(jobs, f"the Ray worker runs tprm science version "
                                 f"{out.get('science_version')}, this driver {tprm.SCIENCE_VERSION}: "
                                 "install the same tprm on every node")
        mine = {j["hash"] for j in jobs}
        try:
            for h, files in out["files"].items():
                if h not in mine:
                    continue
                for name, blob in files.items():
                    self.artifacts.put_file(h, name, io.BytesIO(blob))
        except Exception as exc:  # noqa: BLE001 -- e.g. disk full on the driver
            return _failed(jobs, f"driver could not write artifacts: {type(exc).__name__}: {exc}")
        return out["results"]

    def _outcome_of(self, exc: BaseException, jobs: list[dict]) -> list[dict]:
        exs = self.ray.exceptions
        if isinstance(exc, exs.TaskCancelledError) or (
                self._cancel_at is not None and isinstance(exc, exs.RayTaskError)
                and isinstance(getattr(exc, "cause", None), (KeyboardInterrupt, exs.TaskCancelledError))):
            return [{"hash": j["hash"], "state": "cancelled", "result": None} for j in jobs]
        if self._forced and isinstance(exc, (exs.WorkerCrashedError, exs.RayError)):
            return [{"hash": j["hash"], "state": "cancelled", "result": None} for j in jobs]
        if isinstance(exc, exs.RayTaskError):
            cause = getattr(exc, "cause", None) or exc
            msg = f"ray task raised {type(cause).__name__}: {cause}"
        elif isinstance(exc, exs.RayError):
            msg = (f"ray: {type(exc).__name__} after {self.ex.settings.max_retries} retries: "
                   f"{str(exc).strip()}")
        else:
            msg = f"ray: {type(exc).__name__}: {exc}"
        return _failed(jobs, msg)

    def _check_cancel(self, refs: list) -> None:
        """The run's cancel file seen: raise the board's stop flag (running tasks stop at their next
        progress report), drop queued tasks with ray.cancel, and FORCE_CANCEL_AFTER_S later kill
        the worker of a task still running."""
        if self._forced or self.cancel_path is None or not self.cancel_path.exists():
            return
        now = time.time()
        if self._cancel_at is None:
            self._cancel_at = now
        try:  # every turn: a board restarted elsewhere (its node lost) has forgotten the flag
            self.board.stop.remote()
        except Exception:  # noqa: BLE001 -- the force below still stops the tasks
            pass
        if now - self._cancel_at > FORCE_CANCEL_AFTER_S:
            self._forced = True
            self._cancel(refs, force=True)
        else:
            self._cancel([ref for ref in refs if ref not in self._dropped], force=False)

    def _cancel(self, refs: list, force: bool) -> None:
        for ref in refs:
            self._dropped.add(ref)
            try:
                self.ray.cancel(ref, force=force)
            except Exception:  # noqa: BLE001 -- already finished
                pass

    def _publish(self) -> None:
        """Note where each group runs; copy the progress board into the run's progress folder
        (what the views read)."""
        try:
            snap = self.ray.get(self.board.snapshot.remote(), timeout=5)
        except Exception:  # noqa: BLE001 -- progress is best effort
            return
        with self._lock:
            live = {jobs[0]["hash"]: [j["label"] for j in jobs] for _, jobs, _ in self._pending.values()}
        for key, payload in snap.items():
            if key in live and payload.get("node_id"):
                self.watch.ran(key, live[key], payload["node_id"])
        if self.progress_dir is None:
            return
        for key, payload in snap.items():
            if key not in live:
                continue
            try:
                rundir.write_progress(rundir.progress_file(self.progress_dir, key), payload)
            except OSError:
                pass

    # -- closing -----------------------------------------------------------------------------
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            with self._lock:
                refs = list(self._pending)
            if refs:
                self._cancel_at, self._forced = time.time(), True
            self._cancel(refs, force=True)
        self._closed.set()
        if wait:
            self._thread.join()
        try:
            self.ray.kill(self.board)
        except Exception:  # noqa: BLE001
            pass
        self._inputs.clear()
        if self.watch.ray_line in self.ex.router.listeners:
            self.ex.router.listeners.remove(self.watch.ray_line)
        self.ex.close()


def _failed(jobs: list[dict], message: str) -> list[dict]:
    message = " ".join(message.split())[:300]
    return [{"hash": j["hash"], "state": "failed", "result": None, "error": message} for j in jobs]
