"""What `status` shows of one recipe: job rows, counts per state and the running run's ETA, from
the store's job records, the run folders' progress files and the plan's work table."""

from __future__ import annotations

import time


def node_of(progress: dict | None, job: dict) -> str | None:
    """Where a job runs (its progress report) or ran (its provenance): a host name."""
    if progress and progress.get("node"):
        return progress["node"]
    if job.get("state") in ("done", "failed", "diverged", "cancelled"):
        return (job.get("provenance") or {}).get("host")
    return None


def run_eta(name: str, runs: list[dict], jobs: list[dict]) -> dict | None:
    """ETA of the recipe's running run: {"fraction", "seconds" (None: estimating), "rate", "text"}."""
    from tprm.engine.eta import estimate

    live = [r for r in runs if r.get("recipe_name") == name and r.get("state") == "running"]
    if not live:
        return None
    e = estimate(jobs, live[-1]["started"], time.time())
    return {"fraction": e.fraction, "seconds": e.seconds, "rate": e.rate, "text": e.text}


def recipe_status(name: str, rec: dict, hashes: list[str], all_jobs: dict, skipped: set[str],
                  progress: dict, work: dict, runs: list[dict]) -> tuple[dict, list[dict]]:
    """({"hash", "total", "counts", "eta"}, job rows) of recipe `name` (stored record `rec`)."""
    counts: dict[str, int] = {}
    for h in hashes:
        state = "skipped" if h in skipped else all_jobs.get(h, {}).get("state", "new")
        counts[state] = counts.get(state, 0) + 1
    summary = {"hash": rec.get("hash"), "total": len(hashes), "counts": counts}
    rows = []
    for h in hashes:
        j = all_jobs.get(h)
        if j is not None:
            rows.append({"hash": h, "recipe": name, "kind": j["kind"], "label": j.get("label"),
                         "state": "skipped" if h in skipped else j["state"],
                         "reason": "parent diverged" if h in skipped else None,
                         "error": j.get("error"), "progress": progress.get(h),
                         "started": j.get("started"), "ended": j.get("ended"),
                         "work": work.get(h, 1.0), "node": node_of(progress.get(h), j)})
    summary["eta"] = run_eta(name, runs, [
        dict(all_jobs.get(h, {}), work=work.get(h, 1.0), progress=progress.get(h)) for h in hashes])
    return summary, rows
