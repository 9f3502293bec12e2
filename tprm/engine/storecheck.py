"""Store maintenance: the integrity of finished jobs' artifact files (expected, present, intact),
re-queueing jobs whose files broke, ``tprm store check`` (db and files cross-checked, read only),
``tprm store gc`` (unowned files to ``trash/``) and emptying the trash. Repair: storerepair.py."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tprm.engine.artifacts import (
    EXPECTED_FILES,
    HASH_RE,
    META_SUFFIX,
    TEMP_SUFFIX,
    ArtifactError,
    file_problem,
    parse_file_name,
    read_meta_file,
)
from tprm.engine.records import clean as clean_records
from tprm.engine.storebase import StoreError, StoreWarning, apply_changes, by_hash
from tprm.engine.storefile import REPAIR_HINT, StoreFile
from tprm.engine.storejobs import JobLeases

TEMP_MAX_AGE_S = 3600.0     # gc removes temp files older than this (younger ones may be in flight)
JOB_LOG_RE = re.compile(r"[0-9a-f]{8,128}")  # per-job log names are hex job hashes
TRASH_DIR = "trash"
GC_MAX_FRACTION = 0.10      # gc refuses (without --force) to remove more than this share of artifacts


class Maintenance:
    """Artifact integrity, check, gc and trash over one store's file and job table."""

    def __init__(self, file: StoreFile, leases: JobLeases):
        self.file = file
        self.leases = leases
        self.root = file.root
        self.artifacts = file.artifacts

    # -- artifact integrity ----------------------------------------------------------------------
    def expected_files(self, job: Mapping) -> dict[str, dict | None]:
        """{name: recorded {size, sha256} or None} a finished job must have on disk: the list
        recorded when it finished, else its metadata file's, else what its kind writes."""
        recorded = job.get("artifacts")
        if isinstance(recorded, dict):
            return dict(recorded)
        h = job.get("hash")
        meta = self.artifacts.read_meta(h) if isinstance(h, str) and HASH_RE.fullmatch(h) else None
        if meta and isinstance(meta.get("files"), dict):
            return dict(meta["files"])
        return {name: None for name in EXPECTED_FILES.get(str(job.get("kind")), ())}

    def artifact_problems(self, job: Mapping, deep: bool = True) -> list[dict]:
        """[{name, path, problem}] for a finished job's files that are missing or do not match
        their recorded size (and, with `deep`, checksum)."""
        out = []
        for name, want in self.expected_files(job).items():
            try:
                path = self.artifacts.path(job["hash"], name)
            except ArtifactError:
                continue
            problem = file_problem(path, want, deep=deep)
            if problem:
                out.append({"name": name, "path": str(path), "problem": problem})
        return out

    def requeue_broken(self, hashes: Iterable[str], deep: Iterable[str] = ()) -> list[dict]:
        """Re-queue done/diverged jobs among `hashes` whose artifact files are missing or damaged.

        Sizes are compared for all (a stat each); checksums for the jobs in `deep` (those whose
        files the coming work will read). Their result rows go too; the next run recomputes them.
        Returns [{hash, label, problems}] and warns once when there are any.
        """
        deep = set(deep)
        broken = {}
        for h, job in self.leases.get_jobs(hashes).items():
            if job.get("state") in ("done", "diverged"):
                problems = self.artifact_problems(job, deep=h in deep)
                if problems:
                    broken[h] = {"hash": h, "label": job.get("label"), "problems": problems}
        if not broken:
            return []
        with self.file.transaction() as db:
            jobs, results = db.table("jobs"), db.table("results")
            existing = by_hash(jobs)
            todo = {h: b for h, b in broken.items()
                    if h in existing and existing[h].get("state") in ("done", "diverged")}
            apply_changes(jobs, existing, {h: {
                "state": "queued", "owner": None, "lease_until": None,
                "error": "re-queued: " + "; ".join(f"{p['name']} {p['problem']}" for p in b["problems"]),
                "requeued": int(existing[h].get("requeued") or 0) + 1} for h, b in todo.items()})
            drop = [d.doc_id for d in results.all() if d.get("hash") in todo]
            if drop:
                results.remove(doc_ids=drop)
        out = [broken[h] for h in todo]
        if out:
            first = out[0]
            warnings.warn(StoreWarning(
                f"re-queued {len(out)} finished job(s) whose artifacts are missing or damaged "
                f"(first: {first['label'] or first['hash']}: {first['problems'][0]['name']} "
                f"{first['problems'][0]['problem']}); this run recomputes them"), stacklevel=2)
        return out

    # -- check -----------------------------------------------------------------------------------
    def check(self, deep: bool = True) -> dict:
        """Validate the db (schema, every record) and cross-check it with the files: artifacts of
        finished jobs missing or failing their size/checksum, files no job owns, finished jobs
        without a metadata file. Reads only; `ok` is True when nothing is wrong."""
        data, db = self.file.state()
        jobs = {}
        if data is not None:
            for rec in clean_records(data, db["problems"]).get("jobs", {}).values():
                jobs[rec["hash"]] = rec
        files, metas = self.artifacts.all_files(), self.artifacts.all_metas()
        missing, mismatch, no_meta = [], [], []
        finished = [j for j in jobs.values() if j.get("state") in ("done", "diverged")]
        for job in finished:
            for p in self.artifact_problems(job, deep=deep):
                row = {"job": job["hash"], "label": job.get("label"), **p}
                (missing if p["problem"] == "missing" else mismatch).append(row)
            if not self.artifacts.meta_path(job["hash"]).is_file():
                no_meta.append(job["hash"])
        index_ok = db["state"] == "ok" or (db["state"] in ("missing", "empty") and not files)
        orphaned = ([str(p) for p in files if parse_file_name(p)[0] not in jobs]
                    if index_ok else [])
        recoverable = sum(1 for p in metas if (m := read_meta_file(p)) and
                          m.get("state") in ("done", "diverged"))
        trash = self.root / TRASH_DIR
        report = {
            "store": str(self.root), "db": {k: v for k, v in db.items() if k != "problems"},
            "malformed": db["problems"],
            "jobs": {"total": len(jobs), "finished": len(finished)},
            "artifacts": {"files": len(files), "bytes": sum(p.stat().st_size for p in files
                                                            if p.exists()),
                          "metadata_files": len(metas), "recoverable_jobs": recoverable,
                          "missing": missing, "checksum_mismatch": mismatch, "orphaned": orphaned,
                          "no_metadata": no_meta, "temp": len(self.artifacts.temp_files()),
                          "checksums": "checked" if deep else "sizes only"},
            "backups": [str(p) for p in self.file.backups()],
            "trash_files": sum(1 for p in trash.rglob("*") if p.is_file()) if trash.is_dir() else 0,
        }
        _summarize(report, db, has_files=bool(files or metas))
        return report

    # -- gc and trash ----------------------------------------------------------------------------
    def gc(self, dry_run: bool = False, force: bool = False,
           max_fraction: float = GC_MAX_FRACTION) -> list[Path]:
        """Move to ``trash/`` the files no job in a *validating* db owns: artifact files, job
        metadata and per-job logs of jobs not in the store, and temp files older than an hour.

        Refuses (StoreError, nothing moved) when the db is missing, does not parse or holds a
        malformed record, and -- unless `force` -- when it would take more than `max_fraction` of
        the artifact files. Run logs are never touched. Returns what was (or would be) moved.
        """
        with self.file.locked():
            data, db = self.file.state()
            files = self.artifacts.all_files()
            if db["state"] in ("unreadable", "malformed") or (data is None and files):
                why = (f"{len(db['problems'])} malformed record(s), first: "
                       f"{db['problems'][0]['text']}" if db["problems"]
                       else db["error"] or f"no job index but {len(files)} artifact file(s)")
                raise StoreError(f"store gc: refusing to collect anything: {self.file.db_path} "
                                 f"does not validate ({why}); {REPAIR_HINT}")
            data = data or {}
            known = {d["hash"] for d in (data.get("jobs") or {}).values()}
            run_logs = {d.get("log") for d in (data.get("runs") or {}).values()}
            doomed_art = [p for p in files if parse_file_name(p)[0] not in known]
            if files and len(doomed_art) > max_fraction * len(files) and not force:
                raise StoreError(
                    f"store gc: refusing to collect {len(doomed_art)} of {len(files)} artifact "
                    f"files (more than {max_fraction:.0%}); check with `tprm store check`, then "
                    "use --force if that is really what you want")
            doomed = doomed_art + [p for p in self.artifacts.all_metas()
                                   if p.name[:-len(META_SUFFIX)] not in known]
            if self.artifacts.logs_dir.is_dir():
                doomed += [p for p in sorted(self.artifacts.logs_dir.glob("*.log"))
                           if JOB_LOG_RE.fullmatch(p.stem) and p.stem not in known
                           and str(p) not in run_logs]
            doomed += self._old_temp_files()
            if not dry_run and doomed:
                self._to_trash(doomed)
        return doomed

    def _old_temp_files(self) -> list[Path]:
        """Temp files older than TEMP_MAX_AGE_S (younger ones may belong to a write in flight)."""
        cutoff, out = time.time() - TEMP_MAX_AGE_S, []
        for p in self.artifacts.temp_files() + sorted(self.root.glob(f".*{TEMP_SUFFIX}")):
            try:
                if p.stat().st_mtime < cutoff:
                    out.append(p)
            except FileNotFoundError:
                continue
        return out

    def _to_trash(self, doomed: list[Path]) -> None:
        """Move files into a fresh ``trash/<time>-<random>/`` folder, keeping their store paths."""
        trash = self.root / TRASH_DIR / (time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2))
        for p in doomed:
            target = trash / p.relative_to(self.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(p, target)
            except FileNotFoundError:
                continue
            if p.parent.parent == self.artifacts.dir:
                try:
                    p.parent.rmdir()  # only succeeds once the shard directory is empty
                except OSError:
                    pass

    def purge_trash(self, dry_run: bool = False) -> int:
        """Delete what gc moved to ``trash/``; returns how many files (would) go."""
        trash = self.root / TRASH_DIR
        if not trash.is_dir():
            return 0
        n = sum(1 for p in trash.rglob("*") if p.is_file() or p.is_symlink())
        if not dry_run:
            shutil.rmtree(trash, ignore_errors=True)
        return n


def _summarize(report: dict[str, Any], db: dict, has_files: bool) -> None:
    """Set a check report's `ok` and one-line `summary` (with what to do about it)."""
    problems = []
    if db["state"] in ("unreadable", "malformed") or (db["state"] in ("missing", "empty")
                                                      and has_files):
        problems.append(f"db {db['state']}" + (f" ({len(db['problems'])} malformed record(s))"
                                               if db["problems"] else ""))
    art = report["artifacts"]
    for key in ("missing", "checksum_mismatch", "orphaned", "no_metadata"):
        n = len(art[key])
        if n:
            problems.append(f"{n} {key.replace('_', ' ')}")
    report["ok"] = not problems
    report["summary"] = (
        f"{'ok' if not problems else 'PROBLEMS (' + ', '.join(problems) + ')'}: db {db['state']}, "
        f"{report['jobs']['total']} job(s) ({report['jobs']['finished']} finished), "
        f"{art['files']} artifact file(s), {art['metadata_files']} job metadata file(s), "
        f"{len(report['backups'])} backup(s)")
    if not problems:
        pass
    elif db["state"] != "ok":
        report["summary"] += (f"; `tprm store repair` can rebuild {art['recoverable_jobs']} "
                              "finished job(s) from their metadata")
    elif art["missing"] or art["checksum_mismatch"]:
        report["summary"] += "; the next `tprm run` recomputes the jobs with bad artifacts"
