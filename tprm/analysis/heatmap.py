"""The phase plot as a heat map of coloured blocks, like the paper's figures.

Each (temperature, density) cell is a block whose background colour is the metric's value on a
perceptual scale (tprm.analysis.colors), with the value printed inside; blocks grow with the
space given (up to 16 x 5 characters). A colour bar with the scale's range sits under the map.
On the regime map the blocks carry the regime's colour and name, and the boundaries between
regimes are drawn between cells (┃ between columns, ━ between rows). Diverged cells are hatched,
missing ones left blank with a dot. Pure: a grid in, ANSI text out (plots.render_grid calls it
for colour terminals; plain text stays plots' glyph grid).
"""

from __future__ import annotations

import math

from tprm.analysis.colors import REGIME_RGB, Scale, paint, text_on
from tprm.analysis.gridtext import (
    compact_cell,
    compact_note,
    format_temperature,
    format_value,
    grid_title,
    strip_ansi,
    threshold_lines,
)
from tprm.analysis.phase import Grid, axis_label, format_density
from tprm.analysis.regimes import RegimeGrid, barrier_for

LABEL_W = 7                # density labels, then " │"
MIN_CELL, MAX_CELL = 7, 16  # a cell's width including its 1-character separator
COMPACT_CELL = 4           # a compact cell: separator + a 3-character value (when 7 would page)
MAX_ROWS = 5               # a cell's height at most
REGIME_NAMES = {"I": "I", "II-A": "II-A", "II-B": "II-B", "diverged": "div", "unknown": "?"}
SHORT_NAMES = {"I": "I", "II-A": "A", "II-B": "B", "diverged": "x", "unknown": "?"}
HATCH_BG, HATCH_FG = (0x3a, 0x3a, 0x3a), (0xe0, 0x60, 0x60)


def _fmt(value: float, width: int) -> str:
    return format_value(value, width)


