"""The store's database file: one TinyDB JSON file behind one file lock, its transactions, atomic
writes, backups, schema version and migration. The only code that reads or writes ``tprm.db.json``.

Why not plain TinyDB: its JSONStorage is not multi-process safe (two writers corrupt the file, and
CachingMiddleware silently drops another process's writes). So here

* every write is a *transaction*: take ``root/tprm.lock`` (filelock), read the current file, apply the
  change through a fresh TinyDB over that in-memory copy, and write the result ONCE to a temp file
  in the same directory, fsync, ``os.replace`` -- readers never see half a file;
* plain reads skip the lock (the atomic replace makes that safe) and tolerate a missing file;
* a file that does not parse raises StoreError naming the file and line, and is never overwritten.

Every record is checked on read (``records.py``); readers skip a malformed one with a warning,
writers refuse a file that holds one. The last BACKUP_KEEP versions of the db are kept, gzipped,
in ``backups/``.
"""
from __future__ import annotations

import gzip
import json
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock
from tinydb import TinyDB
from tinydb.storages import Storage

from tprm import __version__
from tprm.engine.artifacts import META_SUFFIX, Artifacts, atomic_write
from tprm.engine.records import TABLES, table_problems
from tprm.engine.records import clean as clean_records
from tprm.engine.records import describe as describe_problem
from tprm.engine.storebase import SCHEMA_VERSION, StoreError, StoreWarning, json_default

DB_NAME = "tprm.db.json"
LOCK_NAME = "tprm.lock"
LOCK_TIMEOUT_S = 60.0       # how long a write waits for another process's transaction
LOCK_POLL_S = 0.002         # retry interval while waiting; short, or a busy writer starves the others
BACKUP_DIR = "backups"
BACKUP_KEEP = 5             # db versions kept in backups/ (gzipped)
BACKUP_EVERY_S = 60.0       # at most one backup per this many seconds (a finished run always gets one)
REPAIR_HINT = ("run `tprm store check` to see what is wrong and `tprm store repair` to rebuild it "
               "from the artifact files or the newest backup")


def schema_version(data: dict) -> int | None:
    """Stored schema version; 1 for an old store without one; None for a new (empty) store."""
    for rec in (data.get("meta") or {}).values():
        if isinstance(rec, Mapping) and "schema_version" in rec:
            try:
                return int(rec["schema_version"])
            except (TypeError, ValueError):
                raise StoreError(f"meta.schema_version: {rec['schema_version']!r} is not an "
                                 f"integer; {REPAIR_HINT}") from None
    return 1 if any(data.get(t) for t in TABLES) else None


def new_meta() -> dict:
    """The meta record of a store created now."""
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


def upgrade(data: dict | None, version: int | None) -> dict:
    """`data` of schema `version` brought to SCHEMA_VERSION (in place)."""
    data = data or {}
    for v in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
        data = _MIGRATIONS[v](data)
    return data


class _MemoryStorage(Storage):
    """TinyDB storage over one in-memory copy of the file; the StoreFile writes it back once."""

    def __init__(self, data: dict, read_only: bool = False):
        self.data, self.read_only, self.dirty = data, read_only, False

    def read(self) -> dict:
        return self.data

    def write(self, data: dict) -> None:
        if self.read_only:
            raise StoreError("internal error: write through a read-only store view")
        self.data, self.dirty = data, True


