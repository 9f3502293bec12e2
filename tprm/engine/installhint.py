"""The pip command that adds one of tprm's optional extras to the installation actually running:
an editable install of the clone tprm runs from (a checkout has pyproject.toml beside the package),
else the package from the index; with the pip of this interpreter's environment."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import tprm


def install_command(extra: str) -> str:
    """E.g. ``.venv/bin/pip install -e '.[ray]'`` in a clone, ``pip install 'tprm[ray]'`` otherwise."""
    pip = Path(sys.executable).parent / "pip"
    pip_cmd = _shown(pip) if pip.is_file() else f"{_shown(Path(sys.executable))} -m pip"
    root = Path(tprm.__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        return f"{pip_cmd} install -e '{_shown(root)}[{extra}]'"
    return f"{pip_cmd} install 'tprm[{extra}]'"


def check_extras(recipe) -> None:
    """Before a run or at validation: a recipe that asks for what an optional extra provides
    (``metrics.weightwatcher``: the [ww] extra) fails with ONE line ending in the install command
    when the package is missing. Looked up, not imported (no import cost, no side effects)."""
    from tprm.engine.modelimport import recipe_error

    if recipe.metrics.weightwatcher and importlib.util.find_spec("weightwatcher") is None:
        raise recipe_error(recipe, "metrics.weightwatcher", "true needs the weightwatcher package, "
                           f"which is not installed; set it to false or run: {install_command('ww')}")


def _shown(path: Path) -> str:
    """`path` relative to the current folder when it lies inside it ('.' for the folder itself)."""
    absolute = Path(os.path.abspath(path))
    try:
        rel = absolute.relative_to(Path.cwd())
    except ValueError:
        return str(absolute)
    return str(rel) if str(rel) != "." else "."
