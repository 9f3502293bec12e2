"""Rendered text of heat maps, regime maps, tables and curves: right labels at the right cells."""

import re

import pytest

from tprm.analysis.phase import build_grid
from tprm.analysis.plots import (format_density, format_value, grid_pages, render_curve, render_grid,
                                 render_table, strip_ansi)
from tprm.analysis.regimes import RegimeSettings, regime_grid

EPOCHS = [4, 8, 16, 32, 48, 64]
DENSITIES = [0.05, 0.1, 0.2, 0.4, 0.8]


def record(t, d, seed=0, state="done", **metrics):
    base = {"temperature": t, "density": d, "dense_seed": seed, "state": state}
    base.update(metrics)
    return base


def error_cells(special=(16, 0.2), value=0.777, temps=EPOCHS, dens=DENSITIES):
    cells = []
    for t in temps:
        for d in dens:
            e = value if (t, d) == special else 0.2 + 0.001 * temps.index(t) + 0.01 * dens.index(d)
            cells += [record(t, d, 0, test_error=e - 0.01), record(t, d, 1, test_error=e + 0.01)]
    return cells


def lines_of(text):
    return strip_ansi(text).splitlines()


def label_above(tick_line, end):
    """The tick label whose right edge is at column ``end`` (cells and ticks are right-aligned)."""
    return tick_line[:end].split()[-1]


def row_of(lines, density_label):
    return next(line for line in lines if line.split("│")[0].strip() == density_label)


def test_format_helpers():
    assert format_value(0.21349) == "0.213"
    assert format_value(-0.1234) == "-.123"  # the leading zero goes before a decimal does
    assert format_value(12.345) == "12.35"
    assert format_value(123456.0) == "1e5"
    assert format_value(0.0) == "0.000"
    assert format_value(None) == "·"
    assert format_density(0.05) == "5%" and format_density(0.125) == "12.5%"


def test_heat_map_puts_value_under_its_temperature_and_density():
    g = build_grid(error_cells(), "test_error", None, None, "epochs", "fewer")
    text = render_grid(g, width=80, height=20, color=True)
    assert "\x1b[" in text  # coloured
    lines = lines_of(text)
    assert all(len(line) <= 80 for line in lines) and len(lines) <= 20
    assert "epochs (fewer = hotter) ->" in lines[1]
    ticks = lines[2]
    assert ticks.split("│")[1].split() == ["64", "48", "32", "16", "8", "4"]  # coldest -> hottest
    row = row_of(lines, "20%")
    assert label_above(ticks, row.index("0.777") + 5) == "16"
    # densities: highest at the top
    labels = [line.split("│")[0].strip() for line in lines[3:8]]
    assert labels == ["80%", "40%", "20%", "10%", "5%"]
    assert "0.777" not in row_of(lines, "10%")
    # the legend spans the values: the scale's top bin starts near the max, the bottom at the min
    scale = next(line for line in lines if line.startswith("scale"))
    assert "▁0.200" in scale and "█" in scale
    assert render_grid(g, color=False) == strip_ansi(render_grid(g, color=False))


def test_hotter_larger_runs_ascending_and_marks_missing_and_diverged():
    cells = [record(0.1, 0.5, test_error=0.3), record(0.4, 0.5, state="diverged"),
             record(0.2, 0.5, test_error=0.123)]
    g = build_grid(cells, "test_error", [0.1, 0.2, 0.4, 0.8], [0.5], "sam_rho", "larger")
    lines = lines_of(render_grid(g, color=False))
    assert "sam_rho (larger = hotter) ->" in lines[1]
    ticks, row = lines[2], row_of(lines, "50%")
    assert ticks.split("│")[1].split() == ["0.1", "0.2", "0.4", "0.8"]
    assert label_above(ticks, row.index("0.123") + 5) == "0.2"
    assert label_above(ticks, row.index("x") + 1) == "0.4"
    assert label_above(ticks, row.index("·") + 1) == "0.8"


PAPER_EPOCHS = list(range(10, 170, 10))  # the paper's 16 epoch checkpoints
PAPER_DENSITIES = [0.05, 0.06, 0.07, 0.08, 0.1, 0.14, 0.2, 0.4, 0.8]


