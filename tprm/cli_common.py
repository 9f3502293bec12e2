"""What every command module of the CLI shares: the two consoles, the common options and the
service constructor (cli.py and the command groups split out of it import them from here)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console

from tprm.service import Service

# User text (paths, names, errors with `file:100:`) prints literally: no emoji codes, no markup.
out = Console(highlight=False, soft_wrap=True, emoji=False, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False, markup=False)

StoreOpt = Annotated[Optional[str], typer.Option("--store", help="Store directory (default: $TPRM_HOME, else ~/.local/share/tprm).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RecipeArg = Annotated[str, typer.Argument(help="Recipe name or path to a YAML file.")]


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def service(store: str | None) -> Service:
    return Service(store)
