"""Text pieces shared by the two grid renderers (plots.py's glyph grid, heatmap.py's blocks):
number and tick formatting, a grid's title, the thresholds' footer lines, ANSI stripping."""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping

from tprm.analysis.phase import Grid
from tprm.analysis.regimes import RegimeGrid, describe_thresholds

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SLOT = 7              # one glyph-grid cell: separator + glyph + 5-character value
COMPACT_SLOT = 4      # a compact glyph-grid cell: glyph + 3-character value


def strip_ansi(text: str) -> str:
    """Text without ANSI escape sequences (for tests and plain terminals)."""
    return _ANSI.sub("", text)


def format_value(value: float | None, width: int = 5) -> str:
    """A number in at most ``width`` characters, keeping as many decimals as fit."""
    if value is None or not math.isfinite(value):
        return "·"
    for decimals in (3, 2, 1, 0):
        text = f"{value:.{decimals}f}"
        if len(text) > width and -1 < value < 1 and decimals:
            text = text.replace("0.", ".", 1)  # -0.004 -> -.004: keep the third decimal
        if len(text) <= width and not (decimals == 0 and value != 0 and text in ("0", "-0")):
            return text
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def format_temperature(value: float, width: int = SLOT - 1) -> str:
    """A tick label for a temperature value (as short as possible, <= width characters)."""
    text = f"{value:g}"
    return text if len(text) <= width else format_value(float(value), width)


def grid_title(grid: Grid | RegimeGrid) -> str:
    """The first line over a phase grid or regime map: what it shows, over how many seeds."""
    if isinstance(grid, RegimeGrid):
        return "regimes (metrics averaged over dense seeds)"
    counts = sorted({n for row in grid.n for n in row if n})
    seeds = "no data" if not counts else (f"n={counts[0]}" if len(counts) == 1 else f"n={counts[0]}-{counts[-1]}")
    return f"{grid.metric}: mean over dense seeds ({seeds})"


def threshold_lines(thresholds: Mapping, sources: Mapping, width: int = 80) -> list[str]:
    """The regime thresholds in use and where each came from, wrapped to ``width``."""
    return [line for part in describe_thresholds(dict(thresholds), dict(sources))
            for line in textwrap.wrap(part, width=width, subsequent_indent="  ")]


def compact_cell(columns: int, room: int, full: int, compact: int) -> int:
    """A cell's width: ``full`` when every column fits so, else the widest of at least
    ``compact`` that shows all ``columns`` at once (the paper's 16 x 9 grid in 80 columns);
    ``full`` again (and paging) when even ``compact`` cannot fit them."""
    if columns * full <= room or columns * compact > room:
        return full
    return room // columns


def compact_note(value_width: int, width: int, regime: bool = False) -> str:
    """The line under a map drawn with compact cells: what was cut and where the rest is."""
    if regime:
        return "compact cells: A = II-A, B = II-B, x diverged; the inspector names each cell"[:width]
    return f"compact cells: values to {value_width} characters; all digits: --table, the inspector"[:width]
