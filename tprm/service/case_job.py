"""Process entry point of a detached case study: `python -m tprm.service.case_job CASE_DIR STORE_DIR`.

One end of the detached-process protocol (tprm.engine.detached; the folder: tprm.engine.casedir).
`svc.cases.start` starts it in its own session (quitting the TUI does not stop it). It runs
`svc.cases.<kind>` with the request's arguments, keeps `progress.json` at the runner's latest
snapshot, stops through the runner's cancel path when `CASE_DIR/cancel` appears, and ends by
writing `report.json`: the report, or {"cancelled": message} or {"error": message}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from tprm.engine.casedir import write_json
    from tprm.engine.detached import cancel_requested, cancel_runs_of_pid
    from tprm.service import RunCancelled, Service, TprmError

    folder, store_dir = Path(argv[0]), argv[1]
    request = json.loads((folder / "request.json").read_text())
    svc = Service(store_dir)
    last = [0.0]

    def progress(snap: dict) -> None:
        if cancel_requested(folder):  # a run started after the stop request is stopped at once, too
            cancel_runs_of_pid(svc.workspace.store, os.getpid())
        now = time.monotonic()
        if now - last[0] >= 0.5:
            last[0] = now
            write_json(folder / "progress.json", dict(snap, updated=time.time()))

    try:
        if cancel_requested(folder):
            raise RunCancelled(f"{request['recipe']}: case study stopped before it started")
        method = getattr(svc.cases, request["kind"])
        report = method(request["path"], progress=progress, **request["args"])
    except RunCancelled as exc:
        write_json(folder / "report.json", {"cancelled": str(exc)})
        print(f"tprm case: {exc}", file=sys.stderr)
        return 1
    except TprmError as exc:
        write_json(folder / "report.json", {"error": str(exc).splitlines()[0]})
        print(f"tprm case: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except Exception as exc:  # noqa: BLE001 -- recorded for the UI, then shown with its traceback
        write_json(folder / "report.json", {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]})
        raise
    write_json(folder / "report.json", report)
    print(report.get("text", ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