def test_large_grid_is_paged_where_even_compact_cells_do_not_fit():
    temps, dens = PAPER_EPOCHS, PAPER_DENSITIES
    g = build_grid(error_cells((30, 0.14), 0.777, temps, dens), "test_error", None, None, "epochs", "fewer")
    pages = grid_pages(g, width=60, height=24)  # 16 compact cells need 64 columns next to the labels
    assert pages == 3
    seen = []
    for p in range(pages):
        lines = lines_of(render_grid(g, width=60, height=24, page=p))
        assert all(len(line) <= 60 for line in lines) and len(lines) <= 24
        assert f"page {p + 1}/3" in lines[0]
        seen += lines[2].split("│")[1].split()
        row = row_of(lines, "14%")
        if "0.777" in row:
            assert label_above(lines[2], row.index("0.777") + 5) == "30"
    assert seen == [str(t) for t in reversed(temps)]  # every temperature once, coldest first
    with pytest.raises(ValueError, match="page"):
        render_grid(g, width=60, height=24, page=3)
    # a short terminal pages the densities as well, each page within its height
    assert grid_pages(g, width=60, height=10) == 6
    rows = set()
    for p in range(6):
        lines = lines_of(render_grid(g, width=60, height=10, page=p))
        assert len(lines) <= 10
        rows |= {line.split("│")[0].strip() for line in lines[3:] if "│" in line}
    assert rows == {format_density(d) for d in dens}


@pytest.mark.parametrize("depth", ["none", "truecolor"])
def test_paper_grid_fits_80_columns_at_once_with_compact_cells(depth):
    """16 temperatures x 9 densities at 80 columns: one page, every value under its tick, a note."""
    temps, dens = PAPER_EPOCHS, PAPER_DENSITIES
    cells = [record(t, d, mc=0.5 if (t, d) == (30, 0.14) else -round(0.001 * temps.index(t) + 0.01 * dens.index(d), 3))
             for t in temps for d in dens]
    g = build_grid(cells, "mc", temps, dens, "epochs", "fewer")
    assert grid_pages(g, width=80, height=20) == 1
    text = render_grid(g, width=80, height=20, depth=depth)
    lines = lines_of(text)
    assert len(lines) <= 20 and all(len(line) <= 80 for line in lines) and "page" not in text
    assert lines[2].split("│")[1].split() == [str(t) for t in reversed(temps)]
    assert [line.split("│")[0].strip() for line in lines if "%" in line.split("│")[0]] == \
        [format_density(d) for d in reversed(dens)]
    assert all(len(re.findall(r"-?\.\d+", row_of(lines, format_density(d)))) == 16 for d in dens)
    row = row_of(lines, "14%")
    assert label_above(lines[2], row.index(".50") + 3) == "30"  # the value under its temperature
    assert any("compact cells: values to 3 characters" in line for line in lines)
    # a regime map in compact cells names regimes by one letter and says so
    regimes = regime_grid(cells, temps, dens, "epochs", "fewer", RegimeSettings())
    rtext = lines_of(render_grid(regimes, width=80, height=24, depth=depth))
    assert "page" not in rtext[0] and any("A = II-A" in line for line in rtext)


def test_mc_table_spells_std_and_n():
    cells = [record(8, 0.1, 0, mc=-0.006), record(16, 0.1, 0, mc=-0.02), record(16, 0.1, 1, mc=-0.04)]
    g = build_grid(cells, "mc", [8, 16], [0.1], "epochs", "fewer")
    table = render_table(g, width=80)
    assert "-.006 n=1" in table and "±-" not in table      # one dense seed: no std, the count spelt
    assert "-.030±0.014 n=2" in table                       # two: mean ± std, then n


