"""Paper-style figures of phase grids: heat maps, regime maps and comparisons (matplotlib, Agg).

Pure: grids in, PNG and SVG files out; nothing here reads the store. matplotlib is imported
inside the functions, so importing this module (or the CLI) stays cheap. Layout follows the
paper's figures: rows are densities (highest on top, as percentages), columns are temperatures
coldest -> hottest, so "hotter" is to the right (marked with an arrow); every cell has its value
written in it. Each cell label is an SVG group with id ``cell-<i>-<j>`` (i: temperature index,
j: density index) and the SVG is deterministic (fixed hash salt, no date, text kept as text), so
scripts and tests can read the figure back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tprm.analysis.colors import DIVERGING_METRICS, diverging_half_range
from tprm.analysis.phase import Grid, axis_label, format_density
from tprm.analysis.regimes import RegimeGrid, barrier_for

if TYPE_CHECKING:
    from matplotlib.artist import Artist

FIG_SIZE = (8.0, 5.6)         # one map, inches
WIDE_SIZE = (15.0, 5.6)       # side-by-side maps
DPI = 100                     # so one map is 800 x 560 pixels, a comparison 1500 x 560
REGIME_COLOURS = {"I": "#d7301f", "II-A": "#fdbb2d", "II-B": "#41ab5d", "diverged": "#7f7f7f",
                  "unknown": "#f0f0f0"}
REGIME_LABELS = {"I": "I", "II-A": "II-A", "II-B": "II-B", "diverged": "x", "unknown": "?"}
_CMAPS = {"test_error": "YlOrRd", "normalized_test_error": "YlOrRd", "train_error": "YlOrRd",
          "dense_test_error": "YlOrRd", "mc": "RdYlBu", "mc_loss": "RdYlBu", "cka": "viridis",
          "cka_logits": "viridis", "difference": "RdBu_r"}
_RC = {"svg.hashsalt": "tprm", "svg.fonttype": "none", "font.size": 9}
HIGHLIGHT = "#c51b7d"


def figure_pixels(wide: bool = False) -> tuple[int, int]:
    """(width, height) in pixels of the PNG of one map, or of a side-by-side comparison."""
    w, h = WIDE_SIZE if wide else FIG_SIZE
    return round(w * DPI), round(h * DPI)


def value_text(value: float | None, sign: bool = False) -> str:
    """A cell's value as written in the figure (3 decimals; 3 significant digits when large)."""
    if value is None:
        return "n/a"
    plus = "+" if sign else ""
    return f"{value:{plus}.3g}" if abs(value) >= 10 else f"{value:{plus}.3f}"


def _matrix(grid: Grid | RegimeGrid, values: Sequence[Sequence]) -> list[list]:
    """values[i][j] (temperature i, density j) -> rows of the image (highest density first)."""
    nd = len(grid.densities)
    return [[values[i][nd - 1 - r] for i in range(len(grid.temperatures))] for r in range(nd)]


def _axes_frame(ax, grid: Grid | RegimeGrid, title: str) -> None:
    nt, nd = len(grid.temperatures), len(grid.densities)
    ax.set_xticks(range(nt), [f"{t:g}" for t in grid.temperatures])
    ax.set_yticks(range(nd), [format_density(d) for d in reversed(grid.densities)])
    ax.set_xlim(-0.5, nt - 0.5)
    ax.set_ylim(nd - 0.5, -0.5)
    ax.set_xlabel(axis_label(grid.knob, grid.hotter))
    ax.set_ylabel("density (weights kept)")
    ax.set_title(title)
    ax.annotate("hotter", xy=(1.0, 1.012), xytext=(0.80, 1.012), xycoords="axes fraction",
                textcoords="axes fraction", va="bottom", ha="left", fontsize=8,
                arrowprops={"arrowstyle": "->", "lw": 1.2})


def _label_size(grid, base: float, wide: bool = False) -> float:
    """Cell label font size: smaller as columns get more (and narrower) on the fixed-size figure."""
    nt = len(grid.temperatures)
    limits = (6, 9) if wide else (8, 12)
    return base if nt <= limits[0] else base * 0.75 if nt <= limits[1] else base * 0.55


