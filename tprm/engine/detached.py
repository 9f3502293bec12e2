"""The detached-process protocol, shared by runs and case studies, and the ONE home of cancelling.

A detached process is started in its own session (quitting the terminal or the TUI does not stop
it), writes its stdout/stderr to a log file, and leaves its pid where readers find it: a run in
its run record (the runner's heartbeat keeps that record fresh), a case study in `cases/<id>/pid`.

Cancelling, every way it happens:
  - a recipe's runs:   the run record's `cancel_requested` flag (store) + `runs/<id>/cancel`
                       (the runner polls both; its executors stop jobs at their next progress tick)
  - a process's runs:  `runs/<id>/cancel` of every running run whose record carries that pid
  - a case study:      `cases/<id>/cancel` (its process stops before starting more runs) + the
                       runs of its pid, as above
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tprm.engine import rundir
from tprm.engine.artifacts import atomic_write

CANCEL_FILE = "cancel"  # the file whose existence asks a run (runs/<id>/) or case study (cases/<id>/) to stop


def start_process(module: str, args: list[str], log: Path, pid_file: Path | None = None) -> subprocess.Popen:
    """Start `python -m module args...` in its own session, appending its output to `log`;
    its pid is also written to `pid_file` when given."""
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.DEVNULL,
                                stdout=fh, stderr=fh, start_new_session=True, cwd=os.getcwd())
    if pid_file is not None:
        atomic_write(pid_file, lambda f: f.write(str(proc.pid).encode("utf-8")))
    return proc


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text())
    except (OSError, ValueError):
        return None


def request_cancel(store_root: Path | str, run_id: str) -> None:
    """Ask run `run_id` to stop: its running jobs stop at their next progress tick."""
    path = rundir.cancel_path(store_root, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def cancel_recipe(store, recipe_name: str) -> int:
    """Stop every running run of a recipe (db flag + cancel file); the number of runs flagged."""
    n = store.request_cancel(recipe_name)
    for run in store.get_runs(recipe_name):
        if run.get("state") == "running":
            request_cancel(store.root, run["run_id"])
    return n


def cancel_runs_of_pid(store, pid) -> int:
    """Touch the cancel file of every running run of process `pid`; how many."""
    if pid is None:
        return 0
    n = 0
    for run in store.get_runs():
        if run.get("pid") == pid and run.get("state") in ("running", "stale"):
            request_cancel(store.root, run["run_id"])
            n += 1
    return n


def cancel_requested(folder: Path) -> bool:
    """True when a stop was asked of the detached process of `folder` (a case study's folder)."""
    return (Path(folder) / CANCEL_FILE).exists()


def cancel_folder(folder: Path, store, pid) -> None:
    """Stop the detached process of `folder`: its cancel file, then its runs' cancel files
    (`store` None: no store yet, so no runs)."""
    (Path(folder) / CANCEL_FILE).touch()
    if store is not None:
        cancel_runs_of_pid(store, pid)
