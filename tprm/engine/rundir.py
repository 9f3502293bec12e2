"""The run folder protocol: what a running run keeps on disk beside the store, and who reads it.

    <store>/runs/<run_id>/cancel               exists = stop request (tprm.engine.detached touches it)
    <store>/runs/<run_id>/progress/<h>.json    latest progress of the running group whose first
                                               job is <h>: label, hashes, done, total, started,
                                               updated (node for remote groups); removed when it ends
    <store>/runs/<run_id>/run.log              the run's log when no other log was given
    <store>/runs/<run_id>/ray.log              Ray's own driver-side output of a Ray run (raylet
                                               messages, Ray's logger), kept off the terminal
    <store>/logs/run-<recipe>-<stamp>.log      the log of a detached run (its stdout, stderr and
                                               the runner's lines)

The runner creates the folder, the executors (local and Ray) write progress files and watch the
cancel file, and the service reads progress: all through this module. Cancelling lives in tprm.engine.detached.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def run_dir(store_root: Path | str, run_id: str) -> Path:
    return Path(store_root) / "runs" / run_id


def progress_dir(store_root: Path | str, run_id: str) -> Path:
    return run_dir(store_root, run_id) / "progress"


def cancel_path(store_root: Path | str, run_id: str) -> Path:
    return run_dir(store_root, run_id) / "cancel"


def run_log_path(store_root: Path | str, run_id: str) -> Path:
    return run_dir(store_root, run_id) / "run.log"


def ray_log_path(progress_folder: Path | str) -> Path:
    """Where Ray's own output of the run whose progress folder is ``progress_folder`` goes."""
    return Path(progress_folder).parent / "ray.log"


def detached_log_path(store_root: Path | str, recipe_name: str) -> Path:
    """A new log file for a detached run of `recipe_name` (its folder is created)."""
    logs = Path(store_root) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"run-{recipe_name}-{time.strftime('%Y%m%d-%H%M%S')}.log"


def progress_file(folder: Path | str, group_hash: str) -> Path:
    """The progress file of the group whose first job is `group_hash`."""
    return Path(folder) / f"{group_hash}.json"


def write_progress(path: Path, payload: dict) -> None:
    """Replace a progress file atomically (readers never see half a file)."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def clear_progress(folder: Path | str | None, group_hash: str) -> None:
    if folder:
        progress_file(folder, group_hash).unlink(missing_ok=True)


def read_groups(folder: Path) -> list[dict]:
    """Every readable progress payload in a progress folder (a half-written one is skipped)."""
    out = []
    for f in sorted(folder.glob("*.json")):
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    return out


def job_progress(store_root: Path | str, runs: list[dict]) -> dict[str, dict]:
    """{job hash: {done, total, started, updated, node}} over the running runs of `runs`."""
    out = {}
    for run in runs:
        if run.get("state") != "running":
            continue
        for p in read_groups(progress_dir(store_root, run["run_id"])):
            for h in p.get("hashes", []):
                out[h] = {"done": p["done"], "total": p["total"], "started": p["started"],
                          "updated": p["updated"], "node": p.get("node")}
    return out
