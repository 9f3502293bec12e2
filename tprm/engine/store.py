"""The experiment store: one TinyDB JSON file behind one file lock; the only module that opens the db.

Why not plain TinyDB: its JSONStorage is not multi-process safe (two writers corrupt the file, and
CachingMiddleware silently drops another process's writes). So here

* every write is a *transaction*: take ``root/tprm.lock`` (filelock), read the current file, apply the
  change through a fresh TinyDB over that in-memory copy, and write the result ONCE to a temp file
  in the same directory, fsync, ``os.replace`` -- readers never see half a file;
* plain reads skip the lock (the atomic replace makes that safe) and tolerate a missing file;
* a file that does not parse raises StoreError naming the file and line, and is never overwritten.

Tables (small records only; checkpoints and curves are artifact files, see ``artifacts.py``):

* ``meta``: schema_version, created, tprm_version
* ``recipes``: name, hash, path, yaml, added, updated
* ``runs``: run_id, recipe_name, recipe_hash, state (running/done/failed/cancelled), pid, host, log,
  started, ended, heartbeat, cancel_requested (+ whatever small fields update_run sets, e.g. counts)
* ``jobs``: hash, kind, label, deps, spec, recipes (hashes of recipes that added it), state, owner
  {pid, host, run_id}, lease_until, attempts, error (one line), traceback, provenance, created,
  started, ended
* ``results``: hash, values (the job's scalar result dict), updated

Times are unix seconds. Job states stored: queued, running, done, failed, diverged, cancelled;
"stale" is derived on read for a running job whose lease expired or whose owner process is gone from
this host (and for a running run whose process is gone or whose heartbeat is old).

Safety (see docs/store.md): every record is checked on read (``records.py``); readers skip a
malformed one with a warning, writers refuse a file that holds one. The last BACKUP_KEEP versions
of the db are kept, gzipped, in ``backups/``. Each finished job's folder holds its metadata
(``<hash>.job.json``: kind, recipes, result, provenance, file sizes and checksums), from which
``repair`` rebuilds the index; ``check`` cross-checks db and files; ``gc`` moves files to
``trash/`` and refuses on a db that does not validate or when it would take too much.

Store location (``default_store_dir``): an explicit path (``--store``), else ``$TPRM_HOME``, else
``$XDG_DATA_HOME/tprm``, else ``~/.local/share/tprm``.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import secrets
import shutil
import socket
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock
from tinydb import TinyDB
from tinydb.storages import Storage

from tprm import __version__
from tprm.engine.artifacts import (
    EXPECTED_FILES,
    HASH_RE,
    META_SUFFIX,
    TEMP_SUFFIX,
    ArtifactError,
    Artifacts,
    atomic_write,
    file_problem,
    parse_file_name,
    read_meta_file,
)
from tprm.engine.records import clean as _clean_records
from tprm.engine.records import describe as _describe
from tprm.engine.records import record_problem, table_problems
from tprm.engine.storebase import (
    RUN_STATES,
    SCHEMA_VERSION,
    StoreError,
    StoreWarning,
    apply_changes,
    by_hash,
    check_hash,
    json_default,
    one_line,
    pid_alive,
)

DB_NAME = "tprm.db.json"
LOCK_NAME = "tprm.lock"
TABLES = ("meta", "recipes", "runs", "jobs", "results")
FINISH_STATES = ("done", "failed", "diverged", "cancelled")
RELEASE_STATES = ("queued", "cancelled")
LOCK_TIMEOUT_S = 60.0       # how long a write waits for another process's transaction
LOCK_POLL_S = 0.002         # retry interval while waiting; short, or a busy writer starves the others
RUN_STALE_AFTER_S = 120.0   # a running run whose heartbeat is older than this is shown as stale
TEMP_MAX_AGE_S = 3600.0     # gc removes temp files older than this (younger ones may be in flight)
JOB_LOG_RE = re.compile(r"[0-9a-f]{8,128}")  # per-job log names are hex job hashes
BACKUP_DIR = "backups"
BACKUP_KEEP = 5             # db versions kept in backups/ (gzipped)
BACKUP_EVERY_S = 60.0       # at most one backup per this many seconds (a finished run always gets one)
TRASH_DIR = "trash"
GC_MAX_FRACTION = 0.10      # gc refuses (without --force) to remove more than this share of artifacts
REPAIR_HINT = ("run `tprm store check` to see what is wrong and `tprm store repair` to rebuild it "
               "from the artifact files or the newest backup")


def default_store_dir(explicit: Path | str | None = None) -> Path:
    """The store directory: `explicit` (--store), else $TPRM_HOME, else $XDG_DATA_HOME/tprm (when
    absolute), else ~/.local/share/tprm. Nothing is created here; Store(root) creates the directory."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    home = os.environ.get("TPRM_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says relative values are to be ignored
        return Path(xdg) / "tprm"
    return Path.home() / ".local" / "share" / "tprm"


