"""One cell opened: why it is in its regime. Its numbers (mc, CKA, endpoint errors, test error
per dense seed and retrain seed, the regime with its reason), the LMC curves between its
retrained models and how each model trained, as JSON and as terminal text (plots by plotext).

Pure: the service hands in the cell's records and the curves read from its jobs' artifacts."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from tprm.analysis.phase import finite_number, format_density
from tprm.analysis.plots import render_curve
from tprm.analysis.regimes import RegimeGrid, RegimeSettings, classify_records


def t_star(curve: dict) -> float | None:
    """The t of an LMC curve where its train error lies furthest from the endpoints' mean: the
    point whose value the curve's stored mc was measured at (mc = mean - e(t*))."""
    ts, errs, mc = curve.get("t") or [], curve.get("train_error") or [], finite_number(curve.get("mc"))
    if mc is None or len(ts) != len(errs) or len(errs) < 2:
        return None
    at = (errs[0] + errs[-1]) / 2 - mc
    return ts[min(range(len(errs)), key=lambda k: abs(errs[k] - at))]


def lmc_entry(curve: dict, seeds: Sequence[int]) -> dict:
    """One pair's LMC curve with what the view marks: endpoints' means, endpoint errors and t*."""
    pair = [seeds[k] if 0 <= k < len(seeds) else k for k in curve.get("pair") or (0, 1)]
    out = {"pair": pair, "t": list(curve["t"]), "train_error": list(curve["train_error"]),
           "test_error": list(curve.get("test_error") or []), "mc": curve.get("mc"),
           "endpoint_gap": curve.get("endpoint_gap"), "t_star": t_star(curve)}
    for split in ("train", "test"):
        errs = out[f"{split}_error"]
        out[f"{split}_endpoints"] = [errs[0], errs[-1]] if errs else None
        out[f"{split}_mean"] = (errs[0] + errs[-1]) / 2 if errs else None
    return out


def seed_view(record: dict, artifacts: dict, retrain_seeds: Sequence[int], epoch: int,
              settings: RegimeSettings) -> dict:
    """One dense seed of the cell: its numbers, regime and curves (`artifacts`: "lmc" (a list
    of pair curves), "dense" and "retrains" (training curves); None where missing; "missing":
    one line per failed job or unreadable artifact)."""
    c = classify_records(record, settings)
    errs = record.get("test_error_seeds") or []
    dense = artifacts.get("dense")
    if dense is not None and epoch > 0:  # the dense run up to the checkpoint pruned
        keep = [k for k, e in enumerate(dense["epoch"]) if e <= epoch]
        dense = {key: [dense[key][k] for k in keep] for key in ("epoch", "train_error", "test_error")}
    return {"dense_seed": record.get("dense_seed"), "state": record.get("state"), "checkpoint_epoch": epoch,
            "dense_test_error": record.get("dense_test_error"), "test_error": record.get("test_error"),
            "retrains": [{"seed": s, "test_error": e} for s, e in zip(retrain_seeds, errs)],
            "mc": record.get("mc"), "mc_loss": record.get("mc_loss"), "cka": record.get("cka"),
            "endpoint_gap": record.get("endpoint_gap"),
            "regime": c["regime"], "uncertain": c["uncertain"], "reason": c["reason"],
            "lmc": [lmc_entry(cv, retrain_seeds) for cv in artifacts.get("lmc") or []],
            "dense_curve": dense,
            "retrain_curves": [dict(seed=s, **{k: cv[k] for k in ("epoch", "train_error", "test_error")})
                               for s, cv in zip(retrain_seeds, artifacts.get("retrains") or []) if cv],
            "missing": artifacts.get("missing") or []}


def cell_view(recipe_name: str, records: Sequence[dict], seeds: Sequence[dict], axes: dict,
              settings: RegimeSettings) -> dict:
    """The cell's JSON: its regime over every dense seed (with the reason) and each seed's view
    (`seeds`: from seed_view, in the records' order)."""
    c = classify_records(list(records), settings)
    first = records[0]
    return {"kind": "cell", "recipe": recipe_name, "knob": axes["knob"], "hotter": axes["hotter"],
            "temperature": first["temperature"], "density": first["density"],
            "regime": c["regime"], "uncertain": c["uncertain"], "reason": c["reason"], "mc": c["mc"],
            "cka": c["cka"], "endpoint_gap": c["endpoint_gap"], "thresholds": settings.thresholds(),
            "seeds": list(seeds)}


def _num(value, digits: int = 3) -> str:
    v = finite_number(value)
    return "n/a" if v is None else f"{v:.{digits}f}"


