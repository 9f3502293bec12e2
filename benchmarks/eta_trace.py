"""Record a progress trace of a real run, and score the ETA on it.

    python benchmarks/eta_trace.py record quickstart /tmp/trace.json [--store DIR]
    python benchmarks/eta_trace.py score /tmp/trace.json
    python benchmarks/eta_trace.py compact /tmp/trace.json tests/data/eta_trace_quickstart.json

`record` runs the recipe in a fresh store (in this process) while a second thread polls
`svc.runs.status` every 0.5 s, as the TUI does, and saves every job's kind, spec (what job_work
needs), and per sample its state and group progress; at the end, when each job ended.
`score` replays the trace through `tprm.engine.eta.estimate` and prints, at 10/25/50/75/90 %
of the work, the ETA against the time that was really left (the ratio must be in [0.5, 2]).
tests/test_eta.py replays a recorded trace the same way.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

SPEC_KEYS = ("data", "schedule", "pruning", "lmc", "pairs", "cka", "samples", "probes",
             "power_iters")


def record(recipe: str, out: Path, store: str | None) -> None:
    from tprm.service import Service

    svc = Service(store or tempfile.mkdtemp(prefix="tprm-eta-"))
    plan = svc.recipes.plan(svc.recipes.resolve(recipe))
    hashes = [j.hash for j in plan.ordered()]
    index = {h: i for i, h in enumerate(hashes)}
    jobs = [{"kind": j.kind, "label": j.label,
             "spec": {k: j.spec[k] for k in SPEC_KEYS if k in j.spec}} for j in plan.ordered()]
    samples: list[dict] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.5):
            try:
                status = svc.runs.status(recipe)
            except Exception:  # noqa: BLE001 -- a poll racing the first write
                continue
            by_hash = {j["hash"]: j for j in status["jobs"]}
            states = "".join((by_hash.get(h, {}).get("state") or "queued")[0] for h in hashes)
            groups = {}
            for h, j in by_hash.items():
                p = j.get("progress")
                if p and j["state"] == "running":
                    groups[str(index[h])] = [p["done"], p["total"], p["started"]]
            samples.append({"t": time.time(), "states": states, "progress": groups})

    thread = threading.Thread(target=poll, daemon=True)
    started = time.time()
    thread.start()
    summary = svc.runs.run(recipe)
    ended_at = time.time()
    stop.set()
    thread.join()
    final = {j["hash"]: j.get("ended") for j in svc.runs.status(recipe)["jobs"]}
    for h, job in zip(hashes, jobs):
        job["ended"] = final.get(h)
    out.write_text(json.dumps({"recipe": recipe, "started": started, "ended": ended_at,
                               "state": summary["state"], "jobs": jobs, "samples": samples}))
    print(f"{recipe}: {summary['state']} in {ended_at - started:.1f} s, {len(samples)} samples -> {out}")


def replay(trace: dict) -> list[tuple[float, float, float | None]]:
    """(fraction of work, ETA seconds or None, true seconds left) per sample of a trace."""
    from tprm.engine.eta import estimate, job_work

    work = [job_work(j["kind"], j["spec"]) for j in trace["jobs"]]
    names = {"q": "queued", "r": "running", "d": "done", "f": "failed", "c": "cancelled"}
    began: dict[int, float] = {i: j["started"] for i, j in enumerate(trace["jobs"]) if j.get("started")}
    for s in trace["samples"]:  # else: a job started at the first sample that saw it running
        for i, c in enumerate(s["states"]):
            if c == "r" and i not in began:
                began[i] = s["t"]
    out = []
    for s in trace["samples"]:
        progress = {i: p for key, p in s["progress"].items() for i in key.split(",")}
        jobs = []
        for i, (job, w) in enumerate(zip(trace["jobs"], work)):
            state = names.get(s["states"][i], "queued")
            p = progress.get(str(i))
            jobs.append({"work": w, "state": state, "started": began.get(i),
                         "ended": job["ended"] if state == "done" else None,
                         "progress": {"done": p[0], "total": p[1], "started": p[2]} if p else None})
        e = estimate(jobs, trace["started"], s["t"])
        out.append((e.fraction, e.seconds, trace["ended"] - s["t"]))
    return out


def score(trace: dict, marks=(0.10, 0.25, 0.50, 0.75, 0.90)) -> list[dict]:
    """The first sample at or past each work fraction: ETA, truth and their ratio."""
    rows = replay(trace)
    out = []
    for mark in marks:
        hit = next((r for r in rows if r[0] >= mark), None)
        if hit is None:
            continue
        frac, eta, truth = hit
        out.append({"mark": mark, "fraction": frac, "eta": eta, "truth": truth,
                    "ratio": None if eta is None or truth <= 0 else eta / truth})
    return out


def compact(trace: dict, every: float = 5.0) -> dict:
    """A smaller trace for tests: job start times kept, one sample per `every` seconds."""
    jobs = [dict(j) for j in trace["jobs"]]
    for s in trace["samples"]:
        for i, c in enumerate(s["states"]):
            if c == "r" and not jobs[i].get("started"):
                jobs[i]["started"] = s["t"]
    for j in jobs:
        spec = j["spec"]
        data = spec.get("data") or {}
        spec["data"] = {k: data.get(k) for k in ("name", "num_samples", "train_subset", "test_subset")}
        if "schedule" in spec:
            spec["schedule"] = {k: spec["schedule"].get(k)
                                for k in ("batch_size", "epochs", "iterations", "sam_rho")}
    samples, last = [], -1e9
    for s in trace["samples"]:
        if s["t"] - last >= every:
            groups: dict[tuple, list[str]] = {}
            for i, p in s["progress"].items():
                groups.setdefault(tuple(p), []).append(i)
            progress = {",".join(idx): list(p) for p, idx in groups.items()}  # members share one
            samples.append({"t": round(s["t"], 2), "states": s["states"], "progress": progress})
            last = s["t"]
    return dict(trace, jobs=jobs, samples=samples)


def main(argv: list[str]) -> None:
    if argv[:1] == ["record"]:
        store = argv[argv.index("--store") + 1] if "--store" in argv else None
        record(argv[1], Path(argv[2]), store)
    elif argv[:1] == ["compact"]:
        Path(argv[2]).write_text(json.dumps(compact(json.loads(Path(argv[1]).read_text()))))
    elif argv[:1] == ["score"]:
        trace = json.loads(Path(argv[1]).read_text())
        total = trace["ended"] - trace["started"]
        print(f"{trace['recipe']}: {total:.1f} s, {len(trace['samples'])} samples")
        for r in score(trace):
            eta = "estimating" if r["eta"] is None else f"{r['eta']:.1f} s"
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
            print(f"  at {r['mark']:.0%} (work {r['fraction']:.3f}): ETA {eta}, truth "
                  f"{r['truth']:.1f} s, ratio {ratio}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
