"""Cell records: one per (temperature, density, dense seed) of a plan, from the store's job
states and results. The analysis layer reads only these records (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

from pathlib import Path

from tprm.engine.artifacts import Artifacts
from tprm.engine.plan import WW_METRICS, Cell, Plan
from tprm.engine.store import Store


def cell_records(store: Store | None, plan: Plan) -> list[dict]:
    """Every cell of `plan` in plan order; `store` None (no store yet): every cell is missing."""
    jobs = store.get_jobs(list(plan.jobs)) if store is not None else {}
    res = store.results(list(plan.jobs)) if store is not None else {}
    return [cell_record(cell, jobs, res) for cell in plan.cells]


def cell_record(cell: Cell, jobs: dict, res: dict) -> dict:
    """The record of one cell from its jobs' states and results (see docs/ARCHITECTURE.md)."""
    def state(h):
        return jobs.get(h, {}).get("state", "new")

    rec = {"temperature": cell.temperature, "density": cell.density,
           "dense_seed": cell.dense_seed, "state": "missing"}
    dense = res.get(cell.dense) or {}
    ck = (dense.get("checkpoints") or {}).get(str(cell.epoch)) or {}
    rec["dense_test_error"] = ck.get("test_error")
    retrains = [res.get(h) for h in cell.retrains]
    done = [r for r, h in zip(retrains, cell.retrains) if r and state(h) == "done"]
    errs = [r["test_error"] for r in done]
    rec["test_error_seeds"] = errs
    for key in ("test_error", "train_loss", "train_error", "test_loss"):
        vals = [r[key] for r in done if r.get(key) is not None]
        rec[key] = sum(vals) / len(vals) if vals else None
    pairs = res.get(cell.pairs) if state(cell.pairs) == "done" else None
    for key in ("mc", "mc_pairs", "mc_loss", "endpoint_gap", "cka", "cka_pairs", "cka_logits"):
        rec[key] = pairs.get(key) if pairs else None
    hs = [res.get(h) for h in cell.hessians if state(h) == "done"]
    rec["hessian_trace"] = (sum(h["hessian_trace"] for h in hs) / len(hs)) if hs else None
    rec["hessian_top"] = (sum(h["hessian_top"] for h in hs) / len(hs)) if hs else None
    if cell.ww is not None:  # the keys exist only where the recipe asks for them (views hide them else)
        rec.update(ww_fields(res.get(cell.ww) if state(cell.ww) == "done" else None))
    all_states = [state(h) for h in (cell.dense, cell.prune, *cell.retrains, cell.pairs)]
    if "diverged" in all_states:
        rec["state"] = "diverged"
        first = all_states.index("diverged")  # what comes after it will not run
        all_states[first + 1:] = ["skipped" if s != "done" else s for s in all_states[first + 1:]]
    elif "failed" in all_states:
        rec["state"] = "failed"
    elif all(s == "done" for s in all_states):
        rec["state"] = "done"
    elif any(s == "done" for s in all_states):
        rec["state"] = "partial"
    rec["jobs"] = {"dense": cell.dense, "prune": cell.prune, "retrains": list(cell.retrains),
                   "pairs": cell.pairs}
    names = ("dense", "prune", *[f"retrain{i}" for i in range(len(cell.retrains))], "pairs")
    rec["job_states"] = dict(zip(names, all_states))
    return rec


def ww_fields(result: dict | None) -> dict:
    """A ww job's result as cell-record fields (WW_FIELDS; None where not measured)."""
    result = result or {}
    out: dict = {}
    for key in WW_METRICS:
        vals = [r[key] for r in result.get("retrained") or [] if r.get(key) is not None]
        out[key] = sum(vals) / len(vals) if vals else None
    for stage in ("dense", "pruned"):
        out.update({f"{stage}_{key}": (result.get(stage) or {}).get(key) for key in WW_METRICS})
    return out


def cell_curves(store_root: Path | str, cell: Cell) -> dict:
    """A cell's curves as its jobs stored them: "lmc" (one dict per retrain-seed pair: t, train and
    test error and loss, mc), "dense" (the dense run's per-epoch curves, every checkpoint of it)
    and "retrain" (one per retrain seed); None (or []) where a job has not written them yet."""
    art = Artifacts(store_root)

    def load(job_hash: str, name: str):
        return art.load(job_hash, name) if art.exists(job_hash, name) else None

    return {"lmc": load(cell.pairs, "lmc") or [], "dense": load(cell.dense, "curves"),
            "retrain": [load(h, "curves") for h in cell.retrains]}
