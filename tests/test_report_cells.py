"""The report's "Inside cells" section: named cells (--cells) or, by default, one per regime."""

from __future__ import annotations

import pytest

from conftest import prepare_tiny_store, run_tprm
from tprm.analysis.cellview import cells_per_regime
from tprm.analysis.regimes import RegimeGrid


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    return prepare_tiny_store(tmp_path_factory.mktemp("report-cells"))


def report(store, out, *args):
    r = run_tprm("report", "tiny", "--store", str(store), "--out", str(out), *args, cwd=store.parent)
    return r, (out / "report.md").read_text() if (out / "report.md").exists() else ""


def section_titles(text: str) -> list[str]:
    part = text.split("## Inside cells", 1)[1].split("\n## ", 1)[0] if "## Inside cells" in text else ""
    return [line[4:] for line in part.splitlines() if line.startswith("### ")]


def test_report_shows_one_cell_per_regime_by_default(tiny_store, tmp_path):
    from tprm.service import Service

    grid = Service(tiny_store).results.grid("tiny", "regime")
    found = {r for row in grid.regime for r in row if r in ("I", "II-A", "II-B")}
    r, text = report(tiny_store, tmp_path / "default")
    assert r.returncode == 0, r.stderr
    titles = section_titles(text)
    assert len(titles) == len(found) and {t.rsplit("regime ", 1)[1] for t in titles} == found
    assert "LMC retrain seeds 0-1" in text and "training, dense seed 0" in text


def test_report_cells_named_none_and_bad(tiny_store, tmp_path):
    r, text = report(tiny_store, tmp_path / "named", "--cells", "1,20;2,0.8")
    assert r.returncode == 0, r.stderr
    titles = section_titles(text)
    assert [t.split(": regime")[0] for t in titles] == ["epochs=1, density 20%", "epochs=2, density 80%"]
    r, text = report(tiny_store, tmp_path / "none", "--cells", "none")
    assert r.returncode == 0 and text and "## Inside cells" not in text
    for bad, why in (("3,20", "--cells: 3 is not on the recipe's grid; valid: 1, 2"), ("1;2", "'1' is not T,D")):
        r, _ = report(tiny_store, tmp_path / "bad", "--cells", bad)
        assert r.returncode == 2 and why in r.stderr and r.stderr.count("\n") == 1
        assert not (tmp_path / "bad").exists()  # refused before anything is written


def test_cells_per_regime_takes_each_regimes_clearest_cell():
    regimes = [["I", "I", "II-B"], ["II-A", "II-A", "II-B"]]  # [temperature][density]
    grid = RegimeGrid(knob="epochs", hotter="fewer", temperatures=[8, 16], densities=[0.1, 0.2, 0.4],
                      regime=regimes, uncertain=[[False, True, False], [False, False, True]],
                      reason=[[""] * 3] * 2, mc=[[-0.2, -0.5, 0.0], [0.0, -0.01, 0.0]],
                      cka=[[0.5, 0.4, 0.97], [0.90, 0.80, 0.99]], endpoint_gap=[[0.0] * 3] * 2,
                      thresholds={}, sources={})
    # I: the certain cell, though the uncertain one has the deeper barrier; II-B: the certain one too
    assert cells_per_regime(grid) == [(8, 0.1), (16, 0.2), (8, 0.4)]
