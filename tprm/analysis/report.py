"""The text of a report: report.md (GitHub-friendly Markdown) and a one-file HTML version.

Pure: grids, threshold lines, provenance and figure file names in, text out. The service
gathers those from the store and writes the files (see docs/report.md).
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable, Sequence

from tprm.analysis.phase import Grid, axis_label, format_density
from tprm.analysis.recipe_text import describe_settings

METRIC_TITLES = {
    "test_error": "test error (retrained pruned model, mean of the last epochs)",
    "normalized_test_error": "normalised test error (per density, minus the best temperature)",
    "mc": "mc: linear mode connectivity on train error (< 0: a barrier)",
    "mc_loss": "mc on train loss",
    "cka": "CKA similarity of the two retrains' outputs",
    "cka_logits": "CKA on logits",
    "hessian_trace": "Hessian trace (Hutchinson)",
    "hessian_top": "Hessian top eigenvalue",
    "dense_test_error": "dense model test error (before pruning)",
    "alpha": "weightwatcher alpha (retrained pruned model, layer average; masked zeros included)",
    "alpha_weighted": "weightwatcher alpha-weighted (retrained pruned model, layer average)",
    "log_spectral_norm": "weightwatcher log spectral norm (retrained pruned model, layer average)",
    "pruned_alpha": "weightwatcher alpha of the pruned model before retraining",
    "dense_alpha": "weightwatcher alpha of the dense model (before pruning)",
}


def cell_text(grid: Grid, i: int, j: int) -> str:
    """One table cell: "mean ± std (n)" with 4 decimals; "x" diverged, "–" no data."""
    if grid.state[i][j] == "diverged":
        return "x (diverged)"
    mean = grid.mean[i][j]
    if mean is None:
        return "–"
    spread = grid.spread[i][j]
    text = f"{mean:.4f}" + ("" if spread is None else f" ± {spread:.4f}")
    return text + f" ({grid.n[i][j]})"


def _head(grid) -> list[str]:
    return [f"density ↓ {grid.knob} →"] + [f"{t:g}" for t in grid.temperatures]


def grid_table(grid: Grid) -> list[str]:
    """A Markdown table: densities (highest first) down, temperatures (coldest first) across."""
    head = _head(grid)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for j in reversed(range(len(grid.densities))):
        row = [format_density(grid.densities[j])] + [cell_text(grid, i, j) for i in range(len(grid.temperatures))]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def regime_table(grid) -> list[str]:
    head = _head(grid)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for j in reversed(range(len(grid.densities))):
        row = [format_density(grid.densities[j])] + [
            grid.regime[i][j] + (" ~" if grid.uncertain[i][j] else "") for i in range(len(grid.temperatures))]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _figure_lines(figures: Sequence[dict]) -> list[str]:
    lines = []
    for f in figures:
        lines += [f"![{f['title']}]({f['png']})", "", f"[SVG]({f['svg']})", ""]
    return lines


def report_markdown(ctx: dict) -> str:
    """report.md from the context the service assembles (keys documented in docs/report.md)."""
    r = ctx["recipe"]
    lines = [f"# tprm report: {r['name']}", ""]
    if r.get("settings"):  # generated from the settings that made the results: it cannot go stale
        lines += [describe_settings(r["settings"], r["hotter"]), ""]
    if r.get("description"):
        lines += [f"Description (free text from the recipe file): {' '.join(r['description'].split())}", ""]
    lines += [f"Temperature: **{axis_label(r['knob'], r['hotter'])}**, values "
              f"{', '.join(f'{t:g}' for t in r['temperatures'])}; load: densities "
              f"{', '.join(format_density(d) for d in r['densities'])}; "
              f"{len(r['dense_seeds'])} dense seed(s) x {len(r['retrain_seeds'])} retrain seeds. "
              f"Cells done: {ctx['cells_done']} of {ctx['cells_total']}.", ""]
    lines += ["## Regime map", ""]
    if ctx.get("regimes") is None:
        lines += [f"No regime map: {ctx.get('regime_error') or 'the regimes could not be classified'}.", ""]
    else:
        lines += [*_figure_lines([ctx["regime_figure"]]), "Thresholds and where each came from:", ""]
        lines += [f"- {t}" for t in ctx["threshold_lines"]] + [""]
        lines += regime_table(ctx["regimes"]) + [""]
    lines += ["## Metrics", "",
              "Each table cell: mean ± std over dense seeds (n = dense seeds measured). In the figures "
              "a hatched cell with `*` has fewer dense seeds than the recipe asks for, or some of its "
              "retrains missing; `x` marks a diverged cell.", ""]
    for metric, grid in ctx["grids"].items():
        lines += [f"### {METRIC_TITLES.get(metric, metric)}", ""]
        fig = next((f for f in ctx["figures"] if f["metric"] == metric), None)
        if fig:
            lines += _figure_lines([fig])
        lines += grid_table(grid) + [""]
    lines += cell_view_lines(ctx.get("cell_views"))
    lines += ["## Case studies", ""]
    lines += [ctx.get("cases_note") or "No case-study result is stored for this recipe.", ""]
    if ctx.get("cases"):
        lines += ["```", ctx["cases"].rstrip(), "```", ""]
    if ctx.get("comparison"):
        c = ctx["comparison"]
        lines += [f"## Comparison with {c['other']}", "", "```", c["text"].rstrip(), "```", "",
                  *_figure_lines(c["figures"])]
    lines += provenance_lines(ctx["provenance"], r)
    return "\n".join(lines).rstrip() + "\n"


def cell_view_lines(views: dict | None) -> list[str]:
    """The report's look inside chosen cells (`tprm show`'s text: numbers, LMC and training
    curves); `views`: {"note", "cells": [{"title", "text"}]}, None when the section is off."""
    if not views:
        return []
    lines = ["## Inside cells", "", views["note"], ""]
    for cell in views["cells"]:
        lines += [f"### {cell['title']}", "", "```", cell["text"].rstrip(), "```", ""]
    return lines


def provenance_lines(p: dict, r: dict) -> list[str]:
    lines = ["## Provenance", ""]
    rows = [("tprm", p.get("tprm")), ("torch", p.get("torch")), ("recipe hash", f"`{r['hash']}`"),
            ("recipe file", r.get("source") or "–"),
            ("dense seeds", ", ".join(map(str, r["dense_seeds"]))),
            ("retrain seeds", ", ".join(map(str, r["retrain_seeds"]))),
            ("devices", ", ".join(p.get("devices") or []) or "–"),
            ("hosts", ", ".join(p.get("hosts") or []) or "–"),
            ("jobs done", f"{p.get('jobs_done', 0)} of {p.get('jobs_total', 0)}"),
            ("first job started", p.get("started") or "–"), ("last job ended", p.get("ended") or "–"),
            ("total compute time", p.get("compute") or "–"), ("report written", p.get("generated") or "–"),
            ("data files", p.get("data_files") or "–")]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows] + [""]
    ident = p.get("data_identity")
    lines += ["Data identity:", "", "```json", json.dumps(ident, indent=2, sort_keys=True)
              if ident is not None else "not recorded (the recipe has not been run in this store)", "```", ""]
    lines += ["Recipe:", "", "```yaml", r["text"].rstrip(), "```", ""]
    return lines


def format_seconds(seconds: float) -> str:
    """12.3 -> "12.3 s"; 754 -> "12 min 34 s"; 7300 -> "2 h 1 min"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# -- HTML ----------------------------------------------------------------------------------------
