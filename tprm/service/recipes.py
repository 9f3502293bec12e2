"""Recipes of a workspace: find, list, validate, create and save them; their plans and data."""

from __future__ import annotations

import builtins
from pathlib import Path

from tprm.service.errors import BadInput, TprmError, converting_input_errors
from tprm.service.workspace import PACKAGE_RECIPES, LoadedRecipe, Workspace


@converting_input_errors
class Recipes:
    """`svc.recipes`: everything about recipe files and the plans they make."""

    def __init__(self, ws: Workspace):
        self._ws = ws

    def resolve(self, ref) -> LoadedRecipe:
        """A Recipe, a name or a path -> a LoadedRecipe carrying its file (see Workspace.resolve)."""
        return self._ws.resolve(ref)

    def path(self, ref) -> Path:
        return self._ws.recipe_path(ref)

    def dirs(self) -> list[Path]:
        return self._ws.recipe_dirs()

    def user_dir(self) -> Path:
        return self._ws.user_recipe_dir()

    def text(self, ref) -> str:
        return self._ws.recipe_path(ref).read_text()

    def list(self) -> builtins.list[dict]:
        """Every recipe file of the recipe folders (the first of a name wins), then every other
        recipe the store knows (run by path, found by name later too: `run_by_path`), valid or
        not, with its path, grid and how many of its jobs are done."""
        rows, seen = [], set()
        jobs = self._ws.jobs()
        for d in self._ws.recipe_dirs():
            for path in sorted(d.glob("*.y*ml")) if d.exists() else []:
                if path.stem not in seen:
                    seen.add(path.stem)
                    rows.append(self._row(path, jobs))
        seen |= {r["name"] for r in rows} | {str(Path(r["path"]).resolve()) for r in rows}
        stored = self._ws.store.list_recipes() if self._ws.store_dir.exists() else []
        for rec in stored:
            if rec.get("path") and not {rec.get("name"), str(Path(rec["path"]).resolve())} & seen:
                seen.add(rec["name"])
                rows.append({**self._row(Path(rec["path"]), jobs), "name": rec["name"], "run_by_path": True})
        return rows

    def _row(self, path: Path, jobs: dict) -> dict:
        from tprm.engine.inputerrors import first_line, input_errors
        from tprm.engine.recipe import HOTTER, RecipeError, load_recipe

        row = {"name": path.stem, "path": str(path), "run_by_path": False, "valid": True, "error": None,
               "knob": None, "hotter": None, "grid": None, "jobs_done": 0, "jobs_total": None}
        try:
            r = load_recipe(path)
            row.update(name=r.name, knob=r.temperature.knob, hotter=HOTTER[r.temperature.knob],
                       grid=f"{len(r.temperature.values)}x{len(r.densities)}")
        except input_errors() as exc:
            return dict(row, valid=False, error=first_line(exc))
        try:
            plan = self._ws.plan(r, compute_identity=False)  # a data error is the caller's (BadInput)
        except RecipeError as exc:  # e.g. model.import's module is gone: this recipe is invalid
            return dict(row, valid=False, error=first_line(exc))
        if plan is not None:
            row["jobs_total"] = len(plan.jobs)
            row["jobs_done"] = sum(1 for h in plan.jobs if jobs.get(h, {}).get("state") == "done")
        return row

    def validate(self, paths: builtins.list[str | Path]) -> builtins.list[dict]:
        """One row per recipe: path, ok, error (one line) and errors (every problem found, up to
        20, each `file:line: field: ...`)."""
        from tprm.engine.inputerrors import input_errors
        from tprm.engine.recipe import load_recipe
        from tprm.engine.yamlschema import all_errors

        out = []
        for p in paths:
            try:
                r = load_recipe(self._ws.recipe_path(p))
                self._ws.check_model(r)  # an imported model is imported and built once (a child process)
                out.append({"path": str(p), "ok": True, "error": None, "errors": [], "name": r.name,
                            "hash": r.hash})
            except TprmError as exc:
                out.append({"path": str(p), "ok": False, "error": str(exc), "errors": [str(exc)]})
            except input_errors() as exc:
                out.append({"path": str(p), "ok": False, "error": str(exc).splitlines()[0],
                            "errors": [str(e).splitlines()[0] for e in all_errors(exc)]})
        return out

    @staticmethod
    def is_shipped(path: str | Path) -> bool:
        """True for a recipe file installed with tprm (edits are saved as a copy, never in place)."""
        return Path(path).resolve().parent == PACKAGE_RECIPES

    def save_path(self, path: str | Path) -> Path:
        """The file a save of recipe `path` writes: the file itself, or for a shipped recipe a copy
        of the same name in user_dir() (found before the shipped one from then on)."""
        return self._ws.user_recipe_dir() / Path(path).name if self.is_shipped(path) else Path(path)

    def new(self, name: str, template: str = "quickstart", directory: Path | None = None) -> Path:
        """A new recipe file `name`.yaml copied from `template`, renamed and validated."""
        from tprm.engine.recipe import NAME_PATTERN, parse_recipe, renamed
        from tprm.engine.recipefiles import with_description

        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):  # as given, before any YAML
            raise BadInput(f"NAME: {name!r} is not a recipe name, allowed: lower-case letters, digits, "
                           "'-' and '_', starting with a letter or digit (max 64)")
        src = self._ws.recipe_path(template)
        target_dir = Path(directory) if directory else self._ws.user_recipe_dir()
        target = target_dir / f"{name}.yaml"
        if target.resolve().parent != target_dir.resolve():
            raise BadInput(f"NAME: {name!r} would write {target.resolve()}, outside {target_dir.resolve()}; "
                           "allowed: a plain recipe name")
        if target.exists():
            raise BadInput(f"{target}: already exists; choose another name or edit it")
        text = renamed(src.read_text(), name)
        template_recipe = parse_recipe(text, str(target))
        if template_recipe.description.strip():  # the template's words, marked as such
            text = with_description(text, template_description(src.stem, template_recipe.description))
            parse_recipe(text, str(target))
        return write_atomic(target, text)

    def save(self, path: str | Path, text: str):
        """Validate `text` and only then replace the file: a bad recipe never overwrites a good one."""
        from tprm.engine.recipe import parse_recipe

        if self.is_shipped(path):
            raise BadInput(f"{path}: a shipped recipe is not edited in place; save to "
                           f"{self.save_path(path)} instead")
        recipe = parse_recipe(text, str(path))
        write_atomic(Path(path), text)
        return recipe

    def check_model(self, ref) -> dict | None:
        """Build an imported model once (a child process) when only that can tell whether the recipe
        runs; what model_layers returns, or None when not needed. BadInput (one line) otherwise."""
        return self._ws.check_model(ref)

    def model_layers(self, ref) -> dict:
        """The recipe's model built once (a child process): {"pruned", "dense", "output_layer",
        "parameters"}; BadInput (one line) when it cannot be imported or built."""
        return self._ws.check_model(ref, always=True) or {}

    def data_identity(self, ref, compute: bool = True, download: bool = False) -> dict | None:
        """The data's content identity, cached per recipe (see tprm.engine.planner)."""
        return self._ws.planner.data_identity(self._ws.resolve(ref).recipe, compute=compute,
                                              download=download)

    def plan(self, ref, compute_identity: bool = True, download: bool = False):
        """The recipe's job plan (see Workspace.plan: only a run downloads data)."""
        return self._ws.plan(ref, compute_identity, download)

    def plan_summary(self, ref, download: bool = False) -> dict:
        """Job counts per kind (total, done) and every job's state, in plan order."""
        plan = self._ws.plan(ref, download=download)
        states = self._ws.jobs(list(plan.jobs))
        kinds: dict[str, dict] = {}
        jobs = []
        for job in plan.ordered():
            state = states.get(job.hash, {}).get("state", "new")
            k = kinds.setdefault(job.kind, {"total": 0, "done": 0})
            k["total"] += 1
            k["done"] += state == "done"
            jobs.append({"hash": job.hash, "kind": job.kind, "label": job.label, "state": state})
        return {"recipe": plan.recipe_name, "kinds": kinds, "jobs": jobs, "total": len(jobs),
                "done": sum(k["done"] for k in kinds.values())}


def template_description(template: str, description: str) -> str:
    """A new recipe's description: its template's, marked as the template's, since the copy's
    settings will be edited and the words will not follow (a report describes a recipe from its
    settings instead)."""
    return (f"[copied from template {template}: describes {template}'s settings, not necessarily "
            f"this recipe's; edit to fit] {' '.join(description.split())}")


def write_atomic(path: Path, text: str) -> Path:
    """Replace a text file atomically (readers never see half a file)."""
    from tprm.engine.artifacts import atomic_write

    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
