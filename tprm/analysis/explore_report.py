"""An exploration as data and text: the JSON (``measured: true|false`` and the rule behind every
cell), a RegimeGrid for the existing heat map and figures, and the terminal map that tells
measured cells (filled block) from inferred ones (lower case, no fill) and unknown ones (?).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tprm.analysis.colors import REGIME_RGB, paint
from tprm.analysis.explore_infer import INFERENCE_RULE, UNKNOWN
from tprm.analysis.phase import format_density
from tprm.analysis.plots import format_temperature, format_value, threshold_lines
from tprm.analysis.regimes import RegimeGrid

if TYPE_CHECKING:
    from tprm.analysis.explore import Exploration

_SHORT = {"I": "I", "II-A": "II-A", "II-B": "II-B", "diverged": "div", "unknown": "unk", UNKNOWN: "?"}


def best_json(ex: Exploration) -> list[dict]:
    """Per density: the best measured temperature, its support and what could still beat it."""
    lat = ex.lattice
    out = []
    for b in ex.bests:
        t = lat.temperatures
        error = ex.measured[b.best, b.density_index].test_error if b.best is not None else None
        out.append({"density": lat.densities[b.density_index],
                    "temperature": t[b.best] if b.best is not None else None, "test_error": error,
                    "support": [t[i] for i in b.support], "open": [t[i] for i in b.open],
                    "settled": b.best is not None and not b.open})
    return out


def exploration_json(ex: Exploration) -> dict:
    """Plain data (JSON-able) of an exploration: every cell, the best temperatures, the costs."""

    lat = ex.lattice
    rounds = {(c["temperature"], c["density"]): r["round"] for r in ex.rounds for c in r["cells"]}
    cells = []
    for cell in lat.cells():
        t, d = lat.point(cell)
        m = ex.measured.get(cell)
        row = {"temperature": t, "density": d, "regime": ex.regime(cell), "measured": m is not None,
               "rule": ex.inferred[cell].rule if cell in ex.inferred else "not explored",
               "round": rounds.get((t, d))}
        if m is not None:
            row.update(mc=m.mc, cka=m.cka, test_error=m.test_error, doubtful=m.doubtful,
                       uncertain=m.uncertain, reason=m.reason)
        cells.append(row)
    total_dense = lat.dense_seeds * (1 if lat.shared_dense else len(lat.temperatures))
    return {"knob": lat.knob, "hotter": lat.hotter, "temperatures": list(lat.temperatures),
            "densities": list(lat.densities), "cells": cells,
            "regime": [[ex.regime((i, j)) for j in range(len(lat.densities))] for i in range(len(lat.temperatures))],
            "best": best_json(ex), "measured_cells": len(ex.measured), "total_cells": lat.size,
            "retrainings": ex.retrainings, "total_retrainings": lat.size * lat.cell_retrainings,
            "dense_trainings": ex.dense_trainings, "total_dense_trainings": total_dense,
            "budget": ex.budget.describe(), "stop": ex.stop, "stop_reason": ex.stop_reason,
            "rounds": ex.rounds, "inference_rule": INFERENCE_RULE, "summary": ex.summary_line(),
            "thresholds": ex.settings.thresholds(), "sources": ex.settings.threshold_sources()}


def regime_grid_of(ex: Exploration) -> RegimeGrid:
    """The explored map as a RegimeGrid ("?" as "unknown"), for heatmap.py and figures.py."""
    lat = ex.lattice
    rows, cols = range(len(lat.temperatures)), range(len(lat.densities))

    def value(i: int, j: int, name: str):
        m = ex.measured.get((i, j))
        return getattr(m, name) if m is not None else None

    return RegimeGrid(
        knob=lat.knob, hotter=lat.hotter, temperatures=list(lat.temperatures), densities=list(lat.densities),
        regime=[[ex.regime((i, j)) if ex.regime((i, j)) != UNKNOWN else "unknown" for j in cols] for i in rows],
        uncertain=[[bool(value(i, j, "uncertain")) for j in cols] for i in rows],
        reason=[[ex.measured[i, j].reason if (i, j) in ex.measured else
                 ex.inferred[i, j].rule if (i, j) in ex.inferred else "not explored" for j in cols] for i in rows],
        mc=[[value(i, j, "mc") for j in cols] for i in rows], cka=[[value(i, j, "cka") for j in cols] for i in rows],
        endpoint_gap=[[None for _ in cols] for _ in rows],
        thresholds=ex.settings.thresholds(), sources=ex.settings.threshold_sources())


def _cell_text(ex: Exploration, cell: tuple[int, int], width: int, depth: str, best: bool) -> str:
    regime = ex.regime(cell)
    label = _SHORT.get(regime, regime)
    measured = cell in ex.measured
    text = (label if measured else label.lower()) + ("*" if best else "")
    text = f"{text:^{width}}"
    if depth == "none" or regime == UNKNOWN:
        return text
    rgb = REGIME_RGB.get(regime, REGIME_RGB["unknown"])
    return paint(text, rgb, (0, 0, 0), depth, bold=True) if measured else paint(text, None, rgb, depth)


def render_exploration(ex: Exploration, width: int = 80, depth: str = "none") -> str:
    """The regime map (densities top = highest), the best temperature per density, the costs."""
    lat = ex.lattice
    cw = max(6, min(8, (width - 9) // max(1, len(lat.temperatures))))
    best_at = {(b.best, b.density_index) for b in ex.bests if b.best is not None}
    lines = [f"explored regime map: {lat.knob} ({lat.hotter} = hotter) ->",
             f"{'density':>7} │" + "".join(f"{format_temperature(t, cw - 1):^{cw}}" for t in lat.temperatures)]
    for j in reversed(range(len(lat.densities))):
        lines.append(f"{format_density(lat.densities[j]):>7} │" + "".join(
            _cell_text(ex, (i, j), cw, depth, (i, j) in best_at) for i in range(len(lat.temperatures))))
    lines.append("  I, II-A, II-B measured; i, ii-a, ii-b inferred; ? not inferable; * best T")
    lines += ["best temperature per density:"] + [_best_line(b) for b in best_json(ex)]
    lines += [ex.summary_line()] + ([ex.stop_reason] if ex.stop_reason else [])  # none while it runs
    return "\n".join(lines + threshold_lines(ex.settings.thresholds(), ex.settings.threshold_sources(), width))


def _best_line(b: dict) -> str:
    where = f"  {format_density(b['density']):>6}: "
    if b["temperature"] is None:
        return where + "nothing measured"
    text = where + f"{b['temperature']:g} (test error {format_value(b['test_error'])})"
    if len(b["support"]) > 1:
        text += "; within seed noise: " + ", ".join(f"{t:g}" for t in b["support"] if t != b["temperature"])
    if b["open"]:
        text += "; could still be beaten by unmeasured " + ", ".join(f"{t:g}" for t in b["open"])
    return text


def exploration_figure(ex: Exploration, stem, title: str | None = None) -> list:
    """The explored regime map as PNG + SVG (figures.py's regime map): measured cells framed,
    inferred cells unframed, cells that cannot be inferred grey "?"."""
    from tprm.analysis.figures import _figure, _save, _styled, draw_regimes, regime_legend

    grid = regime_grid_of(ex)
    note = f"framed: measured; unframed: inferred; ?: cannot be inferred\n{ex.summary_line()}"

    def build():
        fig = _figure()
        ax = fig.add_axes((0.11, 0.14, 0.58, 0.76))
        draw_regimes(ax, grid, title or "explored regime map", highlight=sorted(ex.measured))
        regime_legend(ax, grid)
        return _save(fig, stem, note)
    return _styled(build)
