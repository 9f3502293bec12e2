"""The data sets of a store's data folder, for the service: which are there, fetching one, and
the error a run raises when files are missing (the science layer does the reading)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tprm.science.dataspec import DATASET_NAMES, DataMissingError

__all__ = ["DATASET_NAMES", "DataMissingError", "dataset_rows", "fetch"]


def dataset_rows(root: Path) -> list[dict]:
    """Every data set tprm knows and whether its files are in `root`."""
    from tprm.science.data import dataset_status

    return [dataset_status(n, root) for n in DATASET_NAMES]


def fetch(name: str, root: Path, source: str | Path | None = None,
          progress: Callable[[str], None] | None = None) -> dict:
    """Put data set `name` into `root`: from `source` (a folder or .tar.gz) or downloaded."""
    from tprm.science.data import fetch_dataset

    return fetch_dataset(name, root, source, progress)
