"""The store's runs table: one record per `tprm run` process (state, pid, host, log, heartbeat)
and the database half of cancelling (a `cancel_requested` flag the runner polls)."""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from tprm.engine.storebase import RUN_STATES, StoreError, jsonable, pid_alive
from tprm.engine.storefile import StoreFile

RUN_STALE_AFTER_S = 120.0   # a running run whose heartbeat is older than this is shown as stale
FINAL_RUN_STATES = ("done", "failed", "cancelled")


class RunTable:
    """Runs: start, update (a final state always gets a backup), list with "stale" derived, cancel."""

    def __init__(self, file: StoreFile, host: str, stale_after: float = RUN_STALE_AFTER_S):
        self.file = file
        self.host = host
        self.stale_after = stale_after

    def start_run(self, recipe_name: str, recipe_hash: str, pid: int, host: str,
                  log_path: Path | str | None) -> str:
        """Record a new running run and return its id (sortable by start time)."""
        if not isinstance(pid, int) or not isinstance(host, str):
            raise StoreError(f"start_run: pid {pid!r} must be an int and host {host!r} a string")
        now = time.time()
        run_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + "-" + secrets.token_hex(3)
        rec = {"run_id": run_id, "recipe_name": recipe_name, "recipe_hash": recipe_hash,
               "state": "running", "pid": pid, "host": host,
               "log": None if log_path is None else str(log_path), "started": now,
               "ended": None, "heartbeat": now, "cancel_requested": False}
        with self.file.transaction() as db:
            db.table("runs").insert(rec)
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> dict:
        """Set fields of a run (state, ended, heartbeat, counts, ...); a final state fills `ended`."""
        if "run_id" in fields:
            raise StoreError(f"run {run_id}: run_id cannot be changed")
        if "state" in fields and fields["state"] not in RUN_STATES:
            raise StoreError(f"run {run_id}: state {fields['state']!r} must be one of {RUN_STATES}")
        fields = jsonable(fields, f"run {run_id}")
        final = fields.get("state") in FINAL_RUN_STATES
        if final and fields.get("ended") is None:
            fields["ended"] = time.time()
        with self.file.transaction(backup=final) as db:
            runs = db.table("runs")
            doc = next((d for d in runs.all() if d.get("run_id") == run_id), None)
            if doc is None:
                raise StoreError(f"run {run_id!r}: no such run in {self.file.db_path}")
            runs.update(fields, doc_ids=[doc.doc_id])
        return {**doc, **fields}

    def get_runs(self, recipe_name: str | None = None) -> list[dict]:
        """Runs oldest first; a running run whose process is gone or heartbeat is old reads "stale"."""
        now, out = time.time(), []
        for doc in self.file.view().table("runs").all():
            if recipe_name is not None and doc.get("recipe_name") != recipe_name:
                continue
            run = dict(doc)
            if run.get("state") == "running":
                dead = run.get("host") == self.host and not pid_alive(run.get("pid"))
                old = (run.get("heartbeat") or 0) < now - self.stale_after
                if dead or old:
                    run["state"] = "stale"
            out.append(run)
        return sorted(out, key=lambda r: (r.get("started") or 0, r.get("run_id", "")))

    def request_cancel(self, recipe_name: str) -> int:
        """Ask every running run of a recipe to stop; returns how many were asked."""
        with self.file.transaction() as db:
            runs = db.table("runs")
            ids = [d.doc_id for d in runs.all() if d.get("recipe_name") == recipe_name
                   and d.get("state") == "running" and not d.get("cancel_requested")]
            if ids:
                runs.update({"cancel_requested": True, "cancel_requested_at": time.time()},
                            doc_ids=ids)
        return len(ids)

    def cancel_requested(self, run_id: str) -> bool:
        """True once someone asked run `run_id` to stop."""
        return any(d.get("run_id") == run_id and d.get("cancel_requested")
                   for d in self.file.view().table("runs").all())