def _text_colour(rgba) -> str:
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def draw_heatmap(ax, grid: Grid, title: str, min_seeds: int = 1, centre: float | None = None,
                 cmap: str | None = None, barrier: float | None = None) -> dict:
    """One metric's heat map on ``ax``; returns {"image": the mappable, "flagged": [(i, j), ...]}.

    Cells with fewer than ``min_seeds`` dense seeds measured, or only part of their retrains, are
    hatched and their value gets a "*"; diverged cells are grey with "x"; cells without data "n/a".
    ``centre`` makes the colour scale symmetric around it (difference maps); mc maps are always
    centred on 0, wide enough that |mc| < ``barrier`` (default: the regime threshold) stays pale.
    """
    import matplotlib as mpl
    from matplotlib.patches import Rectangle

    values = [[v for v in row if v is not None] for row in grid.mean]
    flat = [v for row in values for v in row]
    lo, hi = (min(flat), max(flat)) if flat else (0.0, 1.0)
    if centre is None and grid.metric in DIVERGING_METRICS:
        half = diverging_half_range(lo, hi, barrier_for(grid.metric) if barrier is None else barrier)
        lo, hi = -half, half
    elif centre is not None:
        half = max(abs(lo - centre), abs(hi - centre)) or 1e-9
        lo, hi = centre - half, centre + half
    elif lo == hi:
        lo, hi = lo - 0.5e-3, hi + 0.5e-3
    colormap = mpl.colormaps[cmap or _CMAPS.get(grid.metric, "viridis")].with_extremes(bad="#f0f0f0")
    nan = float("nan")
    matrix = _matrix(grid, [[nan if v is None else v for v in row] for row in grid.mean])
    image = ax.imshow(matrix, cmap=colormap, vmin=lo, vmax=hi, aspect="auto", interpolation="nearest")
    norm = mpl.colors.Normalize(lo, hi)
    nd = len(grid.densities)
    flagged = []
    size = _label_size(grid, 9)
    for i in range(len(grid.temperatures)):
        for j in range(nd):
            x, y = i, nd - 1 - j
            value, state = grid.mean[i][j], grid.state[i][j]
            colour = "black"
            if state == "diverged":
                ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor="#7f7f7f", hatch="xx",
                                       edgecolor="#404040", lw=0))
                label, colour = "x", "white"
                flagged.append((i, j))
            elif value is None:
                label = "n/a"
            else:
                label = value_text(value, sign=grid.metric == "difference")
                colour = _text_colour(colormap(norm(value)))
                if state == "partial" or grid.n[i][j] < min_seeds:
                    ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///",
                                           edgecolor="#555555", lw=0))
                    label += "*"
                    flagged.append((i, j))
            ax.text(x, y, label, ha="center", va="center", fontsize=size, color=colour,
                    gid=f"cell-{i}-{j}")
    _axes_frame(ax, grid, title)
    return {"image": image, "flagged": flagged}


def _boundaries(grid: RegimeGrid) -> dict[str, list[tuple[tuple[float, float], tuple[float, float]]]]:
    """Line segments between neighbouring cells on opposite sides of the mc or CKA threshold."""
    t = grid.thresholds
    mc_limit = t.get("mc_threshold", t.get("mc_loss_threshold"))
    cka_limit = t["cka_threshold"]
    nt, nd = len(grid.temperatures), len(grid.densities)

    def known(i, j, values):
        return grid.regime[i][j] != "diverged" and values[i][j] is not None

    def sides(a, b) -> tuple[bool, bool]:
        (i, j), (k, m) = a, b
        mc_cut = (known(i, j, grid.mc) and known(k, m, grid.mc)
                  and (grid.mc[i][j] < mc_limit) != (grid.mc[k][m] < mc_limit))
        connected = (known(i, j, grid.mc) and known(k, m, grid.mc) and grid.mc[i][j] >= mc_limit
                     and grid.mc[k][m] >= mc_limit)
        cka_cut = (connected and known(i, j, grid.cka) and known(k, m, grid.cka)
                   and (grid.cka[i][j] >= cka_limit) != (grid.cka[k][m] >= cka_limit))
        return mc_cut, cka_cut

    out: dict[str, list] = {"mc": [], "cka": []}
    for i in range(nt):
        for j in range(nd):
            y = nd - 1 - j
            if i + 1 < nt:  # vertical segment between columns i and i+1
                mc_cut, cka_cut = sides((i, j), (i + 1, j))
                seg = ((i + 0.5, y - 0.5), (i + 0.5, y + 0.5))
                out["mc"] += [seg] if mc_cut else []
                out["cka"] += [seg] if cka_cut else []
            if j + 1 < nd:  # horizontal segment between density j and j+1 (one row up)
                mc_cut, cka_cut = sides((i, j), (i, j + 1))
                seg = ((i - 0.5, y - 0.5), (i + 0.5, y - 0.5))
                out["mc"] += [seg] if mc_cut else []
                out["cka"] += [seg] if cka_cut else []
    return out


