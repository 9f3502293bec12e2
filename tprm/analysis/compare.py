"""Two phase grids side by side: axis alignment, difference map (B - A), regime changes, text.

Pure: grids in, grids and text out. Two recipes compare when they vary the same knob and share
at least one temperature value and one density; when the axes only overlap, the shared cells
are compared and the result says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from tprm.analysis.phase import Grid, axis_label, format_density, same_value
from tprm.analysis.regimes import RegimeGrid

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SHORT_REGIME = {"I": "I", "II-A": "A", "II-B": "B", "diverged": "x", "unknown": "?"}


class AxisMismatch(ValueError):
    """The two grids cannot be compared; str() is one line naming the axis that differs."""


@dataclass
class Alignment:
    """The shared axes of two grids (temperatures coldest first, densities ascending)."""

    knob: str
    hotter: str
    temperatures: list[float]
    densities: list[float]
    partial: bool
    only_a: dict = field(default_factory=dict)   # {"temperatures": [...], "densities": [...]}
    only_b: dict = field(default_factory=dict)

    @property
    def cells(self) -> list[tuple[float, float]]:
        return [(t, d) for t in self.temperatures for d in self.densities]

    def note(self) -> str:
        """One line: all cells compared, or which shared cells a partial overlap compares."""
        n = len(self.cells)
        if not self.partial:
            return (f"aligned grids: {len(self.temperatures)} {self.knob} values x "
                    f"{len(self.densities)} densities ({n} cells)")
        extra = "; ".join(f"{who} only: {_axis_values(self.knob, side)}"
                          for who, side in (("A", self.only_a), ("B", self.only_b))
                          if side.get("temperatures") or side.get("densities"))
        return (f"partial overlap: comparing the {n} shared cells ({self.knob} "
                f"{', '.join(f'{t:g}' for t in self.temperatures)} x densities "
                f"{', '.join(format_density(d) for d in self.densities)}); {extra}")


def _axis_values(knob: str, side: dict) -> str:
    parts = []
    if side.get("temperatures"):
        parts.append(f"{knob} " + ", ".join(f"{t:g}" for t in side["temperatures"]))
    if side.get("densities"):
        parts.append("densities " + ", ".join(format_density(d) for d in side["densities"]))
    return " and ".join(parts)


def _minus(values: Sequence[float], other: Sequence[float]) -> list[float]:
    return [v for v in values if not any(same_value(v, o) for o in other)]


def align(a: Grid | RegimeGrid, b: Grid | RegimeGrid, names: tuple[str, str] = ("A", "B")) -> Alignment:
    """Shared axes of two grids; AxisMismatch (naming the axis) when they cannot be compared."""
    if a.knob != b.knob:
        raise AxisMismatch(f"temperature knob differs: {names[0]} varies {a.knob}, {names[1]} varies "
                           f"{b.knob}; compare recipes over the same knob")
    temps = [t for t in a.temperatures if any(same_value(t, u) for u in b.temperatures)]
    dens = [d for d in a.densities if any(same_value(d, u) for u in b.densities)]
    if not temps:
        raise AxisMismatch(f"temperature values differ: {names[0]} has {a.knob} "
                           f"{', '.join(f'{t:g}' for t in a.temperatures)}, {names[1]} has "
                           f"{', '.join(f'{t:g}' for t in b.temperatures)}; no value in common")
    if not dens:
        raise AxisMismatch(f"densities differ: {names[0]} has {', '.join(format_density(d) for d in a.densities)}, "
                           f"{names[1]} has {', '.join(format_density(d) for d in b.densities)}; "
                           "no density in common")
    only_a = {"temperatures": _minus(a.temperatures, temps), "densities": _minus(a.densities, dens)}
    only_b = {"temperatures": _minus(b.temperatures, temps), "densities": _minus(b.densities, dens)}
    partial = any(only_a.values()) or any(only_b.values())
    return Alignment(a.knob, a.hotter, temps, dens, bool(partial), only_a, only_b)


def restrict(grid, temperatures: Sequence[float], densities: Sequence[float]):
    """The sub-grid (Grid or RegimeGrid) at the given temperatures and densities."""
    rows = [next(i for i, t in enumerate(grid.temperatures) if same_value(t, v)) for v in temperatures]
    cols = [next(j for j, d in enumerate(grid.densities) if same_value(d, v)) for v in densities]
    names = (("mean", "spread", "n", "values", "state") if isinstance(grid, Grid) else
             ("regime", "uncertain", "reason", "mc", "cka", "endpoint_gap"))
    picked = {name: [[getattr(grid, name)[i][j] for j in cols] for i in rows] for name in names}
    return replace(grid, temperatures=[grid.temperatures[i] for i in rows],
                   densities=[grid.densities[j] for j in cols], **picked)


def difference(a: Grid, b: Grid) -> Grid:
    """B - A per cell (None where either has no value); n is the smaller of the two counts."""
    nt, nd = len(a.temperatures), len(a.densities)
    mean = [[None if a.mean[i][j] is None or b.mean[i][j] is None else b.mean[i][j] - a.mean[i][j]
             for j in range(nd)] for i in range(nt)]
    state = [["diverged" if "diverged" in (a.state[i][j], b.state[i][j]) else
              "done" if mean[i][j] is not None else "missing" for j in range(nd)] for i in range(nt)]
    return Grid(metric="difference", knob=a.knob, hotter=a.hotter, temperatures=list(a.temperatures),
                densities=list(a.densities), mean=mean,
                spread=[[None] * nd for _ in range(nt)],
                n=[[min(a.n[i][j], b.n[i][j]) for j in range(nd)] for i in range(nt)],
                values=[[[] if (v := mean[i][j]) is None else [v] for j in range(nd)] for i in range(nt)],
                state=state)


def regime_changes(a: RegimeGrid, b: RegimeGrid) -> list[dict]:
    """Cells whose regime differs between the (aligned) regime grids."""
    out = []
    for i, t in enumerate(a.temperatures):
        for j, d in enumerate(a.densities):
            if a.regime[i][j] != b.regime[i][j]:
                out.append({"i": i, "j": j, "temperature": t, "density": d,
                            "a": a.regime[i][j], "b": b.regime[i][j]})
    return out


# -- text ---------------------------------------------------------------------------------------
def _table(grid, text: Callable[[int, int], str], title: str) -> list[str]:
    """A grid as text lines: densities (highest first) down, temperatures (coldest first) across."""
    nt = len(grid.temperatures)
    cells = {(i, j): text(i, j) for i in range(nt) for j in range(len(grid.densities))}
    width = max([len(f"{t:g}") for t in grid.temperatures] + [_visible(c) for c in cells.values()] + [1])
    head = "density │" + "".join(f" {f'{t:g}':>{width}}" for t in grid.temperatures)
    lines = [title, " " * 9 + axis_label(grid.knob, grid.hotter) + " ->", head]
    for j in reversed(range(len(grid.densities))):
        lines.append(f"{format_density(grid.densities[j]):>7} │"
                     + "".join(" " * (1 + width - _visible(cells[i, j])) + cells[i, j] for i in range(nt)))
    return lines


def _visible(text: str) -> int:
    return len(_ANSI.sub("", text))


def _number(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "·"
    if abs(value) >= 10:
        return f"{value:+.3g}" if sign else f"{value:.3g}"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def grid_lines(grid: Grid, title: str, sign: bool = False) -> list[str]:
    """A numeric grid as text ("x" diverged, "·" no data)."""
    return _table(grid, lambda i, j: "x" if grid.state[i][j] == "diverged" else _number(grid.mean[i][j], sign),
                  title)


def regime_lines(grid: RegimeGrid, title: str, changed: set[tuple[int, int]] | frozenset[tuple[int, int]] = frozenset(),
                 color: bool = False) -> list[str]:
    """A regime map as text; changed cells get a "*" (and reverse video with color)."""
    def cell(i: int, j: int) -> str:
        text = _SHORT_REGIME[grid.regime[i][j]] + ("*" if (i, j) in changed else " ")
        return f"\x1b[7m{text}\x1b[0m" if color and (i, j) in changed else text
    return _table(grid, cell, title)


def side_by_side(left: list[str], right: list[str], width: int = 80, gap: int = 4) -> list[str]:
    """Two blocks of lines next to each other when they fit in ``width``, else one above the other."""
    visible = _visible
    lw = max((visible(s) for s in left), default=0)
    rw = max((visible(s) for s in right), default=0)
    if lw + gap + rw > width:
        return [*left, "", *right]
    rows = max(len(left), len(right))
    left = left + [""] * (rows - len(left))
    right = right + [""] * (rows - len(right))
    return [(a + " " * (lw - visible(a) + gap) + b).rstrip() for a, b in zip(left, right)]


def summary_line(diff: Grid) -> str:
    """Mean |B - A| over the compared cells and how many cells B is higher / lower in."""
    values = [v for row in diff.mean for v in row if v is not None]
    if not values:
        return "no cell has a value in both grids"
    higher = sum(v > 0 for v in values)
    lower = sum(v < 0 for v in values)
    mean_abs = sum(abs(v) for v in values) / len(values)
    return (f"B - A over {len(values)} cells: mean {sum(values) / len(values):+.4f}, mean abs "
            f"{mean_abs:.4f}; B higher in {higher}, lower in {lower}")


def changes_lines(changes: list[dict], knob: str, width: int = 80) -> list[str]:
    """The cells that changed regime, wrapped to ``width``."""
    import textwrap

    if not changes:
        return ["no cell changed regime"]
    items = "; ".join(f"{knob}={c['temperature']:g} at {format_density(c['density'])}: {c['a']} -> {c['b']}"
                      for c in changes)
    return textwrap.wrap(f"{len(changes)} cell(s) changed regime (*): {items}", width,
                         subsequent_indent="  ", break_on_hyphens=False)


# Settings that do not change a result (where and how fast it runs) or are compared as axes.
_NOT_COMPARED = ("name", "description", "temperature.values", "densities", "execution.")


def _flat(data, prefix: str = "") -> dict:
    """A nested recipe dict as {dotted key: value} (lists and model kwargs kept whole)."""
    out = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted != "model.kwargs":
            out.update(_flat(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def differing_settings(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """(dotted key, A's value, B's value) of every setting two recipes (as resolved dicts) set
    differently, other than the knob's values and the densities (the aligned axes) and what only
    decides where a job runs (execution, except the numeric precision)."""
    fa, fb = _flat(a), _flat(b)
    keys = [k for k in dict.fromkeys([*fa, *fb])
            if k == "execution.precision" or not any(k == n or (n.endswith(".") and k.startswith(n))
                                                     for n in _NOT_COMPARED)]
    return [(k, fa.get(k), fb.get(k)) for k in keys if fa.get(k) != fb.get(k)]


def settings_lines(diffs: Sequence[tuple[str, object, object]], knob: str, width: int = 80) -> list[str]:
    """The settings that differ besides the knob's values, wrapped to ``width`` (the reader must
    know that a cell of A and one of B at the same temperature were not made the same way)."""
    import textwrap

    if not diffs:
        return [f"same settings apart from the {knob} values and densities"]
    items = "; ".join(f"{k} {_shown(va)} vs {_shown(vb)}" for k, va, vb in diffs)
    return textwrap.wrap(f"other settings differ ({len(diffs)}; A vs B): {items}", width,
                         subsequent_indent="  ", break_on_hyphens=False)


def _shown(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return "null" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def render_comparison(names: tuple[str, str], metric: str, a: Grid, b: Grid, diff: Grid,
                      ra: RegimeGrid | None, rb: RegimeGrid | None, alignment: Alignment,
                      width: int = 80, color: bool = False,
                      settings: Sequence[tuple[str, object, object]] | None = None) -> str:
    """The terminal text of `tprm compare`: what differs between A and B, both maps, the
    difference map and the regime maps."""
    import textwrap

    lines = [f"compare {metric}: A = {names[0]}, B = {names[1]}",
             *textwrap.wrap(alignment.note(), width, subsequent_indent="  ", break_on_hyphens=False)]
    if settings is not None:
        lines += settings_lines(settings, alignment.knob, width)
    lines += [""]
    lines += side_by_side(grid_lines(a, f"A {names[0]}"), grid_lines(b, f"B {names[1]}"), width)
    lines += ["", *grid_lines(diff, f"difference B - A ({metric})", sign=True), summary_line(diff)]
    if ra is not None and rb is not None:
        changes = regime_changes(ra, rb)
        changed = {(c["i"], c["j"]) for c in changes}
        lines += [""]
        lines += side_by_side(regime_lines(ra, f"regimes A {names[0]}", changed, color),
                              regime_lines(rb, f"regimes B {names[1]}", changed, color), width)
        lines += ["I Regime I  A II-A  B II-B  x diverged  ? unknown  * changed regime"]
        lines += changes_lines(changes, alignment.knob, width)
    return "\n".join(lines)


def compare_grids(names: tuple[str, str], metric: str, ga: Grid, gb: Grid, ra: RegimeGrid | None,
                  rb: RegimeGrid | None, width: int = 80, color: bool = False,
                  settings: Sequence[tuple[str, object, object]] | None = None) -> dict:
    """Recipe A's grid against B's on their shared cells: the aligned grids, B - A, the regime
    maps (None unless both exist) and their changes, and the terminal text (with `settings`,
    differing_settings of the two recipes, listed at the top). AxisMismatch when the grids
    cannot be aligned."""
    al = align(ga, gb, names)
    ga, gb = (restrict(g, al.temperatures, al.densities) for g in (ga, gb))
    diff = difference(ga, gb)
    if ra is not None and rb is not None:
        ra, rb = (restrict(g, al.temperatures, al.densities) for g in (ra, rb))
    else:
        ra = rb = None
    changes = regime_changes(ra, rb) if ra is not None and rb is not None else []
    return {"a": names[0], "b": names[1], "metric": metric, "partial": al.partial,
            "note": al.note(), "knob": al.knob, "temperatures": al.temperatures,
            "densities": al.densities, "shared_cells": [list(c) for c in al.cells],
            "only_a": al.only_a, "only_b": al.only_b,
            "grid_a": ga, "grid_b": gb, "difference": diff, "regimes_a": ra, "regimes_b": rb,
            "regime_changes": changes,
            "settings_differ": [{"setting": k, "a": va, "b": vb} for k, va, vb in settings or []],
            "text": render_comparison(names, metric, ga, gb, diff, ra, rb, al, width, color, settings)}
