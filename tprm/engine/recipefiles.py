"""Recipe files as files: find one by name or path in the recipe folders, list the known ones,
and rename one's text. Reading and validating a file's contents is recipe.py's (load_recipe)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from tprm.engine.yamlschema import SchemaError as RecipeError
from tprm.engine.yamlschema import clip


def renamed(text: str, name: str) -> str:
    """Recipe YAML `text` with its top-level ``name:`` line set to `name` (added first if absent);
    every other line kept as written."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("name:"):
            lines[i] = f"name: {name}"
            break
    else:
        lines.insert(0, f"name: {name}")
    return "\n".join(lines) + "\n"


def with_description(text: str, description: str) -> str:
    """Recipe YAML `text` with its top-level ``description:`` (however it is written: plain,
    quoted or a block over several lines) replaced by `description` as one quoted line; `text`
    unchanged when it sets no description. Every other line is kept as written."""
    import json

    import yaml

    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        return text
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "description":
            end = value.end_mark.index
            tail = "\n" if end > 0 and text[end - 1] == "\n" else ""  # a block scalar ends after its newline
            return text[:key.start_mark.index] + f"description: {json.dumps(description)}" + tail + text[end:]
    return text


def known_recipes(search_dirs: Iterable[str | Path]) -> dict[str, Path]:
    """Recipe name -> file, over ``search_dirs`` in order (the first directory wins a name)."""
    found: dict[str, Path] = {}
    for directory in search_dirs:
        directory = Path(directory)
        if directory.is_dir():
            for p in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
                found.setdefault(p.stem, p)
    return found


def find_recipe(name_or_path: str | Path, search_dirs: Iterable[str | Path]) -> Path:
    """An existing file path as given, else ``<dir>/<name>.yaml`` from the first dir that has it."""
    direct = Path(name_or_path)
    if _is_file(direct):
        return direct
    search_dirs = list(search_dirs)
    name = str(name_or_path)
    for directory in search_dirs:
        for candidate in (Path(directory) / f"{name}.yaml", Path(directory) / f"{name}.yml"):
            if _is_file(candidate):
                return candidate
    known = sorted(known_recipes(search_dirs))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise RecipeError(f"no recipe named {clip(name, 60)!r}{hint}; known: {', '.join(known) or '(none)'}")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