def draw_regimes(ax, grid: RegimeGrid, title: str, highlight: Iterable[tuple[int, int]] = ()) -> dict:
    """The regime map on ``ax``: coloured cells, labels, the mc (solid) and CKA (dashed) boundaries.

    ``highlight`` cells (temperature index, density index) get a thick frame (changed regime).
    Returns {"boundaries": {"mc": [...], "cka": [...]}} (the segments drawn).
    """
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    nd = len(grid.densities)
    image = _matrix(grid, [[to_rgba(REGIME_COLOURS[r]) for r in row] for row in grid.regime])
    ax.imshow(image, aspect="auto", interpolation="nearest")
    for i in range(len(grid.temperatures)):
        for j in range(nd):
            regime = grid.regime[i][j]
            label = REGIME_LABELS[regime] + ("~" if grid.uncertain[i][j] else "")
            if regime == "diverged":
                ax.add_patch(Rectangle((i - 0.5, nd - 1 - j - 0.5), 1, 1, fill=False, hatch="xx",
                                       edgecolor="#404040", lw=0))
            ax.text(i, nd - 1 - j, label, ha="center", va="center", fontsize=_label_size(grid, 10, wide=True),
                    weight="bold",
                    color=_text_colour(to_rgba(REGIME_COLOURS[regime])), gid=f"cell-{i}-{j}")
    for i, j in highlight:
        ax.add_patch(Rectangle((i - 0.46, nd - 1 - j - 0.46), 0.92, 0.92, fill=False,
                               edgecolor=HIGHLIGHT, lw=3))
    segments = _boundaries(grid)
    for kind, style in (("mc", "-"), ("cka", "--")):
        for (x0, y0), (x1, y1) in segments[kind]:
            ax.plot([x0, x1], [y0, y1], color="black", lw=2.5, ls=style, solid_capstyle="butt")
    _axes_frame(ax, grid, title)
    return {"boundaries": segments}


def regime_legend(ax, grid: RegimeGrid, changed: bool = False) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    t = grid.thresholds
    mc_name = "mc_threshold" if "mc_threshold" in t else "mc_loss_threshold"
    basis = "train error" if t["mc_on"] == "error" else "train loss"
    handles: list[Artist] = [Patch(facecolor=REGIME_COLOURS[r], label=name)
               for r, name in (("I", "Regime I"), ("II-A", "Regime II-A"), ("II-B", "Regime II-B"),
                               ("diverged", "diverged"), ("unknown", "unknown (no data / CKA undefined)"))]
    handles += [Line2D([], [], color="black", lw=2.5, label=f"mc ({basis}) = {t[mc_name]:g}"),
                Line2D([], [], color="black", lw=2.5, ls="--",
                       label=f"CKA ({t['cka_output']}) = {t['cka_threshold']:.4g}")]
    if changed:
        handles.append(Patch(facecolor="none", edgecolor=HIGHLIGHT, lw=3, label="regime changed"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)


def _figure(wide: bool = False):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=WIDE_SIZE if wide else FIG_SIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, stem: Path, note: str | None = None) -> list[Path]:
    """Write ``stem``.png and ``stem``.svg (deterministic SVG); returns both paths."""
    import matplotlib as mpl

    if note:
        fig.text(0.01, 0.01, note, fontsize=7, color="#444444", va="bottom", ha="left")
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    with mpl.rc_context(_RC):
        fig.savefig(paths[0], format="png", dpi=DPI, metadata={"Software": None})
        fig.savefig(paths[1], format="svg", metadata={"Date": None, "Creator": None})
    return paths


def _styled(build):
    """Run a figure builder with our rc settings (fonts, hash salt) in force."""
    import matplotlib as mpl

    with mpl.rc_context(_RC):
        return build()


def metric_figure(grid: Grid, stem: Path, title: str, min_seeds: int = 1, note: str | None = None,
                  barrier: float | None = None) -> list[Path]:
    """Heat map of one metric -> PNG + SVG (``barrier``: see draw_heatmap)."""
    def build():
        fig = _figure()
        ax = fig.add_axes((0.11, 0.14, 0.68, 0.76))
        drawn = draw_heatmap(ax, grid, title, min_seeds, barrier=barrier)
        fig.colorbar(drawn["image"], cax=fig.add_axes((0.82, 0.14, 0.025, 0.76)))
        marks = "* hatched: fewer dense seeds than the recipe's, or retrains missing   x: diverged"
        return _save(fig, stem, note or marks)
    return _styled(build)