def test_regime_map_letters_flags_and_thresholds():
    metrics = {(64, 0.05): (-0.4, 0.97, 0.0), (8, 0.05): (0.0, 0.90, 0.2), (64, 0.8): (0.0, 0.98, 0.0)}
    cells = [record(t, d, mc=mc, cka=cka, endpoint_gap=gap) for (t, d), (mc, cka, gap) in metrics.items()]
    cells.append(record(8, 0.8, state="diverged"))
    s = RegimeSettings(cka_threshold=0.96, sources={"cka_threshold": "recipe quickstart.yaml regimes.cka_threshold"})
    rg = regime_grid(cells, [64, 8, 4], [0.05, 0.8], "epochs", "fewer", s)
    lines = lines_of(render_grid(rg, width=80))
    assert all(len(line) <= 80 for line in lines)
    ticks, sparse, dense = lines[2], row_of(lines, "5%"), row_of(lines, "80%")
    # a cell is its letter then the uncertainty mark, right-aligned under the tick
    assert label_above(ticks, sparse.index("I") + 2) == "64"
    assert label_above(ticks, sparse.index("A~") + 2) == "8"      # uncertain II-A
    assert label_above(ticks, dense.index("B") + 2) == "64"
    assert label_above(ticks, dense.index("x") + 2) == "8"
    assert label_above(ticks, sparse.index("?") + 2) == "4"       # no data
    footer = " ".join(" ".join(lines).split())
    assert "< -0.05 [default]" in footer and ">= 0.96 [recipe quickstart.yaml" in footer
    table = strip_ansi(render_table(rg))
    assert "A~ 0.000 0.900" in table and "I  -.400 0.970" in table


def test_table_lists_mean_spread_and_n_per_cell():
    g = build_grid(error_cells(), "test_error", None, None, "epochs", "fewer")
    lines = render_table(g, width=80).splitlines()
    assert all(len(line) <= 80 for line in lines)
    header = lines[1]
    row = next(line for line in lines if line.split("│")[0].strip() == "16")
    cell = "0.777±0.014 n=2"  # two dense seeds 0.767, 0.787: std 0.0141
    end = row.index(cell) + len(cell)
    assert header[:end].split()[-1] == "20%"
    narrow = render_table(g, width=40).splitlines()
    assert all(len(line) <= 40 for line in narrow)
    assert sum(line.startswith("epochs") for line in narrow) > 1  # columns continue in a second block


def test_render_curve_with_plotext():
    xs = [i / 10 for i in range(11)]
    text = render_curve(xs, {"train error": [0.1 + 0.3 * x * (1 - x) for x in xs], "test error": [0.2] * 11},
                        width=60, height=15, color=False, title="LMC", xlabel="t")
    lines = text.splitlines()
    assert "\x1b[" not in text and len(lines) <= 15 and all(len(line) <= 60 for line in lines)
    assert "LMC" in lines[0] and "train error" in text and "test error" in text
    y_ticks = [line.split("┤")[0] for line in lines if "┤" in line]
    assert y_ticks[0] == "0.200" and y_ticks[-1] == "0.100"  # the y range spans both series
    assert "\x1b[" in render_curve(xs, {"a": xs}, width=40, height=10, color=True)
    with pytest.raises(ValueError, match="points"):
        render_curve([0, 1], {"a": [1.0]})


# -- the heat map of coloured blocks (tprm.analysis.heatmap) -------------------------------------

from rich.text import Text  # noqa: E402

from tprm.analysis.colors import RED_BLUE, REGIME_RGB, VIRIDIS, luminance, to_16, to_256  # noqa: E402


def bg_at(line: str, col: int):
    """The background colour (r, g, b) of the visible character at ``col`` of an ANSI line."""
    text = Text.from_ansi(line)
    for span in text.spans:
        if span.start <= col < span.end and span.style.bgcolor is not None:
            return tuple(span.style.bgcolor.get_truecolor())
    return None


def underlined_at(line: str, col: int) -> bool:
    return any(span.start <= col < span.end and span.style.underline for span in Text.from_ansi(line).spans)


def block_line(text: str, density_label: str) -> str:
    return next(line for line in text.splitlines() if strip_ansi(line).split("│")[0].strip() == density_label)


