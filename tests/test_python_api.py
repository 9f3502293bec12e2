"""The Python API of docs/python.md (a notebook's view of a store), on a store in which the tiny
recipe really ran: recipes listed, cells as records, a cell's LMC and training curves as arrays
that agree with the recorded numbers, and a DataFrame only when pandas is installed."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import prepare_tiny_store
from tprm.service import BadInput, Service


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    work = tmp_path_factory.mktemp("api")
    return Service(prepare_tiny_store(work))


def test_recipes_cells_and_curves_as_arrays(svc):
    assert "tiny" in {r["name"] for r in svc.recipes.list()}
    cells = svc.results.table("tiny")
    assert len(cells) == 4 and all(c["state"] == "done" and c["regime"] for c in cells)
    cell = next(c for c in cells if c["temperature"] == 2 and c["density"] == 0.2)
    curves = svc.results.curves("tiny", 2, 0.2)
    (pair,) = curves["lmc"]  # two retrain seeds: one pair
    assert isinstance(pair["t"], np.ndarray) and pair["t"].tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    assert pair["train_error"].shape == pair["test_loss"].shape == (5,)
    assert pair["mc"] == pytest.approx(cell["mc"])
    assert curves["dense"]["epoch"].tolist() == [1, 2] and curves["dense_epoch"] == 2
    finals = [r["test_error"][-1] for r in curves["retrain"]]  # last_epochs: 1 -> the final epoch
    assert finals == pytest.approx(cell["test_error_seeds"])


def test_an_unknown_cell_names_the_plane(svc):
    with pytest.raises(BadInput, match=r"no cell T=3 d=0.2 seed=0, allowed: T in \[1, 2\]"):
        svc.results.curves("tiny", 3, 0.2)


def test_dataframe_needs_pandas_and_says_how_to_install_it(svc, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(BadInput, match="pip install pandas"):
        svc.results.frame("tiny")


def test_dataframe_when_pandas_is_installed(svc):
    pytest.importorskip("pandas")
    frame = svc.results.frame("tiny")
    assert len(frame) == 4 and {"temperature", "density", "mc", "cka", "regime"} <= set(frame.columns)