def regime_figure(grid: RegimeGrid, stem: Path, title: str, note: str | None = None) -> list[Path]:
    """The regime map with its threshold boundaries -> PNG + SVG."""
    def build():
        fig = _figure()
        ax = fig.add_axes((0.11, 0.14, 0.58, 0.76))
        draw_regimes(ax, grid, title)
        regime_legend(ax, grid)
        return _save(fig, stem, note)
    return _styled(build)


def comparison_figure(a: Grid, b: Grid, diff: Grid, stem: Path, titles: Sequence[str],
                      min_seeds: tuple[int, int] = (1, 1), note: str | None = None) -> list[Path]:
    """A, B and the difference map B - A side by side -> PNG + SVG."""
    def build():
        fig = _figure(wide=True)
        boxes = ((0.05, 0.14, 0.24, 0.76), (0.37, 0.14, 0.24, 0.76), (0.69, 0.14, 0.24, 0.76))
        for k, (grid, box, title) in enumerate(zip((a, b, diff), boxes, titles)):
            ax = fig.add_axes(box)
            drawn = draw_heatmap(ax, grid, title, min_seeds[k] if k < 2 else 1,
                                 centre=0.0 if k == 2 else None)
            fig.colorbar(drawn["image"], cax=fig.add_axes((box[0] + box[2] + 0.007, 0.14, 0.008, 0.76)))
        return _save(fig, stem, note)
    return _styled(build)


def regime_comparison_figure(a: RegimeGrid, b: RegimeGrid, changed: Iterable[tuple[int, int]], stem: Path,
                             titles: Sequence[str], note: str | None = None) -> list[Path]:
    """The two regime maps side by side, cells that changed regime framed -> PNG + SVG."""
    changed = list(changed)

    def build():
        fig = _figure(wide=True)
        left = fig.add_axes((0.05, 0.14, 0.33, 0.76))
        right = fig.add_axes((0.45, 0.14, 0.33, 0.76))
        draw_regimes(left, a, titles[0], changed)
        draw_regimes(right, b, titles[1], changed)
        regime_legend(right, b, changed=True)
        return _save(fig, stem, note)
    return _styled(build)


# -- the figures of a report ------------------------------------------------------------------------
def report_figures(grids: dict, regimes, folder: Path, recipe_name: str, min_seeds: int,
                   titles: dict[str, str]) -> tuple[list[Path], list[dict], dict | None, list[str]]:
    """A PNG + SVG per metric grid and for the regime map (when there is one) in `folder`:
    (files, metric figure entries, regime figure entry or None, threshold lines)."""
    from tprm.analysis.regimes import describe_thresholds

    files: list[Path] = []
    figs = []
    for name, g in grids.items():
        paths = metric_figure(g, folder / name, f"{recipe_name}: {name}", min_seeds,
                              barrier=barrier_for(g.metric, regimes.thresholds if regimes else None))
        files += paths
        figs.append({"metric": name, "title": titles.get(name, name),
                     "png": paths[0].name, "svg": paths[1].name})
    threshold_lines: list[str] = []
    regime_fig = None
    if regimes is not None:
        threshold_lines = describe_thresholds(regimes.thresholds, regimes.sources)
        paths = regime_figure(regimes, folder / "regimes", f"{recipe_name}: regimes",
                              note="\n".join(threshold_lines[:2]))
        files += paths
        regime_fig = {"metric": "regime", "title": "regime map", "png": paths[0].name,
                      "svg": paths[1].name}
    return files, figs, regime_fig, threshold_lines


def comparison_figures(c: dict, folder: Path, metric: str) -> tuple[list[Path], list[dict]]:
    """The figures of a comparison `c` (as svc.reports.compare returns it): metric maps A, B and
    B - A, and the two regime maps with the changed cells framed (when both exist)."""
    stem = f"compare-{c['b']}"
    titles = (f"A {c['a']}", f"B {c['b']}", f"B - A ({metric})")
    files = comparison_figure(c["grid_a"], c["grid_b"], c["difference"],
                              folder / f"{stem}-{metric}", titles, note=c["note"])
    figs = [{"title": f"{metric}: A, B and B - A", "png": files[0].name, "svg": files[1].name}]
    if c["regimes_a"] is not None:
        changed = [(x["i"], x["j"]) for x in c["regime_changes"]]
        rfiles = regime_comparison_figure(c["regimes_a"], c["regimes_b"], changed,
                                          folder / f"{stem}-regimes", titles[:2], note=c["note"])
        figs.append({"title": "regimes: A and B, changed cells framed",
                     "png": rfiles[0].name, "svg": rfiles[1].name})
        files += rfiles
    return files, figs