def layout(grid: Grid | RegimeGrid, width: int, height: int) -> dict:
    """Cell size and paging: cells as large as the space allows, pages when even 7x1 do not fit."""
    regime = isinstance(grid, RegimeGrid)
    nt, nd = len(grid.temperatures), len(grid.densities)
    room_w = width - LABEL_W - 2
    if room_w < MIN_CELL:
        raise ValueError(f"width: {width} is too small; use at least {LABEL_W + 2 + MIN_CELL} columns")
    # on a short screen the footer gives way to the map: the threshold lines go first (the
    # inspector and `tprm plot --table` say them too), then the legend
    footer_lines = _footer(grid, width, "truecolor")
    keep = len(footer_lines)
    while keep > 1 and height - 3 - keep < nd:
        keep -= 1
    room_h = max(1, height - 3 - keep)
    min_cell = compact_cell(nt, room_w, MIN_CELL, COMPACT_CELL)
    per_t = max(1, min(nt, room_w // min_cell))
    # regime boundaries between rows need a line each; when they do not fit, rows touch and
    # only the boundaries between columns are drawn (a page of all rows beats two pages)
    row_lines = regime and room_h >= 2 * nd - 1
    per_d = max(1, min(nd, (room_h + 1) // 2 if row_lines else room_h))
    cw = max(min_cell, min(MAX_CELL, room_w // per_t))
    seps = per_d - 1 if row_lines else 0
    rh = max(1, min(MAX_ROWS, (room_h - seps) // per_d))
    col_pages, row_pages = math.ceil(nt / per_t) if nt else 1, math.ceil(nd / per_d) if nd else 1
    return {"per_t": per_t, "per_d": per_d, "cell_w": cw, "cell_h": rh, "row_lines": row_lines,
            "footer": keep, "compact": cw < MIN_CELL,
            "col_pages": col_pages, "row_pages": row_pages}


def render_blocks(grid: Grid | RegimeGrid, width: int = 80, height: int = 20,
                  depth: str = "truecolor", page: int = 0, barrier: float | None = None) -> str:
    """The heat map (see the module docstring) within ``width`` x ``height``; an mc map's scale
    is centred on 0 and never makes |mc| < ``barrier`` (default: the regime threshold) deep red."""
    lay = layout(grid, width, height)
    pages = lay["col_pages"] * lay["row_pages"]
    if not 0 <= page < pages:
        raise ValueError(f"page: {page} is out of range; this grid has pages 0..{pages - 1}")
    row_page, col_page = divmod(page, lay["col_pages"])
    per_t, per_d, cw, rh = lay["per_t"], lay["per_d"], lay["cell_w"], lay["cell_h"]
    cols = list(range(col_page * per_t, min(len(grid.temperatures), (col_page + 1) * per_t)))
    top = len(grid.densities) - 1 - row_page * per_d
    rows = list(range(top, max(-1, top - per_d), -1))
    regime = isinstance(grid, RegimeGrid)
    scale = None if regime else _scale(grid, barrier)

    title = grid_title(grid)
    if pages > 1:
        title += f" [page {page + 1}/{pages}]"
    lines = [title[:width], " " * (LABEL_W + 2) + f"{axis_label(grid.knob, grid.hotter)} ->",
             f"{'density':>{LABEL_W}} │" + "".join(
                 f"{format_temperature(grid.temperatures[i], cw - 1):^{cw}}" for i in cols)]
    for r, j in enumerate(rows):
        for line in range(rh):
            label = format_density(grid.densities[j]) if line == rh // 2 else ""
            parts = []
            for i in cols:
                parts.append(_separator(grid, i, j, cols, depth) if regime else " ")
                # no room for boundary lines: the cell's last line is underlined where the regime
                # of the cell below differs
                under = (regime and not lay["row_lines"] and line == rh - 1 and r < len(rows) - 1
                         and _differs(grid, i, j, i, rows[r + 1]))
                parts.append(_block(grid, scale, i, j, cw - 1, line == rh // 2, depth, under))
            lines.append(f"{label:>{LABEL_W}} │" + "".join(parts))
        if lay["row_lines"] and r < len(rows) - 1:
            lines.append(" " * LABEL_W + " │" + "".join(
                " " + ("━" * (cw - 1) if _differs(grid, i, j, i, rows[r + 1]) else " " * (cw - 1))
                for i in cols))
    lines += _footer(grid, width, depth, scale)[:lay["footer"]]
    if lay["compact"]:
        lines.append(compact_note(cw - 1, width, regime))
    return "\n".join(lines)


def _scale(grid: Grid, barrier: float | None = None) -> Scale | None:
    values = [v for row in grid.mean for v in row if v is not None and math.isfinite(v)]
    if not values:
        return None
    return Scale(grid.metric, min(values), max(values),
                 barrier_for(grid.metric) if barrier is None else barrier)


def cell_colour(grid: Grid | RegimeGrid, i: int, j: int) -> tuple[int, int, int] | None:
    """The background colour of cell (i, j); None for a cell with no value."""
    if isinstance(grid, RegimeGrid):
        return REGIME_RGB[grid.regime[i][j]]
    value = grid.mean[i][j]
    if value is None:
        return HATCH_BG if grid.state[i][j] == "diverged" else None
    scale = _scale(grid)
    return scale.rgb(value) if scale else None


def _differs(grid: RegimeGrid, i: int, j: int, i2: int, j2: int) -> bool:
    return grid.regime[i][j] != grid.regime[i2][j2]


def _separator(grid: RegimeGrid, i: int, j: int, cols: list[int], depth: str) -> str:
    """The character left of cell (i, j): a boundary when the regime changes from the cell left of it."""
    k = cols.index(i)
    if k > 0 and _differs(grid, cols[k - 1], j, i, j):
        return paint("┃", None, (0xff, 0xff, 0xff), depth, bold=True) if depth != "16" else "┃"
    return " "


def _block(grid: Grid | RegimeGrid, scale: Scale | None, i: int, j: int, w: int, middle: bool,
           depth: str, underline: bool = False) -> str:
    if isinstance(grid, RegimeGrid):
        name = grid.regime[i][j]
        bg = REGIME_RGB[name]
        label = REGIME_NAMES[name] + ("~" if grid.uncertain[i][j] else "")
        if len(label) > w:  # a compact cell: one letter (the note under the map says which)
            label = SHORT_NAMES[name] + ("~" if grid.uncertain[i][j] else "")
        text = label[:w]
        return paint(f"{text if middle else '':^{w}}", bg, text_on(bg), depth, bold=True,
                     underline=underline)
    value = grid.mean[i][j]
    if value is None:
        if grid.state[i][j] == "diverged":
            text = "diverged" if w >= 9 else "x"
            body = f"{text if middle else '':╱^{w}}"
            return paint(body, HATCH_BG, HATCH_FG, depth, bold=True)
        return f"{'·' if middle else '':^{w}}"
    bg = scale.rgb(value) if scale else (128, 128, 128)
    text = _fmt(value, min(6, w)) if middle else ""
    return paint(f"{text:^{w}}", bg, text_on(bg), depth)


def _footer(grid: Grid | RegimeGrid, width: int, depth: str, scale: Scale | None = None) -> list[str]:
    if isinstance(grid, RegimeGrid):
        parts = [paint(" ", REGIME_RGB[k], None, depth) + " " + k for k in ("I", "II-A", "II-B")]
        parts += [paint("╱", HATCH_BG, HATCH_FG, depth) + " diverged", "? no data", "~ uncertain",
                  "┃━ regime boundary"]
        return _wrap(parts, width) + threshold_lines(grid.thresholds, grid.sources, width)
    missing = "  · no data  " + paint("╱╱", HATCH_BG, HATCH_FG, depth) + " diverged"
    if scale is None:
        return ["scale: no values" + missing]
    lo, hi = _fmt(scale.lo, 6), _fmt(scale.hi, 6)
    name = "red < 0 < blue" if scale.diverging else "viridis"
    fixed = len("scale ") + len(lo) + len(hi) + 2 + len(f"  {name}")
    room = width - fixed - len("  · no data  ╱╱ diverged")
    if room < 8:  # narrow: the bar before the no-data legend
        missing, room = "", width - fixed
    n = max(4, min(40, room))
    bar = "".join(paint(" ", scale.rgb(scale.lo + (scale.hi - scale.lo) * (k + 0.5) / n), None, depth)
                  for k in range(n))
    return [f"scale {lo} {bar} {hi}  {name}" + missing]


def _wrap(parts: list[str], width: int) -> list[str]:
    """Legend items joined by two spaces, onto as many lines as ``width`` needs."""
    lines, line = [], ""
    for part in parts:
        joined = f"{line}  {part}" if line else part
        if line and len(strip_ansi(joined)) > width:
            lines.append(line)
            joined = part
        line = joined
    return lines + ([line] if line else [])
