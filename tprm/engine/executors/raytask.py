"""What runs inside a Ray task (the worker side of `execution.backend: ray`, see ray.py).

A task gets its inputs through the object store, runs the ordinary `execute_group` in a private
scratch store and returns its results with the bytes of the files it wrote. It talks to the driver
through one small actor, the `Board`: progress goes out, and the run's stop request comes back in
the answer to the task's own reports. So a cancel reaches a running task wherever it runs, with no
shared filesystem and without relying on Ray delivering a KeyboardInterrupt (which a worker whose
SIGINT is ignored never sees).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import tprm
from tprm.engine.artifacts import Artifacts, split_file_name
from tprm.engine.storebase import pid_alive


class Board:
    """Ray actor shared by the driver and its tasks: the latest progress payload of every running
    group (tasks write, the driver reads) and the run's stop request (the driver sets it; every
    report's answer carries it back to the task)."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.stopping = False

    def report(self, key: str, payload: dict) -> bool:
        """Keep a group's latest progress; True once the run was asked to stop."""
        self.items[key] = payload
        return self.stopping

    def stop(self) -> None:
        self.stopping = True

    def drop(self, key: str) -> None:
        self.items.pop(key, None)

    def snapshot(self) -> dict[str, dict]:
        return dict(self.items)


# -- worker side ---------------------------------------------------------------------------------

class BoardLink:
    """A task's end of the board: `report` sends progress without waiting for the actor, and
    `stop_requested` reads the answer to the previous report once it has come (never blocking the
    training loop that calls it through `Progress`, which then raises `Cancelled`)."""

    def __init__(self, board, key: str, where: dict) -> None:
        self.board, self.key, self.where = board, key, where
        self.answer: Any = None  # the ObjectRef of the last report's answer, until it is read
        self.stopped = False

    def report(self, payload: dict) -> None:
        self.stop_requested()  # read the pending answer before a new report replaces it
        self.answer = self.board.report.remote(self.key, {**payload, **self.where})

    def stop_requested(self) -> bool:
        import ray

        if not self.stopped and self.answer is not None:
            try:
                ready, _ = ray.wait([self.answer], timeout=0)
                if ready:
                    self.answer, self.stopped = None, bool(ray.get(ready[0]))
            except Exception:  # noqa: BLE001 -- the board restarting: ask again with the next report
                self.answer = None
        return self.stopped


def _scratch_root() -> Path:
    """This worker process's private store root; data and cache folders are shared per node."""
    base = Path(tempfile.gettempdir()) / "tprm-ray"
    root = base / f"w{os.getpid()}"
    for d in base.glob("w*") if base.is_dir() else ():
        pid = d.name[1:]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)  # left by a killed worker
    root.mkdir(parents=True, exist_ok=True)
    for shared in ("data", "cache"):
        (base / shared).mkdir(exist_ok=True)
        link = root / shared
        if not link.exists():
            link.symlink_to(base / shared, target_is_directory=True)
    shutil.rmtree(root / "artifacts", ignore_errors=True)
    return root


def bundle_digest(code: dict[str, bytes]) -> str:
    """A short content hash of a code bundle ({relative path: bytes}): its folder's name."""
    h = hashlib.sha256()
    for name in sorted(code):
        h.update(name.encode() + b"\0" + hashlib.sha256(code[name]).digest())
    return h.hexdigest()[:16]


def install_code(root: Path, digest: str, ref) -> Path:
    """The bundle `ref` written once into this worker's `root/code-DIGEST`; modules of its names
    imported earlier from elsewhere (another version) are forgotten, so the import is this code."""
    import ray

    folder = root / f"code-{digest}"
    if not folder.is_dir():
        tmp = root / f".code-{digest}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        for name, data in ray.get(ref).items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        os.replace(tmp, folder)
    tops = {Path(n).parts[0].removesuffix(".py") for n in (p.relative_to(folder).as_posix()
                                                           for p in folder.rglob("*.py"))}
    for name in [m for m in sys.modules if m.split(".")[0] in tops]:
        where = getattr(sys.modules[name], "__file__", None) or ""
        if not where.startswith(str(folder)):
            del sys.modules[name]
    return folder


def run_group(fn: Callable, ctx: dict, kind: str, jobs: list[dict], inputs: list, board) -> dict:
    """The body of one Ray task: materialise inputs, run `fn` (execute_group), return the outputs."""
    import ray

    root = _scratch_root()
    art = Artifacts(root)
    refs = [ref for _, _, ref in inputs]
    blobs = ray.get(refs) if refs else []
    jobs = [dict(j) for j in jobs]
    for (kind_, key, _), blob in zip(inputs, blobs):
        if kind_ == "artifact":
            art.put_file(key[0], key[1], io.BytesIO(blob))
        else:  # a dense init file: key is the job hash
            path = root / f"init-{key}.pt"
            path.write_bytes(blob)
            for j in jobs:
                if j["hash"] == key:
                    j["runtime"] = dict(j.get("runtime") or {}, init_path=str(path))
    rt = ray.get_runtime_context()
    where = {"node": socket.gethostname(), "node_ip": ray.util.get_node_ip_address(),
             "node_id": rt.get_node_id()[:12], "pid": os.getpid()}
    key = jobs[0]["hash"]
    label = f"{kind} x{len(jobs)}: {jobs[0]['label']}"
    started = time.time()
    link = BoardLink(board, key, where)
    link.report({"label": label, "hashes": [j["hash"] for j in jobs], "done": 0, "total": 1,
                 "started": started, "updated": started})
    # the run's cancel file is on the driver's disk: the stop request comes through the board
    wctx = dict(ctx, store_root=str(root), progress_dir=None, cancel_path=None,
                progress_sink=link.report, stop_requested=link.stop_requested, worker_index=0)
    if ctx.get("code"):  # the recipe's model code, shipped by the driver: importable from here
        wctx["import_paths"] = [str(install_code(root, *ctx["code"]))]
    try:
        results = fn(wctx, kind, jobs)
        files: dict[str, dict[str, bytes]] = {}
        for j in jobs:
            for p in art.files_of(j["hash"]):
                h, name = split_file_name(p)
                files.setdefault(h, {})[name] = p.read_bytes()
    finally:
        shutil.rmtree(root / "artifacts", ignore_errors=True)
        for j in jobs:
            (root / f"init-{j['hash']}.pt").unlink(missing_ok=True)
    for res in results:
        prov = res.setdefault("provenance", {})
        prov["ray"] = {k: where[k] for k in ("node_ip", "node_id", "pid")}
    return {"results": results, "files": files, "science_version": tprm.SCIENCE_VERSION}
