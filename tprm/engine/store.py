"""The experiment store: everything tprm keeps under one directory, as one object made of parts.

``Store(root)`` composes one part per thing it owns, each in its own module:

* ``file`` (storefile.py): the database file ``tprm.db.json`` -- its lock, transactions, atomic
  writes, backups, schema version and migration; the only code that opens the db;
* ``leases`` (storejobs.py): the jobs and results tables -- add, claim under a lease, heartbeat,
  finish, release -- and each finished job's metadata file;
* ``runs`` (storeruns.py): the runs table and the cancel flag;
* ``recipes`` (storerecipes.py): the recipes table and its metadata copies;
* ``maintenance`` (storecheck.py): artifact integrity, check, gc, trash; ``repairer``
  (storerepair.py): repair.

Store's own methods are those parts' methods under their long-standing names (``store.claim``,
``store.check``, ...), so callers need not know which part owns what. Bundles (export/import) are
in bundle.py and use only this public API.

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
this host (and for a running run whose process is gone or whose heartbeat is old). See docs/store.md.

Store location (``default_store_dir``): an explicit path (``--store``), else ``$TPRM_HOME``, else
``$XDG_DATA_HOME/tprm``, else ``~/.local/share/tprm``.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from tprm.engine.artifacts import Artifacts
from tprm.engine.bundle import export_bundle, import_bundle
from tprm.engine.storebase import SCHEMA_VERSION, StoreError, StoreWarning
from tprm.engine.storecheck import GC_MAX_FRACTION, TRASH_DIR, Maintenance
from tprm.engine.storefile import (
    BACKUP_KEEP,
    DB_NAME,
    LOCK_TIMEOUT_S,
    REPAIR_HINT,
    StoreFile,
)
from tprm.engine.storejobs import JobLeases
from tprm.engine.storerecipes import RecipeTable
from tprm.engine.storerepair import StoreRepair
from tprm.engine.storeruns import RUN_STALE_AFTER_S, RunTable

__all__ = ["BACKUP_KEEP", "DB_NAME", "GC_MAX_FRACTION", "REPAIR_HINT", "SCHEMA_VERSION",
           "TRASH_DIR", "Store", "StoreError", "StoreWarning", "default_store_dir", "make_owner"]


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


class Store:
    """All persistent state of tprm under one directory; every public write is one atomic transaction."""

    def __init__(self, root: Path | str, *, lock_timeout: float = LOCK_TIMEOUT_S,
                 run_stale_after: float = RUN_STALE_AFTER_S):
        self.root = Path(root).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: store path exists and is not a directory")
        self.root.mkdir(parents=True, exist_ok=True)
        self.host = socket.gethostname()
        self.artifacts = Artifacts(self.root)
        self.file = StoreFile(self.root, self.artifacts, lock_timeout)
        self.leases = JobLeases(self.file, self.host)
        self.runs = RunTable(self.file, self.host, run_stale_after)
        self.recipes = RecipeTable(self.file)
        self.maintenance = Maintenance(self.file, self.leases)
        self.repairer = StoreRepair(self.maintenance)
        self.db_path, self.lock_path = self.file.db_path, self.file.lock_path
        self.lock_timeout, self.run_stale_after = lock_timeout, run_stale_after
        self._expose()

    def _expose(self) -> None:
        """The parts' operations under the Store's names (bound methods: same signatures)."""
        f, j, r, c, m = self.file, self.leases, self.runs, self.recipes, self.maintenance
        # database file
        self.transaction, self.locked, self.view = f.transaction, f.locked, f.view
        self.backups, self.backup, self.newest_valid_backup = f.backups, f.backup, f.newest_valid_backup
        self.meta, self.migrate = f.meta, f.migrate
        # recipes
        self.put_recipe, self.get_recipe, self.list_recipes = c.put_recipe, c.get_recipe, c.list_recipes
        self.write_recipe_meta = c.write_recipe_meta
        # job leases and results
        self.add_jobs, self.get_jobs, self.derive_job = j.add_jobs, j.get_jobs, j.derive
        self.claim, self.heartbeat, self.release = j.claim, j.heartbeat, j.release
        self.finish, self.finish_many, self.results = j.finish, j.finish_many, j.results
        self.job_meta, self.write_job_meta = j.job_meta, j.write_job_meta
        # runs
        self.start_run, self.update_run, self.get_runs = r.start_run, r.update_run, r.get_runs
        self.request_cancel, self.cancel_requested = r.request_cancel, r.cancel_requested
        # maintenance
        self.expected_files, self.artifact_problems = m.expected_files, m.artifact_problems
        self.requeue_broken, self.check, self.gc = m.requeue_broken, m.check, m.gc
        self.purge_trash, self.repair = m.purge_trash, self.repairer.repair

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    @property
    def backup_dir(self) -> Path:
        return self.file.backup_dir

    def export_recipe(self, recipe_name: str, out_path: Path | str) -> Path:
        """Write a bundle of a recipe (see tprm.engine.bundle)."""
        return export_bundle(self, recipe_name, out_path)

    def import_bundle(self, path: Path | str) -> dict:
        """Merge an exported bundle into this store (see tprm.engine.bundle)."""
        return import_bundle(self, path)
