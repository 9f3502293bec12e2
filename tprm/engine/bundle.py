"""The bundle format: one recipe, its jobs (with their dependencies), results and artifact files
in a .tar.gz/.tgz or .zip file, written by `tprm export` and merged by `tprm import`.

A bundle holds ``bundle.json`` first ({"format", "tprm_version", "schema_version", "exported",
"recipe", "jobs", "results"}), then ``artifacts/<hash[:2]>/<hash>.<name>.pt`` members. Nothing is
extracted to disk except the artifact files of jobs the import takes, each checked on arrival.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tprm import __version__
from tprm.engine.artifacts import ArtifactError, check_name, file_problem, parse_file_name, temp_path_for
from tprm.engine.records import record_problem
from tprm.engine.storebase import (
    JOB_STATES,
    SCHEMA_VERSION,
    StoreError,
    apply_changes,
    by_hash,
    check_hash,
    json_default,
    one_line,
)

if TYPE_CHECKING:
    from tinydb import TinyDB

    from tprm.engine.store import Store

BUNDLE_FORMAT = 1


def export_bundle(store: Store, recipe_name: str, out_path: Path | str) -> Path:
    """Write a bundle (.tar.gz/.tgz or .zip) of a recipe, its jobs (with deps), results and artifacts."""
    out = Path(out_path)
    kind = _bundle_kind(out)
    view = store.view()
    recipe = next((dict(d) for d in view.table("recipes").all() if d.get("name") == recipe_name),
                  None)
    if recipe is None:
        known = sorted(d.get("name", "") for d in view.table("recipes").all())
        raise StoreError(f"recipe {recipe_name!r}: not in store {store.root} "
                         f"(known: {', '.join(known) or 'none'})")
    jobs = {d["hash"]: dict(d) for d in view.table("jobs").all()}
    todo = [h for h, j in jobs.items() if recipe["hash"] in j.get("recipes", [])]
    chosen: dict[str, dict] = {}
    while todo:  # the recipe's jobs plus the jobs they depend on
        h = todo.pop()
        if h in chosen or h not in jobs:
            continue
        chosen[h] = jobs[h]
        todo.extend(jobs[h].get("deps", []))
    results = {d["hash"]: d.get("values", {}) for d in view.table("results").all()
               if d.get("hash") in chosen}
    for h in sorted(chosen):  # a bundle never silently lacks a finished job's file
        if chosen[h].get("state") in ("done", "diverged"):
            problems = store.artifact_problems(chosen[h], deep=True)
            if problems:
                p = problems[0]
                raise StoreError(
                    f"export: job {h[:12]} ({chosen[h].get('label') or chosen[h].get('kind')}): "
                    f"artifact {p['path']} {p['problem']}; nothing written; `tprm run "
                    f"{recipe_name}` recomputes it (`tprm store check` lists every problem)")
    bundle = {"format": BUNDLE_FORMAT, "tprm_version": __version__,
              "schema_version": SCHEMA_VERSION, "exported": time.time(), "recipe": recipe,
              "jobs": [chosen[h] for h in sorted(chosen)], "results": results}
    files = [(p, f"artifacts/{p.parent.name}/{p.name}")
             for h in sorted(chosen) for p in store.artifacts.files_of(h)]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    payload = json.dumps(bundle, indent=1, default=json_default).encode()
    try:
        if kind == "tar":
            with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
                info = tarfile.TarInfo("bundle.json")
                info.size, info.mtime = len(payload), int(time.time())
                tar.addfile(info, io.BytesIO(payload))
                for path, arc in files:
                    tar.add(path, arcname=arc, recursive=False)
        else:
            with zipfile.ZipFile(tmp, "w") as zf:
                zf.writestr("bundle.json", payload, compress_type=zipfile.ZIP_DEFLATED)
                for path, arc in files:
                    zf.write(path, arc, compress_type=zipfile.ZIP_STORED)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def import_bundle(store: Store, path: Path | str) -> dict:
    """Merge an exported bundle into this store; returns counts and a list of conflicts.

    Rules: a job done here is kept (a differing result in the bundle is a conflict); a job
    done in the bundle replaces a local queued/failed/cancelled/stale one, with its result and
    artifacts; a job running here under a live lease is left alone (conflict); jobs running in
    the bundle arrive as queued. A recipe already here under another hash is kept (conflict).
    """
    src = Path(path)
    with _open_bundle(src) as (bundle, members):
        recipe, jobs, results = _check_bundle(bundle, src)
        with store.transaction(backup=True) as db:
            merge = _Merge(store, db)
            merge.recipe(recipe)
            merge.jobs(jobs, results)
            merge.results(results)
            # Files go in place before the db write commits; if it fails they are harmless
            # (they belong to jobs that were not done here) and gc or a rerun replaces them.
            merge.files(members)
            metas = merge.record_files()
    for h, meta in metas.items():
        store.write_job_meta(h, meta)
    store.write_recipe_meta(recipe)
    return merge.counts


class _Merge:
    """One bundle import inside one store transaction: what it takes, restores and counts."""

    def __init__(self, store: Store, db: TinyDB):
        self.store, self.db, self.now = store, db, time.time()
        self.counts: dict[str, Any] = {
            "recipes_added": 0, "jobs_added": 0, "jobs_updated": 0, "jobs_kept": 0,
            "results_added": 0, "artifacts_copied": 0, "artifacts_restored": 0, "conflicts": []}
        self.jtable, self.restable = db.table("jobs"), db.table("results")
        self.local_jobs, self.local_results = by_hash(self.jtable), by_hash(self.restable)
        self.take: set[str] = set()               # jobs the bundle's record replaces or adds
        self.restore: dict[str, set[str]] = {}    # done in both, but files lost here: refill them
        self.bundle_jobs: dict[str, dict] = {}

    def recipe(self, recipe: dict) -> None:
        """Add the bundle's recipe unless one of that name is here (another hash: a conflict)."""
        rtable = self.db.table("recipes")
        local = next((d for d in rtable.all() if d.get("name") == recipe["name"]), None)
        if local is None:
            rtable.insert(recipe)
            self.counts["recipes_added"] = 1
        elif local.get("hash") != recipe["hash"]:
            self.counts["conflicts"].append(
                f"recipe {recipe['name']}: store has hash {local.get('hash')}, bundle "
                f"has {recipe['hash']}; kept the store's")

    def jobs(self, jobs: list[dict], results: dict) -> None:
        """Decide per bundle job: add, replace, keep (maybe refilling lost files) or conflict."""
        counts, alive = self.counts, {}
        inserts, changes = [], {}
        for job in jobs:
            h = job["hash"]
            self.bundle_jobs[h] = job
            if job.get("state") == "running":
                job.update(state="queued", owner=None, lease_until=None)
            here = self.local_jobs.get(h)
            if here is None:
                inserts.append(job)
                self.take.add(h)
                counts["jobs_added"] += 1
                continue
            recipes = list(dict.fromkeys([*here.get("recipes", []), *job.get("recipes", [])]))
            local_state = self.store.derive_job(here, self.now, alive)["state"]
            done = job.get("state") == "done"
            if done and local_state not in ("done", "running"):
                changes[h] = {**job, "recipes": recipes}
                self.take.add(h)
                counts["jobs_updated"] += 1
                continue
            if done and local_state == "running":
                counts["conflicts"].append(f"job {h} ({job.get('label', '')}): running here, "
                                           "bundle has it done; kept the running one")
            elif done and h in results and h in self.local_results \
                    and self.local_results[h].get("values") != results[h]:
                counts["conflicts"].append(f"job {h} ({job.get('label', '')}): done in both "
                                           "with different results; kept the store's")
            if done and local_state == "done":
                lost = {p["name"] for p in self.store.artifact_problems(here, deep=True)}
                if lost:
                    self.restore[h] = lost
            counts["jobs_kept"] += 1
            if recipes != here.get("recipes", []):
                changes[h] = {"recipes": recipes}
        apply_changes(self.jtable, self.local_jobs, changes)
        if inserts:
            self.jtable.insert_multiple(inserts)

    def results(self, results: dict) -> None:
        """Take the bundle's result rows of the jobs taken."""
        res_new, res_change = [], {}
        for h in sorted(self.take & set(results)):
            rec = {"hash": h, "values": results[h], "updated": self.now}
            if h in self.local_results:
                res_change[h] = rec
            else:
                res_new.append(rec)
            self.counts["results_added"] += 1
        apply_changes(self.restable, self.local_results, res_change)
        if res_new:
            self.restable.insert_multiple(res_new)

    def files(self, members: Iterator[tuple[str, IO[bytes]]]) -> None:
        """Install the artifact members of jobs taken or restored, each checked on arrival."""
        for arcname, fileobj in members:
            parsed = _artifact_member(arcname)
            if parsed is None or (parsed[0] not in self.take
                                  and parsed[1] not in self.restore.get(parsed[0], ())):
                continue
            path = self.store.artifacts.put_file(parsed[0], parsed[1], fileobj)
            want = (self.bundle_jobs[parsed[0]].get("artifacts") or {}).get(parsed[1])
            if parsed[0] in self.restore:
                want = self.store.expected_files(self.local_jobs[parsed[0]]).get(parsed[1]) or want
            problem = file_problem(path, want if isinstance(want, dict) else None)
            if problem:
                path.unlink(missing_ok=True)
                self.counts["conflicts"].append(f"bundle file {arcname}: {problem}; not installed")
            elif parsed[0] in self.restore:
                self.counts["artifacts_restored"] += 1
            else:
                self.counts["artifacts_copied"] += 1

    def record_files(self) -> dict[str, dict]:
        """Record the installed files of finished jobs (their checks passed); {hash: metadata}."""
        fill = {h: {"artifacts": self.store.artifacts.manifest(h)} for h in {*self.take, *self.restore}
                if (self.bundle_jobs[h] if h in self.take else self.local_jobs[h]).get("state")
                in ("done", "diverged")}
        apply_changes(self.jtable, by_hash(self.jtable), fill)
        res_now = {d["hash"]: d.get("values") for d in self.restable.all()}
        return {h: self.store.job_meta(d, res_now.get(h), self.db)
                for h, d in by_hash(self.jtable).items() if h in fill}