class StoreFile:
    """The db file of a store directory: lock, read, validate, transact, write atomically, back up."""

    def __init__(self, root: Path, artifacts: Artifacts, lock_timeout: float = LOCK_TIMEOUT_S):
        self.root = root
        self.db_path = root / DB_NAME
        self.lock_path = root / LOCK_NAME
        self.lock_timeout = lock_timeout
        self.artifacts = artifacts
        self._lock = filelock.FileLock(self.lock_path, timeout=lock_timeout,
                                       poll_interval=LOCK_POLL_S)
        self._cache_key: tuple | None = None
        self._cache: dict = {}

    # -- raw file --------------------------------------------------------------------------------
    def read_data(self) -> dict | None:
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

    def write_data(self, data: dict, backup: bool = False) -> None:
        """Validate and atomically replace the file with `data` (call under `locked()`)."""
        try:
            text = json.dumps(data, separators=(",", ":"), default=json_default)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{self.db_path}: refusing to write a non-JSON value ({exc})") from None
        problems = table_problems(data)
        if problems:  # a bug or a bad bundle: never let it reach the file
            raise StoreError(f"{self.db_path}: refusing to write a malformed record "
                             f"({describe_problem(problems[0])}); nothing was changed; {REPAIR_HINT}")
        raw = text.encode("utf-8")
        atomic_write(self.db_path, lambda fh: fh.write(raw))
        self._cache_key = None
        self.backup(raw, force=backup)

    # -- backups ---------------------------------------------------------------------------------
    @property
    def backup_dir(self) -> Path:
        return self.root / BACKUP_DIR

    def backups(self) -> list[Path]:
        """Backup files, newest first."""
        if not self.backup_dir.is_dir():
            return []
        return sorted(self.backup_dir.glob("tprm.db.*.json.gz"), reverse=True)

    def backup(self, raw: bytes, force: bool = False) -> Path | None:
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

    # -- reading and transactions ----------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store lock (StoreError after lock_timeout seconds)."""
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

    def snapshot(self) -> dict:
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
        data = self.read_data()
        if data is None and self._orphan_metadata():
            warnings.warn(StoreWarning(
                f"{self.db_path}: missing or empty, but the store holds finished jobs' files; "
                "run `tprm store repair` to rebuild the index from them (`tprm store check` "
                "tells more)"), stacklevel=3)
        data = data or {}
        version = schema_version(data)
        if version is not None and version > SCHEMA_VERSION:
            raise self.newer_error(version)
        if version is not None and version < SCHEMA_VERSION:
            data = upgrade(data, version)
        problems = table_problems(data)
        if problems:  # readers skip malformed records, once warned
            data = clean_records(data, problems)
            warnings.warn(StoreWarning(
                f"{self.db_path}: skipped {len(problems)} malformed record(s) (first: "
                f"{describe_problem(problems[0])}); {REPAIR_HINT}"), stacklevel=3)
        self._cache_key, self._cache = key, data
        return data

    def _orphan_metadata(self) -> bool:
        """True when job metadata files exist (checked only when there is no db)."""
        return self.artifacts.dir.is_dir() and next(
            iter(self.artifacts.dir.glob(f"*/*{META_SUFFIX}")), None) is not None

    def view(self) -> TinyDB:
        """A read-only TinyDB over the current data (no lock)."""
        return TinyDB(storage=_MemoryStorage, data=self.snapshot(), read_only=True)

    def newer_error(self, version: int) -> StoreError:
        return StoreError(f"{self.db_path}: store schema version {version} is newer than this tprm "
                          f"understands ({SCHEMA_VERSION}); upgrade tprm")

    def _writable_data(self) -> dict:
        """The file's data, checked fit for a write (call under the lock)."""
        data = self.read_data()
        if data is None and self._orphan_metadata():
            raise StoreError(f"{self.db_path}: missing or empty, but the store holds finished "
                             "jobs' files; nothing was changed; run `tprm store repair` to "
                             "rebuild the index from them (`tprm store check` tells more)")
        data = data or {}
        version = schema_version(data)
        problems = table_problems(data if version in (None, SCHEMA_VERSION) or version >
                                  SCHEMA_VERSION else upgrade(json.loads(json.dumps(data)), version))
        if problems:
            raise StoreError(f"{self.db_path}: not a valid tprm store ({len(problems)} malformed "
                             f"record(s), first: {describe_problem(problems[0])}); nothing was "
                             f"changed; {REPAIR_HINT}")
        if version is None:
            return {"meta": {"1": new_meta()}}
        if version > SCHEMA_VERSION:
            raise self.newer_error(version)
        if version < SCHEMA_VERSION:
            raise StoreError(f"{self.db_path}: store schema version {version} is older than "
                             f"{SCHEMA_VERSION}; run `tprm store migrate` before writing to it")
        return data

    @contextmanager
    def transaction(self, backup: bool = False) -> Iterator[TinyDB]:
        """Lock, read, yield a TinyDB over the data, and write it back once if anything changed.

        `backup` forces a backup of the written version (a finished run, an import, a repair).
        """
        with self.locked():
            storage = _MemoryStorage(self._writable_data())
            yield TinyDB(storage=lambda: storage)
            if storage.dirty:
                self.write_data(storage.data, backup=backup)

    # -- meta / migration ------------------------------------------------------------------------
    def meta(self) -> dict:
        """{schema_version, created, tprm_version, ...} of the file as stored ({} for a new store)."""
        data = self.read_data() or {}
        version = schema_version(data)
        rec = next(iter((data.get("meta") or {}).values()), {})
        return {**rec, "schema_version": version} if version is not None else {}

    def migrate(self) -> tuple[int, int]:
        """Upgrade an older store file in place (a copy is kept as tprm.db.json.v<N>.bak).

        Returns (from_version, to_version); equal when nothing had to be done.
        """
        with self.locked():
            data = self.read_data()
            version = schema_version(data or {})
            if version is None or version == SCHEMA_VERSION:
                return (version or SCHEMA_VERSION, SCHEMA_VERSION)
            if version > SCHEMA_VERSION:
                raise self.newer_error(version)
            backup = self.root / f"{DB_NAME}.v{version}.bak"
            if backup.exists():
                backup = backup.with_name(f"{backup.name}.{int(time.time())}")
            shutil.copy2(self.db_path, backup)
            self.write_data(upgrade(data, version))
            return (version, SCHEMA_VERSION)

    def state(self) -> tuple[dict | None, dict]:
        """(data or None, {state, error, problems}) without raising: state is ok, empty,
        missing, unreadable (does not parse) or malformed (records do not validate)."""
        info: dict[str, Any] = {"path": str(self.db_path), "state": "ok", "error": None,
                                "problems": []}
        if not self.db_path.exists():
            info["state"] = "missing"
            return None, info
        try:
            data = self.read_data()
        except StoreError as exc:
            info.update(state="unreadable", error=str(exc))
            return None, info
        if data is None:
            info["state"] = "empty"
            return None, info
        try:
            version = info["schema_version"] = schema_version(data)
        except StoreError as exc:
            info.update(state="malformed", error=str(exc))
            version = None
            for rec in (data.get("meta") or {}).values():
                if isinstance(rec, dict):
                    rec.pop("schema_version", None)
        if version is not None and version > SCHEMA_VERSION:
            info.update(state="unreadable", error=str(self.newer_error(version)), newer=True)
            return None, info
        if version is not None and version < SCHEMA_VERSION:
            data = upgrade(data, version)
        info["problems"] = [dict(p, text=describe_problem(p)) for p in table_problems(data)]
        if info["problems"]:
            info["state"] = "malformed"
        return data, info
