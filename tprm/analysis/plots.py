"""Text rendering of phase grids, regime maps and curves: pure, data in, text out.

The heat map is our own character grid, not plotext's matrix_plot (which shows values only as
colour and can shift custom ticks by one cell): every cell prints its value with a shade glyph
(readable without colour), ticks are the real temperature values and density percentages, and
a scale line maps glyph/colour to value. Grids too large for the given size are paged.
Curves (LMC, training curves) use plotext.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotext as plt

from tprm.analysis.gridtext import COMPACT_SLOT
from tprm.analysis.gridtext import SLOT as _SLOT
from tprm.analysis.gridtext import (
    compact_cell,
    compact_note,
    format_temperature,
    format_value,
    grid_title,
    strip_ansi,
    threshold_lines,
)
from tprm.analysis.heatmap import render_blocks
from tprm.analysis.phase import Grid, axis_label, format_density
from tprm.analysis.regimes import RegimeGrid

GLYPHS = "▁▂▃▄▅▆▇█"
# 256-colour foreground ramp, low (blue) -> high (red), one per glyph level.
_RAMP = (27, 33, 38, 44, 149, 220, 208, 196)
_REGIME_CELL = {"I": ("I", 196), "II-A": ("A", 220), "II-B": ("B", 40), "diverged": ("x", 201),
                "unknown": ("?", 244)}
_LABEL_W = 7          # density label column, then " │"
_MARKERS = ("o", "x", "+", "*", "#", "@", "%", "=")


def _paint(text: str, colour: int | None, color: bool) -> str:
    return f"\x1b[38;5;{colour}m{text}\x1b[0m" if color and colour is not None else text


def _level(value: float, lo: float, hi: float) -> int:
    if hi <= lo:
        return 0
    return min(len(GLYPHS) - 1, int((value - lo) / (hi - lo) * len(GLYPHS)))


def _slot(grid: Grid | RegimeGrid, width: int) -> int:
    """Columns per cell: 7, or fewer (down to glyph + 3 characters) when that shows every
    temperature at once (tprm.analysis.gridtext.compact_cell)."""
    if width < _LABEL_W + 2 + _SLOT:
        raise ValueError(f"width: {width} is too small; use at least {_LABEL_W + 2 + _SLOT} columns")
    return compact_cell(len(grid.temperatures), width - _LABEL_W - 2, _SLOT, COMPACT_SLOT)


def _layout(grid: Grid | RegimeGrid, width: int, height: int, footer_lines: int) -> tuple[int, int, int, int]:
    """(temperatures per page, densities per page, column pages, row pages)."""
    per_page_t = max(1, (width - _LABEL_W - 2) // _slot(grid, width))
    per_page_d = max(1, height - 3 - footer_lines)
    nt, nd = len(grid.temperatures), len(grid.densities)
    return per_page_t, per_page_d, max(1, math.ceil(nt / per_page_t)), max(1, math.ceil(nd / per_page_d))


def _footer_of(grid: Grid | RegimeGrid, width: int, color: bool) -> list[str]:
    """The lines under the map: scale or legend, and the compact-cells note when cells are cut."""
    slot = _slot(grid, width)
    note = [] if slot == _SLOT else [compact_note(_value_width(slot), width, isinstance(grid, RegimeGrid))]
    return _footer(grid, width, color) + note


def _value_width(slot: int) -> int:
    """Characters of a value in a cell of ``slot`` columns (after its glyph and a space if room)."""
    return min(5, slot - 2) if slot >= 5 else slot - 1


def grid_pages(grid: Grid | RegimeGrid, width: int = 80, height: int = 20) -> int:
    """How many pages :func:`render_grid` needs for this grid at this size."""
    _, _, col_pages, row_pages = _layout(grid, width, height, len(_footer_of(grid, width, False)))
    return col_pages * row_pages


def render_grid(grid: Grid | RegimeGrid, width: int = 80, height: int = 20, color: bool = True,
                page: int = 0, depth: str | None = None, barrier: float | None = None) -> str:
    """Heat map (or regime map) of the temperature x density plane as text.

    Columns are temperatures, coldest left -> hottest right (the axis title states the knob's
    hotter direction); rows are densities, highest at the top. At most ``width`` columns and
    ``height`` lines: larger grids are split into pages (``page`` counts from 0, columns first).
    ``depth`` "truecolor" | "256" | "16" draws coloured blocks (tprm.analysis.heatmap); "none"
    or ``color=False`` the plain glyph + number grid; None (the default) that grid with
    coloured glyphs. ``barrier``: an mc map's threshold (tprm.analysis.colors.Scale).
    """
    if depth is not None and depth != "none" and color:
        return render_blocks(grid, width=width, height=height, depth=depth, page=page, barrier=barrier)
    if depth == "none":
        color = False
    if height < 1:
        raise ValueError(f"height: {height} is too small; use at least 1")
    footer = _footer_of(grid, width, color)
    slot = _slot(grid, width)
    per_t, per_d, col_pages, row_pages = _layout(grid, width, height, len(footer))
    pages = col_pages * row_pages
    if not 0 <= page < pages:
        raise ValueError(f"page: {page} is out of range; this grid has pages 0..{pages - 1}")
    row_page, col_page = divmod(page, col_pages)
    cols = list(range(col_page * per_t, min(len(grid.temperatures), (col_page + 1) * per_t)))
    top = len(grid.densities) - 1 - row_page * per_d
    rows = list(range(top, max(-1, top - per_d), -1))

    title = grid_title(grid)
    if pages > 1:
        title += (f" [page {page + 1}/{pages}: {grid.knob} {cols[0] + 1}-{cols[-1] + 1}"
                  f" of {len(grid.temperatures)}, densities {rows[-1] + 1}-{rows[0] + 1} of {len(grid.densities)}]")
    lines = [title, " " * (_LABEL_W + 2) + f"{axis_label(grid.knob, grid.hotter)} ->",
             f"{'density':>{_LABEL_W}} │" + "".join(
                 f"{format_temperature(grid.temperatures[i], slot - 1):>{slot}}" for i in cols)]
    for j in rows:
        cells = "".join(_cell(grid, i, j, color, slot) for i in cols)
        lines.append(f"{format_density(grid.densities[j]):>{_LABEL_W}} │{cells}")
    lines += footer
    return "\n".join(_fit(line, width) for line in lines)


def _fit(line: str, width: int) -> str:
    """Cut a (possibly coloured) line to ``width`` visible characters."""
    if len(strip_ansi(line)) <= width:
        return line
    plain = strip_ansi(line)
    return plain[: width - 1] + "…"


def _range(grid: Grid) -> tuple[float, float] | None:
    values = [v for row in grid.mean for v in row if v is not None]
    return (min(values), max(values)) if values else None


def _cell(grid: Grid | RegimeGrid, i: int, j: int, color: bool, slot: int = _SLOT) -> str:
    if isinstance(grid, RegimeGrid):
        letter, colour = _REGIME_CELL[grid.regime[i][j]]
        mark = "~" if grid.uncertain[i][j] else " "
        return " " * (slot - 2) + _paint(letter + mark, colour, color)
    value = grid.mean[i][j]
    if value is None:
        mark = "x" if grid.state[i][j] == "diverged" else "·"
        return f"{mark:>{slot}}"
    lo, hi = _range(grid)  # type: ignore[misc]
    level = _level(value, lo, hi)
    text = GLYPHS[level] + format_value(value, _value_width(slot))
    return " " * (slot - len(text)) + _paint(text, _RAMP[level], color)


def _footer(grid: Grid | RegimeGrid, width: int, color: bool) -> list[str]:
    if isinstance(grid, RegimeGrid):
        legend = "  ".join(_paint(letter, colour, color) + " " + name for letter, colour, name in (
            ("I", 196, "Regime I"), ("A", 220, "II-A"), ("B", 40, "II-B"), ("x", 201, "diverged"),
            ("?", 244, "no data"))) + "  ~ uncertain"
        return [legend] + threshold_lines(grid.thresholds, grid.sources, width)
    bounds = _range(grid)
    if bounds is None:
        scale = "scale: no values"
    elif bounds[1] <= bounds[0]:
        scale = f"scale: all {format_value(bounds[0])}"
    else:
        lo, hi = bounds
        step = (hi - lo) / len(GLYPHS)
        scale = "scale (low->high): " + " ".join(
            _paint(GLYPHS[k] + format_value(lo + k * step), _RAMP[k], color) for k in range(len(GLYPHS)))
        if len(strip_ansi(scale)) > width:
            scale = (f"scale: {_paint(GLYPHS[0], _RAMP[0], color)} {format_value(lo)} (low) .. "
                     f"{_paint(GLYPHS[-1], _RAMP[-1], color)} {format_value(hi)} (high)")
    return [scale, "· no data   x diverged"]


def render_table(grid: Grid | RegimeGrid, width: int = 80) -> str:
    """Every cell's numbers: mean ± spread and n (or regime, mc and CKA for a regime map).

    Rows are temperatures (coldest first), columns densities; columns that do not fit in
    ``width`` continue in a further block below.
    """
    temps, dens = grid.temperatures, grid.densities
    if isinstance(grid, RegimeGrid):
        head = f"regimes: label mc CKA ({grid.thresholds['cka_output']}); ~ uncertain"
        texts = [[_regime_text(grid, i, j) for j in range(len(dens))] for i in range(len(temps))]
    else:
        head = f"{grid.metric}: mean±std over dense seeds (std only when n>1), n=seeds"
        texts = [[_number_text(grid, i, j) for j in range(len(dens))] for i in range(len(temps))]
    label_w = max([len(grid.knob)] + [len(format_temperature(t, 8)) for t in temps])
    slot = max([len(format_density(d)) for d in dens] + [len(t) for row in texts for t in row] + [1]) + 1
    per_block = max(1, (width - label_w - 2) // slot)
    lines = [head]
    for start in range(0, max(1, len(dens)), per_block):
        cols = range(start, min(len(dens), start + per_block))
        lines.append(f"{grid.knob:>{label_w}} │" + "".join(f"{format_density(dens[j]):>{slot}}" for j in cols))
        for i, t in enumerate(temps):
            lines.append(f"{format_temperature(t, 8):>{label_w}} │" + "".join(f"{texts[i][j]:>{slot}}" for j in cols))
    return "\n".join(_fit(line, width) for line in lines)


def _number_text(grid: Grid, i: int, j: int) -> str:
    mean = grid.mean[i][j]
    if mean is None:
        return "diverged" if grid.state[i][j] == "diverged" else "·"
    spread = grid.spread[i][j]
    if spread is None:  # one dense seed: no std to show, only the count
        return f"{format_value(mean)} n={grid.n[i][j]}"
    return f"{format_value(mean)}±{format_value(spread)} n={grid.n[i][j]}"


def _regime_text(grid: RegimeGrid, i: int, j: int) -> str:
    label = _REGIME_CELL[grid.regime[i][j]][0] + ("~" if grid.uncertain[i][j] else "")
    return f"{label:<2} {format_value(grid.mc[i][j])} {format_value(grid.cka[i][j])}"


def render_curve(xs: Sequence[float], ys_by_label: Mapping[str, Sequence[float | None]], width: int = 80,
                 height: int = 20, color: bool = True, title: str | None = None, xlabel: str | None = None,
                 ylabel: str | None = None, dashed: Mapping[str, float] | None = None,
                 marks: Sequence[float] = ()) -> str:
    """Line plot of one or more series over shared ``xs`` (LMC or training curves) via plotext.

    Without colour each series gets its own marker character so lines stay distinguishable.
    None/NaN points are left out of their series. ``dashed``: labelled horizontal levels drawn
    as dashes (an LMC curve's endpoints' mean); ``marks``: x positions drawn as vertical lines
    (t*, the pruning point of a training curve).
    """
    if not ys_by_label:
        raise ValueError("render_curve: ys_by_label is empty; give at least one series")
    for label, ys in ys_by_label.items():
        if len(ys) != len(xs):
            raise ValueError(f"render_curve: series {label!r} has {len(ys)} points but xs has {len(xs)}")
    plt.clf()
    plt.plotsize(width, height)
    plt.theme("pro" if color else "clear")
    for k, (label, ys) in enumerate(ys_by_label.items()):
        points = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
        if not points:
            continue
        kwargs = {} if color else {"marker": _MARKERS[k % len(_MARKERS)]}
        plt.plot([p[0] for p in points], [p[1] for p in points], label=str(label), **kwargs)
    if xs:
        _dashes(dashed or {}, min(xs), max(xs), width)
    for x in marks:
        plt.vline(x, "gray" if color else None)
    if title:
        plt.title(title)
    if xlabel:
        plt.xlabel(xlabel)
    if ylabel:
        plt.ylabel(ylabel)
    text = plt.build()
    plt.clf()
    return text if color else strip_ansi(text)


def _dashes(levels: Mapping[str, float], x0: float, x1: float, width: int) -> None:
    """Each level as a horizontal row of dashes over [x0, x1] (every third column)."""
    n = max(2, width // 3)
    xs = [x0 + (x1 - x0) * k / (n - 1) for k in range(n)]
    for label, y in levels.items():
        if y is not None and math.isfinite(y):
            plt.scatter(xs, [y] * n, marker="-", label=str(label))
