"""The data sets of a store's data folder, for the service: which are there, fetching one, and
the error a run raises when files are missing (the science layer does the reading)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tprm.science.dataspec import DATASET_NAMES, DataMissingError

__all__ = ["DATASET_NAMES", "DataMissingError", "dataset_rows", "fetch", "files_note"]


def dataset_rows(root: Path) -> list[dict]:
    """Every data set tprm knows and whether its files are in `root`."""
    from tprm.science.datafiles import dataset_status

    return [dataset_status(n, root) for n in DATASET_NAMES]


def fetch(name: str, root: Path, source: str | Path | None = None,
          progress: Callable[[str], None] | None = None) -> dict:
    """Put data set `name` into `root`: from `source` (a folder or .tar.gz) or downloaded."""
    from tprm.science.datafiles import fetch_dataset

    return fetch_dataset(name, root, source, progress)


def files_note(recipe, data_root: Path) -> str | None:
    """What a report says about a recipe's data files: "official files (md5 checked)", "<title>: not
    the official files (checksum differs)", or None (no official checksums, or files not on disk)."""
    from tprm.science.datafiles import dataset_status, files_note as note_of

    spec = recipe.data_spec()
    root = Path(spec.root) if spec.root is not None else data_root
    note = note_of(spec, root)
    if note is None and spec.info.official_md5 and dataset_status(spec.name, root)["official"]:
        return f"{spec.info.title}: the official files (md5 checked)"
    return note
