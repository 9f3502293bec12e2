"""The store's job table and its leases: add jobs, claim them under a lease, renew, finish
(state + result row in one write), release; plus the results table and each finished job's
metadata file (``<hash>.job.json``, what ``repair`` rebuilds the index from).

A running job whose lease expired or whose owner process is gone from this host reads "stale"
(derived on read, never stored) and can be claimed again.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from tinydb import TinyDB

from tprm.engine.storebase import (
    StoreError,
    StoreWarning,
    apply_changes,
    by_hash,
    check_hash,
    jsonable,
    one_line,
    pid_alive,
)
from tprm.engine.storefile import StoreFile

FINISH_STATES = ("done", "failed", "diverged", "cancelled")
RELEASE_STATES = ("queued", "cancelled")
FINISH_KEYS = {"hash", "owner", "state", "result", "error", "traceback", "provenance"}


def check_owner(owner: Any) -> dict:
    """`owner` as {pid, host, run_id}; StoreError when it is not one (see make_owner())."""
    if not isinstance(owner, Mapping) or not isinstance(owner.get("pid"), int) \
            or not isinstance(owner.get("host"), str):
        raise StoreError(f"owner: {owner!r} is not an owner; expected {{'pid': int, 'host': str, "
                         "'run_id': str | None}} (see make_owner())")
    return {"pid": owner["pid"], "host": owner["host"], "run_id": owner.get("run_id")}


def _same_owner(a: Any, b: dict) -> bool:
    return isinstance(a, Mapping) and a.get("pid") == b["pid"] and a.get("host") == b["host"] \
        and a.get("run_id") == b["run_id"]


def _check_lease(lease_s: Any) -> float:
    if not isinstance(lease_s, (int, float)) or isinstance(lease_s, bool) or not lease_s > 0:
        raise StoreError(f"lease_s: {lease_s!r} must be a positive number of seconds")
    return float(lease_s)


def _check_job(i: int, job: Any) -> tuple[str, str, list]:
    """(hash, kind, deps) of an incoming job mapping; StoreError naming its index when malformed."""
    if not isinstance(job, Mapping):
        raise StoreError(f"jobs[{i}]: expected a mapping with hash and kind, got "
                         f"{type(job).__name__}")
    h = check_hash(job.get("hash"), f"jobs[{i}].hash")
    kind = job.get("kind")
    if not isinstance(kind, str) or not kind:
        raise StoreError(f"job {h}: kind {kind!r} must be a non-empty string")
    deps = job.get("deps") or []
    if not isinstance(deps, (list, tuple)):
        raise StoreError(f"job {h}: deps must be a list of job hashes, got {type(deps).__name__}")
    for d in deps:
        check_hash(d, f"job {h}: deps")
    return h, kind, list(deps)


class JobLeases:
    """The jobs and results tables: who runs which job until when, and what it produced."""

    def __init__(self, file: StoreFile, host: str):
        self.file = file
        self.artifacts = file.artifacts
        self.host = host

    def add_jobs(self, jobs: Iterable[Mapping], recipe_hash: str) -> int:
        """Insert new jobs as "queued" and tag existing ones with `recipe_hash`; returns how many are new.

        A job is a mapping with `hash` and `kind` (required), `label`, `deps` and `spec` (small JSON);
        other keys are not stored. One transaction however many jobs.
        """
        if not isinstance(recipe_hash, str) or not recipe_hash:
            raise StoreError(f"recipe_hash: {recipe_hash!r} must be a non-empty string")
        now = time.time()
        incoming: dict[str, dict] = {}
        for i, job in enumerate(jobs):
            h, kind, deps = _check_job(i, job)
            if h not in incoming:
                incoming[h] = {"hash": h, "kind": kind, "label": str(job.get("label") or ""),
                               "deps": deps, "spec": jsonable(job.get("spec") or {}, f"job {h}: spec"),
                               "recipes": [recipe_hash], "state": "queued", "owner": None,
                               "lease_until": None, "attempts": 0, "error": None, "traceback": None,
                               "provenance": None, "created": now, "started": None, "ended": None}
        with self.file.transaction() as db:
            table = db.table("jobs")
            existing = by_hash(table)
            tag = {h: {"recipes": [*d.get("recipes", []), recipe_hash]}
                   for h, d in existing.items()
                   if h in incoming and recipe_hash not in d.get("recipes", [])}
            apply_changes(table, existing, tag)
            new = [rec for h, rec in incoming.items() if h not in existing]
            if new:
                table.insert_multiple(new)
        return len(new)

    def derive(self, job: dict, now: float, alive: dict) -> dict:
        """A copy of `job` whose state reads "stale" when it runs under an expired lease or a dead
        owner on this host. `alive` caches {pid: alive} across calls of one pass."""
        job = dict(job)
        if job.get("state") == "running":
            owner = job.get("owner") or {}
            lease = job.get("lease_until")
            dead = False
            if owner.get("host") == self.host:
                pid = owner.get("pid")
                if pid not in alive:
                    alive[pid] = pid_alive(pid)
                dead = not alive[pid]
            if lease is None or lease < now or dead:
                job["state"] = "stale"
        return job

    def get_jobs(self, hashes: Iterable[str] | None = None, *,
                 recipe_hash: str | None = None) -> dict[str, dict]:
        """{hash: job record} (one file read), with state "stale" derived for abandoned running jobs.

        `hashes` selects jobs (unknown ones are absent from the answer); `recipe_hash` keeps only
        jobs a recipe with that hash has added.
        """
        now, alive = time.time(), {}
        wanted = None if hashes is None else set(hashes)
        out: dict[str, dict] = {}
        for doc in self.file.view().table("jobs").all():
            h = doc.get("hash")
            if wanted is not None and h not in wanted:
                continue
            if recipe_hash is not None and recipe_hash not in doc.get("recipes", []):
                continue
            out[h] = self.derive(doc, now, alive)
        return out

    def claim(self, hashes: Iterable[str], owner: Mapping, lease_s: float = 60.0, *,
              retry_failed: bool = False) -> list[str]:
        """Atomically take the claimable jobs among `hashes`; returns those claimed (input order).

        Claimable: queued, cancelled or stale (plus failed and diverged with retry_failed=True).
        A claimed job is running, owned by `owner`, leased until now + lease_s, attempts += 1.
        """
        own = check_owner(owner)
        lease_s = _check_lease(lease_s)
        ok_states = {"queued", "cancelled", "stale"} | ({"failed", "diverged"} if retry_failed else set())
        order = list(dict.fromkeys(hashes))
        with self.file.transaction() as db:
            table = db.table("jobs")
            now, alive = time.time(), {}
            existing = by_hash(table)
            claimed, changes = [], {}
            for h in order:
                doc = existing.get(h)
                if doc is None or self.derive(doc, now, alive)["state"] not in ok_states:
                    continue
                claimed.append(h)
                changes[h] = {"state": "running", "owner": own, "lease_until": now + lease_s,
                              "attempts": int(doc.get("attempts") or 0) + 1, "started": now,
                              "ended": None, "error": None, "traceback": None}
            apply_changes(table, existing, changes)
        return claimed

    def heartbeat(self, hashes: Iterable[str], owner: Mapping, lease_s: float = 60.0) -> list[str]:
        """Renew the leases of the jobs `owner` still holds (and its run's heartbeat); returns those."""
        own = check_owner(owner)
        lease_s = _check_lease(lease_s)
        wanted_order = list(hashes)
        wanted = set(wanted_order)
        with self.file.transaction() as db:
            now = time.time()
            table = db.table("jobs")
            existing = by_hash(table)
            held = {h for h, d in existing.items()
                    if h in wanted and d.get("state") == "running" and _same_owner(d.get("owner"), own)}
            apply_changes(table, existing, {h: {"lease_until": now + lease_s} for h in held})
            if own["run_id"] is not None:
                runs = db.table("runs")
                ids = [d.doc_id for d in runs.all() if d.get("run_id") == own["run_id"]]
                if ids:
                    runs.update({"heartbeat": now}, doc_ids=ids)
        return [h for h in dict.fromkeys(wanted_order) if h in held]

    def finish(self, hash: str, owner: Mapping, state: str, result: Mapping | None = None,
               error: str | None = None, traceback: str | None = None,
               provenance: Mapping | None = None) -> bool:
        """Record a job's outcome (state + result row in one write) if `owner` still holds it."""
        return self.finish_many([{"hash": hash, "owner": owner, "state": state, "result": result,
                                  "error": error, "traceback": traceback,
                                  "provenance": provenance}])[0]

    def finish_many(self, items: Iterable[Mapping]) -> list[bool]:
        """Several finish() calls (dicts of its keyword arguments) in ONE write; a bool per item.

        An item whose job is no longer running under its owner (someone reclaimed a stale lease)
        writes nothing and gets False.
        """
        prepared = [self._finish_item(i, item) for i, item in enumerate(items)]
        with self.file.transaction() as db:
            out, metas = self._record_finished(db, prepared)
        for h, meta in metas.items():  # after the commit: metadata never claims an unrecorded job
            self.write_job_meta(h, meta)
        return out

    def _finish_item(self, i: int, item: Mapping) -> tuple:
        """One finish item checked: (hash, owner, state, files, result, error, traceback, provenance)."""
        unknown = set(item) - FINISH_KEYS
        if unknown:
            raise StoreError(f"finish item {i}: unknown keys {sorted(unknown)}")
        h = check_hash(item.get("hash"), f"finish item {i}: hash")
        state = item.get("state")
        if state not in FINISH_STATES:
            raise StoreError(f"job {h}: finish state {state!r} must be one of {FINISH_STATES}")
        result = item.get("result")
        if result is not None and not isinstance(result, Mapping):
            raise StoreError(f"job {h}: result must be a dict of scalars, got "
                             f"{type(result).__name__}")
        return (h, check_owner(item.get("owner")), state,
                self.artifacts.manifest(h) if state in ("done", "diverged") else None,
                None if result is None else jsonable(dict(result), f"job {h}: result"),
                one_line(item.get("error")),
                None if item.get("traceback") is None else str(item["traceback"]),
                jsonable(item.get("provenance"), f"job {h}: provenance"))

    def _record_finished(self, db: TinyDB, prepared: list[tuple]) -> tuple[list[bool], dict]:
        """Apply checked finish items inside a transaction; ([accepted per item], {hash: metadata})."""
        now = time.time()
        jobs, results = db.table("jobs"), db.table("results")
        existing, old_results = by_hash(jobs), by_hash(results)
        job_changes, result_changes, result_new, result_drop, out = {}, {}, [], [], []
        metas = {}
        for h, own, state, files, result, error, tb, prov in prepared:
            doc = existing.get(h)
            if doc is None or doc.get("state") != "running" or not _same_owner(doc.get("owner"), own) \
                    or h in job_changes:
                out.append(False)
                continue
            out.append(True)
            job_changes[h] = {"state": state, "ended": now, "lease_until": None,
                              "error": error, "traceback": tb, "provenance": prov}
            if files is not None:
                job_changes[h]["artifacts"] = files
                metas[h] = self.job_meta({**doc, **job_changes[h]}, result, db)
            old = old_results.get(h)
            if result is None:
                if old is not None:
                    result_drop.append(old.doc_id)
            elif old is None:
                result_new.append({"hash": h, "values": result, "updated": now})
            else:
                result_changes[h] = {"values": result, "updated": now}
        apply_changes(jobs, existing, job_changes)
        apply_changes(results, old_results, result_changes)
        if result_drop:
            results.remove(doc_ids=result_drop)
        if result_new:
            results.insert_multiple(result_new)
        return out, metas

    def job_meta(self, job: Mapping, result: Any, db: TinyDB) -> dict:
        """What a finished job's folder records about it (enough to rebuild its index records);
        `db` is the open transaction (it supplies the recipe names)."""
        names = sorted({r.get("name") for r in db.table("recipes").all()
                        if r.get("hash") in (job.get("recipes") or [])} - {None})
        keep = ("hash", "kind", "label", "deps", "recipes", "state", "attempts", "error",
                "provenance", "created", "started", "ended")
        meta = {k: job.get(k) for k in keep}
        meta.update(recipe_names=names, result=result, files=job.get("artifacts") or {})
        return jsonable(meta, f"job {job.get('hash')}: metadata")

    def write_job_meta(self, job_hash: str, meta: dict) -> None:
        """Write a finished job's metadata file (after its transaction committed); warns on failure."""
        try:
            self.artifacts.write_meta(job_hash, meta)
        except OSError as exc:  # the db has the record; `tprm store check` reports the gap
            warnings.warn(StoreWarning(f"job {job_hash}: could not write its metadata file "
                                       f"({exc.strerror})"), stacklevel=3)

    def release(self, hashes: Iterable[str], owner: Mapping, state: str = "queued") -> list[str]:
        """Give back jobs `owner` still holds, as `state` (queued or cancelled); returns those released."""
        own = check_owner(owner)
        if state not in RELEASE_STATES:
            raise StoreError(f"release state {state!r} must be one of {RELEASE_STATES}")
        order = list(dict.fromkeys(hashes))
        with self.file.transaction() as db:
            table = db.table("jobs")
            existing = by_hash(table)
            released = [h for h in order if h in existing and existing[h].get("state") == "running"
                        and _same_owner(existing[h].get("owner"), own)]
            apply_changes(table, existing, {h: {"state": state, "lease_until": None, "ended": time.time()}
                                     for h in released})
        return released

    def results(self, hashes: Iterable[str] | None = None) -> dict[str, dict]:
        """{hash: result dict} of finished jobs (all of them when `hashes` is None)."""
        wanted = None if hashes is None else set(hashes)
        return {d["hash"]: d.get("values", {}) for d in self.file.view().table("results").all()
                if wanted is None or d.get("hash") in wanted}
