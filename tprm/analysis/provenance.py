"""What a report says about how its numbers were made: versions, devices, hosts, dates and
compute time, from the job records of a recipe (pure: records in, a summary out)."""

from __future__ import annotations

import datetime
import time
from importlib.metadata import PackageNotFoundError, version

import tprm
from tprm.analysis.report import format_seconds


def _stamp(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def provenance_summary(jobs: dict[str, dict], jobs_total: int, data_identity: dict | None,
                       data_files: str | None = None) -> dict:
    """The summary of the done jobs among `jobs` ({hash: job record}) of a plan of `jobs_total`;
    `data_files` says whether the data files are the official ones (checksums)."""
    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "not installed"
    done = [j for j in jobs.values() if j.get("state") == "done"]
    provs = [j.get("provenance") or {} for j in done]
    started = [j["started"] for j in done if j.get("started")]
    ended = [j["ended"] for j in done if j.get("ended")]
    # a fused group's wall time is shared by its jobs: each job carries wall / group size
    compute = sum(p.get("group_wall_s", 0.0) / max(p.get("group_size", 1), 1) for p in provs)
    return {"tprm": tprm.__version__, "torch": torch_version,
            "devices": sorted({p["device"] if p.get("device_name") in (None, "", p["device"])
                               else f"{p['device']} ({p['device_name']})"
                               for p in provs if p.get("device")}),
            "hosts": sorted({p["host"] for p in provs if p.get("host")}),
            "jobs_done": len(done), "jobs_total": jobs_total,
            "started": _stamp(min(started)) if started else None,
            "ended": _stamp(max(ended)) if ended else None,
            "compute": format_seconds(compute) if provs else None, "compute_s": round(compute, 3),
            "generated": _stamp(time.time()),
            "data_identity": data_identity, "data_files": data_files}