def test_heat_map_blocks_colour_each_cell_by_its_value_with_the_value_inside():
    g = build_grid(error_cells(), "test_error", None, None, "epochs", "fewer")  # min 0.200, max 0.777
    text = render_grid(g, width=80, height=20, depth="truecolor")
    lines = strip_ansi(text).splitlines()
    assert all(len(line) <= 80 for line in lines) and len(lines) <= 20
    row = block_line(text, "20%")
    plain = strip_ansi(row)
    col = plain.index("0.777")
    assert bg_at(row, col) == VIRIDIS[-1]           # the maximum: the top of viridis (yellow)
    low = block_line(text, "5%")
    assert bg_at(low, strip_ansi(low).index("0.200")) == VIRIDIS[0]   # the minimum: dark purple
    # the value sits under its temperature tick
    ticks = lines[2]
    assert ticks[col - 3:col + 8].split() == ["16"]
    # a colour bar from the minimum to the maximum
    bar = next(line for line in text.splitlines() if strip_ansi(line).startswith("scale"))
    assert strip_ansi(bar).startswith("scale 0.200 ") and " 0.777  viridis" in strip_ansi(bar)
    start = len("scale 0.200 ")
    end = strip_ansi(bar).index(" 0.777") - 1
    shades = [luminance(bg_at(bar, k)) for k in range(start, end + 1)]
    assert shades == sorted(shades) and shades[0] < 0.2 and shades[-1] > 0.8  # dark -> light


def test_heat_map_grows_with_the_terminal():
    g = build_grid(error_cells(), "test_error", None, None, "epochs", "fewer")
    small = strip_ansi(render_grid(g, width=80, height=20, depth="truecolor")).splitlines()
    large = strip_ansi(render_grid(g, width=120, height=40, depth="truecolor")).splitlines()
    assert len(large) > len(small) and max(map(len, large)) > max(map(len, small))
    assert all(len(line) <= 120 for line in large) and len(large) <= 40
    # a small screen (60x20 with the inspector open leaves ~58x9): every density row still
    # shows, the footer gives way, nothing is wider than the screen
    tiny = strip_ansi(render_grid(g, width=58, height=9, depth="truecolor")).splitlines()
    assert len(tiny) <= 9 and all(len(line) <= 58 for line in tiny)
    assert [line.split("│")[0].strip() for line in tiny if "│" in line][1:] == ["80%", "40%", "20%", "10%", "5%"]


def test_mc_uses_a_diverging_scale_centred_on_zero_and_diverged_cells_are_hatched():
    cells = [record(64, 0.1, mc=-0.106), record(8, 0.1, mc=0.0), record(64, 0.8, mc=0.05),
             record(8, 0.8, state="diverged")]
    g = build_grid(cells, "mc", [64, 8], [0.1, 0.8], "epochs", "fewer")
    text = render_grid(g, width=80, height=20, depth="truecolor")
    sparse, dense = block_line(text, "10%"), block_line(text, "80%")
    assert "-0.106" in strip_ansi(sparse)  # sign and three digits inside the block
    assert bg_at(sparse, strip_ansi(sparse).index("-0.106")) == RED_BLUE[0]   # most negative: red
    assert bg_at(sparse, strip_ansi(sparse).index("0.000")) == RED_BLUE[3]    # zero: white
    assert "diverged" in strip_ansi(dense)
    assert "red < 0 < blue" in strip_ansi(text)


