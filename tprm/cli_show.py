"""`tprm show RECIPE -t T -d D`: one cell opened, its numbers and curves (svc.results.cell)."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Annotated, Optional

import typer

from tprm.cli_common import RecipeArg, StoreOpt
from tprm.cli_common import print_json as _json
from tprm.cli_common import service as _svc


def show(recipe: RecipeArg,
         temperature: Annotated[float, typer.Option("--temperature", "-t", help="A temperature value on the recipe's grid (in the knob's unit).")],
         density: Annotated[float, typer.Option("--density", "-d", help="Fraction (0.1) or percent (10).")],
         store: StoreOpt = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the numbers and every curve).")] = False,
         width: Annotated[Optional[int], typer.Option(min=40, max=400, help="Columns (default: the terminal's, 80 when piped).")] = None,
         height: Annotated[Optional[int], typer.Option(min=12, max=200, help="Lines of one plot's screenful (default: the terminal's, 24 when piped).")] = None):
    """Open one cell: mc, CKA, endpoint and test errors per seed, the regime and why, then the LMC
    curves (train and test error along t, endpoints' mean dashed, t* marked) and training curves.
    Coloured in a terminal, plain text when piped."""
    tty = sys.stdout.isatty()
    size = shutil.get_terminal_size((80, 24)) if tty else os.terminal_size((80, 24))
    color = tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    view = _svc(store).results.cell(recipe, temperature, density, width=width or min(size.columns, 400),
                                    height=height or max(12, size.lines), color=color)
    if as_json:
        _json({k: v for k, v in view.items() if k != "text"})
        return
    sys.stdout.write(view["text"] + "\n")
