"""The workspace of one store directory: the store, the planner and the recipe folders, and the
ONE place a recipe reference ("a Recipe, a name or a path") is resolved into a `LoadedRecipe`
that carries the file it came from. Every facade resolves through `Workspace.resolve`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tprm
from tprm.service.errors import BadInput, bad_input

if TYPE_CHECKING:
    from tprm.engine.recipe import Recipe

PACKAGE_RECIPES = Path(tprm.__file__).resolve().parent.parent / "recipes"


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe and the YAML file it was read from (None: built in code, e.g. by
    `Recipe.with_overrides` outside the service). A case study's sub-grid keeps its base's file."""

    recipe: Recipe
    source: str | None = None

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def hash(self) -> str:
        return self.recipe.hash

    def sub_grid(self, overrides: dict) -> LoadedRecipe:
        """A re-validated copy with `overrides` merged in, from the same file."""
        return LoadedRecipe(self.recipe.with_overrides(overrides), self.source)

    def text(self) -> str:
        """The recipe as its file says it (the resolved YAML when it has no file)."""
        return Path(self.source).read_text() if self.source else self.recipe.to_yaml()


class Workspace:
    """One store directory: its store (opened on first use), planner and recipe folders."""

    def __init__(self, store_dir: str | Path | None = None):
        from tprm.engine.planner import Planner
        from tprm.engine.store import default_store_dir

        self.store_dir = Path(default_store_dir(store_dir)).expanduser()
        self.planner = Planner(self.store_dir)
        self.work_tables: dict[int, tuple[Any, dict[str, float]]] = {}  # plan id -> (plan, job work)
        self._store = None

    @property
    def store(self):
        """The store, opened on first use (a broken store file: BadInput)."""
        if self._store is None:
            from tprm.engine.inputerrors import input_errors
            from tprm.engine.store import Store

            try:
                self._store = Store(self.store_dir)
            except input_errors() as exc:
                raise bad_input(exc) from None
        return self._store

    def recipe_dirs(self) -> list[Path]:
        """Where recipes are found, first match wins: ./recipes (when it is not the shipped folder),
        the store's recipes/ ($TPRM_HOME/recipes), then the shipped recipes."""
        local = Path.cwd() / "recipes"
        dirs = [*([] if local.resolve() == PACKAGE_RECIPES else [local]), self.store_dir / "recipes",
                PACKAGE_RECIPES]
        seen, out = set(), []
        for d in dirs:
            if d.resolve() not in seen:
                seen.add(d.resolve())
                out.append(d)
        return out

    def user_recipe_dir(self) -> Path:
        """Where new recipes (and copies of edited shipped ones) are written: ./recipes when that
        folder exists (and is not the shipped one), else the store's recipes/ ($TPRM_HOME/recipes)."""
        local = Path.cwd() / "recipes"
        if local.is_dir() and local.resolve() != PACKAGE_RECIPES:
            return local
        return self.store_dir / "recipes"

    def recipe_path(self, name_or_path: str | Path) -> Path:
        """The file of a recipe name (searched in recipe_dirs(), then the store's record) or path."""
        from tprm.engine.inputerrors import input_errors
        from tprm.engine.recipe import find_recipe

        if isinstance(name_or_path, Path) or Path(str(name_or_path)).suffix in (".yaml", ".yml"):
            p = Path(name_or_path)
            if p.exists():
                return p
        try:
            return find_recipe(str(name_or_path), self.recipe_dirs())
        except input_errors() as exc:
            stored = self.store.get_recipe(str(name_or_path)) if self.store_dir.exists() else None
            if stored and stored.get("path") and Path(stored["path"]).exists():
                return Path(stored["path"])
            raise bad_input(exc) from None

    def resolve(self, ref) -> LoadedRecipe:
        """A LoadedRecipe, a Recipe, a recipe name or a path -> a LoadedRecipe (read once)."""
        from tprm.engine.recipe import Recipe, load_recipe

        if isinstance(ref, LoadedRecipe):
            return ref
        if isinstance(ref, Recipe):
            return LoadedRecipe(ref, None)
        if ref is None:
            raise BadInput("recipe: none given; give a recipe name or the path of a .yaml file")
        path = self.recipe_path(ref)
        return LoadedRecipe(load_recipe(path), str(path))

    def source_file(self, loaded: LoadedRecipe) -> str:
        """The file a detached process reads the recipe from (its own, else found by name)."""
        return loaded.source or str(self.recipe_path(loaded.name))

    def check_model(self, ref, always: bool = False) -> dict | None:
        """Import and build the recipe's model once in a child process (engine/modelcheck.py) when
        only that can tell whether it works (an imported model, layer patterns), or `always`: the
        weights pruned and kept dense; None when not checked. RecipeError (one line) otherwise, also
        for an optional extra the recipe needs and this installation lacks (engine/installhint.py)."""
        from tprm.engine.installhint import check_extras
        from tprm.engine.modelcheck import check_model, needs_check

        recipe = self.resolve(ref).recipe
        check_extras(recipe)
        return check_model(recipe) if always or needs_check(recipe) else None

    def plan(self, ref, compute_identity: bool = True, download: bool = False):
        """The recipe's job plan. Only a run downloads data (download=True, as the recipe allows);
        anywhere else a missing data set raises DataNotFetched at once, never touching the network."""
        return self.planner.plan(self.resolve(ref).recipe, compute_identity, download)

    def jobs(self, hashes: list[str] | None = None) -> dict:
        """Job records of the store ({} when the store does not exist yet)."""
        return self.store.get_jobs(hashes) if self.store_dir.exists() else {}