def make_owner(run_id: str | None = None) -> dict:
    """The owner record of this process: {pid, host, run_id}."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id}


# -- helpers --------------------------------------------------------------------------------------
def _jsonable(value: Any, what: str) -> Any:
    """`value` as plain JSON data (numpy/torch scalars converted); StoreError naming `what` otherwise."""
    try:
        return json.loads(json.dumps(value, default=json_default))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what}: {exc}; only JSON values (dict, list, str, number, bool, null) "
                         "can be stored") from None


def _check_owner(owner: Any) -> dict:
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


def _schema_version(data: dict) -> int | None:
    """Stored schema version; 1 for an old store without one; None for a new (empty) store."""
    for rec in (data.get("meta") or {}).values():
        if isinstance(rec, Mapping) and "schema_version" in rec:
            try:
                return int(rec["schema_version"])
            except (TypeError, ValueError):
                raise StoreError(f"meta.schema_version: {rec['schema_version']!r} is not an "
                                 f"integer; {REPAIR_HINT}") from None
    return 1 if any(data.get(t) for t in TABLES) else None


def _new_meta() -> dict:
    return {"schema_version": SCHEMA_VERSION, "created": time.time(), "tprm_version": __version__}


def _v1_to_v2(data: dict) -> dict:
    """v1 stored finished jobs as state "finished" and had no `attempts` counter or schema version."""
    for job in (data.get("jobs") or {}).values():
        if not isinstance(job, dict):
            continue  # malformed: left for the record check to report
        if job.get("state") == "finished":
            job["state"] = "done"
        job.setdefault("attempts", 0)
    meta = data.setdefault("meta", {})
    rec: dict[str, Any] | None = next((r for r in meta.values() if isinstance(r, dict)), None)
    if rec is None:
        rec = {"created": time.time()}
        meta["1"] = rec
    rec.update(schema_version=2, tprm_version=__version__, migrated_from=1)
    return data


_MIGRATIONS = {1: _v1_to_v2}  # version v -> function upgrading v to v + 1


def _upgrade(data: dict | None, version: int | None) -> dict:
    data = data or {}
    for v in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
        data = _MIGRATIONS[v](data)
    return data


def _insert(data: dict, table: str, records: list[dict]) -> None:
    """Add records to a raw table ({doc id: record}) under new numeric ids."""
    if not records:
        return
    tab = data.setdefault(table, {})
    next_id = max((int(k) for k in tab if str(k).isdigit()), default=0) + 1
    for i, rec in enumerate(records):
        tab[str(next_id + i)] = rec


class _MemoryStorage(Storage):
    """TinyDB storage over one in-memory copy of the file; the Store writes it back once."""

    def __init__(self, data: dict, read_only: bool = False):
        self.data, self.read_only, self.dirty = data, read_only, False

    def read(self) -> dict:
        return self.data

    def write(self, data: dict) -> None:
        if self.read_only:
            raise StoreError("internal error: write through a read-only store view")
        self.data, self.dirty = data, True


# -- the store ------------------------------------------------------------------------------------
class Store:
    """All persistent state of tprm under one directory; every public write is one atomic transaction."""

    def __init__(self, root: Path | str, *, lock_timeout: float = LOCK_TIMEOUT_S,
                 run_stale_after: float = RUN_STALE_AFTER_S):
        self.root = Path(root).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: store path exists and is not a directory")
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / DB_NAME
        self.lock_path = self.root / LOCK_NAME
        self.lock_timeout = lock_timeout
        self.run_stale_after = run_stale_after
        self._lock = filelock.FileLock(self.lock_path, timeout=lock_timeout,
                                       poll_interval=LOCK_POLL_S)
        self.artifacts = Artifacts(self.root)
        self.host = socket.gethostname()
        self._cache_key: tuple | None = None
        self._cache: dict = {}
        self._force_backup = False

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- file level ------------------------------------------------------------------------------
    def _read_data(self) -> dict | None:
        """Parsed file contents, None if there is no file yet; StoreError if it does not parse."""
        try:
            raw = self.db_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{self.db_path}: cannot read store ({exc.strerror})") from None
        if not raw.strip():
            return None
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            line = getattr(exc, "lineno", 1)
            raise StoreError(f"{self.db_path}: not a valid tprm store (JSON error at line {line}); "
                             f"nothing was changed; {REPAIR_HINT}") from None
        if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
            raise StoreError(f"{self.db_path}: not a valid tprm store (expected a JSON object of "
                             f"tables of records); nothing was changed; {REPAIR_HINT}")
        return data

    def _write_data(self, data: dict, backup: bool = False) -> None:
        try:
            text = json.dumps(data, separators=(",", ":"), default=json_default)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{self.db_path}: refusing to write a non-JSON value ({exc})") from None
        problems = table_problems(data)
        if problems:  # a bug or a bad bundle: never let it reach the file
            raise StoreError(f"{self.db_path}: refusing to write a malformed record "
                             f"({_describe(problems[0])}); nothing was changed; {REPAIR_HINT}")
        raw = text.encode("utf-8")
        atomic_write(self.db_path, lambda fh: fh.write(raw))
        self._backup(raw, force=backup)

    # -- backups ---------------------------------------------------------------------------------
    @property
    def backup_dir(self) -> Path:
        return self.root / BACKUP_DIR

    def backups(self) -> list[Path]:
        """Backup files, newest first."""
        if not self.backup_dir.is_dir():
            return []
        return sorted(self.backup_dir.glob("tprm.db.*.json.gz"), reverse=True)

    def _backup(self, raw: bytes, force: bool = False) -> Path | None:
        """Keep `raw` (a db version that validated) as a gzipped backup; rotate to BACKUP_KEEP.

        At most one per BACKUP_EVERY_S unless `force`; a failure to back up never fails a write.
        """
        try:
            existing = self.backups()
            if existing and not force and time.time() - existing[0].stat().st_mtime < BACKUP_EVERY_S:
                return None
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{time.time_ns() % 10**9:09d}"
            target = self.backup_dir / f"tprm.db.{stamp}.json.gz"
            atomic_write(target, lambda fh: fh.write(gzip.compress(raw, compresslevel=6, mtime=0)))
            for old in self.backups()[BACKUP_KEEP:]:
                old.unlink(missing_ok=True)
            return target
        except OSError:
            return None

    def newest_valid_backup(self) -> tuple[Path, dict] | None:
        """(path, data) of the newest backup that parses and validates, or None."""
        for path in self.backups():
            try:
                data = json.loads(gzip.decompress(path.read_bytes()))
            except (OSError, ValueError, EOFError, gzip.BadGzipFile):
                continue
            if isinstance(data, dict) and all(isinstance(t, dict) for t in data.values()) \
                    and not table_problems(data):
                return path, data
        return None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise StoreError(f"{self.lock_path}: another process held the store lock for more than "
                             f"{self.lock_timeout:g} s; retry, or check for a hung tprm process"
                             ) from None
        try:
            yield
        finally:
            self._lock.release()

    def _snapshot(self) -> dict:
        """Current data for reading (no lock); an older schema is upgraded in memory only.

        Writes replace the file atomically, so an unchanged (inode, mtime, size) means unchanged
        contents: polls of an idle store parse nothing. Callers must not mutate the result.
        """
        try:
            st = self.db_path.stat()
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        if key is not None and key == self._cache_key:
            return self._cache
        data = self._read_data()
        if data is None and self._orphan_metadata():
            warnings.warn(StoreWarning(
                f"{self.db_path}: missing or empty, but the store holds finished jobs' files; "
                "run `tprm store repair` to rebuild the index from them (`tprm store check` "
                "tells more)"), stacklevel=3)
        data = data or {}
        version = _schema_version(data)
        if version is not None and version > SCHEMA_VERSION:
            raise self._newer_error(version)
        if version is not None and version < SCHEMA_VERSION:
            data = _upgrade(data, version)
        problems = table_problems(data)
        if problems:  # readers skip malformed records, once warned
            data = _clean_records(data, problems)
            warnings.warn(StoreWarning(
                f"{self.db_path}: skipped {len(problems)} malformed record(s) (first: "
                f"{_describe(problems[0])}); {REPAIR_HINT}"), stacklevel=3)
        self._cache_key, self._cache = key, data
        return data

    def _orphan_metadata(self) -> bool:
        """True when job metadata files exist (checked only when there is no db)."""
        return self.artifacts.dir.is_dir() and next(
            iter(self.artifacts.dir.glob(f"*/*{META_SUFFIX}")), None) is not None

    def _view(self) -> TinyDB:
        return TinyDB(storage=_MemoryStorage, data=self._snapshot(), read_only=True)

    def _newer_error(self, version: int) -> StoreError:
        return StoreError(f"{self.db_path}: store schema version {version} is newer than this tprm "
                          f"understands ({SCHEMA_VERSION}); upgrade tprm")

    @contextmanager
    def _transaction(self) -> Iterator[TinyDB]:
        """Lock, read, yield a TinyDB over the data, and write it back once if anything changed."""
        with self._locked():
            data = self._read_data()
            if data is None and self._orphan_metadata():
                raise StoreError(f"{self.db_path}: missing or empty, but the store holds finished "
                                 "jobs' files; nothing was changed; run `tprm store repair` to "
                                 "rebuild the index from them (`tprm store check` tells more)")
            data = data or {}
            version = _schema_version(data)
            problems = table_problems(data if version in (None, SCHEMA_VERSION) or version >
                                      SCHEMA_VERSION else _upgrade(json.loads(json.dumps(data)),
                                                                   version))
            if problems:
                raise StoreError(f"{self.db_path}: not a valid tprm store ({len(problems)} malformed "
                                 f"record(s), first: {_describe(problems[0])}); nothing was changed; "
                                 f"{REPAIR_HINT}")
            if version is None:
                data = {"meta": {"1": _new_meta()}}
            elif version > SCHEMA_VERSION:
                raise self._newer_error(version)
            elif version < SCHEMA_VERSION:
                raise StoreError(f"{self.db_path}: store schema version {version} is older than "
                                 f"{SCHEMA_VERSION}; run `tprm store migrate` before writing to it")
            storage = _MemoryStorage(data)
            yield TinyDB(storage=lambda: storage)
            if storage.dirty:
                self._write_data(storage.data, backup=self._force_backup)
                self._force_backup = False

    # -- meta / migration ------------------------------------------------------------------------
    def meta(self) -> dict:
        """{schema_version, created, tprm_version, ...} of the file as stored ({} for a new store)."""
        data = self._read_data() or {}
        version = _schema_version(data)
        rec = next(iter((data.get("meta") or {}).values()), {})
        return {**rec, "schema_version": version} if version is not None else {}

    def migrate(self) -> tuple[int, int]:
        """Upgrade an older store file in place (a copy is kept as tprm.db.json.v<N>.bak).

        Returns (from_version, to_version); equal when nothing had to be done.
        """
        with self._locked():
            data = self._read_data()
            version = _schema_version(data or {})
            if version is None or version == SCHEMA_VERSION:
                return (version or SCHEMA_VERSION, SCHEMA_VERSION)
            if version > SCHEMA_VERSION:
                raise self._newer_error(version)
            backup = self.root / f"{DB_NAME}.v{version}.bak"
            if backup.exists():
                backup = backup.with_name(f"{backup.name}.{int(time.time())}")
            shutil.copy2(self.db_path, backup)
            self._write_data(_upgrade(data, version))
            return (version, SCHEMA_VERSION)

    # -- recipes ---------------------------------------------------------------------------------
    def put_recipe(self, name: str, hash: str, path: Path | str | None, text: str) -> dict:
        """Record (or update) a recipe by name: its content hash, source path and YAML text."""
        if not isinstance(name, str) or not name:
            raise StoreError(f"recipe name: {name!r} must be a non-empty string")
        if not isinstance(hash, str) or not hash:
            raise StoreError(f"recipe {name}: hash {hash!r} must be a non-empty string")
        now = time.time()
        rec = {"name": name, "hash": hash, "path": None if path is None else str(path),
               "yaml": str(text), "updated": now}
        with self._transaction() as db:
            table = db.table("recipes")
            old = next((d for d in table.all() if d.get("name") == name), None)
            if old is None:
                table.insert({**rec, "added": now})
            else:
                table.update(rec, doc_ids=[old.doc_id])
                rec = {**old, **rec}
        rec = {**rec, "added": rec.get("added", now)}
        self._write_recipe_meta(rec)
        return rec

    def _recipe_meta_path(self, recipe_hash: str | None) -> Path | None:
        if not isinstance(recipe_hash, str) or not HASH_RE.fullmatch(recipe_hash):
            return None
        return self.artifacts.dir / "recipes" / f"{recipe_hash}.json"

    def _write_recipe_meta(self, rec: Mapping) -> None:
        """Keep the recipe's record (name, hash, path, yaml) beside the artifacts, for repair."""
        path = self._recipe_meta_path(rec.get("hash"))
        if path is not None and not path.exists():
            text = json.dumps(dict(rec), indent=1, default=str)
            try:
                atomic_write(path, lambda fh: fh.write(text.encode()))
            except OSError:
                pass

    def get_recipe(self, name: str) -> dict | None:
        return next((dict(d) for d in self._view().table("recipes").all() if d.get("name") == name),
                    None)

    def list_recipes(self) -> list[dict]:
        return sorted((dict(d) for d in self._view().table("recipes").all()),
                      key=lambda r: r.get("name", ""))

    # -- jobs ------------------------------------------------------------------------------------
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
            deps = list(deps)
            for d in deps:
                check_hash(d, f"job {h}: deps")
            if h not in incoming:
                incoming[h] = {"hash": h, "kind": kind, "label": str(job.get("label") or ""),
                               "deps": deps, "spec": _jsonable(job.get("spec") or {}, f"job {h}: spec"),
                               "recipes": [recipe_hash], "state": "queued", "owner": None,
                               "lease_until": None, "attempts": 0, "error": None, "traceback": None,
                               "provenance": None, "created": now, "started": None, "ended": None}
        with self._transaction() as db:
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

    def _derive(self, job: dict, now: float, alive: dict) -> dict:
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
        for doc in self._view().table("jobs").all():
            h = doc.get("hash")
            if wanted is not None and h not in wanted:
                continue
            if recipe_hash is not None and recipe_hash not in doc.get("recipes", []):
                continue
            out[h] = self._derive(doc, now, alive)
        return out

    def claim(self, hashes: Iterable[str], owner: Mapping, lease_s: float = 60.0, *,
              retry_failed: bool = False) -> list[str]:
        """Atomically take the claimable jobs among `hashes`; returns those claimed (input order).

        Claimable: queued, cancelled or stale (plus failed and diverged with retry_failed=True).
        A claimed job is running, owned by `owner`, leased until now + lease_s, attempts += 1.
        """
        own = _check_owner(owner)
        lease_s = _check_lease(lease_s)
        ok_states = {"queued", "cancelled", "stale"} | ({"failed", "diverged"} if retry_failed else set())
        order = list(dict.fromkeys(hashes))
        with self._transaction() as db:
            table = db.table("jobs")
            now, alive = time.time(), {}
            existing = by_hash(table)
            claimed, changes = [], {}
            for h in order:
                doc = existing.get(h)
                if doc is None or self._derive(doc, now, alive)["state"] not in ok_states:
                    continue
                claimed.append(h)
                changes[h] = {"state": "running", "owner": own, "lease_until": now + lease_s,
                              "attempts": int(doc.get("attempts") or 0) + 1, "started": now,
                              "ended": None, "error": None, "traceback": None}
            apply_changes(table, existing, changes)
        return claimed

    def heartbeat(self, hashes: Iterable[str], owner: Mapping, lease_s: float = 60.0) -> list[str]:
        """Renew the leases of the jobs `owner` still holds (and its run's heartbeat); returns those."""
        own = _check_owner(owner)
        lease_s = _check_lease(lease_s)
        wanted_order = list(hashes)
        wanted = set(wanted_order)
        with self._transaction() as db:
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
        prepared = []
        for i, item in enumerate(items):
            unknown = set(item) - {"hash", "owner", "state", "result", "error", "traceback",
                                   "provenance"}
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
            prepared.append((h, _check_owner(item.get("owner")), state,
                             self.artifacts.manifest(h) if state in ("done", "diverged") else None,
                             None if result is None else _jsonable(dict(result), f"job {h}: result"),
                             one_line(item.get("error")),
                             None if item.get("traceback") is None else str(item["traceback"]),
                             _jsonable(item.get("provenance"), f"job {h}: provenance")))
        with self._transaction() as db:
            now = time.time()
            jobs, results = db.table("jobs"), db.table("results")
            existing = by_hash(jobs)
            old_results = by_hash(results)
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
                    metas[h] = self._job_meta({**doc, **job_changes[h]}, result, db)
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
        for h, meta in metas.items():  # after the commit: metadata never claims an unrecorded job
            self._write_job_meta(h, meta)
        return out

    def _job_meta(self, job: Mapping, result: Any, db: TinyDB) -> dict:
        """What a finished job's folder records about it (enough to rebuild its index records)."""
        names = sorted({r.get("name") for r in db.table("recipes").all()
                        if r.get("hash") in (job.get("recipes") or [])} - {None})
        keep = ("hash", "kind", "label", "deps", "recipes", "state", "attempts", "error",
                "provenance", "created", "started", "ended")
        meta = {k: job.get(k) for k in keep}
        meta.update(recipe_names=names, result=result, files=job.get("artifacts") or {})
        return _jsonable(meta, f"job {job.get('hash')}: metadata")

    def _write_job_meta(self, job_hash: str, meta: dict) -> None:
        try:
            self.artifacts.write_meta(job_hash, meta)
        except OSError as exc:  # the db has the record; `tprm store check` reports the gap
            warnings.warn(StoreWarning(f"job {job_hash}: could not write its metadata file "
                                       f"({exc.strerror})"), stacklevel=3)

    def release(self, hashes: Iterable[str], owner: Mapping, state: str = "queued") -> list[str]:
        """Give back jobs `owner` still holds, as `state` (queued or cancelled); returns those released."""
        own = _check_owner(owner)
        if state not in RELEASE_STATES:
            raise StoreError(f"release state {state!r} must be one of {RELEASE_STATES}")
        order = list(dict.fromkeys(hashes))
        with self._transaction() as db:
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
        return {d["hash"]: d.get("values", {}) for d in self._view().table("results").all()
                if wanted is None or d.get("hash") in wanted}

    # -- runs ------------------------------------------------------------------------------------
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
        with self._transaction() as db:
            db.table("runs").insert(rec)
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> dict:
        """Set fields of a run (state, ended, heartbeat, counts, ...); a final state fills `ended`."""
        if "run_id" in fields:
            raise StoreError(f"run {run_id}: run_id cannot be changed")
        if "state" in fields and fields["state"] not in RUN_STATES:
            raise StoreError(f"run {run_id}: state {fields['state']!r} must be one of {RUN_STATES}")
        fields = _jsonable(fields, f"run {run_id}")
        if fields.get("state") in ("done", "failed", "cancelled") and fields.get("ended") is None:
            fields["ended"] = time.time()
        self._force_backup = fields.get("state") in ("done", "failed", "cancelled")
        with self._transaction() as db:
            runs = db.table("runs")
            doc = next((d for d in runs.all() if d.get("run_id") == run_id), None)
            if doc is None:
                raise StoreError(f"run {run_id!r}: no such run in {self.db_path}")
            runs.update(fields, doc_ids=[doc.doc_id])
        return {**doc, **fields}

    def get_runs(self, recipe_name: str | None = None) -> list[dict]:
        """Runs oldest first; a running run whose process is gone or heartbeat is old reads "stale"."""
        now, out = time.time(), []
        for doc in self._view().table("runs").all():
            if recipe_name is not None and doc.get("recipe_name") != recipe_name:
                continue
            run = dict(doc)
            if run.get("state") == "running":
                dead = run.get("host") == self.host and not pid_alive(run.get("pid"))
                old = (run.get("heartbeat") or 0) < now - self.run_stale_after
                if dead or old:
                    run["state"] = "stale"
            out.append(run)
        return sorted(out, key=lambda r: (r.get("started") or 0, r.get("run_id", "")))

    def request_cancel(self, recipe_name: str) -> int:
        """Ask every running run of a recipe to stop; returns how many were asked."""
        with self._transaction() as db:
            runs = db.table("runs")
            ids = [d.doc_id for d in runs.all() if d.get("recipe_name") == recipe_name
                   and d.get("state") == "running" and not d.get("cancel_requested")]
            if ids:
                runs.update({"cancel_requested": True, "cancel_requested_at": time.time()},
                            doc_ids=ids)
        return len(ids)

    def cancel_requested(self, run_id: str) -> bool:
        return any(d.get("run_id") == run_id and d.get("cancel_requested")
                   for d in self._view().table("runs").all())

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
        for h, job in self.get_jobs(hashes).items():
            if job.get("state") in ("done", "diverged"):
                problems = self.artifact_problems(job, deep=h in deep)
                if problems:
                    broken[h] = {"hash": h, "label": job.get("label"), "problems": problems}
        if not broken:
            return []
        with self._transaction() as db:
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

    # -- check / repair --------------------------------------------------------------------------
    def _db_state(self) -> tuple[dict | None, dict]:
        """(data or None, {state, error, problems}) without raising: state is ok, empty,
        missing, unreadable (does not parse) or malformed (records do not validate)."""
        info: dict[str, Any] = {"path": str(self.db_path), "state": "ok", "error": None,
                                "problems": []}
        if not self.db_path.exists():
            info["state"] = "missing"
            return None, info
        try:
            data = self._read_data()
        except StoreError as exc:
            info.update(state="unreadable", error=str(exc))
            return None, info
        if data is None:
            info["state"] = "empty"
            return None, info
        try:
            version = info["schema_version"] = _schema_version(data)
        except StoreError as exc:
            info.update(state="malformed", error=str(exc))
            version = None
            for rec in (data.get("meta") or {}).values():
                if isinstance(rec, dict):
                    rec.pop("schema_version", None)
        if version is not None and version > SCHEMA_VERSION:
            info.update(state="unreadable", error=str(self._newer_error(version)), newer=True)
            return None, info
        if version is not None and version < SCHEMA_VERSION:
            data = _upgrade(data, version)
        info["problems"] = [dict(p, text=_describe(p)) for p in table_problems(data)]
        if info["problems"]:
            info["state"] = "malformed"
        return data, info

    def check(self, deep: bool = True) -> dict:
        """Validate the db (schema, every record) and cross-check it with the files: artifacts of
        finished jobs missing or failing their size/checksum, files no job owns, finished jobs
        without a metadata file. Reads only; `ok` is True when nothing is wrong."""
        data, db = self._db_state()
        jobs = {}
        if data is not None:
            for rec in _clean_records(data, db["problems"]).get("jobs", {}).values():
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
            "backups": [str(p) for p in self.backups()],
            "trash_files": sum(1 for p in trash.rglob("*") if p.is_file()) if trash.is_dir() else 0,
        }
        problems = []
        if db["state"] in ("unreadable", "malformed") or (db["state"] in ("missing", "empty")
                                                          and (files or metas)):
            problems.append(f"db {db['state']}" + (f" ({len(db['problems'])} malformed record(s))"
                                                   if db["problems"] else ""))
        for key in ("missing", "checksum_mismatch", "orphaned", "no_metadata"):
            n = len(report["artifacts"][key])
            if n:
                problems.append(f"{n} {key.replace('_', ' ')}")
        report["ok"] = not problems
        report["summary"] = (
            f"{'ok' if not problems else 'PROBLEMS (' + ', '.join(problems) + ')'}: db {db['state']}, "
            f"{len(jobs)} job(s) ({len(finished)} finished), {len(files)} artifact file(s), "
            f"{len(metas)} job metadata file(s), {len(report['backups'])} backup(s)")
        if not problems:
            pass
        elif db["state"] != "ok":
            report["summary"] += (f"; `tprm store repair` can rebuild {recoverable} finished job(s) "
                                  "from their metadata")
        elif missing or mismatch:
            report["summary"] += "; the next `tprm run` recomputes the jobs with bad artifacts"
        return report

    def repair(self) -> dict:
        """Rebuild the index: keep the db's well-formed records (or, when it does not parse, take
        the newest valid backup), add records only a backup still has, then restore every finished
        job whose artifacts are intact from its metadata file, and re-queue finished jobs whose
        artifacts are not. A damaged db is kept as ``tprm.db.json.damaged-<time>``."""
        report: dict[str, Any] = {"store": str(self.root), "source": None, "damaged_copy": None,
                                  "dropped": [], "from_backup": {}, "from_metadata": 0,
                                  "results_from_metadata": 0, "recipes_from_metadata": 0,
                                  "requeued": [], "skipped_metadata": [], "jobs": 0}
        with self._locked():
            data, db = self._db_state()
            if db.get("newer"):
                raise StoreError(db["error"])  # a newer tprm's store is not ours to rewrite
            report["db_state"] = db["state"]
            if db["state"] != "ok" and self.db_path.exists():
                copy = self.root / f"{DB_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
                shutil.copy2(self.db_path, copy)
                report["damaged_copy"] = str(copy)
            if data is not None:
                report["source"] = "db"
                report["dropped"] = [p["text"] for p in db["problems"]]
                data = _clean_records(data, db["problems"])
            else:
                data = {}
            backup = self.newest_valid_backup()
            if backup is not None:
                path, bdata = backup
                if report["source"] is None:
                    report["source"] = f"backup {path.name}"
                bversion = _schema_version(bdata)
                if bversion is not None and bversion < SCHEMA_VERSION:
                    bdata = _upgrade(bdata, bversion)
                for table, key in (("recipes", "name"), ("runs", "run_id"), ("jobs", "hash"),
                                   ("results", "hash")):
                    have = {r[key] for r in (data.get(table) or {}).values()}
                    new = [r for r in (bdata.get(table) or {}).values() if r[key] not in have]
                    if new:
                        report["from_backup"][table] = len(new)
                        _insert(data, table, new)
            report["source"] = report["source"] or "artifact metadata only"
            if not data.get("meta"):
                data["meta"] = {"1": _new_meta()}
            # recipes from their metadata files
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
            _insert(data, "recipes", new_recipes)
            report["recipes_from_metadata"] = len(new_recipes)
            # jobs and results from job metadata files
            jobs = {r["hash"]: (k, r) for k, r in (data.get("jobs") or {}).items()}
            now, alive = time.time(), {}
            results = {r["hash"]: k for k, r in (data.get("results") or {}).items()}
            new_jobs, new_results = [], []
            for p in self.artifacts.all_metas():
                meta = read_meta_file(p, p.name[:-len(META_SUFFIX)])
                if meta is None or meta.get("state") not in ("done", "diverged"):
                    report["skipped_metadata"].append(f"{p}: unreadable or not a finished job")
                    continue
                h = meta["hash"]
                here = jobs.get(h)
                here_state = None if here is None else self._derive(here[1], now, alive)["state"]
                if here_state in ("done", "diverged") and here[1].get("artifacts") == meta.get("files") \
                        and isinstance(meta.get("result"), dict) and (
                            h not in results or data["results"][results[h]].get("values") != meta["result"]):
                    row = {"hash": h, "values": meta["result"], "updated": time.time()}
                    if h in results:  # same files as when the metadata was written: its result holds
                        data["results"][results[h]] = row
                    else:
                        new_results.append(row)
                    report["results_from_metadata"] += 1
                if here_state == "running" or (here_state in ("done", "diverged")
                                               and not self.artifact_problems(here[1], deep=True)):
                    continue  # a live job, or a finished one whose files check out
                rec = {"hash": h, "kind": meta.get("kind"), "label": meta.get("label") or "",
                       "deps": meta.get("deps") or [], "spec": {}, "recipes": meta.get("recipes") or [],
                       "state": meta["state"], "owner": None, "lease_until": None,
                       "attempts": meta.get("attempts") or 1, "error": meta.get("error"),
                       "traceback": None, "provenance": meta.get("provenance"),
                       "created": meta.get("created"), "started": meta.get("started"),
                       "ended": meta.get("ended"), "artifacts": meta.get("files") or {},
                       "restored": "metadata"}
                problem = record_problem("jobs", rec)
                if problem is not None or self.artifact_problems(rec, deep=True):
                    report["skipped_metadata"].append(
                        f"{p}: {problem or 'its artifact files are missing or damaged'}")
                    continue
                if here is not None:
                    data["jobs"][here[0]] = {**here[1], **rec}
                else:
                    new_jobs.append(rec)
                report["from_metadata"] += 1
                if isinstance(meta.get("result"), dict):
                    row = {"hash": h, "values": meta["result"], "updated": time.time()}
                    if h in results:
                        data["results"][results[h]] = row
                    else:
                        new_results.append(row)
                    report["results_from_metadata"] += 1
            _insert(data, "jobs", new_jobs)
            _insert(data, "results", new_results)
            # finished jobs whose files are gone or damaged: back to the queue
            bad = set()
            for job in (data.get("jobs") or {}).values():
                if job.get("state") in ("done", "diverged"):
                    problems = self.artifact_problems(job, deep=True)
                    if problems:
                        job.update(state="queued", owner=None, lease_until=None,
                                   error="re-queued by repair: " + "; ".join(
                                       f"{q['name']} {q['problem']}" for q in problems))
                        bad.add(job["hash"])
                        report["requeued"].append(job.get("label") or job["hash"])
            if bad and data.get("results"):
                data["results"] = {k: r for k, r in data["results"].items() if r["hash"] not in bad}
            report["jobs"] = len(data.get("jobs") or {})
            self._write_data(data, backup=True)
            self._cache_key = None
        return report

    # -- maintenance -----------------------------------------------------------------------------
    def gc(self, dry_run: bool = False, force: bool = False,
           max_fraction: float = GC_MAX_FRACTION) -> list[Path]:
        """Move to ``trash/`` the files no job in a *validating* db owns: artifact files, job
        metadata and per-job logs of jobs not in the store, and temp files older than an hour.

        Refuses (StoreError, nothing moved) when the db is missing, does not parse or holds a
        malformed record, and -- unless `force` -- when it would take more than `max_fraction` of
        the artifact files. Run logs are never touched. Returns what was (or would be) moved.
        """
        with self._locked():
            data, db = self._db_state()
            files = self.artifacts.all_files()
            if db["state"] in ("unreadable", "malformed") or (data is None and files):
                why = (f"{len(db['problems'])} malformed record(s), first: "
                       f"{db['problems'][0]['text']}" if db["problems"]
                       else db["error"] or f"no job index but {len(files)} artifact file(s)")
                raise StoreError(f"store gc: refusing to collect anything: {self.db_path} does not "
                                 f"validate ({why}); {REPAIR_HINT}")
            data = data or {}
            known = {d["hash"] for d in (data.get("jobs") or {}).values()}
            run_logs = {d.get("log") for d in (data.get("runs") or {}).values()}
            cutoff = time.time() - TEMP_MAX_AGE_S
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
            temps = self.artifacts.temp_files() + sorted(self.root.glob(f".*{TEMP_SUFFIX}"))
            for p in temps:
                try:
                    if p.stat().st_mtime < cutoff:
                        doomed.append(p)
                except FileNotFoundError:
                    continue
            if not dry_run and doomed:
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
        return doomed

    def purge_trash(self, dry_run: bool = False) -> int:
        """Delete what gc moved to ``trash/``; returns how many files (would) go."""
        trash = self.root / TRASH_DIR
        if not trash.is_dir():
            return 0
        n = sum(1 for p in trash.rglob("*") if p.is_file() or p.is_symlink())
        if not dry_run:
            shutil.rmtree(trash, ignore_errors=True)
        return n

    def export_recipe(self, recipe_name: str, out_path: Path | str) -> Path:
        """Write a bundle of a recipe (see tprm.engine.bundle)."""
        from tprm.engine.bundle import export_bundle

        return export_bundle(self, recipe_name, out_path)

    def import_bundle(self, path: Path | str) -> dict:
        """Merge an exported bundle into this store (see tprm.engine.bundle)."""
        from tprm.engine.bundle import import_bundle

        return import_bundle(self, path)