# -- bundles --------------------------------------------------------------------------------------
def _bundle_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        return "tar"
    if name.endswith(".zip"):
        return "zip"
    raise StoreError(f"{path}: bundle file name must end in .tar.gz, .tgz or .zip")


def _artifact_member(arcname: str) -> tuple[str, str] | None:
    """(hash, name) for a well-formed `artifacts/<hash[:2]>/<hash>.<name>.pt` member, else None."""
    m = re.fullmatch(r"artifacts/([0-9A-Za-z_-]{1,2})/([^/]+)", arcname)
    parsed = parse_file_name(m.group(2)) if m else None
    if parsed is None or parsed[0][:2] != m.group(1):
        return None
    try:
        check_name(parsed[1])
    except ArtifactError:
        return None
    return parsed


@contextmanager
def _open_bundle(path: Path) -> Iterator[tuple[dict, Iterator[tuple[str, IO[bytes]]]]]:
    """Yield (bundle JSON, iterator of (member name, binary stream)) without extracting anything."""
    kind = _bundle_kind(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such bundle file")
    try:
        if kind == "tar":
            with tarfile.open(path, "r:gz") as tar:
                first = tar.next()
                if first is None or first.name != "bundle.json" or not first.isfile():
                    raise StoreError(f"{path}: not a tprm bundle (bundle.json must come first)")
                bundle = _parse_bundle_json(tar.extractfile(first).read(), path)

                def tar_members() -> Iterator[tuple[str, IO[bytes]]]:
                    for member in tar:
                        fh = tar.extractfile(member) if member.isfile() else None
                        if fh is not None:
                            yield member.name, fh
                yield bundle, tar_members()
        else:
            with zipfile.ZipFile(path) as zf:
                try:
                    raw = zf.read("bundle.json")
                except KeyError:
                    raise StoreError(f"{path}: not a tprm bundle (no bundle.json)") from None
                bundle = _parse_bundle_json(raw, path)

                def zip_members() -> Iterator[tuple[str, IO[bytes]]]:
                    for info in zf.infolist():
                        if not info.is_dir():
                            with zf.open(info) as fh:
                                yield info.filename, fh
                yield bundle, zip_members()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise StoreError(f"{path}: unreadable bundle ({type(exc).__name__}: "
                         f"{one_line(exc)})") from None


def _parse_bundle_json(raw: bytes, path: Path) -> dict:
    try:
        bundle = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: bundle.json is not valid JSON (line "
                         f"{getattr(exc, 'lineno', 1)})") from None
    if not isinstance(bundle, dict):
        raise StoreError(f"{path}: bundle.json must be an object")
    return bundle


def _check_bundle(bundle: dict, path: Path) -> tuple[dict, list[dict], dict]:
    if bundle.get("format") != BUNDLE_FORMAT:
        raise StoreError(f"{path}: bundle format {bundle.get('format')!r} is not supported "
                         f"(this tprm reads {BUNDLE_FORMAT}); upgrade tprm")
    if not isinstance(bundle.get("schema_version"), int) or bundle["schema_version"] > SCHEMA_VERSION:
        raise StoreError(f"{path}: bundle schema version {bundle.get('schema_version')!r} is newer "
                         f"than this tprm understands ({SCHEMA_VERSION}); upgrade tprm")
    recipe, jobs, results = bundle.get("recipe"), bundle.get("jobs"), bundle.get("results")
    if not isinstance(recipe, dict) or not isinstance(recipe.get("name"), str) \
            or not isinstance(recipe.get("hash"), str):
        raise StoreError(f"{path}: bundle.json recipe must be an object with name and hash")
    if not isinstance(jobs, list) or not isinstance(results, dict):
        raise StoreError(f"{path}: bundle.json needs a jobs list and a results object")
    for i, job in enumerate(jobs):
        if not isinstance(job, dict):
            raise StoreError(f"{path}: bundle.json jobs[{i}] must be an object")
        check_hash(job.get("hash"), f"{path}: bundle.json jobs[{i}].hash")
        problem = record_problem("jobs", job)
        if problem and job.get("state") in JOB_STATES:
            raise StoreError(f"{path}: bundle.json jobs[{i}]: {problem}")
        if job.get("state") not in JOB_STATES:
            raise StoreError(f"{path}: bundle.json jobs[{i}].state {job.get('state')!r} must be one "
                             f"of {JOB_STATES}")
    for h, values in results.items():
        if not isinstance(values, dict):
            raise StoreError(f"{path}: bundle.json results[{h!r}] must be an object")
    return recipe, jobs, results
