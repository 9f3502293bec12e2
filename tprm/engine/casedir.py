"""The folder of a detached case study, <store>/cases/<id>/, and the process that runs it.

    request.json   {"id", "kind", "recipe", "path", "args", "started"}
    pid            the process id of `python -m tprm.service.case_job DIR STORE`
    progress.json  the runner's latest snapshot (written by the case process)
    report.json    the answer, or {"error": message} / {"cancelled": message}
    cancel         exists = stop request (see tprm.engine.detached)
    log            the process's stdout and stderr
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tprm.engine import detached
from tprm.engine.artifacts import atomic_write


def cases_root(store_dir: Path) -> Path:
    return Path(store_dir) / "cases"


def write_json(path: Path, data: dict) -> None:
    """Replace a JSON file of the folder atomically."""
    text = json.dumps(data, default=str)
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def new_case(store_dir: Path, kind: str, recipe_name: str, recipe_path: str,
             args: dict) -> tuple[dict, Path]:
    """Create the folder of a new case study and its request.json: (the request, the folder)."""
    case_id = (f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid() % 10000:04d}"
               f"{int(time.time() * 1000) % 1000:03d}")
    folder = cases_root(store_dir) / case_id
    folder.mkdir(parents=True, exist_ok=True)
    request = {"id": case_id, "kind": kind, "recipe": recipe_name,
               "path": str(Path(recipe_path).resolve()), "args": args, "started": time.time()}
    atomic_write(folder / "request.json", lambda fh: fh.write(json.dumps(request).encode("utf-8")))
    return request, folder


def start_process(folder: Path, store_dir: Path, entry: str) -> subprocess.Popen:
    """Start `python -m <entry> FOLDER STORE` detached (tprm.engine.detached: quitting the UI does
    not stop it); `entry` is the caller's module (the service's tprm.service.case_job)."""
    return detached.start_process(entry, [str(folder), str(store_dir)], folder / "log", folder / "pid")


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tail(path: Path, size: int = 4000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - size))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def read_case(folder: Path, alive: Callable[[int | None], bool]) -> dict | None:
    """The case study now (state running|done|cancelled|failed, progress, report, error); None
    when the folder holds no readable request. `alive(pid)` says whether its process runs."""
    out = _read(folder / "request.json")
    if out is None:
        return None
    out.update(dir=str(folder), log=str(folder / "log"), progress=None, report=None, error=None)
    out["pid"] = detached.read_pid(folder / "pid")
    out["progress"] = _read(folder / "progress.json")
    out["stopping"] = detached.cancel_requested(folder)
    report = _read(folder / "report.json") if (folder / "report.json").exists() else None
    if report is not None:
        if report.get("cancelled"):
            out.update(state="cancelled", error=report.get("cancelled"))
        elif report.get("error"):
            out.update(state="failed", error=report["error"])
        else:
            out.update(state="done", report=report)
    elif alive(out["pid"]):
        out["state"] = "running"
    else:
        last = [ln for ln in tail(folder / "log").splitlines() if ln.strip()]
        out.update(state="failed", error="the case-study process ended without an answer"
                   + (f": {last[-1].strip()}" if last else ""))
    return out


def case_ids(store_dir: Path) -> list[str]:
    root = cases_root(store_dir)
    return sorted(p.name for p in root.iterdir() if (p / "request.json").exists()) if root.exists() else []
