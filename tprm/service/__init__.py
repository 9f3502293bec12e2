"""The one API both views (CLI and TUI) call: `Service` composes one facade per concept.

    svc.recipes   find, list, validate, create, save recipes; their plans     (recipes.py)
    svc.runs      run (foreground / detached), cancel, status, logs           (runs.py)
    svc.results   cell records, results rows and CSV, grids, plots            (results.py)
    svc.cases     the three case studies, foreground or detached              (cases.py)
    svc.reports   compare two recipes, write a report                         (reports.py)
    svc.explore   explore a recipe's plane adaptively, round by round         (explore.py)
    svc.admin     data sets; store migrate, gc, check, repair, export/import  (admin.py)

Recipe references (a Recipe, a name or a path) are resolved once, by `Workspace.resolve`
(workspace.py), into a `LoadedRecipe` that carries its file; views may pass that object on.
Every method returns plain data and raises `TprmError` subclasses with one-line messages
(errors.py): `BadInput` (exit code 2) or `RunFailed` (exit 1).
"""

from __future__ import annotations

from pathlib import Path

from tprm.service.admin import Admin
from tprm.service.cases import Cases
from tprm.service.errors import BadInput, DataNotFetched, RunCancelled, RunFailed, TprmError
from tprm.service.explore import Explore
from tprm.service.recipes import Recipes
from tprm.service.reports import Reports
from tprm.service.results import (METRICS, RESULT_COLUMNS, WW_COLUMNS, Results, density_text, result_columns,
                                  rows_csv)
from tprm.service.runs import Runs
from tprm.service.workspace import PACKAGE_RECIPES, LoadedRecipe, Workspace

__all__ = ["METRICS", "PACKAGE_RECIPES", "RESULT_COLUMNS", "BadInput", "DataNotFetched", "LoadedRecipe",
           "RunCancelled", "RunFailed", "Service", "TprmError", "Workspace", "WW_COLUMNS", "density_text",
           "result_columns", "rows_csv"]


class Service:
    """Recipes, runs, results, case studies, reports, explorations and store upkeep over one store
    directory."""

    def __init__(self, store_dir: str | Path | None = None):
        self.workspace = ws = Workspace(store_dir)
        self.recipes = Recipes(ws)
        self.runs = Runs(ws)
        self.results = Results(ws)
        self.cases = Cases(ws, self.runs, self.results)
        self.reports = Reports(ws, self.results, self.cases)
        self.explore = Explore(ws, self.results)
        self.admin = Admin(ws)

    @property
    def store_dir(self) -> Path:
        """The store directory this service works on."""
        return self.workspace.store_dir