def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', text)


def markdown_to_html(markdown: str, image: Callable[[str], bytes], title: str) -> str:
    """One self-contained HTML file from report.md (the subset report_markdown writes);
    PNG images are inlined as data URIs read through ``image(name)``."""
    out, lines, k = [], markdown.splitlines(), 0
    while k < len(lines):
        line = lines[k]
        if line.startswith("```"):
            end = next((m for m in range(k + 1, len(lines)) if lines[m].startswith("```")), len(lines))
            out.append("<pre>" + html.escape("\n".join(lines[k + 1:end])) + "</pre>")
            k = end + 1
            continue
        if line.startswith("|"):
            rows = []
            while k < len(lines) and lines[k].startswith("|"):
                if not re.fullmatch(r"\|(-+\|)+", lines[k]):
                    rows.append([c.strip() for c in lines[k].strip("|").split("|")])
                k += 1
            body = "".join("<tr>" + "".join(f"<{'th' if n == 0 else 'td'}>{_inline(c)}</{'th' if n == 0 else 'td'}>"
                                            for c in row) + "</tr>" for n, row in enumerate(rows))
            out.append(f"<table>{body}</table>")
            continue
        heading = re.match(r"(#+) (.*)", line)
        picture = re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", line)
        if heading:
            n = len(heading.group(1))
            out.append(f"<h{n}>{_inline(heading.group(2))}</h{n}>")
        elif picture:
            data = base64.b64encode(image(picture.group(2))).decode("ascii")
            out.append(f'<img alt="{html.escape(picture.group(1))}" src="data:image/png;base64,{data}">')
        elif line.startswith("- "):
            out.append(f"<li>{_inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        k += 1
    style = ("body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
             "pre{background:#f6f6f6;padding:8px;overflow-x:auto}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")

