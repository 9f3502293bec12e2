"""Overrides of a recipe as data: a nested dict (or section dataclasses) deep-merged into the
resolved recipe's plain form, the way leaving a key out of a file would behave (recipe.py
re-validates the result in `Recipe.with_overrides`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import is_dataclass
from typing import Any

from tprm.engine.yamlschema import to_plain


def plain_overrides(value: Any) -> Any:
    """Override data as plain dicts/lists (``import_`` accepted for ``import``)."""
    if is_dataclass(value) and not isinstance(value, type):
        return to_plain(value)
    if isinstance(value, Mapping):
        return {("import" if k == "import_" else k): plain_overrides(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [plain_overrides(v) for v in value]
    return value


def merge(base: dict, override: Mapping, path: str = "") -> dict:
    """`override` deep-merged into `base` (model.kwargs replaced whole, not merged)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and path != "model.kwargs":
            out[key] = merge(out[key], value, f"{path}.{key}" if path else str(key))
        else:
            out[key] = value
    # Overriding one key of a pair without the other does what leaving the key out of a file does.
    if path in ("dense", "retrain"):
        for key, partner in (("epochs", "iterations"), ("iterations", "epochs")):
            if override.get(key) is not None and partner not in override:
                out[partner] = None
    if path == "model":
        if override.get("import") is not None and "name" not in override:
            out.pop("name", None)           # re-derived from the factory's name
        if "name" in override and "import" not in override:
            out["import"] = None            # a built-in model name replaces an imported factory
    return out