@pytest.mark.parametrize("barrier", [None, 0.05, 0.2])
def test_mc_below_the_threshold_never_looks_like_a_barrier(barrier, tmp_path):
    """Small |mc| (-0.011 with a -0.05 threshold) is pale in the terminal map and the PNG alike;
    a real barrier (twice the threshold or more) is full red; both scales are centred on 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tprm.analysis.figures import draw_heatmap

    limit = 0.05 if barrier is None else barrier  # None: the recipe schema's default threshold
    harmless = [record(64, 0.1, mc=-0.011), record(8, 0.1, mc=0.002)]
    g = build_grid(harmless, "mc", [64, 8], [0.1], "epochs", "fewer")
    text = render_grid(g, width=80, height=20, depth="truecolor", barrier=barrier)
    row = block_line(text, "10%")
    assert luminance(bg_at(row, strip_ansi(row).index("-0.011"))) > 0.85  # near white, not red
    fig, ax = plt.subplots()
    clim = draw_heatmap(ax, g, "mc", barrier=barrier)["image"].get_clim()
    plt.close(fig)
    assert clim == pytest.approx((-2 * limit, 2 * limit))                 # symmetric around 0
    barrier_cells = [record(64, 0.1, mc=-2 * limit), record(8, 0.1, mc=0.002)]
    g2 = build_grid(barrier_cells, "mc", [64, 8], [0.1], "epochs", "fewer")
    row2 = block_line(render_grid(g2, width=80, height=20, depth="truecolor", barrier=barrier), "10%")
    assert bg_at(row2, strip_ansi(row2).index(format_value(-2 * limit, 6))) == RED_BLUE[0]


def test_regime_map_blocks_and_boundaries_between_regimes():
    labels = {(64, 0.05): (-0.4, 0.97), (64, 0.8): (0.0, 0.98), (8, 0.05): (0.0, 0.90), (8, 0.8): (0.0, 0.90)}
    cells = [record(t, d, mc=mc, cka=cka, endpoint_gap=0.0) for (t, d), (mc, cka) in labels.items()]
    rg = regime_grid(cells, [64, 8], [0.05, 0.8], "epochs", "fewer", RegimeSettings())
    text = render_grid(rg, width=80, height=24, depth="truecolor")
    lines = strip_ansi(text).splitlines()
    sparse, dense = block_line(text, "5%"), block_line(text, "80%")
    p_sparse, p_dense = strip_ansi(sparse), strip_ansi(dense)
    assert bg_at(sparse, p_sparse.index(" I ") + 1) == REGIME_RGB["I"]
    assert bg_at(sparse, p_sparse.index("II-A")) == REGIME_RGB["II-A"]
    assert bg_at(dense, p_dense.index("II-B")) == REGIME_RGB["II-B"]
    # 5%: I | II-A differ -> a vertical boundary between the two cells; 80%: II-B, II-A differ too
    bar = p_sparse.index("┃")
    assert p_sparse.index(" I ") < bar < p_sparse.index("II-A")
    assert "┃" in p_dense
    # a horizontal boundary between the 80% and 5% rows, under the 64 column (II-B above I)
    # and under the 8 column (II-A above II-A: none)
    between = lines[lines.index(p_dense) + 1:lines.index(p_sparse)]
    sep = next(line for line in between if "━" in line)
    assert sep.index("━") < bar and "━" not in sep[bar + 1:]
    # too short for lines between rows: rows touch and the upper cell is underlined instead
    short = render_grid(rg, width=80, height=9, depth="truecolor")
    dense = block_line(short, "80%")
    assert "━" not in strip_ansi(short).split("density")[1].split("Regime I if")[0].replace("┃━", "")
    plain_dense = strip_ansi(dense)
    assert underlined_at(dense, plain_dense.index("II-B")) and not underlined_at(dense, plain_dense.index("II-A"))


def test_colour_depth_fallbacks_and_plain_text():
    g = build_grid(error_cells(), "test_error", None, None, "epochs", "fewer")
    true, c256, c16 = (render_grid(g, width=80, height=20, depth=d) for d in ("truecolor", "256", "16"))
    assert "\x1b[38;2;" in true or "\x1b[48;2;" in true
    assert "48;5;" in c256 and "48;2;" not in c256
    assert "48;5;" not in c16 and "48;2;" not in c16 and "\x1b[" in c16
    # the same layout at every depth: only the escapes differ
    assert strip_ansi(true) == strip_ansi(c256) == strip_ansi(c16)
    assert to_256(VIRIDIS[-1]) == 220 and to_16(VIRIDIS[0]) in (40, 45, 100) and to_16(VIRIDIS[-1]) in (43, 103)
    # NO_COLOR / TERM=dumb / piped: no escapes at all, exactly the plain glyph grid
    plain = render_grid(g, width=80, height=20, depth="none")
    assert "\x1b[" not in plain and plain == render_grid(g, width=80, height=20, color=False)
    assert "▁0.200" in plain  # glyph + number cells
