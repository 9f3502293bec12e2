"""Repair the store: rebuild ``tprm.db.json`` from what survives -- the db's well-formed records,
the newest valid backup, recipes' and finished jobs' metadata files beside the artifacts -- and
re-queue finished jobs whose artifact files are gone or damaged (``tprm store repair``)."""
from __future__ import annotations

import json
import shutil
import time
from typing import Any

from tprm.engine.artifacts import META_SUFFIX, read_meta_file
from tprm.engine.records import clean as clean_records
from tprm.engine.records import record_problem
from tprm.engine.storebase import SCHEMA_VERSION, StoreError
from tprm.engine.storecheck import Maintenance
from tprm.engine.storefile import DB_NAME, new_meta, schema_version, upgrade

FINISHED = ("done", "diverged")


def insert_records(data: dict, table: str, records: list[dict]) -> None:
    """Add records to a raw table ({doc id: record}) under new numeric ids."""
    if not records:
        return
    tab = data.setdefault(table, {})
    next_id = max((int(k) for k in tab if str(k).isdigit()), default=0) + 1
    for i, rec in enumerate(records):
        tab[str(next_id + i)] = rec


class StoreRepair:
    """Rebuilds one store's index; `repair()` returns a report of what it took from where."""

    def __init__(self, maintenance: Maintenance):
        self.maint = maintenance
        self.file = maintenance.file
        self.leases = maintenance.leases
        self.artifacts = maintenance.artifacts

    def repair(self) -> dict:
        """Rebuild the index: keep the db's well-formed records (or, when it does not parse, take
        the newest valid backup), add records only a backup still has, then restore every finished
        job whose artifacts are intact from its metadata file, and re-queue finished jobs whose
        artifacts are not. A damaged db is kept as ``tprm.db.json.damaged-<time>``."""
        report: dict[str, Any] = {"store": str(self.file.root), "source": None, "damaged_copy": None,
                                  "dropped": [], "from_backup": {}, "from_metadata": 0,
                                  "results_from_metadata": 0, "recipes_from_metadata": 0,
                                  "requeued": [], "skipped_metadata": [], "jobs": 0}
        with self.file.locked():
            data = self._from_db(report)
            self._merge_backup(data, report)
            report["source"] = report["source"] or "artifact metadata only"
            if not data.get("meta"):
                data["meta"] = {"1": new_meta()}
            self._recipes_from_metadata(data, report)
            self._jobs_from_metadata(data, report)
            self._requeue_broken(data, report)
            report["jobs"] = len(data.get("jobs") or {})
            self.file.write_data(data, backup=True)
        return report

    def _from_db(self, report: dict) -> dict:
        """The db's well-formed records ({} when it does not parse); a damaged file is copied."""
        data, db = self.file.state()
        if db.get("newer"):
            raise StoreError(db["error"])  # a newer tprm's store is not ours to rewrite
        report["db_state"] = db["state"]
        db_path = self.file.db_path
        if db["state"] != "ok" and db_path.exists():
            copy = self.file.root / f"{DB_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
            shutil.copy2(db_path, copy)
            report["damaged_copy"] = str(copy)
        if data is None:
            return {}
        report["source"] = "db"
        report["dropped"] = [p["text"] for p in db["problems"]]
        return clean_records(data, db["problems"])

    def _merge_backup(self, data: dict, report: dict) -> None:
        """Add the records only the newest valid backup still has."""
        backup = self.file.newest_valid_backup()
        if backup is None:
            return
        path, bdata = backup
        if report["source"] is None:
            report["source"] = f"backup {path.name}"
        bversion = schema_version(bdata)
        if bversion is not None and bversion < SCHEMA_VERSION:
            bdata = upgrade(bdata, bversion)
        for table, key in (("recipes", "name"), ("runs", "run_id"), ("jobs", "hash"),
                           ("results", "hash")):
            have = {r[key] for r in (data.get(table) or {}).values()}
            new = [r for r in (bdata.get(table) or {}).values() if r[key] not in have]
            if new:
                report["from_backup"][table] = len(new)
                insert_records(data, table, new)

    def _recipes_from_metadata(self, data: dict, report: dict) -> None:
        """Add recipes the db lacks from their metadata copies beside the artifacts."""
        have = {r["name"] for r in (data.get("recipes") or {}).values()}
        rdir = self.artifacts.dir / "recipes"
        new_recipes = []
        for p in sorted(rdir.glob("*.json")) if rdir.is_dir() else []:
            try:
                rec = json.loads(p.read_bytes())
            except (OSError, ValueError):
                continue
            if record_problem("recipes", rec) is None and rec["name"] not in have:
                have.add(rec["name"])
                new_recipes.append(rec)
        insert_records(data, "recipes", new_recipes)
        report["recipes_from_metadata"] = len(new_recipes)

    def _jobs_from_metadata(self, data: dict, report: dict) -> None:
        """Restore finished jobs (and their results) from their metadata files where the db has
        no intact finished record of them."""
        jobs = {r["hash"]: (k, r) for k, r in (data.get("jobs") or {}).items()}
        results = {r["hash"]: k for k, r in (data.get("results") or {}).items()}
        now, alive = time.time(), {}
        new_jobs: list[dict] = []
        new_results: list[dict] = []

        def put_result(h: str, values: dict) -> None:
            row = {"hash": h, "values": values, "updated": time.time()}
            if h in results:
                data["results"][results[h]] = row
            else:
                new_results.append(row)
            report["results_from_metadata"] += 1

        for p in self.artifacts.all_metas():
            meta = read_meta_file(p, p.name[:-len(META_SUFFIX)])
            if meta is None or meta.get("state") not in FINISHED:
                report["skipped_metadata"].append(f"{p}: unreadable or not a finished job")
                continue
            h = meta["hash"]
            here = jobs.get(h)
            here_state = None if here is None else self.leases.derive(here[1], now, alive)["state"]
            if here_state in FINISHED and here[1].get("artifacts") == meta.get("files") \
                    and isinstance(meta.get("result"), dict) and (
                        h not in results or data["results"][results[h]].get("values") != meta["result"]):
                put_result(h, meta["result"])  # same files as when the metadata was written
            if here_state == "running" or (here_state in FINISHED
                                           and not self.maint.artifact_problems(here[1], deep=True)):
                continue  # a live job, or a finished one whose files check out
            rec = self._job_from_meta(meta)
            problem = record_problem("jobs", rec)
            if problem is not None or self.maint.artifact_problems(rec, deep=True):
                report["skipped_metadata"].append(
                    f"{p}: {problem or 'its artifact files are missing or damaged'}")
                continue
            if here is not None:
                data["jobs"][here[0]] = {**here[1], **rec}
            else:
                new_jobs.append(rec)
            report["from_metadata"] += 1
            if isinstance(meta.get("result"), dict):
                put_result(h, meta["result"])
        insert_records(data, "jobs", new_jobs)
        insert_records(data, "results", new_results)

    @staticmethod
    def _job_from_meta(meta: dict) -> dict:
        """The job record a finished job's metadata file stands for."""
        return {"hash": meta["hash"], "kind": meta.get("kind"), "label": meta.get("label") or "",
                "deps": meta.get("deps") or [], "spec": {}, "recipes": meta.get("recipes") or [],
                "state": meta["state"], "owner": None, "lease_until": None,
                "attempts": meta.get("attempts") or 1, "error": meta.get("error"),
                "traceback": None, "provenance": meta.get("provenance"),
                "created": meta.get("created"), "started": meta.get("started"),
                "ended": meta.get("ended"), "artifacts": meta.get("files") or {},
                "restored": "metadata"}

    def _requeue_broken(self, data: dict, report: dict) -> None:
        """Finished jobs whose files are gone or damaged go back to the queue, results dropped."""
        bad = set()
        for job in (data.get("jobs") or {}).values():
            if job.get("state") in FINISHED:
                problems = self.maint.artifact_problems(job, deep=True)
                if problems:
                    job.update(state="queued", owner=None, lease_until=None,
                               error="re-queued by repair: " + "; ".join(
                                   f"{q['name']} {q['problem']}" for q in problems))
                    bad.add(job["hash"])
                    report["requeued"].append(job.get("label") or job["hash"])
        if bad and data.get("results"):
            data["results"] = {k: r for k, r in data["results"].items() if r["hash"] not in bad}
