"""Recipes -> job plans over one store: the data identity (cached per recipe under
<store>/identity/), the dense init file's checksum, and a cache of plans (pure functions of those).

Only a run downloads data (download=True, as the recipe allows); planning anywhere else raises
DataNotFetchedError at once for a missing torchvision set, never touching the network.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

from tprm.engine.artifacts import atomic_write
from tprm.engine.modelimport import (
    code_identity,
    import_roots,
    module_sources,
    recipe_error,
    search_path,
    sources_identity,
)
from tprm.engine.plan import Plan, build_plan


class DataNotFetchedError(Exception):
    """A recipe's data set is not on disk (and planning never downloads)."""

    def __init__(self, message: str, dataset: str):
        super().__init__(message)
        self.dataset = dataset


def init_checksum(recipe) -> str | None:
    """Content hash of the dense init file (recipes store its path absolute)."""
    if not recipe.dense.init:
        return None
    return hashlib.sha256(Path(recipe.dense.init).read_bytes()).hexdigest()


def not_fetched(spec, problem: Exception | None = None) -> DataNotFetchedError:
    """The one-line error for data set `spec` missing from its folder (the reader's own `problem`
    for a set that is not fetched: imagefolder's folders)."""
    from tprm.science.datafiles import dataset_status

    st = dataset_status(spec.name, spec.root)
    if st["folder"] is None and problem is not None:
        return DataNotFetchedError(str(problem).splitlines()[0], spec.name)
    title = st["title"]
    return DataNotFetchedError(f"{title} not downloaded: run `tprm data fetch {spec.name}` or set "
                               f"dataset.root (looked in {st['folder']})", spec.name)


class Planner:
    """Plans of recipes over the store at `store_dir` (identity files are written there)."""

    def __init__(self, store_dir: Path):
        self.store_dir = Path(store_dir)
        self._plans: dict[tuple, Plan] = {}

    def identity_cache(self, recipe) -> Path:
        """The recipe's cached data identity; imported data hashed by content is cached per version
        of its module's code too (editing the data factory recomputes it)."""
        d = recipe.dataset
        if d.import_ is not None and d.identity is None:
            code = sources_identity(module_sources(recipe, "dataset")).partition(":")[2][:16]
            return self.store_dir / "identity" / f"{recipe.hash}-{code}.json"
        return self.store_dir / "identity" / f"{recipe.hash}.json"

    def data_identity(self, recipe, compute: bool = True, download: bool = False) -> dict | None:
        """The data's content identity (generator settings or file checksums), cached per recipe;
        None when it is not cached and `compute` is False."""
        cache = self.identity_cache(recipe)
        if cache.exists():
            return json.loads(cache.read_text())
        if not compute:
            return None
        from tprm.science.data import DataMissingError, data_identity  # imports torch: only here

        spec = recipe.data_spec()
        if spec.root is None:
            spec = replace(spec, root=str(self.store_dir / "data"))
        if not download:
            spec = replace(spec, download=False)
        if spec.import_ is not None:  # this process may hold an older version of the data's code
            for name in module_sources(recipe, "dataset"):
                sys.modules.pop(name, None)
        try:
            with search_path(import_roots(recipe, "dataset")):  # dataset.import's module
                ident = data_identity(spec)
        except DataMissingError as exc:
            if download:
                raise
            raise not_fetched(spec, exc) from exc
        except ValueError as exc:  # the user's data factory broke its contract (dataimport.py)
            if spec.import_ is None:
                raise
            raise recipe_error(recipe, "dataset.import", str(exc).splitlines()[0]) from None
        text = json.dumps(ident, sort_keys=True)
        atomic_write(cache, lambda fh: fh.write(text.encode("utf-8")))
        return ident

    def plan(self, recipe, compute_identity: bool = True, download: bool = False) -> Plan | None:
        """The recipe's job plan (None when its identity is not cached and not computed)."""
        ident = self.data_identity(recipe, compute=compute_identity, download=download)
        if ident is None:
            return None
        init = init_checksum(recipe)
        code = code_identity(recipe)  # an imported model's source: editing it reruns its jobs
        key = (recipe.name, recipe.hash, json.dumps(ident, sort_keys=True), init, code)
        if key not in self._plans:  # plans are pure functions of these: polls reuse them
            self._plans[key] = build_plan(recipe, ident, init, code)
        return self._plans[key]
