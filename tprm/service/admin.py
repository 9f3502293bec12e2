"""Keeping a workspace: its data sets, and the store's migrate, gc, check, repair, export and
import (the store's own maintenance part does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tprm.service.errors import BadInput, converting_input_errors
from tprm.service.workspace import Workspace


@converting_input_errors
class Admin:
    """`svc.admin`: data sets and store maintenance."""

    def __init__(self, ws: Workspace):
        self._ws = ws

    # -- data sets ----------------------------------------------------------------------------
    def data_root(self) -> Path:
        """Where recipes without dataset.root read (and `data fetch` puts) torchvision sets."""
        return self._ws.store_dir / "data"

    def data_list(self, root: str | Path | None = None) -> list[dict]:
        """Every data set tprm knows and whether its files are in the data folder."""
        from tprm.engine.datasets import dataset_rows

        return dataset_rows(Path(root) if root else self.data_root())

    def data_fetch(self, name: str, source: str | Path | None = None, root: str | Path | None = None,
                   progress: Callable[[str], None] | None = None) -> dict:
        """Put data set `name` into the data folder: from `source` (a folder or .tar.gz) or downloaded."""
        from tprm.engine.datasets import DATASET_NAMES, fetch

        if name not in DATASET_NAMES:
            raise BadInput(f"data set: '{name}' is not one of {', '.join(DATASET_NAMES)}")
        if source is not None and not Path(source).expanduser().exists():
            raise BadInput(f"--from: {source}: no such file or folder")
        return fetch(name, Path(root) if root else self.data_root(), source, progress)

    # -- store maintenance --------------------------------------------------------------------
    def migrate(self):
        return self._ws.store.migrate()

    def gc(self, dry_run: bool = False, force: bool = False, purge: bool = False,
           max_fraction: float | None = None) -> dict:
        """Collect unowned files into the store's trash (see Store.gc); `purge` then empties it."""
        from tprm.engine.store import GC_MAX_FRACTION

        if max_fraction is not None and not 0 <= max_fraction <= 1:
            raise BadInput(f"--max-fraction: {max_fraction} must be between 0 and 1")
        store = self._ws.store
        moved = store.gc(dry_run=dry_run, force=force,
                         max_fraction=GC_MAX_FRACTION if max_fraction is None else max_fraction)
        purged = store.purge_trash(dry_run=dry_run) if purge else 0
        return {"moved": [str(p) for p in moved], "purged": purged, "dry_run": dry_run,
                "trash": str(self._ws.store_dir / "trash")}

    def check(self, deep: bool = True) -> dict:
        """The store's health report (db, records, artifacts); reads only."""
        return self._ws.store.check(deep=deep)

    def repair(self) -> dict:
        """Rebuild the job index from the artifact metadata and the newest valid backup."""
        return self._ws.store.repair()

    def export(self, ref, path: str | Path) -> Path:
        """Write a recipe's bundle (its record, jobs and artifacts) to `path`."""
        self._ws.store.export_recipe(self._ws.resolve(ref).name, Path(path))
        return Path(path)

    def import_bundle(self, path: str | Path) -> dict:
        if not Path(path).exists():
            raise BadInput(f"{path}: no such file; give a bundle written by `tprm export`")
        return self._ws.store.import_bundle(Path(path))
