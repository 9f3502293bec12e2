"""Where a recipe's own model code is found, and which of it keys the recipe's results.

`model.import: "pkg.module:factory"` is looked up in `model.path` (when set), then the recipe's
folder, then the Python path: the same roots in the CLI, the TUI's launches, detached runs and
worker processes (`search_path`), while Ray workers get the files themselves (`code_bundle`,
shipped through Ray's object store). The job keys of such a recipe hold `code_identity`: a hash of
the module's source and of the local modules it imports (from its own folder or the roots), or
`model.version` when set, so editing the model reruns its jobs instead of reusing old results.
Nothing here executes the user's code: modules are located and parsed, never imported.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import hashlib
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

from tprm.engine.recipe import RecipeError

MAX_FILES = 500  # a walk that finds more local modules than this stops (the hash covers those found)


def recipe_error(recipe, field: str, message: str) -> RecipeError:
    """A one-line error about `field` of `recipe`, at the line its file set it (or its section's)."""
    source, _ = recipe.origin
    key, lines = field, recipe.key_lines
    while key and key not in lines:
        key = key.rpartition(".")[0]
    return RecipeError(message, source=source, line=lines.get(key, 1), field=field)


def import_roots(recipe, section: str | None = None) -> tuple[str, ...]:
    """The folders searched for model.import and dataset.import before the Python path: model.path,
    dataset.path, the recipe's folder (those of one ``section`` when given, else of both)."""
    roots: list[str] = []
    for sec in (section,) if section else ("model", "dataset"):
        part = getattr(recipe, sec)
        if part.import_ is not None:
            roots += ([part.path] if part.path else []) + [str(recipe.origin[1])]
    return tuple(dict.fromkeys(str(Path(r).resolve()) for r in roots))


@contextlib.contextmanager
def search_path(roots: Sequence[str]) -> Iterator[None]:
    """The body runs with `roots` first on sys.path (spawned worker processes inherit it)."""
    added = [r for r in roots if r]
    sys.path[:0] = added
    try:
        yield
    finally:
        for r in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(r)


def code_identity(recipe) -> str | None:
    """What of the model's code keys its jobs: None for a built-in model, ``version:V`` for an
    explicit model.version, else ``sha256:...`` of the module's and its local imports' sources."""
    m = recipe.model
    if m.import_ is None:
        return None
    if m.version is not None:
        return f"version:{m.version}"
    return sources_identity(module_sources(recipe))


def sources_identity(files: dict[str, Path]) -> str:
    """``sha256:...`` of the named source files (module name and content of each)."""
    digest = hashlib.sha256()
    for name, path in sorted(files.items()):
        digest.update(f"{name}\0{_file_sha(path)}\n".encode())
    return "sha256:" + digest.hexdigest()[:32]


def code_bundle(recipe) -> dict[str, bytes]:
    """The model's and the data's local code for machines without this disk (Ray workers): {path
    relative to its root: bytes} of every hashed module found in the recipe's roots -- the module,
    its packages' __init__ files and its local imports (installed packages are not shipped)."""
    roots = [Path(r) for r in import_roots(recipe)]
    out: dict[str, bytes] = {}
    for section in ("model", "dataset"):
        if getattr(recipe, section).import_ is None:
            continue
        for path in module_sources(recipe, section).values():
            root = next((r for r in roots if path.is_relative_to(r)), None)
            if root is not None:
                out.setdefault(path.relative_to(root).as_posix(), path.read_bytes())
    return out


def module_sources(recipe, section: str = "model") -> dict[str, Path]:
    """{module name: source file} of the imported module (``<section>.import``), its packages'
    __init__ files and the local modules it imports (recursively); RecipeError when it has no
    findable source."""
    module = getattr(recipe, section).import_.partition(":")[0]
    roots = list(import_roots(recipe, section))
    found = _locate(module, roots + [p for p in sys.path if p])
    if not found:
        raise recipe_error(recipe, f"{section}.import", not_found_message(module, roots, f"{section}.path"))
    entry = found[-1][1]
    if entry is None or entry.suffix != ".py":
        override = "model.version" if section == "model" else "dataset.identity"
        raise recipe_error(recipe, f"{section}.import", f"module {module!r} has no Python source to hash "
                           f"({entry or 'no file'}), allowed: set {override} to a string that "
                           "changes whenever the code does")
    depth = len(module.split(".")) - (entry.name != "__init__.py")
    top_parent = entry.parents[depth]  # the folder the module's top-level name is found in
    local = [Path(r) for r in roots] + [entry.parent]
    search = roots + [str(top_parent)]
    sources: dict[str, Path] = {name: path for name, path in found if path is not None}
    todo = [module]
    while todo and len(sources) < MAX_FILES:
        name = todo.pop()
        path = sources[name]
        for wanted in _imported_names(path, name):
            for sub, sub_path in _locate(wanted, search):
                if sub not in sources and sub_path is not None and \
                        any(sub_path.is_relative_to(d) for d in local):
                    sources[sub] = sub_path
                    todo.append(sub)
    return sources


def _locate(module: str, path: list[str]) -> list[tuple[str, Path | None]]:
    """[(name, file)] of each level of dotted `module` found on `path` without importing it; []
    when its top level is not there (a level that is missing ends the list early)."""
    out: list[tuple[str, Path | None]] = []
    search: list[str] | None = path
    parts = module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[:i + 1])
        try:
            spec = PathFinder.find_spec(name, search)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return out
        origin = Path(spec.origin) if spec.origin and spec.has_location else None
        out.append((name, origin))
        search = list(spec.submodule_search_locations or [])
        if not search and i < len(parts) - 1:
            return out
    return out


def _imported_names(path: Path, module: str) -> list[str]:
    """The absolute module names a source file imports (relative imports resolved)."""
    return _by_stat(path, ("imports", module), lambda: _parse_imports(path, module))


def _parse_imports(path: Path, module: str) -> list[str]:
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError):
        return []  # the model check (engine/modelcheck.py) reports a broken file
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                keep = len(parts) - (node.level - 1)
                if keep <= 0:
                    continue
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            if base:
                names.append(base)
                names += [f"{base}.{a.name}" for a in node.names if a.name != "*"]
    return names


def not_found_message(module: str, roots: list[str], path_field: str = "model.path") -> str:
    where = ", ".join(roots) or "the recipe's folder"
    top = module.split(".")[0]
    known = sorted({p.stem for r in roots for p in Path(r).glob("*.py")} |
                   {p.parent.name for r in roots for p in Path(r).glob("*/__init__.py")})
    close = difflib.get_close_matches(top, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"no module {module!r} in {where} or on the Python path{hint}, allowed: a module there "
            f"(e.g. {top}.py next to the recipe) or {path_field} naming the folder that holds it")


_CACHE: dict[tuple, tuple[int, int, Any]] = {}  # (path, what) -> (mtime_ns, size, value)


def _by_stat(path: Path, what: tuple, compute: Callable[[], Any]) -> Any:
    """compute() for `path`, cached while its mtime and size stay the same (polls re-read nothing)."""
    st = path.stat()
    key = (str(path), what)
    hit = _CACHE.get(key)
    if hit is None or hit[:2] != (st.st_mtime_ns, st.st_size):
        hit = _CACHE[key] = (st.st_mtime_ns, st.st_size, compute())
    return hit[2]


def _file_sha(path: Path) -> str:
    return _by_stat(path, ("sha256",), lambda: hashlib.sha256(path.read_bytes()).hexdigest())
