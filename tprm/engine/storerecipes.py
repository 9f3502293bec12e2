"""The store's recipes table (name, content hash, source path, YAML text), and each recipe's copy
beside the artifacts (``artifacts/recipes/<hash>.json``) that ``repair`` restores it from."""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

from tprm.engine.artifacts import HASH_RE, atomic_write
from tprm.engine.storebase import StoreError
from tprm.engine.storefile import StoreFile


class RecipeTable:
    """Recipes by name: record, look up, list; keep a metadata copy for repair."""

    def __init__(self, file: StoreFile):
        self.file = file
        self.artifacts = file.artifacts

    def put_recipe(self, name: str, hash: str, path: Path | str | None, text: str) -> dict:
        """Record (or update) a recipe by name: its content hash, source path and YAML text."""
        if not isinstance(name, str) or not name:
            raise StoreError(f"recipe name: {name!r} must be a non-empty string")
        if not isinstance(hash, str) or not hash:
            raise StoreError(f"recipe {name}: hash {hash!r} must be a non-empty string")
        now = time.time()
        rec = {"name": name, "hash": hash, "path": None if path is None else str(path),
               "yaml": str(text), "updated": now}
        with self.file.transaction() as db:
            table = db.table("recipes")
            old = next((d for d in table.all() if d.get("name") == name), None)
            if old is None:
                table.insert({**rec, "added": now})
            else:
                table.update(rec, doc_ids=[old.doc_id])
                rec = {**old, **rec}
        rec = {**rec, "added": rec.get("added", now)}
        self.write_recipe_meta(rec)
        return rec

    def meta_dir(self) -> Path:
        """Where recipes' metadata copies live."""
        return self.artifacts.dir / "recipes"

    def write_recipe_meta(self, rec: Mapping) -> None:
        """Keep the recipe's record (name, hash, path, yaml) beside the artifacts, for repair."""
        recipe_hash = rec.get("hash")
        if not isinstance(recipe_hash, str) or not HASH_RE.fullmatch(recipe_hash):
            return
        path = self.meta_dir() / f"{recipe_hash}.json"
        if not path.exists():
            text = json.dumps(dict(rec), indent=1, default=str)
            try:
                atomic_write(path, lambda fh: fh.write(text.encode()))
            except OSError:
                pass

    def get_recipe(self, name: str) -> dict | None:
        """The stored record of recipe `name`, or None."""
        return next((dict(d) for d in self.file.view().table("recipes").all()
                     if d.get("name") == name), None)

    def list_recipes(self) -> list[dict]:
        """Every stored recipe record, by name."""
        return sorted((dict(d) for d in self.file.view().table("recipes").all()),
                      key=lambda r: r.get("name", ""))
