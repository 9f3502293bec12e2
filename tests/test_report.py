"""`tprm report`: the folder written from the tiny store (real run), read back with real decoders."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import prepare_tiny_store, run_tprm

from tprm.analysis import figures
from tprm.analysis.phase import Grid, build_grid
from tprm.analysis.regimes import RegimeSettings, regime_grid


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("report")
    store = prepare_tiny_store(work)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        yield work, store


@pytest.fixture(scope="module")
def written(tiny):
    work, store = tiny
    r = run_tprm("report", "tiny", "--store", str(store), "--out", str(work / "rep"), "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), work, store


def test_every_listed_file_exists_and_pngs_decode(written) -> None:
    from PIL import Image

    info, work, _ = written
    names = sorted(p.rsplit("/", 1)[1] for p in info["files"])
    assert names == sorted(["report.md"] + [f"{m}.{ext}" for m in ("test_error", "normalized_test_error", "mc",
                                                                  "cka", "regimes") for ext in ("png", "svg")])
    for path in info["files"]:
        assert (work / "rep" / path.rsplit("/", 1)[1]).stat().st_size > 0
        if path.endswith(".png"):
            with Image.open(path) as im:
                im.load()  # a real decode of the pixel data
                assert im.size == figures.figure_pixels()
                assert len(im.convert("RGB").getcolors(1 << 20)) > 20  # not a blank canvas
    report = (work / "rep" / "report.md").read_text()
    for ref in re.findall(r"\]\(([^)]+)\)", report):
        assert (work / "rep" / ref).exists(), ref


def test_report_opens_with_a_paragraph_generated_from_the_settings(written) -> None:
    info, work, _ = written
    report = (work / "rep" / "report.md").read_text()
    opening = report.split("\n\n")[1]  # the paragraph under the title
    # tiny: dense epochs 2 (checkpoints 1, 2), 1 retraining epoch at lr 0.05, 2 retrain seeds
    assert "checkpoints 1, 2 of one 2-epoch run per dense seed" in opening
    assert "1 retraining epochs at lr 0.05, batch size 50; 2 retrain seeds" in opening
    assert "20%, 80%" in opening
    # the free-text description is still there, labelled as such, never as the opening
    assert "a seconds-long recipe for tests" not in opening
    assert "Description (free text from the recipe file): a seconds-long recipe for tests" in report


def test_svg_has_one_label_per_cell_and_is_deterministic(written) -> None:
    info, work, store = written
    for name in ("test_error", "mc", "cka", "regimes"):
        svg = (work / "rep" / f"{name}.svg").read_text()
        assert sorted(re.findall(r'<g id="cell-(\d+)-(\d+)">', svg)) == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
    regimes = (work / "rep" / "regimes.svg").read_text()
    labels = re.findall(r'<g id="cell-\d+-\d+">\s*<text[^>]*>([^<]*)</text>', regimes)
    assert len(labels) == 4 and set(labels) <= {"I", "II-A", "II-B", "I~", "II-A~", "II-B~", "x", "?"}
    assert "hotter" in regimes and "epochs (fewer = hotter)" in regimes and "80%" in regimes
    before = (work / "rep" / "mc.svg").read_bytes()
    r = run_tprm("report", "tiny", "--store", str(store), "--out", str(work / "rep2"), cwd=work)
    assert r.returncode == 0, r.stderr
    assert (work / "rep2" / "mc.svg").read_bytes() == before


def _md_table(report: str, heading: str) -> dict[tuple[str, str], str]:
    """{(density label, temperature label): cell text} of the first table after `heading`."""
    part = report[report.index(heading):]
    rows = [ln for ln in part.splitlines() if ln.startswith("|")]
    block = []
    for ln in rows:
        block.append(ln)
        if len(block) > 2 and not part.split(ln, 1)[1].startswith("\n|"):
            break
    head = [c.strip() for c in block[0].strip("|").split("|")]
    return {(cells[0], head[k]): cells[k] for ln in block[2:]
            for cells in [[c.strip() for c in ln.strip("|").split("|")]] for k in range(1, len(head))}


def test_markdown_tables_match_results_json(written) -> None:
    info, work, store = written
    report = (work / "rep" / "report.md").read_text()
    rows = json.loads(run_tprm("results", "tiny", "--store", str(store), "--json", cwd=work).stdout)
    assert rows
    for heading, key in (("### test error", "test_error"), ("### mc:", "mc"), ("### CKA", "cka")):
        table = _md_table(report, heading)
        assert len(table) == 4
        for r in rows:
            cell = table[(f"{100 * r['density']:.4g}%", f"{r['temperature']:g}")]
            mean, n = re.fullmatch(r"(-?\d+\.\d{4})(?: ± \S+)? \((\d+)\)", cell).groups()
            assert float(mean) == pytest.approx(r[key], abs=5e-5), (heading, r)
            assert n == "1"
    regimes = _md_table(report, "## Regime map")
    for r in rows:
        assert regimes[(f"{100 * r['density']:.4g}%", f"{r['temperature']:g}")].split()[0] == r["regime"]
    assert "## Provenance" in report and "| torch |" in report and "total compute time" in report
    assert "Data identity:" in report and '"seed": 3' in report and "name: tiny" in report


def test_html_is_one_file_with_images_inlined(tiny) -> None:
    work, store = tiny
    r = run_tprm("report", "tiny", "--store", str(store), "--out", str(work / "html"), "--format", "html",
                 cwd=work)
    assert r.returncode == 0, r.stderr
    page = (work / "html" / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 5
    assert "<table>" in page and "<h2>Provenance</h2>" in page


def test_report_compare_adds_the_comparison(tiny) -> None:
    work, store = tiny
    from tprm.service import Service

    info = Service(store).reports.report("tiny", work / "cmp", compare="tiny")
    names = {p.rsplit("/", 1)[1] for p in info["files"]}
    assert {"compare-tiny-test_error.png", "compare-tiny-regimes.svg"} <= names
    from PIL import Image

    with Image.open(work / "cmp" / "compare-tiny-test_error.png") as im:
        assert im.size == figures.figure_pixels(wide=True)
    text = (work / "cmp" / "report.md").read_text()
    assert "## Comparison with tiny" in text and "no cell changed regime" in text


def test_bad_inputs_exit_2_one_line(tiny, tmp_path) -> None:
    work, store = tiny
    r = run_tprm("report", "tiny", "--store", str(store), "--format", "pdf", cwd=work)
    assert r.returncode == 2 and "--format" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    (empty / "recipes").mkdir(parents=True)
    (empty / "recipes" / "tiny.yaml").write_text((store / "recipes" / "tiny.yaml").read_text())
    r = run_tprm("report", "tiny", "--store", str(empty), "--out", str(tmp_path / "none"), cwd=tmp_path)
    assert r.returncode == 2 and "no results" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "none").exists()


def test_cli_import_stays_light() -> None:
    code = ("import sys, tprm.cli, tprm.service; bad = [m for m in ('matplotlib', 'torch') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# -- figures (pure) -------------------------------------------------------------------------------
def _grid(values: dict, states: dict | None = None, n_seeds: int = 2) -> Grid:
    recs = []
    for (t, d), v in values.items():
        state = (states or {}).get((t, d), "done")
        for seed in range(n_seeds if state != "partial" else 1):
            recs.append({"temperature": t, "density": d, "dense_seed": seed, "state": state,
                         "test_error": v, "mc": v, "cka": 0.97, "endpoint_gap": 0.0})
    return build_grid(recs, "test_error", None, None, "lr", "larger")


def test_heatmap_flags_few_seeds_and_diverged(tmp_path) -> None:
    from matplotlib.figure import Figure

    g = _grid({(0.1, 0.2): 0.3, (0.2, 0.2): 0.4, (0.1, 0.8): 0.1, (0.2, 0.8): 0.2},
              states={(0.2, 0.2): "diverged", (0.1, 0.8): "partial"})
    ax = Figure().add_subplot()
    drawn = figures.draw_heatmap(ax, g, "t", min_seeds=2)
    assert sorted(drawn["flagged"]) == [(0, 1), (1, 0)]
    labels = {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}
    assert labels == {"cell-0-0": "0.300", "cell-1-0": "x", "cell-0-1": "0.100*", "cell-1-1": "0.200"}


def test_regime_boundaries_follow_thresholds() -> None:
    # mc: barrier (-0.2) only at the coldest temperature and low density; CKA low at the hottest
    recs = [{"temperature": t, "density": d, "mc": -0.2 if (t, d) == (0.1, 0.2) else 0.0,
             "cka": 0.9 if t == 0.3 else 0.99, "endpoint_gap": 0.0, "test_error": 0.1}
            for t in (0.1, 0.2, 0.3) for d in (0.2, 0.8)]
    rg = regime_grid(recs, None, None, "lr", "larger", RegimeSettings())
    assert rg.regime == [["I", "II-B"], ["II-B", "II-B"], ["II-A", "II-A"]]
    seg = figures._boundaries(rg)
    # mc: the Regime I cell (column 0, bottom row y=1) meets its right and upper neighbours
    assert sorted(seg["mc"]) == [((-0.5, 0.5), (0.5, 0.5)), ((0.5, 0.5), (0.5, 1.5))]
    # CKA: between column 1 and column 2, on both rows
    assert sorted(seg["cka"]) == [((1.5, -0.5), (1.5, 0.5)), ((1.5, 0.5), (1.5, 1.5))]


# -- TUI ------------------------------------------------------------------------------------------
async def test_plot_report_key_writes_the_folder(tiny) -> None:
    from test_tui_snapshots import settle
    from textual.widgets import Static

    from tprm.tui.app import TprmApp

    work, store = tiny
    app = TprmApp(str(store), poll_interval=3600)
    app.recipe = "tiny"
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("w")
        for _ in range(300):
            await settle(pilot)
            if getattr(app.screen, "report_path", None):
                break
        path = app.screen.report_path
        assert path == str(work / "reports" / "tiny" / "report.md")
        assert (work / "reports" / "tiny" / "regimes.png").exists()
        assert "report:" in str(app.screen.query_one("#plot-note", Static).render())


def test_hessian_figures_when_measured(tmp_path, monkeypatch) -> None:
    """A store whose recipe measured Hessians gets their heat maps and tables; values as recorded."""
    from test_compare import make_store, recipe_text, value_a

    monkeypatch.chdir(tmp_path)
    text = recipe_text("hess") + "metrics: {hessian: {enabled: true}}\n"
    svc = make_store(tmp_path / "store", {"hess": (text, value_a)})
    info = svc.reports.report("hess", tmp_path / "out")
    names = {p.rsplit("/", 1)[1] for p in info["files"]}
    assert {"hessian_trace.png", "hessian_trace.svg", "hessian_top.png", "hessian_top.svg"} <= names
    report = (tmp_path / "out" / "report.md").read_text()
    table = _md_table(report, "### Hessian trace")
    assert table[("20%", "4")] == "2.0000 (1)" and table[("80%", "1")] == "8.0000 (1)"
    svg = (tmp_path / "out" / "hessian_trace.svg").read_text()
    assert len(re.findall(r'<g id="cell-\d+-\d+">', svg)) == 6


def test_incomplete_median_split_still_reports_the_metrics(tmp_path, monkeypatch) -> None:
    """A median split needs a complete grid: the report says why there is no regime map, and has the rest."""
    from test_compare import recipe_text, value_a, write_results

    from tprm.service import Service

    monkeypatch.chdir(tmp_path)
    (tmp_path / "store" / "recipes").mkdir(parents=True)
    (tmp_path / "store" / "recipes" / "med.yaml").write_text(recipe_text("med") + "regimes: {split: median}\n")
    svc = Service(tmp_path / "store")
    write_results(svc, "med", value_a, unmeasured=[(1, 0.8)])
    info = svc.reports.report("med", tmp_path / "out")
    names = {p.rsplit("/", 1)[1] for p in info["files"]}
    assert "regimes.png" not in names and "mc.png" in names
    report = (tmp_path / "out" / "report.md").read_text()
    assert "No regime map: regimes.split: 'median' needs a complete grid; 1 of 6 cells" in report
    assert _md_table(report, "### mc:")[("80%", "1")] == "–"