def numbers_lines(view: dict) -> list[str]:
    """The cell's numbers as text: regime and reason, then per dense seed its errors, mc, CKA
    and each pair's endpoint errors."""
    where = f"{view['knob']}={view['temperature']:g}, density {format_density(view['density'])}"
    flag = " (uncertain)" if view["uncertain"] else ""
    lines = [f"{view['recipe']}: {where}: regime {view['regime']}{flag}",
             f"  why: {view['reason']}",
             f"  mc {_num(view['mc'])}, CKA {_num(view['cka'])}, endpoint gap {_num(view['endpoint_gap'])}"
             f" (mean over {len(view['seeds'])} dense seed{'s' if len(view['seeds']) != 1 else ''})"]
    for s in view["seeds"]:
        ck = "final epoch" if s["checkpoint_epoch"] < 0 else f"checkpoint epoch {s['checkpoint_epoch']}"
        retrains = ", ".join(f"seed {r['seed']} {_num(r['test_error'], 4)}" for r in s["retrains"]) or "none"
        lines += [f"dense seed {s['dense_seed']} ({s['state']}): regime {s['regime']}"
                  f"{' (uncertain)' if s['uncertain'] else ''}; mc {_num(s['mc'])}, CKA {_num(s['cka'])}",
                  f"  dense test error {_num(s['dense_test_error'], 4)} at {ck}",
                  f"  pruned test error {_num(s['test_error'], 4)}; per retrain: {retrains}"]
        for p in s["lmc"]:
            tr, te = p["train_endpoints"] or [None, None], p["test_endpoints"] or [None, None]
            lines += [f"  pair {p['pair'][0]}-{p['pair'][1]}: mc {_num(p['mc'])} at t*={_num(p['t_star'], 2)}",
                      f"    endpoint errors: train {_num(tr[0])} / {_num(tr[1])}, test {_num(te[0])} / {_num(te[1])}"]
        lines += [f"  {m}" for m in s["missing"]]
    return lines


def _wrapped(lines: list[str], width: int) -> list[str]:
    """Lines broken at spaces to `width`, continuations indented under their line."""
    out = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()) + 2)
        out += textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False) or [line]
    return out


def lmc_plot(p: dict, width: int, height: int, color: bool) -> str:
    """One pair's train and test error along t, the endpoints' means dashed, t* marked."""
    series = {"train error": p["train_error"]}
    if p["test_error"]:
        series["test error"] = p["test_error"]
    dashed = {"train endpoints' mean": p["train_mean"]}
    if p["test_mean"] is not None:
        dashed["test endpoints' mean"] = p["test_mean"]
    ts = p["t_star"]
    title = (f"LMC retrain seeds {p['pair'][0]}-{p['pair'][1]}: mc {_num(p['mc'])}"
             + (f", | at t*={ts:.2f}" if ts is not None else ""))
    return render_curve(p["t"], series, width=width, height=height, color=color, title=title, xlabel="t",
                        dashed=dashed, marks=() if ts is None else (ts,))


def training_plot(s: dict, width: int, height: int, color: bool) -> str | None:
    """The dense run up to the checkpoint, then each retrain continuing from it (| marks pruning)."""
    dense, retrains = s["dense_curve"], s["retrain_curves"]
    if not dense and not retrains:
        return None
    start = dense["epoch"][-1] if dense and dense["epoch"] else 0
    xs = sorted({*(dense["epoch"] if dense else []), *(start + e for r in retrains for e in r["epoch"])})
    series = {}
    if dense:
        for split in ("test", "train"):
            at = dict(zip(dense["epoch"], dense[f"{split}_error"]))
            series[f"dense {split}"] = [at.get(x) for x in xs]
    for r in retrains:
        at = {start + e: v for e, v in zip(r["epoch"], r["test_error"])}
        series[f"retrain {r['seed']} test"] = [at.get(x) for x in xs]
    return render_curve(xs, series, width=width, height=height, color=color,
                        title=f"training, dense seed {s['dense_seed']}: error by epoch (| pruned here)",
                        xlabel="epoch (dense, then retrain)", marks=(start,) if dense and retrains else ())


def render_cell(view: dict, width: int = 80, height: int = 24, color: bool = False) -> str:
    """The cell as terminal text: its numbers, then one plot per screenful (each fits
    ``width`` x ``height``): every pair's LMC curve and every dense seed's training curves."""
    width, plot_h = max(40, width), max(8, height - 2)
    parts = ["\n".join(_wrapped(numbers_lines(view), width))]
    for s in view["seeds"]:
        parts += [lmc_plot(p, width, plot_h, color) for p in s["lmc"]]
        training = training_plot(s, width, plot_h, color)
        if training is not None:
            parts.append(training)
    return "\n\n".join(part.rstrip() for part in parts)



def cells_per_regime(grid: RegimeGrid) -> list[tuple[float, float]]:
    """One (temperature, density) per regime found on the map, the clearest case of each: Regime I
    with the deepest barrier (lowest mc), II-A with the lowest CKA, II-B with the highest CKA;
    cells in doubt (~) only when a regime has no other."""
    picks = []
    for regime, key in (("I", "mc"), ("II-A", "cka"), ("II-B", "cka")):
        found = [(grid.uncertain[i][j], getattr(grid, key)[i][j], i, j)
                 for i in range(len(grid.temperatures)) for j in range(len(grid.densities))
                 if grid.regime[i][j] == regime and getattr(grid, key)[i][j] is not None]
        if found:
            sign = -1 if regime == "II-B" else 1
            _, _, i, j = min(found, key=lambda f: (f[0], sign * f[1]))
            picks.append((grid.temperatures[i], grid.densities[j]))
    return picks
